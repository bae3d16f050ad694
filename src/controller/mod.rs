//! The controllers, one per kind, and what they share.
//!
//! Every kind goes through the same steps, run by this module: a watch that keeps the kind's
//! [`index`] and wakes the objects a change concerns, a reconcile that skips the echo of its own
//! writes ([`crate::runtime::tracker`]), bounded concurrency, credentials from a held Secret,
//! the claim (finalizer and claim annotation) before Glance is touched, status conditions, events
//! on transitions, per-object backoff and metrics labelled with the controller's name. A kind
//! ([`Kind`]) brings only what differs: what it does to Glance when applied and when deleted.
//! - [`access`]: `ImageAccess`, the owner's side (creates and removes memberships).
//! - [`accept`]: `ImageAccessAccept`, the member's side (sets the member status).
//!
//! [`share`] is of another sort: an `ImageShare` never calls OpenStack; it keeps one
//! `ImageAccess` per (image, member) pair and sums up their conditions.
//!
//! To add a kind: implement [`crate::api::Managed`] for it, give the [`Context`] a
//! [`KindState`] for it, implement [`Kind`] (its `apply` and `cleanup`), and call
//! [`run_kind`] for it in [`run`].
//!
//! The promises every kind keeps under faults:
//! - Nothing in Glance changes before the object carries the finalizer and the claim
//!   annotation naming the membership ([`claim`]), so a crash between a Glance write and the
//!   status write still leaves the deletion knowing what to undo.
//! - The finalizer goes only once what the deletion policy asks is done in Glance. Anything
//!   else keeps it, Stalled with a message that says how to let go.
//! - Problems that need a human become conditions, a Warning event and a slow re-check;
//!   transient ones go to [`error_policy`] for per-object exponential backoff. A reconcile that
//!   finds the object as it left it does nothing and keeps the pending re-check or retry.

pub mod accept;
pub mod access;
pub mod index;
pub mod lists;
pub mod ownership;
pub mod plan;
pub mod problem;
pub mod share;
pub mod status;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::api::{CLAIM_ANNOTATION, FINALIZER, ImageAccess, ImageAccessAccept, Managed, Membership};
use crate::credentials::{ReadError, Secrets};
use crate::metrics::Metrics;
use crate::openstack::{Cloud, OpenStack, OpenStackError, Session};
use crate::runtime::tracker::{Clock, Fingerprint, Tracker};
use crate::runtime::{Events, FIELD_MANAGER, Happened, Requeue, WatchScope, patch_metadata, publish};
use index::Index;
use problem::{Problem, Step};

/// Timing of re-checks and retries, and how many objects are worked on at once.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Glance cannot be watched: every object is re-checked this often (±10 % jitter).
    pub resync_period: Duration,
    /// Re-check of an object that needs a human (a fixed Secret wakes it at once).
    pub stalled_recheck: Duration,
    /// First retry after a transient failure; doubles per failure, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// OpenStack requests in flight at once (the load on the cloud). Objects at work at once:
    /// [`RECONCILES_PER_REQUEST`] times as many, so that their Kubernetes writes overlap the
    /// OpenStack calls of others instead of taking turns with them.
    pub concurrency: u16,
}

/// Objects at work at once per OpenStack request in flight.
pub const RECONCILES_PER_REQUEST: u16 = 4;

impl Settings {
    /// Objects at work at once, over all watched namespaces together.
    pub fn reconcile_concurrency(&self) -> u16 {
        self.concurrency.max(1).saturating_mul(RECONCILES_PER_REQUEST)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync_period: Duration::from_secs(600),
            stalled_recheck: Duration::from_secs(300),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            concurrency: 8,
        }
    }
}

