//! The ImageAccess controller: finalizer → credentials → observe Glance → plan → execute →
//! status → requeue.
//!
//! Pure parts live in [`plan`], [`status`] and [`problem`]; this module does the I/O (the
//! Kubernetes API and the [`crate::openstack`] client) and owns retry timing. Problems that need
//! a human become conditions, a Warning event and a slow re-check (never an `Err`, so nothing
//! hot-loops); transient ones go to [`error_policy`] for per-object exponential backoff.

pub mod plan;
pub mod problem;
pub mod status;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::api::{DeletionPolicy, FINALIZER, ImageAccess, ImageAccessStatus, Membership};
use crate::metrics::Metrics;
use crate::openstack::{Cloud, Glance, HttpErrorKind, OpenStack, OpenStackError, Session};
use plan::{CreateReason, Plan};
use problem::{Problem, Step};
use status::{Observation, Outcome};

/// Field manager of the operator's status writes (server-side apply).
pub const FIELD_MANAGER: &str = "image-access-operator";

/// Timing of re-checks and retries.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Glance cannot be watched: every object is re-checked this often (±10 % jitter).
    pub resync_period: Duration,
    /// Re-check of an object that needs a human (a fixed Secret is picked up then).
    pub stalled_recheck: Duration,
    /// First retry after a transient failure; doubles per failure, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync_period: Duration::from_secs(600),
            stalled_recheck: Duration::from_secs(300),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: kube::Client,
    pub openstack: OpenStack,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// Consecutive transient failures per object, for backoff; cleared on success.
    failures: Mutex<HashMap<ObjectRef<ImageAccess>, u32>>,
    /// The resourceVersions our own last status writes produced, per object (the last two: a
    /// first reconcile writes twice). The watch events of those writes bring the object
    /// straight back; when nothing else changed since, Glance was read a moment ago and is not
    /// read again.
    own_writes: Mutex<HashMap<ObjectRef<ImageAccess>, Vec<String>>>,
    /// The clock, replaceable in tests.
    now: fn() -> jiff::Timestamp,
}

impl Context {
    pub fn new(
        client: kube::Client,
        openstack: OpenStack,
        metrics: Arc<Metrics>,
        settings: Settings,
        reporter: Reporter,
    ) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            openstack,
            metrics,
            settings,
            failures: Mutex::default(),
            own_writes: Mutex::default(),
            now: jiff::Timestamp::now,
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<ImageAccess>, u32>> {
        self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn own_writes(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<ImageAccess>, Vec<String>>> {
        self.own_writes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether this is the first sight of `object` exactly as our last status write left it.
    /// Once only: the resync requeue that follows brings the same cached object, and that one
    /// must look at Glance.
    fn take_own_write(&self, object: &ImageAccess) -> bool {
        let Some(version) = object.metadata.resource_version.as_ref() else {
            return false;
        };
        let mut own_writes = self.own_writes();
        let Some(versions) = own_writes.get_mut(&ObjectRef::from(object)) else {
            return false;
        };
        let Some(position) = versions.iter().position(|v| v == version) else {
            return false;
        };
        versions.remove(position);
        true
    }

    fn record_own_write(&self, object: &ImageAccess, version: String) {
        let mut own_writes = self.own_writes();
        let versions = own_writes.entry(ObjectRef::from(object)).or_default();
        versions.push(version);
        if versions.len() > 2 {
            versions.remove(0);
        }
    }
}

/// The error kube-runtime sees: only transient failures get here (and trigger backoff).
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
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Transient { retry_after, .. } => *retry_after,
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => {
                    e.retry_after()
                }
                _ => None,
            },
            _ => None,
        }
    }
}

