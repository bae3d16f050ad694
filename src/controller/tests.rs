//! The reconciler against a mocked Kubernetes API (tower-test, as kube-rs/controller-rs does)
//! and the in-process OpenStack fake.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::client::Body;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};

use super::*;
use crate::api::MemberStatus;
use crate::openstack::ClientSettings;
use crate::testing::fake_openstack::{FakeOpenStack, Fault, MEMBER_PROJECT, OWNER_PROJECT};
use crate::testing::fixtures::SECRET;

const IMAGE: &str = "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";
const OTHER_IMAGE: &str = "7d1b2f3c-3c2f-4a69-8b64-5a1d8a2d3b21";

/// One request the operator made to the Kubernetes API.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    body: Value,
}

#[derive(Default)]
struct ApiState {
    secrets: BTreeMap<String, Secret>,
    calls: Vec<Call>,
    /// The object the reconcile under test works on; patches echo it back.
    object: Option<ImageAccess>,
    /// resourceVersion of the last write, bumped by each patch as the apiserver does.
    version: u64,
}

/// A Kubernetes API that answers what the reconciler asks: Secrets from a map, patches of the
/// object and its status echoed back, events accepted. Every call is recorded for assertions.
struct MockApi {
    state: Arc<Mutex<ApiState>>,
}

impl MockApi {
    fn answer(&self, method: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        let not_found = |what: &str| {
            (
                StatusCode::NOT_FOUND,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": format!("{what} not found"), "reason": "NotFound", "code": 404}),
            )
        };
        if let Some(name) = path.strip_prefix("/api/v1/namespaces/default/secrets/") {
            let state = self.state.lock().expect("lock");
            return match state.secrets.get(name) {
                Some(secret) => (StatusCode::OK, serde_json::to_value(secret).expect("secret json")),
                None => not_found(&format!("secrets \"{name}\"")),
            };
        }
        if path.starts_with("/apis/events.k8s.io/v1/") {
            return (StatusCode::CREATED, body.clone());
        }
        if path.starts_with("/apis/glance.viettelidc.com.vn/v1alpha1/namespaces/default/imageaccesses/")
            && method == "PATCH"
        {
            let mut state = self.state.lock().expect("lock");
            state.version += 1;
            let mut object = serde_json::to_value(&state.object).expect("object json");
            object["metadata"]["resourceVersion"] = json!(format!("written-{}", state.version));
            if path.ends_with("/status") {
                object["status"] = body["status"].clone();
            }
            return (StatusCode::OK, object);
        }
        not_found(path)
    }
}

async fn serve(mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>, api: MockApi) {
    while let Some((request, send)) = handle.next_request().await {
        let method = request.method().to_string();
        let path = request.uri().path().to_string();
        let bytes = request.into_body().collect_bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let (status, answer) = api.answer(&method, &path, &body);
        api.state.lock().expect("lock").calls.push(Call { method, path, body });
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&answer).expect("json")))
            .expect("response");
        send.send_response(response);
    }
}

struct Harness {
    ctx: Arc<Context>,
    api: Arc<Mutex<ApiState>>,
    fake: FakeOpenStack,
}

impl Harness {
    /// The fake OpenStack with IMAGE (shared, owned by the owner project) and a Secret holding
    /// its clouds.yaml.
    async fn new() -> Harness {
        let fake = FakeOpenStack::start().await;
        fake.add_image(IMAGE, OWNER_PROJECT, "shared");
        fake.add_image(OTHER_IMAGE, OWNER_PROJECT, "shared");
        let api = Arc::new(Mutex::new(ApiState::default()));
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(SECRET.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "clouds.yaml".to_string(),
                ByteString(fake.clouds_yaml().into_bytes()),
            )])),
            ..Default::default()
        };
        api.lock().expect("lock").secrets.insert(SECRET.into(), secret);
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        tokio::spawn(serve(handle, MockApi { state: api.clone() }));
        let metrics = Arc::new(Metrics::default());
        let openstack = OpenStack::new(ClientSettings::default(), metrics.clone());
        let settings = Settings {
            resync_period: Duration::from_secs(600),
            stalled_recheck: Duration::from_secs(300),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        };
        let reporter = Reporter {
            controller: "image-access-operator".into(),
            instance: None,
        };
        let ctx = Arc::new(Context::new(client, openstack, metrics, settings, reporter));
        Harness { ctx, api, fake }
    }

    /// Reconciles `object` once; the mock API echoes it back on patches.
    async fn reconcile(&self, object: &ImageAccess) -> Result<Action, Error> {
        self.api.lock().expect("lock").object = Some(object.clone());
        reconcile(Arc::new(object.clone()), self.ctx.clone()).await
    }

    /// The resourceVersion the last patch returned.
    fn last_written_version(&self) -> String {
        format!("written-{}", self.api.lock().expect("lock").version)
    }

    fn calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.api.lock().expect("lock").calls)
    }

    fn remove_secret(&self) {
        self.api.lock().expect("lock").secrets.clear();
    }
}

