//! End to end, ImageShare: one ImageAccess per (image, member) pair on a real kube-apiserver
//! (with kube-controller-manager, so ownerReference garbage collection is real) against the real
//! Keystone + Glance, with the operator's production timings (resync 10 min): only watch events
//! and backoff can make these tests pass in time.
#![cfg(feature = "e2e")]

mod common;

use std::collections::BTreeSet;

use common::RealOpenStack;
use common::cluster::{
    Operator, TestNamespace, WAIT, eventually, is_ready, kubectl, kubectl_ok, manifest, metric_value, unique,
};
use image_access_operator::api::{ImageAccess, ImageShare};
use kube::ResourceExt;
use kube::api::ListParams;

const SHARE_LABEL: &str = "glance.viettelidc.com.vn/image-share";

/// An ImageShare manifest as a user writes it.
fn share_manifest(name: &str, images: &[&str], members: &[&str], extra_spec: &str) -> String {
    let list = |items: &[&str]| items.iter().map(|i| format!("\n  - {i}")).collect::<String>();
    format!(
        "apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageShare\nmetadata:\n  name: {name}\nspec:\n  imageIds:{}\n  memberIds:{}\n  cloudCredentialsRef:\n    secretName: openstack-credentials\n    cloudName: owner\n{extra_spec}",
        list(images),
        list(members)
    )
}

struct Team {
    env: RealOpenStack,
    ns: TestNamespace,
    operator: Operator,
}

impl Team {
    async fn new(prefix: &str) -> Team {
        let env = RealOpenStack::from_env();
        let ns = TestNamespace::new(prefix, &env).await;
        let operator = Operator::start(&ns.name, &[]);
        Team { env, ns, operator }
    }

    fn apply(&self, yaml: &str) {
        let out = self.ns.apply(yaml);
        assert!(out.success, "{}", out.stderr);
    }

    /// The ImageAccess objects of share `name`, by label.
    async fn children(&self, name: &str) -> Vec<ImageAccess> {
        self.ns
            .api()
            .list(&ListParams::default().labels(&format!("{SHARE_LABEL}={name}")))
            .await
            .expect("list")
            .items
    }

