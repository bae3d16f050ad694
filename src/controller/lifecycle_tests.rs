//! The shared membership lifecycle against the fakes: what users do to credentials, regions
//! and policies (issue 19). Each test names the case it proves; each failed on the operator
//! before the lifecycle was one piece.

use std::sync::Arc;
use std::time::Duration;

use super::holding;
use super::problem::Problem;
use super::tests::{Harness, IMAGE, condition, event_reasons, reason, requeue_after, share};
use super::*;
use kube::ResourceExt;

use super::share::child_name;
use crate::api::{
    AcceptDeletionPolicy, DeletionPolicy, FINALIZER, ImageAccess, ImageAccessAccept, ImageId, ImageShare,
    ImageShareSpec, MemberId, MemberStatus,
};
use crate::testing::fake_openstack::{FakeOpenStack, Fault, MEMBER_PROJECT, OTHER_PROJECT, OWNER_PROJECT, PASSWORD};
use crate::testing::fixtures::{NAMESPACE, SECRET};

/// A clouds.yaml whose cloud `name` logs in as `user` (`owner`, `member`, `other`, `admin`),
/// with `region_name` when given: what a user rotates a Secret to.
fn clouds(fake: &FakeOpenStack, entries: &[(&str, &str, Option<&str>)]) -> String {
    let mut out = String::from("clouds:\n");
    for (name, user, region) in entries {
        out.push_str(&format!(
            "  {name}:\n    auth:\n      auth_url: {}\n      username: {user}\n      password: {PASSWORD}\n      project_name: {user}-project\n      user_domain_name: Default\n      project_domain_name: Default\n",
            fake.auth_url()
        ));
        if let Some(region) = region {
            out.push_str(&format!("    region_name: {region}\n"));
        }
    }
    out
}

/// Replaces the Secret's clouds.yaml, as `kubectl apply` of the Secret does.
fn rotate(h: &mut Harness, entries: &[(&str, &str, Option<&str>)]) {
    let yaml = clouds(&h.fake, entries);
    h.kube.put_secret(NAMESPACE, SECRET, &[("clouds.yaml", &yaml)]);
    h.sync();
}

fn stalled_message(h: &Harness, name: &str) -> String {
    condition(&h.status(name), "Stalled").message.clone()
}

async fn ready_share(h: &mut Harness) {
    h.apply(&share("share"));
    h.reconcile("share").await.expect("created");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
}

/// Case 1: a Secret rotated to another project's credentials cannot see the image; its 404 on
/// the DELETE is not "gone". The finalizer stays, naming the project that made it and both ways
/// out, until the right credentials are back.
#[tokio::test]
async fn credentials_of_another_project_do_not_take_a_404_for_gone() {
    let mut h = Harness::new().await;
    ready_share(&mut h).await;
    rotate(&mut h, &[("owner", "other", Some("RegionOne"))]);
    h.delete("share");
    h.calls();
    h.reconcile("share")
        .await
        .expect_err("stalled, looked at again with backoff");
    let object = h.object("share").expect("the finalizer stays");
    assert!(object.has_finalizer());
    assert_eq!(reason(&h.status("share")), "MembershipHidden");
    let message = stalled_message(&h, "share");
    assert!(
        message.contains(OWNER_PROJECT),
        "names the project that made it: {message}"
    );
    assert!(message.contains(OTHER_PROJECT), "and who asked: {message}");
    assert!(message.contains("deletionPolicy to Orphan"), "{message}");
    assert!(
        h.fake.member(IMAGE, MEMBER_PROJECT).is_some(),
        "the member keeps access"
    );
    assert!(!event_reasons(&h.calls()).contains(&"MemberAlreadyGone".to_string()));

    // The owner's credentials back: removed, the deletion finishes.
    rotate(&mut h, &[("owner", "owner", Some("RegionOne"))]);
    h.reconcile("share").await.expect("finished");
    assert!(h.object("share").is_none());
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_none());
}

/// Case 1, with `cloudCredentialsRef.cloudName` edited instead of the Secret.
#[tokio::test]
async fn an_edited_cloud_name_does_not_take_a_404_for_gone() {
    let mut h = Harness::new().await;
    ready_share(&mut h).await;
    let mut object = h.object("share").expect("object");
    object.spec.cloud_credentials_ref.cloud_name = "other".into();
    h.apply(&object);
    h.reconcile("share").await.expect("looked with the other credentials");
    assert_eq!(
        h.status("share").applied.as_ref().map(|a| a.member_id.as_str()),
        Some(MEMBER_PROJECT),
        "what it holds stays recorded"
    );
    h.delete("share");
    h.reconcile("share")
        .await
        .expect_err("stalled, looked at again with backoff");
    assert!(h.object("share").is_some_and(|o| o.has_finalizer()));
    assert_eq!(reason(&h.status("share")), "MembershipHidden");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
}

/// Case 1: the image given to another project (an admin's `openstack image set --project`):
/// its old owner gets 404 for everything, and the member still has access.
#[tokio::test]
async fn an_image_given_to_another_project_is_not_taken_for_gone() {
    let mut h = Harness::new().await;
    ready_share(&mut h).await;
    h.fake.set_owner(IMAGE, OTHER_PROJECT);
    h.delete("share");
    h.reconcile("share")
        .await
        .expect_err("stalled, looked at again with backoff");
    assert!(h.object("share").is_some_and(|o| o.has_finalizer()));
    assert_eq!(reason(&h.status("share")), "MembershipHidden");
    let message = stalled_message(&h, "share");
    assert!(message.contains("gave it to another project"), "{message}");

    // An admin sees every image: the membership is removed with its credentials.
    rotate(&mut h, &[("owner", "admin", Some("RegionOne"))]);
    h.reconcile("share").await.expect("finished");
    assert!(h.object("share").is_none());
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_none());
}

