//! End to end, the consumer side: ImageAccessAccept objects on a real kube-apiserver against
//! the real Keystone + Glance, next to the owner's ImageAccess objects, with the operator's
//! production timings (resync 10 min, stalled re-check 5 min).
#![cfg(feature = "e2e")]

mod common;

use std::time::{Duration, Instant};

use common::RealOpenStack;
use common::cluster::{Operator, TestNamespace, WAIT, eventually, has_reason, is_ready, kubectl, kubectl_ok, manifest};
use image_access_operator::api::{ImageAccessAccept, Managed, MemberStatus};

/// An ImageAccessAccept as the member's team writes it (memberId left to the credentials).
fn accept_manifest(name: &str, image: &str, cloud: &str, status: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageAccessAccept\nmetadata:\n  name: {name}\nspec:\n  imageId: {image}\n  status: {status}\n  cloudCredentialsRef:\n    secretName: openstack-credentials\n    cloudName: {cloud}\n{extra_spec}"
    )
}

/// `manifest` placed in `namespace`, for one `kubectl apply` across namespaces.
fn in_namespace(manifest: &str, namespace: &str) -> String {
    manifest.replacen("metadata:\n", &format!("metadata:\n  namespace: {namespace}\n"), 1)
}

/// The longest wait before its next look at `name` that the operator logged for `controller`
/// ("waiting; looking again ... retry_in_ms=N", text format); None before the first.
fn longest_logged_wait(log: &str, controller: &str, name: &str) -> Option<Duration> {
    let (controller, name) = (format!("controller=\"{controller}\""), format!(" name={name} "));
    log.lines()
        .filter(|line| line.contains("waiting; looking again") && line.contains(&controller) && line.contains(&name))
        .filter_map(|line| {
            let digits = line
                .split("retry_in_ms=")
                .nth(1)?
                .split(|c: char| !c.is_ascii_digit())
                .next()?;
            digits.parse().ok().map(Duration::from_millis)
        })
        .max()
}

async fn member_status(env: &RealOpenStack, image: &str, member: &str) -> Option<String> {
    env.member(image, member)
        .await
        .and_then(|m| m["status"].as_str().map(str::to_string))
}

/// The owner's team and the member's team, each in its own namespace, one operator for both.
struct TwoTeams {
    env: RealOpenStack,
    owner: TestNamespace,
    member: TestNamespace,
    operator: Operator,
}

impl TwoTeams {
    async fn new(prefix: &str) -> TwoTeams {
        let env = RealOpenStack::from_env();
        let owner = TestNamespace::new(&format!("{prefix}-owner"), &env).await;
        let member = TestNamespace::new(&format!("{prefix}-member"), &env).await;
        let operator = Operator::start(&format!("{},{}", owner.name, member.name), &[]);
        TwoTeams {
            env,
            owner,
            member,
            operator,
        }
    }

    async fn accept_ready(&self, name: &str) -> ImageAccessAccept {
        self.member
            .wait_for::<ImageAccessAccept>(name, "Ready", WAIT, is_ready)
            .await
    }
}

#[tokio::test]
async fn admission_refuses_a_bad_accept_with_a_readable_message() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("accept-admission", &env).await;
    let image = "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";
    let cases = [
        (
            accept_manifest("bad-status", image, "member1", "approved", ""),
            "spec.status: Unsupported value: \"approved\"",
        ),
        (
            accept_manifest("bad-image", "golden", "member1", "accepted", ""),
            "imageId must be a Glance image ID",
        ),
        (
            accept_manifest("bad-policy", image, "member1", "accepted", "  deletionPolicy: Delete\n"),
            "spec.deletionPolicy: Unsupported value: \"Delete\"",
        ),
        (
            accept_manifest("slash", image, "member1", "accepted", "  memberId: a/b\n"),
            "memberId must not contain '/'",
        ),
        (
            accept_manifest("no-status", image, "member1", "accepted", "").replace("  status: accepted\n", ""),
            "spec.status: Required value",
        ),
    ];
    ns.assert_refused(&cases);
    let explain = kubectl_ok(&["explain", "imageaccessaccept.spec.memberId"], None);
    assert!(explain.contains("Leave it unset to use the project"), "{explain}");
}

