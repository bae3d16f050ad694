//! The Keystone + Glance client against the in-process fake: rights, codes, token handling and
//! fault injection. The same calls run against a real Keystone + Glance in `real_glance.rs`.

use std::sync::Arc;
use std::time::Duration;

use image_access_operator::api::MemberStatus;
use image_access_operator::metrics::Metrics;
use image_access_operator::openstack::{
    ClientSettings, Cloud, Glance, HttpErrorKind, NoFiles, OpenStack, OpenStackError, SecretFiles,
};
use image_access_operator::testing::fake_openstack::{
    ADMIN_PROJECT, FakeOpenStack, Fault, MEMBER_PROJECT, OWNER_PROJECT, PASSWORD,
};

const IMAGE: &str = "11111111-2222-4333-8444-555555555555";

struct Setup {
    fake: FakeOpenStack,
    openstack: OpenStack,
    metrics: Arc<Metrics>,
}

async fn setup(settings: ClientSettings) -> Setup {
    let fake = FakeOpenStack::start().await;
    fake.add_image(IMAGE, OWNER_PROJECT, "shared");
    let metrics = Arc::new(Metrics::default());
    let openstack = OpenStack::new(settings, metrics.clone());
    Setup {
        fake,
        openstack,
        metrics,
    }
}

impl Setup {
    async fn glance(&self, cloud: &str) -> Result<Glance, OpenStackError> {
        let cloud = Cloud::from_clouds_yaml(&self.fake.clouds_yaml(), cloud, &NoFiles)?;
        self.openstack.session(&cloud.credentials)?.glance(None, &cloud).await
    }
}

fn kind(result: Result<impl std::fmt::Debug, OpenStackError>) -> Option<HttpErrorKind> {
    result.expect_err("an error").http_kind()
}

#[tokio::test]
async fn owner_member_and_admin_rights_match_glance() {
    let s = setup(ClientSettings::default()).await;
    let owner = s.glance("owner").await.expect("owner");
    let member = s.glance("member").await.expect("member");
    let admin = s.glance("admin").await.expect("admin");

    let created = owner.create_member(IMAGE, MEMBER_PROJECT).await.expect("owner creates");
    assert_eq!(created.status, MemberStatus::Pending);
    assert_eq!(
        kind(owner.create_member(IMAGE, MEMBER_PROJECT).await),
        Some(HttpErrorKind::Conflict)
    );
    let shown = owner.show_member(IMAGE, MEMBER_PROJECT).await.expect("show");
    assert_eq!(shown, created);

    // The owner may not set the status; the member and an admin may.
    assert_eq!(
        kind(
            owner
                .set_member_status(IMAGE, MEMBER_PROJECT, MemberStatus::Accepted)
                .await
        ),
        Some(HttpErrorKind::Forbidden)
    );
    let accepted = member
        .set_member_status(IMAGE, MEMBER_PROJECT, MemberStatus::Accepted)
        .await
        .expect("member accepts");
    assert_eq!(accepted.status, MemberStatus::Accepted);
    let rejected = admin
        .set_member_status(IMAGE, MEMBER_PROJECT, MemberStatus::Rejected)
        .await
        .expect("admin sets");
    assert_eq!(rejected.status, MemberStatus::Rejected);

    // A member lists only itself; the owner lists all.
    owner.create_member(IMAGE, ADMIN_PROJECT).await.expect("second member");
    assert_eq!(owner.list_members(IMAGE).await.expect("list").len(), 2);
    let own = member.list_members(IMAGE).await.expect("member lists");
    assert_eq!(
        own.iter().map(|m| m.member_id.as_str()).collect::<Vec<_>>(),
        vec![MEMBER_PROJECT]
    );

    // A member may not remove; the owner may, once.
    assert_eq!(
        kind(member.delete_member(IMAGE, MEMBER_PROJECT).await),
        Some(HttpErrorKind::Forbidden)
    );
    owner.delete_member(IMAGE, MEMBER_PROJECT).await.expect("owner removes");
    assert_eq!(
        kind(owner.delete_member(IMAGE, MEMBER_PROJECT).await),
        Some(HttpErrorKind::NotFound)
    );
    assert_eq!(
        kind(owner.show_member(IMAGE, MEMBER_PROJECT).await),
        Some(HttpErrorKind::NotFound)
    );
}