fn status_patches(calls: &[Call]) -> Vec<ImageAccessStatus> {
    calls
        .iter()
        .filter(|c| c.method == "PATCH" && c.path.ends_with("/status"))
        .map(|c| serde_json::from_value(c.body["status"].clone()).expect("status"))
        .collect()
}

fn last_status(calls: &[Call]) -> ImageAccessStatus {
    status_patches(calls).pop().expect("a status patch")
}

fn event_reasons(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.path.contains("/events"))
        .map(|c| c.body["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn finalizer_removed(calls: &[Call]) -> bool {
    calls.iter().any(|c| {
        c.method == "PATCH"
            && !c.path.ends_with("/status")
            && c.path.contains("/imageaccesses/")
            && c.body.to_string().contains("remove")
    })
}

fn condition<'a>(
    status: &'a ImageAccessStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    status.conditions.iter().find(|c| c.type_ == type_).expect("condition")
}

#[tokio::test]
async fn new_object_creates_the_member_and_reports_ready() {
    let h = Harness::new().await;
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner").finalized();
    let action = h.reconcile(&object).await.expect("reconciled");
    assert!(action != Action::await_change(), "requeued for the resync");
    let member = h.fake.member(IMAGE, MEMBER_PROJECT).expect("member created in Glance");
    assert_eq!(member.status, MemberStatus::Pending);
    let calls = h.calls();
    let patches = status_patches(&calls);
    assert_eq!(patches.len(), 2, "first sight (Ready=Unknown), then the result");
    assert_eq!(condition(&patches[0], "Ready").status, "Unknown");
    let status = &patches[1];
    assert_eq!(condition(status, "Ready").status, "True");
    assert_eq!(status.member_status, Some(MemberStatus::Pending));
    assert_eq!(status.created_at.as_deref(), Some(member.created_at.as_str()));
    assert_eq!(status.updated_at.as_deref(), Some(member.updated_at.as_str()));
    assert_eq!(status.schema.as_deref(), Some("/v2/schemas/member"));
    assert_eq!(status.applied.as_ref().map(|a| a.image_id.as_str()), Some(IMAGE));
    assert_eq!(event_reasons(&calls), vec!["MemberCreated"]);
}

#[tokio::test]
async fn object_without_finalizer_gets_it_first() {
    let h = Harness::new().await;
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner");
    let action = h.reconcile(&object).await.expect("reconciled");
    assert_eq!(action, Action::await_change());
    let calls = h.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.method == "PATCH" && c.body.to_string().contains(FINALIZER)),
        "{calls:?}"
    );
    assert!(
        h.fake.member(IMAGE, MEMBER_PROJECT).is_none(),
        "nothing done in Glance before the finalizer is there"
    );
}

#[tokio::test]
async fn steady_object_costs_one_glance_read_and_no_kubernetes_write() {
    let h = Harness::new().await;
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner").finalized();
    h.reconcile(&object).await.expect("first");
    let mut steady = object.clone();
    steady.status = Some(last_status(&h.calls()));
    let reads_before = h.fake.requests("GET member");
    let tokens_before = h.fake.requests("POST tokens");
    h.reconcile(&steady).await.expect("second");
    let calls = h.calls();
    assert!(status_patches(&calls).is_empty(), "no status write: {calls:?}");
    assert!(event_reasons(&calls).is_empty());
    assert_eq!(h.fake.requests("GET member") - reads_before, 1);
    assert_eq!(h.fake.requests("POST tokens"), tokens_before, "token reused");
    assert_eq!(h.fake.requests("POST members"), 1);
}

#[tokio::test]
async fn the_echo_of_our_own_status_write_does_not_read_glance_again() {
    let h = Harness::new().await;
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner").finalized();
    h.reconcile(&object).await.expect("first");
    let reads = h.fake.requests("GET member");
    let mut echo = object.clone();
    echo.status = Some(last_status(&h.calls()));
    // A first reconcile writes twice (Ready=Unknown, then the result): both echoes are ours.
    echo.metadata.resource_version = Some("written-1".into());
    h.reconcile(&echo).await.expect("echo of the first write");
    echo.metadata.resource_version = Some(h.last_written_version());
    h.reconcile(&echo).await.expect("echo");
    assert_eq!(h.fake.requests("GET member"), reads, "nothing changed since we looked");
    assert_eq!(h.fake.requests("POST members"), 1, "and nothing created twice");
    // The resync that follows brings the same cached object: that one looks at Glance.
    h.reconcile(&echo).await.expect("resync");
    assert_eq!(h.fake.requests("GET member"), reads + 1, "once only");
    // Any other change (here: a new resourceVersion) is looked at.
    echo.metadata.resource_version = Some("changed-by-someone".into());
    h.reconcile(&echo).await.expect("changed");
    assert_eq!(h.fake.requests("GET member"), reads + 2);
}