#[tokio::test]
async fn both_sides_in_one_apply_converge_within_seconds_in_either_order() {
    let teams = TwoTeams::new("accept-both").await;
    let env = &teams.env;
    let member = env.member1_project_id.clone();
    let first_owner = env.create_image("shared").await;
    let first_accept = env.create_image("shared").await;
    let share = |name: &str, image: &str| in_namespace(&manifest(name, image, &member, "owner", ""), &teams.owner.name);
    let take = |name: &str, image: &str| {
        in_namespace(
            &accept_manifest(name, image, "member1", "accepted", ""),
            &teams.member.name,
        )
    };
    let manifests = [
        share("share-a", &first_owner),
        take("take-a", &first_owner),
        take("take-b", &first_accept),
        share("share-b", &first_accept),
    ]
    .join("---\n");
    let started = Instant::now();
    let out = kubectl(&["apply", "-f", "-"], Some(&manifests));
    assert!(out.success, "{}", out.stderr);
    for name in ["take-a", "take-b"] {
        let object = teams.accept_ready(name).await;
        let status = object.status.expect("status");
        assert_eq!(status.membership.member_status, Some(MemberStatus::Accepted));
        assert_eq!(status.member_id.as_deref(), Some(member.as_str()), "from the token");
        assert_eq!(status.image_owner.as_deref(), Some(env.owner_project_id.as_str()));
        assert!(status.image_name.is_some());
    }
    let took = started.elapsed();
    eprintln!("both sides applied together: accepted in {took:?}");
    for image in [&first_owner, &first_accept] {
        assert_eq!(member_status(env, image, &member).await.as_deref(), Some("accepted"));
        assert!(
            env.image_list("member1").await.contains(image),
            "accepted: in the member's list"
        );
    }
    let printed = kubectl_ok(&["get", "iaa", "-n", &teams.member.name], None);
    for column in ["IMAGE", "MEMBER", "STATUS", "MEMBER-STATUS", "READY", "AGE"] {
        assert!(printed.lines().next().unwrap_or_default().contains(column), "{printed}");
    }
    assert!(printed.contains(&member), "{printed}");
    let by_category = kubectl_ok(&["get", "openstack", "-n", &teams.member.name], None);
    assert!(by_category.contains("take-a"), "{by_category}");
}

