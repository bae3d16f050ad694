//! ImageShare selectors on the in-process fakes: builds followed, failures that change nothing,
//! the caps, and a steady refresh that writes nothing. The same on the real Glance and Keystone
//! is in tests/e2e_select.rs.

use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::share::child_name;
use super::tests::Harness;
use super::*;
use crate::api::{
    CloudCredentialsRef, ImageId, ImageSelector, ImageShare, ImageShareSpec, ImageShareStatus, MemberId,
    MemberSelector, SelectorValue,
};
use crate::testing::fake_openstack::{Fault, MEMBER_PROJECT};
use crate::testing::fixtures::{NAMESPACE, SECRET};

const B1: &str = "0b000000-0000-4000-8000-000000000001";
const B2: &str = "0b000000-0000-4000-8000-000000000002";
const B3: &str = "0b000000-0000-4000-8000-000000000003";

fn builds(h: &Harness) {
    h.fake.add_build(B1, "golden", &["golden"], "2026-12-01T00:00:00Z");
    h.fake.add_build(B2, "golden", &["golden"], "2026-12-02T00:00:00Z");
}

fn selecting(newest: Option<i32>) -> ImageShare {
    let mut share = ImageShare::new(
        "golden",
        ImageShareSpec {
            image_ids: Vec::new(),
            image_selector: Some(ImageSelector {
                tags: vec![SelectorValue("golden".into())],
                newest,
                ..ImageSelector::default()
            }),
            member_ids: vec![MemberId(MEMBER_PROJECT.into())],
            member_selector: None,
            member_refs: Vec::new(),
            refresh_interval: None,
            status: None,
            region: None,
            cloud_credentials_ref: CloudCredentialsRef {
                secret_name: SECRET.into(),
                cloud_name: "owner".into(),
            },
            deletion_policy: None,
            resync_period: None,
            management_policy: None,
        },
    );
    share.metadata.namespace = Some(NAMESPACE.into());
    share
}

async fn reconcile_share(h: &mut Harness) -> Result<Action, Error> {
    h.sync();
    let cached = h
        .ctx()
        .cached_share(&ObjectRef::new("golden").within(NAMESPACE))
        .expect("the share is in the cache");
    let result = share::reconcile(cached, h.ctx()).await;
    h.sync();
    result
}

fn children(h: &Harness) -> Vec<String> {
    let mut names: Vec<String> = h
        .kube
        .objects()
        .into_iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
        .map(|o| o.spec.image_id)
        .collect();
    names.sort();
    names
}

fn share_status(h: &Harness) -> ImageShareStatus {
    h.kube
        .share(NAMESPACE, "golden")
        .and_then(|s| s.status)
        .unwrap_or_default()
}

fn ready_reason(status: &ImageShareStatus) -> String {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason.clone())
        .unwrap_or_default()
}

/// The 2 newest builds tagged golden: a third build is picked at the next refresh, not before,
/// and the oldest leaves (its child deleted, as a list edit would).
#[tokio::test]
async fn a_new_build_is_shared_at_the_next_refresh_and_the_oldest_leaves() {
    let mut h = Harness::new().await;
    builds(&h);
    h.apply(&selecting(Some(2)));
    reconcile_share(&mut h).await.expect("selected");
    assert_eq!(children(&h), vec![B1.to_string(), B2.to_string()]);
    let selection = share_status(&h).selection.expect("the status lists what matched");
    let listed: Vec<&str> = selection.images.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(listed, vec![B2, B1], "newest first");
    assert_eq!(selection.images[0].name.as_deref(), Some("golden"));
    assert_eq!(selection.images[0].created_at.as_deref(), Some("2026-12-02T00:00:00Z"));
    assert_eq!(h.fake.requests("GET images"), 1, "one list per evaluation");

    h.fake.add_build(B3, "golden", &["golden"], "2026-12-03T00:00:00Z");
    reconcile_share(&mut h).await.expect("steady");
    assert_eq!(h.fake.requests("GET images"), 1, "not due: the last evaluation is used");
    assert_eq!(children(&h), vec![B1.to_string(), B2.to_string()]);

    h.later();
    reconcile_share(&mut h).await.expect("refreshed");
    assert_eq!(h.fake.requests("GET images"), 2);
    assert_eq!(children(&h), vec![B2.to_string(), B3.to_string()], "the oldest left");
}

/// A refresh that finds what the last one found sends the API server nothing.
#[tokio::test]
async fn a_steady_refresh_writes_nothing() {
    let mut h = Harness::new().await;
    builds(&h);
    h.apply(&selecting(None));
    reconcile_share(&mut h).await.expect("selected");
    reconcile_share(&mut h).await.expect("steady");
    h.calls();
    h.later();
    reconcile_share(&mut h).await.expect("refreshed");
    assert_eq!(h.fake.requests("GET images"), 2, "evaluated again");
    let writes: Vec<_> = h.calls().into_iter().filter(|c| c.method != "GET").collect();
    assert!(writes.is_empty(), "no Kubernetes write: {writes:?}");
}

