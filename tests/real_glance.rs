//! The client against a real Keystone + Glance (Debian's Keystone 22 + Glance 25, started by
//! `tests/env/up.sh`): create, show, set status, delete and the error codes, with owner,
//! member and admin credentials, and each auth type. Runs in `make test` (feature `e2e`).
#![cfg(feature = "e2e")]

mod common;

use std::sync::Arc;

use common::RealOpenStack;
use common::cluster::unique;
use image_access_operator::api::MemberStatus;
use image_access_operator::metrics::Metrics;
use image_access_operator::openstack::{
    ClientSettings, Cloud, ConfigError, Glance, HttpErrorKind, NoFiles, OpenStack, OpenStackError, SecretFiles,
};

async fn glance(env: &RealOpenStack, yaml: &str, cloud: &str) -> Result<Glance, OpenStackError> {
    let openstack = OpenStack::new(ClientSettings::default(), Arc::new(Metrics::default()));
    let cloud = Cloud::from_clouds_yaml(yaml, cloud, &NoFiles)?;
    let _ = env;
    openstack.session(&cloud.credentials)?.glance(None, &cloud).await
}

fn kind<T: std::fmt::Debug>(result: Result<T, OpenStackError>) -> HttpErrorKind {
    let err = result.expect_err("an error");
    err.http_kind().unwrap_or_else(|| panic!("not an HTTP error: {err}"))
}

/// What ImageAccessAccept relies on: the member's own credentials accept, reject and return
/// to pending, the member sees its membership and the image (name, owner), and the image is in
/// the member's default image list only while accepted.
#[tokio::test]
async fn the_member_accepts_rejects_and_returns_to_pending_with_its_own_credentials() {
    let env = RealOpenStack::from_env();
    let yaml = env.clouds_yaml();
    let image = env.create_image("shared").await;
    let member_id = env.member1_project_id.clone();
    let owner = glance(&env, &yaml, "owner").await.expect("owner");
    let member = glance(&env, &yaml, "member1").await.expect("member1");
    assert!(
        member
            .show_member(&image, &member_id)
            .await
            .expect_err("not shared yet")
            .is_not_found(),
        "not shared yet: 404 to the member"
    );
    owner.create_member(&image, &member_id).await.expect("share");
    assert_eq!(
        member
            .show_member(&image, &member_id)
            .await
            .expect("member sees itself")
            .status,
        MemberStatus::Pending
    );
    let seen = member.show_image(&image).await.expect("member sees the image");
    assert_eq!(seen.owner.as_deref(), Some(env.owner_project_id.as_str()));
    assert!(seen.name.is_some());
    for status in [
        MemberStatus::Accepted,
        MemberStatus::Rejected,
        MemberStatus::Pending,
        MemberStatus::Accepted,
    ] {
        let set = member
            .set_member_status(&image, &member_id, status)
            .await
            .expect("member sets its status");
        assert_eq!(set.status, status);
        let listed = env.image_list("member1").await.contains(&image);
        assert_eq!(listed, status == MemberStatus::Accepted, "{status}: listed {listed}");
    }
    assert_eq!(
        kind(
            owner
                .set_member_status(&image, &member_id, MemberStatus::Rejected)
                .await
        ),
        HttpErrorKind::Forbidden,
        "the owner's credentials may not: the accept kind says NotTheMember"
    );
}

#[tokio::test]
async fn member_lifecycle_with_owner_member_and_admin_credentials() {
    let env = RealOpenStack::from_env();
    let yaml = env.clouds_yaml();
    let image = env.create_image("shared").await;
    let member_id = env.member1_project_id.clone();
    let owner = glance(&env, &yaml, "owner").await.expect("owner");
    let member = glance(&env, &yaml, "member1").await.expect("member1");
    let admin = glance(&env, &yaml, "admin").await.expect("admin");

    let created = owner.create_member(&image, &member_id).await.expect("create");
    assert_eq!(created.status, MemberStatus::Pending);
    assert_eq!(created.image_id, image);
    assert_eq!(created.schema.as_deref(), Some("/v2/schemas/member"));
    assert_eq!(
        kind(owner.create_member(&image, &member_id).await),
        HttpErrorKind::Conflict
    );

    let shown = owner.show_member(&image, &member_id).await.expect("show");
    assert_eq!(shown, created);
    assert_eq!(
        env.member(&image, &member_id).await.expect("in glance")["created_at"],
        created.created_at.as_str()
    );

    assert_eq!(
        kind(
            owner
                .set_member_status(&image, &member_id, MemberStatus::Accepted)
                .await
        ),
        HttpErrorKind::Forbidden,
        "owner may not set a status"
    );
    let accepted = member
        .set_member_status(&image, &member_id, MemberStatus::Accepted)
        .await
        .expect("member accepts");
    assert_eq!(accepted.status, MemberStatus::Accepted);
    let rejected = admin
        .set_member_status(&image, &member_id, MemberStatus::Rejected)
        .await
        .expect("admin sets");
    assert_eq!(rejected.status, MemberStatus::Rejected);

    let listed = member.list_members(&image).await.expect("member lists itself");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        kind(member.delete_member(&image, &member_id).await),
        HttpErrorKind::Forbidden,
        "a member may not remove"
    );

    owner.delete_member(&image, &member_id).await.expect("owner removes");
    assert_eq!(
        kind(owner.delete_member(&image, &member_id).await),
        HttpErrorKind::NotFound,
        "then 404"
    );
    assert_eq!(
        kind(owner.show_member(&image, &member_id).await),
        HttpErrorKind::NotFound
    );
    assert!(env.member(&image, &member_id).await.is_none());
}