/// The owner's create wakes the accept at once: after six looks its next one is 16 to 32 s
/// away (backoff 1 s doubling, jitter ×0.5–1), so only the wake makes it Ready within 10 s.
#[tokio::test]
async fn an_accept_waiting_for_the_share_is_woken_by_the_owners_create() {
    let teams = TwoTeams::new("accept-wake").await;
    let env = &teams.env;
    let member = env.member1_project_id.clone();
    let image = env.create_image("shared").await;
    assert!(
        teams
            .member
            .apply(&accept_manifest("take", &image, "member1", "accepted", ""))
            .success
    );
    let waiting = teams
        .member
        .wait_for::<ImageAccessAccept>("take", "WaitingForShare", WAIT, |o| {
            has_reason(o, "Reconciling", "True", Some("WaitingForShare"))
        })
        .await;
    let message = waiting
        .condition("Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains(&image) && message.contains(&member), "{message}");
    // Six looks: the next one is 16 to 32 s away.
    let sample = r#"controller_runtime_reconcile_total{controller="imageaccessaccept",result="requeue_after"}"#;
    eventually("six looks at the missing share", Duration::from_secs(90), || async {
        teams.operator.try_metric(sample).await.filter(|looks| *looks >= 6.0)
    })
    .await;
    // The next look is scheduled 16 s or more away (the operator logs the wait it chose): only
    // the wake can make the accept Ready within the 10 s below.
    let scheduled = eventually("the operator's next look at take 16 s or more away", WAIT, || async {
        longest_logged_wait(&teams.operator.log(), "imageaccessaccept", "take").filter(|wait| wait.as_secs() >= 16)
    })
    .await;
    eprintln!("next look at take scheduled {scheduled:?} away");
    assert!(
        teams
            .owner
            .apply(&manifest("share", &image, &member, "owner", ""))
            .success
    );
    let started = Instant::now();
    teams
        .member
        .wait_for::<ImageAccessAccept>(
            "take",
            "Ready within 10 s of the share",
            Duration::from_secs(10),
            is_ready,
        )
        .await;
    eprintln!("accepted {:?} after the share was applied", started.elapsed());
    assert_eq!(member_status(env, &image, &member).await.as_deref(), Some("accepted"));
}

#[tokio::test]
async fn reject_pending_and_back_with_the_image_list_following() {
    let teams = TwoTeams::new("accept-states").await;
    let env = &teams.env;
    let member = env.member1_project_id.clone();
    let image = env.create_image("shared").await;
    assert!(
        teams
            .owner
            .apply(&manifest("share", &image, &member, "owner", ""))
            .success
    );
    teams.owner.wait_ready("share").await;
    for status in ["accepted", "rejected", "pending", "accepted"] {
        assert!(
            teams
                .member
                .apply(&accept_manifest("take", &image, "member1", status, ""))
                .success
        );
        teams.accept_ready("take").await;
        assert_eq!(member_status(env, &image, &member).await.as_deref(), Some(status));
        let listed = env.image_list("member1").await.contains(&image);
        assert_eq!(
            listed,
            status == "accepted",
            "{status}: in the member's image list: {listed}"
        );
    }
    // Deleting (Reject, the default) rejects: the image leaves the member's list.
    kubectl_ok(
        &["delete", "iaa", "take", "-n", &teams.member.name, "--wait=false"],
        None,
    );
    teams.member.wait_gone_of::<ImageAccessAccept>("take").await;
    assert_eq!(member_status(env, &image, &member).await.as_deref(), Some("rejected"));
    assert!(!env.image_list("member1").await.contains(&image));
    // With Orphan the status stays as it was.
    let orphan = accept_manifest("keep", &image, "member1", "accepted", "  deletionPolicy: Orphan\n");
    assert!(teams.member.apply(&orphan).success);
    teams.accept_ready("keep").await;
    kubectl_ok(
        &["delete", "iaa", "keep", "-n", &teams.member.name, "--wait=false"],
        None,
    );
    teams.member.wait_gone_of::<ImageAccessAccept>("keep").await;
    assert_eq!(member_status(env, &image, &member).await.as_deref(), Some("accepted"));
    let _ = &teams.operator;
}

#[tokio::test]
async fn the_owners_credentials_on_an_accept_get_a_clear_refusal() {
    let teams = TwoTeams::new("accept-owner-creds").await;
    let env = &teams.env;
    let member = env.member1_project_id.clone();
    let image = env.create_image("shared").await;
    assert!(
        teams
            .owner
            .apply(&manifest("share", &image, &member, "owner", ""))
            .success
    );
    teams.owner.wait_ready("share").await;
    let wrong = accept_manifest("take", &image, "owner", "accepted", &format!("  memberId: {member}\n"));
    assert!(teams.member.apply(&wrong).success);
    let stalled = teams
        .member
        .wait_for::<ImageAccessAccept>("take", "Stalled NotTheMember", WAIT, |o| {
            has_reason(o, "Stalled", "True", Some("NotTheMember"))
        })
        .await;
    let message = stalled
        .condition("Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains(&env.owner_project_id), "{message}");
    assert!(message.contains("member project's credentials"), "{message}");
    let events = kubectl_ok(&["get", "events", "-n", &teams.member.name], None);
    assert!(events.contains("NotTheMember"), "{events}");
    assert_eq!(member_status(env, &image, &member).await.as_deref(), Some("pending"));
}

#[tokio::test]
async fn an_image_access_that_sets_the_status_and_a_later_accept_conflict() {
    let teams = TwoTeams::new("accept-conflict").await;
    let env = &teams.env;
    let member = env.member1_project_id.clone();
    let image = env.create_image("shared").await;
    let setter = manifest("share", &image, &member, "admin", "  status: rejected\n");
    assert!(teams.owner.apply(&setter).success);
    let setter_created = teams
        .owner
        .wait_ready("share")
        .await
        .metadata
        .creation_timestamp
        .expect("creationTimestamp")
        .0;
    // Creation times have a resolution of a second (then names decide): the accept is created
    // in a later second than the ImageAccess, which is checked below.
    eventually(
        "a second later than the ImageAccess's creation",
        Duration::from_secs(5),
        || async { (jiff::Timestamp::now().as_second() > setter_created.as_second()).then_some(()) },
    )
    .await;
    assert!(
        teams
            .member
            .apply(&accept_manifest("take", &image, "member1", "accepted", ""))
            .success
    );
    let accept_created = teams
        .member
        .get_of::<ImageAccessAccept>("take")
        .await
        .expect("take")
        .metadata
        .creation_timestamp
        .expect("creationTimestamp")
        .0;
    assert!(
        accept_created.as_second() > setter_created.as_second(),
        "the accept ({accept_created}) must be created in a later second than the ImageAccess ({setter_created})"
    );
    let stalled = teams
        .member
        .wait_for::<ImageAccessAccept>("take", "Stalled MemberStatusConflict", WAIT, |o| {
            has_reason(o, "Stalled", "True", Some("MemberStatusConflict"))
        })
        .await;
    let message = stalled
        .condition("Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(&format!("ImageAccess {}/share", teams.owner.name)),
        "{message}"
    );
    assert_eq!(member_status(env, &image, &member).await.as_deref(), Some("rejected"));
    // The ImageAccess stops setting the status: the accept takes over at once.
    assert!(
        teams
            .owner
            .apply(&manifest("share", &image, &member, "admin", ""))
            .success
    );
    teams.accept_ready("take").await;
    assert_eq!(member_status(env, &image, &member).await.as_deref(), Some("accepted"));
}

#[tokio::test]
async fn deleting_the_namespaces_leaves_nothing_inconsistent() {
    let teams = TwoTeams::new("accept-ns").await;
    let env = &teams.env;
    let member = env.member1_project_id.clone();
    let image = env.create_image("shared").await;
    assert!(
        teams
            .owner
            .apply(&manifest("share", &image, &member, "owner", ""))
            .success
    );
    assert!(
        teams
            .member
            .apply(&accept_manifest("take", &image, "member1", "accepted", ""))
            .success
    );
    teams.accept_ready("take").await;

    // The member's namespace goes: the accept rejects before its Secret may go.
    kubectl_ok(&["delete", "namespace", &teams.member.name, "--wait=false"], None);
    eventually("the member's namespace is gone", Duration::from_secs(120), || async {
        let out = kubectl(&["get", "namespace", &teams.member.name], None);
        (!out.success && out.stderr.contains("NotFound")).then_some(())
    })
    .await;
    assert_eq!(member_status(env, &image, &member).await.as_deref(), Some("rejected"));

    // The owner's namespace goes: the membership is removed.
    kubectl_ok(&["delete", "namespace", &teams.owner.name, "--wait=false"], None);
    eventually("the owner's namespace is gone", Duration::from_secs(120), || async {
        let out = kubectl(&["get", "namespace", &teams.owner.name], None);
        (!out.success && out.stderr.contains("NotFound")).then_some(())
    })
    .await;
    assert!(
        env.member(&image, &member).await.is_none(),
        "{}",
        teams.operator.log_for_message()
    );
}
