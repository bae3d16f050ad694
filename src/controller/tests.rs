//! The reconciler against an in-process Kubernetes API ([`FakeKube`]) and the in-process
//! OpenStack fake: each test drives reconciles the way kube-runtime would (the object from the
//! watch cache, `error_policy` on errors) and feeds every change back through the watch taps.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{self, ObjectRef};

use super::*;
use std::sync::atomic::Ordering;

use kube::runtime::controller::Action;
use kube::runtime::watcher;

use super::reconcile::Error;
use super::run::reconcile_secret;
use super::run::{LAST_APPLIED, slim};
use crate::api::{CLAIM_ANNOTATION, FINALIZER};
use crate::api::{
    DeletionPolicy, ImageAccess, ImageAccessAccept, ImageAccessStatus, ImageShare, Managed, MemberStatus,
};
use crate::credentials::hold_finalizer;
use crate::metrics::Metrics;
use crate::openstack::ClientSettings;
use crate::openstack::OpenStack;
use crate::runtime::tracker::Fingerprint;
use crate::testing::fake_kube::{Call, Change, FakeKube, secret_metadata};
use crate::testing::fake_openstack::{FakeOpenStack, Fault, MEMBER_PROJECT, OWNER_PROJECT, PASSWORD};
use crate::testing::fixtures::{NAMESPACE, SECRET};
use kube::ResourceExt;

pub(super) const IMAGE: &str = "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";
pub(super) const OTHER_IMAGE: &str = "7d1b2f3c-3c2f-4a69-8b64-5a1d8a2d3b21";

/// The operator's view: a context with watch caches fed from the fake API's changes.
pub(super) struct Operator {
    pub(super) ctx: Arc<Context>,
    objects: Writer<ImageAccess>,
    accepts: Writer<ImageAccessAccept>,
    shares: Writer<ImageShare>,
    secrets: Writer<PartialObjectMeta<Secret>>,
}

impl Operator {
    pub(super) fn with_client(client: kube::Client, client_settings: ClientSettings) -> Operator {
        Operator::with_settings(client, client_settings, Settings::default())
    }

    pub(super) fn with_settings(client: kube::Client, client_settings: ClientSettings, settings: Settings) -> Operator {
        let metrics = Arc::new(Metrics::default());
        let openstack = OpenStack::new(client_settings, metrics.clone());
        let reporter = Reporter {
            controller: "image-access-operator".into(),
            instance: None,
        };
        let ctx = Arc::new(Context::new(
            client,
            openstack,
            metrics,
            settings,
            reporter,
            hold_finalizer(None),
        ));
        let (object_reader, objects) = reflector::store();
        ctx.watch_scope(None, object_reader);
        let (accept_reader, accepts) = reflector::store::<ImageAccessAccept>();
        ctx.watch_scope(None, accept_reader);
        let (share_reader, shares) = reflector::store::<ImageShare>();
        ctx.shares.watch_scope(None, share_reader);
        let (secret_reader, secrets) = reflector::store();
        ctx.secrets.watch_scope(None, secret_reader);
        ctx.objects_synced.store(true, Ordering::Relaxed);
        Operator {
            ctx,
            objects,
            accepts,
            shares,
            secrets,
        }
    }

    /// A fresh operator that lists everything, as one would after a restart.
    pub(super) fn restarted(client: kube::Client, kube: &FakeKube) -> Operator {
        Operator::restarted_with(client, kube, ClientSettings::default())
    }

    pub(super) fn restarted_with(client: kube::Client, kube: &FakeKube, client_settings: ClientSettings) -> Operator {
        let mut operator = Operator::with_client(client, client_settings);
        let mut feed = |event: watcher::Event<ImageAccess>| {
            operator.objects.apply_watcher_event(&event);
            operator.ctx.observe(None, &event);
        };
        feed(watcher::Event::Init);
        for object in kube.objects() {
            feed(watcher::Event::InitApply(object));
        }
        feed(watcher::Event::InitDone);
        let mut feed = |event: watcher::Event<ImageAccessAccept>| {
            operator.accepts.apply_watcher_event(&event);
            operator.ctx.observe(None, &event);
        };
        feed(watcher::Event::Init);
        for accept in kube.accepts() {
            feed(watcher::Event::InitApply(accept));
        }
        feed(watcher::Event::InitDone);
        let mut feed = |event: watcher::Event<ImageShare>| {
            operator.shares.apply_watcher_event(&event);
            operator.ctx.shares.observe_share(&event);
        };
        feed(watcher::Event::Init);
        for share in kube.shares() {
            feed(watcher::Event::InitApply(share));
        }
        feed(watcher::Event::InitDone);
        let mut feed = |event: watcher::Event<PartialObjectMeta<Secret>>| {
            operator.secrets.apply_watcher_event(&event);
            operator.ctx.observe_secret(None, &event);
        };
        feed(watcher::Event::Init);
        for secret in kube.secrets() {
            feed(watcher::Event::InitApply(secret_metadata(&secret)));
        }
        feed(watcher::Event::InitDone);
        operator
    }

    pub(super) fn feed(&mut self, changes: Vec<Change>) {
        for change in changes {
            match change {
                // As the controller runs them: the cache applies the event, then the taps.
                Change::Object(event) => {
                    self.objects.apply_watcher_event(&event);
                    self.ctx.observe(None, &event);
                }
                Change::Accept(event) => {
                    self.accepts.apply_watcher_event(&event);
                    self.ctx.observe(None, &event);
                }
                Change::Share(event) => {
                    self.shares.apply_watcher_event(&event);
                    self.ctx.shares.observe_share(&event);
                }
                Change::Secret(event) => {
                    self.secrets.apply_watcher_event(&event);
                    self.ctx.observe_secret(None, &event);
                }
            }
        }
    }
}

pub(super) struct Harness {
    pub(super) kube: FakeKube,
    client: kube::Client,
    pub(super) fake: FakeOpenStack,
    pub(super) op: Operator,
}

fn clouds_data(fake: &FakeOpenStack) -> String {
    fake.clouds_yaml()
}

impl Harness {
    /// The fake OpenStack with IMAGE and OTHER_IMAGE (shared, owned by the owner project), and
    /// the credentials Secret holding its clouds.yaml.
    pub(super) async fn new() -> Harness {
        Harness::with_settings(Settings::default()).await
    }

    async fn with_settings(settings: Settings) -> Harness {
        let fake = FakeOpenStack::start().await;
        fake.add_image(IMAGE, OWNER_PROJECT, "shared");
        fake.add_image(OTHER_IMAGE, OWNER_PROJECT, "shared");
        let (kube, client) = FakeKube::start();
        kube.put_secret(NAMESPACE, SECRET, &[("clouds.yaml", &clouds_data(&fake))]);
        let mut op = Operator::with_settings(client.clone(), ClientSettings::default(), settings);
        op.feed(kube.take_changes());
        Harness { kube, client, fake, op }
    }

    /// The operator restarts: every in-memory state (tokens and their catalogs included) is lost.
    pub(super) fn restart(&mut self) {
        self.sync();
        self.op = Operator::restarted(self.client.clone(), &self.kube);
    }

    pub(super) fn kube_client(&self) -> kube::Client {
        self.client.clone()
    }

    pub(super) fn ctx(&self) -> Arc<Context> {
        self.op.ctx.clone()
    }

    pub(super) fn sync(&mut self) {
        let changes = self.kube.take_changes();
        self.op.feed(changes);
    }

