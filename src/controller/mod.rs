//! The ImageAccess controller: credentials → Glance → let go of what the spec no longer names →
//! one manager per membership → claim → create, observe, set status → status → requeue.
//!
//! Pure parts live in [`plan`], [`status`], [`problem`] and [`ownership`]; [`index`] knows which
//! objects name which memberships and Secrets. This module does the I/O (the Kubernetes API and
//! the [`crate::openstack`] client) and owns retry timing.
//!
//! The promises it keeps under faults:
//! - Nothing in Glance changes before the object carries the finalizer and the claim
//!   annotation naming the membership ([`claim`]), so a crash between a create and the status
//!   write still leaves the deletion knowing what to remove.
//! - The finalizer goes only once every membership the object holds is removed, handed over to
//!   the object that takes it over, or deliberately orphaned ([`cleanup`]). Anything else keeps
//!   it, Stalled with a message that says how to let go.
//! - Problems that need a human become conditions, a Warning event and a slow re-check;
//!   transient ones go to [`error_policy`] for per-object exponential backoff. A reconcile that
//!   finds the object as it left it does nothing and keeps the pending re-check or retry
//!   ([`crate::runtime::tracker`]).

pub mod index;
pub mod lists;
pub mod ownership;
pub mod plan;
pub mod problem;
pub mod status;

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::api::{CLAIM_ANNOTATION, DeletionPolicy, FINALIZER, ImageAccess, ImageAccessStatus, Membership};
use crate::credentials::{ReadError, Secrets};
use crate::metrics::Metrics;
use crate::openstack::{Cloud, Glance, HttpErrorKind, Member, OpenStack, OpenStackError, Session};
use crate::runtime::tracker::{Clock, Fingerprint, Tracker};
use crate::runtime::{Events, FIELD_MANAGER, Happened, Requeue, WatchScope, patch_metadata, publish};
use index::Index;
use lists::ListKey;
use plan::{CreateReason, Plan};
use problem::{Problem, Step};
use status::STALLED;
use status::{Observation, Outcome};

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

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub openstack: OpenStack,
    pub events: Events,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub secrets: Secrets,
    pub index: Index,
    pub tracker: Tracker,
    pub clock: Clock,
    /// Member lists read at a resync, shared by the objects of an image.
    member_lists: lists::MemberLists,
    /// The watch caches of ImageAccess objects, per watched scope.
    stores: RwLock<Vec<(Option<String>, Store<ImageAccess>)>>,
    requeue: Requeue<ImageAccess>,
    requeue_secret: Requeue<PartialObjectMeta<Secret>>,
    /// Bounds the reconciles at work over all namespaces (one kube-runtime controller runs per
    /// watched namespace, each with this same limit).
    permits: tokio::sync::Semaphore,
    /// Set once every ImageAccess watch has listed: before that, no Secret is released.
    objects_synced: AtomicBool,
    /// Objects to wake once the relist of a scope is complete.
    relist_wakes:
        std::sync::Mutex<std::collections::HashMap<Option<String>, std::collections::HashSet<ObjectRef<ImageAccess>>>>,
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
            index: Index::default(),
            tracker: Tracker::default(),
            clock: Clock::default(),
            member_lists: lists::MemberLists::default(),
            stores: RwLock::default(),
            requeue: Requeue::default(),
            requeue_secret: Requeue::default(),
            objects_synced: AtomicBool::new(false),
            relist_wakes: Default::default(),
        }
    }

    /// Registers the watch cache of one scope (a namespace, or all).
    pub fn watch_scope(&self, scope: Option<String>, store: Store<ImageAccess>) {
        self.stores
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((scope, store));
    }

    /// The object as the watch cache has it.
    fn object(&self, reference: &ObjectRef<ImageAccess>) -> Option<Arc<ImageAccess>> {
        let stores = self.stores.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        stores
            .iter()
            .filter(|(scope, _)| scope.is_none() || *scope == reference.namespace)
            .find_map(|(_, store)| store.get(reference))
    }

    /// The other objects that name, claim or hold a membership of `membership`'s image and
    /// member (any region, any namespace this instance watches).
    fn others_naming(&self, object: &ImageAccess, membership: &Membership) -> Vec<Arc<ImageAccess>> {
        let me = ObjectRef::from(object);
        self.index
            .naming(&membership.image_id, &membership.member_id)
            .into_iter()
            .filter(|reference| *reference != me)
            .filter_map(|reference| self.object(&reference))
            .collect()
    }

    /// Looks at one ImageAccess watch event once the cache has it: keeps the index, wakes the
    /// objects that wait on a membership whose holder changed, asks for the Secrets whose use
    /// changed to be held or released, and forgets objects that are gone. During a relist the
    /// cache shows the new list only at its end, so the wake-ups wait for it.
    pub fn observe(&self, scope: Option<&str>, event: &watcher::Event<ImageAccess>) {
        let scope_key = scope.map(str::to_string);
        let changes = match event {
            watcher::Event::Apply(object) => self.index.apply(object),
            watcher::Event::InitApply(object) => {
                let changes = self.index.apply(object);
                self.relist_wakes().entry(scope_key).or_default().extend(changes.wake);
                index::Changes {
                    wake: Default::default(),
                    ..changes
                }
            }
            watcher::Event::Delete(object) => self.index.delete(object),
            watcher::Event::Init => {
                self.index.relist_started(scope);
                self.relist_wakes().insert(scope_key, Default::default());
                return;
            }
            watcher::Event::InitDone => {
                let mut changes = self.index.relist_done(scope);
                changes
                    .wake
                    .extend(self.relist_wakes().remove(&scope_key).unwrap_or_default());
                changes
            }
        };
        for uid in &changes.gone {
            self.tracker.forget(uid);
        }
        for reference in changes.wake {
            self.wake(reference);
        }
        for (namespace, name) in changes.secrets {
            self.requeue_secret.send(ObjectRef::new(&name).within(&namespace));
        }
    }

    fn relist_wakes(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<Option<String>, std::collections::HashSet<ObjectRef<ImageAccess>>>,
    > {
        self.relist_wakes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Looks at one Secret watch event once the cache has it: the objects using a Secret that
    /// changed look again now, not at their next re-check.
    pub fn observe_secret(&self, scope: Option<&str>, event: &watcher::Event<PartialObjectMeta<Secret>>) {
        if let Some((namespace, name)) = self.secrets.observe(scope, event) {
            for reference in self.index.using_secret(&namespace, &name) {
                self.wake(reference);
            }
            self.requeue_secret.send(ObjectRef::new(&name).within(&namespace));
        }
    }

    /// Reconcile `reference` now, even if it looks unchanged.
    fn wake(&self, reference: ObjectRef<ImageAccess>) {
        if let Some(object) = self.object(&reference) {
            self.tracker.invalidate(&object.uid().unwrap_or_default());
        }
        self.requeue.send(reference);
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
enum Next {
    /// Look again after this period (jittered).
    After(Duration),
    /// The object is going away: nothing more to do.
    Gone,
}

/// The reconcile entry point kube-runtime calls.
pub async fn reconcile(object: Arc<ImageAccess>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = object.uid().unwrap_or_default();
    if let Some(wait) = ctx
        .tracker
        .pending(&uid, Fingerprint::of(&object.metadata, FINALIZER), ctx.clock.now())
    {
        // As a finished reconcile left it (the echo of our own write): keep its schedule.
        return Ok(Action::requeue(wait));
    }
    let namespace = object.namespace().ok_or(Error::NotNamespaced)?;
    // The semaphore is never closed.
    let _permit = ctx.permits.acquire().await.ok();
    // Waiting for a permit can take long: work on the object as the cache has it now.
    let object = ctx
        .object(&ObjectRef::from(object.as_ref()))
        .filter(|cached| cached.uid() == object.uid())
        .unwrap_or(object);
    let seen = Fingerprint::of(&object.metadata, FINALIZER);
    ctx.tracker.begin(&uid);
    let labels = Metrics::controller_labels();
    ctx.metrics.active_workers.get_or_create(&labels).inc();
    let started = Instant::now();
    let api: Api<ImageAccess> = Api::namespaced(ctx.client.clone(), &namespace);
    let span = tracing::info_span!("reconcile", namespace = %namespace, object = %object.name_any());
    let result = tracing::Instrument::instrument(
        async {
            if object.is_deleting() {
                cleanup(&object, &api, &ctx).await
            } else {
                apply(&object, &api, &ctx).await
            }
        },
        span,
    )
    .await;
    ctx.metrics.active_workers.get_or_create(&labels).dec();
    ctx.metrics
        .reconcile_time_seconds
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    ctx.metrics
        .reconcile_total
        .get_or_create(&crate::metrics::ReconcileLabels {
            controller: crate::metrics::CONTROLLER,
            result: if result.is_ok() { "success" } else { "error" },
        })
        .inc();
    ctx.tracker.prune(ctx.index.len(), |uid| ctx.index.has_uid(uid));
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

/// Transient failures: per-object exponential backoff with jitter, at least `Retry-After`
/// (up to `--max-backoff`, so a wild header cannot park an object for hours).
pub fn error_policy(object: Arc<ImageAccess>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_errors_total
        .get_or_create(&Metrics::controller_labels())
        .inc();
    let uid = object.uid().unwrap_or_default();
    let seen = Fingerprint::of(&object.metadata, FINALIZER);
    let settings = &ctx.settings;
    let (failures, delay) = ctx.tracker.failed(&uid, seen, ctx.clock.now(), |failures| {
        let delay = backoff_delay(settings, failures, random_fraction());
        match error.retry_after() {
            Some(wait) => delay.max(wait).min(settings.backoff_max),
            None => delay,
        }
    });
    tracing::warn!(
        namespace = object.namespace().unwrap_or_default(),
        name = %object.name_any(),
        failures,
        retry_in_ms = delay.as_millis() as u64,
        error = %error,
        "reconcile failed; retrying"
    );
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

async fn apply(object: &ImageAccess, api: &Api<ImageAccess>, ctx: &Context) -> Result<Next, Error> {
    let previous = object.status.clone().unwrap_or_default();
    let mut events = Vec::new();
    let (desired, outcome) = converge(object, api, ctx, &mut events).await?;
    let next = status::next(
        &previous,
        object.metadata.generation,
        &desired,
        object.spec.status,
        &outcome,
        ctx.clock.timestamp(),
    );
    if status::differs(object.status.as_ref(), &next) {
        patch_status(api, object, &next).await?;
    }
    for event in events {
        publish(&ctx.events, object, event).await;
    }
    publish_problem_transition(ctx, object, &previous, outcome.problem.as_ref()).await;
    finish(ctx, outcome.problem)
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
        Some(Problem::Stalled { .. }) => Ok(Next::After(ctx.settings.stalled_recheck)),
        None => Ok(Next::After(ctx.settings.resync_period)),
    }
}

/// What happened to a membership the object let go of.
enum LetGo {
    Removed,
    AlreadyGone,
    /// Left for the object that takes it over (`namespace/name`).
    HandedOver(String),
    /// Glance refused, and the image is not shared (or its members grant nothing): nothing to
    /// remove. Says what the image is.
    NotGranting(String),
}

/// Brings Glance to the spec; returns the membership the spec names (its region resolved when
/// the credentials could be read) and the outcome. Only a failed Kubernetes write is an `Err`:
/// every other failure is part of the outcome.
async fn converge(
    object: &ImageAccess,
    api: &Api<ImageAccess>,
    ctx: &Context,
    events: &mut Vec<Happened>,
) -> Result<(Membership, Outcome), Error> {
    let spec = &object.spec;
    let mut applied = object.applied().cloned();
    let stop = |desired: Membership, applied: Option<Membership>, problem| {
        Ok((
            desired,
            Outcome {
                applied,
                observation: Observation::Unknown,
                problem: Some(problem),
            },
        ))
    };

    let named = object.named_membership();
    let (session, cloud) = match credentials(object, ctx).await {
        Ok(found) => found,
        Err(problem) => return stop(named, applied, problem),
    };
    let desired = Membership {
        region: named.region.clone().or_else(|| cloud.region_name.clone()),
        ..named
    };
    let secret = secret_label(object);
    let fail =
        |error: &OpenStackError, step: Step, target: &Membership| Problem::openstack(error, step, target, &secret);
    let glance = match session.glance(desired.region.as_deref(), &cloud.interface).await {
        Ok(glance) => glance,
        Err(e) => return stop(desired.clone(), applied, fail(&e, Step::ObserveMember, &desired)),
    };

    // What the object holds and the spec no longer names (imageId, memberId or region
    // changed): removed first, as Terraform's "forces a new resource".
    for old in held_memberships(object).into_iter().filter(|m| *m != desired) {
        match let_go(object, &old, &session, &cloud.interface, ctx).await {
            Ok(LetGo::Removed) => events.push(Happened::normal(
                "Replaced",
                format!("removed the previous membership ({old}) because the spec now names {desired}"),
            )),
            Ok(LetGo::HandedOver(to)) => events.push(Happened::normal(
                "MemberHandedOver",
                format!("left the previous membership ({old}) to ImageAccess {to}, which names it too"),
            )),
            Ok(LetGo::AlreadyGone) => {}
            Ok(LetGo::NotGranting(detail)) => events.push(Happened::warning(
                "PreviousMemberNotRemoved",
                format!("could not remove the previous membership ({old}): {detail}; it grants nothing"),
            )),
            Err(problem) => return stop(desired.clone(), applied, problem),
        }
        if applied.as_ref() == Some(&old) {
            applied = None;
        }
    }

    // One manager per membership.
    let others = ctx.others_naming(object, &desired);
    if let Some(manager) = ownership::manager(object, &desired, others.iter().map(Arc::as_ref)) {
        if object.claim().is_some() {
            // Lost a race for it (or the claim is of a membership let go above): drop the
            // claim without touching Glance, so deleting this object removes nothing.
            release_claim(api, object).await?;
        }
        if applied.as_ref() == Some(&desired) {
            applied = None;
        }
        return stop(desired.clone(), applied, Problem::managed_elsewhere(manager, &desired));
    }

    claim(api, object, &desired, ctx).await?;

    // Not yet applied under this identity: create straight away and let a 409 say it exists
    // (then it is read and adopted). One Glance request per new object instead of two.
    let first_time = applied.as_ref() != Some(&desired);
    let observed = if first_time {
        None
    } else {
        match observe(object, &glance, &session, &cloud.interface, &desired, ctx).await {
            Ok(observed) => observed,
            Err(e) => return stop(desired.clone(), applied, fail(&e, Step::ObserveMember, &desired)),
        }
    };
    // A write makes what was read of the image's members stale: a read answered while it is
    // in flight is not kept (marked before), nor one answered after it (marked after, unless
    // Glance refused it).
    let wrote = |ctx: &Context, written: bool| {
        if written {
            ctx.member_lists.wrote(&desired.image_id);
        }
    };
    let Plan { create, set_status, .. } = plan::plan(&desired, spec.status, applied.as_ref(), observed.as_ref());

    let mut member = observed;
    if let Some(reason) = create {
        wrote(ctx, true);
        let created = glance.create_member(&desired.image_id, &desired.member_id).await;
        wrote(ctx, may_have_written(&created));
        match created {
            Ok(created) => {
                let (event, note) = match reason {
                    CreateReason::New => (
                        "MemberCreated",
                        format!("shared image {} with member {}", desired.image_id, desired.member_id),
                    ),
                    CreateReason::Drifted => (
                        "MemberRecreated",
                        format!("the membership ({desired}) was removed outside Kubernetes; created it again"),
                    ),
                };
                events.push(Happened::normal(event, note));
                member = Some(created);
            }
            // 409: it exists (made by hand, or by us before a restart): read and adopt it. Glance
            // checks the member quota before duplicates, so an existing member of a full image
            // answers 413: read it too, and report the quota only if it is really missing.
            Err(e)
                if matches!(
                    e.http_kind(),
                    Some(HttpErrorKind::Conflict | HttpErrorKind::QuotaExceeded)
                ) =>
            {
                match glance.show_member(&desired.image_id, &desired.member_id).await {
                    Ok(existing) => {
                        events.push(Happened::normal(
                            "MemberAdopted",
                            format!(
                                "the membership ({desired}) already existed in Glance; it is now managed by this object"
                            ),
                        ));
                        member = Some(existing);
                    }
                    Err(missing) if missing.is_not_found() => {
                        return stop(desired.clone(), applied, fail(&e, Step::CreateMember, &desired));
                    }
                    Err(other) => {
                        return stop(desired.clone(), applied, fail(&other, Step::ObserveMember, &desired));
                    }
                }
            }
            Err(e) => return stop(desired.clone(), applied, fail(&e, Step::CreateMember, &desired)),
        }
    } else if applied.is_none() && member.is_some() {
        events.push(Happened::normal(
            "MemberAdopted",
            format!("the membership ({desired}) already existed in Glance; it is now managed by this object"),
        ));
    }
    applied = Some(desired.clone());

    // Recomputed against what Glance answered: after an adoption the status may differ from
    // what the plan assumed.
    let current = member.as_ref().map(|m| m.status);
    let change = match (set_status, current) {
        (_, Some(current)) => plan::status_change(spec.status, current),
        (change, None) => change,
    };
    if let Some(change) = change {
        wrote(ctx, true);
        let set = glance
            .set_member_status(&desired.image_id, &desired.member_id, change.to)
            .await;
        wrote(ctx, may_have_written(&set));
        match set {
            Ok(updated) => {
                events.push(Happened::normal(
                    "StatusSet",
                    format!("member status of {desired} set from {} to {}", change.from, change.to),
                ));
                member = Some(updated);
            }
            Err(e) => {
                let outcome = Outcome {
                    applied,
                    observation: member.map_or(Observation::Unknown, Observation::Present),
                    problem: Some(fail(&e, Step::SetStatus(change.to), &desired)),
                };
                return Ok((desired, outcome));
            }
        }
    }
    let observation = member.map_or(Observation::Unknown, Observation::Present);
    Ok((
        desired,
        Outcome {
            applied,
            observation,
            problem: None,
        },
    ))
}

/// kubectl's copy of the last applied manifest.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from a watched object what the operator never reads and what weighs most in its
/// cache: managedFields (more than the rest of the object) and kubectl's last applied
/// manifest (a second copy of the spec). The annotation map itself stays, even empty, so that
/// metadata patches keep addressing single annotations of the map the server has.
fn slim(object: &mut ImageAccess) {
    object.metadata.managed_fields = None;
    if let Some(annotations) = object.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// The member `desired` names, as Glance shows it now: from the image's member list, read once
/// for all the objects of the image (the one that reads it wakes the others that use the same
/// credentials, so they are checked against it now, and come due together next time).
async fn observe(
    object: &ImageAccess,
    glance: &Glance,
    session: &Session,
    interface: &str,
    desired: &Membership,
    ctx: &Context,
) -> Result<Option<Member>, OpenStackError> {
    let key = (
        session.key(),
        desired.region.clone(),
        interface.to_string(),
        desired.image_id.clone(),
    );
    let find = |list: &[Member]| list.iter().find(|m| m.member_id == desired.member_id).cloned();
    let uid = object.uid().unwrap_or_default();
    if let Some(list) = ctx.member_lists.borrow(&uid, &key, ctx.clock.now()) {
        return Ok(find(&list));
    }
    let asked = ctx.clock.now();
    let turn = ctx.member_lists.read_turn(&key, &uid).await;
    // The object that read the list while this one waited may have lent it, or failed to read
    // it (then this one does not try again at once: the same answer would most likely come).
    let waited = match ctx.member_lists.borrow(&uid, &key, ctx.clock.now()) {
        Some(list) => Some(Ok(find(&list))),
        None => ctx.member_lists.failed_since(&key, asked).map(Err),
    };
    let found = match waited {
        Some(found) => found,
        None => read_members(object, glance, key, desired, ctx)
            .await
            .map(|list| list.and_then(|l| find(&l))),
    };
    drop(turn);
    ctx.member_lists.done_reading();
    found
}

/// Reads the image's members (`None`: the image is gone or hidden, so is every member), keeps
/// the list and lends it to the siblings it wakes; a failure is kept for those waiting.
async fn read_members(
    object: &ImageAccess,
    glance: &Glance,
    key: ListKey,
    desired: &Membership,
    ctx: &Context,
) -> Result<Option<Vec<Member>>, OpenStackError> {
    let epoch = ctx.member_lists.epoch(&desired.image_id);
    match glance.list_members(&desired.image_id).await {
        Ok(list) => {
            let siblings = siblings(object, ctx);
            let uids = siblings.iter().map(|(_, uid)| uid.clone());
            if ctx.member_lists.put(key, epoch, list.clone(), ctx.clock.now(), uids) {
                for (sibling, _) in siblings {
                    ctx.wake(sibling);
                }
            }
            Ok(Some(list))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => {
            ctx.member_lists.put_failure(key, e.clone(), ctx.clock.now());
            Err(e)
        }
    }
}

/// Whether a write to an image's members may have reached Glance: anything but a refusal.
fn may_have_written<T>(result: &Result<T, OpenStackError>) -> bool {
    match result.as_ref().err().and_then(OpenStackError::http_kind) {
        None => true,
        Some(kind) => matches!(kind, HttpErrorKind::ServerError | HttpErrorKind::Other),
    }
}

/// The other objects of `object`'s image (with their uids) that use the same Secret and cloud
/// and would look at their member now: they are woken to be checked against the list just
/// read. Left out: objects waiting out a backoff or a stalled re-check (waking them would
/// break that schedule), objects not applied yet (they create without looking), and objects
/// in a reconcile (they look for a loan when they get to it; a wake would run them twice).
fn siblings(object: &ImageAccess, ctx: &Context) -> Vec<(ObjectRef<ImageAccess>, String)> {
    let me = ObjectRef::from(object);
    let mut siblings = Vec::new();
    let same_credentials = |other: &ImageAccess| {
        other.metadata.namespace == object.metadata.namespace
            && other.spec.cloud_credentials_ref == object.spec.cloud_credentials_ref
            && other.spec.region == object.spec.region
    };
    for reference in ctx.index.naming_image(&object.spec.image_id) {
        if reference == me {
            continue;
        }
        let Some(sibling) = ctx.object(&reference) else {
            continue;
        };
        let uid = sibling.uid().unwrap_or_default();
        let would_look = sibling.applied().is_some()
            && !sibling.is_deleting()
            && sibling.condition(STALLED).is_none_or(|c| c.status != "True")
            && ctx.tracker.failures(&uid) == 0
            && !ctx.tracker.running(&uid);
        if same_credentials(&sibling) && would_look {
            siblings.push((reference, uid));
        }
    }
    siblings
}

/// The memberships the object may have in Glance: the one its status records, and the one it
/// claimed before its last Glance call.
fn held_memberships(object: &ImageAccess) -> Vec<Membership> {
    let mut held: Vec<Membership> = object.applied().cloned().into_iter().collect();
    if let Some(claim) = object.claim()
        && !held.contains(&claim)
    {
        held.push(claim);
    }
    held
}

/// Makes sure the object carries the finalizer and claims `desired` before Glance is touched,
/// and that its Secret is held while it does. Writes only what is missing.
async fn claim(api: &Api<ImageAccess>, object: &ImageAccess, desired: &Membership, ctx: &Context) -> Result<(), Error> {
    let namespace = object.namespace().unwrap_or_default();
    ctx.secrets
        .hold(&namespace, &object.spec.cloud_credentials_ref.secret_name)
        .await
        .map_err(Error::Kube)?;
    if object.has_finalizer() && object.claim().as_ref() == Some(desired) {
        return Ok(());
    }
    let mut finalizers = object.finalizers().to_vec();
    if !object.has_finalizer() {
        finalizers.push(FINALIZER.to_string());
    }
    let claim = serde_json::to_string(desired).ok();
    let _: ImageAccess = patch_metadata(api, &object.metadata, &finalizers, &[(CLAIM_ANNOTATION, claim)])
        .await
        .map_err(Error::Kube)?;
    // What the echo looks like if nothing but our write happened. Not the API's answer: that
    // may already carry a spec edited meanwhile, which must not pass for handled.
    let mut expected = object.metadata.clone();
    expected.finalizers = Some(finalizers);
    ctx.tracker
        .note_written(&object.uid().unwrap_or_default(), Fingerprint::of(&expected, FINALIZER));
    Ok(())
}

/// Drops the claim annotation (the finalizer stays; with nothing held, deletion is immediate).
/// The fingerprint does not change, so its echo passes for handled.
async fn release_claim(api: &Api<ImageAccess>, object: &ImageAccess) -> Result<(), Error> {
    let _: ImageAccess = patch_metadata(api, &object.metadata, object.finalizers(), &[(CLAIM_ANNOTATION, None)])
        .await
        .map_err(Error::Kube)?;
    Ok(())
}

/// Hands `target` over to the object that takes it over, if there is one that can: writes the
/// claim (and the finalizer) onto it, so that from then on it holds the membership (its deletion
/// removes it) even if it never reconciles again. "Can" is checked with the successor's own
/// credentials: they resolve to this very membership (region included) and Glance shows it to
/// them; its Secret is held. Returns the successor (`namespace/name`), or `None` when nobody
/// takes it.
async fn hand_over(object: &ImageAccess, target: &Membership, ctx: &Context) -> Result<Option<String>, Problem> {
    let others = ctx.others_naming(object, target);
    let Some(successor) = ownership::successor(object, target, others.iter().map(Arc::as_ref)) else {
        return Ok(None);
    };
    let namespace = successor.namespace().unwrap_or_default();
    let label = format!("{namespace}/{}", successor.name_any());
    if successor.holds(target) {
        return Ok(Some(label));
    }
    if successor.claim().is_some() {
        // Its claim records another membership it may hold: not overwritten.
        return Ok(None);
    }
    let Ok((session, cloud)) = credentials(successor, ctx).await else {
        return Ok(None);
    };
    let region = successor.spec.region.clone().or_else(|| cloud.region_name.clone());
    if region != target.region {
        return Ok(None);
    }
    let unavailable = |e: &OpenStackError| Problem::openstack(e, Step::ObserveMember, target, &label);
    let glance = match session.glance(region.as_deref(), &cloud.interface).await {
        Ok(glance) => glance,
        Err(e) if e.is_transient() => return Err(unavailable(&e)),
        Err(_) => return Ok(None),
    };
    match glance.show_member(&target.image_id, &target.member_id).await {
        Ok(_) => {}
        Err(e) if e.is_transient() => return Err(unavailable(&e)),
        // Its credentials cannot see the membership: it could not remove it either.
        Err(_) => return Ok(None),
    }
    let failed = |e: kube::Error| Problem::kubernetes_write(&e, &label);
    let secret = &successor.spec.cloud_credentials_ref.secret_name;
    ctx.secrets.hold(&namespace, secret).await.map_err(failed)?;
    let api: Api<ImageAccess> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut finalizers = successor.finalizers().to_vec();
    if !successor.has_finalizer() {
        finalizers.push(FINALIZER.to_string());
    }
    let claim = serde_json::to_string(target).ok();
    let _: ImageAccess = patch_metadata(&api, &successor.metadata, &finalizers, &[(CLAIM_ANNOTATION, claim)])
        .await
        .map_err(failed)?;
    // Its finalizer may have been there already: its fingerprint need not change, so wake it.
    ctx.wake(ObjectRef::from(successor));
    Ok(Some(label))
}

/// Lets go of a membership the object holds: hands it to the object that takes it over, or
/// removes it from Glance. `Err` when it stays and still grants access (a human must act) or
/// Glance could not be asked.
async fn let_go(
    object: &ImageAccess,
    target: &Membership,
    session: &Arc<Session>,
    interface: &str,
    ctx: &Context,
) -> Result<LetGo, Problem> {
    if let Some(successor) = hand_over(object, target, ctx).await? {
        return Ok(LetGo::HandedOver(successor));
    }
    remove(object, target, session, interface, ctx).await
}

/// Removes `target` from Glance.
async fn remove(
    object: &ImageAccess,
    target: &Membership,
    session: &Arc<Session>,
    interface: &str,
    ctx: &Context,
) -> Result<LetGo, Problem> {
    let secret = secret_label(object);
    let fail = |e: &OpenStackError| Problem::openstack(e, Step::RemoveMember, target, &secret);
    let glance = session
        .glance(target.region.as_deref(), interface)
        .await
        .map_err(|e| fail(&e))?;
    // As for a create: no list read across the removal is kept.
    ctx.member_lists.wrote(&target.image_id);
    let removed = remove_membership(&glance, target).await;
    if may_have_written(&removed) {
        ctx.member_lists.wrote(&target.image_id);
    }
    match removed.map_err(|e| fail(&e))? {
        Removal::Removed => Ok(LetGo::Removed),
        Removal::AlreadyGone => Ok(LetGo::AlreadyGone),
        Removal::NotGranting(detail) => Ok(LetGo::NotGranting(detail)),
        Removal::StillGranting { owner } => {
            let caller = session.project_id().await.ok().flatten();
            Err(Problem::removal_forbidden(
                target,
                owner.as_deref(),
                caller.as_deref(),
                &secret,
            ))
        }
    }
}

enum Removal {
    Removed,
    AlreadyGone,
    /// Glance refused, and the image is not shared: its member rows grant nothing.
    NotGranting(String),
    /// Glance refused and the image is still shared: the member keeps access.
    StillGranting {
        owner: Option<String>,
    },
}

/// Removes a membership. A 403 alone does not say whether access remains: the image is read
/// to tell "no longer shared" (nothing granted) from "these credentials may not" (granted).
async fn remove_membership(glance: &Glance, target: &Membership) -> Result<Removal, OpenStackError> {
    match glance.delete_member(&target.image_id, &target.member_id).await {
        Ok(()) => Ok(Removal::Removed),
        Err(e) if e.is_not_found() => Ok(Removal::AlreadyGone),
        Err(e) if e.http_kind() == Some(HttpErrorKind::Forbidden) => match glance.show_image(&target.image_id).await {
            Ok(image) if image.visibility == "shared" => Ok(Removal::StillGranting { owner: image.owner }),
            Ok(image) => Ok(Removal::NotGranting(format!(
                "image {} is {} now, not shared",
                target.image_id, image.visibility
            ))),
            Err(read) if read.is_not_found() => Ok(Removal::AlreadyGone),
            Err(read) => Err(read),
        },
        Err(e) => Err(e),
    }
}

async fn cleanup(object: &ImageAccess, api: &Api<ImageAccess>, ctx: &Context) -> Result<Next, Error> {
    if !object.has_finalizer() {
        return Ok(Next::Gone);
    }
    let held = held_memberships(object);
    let recorded = object.applied().cloned();
    let mut events = Vec::new();
    let mut found: Option<(Arc<Session>, Cloud)> = None;
    for target in &held {
        // Whatever the deletion policy, an object that takes the membership over gets it.
        let handed = match hand_over(object, target, ctx).await {
            Ok(handed) => handed,
            Err(problem) => return blocked(object, api, ctx, target, problem, events).await,
        };
        if let Some(successor) = handed {
            events.push(Happened::normal(
                "MemberHandedOver",
                format!("left the membership ({target}) to ImageAccess {successor}, which names it too"),
            ));
            continue;
        }
        if object.deletion_policy() == DeletionPolicy::Orphan {
            events.push(Happened::normal(
                "MemberOrphaned",
                format!("deletionPolicy is Orphan: left the membership ({target}) in Glance"),
            ));
            continue;
        }
        let (session, cloud) = match &found {
            Some(found) => found.clone(),
            None => match credentials(object, ctx).await {
                Ok(resolved) => found.insert(resolved).clone(),
                Err(problem) => return blocked(object, api, ctx, target, problem, events).await,
            },
        };
        match remove(object, target, &session, &cloud.interface, ctx).await {
            Ok(LetGo::Removed) => events.push(Happened::normal(
                "MemberDeleted",
                format!("removed the membership ({target}) from Glance"),
            )),
            Ok(LetGo::HandedOver(to)) => events.push(Happened::normal(
                "MemberHandedOver",
                format!("left the membership ({target}) to ImageAccess {to}, which names it too"),
            )),
            // Claimed but never recorded: the create may not have happened at all.
            Ok(LetGo::AlreadyGone) if recorded.as_ref() != Some(target) => {}
            Ok(LetGo::AlreadyGone) => events.push(Happened::warning(
                "MemberAlreadyGone",
                format!("the membership ({target}) or its image no longer exists in Glance; nothing to remove"),
            )),
            Ok(LetGo::NotGranting(detail)) => events.push(Happened::warning(
                "MemberNotRemoved",
                format!(
                    "Glance refused to remove the membership ({target}): {detail}, so the membership grants nothing; deletion finished"
                ),
            )),
            Err(problem) => return blocked(object, api, ctx, target, problem, events).await,
        }
    }
    for event in events {
        publish(&ctx.events, object, event).await;
    }
    let finalizers: Vec<String> = object
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    // Keeping the claim it saw tests it: one handed over meanwhile fails this, and is cleaned
    // up on the next look.
    let claim = object.annotations().get(CLAIM_ANNOTATION).cloned();
    match patch_metadata::<ImageAccess>(api, &object.metadata, &finalizers, &[(CLAIM_ANNOTATION, claim)]).await {
        Ok(_) => Ok(Next::Gone),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Next::Gone),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// The deletion cannot finish: the finalizer stays; the status and a Warning say why and how
/// to let go without removing the membership.
async fn blocked(
    object: &ImageAccess,
    api: &Api<ImageAccess>,
    ctx: &Context,
    target: &Membership,
    problem: Problem,
    events: Vec<Happened>,
) -> Result<Next, Error> {
    for event in events {
        publish(&ctx.events, object, event).await;
    }
    let problem = match problem {
        Problem::Stalled { reason, message } if !message.contains("deletionPolicy") => Problem::Stalled {
            reason,
            message: format!(
                "{message}. The object is being deleted and waits for this; to delete it without removing the membership, set spec.deletionPolicy to Orphan"
            ),
        },
        other => other,
    };
    let previous = object.status.clone().unwrap_or_default();
    let outcome = Outcome {
        applied: previous.applied.clone(),
        observation: Observation::Unknown,
        problem: Some(problem.clone()),
    };
    let next = status::next(
        &previous,
        object.metadata.generation,
        target,
        object.spec.status,
        &outcome,
        ctx.clock.timestamp(),
    );
    if status::differs(object.status.as_ref(), &next) {
        patch_status(api, object, &next).await?;
    }
    publish_problem_transition(ctx, object, &previous, Some(&problem)).await;
    finish(ctx, Some(problem))
}

/// `namespace/secret` for messages.
fn secret_label(object: &ImageAccess) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.spec.cloud_credentials_ref.secret_name
    )
}

/// Reads the Secret the object names and returns the session for its credentials, with the
/// cloud entry (its region and interface).
async fn credentials(object: &ImageAccess, ctx: &Context) -> Result<(Arc<Session>, Cloud), Problem> {
    let namespace = object.namespace().unwrap_or_default();
    let reference = &object.spec.cloud_credentials_ref;
    let data = match ctx.secrets.read(&namespace, &reference.secret_name).await {
        Ok(data) => data,
        Err(ReadError::NotFound) => return Err(Problem::secret_not_found(&namespace, &reference.secret_name)),
        Err(ReadError::BadKey(detail)) => {
            return Err(Problem::secret_key_missing(&namespace, &reference.secret_name, detail));
        }
        Err(ReadError::Kubernetes(e)) => return Err(Problem::kubernetes(&e)),
    };
    let target = object.named_membership();
    let secret_label = secret_label(object);
    let config_problem = |e: OpenStackError| Problem::openstack(&e, Step::ReadCredentials, &target, &secret_label);
    let cloud = Cloud::from_clouds_yaml(
        data.clouds_yaml.expose_secret(),
        &reference.cloud_name,
        data.ca_cert.clone(),
    )
    .map_err(|e| config_problem(OpenStackError::Config(e)))?;
    let session = ctx.openstack.session(&cloud.credentials).map_err(config_problem)?;
    Ok((session, cloud))
}

async fn patch_status(api: &Api<ImageAccess>, object: &ImageAccess, status: &ImageAccessStatus) -> Result<(), Error> {
    let patch = json!({
        "apiVersion": ImageAccess::api_version(&()),
        "kind": ImageAccess::kind(&()),
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

/// A Warning event when the object enters a problem it was not in already (events on
/// transitions only: a stalled object re-checked every few minutes stays quiet).
async fn publish_problem_transition(
    ctx: &Context,
    object: &ImageAccess,
    previous: &ImageAccessStatus,
    problem: Option<&Problem>,
) {
    let Some(problem) = problem else { return };
    let before = previous.conditions.iter().find(|c| c.type_ == status::READY);
    let same = before.is_some_and(|c| c.status == "False" && c.reason == problem.reason());
    if !same {
        publish(
            &ctx.events,
            object,
            Happened::warning(problem.reason(), problem.message().to_string()),
        )
        .await;
    }
}

/// Holds or releases a credentials Secret: held while an object needs it (see
/// [`crate::credentials`]), released once none does.
pub async fn reconcile_secret(secret: Arc<PartialObjectMeta<Secret>>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.objects_synced.load(Ordering::Relaxed) {
        // Not every ImageAccess is known yet: "nobody needs it" cannot be told.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let namespace = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let held = secret.finalizers().iter().any(|f| f == ctx.secrets.finalizer());
    let needed = ctx.index.secret_in_use(&namespace, &name);
    match (needed, held) {
        (true, false) => ctx.secrets.hold_seen(&secret).await.map_err(Error::Kube)?,
        (false, true) => ctx.secrets.release(&secret).await.map_err(Error::Kube)?,
        (false, false) => ctx.secrets.forget(&namespace, &name),
        (true, true) => {}
    }
    Ok(Action::await_change())
}

/// A Secret hold that could not be written (a conflict, most often): try again soon.
pub fn secret_error_policy(secret: Arc<PartialObjectMeta<Secret>>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::debug!(secret = %secret.name_any(), error = %error, "Secret hold not updated; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the controllers until `shutdown` resolves: for each watched scope, one for ImageAccess
/// objects (fed by a watch that keeps the index and wakes objects) and one for the Secrets
/// they use (metadata only). `ready` is set once every watch cache has synced (for `/readyz`).
pub async fn run(
    ctx: Arc<Context>,
    scope: WatchScope,
    ready: Arc<AtomicBool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let mut config = watcher::Config::default().any_semantic();
    if let Some(selector) = &scope.label_selector {
        config = config.labels(selector);
    }
    ctx.metrics
        .max_concurrent_reconciles
        .get_or_create(&Metrics::controller_labels())
        .set(i64::from(ctx.settings.reconcile_concurrency()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let stop_signal = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let controller_config =
        kube::runtime::controller::Config::default().concurrency(ctx.settings.reconcile_concurrency());
    let mut object_stores = Vec::new();
    let mut secret_stores = Vec::new();
    let mut loops = Vec::new();

    for (namespace, api) in scope.apis::<ImageAccess>(&ctx.client) {
        let (reader, writer) = reflector::store();
        ctx.watch_scope(namespace.clone(), reader.clone());
        object_stores.push(reader.clone());
        let requeue = ctx.requeue.register(namespace.clone());
        let tap = ctx.clone();
        let events = watcher(api, config.clone()).default_backoff().modify(slim);
        // The taps run once the cache has the event, so what they wake reads it.
        let events = reflector::reflector(writer, events).map_ok(move |event| {
            tap.observe(namespace.as_deref(), &event);
            event
        });
        // Only what a reconcile must see passes: spec (generation), deletion and our
        // finalizer. Status echoes do not wake anything (the tracker keeps their schedule).
        let trigger = events.touched_objects().predicate_filter(
            |object: &ImageAccess| Some(Fingerprint::of(&object.metadata, FINALIZER).value()),
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
                    .run(reconcile, error_policy, ctx)
                    .for_each(|result| async move {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "reconcile loop");
                        }
                    })
                    .await;
            }
            .boxed(),
        );
    }

    // Every namespace is watched for Secrets even with a label selector: Secrets are not
    // labelled for the operator, and only their metadata is kept.
    let secret_scope = WatchScope {
        namespaces: scope.namespaces.clone(),
        label_selector: None,
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

    let synced = ctx.clone();
    tokio::spawn(async move {
        if !wait_until_ready(&object_stores).await {
            return;
        }
        synced.objects_synced.store(true, Ordering::Relaxed);
        if !wait_until_ready(&secret_stores).await {
            return;
        }
        ready.store(true, Ordering::Relaxed);
        tracing::info!("watch caches synced");
    });
    futures::future::join_all(loops).await;
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
        loop {
            match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
                Ok(Ok(())) => break,
                Ok(Err(_)) => return false,
                Err(_) => continue,
            }
        }
    }
    true
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