/// The reconcile entry point kube-runtime calls.
pub async fn reconcile(object: Arc<ImageAccess>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = object.namespace().ok_or(Error::NotNamespaced)?;
    let labels = Metrics::controller_labels();
    ctx.metrics.active_workers.get_or_create(&labels).inc();
    let started = Instant::now();
    let api: Api<ImageAccess> = Api::namespaced(ctx.client.clone(), &namespace);
    let span = tracing::info_span!("reconcile", namespace = %namespace, object = %object.name_any());
    let result = tracing::Instrument::instrument(
        finalizer(&api, FINALIZER, object, |event| async {
            match event {
                FinalizerEvent::Apply(object) => apply(&object, &api, &ctx).await,
                FinalizerEvent::Cleanup(object) => cleanup(&object, &api, &ctx).await,
            }
        }),
        span,
    )
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.active_workers.get_or_create(&labels).dec();
    ctx.metrics
        .reconcile_time_seconds
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "success" } else { "error" };
    ctx.metrics
        .reconcile_total
        .get_or_create(&crate::metrics::ReconcileLabels {
            controller: crate::metrics::CONTROLLER,
            result: outcome,
        })
        .inc();
    result
}

/// Transient failures: per-object exponential backoff with jitter, at least `Retry-After`.
pub fn error_policy(object: Arc<ImageAccess>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_errors_total
        .get_or_create(&Metrics::controller_labels())
        .inc();
    let failures = {
        let mut map = ctx.failures();
        let count = map.entry(ObjectRef::from(object.as_ref())).or_insert(0);
        *count = count.saturating_add(1);
        *count
    };
    let delay = backoff_delay(&ctx.settings, failures, random_fraction());
    let delay = match error.retry_after() {
        Some(wait) => delay.max(wait).min(ctx.settings.backoff_max),
        None => delay,
    };
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

/// The resync period, ±10 %, so objects created together do not hit Glance together.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(0.9 + random_fraction() * 0.2)
}

async fn apply(object: &ImageAccess, api: &Api<ImageAccess>, ctx: &Context) -> Result<Action, Error> {
    let now = (ctx.now)();
    let generation = object.metadata.generation;
    if ctx.take_own_write(object) {
        // The echo of our own status write: the object has not changed since we looked.
        return Ok(Action::requeue(jittered(ctx.settings.resync_period)));
    }
    if object.status.is_none() {
        // Seen for the first time: say that work has started (kstatus: InProgress).
        patch_status(api, object, &status::initial(generation, now), ctx).await?;
    }
    let previous = object.status.clone().unwrap_or_default();
    let (desired, outcome, events) = converge(object, &previous, ctx).await;
    let next = status::next(&previous, generation, &desired, object.spec.status, &outcome, now);
    if status::differs(object.status.as_ref(), &next) {
        patch_status(api, object, &next, ctx).await?;
    }
    for event in events {
        publish(ctx, object, event).await;
    }
    publish_problem_transition(ctx, object, &previous, outcome.problem.as_ref()).await;
    finish(object, ctx, outcome.problem)
}

/// Maps a reconcile's problem to what kube-runtime does next.
fn finish(object: &ImageAccess, ctx: &Context, problem: Option<Problem>) -> Result<Action, Error> {
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
        Some(Problem::Stalled { .. }) => {
            ctx.failures().remove(&ObjectRef::from(object));
            Ok(Action::requeue(jittered(ctx.settings.stalled_recheck)))
        }
        None => {
            ctx.failures().remove(&ObjectRef::from(object));
            Ok(Action::requeue(jittered(ctx.settings.resync_period)))
        }
    }
}

/// A Normal event to publish after the status is written.
struct Happened {
    reason: &'static str,
    note: String,
    warning: bool,
}

impl Happened {
    fn normal(reason: &'static str, note: String) -> Self {
        Happened {
            reason,
            note,
            warning: false,
        }
    }
    fn warning(reason: &'static str, note: String) -> Self {
        Happened {
            reason,
            note,
            warning: true,
        }
    }
}