/// Case 1: the spec-edit let-go path draws no "gone" from blind credentials either: the old
/// membership stays recorded and in Glance, and the object says why.
#[tokio::test]
async fn a_replacement_with_blind_credentials_keeps_the_previous_membership() {
    let mut h = Harness::new().await;
    ready_share(&mut h).await;
    rotate(&mut h, &[("owner", "other", Some("RegionOne"))]);
    let mut object = h.object("share").expect("object");
    object.spec.member_id = "member-b".into();
    h.apply(&object);
    h.reconcile("share")
        .await
        .expect_err("stalled, looked at again with backoff");
    assert_eq!(reason(&h.status("share")), "MembershipHidden");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some(), "not let go blindly");
    let applied = h.status("share").applied.expect("still recorded");
    assert_eq!(applied.member_id, MEMBER_PROJECT);
    assert_eq!(h.fake.requests("POST members"), 1, "nothing new made meanwhile");
}

/// Case 2: a `region_name` added to or dropped from the clouds.yaml, with the same Glance behind
/// it, is the same membership: nothing is removed or made again, the member keeps its status.
#[tokio::test]
async fn a_region_name_added_or_dropped_for_the_same_glance_changes_nothing() {
    let mut h = Harness::new().await;
    ready_share(&mut h).await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Accepted);
    let before = h.fake.member(IMAGE, MEMBER_PROJECT).expect("member");
    for region in [None, Some("RegionOne"), None] {
        rotate(&mut h, &[("owner", "owner", region)]);
        h.later();
        h.reconcile("share").await.expect("ready");
        assert_eq!(reason(&h.status("share")), "MemberReady", "{region:?}");
    }
    assert_eq!(h.fake.requests("DELETE member"), 0, "nothing removed");
    assert_eq!(h.fake.requests("POST members"), 1, "made once");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT),
        Some(before),
        "the acceptance stays"
    );
    let applied = h.status("share").applied.expect("applied");
    assert!(applied.endpoint.is_some(), "the Glance endpoint is recorded");
    assert_eq!(applied.project.as_deref(), Some(OWNER_PROJECT), "and who made it");
}

/// Case 2 for a record written before endpoints were: it is placed with the catalog, not
/// replaced.
#[tokio::test]
async fn a_record_without_an_endpoint_is_placed_not_replaced() {
    let mut h = Harness::new().await;
    ready_share(&mut h).await;
    // As an older operator recorded it: region only.
    let mut object = h.object("share").expect("object");
    let mut status = object.status.clone().expect("status");
    let old = crate::api::Membership::named(IMAGE.into(), MEMBER_PROJECT.into(), Some("RegionOne".into()));
    status.applied = Some(old.clone());
    object.status = Some(status);
    object.metadata.annotations.get_or_insert_default().insert(
        crate::api::CLAIM_ANNOTATION.into(),
        serde_json::to_string(&old).expect("json"),
    );
    h.kube.replace(&object);
    h.sync();
    rotate(&mut h, &[("owner", "owner", None)]);
    h.later();
    h.reconcile("share").await.expect("ready");
    assert_eq!(h.fake.requests("DELETE member"), 0);
    assert_eq!(reason(&h.status("share")), "MemberReady");
    assert!(
        h.object("share")
            .and_then(|o| o.claim())
            .and_then(|c| c.endpoint)
            .is_some()
    );
}

/// Case 2 on the member's side: an accept keeps its acceptance across the same rotation.
#[tokio::test]
async fn an_accept_keeps_its_status_when_region_name_is_dropped() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.reconcile("share").await.expect("shared");
    h.apply(&ImageAccessAccept::test(
        "accept",
        IMAGE,
        "member",
        MemberStatus::Accepted,
    ));
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("accepted");
    let puts = h.fake.requests("PUT member");
    rotate(
        &mut h,
        &[("owner", "owner", Some("RegionOne")), ("member", "member", None)],
    );
    h.later();
    h.reconcile_kind::<ImageAccessAccept>("accept")
        .await
        .expect("still accepted");
    assert_eq!(h.fake.requests("PUT member"), puts, "no reject, no set again");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).map(|m| m.status),
        Some(MemberStatus::Accepted)
    );
}

/// Case 4: an accept whose Secret switches to a third project keeps what it set recorded (a
/// 404 to those credentials is not "gone"), and its deletion waits for credentials that can
/// reject, instead of counting itself as "never set".
#[tokio::test]
async fn an_accept_switched_to_a_third_project_keeps_its_record_and_its_finalizer() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.reconcile("share").await.expect("shared");
    h.apply(&ImageAccessAccept::test("accept", IMAGE, "member", MemberStatus::Accepted).for_member(MEMBER_PROJECT));
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("accepted");
    rotate(
        &mut h,
        &[
            ("owner", "owner", Some("RegionOne")),
            ("member", "other", Some("RegionOne")),
        ],
    );
    h.later();
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("stalled");
    let accept = h.kube.accept(NAMESPACE, "accept").expect("accept");
    assert!(
        accept.applied().is_some(),
        "a 404 to a third project keeps the record: {:?}",
        accept.status
    );
    h.kube.delete_accept(NAMESPACE, "accept");
    h.sync();
    h.calls();
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("stalled");
    let accept = h.kube.accept(NAMESPACE, "accept").expect("the finalizer stays");
    assert!(accept.has_finalizer());
    assert!(!event_reasons(&h.calls()).contains(&"MemberNotRejected".to_string()));
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).map(|m| m.status),
        Some(MemberStatus::Accepted),
        "nothing rejected it yet"
    );

    rotate(
        &mut h,
        &[
            ("owner", "owner", Some("RegionOne")),
            ("member", "member", Some("RegionOne")),
        ],
    );
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("rejected");
    assert!(h.kube.accept(NAMESPACE, "accept").is_none());
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).map(|m| m.status),
        Some(MemberStatus::Rejected)
    );
}