#[tokio::test]
async fn existing_member_is_adopted_after_a_409() {
    let h = Harness::new().await;
    // Someone created it by hand: a new object creates straight away and meets a 409.
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Accepted);
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner").finalized();
    h.reconcile(&object).await.expect("reconciled");
    let calls = h.calls();
    let status = last_status(&calls);
    assert_eq!(condition(&status, "Ready").status, "True");
    assert_eq!(status.member_status, Some(MemberStatus::Accepted));
    assert_eq!(event_reasons(&calls), vec!["MemberAdopted"]);
    assert_eq!(h.fake.requests("POST members"), 1);
    assert_eq!(h.fake.requests("GET member"), 1, "read once, after the 409");
}

#[tokio::test]
async fn an_existing_member_of_a_full_image_is_adopted_not_reported_as_quota() {
    // Glance checks the quota before duplicates: re-creating a member of a full image gives 413.
    let h = Harness::new().await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Pending);
    h.fake.set_member_quota(1);
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner").finalized();
    h.reconcile(&object).await.expect("reconciled");
    let calls = h.calls();
    assert_eq!(condition(&last_status(&calls), "Ready").status, "True");
    assert_eq!(event_reasons(&calls), vec!["MemberAdopted"]);
}

#[tokio::test]
async fn admin_sets_the_asked_status() {
    let h = Harness::new().await;
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "admin")
        .finalized()
        .with_member_status(MemberStatus::Accepted);
    h.reconcile(&object).await.expect("reconciled");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).map(|m| m.status),
        Some(MemberStatus::Accepted)
    );
    let calls = h.calls();
    assert_eq!(last_status(&calls).member_status, Some(MemberStatus::Accepted));
    assert_eq!(event_reasons(&calls), vec!["MemberCreated", "StatusSet"]);
    assert_eq!(
        h.fake.requests("GET member"),
        0,
        "a new object is created without a read first"
    );
}

#[tokio::test]
async fn owner_asking_for_a_status_is_stalled_with_the_fix_and_no_error() {
    let h = Harness::new().await;
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner")
        .finalized()
        .with_member_status(MemberStatus::Accepted);
    let action = h
        .reconcile(&object)
        .await
        .expect("a stalled object is not an error (no hot loop)");
    assert_ne!(action, Action::await_change(), "re-checked later");
    let calls = h.calls();
    let status = last_status(&calls);
    assert_eq!(condition(&status, "Stalled").status, "True");
    assert_eq!(condition(&status, "Ready").reason, "StatusChangeForbidden");
    assert!(condition(&status, "Stalled").message.contains("remove spec.status"));
    assert_eq!(
        status.member_status,
        Some(MemberStatus::Pending),
        "the member exists, pending"
    );
    assert!(
        status.applied.is_some(),
        "the created member is recorded, so deleting the object removes it"
    );
    assert_eq!(event_reasons(&calls), vec!["MemberCreated", "StatusChangeForbidden"]);

    // Re-checked later with the same result: no second Warning, no write.
    let mut again = object.clone();
    again.status = Some(status);
    h.reconcile(&again).await.expect("stalled again");
    let calls = h.calls();
    assert!(status_patches(&calls).is_empty());
    assert!(event_reasons(&calls).is_empty(), "events on transitions only");
}

#[tokio::test]
async fn changing_the_image_replaces_the_membership() {
    let h = Harness::new().await;
    h.fake.put_member(OTHER_IMAGE, MEMBER_PROJECT, MemberStatus::Pending);
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner")
        .finalized()
        .with_applied(OTHER_IMAGE, MEMBER_PROJECT);
    h.reconcile(&object).await.expect("reconciled");
    assert!(
        h.fake.member(OTHER_IMAGE, MEMBER_PROJECT).is_none(),
        "old membership removed"
    );
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some(), "new membership created");
    let calls = h.calls();
    assert_eq!(last_status(&calls).applied.map(|a| a.image_id), Some(IMAGE.to_string()));
    assert_eq!(event_reasons(&calls), vec!["Replaced", "MemberCreated"]);
}

