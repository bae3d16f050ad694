//! The ImageAccessAccept kind against the in-process Kubernetes API and OpenStack fakes: the
//! member's credentials set the status; not shared yet waits and is woken by the owner's
//! create; the image owner's credentials get a clear refusal; drift is set back; deletion
//! rejects (or orphans); one setter per member status.

use kube::runtime::reflector::ObjectRef;

use super::tests::{Harness, IMAGE, event_reasons};
use super::*;
use crate::api::{AcceptDeletionPolicy, ImageAccessAcceptStatus, MemberStatus};
use crate::api::{ImageAccess, ImageAccessAccept};
use crate::testing::fake_openstack::{MEMBER_PROJECT, OTHER_PROJECT, OWNER_PROJECT};
use crate::testing::fixtures::NAMESPACE;

fn accept(status: MemberStatus) -> ImageAccessAccept {
    ImageAccessAccept::test("accept", IMAGE, "member", status)
}

/// The owner shares IMAGE with the member project, as an ImageAccess.
async fn shared(h: &mut Harness) {
    h.apply(&ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner"));
    h.reconcile("share").await.expect("shared");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
}

/// The owner has shared IMAGE and the member's "accept" has accepted it.
async fn accepted(h: &mut Harness) {
    shared(h).await;
    h.apply(&accept(MemberStatus::Accepted));
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("accepted");
}

fn accept_status(h: &Harness) -> ImageAccessAcceptStatus {
    h.kube
        .accept(NAMESPACE, "accept")
        .and_then(|a| a.status)
        .unwrap_or_default()
}

fn ready(status: &ImageAccessAcceptStatus) -> (String, String) {
    let ready = status
        .membership
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    (ready.status.clone(), ready.reason.clone())
}

#[tokio::test]
async fn the_member_accepts_with_its_own_credentials_and_sees_the_image() {
    let mut h = Harness::new().await;
    shared(&mut h).await;
    h.calls();
    h.apply(&accept(MemberStatus::Accepted));
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("accepted");
    let member = h.fake.member(IMAGE, MEMBER_PROJECT).expect("member");
    assert_eq!(member.status, MemberStatus::Accepted);
    let status = accept_status(&h);
    assert_eq!(ready(&status), ("True".into(), "MemberReady".into()));
    assert_eq!(status.membership.member_status, Some(MemberStatus::Accepted));
    let applied = status.membership.applied.expect("applied");
    assert_eq!(
        applied.member_id, MEMBER_PROJECT,
        "memberId defaults to the token's project"
    );
    assert_eq!(status.image_owner.as_deref(), Some(OWNER_PROJECT));
    assert!(status.image_name.is_some());
    let object = h.kube.accept(NAMESPACE, "accept").expect("object");
    assert!(object.has_finalizer(), "the finalizer is on before the status is set");
    assert_eq!(object.claim(), Some(applied));
    assert_eq!(event_reasons(&h.calls()), vec!["StatusSet"]);

    // Steady: a resync reads the member and writes nothing.
    h.later();
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("steady");
    let writes: Vec<_> = h.calls().into_iter().filter(|c| c.method != "GET").collect();
    assert!(writes.is_empty(), "no write at a steady resync: {writes:?}");
}

#[tokio::test]
async fn not_shared_yet_waits_and_the_owners_create_wakes_it_at_once() {
    let mut h = Harness::new().await;
    let mut requeued = h.ctx().accept.requeue.register(None);
    h.apply(&accept(MemberStatus::Accepted));
    let waiting = h.reconcile_kind::<ImageAccessAccept>("accept").await;
    assert!(matches!(waiting, Err(Error::Waiting { .. })), "{waiting:?}");
    let status = accept_status(&h);
    assert_eq!(ready(&status), ("False".into(), "WaitingForShare".into()));
    let reconciling = status
        .membership
        .conditions
        .iter()
        .find(|c| c.type_ == "Reconciling")
        .expect("Reconciling");
    assert_eq!(reconciling.status, "True");
    assert!(reconciling.message.contains(IMAGE) && reconciling.message.contains(MEMBER_PROJECT));
    assert_eq!(
        event_reasons(&h.calls()),
        vec!["WaitingForShare"],
        "a Normal event, not a warning"
    );
    while requeued.try_recv().is_ok() {}
    let object = h.kube.accept(NAMESPACE, "accept").expect("object");
    let uid = object.metadata.uid.clone().expect("uid");
    let fingerprint = crate::runtime::tracker::Fingerprint::of(&object.metadata, crate::api::FINALIZER);
    assert!(
        h.ctx()
            .tracker
            .pending(&uid, fingerprint, h.ctx().clock.now())
            .is_some(),
        "waiting out its backoff"
    );

    // The owner shares it: the accept is asked for at once, its backoff forgotten.
    shared(&mut h).await;
    let mut woken = Vec::new();
    while let Ok(reference) = requeued.try_recv() {
        woken.push(reference);
    }
    assert!(
        woken.contains(&ObjectRef::new("accept").within(NAMESPACE)),
        "the owner's create wakes the accept waiting for it: {woken:?}"
    );
    assert!(
        h.ctx()
            .tracker
            .pending(&uid, fingerprint, h.ctx().clock.now())
            .is_none()
    );
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("accepted");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Accepted
    );
    assert_eq!(ready(&accept_status(&h)).0, "True");
}