/// One kind of object the operator manages. The shared controller ([`reconcile`],
/// [`error_policy`], [`run_kind`]) does everything around the kind's two Glance steps.
pub trait Kind:
    Managed
    + Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The `controller` label of its metrics: the kind in lowercase, as controller-runtime
    /// names controllers.
    const CONTROLLER: &'static str;

    /// The other kind whose objects can name the same membership: when one of ours changes
    /// its hold on a membership, those are woken (a conflict may be over, a share may exist).
    type Counterpart: Kind;

    /// This kind's watch caches, index and requeue channels.
    fn state(ctx: &Context) -> &KindState<Self>;

    /// The image the spec names, in Glance's form.
    fn image_id(&self) -> String;

    /// The membership the spec names, before the cloud's default region is known; `None` when
    /// the member is known only once the credentials are read.
    fn named(&self) -> Option<Membership>;

    /// The status after a reconcile of `desired` with `outcome`; `None` when it would not
    /// change (transition times aside), so a steady object is never written.
    fn next_status(
        &self,
        desired: &Membership,
        outcome: &status::Outcome,
        now: jiff::Timestamp,
    ) -> Option<impl Serialize + Send>;

    /// Brings Glance and the status to the spec (the object is not being deleted).
    fn apply(object: &Self, api: &Api<Self>, ctx: &Context) -> impl Future<Output = Result<Next, Error>> + Send;

    /// Does what the deletion policy asks in Glance, then removes the finalizer.
    fn cleanup(object: &Self, api: &Api<Self>, ctx: &Context) -> impl Future<Output = Result<Next, Error>> + Send;

    /// What else a watch event of this kind concerns, once the cache has it (a share woken by
    /// its children, for one).
    fn tap(_ctx: &Context, _scope: Option<&str>, _event: &watcher::Event<Self>) {}
}

/// What the shared controller keeps per kind.
pub struct KindState<K: Kind> {
    /// Which objects name which memberships and Secrets.
    pub index: Index<K>,
    /// The watch caches, per watched scope.
    stores: RwLock<Vec<(Option<String>, Store<K>)>>,
    requeue: Requeue<K>,
    /// Objects to wake once the relist of a scope is complete.
    relist_wakes: Mutex<HashMap<Option<String>, HashSet<ObjectRef<K>>>>,
}

impl<K: Kind> Default for KindState<K> {
    fn default() -> Self {
        KindState {
            index: Index::default(),
            stores: RwLock::default(),
            requeue: Requeue::default(),
            relist_wakes: Mutex::default(),
        }
    }
}

impl<K: Kind> KindState<K> {
    /// The object as the watch cache has it.
    fn object(&self, reference: &ObjectRef<K>) -> Option<Arc<K>> {
        let stores = self.stores.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        stores
            .iter()
            .filter(|(scope, _)| scope.is_none() || *scope == reference.namespace)
            .find_map(|(_, store)| store.get(reference))
    }

    fn relist_wakes(&self) -> MutexGuard<'_, HashMap<Option<String>, HashSet<ObjectRef<K>>>> {
        self.relist_wakes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub openstack: OpenStack,
    pub events: Events,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub secrets: Secrets,
    pub tracker: Tracker,
    pub clock: Clock,
    pub access: KindState<ImageAccess>,
    pub accept: KindState<ImageAccessAccept>,
    pub shares: share::ShareState,
    /// Member lists read at a resync, shared by the ImageAccess objects of an image.
    member_lists: lists::MemberLists,
    requeue_secret: Requeue<PartialObjectMeta<Secret>>,
    /// Bounds the reconciles at work over all kinds and namespaces (one kube-runtime controller
    /// runs per kind and watched namespace, each with this same limit).
    permits: tokio::sync::Semaphore,
    /// Set once every watch of every kind has listed: before that, no Secret is released.
    objects_synced: AtomicBool,
}

impl Context {
    /// `hold_finalizer` is the finalizer put on the Secrets objects need
    /// ([`crate::credentials::hold_finalizer`]).
    pub fn new(
        client: kube::Client,
        openstack: OpenStack,
        metrics: Arc<Metrics>,
        settings: Settings,
        reporter: Reporter,
        hold_finalizer: String,
    ) -> Self {
        Context {
            events: Events::new(client.clone(), reporter),
            secrets: Secrets::new(client.clone(), hold_finalizer),
            client,
            openstack,
            metrics,
            permits: tokio::sync::Semaphore::new(usize::from(settings.reconcile_concurrency())),
            settings,
            tracker: Tracker::default(),
            clock: Clock::default(),
            access: KindState::default(),
            accept: KindState::default(),
            shares: share::ShareState::default(),
            member_lists: lists::MemberLists::default(),
            requeue_secret: Requeue::default(),
            objects_synced: AtomicBool::new(false),
        }
    }

    /// Registers the watch cache of one scope (a namespace, or all) of a kind.
    pub fn watch_scope<K: Kind>(&self, scope: Option<String>, store: Store<K>) {
        K::state(self)
            .stores
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((scope, store));
    }