    /// `kubectl apply` (of either kind).
    pub(super) fn apply<K>(&mut self, object: &K) -> K
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize + serde::de::DeserializeOwned,
    {
        let stored = self.kube.apply(object);
        self.sync();
        stored
    }

    pub(super) fn delete(&mut self, name: &str) {
        self.kube.delete(NAMESPACE, name);
        self.sync();
    }

    /// The object as the watch cache has it.
    fn cached(&self, name: &str) -> Option<Arc<ImageAccess>> {
        self.op.ctx.object(&ObjectRef::new(name).within(NAMESPACE))
    }

    /// One reconcile of the ImageAccess `name` as kube-runtime runs it: the cached object,
    /// then error_policy on an error; the changes it made are fed back.
    pub(super) async fn reconcile(&mut self, name: &str) -> Result<Action, Error> {
        self.reconcile_kind::<ImageAccess>(name).await
    }

    /// One reconcile of the object of kind `K` named `name`.
    pub(super) async fn reconcile_kind<K: Kind>(&mut self, name: &str) -> Result<Action, Error> {
        self.sync();
        let object = self
            .op
            .ctx
            .object(&ObjectRef::<K>::new(name).within(NAMESPACE))
            .unwrap_or_else(|| panic!("{name} is not in the cache"));
        let result = reconcile(object.clone(), self.ctx()).await;
        if let Err(e) = &result {
            error_policy(object, e, self.ctx());
        }
        self.sync();
        result
    }

    /// Reconciles every Secret the cache has (holds and releases).
    pub(super) async fn reconcile_secrets(&mut self) {
        self.sync();
        for secret in self.kube.secrets() {
            let _ = reconcile_secret(Arc::new(secret_metadata(&secret)), self.ctx()).await;
        }
        self.sync();
    }

    /// Time passes: everything is due again.
    pub(super) fn later(&self) {
        self.op.ctx.clock.advance(Duration::from_secs(3600));
    }

    pub(super) fn calls(&self) -> Vec<Call> {
        self.kube.take_calls()
    }

    pub(super) fn object(&self, name: &str) -> Option<ImageAccess> {
        self.kube.object(NAMESPACE, name)
    }

    pub(super) fn status(&self, name: &str) -> ImageAccessStatus {
        self.object(name).and_then(|o| o.status).unwrap_or_default()
    }

    fn secret_finalizers(&self) -> Vec<String> {
        self.kube
            .secret(NAMESPACE, SECRET)
            .map(|s| s.metadata.finalizers.unwrap_or_default())
            .unwrap_or_default()
    }
}

pub(super) fn writes(calls: &[Call]) -> Vec<&Call> {
    calls.iter().filter(|c| c.method != "GET").collect()
}

pub(super) fn event_reasons(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| c.path.contains("/events"))
        .map(|c| c.body["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

pub(super) fn condition<'a>(
    status: &'a ImageAccessStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("condition {type_} in {status:?}"))
}

pub(super) fn reason(status: &ImageAccessStatus) -> String {
    condition(status, "Ready").reason.clone()
}

pub(super) fn share(name: &str) -> ImageAccess {
    ImageAccess::test(name, IMAGE, MEMBER_PROJECT, "owner")
}

pub(super) fn requeue_after(action: &Action) -> Duration {
    let text = format!("{action:?}");
    let start = text.find("Some(").map(|i| i + 5).expect("a requeue");
    let inner = &text[start..text[start..].find(')').map(|i| i + start).expect("end")];
    if let Some(ms) = inner.strip_suffix("ms") {
        Duration::from_secs_f64(ms.parse::<f64>().expect("ms") / 1000.0)
    } else if let Some(us) = inner.strip_suffix("µs") {
        Duration::from_secs_f64(us.parse::<f64>().expect("µs") / 1e6)
    } else if let Some(ns) = inner.strip_suffix("ns") {
        Duration::from_nanos(ns.parse::<f64>().expect("ns") as u64)
    } else {
        Duration::from_secs_f64(inner.trim_end_matches('s').parse::<f64>().expect("s"))
    }
}

// ---------------------------------------------------------------- the happy path

#[tokio::test]
async fn new_object_claims_then_creates_the_member_and_reports_ready_in_two_writes() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    let action = h.reconcile("share").await.expect("reconciled");
    assert!(
        requeue_after(&action) > Duration::from_secs(500),
        "next look at the resync"
    );
    let member = h.fake.member(IMAGE, MEMBER_PROJECT).expect("member created in Glance");
    assert_eq!(member.status, MemberStatus::Pending);
    let calls = h.calls();
    let object_writes: Vec<_> = writes(&calls)
        .into_iter()
        .filter(|c| c.path.contains("/imageaccesses/"))
        .collect();
    assert_eq!(
        object_writes.len(),
        2,
        "the claim (finalizer + membership), then the status: {object_writes:?}"
    );
    let status = h.status("share");
    assert_eq!(condition(&status, "Ready").status, "True");
    assert_eq!(status.member_status, Some(MemberStatus::Pending));
    assert_eq!(status.created_at.as_deref(), Some(member.created_at.as_str()));
    assert_eq!(status.updated_at.as_deref(), Some(member.updated_at.as_str()));
    assert_eq!(status.schema.as_deref(), Some("/v2/schemas/member"));
    assert_eq!(status.applied.as_ref().map(|a| a.image_id.as_str()), Some(IMAGE));
    let object = h.object("share").expect("object");
    assert!(object.has_finalizer());
    assert_eq!(object.claim(), status.applied, "the claim names what was applied");
    assert_eq!(event_reasons(&calls), vec!["MemberCreated"]);
    assert_eq!(h.fake.requests("POST members"), 1);
    assert_eq!(
        h.fake.requests("GET member"),
        0,
        "a new object is created without a read first"
    );
}

#[tokio::test]
async fn the_claim_is_written_before_glance_is_touched() {
    let mut h = Harness::new().await;
    h.fake.inject(Fault {
        operation: "POST members",
        status: 503,
        retry_after: None,
    });
    h.apply(&share("share"));
    h.reconcile("share").await.expect_err("transient");
    let object = h.object("share").expect("object");
    assert!(object.has_finalizer(), "finalizer before the first Glance call");
    assert_eq!(
        object.claim().map(|c| c.image_id),
        Some(IMAGE.to_string()),
        "the membership is claimed before the create that could make it"
    );
}

#[tokio::test]
async fn steady_object_costs_one_glance_read_and_no_kubernetes_write() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.reconcile("share").await.expect("first");
    h.calls();
    let tokens = h.fake.requests("POST tokens");
    h.later();
    h.reconcile("share").await.expect("resync");
    let calls = h.calls();
    assert!(writes(&calls).is_empty(), "no write: {calls:?}");
    assert_eq!(h.fake.requests("GET members"), 1, "its image's member list");
    assert_eq!(h.fake.requests("GET member"), 0);
    assert_eq!(h.fake.requests("POST tokens"), tokens, "token reused");
    assert_eq!(h.fake.requests("POST members"), 1);
    assert!(
        calls.iter().all(|c| !c.path.contains("/secrets/")),
        "an unchanged Secret is not read again: {calls:?}"
    );
}

