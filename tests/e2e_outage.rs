//! Glance stopped or frozen while the operator works, with the production defaults (resync
//! 10 min, stalled re-check 5 min): recovery must come from backoff and events, never from a
//! resync. These tests stop the shared Glance, so they run one at a time, and `make test` runs
//! this binary after the suites that share Glance (cargo runs test binaries one after another).
#![cfg(feature = "e2e")]

mod common;

use std::process::Command;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use common::RealOpenStack;
use common::cluster::{Operator, TestNamespace, WAIT, condition, eventually, kubectl_ok, manifest};

/// Failed reconciles of ImageAccess objects, as the operator counts them.
const ERRORS: &str = r#"controller_runtime_reconcile_errors_total{controller="imageaccess"}"#;
/// ImageAccess reconciles at work now.
const ACTIVE: &str = r#"controller_runtime_active_workers{controller="imageaccess"}"#;

/// Waits until the operator has counted `count` failed reconciles of ImageAccess objects.
async fn wait_failures(operator: &Operator, count: f64, what: &str) {
    eventually(what, WAIT, || async {
        operator.try_metric(ERRORS).await.filter(|errors| *errors >= count)
    })
    .await;
}

/// One test at a time touches Glance's process.
static GLANCE: LazyLock<tokio::sync::Mutex<()>> = LazyLock::new(|| tokio::sync::Mutex::new(()));

fn state_dir() -> String {
    std::env::var("OSL_STATE_DIR").expect("OSL_STATE_DIR (source .e2e/env.sh)")
}

fn stop_glance() {
    let pid = std::fs::read_to_string(format!("{}/run/glance.pid", state_dir())).expect("glance pid file");
    let status = Command::new("kill").args(["-TERM", pid.trim()]).status().expect("kill");
    assert!(status.success());
}

fn start_glance() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/env/openstack-up.sh");
    let out = Command::new("bash")
        .args([script, &state_dir()])
        .output()
        .expect("openstack-up");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Freezes (`STOP`) or thaws (`CONT`) every process of Glance: requests hang, as on an
/// overloaded server.
fn signal_glance(signal: &str) {
    let ini = format!("{}/glance/uwsgi.ini", state_dir());
    let status = Command::new("pkill")
        .args([&format!("-{signal}"), "-f", &ini])
        .status()
        .expect("pkill");
    assert!(status.success(), "pkill -{signal} glance");
}

#[tokio::test]
async fn glance_down_during_delete_holds_the_finalizer_until_it_is_back() {
    let _glance = GLANCE.lock().await;
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("outage", &env).await;
    let operator = Operator::start(&ns.name, &[]);
    let image = env.create_image("shared").await;
    let member = env.member1_project_id.clone();
    assert!(ns.apply(&manifest("outage", &image, &member, "owner", "")).success);
    ns.wait_ready("outage").await;

    stop_glance();
    kubectl_ok(&["delete", "ia", "outage", "-n", &ns.name, "--wait=false"], None);
    // It stays, retrying, and says so.
    let object = ns.wait_condition("outage", "Reconciling").await;
    assert!(object.metadata.deletion_timestamp.is_some());
    // That the finalizer is not dropped can only be seen by waiting a window out, so it keeps
    // its sleep; it starts after a failed cleanup was counted, and must hold more of them
    // (backoff 1 s, doubling): the operator was retrying all along, not stopped.
    wait_failures(&operator, 1.0, "a failed cleanup counted").await;
    let failed_before = operator.metric(ERRORS).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        ns.get("outage").await.is_some(),
        "the finalizer holds while Glance is down"
    );
    let retried = operator.metric(ERRORS).await - failed_before;
    assert!(
        retried >= 1.0,
        "no cleanup retried in the 5 s window: {}",
        operator.log_for_message()
    );

    start_glance();
    ns.wait_gone("outage").await;
    assert!(
        env.member(&image, &member).await.is_none(),
        "membership removed once Glance is back: {}",
        operator.log_for_message()
    );
}

