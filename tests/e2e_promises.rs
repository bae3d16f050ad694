//! The operator's promises under ordinary asynchrony, end to end on the real kube-apiserver (with
//! kube-controller-manager, so namespace deletion is real) and the real Keystone + Glance, with
//! the production defaults (resync 10 min, stalled re-check 5 min): only events and backoff can
//! make these pass in time.
#![cfg(feature = "e2e")]

mod common;

use std::time::{Duration, Instant};

use common::RealOpenStack;
use common::cluster::{
    Operator, SECRET, TestNamespace, WAIT, condition, eventually, kubectl, kubectl_ok, kubectl_try, manifest,
};

/// The operator's hold on Secrets its objects need.
const HOLD: &str = "glance.viettelidc.com.vn/credentials-in-use";

fn secret_finalizers(namespace: &str) -> Option<String> {
    kubectl_try(&[
        "get",
        "secret",
        SECRET,
        "-n",
        namespace,
        "-o",
        "jsonpath={.metadata.finalizers}",
    ])
}

/// Issue 7, A2: deleting a namespace removes every membership, and the namespace goes.
#[tokio::test]
async fn deleting_a_namespace_removes_every_membership_and_the_namespace_finishes() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("ns-delete", &env).await;
    let operator = Operator::start(&ns.name, &[]);
    let images = [env.create_image("shared").await, env.create_image("shared").await];
    let members = [env.member1_project_id.clone(), env.member2_project_id.clone()];
    let mut manifests = String::new();
    for (i, image) in images.iter().enumerate() {
        for (j, member) in members.iter().enumerate() {
            manifests.push_str(&manifest(&format!("share-{i}-{j}"), image, member, "owner", ""));
            manifests.push_str("---\n");
        }
    }
    assert!(ns.apply(&manifests).success);
    for i in 0..2 {
        for j in 0..2 {
            ns.wait_ready(&format!("share-{i}-{j}")).await;
        }
    }
    let finalizers = secret_finalizers(&ns.name).expect("the credentials Secret can be read");
    assert!(finalizers.contains(HOLD), "the Secret is held: {finalizers}");

    let started = Instant::now();
    kubectl_ok(&["delete", "namespace", &ns.name, "--wait=false"], None);
    eventually("the namespace is gone", Duration::from_secs(120), || async {
        let out = kubectl(&["get", "namespace", &ns.name], None);
        (!out.success && out.stderr.contains("NotFound")).then_some(())
    })
    .await;
    let took = started.elapsed();
    let mut left = Vec::new();
    for image in &images {
        for member in &members {
            if env.member(image, member).await.is_some() {
                left.push(format!("{image}/{member}"));
            }
        }
    }
    eprintln!("namespace deleted in {took:?}; memberships left: {}", left.len());
    assert!(
        left.is_empty(),
        "memberships left after the namespace went: {left:?}\n{}",
        operator.log_for_message()
    );
}

/// Issue 7, A1 as a user meets it: delete the Secret, then the object. The Secret is held
/// until the object's cleanup has used it.
#[tokio::test]
async fn a_secret_deleted_before_its_objects_is_kept_until_their_cleanup_is_done() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("secret-first", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let image = env.create_image("shared").await;
    let member = env.member1_project_id.clone();
    assert!(ns.apply(&manifest("share", &image, &member, "owner", "")).success);
    ns.wait_ready("share").await;

    kubectl_ok(&["delete", "secret", SECRET, "-n", &ns.name, "--wait=false"], None);
    let terminating = kubectl_ok(
        &[
            "get",
            "secret",
            SECRET,
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ],
        None,
    );
    assert!(!terminating.is_empty(), "the Secret waits, held by the operator");
    kubectl_ok(&["delete", "ia", "share", "-n", &ns.name, "--wait=false"], None);
    ns.wait_gone("share").await;
    assert!(
        env.member(&image, &member).await.is_none(),
        "the membership went with the object"
    );
    eventually("the Secret is released and gone", WAIT, || async {
        let out = kubectl(&["get", "secret", SECRET, "-n", &ns.name], None);
        (!out.success && out.stderr.contains("NotFound")).then_some(())
    })
    .await;
}