/// Issue 10: at a resync, an image's member list is read once for all its objects.
#[tokio::test]
async fn a_resync_reads_each_image_once_for_all_its_objects() {
    let mut h = Harness::new().await;
    let members = ["member-a", "member-b", "member-c"];
    for (i, member) in members.iter().enumerate() {
        h.apply(&ImageAccess::test(&format!("o{i}"), IMAGE, member, "owner"));
        h.reconcile(&format!("o{i}")).await.expect("created");
    }
    h.apply(&ImageAccess::test("other-image", OTHER_IMAGE, "member-a", "owner"));
    h.reconcile("other-image").await.expect("created");
    h.calls();
    // Someone removes one member by hand.
    h.fake.remove_member(IMAGE, "member-c");
    // Not due yet when the first is: only a wake can make o1 due at `early`.
    let early = h.ctx().clock.now();
    h.later();
    let sibling = h.cached("o1").expect("o1");
    let seen = Fingerprint::of(&sibling.metadata, FINALIZER);
    let uid = sibling.uid().unwrap_or_default();
    assert!(h.ctx().tracker.pending(&uid, seen, early).is_some(), "not due before");
    // The first to come due reads the list and wakes its siblings...
    h.reconcile("o0").await.expect("o0");
    assert_eq!(h.fake.requests("GET members"), 1);
    assert!(h.ctx().tracker.pending(&uid, seen, early).is_none(), "woken");
    // ...which are checked against it: no more reads, and the drift is still seen.
    h.reconcile("o1").await.expect("o1");
    h.reconcile("o2").await.expect("o2 recreated");
    assert_eq!(h.fake.requests("GET members"), 1, "one read for the image");
    assert!(
        h.fake.member(IMAGE, "member-c").is_some(),
        "the member removed by hand is back"
    );
    assert_eq!(h.fake.requests("GET member"), 0, "no read per object");
    // Another image is another read.
    h.reconcile("other-image").await.expect("other");
    assert_eq!(h.fake.requests("GET members"), 2);
    let calls = h.calls();
    assert_eq!(event_reasons(&calls), vec!["MemberRecreated"]);
}

/// A list read for one look is not reused at the next: with a short resync (or any other
/// reason to look again) a member removed by hand is seen at once.
#[tokio::test]
async fn a_member_removed_by_hand_is_seen_at_the_next_look_however_soon() {
    let resync_period = Duration::from_secs(3);
    let mut h = Harness::with_settings(Settings {
        resync_period,
        ..Settings::default()
    })
    .await;
    h.apply(&ImageAccess::test("o0", IMAGE, "member-a", "owner"));
    h.reconcile("o0").await.expect("created");
    h.ctx().clock.advance(Duration::from_secs(4));
    h.reconcile("o0").await.expect("checked");
    assert_eq!(h.fake.requests("GET members"), 1);
    h.fake.remove_member(IMAGE, "member-a");
    h.ctx().clock.advance(Duration::from_secs(4));
    h.reconcile("o0").await.expect("recreated");
    assert_eq!(h.fake.requests("GET members"), 2, "read again");
    assert!(
        h.fake.member(IMAGE, "member-a").is_some(),
        "the member removed by hand is back"
    );
}

/// Issue 10: objects of one image that come due together wait for the one list being read.
#[tokio::test]
async fn objects_due_together_read_their_image_once() {
    let mut h = Harness::new().await;
    for i in 0..3 {
        h.apply(&ImageAccess::test(
            &format!("o{i}"),
            IMAGE,
            &format!("member-{i}"),
            "owner",
        ));
        h.reconcile(&format!("o{i}")).await.expect("created");
    }
    h.later();
    h.fake.set_delay(Some(Duration::from_millis(100)));
    let objects: Vec<_> = (0..3).filter_map(|i| h.cached(&format!("o{i}"))).collect();
    let runs = objects.into_iter().map(|o| reconcile(o, h.ctx()));
    for result in futures::future::join_all(runs).await {
        result.expect("checked");
    }
    assert_eq!(h.fake.requests("GET members"), 1, "one read, the others waited for it");
}

#[tokio::test]
async fn the_echo_of_our_own_writes_reads_nothing_and_keeps_the_schedule() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.reconcile("share").await.expect("first");
    h.calls();
    let glance_requests = h.fake.requests("POST members") + h.fake.requests("GET member");
    // The watch brings the object back (finalizer, then status): as we left it.
    let action = h.reconcile("share").await.expect("echo");
    assert!(
        requeue_after(&action) > Duration::from_secs(500),
        "keeps the resync: {action:?}"
    );
    assert_eq!(
        h.fake.requests("POST members") + h.fake.requests("GET member"),
        glance_requests
    );
    assert!(writes(&h.calls()).iter().all(|c| c.path.contains("/events")));
}

#[tokio::test]
async fn existing_member_is_adopted_after_a_409() {
    let mut h = Harness::new().await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Accepted);
    h.apply(&share("share"));
    h.reconcile("share").await.expect("reconciled");
    let status = h.status("share");
    assert_eq!(condition(&status, "Ready").status, "True");
    assert_eq!(status.member_status, Some(MemberStatus::Accepted));
    assert_eq!(event_reasons(&h.calls()), vec!["MemberAdopted"]);
    assert_eq!(h.fake.requests("POST members"), 1);
    assert_eq!(h.fake.requests("GET member"), 1, "read once, after the 409");
}

/// Issue 11: what `export` writes is adopted with reads only, the status Glance shows kept;
/// issue 23: `onCreate: Adopt`, and the annotation that was its form before (objects exported
/// by earlier versions carry it).
#[tokio::test]
async fn an_object_written_for_an_existing_membership_adopts_it_without_a_glance_write() {
    for (form, adopt) in [
        ("onCreate: Adopt", adopting as fn(ImageAccess) -> ImageAccess),
        ("the annotation", adopting_by_annotation),
    ] {
        let mut h = Harness::new().await;
        h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Accepted);
        h.apply(&adopt(share("share")));
        h.reconcile("share").await.expect("reconciled");
        let status = h.status("share");
        assert_eq!(condition(&status, "Ready").status, "True", "{form}");
        assert_eq!(status.member_status, Some(MemberStatus::Accepted), "{form}");
        assert_eq!(event_reasons(&h.calls()), vec!["MemberAdopted"], "{form}");
        let writes = ["POST members", "PUT member", "DELETE member"].map(|kind| h.fake.requests(kind));
        assert_eq!(writes, [0, 0, 0], "{form}: POST, PUT, DELETE");
        assert_eq!(
            h.fake.requests("GET members"),
            1,
            "{form}: one read of the image's members"
        );
    }
}

/// The member's own credentials see the member in the image's member list, but could never
/// remove it: adopting with them is refused, not Ready.
#[tokio::test]
async fn adopting_with_the_member_projects_credentials_is_refused() {
    let mut h = Harness::new().await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Accepted);
    h.apply(&adopting(ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "member")));
    h.reconcile("share").await.expect("reconciled");
    let status = h.status("share");
    assert_eq!(condition(&status, "Stalled").reason, "NotTheOwner");
    assert!(
        condition(&status, "Stalled")
            .message
            .contains("owner project's credentials")
    );
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
    let writes = ["POST members", "PUT member", "DELETE member"].map(|kind| h.fake.requests(kind));
    assert_eq!(writes, [0, 0, 0]);
    let object = h.object("share").expect("object");
    assert_eq!(
        object.claim(),
        None,
        "it does not hold the membership: another object may take it"
    );
}

