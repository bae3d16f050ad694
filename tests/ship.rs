//! Shipping on the real kube-apiserver: a real `helm install`, the operator run under the
//! chart's ServiceAccount identity through a whole lifecycle (which proves the RBAC is enough),
//! leader election with a standby taking over, sharding by label selector, and /metrics
//! counting what happened.
#![cfg(feature = "e2e")]

mod common;

use std::time::Duration;

use common::RealOpenStack;
use common::cluster::{
    Operator, Proxy, TestNamespace, WAIT, eventually, kubeconfig_through, kubectl_ok, kubectl_try, manifest,
    metric_value, service_account_kubeconfig, unique, with_labels,
};

fn helm_install(release: &str, namespace: &str, sets: &[String]) {
    let mut args = vec![
        "install".to_string(),
        release.to_string(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/charts/image-access-operator").to_string(),
        "--namespace".into(),
        namespace.to_string(),
        "--create-namespace".into(),
        "--wait=false".into(),
    ];
    for set in sets {
        args.push("--set".into());
        args.push(set.clone());
    }
    let out = std::process::Command::new("helm")
        .args(&args)
        .output()
        .expect("helm on PATH");
    assert!(
        out.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Apply → Ready → (member in Glance) → delete → gone (and the membership with it).
async fn lifecycle(env: &RealOpenStack, ns: &TestNamespace, name: &str, labels: &str) -> String {
    let image = env.create_image("shared").await;
    let member = env.member1_project_id.clone();
    let out = ns.apply(&with_labels(&manifest(name, &image, &member, "owner", ""), labels));
    assert!(out.success, "{}", out.stderr);
    ns.wait_ready(name).await;
    assert!(env.member(&image, &member).await.is_some());
    kubectl_ok(&["delete", "ia", name, "-n", &ns.name, "--wait=false"], None);
    ns.wait_gone(name).await;
    assert!(
        env.member(&image, &member).await.is_none(),
        "membership removed with the object"
    );
    image
}

#[tokio::test]
async fn helm_install_and_a_lifecycle_under_the_charts_service_account_with_roles() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("rbac-ns", &env).await;
    let release_ns = unique("iao-system");
    let release = "iao";
    helm_install(
        release,
        &release_ns,
        &[
            format!("watchNamespaces={{{}}}", ns.name),
            "leaderElection.leaseDurationSeconds=5".into(),
        ],
    );
    // The rendered objects were accepted by the apiserver.
    let deployment = kubectl_ok(&["get", "deployment", "-n", &release_ns, "-o", "name"], None);
    assert!(deployment.contains("iao-image-access-operator"), "{deployment}");
    let roles = kubectl_ok(&["get", "role", "-n", &ns.name, "-o", "name"], None);
    assert!(roles.contains("iao-image-access-operator"), "{roles}");

    let kubeconfig = service_account_kubeconfig(&release_ns, "iao-image-access-operator");
    let mut operator = Operator::spawn(
        &[
            "--watch-namespaces",
            &ns.name,
            "--leader-elect",
            "--leader-election-namespace",
            &release_ns,
            "--leader-election-id",
            "iao-image-access-operator",
            "--lease-duration-seconds",
            "5",
            "--instance",
            "sa-operator",
        ],
        Some(&kubeconfig),
    );
    lifecycle(&env, &ns, "rbac", "").await;
    assert!(operator.is_running(), "{}", operator.log_for_message());
    let holder = kubectl_ok(
        &[
            "get",
            "lease",
            "iao-image-access-operator",
            "-n",
            &release_ns,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
        None,
    );
    assert_eq!(holder, "sa-operator");
    // The log must cover the lifecycle (it shows the object's reconciles) for its lack of a
    // refusal to mean something.
    let log = operator.log_covering("rbac");
    assert!(!log.contains("forbidden"), "no RBAC refusal: {log}");
}

#[tokio::test]
async fn cluster_role_install_works_across_namespaces_with_a_label_selector() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("rbac-cluster", &env).await;
    let release_ns = unique("iao-cluster");
    let release = unique("iaoc");
    helm_install(&release, &release_ns, &["leaderElection.enabled=false".into()]);
    let account = format!("{release}-image-access-operator");
    let kubeconfig = service_account_kubeconfig(&release_ns, &account);
    // All namespaces, but only this test's objects (the other tests' operators own theirs).
    let shard = format!("shard={}", ns.name);
    let operator = Operator::spawn(&["--label-selector", &shard], Some(&kubeconfig));
    lifecycle(&env, &ns, "cluster", &format!("shard: {}", ns.name)).await;
    let log = operator.log_covering("cluster");
    assert!(!log.contains("forbidden"), "no RBAC refusal: {log}");
}

#[tokio::test]
async fn a_standby_takes_over_when_the_leader_stops() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("leader", &env).await;
    let lease = unique("lease");
    let args = |identity: &'static str| {
        vec![
            "--watch-namespaces".to_string(),
            ns.name.clone(),
            "--leader-elect".into(),
            "--leader-election-namespace".into(),
            ns.name.clone(),
            "--leader-election-id".into(),
            lease.clone(),
            "--lease-duration-seconds".into(),
            "4".into(),
            "--instance".into(),
            identity.into(),
        ]
    };
    // The Lease does not exist until the first instance creates it: "not yet", not a failure.
    let holder = || {
        kubectl_try(&[
            "get",
            "lease",
            &lease,
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .unwrap_or_default()
    };
    let first_args = args("first");
    let mut first = Operator::spawn(&first_args.iter().map(String::as_str).collect::<Vec<_>>(), None);
    eventually("first leads", WAIT, || async { (holder() == "first").then_some(()) }).await;
    let second_args = args("second");
    let mut second = Operator::spawn(&second_args.iter().map(String::as_str).collect::<Vec<_>>(), None);
    second.wait_ready().await; // a standby is ready (healthy), but does not reconcile

    let image = env.create_image("shared").await;
    assert!(
        ns.apply(&manifest("one", &image, &env.member1_project_id, "owner", ""))
            .success
    );
    ns.wait_ready("one").await;
    let reconciles = r#"controller_runtime_reconcile_total{controller="imageaccess",result="success"}"#;
    assert_eq!(second.metric(reconciles).await, 0.0, "the standby did nothing");
    assert_eq!(holder(), "first");

    first.kill();
    eventually("second leads", Duration::from_secs(30), || async {
        (holder() == "second").then_some(())
    })
    .await;
    assert!(
        ns.apply(&manifest("two", &image, &env.member2_project_id, "owner", ""))
            .success
    );
    ns.wait_ready("two").await;
    assert!(second.metric(reconciles).await > 0.0);
    assert!(second.is_running());
}

/// The holder of `lease` in `namespace` ("" when free or missing).
fn lease_holder(namespace: &str, lease: &str) -> String {
    kubectl_try(&[
        "get",
        "lease",
        lease,
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ])
    .unwrap_or_default()
}

fn leader_args(namespace: &str, lease: &str, identity: &str, seconds: &str) -> Vec<String> {
    [
        "--watch-namespaces",
        namespace,
        "--leader-elect",
        "--leader-election-namespace",
        namespace,
        "--leader-election-id",
        lease,
        "--lease-duration-seconds",
        seconds,
        "--instance",
        identity,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Issue 7, D15: a leader stopped with SIGTERM releases its Lease; the standby leads at once
/// instead of waiting the lease (15 s here, the default) out.
#[tokio::test]
async fn sigterm_hands_the_lease_to_the_standby_at_once() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("handover", &env).await;
    let lease = unique("lease");
    let mut first = Operator::spawn(&strs(&leader_args(&ns.name, &lease, "first", "15")), None);
    eventually("first leads", WAIT, || async {
        (lease_holder(&ns.name, &lease) == "first").then_some(())
    })
    .await;
    let second = Operator::spawn(&strs(&leader_args(&ns.name, &lease, "second", "15")), None);
    second.wait_ready().await;
    let image = env.create_image("shared").await;
    assert!(
        ns.apply(&manifest("one", &image, &env.member1_project_id, "owner", ""))
            .success
    );
    ns.wait_ready("one").await;

    let stopped = std::time::Instant::now();
    first.signal("TERM");
    let status = first
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("exits on SIGTERM");
    assert!(
        status.success(),
        "a graceful stop exits 0: {status:?}\n{}",
        first.log_for_message()
    );
    let log = first.log();
    assert!(log.contains("released the leader Lease"), "{log}");
    eventually("second leads", Duration::from_secs(10), || async {
        (lease_holder(&ns.name, &lease) == "second").then_some(())
    })
    .await;
    let took = stopped.elapsed();
    eprintln!("standby leading {took:?} after SIGTERM (lease 15 s)");
    assert!(took < Duration::from_secs(8), "well before the 15 s lease: {took:?}");
    assert!(
        ns.apply(&manifest("two", &image, &env.member2_project_id, "owner", ""))
            .success
    );
    ns.wait_ready("two").await;
}

/// Issue 7, D14: a leader that cannot renew its Lease stops reconciling (and exits) before the
/// Lease could have expired, so it never acts after a standby took over.
#[tokio::test]
async fn a_leader_cut_off_from_the_api_stops_before_its_lease_expires() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("partition", &env).await;
    let lease = unique("lease");
    let api_port: u16 = std::env::var("IAO_APISERVER_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(16443);
    let proxy = Proxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], api_port))).await;
    let through_proxy = kubeconfig_through(proxy.port);
    let mut leader = Operator::spawn(
        &strs(&leader_args(&ns.name, &lease, "cut-off", "6")),
        Some(&through_proxy),
    );
    eventually("the proxied instance leads", WAIT, || async {
        (lease_holder(&ns.name, &lease) == "cut-off").then_some(())
    })
    .await;
    let standby = Operator::spawn(&strs(&leader_args(&ns.name, &lease, "standby", "6")), None);
    standby.wait_ready().await;
    let image = env.create_image("shared").await;
    assert!(
        ns.apply(&manifest("one", &image, &env.member1_project_id, "owner", ""))
            .success
    );
    ns.wait_ready("one").await;

    proxy.cut();
    let cut = std::time::Instant::now();
    let status = leader
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("the cut-off leader stops");
    let stopped_after = cut.elapsed();
    assert!(
        !status.success(),
        "losing the Lease is an error exit (the pod restarts as a standby)"
    );
    let log = leader.log();
    assert!(log.contains("could not renew the leader Lease"), "{log}");
    eventually("the standby leads", Duration::from_secs(30), || async {
        (lease_holder(&ns.name, &lease) == "standby").then_some(())
    })
    .await;
    let standby_after = cut.elapsed();
    eprintln!(
        "cut-off leader stopped {stopped_after:?} after the cut; standby leading after {standby_after:?} (lease 6 s)"
    );
    assert!(
        stopped_after < Duration::from_secs(6),
        "stopped before the 6 s lease could expire: {stopped_after:?}"
    );
    assert!(stopped_after < standby_after, "never two leaders at once");
}