#[tokio::test]
async fn waiting_backs_off_up_to_the_stalled_recheck_period() {
    let mut h = Harness::new().await;
    h.apply(&accept(MemberStatus::Accepted));
    let mut last = Duration::ZERO;
    for _ in 0..15 {
        h.later();
        let _ = h.reconcile_kind::<ImageAccessAccept>("accept").await;
        let object = h.kube.accept(NAMESPACE, "accept").expect("object");
        let uid = object.metadata.uid.clone().expect("uid");
        let fingerprint = crate::runtime::tracker::Fingerprint::of(&object.metadata, crate::api::FINALIZER);
        last = h
            .ctx()
            .tracker
            .pending(&uid, fingerprint, h.ctx().clock.now())
            .unwrap_or_default();
    }
    let recheck = h.ctx().settings.stalled_recheck;
    assert!(last <= recheck && last >= recheck / 2, "{last:?}");
}

#[tokio::test]
async fn the_owners_credentials_get_a_refusal_that_says_whose_are_needed() {
    let mut h = Harness::new().await;
    shared(&mut h).await;
    let by_owner = ImageAccessAccept::test("accept", IMAGE, "owner", MemberStatus::Accepted).for_member(MEMBER_PROJECT);
    h.apply(&by_owner);
    h.reconcile_kind::<ImageAccessAccept>("accept")
        .await
        .expect("stalled, not an error");
    let status = accept_status(&h);
    assert_eq!(ready(&status), ("False".into(), "NotTheMember".into()));
    let message = &status.membership.conditions[0].message;
    assert!(
        message.contains(OWNER_PROJECT),
        "names whose credentials they are: {message}"
    );
    assert!(message.contains("member project's credentials"), "{message}");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Pending
    );
}

#[tokio::test]
async fn a_status_changed_by_hand_is_set_back_at_the_resync() {
    let mut h = Harness::new().await;
    accepted(&mut h).await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Rejected);
    h.calls();
    h.later();
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("set back");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Accepted
    );
    assert_eq!(event_reasons(&h.calls()), vec!["StatusSet"]);
}

#[tokio::test]
async fn deleting_rejects_and_orphan_leaves_the_status() {
    let mut h = Harness::new().await;
    accepted(&mut h).await;
    h.kube.delete_accept(NAMESPACE, "accept");
    h.sync();
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("rejected");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Rejected
    );
    assert!(
        h.kube.accept(NAMESPACE, "accept").is_none(),
        "finalizer removed, object gone"
    );

    h.apply(&accept(MemberStatus::Accepted).with_policy(AcceptDeletionPolicy::Orphan));
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("accepted");
    h.kube.delete_accept(NAMESPACE, "accept");
    h.sync();
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("orphaned");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Accepted
    );
    assert!(h.kube.accept(NAMESPACE, "accept").is_none());
}

#[tokio::test]
async fn deleting_when_the_membership_is_gone_finishes() {
    let mut h = Harness::new().await;
    accepted(&mut h).await;
    h.fake.remove_member(IMAGE, MEMBER_PROJECT);
    h.kube.delete_accept(NAMESPACE, "accept");
    h.sync();
    h.reconcile_kind::<ImageAccessAccept>("accept")
        .await
        .expect("nothing to reject");
    assert!(h.kube.accept(NAMESPACE, "accept").is_none());
}