    /// The object as the watch cache has it.
    fn object<K: Kind>(&self, reference: &ObjectRef<K>) -> Option<Arc<K>> {
        K::state(self).object(reference)
    }

    /// The objects of kind `K` that name, claim or hold `membership`'s image and member (any
    /// region, any namespace this instance watches), but `me`.
    fn naming<K: Kind>(&self, membership: &Membership, me: Option<&ObjectRef<K>>) -> Vec<Arc<K>> {
        K::state(self)
            .index
            .naming(&membership.image_id, &membership.member_id)
            .into_iter()
            .filter(|reference| Some(reference) != me)
            .filter_map(|reference| self.object(&reference))
            .collect()
    }

    /// Looks at one watch event of a kind once the cache has it: keeps the index, wakes the
    /// objects (of both kinds) that wait on a membership whose holder changed, asks for the
    /// Secrets whose use changed to be held or released, and forgets objects that are gone.
    /// During a relist the cache shows the new list only at its end, so the wake-ups of the
    /// kind's own objects wait for it.
    pub fn observe<K: Kind>(&self, scope: Option<&str>, event: &watcher::Event<K>) {
        let state = K::state(self);
        let scope_key = scope.map(str::to_string);
        let changes = match event {
            watcher::Event::Apply(object) => state.index.apply(object),
            watcher::Event::InitApply(object) => {
                let changes = state.index.apply(object);
                state.relist_wakes().entry(scope_key).or_default().extend(changes.wake);
                index::Changes {
                    wake: Default::default(),
                    ..changes
                }
            }
            watcher::Event::Delete(object) => state.index.delete(object),
            watcher::Event::Init => {
                state.index.relist_started(scope);
                state.relist_wakes().insert(scope_key, Default::default());
                return;
            }
            watcher::Event::InitDone => {
                let mut changes = state.index.relist_done(scope);
                changes
                    .wake
                    .extend(state.relist_wakes().remove(&scope_key).unwrap_or_default());
                changes
            }
        };
        for uid in &changes.gone {
            self.tracker.forget(uid);
        }
        for reference in changes.wake {
            self.wake(reference);
        }
        for (image_id, member_id) in &changes.pairs {
            for reference in K::Counterpart::state(self).index.naming(image_id, member_id) {
                self.wake(reference);
            }
        }
        for (namespace, name) in changes.secrets {
            self.requeue_secret.send(ObjectRef::new(&name).within(&namespace));
        }
    }

    /// Looks at one Secret watch event once the cache has it: the objects using a Secret that
    /// changed look again now, not at their next re-check.
    pub fn observe_secret(&self, scope: Option<&str>, event: &watcher::Event<PartialObjectMeta<Secret>>) {
        if let Some((namespace, name)) = self.secrets.observe(scope, event) {
            self.secret_changed(&namespace, &name);
        }
        // Those gone while the watch was away (seen at the end of a relist).
        self.secrets_changed_meanwhile();
    }

    /// After a write of a Secret's finalizers: the Secrets someone else changed meanwhile
    /// (their watch events were held back until the write's answer told them from its echo).
    fn secrets_changed_meanwhile(&self) {
        for (namespace, name) in self.secrets.take_changed_meanwhile() {
            self.secret_changed(&namespace, &name);
        }
    }

    fn secret_changed(&self, namespace: &str, name: &str) {
        for reference in self.access.index.using_secret(namespace, name) {
            self.wake(reference);
        }
        for reference in self.accept.index.using_secret(namespace, name) {
            self.wake(reference);
        }
        self.requeue_secret.send(ObjectRef::new(name).within(namespace));
    }

    /// Reconcile `reference` now, even if it looks unchanged.
    fn wake<K: Kind>(&self, reference: ObjectRef<K>) {
        if let Some(object) = self.object(&reference) {
            self.tracker.invalidate(&object.uid().unwrap_or_default());
        }
        K::state(self).requeue.send(reference);
    }

    /// Whether an object of any kind still needs the Secret.
    fn secret_in_use(&self, namespace: &str, name: &str) -> bool {
        self.access.index.secret_in_use(namespace, name) || self.accept.index.secret_in_use(namespace, name)
    }

    /// Drops the tracker's entries of objects no kind knows any more.
    fn prune_tracker(&self) {
        let live = self.access.index.len() + self.accept.index.len();
        self.tracker.prune(live, |uid| {
            self.access.index.has_uid(uid) || self.accept.index.has_uid(uid)
        });
    }
}