/// Case 4, the other way: an accept whose claim records credentials that could never set the
/// status (a third project's, from the start) has nothing to undo and goes at once.
#[tokio::test]
async fn an_accept_that_never_could_set_the_status_goes_without_credentials_that_can() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.reconcile("share").await.expect("shared");
    h.apply(&ImageAccessAccept::test("accept", IMAGE, "other", MemberStatus::Accepted).for_member(MEMBER_PROJECT));
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("stalled");
    h.kube.delete_accept(NAMESPACE, "accept");
    h.sync();
    h.calls();
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("gone");
    assert!(h.kube.accept(NAMESPACE, "accept").is_none());
    assert!(event_reasons(&h.calls()).is_empty(), "it held nothing");
    assert_eq!(h.fake.requests("PUT member"), 0);
}

/// Two objects for one membership in two Secrets: `first` holds it, `second` waits.
async fn holder_and_waiting(h: &mut Harness, second_cloud: &str) {
    ready_share(h).await;
    let yaml = h.fake.clouds_yaml();
    h.kube.put_secret(NAMESPACE, "second", &[("clouds.yaml", &yaml)]);
    let mut second = ImageAccess::test("second", IMAGE, MEMBER_PROJECT, second_cloud);
    second.spec.cloud_credentials_ref.secret_name = "second".into();
    h.apply(&second);
    h.reconcile("second").await.expect("waits");
    assert_eq!(
        reason(&h.status("second")),
        status::MANAGED_ELSEWHERE,
        "{:?}",
        h.status("second")
    );
}

/// Case 5: a transient failure reading the waiting successor's Secret is not "nobody takes it
/// over": the deletion retries, the membership stays, and it is handed over after.
#[tokio::test]
async fn a_transient_failure_reading_the_successor_retries_instead_of_removing() {
    let mut h = Harness::new().await;
    holder_and_waiting(&mut h, "admin").await;
    // The successor's Secret changed (a new version must be read), and the read fails once.
    let yaml = h.fake.clouds_yaml();
    h.kube.put_secret(NAMESPACE, "second", &[("clouds.yaml", &yaml)]);
    h.sync();
    h.kube.fail_next("GET", "/secrets/second", 500);
    h.delete("share");
    h.reconcile("share").await.expect_err("retried with backoff");
    assert_eq!(h.fake.requests("DELETE member"), 0, "not removed on a guess");
    assert!(h.object("share").is_some_and(|o| o.has_finalizer()));
    h.later();
    h.reconcile("share").await.expect("handed over");
    assert!(h.object("share").is_none());
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some(), "kept for the successor");
    let claim = h
        .object("second")
        .and_then(|second| second.claim())
        .expect("claimed by the successor");
    assert_eq!(
        (claim.image_id.as_str(), claim.member_id.as_str()),
        (IMAGE, MEMBER_PROJECT)
    );
    assert_eq!(
        claim.project.as_deref(),
        Some(OWNER_PROJECT),
        "who made it stays recorded"
    );
}

/// Case 5: Orphan needs no OpenStack call, even with a successor waiting whose cloud is down.
#[tokio::test]
async fn an_orphan_deletion_asks_nothing_of_openstack_even_with_a_successor_waiting() {
    let mut h = Harness::new().await;
    holder_and_waiting(&mut h, "admin").await;
    let mut first = h.object("share").expect("first");
    first.spec.deletion_policy = Some(DeletionPolicy::Orphan);
    h.apply(&first);
    h.reconcile("share").await.expect("ready");
    h.fake.expire_all_tokens();
    for _ in 0..3 {
        h.fake.inject(Fault {
            operation: "POST tokens",
            status: 503,
            retry_after: None,
        });
    }
    let before = h.fake.requests("POST tokens") + h.fake.requests("GET member");
    h.delete("share");
    h.reconcile("share").await.expect("deleted");
    assert!(h.object("share").is_none(), "not blocked by the successor's cloud");
    assert_eq!(h.fake.requests("POST tokens") + h.fake.requests("GET member"), before);
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
}

/// Case 6: an older object that cannot act (its Secret is missing) does not block a newer one
/// while nothing exists.
#[tokio::test]
async fn an_older_object_without_credentials_does_not_block_a_newer_one() {
    let mut h = Harness::new().await;
    let mut older = ImageAccess::test("older", IMAGE, MEMBER_PROJECT, "owner");
    older.spec.cloud_credentials_ref.secret_name = "missing".into();
    h.apply(&older);
    h.reconcile("older").await.expect("stalled");
    assert_eq!(reason(&h.status("older")), "CredentialsSecretNotFound");
    h.apply(&share("newer"));
    h.reconcile("newer").await.expect("ready");
    assert_eq!(reason(&h.status("newer")), "MemberReady");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
}

