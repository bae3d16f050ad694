//! The operator the way users run it: installed with `helm install oci://…` from the release
//! `make image` published to the environment's registry (tests/env/publish-image.sh: the chart
//! and the image the Dockerfile describes, for amd64 and arm64), onto the real nodes of the test
//! environment (kubelet + containerd, tests/env/node-up.sh), which pull the image from that
//! registry; as a restricted pod under the chart's ServiceAccount. Each release watches only its own namespace, so the suites run side
//! by side. The values that only the test nodes need (host network on loopback, the API server's
//! address) come from tests/env/pod-values.yaml.
#![cfg(feature = "e2e")]

mod common;

use std::time::{Duration, Instant};

use common::RealOpenStack;
use common::cluster::{TestNamespace, WAIT, eventually, kubectl, kubectl_ok, manifest, run};
use common::helm::{
    DEPLOYMENT, RELEASE, Release, container_process, free_port_on_both_nodes, glance_requests, glance_requests_since,
    writes,
};

#[tokio::test]
async fn helm_install_wait_runs_a_restricted_pod_that_manages_memberships() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("pod", &env).await;
    let release = Release::install(&ns.name, &[]);
    let pods = release.pods();
    assert_eq!(pods.len(), 1, "{pods:?}");
    let (pod, _, ip, ready) = &pods[0];
    assert!(*ready, "Ready by the chart's readiness probe");
    assert!(ip.starts_with("127."), "on loopback only: {ip}");
    eventually("the pod leads", WAIT, || async {
        (release.leader() == *pod).then_some(())
    })
    .await;

    // What the kernel says about the container's process.
    let process = container_process(&ns.name, pod);
    let status = std::fs::read_to_string(process.join("status")).expect("status");
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or_default();
    assert!(
        uid.split_whitespace().skip(1).all(|id| id == "65532"),
        "runs as 65532: {uid}"
    );
    let mounts = std::fs::read_to_string(process.join("mountinfo")).expect("mountinfo");
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))
        .unwrap_or_default();
    assert!(
        root.split_whitespace()
            .nth(5)
            .is_some_and(|o| o.split(',').any(|o| o == "ro")),
        "read-only root file system: {root}"
    );
    let token = mounts
        .lines()
        .any(|l| l.contains("/var/run/secrets/kubernetes.io/serviceaccount"));
    assert!(token, "the projected service-account token is mounted");

    // A lifecycle through the pod, under the chart's RBAC.
    let image = env.create_image("shared").await;
    let member = env.member1_project_id.clone();
    assert!(ns.apply(&manifest("share", &image, &member, "owner", "")).success);
    ns.wait_ready("share").await;
    assert!(env.member(&image, &member).await.is_some());
    kubectl_ok(&["delete", "ia", "share", "-n", &ns.name, "--wait=false"], None);
    ns.wait_gone("share").await;
    assert!(env.member(&image, &member).await.is_none());
    let logs = kubectl_ok(&["logs", "-n", &ns.name, pod], None);
    assert!(!logs.contains("forbidden"), "no RBAC refusal: {logs}");
    assert!(!logs.contains(&env.user_password), "no secret in logs");
}

#[tokio::test]
async fn deleting_the_leader_pod_hands_over_to_the_standby_within_the_lease() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("pods-ha", &env).await;
    let release = Release::install(&ns.name, &["replicaCount=2"]);
    let pods = release.pods();
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(pods.iter().all(|p| p.3), "both Ready (a standby is healthy): {pods:?}");
    assert_ne!(
        pods[0].1, pods[1].1,
        "on two nodes: hostNetwork pods cannot share a node's ports"
    );
    let leader = eventually("a leader", WAIT, || async {
        let holder = release.leader();
        pods.iter().any(|p| p.0 == holder).then_some(holder)
    })
    .await;

    let image = env.create_image("shared").await;
    assert!(
        ns.apply(&manifest("one", &image, &env.member1_project_id, "owner", ""))
            .success
    );
    ns.wait_ready("one").await;

    let deleted = Instant::now();
    kubectl_ok(&["delete", "pod", &leader, "-n", &ns.name, "--wait=false"], None);
    let standby = pods
        .iter()
        .find(|p| p.0 != leader)
        .map(|p| p.0.clone())
        .expect("standby");
    // The standby watches the Lease: it takes it when the deleted leader releases it, before the
    // replacement pod has started.
    eventually("the standby leads", Duration::from_secs(30), || async {
        let holder = release.leader();
        (holder != leader && !holder.is_empty()).then_some(()).map(|()| {
            assert_eq!(holder, standby, "the standby, not the replacement pod, took over");
        })
    })
    .await;
    let took = deleted.elapsed();
    eprintln!("standby pod leading {took:?} after `kubectl delete pod` of the leader (lease 15 s)");
    assert!(took < Duration::from_secs(15), "within the lease: {took:?}");
    assert!(
        ns.apply(&manifest("two", &image, &env.member2_project_id, "owner", ""))
            .success
    );
    ns.wait_ready("two").await;
}

