//! End to end, the membership lifecycle under what users do to credentials, regions, policies
//! and images (issue 19), on the real kube-apiserver and the real Keystone + Glance, with the
//! production defaults (resync 10 min, stalled re-check 5 min): only events and backoff can make
//! these pass in time.
#![cfg(feature = "e2e")]

mod common;

use std::collections::BTreeSet;

use common::RealOpenStack;
use common::cluster::{Operator, TestNamespace, WAIT, eventually, kubectl, kubectl_ok, manifest};
use image_access_operator::api::{FINALIZER, ImageAccess, ImageShare, Managed};
use image_access_operator::controller::share::SHARE_LABEL;
use kube::ResourceExt;
use kube::api::ListParams;
use serde_json::json;

/// A clouds.yaml as tests/env/up.sh writes it, with the cloud `name` logging in as `who`
/// (`owner`, `member1`, `member2`, `admin`) and `region_name` when given.
fn clouds(env: &RealOpenStack, entries: &[(&str, &str, Option<&str>)]) -> String {
    let mut out = String::from("clouds:\n");
    for (name, who, region) in entries {
        let (user, password) = match *who {
            "admin" => ("admin".to_string(), env.admin_password.clone()),
            other => (format!("{other}-user"), env.user_password.clone()),
        };
        out.push_str(&format!(
            "  {name}:\n    auth:\n      auth_url: {}\n      username: {user}\n      password: {password}\n      project_name: {who}\n      user_domain_name: Default\n      project_domain_name: Default\n    interface: public\n",
            env.keystone_url
        ));
        if let Some(region) = region {
            out.push_str(&format!("    region_name: {region}\n"));
        }
    }
    out
}

async fn ready_access(env: &RealOpenStack, ns: &TestNamespace, name: &str) -> String {
    let image = env.create_image("shared").await;
    let out = ns.apply(&manifest(name, &image, &env.member1_project_id, "owner", ""));
    assert!(out.success, "{}", out.stderr);
    ns.wait_ready(name).await;
    assert!(env.member(&image, &env.member1_project_id).await.is_some());
    image
}

fn delete_nowait(kind: &str, name: &str, ns: &TestNamespace) {
    kubectl_ok(&["delete", kind, name, "-n", &ns.name, "--wait=false"], None);
}

/// Case 1: the Secret rotated to another project's credentials, then the object deleted: Glance
/// answers the DELETE with 404 because those credentials cannot see the image. Not "gone": the
/// finalizer stays, Stalled, until the owner's credentials are back, then the membership goes.
#[tokio::test]
async fn blind_credentials_keep_the_finalizer_until_the_owners_are_back() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("blind", &env).await;
    let operator = Operator::start(&ns.name, &[]);
    let image = ready_access(&env, &ns, "share").await;
    ns.put_secret(&clouds(&env, &[("owner", "member2", Some("RegionOne"))]))
        .await;
    delete_nowait("ia", "share", &ns);
    let held = ns.wait_reason("share", "Stalled", Some("MembershipHidden")).await;
    assert!(held.has_finalizer(), "the finalizer stays");
    let message = common::cluster::condition(&held, "Stalled")
        .map(|c| c.2)
        .unwrap_or_default();
    assert!(message.contains(&env.owner_project_id), "names who made it: {message}");
    assert!(message.contains("deletionPolicy to Orphan"), "{message}");
    assert!(
        env.member(&image, &env.member1_project_id).await.is_some(),
        "the member keeps access, and the object says so"
    );

    ns.put_secret(&clouds(&env, &[("owner", "owner", Some("RegionOne"))]))
        .await;
    ns.wait_gone("share").await;
    eventually("the membership removed", WAIT, || async {
        env.try_member(&image, &env.member1_project_id)
            .await
            .ok()
            .filter(Option::is_none)
            .map(|_| ())
    })
    .await;
    drop(operator);
}

/// Case 2: `region_name` dropped from the clouds.yaml and added back (the same single-region
/// cloud, the same Glance): the membership is neither removed nor made again, and the member
/// keeps its acceptance.
#[tokio::test]
async fn a_region_name_dropped_and_added_back_keeps_the_membership_and_its_acceptance() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("region", &env).await;
    let operator = Operator::start(&ns.name, &[]);
    let image = ready_access(&env, &ns, "share").await;
    let member = env.member1_project_id.clone();
    let accepted = env
        .raw(
            "member1",
            reqwest::Method::PUT,
            &format!("/v2/images/{image}/members/{member}"),
            Some(json!({"status": "accepted"})),
        )
        .await;
    assert_eq!(accepted, 200, "the member accepts");
    let before = env.member(&image, &member).await.expect("member");
    let record = |o: &ImageAccess| o.status.as_ref().and_then(|s| s.applied.clone());
    let recorded = record(&ns.wait_ready("share").await).expect("applied");
    assert!(
        recorded.endpoint.is_some(),
        "the Glance endpoint is recorded: {recorded:?}"
    );
    let looks = r#"controller_runtime_reconcile_total{controller="imageaccess",result="success"}"#;

    for region in [None, Some("RegionOne")] {
        let seen = operator.metric(looks).await;
        ns.put_secret(&clouds(&env, &[("owner", "owner", region)])).await;
        // The Secret's change wakes the object: it has looked once the count moved.
        eventually(&format!("a look with region_name {region:?}"), WAIT, || async {
            operator.try_metric(looks).await.filter(|now| *now > seen).map(|_| ())
        })
        .await;
        let object = ns.wait_ready("share").await;
        assert_eq!(
            record(&object).as_ref(),
            Some(&recorded),
            "the same membership ({region:?})"
        );
        let now = env.member(&image, &member).await.expect("still a member");
        assert_eq!(now["created_at"], before["created_at"], "not made again ({region:?})");
        assert_eq!(now["status"], "accepted", "the acceptance stays ({region:?})");
    }
}