#[tokio::test]
async fn member_deleted_by_hand_is_recreated_and_status_restored() {
    let h = Harness::new().await;
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "admin")
        .finalized()
        .with_member_status(MemberStatus::Accepted)
        .with_applied(IMAGE, MEMBER_PROJECT);
    h.reconcile(&object).await.expect("reconciled");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).map(|m| m.status),
        Some(MemberStatus::Accepted)
    );
    assert_eq!(event_reasons(&h.calls()), vec!["MemberRecreated", "StatusSet"]);

    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Rejected);
    h.reconcile(&object).await.expect("reconciled");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).map(|m| m.status),
        Some(MemberStatus::Accepted)
    );
    assert_eq!(event_reasons(&h.calls()), vec!["StatusSet"]);
}

#[tokio::test]
async fn deleting_object_removes_member_and_then_finalizer() {
    let h = Harness::new().await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Pending);
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner")
        .finalized()
        .with_applied(IMAGE, MEMBER_PROJECT)
        .deleting();
    h.reconcile(&object).await.expect("cleaned up");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_none());
    let calls = h.calls();
    assert!(finalizer_removed(&calls), "{calls:?}");
    assert_eq!(event_reasons(&calls), vec!["MemberDeleted"]);
}

#[tokio::test]
async fn orphan_policy_leaves_the_member() {
    let h = Harness::new().await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Pending);
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner")
        .finalized()
        .with_policy(DeletionPolicy::Orphan)
        .with_applied(IMAGE, MEMBER_PROJECT)
        .deleting();
    h.reconcile(&object).await.expect("cleaned up");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
    let calls = h.calls();
    assert!(finalizer_removed(&calls));
    assert_eq!(event_reasons(&calls), vec!["MemberOrphaned"]);
    assert_eq!(h.fake.requests("DELETE member"), 0);
}

#[tokio::test]
async fn deletion_finishes_when_the_image_is_no_longer_shared_or_gone() {
    for (visibility, reason) in [("private", "MemberNotRemoved"), ("gone", "MemberAlreadyGone")] {
        let h = Harness::new().await;
        h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Pending);
        if visibility == "gone" {
            h.fake.remove_member(IMAGE, MEMBER_PROJECT);
        } else {
            h.fake.set_visibility(IMAGE, "private");
        }
        let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner")
            .finalized()
            .with_applied(IMAGE, MEMBER_PROJECT)
            .deleting();
        h.reconcile(&object).await.expect("deletion is not blocked");
        let calls = h.calls();
        assert!(finalizer_removed(&calls), "{visibility}");
        assert_eq!(event_reasons(&calls), vec![reason], "{visibility}");
    }
}

#[tokio::test]
async fn never_applied_object_is_deleted_without_credentials() {
    let h = Harness::new().await;
    h.remove_secret();
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "no-such-cloud")
        .finalized()
        .deleting();
    h.reconcile(&object).await.expect("a bad spec never blocks deletion");
    assert!(finalizer_removed(&h.calls()));
}

#[tokio::test]
async fn glance_down_during_delete_keeps_the_finalizer() {
    let h = Harness::new().await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Pending);
    h.fake.inject(Fault {
        operation: "DELETE member",
        status: 503,
        retry_after: None,
    });
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner")
        .finalized()
        .with_applied(IMAGE, MEMBER_PROJECT)
        .deleting();
    let error = h.reconcile(&object).await.expect_err("transient: retried with backoff");
    assert!(error.to_string().contains("503"), "{error}");
    let calls = h.calls();
    assert!(!finalizer_removed(&calls));
    assert_eq!(condition(&last_status(&calls), "Reconciling").status, "True");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
    // Glance is back: the deletion completes.
    h.reconcile(&object).await.expect("cleaned up");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_none());
    assert!(finalizer_removed(&h.calls()));
}