/// A membership removed between the export and the apply is made again, as the spec says.
#[tokio::test]
async fn an_object_written_for_a_membership_that_is_gone_creates_it() {
    let mut h = Harness::new().await;
    h.apply(&adopting(share("share")));
    h.reconcile("share").await.expect("reconciled");
    assert_eq!(condition(&h.status("share"), "Ready").status, "True");
    assert_eq!(event_reasons(&h.calls()), vec!["MemberCreated"]);
    let requests = ["GET members", "GET image", "POST members"].map(|kind| h.fake.requests(kind));
    assert_eq!(requests, [1, 0, 1], "the list, then the create");
}

/// An exported object whose image is gone since: ImageNotFound, without a create.
#[tokio::test]
async fn an_object_written_for_a_membership_of_an_image_that_is_gone_sends_no_create() {
    let mut h = Harness::new().await;
    let gone = "0f0e0d0c-0b0a-4908-8706-050403020100";
    h.apply(&adopting(ImageAccess::test("share", gone, MEMBER_PROJECT, "owner")));
    h.reconcile("share").await.expect("reconciled");
    assert_eq!(condition(&h.status("share"), "Stalled").reason, "ImageNotFound");
    let requests = ["GET members", "GET image", "POST members"].map(|kind| h.fake.requests(kind));
    assert_eq!(requests, [1, 0, 0], "the list's 404 says it all");
}

/// An image deleted under a managed membership: ImageNotFound from the list's 404, with no
/// attempt to create the member again.
#[tokio::test]
async fn an_image_deleted_under_a_membership_is_reported_without_a_create() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.reconcile("share").await.expect("created");
    h.fake.remove_image(IMAGE);
    h.later();
    h.reconcile("share").await.expect("stalled");
    assert_eq!(condition(&h.status("share"), "Stalled").reason, "ImageNotFound");
    assert_eq!(h.fake.requests("POST members"), 1, "only the first create");
}

/// `spec.onCreate: Adopt`, as `export` writes it (issue 23).
fn adopting(mut object: ImageAccess) -> ImageAccess {
    object.spec.on_create = Some(crate::api::OnCreate::Adopt);
    object
}

/// The older form of `onCreate: Adopt`.
fn adopting_by_annotation(mut object: ImageAccess) -> ImageAccess {
    object
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(crate::api::ADOPT_ANNOTATION.into(), "true".into());
    object
}

/// `onCreate: Create` (and no field) creates first: one request for a new membership.
#[tokio::test]
async fn on_create_create_creates_first() {
    let mut h = Harness::new().await;
    let mut object = share("share");
    object.spec.on_create = Some(crate::api::OnCreate::Create);
    h.apply(&object);
    h.reconcile("share").await.expect("reconciled");
    assert_eq!(h.fake.requests("POST members"), 1);
    assert_eq!(h.fake.requests("GET members"), 0, "no read before the create");
}

#[tokio::test]
async fn an_existing_member_of_a_full_image_is_adopted_not_reported_as_quota() {
    // Glance checks the quota before duplicates: re-creating a member of a full image gives 413.
    let mut h = Harness::new().await;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Pending);
    h.fake.set_member_quota(1);
    h.apply(&share("share"));
    h.reconcile("share").await.expect("reconciled");
    assert_eq!(condition(&h.status("share"), "Ready").status, "True");
    assert_eq!(event_reasons(&h.calls()), vec!["MemberAdopted"]);
}

#[tokio::test]
async fn admin_sets_the_asked_status() {
    let mut h = Harness::new().await;
    h.apply(&ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "admin").with_member_status(MemberStatus::Accepted));
    h.reconcile("share").await.expect("reconciled");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).map(|m| m.status),
        Some(MemberStatus::Accepted)
    );
    assert_eq!(h.status("share").member_status, Some(MemberStatus::Accepted));
    assert_eq!(event_reasons(&h.calls()), vec!["MemberCreated", "StatusSet"]);
}

#[tokio::test]
async fn owner_asking_for_a_status_is_stalled_with_the_fix_and_no_error() {
    let mut h = Harness::new().await;
    h.apply(&share("share").with_member_status(MemberStatus::Accepted));
    let action = h
        .reconcile("share")
        .await
        .expect("a stalled object is not an error (no hot loop)");
    let wait = requeue_after(&action);
    assert!(
        wait > Duration::from_secs(250) && wait < Duration::from_secs(350),
        "the stalled re-check"
    );
    let status = h.status("share");
    assert_eq!(condition(&status, "Stalled").status, "True");
    assert_eq!(reason(&status), "StatusChangeForbidden");
    assert!(condition(&status, "Stalled").message.contains("remove spec.status"));
    assert_eq!(
        status.member_status,
        Some(MemberStatus::Pending),
        "the member exists, pending"
    );
    assert!(status.applied.is_some(), "the created member is recorded");
    assert_eq!(
        event_reasons(&h.calls()),
        vec!["MemberCreated", "StatusChangeForbidden"]
    );

    // Re-checked later with the same result: no second Warning, no write.
    h.later();
    h.reconcile("share").await.expect("stalled again");
    let calls = h.calls();
    assert!(writes(&calls).is_empty(), "{calls:?}");
}

/// Orphan means the operator never removes a membership: not on deletion, and not when a spec
/// edit (or a second export applied over an object of the same name) names another one.
#[tokio::test]
async fn an_orphan_object_leaves_the_membership_its_spec_no_longer_names() {
    let mut h = Harness::new().await;
    h.apply(&ImageAccess::test("share", OTHER_IMAGE, MEMBER_PROJECT, "owner").with_policy(DeletionPolicy::Orphan));
    h.reconcile("share").await.expect("first");
    h.apply(&share("share").with_policy(DeletionPolicy::Orphan));
    h.reconcile("share").await.expect("replaced");
    assert!(
        h.fake.member(OTHER_IMAGE, MEMBER_PROJECT).is_some(),
        "old membership left"
    );
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some(), "new membership created");
    assert_eq!(h.fake.requests("DELETE member"), 0);
    assert_eq!(h.status("share").applied.map(|a| a.image_id), Some(IMAGE.to_string()));
    let reasons = event_reasons(&h.calls());
    assert_eq!(
        &reasons[reasons.len() - 2..],
        ["PreviousMemberOrphaned", "MemberCreated"]
    );
}

#[tokio::test]
async fn changing_the_image_replaces_the_membership() {
    let mut h = Harness::new().await;
    h.apply(&ImageAccess::test("share", OTHER_IMAGE, MEMBER_PROJECT, "owner"));
    h.reconcile("share").await.expect("first");
    h.apply(&share("share"));
    h.reconcile("share").await.expect("replaced");
    assert!(
        h.fake.member(OTHER_IMAGE, MEMBER_PROJECT).is_none(),
        "old membership removed"
    );
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some(), "new membership created");
    let object = h.object("share").expect("object");
    assert_eq!(h.status("share").applied.map(|a| a.image_id), Some(IMAGE.to_string()));
    assert_eq!(object.claim().map(|a| a.image_id), Some(IMAGE.to_string()));
    let reasons = event_reasons(&h.calls());
    assert_eq!(&reasons[reasons.len() - 2..], ["Replaced", "MemberCreated"]);
}