/// Issue 7, B6: after a transient failure the retry comes with backoff, not at the resync.
#[tokio::test]
async fn an_object_is_ready_within_seconds_of_glance_coming_back() {
    let _glance = GLANCE.lock().await;
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("recovery", &env).await;
    let operator = Operator::start(&ns.name, &[]);
    let image = env.create_image("shared").await;
    let member = env.member2_project_id.clone();

    stop_glance();
    assert!(ns.apply(&manifest("recover", &image, &member, "owner", "")).success);
    let object = ns.wait_condition("recover", "Reconciling").await;
    let (_, reason, _) = condition(&object, "Ready").expect("Ready");
    assert_eq!(reason, "OpenStackUnavailable");
    // A few retries fail while Glance stays down (counted, not guessed from the time).
    wait_failures(&operator, 3.0, "three failed attempts while Glance is down").await;
    start_glance();
    let back = Instant::now();
    ns.wait_ready_within("recover", Duration::from_secs(45)).await;
    let took = back.elapsed();
    eprintln!("Ready {took:?} after Glance came back (resync period: 10 min)");
    assert!(
        took < Duration::from_secs(30),
        "recovered by backoff: {took:?}\n{}",
        operator.log_for_message()
    );
    assert!(env.member(&image, &member).await.is_some());
}

/// Issue 7, B7: a spec edit made while a reconcile is in flight is acted on within seconds.
#[tokio::test]
async fn a_spec_edit_made_during_a_reconcile_is_acted_on() {
    let _glance = GLANCE.lock().await;
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("inflight", &env).await;
    let operator = Operator::start(&ns.name, &[]);
    let image = env.create_image("shared").await;
    let (first, second, third) = (
        env.member1_project_id.clone(),
        env.member2_project_id.clone(),
        "iao-third-member".to_string(),
    );
    assert!(ns.apply(&manifest("edit", &image, &first, "owner", "")).success);
    ns.wait_ready("edit").await;

    // Nothing at work before the edit, so that a reconcile at work after it is the edit's.
    eventually("no ImageAccess reconcile at work", WAIT, || async {
        operator.try_metric(ACTIVE).await.filter(|active| *active == 0.0)
    })
    .await;
    // Glance freezes: the reconcile of the next edit hangs in its first Glance call (requests
    // time out after 30 s only).
    signal_glance("STOP");
    assert!(ns.apply(&manifest("edit", &image, &second, "owner", "")).success);
    eventually("the reconcile of the edit in flight", WAIT, || async {
        operator.try_metric(ACTIVE).await.filter(|active| *active >= 1.0)
    })
    .await;
    // The user edits again while that reconcile is in flight: stored (kubectl apply returned)
    // while the reconcile still hangs.
    assert!(ns.apply(&manifest("edit", &image, &third, "owner", "")).success);
    let stored = ns.get("edit").await.expect("edit").metadata.generation;
    assert_eq!(stored, Some(3), "the last edit is stored");
    let in_flight = operator.metric(ACTIVE).await;
    assert!(
        in_flight >= 1.0,
        "the first edit's reconcile was still in flight: {in_flight}"
    );
    signal_glance("CONT");
    let thawed = Instant::now();

    let object = eventually("the last edit acted on", Duration::from_secs(30), || async {
        ns.api().get_opt("edit").await.ok().flatten().filter(|o| {
            let status = o.status.as_ref();
            o.metadata.generation == Some(3)
                && status.and_then(|s| s.observed_generation) == Some(3)
                && status.and_then(|s| s.applied.as_ref()).map(|a| a.member_id.as_str()) == Some(third.as_str())
        })
    })
    .await;
    eprintln!("last edit applied {:?} after Glance thawed", thawed.elapsed());
    assert_eq!(condition(&object, "Ready").map(|c| c.0), Some("True".into()));
    assert!(
        env.member(&image, &third).await.is_some(),
        "{}",
        operator.log_for_message()
    );
    assert!(
        env.member(&image, &second).await.is_none(),
        "the in-between edit was replaced"
    );
    assert!(env.member(&image, &first).await.is_none());
}