#[tokio::test]
async fn a_deletion_that_glance_refuses_keeps_the_finalizer_and_says_how_to_let_go() {
    let mut h = Harness::new().await;
    accepted(&mut h).await;
    // The Secret now holds the owner's credentials: they may not reject.
    let mut object = h.kube.accept(NAMESPACE, "accept").expect("object");
    object.spec.cloud_credentials_ref.cloud_name = "owner".into();
    object.spec.member_id = Some(MEMBER_PROJECT.into());
    h.apply(&object);
    h.kube.delete_accept(NAMESPACE, "accept");
    h.sync();
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("stalled");
    let object = h.kube.accept(NAMESPACE, "accept").expect("still there");
    assert!(object.has_finalizer());
    let ready = object.condition("Ready").expect("Ready");
    assert_eq!(ready.reason, "NotTheMember");
    assert!(ready.message.contains("deletionPolicy to Orphan"), "{}", ready.message);
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Accepted
    );
}

#[tokio::test]
async fn an_accept_and_an_image_access_that_sets_the_status_the_later_stalls_and_touches_nothing() {
    let mut h = Harness::new().await;
    // The ImageAccess came first and sets the status itself (with the member's credentials).
    let setter = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "member").with_member_status(MemberStatus::Pending);
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Pending);
    h.apply(&setter);
    h.apply(&accept(MemberStatus::Accepted));
    h.calls();
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("stalled");
    let status = accept_status(&h);
    assert_eq!(ready(&status), ("False".into(), "MemberStatusConflict".into()));
    assert!(
        status.membership.conditions[0]
            .message
            .contains("ImageAccess default/share")
    );
    let claims = h
        .calls()
        .into_iter()
        .filter(|c| c.method == "PATCH" && c.path.ends_with("/imageaccessaccepts/accept"))
        .count();
    assert_eq!(claims, 0, "no finalizer or claim written");
    assert_eq!(h.fake.requests("PUT member"), 0, "Glance untouched");
    assert!(!h.kube.accept(NAMESPACE, "accept").expect("object").has_finalizer());

    // The ImageAccess goes: the accept is woken and takes over.
    let mut requeued = h.ctx().accept.requeue.register(None);
    h.kube.delete(NAMESPACE, "share");
    h.sync();
    assert!(requeued.try_recv().is_ok(), "woken when the setter went");
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("accepted");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Accepted
    );
}

#[tokio::test]
async fn an_image_access_that_sets_the_status_after_an_accept_stalls_naming_it() {
    let mut h = Harness::new().await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Pending);
    h.apply(&accept(MemberStatus::Accepted));
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("accepted");
    let later = ImageAccess::test("setter", IMAGE, MEMBER_PROJECT, "admin").with_member_status(MemberStatus::Rejected);
    h.apply(&later);
    let status_writes = h.fake.requests("PUT member");
    h.reconcile("setter").await.expect("stalled");
    assert_eq!(
        h.fake.requests("PUT member"),
        status_writes,
        "the later one leaves the status alone"
    );
    let object = h.kube.object(NAMESPACE, "setter").expect("object");
    let ready = object.condition("Ready").expect("Ready");
    assert_eq!(ready.reason, "MemberStatusConflict");
    assert!(
        ready.message.contains("ImageAccessAccept default/accept"),
        "{}",
        ready.message
    );
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Accepted
    );
}

#[tokio::test]
async fn two_accepts_for_one_membership_the_later_stalls() {
    let mut h = Harness::new().await;
    shared(&mut h).await;
    h.apply(&accept(MemberStatus::Accepted));
    h.apply(&ImageAccessAccept::test("second", IMAGE, "member", MemberStatus::Rejected).for_member(MEMBER_PROJECT));
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("accepted");
    h.reconcile_kind::<ImageAccessAccept>("second").await.expect("stalled");
    let second = h.kube.accept(NAMESPACE, "second").expect("object");
    let ready = second.condition("Ready").expect("Ready");
    assert_eq!(ready.reason, "MemberStatusConflict");
    assert!(
        ready.message.contains("ImageAccessAccept default/accept"),
        "{}",
        ready.message
    );
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Accepted
    );
}