#[tokio::test]
async fn real_error_codes_map_to_the_typed_errors() {
    let env = RealOpenStack::from_env();
    let yaml = env.clouds_yaml();
    let owner = glance(&env, &yaml, "owner").await.expect("owner");

    let private = env.create_image("private").await;
    let err = owner
        .create_member(&private, &env.member1_project_id)
        .await
        .expect_err("private image");
    assert_eq!(err.http_kind(), Some(HttpErrorKind::Forbidden));
    assert!(!err.is_transient());
    assert!(
        !err.to_string().contains("<br"),
        "HTML removed from Glance's message: {err}"
    );

    let missing = "00000000-0000-4000-8000-000000000000";
    assert_eq!(
        kind(owner.create_member(missing, &env.member1_project_id).await),
        HttpErrorKind::NotFound
    );

    let shared = env.create_image("shared").await;
    let stranger = glance(&env, &yaml, "member2").await.expect("member2");
    assert_eq!(
        kind(stranger.create_member(&shared, "x").await),
        HttpErrorKind::NotFound,
        "cannot see another's image"
    );

    for i in 0..env.member_quota {
        owner
            .create_member(&shared, &format!("quota-member-{i}"))
            .await
            .expect("within quota");
    }
    assert_eq!(
        kind(owner.create_member(&shared, "one-too-many").await),
        HttpErrorKind::QuotaExceeded
    );
    // Glance checks the quota before duplicates: an existing member of a full image is a 413 too.
    assert_eq!(
        kind(owner.create_member(&shared, "quota-member-0").await),
        HttpErrorKind::QuotaExceeded
    );

    // A shared image made private keeps its members, but member calls answer 403.
    env.set_visibility(&shared, "private").await;
    assert_eq!(
        kind(owner.delete_member(&shared, "quota-member-0").await),
        HttpErrorKind::Forbidden
    );
    assert_eq!(kind(owner.list_members(&shared).await), HttpErrorKind::Forbidden);
}

#[tokio::test]
async fn wrong_password_is_refused_by_keystone() {
    let env = RealOpenStack::from_env();
    let yaml = env
        .clouds_yaml()
        .replace(&format!("password: {}", env.user_password), "password: wrong-password");
    let err = glance(&env, &yaml, "owner").await.expect_err("refused");
    assert_eq!(err.http_kind(), Some(HttpErrorKind::Unauthorized));
    assert_eq!(err.operation().map(|o| o.as_str()), Some("authenticate"));
    assert!(!err.to_string().contains("wrong-password"));
}

#[tokio::test]
async fn application_credential_and_token_auth_work() {
    let env = RealOpenStack::from_env();
    let image = env.create_image("shared").await;
    let (id, secret) = env.application_credential(&unique("iao-test")).await;
    let yaml = format!(
        "clouds:\n  appcred:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {}\n      application_credential_id: {id}\n      application_credential_secret: {secret}\n    region_name: RegionOne\n",
        env.keystone_url
    );
    let by_appcred = glance(&env, &yaml, "appcred").await.expect("application credential");
    by_appcred
        .create_member(&image, "appcred-member")
        .await
        .expect("owner rights through the credential");

    let token = env.token("owner").await;
    let yaml = format!(
        "clouds:\n  tok:\n    auth_type: token\n    auth:\n      auth_url: {}\n      token: {token}\n      project_id: {}\n",
        env.keystone_url, env.owner_project_id
    );
    let by_token = glance(&env, &yaml, "tok").await.expect("token auth");
    let shown = by_token.show_member(&image, "appcred-member").await.expect("show");
    assert_eq!(shown.status, MemberStatus::Pending);
}