/// Each error class that needs a human: Stalled with its reason, a Warning event, `Ok`.
#[tokio::test]
async fn errors_that_need_a_human_stall_with_a_reason() {
    struct Case {
        name: &'static str,
        cloud: &'static str,
        prepare: fn(&Harness),
        reason: &'static str,
    }
    let cases = [
        Case {
            name: "private image",
            cloud: "owner",
            prepare: |h| h.fake.set_visibility(IMAGE, "private"),
            reason: "ImageNotShared",
        },
        Case {
            name: "member quota",
            cloud: "owner",
            prepare: |h| h.fake.set_member_quota(0),
            reason: "MemberQuotaExceeded",
        },
        Case {
            name: "wrong password",
            cloud: "wrong",
            prepare: |_| {},
            reason: "AuthenticationFailed",
        },
        Case {
            name: "no such cloud",
            cloud: "nope",
            prepare: |_| {},
            reason: "CloudNotFound",
        },
        Case {
            name: "Secret missing",
            cloud: "owner",
            prepare: |h| h.remove_secret(),
            reason: "CredentialsSecretNotFound",
        },
        Case {
            name: "image missing",
            cloud: "owner",
            prepare: |_| {},
            reason: "ImageNotFound",
        },
        Case {
            name: "bad request",
            cloud: "owner",
            prepare: |h| {
                h.fake.inject(Fault {
                    operation: "POST members",
                    status: 400,
                    retry_after: None,
                })
            },
            reason: "InvalidRequest",
        },
        Case {
            name: "not the owner",
            cloud: "member",
            prepare: |_| {},
            reason: "ImageNotFound",
        },
    ];
    for case in cases {
        let h = Harness::new().await;
        (case.prepare)(&h);
        let image = if case.name == "image missing" {
            "00000000-0000-4000-8000-000000000000"
        } else {
            IMAGE
        };
        let object = ImageAccess::test("share", image, MEMBER_PROJECT, case.cloud).finalized();
        let action = h
            .reconcile(&object)
            .await
            .unwrap_or_else(|e| panic!("{}: stalled is not an error: {e}", case.name));
        assert_ne!(action, Action::await_change(), "{}", case.name);
        let calls = h.calls();
        let status = last_status(&calls);
        assert_eq!(condition(&status, "Stalled").status, "True", "{}", case.name);
        assert_eq!(condition(&status, "Ready").reason, case.reason, "{}", case.name);
        assert_eq!(condition(&status, "Reconciling").status, "False", "{}", case.name);
        assert!(
            event_reasons(&calls).contains(&case.reason.to_string()),
            "{}: warning event",
            case.name
        );
        assert!(
            !condition(&status, "Stalled")
                .message
                .contains(crate::testing::fake_openstack::PASSWORD),
            "no secret in conditions"
        );
    }
}

#[tokio::test]
async fn transient_errors_retry_with_backoff_and_honour_retry_after() {
    let h = Harness::new().await;
    h.fake.inject(Fault {
        operation: "POST members",
        status: 429,
        retry_after: Some("42"),
    });
    let object = ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner").finalized();
    let error = h.reconcile(&object).await.expect_err("transient");
    let status = last_status(&h.calls());
    assert_eq!(condition(&status, "Reconciling").status, "True");
    assert_eq!(condition(&status, "Stalled").status, "False");
    assert_eq!(condition(&status, "Ready").reason, "OpenStackUnavailable");
    let action = error_policy(Arc::new(object.clone()), &error, h.ctx.clone());
    assert!(
        format!("{action:?}").contains("42s"),
        "waits for Retry-After: {action:?}"
    );
    // Then it works and the failure count is reset.
    h.reconcile(&object).await.expect("recovered");
    assert_eq!(condition(&last_status(&h.calls()), "Ready").status, "True");
}

#[test]
fn backoff_doubles_with_jitter_and_is_capped() {
    let settings = Settings::default();
    assert_eq!(backoff_delay(&settings, 1, 1.0), Duration::from_secs(1));
    assert_eq!(backoff_delay(&settings, 1, 0.0), Duration::from_millis(500));
    assert_eq!(backoff_delay(&settings, 4, 1.0), Duration::from_secs(8));
    assert_eq!(backoff_delay(&settings, 30, 1.0), Duration::from_secs(300));
    assert!(backoff_delay(&settings, 30, 0.0) >= Duration::from_secs(150));
}

#[tokio::test]
async fn error_policy_counts_per_object_and_success_resets() {
    let h = Harness::new().await;
    let object = Arc::new(ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "owner").finalized());
    let other = Arc::new(ImageAccess::test("other", IMAGE, MEMBER_PROJECT, "owner").finalized());
    let error = Error::Transient {
        reason: "OpenStackUnavailable",
        message: "down".into(),
        retry_after: None,
    };
    for _ in 0..5 {
        error_policy(object.clone(), &error, h.ctx.clone());
    }
    error_policy(other.clone(), &error, h.ctx.clone());
    assert_eq!(h.ctx.failures().get(&ObjectRef::from(object.as_ref())), Some(&5));
    assert_eq!(h.ctx.failures().get(&ObjectRef::from(other.as_ref())), Some(&1));
    let _ = finish(&object, &h.ctx, None);
    assert_eq!(h.ctx.failures().get(&ObjectRef::from(object.as_ref())), None);
}