/// Issue 7, A1: a Secret that is really gone keeps the object, Stalled, with the way out.
#[tokio::test]
async fn a_secret_that_is_really_gone_blocks_deletion_and_says_how_to_let_go() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("secret-gone", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let image = env.create_image("shared").await;
    let member = env.member1_project_id.clone();
    assert!(ns.apply(&manifest("share", &image, &member, "owner", "")).success);
    ns.wait_ready("share").await;
    // Someone deletes the Secret and removes the operator's hold by hand (a hold removed from
    // a Secret still in use is put back, so the deletion comes first).
    kubectl_ok(&["delete", "secret", SECRET, "-n", &ns.name, "--wait=false"], None);
    kubectl_ok(
        &[
            "patch",
            "secret",
            SECRET,
            "-n",
            &ns.name,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
        None,
    );
    eventually("the Secret is gone", WAIT, || async {
        let out = kubectl(&["get", "secret", SECRET, "-n", &ns.name], None);
        (!out.success && out.stderr.contains("NotFound")).then_some(())
    })
    .await;
    kubectl_ok(&["delete", "ia", "share", "-n", &ns.name, "--wait=false"], None);
    let object = ns
        .wait_reason("share", "Stalled", Some("CredentialsSecretNotFound"))
        .await;
    let (_, _, message) = condition(&object, "Stalled").expect("Stalled");
    assert!(message.contains("deletionPolicy to Orphan"), "{message}");
    assert!(
        object
            .metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f.contains("cleanup")),
        "the finalizer holds"
    );
    assert!(
        env.member(&image, &member).await.is_some(),
        "nothing was removed, nothing forgotten"
    );
    ns.wait_events(Some("Warning"), &["CredentialsSecretNotFound"]).await;

    // The way out the message names.
    kubectl_ok(
        &[
            "patch",
            "ia",
            "share",
            "-n",
            &ns.name,
            "--type=merge",
            "-p",
            r#"{"spec":{"deletionPolicy":"Orphan"}}"#,
        ],
        None,
    );
    ns.wait_gone("share").await;
    assert!(env.member(&image, &member).await.is_some(), "left in place, as asked");
}

/// Issue 7, A3: credentials that may not remove the member keep the object and say so.
#[tokio::test]
async fn member_credentials_cannot_remove_the_membership_and_the_object_says_so() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("forbidden", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let image = env.create_image("shared").await;
    let member = env.member1_project_id.clone();
    assert!(ns.apply(&manifest("share", &image, &member, "owner", "")).success);
    ns.wait_ready("share").await;
    // The object now names the member project's credentials.
    assert!(ns.apply(&manifest("share", &image, &member, "member1", "")).success);
    ns.wait_ready("share").await;
    kubectl_ok(&["delete", "ia", "share", "-n", &ns.name, "--wait=false"], None);
    let object = ns.wait_reason("share", "Stalled", Some("MemberRemovalForbidden")).await;
    let (_, _, message) = condition(&object, "Stalled").expect("Stalled");
    assert!(
        message.contains(&env.owner_project_id),
        "names the image's owner: {message}"
    );
    assert!(message.contains("deletionPolicy to Orphan"), "{message}");
    assert!(
        env.member(&image, &member).await.is_some(),
        "the member keeps access, and the object says so"
    );

    // Owner credentials again: the deletion completes.
    assert!(ns.apply(&manifest("share", &image, &member, "owner", "")).success);
    ns.wait_gone("share").await;
    assert!(env.member(&image, &member).await.is_none());
}