/// Brings Glance to the spec. Never fails: a failure is part of the outcome.
async fn converge(
    object: &ImageAccess,
    previous: &ImageAccessStatus,
    ctx: &Context,
) -> (Membership, Outcome, Vec<Happened>) {
    let spec = &object.spec;
    let mut events = Vec::new();
    let mut applied = previous.applied.clone();
    let unresolved = Membership {
        image_id: spec.image_id.clone(),
        member_id: spec.member_id.clone(),
        region: spec.region.clone(),
    };
    let stop = |desired: Membership, applied, problem, events| {
        (
            desired,
            Outcome {
                applied,
                observation: Observation::Unknown,
                problem: Some(problem),
            },
            events,
        )
    };

    let session = match session_for(object, ctx).await {
        Ok(session) => session,
        Err(problem) => return stop(unresolved, applied, problem, events),
    };
    let desired = Membership {
        region: spec.region.clone().or_else(|| session.cloud().region_name.clone()),
        ..unresolved
    };
    let secret = secret_label(object);
    let fail =
        |error: &OpenStackError, step: Step, target: &Membership| Problem::openstack(error, step, target, &secret);

    let glance = match session.glance(desired.region.as_deref()).await {
        Ok(glance) => glance,
        Err(e) => {
            return stop(
                desired.clone(),
                applied,
                fail(&e, Step::ObserveMember, &desired),
                events,
            );
        }
    };
    // Not yet applied under this identity: create straight away and let a 409 say it exists
    // (then it is read and adopted). One Glance request per new object instead of two.
    let first_time = applied.as_ref() != Some(&desired);
    let shown = if first_time {
        Err(None)
    } else {
        glance
            .show_member(&desired.image_id, &desired.member_id)
            .await
            .map_err(Some)
    };
    let observed = match shown {
        Ok(member) => Some(member),
        Err(None) => None,
        Err(Some(e)) if e.is_not_found() => None,
        Err(Some(e)) => {
            return stop(
                desired.clone(),
                applied,
                fail(&e, Step::ObserveMember, &desired),
                events,
            );
        }
    };
    let Plan {
        remove_previous,
        create,
        set_status,
    } = plan::plan(&desired, spec.status, applied.as_ref(), observed.as_ref());

    if let Some(old) = remove_previous {
        match remove_membership(&session, &old).await {
            Ok(Removal::Removed) => events.push(Happened::normal("Replaced", format!("removed the previous membership ({old}) because the spec now names {desired}"))),
            Ok(Removal::AlreadyGone) => {}
            Ok(Removal::Refused(detail)) => events.push(Happened::warning(
                "PreviousMemberNotRemoved",
                format!("could not remove the previous membership ({old}): {detail}; it grants nothing while the image is not shared"),
            )),
            Err(e) => return stop(desired.clone(), applied, fail(&e, Step::RemovePreviousMember, &old), events),
        }
        applied = None;
    }

    let mut member = observed;
    if let Some(reason) = create {
        match glance.create_member(&desired.image_id, &desired.member_id).await {
            Ok(created) => {
                let (event, note) = match reason {
                    CreateReason::New => ("MemberCreated", format!("shared {desired}")),
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
                        return stop(desired.clone(), applied, fail(&e, Step::CreateMember, &desired), events);
                    }
                    Err(other) => {
                        return stop(
                            desired.clone(),
                            applied,
                            fail(&other, Step::ObserveMember, &desired),
                            events,
                        );
                    }
                }
            }
            Err(e) => return stop(desired.clone(), applied, fail(&e, Step::CreateMember, &desired), events),
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
        match glance
            .set_member_status(&desired.image_id, &desired.member_id, change.to)
            .await
        {
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
                return (desired, outcome, events);
            }
        }
    }
    let observation = member.map_or(Observation::Unknown, Observation::Present);
    (
        desired,
        Outcome {
            applied,
            observation,
            problem: None,
        },
        events,
    )
}

enum Removal {
    Removed,
    AlreadyGone,
    /// Glance refused (403): the image is no longer shared, or no longer ours.
    Refused(String),
}

/// Removes a membership; "already gone" and "image no longer shared" are not failures.
async fn remove_membership(session: &Arc<Session>, target: &Membership) -> Result<Removal, OpenStackError> {
    let glance: Glance = session.glance(target.region.as_deref()).await?;
    match glance.delete_member(&target.image_id, &target.member_id).await {
        Ok(()) => Ok(Removal::Removed),
        Err(e) if e.is_not_found() => Ok(Removal::AlreadyGone),
        Err(e) if e.http_kind() == Some(HttpErrorKind::Forbidden) => Ok(Removal::Refused(e.to_string())),
        Err(e) => Err(e),
    }
}