/// The error kube-runtime sees: only failures worth a retry with backoff get here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{reason}: {message}")]
    Transient {
        reason: &'static str,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Not a failure: something outside the operator must happen first (the owner shares the
    /// image). Looked at again with backoff, up to the stalled re-check period.
    #[error("{reason}: {message}")]
    Waiting { reason: &'static str, message: String },
    #[error("writing to Kubernetes failed: {0}")]
    Kube(#[source] kube::Error),
    #[error("the object has no namespace")]
    NotNamespaced,
}

impl Error {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What a finished reconcile asks for next.
pub enum Next {
    /// Look again after this period (jittered).
    After(Duration),
    /// The object is going away: nothing more to do.
    Gone,
}

/// The reconcile entry point kube-runtime calls, for every kind.
pub async fn reconcile<K: Kind>(object: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = object.uid().unwrap_or_default();
    if let Some(wait) = ctx
        .tracker
        .pending(&uid, Fingerprint::of(object.meta(), FINALIZER), ctx.clock.now())
    {
        // As a finished reconcile left it (the echo of our own write): keep its schedule.
        return Ok(Action::requeue(wait));
    }
    if !ctx.objects_synced.load(Ordering::Relaxed) {
        // kube-runtime waits for this kind's cache only; decisions that read the other kind's
        // (one setter per member status, hand-overs) wait for every cache.
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let namespace = object.namespace().ok_or(Error::NotNamespaced)?;
    // The semaphore is never closed.
    let _permit = ctx.permits.acquire().await.ok();
    // Waiting for a permit can take long: work on the object as the cache has it now.
    let object = ctx
        .object(&ObjectRef::from_obj(object.as_ref()))
        .filter(|cached| cached.uid() == object.uid())
        .unwrap_or(object);
    let seen = Fingerprint::of(object.meta(), FINALIZER);
    ctx.tracker.begin(&uid);
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &namespace);
    let span = tracing::info_span!("reconcile", controller = K::CONTROLLER, namespace = %namespace, object = %object.name_any());
    let work = tracing::Instrument::instrument(
        async {
            if object.is_deleting() {
                K::cleanup(&object, &api, &ctx).await
            } else {
                K::apply(&object, &api, &ctx).await
            }
        },
        span,
    );
    let result = measured(&ctx, K::CONTROLLER, work).await;
    ctx.prune_tracker();
    match result? {
        Next::After(period) => {
            let wait = ctx.tracker.settled(&uid, seen, ctx.clock.now(), jittered(period));
            Ok(Action::requeue(wait))
        }
        Next::Gone => {
            ctx.tracker.forget(&uid);
            Ok(Action::await_change())
        }
    }
}

/// Runs one reconcile's work with the controller-runtime metrics every controller reports:
/// workers at work, time taken, and the result.
async fn measured<T>(
    ctx: &Context,
    controller: &'static str,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let labels = Metrics::controller_labels(controller);
    ctx.metrics.active_workers.get_or_create(&labels).inc();
    let started = Instant::now();
    let result = work.await;
    ctx.metrics.active_workers.get_or_create(&labels).dec();
    ctx.metrics
        .reconcile_time_seconds
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    ctx.metrics
        .reconcile_total
        .get_or_create(&crate::metrics::ReconcileLabels {
            controller,
            result: match &result {
                Ok(_) => "success",
                Err(Error::Waiting { .. }) => "requeue_after",
                Err(_) => "error",
            },
        })
        .inc();
    result
}

/// Transient failures: per-object exponential backoff with jitter, at least `Retry-After`
/// (up to `--max-backoff`, so a wild header cannot park an object for hours). Waiting for
/// something outside the operator backs off the same way, up to the stalled re-check period.
pub fn error_policy<K: Kind>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let waiting = matches!(error, Error::Waiting { .. });
    if !waiting {
        ctx.metrics
            .reconcile_errors_total
            .get_or_create(&Metrics::controller_labels(K::CONTROLLER))
            .inc();
    }
    let uid = object.uid().unwrap_or_default();
    let seen = Fingerprint::of(object.meta(), FINALIZER);
    let settings = &ctx.settings;
    let (failures, delay) = ctx.tracker.failed(&uid, seen, ctx.clock.now(), |failures| {
        let delay = backoff_delay(settings, failures, random_fraction());
        match error.retry_after() {
            Some(wait) => delay.max(wait).min(settings.backoff_max),
            None if waiting => delay.min(settings.stalled_recheck),
            None => delay,
        }
    });
    let (namespace, name) = (object.namespace().unwrap_or_default(), object.name_any());
    let retry_in_ms = delay.as_millis() as u64;
    if waiting {
        tracing::info!(controller = K::CONTROLLER, namespace, name = %name, retry_in_ms, reason = %error, "waiting; looking again");
    } else {
        tracing::warn!(controller = K::CONTROLLER, namespace, name = %name, failures, retry_in_ms, error = %error, "reconcile failed; retrying");
    }
    Action::requeue(delay)
}

/// `base · 2^(failures-1)`, capped, scaled by a jitter factor in [0.5, 1.0).
pub fn backoff_delay(settings: &Settings, failures: u32, random: f64) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let raw = settings
        .backoff_base
        .saturating_mul(1u32 << exponent)
        .min(settings.backoff_max);
    raw.mul_f64(0.5 + random.clamp(0.0, 1.0) / 2.0)
}

/// A uniform fraction in [0, 1) from the standard library's randomly keyed hasher.
fn random_fraction() -> f64 {
    let bits = std::collections::hash_map::RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// A period ±10 %, so objects created together do not hit Glance together.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(0.9 + random_fraction() * 0.2)
}

/// The end of every reconcile: writes the status `outcome` gives (when it changed), publishes
/// the events of what was done and of a problem entered, and says what happens next.
pub async fn report<K: Kind>(
    object: &K,
    api: &Api<K>,
    ctx: &Context,
    desired: &Membership,
    outcome: status::Outcome,
    events: Vec<Happened>,
) -> Result<Next, Error> {
    let previous: Vec<Condition> = object
        .membership_status()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    if let Some(next) = object.next_status(desired, &outcome, ctx.clock.timestamp()) {
        patch_status(api, object, &next).await?;
    }
    for event in events {
        publish(&ctx.events, object, event).await;
    }
    publish_problem_transition(ctx, object, &previous, outcome.problem.as_ref()).await;
    finish(ctx, outcome.problem)
}

/// A deletion that cannot finish: the finalizer stays; the status and a Warning say why, and
/// `hint` how to let go without waiting for it.
pub async fn deletion_blocked<K: Kind>(
    object: &K,
    api: &Api<K>,
    ctx: &Context,
    target: &Membership,
    problem: Problem,
    events: Vec<Happened>,
    hint: &str,
) -> Result<Next, Error> {
    let problem = match problem {
        Problem::Stalled { reason, message } if !message.contains("deletionPolicy") => Problem::Stalled {
            reason,
            message: format!("{message}. The object is being deleted and waits for this; {hint}"),
        },
        other => other,
    };
    // What was done before the block is told even if the status write fails.
    for event in events {
        publish(&ctx.events, object, event).await;
    }
    let outcome = status::Outcome {
        image: None,
        applied: object.applied().cloned(),
        observation: status::Observation::Unknown,
        problem: Some(problem),
    };
    report(object, api, ctx, target, outcome, Vec::new()).await
}

/// Maps a reconcile's problem to what happens next.
fn finish(ctx: &Context, problem: Option<Problem>) -> Result<Next, Error> {
    match problem {
        Some(Problem::Transient {
            reason,
            message,
            retry_after,
        }) => Err(Error::Transient {
            reason,
            message,
            retry_after,
        }),
        Some(Problem::Waiting { reason, message }) => Err(Error::Waiting { reason, message }),
        Some(Problem::Stalled { .. }) => Ok(Next::After(ctx.settings.stalled_recheck)),
        None => Ok(Next::After(ctx.settings.resync_period)),
    }
}

/// kubectl's copy of the last applied manifest.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from a watched object what the operator never reads and what weighs most in its
/// cache: managedFields (more than the rest of the object) and kubectl's last applied
/// manifest (a second copy of the spec). The annotation map itself stays, even empty, so that
/// metadata patches keep addressing single annotations of the map the server has.
fn slim<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
    if let Some(annotations) = object.meta_mut().annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Makes sure the object carries the finalizer and claims `desired` before Glance is touched,
/// and that its Secret is held while it does. Writes only what is missing; returns the object
/// as written, when it wrote (a later metadata write in the same reconcile must start from it).
pub async fn claim<K: Kind>(api: &Api<K>, object: &K, desired: &Membership, ctx: &Context) -> Result<Option<K>, Error> {
    let namespace = object.namespace().unwrap_or_default();
    let held = ctx
        .secrets
        .hold(&namespace, &object.credentials_ref().secret_name)
        .await;
    ctx.secrets_changed_meanwhile();
    held.map_err(Error::Kube)?;
    if object.has_finalizer() && object.claim().as_ref() == Some(desired) {
        return Ok(None);
    }
    let mut finalizers = object.finalizers().to_vec();
    if !object.has_finalizer() {
        finalizers.push(FINALIZER.to_string());
    }
    let claim = serde_json::to_string(desired).ok();
    let written: K = patch_metadata(api, object.meta(), &finalizers, &[(CLAIM_ANNOTATION, claim)])
        .await
        .map_err(Error::Kube)?;
    // What the echo looks like if nothing but our write happened. Not the API's answer: that
    // may already carry a spec edited meanwhile, which must not pass for handled.
    let mut expected = object.meta().clone();
    expected.finalizers = Some(finalizers);
    ctx.tracker
        .note_written(&object.uid().unwrap_or_default(), Fingerprint::of(&expected, FINALIZER));
    Ok(Some(written))
}

/// Drops the claim annotation (the finalizer stays; with nothing held, deletion is immediate).
/// The fingerprint does not change, so its echo passes for handled.
pub async fn release_claim<K: Kind>(api: &Api<K>, object: &K) -> Result<(), Error> {
    let _: K = patch_metadata(api, object.meta(), object.finalizers(), &[(CLAIM_ANNOTATION, None)])
        .await
        .map_err(Error::Kube)?;
    Ok(())
}

/// Removes the finalizer once the deletion is done in Glance. Keeping the claim it saw tests
/// it: one handed over meanwhile fails this, and is cleaned up on the next look.
pub async fn let_go_finalizer<K: Kind>(api: &Api<K>, object: &K) -> Result<Next, Error> {
    let finalizers: Vec<String> = object
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let claim = object.annotations().get(CLAIM_ANNOTATION).cloned();
    match patch_metadata::<K>(api, object.meta(), &finalizers, &[(CLAIM_ANNOTATION, claim)]).await {
        Ok(_) => Ok(Next::Gone),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Next::Gone),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// `namespace/secret` for messages.
pub fn secret_label<K: Kind>(object: &K) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.credentials_ref().secret_name
    )
}

