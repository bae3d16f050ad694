//! End to end, ImageShare selectors: golden images that follow their builds and projects by
//! tag, on a real kube-apiserver against the real Keystone + Glance, with the operator's
//! production timings except `refreshInterval` (30s, the least admitted): Glance and Keystone
//! have no watch, so a refresh is what picks up a new build, and only it can make these pass.
#![cfg(feature = "e2e")]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::RealOpenStack;
use common::cluster::{Operator, TestNamespace, eventually, unique};
use image_access_operator::api::ImageShare;

/// One refresh (30s, jittered by 10 %) and the writes that follow it, with room for a slow
/// machine.
const REFRESH_WAIT: Duration = Duration::from_secs(120);

fn selector_share(name: &str, cloud: &str, images: &str, members: &str, extra: &str) -> String {
    format!(
        "apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageShare\nmetadata:\n  name: {name}\nspec:\n{images}{members}  refreshInterval: 30s\n  cloudCredentialsRef:\n    secretName: openstack-credentials\n    cloudName: {cloud}\n{extra}"
    )
}

struct Team {
    env: RealOpenStack,
    ns: TestNamespace,
    _operator: Operator,
}

impl Team {
    async fn new(prefix: &str) -> Team {
        let env = RealOpenStack::from_env();
        let ns = TestNamespace::new(prefix, &env).await;
        let operator = Operator::start(&ns.name, &[]);
        Team {
            env,
            ns,
            _operator: operator,
        }
    }

    fn apply(&self, yaml: &str) {
        let out = self.ns.apply(yaml);
        assert!(out.success, "{}", out.stderr);
    }

    /// The members of `image` as `who` (its owner) lists them; an error when Glance does not
    /// answer with a list (never an empty list in its place).
    async fn members(&self, who: &str, image: &str) -> Result<BTreeSet<String>, String> {
        self.env.members_of(who, image).await
    }

    async fn wait_members(&self, who: &str, image: &str, expected: &[&str], within: Duration) {
        let expected: BTreeSet<String> = expected.iter().map(|m| m.to_string()).collect();
        eventually(&format!("members of {image}: {expected:?}"), within, || async {
            self.members(who, image)
                .await
                .ok()
                .filter(|members| *members == expected)
                .map(|_| ())
        })
        .await
    }

    /// Waits until share `name`'s selection lists exactly `images` (newest first) and all its
    /// `desired` memberships are Ready.
    async fn wait_selected(&self, name: &str, images: &[&str], desired: i32, within: Duration) -> ImageShare {
        let what = format!("{name} selects {images:?}, {desired} Ready");
        self.ns
            .wait_for::<ImageShare>(name, &what, within, |share| {
                let Some(status) = share.status.as_ref() else {
                    return false;
                };
                let selected: Vec<&str> = status
                    .selection
                    .as_ref()
                    .map(|s| s.images.iter().map(|i| i.id.as_str()).collect())
                    .unwrap_or_default();
                selected == images
                    && status.observed_generation == share.metadata.generation
                    && status.desired == desired
                    && status.ready == desired
            })
            .await
    }
}

/// Glance's created_at counts seconds: builds made a second apart have an order.
async fn next_second() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