    /// Waits until share `name` says all `desired` memberships are Ready for its current spec.
    async fn wait_share_ready(&self, name: &str, desired: i32) -> ImageShare {
        self.ns
            .wait_for::<ImageShare>(name, &format!("Ready {desired}/{desired}"), WAIT, |share| {
                let status = share.status.as_ref();
                status.is_some_and(|s| {
                    s.observed_generation == share.metadata.generation
                        && s.desired == desired
                        && s.ready == desired
                        && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .await
    }

    /// Waits until Glance has exactly `expected` as the members of `image`. A failed look is
    /// "not yet", never "no members".
    async fn wait_members(&self, image: &str, expected: &[&str]) {
        let expected: BTreeSet<String> = expected.iter().map(|m| m.to_string()).collect();
        eventually(&format!("members of {image}: {expected:?}"), WAIT, || async {
            self.members(image)
                .await
                .ok()
                .filter(|members| *members == expected)
                .map(|_| ())
        })
        .await
    }

    /// The members of `image` as its owner lists them; an error when Glance does not answer
    /// 200 with a member list (never an empty list in its place).
    async fn members(&self, image: &str) -> Result<BTreeSet<String>, String> {
        self.env.members_of("owner", image).await
    }
}

#[tokio::test]
async fn admission_refuses_a_bad_share_with_a_readable_message() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("share-admission", &env).await;
    let image = "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";
    let long = "a".repeat(64);
    let cases = [
        (
            share_manifest("bad-image", &["golden"], &["p1"], ""),
            "imageIds must be Glance image IDs",
        ),
        (
            share_manifest("no-images", &[], &["p1"], "").replace("imageIds:", "imageIds: []"),
            "spec.imageIds: Invalid value: 0",
        ),
        (
            share_manifest("slash", &[image], &["a/b"], ""),
            "memberIds must not contain '/'",
        ),
        (share_manifest("twice", &[image], &["p1", "p1"], ""), "Duplicate value"),
        (
            share_manifest(&long, &[image], &["p1"], ""),
            "metadata.name must be at most 63 characters",
        ),
        (
            share_manifest("bad-policy", &[image], &["p1"], "  deletionPolicy: Keep\n"),
            "spec.deletionPolicy: Unsupported value: \"Keep\"",
        ),
    ];
    ns.assert_refused(&cases);
    let explain = kubectl_ok(&["explain", "imageshare.spec.memberIds"], None);
    assert!(
        explain.contains("IDs of the projects to share every image with"),
        "{explain}"
    );
}

/// The issue's walk: a 3 × 2 share makes 6 memberships; an image removed takes its 2 with it;
/// a member removed, then another added; each step seen in Glance and in the share's status.
#[tokio::test]
async fn a_share_makes_one_membership_per_pair_and_follows_its_lists() {
    let team = Team::new("share-lists").await;
    let env = &team.env;
    let images = [
        env.create_image("shared").await,
        env.create_image("shared").await,
        env.create_image("shared").await,
    ];
    let images: Vec<&str> = images.iter().map(String::as_str).collect();
    let (a, b, c) = (unique("project-a"), unique("project-b"), unique("project-c"));

    team.apply(&share_manifest("golden", &images, &[&a, &b], ""));
    let share = team.wait_share_ready("golden", 6).await;
    let status = share.status.expect("status");
    assert_eq!(
        (status.images, status.members, status.ready_of_desired.as_deref()),
        (3, 2, Some("6/6"))
    );
    for image in &images {
        team.wait_members(image, &[&a, &b]).await;
    }
    let children = team.children("golden").await;
    assert_eq!(children.len(), 6);
    assert!(
        children
            .iter()
            .all(|child| child.owner_references()[0].kind == "ImageShare")
    );
    let table = kubectl_ok(&["get", "ishare", "-n", &team.ns.name], None);
    assert!(table.contains("6/6"), "{table}");
    // Steady: nothing more is written (no loop between the children's and the share's writes).
    // That nothing is written can only be seen by waiting a window out, so it keeps its sleep;
    // the window starts once every child is Ready for its generation and no reconcile of either
    // kind is at work, and the operator must still answer after it (a stopped one writes
    // nothing either).
    eventually("the share and its children settled", WAIT, || async {
        let children = team.children("golden").await;
        let text = team.operator.try_metrics().await?;
        let idle = ["imageaccess", "imageshare"].iter().all(|controller| {
            let sample = format!(r#"controller_runtime_active_workers{{controller="{controller}"}}"#);
            metric_value(&text, &sample) == 0.0
        });
        (children.len() == 6 && children.iter().all(is_ready) && idle).then_some(())
    })
    .await;
    let versions = |share: &ImageShare, children: &[ImageAccess]| {
        let mut versions: Vec<Option<String>> = children.iter().map(|c| c.metadata.resource_version.clone()).collect();
        versions.push(share.metadata.resource_version.clone());
        versions
    };
    let share = team.ns.get_of::<ImageShare>("golden").await.expect("share");
    let before = versions(&share, &team.children("golden").await);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let _alive = team.operator.metrics().await;
    let share = team.ns.get_of::<ImageShare>("golden").await.expect("share");
    assert_eq!(
        before,
        versions(&share, &team.children("golden").await),
        "a steady share writes nothing"
    );

    team.apply(&share_manifest("golden", &images[..2], &[&a, &b], ""));
    team.wait_members(images[2], &[]).await;
    team.wait_share_ready("golden", 4).await;
    eventually("the image's children gone", WAIT, || async {
        let children = team.children("golden").await;
        (children.len() == 4 && children.iter().all(|c| c.spec.image_id != images[2])).then_some(())
    })
    .await;

    team.apply(&share_manifest("golden", &images[..2], &[&a], ""));
    team.wait_members(images[0], &[&a]).await;
    team.wait_members(images[1], &[&a]).await;
    team.apply(&share_manifest("golden", &images[..2], &[&a, &c], ""));
    team.wait_share_ready("golden", 4).await;
    team.wait_members(images[0], &[&a, &c]).await;
    team.wait_members(images[1], &[&a, &c]).await;
}

/// Deleting a share deletes its children through the garbage collector, in background (kubectl's
/// default) and in foreground; their finalizers remove the memberships. With Orphan they stay.
#[tokio::test]
async fn deleting_a_share_removes_its_memberships_unless_orphan() {
    let team = Team::new("share-delete").await;
    let env = &team.env;
    let image = env.create_image("shared").await;
    let orphan_image = env.create_image("shared").await;
    let (a, b) = (unique("project-a"), unique("project-b"));
    team.apply(&share_manifest("background", &[&image], &[&a], ""));
    team.apply(&share_manifest("foreground", &[&image], &[&b], ""));
    team.apply(&share_manifest(
        "orphan",
        &[&orphan_image],
        &[&a, &b],
        "  deletionPolicy: Orphan\n",
    ));
    for (name, desired) in [("background", 1), ("foreground", 1), ("orphan", 2)] {
        team.wait_share_ready(name, desired).await;
    }
    team.wait_members(&image, &[&a, &b]).await;

    let ns = team.ns.name.as_str();
    let out = kubectl(&["delete", "ishare", "background", "-n", ns, "--wait=false"], None);
    assert!(out.success, "{}", out.stderr);
    let out = kubectl(
        &[
            "delete",
            "ishare",
            "foreground",
            "-n",
            ns,
            "--cascade=foreground",
            "--wait=false",
        ],
        None,
    );
    assert!(out.success, "{}", out.stderr);
    team.wait_members(&image, &[]).await;
    for name in ["background", "foreground"] {
        team.ns.wait_gone_of::<ImageShare>(name).await;
        eventually(&format!("{name}'s children gone"), WAIT, || async {
            team.children(name).await.is_empty().then_some(())
        })
        .await;
    }

    let out = kubectl(
        &["delete", "ishare", "orphan", "-n", ns, "--wait=true", "--timeout=60s"],
        None,
    );
    assert!(out.success, "{}", out.stderr);
    eventually("orphan's children gone", WAIT, || async {
        team.children("orphan").await.is_empty().then_some(())
    })
    .await;
    assert_eq!(
        team.members(&orphan_image)
            .await
            .expect("the members of the orphan's image"),
        BTreeSet::from([a.clone(), b.clone()]),
        "Orphan: the memberships stay"
    );
}

/// A child deleted by hand comes back (and so does its membership); a child edited by hand is set
/// back to what the share says.
#[tokio::test]
async fn children_deleted_or_edited_by_hand_are_set_back() {
    let team = Team::new("share-heal").await;
    let env = &team.env;
    let image = env.create_image("shared").await;
    let (a, b) = (unique("project-a"), unique("project-b"));
    team.apply(&share_manifest("golden", &[&image], &[&a, &b], ""));
    team.wait_share_ready("golden", 2).await;
    let ns = team.ns.name.as_str();
    let children = team.children("golden").await;
    let deleted = children
        .iter()
        .find(|c| c.spec.member_id == a)
        .expect("child of a")
        .name_any();
    let edited = children
        .iter()
        .find(|c| c.spec.member_id == b)
        .expect("child of b")
        .name_any();
    let old_uid = children
        .iter()
        .find(|c| c.spec.member_id == a)
        .and_then(|c| c.metadata.uid.clone());

    let out = kubectl(&["delete", "ia", &deleted, "-n", ns, "--wait=false"], None);
    assert!(out.success, "{}", out.stderr);
    let back = team
        .ns
        .wait_for::<ImageAccess>(&deleted, "recreated and Ready", WAIT, |child| {
            child.metadata.uid != old_uid && common::cluster::is_ready(child)
        })
        .await;
    assert_eq!(back.spec.member_id, a);

    let out = kubectl(
        &[
            "patch",
            "ia",
            &edited,
            "-n",
            ns,
            "--type=merge",
            "-p",
            r#"{"spec":{"deletionPolicy":"Orphan","region":"Elsewhere"}}"#,
        ],
        None,
    );
    assert!(out.success, "{}", out.stderr);
    team.ns
        .wait_for::<ImageAccess>(&edited, "set back", WAIT, |child| {
            child.spec.deletion_policy.is_none() && child.spec.region.is_none()
        })
        .await;
    team.wait_share_ready("golden", 2).await;
    team.wait_members(&image, &[&a, &b]).await;
}

/// A hand-written ImageAccess already manages a pair the share names: one manager per
/// membership, so the share's child waits, and the share is Stalled naming the other object.
#[tokio::test]
async fn a_pair_managed_by_a_hand_written_object_stalls_the_share_naming_it() {
    let team = Team::new("share-conflict").await;
    let env = &team.env;
    let image = env.create_image("shared").await;
    let (a, b) = (unique("project-a"), unique("project-b"));
    team.apply(&manifest("hand-written", &image, &a, "owner", ""));
    team.ns.wait_ready("hand-written").await;
    team.apply(&share_manifest("golden", &[&image], &[&a, &b], ""));
    let share = team
        .ns
        .wait_for::<ImageShare>("golden", "Stalled naming hand-written", WAIT, |share| {
            share.status.as_ref().is_some_and(|s| {
                s.ready == 1
                    && s.stalled == 1
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Stalled" && c.status == "True" && c.message.contains("hand-written"))
            })
        })
        .await;
    let stalled = share
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Stalled")
        .expect("Stalled");
    assert!(
        stalled.message.contains("MembershipManagedElsewhere"),
        "{}",
        stalled.message
    );
    assert!(
        stalled
            .message
            .contains(&format!("kubectl get ia -n {} -l {SHARE_LABEL}=golden", team.ns.name)),
        "{}",
        stalled.message
    );

    // The hand-written object goes: the share's child takes over, the share becomes Ready.
    let out = kubectl(
        &["delete", "ia", "hand-written", "-n", &team.ns.name, "--wait=false"],
        None,
    );
    assert!(out.success, "{}", out.stderr);
    team.wait_share_ready("golden", 2).await;
    team.wait_members(&image, &[&a, &b]).await;
}

/// An object the share did not make holds the name of one of its children: never taken over;
/// the share is Stalled (`NameTaken`) until that object goes, and is woken when it does.
#[tokio::test]
async fn a_child_name_held_by_another_object_is_never_taken_over() {
    let team = Team::new("share-taken").await;
    let env = &team.env;
    let image = env.create_image("shared").await;
    let other_image = env.create_image("shared").await;
    let (a, b) = (unique("project-a"), unique("project-b"));
    let name = image_access_operator::controller::share::child_name("golden", &image, &a);
    team.apply(&manifest(&name, &other_image, &b, "owner", ""));
    team.ns.wait_ready(&name).await;
    team.apply(&share_manifest("golden", &[&image], &[&a], ""));
    team.ns
        .wait_for::<ImageShare>("golden", "Stalled NameTaken", WAIT, |share| {
            share.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Stalled" && c.status == "True" && c.message.contains("NameTaken"))
            })
        })
        .await;
    let untouched = team.ns.get(&name).await.expect("the other object");
    assert!(untouched.owner_references().is_empty(), "not taken over");
    assert_eq!(untouched.spec.member_id, b);
    let members = team.members(&image).await.expect("the members of the image");
    assert!(members.is_empty(), "nothing shared: {members:?}");

    let out = kubectl(&["delete", "ia", &name, "-n", &team.ns.name, "--wait=false"], None);
    assert!(out.success, "{}", out.stderr);
    team.wait_share_ready("golden", 1).await;
    team.wait_members(&image, &[&a]).await;
}