async fn cleanup(object: &ImageAccess, api: &Api<ImageAccess>, ctx: &Context) -> Result<Action, Error> {
    ctx.own_writes().remove(&ObjectRef::from(object));
    let previous = object.status.clone().unwrap_or_default();
    let Some(applied) = previous.applied.clone() else {
        // Nothing was ever created (or it is already removed): nothing can be orphaned.
        return Ok(Action::await_change());
    };
    if object.deletion_policy() == DeletionPolicy::Orphan {
        publish(
            ctx,
            object,
            Happened::normal(
                "MemberOrphaned",
                format!("deletionPolicy is Orphan: left the membership ({applied}) in Glance"),
            ),
        )
        .await;
        return Ok(Action::await_change());
    }
    let secret = secret_label(object);
    let removal = match session_for(object, ctx).await {
        Ok(session) => remove_membership(&session, &applied)
            .await
            .map_err(|e| Problem::openstack(&e, Step::RemoveMember, &applied, &secret)),
        Err(problem) => Err(problem),
    };
    let finished = match removal {
        Ok(Removal::Removed) => Happened::normal(
            "MemberDeleted",
            format!("removed the membership ({applied}) from Glance"),
        ),
        Ok(Removal::AlreadyGone) => Happened::warning(
            "MemberAlreadyGone",
            format!("the membership ({applied}) or its image no longer exists in Glance; nothing to remove"),
        ),
        Ok(Removal::Refused(detail)) => Happened::warning(
            "MemberNotRemoved",
            format!(
                "Glance refused to remove the membership ({applied}): {detail}. The image is no longer shared (or no longer owned by these credentials), so the membership grants nothing; deletion finished"
            ),
        ),
        Err(problem) => {
            // The finalizer holds: say why, and how to let go without removing the membership.
            let problem = match problem {
                Problem::Stalled { reason, message } => Problem::Stalled {
                    reason,
                    message: format!(
                        "{message}. The object is being deleted and waits for this; to delete it without removing the membership, set spec.deletionPolicy to Orphan"
                    ),
                },
                transient => transient,
            };
            let outcome = Outcome {
                applied: Some(applied.clone()),
                observation: Observation::Unknown,
                problem: Some(problem.clone()),
            };
            let next = status::next(
                &previous,
                object.metadata.generation,
                &applied,
                object.spec.status,
                &outcome,
                (ctx.now)(),
            );
            if status::differs(object.status.as_ref(), &next) {
                patch_status(api, object, &next, ctx).await?;
            }
            publish_problem_transition(ctx, object, &previous, Some(&problem)).await;
            return finish(object, ctx, Some(problem));
        }
    };
    publish(ctx, object, finished).await;
    Ok(Action::await_change())
}

/// `namespace/secret` for messages.
fn secret_label(object: &ImageAccess) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.spec.cloud_credentials_ref.secret_name
    )
}

/// Reads the Secret the object names and returns the session for its credentials.
async fn session_for(object: &ImageAccess, ctx: &Context) -> Result<Arc<Session>, Problem> {
    let namespace = object.namespace().unwrap_or_default();
    let reference = &object.spec.cloud_credentials_ref;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = match secrets.get_opt(&reference.secret_name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => return Err(Problem::secret_not_found(&namespace, &reference.secret_name)),
        Err(e) => return Err(Problem::kubernetes(&e)),
    };
    let data = secret.data.unwrap_or_default();
    let Some(clouds_yaml) = data.get("clouds.yaml") else {
        return Err(Problem::secret_key_missing(
            &namespace,
            &reference.secret_name,
            "has no key clouds.yaml",
        ));
    };
    let Ok(clouds_yaml) = std::str::from_utf8(&clouds_yaml.0) else {
        return Err(Problem::secret_key_missing(
            &namespace,
            &reference.secret_name,
            "has a clouds.yaml that is not UTF-8 text",
        ));
    };
    let ca_cert = data.get("cacert").map(|c| c.0.clone());
    let target = Membership {
        image_id: object.spec.image_id.clone(),
        member_id: object.spec.member_id.clone(),
        region: object.spec.region.clone(),
    };
    let secret_label = secret_label(object);
    let cloud = Cloud::from_clouds_yaml(clouds_yaml, &reference.cloud_name, ca_cert).map_err(|e| {
        Problem::openstack(
            &OpenStackError::Config(e),
            Step::ReadCredentials,
            &target,
            &secret_label,
        )
    })?;
    ctx.openstack
        .session(cloud)
        .map_err(|e| Problem::openstack(&e, Step::ReadCredentials, &target, &secret_label))
}