#[tokio::test]
async fn metrics_carry_the_controller_name() {
    let mut h = Harness::new().await;
    accepted(&mut h).await;
    let text = h.ctx().metrics.encode();
    assert!(text.contains(r#"controller="imageaccessaccept""#), "{text}");
    assert!(text.contains(r#"controller="imageaccess""#));
}

/// Review finding: the ImageAccess that loses the status conflict still shares the image (the
/// membership is its to manage), so an accept waiting for the share gets it.
#[tokio::test]
async fn an_image_access_in_conflict_still_shares_so_the_waiting_accept_proceeds() {
    let mut h = Harness::new().await;
    h.apply(&accept(MemberStatus::Accepted).for_member(MEMBER_PROJECT));
    let waiting = h.reconcile_kind::<ImageAccessAccept>("accept").await;
    assert!(matches!(waiting, Err(Error::Waiting { .. })), "{waiting:?}");
    let later = ImageAccess::test("setter", IMAGE, MEMBER_PROJECT, "admin").with_member_status(MemberStatus::Rejected);
    h.apply(&later);
    h.reconcile("setter").await.expect("stalled on the status only");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some(), "shared");
    let object = h.kube.object(NAMESPACE, "setter").expect("object");
    assert_eq!(object.condition("Ready").expect("Ready").reason, "MemberStatusConflict");
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("accepted");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Accepted
    );
}

#[tokio::test]
async fn objects_that_ask_for_the_same_status_do_not_conflict() {
    let mut h = Harness::new().await;
    shared(&mut h).await;
    h.apply(&accept(MemberStatus::Accepted));
    h.apply(&ImageAccessAccept::test("second", IMAGE, "member", MemberStatus::Accepted).for_member(MEMBER_PROJECT));
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("accepted");
    h.reconcile_kind::<ImageAccessAccept>("second")
        .await
        .expect("accepted too");
    let second = h.kube.accept(NAMESPACE, "second").expect("object");
    assert_eq!(second.condition("Ready").expect("Ready").status, "True");
}

/// Review finding: credentials that cannot see the membership must not take "not found" for
/// "gone" and drop the finalizer with the image still accepted.
#[tokio::test]
async fn credentials_that_cannot_see_the_membership_do_not_pass_it_for_gone() {
    let mut h = Harness::new().await;
    accepted(&mut h).await;
    let mut object = h.kube.accept(NAMESPACE, "accept").expect("object");
    object.spec.cloud_credentials_ref.cloud_name = "other".into();
    object.spec.member_id = Some(MEMBER_PROJECT.into());
    h.apply(&object);
    h.kube.delete_accept(NAMESPACE, "accept");
    h.sync();
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("stalled");
    let object = h.kube.accept(NAMESPACE, "accept").expect("still there");
    assert!(
        object.has_finalizer(),
        "not dropped on a 404 the credentials cannot tell from gone"
    );
    let ready = object.condition("Ready").expect("Ready");
    assert_eq!(ready.reason, "NotTheMember");
    assert!(ready.message.contains(OTHER_PROJECT), "{}", ready.message);
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Accepted
    );
}

/// Review finding: the owner's credentials with memberId unset resolve the member to the
/// owner's own project; that is said, not taken for "not shared yet".
#[tokio::test]
async fn the_owners_credentials_without_a_member_id_are_named_not_waited_on() {
    let mut h = Harness::new().await;
    shared(&mut h).await;
    h.apply(&ImageAccessAccept::test(
        "accept",
        IMAGE,
        "owner",
        MemberStatus::Accepted,
    ));
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("stalled");
    let status = accept_status(&h);
    assert_eq!(ready(&status), ("False".into(), "NotTheMember".into()));
    assert!(status.membership.conditions[0].message.contains("owns image"));
}

#[tokio::test]
async fn another_projects_credentials_are_named_not_waited_on() {
    let mut h = Harness::new().await;
    shared(&mut h).await;
    h.apply(&ImageAccessAccept::test("accept", IMAGE, "other", MemberStatus::Accepted).for_member(MEMBER_PROJECT));
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("stalled");
    let status = accept_status(&h);
    assert_eq!(ready(&status), ("False".into(), "NotTheMember".into()));
    assert!(status.membership.conditions[0].message.contains(OTHER_PROJECT));
}

/// An accepted "accept", a second accept of the same membership ("renamed", Ready as well),
/// then "accept" deleted (the watch has shown it).
async fn renamed_then_deleted(h: &mut Harness) {
    accepted(h).await;
    h.apply(&ImageAccessAccept::test("renamed", IMAGE, "member", MemberStatus::Accepted).for_member(MEMBER_PROJECT));
    h.reconcile_kind::<ImageAccessAccept>("renamed")
        .await
        .expect("ready too: same status");
    h.kube.delete_accept(NAMESPACE, "accept");
    h.sync();
}

/// Review finding: an accept being deleted while another takes over (a rename) leaves the
/// status to it instead of rejecting.
#[tokio::test]
async fn a_deleted_accept_leaves_the_status_to_the_one_that_takes_over() {
    let mut h = Harness::new().await;
    renamed_then_deleted(&mut h).await;
    h.calls();
    h.reconcile_kind::<ImageAccessAccept>("accept")
        .await
        .expect("handed over");
    assert!(h.kube.accept(NAMESPACE, "accept").is_none());
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Accepted
    );
    assert_eq!(event_reasons(&h.calls()), vec!["MemberStatusHandedOver"]);
}