/// The walk: the 2 newest builds tagged golden shared with 2 projects (Delete). A build
/// still uploading is not picked; a third build is shared within one refresh and the oldest
/// leaves (its memberships removed); the newest untagged leaves and the one before comes back.
/// A second share (Orphan) of every build of another tag: an image untagged leaves it and keeps
/// its membership. (Glance here allows 2 members per image: the shares select other images.)
#[tokio::test]
async fn a_selector_share_follows_the_builds() {
    let team = Team::new("select-builds").await;
    let env = &team.env;
    let (tag, kept) = (unique("golden"), unique("kept"));
    let b1 = env.create_build("owner", "ubuntu-golden", &[&tag], true).await;
    next_second().await;
    let b2 = env.create_build("owner", "ubuntu-golden", &[&tag], true).await;
    let c1 = env.create_build("owner", "debian-golden", &[&kept], true).await;
    next_second().await;
    let c2 = env.create_build("owner", "debian-golden", &[&kept], true).await;
    let (m1, m2, m3) = (unique("team-a"), unique("team-b"), unique("team-c"));
    team.apply(&selector_share(
        "newest",
        "owner",
        &format!("  imageSelector:\n    tags: [{tag}]\n    properties: {{iao_build: test}}\n    newest: 2\n"),
        &format!("  memberIds: [{m1}, {m2}]\n"),
        "",
    ));
    team.apply(&selector_share(
        "every",
        "owner",
        &format!("  imageSelector:\n    tags: [{kept}]\n"),
        &format!("  memberIds: [{m3}]\n"),
        "  deletionPolicy: Orphan\n",
    ));
    let share = team
        .wait_selected("newest", &[&b2, &b1], 4, common::cluster::WAIT)
        .await;
    let selection = share.status.and_then(|s| s.selection).expect("selection");
    assert_eq!(selection.images[0].name.as_deref(), Some("ubuntu-golden"));
    assert!(selection.images[0].created_at.is_some(), "{selection:?}");
    assert!(selection.evaluated_at.is_some());
    team.wait_selected("every", &[&c2, &c1], 2, common::cluster::WAIT).await;
    team.wait_members("owner", &b1, &[&m1, &m2], common::cluster::WAIT)
        .await;
    team.wait_members("owner", &c1, &[&m3], common::cluster::WAIT).await;

    // A build still uploading (the newest), then a finished one.
    next_second().await;
    let queued = env.create_build("owner", "ubuntu-golden", &[&tag], false).await;
    let b3 = env.create_build("owner", "ubuntu-golden", &[&tag], true).await;
    team.wait_selected("newest", &[&b3, &b2], 4, REFRESH_WAIT).await;
    team.wait_members("owner", &b3, &[&m1, &m2], REFRESH_WAIT).await;
    team.wait_members("owner", &b1, &[], REFRESH_WAIT).await;
    assert_eq!(
        team.members("owner", &queued).await,
        Ok(BTreeSet::new()),
        "a queued build is not shared"
    );

    // Untagged: the newest leaves (Delete: its memberships go) and the one before it is back.
    env.tag_image("owner", &b3, &tag, false).await;
    team.wait_selected("newest", &[&b2, &b1], 4, REFRESH_WAIT).await;
    team.wait_members("owner", &b3, &[], REFRESH_WAIT).await;
    team.wait_members("owner", &b1, &[&m1, &m2], REFRESH_WAIT).await;

    // Untagged from the Orphan share: it leaves, its membership stays.
    env.tag_image("owner", &c1, &kept, false).await;
    team.wait_selected("every", &[&c2], 1, REFRESH_WAIT).await;
    eventually("the untagged image's child gone", REFRESH_WAIT, || async {
        let children = team
            .ns
            .api()
            .list(&kube::api::ListParams::default().labels("glance.viettelidc.com.vn/image-share=every"))
            .await
            .ok()?;
        (children.items.len() == 1).then_some(())
    })
    .await;
    assert_eq!(
        team.members("owner", &c1).await,
        Ok(BTreeSet::from([m3.clone()])),
        "Orphan keeps the membership"
    );
}