/// Case 6, the tenant boundary: an older object with another project's credentials claims,
/// is refused by Glance, and then neither blocks the owner's object nor takes the membership
/// away from it; deleting it leaves the owner's membership alone.
#[tokio::test]
async fn another_projects_object_never_blocks_nor_takes_over() {
    let mut h = Harness::new().await;
    h.apply(&ImageAccess::test("intruder", IMAGE, MEMBER_PROJECT, "other"));
    h.reconcile("intruder").await.expect("stalled");
    assert_eq!(reason(&h.status("intruder")), "ImageNotFound");
    h.apply(&share("owners"));
    h.reconcile("owners").await.expect("ready");
    assert_eq!(reason(&h.status("owners")), "MemberReady");
    // The intruder looks again: still refused, and it does not become the manager.
    h.later();
    h.reconcile("intruder").await.expect("stalled");
    h.later();
    h.reconcile("owners").await.expect("ready");
    assert_eq!(reason(&h.status("owners")), "MemberReady");
    assert!(
        h.object("intruder").and_then(|o| o.claim()).is_none(),
        "refused in the look that claimed it: it holds nothing"
    );
    h.delete("intruder");
    h.calls();
    h.reconcile("intruder").await.expect("gone");
    assert!(h.object("intruder").is_none());
    assert!(
        h.fake.member(IMAGE, MEMBER_PROJECT).is_some(),
        "the owner's membership stays"
    );
    assert_eq!(h.fake.requests("DELETE member"), 0);
    assert!(event_reasons(&h.calls()).is_empty(), "nothing to hand over or undo");
}

/// An object Glance refused from its first look (a mistyped image, a private image, another
/// project's credentials) made nothing: it holds no claim, and its deletion finishes at once,
/// without credentials.
#[tokio::test]
async fn an_object_glance_refused_holds_nothing_and_is_deleted_at_once() {
    let mut h = Harness::new().await;
    let missing = "0c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";
    h.apply(&ImageAccess::test("typo", missing, MEMBER_PROJECT, "owner"));
    h.reconcile("typo").await.expect("stalled");
    assert_eq!(reason(&h.status("typo")), "ImageNotFound");
    let object = h.object("typo").expect("object");
    assert!(object.claim().is_none(), "the claim went with the refusal");
    assert!(object.has_finalizer());
    h.kube.remove_secret(NAMESPACE, SECRET);
    h.delete("typo");
    h.reconcile("typo").await.expect("gone");
    assert!(h.object("typo").is_none(), "nothing to undo, no credentials needed");
}

/// A refused claim whose release could not be written is remembered: the next look releases it,
/// and a deletion meanwhile knows it made nothing (no credentials asked, nothing stuck).
#[tokio::test]
async fn a_refused_claim_not_yet_released_is_let_go_of_without_a_witness() {
    let missing = "0c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";
    for deleted in [false, true] {
        let mut h = Harness::new().await;
        h.apply(&ImageAccess::test("typo", missing, MEMBER_PROJECT, "owner"));
        h.reconcile("typo").await.expect("stalled");
        // As if the release had failed: the claim is still on the object, and remembered.
        let mut object = h.object("typo").expect("object");
        let record = crate::api::Membership::named(missing.into(), MEMBER_PROJECT.into(), Some("RegionOne".into()));
        object.metadata.annotations.get_or_insert_default().insert(
            crate::api::CLAIM_ANNOTATION.into(),
            serde_json::to_string(&record).expect("json"),
        );
        h.kube.replace(&object);
        h.sync();
        h.ctx()
            .refused_claims()
            .insert(object.metadata.uid.clone().unwrap_or_default(), record);
        if deleted {
            h.kube.remove_secret(NAMESPACE, SECRET);
            h.delete("typo");
            h.reconcile("typo").await.expect("gone");
            assert!(h.object("typo").is_none(), "nothing to undo");
        } else {
            h.later();
            h.reconcile("typo").await.expect("stalled");
            assert!(
                h.object("typo").and_then(|o| o.claim()).is_none(),
                "released at the next look"
            );
            assert!(h.ctx().refused_claims().is_empty(), "and forgotten");
        }
    }
}

/// Case 5: the first candidate successor's credentials cannot see the membership; the next
/// candidate that can takes it over, instead of the membership being removed.
#[tokio::test]
async fn the_hand_over_asks_every_waiting_object_in_turn() {
    let mut h = Harness::new().await;
    ready_share(&mut h).await;
    let yaml = h.fake.clouds_yaml();
    h.kube.put_secret(NAMESPACE, "second", &[("clouds.yaml", &yaml)]);
    let mut blind = ImageAccess::test("blind", IMAGE, MEMBER_PROJECT, "other");
    blind.spec.cloud_credentials_ref.secret_name = "second".into();
    h.apply(&blind);
    h.reconcile("blind").await.expect("waits");
    h.apply(&ImageAccess::test("able", IMAGE, MEMBER_PROJECT, "admin"));
    h.reconcile("able").await.expect("waits");
    assert_eq!(reason(&h.status("blind")), status::MANAGED_ELSEWHERE);
    assert_eq!(reason(&h.status("able")), status::MANAGED_ELSEWHERE);
    // As if "able" had once claimed the same membership and Glance had refused it: a claim handed
    // over to it is not that one.
    let record = h.object("share").and_then(|o| o.claim()).expect("the holder's claim");
    let able_uid = h.object("able").and_then(|o| o.metadata.uid).expect("uid");
    h.ctx().refused_claims().insert(able_uid.clone(), record);
    h.delete("share");
    h.reconcile("share").await.expect("handed over");
    assert!(h.object("share").is_none());
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some(), "not removed");
    assert!(
        h.object("able").and_then(|o| o.claim()).is_some(),
        "the one that can see it took it"
    );
    assert!(h.object("blind").and_then(|o| o.claim()).is_none());
    assert!(
        !h.ctx().refused_claims().contains_key(&able_uid),
        "the refused claim is forgotten"
    );
    // Its deletion removes what it was handed.
    h.delete("able");
    h.reconcile("able").await.expect("removed");
    assert!(h.object("able").is_none());
    assert!(
        h.fake.member(IMAGE, MEMBER_PROJECT).is_none(),
        "removed, not taken for never made"
    );
}