async fn patch_status(
    api: &Api<ImageAccess>,
    object: &ImageAccess,
    status: &ImageAccessStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let patch = json!({
        "apiVersion": ImageAccess::api_version(&()),
        "kind": ImageAccess::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(
            &object.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::Kube)?;
    if let Some(version) = written.metadata.resource_version {
        ctx.record_own_write(object, version);
    }
    Ok(())
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
            ctx,
            object,
            Happened::warning(problem.reason(), problem.message().to_string()),
        )
        .await;
    }
}

async fn publish(ctx: &Context, object: &ImageAccess, happened: Happened) {
    let kind = if happened.warning { "warning" } else { "normal" };
    tracing::info!(reason = happened.reason, kind, note = %happened.note, "event");
    let event = KubeEvent {
        type_: if happened.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: happened.reason.to_string(),
        // events.k8s.io limits a note to 1 kB.
        note: Some(happened.note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        // An event is informative: losing one must not fail the reconcile.
        tracing::warn!(error = %e, "could not publish event");
    }
}

/// What `run` watches.
#[derive(Clone, Debug, Default)]
pub struct WatchScope {
    /// Only these namespaces; empty means all.
    pub namespaces: Vec<String>,
    /// Only objects with these labels (to shard objects across operator instances).
    pub label_selector: Option<String>,
}

/// Runs the controller until `shutdown` resolves: one watch over all namespaces, or one per
/// namespace named in `scope` (so the operator needs no cluster-wide rights then). `ready` is
/// set once every watch cache has synced (for `/readyz`).
pub async fn run(
    ctx: Arc<Context>,
    scope: WatchScope,
    concurrency: u16,
    ready: Arc<std::sync::atomic::AtomicBool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let apis: Vec<Api<ImageAccess>> = if scope.namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        scope
            .namespaces
            .iter()
            .map(|ns| Api::namespaced(ctx.client.clone(), ns))
            .collect()
    };
    let mut config = watcher::Config::default().any_semantic();
    if let Some(selector) = &scope.label_selector {
        config = config.labels(selector);
    }
    ctx.metrics
        .max_concurrent_reconciles
        .get_or_create(&Metrics::controller_labels())
        .set(i64::from(concurrency));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let mut stores = Vec::new();
    let mut loops = Vec::new();
    for api in apis {
        let controller = Controller::new(api, config.clone())
            .with_config(kube::runtime::controller::Config::default().concurrency(concurrency));
        stores.push(controller.store());
        let mut stopped = stopped.clone();
        let ctx = ctx.clone();
        loops.push(async move {
            controller
                .graceful_shutdown_on(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .run(reconcile, error_policy, ctx)
                .for_each(|result| async move {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "reconcile loop");
                    }
                })
                .await;
        });
    }
    tokio::spawn(async move {
        for store in stores {
            // The store's readiness is a one-shot channel that the controller itself also waits
            // on, and only the last waiter registered is woken: ask again every 200 ms (once
            // ready, the answer is immediate).
            loop {
                match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
                    Ok(Ok(())) => break,
                    Ok(Err(_)) => return,
                    Err(_) => continue,
                }
            }
        }
        ready.store(true, std::sync::atomic::Ordering::Relaxed);
        tracing::info!("watch cache synced");
    });
    futures::future::join_all(loops).await;
}

#[cfg(test)]
mod tests;