#[tokio::test]
async fn two_instances_on_disjoint_selectors_each_handle_only_their_own() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("shards", &env).await;
    let a = Operator::start(&ns.name, &["--label-selector", "shard=a", "--instance", "shard-a"]);
    let b = Operator::start(&ns.name, &["--label-selector", "shard=b", "--instance", "shard-b"]);
    let image = env.create_image("shared").await;
    let for_a = manifest("for-a", &image, &env.member1_project_id, "owner", "");
    let for_b = manifest("for-b", &image, &env.member2_project_id, "owner", "");
    assert!(ns.apply(&with_labels(&for_a, "shard: a")).success);
    assert!(ns.apply(&with_labels(&for_b, "shard: b")).success);
    for name in ["for-a", "for-b"] {
        ns.wait_ready(name).await;
    }
    let creates =
        r#"image_access_operator_openstack_requests_total{service="image",operation="create_member",code="200"}"#;
    assert_eq!(a.metric(creates).await, 1.0, "shard a created its one member");
    assert_eq!(b.metric(creates).await, 1.0, "shard b created its one member");
    let reporters = kubectl_ok(
        &[
            "get",
            "events",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={range .items[*]}{.involvedObject.name}={.reportingInstance}{\"\\n\"}{end}",
        ],
        None,
    );
    for line in reporters.lines().filter(|l| !l.is_empty()) {
        assert!(
            line == "for-a=shard-a" || line == "for-b=shard-b",
            "an instance touched another shard: {line}"
        );
    }
}