/// Case 2, another way: Glance moved to a new URL (the catalog says so), and the operator restarts:
/// the same catalog service in the same region is the same membership, nothing is removed or
/// made again, and the deletion removes it where it lives now.
#[tokio::test]
async fn glance_moving_to_a_new_url_is_the_same_membership() {
    let mut h = Harness::new().await;
    ready_share(&mut h).await;
    h.fake.move_glance().await;
    // The operator restarts (a new token, so the new catalog).
    h.restart();
    h.reconcile("share").await.expect("ready");
    assert_eq!(reason(&h.status("share")), "MemberReady");
    assert_eq!(h.fake.requests("DELETE member"), 0);
    assert_eq!(h.fake.requests("POST members"), 1);
    h.delete("share");
    h.reconcile("share").await.expect("removed where it lives now");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_none());
}

/// Case 8: a guarded metadata patch that lost a race (the object changed since the cache showed
/// it, so its `test` fails with 422) is retried, not reported as an admission policy's refusal.
#[tokio::test]
async fn a_lost_patch_race_is_transient_and_a_refusal_is_not() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    let stale = h.object("share").expect("object");
    let mut changed = stale.clone();
    changed.metadata.finalizers = Some(vec!["example.com/other".into()]);
    h.kube.replace(&changed);
    h.sync();
    let api: kube::Api<ImageAccess> = kube::Api::namespaced(h.kube_client(), NAMESPACE);
    let record = crate::api::Membership::named(IMAGE.into(), MEMBER_PROJECT.into(), None);
    let race = holding::claim(&api, &stale, &record, &h.ctx())
        .await
        .expect_err("the test fails");
    assert!(matches!(race, Problem::Transient { .. }), "{race:?}");
    // The same refusal for an object nobody changed is a human's to fix.
    let current = h.object("share").expect("object");
    h.kube.fail_next("PATCH", "/imageaccesses/share", 422);
    let refused = holding::claim(&api, &current, &record, &h.ctx())
        .await
        .expect_err("refused");
    assert_eq!(refused.reason(), "KubernetesWriteRefused");
}

/// A look that loses its claim write to a change made meanwhile (its cache was behind: at an
/// upgrade, the record written by the previous version) writes no status: the race is nobody's
/// problem, so Ready is not taken away for it, and the next look, from the newer version, claims.
#[tokio::test]
async fn a_lost_patch_race_writes_no_status_and_the_next_look_claims() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    let stale = h.object("share").expect("object");
    let mut changed = stale.clone();
    changed.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    changed.metadata.finalizers = Some(vec!["example.com/other".into()]);
    h.kube.replace(&changed);
    let raced = super::reconcile::reconcile(std::sync::Arc::new(stale), h.ctx()).await;
    assert!(raced.is_err(), "looked at again");
    assert!(
        h.object("share").and_then(|o| o.status).is_none(),
        "no status from a stale look"
    );
    assert_eq!(
        h.fake.requests("POST members"),
        0,
        "nothing done in Glance on a stale claim"
    );
    h.reconcile("share").await.expect("ready");
    assert_eq!(reason(&h.status("share")), "MemberReady");
}

/// A race lost look after look is no passing lag (another writer fights the operator over the
/// object): after three quiet ones, the next shows in the conditions.
#[tokio::test]
async fn a_write_race_lost_look_after_look_shows_in_the_conditions() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    for round in 0..4 {
        let stale = h.object("share").expect("object");
        let mut changed = stale.clone();
        changed.metadata.labels = Some([("round".to_string(), round.to_string())].into());
        changed.metadata.finalizers = Some(vec![format!("example.com/other-{round}")]);
        h.kube.replace(&changed);
        let stale = std::sync::Arc::new(stale);
        let error = super::reconcile::reconcile(stale.clone(), h.ctx())
            .await
            .expect_err("raced");
        super::reconcile::error_policy(stale, &error, h.ctx());
        // Past the backoff: the next look is due.
        h.later();
        let status = h.object("share").and_then(|o| o.status);
        if round < 3 {
            assert!(status.is_none(), "round {round}: quiet");
        } else {
            assert_eq!(reason(&status.unwrap_or_default()), "WriteRace", "round {round}: shown");
        }
    }
}

/// Case 8: a write the API server refuses for good (the Secret's finalizer, 403 from RBAC)
/// shows in the object's conditions with what to grant, not a silent retry.
#[tokio::test]
async fn a_refused_secret_hold_shows_in_the_conditions() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.kube.fail_next("PATCH", "/secrets/", 403);
    h.reconcile("share").await.expect("stalled, not an error");
    assert_eq!(reason(&h.status("share")), "KubernetesWriteForbidden");
    let message = stalled_message(&h, "share");
    assert!(message.contains("Secret default/openstack-credentials"), "{message}");
    assert!(message.contains("grant"), "{message}");
    assert_eq!(
        h.fake.requests("POST members"),
        0,
        "nothing done in Glance without the hold"
    );
}

/// Case 8: an admission policy refusing the claim (422) is Stalled too.
#[tokio::test]
async fn a_refused_claim_shows_in_the_conditions() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.reconcile_secrets().await;
    h.kube.fail_next("PATCH", "/imageaccesses/share", 422);
    h.reconcile("share").await.expect("stalled");
    assert_eq!(reason(&h.status("share")), "KubernetesWriteRefused");
    assert_eq!(h.fake.requests("POST members"), 0);
}