#[tokio::test]
async fn member_deleted_by_hand_is_recreated_and_status_restored() {
    let mut h = Harness::new().await;
    h.apply(&ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "admin").with_member_status(MemberStatus::Accepted));
    h.reconcile("share").await.expect("first");
    h.calls();
    h.fake.remove_member(IMAGE, MEMBER_PROJECT);
    h.later();
    h.reconcile("share").await.expect("recreated");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).map(|m| m.status),
        Some(MemberStatus::Accepted)
    );
    assert_eq!(event_reasons(&h.calls()), vec!["MemberRecreated", "StatusSet"]);

    h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Rejected);
    h.later();
    h.reconcile("share").await.expect("restored");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).map(|m| m.status),
        Some(MemberStatus::Accepted)
    );
    assert_eq!(event_reasons(&h.calls()), vec!["StatusSet"]);
}

// ---------------------------------------------------------------- deletion

#[tokio::test]
async fn deleting_object_removes_member_and_then_finalizer() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.reconcile("share").await.expect("created");
    h.delete("share");
    h.calls();
    h.reconcile("share").await.expect("cleaned up");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_none());
    assert!(h.object("share").is_none(), "gone once the finalizer went");
    assert_eq!(event_reasons(&h.calls()), vec!["MemberDeleted"]);
    assert!(h.ctx().tracker.is_empty(), "nothing remembered of it");
}

#[tokio::test]
async fn orphan_policy_leaves_the_member() {
    let mut h = Harness::new().await;
    h.apply(&share("share").with_policy(DeletionPolicy::Orphan));
    h.reconcile("share").await.expect("created");
    h.delete("share");
    h.calls();
    h.reconcile("share").await.expect("cleaned up");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
    assert!(h.object("share").is_none());
    assert_eq!(event_reasons(&h.calls()), vec!["MemberOrphaned"]);
    assert_eq!(h.fake.requests("DELETE member"), 0);
}

#[tokio::test]
async fn deletion_finishes_when_the_owner_sees_the_member_gone() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.reconcile("share").await.expect("created");
    h.fake.remove_member(IMAGE, MEMBER_PROJECT);
    h.delete("share");
    h.calls();
    h.reconcile("share").await.expect("deletion is not blocked");
    assert!(h.object("share").is_none());
    assert_eq!(event_reasons(&h.calls()), vec!["MemberAlreadyGone"]);
}

/// Issue 19, case 7: an image made private keeps its member rows, which grant access again
/// once it is shared again: the deletion waits for that (or for Orphan), it does not finish.
#[tokio::test]
async fn deleting_while_the_image_is_private_waits_until_it_is_shared_again() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.reconcile("share").await.expect("created");
    h.fake.set_visibility(IMAGE, "private");
    h.delete("share");
    h.calls();
    h.reconcile("share")
        .await
        .expect_err("stalled, looked at again with backoff");
    let object = h.object("share").expect("the finalizer stays");
    let status = object.status.expect("status");
    assert_eq!(reason(&status), "ImageNoLongerShared");
    let message = &condition(&status, "Stalled").message;
    assert!(message.contains("openstack image set --shared"), "{message}");
    assert!(message.contains("deletionPolicy to Orphan"), "{message}");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some(), "the row is still there");
    assert_eq!(event_reasons(&h.calls()), vec!["ImageNoLongerShared"]);

    h.fake.set_visibility(IMAGE, "shared");
    h.later();
    h.reconcile("share").await.expect("finished");
    assert!(h.object("share").is_none());
    assert!(
        h.fake.member(IMAGE, MEMBER_PROJECT).is_none(),
        "removed once Glance allowed it"
    );
}

#[tokio::test]
async fn never_claimed_object_is_deleted_without_credentials() {
    let mut h = Harness::new().await;
    h.kube.delete_secret(NAMESPACE, SECRET);
    h.apply(&ImageAccess::test("share", IMAGE, MEMBER_PROJECT, "no-such-cloud"));
    h.reconcile("share").await.expect("stalled, not an error");
    assert_eq!(reason(&h.status("share")), "CredentialsSecretNotFound");
    let object = h.object("share").expect("object");
    assert!(!object.has_finalizer(), "nothing claimed, nothing to hold");
    h.delete("share");
    assert!(h.object("share").is_none(), "a bad spec never blocks deletion");
}

#[tokio::test]
async fn glance_down_during_delete_keeps_the_finalizer() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.reconcile("share").await.expect("created");
    h.fake.inject(Fault {
        operation: "DELETE member",
        status: 503,
        retry_after: None,
    });
    h.delete("share");
    let error = h.reconcile("share").await.expect_err("transient: retried with backoff");
    assert!(error.to_string().contains("503"), "{error}");
    assert!(h.object("share").is_some_and(|o| o.has_finalizer()));
    assert_eq!(condition(&h.status("share"), "Reconciling").status, "True");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
    // Glance is back; the retry is due.
    h.later();
    h.reconcile("share").await.expect("cleaned up");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_none());
    assert!(h.object("share").is_none());
}

/// Issue 7, A1: a cleanup that needs a human keeps the finalizer.
#[tokio::test]
async fn a_missing_secret_keeps_the_finalizer_and_says_how_to_let_go() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.reconcile("share").await.expect("created");
    // Someone removes the operator's hold by hand and deletes the Secret: it is really gone.
    h.kube.remove_secret(NAMESPACE, SECRET);
    h.delete("share");
    h.calls();
    let action = h.reconcile("share").await.expect("stalled, not an error: no hot loop");
    assert!(
        requeue_after(&action) > Duration::from_secs(250),
        "the stalled re-check"
    );
    let object = h.object("share").expect("the finalizer holds");
    assert!(object.has_finalizer());
    let status = object.status.expect("status");
    assert_eq!(reason(&status), "CredentialsSecretNotFound");
    assert!(
        condition(&status, "Stalled")
            .message
            .contains("deletionPolicy to Orphan")
    );
    assert!(
        h.fake.member(IMAGE, MEMBER_PROJECT).is_some(),
        "nothing removed, nothing lost"
    );
    assert!(event_reasons(&h.calls()).contains(&"CredentialsSecretNotFound".to_string()));

    // The hint works: Orphan lets it go without touching Glance.
    let mut orphan = h.object("share").expect("object");
    orphan.spec.deletion_policy = Some(DeletionPolicy::Orphan);
    h.apply(&orphan);
    h.reconcile("share").await.expect("orphaned");
    assert!(h.object("share").is_none());
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some());
}

/// Issue 7, A2: the Secret an object needs is held until the object is gone.
#[tokio::test]
async fn the_secret_is_held_while_an_object_needs_it_and_released_after() {
    let mut h = Harness::new().await;
    h.apply(&share("one"));
    h.apply(&ImageAccess::test("two", OTHER_IMAGE, MEMBER_PROJECT, "owner"));
    h.reconcile("one").await.expect("one");
    h.reconcile("two").await.expect("two");
    let hold = hold_finalizer(None);
    assert_eq!(
        h.secret_finalizers(),
        vec![hold.clone()],
        "held before the first create"
    );

    // The namespace goes: the Secret and both objects are deleted at once.
    h.kube.delete_secret(NAMESPACE, SECRET);
    h.delete("one");
    h.delete("two");
    h.sync();
    assert!(
        h.kube.secret(NAMESPACE, SECRET).is_some(),
        "terminating, still readable"
    );
    h.reconcile("one").await.expect("one cleaned up");
    h.reconcile_secrets().await;
    assert!(h.kube.secret(NAMESPACE, SECRET).is_some(), "two still needs it");
    h.reconcile("two").await.expect("two cleaned up");
    h.reconcile_secrets().await;
    assert!(
        h.kube.secret(NAMESPACE, SECRET).is_none(),
        "released, so the Secret is gone"
    );
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_none());
    assert!(
        h.fake.member(OTHER_IMAGE, MEMBER_PROJECT).is_none(),
        "no membership left behind"
    );
}

