//! `managementPolicy: Observe` (issue 23) against the in-process fakes: an object that only
//! observes reads and reports (InSync with what differs), never writes to Glance, holds no
//! finalizer, never blocks a Managed object, and switches both ways with no Glance write.

use std::time::Duration;

use super::tests::{Harness, IMAGE, condition, event_reasons, share};
use super::*;
use crate::api::{
    AcceptDeletionPolicy, ImageAccess, ImageAccessAccept, ImageAccessAcceptStatus, ManagementPolicy, MemberStatus,
};
use crate::testing::fake_openstack::{Fault, MEMBER_PROJECT, OTHER_PROJECT, OWNER_PROJECT};
use crate::testing::fixtures::NAMESPACE;

/// Glance writes of every kind the fake answered.
fn writes(h: &Harness) -> usize {
    ["POST members", "PUT member", "DELETE member"]
        .iter()
        .map(|kind| h.fake.requests(kind))
        .sum()
}

fn observing(mut object: ImageAccess) -> ImageAccess {
    object.spec.management_policy = Some(ManagementPolicy::Observe);
    object
}

#[tokio::test]
async fn an_observe_object_reports_a_membership_and_its_drift_and_writes_nothing() {
    let mut h = Harness::new().await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Accepted);
    h.apply(&observing(share("watch").with_member_status(MemberStatus::Accepted)));
    h.reconcile("watch").await.expect("observed");
    let object = h.object("watch").expect("object");
    assert!(!object.has_finalizer(), "an Observe object holds no finalizer");
    assert!(object.claim().is_none(), "nor a claim");
    let status = h.status("watch");
    assert_eq!(status.applied, None, "it holds nothing");
    assert_eq!(status.member_status, Some(MemberStatus::Accepted));
    assert_eq!(condition(&status, "Ready").reason, "Observed");
    assert_eq!(condition(&status, "InSync").status, "True");

    // Someone changes the member status by hand: drift, shown, not repaired.
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Rejected);
    h.later();
    h.reconcile("watch").await.expect("observed");
    let status = h.status("watch");
    let in_sync = condition(&status, "InSync");
    assert_eq!(
        (in_sync.status.as_str(), in_sync.reason.as_str()),
        ("False", "MemberStatusDiffers")
    );
    assert!(in_sync.message.contains("rejected") && in_sync.message.contains("accepted"));
    assert_eq!(status.member_status, Some(MemberStatus::Rejected));
    assert_eq!(condition(&status, "Ready").status, "True", "it is there, observed");

    // Removed by hand: reported as missing, not made again.
    h.fake.remove_member(IMAGE, MEMBER_PROJECT);
    h.later();
    h.reconcile("watch").await.expect("a stalled object is no error");
    let status = h.status("watch");
    assert_eq!(condition(&status, "Stalled").reason, "MemberNotFound");
    assert!(condition(&status, "Stalled").message.contains("Managed"));
    assert_eq!(condition(&status, "InSync").reason, "MemberNotFound");
    assert_eq!(writes(&h), 0, "Observe never writes to Glance");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_none());

    // Its deletion calls nothing: no finalizer to wait for.
    h.delete("watch");
    assert!(h.object("watch").is_none(), "deleted at once");
    assert_eq!(writes(&h), 0);
}

/// An Observe object never blocks a Managed object of the same membership, even the older one.
#[tokio::test]
async fn an_observe_object_never_blocks_a_managed_one() {
    let mut h = Harness::new().await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Pending);
    h.apply(&observing(share("watch")));
    h.reconcile("watch").await.expect("observed");
    h.apply(&share("manage"));
    h.reconcile("manage").await.expect("managed");
    let status = h.status("manage");
    assert_eq!(condition(&status, "Ready").status, "True", "{status:?}");
    assert!(status.applied.is_some(), "the Managed object adopted it");
    // Deleting the Managed one removes the membership: an observer takes nothing over.
    h.delete("manage");
    h.reconcile("manage").await.expect("deleted");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_none());
    assert!(h.object("manage").is_none());
}