/// Case 8: the Secret controller backs off a refused hold instead of retrying every 2 s.
#[tokio::test]
async fn a_refused_secret_hold_backs_off() {
    let h = Harness::new().await;
    let secret = Arc::new(crate::testing::fake_kube::secret_metadata(
        &h.kube.secret(NAMESPACE, SECRET).expect("secret"),
    ));
    let refused = Error::Kube(kube::Error::Api(
        kube::core::Status::failure("forbidden", "Forbidden")
            .with_code(403)
            .boxed(),
    ));
    let delays: Vec<Duration> = (0..6)
        .map(|_| requeue_after(&secret_error_policy(secret.clone(), &refused, h.ctx())))
        .collect();
    assert!(delays[5] > delays[0] * 4, "backs off: {delays:?}");
    assert!(delays.iter().all(|d| *d <= h.ctx().settings.backoff_max), "{delays:?}");
}

/// An accept's deletion with Orphan asks nothing of OpenStack (the shared lifecycle asks the
/// policy first for every kind).
#[tokio::test]
async fn an_orphan_accept_is_deleted_without_credentials() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.reconcile("share").await.expect("shared");
    h.apply(
        &ImageAccessAccept::test("accept", IMAGE, "member", MemberStatus::Accepted)
            .with_policy(AcceptDeletionPolicy::Orphan),
    );
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("accepted");
    h.kube.remove_secret(NAMESPACE, SECRET);
    h.sync();
    h.kube.delete_accept(NAMESPACE, "accept");
    h.sync();
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("orphaned");
    assert!(h.kube.accept(NAMESPACE, "accept").is_none());
}

// ---------------------------------------------------------------- ImageShare

fn golden(members: &[&str], policy: Option<DeletionPolicy>) -> ImageShare {
    let mut share = ImageShare::new(
        "golden",
        ImageShareSpec {
            image_ids: vec![ImageId(IMAGE.into())],
            member_ids: members.iter().map(|m| MemberId((*m).into())).collect(),
            image_selector: None,
            member_selector: None,
            member_refs: Vec::new(),
            refresh_interval: None,
            status: None,
            region: None,
            cloud_credentials_ref: crate::api::CloudCredentialsRef {
                secret_name: SECRET.into(),
                cloud_name: "owner".into(),
            },
            deletion_policy: policy,
            resync_period: None,
            management_policy: None,
        },
    );
    share.metadata.namespace = Some(NAMESPACE.into());
    share
}

/// One reconcile of the share, as kube-runtime runs it: from the cache.
async fn reconcile_share(h: &mut Harness) -> Result<kube::runtime::controller::Action, Error> {
    h.sync();
    let cached = h
        .ctx()
        .cached_share(&kube::runtime::reflector::ObjectRef::new("golden").within(NAMESPACE))
        .expect("the share is in the cache");
    let result = share::reconcile(cached, h.ctx()).await;
    h.sync();
    result
}

/// The share's children, each reconciled once (as their controller would).
async fn reconcile_children(h: &mut Harness) {
    h.sync();
    let names: Vec<String> = h
        .kube
        .objects()
        .iter()
        .filter_map(|child| child.metadata.name.clone())
        .collect();
    for name in names {
        let _ = h.reconcile(&name).await;
    }
}

async fn shared_with_both(h: &mut Harness) {
    h.apply(&golden(&[MEMBER_PROJECT, "member-b"], None));
    reconcile_share(h).await.expect("children written");
    reconcile_children(h).await;
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
    assert!(h.fake.member(IMAGE, "member-b").is_some());
    assert!(
        h.kube
            .share(NAMESPACE, "golden")
            .is_some_and(|s| s.finalizers().iter().any(|f| f == FINALIZER)),
        "the share holds its finalizer"
    );
}

/// Case 3: one apply that sets Orphan and removes a member leaves that member's membership in
/// Glance: the leaving child goes with the share's policy of now.
#[tokio::test]
async fn a_member_removed_in_the_apply_that_sets_orphan_keeps_its_membership() {
    let mut h = Harness::new().await;
    shared_with_both(&mut h).await;
    h.apply(&golden(&[MEMBER_PROJECT], Some(DeletionPolicy::Orphan)));
    reconcile_share(&mut h).await.expect("children to the spec");
    reconcile_children(&mut h).await;
    let leaving = child_name("golden", IMAGE, "member-b");
    assert!(h.object(&leaving).is_none(), "the leaving child is gone");
    assert!(
        h.fake.member(IMAGE, "member-b").is_some(),
        "its membership stays, as Orphan says"
    );
    assert_eq!(h.fake.requests("DELETE member"), 0);
}

/// Case 3: `kubectl apply` of Orphan followed at once by `kubectl delete` of the share: the share
/// leaves its last policy on every child before the garbage collector deletes them.
#[tokio::test]
async fn orphan_then_delete_at_once_leaves_every_membership() {
    let mut h = Harness::new().await;
    shared_with_both(&mut h).await;
    // Both land before the share is looked at again.
    h.kube
        .apply(&golden(&[MEMBER_PROJECT, "member-b"], Some(DeletionPolicy::Orphan)));
    h.kube.delete_share(NAMESPACE, "golden");
    reconcile_share(&mut h).await.expect("policy carried, finalizer gone");
    assert!(h.kube.share(NAMESPACE, "golden").is_none(), "the share went");
    // The garbage collector now deletes the children (background propagation).
    for child in h.kube.objects() {
        h.kube
            .delete(NAMESPACE, &child.metadata.name.clone().unwrap_or_default());
    }
    reconcile_children(&mut h).await;
    assert!(h.kube.objects().is_empty(), "the children went");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
    assert!(h.fake.member(IMAGE, "member-b").is_some());
    assert_eq!(h.fake.requests("DELETE member"), 0);
}