#[tokio::test]
async fn visibility_quota_and_missing_images_give_the_real_codes() {
    let s = setup(ClientSettings::default()).await;
    let owner = s.glance("owner").await.expect("owner");
    s.fake.add_image("private-image", OWNER_PROJECT, "private");
    assert_eq!(
        kind(owner.create_member("private-image", MEMBER_PROJECT).await),
        Some(HttpErrorKind::Forbidden)
    );
    assert_eq!(
        kind(owner.create_member("no-such-image", MEMBER_PROJECT).await),
        Some(HttpErrorKind::NotFound)
    );
    let member = s.glance("member").await.expect("member");
    assert_eq!(
        kind(member.create_member(IMAGE, "someone").await),
        Some(HttpErrorKind::NotFound),
        "not visible to a stranger"
    );
    s.fake.set_member_quota(1);
    owner.create_member(IMAGE, "first").await.expect("within quota");
    assert_eq!(
        kind(owner.create_member(IMAGE, "second").await),
        Some(HttpErrorKind::QuotaExceeded)
    );
    let bad = owner.set_member_status(IMAGE, "first", MemberStatus::Accepted).await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn expired_token_is_replaced_once_and_the_call_retried_once() {
    let s = setup(ClientSettings::default()).await;
    let owner = s.glance("owner").await.expect("owner");
    owner.create_member(IMAGE, MEMBER_PROJECT).await.expect("create");
    assert_eq!(s.fake.requests("POST tokens"), 1);
    s.fake.expire_all_tokens();
    owner
        .show_member(IMAGE, MEMBER_PROJECT)
        .await
        .expect("show after re-authentication");
    assert_eq!(s.fake.requests("POST tokens"), 2, "one re-authentication");
    assert_eq!(s.fake.requests("GET member"), 2, "the 401, then one retry");
}

#[tokio::test]
async fn a_persistent_401_is_not_retried_forever() {
    let s = setup(ClientSettings::default()).await;
    let owner = s.glance("owner").await.expect("owner");
    for _ in 0..2 {
        s.fake.inject(Fault {
            operation: "GET member",
            status: 401,
            retry_after: None,
        });
    }
    let err = owner.show_member(IMAGE, MEMBER_PROJECT).await.expect_err("401 twice");
    assert_eq!(err.http_kind(), Some(HttpErrorKind::Unauthorized));
    assert_eq!(s.fake.requests("GET member"), 2);
}

/// Issue 7, B9: the refresh margin scales down with the token's lifetime.
#[tokio::test]
async fn a_short_lived_token_is_reused_not_replaced_before_every_request() {
    let s = setup(ClientSettings::default()).await;
    // 60 s tokens are always inside keystoneauth's 2-minute margin.
    s.fake.set_token_lifetime(Duration::from_secs(60));
    let owner = s.glance("owner").await.expect("owner");
    for _ in 0..10 {
        owner.list_members(IMAGE).await.expect("list");
    }
    assert_eq!(s.fake.requests("POST tokens"), 1, "one token for all ten calls");
}

#[tokio::test]
async fn token_close_to_expiry_is_refreshed_before_use() {
    let s = setup(ClientSettings::default()).await;
    // 2 s tokens: replaced in the last quarter of their life (the last 0.5 s).
    s.fake.set_token_lifetime(Duration::from_secs(2));
    let owner = s.glance("owner").await.expect("owner");
    owner.list_members(IMAGE).await.expect("list");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    owner.list_members(IMAGE).await.expect("list");
    assert_eq!(s.fake.requests("POST tokens"), 2, "refreshed before it expired");
    assert_eq!(s.fake.requests("GET members"), 2, "and never met a 401");
}

/// Issue 7, B10: a Glance endpoint moved in the catalog is used without a restart.
#[tokio::test]
async fn a_moved_endpoint_is_found_by_reading_the_catalog_again() {
    let s = setup(ClientSettings {
        catalog_refresh_after: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let owner = s.glance("owner").await.expect("owner");
    owner.list_members(IMAGE).await.expect("list");
    s.fake.move_glance().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    owner
        .list_members(IMAGE)
        .await
        .expect("the call follows the catalog to the new address");
    assert_eq!(
        s.fake.requests("POST tokens"),
        2,
        "one re-authentication for the new catalog"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_does_not_cause_an_authentication_storm() {
    let s = setup(ClientSettings::default()).await;
    let owner = s.glance("owner").await.expect("owner");
    s.fake.move_glance().await;
    // The token is fresh: the catalog is not read again for every failure.
    for _ in 0..5 {
        let err = owner.list_members(IMAGE).await.expect_err("old address refused");
        assert!(err.is_transient(), "{err}");
    }
    assert_eq!(s.fake.requests("POST tokens"), 1);
}

#[tokio::test]
async fn concurrent_callers_share_one_authentication() {
    let s = setup(ClientSettings::default()).await;
    s.fake.set_delay(Some(Duration::from_millis(50)));
    let cloud = Cloud::from_clouds_yaml(&s.fake.clouds_yaml(), "owner", &NoFiles).expect("cloud");
    let session = s.openstack.session(&cloud.credentials).expect("session");
    let calls = (0..20).map(|_| {
        let (session, cloud) = (session.clone(), cloud.clone());
        async move { session.glance(None, &cloud).await.map(|_| ()) }
    });
    for result in futures::future::join_all(calls).await {
        result.expect("glance");
    }
    assert_eq!(s.fake.requests("POST tokens"), 1);
}

#[tokio::test]
async fn rotated_credentials_get_a_new_session() {
    let s = setup(ClientSettings::default()).await;
    let yaml = s.fake.clouds_yaml();
    let first = s
        .openstack
        .session(
            &Cloud::from_clouds_yaml(&yaml, "owner", &NoFiles)
                .expect("cloud")
                .credentials,
        )
        .expect("session");
    let same = s
        .openstack
        .session(
            &Cloud::from_clouds_yaml(&yaml, "owner", &NoFiles)
                .expect("cloud")
                .credentials,
        )
        .expect("session");
    assert!(Arc::ptr_eq(&first, &same), "same credentials, same session (and token)");
    let rotated = yaml.replacen(&format!("password: {PASSWORD}"), "password: rotated", 1);
    let second = s
        .openstack
        .session(
            &Cloud::from_clouds_yaml(&rotated, "owner", &NoFiles)
                .expect("cloud")
                .credentials,
        )
        .expect("session");
    assert!(!Arc::ptr_eq(&first, &second));
}

#[tokio::test]
async fn wrong_password_is_an_authentication_error() {
    let s = setup(ClientSettings::default()).await;
    let err = s.glance("wrong").await.expect_err("refused");
    assert_eq!(err.http_kind(), Some(HttpErrorKind::Unauthorized));
    assert_eq!(err.operation().map(|o| o.as_str()), Some("authenticate"));
    assert!(!err.is_transient());
    assert!(
        !format!("{err:?}").contains("not-the-password"),
        "no password in errors"
    );
}

#[tokio::test]
async fn rate_limits_and_outages_are_transient_and_carry_retry_after() {
    let s = setup(ClientSettings::default()).await;
    let owner = s.glance("owner").await.expect("owner");
    s.fake.inject(Fault {
        operation: "POST members",
        status: 429,
        retry_after: Some("7"),
    });
    let err = owner.create_member(IMAGE, MEMBER_PROJECT).await.expect_err("429");
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    s.fake.inject(Fault {
        operation: "POST members",
        status: 503,
        retry_after: Some("Thu, 01 Jan 1970 00:00:00 GMT"),
    });
    let err = owner.create_member(IMAGE, MEMBER_PROJECT).await.expect_err("503");
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::ZERO), "a date in the past means now");
    owner.create_member(IMAGE, MEMBER_PROJECT).await.expect("then it works");
}

#[tokio::test]
async fn a_slow_answer_times_out_as_a_transient_error() {
    let s = setup(ClientSettings {
        request_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let owner = s.glance("owner").await.expect("owner");
    s.fake.set_delay(Some(Duration::from_secs(2)));
    let started = std::time::Instant::now();
    let err = owner.show_member(IMAGE, MEMBER_PROJECT).await.expect_err("timeout");
    assert!(
        matches!(err, OpenStackError::Transport { timed_out: true, .. }),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn unreachable_keystone_is_transient() {
    let metrics = Arc::new(Metrics::default());
    let openstack = OpenStack::new(ClientSettings::default(), metrics);
    let yaml = "clouds:\n  c:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: u\n      password: p\n      project_name: x\n      domain_name: Default\n";
    let cloud = Cloud::from_clouds_yaml(yaml, "c", &NoFiles).expect("cloud");
    let err = openstack
        .session(&cloud.credentials)
        .expect("session")
        .glance(None, &cloud)
        .await
        .expect_err("refused");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("authenticate"), "{err}");
}

#[tokio::test]
async fn requests_are_counted_by_service_operation_and_code() {
    let s = setup(ClientSettings::default()).await;
    let owner = s.glance("owner").await.expect("owner");
    owner.create_member(IMAGE, MEMBER_PROJECT).await.expect("create");
    let _ = owner.create_member(IMAGE, MEMBER_PROJECT).await;
    let text = s.metrics.encode();
    assert!(
        text.contains(
            r#"image_access_operator_openstack_requests_total{service="image",operation="create_member",code="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"image_access_operator_openstack_requests_total{service="image",operation="create_member",code="409"} 1"#
    ));
    assert!(text.contains(r#"image_access_operator_keystone_authentications_total{result="success"} 1"#));
}

#[tokio::test]
async fn sessions_nobody_holds_are_pruned_and_held_ones_kept() {
    let s = setup(ClientSettings::default()).await;
    let yaml = s.fake.clouds_yaml();
    let cloud = |password: &str| {
        let rotated = yaml.replacen(&format!("password: {PASSWORD}"), &format!("password: {password}"), 1);
        Cloud::from_clouds_yaml(&rotated, "owner", &NoFiles).expect("cloud")
    };
    // Held by a caller: survives pruning even without a token.
    let held = s.openstack.session(&cloud("held").credentials).expect("session");
    // 100 rotations nobody holds any more (no token either): they must not pile up.
    for i in 0..100 {
        drop(
            s.openstack
                .session(&cloud(&format!("rotated-{i}")).credentials)
                .expect("session"),
        );
    }
    assert!(
        s.openstack.session_count() <= 65,
        "{} sessions kept",
        s.openstack.session_count()
    );
    let again = s.openstack.session(&cloud("held").credentials).expect("session");
    assert!(Arc::ptr_eq(&held, &again), "a held session is not dropped");
}

#[tokio::test]
async fn a_cacert_that_is_not_pem_is_a_tls_settings_error() {
    let s = setup(ClientSettings::default()).await;
    for bad in [b"not a certificate".to_vec(), Vec::new()] {
        let files = SecretFiles([("cacert".to_string(), bad)].into());
        let cloud = Cloud::from_clouds_yaml(&s.fake.clouds_yaml(), "owner", &files).expect("cloud");
        let err = s.openstack.session(&cloud.credentials).expect_err("refused");
        assert!(matches!(err, OpenStackError::Tls(_)), "{err:?}");
        assert!(!err.is_transient());
    }
}

/// Issue 23: `image_endpoint_override` is the Glance of the entry's region: another region asked
/// for is refused with what to change (recorded as one Glance, the requests would go to another).
#[tokio::test]
async fn an_image_endpoint_override_is_its_regions_glance_only() {
    let s = setup(ClientSettings::default()).await;
    let yaml = s.fake.clouds_yaml().replace(
        "    region_name: RegionOne\n",
        "    region_name: RegionOne\n    image_endpoint_override: http://127.0.0.1:1/v2/\n",
    );
    let cloud = Cloud::from_clouds_yaml(&yaml, "owner", &NoFiles).expect("cloud");
    let session = s.openstack.session(&cloud.credentials).expect("session");
    let glance = session.glance(Some("RegionOne"), &cloud).await.expect("its own region");
    assert_eq!(
        glance.place().region.as_deref(),
        Some("RegionOne"),
        "the catalog's identity"
    );
    let refused = session
        .glance(Some("RegionTwo"), &cloud)
        .await
        .expect_err("another region");
    assert!(refused.to_string().contains("drop spec.region"), "{refused}");
}
