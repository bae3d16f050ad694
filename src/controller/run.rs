//! The watches and controllers: for each watched scope, one controller per kind (fed by a watch
//! whose taps keep the index and wake objects), the ImageShare controllers, and one controller
//! for the Secrets the objects use (metadata only), which holds and releases them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use super::reconcile::{backoff_delay, random_fraction};
use super::{Context, Error, Kind, error_policy, reconcile, share};
use crate::api::{FINALIZER, ImageAccess, ImageAccessAccept};
use crate::metrics::Metrics;
use crate::runtime::WatchScope;
use crate::runtime::tracker::Fingerprint;

/// kubectl's copy of the last applied manifest.
pub(super) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from a watched object what the operator never reads and what weighs most in its
/// cache: managedFields (more than the rest of the object) and kubectl's last applied
/// manifest (a second copy of the spec). The annotation map itself stays, even empty, so that
/// metadata patches keep addressing single annotations of the map the server has.
pub(super) fn slim<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
    if let Some(annotations) = object.meta_mut().annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
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
    secret_failures(&ctx).remove(&ObjectRef::from_obj(secret.as_ref()));
    Ok(Action::await_change())
}

fn secret_failures(
    ctx: &Context,
) -> std::sync::MutexGuard<'_, std::collections::HashMap<ObjectRef<PartialObjectMeta<Secret>>, u32>> {
    ctx.secret_failures
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A Secret hold that could not be written: retried with backoff (a conflict is over at once;
/// a refusal by RBAC or an admission policy waits for a human, and the objects using the
/// Secret say so in their conditions).
pub fn secret_error_policy(secret: Arc<PartialObjectMeta<Secret>>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = {
        let mut failures = secret_failures(&ctx);
        let count = failures.entry(ObjectRef::from_obj(secret.as_ref())).or_default();
        *count = count.saturating_add(1);
        *count
    };
    let delay = backoff_delay(&ctx.settings, failures, random_fraction());
    let refused =
        matches!(error, Error::Kube(kube::Error::Api(status)) if matches!(status.code, 400 | 401 | 403 | 422));
    let (namespace, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
    let retry_in_ms = delay.as_millis() as u64;
    if refused {
        tracing::warn!(namespace, secret = %name, failures, retry_in_ms, error = %error, "the API server refused the operator's finalizer on a credentials Secret: grant the operator patch on secrets, or exempt it from the admission policy that refuses it");
    } else {
        tracing::debug!(namespace, secret = %name, failures, retry_in_ms, error = %error, "Secret hold not updated; retrying");
    }
    Action::requeue(delay)
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
pub(super) type StopSignal = std::pin::Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

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
pub(super) async fn wait_until_ready<K>(stores: &[Store<K>]) -> bool
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