/// Review finding: a hold released in the moment a new object came to need the Secret is put
/// back as soon as the operator sees the new object.
#[tokio::test]
async fn a_secret_released_as_a_new_object_arrives_is_held_again() {
    let mut h = Harness::new().await;
    h.apply(&share("old"));
    h.reconcile("old").await.expect("old");
    h.delete("old");
    h.reconcile("old").await.expect("old cleaned up");
    // A new object using the Secret is created; the operator has not seen it when the
    // Secret controller decides nobody needs the Secret.
    h.kube
        .apply(&ImageAccess::test("new", OTHER_IMAGE, MEMBER_PROJECT, "owner"));
    let unseen = h.kube.take_changes();
    for secret in h.kube.secrets() {
        reconcile_secret(Arc::new(secret_metadata(&secret)), h.ctx())
            .await
            .expect("released");
    }
    assert!(
        h.secret_finalizers().is_empty(),
        "released: nobody it knows of needs it"
    );
    h.op.feed(unseen);
    h.reconcile_secrets().await;
    assert_eq!(h.secret_finalizers(), vec![hold_finalizer(None)], "held again");
}

/// Issue 7, A3: a 403 on delete ends the deletion only when nothing is granted.
#[tokio::test]
async fn credentials_that_may_not_remove_the_member_keep_the_finalizer() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    h.reconcile("share").await.expect("created by the owner");
    // The Secret now names the member project's credentials.
    let mut object = h.object("share").expect("object");
    object.spec.cloud_credentials_ref.cloud_name = "member".into();
    h.apply(&object);
    h.reconcile("share").await.expect("still Ready: the member sees itself");
    h.delete("share");
    h.calls();
    h.reconcile("share").await.expect("stalled");
    let object = h.object("share").expect("held");
    assert!(object.has_finalizer());
    let status = object.status.expect("status");
    assert_eq!(reason(&status), "MemberRemovalForbidden");
    let message = &condition(&status, "Stalled").message;
    assert!(message.contains(OWNER_PROJECT), "names the owner: {message}");
    assert!(message.contains(MEMBER_PROJECT), "and who tried: {message}");
    assert!(message.contains("deletionPolicy to Orphan"), "{message}");
    assert!(
        h.fake.member(IMAGE, MEMBER_PROJECT).is_some(),
        "the member keeps access, and we say so"
    );

    // The owner's credentials back: removed, and the deletion finishes.
    let mut object = h.object("share").expect("object");
    object.spec.cloud_credentials_ref.cloud_name = "owner".into();
    h.apply(&object);
    h.reconcile("share").await.expect("finished");
    assert!(h.object("share").is_none());
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_none());
}

/// Issue 7, A4: a crash between the Glance create and the status write orphans nothing.
#[tokio::test]
async fn a_create_whose_status_was_never_written_is_still_removed_on_delete() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    // The status write fails after the create: the operator "crashes" here.
    h.kube.fail_next("PATCH", "/status", 500);
    h.reconcile("share").await.expect_err("status write failed");
    assert!(h.fake.member(IMAGE, MEMBER_PROJECT).is_some(), "created in Glance");
    assert!(h.status("share").applied.is_none(), "but never recorded in the status");
    // A new operator process, and the object is deleted before it looks.
    h.op = Operator::restarted(h.client.clone(), &h.kube);
    h.delete("share");
    h.reconcile("share").await.expect("cleaned up");
    assert!(
        h.fake.member(IMAGE, MEMBER_PROJECT).is_none(),
        "the claim said what to remove"
    );
    assert!(h.object("share").is_none());
}

/// Issue 7, A5: one manager per membership.
#[tokio::test]
async fn a_second_object_for_the_same_membership_waits_and_touches_nothing() {
    let mut h = Harness::new().await;
    h.apply(&ImageAccess::test("first", IMAGE, MEMBER_PROJECT, "owner"));
    h.reconcile("first").await.expect("first");
    // The consumer accepts.
    let member_token_accepts = MemberStatus::Accepted;
    h.fake.put_member(IMAGE, MEMBER_PROJECT, member_token_accepts);
    let glance_calls = |h: &Harness| {
        h.fake.requests("POST members")
            + h.fake.requests("PUT member")
            + h.fake.requests("DELETE member")
            + h.fake.requests("GET member")
    };
    let before = glance_calls(&h);
    h.apply(&ImageAccess::test("second", IMAGE, MEMBER_PROJECT, "admin").with_member_status(MemberStatus::Pending));
    h.reconcile("second").await.expect("stalled, not an error");
    let status = h.status("second");
    assert_eq!(reason(&status), "MembershipManagedElsewhere");
    assert!(
        condition(&status, "Stalled").message.contains("default/first"),
        "names the other"
    );
    assert!(status.applied.is_none());
    assert_eq!(glance_calls(&h), before, "touched nothing in Glance");
    assert_eq!(
        h.fake.member(IMAGE, MEMBER_PROJECT).map(|m| m.status),
        Some(MemberStatus::Accepted)
    );

    // Deleting the second removes nothing.
    h.delete("second");
    h.sync();
    if h.object("second").is_some() {
        h.reconcile("second").await.expect("cleanup");
    }
    assert!(h.object("second").is_none());
    assert!(
        h.fake.member(IMAGE, MEMBER_PROJECT).is_some(),
        "the first still manages it"
    );
}

#[tokio::test]
async fn the_waiting_object_takes_over_when_the_first_is_deleted_keeping_the_acceptance() {
    for policy in [DeletionPolicy::Delete, DeletionPolicy::Orphan] {
        let mut h = Harness::new().await;
        h.apply(&ImageAccess::test("first", IMAGE, MEMBER_PROJECT, "owner").with_policy(policy));
        h.reconcile("first").await.expect("first");
        h.fake.put_member(IMAGE, MEMBER_PROJECT, MemberStatus::Accepted);
        h.apply(&ImageAccess::test("second", IMAGE, MEMBER_PROJECT, "owner"));
        h.reconcile("second").await.expect("waits");
        assert_eq!(reason(&h.status("second")), "MembershipManagedElsewhere", "{policy:?}");

        h.delete("first");
        h.reconcile("first").await.expect("first cleaned up");
        assert!(h.object("first").is_none(), "{policy:?}");
        assert!(
            h.fake.member(IMAGE, MEMBER_PROJECT).is_some(),
            "{policy:?}: left for the object that takes it over"
        );
        // The first's deletion wakes the second, which looks at once (no resync needed).
        h.reconcile("second").await.expect("takes over");
        let status = h.status("second");
        assert_eq!(condition(&status, "Ready").status, "True", "{policy:?}");
        assert_eq!(
            status.member_status,
            Some(MemberStatus::Accepted),
            "{policy:?}: adopted, the consumer's acceptance kept"
        );
        let reasons = event_reasons(&h.calls());
        assert!(
            reasons.contains(&"MemberAdopted".to_string()),
            "{policy:?}: {reasons:?}"
        );
    }
}