#[tokio::test]
async fn metrics_and_health_count_a_lifecycle() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("metrics", &env).await;
    let operator = Operator::start(&ns.name, &["--concurrency", "3", "--log-format", "json"]);
    operator.wait_ready().await;
    let (code, body) = operator.get(operator.health_port, "/healthz").await.expect("healthz");
    assert_eq!((code, body.as_str()), (200, "ok"));
    lifecycle(&env, &ns, "counted", "").await;
    let text = operator.metrics().await;
    let value = |sample: &str| metric_value(&text, sample);
    assert_eq!(
        value(
            r#"image_access_operator_openstack_requests_total{service="image",operation="create_member",code="200"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            r#"image_access_operator_openstack_requests_total{service="image",operation="delete_member",code="204"}"#
        ),
        1.0
    );
    assert_eq!(
        value(r#"image_access_operator_openstack_requests_total{service="image",operation="show_member",code="404"}"#),
        0.0,
        "a new object is created without a read first"
    );
    assert!(value(r#"image_access_operator_keystone_authentications_total{result="success"}"#) >= 1.0);
    // Create, delete: the echoes of its own writes cost no reconcile.
    assert!(value(r#"controller_runtime_reconcile_total{controller="imageaccess",result="success"}"#) >= 2.0);
    assert_eq!(
        value(r#"controller_runtime_reconcile_errors_total{controller="imageaccess"}"#),
        0.0
    );
    assert_eq!(
        value(r#"controller_runtime_max_concurrent_reconciles{controller="imageaccess"}"#),
        12.0,
        "four objects at work per OpenStack request in flight"
    );
    assert_eq!(
        value(r#"controller_runtime_active_workers{controller="imageaccess"}"#),
        0.0
    );
    assert!(value(r#"controller_runtime_reconcile_time_seconds_count{controller="imageaccess"}"#) >= 2.0);
    assert!(text.contains("image_access_operator_openstack_request_duration_seconds_bucket"));
    // JSON logs: every line is a JSON object, spans carry the object, and no secret shows.
    let log = operator.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["name"] == "reconcile" && l["span"]["object"] == "counted"),
        "spans carry the object"
    );
    assert!(
        !log.contains(&env.user_password) && !log.contains("X-Auth-Token"),
        "no secret in logs"
    );
    assert!(
        !text.contains(&ns.name) && !text.contains(&env.member1_project_id),
        "no object or project labels"
    );
}