/// Case 3, foreground deletion: the collector deletes the children while the share still
/// exists; a child's deletion reads the share's policy itself.
#[tokio::test]
async fn a_child_deleted_before_its_share_goes_uses_the_shares_policy() {
    let mut h = Harness::new().await;
    shared_with_both(&mut h).await;
    h.kube
        .apply(&golden(&[MEMBER_PROJECT, "member-b"], Some(DeletionPolicy::Orphan)));
    h.kube.delete_share(NAMESPACE, "golden");
    for child in h.kube.objects() {
        h.kube
            .delete(NAMESPACE, &child.metadata.name.clone().unwrap_or_default());
    }
    reconcile_children(&mut h).await;
    assert!(h.kube.objects().is_empty());
    assert_eq!(h.fake.requests("DELETE member"), 0, "the share says Orphan");
}

/// The share as `golden`, switched to Observe (issue 23).
fn golden_observing(members: &[&str]) -> ImageShare {
    let mut share = golden(members, None);
    share.spec.management_policy = Some(crate::api::ManagementPolicy::Observe);
    share
}

/// Issue 23: a share switched to Observe and deleted at once, before its children looked again:
/// it leaves Observe on every child before the collector deletes them, so nothing is removed.
#[tokio::test]
async fn observe_then_delete_at_once_leaves_every_membership() {
    let mut h = Harness::new().await;
    shared_with_both(&mut h).await;
    h.kube.apply(&golden_observing(&[MEMBER_PROJECT, "member-b"]));
    h.kube.delete_share(NAMESPACE, "golden");
    reconcile_share(&mut h).await.expect("policy carried, finalizer gone");
    assert!(h.kube.share(NAMESPACE, "golden").is_none(), "the share went");
    assert!(
        h.kube.objects().iter().all(|child| child.observes()),
        "every child carries Observe"
    );
    for child in h.kube.objects() {
        h.kube
            .delete(NAMESPACE, &child.metadata.name.clone().unwrap_or_default());
    }
    reconcile_children(&mut h).await;
    assert!(h.kube.objects().is_empty(), "the children went");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
    assert!(h.fake.member(IMAGE, "member-b").is_some());
    assert_eq!(h.fake.requests("DELETE member"), 0);
}

/// Issue 23, foreground deletion: a child deleted while its share (switched to Observe) still
/// exists, before the policy was carried to it, reads the share and removes nothing.
#[tokio::test]
async fn a_child_deleted_before_its_observe_share_goes_removes_nothing() {
    let mut h = Harness::new().await;
    shared_with_both(&mut h).await;
    h.kube.apply(&golden_observing(&[MEMBER_PROJECT, "member-b"]));
    h.kube.delete_share(NAMESPACE, "golden");
    for child in h.kube.objects() {
        h.kube
            .delete(NAMESPACE, &child.metadata.name.clone().unwrap_or_default());
    }
    reconcile_children(&mut h).await;
    assert!(h.kube.objects().is_empty());
    assert_eq!(h.fake.requests("DELETE member"), 0, "the share observes");
}

/// Issue 23: a share that observed, switched to Managed and deleted at once: its children, which
/// hold nothing, stay Observe as they go, so none removes what some would have just adopted.
#[tokio::test]
async fn managed_then_delete_at_once_of_an_observe_share_removes_nothing() {
    let mut h = Harness::new().await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Pending);
    h.apply(&golden_observing(&[MEMBER_PROJECT, "member-b"]));
    reconcile_share(&mut h).await.expect("children written");
    reconcile_children(&mut h).await;
    h.kube.apply(&golden(&[MEMBER_PROJECT, "member-b"], None));
    h.kube.delete_share(NAMESPACE, "golden");
    reconcile_share(&mut h).await.expect("policy carried, finalizer gone");
    assert!(h.kube.objects().iter().all(|child| child.observes()), "still Observe");
    for child in h.kube.objects() {
        h.kube
            .delete(NAMESPACE, &child.metadata.name.clone().unwrap_or_default());
    }
    reconcile_children(&mut h).await;
    assert!(h.kube.objects().is_empty());
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
    assert_eq!(h.fake.requests("DELETE member") + h.fake.requests("POST members"), 0);
}

/// Case 9: a transient failure of one child write does not lose the share's pass: the other
/// children are written, and so are the status and the events; the failure is retried.
#[tokio::test]
async fn a_transient_child_failure_still_writes_the_status_and_events() {
    let mut h = Harness::new().await;
    h.apply(&golden(&[MEMBER_PROJECT, "member-b", "member-c"], None));
    h.kube.fail_next("POST", "/imageaccesses", 500);
    h.calls();
    reconcile_share(&mut h).await.expect_err("retried with backoff");
    let calls = h.calls();
    let share = h.kube.share(NAMESPACE, "golden").expect("share");
    let status = share.status.expect("the status was written");
    assert_eq!((status.desired, status.ready), (3, 0));
    assert_eq!(h.kube.objects().len(), 2, "the other children were written");
    assert!(event_reasons(&calls).contains(&"ImageAccessCreated".to_string()));
}