/// Review finding: an object that never managed to set the status (wrong credentials) is no
/// successor: the one deleted rejects as asked.
#[tokio::test]
async fn a_setter_that_could_not_set_is_no_successor() {
    let mut h = Harness::new().await;
    accepted(&mut h).await;
    h.apply(&ImageAccessAccept::test("broken", IMAGE, "other", MemberStatus::Accepted).for_member(MEMBER_PROJECT));
    h.reconcile_kind::<ImageAccessAccept>("broken").await.expect("stalled");
    h.kube.delete_accept(NAMESPACE, "accept");
    h.sync();
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("rejected");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Rejected
    );
}

/// Review finding: a refused status change changed nothing, so deleting the object does not
/// block on it (and the claim is kept meanwhile: claiming and releasing at every look would
/// wake the other objects of the membership each time).
#[tokio::test]
async fn a_refused_accept_deletes_without_blocking() {
    let mut h = Harness::new().await;
    shared(&mut h).await;
    let by_owner = ImageAccessAccept::test("accept", IMAGE, "owner", MemberStatus::Accepted).for_member(MEMBER_PROJECT);
    h.apply(&by_owner);
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("stalled");
    h.later();
    let patches = |h: &Harness| {
        h.calls()
            .into_iter()
            .filter(|c| c.method == "PATCH" && !c.path.ends_with("/status"))
            .count()
    };
    // The first re-check asks nothing of Glance and may say so in the status once.
    h.reconcile_kind::<ImageAccessAccept>("accept")
        .await
        .expect("stalled again");
    h.later();
    patches(&h);
    h.reconcile_kind::<ImageAccessAccept>("accept")
        .await
        .expect("stalled again");
    assert_eq!(patches(&h), 0, "no claim churn at a re-check");
    h.kube.delete_accept(NAMESPACE, "accept");
    h.sync();
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("deleted");
    assert!(h.kube.accept(NAMESPACE, "accept").is_none());
    assert!(
        event_reasons(&h.calls()).is_empty(),
        "it held nothing, so nothing to say"
    );
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Pending
    );
}

/// Review finding: a successor the operator may not read again is neither trusted nor undone
/// behind it: the deletion waits, Stalled, naming the right to grant.
#[tokio::test]
async fn a_successor_that_may_not_be_read_blocks_the_deletion_with_the_right_to_grant() {
    let mut h = Harness::new().await;
    renamed_then_deleted(&mut h).await;
    h.kube.fail_next("GET", "/imageaccessaccepts/renamed", 403);
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("stalled");
    let status = accept_status(&h);
    assert_eq!(ready(&status), ("False".into(), "KubernetesReadForbidden".into()));
    assert!(
        status.membership.conditions[0]
            .message
            .contains("grant its service account get")
    );
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Accepted,
        "not rejected on a guess"
    );
    assert!(h.kube.accept(NAMESPACE, "accept").is_some(), "the finalizer stays");
}

/// Review finding: a crash after Glance took the member's change but before the status said so,
/// then a switch to credentials that are not the member's: the status may have been set, so
/// the deletion waits for credentials that can undo it instead of leaving the image accepted.
#[tokio::test]
async fn a_status_set_before_a_crash_is_not_left_behind_by_other_credentials() {
    let mut h = Harness::new().await;
    shared(&mut h).await;
    let by_member = accept(MemberStatus::Accepted).for_member(MEMBER_PROJECT);
    h.apply(&by_member);
    h.kube.fail_next("PATCH", "/imageaccessaccepts/accept/status", 500);
    assert!(
        h.reconcile_kind::<ImageAccessAccept>("accept").await.is_err(),
        "the status write failed"
    );
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Accepted
    );
    let mut by_owner = by_member.clone();
    by_owner.spec.cloud_credentials_ref.cloud_name = "owner".into();
    h.apply(&by_owner);
    h.kube.delete_accept(NAMESPACE, "accept");
    h.sync();
    let _ = h.reconcile_kind::<ImageAccessAccept>("accept").await;
    assert!(h.kube.accept(NAMESPACE, "accept").is_some(), "the finalizer is kept");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Accepted
    );
}