/// Review finding: a membership handed over to an object that is being deleted at the same
/// time (a namespace deletion), seen through a cache that does not show that deletion yet,
/// must not leave with that object.
#[tokio::test]
async fn a_membership_is_not_handed_to_an_object_that_is_going_too() {
    let mut h = Harness::new().await;
    h.apply(&ImageAccess::test("a", IMAGE, MEMBER_PROJECT, "owner"));
    h.reconcile("a").await.expect("a manages IMAGE");
    // b managed OTHER_IMAGE, then moved to IMAGE, which a manages: it waits, keeping its
    // finalizer and no claim.
    h.apply(&ImageAccess::test("b", OTHER_IMAGE, MEMBER_PROJECT, "owner"));
    h.reconcile("b").await.expect("b manages OTHER_IMAGE");
    h.apply(&ImageAccess::test("b", IMAGE, MEMBER_PROJECT, "owner"));
    h.reconcile("b").await.expect("b waits");
    let b = h.object("b").expect("b");
    assert_eq!(reason(&h.status("b")), "MembershipManagedElsewhere");
    assert!(b.has_finalizer() && b.claim().is_none());

    // Both are deleted; the cache shows a's deletion but not yet b's.
    h.kube.delete(NAMESPACE, "b");
    let b_deleted = h.kube.take_changes();
    h.kube.delete(NAMESPACE, "a");
    let a_deleted = h.kube.take_changes();
    h.op.feed(a_deleted);
    let a = h.cached("a").expect("a");
    let _ = reconcile(a, h.ctx()).await; // hands over to b, as far as it can tell
    // b's cleanup runs on the cache that shows its deletion but not what a wrote meanwhile.
    let written_by_a = h.kube.take_changes();
    h.op.feed(b_deleted);
    if let Some(b) = h.cached("b") {
        let _ = reconcile(b, h.ctx()).await;
    }
    h.op.feed(written_by_a);
    // Then everything settles.
    for _ in 0..4 {
        h.later();
        for name in ["a", "b"] {
            h.sync();
            if h.cached(name).is_some() {
                let _ = h.reconcile(name).await;
            }
        }
    }
    assert!(h.object("a").is_none() && h.object("b").is_none(), "both gone");
    assert!(
        h.fake.member(IMAGE, MEMBER_PROJECT).is_none(),
        "the membership went with the last object that held it"
    );
}

// ---------------------------------------------------------------- responsiveness

/// Issue 7, B6: the echo of the "retrying" status write must not replace the backoff retry.
#[tokio::test]
async fn a_transient_failure_is_retried_after_its_backoff_not_at_the_resync() {
    let mut h = Harness::new().await;
    h.fake.inject(Fault {
        operation: "POST members",
        status: 503,
        retry_after: None,
    });
    h.apply(&share("share"));
    let object = h.cached("share").expect("cached");
    let error = reconcile(object.clone(), h.ctx()).await.expect_err("transient");
    let retry = requeue_after(&error_policy(object, &error, h.ctx()));
    assert!(
        retry <= Duration::from_secs(1),
        "first retry within a second: {retry:?}"
    );
    // The watch delivers our claim and status writes: as we left it, so the retry stays.
    let echo = h.reconcile("share").await.expect("echo");
    assert!(requeue_after(&echo) <= retry, "the echo keeps the retry: {echo:?}");
    assert_eq!(condition(&h.status("share"), "Reconciling").status, "True");
}

/// Issue 7, B7: a spec edit made while a reconcile is in flight is acted on.
#[tokio::test]
async fn a_spec_edit_during_a_reconcile_is_not_skipped() {
    let mut h = Harness::new().await;
    h.apply(&share("share"));
    let in_flight = h.cached("share").expect("generation 1");
    // The user edits the spec while the reconcile of generation 1 runs; its status write lands
    // on generation 2.
    h.kube
        .apply(&ImageAccess::test("share", OTHER_IMAGE, MEMBER_PROJECT, "owner"));
    reconcile(in_flight, h.ctx()).await.expect("generation 1 done");
    h.sync();
    assert_eq!(h.cached("share").and_then(|o| o.metadata.generation), Some(2));
    h.reconcile("share").await.expect("generation 2");
    assert!(
        h.fake.member(OTHER_IMAGE, MEMBER_PROJECT).is_some(),
        "the edit was acted on at once"
    );
    assert!(
        h.fake.member(IMAGE, MEMBER_PROJECT).is_none(),
        "and the old one replaced"
    );
    assert_eq!(h.status("share").observed_generation, Some(2));
}

/// Issue 7, B8: a fixed Secret wakes the objects that use it.
#[tokio::test]
async fn a_fixed_secret_wakes_the_objects_that_use_it() {
    let mut h = Harness::new().await;
    let good = clouds_data(&h.fake);
    h.kube
        .put_secret(NAMESPACE, SECRET, &[("clouds.yaml", &good.replace(PASSWORD, "wrong"))]);
    h.apply(&share("share"));
    h.reconcile("share").await.expect("stalled");
    assert_eq!(reason(&h.status("share")), "AuthenticationFailed");
    let stalled = h.cached("share").expect("cached");
    let uid = stalled.uid().unwrap_or_default();
    let seen = Fingerprint::of(&stalled.metadata, FINALIZER);
    assert!(
        h.ctx().tracker.pending(&uid, seen, h.ctx().clock.now()).is_some(),
        "waits for its re-check"
    );
    h.kube.put_secret(NAMESPACE, SECRET, &[("clouds.yaml", &good)]);
    h.sync();
    assert!(
        h.ctx().tracker.pending(&uid, seen, h.ctx().clock.now()).is_none(),
        "the Secret change makes it look now"
    );
    h.reconcile("share").await.expect("recovered");
    assert_eq!(condition(&h.status("share"), "Ready").status, "True");
}

/// Issue 7, C11: region and interface come from each object's cloud, not the shared session.
#[tokio::test]
async fn two_clouds_with_the_same_user_keep_their_own_regions() {
    let mut h = Harness::new().await;
    let two_regions = clouds_data(&h.fake)
        + &format!(
            "  owner-r2:\n    auth:\n      auth_url: {}\n      username: owner\n      password: {PASSWORD}\n      project_name: owner-project\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionTwo\n",
            h.fake.auth_url()
        );
    h.kube.put_secret(NAMESPACE, SECRET, &[("clouds.yaml", &two_regions)]);
    h.apply(&share("r1"));
    h.apply(&ImageAccess::test("r2", OTHER_IMAGE, MEMBER_PROJECT, "owner-r2"));
    h.reconcile("r1").await.expect("r1");
    h.reconcile("r2").await.expect("r2");
    assert_eq!(h.ctx().openstack.session_count(), 1, "one token for one user");
    let region = |h: &Harness, name: &str| h.status(name).applied.and_then(|a| a.region);
    assert_eq!(region(&h, "r1").as_deref(), Some("RegionOne"));
    assert_eq!(region(&h, "r2").as_deref(), Some("RegionTwo"));
}