#[tokio::test]
async fn helm_upgrade_rolls_the_pods_without_a_call_storm_or_an_unreconciled_object() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("pods-upgrade", &env).await;
    let release = Release::install(&ns.name, &["replicaCount=2"]);
    let mut images = Vec::new();
    let mut manifests = String::new();
    for i in 0..3 {
        let image = env.create_image("shared").await;
        for (j, member) in [&env.member1_project_id, &env.member2_project_id].iter().enumerate() {
            manifests.push_str(&manifest(&format!("ia-{i}-{j}"), &image, member, "owner", ""));
            manifests.push_str("---\n");
        }
        images.push(image);
    }
    assert!(ns.apply(&manifests).success);
    for i in 0..3 {
        for j in 0..2 {
            ns.wait_ready(&format!("ia-{i}-{j}")).await;
        }
    }
    let before = glance_requests(&images).len();
    let old_pods: Vec<String> = release.pods().into_iter().map(|p| p.0).collect();

    let started = Instant::now();
    let (ok, out) = release.helm("upgrade", &["replicaCount=2", "concurrency=4"]);
    assert!(ok, "helm upgrade --wait: {out}\n{}", release.describe());
    let rolled = started.elapsed();
    let new_pods = release.pods();
    assert_eq!(new_pods.len(), 2);
    assert!(new_pods.iter().all(|p| !old_pods.contains(&p.0)), "every pod replaced");
    // A new leader looks at every object once: wait for that look to be done (its metrics),
    // then for Glance's log to show it.
    eventually("a new pod leads", WAIT, || async {
        let holder = release.leader();
        new_pods.iter().any(|p| p.0 == holder).then_some(())
    })
    .await;
    let leader = release.wait_leader_looked_at(6).await;
    let list = ns.api().list(&Default::default()).await.expect("list");
    assert!(
        list.items.iter().all(common::cluster::is_ready),
        "every object still Ready"
    );
    let during = glance_requests_since(&images, before).await;
    eprintln!("{leader} leads and looked at the 6 objects");
    eprintln!(
        "helm upgrade rolled 2 pods in {rolled:?}; Glance member requests during it: {} ({} writes) for 6 objects",
        during.len(),
        writes(&during)
    );
    assert_eq!(writes(&during), 0, "no create, status change or delete: {during:?}");
    assert!(
        during.len() <= 2 * 6,
        "at most a look per object per new leader: {during:?}"
    );
}

#[tokio::test]
async fn metrics_are_served_from_the_pod_and_the_optional_templates_apply() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("pods-metrics", &env).await;
    // The Prometheus Operator's CRD, as a stub, so a ServiceMonitor can be applied.
    kubectl_ok(
        &[
            "apply",
            "--server-side",
            "-f",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/servicemonitor-crd.yaml"),
        ],
        None,
    );
    // On the node at 127.0.0.1: `kubectl port-forward` dials the pod's localhost.
    let release = Release::install(
        &ns.name,
        &[
            "metrics.serviceMonitor.enabled=true",
            "networkPolicy.enabled=true",
            "nodeSelector.kubernetes\\.io/hostname=iao-node-a",
        ],
    );
    let pods = release.pods();
    let (_, _, ip, _) = &pods[0];
    let text = release.metrics(ip).await;
    assert!(text.contains("controller_runtime_max_concurrent_reconciles"), "{text}");
    // Through the Service: its selector and target port, the API server and the kubelet. (No
    // kube-proxy here, and the API refuses loopback endpoints, so not through a cluster IP.)
    let local = free_port_on_both_nodes();
    let mut forward = std::process::Command::new("kubectl")
        .args([
            "port-forward",
            "-n",
            &ns.name,
            &format!("service/{DEPLOYMENT}-metrics"),
            &format!("{local}:{}", release.metrics_port),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("kubectl port-forward");
    let through_service = eventually("the metrics Service answers", WAIT, || async {
        let response = reqwest::Client::builder()
            .no_proxy()
            .build()
            .ok()?
            .get(format!("http://127.0.0.1:{local}/metrics"))
            .send()
            .await
            .ok()?;
        response.text().await.ok()
    })
    .await;
    let _ = forward.kill();
    let _ = forward.wait();
    assert!(
        through_service.contains("controller_runtime_reconcile_total")
            || through_service.contains("controller_runtime_max_concurrent_reconciles"),
        "{through_service}"
    );
    for kind in ["servicemonitor", "networkpolicy"] {
        let names = kubectl_ok(&["get", kind, "-n", &ns.name, "-o", "name"], None);
        assert!(!names.is_empty(), "{kind} applied");
    }
}

#[tokio::test]
async fn helm_uninstall_leaves_crds_and_memberships_and_a_reinstall_adopts_them() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("pods-reinstall", &env).await;
    let release = Release::install(&ns.name, &[]);
    let image = env.create_image("shared").await;
    let member = env.member1_project_id.clone();
    assert!(ns.apply(&manifest("kept", &image, &member, "owner", "")).success);
    ns.wait_ready("kept").await;

    let (ok, out) = (
        run("helm", &["uninstall", RELEASE, "-n", &ns.name, "--wait"], None).success,
        String::new(),
    );
    assert!(ok, "{out}");
    eventually("the pods are gone", WAIT, || async {
        release.try_pods().filter(|pods| pods.is_empty())
    })
    .await;
    assert!(
        kubectl(&["get", "crd", "imageaccesses.glance.viettelidc.com.vn"], None).success,
        "the CRD stays"
    );
    assert!(ns.get("kept").await.is_some(), "the objects stay");
    assert!(env.member(&image, &member).await.is_some(), "the memberships stay");

    let images = std::slice::from_ref(&image);
    let before = glance_requests(images).len();
    let (ok, out) = release.helm("install", &[]);
    assert!(ok, "reinstall: {out}");
    // The new leader looks at the object (its metrics say when), which Glance's log shows.
    release.wait_leader_looked_at(1).await;
    ns.wait_ready("kept").await;
    let during = glance_requests_since(images, before).await;
    assert_eq!(writes(&during), 0, "adopted as it was: {during:?}");
    kubectl_ok(&["delete", "ia", "kept", "-n", &ns.name, "--wait=false"], None);
    ns.wait_gone("kept").await;
    assert!(env.member(&image, &member).await.is_none());
}