/// Managed → Observe lets go with no Glance write; Observe → Managed adopts with reads only.
#[tokio::test]
async fn switching_both_ways_writes_nothing_to_glance() {
    let mut h = Harness::new().await;
    h.apply(&share("switch"));
    h.reconcile("switch").await.expect("created");
    assert_eq!(writes(&h), 1, "the create");
    h.calls();

    let mut object = h.object("switch").expect("object");
    object.spec.management_policy = Some(ManagementPolicy::Observe);
    h.apply(&object);
    h.reconcile("switch").await.expect("observing");
    let object = h.object("switch").expect("object");
    assert!(!object.has_finalizer() && object.claim().is_none(), "let go of");
    assert_eq!(h.status("switch").applied, None);
    assert_eq!(condition(&h.status("switch"), "InSync").status, "True");
    assert!(event_reasons(&h.calls()).contains(&"ManagementStopped".to_string()));
    assert_eq!(writes(&h), 1, "no write to let go");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some(), "left as it is");

    let mut object = h.object("switch").expect("object");
    object.spec.management_policy = Some(ManagementPolicy::Managed);
    h.apply(&object);
    h.reconcile("switch").await.expect("managed again");
    let object = h.object("switch").expect("object");
    assert!(object.has_finalizer());
    let status = h.status("switch");
    assert!(status.applied.is_some(), "adopted");
    assert!(
        status.conditions.iter().all(|c| c.type_ != "InSync"),
        "InSync is for Observe only"
    );
    assert_eq!(writes(&h), 1, "adopted with reads only");
    assert_eq!(event_reasons(&h.calls()), vec!["MemberAdopted"]);
}

/// Switched to Observe while being deleted: the finalizer goes with no Glance call.
#[tokio::test]
async fn a_deletion_switched_to_observe_lets_go_without_a_call() {
    let mut h = Harness::new().await;
    h.apply(&share("switch"));
    h.reconcile("switch").await.expect("created");
    h.fake.inject(Fault {
        operation: "DELETE member",
        status: 503,
        retry_after: None,
    });
    h.delete("switch");
    h.reconcile("switch").await.expect_err("Glance unavailable");
    let mut object = h.object("switch").expect("still there");
    object.spec.management_policy = Some(ManagementPolicy::Observe);
    h.apply(&object);
    h.reconcile("switch").await.expect("let go");
    assert!(h.object("switch").is_none(), "gone");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some(), "left in Glance");
}

/// Credentials that cannot see the image's members conclude nothing about absence.
#[tokio::test]
async fn an_observer_that_cannot_see_the_members_says_whose_credentials_could() {
    let mut h = Harness::new().await;
    // Another member's credentials see the image, and of its members only their own.
    h.fake.put_member(IMAGE, OTHER_PROJECT, MemberStatus::Accepted);
    h.apply(&observing(ImageAccess::test("watch", IMAGE, MEMBER_PROJECT, "other")));
    // Waits (with backoff) for credentials that could see.
    let _ = h.reconcile("watch").await;
    let status = h.status("watch");
    let ready = condition(&status, "Ready");
    assert_eq!(ready.reason, "MembershipHidden", "{ready:?}");
    assert!(
        ready.message.contains(OWNER_PROJECT),
        "names whose credentials see it: {}",
        ready.message
    );
    assert_eq!(condition(&status, "InSync").status, "Unknown", "nothing concluded");
    assert_eq!(writes(&h), 0);
}

fn accept_status(h: &Harness) -> ImageAccessAcceptStatus {
    h.kube
        .accept(NAMESPACE, "accept")
        .and_then(|a| a.status)
        .unwrap_or_default()
}

#[tokio::test]
async fn an_observe_accept_reports_the_member_status_and_sets_nothing() {
    let mut h = Harness::new().await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Pending);
    let mut accept = ImageAccessAccept::test("accept", IMAGE, "member", MemberStatus::Accepted)
        .with_policy(AcceptDeletionPolicy::Reject);
    accept.spec.management_policy = Some(ManagementPolicy::Observe);
    h.apply(&accept);
    h.reconcile_kind::<ImageAccessAccept>("accept").await.expect("observed");
    let status = accept_status(&h);
    let in_sync = status
        .membership
        .conditions
        .iter()
        .find(|c| c.type_ == "InSync")
        .expect("InSync");
    assert_eq!(
        (in_sync.status.as_str(), in_sync.reason.as_str()),
        ("False", "MemberStatusDiffers")
    );
    assert_eq!(status.membership.member_status, Some(MemberStatus::Pending));
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).map(|m| m.status),
        Some(MemberStatus::Pending)
    );
    assert!(!h.kube.accept(NAMESPACE, "accept").expect("accept").has_finalizer());
    assert_eq!(writes(&h), 0);
}