/// Reads the Secret the object names and returns the session for its credentials, with the
/// cloud entry (its region and interface).
pub async fn credentials<K: Kind>(object: &K, ctx: &Context) -> Result<(Arc<Session>, Cloud), Problem> {
    let namespace = object.namespace().unwrap_or_default();
    let reference = object.credentials_ref();
    let data = match ctx.secrets.read(&namespace, &reference.secret_name).await {
        Ok(data) => data,
        Err(ReadError::NotFound) => return Err(Problem::secret_not_found(&namespace, &reference.secret_name)),
        Err(ReadError::BadKey(detail)) => {
            return Err(Problem::secret_key_missing(&namespace, &reference.secret_name, detail));
        }
        Err(ReadError::Kubernetes(e)) => return Err(Problem::kubernetes(&e)),
    };
    // What goes wrong here is in the Secret: the messages name it, not the membership.
    let target = object.named().unwrap_or_else(|| Membership {
        image_id: object.image_id(),
        member_id: String::new(),
        region: None,
    });
    let secret_label = secret_label(object);
    let config_problem = |e: OpenStackError| Problem::openstack(&e, Step::ReadCredentials, &target, &secret_label);
    let cloud = data
        .cloud(&reference.cloud_name)
        .map_err(|e| config_problem(OpenStackError::Config(e)))?;
    let session = ctx.openstack.session(&cloud.credentials).map_err(config_problem)?;
    Ok((session, cloud))
}

