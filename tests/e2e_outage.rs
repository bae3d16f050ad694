//! Glance stopped during a delete: the finalizer holds, and once Glance is back the deletion
//! completes. It stops the shared Glance, so `make test` runs it alone, after the other suites.
#![cfg(feature = "e2e")]

mod common;

use std::process::Command;
use std::time::Duration;

use common::RealOpenStack;
use common::cluster::{Operator, TestNamespace, kubectl_ok, manifest};

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

#[tokio::test]
async fn glance_down_during_delete_holds_the_finalizer_until_it_is_back() {
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
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        ns.get("outage").await.is_some(),
        "the finalizer holds while Glance is down"
    );

    start_glance();
    ns.wait_gone("outage").await;
    assert!(
        env.member(&image, &member).await.is_none(),
        "membership removed once Glance is back: {}",
        operator.log()
    );
}