/// Observe → Managed whose first Managed look fails before it holds the membership: the next
/// look still adopts with reads only (the InSync mark stays until then).
#[tokio::test]
async fn a_switch_to_managed_interrupted_still_adopts_with_reads_only() {
    let mut h = Harness::new().await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Pending);
    h.apply(&observing(share("switch")));
    h.reconcile("switch").await.expect("observed");
    let mut object = h.object("switch").expect("object");
    object.spec.management_policy = Some(ManagementPolicy::Managed);
    h.apply(&object);
    h.fake.inject(Fault {
        operation: "GET members",
        status: 503,
        retry_after: None,
    });
    h.reconcile("switch").await.expect_err("Glance unavailable");
    let status = h.status("switch");
    let in_sync = condition(&status, "InSync");
    assert_eq!(in_sync.reason, "SwitchingToManaged", "{in_sync:?}");
    h.later();
    h.reconcile("switch").await.expect("adopted");
    assert!(h.status("switch").applied.is_some());
    assert!(h.status("switch").conditions.iter().all(|c| c.type_ != "InSync"));
    assert_eq!(writes(&h), 0, "adopted with reads only");
}

/// An object that only observes does not hold its Secret (its deletion needs nothing).
#[tokio::test]
async fn an_observe_object_does_not_hold_its_secret() {
    let mut h = Harness::new().await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Pending);
    h.apply(&observing(share("watch")));
    h.reconcile("watch").await.expect("observed");
    assert!(
        !h.ctx()
            .secret_in_use(crate::testing::fixtures::NAMESPACE, crate::testing::fixtures::SECRET),
        "not held for an observer"
    );
}

/// A deletion the cache shows as Observe, while the object was switched back to Managed: the
/// release tests the policy, so the finalizer stays and the Managed cleanup removes the
/// membership (its deletionPolicy is Delete).
#[tokio::test]
async fn a_release_as_observe_does_not_land_on_an_object_switched_back_to_managed() {
    let mut h = Harness::new().await;
    h.apply(&share("switch"));
    h.reconcile("switch").await.expect("created");
    let mut object = h.object("switch").expect("object");
    object.spec.management_policy = Some(ManagementPolicy::Observe);
    h.kube.apply(&object);
    h.delete("switch");
    // Back to Managed; the cache has not seen it yet.
    let mut object = h.object("switch").expect("still there");
    object.spec.management_policy = Some(ManagementPolicy::Managed);
    h.kube.apply(&object);
    let result = reconcile(
        h.op.ctx
            .object(&kube::runtime::reflector::ObjectRef::<ImageAccess>::new("switch").within(NAMESPACE))
            .expect("cached"),
        h.ctx(),
    )
    .await;
    assert!(result.is_err(), "the release refused by its test");
    assert!(h.object("switch").expect("kept").has_finalizer());
    h.later();
    h.reconcile("switch").await.expect("cleaned up as Managed");
    assert!(h.object("switch").is_none());
    assert!(
        h.fake.member(IMAGE, MEMBER_PROJECT).is_none(),
        "Delete, as the spec says now"
    );
}

/// Waiting for credentials that could see (or for the owner's share) follows a resyncPeriod
/// shorter than the stalled re-check.
#[tokio::test]
async fn a_wait_follows_a_short_resync_period() {
    let mut h = Harness::new().await;
    h.fake.put_member(IMAGE, OTHER_PROJECT, MemberStatus::Accepted);
    let mut object = observing(ImageAccess::test("watch", IMAGE, MEMBER_PROJECT, "other"));
    object.spec.resync_period = Some("1m".into());
    h.apply(&object);
    let mut longest = Duration::ZERO;
    for _ in 0..12 {
        h.later();
        let cached =
            h.op.ctx
                .object(&kube::runtime::reflector::ObjectRef::<ImageAccess>::new("watch").within(NAMESPACE))
                .expect("cached");
        let error = reconcile(cached.clone(), h.ctx()).await.expect_err("waiting");
        let action = error_policy(cached, &error, h.ctx());
        longest = longest.max(super::tests::requeue_after(&action));
        h.sync();
    }
    assert!(longest > Duration::from_secs(30), "backed off: {longest:?}");
    assert!(
        longest <= Duration::from_secs(60),
        "never past its resyncPeriod: {longest:?}"
    );
}