#[tokio::test]
async fn a_region_the_catalog_lacks_is_a_clear_error() {
    let env = RealOpenStack::from_env();
    let openstack = OpenStack::new(ClientSettings::default(), Arc::new(Metrics::default()));
    let cloud = Cloud::from_clouds_yaml(&env.clouds_yaml(), "owner", &NoFiles).expect("cloud");
    let err = openstack
        .session(&cloud.credentials)
        .expect("session")
        .glance(Some("Atlantis"), &cloud)
        .await
        .expect_err("no endpoint");
    let text = err.to_string();
    assert!(
        text.contains("Atlantis") && text.contains("public in RegionOne"),
        "{text}"
    );
}

/// The Secret's `cacert` and `verify: false` reach the TLS client. The test apiserver is the
/// TLS endpoint at hand (with our own CA): reaching it at all means TLS was accepted.
#[tokio::test]
async fn tls_settings_from_the_secret_are_used() {
    let state = std::env::var("IAO_E2E_STATE").expect("IAO_E2E_STATE (source .e2e/env.sh)");
    let ca = std::fs::read(format!("{state}/kube/pki/ca.crt")).expect("test CA");
    let port = std::env::var("IAO_APISERVER_PORT").unwrap_or_else(|_| "16443".into());
    let yaml = |verify: &str| {
        format!(
            "clouds:\n  tls:\n    auth:\n      auth_url: https://127.0.0.1:{port}\n      username: u\n      password: p\n      project_name: x\n      domain_name: Default\n{verify}"
        )
    };
    let attempt_with = |yaml: String, ca: Option<Vec<u8>>, allow_insecure_tls: bool| async move {
        let settings = ClientSettings {
            allow_insecure_tls,
            ..ClientSettings::default()
        };
        let openstack = OpenStack::new(settings, Arc::new(Metrics::default()));
        let files = SecretFiles(ca.into_iter().map(|ca| ("cacert".to_string(), ca)).collect());
        let cloud = Cloud::from_clouds_yaml(&yaml, "tls", &files).expect("cloud");
        match openstack.session(&cloud.credentials) {
            Ok(session) => session.glance(None, &cloud).await.expect_err("not a Keystone"),
            Err(refused) => refused,
        }
    };
    let attempt = |yaml: String, ca: Option<Vec<u8>>| attempt_with(yaml, ca, false);
    // Issue 7, C13: an untrusted certificate is not a transient outage: no retry fixes it.
    let unknown_ca = attempt(yaml(""), None).await;
    assert!(matches!(unknown_ca, OpenStackError::TlsTrust { .. }), "{unknown_ca}");
    assert!(!unknown_ca.is_transient());
    let target = image_access_operator::api::Membership::named("i".into(), "m".into(), None);
    let problem = image_access_operator::controller::problem::Problem::openstack(
        &unknown_ca,
        image_access_operator::controller::problem::Step::ReadCredentials,
        &target,
        "ns/creds",
    );
    assert!(problem.is_stalled(), "{problem:?}");
    assert_eq!(problem.reason(), "TLSCertificateNotTrusted");
    assert!(
        problem.message().contains("cacert key of Secret ns/creds"),
        "{problem:?}"
    );
    let with_ca = attempt(yaml(""), Some(ca)).await;
    assert!(
        matches!(with_ca, OpenStackError::Http { .. }),
        "the CA from the Secret is trusted: {with_ca}"
    );
    // Issue 23: verification turned off is refused unless the operator allows it.
    for off in ["    verify: false\n", "    insecure: true\n"] {
        let refused = attempt(yaml(off), None).await;
        assert!(
            matches!(refused, OpenStackError::Config(ConfigError::InsecureRefused)),
            "{off}: {refused}"
        );
        let problem = image_access_operator::controller::problem::Problem::openstack(
            &refused,
            image_access_operator::controller::problem::Step::ReadCredentials,
            &target,
            "ns/creds",
        );
        assert_eq!(problem.reason(), "InsecureTLSRefused");
        assert!(
            problem.message().contains("cacert") && problem.message().contains("--allow-insecure-tls"),
            "{problem:?}"
        );
        let unverified = attempt_with(yaml(off), None, true).await;
        assert!(
            matches!(unverified, OpenStackError::Http { .. }),
            "{off} with --allow-insecure-tls: {unverified}"
        );
    }
}