/// Case 6: the owner's object deleted while another project's object names the same membership:
/// it is removed, not handed to an object whose credentials could never remove it.
#[tokio::test]
async fn a_membership_is_never_handed_to_an_object_that_cannot_see_it() {
    let mut h = Harness::new().await;
    h.apply(&ImageAccess::test("intruder", IMAGE, MEMBER_PROJECT, "other"));
    h.reconcile("intruder").await.expect("stalled");
    h.apply(&share("owners"));
    h.reconcile("owners").await.expect("ready");
    h.delete("owners");
    h.reconcile("owners").await.expect("removed");
    assert!(h.object("owners").is_none());
    assert!(
        h.fake.member(IMAGE, MEMBER_PROJECT).is_none(),
        "removed, not left to the intruder"
    );
    assert_eq!(h.fake.requests("DELETE member"), 1);
}

/// A share whose own finalizer the API server refuses (RBAC without patch on imageshares) says
/// so in its conditions instead of only logging.
#[tokio::test]
async fn a_refused_share_finalizer_shows_in_the_shares_conditions() {
    let mut h = Harness::new().await;
    h.apply(&golden(&[MEMBER_PROJECT], None));
    h.kube.fail_next("PATCH", "/imageshares/golden", 403);
    reconcile_share(&mut h).await.expect("stalled, looked at again later");
    let status = h
        .kube
        .share(NAMESPACE, "golden")
        .and_then(|s| s.status)
        .expect("status");
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("Stalled");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "KubernetesWriteForbidden")
    );
    assert!(stalled.message.contains("grant"), "{}", stalled.message);
}

/// A let-go of the previous membership releases its claim at once: a look stopped right after
/// (here by a refusal before the new claim) must not leave a claim that a later look would let go
/// of again, under another policy (removing what Orphan left).
#[tokio::test]
async fn a_membership_let_go_of_is_not_decided_again_by_a_later_look() {
    let mut h = Harness::new().await;
    let mut object = share("share").with_policy(DeletionPolicy::Orphan);
    object.spec.member_id = "member-a".into();
    object
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(crate::api::ADOPT_ANNOTATION.into(), "true".into());
    h.apply(&object);
    h.reconcile("share").await.expect("made");
    assert!(h.fake.member(IMAGE, "member-a").is_some());
    // The member's credentials and the member project: the previous membership is left (Orphan),
    // then the adoption is refused (the member's credentials could never remove it).
    let mut edited = h.object("share").expect("object");
    edited.spec.member_id = MEMBER_PROJECT.into();
    edited.spec.cloud_credentials_ref.cloud_name = "member".into();
    h.apply(&edited);
    h.reconcile("share").await.expect("stalled");
    assert_eq!(reason(&h.status("share")), "NotTheOwner");
    assert!(
        h.object("share").and_then(|o| o.claim()).is_none(),
        "the claim of what was let go of is gone"
    );
    // Back to the owner's credentials and to Delete: what Orphan left stays.
    let mut fixed = h.object("share").expect("object");
    fixed.spec.cloud_credentials_ref.cloud_name = "owner".into();
    fixed.spec.deletion_policy = Some(DeletionPolicy::Delete);
    h.apply(&fixed);
    h.reconcile("share").await.expect("ready");
    assert!(
        h.fake.member(IMAGE, "member-a").is_some(),
        "left in place, as Orphan said"
    );
    assert_eq!(h.fake.requests("DELETE member"), 0);
}

/// A look that let the previous membership go (Orphan) and then lost its claim write to a change
/// made meanwhile still writes its status: quiet, it would leave `status.applied` naming what was
/// let go of, and a later look under another policy would decide about it again (remove what
/// Orphan left).
#[tokio::test]
async fn a_race_lost_after_a_let_go_still_records_it() {
    let mut h = Harness::new().await;
    let mut object = share("share").with_policy(DeletionPolicy::Orphan);
    object.spec.member_id = "member-a".into();
    h.apply(&object);
    h.reconcile("share").await.expect("made");
    assert!(h.fake.member(IMAGE, "member-a").is_some());
    let mut edited = h.object("share").expect("object");
    edited.spec.member_id = "member-b".into();
    h.apply(&edited);
    h.calls();
    // The release of the claim is answered only after another writer changed the object: the
    // claim of member-b that follows tests what the release wrote, and loses.
    let resume = h.kube.pause_next_answer();
    let looked = h
        .ctx()
        .object(&kube::runtime::reflector::ObjectRef::<ImageAccess>::new("share").within(NAMESPACE))
        .expect("cached");
    let look = tokio::spawn(super::reconcile::reconcile(looked, h.ctx()));
    let paused = loop {
        let calls = h.calls();
        if let Some(call) = calls.into_iter().next() {
            break call;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(
        (paused.method.as_str(), paused.path.ends_with("/imageaccesses/share")),
        ("PATCH", true),
        "the release is the look's first write: {paused:?}"
    );
    let mut changed = h.object("share").expect("object");
    changed
        .metadata
        .finalizers
        .get_or_insert_default()
        .push("example.com/other".into());
    h.kube.replace(&changed);
    resume.notify_one();
    look.await.expect("joined").expect_err("the claim lost its race");
    let applied = h.object("share").and_then(|o| o.applied().cloned());
    assert!(
        applied.as_ref().is_none_or(|applied| applied.member_id != "member-a"),
        "the status no longer records what was let go of: {applied:?}"
    );
    // Back to Delete: what Orphan left stays.
    let mut fixed = h.object("share").expect("object");
    fixed.spec.deletion_policy = Some(DeletionPolicy::Delete);
    h.apply(&fixed);
    h.reconcile("share").await.expect("ready");
    assert!(h.fake.member(IMAGE, "member-a").is_some(), "left, as Orphan said");
    assert!(h.fake.member(IMAGE, "member-b").is_some());
}
