//! End to end, names instead of IDs: `imageRef` and `memberRef` on ImageAccess and `imageRef`
//! on ImageAccessAccept, resolved with the object's credentials against the real Keystone +
//! Glance (none, one and several candidates), and kept until the spec changes.
#![cfg(feature = "e2e")]

mod common;

use common::RealOpenStack;
use common::cluster::{Operator, SECRET, TestNamespace, WAIT, has_reason, is_ready, unique};
use image_access_operator::api::{ImageAccess, ImageAccessAccept, Managed};

fn by_name(name: &str, image: &str, member: &str, cloud: &str) -> String {
    format!(
        "apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageAccess\nmetadata:\n  name: {name}\nspec:\n{image}{member}  cloudCredentialsRef:\n    secretName: {SECRET}\n    cloudName: {cloud}\n"
    )
}

fn image_ref(name: &str) -> String {
    format!("  imageRef:\n    name: {name}\n")
}

fn member_ref(project: &str, domain: Option<&str>) -> String {
    let domain = domain.map_or(String::new(), |d| format!("    domain: {d}\n"));
    format!("  memberRef:\n    projectName: {project}\n{domain}")
}

async fn wait_stalled(ns: &TestNamespace, name: &str, reason: &str) -> String {
    let object = ns
        .wait_for::<ImageAccess>(name, &format!("Stalled {reason}"), WAIT, |o| {
            has_reason(o, "Stalled", "True", Some(reason))
        })
        .await;
    object
        .condition("Stalled")
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

/// Image and project names with none, one and several candidates, resolved with admin
/// credentials (they may list projects); the resolved IDs show in the status and are kept when
/// a second image of the same name appears (a rebuilt image is not followed silently).
#[tokio::test]
async fn names_resolve_to_one_candidate_and_refuse_none_or_several() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("names", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let (one, two, none) = (unique("tools"), unique("twice"), unique("missing"));
    let image = env.create_build("admin", &one, &[], true).await;
    let first = env.create_build("admin", &two, &[], true).await;
    let second = env.create_build("admin", &two, &[], true).await;
    let consumer = unique("consumer");
    let project = env.create_project(&consumer, &[]).await;
    let elsewhere = env.create_domain(&unique("elsewhere")).await;
    let twin = unique("twin");
    env.create_project(&twin, &[]).await;
    env.create_project_in(&elsewhere, &twin, &[]).await;

    let apply = |yaml: String| {
        let out = ns.apply(&yaml);
        assert!(out.success, "{}", out.stderr);
    };
    apply(by_name(
        "one",
        &image_ref(&one),
        &member_ref(&consumer, Some("default")),
        "admin",
    ));
    apply(by_name(
        "no-image",
        &image_ref(&none),
        &member_ref(&consumer, None),
        "admin",
    ));
    apply(by_name(
        "two-images",
        &image_ref(&two),
        &member_ref(&consumer, None),
        "admin",
    ));
    apply(by_name(
        "no-project",
        &image_ref(&one),
        &member_ref(&unique("nobody"), None),
        "admin",
    ));
    apply(by_name(
        "two-projects",
        &image_ref(&one),
        &member_ref(&twin, None),
        "admin",
    ));

    let ready = ns.wait_ready("one").await;
    let resolved = ready.status.and_then(|s| s.resolved).expect("status.resolved");
    assert_eq!(resolved.image_id.as_deref(), Some(image.as_str()));
    assert_eq!(resolved.member_id.as_deref(), Some(project.as_str()));
    let path = |image: &str| format!("/v2/images/{image}/members/{project}");
    assert_eq!(
        env.raw("admin", reqwest::Method::GET, &path(&image), None).await,
        200,
        "the membership exists in Glance"
    );

    let message = wait_stalled(&ns, "no-image", "ImageNameNotFound").await;
    assert!(message.contains(&none), "{message}");
    let message = wait_stalled(&ns, "two-images", "ImageNameAmbiguous").await;
    assert!(
        message.contains(&first) && message.contains(&second),
        "names both: {message}"
    );
    let message = wait_stalled(&ns, "no-project", "ProjectNameNotFound").await;
    assert!(message.contains("memberId"), "{message}");
    let message = wait_stalled(&ns, "two-projects", "ProjectNameAmbiguous").await;
    assert!(message.contains(&elsewhere), "names the domains: {message}");

    // An ImageShare names its projects the same way.
    let share = format!(
        "apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageShare\nmetadata:\n  name: by-name\nspec:\n  imageIds: [{first}]\n  memberRefs:\n  - projectName: {consumer}\n    domain: default\n  cloudCredentialsRef:\n    secretName: {SECRET}\n    cloudName: admin\n"
    );
    apply(share);
    common::cluster::eventually("the share's membership by project name", WAIT, || async {
        let code = env.raw("admin", reqwest::Method::GET, &path(&first), None).await;
        (code == 200).then_some(())
    })
    .await;

    // A rebuild of the same name, then an edit of another field: the object keeps what it
    // resolved (only a change of the name looks it up again).
    let rebuilt = env.create_build("admin", &one, &[], true).await;
    let edited = by_name(
        "one",
        &image_ref(&one),
        &member_ref(&consumer, Some("default")),
        "admin",
    ) + "  deletionPolicy: Orphan\n";
    apply(edited);
    let still = ns
        .wait_for::<ImageAccess>("one", "Ready for the edited spec", WAIT, |o| {
            is_ready(o) && o.status.as_ref().and_then(|s| s.observed_generation) == o.metadata.generation
        })
        .await;
    assert_eq!(
        still.status.and_then(|s| s.resolved).and_then(|r| r.image_id),
        Some(image.clone())
    );
    assert_eq!(
        env.raw("admin", reqwest::Method::GET, &path(&rebuilt), None).await,
        404,
        "not followed silently"
    );
}

/// Credentials that may not look projects up: Stalled naming the permission, as
/// `openstack image add project NAME` would fail; nothing made in Glance.
#[tokio::test]
async fn a_project_name_the_credentials_may_not_look_up_names_the_permission() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("names-forbidden", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let name = unique("owned");
    let image = env.create_build("owner", &name, &[], true).await;
    let out = ns.apply(&by_name(
        "forbidden",
        &image_ref(&name),
        &member_ref("member1", Some("default")),
        "owner",
    ));
    assert!(out.success, "{}", out.stderr);
    let message = wait_stalled(&ns, "forbidden", "ProjectLookupForbidden").await;
    assert!(message.contains("identity:list_projects"), "{message}");
    assert!(!message.contains(&env.user_password));
    assert!(env.member(&image, &env.member1_project_id).await.is_none());
}

/// The member accepts an image by name among those shared with it.
#[tokio::test]
async fn an_accept_finds_the_image_by_name_among_those_shared_with_the_member() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("names-accept", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let name = unique("shared-tools");
    let image = env.create_build("owner", &name, &[], true).await;
    let member = env.member1_project_id.clone();
    let out = ns.apply(&common::cluster::manifest("offer", &image, &member, "owner", ""));
    assert!(out.success, "{}", out.stderr);
    ns.wait_ready("offer").await;
    let accept = format!(
        "apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageAccessAccept\nmetadata:\n  name: take\nspec:\n  imageRef:\n    name: {name}\n  status: accepted\n  cloudCredentialsRef:\n    secretName: {SECRET}\n    cloudName: member1\n"
    );
    let out = ns.apply(&accept);
    assert!(out.success, "{}", out.stderr);
    let accepted = ns.wait_for::<ImageAccessAccept>("take", "Ready", WAIT, is_ready).await;
    let resolved = accepted.status.and_then(|s| s.membership.resolved).expect("resolved");
    assert_eq!(resolved.image_id.as_deref(), Some(image.as_str()));
    let member = env.member(&image, &member).await.expect("member");
    assert_eq!(member["status"], "accepted");
}

/// Admission: an ID and a name for the same thing is refused with what to write.
#[tokio::test]
async fn admission_refuses_an_id_and_a_name_together() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("names-admission", &env).await;
    let image = "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";
    let cases = [
        (
            by_name(
                "both",
                &format!("  imageId: {image}\n{}", image_ref("x")),
                "  memberId: p1\n",
                "owner",
            ),
            "give exactly one of imageId (the image by ID) and imageRef (the image by name)",
        ),
        (
            by_name("neither", "", "  memberId: p1\n", "owner"),
            "give exactly one of imageId (the image by ID) and imageRef (the image by name)",
        ),
        (
            by_name(
                "both-members",
                &image_ref("x"),
                &format!("  memberId: p1\n{}", member_ref("p", None)),
                "owner",
            ),
            "give exactly one of memberId (the project by ID) and memberRef (the project by name)",
        ),
    ];
    ns.assert_refused(&cases);
}