/// Review finding: the cache of the successor may be behind: a successor deleted since is read
/// again before the status is left to it, and the object deleted rejects as asked.
#[tokio::test]
async fn a_successor_deleted_since_the_cache_was_filled_gets_no_hand_over() {
    let mut h = Harness::new().await;
    renamed_then_deleted(&mut h).await;
    h.kube.delete_accept(NAMESPACE, "renamed");
    let _not_seen_by_the_watch_yet = h.kube.take_changes();
    h.calls();
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("rejected");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).expect("member").status,
        MemberStatus::Rejected
    );
    assert_eq!(event_reasons(&h.calls()), vec!["MemberRejected"]);
}

/// Review finding: the status goes to the first setter; a later one that agrees with it is no
/// conflict even when an object in between asks for something else (and stands aside).
#[tokio::test]
async fn a_later_setter_that_agrees_with_the_first_is_not_in_conflict() {
    let mut h = Harness::new().await;
    accepted(&mut h).await;
    let pending = ImageAccess::test("setter", IMAGE, "other-member", "admin").with_member_status(MemberStatus::Pending);
    let mut pending = pending;
    pending.spec.member_id = MEMBER_PROJECT.into();
    h.apply(&pending);
    h.apply(&ImageAccessAccept::test("third", IMAGE, "member", MemberStatus::Accepted).for_member(MEMBER_PROJECT));
    h.reconcile_kind::<ImageAccessAccept>("third").await.expect("ready");
    let third = h.kube.accept(NAMESPACE, "third").expect("object");
    assert_eq!(third.condition("Ready").expect("Ready").status, "True");
}

#[test]
fn the_setter_order_is_total_even_within_one_second() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let meta = |uid: &str| kube::api::ObjectMeta {
        name: Some("same".into()),
        namespace: Some("ns".into()),
        uid: Some(uid.into()),
        creation_timestamp: Some(Time(jiff::Timestamp::from_second(1_800_000_000).expect("time"))),
        ..Default::default()
    };
    let (access, accept) = (meta("a"), meta("b"));
    let setter = |kind, meta, status| ownership::Setter { kind, meta, status };
    let (accepted, rejected) = (MemberStatus::Accepted, MemberStatus::Rejected);
    let first = ownership::status_conflict(
        setter("ImageAccessAccept", &accept, accepted),
        [setter("ImageAccess", &access, rejected)],
    );
    let second = ownership::status_conflict(
        setter("ImageAccess", &access, rejected),
        [setter("ImageAccessAccept", &accept, accepted)],
    );
    assert_eq!(
        first.is_some(),
        second.is_none(),
        "exactly one of the two defers: {first:?} {second:?}"
    );
}

#[tokio::test]
async fn an_image_that_is_not_shared_has_nothing_to_accept_and_says_so() {
    let mut h = Harness::new().await;
    let public = "8e2c3a4d-4d3a-4b7a-9c75-6b2e9b3e4c32";
    h.fake.add_image(public, OWNER_PROJECT, "public");
    h.apply(&ImageAccessAccept::test(
        "accept",
        public,
        "member",
        MemberStatus::Accepted,
    ));
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("stalled");
    let status = accept_status(&h);
    assert_eq!(ready(&status), ("False".into(), "ImageNotShared".into()));
    let message = &status.membership.conditions[0].message;
    assert!(message.contains("nothing to do until its owner"), "{message}");
}

/// Issue 23: an accept's next look comes after its own `resyncPeriod`.
#[tokio::test]
async fn an_accepts_next_look_comes_after_its_resync_period() {
    let mut h = Harness::new().await;
    shared(&mut h).await;
    let mut object = accept(MemberStatus::Accepted);
    object.spec.resync_period = Some("3m".into());
    h.apply(&object);
    let action = h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("accepted");
    let wait = super::tests::requeue_after(&action);
    assert!(
        (Duration::from_secs(162)..=Duration::from_secs(198)).contains(&wait),
        "3m, jittered: {wait:?}"
    );
}