/// Case 7: deleting while the image is private: Glance keeps the member rows (they grant access
/// again once it is shared again) and refuses to remove them. The finalizer stays until the image
/// is shared again; then the membership is removed and the object goes.
#[tokio::test]
async fn deleting_while_the_image_is_private_waits_until_it_is_shared_again() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("private", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let image = ready_access(&env, &ns, "share").await;
    let member = env.member1_project_id.clone();
    env.set_visibility(&image, "private").await;
    delete_nowait("ia", "share", &ns);
    let held = ns.wait_reason("share", "Stalled", Some("ImageNoLongerShared")).await;
    assert!(
        held.has_finalizer(),
        "not finished: the rows grant access again once shared"
    );
    assert_eq!(
        env.raw(
            "owner",
            reqwest::Method::GET,
            &format!("/v2/images/{image}/members"),
            None
        )
        .await,
        403,
        "Glance refuses member calls on the private image"
    );

    env.set_visibility(&image, "shared").await;
    ns.wait_gone("share").await;
    assert_eq!(
        env.try_member(&image, &member).await,
        Ok(None),
        "removed once Glance allowed it"
    );
}

/// An ImageShare manifest as a user writes it.
fn share_manifest(name: &str, image: &str, members: &[&str], policy: &str) -> String {
    let members: String = members.iter().map(|m| format!("\n  - {m}")).collect();
    format!(
        "apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageShare\nmetadata:\n  name: {name}\nspec:\n  imageIds:\n  - {image}\n  memberIds:{members}\n  cloudCredentialsRef:\n    secretName: openstack-credentials\n    cloudName: owner\n  deletionPolicy: {policy}\n"
    )
}

async fn children(ns: &TestNamespace, share: &str) -> Result<BTreeSet<String>, kube::Error> {
    let list = ns
        .api()
        .list(&ListParams::default().labels(&format!("{SHARE_LABEL}={share}")))
        .await?;
    Ok(list.items.iter().map(|child| child.name_any()).collect())
}

async fn ready_share(env: &RealOpenStack, ns: &TestNamespace, name: &str) -> String {
    let image = env.create_image("shared").await;
    let members = [env.member1_project_id.as_str(), env.member2_project_id.as_str()];
    let out = ns.apply(&share_manifest(name, &image, &members, "Delete"));
    assert!(out.success, "{}", out.stderr);
    ns.wait_for::<ImageShare>(name, "Ready 2/2", WAIT, |share| {
        share.status.as_ref().is_some_and(|s| {
            s.observed_generation == share.metadata.generation
                && s.ready == 2
                && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
        })
    })
    .await;
    let held = ns.get_of::<ImageShare>(name).await.expect("share");
    assert!(
        held.finalizers().iter().any(|f| f == FINALIZER),
        "the share holds its finalizer"
    );
    for member in members {
        assert!(env.member(&image, member).await.is_some());
    }
    image
}

/// Case 3: one `kubectl apply` that sets `deletionPolicy: Orphan` and removes a member leaves
/// that member's membership in Glance.
#[tokio::test]
async fn a_share_edit_to_orphan_that_removes_a_member_keeps_its_membership() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("share-orphan", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let image = ready_share(&env, &ns, "golden").await;
    let out = ns.apply(&share_manifest("golden", &image, &[&env.member1_project_id], "Orphan"));
    assert!(out.success, "{}", out.stderr);
    eventually("the leaving child is gone", WAIT, || async {
        children(&ns, "golden").await.ok().filter(|c| c.len() == 1).map(|_| ())
    })
    .await;
    assert!(
        env.member(&image, &env.member2_project_id).await.is_some(),
        "the removed member keeps its membership: the share said Orphan"
    );
    assert!(env.member(&image, &env.member1_project_id).await.is_some());
}

/// Case 3: `kubectl apply` of Orphan followed at once by `kubectl delete ishare`: the garbage
/// collector deletes children that carry the share's last policy, so every membership stays.
#[tokio::test]
async fn a_share_set_to_orphan_and_deleted_at_once_leaves_every_membership() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("share-gone", &env).await;
    let operator = Operator::start(&ns.name, &[]);
    let image = ready_share(&env, &ns, "golden").await;
    let members = [env.member1_project_id.as_str(), env.member2_project_id.as_str()];
    let out = ns.apply(&share_manifest("golden", &image, &members, "Orphan"));
    assert!(out.success, "{}", out.stderr);
    let deleted = kubectl(&["delete", "ishare", "golden", "-n", &ns.name, "--wait=false"], None);
    assert!(deleted.success, "{}", deleted.stderr);
    ns.wait_gone_of::<ImageShare>("golden").await;
    eventually("the children are gone", WAIT, || async {
        children(&ns, "golden")
            .await
            .ok()
            .filter(BTreeSet::is_empty)
            .map(|_| ())
    })
    .await;
    for member in members {
        assert!(
            env.member(&image, member).await.is_some(),
            "membership of {member} left in place\n{}",
            operator.log_for_message()
        );
    }
}