/// Projects by tag, with admin credentials (they may list projects): a project tagged gains the
/// image within one refresh, a project untagged loses it.
#[tokio::test]
async fn tagged_projects_gain_and_lose_the_images() {
    let team = Team::new("select-projects").await;
    let env = &team.env;
    let tag = unique("analytics");
    let image = env.create_build("admin", &unique("shared-tools"), &[], true).await;
    let p1 = env.create_project(&unique("team-1"), &[&tag]).await;
    let p2 = env.create_project(&unique("team-2"), &[]).await;
    let images = format!("  imageIds: [{image}]\n");
    let members = format!("  memberSelector:\n    tags: [{tag}]\n    domain: default\n");
    team.apply(&selector_share("by-tag", "admin", &images, &members, ""));
    team.wait_members("admin", &image, &[&p1], common::cluster::WAIT).await;
    env.tag_project(&p2, &tag, true).await;
    team.wait_members("admin", &image, &[&p1, &p2], REFRESH_WAIT).await;
    env.tag_project(&p1, &tag, false).await;
    team.wait_members("admin", &image, &[&p2], REFRESH_WAIT).await;
    let share = team.ns.get_of::<ImageShare>("by-tag").await.expect("share");
    let selection = share.status.and_then(|s| s.selection).expect("selection");
    assert_eq!(
        selection.members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        vec![p2.as_str()]
    );
    assert!(
        selection.members[0]
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("team-2"))
    );
}

/// Credentials that may not list projects: the share is Stalled naming the permission, and
/// nothing is made.
#[tokio::test]
async fn a_project_list_refused_by_keystone_names_the_permission() {
    let team = Team::new("select-refused").await;
    let image = team.env.create_build("owner", &unique("tools"), &[], true).await;
    let images = format!("  imageIds: [{image}]\n");
    let members = "  memberSelector:\n    tags: [anything]\n";
    team.apply(&selector_share("refused", "owner", &images, members, ""));
    let share = team
        .ns
        .wait_for::<ImageShare>("refused", "Stalled SelectionRefused", common::cluster::WAIT, |share| {
            share.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Stalled" && c.status == "True" && c.reason == "SelectionRefused")
            })
        })
        .await;
    let stalled = share
        .status
        .expect("status")
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Stalled")
        .expect("stalled");
    assert!(
        stalled.message.contains("identity:list_projects"),
        "{}",
        stalled.message
    );
    assert!(
        !stalled.message.contains(&team.env.user_password),
        "no secret in conditions"
    );
    assert_eq!(team.members("owner", &image).await, Ok(BTreeSet::new()));
}

/// Admission: exactly one of the list and the selector, a selector that selects something, a
/// refresh of at least 30s, each refused with what to write.
#[tokio::test]
async fn admission_refuses_selectors_that_make_no_sense() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("select-admission", &env).await;
    let image = "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";
    let ids = format!("  imageIds: [{image}]\n");
    let members = "  memberIds: [p1]\n";
    let cases = [
        (
            selector_share(
                "both",
                "owner",
                &format!("{ids}  imageSelector:\n    tags: [golden]\n"),
                members,
                "",
            ),
            "give exactly one of imageIds (the images by ID) and imageSelector",
        ),
        (
            selector_share("neither", "owner", "", members, ""),
            "give exactly one of imageIds (the images by ID) and imageSelector",
        ),
        (
            selector_share(
                "both-members",
                "owner",
                &ids,
                "  memberIds: [p1]\n  memberSelector:\n    tags: [t]\n",
                "",
            ),
            "give exactly one of memberIds (the projects by ID), memberRefs (the projects by name) and memberSelector",
        ),
        (
            selector_share("empty", "owner", "  imageSelector:\n    newest: 2\n", members, ""),
            "imageSelector needs name, tags or properties",
        ),
        (
            selector_share("fast", "owner", &ids, members, "").replace("refreshInterval: 30s", "refreshInterval: 10s"),
            "refreshInterval must be a duration of at least 30s",
        ),
        (
            selector_share(
                "too-many",
                "owner",
                "  imageSelector:\n    tags: [golden]\n    newest: 101\n",
                members,
                "",
            ),
            "spec.imageSelector.newest",
        ),
    ];
    ns.assert_refused(&cases);
    let explain = common::cluster::kubectl_ok(&["explain", "imageshare.spec.imageSelector"], None);
    assert!(explain.contains("newest"), "{explain}");
}
