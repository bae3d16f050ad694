//! The reconcile entry point kube-runtime calls for every kind, and what happens after it:
//! the echo of our own writes skipped, bounded concurrency, per-object backoff with jitter.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::problem::Problem;
use super::{Context, Kind, Settings, lifecycle};
use crate::api::FINALIZER;
use crate::metrics::Metrics;
use crate::runtime::tracker::Fingerprint;

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
                lifecycle::cleanup(object.as_ref(), &api, &ctx).await
            } else {
                lifecycle::apply(object.as_ref(), &api, &ctx).await
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
pub(super) async fn measured<T>(
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
            // An object asking to be looked at more often than the re-check is, waiting too.
            None if waiting => delay.min(
                settings
                    .stalled_recheck
                    .min(object.resync_period(settings.resync_period)),
            ),
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
pub(super) fn random_fraction() -> f64 {
    let bits = std::collections::hash_map::RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// A period ±10 %, so objects created together do not hit Glance together.
pub(super) fn jittered(period: Duration) -> Duration {
    period.mul_f64(0.9 + random_fraction() * 0.2)
}

/// Maps a reconcile's problem to what happens next; `resync` after a look with none.
pub(super) fn finish(ctx: &Context, problem: Option<Problem>, resync: Duration) -> Result<Next, Error> {
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
        // What fixes it happens in Glance, which sends no event: looked at again with backoff
        // (up to the stalled re-check), while the conditions say Stalled.
        Some(Problem::Stalled { reason, message }) if Problem::rechecked_with_backoff(reason) => {
            Err(Error::Waiting { reason, message })
        }
        // An object that asks to be looked at more often than the re-check is, stalled too.
        Some(Problem::Stalled { .. }) => Ok(Next::After(ctx.settings.stalled_recheck.min(resync))),
        None => Ok(Next::After(resync)),
    }
}