/// Glance failing at a refresh is not "nothing matches": every child stays, the share says why
/// and retries with backoff.
#[tokio::test]
async fn a_failed_list_keeps_every_child() {
    let mut h = Harness::new().await;
    builds(&h);
    h.apply(&selecting(None));
    reconcile_share(&mut h).await.expect("selected");
    h.later();
    h.fake.inject(Fault {
        operation: "GET images",
        status: 503,
        retry_after: None,
    });
    reconcile_share(&mut h).await.expect_err("retried with backoff");
    assert_eq!(children(&h), vec![B1.to_string(), B2.to_string()], "nothing removed");
    let status = share_status(&h);
    let reconciling = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Reconciling")
        .expect("reconciling");
    assert_eq!(
        (reconciling.status.as_str(), reconciling.reason.as_str()),
        ("True", "SelectionFailed")
    );
    assert_ne!(
        ready_reason(&status),
        "SelectionFailed",
        "a passing failure takes Ready from nothing"
    );
    // Told again without a call while it is fresh: child events do not become Glance calls.
    let lists = h.fake.requests("GET images");
    reconcile_share(&mut h).await.expect_err("still failing");
    assert_eq!(h.fake.requests("GET images"), lists);
}

/// More images than a share holds: Stalled naming the cap, and what was shared stays.
#[tokio::test]
async fn more_than_the_cap_is_stalled_and_removes_nothing() {
    let mut h = Harness::new().await;
    builds(&h);
    h.apply(&selecting(Some(2)));
    reconcile_share(&mut h).await.expect("selected");
    for i in 0..100 {
        h.fake.add_build(
            &format!("0c000000-0000-4000-8000-{i:012}"),
            "golden",
            &["golden"],
            "2026-11-01T00:00:00Z",
        );
    }
    h.apply(&selecting(None));
    reconcile_share(&mut h).await.expect("stalled, not an error");
    let status = share_status(&h);
    assert_eq!(ready_reason(&status), "SelectionTooLarge");
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("stalled");
    assert!(stalled.message.contains("100"), "names the cap: {}", stalled.message);
    assert_eq!(children(&h), vec![B1.to_string(), B2.to_string()], "nothing removed");
}

/// An image that matches but is private gets a reason of its own; the others are shared.
#[tokio::test]
async fn a_matching_private_image_is_listed_with_its_reason() {
    let mut h = Harness::new().await;
    builds(&h);
    h.fake.set_visibility(B2, "private");
    h.apply(&selecting(None));
    reconcile_share(&mut h).await.expect("selected");
    assert_eq!(children(&h), vec![B1.to_string()]);
    let selection = share_status(&h).selection.expect("selection");
    let private = selection.images.iter().find(|i| i.id == B2).expect("listed");
    assert_eq!(private.reason.as_deref(), Some("NotSharedVisibility"));
    assert!(private.message.as_deref().unwrap_or_default().contains("--shared"));
    assert_eq!(share_status(&h).images, 1);
}

/// An untagged image leaves at the next refresh.
#[tokio::test]
async fn an_untagged_image_leaves() {
    let mut h = Harness::new().await;
    builds(&h);
    h.apply(&selecting(None));
    reconcile_share(&mut h).await.expect("selected");
    h.fake.set_tags(B1, &[]);
    h.later();
    reconcile_share(&mut h).await.expect("refreshed");
    assert_eq!(children(&h), vec![B2.to_string()]);
    assert!(h.object(&child_name("golden", B1, MEMBER_PROJECT)).is_none());
}

fn to_tagged_projects(cloud: &str) -> ImageShare {
    let mut share = selecting(None);
    share.spec.image_selector = None;
    share.spec.image_ids = vec![ImageId(crate::controller::tests::IMAGE.into())];
    share.spec.member_ids = Vec::new();
    share.spec.member_selector = Some(MemberSelector {
        tags: vec![SelectorValue("analytics".into())],
        ..MemberSelector::default()
    });
    share.spec.cloud_credentials_ref.cloud_name = cloud.into();
    share
}

/// Projects by tag: a project tagged gains the images at the next refresh, one untagged
/// loses them.
#[tokio::test]
async fn tagged_projects_gain_and_lose_the_images() {
    let mut h = Harness::new().await;
    h.fake.add_project("p1", "team-1", &["analytics"]);
    h.fake.add_project("p2", "team-2", &[]);
    h.apply(&to_tagged_projects("admin"));
    reconcile_share(&mut h).await.expect("selected");
    let members = |h: &Harness| {
        let mut m: Vec<String> = h.kube.objects().into_iter().map(|o| o.spec.member_id).collect();
        m.sort();
        m
    };
    assert_eq!(members(&h), vec!["p1"]);
    let selection = share_status(&h).selection.expect("selection");
    assert_eq!(selection.members[0].name.as_deref(), Some("team-1"));
    h.fake.add_project("p2", "team-2", &["analytics"]);
    h.fake.add_project("p1", "team-1", &[]);
    h.later();
    reconcile_share(&mut h).await.expect("refreshed");
    assert_eq!(members(&h), vec!["p2"]);
}