/// Writes the status by server-side apply (the operator owns the whole status).
pub async fn patch_status<K>(api: &Api<K>, object: &K, status: &impl Serialize) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    match api
        .patch_status(
            &object.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone while we worked (its finalizer was removed by hand): nothing to report to.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// An event when the object enters a problem it was not in already (events on transitions
/// only: a stalled object re-checked every few minutes stays quiet): a Warning, or a Normal
/// event for a wait that needs nobody.
async fn publish_problem_transition<K: Kind>(
    ctx: &Context,
    object: &K,
    previous: &[Condition],
    problem: Option<&Problem>,
) {
    let Some(problem) = problem else { return };
    let before = previous.iter().find(|c| c.type_ == status::READY);
    let same = before.is_some_and(|c| c.status == "False" && c.reason == problem.reason());
    if !same {
        let happened = if matches!(problem, Problem::Waiting { .. }) {
            Happened::normal(problem.reason(), problem.message().to_string())
        } else {
            Happened::warning(problem.reason(), problem.message().to_string())
        };
        publish(&ctx.events, object, happened).await;
    }
}

/// Holds or releases a credentials Secret: held while an object needs it (see
/// [`crate::credentials`]), released once none does.
pub async fn reconcile_secret(secret: Arc<PartialObjectMeta<Secret>>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.objects_synced.load(Ordering::Relaxed) {
        // Not every object is known yet: "nobody needs it" cannot be told.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let namespace = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let held = secret.finalizers().iter().any(|f| f == ctx.secrets.finalizer());
    let needed = ctx.secret_in_use(&namespace, &name);
    let written = match (needed, held) {
        (true, false) => ctx.secrets.hold_seen(&secret).await,
        (false, true) => ctx.secrets.release(&secret).await,
        (false, false) => {
            ctx.secrets.forget(&namespace, &name);
            Ok(())
        }
        (true, true) => Ok(()),
    };
    ctx.secrets_changed_meanwhile();
    written.map_err(Error::Kube)?;
    Ok(Action::await_change())
}

/// A Secret hold that could not be written (a conflict, most often): try again soon.
pub fn secret_error_policy(secret: Arc<PartialObjectMeta<Secret>>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::debug!(secret = %secret.name_any(), error = %error, "Secret hold not updated; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the controllers until `shutdown` resolves: for each watched scope, one per kind (fed
/// by a watch that keeps the kind's index and wakes objects) and one for the Secrets they use
/// (metadata only). `ready` is set once every watch cache has synced (for `/readyz`).
pub async fn run(
    ctx: Arc<Context>,
    scope: WatchScope,
    ready: Arc<AtomicBool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let stop_signal = move || {
        let mut stopped = stopped.clone();
        let signal: StopSignal = Box::pin(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        });
        signal
    };
    let mut loops = Vec::new();
    let mut synced = Vec::new();
    let (access_loops, access_synced) = run_kind::<ImageAccess>(&ctx, &scope, &stop_signal);
    loops.extend(access_loops);
    synced.push(access_synced);
    if !scope.skip_accepts {
        let (accept_loops, accept_synced) = run_kind::<ImageAccessAccept>(&ctx, &scope, &stop_signal);
        loops.extend(accept_loops);
        synced.push(accept_synced);
    }
    if !scope.skip_shares {
        let (share_loops, share_synced) = share::run_shares(&ctx, &scope, &stop_signal);
        loops.extend(share_loops);
        synced.push(share_synced);
    }

    let controller_config =
        kube::runtime::controller::Config::default().concurrency(ctx.settings.reconcile_concurrency());
    let mut secret_stores = Vec::new();
    // Every namespace is watched for Secrets even with a label selector: Secrets are not
    // labelled for the operator, and only their metadata is kept.
    let secret_scope = WatchScope {
        namespaces: scope.namespaces.clone(),
        ..WatchScope::default()
    };
    for (namespace, api) in secret_scope.apis::<PartialObjectMeta<Secret>>(&ctx.client) {
        let (reader, writer) = reflector::store::<PartialObjectMeta<Secret>>();
        ctx.secrets.watch_scope(namespace.clone(), reader.clone());
        secret_stores.push(reader.clone());
        let requeue = ctx.requeue_secret.register(namespace.clone());
        let tap = ctx.clone();
        // Only what the hold needs is kept: annotations can carry a Secret's data (kubectl's
        // last-applied-configuration), labels and managedFields are of no use here.
        let events = watcher(api, watcher::Config::default().any_semantic())
            .default_backoff()
            .modify(|secret| {
                secret.metadata.annotations = None;
                secret.metadata.labels = None;
                secret.metadata.managed_fields = None;
            });
        let events = reflector::reflector(writer, events).map_ok(move |event| {
            tap.observe_secret(namespace.as_deref(), &event);
            event
        });
        let trigger = events.touched_objects();
        let controller = Controller::for_stream(trigger, reader)
            .reconcile_on(requeue)
            .with_config(controller_config.clone())
            .graceful_shutdown_on(stop_signal());
        let ctx = ctx.clone();
        loops.push(
            async move {
                controller
                    .run(reconcile_secret, secret_error_policy, ctx)
                    .for_each(|_| async {})
                    .await;
            }
            .boxed(),
        );
    }

    let synced_ctx = ctx.clone();
    tokio::spawn(async move {
        for objects_synced in synced {
            if !objects_synced.await {
                return;
            }
        }
        synced_ctx.objects_synced.store(true, Ordering::Relaxed);
        if !wait_until_ready(&secret_stores).await {
            return;
        }
        ready.store(true, Ordering::Relaxed);
        tracing::info!("watch caches synced");
    });
    futures::future::join_all(loops).await;
}

/// Resolves when the controllers are to stop.
type StopSignal = std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

/// The controllers of one kind, one per watched scope, and a future that tells when all their
/// watch caches have their first list (`false` if one was dropped).
fn run_kind<K: Kind>(
    ctx: &Arc<Context>,
    scope: &WatchScope,
    stop_signal: &impl Fn() -> StopSignal,
) -> (Vec<BoxFuture<'static, ()>>, BoxFuture<'static, bool>) {
    let mut config = watcher::Config::default().any_semantic();
    if let Some(selector) = &scope.label_selector {
        config = config.labels(selector);
    }
    ctx.metrics
        .max_concurrent_reconciles
        .get_or_create(&Metrics::controller_labels(K::CONTROLLER))
        .set(i64::from(ctx.settings.reconcile_concurrency()));
    let controller_config =
        kube::runtime::controller::Config::default().concurrency(ctx.settings.reconcile_concurrency());
    let mut stores = Vec::new();
    let mut loops = Vec::new();
    for (namespace, api) in scope.apis::<K>(&ctx.client) {
        let (reader, writer) = reflector::store();
        ctx.watch_scope(namespace.clone(), reader.clone());
        stores.push(reader.clone());
        let requeue = K::state(ctx).requeue.register(namespace.clone());
        let tap = ctx.clone();
        let events = watcher(api, config.clone()).default_backoff().modify(slim::<K>);
        // The taps run once the cache has the event, so what they wake reads it.
        let events = reflector::reflector(writer, events).map_ok(move |event| {
            tap.observe(namespace.as_deref(), &event);
            K::tap(&tap, namespace.as_deref(), &event);
            event
        });
        // Only what a reconcile must see passes: spec (generation), deletion and our
        // finalizer. Status echoes do not wake anything (the tracker keeps their schedule).
        let trigger = events.touched_objects().predicate_filter(
            |object: &K| Some(Fingerprint::of(object.meta(), FINALIZER).value()),
            Default::default(),
        );
        let controller = Controller::for_stream(trigger, reader)
            .reconcile_on(requeue)
            .with_config(controller_config.clone())
            .graceful_shutdown_on(stop_signal());
        let ctx = ctx.clone();
        loops.push(
            async move {
                controller
                    .run(reconcile::<K>, error_policy::<K>, ctx)
                    .for_each(|result| async move {
                        if let Err(e) = result {
                            tracing::debug!(controller = K::CONTROLLER, error = %e, "reconcile loop");
                        }
                    })
                    .await;
            }
            .boxed(),
        );
    }
    (loops, async move { wait_until_ready(&stores).await }.boxed())
}

/// Waits until every store has its first list. The readiness of a store is a one-shot that the
/// controller itself also waits on, and only the last waiter registered is woken: ask again
/// every 200 ms (once ready, the answer is immediate). `false` if a store was dropped.
async fn wait_until_ready<K>(stores: &[Store<K>]) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    for store in stores {
        for waited in 1u64.. {
            match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
                Ok(Ok(())) => break,
                Ok(Err(_)) => return false,
                // Nothing is reconciled until every cache has listed: say so now and then.
                Err(_) if waited % 150 == 0 => tracing::warn!(
                    waited_s = waited / 5,
                    "a watch has not listed yet; nothing is reconciled until it has (the watch's errors above say why: RBAC, the API server)"
                ),
                Err(_) => continue,
            }
        }
    }
    true
}

#[cfg(test)]
mod accept_tests;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