// ---------------------------------------------------------------- errors

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
            prepare: |h| h.kube.delete_secret(NAMESPACE, SECRET),
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
        let mut h = Harness::new().await;
        (case.prepare)(&h);
        let image = if case.name == "image missing" {
            "00000000-0000-4000-8000-000000000000"
        } else {
            IMAGE
        };
        h.apply(&ImageAccess::test("share", image, MEMBER_PROJECT, case.cloud));
        let action = h
            .reconcile("share")
            .await
            .unwrap_or_else(|e| panic!("{}: stalled is not an error: {e}", case.name));
        assert!(requeue_after(&action) > Duration::from_secs(250), "{}", case.name);
        let status = h.status("share");
        assert_eq!(condition(&status, "Stalled").status, "True", "{}", case.name);
        assert_eq!(reason(&status), case.reason, "{}", case.name);
        assert_eq!(condition(&status, "Reconciling").status, "False", "{}", case.name);
        assert!(
            event_reasons(&h.calls()).contains(&case.reason.to_string()),
            "{}: warning event",
            case.name
        );
        assert!(
            !condition(&status, "Stalled").message.contains(PASSWORD),
            "no secret in conditions"
        );
    }
}

#[tokio::test]
async fn transient_errors_retry_with_backoff_and_honour_retry_after() {
    let mut h = Harness::new().await;
    h.fake.inject(Fault {
        operation: "POST members",
        status: 429,
        retry_after: Some("42"),
    });
    h.apply(&share("share"));
    let object = h.cached("share").expect("cached");
    let error = reconcile(object.clone(), h.ctx()).await.expect_err("transient");
    h.sync();
    let status = h.status("share");
    assert_eq!(condition(&status, "Reconciling").status, "True");
    assert_eq!(condition(&status, "Stalled").status, "False");
    assert_eq!(reason(&status), "OpenStackUnavailable");
    let action = error_policy(object, &error, h.ctx());
    assert_eq!(requeue_after(&action), Duration::from_secs(42), "waits for Retry-After");
    // Then it works and the failure count is reset.
    h.later();
    h.reconcile("share").await.expect("recovered");
    assert_eq!(condition(&h.status("share"), "Ready").status, "True");
    let uid = h.cached("share").and_then(|o| o.uid()).unwrap_or_default();
    assert_eq!(h.ctx().tracker.failures(&uid), 0);
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

/// Issue 7, E16: per-object state is keyed by uid and forgotten when the object goes.
#[tokio::test]
async fn a_recreated_object_starts_fresh() {
    let mut h = Harness::new().await;
    h.fake.inject(Fault {
        operation: "POST members",
        status: 503,
        retry_after: None,
    });
    h.apply(&share("share"));
    h.reconcile("share").await.expect_err("transient");
    let first_uid = h.cached("share").and_then(|o| o.uid()).unwrap_or_default();
    assert_eq!(h.ctx().tracker.failures(&first_uid), 1);
    h.delete("share");
    h.reconcile("share").await.expect("cleaned up");
    assert!(h.ctx().tracker.is_empty(), "forgotten with the object");
    h.apply(&share("share"));
    let second_uid = h.cached("share").and_then(|o| o.uid()).unwrap_or_default();
    assert_ne!(first_uid, second_uid);
    h.reconcile("share").await.expect("fresh");
    assert_eq!(h.ctx().tracker.failures(&second_uid), 0);
}

/// Issue 7, E17 (and issue 10): OpenStack requests in flight never exceed `--concurrency`, and
/// objects at work never exceed four times that, over every watched namespace together.
#[tokio::test]
async fn work_at_once_never_exceeds_the_limits() {
    let fake = FakeOpenStack::start().await;
    fake.add_image(IMAGE, OWNER_PROJECT, "shared");
    fake.set_delay(Some(Duration::from_millis(100)));
    let (kube, client) = FakeKube::start();
    kube.put_secret(NAMESPACE, SECRET, &[("clouds.yaml", &fake.clouds_yaml())]);
    let metrics = Arc::new(Metrics::default());
    let settings = Settings {
        concurrency: 2,
        ..Default::default()
    };
    let client_settings = ClientSettings {
        max_in_flight: 2,
        ..Default::default()
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        OpenStack::new(client_settings, metrics.clone()),
        metrics.clone(),
        settings,
        Reporter {
            controller: "t".into(),
            instance: None,
        },
        hold_finalizer(None),
    ));
    ctx.objects_synced.store(true, Ordering::Relaxed);
    let mut objects = Vec::new();
    for i in 0..12 {
        let mut object = ImageAccess::test(&format!("o{i}"), IMAGE, &format!("member-{i}"), "owner");
        object.metadata.namespace = Some(NAMESPACE.into());
        objects.push(Arc::new(kube.apply(&object)));
    }
    let peak = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let watcher = {
        let (metrics, peak) = (metrics.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                let now = metrics
                    .active_workers
                    .get_or_create(&Metrics::controller_labels("imageaccess"))
                    .get();
                peak.fetch_max(now, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let runs: Vec<_> = objects.into_iter().map(|o| reconcile(o, ctx.clone())).collect();
    for result in futures::future::join_all(runs).await {
        result.expect("reconciled");
    }
    watcher.abort();
    assert_eq!(
        fake.max_in_flight(),
        2,
        "two OpenStack requests at once at most, and both used"
    );
    assert_eq!(
        peak.load(Ordering::Relaxed),
        8,
        "eight objects at work at most, and all used"
    );
}

// ---------------------------------------------------------------- helpers of the fakes

#[test]
fn the_claim_annotation_round_trips() {
    let membership = Membership {
        endpoint: Some("http://glance.example/image".into()),
        project: Some(OWNER_PROJECT.into()),
        admin: true,
        ..Membership::named(IMAGE.into(), MEMBER_PROJECT.into(), Some("RegionOne".into()))
    };
    let mut object = share("share");
    object.metadata.annotations.get_or_insert_default().insert(
        CLAIM_ANNOTATION.into(),
        serde_json::to_string(&membership).expect("json"),
    );
    assert_eq!(object.claim(), Some(membership));
}

/// The cache keeps neither managedFields nor kubectl's last applied manifest, and keeps the
/// annotation map (so a claim is added to it, not written over it).
#[test]
fn watched_objects_are_slimmed_without_losing_the_annotation_map() {
    let mut object = ImageAccess::test("o", IMAGE, "member-a", "owner");
    object.metadata.managed_fields = Some(vec![Default::default()]);
    object.metadata.annotations = Some([(LAST_APPLIED.to_string(), "{}".to_string())].into());
    slim(&mut object);
    assert_eq!(object.metadata.managed_fields, None);
    assert_eq!(object.metadata.annotations, Some(Default::default()));
}

/// Issue 23: a look that finds nothing to do comes back after the object's `resyncPeriod`, not
/// the operator's 10 minutes, and so does a stalled one when that is sooner than the re-check.
#[tokio::test]
async fn the_next_look_comes_after_the_objects_resync_period() {
    let mut h = Harness::new().await;
    let mut object = share("share");
    object.spec.resync_period = Some("2m".into());
    h.apply(&object);
    let wait = requeue_after(&h.reconcile("share").await.expect("created"));
    assert!(
        (Duration::from_secs(108)..=Duration::from_secs(132)).contains(&wait),
        "2m, jittered: {wait:?}"
    );
    let mut stalled = share("stalled").with_member_status(MemberStatus::Accepted);
    stalled.spec.image_id = OTHER_IMAGE.into();
    stalled.spec.resync_period = Some("1m".into());
    h.apply(&stalled);
    let wait = requeue_after(&h.reconcile("stalled").await.expect("stalled, not an error"));
    assert_eq!(condition(&h.status("stalled"), "Stalled").status, "True");
    assert!(
        wait <= Duration::from_secs(66),
        "the object's minute, not the 5 min re-check: {wait:?}"
    );
}