/// Credentials that may not list projects: Stalled naming the policy, nothing made.
#[tokio::test]
async fn a_refused_project_list_is_stalled_naming_the_permission() {
    let mut h = Harness::new().await;
    h.fake.add_project("p1", "team-1", &["analytics"]);
    h.apply(&to_tagged_projects("owner"));
    reconcile_share(&mut h).await.expect("stalled, not an error");
    let status = share_status(&h);
    assert_eq!(ready_reason(&status), "SelectionRefused");
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("stalled");
    assert!(
        stalled.message.contains("identity:list_projects"),
        "{}",
        stalled.message
    );
    assert!(stalled.message.contains("admin role"), "{}", stalled.message);
    assert!(h.kube.objects().is_empty());
}

/// An image shared before and made private for a while still matches: its children stay (their
/// own status says Glance refuses them), so the members keep their accepted status when it is
/// shared again.
#[tokio::test]
async fn an_image_made_private_keeps_its_children() {
    let mut h = Harness::new().await;
    builds(&h);
    h.apply(&selecting(None));
    reconcile_share(&mut h).await.expect("selected");
    assert_eq!(children(&h), vec![B1.to_string(), B2.to_string()]);
    h.fake.set_visibility(B2, "private");
    h.later();
    reconcile_share(&mut h).await.expect("refreshed");
    assert_eq!(children(&h), vec![B1.to_string(), B2.to_string()], "kept");
    let selection = share_status(&h).selection.expect("selection");
    assert!(selection.images.iter().any(|i| i.id == B2 && i.reason.is_some()));
}

/// A share whose Secret was missing looks again as soon as the Secret is back, not at the
/// stalled re-check (its remembered failure is forgotten with the Secret's change).
#[tokio::test]
async fn a_fixed_secret_is_used_at_once() {
    let mut h = Harness::new().await;
    builds(&h);
    let secret = h.kube.secret(NAMESPACE, SECRET).expect("secret");
    h.kube.remove_secret(NAMESPACE, SECRET);
    h.apply(&selecting(None));
    reconcile_share(&mut h).await.expect("stalled, not an error");
    assert_eq!(ready_reason(&share_status(&h)), "CredentialsSecretNotFound");
    assert!(children(&h).is_empty());
    let clouds = String::from_utf8(
        secret
            .data
            .and_then(|d| d.get("clouds.yaml").cloned())
            .expect("clouds.yaml")
            .0,
    )
    .expect("utf-8");
    let mut woken = h.ctx().shares.requeue.register(None);
    h.kube.put_secret(NAMESPACE, SECRET, &[("clouds.yaml", &clouds)]);
    h.sync();
    let asked = woken.try_recv().expect("the Secret's change wakes the share");
    assert_eq!(asked.name, "golden");
    reconcile_share(&mut h).await.expect("selected");
    assert_eq!(children(&h), vec![B1.to_string(), B2.to_string()]);
}

/// `newest: 1` and a new build uploaded private: the last shared build keeps its memberships
/// (the new one is listed with its reason and does not count), so nobody loses access.
#[tokio::test]
async fn a_new_build_not_shared_yet_does_not_push_the_last_one_out() {
    let mut h = Harness::new().await;
    builds(&h);
    h.apply(&selecting(Some(1)));
    reconcile_share(&mut h).await.expect("selected");
    assert_eq!(children(&h), vec![B2.to_string()]);
    h.fake.add_build(B3, "golden", &["golden"], "2026-12-03T00:00:00Z");
    h.fake.set_visibility(B3, "private");
    h.later();
    reconcile_share(&mut h).await.expect("refreshed");
    assert_eq!(children(&h), vec![B2.to_string()], "the last shared build stays");
    let selection = share_status(&h).selection.expect("selection");
    let listed: Vec<(&str, bool)> = selection
        .images
        .iter()
        .map(|i| (i.id.as_str(), i.reason.is_some()))
        .collect();
    assert_eq!(listed, vec![(B3, true), (B2, false)]);
}

/// Issue 23: the share looks again after its own `resyncPeriod` (sooner than its refresh).
#[tokio::test]
async fn a_share_looks_again_after_its_resync_period() {
    let mut h = Harness::new().await;
    builds(&h);
    let mut share = selecting(None);
    share.spec.resync_period = Some("2m".into());
    h.apply(&share);
    let wait = super::tests::requeue_after(&reconcile_share(&mut h).await.expect("selected"));
    assert!(
        (Duration::from_secs(108)..=Duration::from_secs(132)).contains(&wait),
        "2m, jittered: {wait:?}"
    );
}