/// Issue 7, A5: one manager per membership, across namespaces; the acceptance survives the
/// handover.
#[tokio::test]
async fn two_objects_for_one_membership_one_manages_the_other_waits_then_takes_over() {
    let env = RealOpenStack::from_env();
    let first = TestNamespace::new("owner-a", &env).await;
    let second = TestNamespace::new("owner-b", &env).await;
    let both = format!("{},{}", first.name, second.name);
    let operator = Operator::spawn(&["--watch-namespaces", &both], None);
    let image = env.create_image("shared").await;
    let member = env.member1_project_id.clone();
    assert!(first.apply(&manifest("share", &image, &member, "owner", "")).success);
    first.wait_ready("share").await;
    // The consumer accepts.
    let path = format!("/v2/images/{image}/members/{member}");
    let accept = serde_json::json!({"status": "accepted"});
    assert_eq!(env.raw("member1", reqwest::Method::PUT, &path, Some(accept)).await, 200);

    // Glance writes the operator counted (`operator.metrics()` fails the test when /metrics
    // does not answer, so a missing page never reads as "no write").
    let glance_writes = |text: &str| {
        assert!(
            text.contains("# TYPE image_access_operator_openstack_requests "),
            "not the operator's /metrics: {text}"
        );
        ["create_member", "set_member_status", "delete_member"]
            .iter()
            .map(|op| {
                text.lines()
                    .filter(|l| {
                        l.starts_with("image_access_operator_openstack_requests_total")
                            && l.contains(&format!("operation=\"{op}\""))
                    })
                    .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                    .sum::<f64>()
            })
            .sum::<f64>()
    };
    let before = glance_writes(&operator.metrics().await);
    assert!(
        before >= 1.0,
        "the first object's create is counted (evidence that the count is read right): {before}"
    );
    assert!(
        second
            .apply(&manifest("share", &image, &member, "admin", "  status: pending\n"))
            .success
    );
    let waiting = second
        .wait_reason("share", "Stalled", Some("MembershipManagedElsewhere"))
        .await;
    let (_, _, message) = condition(&waiting, "Stalled").expect("Stalled");
    assert!(
        message.contains(&format!("{}/share", first.name)),
        "names the manager: {message}"
    );
    assert_eq!(
        glance_writes(&operator.metrics().await),
        before,
        "the second touched nothing"
    );
    assert_eq!(env.member(&image, &member).await.expect("member")["status"], "accepted");

    // The second stops asking for a status; then the first goes (deletionPolicy Delete): the
    // second takes over, adopting the membership as the consumer left it.
    assert!(second.apply(&manifest("share", &image, &member, "admin", "")).success);
    second
        .wait_reason("share", "Stalled", Some("MembershipManagedElsewhere"))
        .await;
    let started = Instant::now();
    kubectl_ok(&["delete", "ia", "share", "-n", &first.name, "--wait=false"], None);
    first.wait_gone("share").await;
    let object = second.wait_ready("share").await;
    eprintln!("took over in {:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "at once, not at a re-check"
    );
    assert_eq!(
        object.status.and_then(|s| s.applied).map(|a| a.image_id),
        Some(image.clone())
    );
    let member_now = env.member(&image, &member).await.expect("never removed");
    assert_eq!(
        member_now["status"], "accepted",
        "the consumer's acceptance survived the handover"
    );
    first.wait_events(None, &["MemberHandedOver"]).await;
}

/// Issue 7, B8: a fixed Secret is picked up within seconds, not at the stalled re-check.
#[tokio::test]
async fn a_cloud_added_to_the_secret_is_used_within_seconds() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("cloud-added", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let full = env.clouds_yaml();
    // Only the member clouds at first: the object names "owner".
    let without_owner: String = {
        let mut keep = true;
        full.lines()
            .filter(|line| {
                if line.starts_with("  ") && !line.starts_with("    ") {
                    keep = !line.trim_start().starts_with("owner:");
                }
                keep
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    ns.put_secret(&without_owner).await;
    let image = env.create_image("shared").await;
    assert!(
        ns.apply(&manifest("share", &image, &env.member1_project_id, "owner", ""))
            .success
    );
    let object = ns.wait_reason("share", "Stalled", Some("CloudNotFound")).await;
    let (_, _, message) = condition(&object, "Stalled").expect("Stalled");
    assert!(message.contains("member1"), "names the clouds it has: {message}");
    let started = Instant::now();
    ns.put_secret(&full).await;
    ns.wait_ready_within("share", Duration::from_secs(20)).await;
    eprintln!("fixed Secret used after {:?}", started.elapsed());
}

/// Issue 23: `spec.resyncPeriod` per object. At the production default (10 min) a member removed
/// by hand would come back only minutes later; an object asking for 1m has it back within a
/// minute (and the jitter), while the operator's own default stays 10 min.
#[tokio::test]
async fn a_resync_period_of_a_minute_repairs_a_member_removed_by_hand() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("resync-1m", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let image = env.create_image("shared").await;
    let member = env.member1_project_id.clone();
    assert!(
        ns.apply(&manifest(
            "every-minute",
            &image,
            &member,
            "owner",
            "  resyncPeriod: 1m\n"
        ))
        .success
    );
    ns.wait_ready("every-minute").await;

    let path = format!("/v2/images/{image}/members/{member}");
    assert_eq!(env.raw("owner", reqwest::Method::DELETE, &path, None).await, 204);
    let removed = Instant::now();
    // A minute, its jitter (±10 %), and the look itself.
    eventually("the member made again", Duration::from_secs(90), || async {
        env.try_member(&image, &member).await.ok().flatten()
    })
    .await;
    eprintln!("repaired {:?} after the removal", removed.elapsed());
    ns.wait_events(None, &["MemberRecreated"]).await;
}
