//! The ImageShare controller: one ImageAccess per (image, member) pair of a share, owned by it.
//!
//! The share never calls OpenStack: its children do, through the ImageAccess controller, so
//! every promise of that kind (claim before Glance, finalizer until the membership is gone, one
//! manager per membership, drift repair) holds for each pair. The share only keeps the set of
//! children equal to its spec (server-side apply with its own field manager, so a child edited
//! by hand is set back; deletion of the pairs that left the lists, whose finalizers remove the
//! memberships) and sums up their conditions. Deleting the share deletes its children through
//! the garbage collector (ownerReferences), in background or foreground.
//!
//! It is woken by its own spec changes and by every watch event of one of its children (the
//! ImageAccess watch taps them: no second watch of the same objects), and reads the children
//! from the ImageAccess cache. A steady share writes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::problem::Problem;
use super::reconcile::{jittered, measured, random_fraction};
use super::report::patch_status;
use super::run::{StopSignal, slim, wait_until_ready};
use super::selection::{self, Evaluations, Targets};
use super::status::{READY, RECONCILING, STALLED, same_conditions, set_condition};
use super::{Context, Error, backoff_delay};
use crate::api::{
    DeletionPolicy, FINALIZER, ImageAccess, ImageAccessSpec, ImageShare, ImageShareStatus, Managed, Selection,
};
use crate::metrics::Metrics;
use crate::runtime::{Happened, Requeue, WatchScope, patch_metadata, publish};

/// The `controller` label of the share's metrics.
const CONTROLLER: &str = "imageshare";
/// Label on every child: the name of its share (`kubectl get ia -l ...=NAME`).
pub const SHARE_LABEL: &str = "glance.viettelidc.com.vn/image-share";
/// Label on every child: its image (all memberships of one image, over all shares).
pub const IMAGE_LABEL: &str = "glance.viettelidc.com.vn/image-id";
/// Field manager of the children's server-side apply: the share's, not the operator's, so
/// that `kubectl get ia -o yaml --show-managed-fields` tells who set what.
const SHARE_FIELD_MANAGER: &str = "image-access-operator/imageshare";
/// Stalled children named in the share's message; the rest are counted, with how to list them.
const NAMED_STALLED: usize = 5;

/// What the share controller keeps.
#[derive(Default)]
pub struct ShareState {
    stores: Mutex<Vec<(Option<String>, Store<ImageShare>)>>,
    pub(super) requeue: Requeue<ImageShare>,
    /// Children written whose watch event has not come back yet, with a fingerprint of what
    /// was written: the same content is not written again meanwhile (a share woken by the
    /// first children of a batch would otherwise apply the rest twice); other content is. An
    /// entry goes at the child's next watch event, or when the cache shows it as written.
    written: Mutex<HashMap<ObjectRef<ImageAccess>, u64>>,
    /// Failures in a row per share (backoff), forgotten on success and when the share goes.
    failures: Mutex<HashMap<String, u32>>,
    /// Child names held by objects the share does not control, and the share waiting for each:
    /// woken when that object goes. An entry goes with the object, or when the share no longer
    /// waits for the name.
    taken: Mutex<HashMap<ObjectRef<ImageAccess>, ObjectRef<ImageShare>>>,
    /// The last evaluation of each share's selectors.
    pub(super) evaluations: Evaluations,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ShareState {
    /// A watch event of an ImageAccess in `scope`, once the cache has it: its share (if a share
    /// controls it) looks again. During a relist the cache shows the new list only at its end:
    /// then every share of the scope looks again (a child created or deleted while the watch was
    /// down sends no event of its own), and the writes still awaited are forgotten.
    pub(super) fn observe_child(&self, scope: Option<&str>, event: &watcher::Event<ImageAccess>) {
        let object = match event {
            watcher::Event::Apply(object) | watcher::Event::Delete(object) => object,
            watcher::Event::Init | watcher::Event::InitApply(_) => return,
            watcher::Event::InitDone => {
                locked(&self.written).retain(|child, _| scope.is_some() && child.namespace.as_deref() != scope);
                let stores = locked(&self.stores);
                let shares = stores
                    .iter()
                    .filter(|(watched, _)| scope.is_none() || watched.is_none() || watched.as_deref() == scope)
                    .flat_map(|(_, store)| store.state());
                for share in shares.filter(|share| scope.is_none() || share.namespace().as_deref() == scope) {
                    self.requeue.send(ObjectRef::from_obj(share.as_ref()));
                }
                return;
            }
        };
        // Any change of an object holding a wanted name (its deletion; an ownerReference the
        // garbage collector removed under `--cascade=orphan`) is worth a look.
        let waiting = locked(&self.taken).remove(&ObjectRef::from_obj(object));
        if let Some(waiting) = waiting {
            self.requeue.send(waiting);
        }
        let Some(share) = controlling_share(object) else { return };
        locked(&self.written).remove(&ObjectRef::from_obj(object));
        let namespace = object.namespace().unwrap_or_default();
        self.requeue.send(ObjectRef::new(&share.name).within(&namespace));
    }

    /// The Secret `namespace/name` changed: the shares that read it for their selectors or
    /// names look again at once, their last failure forgotten (a fixed Secret is used at once,
    /// as it is by ImageAccess objects, not at the stalled re-check).
    pub(super) fn secret_changed(&self, namespace: &str, name: &str) {
        let stores = locked(&self.stores);
        let using = stores.iter().flat_map(|(_, store)| store.state()).filter(|share| {
            share.namespace().as_deref() == Some(namespace)
                && share.spec.cloud_credentials_ref.secret_name == name
                && Targets::reads_openstack(share)
        });
        for share in using {
            self.evaluations.secret_changed(&share.uid().unwrap_or_default());
            self.requeue.send(ObjectRef::from_obj(share.as_ref()));
        }
    }

    /// Registers the watch cache of one scope (a namespace, or all).
    pub(super) fn watch_scope(&self, scope: Option<String>, store: Store<ImageShare>) {
        locked(&self.stores).push((scope, store));
    }

    pub(super) fn observe_share(&self, event: &watcher::Event<ImageShare>) {
        match event {
            watcher::Event::Delete(share) => {
                locked(&self.failures).remove(&share.uid().unwrap_or_default());
                self.evaluations.forget(&share.uid().unwrap_or_default());
                let gone = ObjectRef::from_obj(share);
                locked(&self.taken).retain(|_, waiting| *waiting != gone);
            }
            // A share deleted while the watch was away sends no Delete: what is kept for it
            // goes once the new list is in.
            watcher::Event::InitDone => {
                let shares: Vec<Arc<ImageShare>> = locked(&self.stores)
                    .iter()
                    .flat_map(|(_, store)| store.state())
                    .collect();
                let uids: HashSet<String> = shares.iter().filter_map(|share| share.uid()).collect();
                let refs: HashSet<ObjectRef<ImageShare>> =
                    shares.iter().map(|share| ObjectRef::from_obj(share.as_ref())).collect();
                locked(&self.failures).retain(|uid, _| uids.contains(uid));
                self.evaluations.retain(&uids);
                locked(&self.taken).retain(|_, waiting| refs.contains(waiting));
            }
            _ => {}
        }
    }
}

/// The controller ownerReference of an ImageShare on `object`, if it has one.
fn controlling_share(object: &ImageAccess) -> Option<&OwnerReference> {
    object.owner_references().iter().find(|owner| {
        owner.controller == Some(true) && owner.kind == "ImageShare" && owner.api_version == share_api_version()
    })
}

fn share_api_version() -> String {
    ImageShare::api_version(&()).into_owned()
}

/// Whether `child` is controlled by `share` (the same object, not one of the same name before).
fn controlled_by(child: &ImageAccess, share: &ImageShare) -> bool {
    controlling_share(child).is_some_and(|owner| Some(&owner.uid) == share.metadata.uid.as_ref())
}

/// The name of the child of share `share` for `image_id` and `member_id`: the share's name and
/// the image's first 8 characters, for people, then 12 hex digits of a hash of all three (the
/// whole share name included, so two shares whose names start alike never meet). At most 63
/// characters, a valid DNS label.
pub fn child_name(share: &str, image_id: &str, member_id: &str) -> String {
    let hash = crate::names::stable_hash(&[share, image_id, member_id]);
    let prefix: String = share.chars().take(40).collect();
    let prefix = prefix.trim_end_matches(['-', '.']).replace('.', "-");
    let image: String = image_id.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    format!("{prefix}-{image}-{:012x}", hash & 0xffff_ffff_ffff)
}

/// The ImageAccess objects `share` asks for, by name: one per distinct (image, member) pair,
/// with the share's labels and its controller ownerReference.
pub fn desired_children(share: &ImageShare, targets: &Targets) -> BTreeMap<String, ImageAccess> {
    let share_name = share.name_any();
    let owner = OwnerReference {
        api_version: share_api_version(),
        kind: "ImageShare".into(),
        name: share_name.clone(),
        uid: share.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        // Foreground deletion of the share waits for its children (and their memberships).
        block_owner_deletion: Some(true),
    };
    let mut children = BTreeMap::new();
    for image_id in &targets.images {
        for member in &targets.members {
            let name = child_name(&share_name, image_id, member);
            let mut labels = share.labels().clone();
            labels.insert(SHARE_LABEL.into(), share_name.clone());
            labels.insert(IMAGE_LABEL.into(), image_id.clone());
            let child = ImageAccess {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: share.namespace(),
                    labels: Some(labels),
                    owner_references: Some(vec![owner.clone()]),
                    ..ObjectMeta::default()
                },
                spec: ImageAccessSpec {
                    image_id: image_id.clone(),
                    image_ref: None,
                    member_id: member.clone(),
                    member_ref: None,
                    status: share.spec.status,
                    region: share.spec.region.clone(),
                    cloud_credentials_ref: share.spec.cloud_credentials_ref.clone(),
                    deletion_policy: share.spec.deletion_policy,
                    resync_period: share.spec.resync_period.clone(),
                    on_create: None,
                    management_policy: share.spec.management_policy,
                },
                status: None,
            };
            children.insert(name, child);
        }
    }
    children
}

/// Whether the cached `child` already is what `desired` says: its spec, our labels and our
/// owner (labels and owners added by others are theirs: an apply leaves them, and comparing
/// them would write on every look).
fn up_to_date(child: &ImageAccess, desired: &ImageAccess) -> bool {
    let labels = child.labels();
    child.spec == desired.spec
        && desired
            .labels()
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
        && desired
            .owner_references()
            .iter()
            .all(|owner| child.owner_references().contains(owner))
}

/// What a child write sends, as a number (to tell a write of the same content from a new one).
fn fingerprint(child: &ImageAccess) -> u64 {
    crate::names::stable_hash(&[&serde_json::to_string(child).unwrap_or_default()])
}

/// How one wanted child stands, for the summary.
#[derive(Debug, Clone, PartialEq)]
pub enum ChildState {
    Ready,
    /// Needs a human: its Ready reason and message.
    Stalled {
        reason: String,
        message: String,
    },
    /// Not there yet, being worked on, or another object holds its name.
    InProgress,
}

/// How `child` stands, from conditions written for its current generation. One being deleted
/// is in progress, unless its deletion is blocked (Stalled): that needs a human too.
pub fn child_state(child: &ImageAccess) -> ChildState {
    let current = |type_: &str| {
        child
            .condition(type_)
            .filter(|c| c.status == "True" && c.observed_generation == child.metadata.generation)
    };
    if let Some(stalled) = current(STALLED) {
        ChildState::Stalled {
            reason: stalled.reason.clone(),
            message: stalled.message.clone(),
        }
    } else if !child.is_deleting() && current(READY).is_some() {
        ChildState::Ready
    } else {
        ChildState::InProgress
    }
}

/// The share's status from the state of each wanted child and of each child leaving the share
/// (its pair left the lists; its finalizer is removing the membership), by name.
pub fn summary(
    share: &ImageShare,
    targets: &Targets,
    wanted: &BTreeMap<String, ChildState>,
    leaving: &BTreeMap<String, ChildState>,
    previous: Option<&ImageShareStatus>,
    now: jiff::Timestamp,
) -> ImageShareStatus {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let generation = share.metadata.generation;
    let desired = wanted.len();
    let ready = wanted.values().filter(|s| **s == ChildState::Ready).count();
    let stalled: Vec<(&String, &String, &String)> = wanted
        .iter()
        .chain(leaving)
        .filter_map(|(name, state)| match state {
            ChildState::Stalled { reason, message } => Some((name, reason, message)),
            _ => None,
        })
        .collect();
    let stalled_wanted = wanted
        .values()
        .filter(|s| matches!(s, ChildState::Stalled { .. }))
        .count();
    let images: HashSet<&String> = targets.images.iter().collect();
    let members: HashSet<&String> = targets.members.iter().collect();
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = generation;
    // A refresh that finds what the last one found writes nothing (a steady share writes
    // nothing): the status keeps the evaluation that found it.
    status.selection = match (previous.and_then(|p| p.selection.as_ref()), &targets.selection) {
        (Some(before), Some(now)) if same_selection(before, now) => Some(before.clone()),
        (_, now) => now.clone(),
    };
    status.desired = count(desired);
    status.ready = count(ready);
    status.stalled = count(stalled.len());
    status.images = count(images.len());
    status.members = count(members.len());
    status.ready_of_desired = Some(format!("{ready}/{desired}"));
    let conditions = &mut status.conditions;
    let going = leaving.len();
    let mut progress = format!("{ready} of {desired} memberships are Ready");
    if going > 0 {
        progress.push_str(&format!(
            "; {going} leaving the share (their ImageAccess objects are being deleted)"
        ));
    }
    let in_progress = ready + stalled_wanted < desired || stalled.len() - stalled_wanted < going;
    if !stalled.is_empty() {
        let mut named: Vec<String> = stalled
            .iter()
            .take(NAMED_STALLED)
            .map(|(name, reason, message)| {
                let message: String = message.chars().take(200).collect();
                format!("{name} ({reason}: {message})")
            })
            .collect();
        if stalled.len() > NAMED_STALLED {
            named.push(format!("and {} more", stalled.len() - NAMED_STALLED));
        }
        let message = format!(
            "{} memberships need a human (list them: kubectl get ia -n {} -l {SHARE_LABEL}={} -o wide): {}",
            stalled.len(),
            share.namespace().unwrap_or_default(),
            share.name_any(),
            named.join("; "),
        );
        set_condition(
            conditions,
            READY,
            "False",
            "MembershipsStalled",
            &message,
            generation,
            now,
        );
        set_condition(
            conditions,
            STALLED,
            "True",
            "MembershipsStalled",
            &message,
            generation,
            now,
        );
        let (status, reason) = if in_progress {
            ("True", "MembershipsReconciling")
        } else {
            ("False", "MembershipsStalled")
        };
        set_condition(conditions, RECONCILING, status, reason, &progress, generation, now);
    } else if in_progress {
        let reason = "MembershipsReconciling";
        set_condition(conditions, READY, "False", reason, &progress, generation, now);
        set_condition(conditions, RECONCILING, "True", reason, &progress, generation, now);
        set_condition(conditions, STALLED, "False", reason, "", generation, now);
    } else {
        let reason = "MembershipsReady";
        set_condition(conditions, READY, "True", reason, &progress, generation, now);
        set_condition(conditions, RECONCILING, "False", reason, "", generation, now);
        set_condition(conditions, STALLED, "False", reason, "", generation, now);
    }
    status
}

/// Whether two evaluations found the same, whenever they ran.
fn same_selection(a: &Selection, b: &Selection) -> bool {
    a.observed_generation == b.observed_generation && a.images == b.images && a.members == b.members
}

/// Whether writing `next` would change anything but condition transition times.
fn differs(previous: Option<&ImageShareStatus>, next: &ImageShareStatus) -> bool {
    let Some(previous) = previous else { return true };
    let counts = |s: &ImageShareStatus| {
        (
            s.observed_generation,
            s.desired,
            s.ready,
            s.stalled,
            s.images,
            s.members,
            s.ready_of_desired.clone(),
            s.selection.clone(),
        )
    };
    counts(previous) != counts(next) || !same_conditions(&previous.conditions, &next.conditions)
}

impl Context {
    /// The share's children as the ImageAccess cache has them (the share's namespace only).
    fn children_of(&self, share: &ImageShare) -> Vec<Arc<ImageAccess>> {
        let namespace = share.namespace();
        let stores = self
            .access
            .stores
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        stores
            .iter()
            .filter(|(scope, _)| scope.is_none() || *scope == namespace)
            .flat_map(|(_, store)| store.state())
            .filter(|child| child.namespace() == namespace && controlled_by(child, share))
            .collect()
    }

    /// The share as the cache has it.
    pub(super) fn cached_share(&self, reference: &ObjectRef<ImageShare>) -> Option<Arc<ImageShare>> {
        locked(&self.shares.stores)
            .iter()
            .filter(|(scope, _)| scope.is_none() || *scope == reference.namespace)
            .find_map(|(_, store)| store.get(reference))
    }

    /// The ImageAccess `name` in `namespace` as the cache has it, whoever controls it.
    fn cached_access(&self, name: &str, namespace: &str) -> Option<Arc<ImageAccess>> {
        self.access.object(&ObjectRef::new(name).within(namespace))
    }
}

/// The reconcile of one ImageShare: the finalizer, children to the spec, then the summary; on
/// deletion, the children get the share's last deletion policy before it goes.
pub(super) async fn reconcile(share: Arc<ImageShare>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.objects_synced.load(Ordering::Relaxed) {
        // Without every child in the cache, "missing" and "not seen yet" look alike.
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let namespace = share.namespace().ok_or(Error::NotNamespaced)?;
    if share.meta().deletion_timestamp.is_some() {
        let left = measured(&ctx, CONTROLLER, leave_policy_to_children(&share, &namespace, &ctx)).await;
        if let Err(refused) = refused_for_good(left, &share, &namespace, &ctx).await? {
            return Ok(refused);
        }
        locked(&ctx.shares.failures).remove(&share.uid().unwrap_or_default());
        return Ok(Action::await_change());
    }
    let held = measured(&ctx, CONTROLLER, hold(&share, &namespace, &ctx)).await;
    if let Err(refused) = refused_for_good(held, &share, &namespace, &ctx).await? {
        return Ok(refused);
    }
    let selected = measured(&ctx, CONTROLLER, async { Ok(selection::targets(&share, &ctx).await) }).await?;
    let targets = match selected {
        Ok(targets) => targets,
        // No child changes on a selector that could not be evaluated: what it shares stays.
        Err(problem) => return blocked(&share, &namespace, &ctx, problem).await,
    };
    let result = measured(&ctx, CONTROLLER, converge(&share, &targets, &namespace, &ctx)).await;
    let blocked = result?;
    locked(&ctx.shares.failures).remove(&share.uid().unwrap_or_default());
    // Children wake the share. A write the API server refused, or a name another object holds,
    // sends no event when it is fixed: look again at the stalled re-check. Otherwise the resync
    // only guards against a lost event.
    let next = if blocked {
        ctx.settings.stalled_recheck
    } else {
        crate::api::resync_period(share.spec.resync_period.as_deref(), ctx.settings.resync_period)
    };
    // Glance and Keystone have no watch: the selectors are looked at again when due (jittered
    // later only: a look before it would find the last evaluation still fresh).
    Ok(Action::requeue(match targets.refresh_in {
        Some(due) if due < next => due.mul_f64(1.0 + random_fraction() * 0.1),
        _ => jittered(next),
    }))
}

/// A write of the share's own finalizer, or of its children's policy, that the API server
/// refused for good (RBAC, an admission policy) becomes the share's Stalled condition, looked at
/// again at the stalled re-check (`Err` with that action); a transient failure is an `Err` for
/// backoff; success is `Ok(Ok(()))`.
async fn refused_for_good(
    result: Result<(), Error>,
    share: &ImageShare,
    namespace: &str,
    ctx: &Context,
) -> Result<Result<(), Action>, Error> {
    let error = match result {
        Ok(()) => return Ok(Ok(())),
        Err(Error::Kube(error)) => error,
        Err(other) => return Err(other),
    };
    let shares: Api<ImageShare> = Api::namespaced(ctx.client.clone(), namespace);
    let what = format!(
        "ImageShare {namespace}/{}'s finalizer, or the deletion policy of its ImageAccess objects",
        share.name_any()
    );
    let problem = super::holding::patch_problem(&shares, share.meta(), error, &what).await;
    if !problem.is_stalled() {
        return Err(Error::Transient {
            reason: problem.reason(),
            message: problem.message().to_string(),
            retry_after: None,
        });
    }
    blocked(share, namespace, ctx, problem).await.map(Err)
}

/// The share stopped at `problem` before its children: its conditions say why (a Warning on
/// the way in); a Stalled problem is looked at again at the stalled re-check, anything else is
/// an `Err` for backoff.
async fn blocked(share: &ImageShare, namespace: &str, ctx: &Context, problem: Problem) -> Result<Action, Error> {
    let (reason, message) = (problem.reason(), problem.message().to_string());
    let stalled = problem.is_stalled();
    let mut next = share.status.clone().unwrap_or_default();
    let (generation, now) = (share.metadata.generation, ctx.clock.timestamp());
    if stalled {
        set_condition(&mut next.conditions, READY, "False", reason, &message, generation, now);
        set_condition(&mut next.conditions, STALLED, "True", reason, &message, generation, now);
        set_condition(&mut next.conditions, RECONCILING, "False", reason, "", generation, now);
    } else {
        // A passing failure (Glance down for a refresh) takes nothing away: what is shared stays
        // Ready; Reconciling says the share is retrying, and why. A Stalled of the share's own
        // from before is over (the children's is summed up again at the next whole look).
        let own = next
            .conditions
            .iter()
            .any(|c| c.type_ == STALLED && c.status == "True" && c.reason.starts_with("Selection"));
        if own {
            set_condition(&mut next.conditions, STALLED, "False", reason, "", generation, now);
        }
        set_condition(
            &mut next.conditions,
            RECONCILING,
            "True",
            reason,
            &message,
            generation,
            now,
        );
    }
    if differs(share.status.as_ref(), &next) {
        let api: Api<ImageShare> = Api::namespaced(ctx.client.clone(), namespace);
        patch_status(&api, share, &next).await?;
        publish(&ctx.events, share, Happened::warning(reason, message.clone())).await;
    }
    if stalled {
        return Ok(Action::requeue(jittered(ctx.settings.stalled_recheck)));
    }
    let retry_after = match problem {
        Problem::Transient { retry_after, .. } => retry_after,
        _ => None,
    };
    Err(Error::Transient {
        reason,
        message,
        retry_after,
    })
}

/// Puts the finalizer on the share: it goes only once every child carries the share's last
/// deletion policy ([`leave_policy_to_children`]), so that `kubectl apply` of `Orphan` followed
/// at once by `kubectl delete` never deletes a child that still says `Delete`.
async fn hold(share: &ImageShare, namespace: &str, ctx: &Context) -> Result<(), Error> {
    if share.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let mut finalizers = share.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    let api: Api<ImageShare> = Api::namespaced(ctx.client.clone(), namespace);
    let _: ImageShare = patch_metadata(&api, share.meta(), &finalizers, &[])
        .await
        .map_err(Error::Kube)?;
    Ok(())
}

/// A share being deleted: every child it controls gets the share's deletion policy (children
/// read from the API server, not the cache: one made just before the deletion counts too), then
/// the share's finalizer goes and the garbage collector deletes the children. In foreground
/// deletion the collector deletes them first; their cleanup reads the share's policy itself
/// ([`deletion_policy_of_child`]).
async fn leave_policy_to_children(share: &ImageShare, namespace: &str, ctx: &Context) -> Result<(), Error> {
    if !share.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let api: Api<ImageAccess> = Api::namespaced(ctx.client.clone(), namespace);
    let children = api
        .list(&ListParams::default().labels(&format!("{SHARE_LABEL}={}", share.name_any())))
        .await
        .map_err(Error::Kube)?;
    for child in children.items.iter().filter(|child| controlled_by(child, share)) {
        carry_policy(&api, share, child).await.map_err(Error::Kube)?;
    }
    let finalizers: Vec<String> = share.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
    let shares: Api<ImageShare> = Api::namespaced(ctx.client.clone(), namespace);
    match patch_metadata::<ImageShare>(&shares, share.meta(), &finalizers, &[]).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// Writes the share's deletion and management policies onto `child` when it says others: the
/// policies it will be deleted with.
async fn carry_policy(api: &Api<ImageAccess>, share: &ImageShare, child: &ImageAccess) -> Result<(), kube::Error> {
    // An Observe share's children let go with no Glance call, whatever their deletion policy.
    // A child that observes and holds nothing stays Observe: a share switched to Managed and
    // deleted at once must not remove what some of its children would have just adopted.
    let management_policy = if child.observes() && !child.has_finalizer() {
        child.spec.management_policy
    } else {
        share.spec.management_policy
    };
    if child.deletion_policy() == share.spec.deletion_policy.unwrap_or_default()
        && child.spec.management_policy.unwrap_or_default() == management_policy.unwrap_or_default()
    {
        return Ok(());
    }
    let patch = json!({ "spec": {
        "deletionPolicy": share.spec.deletion_policy,
        "managementPolicy": management_policy,
    } });
    let params = PatchParams {
        field_manager: Some(SHARE_FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    match api.patch(&child.name_any(), &params, &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        // Gone already: nothing to carry.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The deletion policy of the share that controls `child`, read from the API server (the
/// share's cache may not have the last edit yet); `None` when no live share controls it (then
/// the child's own, which the share left on it before it went). A cached `Orphan` is believed
/// without a read: leaving a membership in place destroys nothing.
pub(super) async fn deletion_policy_of_child(
    ctx: &Context,
    child: &ImageAccess,
) -> Result<Option<DeletionPolicy>, Problem> {
    let Some(owner) = controlling_share(child) else {
        return Ok(None);
    };
    let namespace = child.namespace().unwrap_or_default();
    let reference = ObjectRef::<ImageShare>::new(&owner.name).within(&namespace);
    let cached = ctx.cached_share(&reference);
    // A share that only observes now leaves every membership as it is, as Orphan does.
    let leaves = |share: &ImageShare| share.spec.deletion_policy == Some(DeletionPolicy::Orphan) || share.observes();
    if cached.is_some_and(|share| share.metadata.uid.as_deref() == Some(owner.uid.as_str()) && leaves(&share)) {
        return Ok(Some(DeletionPolicy::Orphan));
    }
    let api: Api<ImageShare> = Api::namespaced(ctx.client.clone(), &namespace);
    match api.get_opt(&owner.name).await {
        Ok(Some(share)) if share.metadata.uid.as_deref() == Some(owner.uid.as_str()) => Ok(Some(if leaves(&share) {
            DeletionPolicy::Orphan
        } else {
            share.spec.deletion_policy.unwrap_or_default()
        })),
        Ok(_) => Ok(None),
        Err(e) => Err(Problem::kubernetes_read(
            &e,
            &format!("ImageShare {namespace}/{}", owner.name),
        )),
    }
}

/// The children whose name an object the share does not control holds (`NameTaken`).
fn held_by_others<'a>(
    states: &'a BTreeMap<String, ChildState>,
    namespace: &'a str,
) -> impl Iterator<Item = ObjectRef<ImageAccess>> + 'a {
    states
        .iter()
        .filter(|(_, state)| matches!(state, ChildState::Stalled { reason, .. } if reason == NAME_TAKEN))
        .map(move |(name, _)| ObjectRef::new(name).within(namespace))
}

/// What one pass over a share found and did, step by step: the state of each wanted and each
/// leaving child, the events, a refusal a human must fix, and a transient failure to retry.
/// A transient failure of one child write does not end the pass: the others are written, and
/// the status and events too; the first failure is returned at the end for backoff.
#[derive(Default)]
struct Pass {
    states: BTreeMap<String, ChildState>,
    leaving: BTreeMap<String, ChildState>,
    events: Vec<Happened>,
    refused: Option<String>,
    blocked: bool,
    retry: Option<kube::Error>,
}

impl Pass {
    fn failed(&mut self, refusal: Refusal) {
        match refusal {
            Refusal::Stalled(message) => {
                self.blocked = true;
                self.refused = Some(message);
            }
            Refusal::Transient(e) => {
                self.retry.get_or_insert(e);
            }
            Refusal::Taken => self.blocked = true,
        }
    }
}

/// Brings the children to the spec and writes the summary: the children of pairs that left
/// go, the wanted ones are written, the share reports. `true` when something only a human can
/// fix blocks a child (a refused write, a taken name).
async fn converge(share: &ImageShare, targets: &Targets, namespace: &str, ctx: &Context) -> Result<bool, Error> {
    let desired = desired_children(share, targets);
    let api: Api<ImageAccess> = Api::namespaced(ctx.client.clone(), namespace);
    let mut pass = Pass::default();
    remove_leaving(share, &desired, targets, &api, ctx, &mut pass).await;
    write_wanted(share, &desired, &api, namespace, ctx, &mut pass).await;
    report_share(share, targets, namespace, ctx, &mut pass).await?;
    match pass.retry {
        Some(e) => Err(Error::Kube(e)),
        None => Ok(pass.blocked),
    }
}

/// Pairs that left the lists: their children go with the share's deletion policy of now (their
/// finalizers do the rest), and count as leaving until they are gone.
async fn remove_leaving(
    share: &ImageShare,
    desired: &BTreeMap<String, ImageAccess>,
    targets: &Targets,
    api: &Api<ImageAccess>,
    ctx: &Context,
    pass: &mut Pass,
) {
    let mut deleted = Vec::new();
    for child in ctx
        .children_of(share)
        .iter()
        .filter(|child| !desired.contains_key(&child.name_any()) && !targets.keeps(child))
    {
        pass.leaving.insert(child.name_any(), child_state(child));
        if child.is_deleting() {
            continue;
        }
        // A pair removed in the same apply that sets Orphan leaves its membership in place.
        if let Err(e) = carry_policy(api, share, child).await {
            pass.failed(refusal(e));
            continue;
        }
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: child.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&child.name_any(), &params).await {
            Ok(_) => deleted.push(child.name_any()),
            Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
            Err(e) => pass.failed(refusal(e)),
        }
    }
    if !deleted.is_empty() {
        pass.events.push(Happened::normal(
            "ImageAccessDeleted",
            format!(
                "deleted {} ImageAccess objects whose pair left the share: {}",
                deleted.len(),
                listed(deleted.into_iter())
            ),
        ));
    }
}

/// Wanted children: written where missing or changed, unless that write is on its way; names
/// held by objects the share does not control are waited for (the share is woken when they go).
async fn write_wanted(
    share: &ImageShare,
    desired: &BTreeMap<String, ImageAccess>,
    api: &Api<ImageAccess>,
    namespace: &str,
    ctx: &Context,
    pass: &mut Pass,
) {
    let mut to_write = Vec::new();
    let mut waiting_for = Vec::new();
    for (name, wanted) in desired {
        let cached = ctx.cached_access(name, namespace);
        let reference = ObjectRef::<ImageAccess>::new(name).within(namespace);
        match cached {
            Some(child) if controlled_by(&child, share) && child.is_deleting() => {
                // Deleted by hand: made again once its finalizer is done and its Delete event
                // wakes us.
                pass.states.insert(name.clone(), child_state(&child));
            }
            Some(child) if !controlled_by(&child, share) => {
                let earlier_share = controlling_share(&child).is_some_and(|owner| owner.name == share.name_any());
                if earlier_share || child.is_deleting() {
                    // A child of an earlier share of this name (the garbage collector removes
                    // it), or another object on its way out: its Delete event wakes us.
                    pass.states.insert(name.clone(), ChildState::InProgress);
                    waiting_for.push(reference.clone());
                } else {
                    pass.states.insert(name.clone(), name_taken(namespace, wanted));
                }
            }
            Some(child) if up_to_date(&child, wanted) => {
                locked(&ctx.shares.written).remove(&reference);
                pass.states.insert(name.clone(), child_state(&child));
            }
            _ => {
                pass.states.insert(name.clone(), ChildState::InProgress);
                let content = fingerprint(wanted);
                if locked(&ctx.shares.written).insert(reference.clone(), content) != Some(content) {
                    to_write.push((reference, wanted.clone(), cached.is_none()));
                }
            }
        }
    }
    // Registered before the writes (which take a while): an event of one of these holders
    // during them must find the entry to wake the share. The names to create too: one may be
    // held by an object the cache does not show yet (the create meets a 409), whose Delete can
    // come before the writes are done.
    let me = ObjectRef::from_obj(share);
    {
        let mut waiting = locked(&ctx.shares.taken);
        let creating = to_write
            .iter()
            .filter(|(_, _, create)| *create)
            .map(|(reference, _, _)| reference.clone());
        for name in held_by_others(&pass.states, namespace)
            .chain(waiting_for.iter().cloned())
            .chain(creating)
        {
            waiting.insert(name, me.clone());
        }
    }
    let concurrency = usize::from(ctx.settings.reconcile_concurrency());
    let results: Vec<(String, Result<Written, Refusal>)> = stream::iter(to_write)
        .map(|(reference, wanted, create)| write_tracked(ctx, api.clone(), share, reference, wanted, create))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let (mut created, mut set_back) = (0, Vec::new());
    for (name, result) in results {
        match result {
            Ok(Written::Created) => created += 1,
            Ok(Written::SetBack) => set_back.push(name),
            Err(Refusal::Taken) => {
                if let Some(wanted) = desired.get(&name) {
                    pass.states.insert(name, name_taken(namespace, wanted));
                }
                pass.failed(Refusal::Taken);
            }
            Err(other) => pass.failed(other),
        }
    }
    let taken: HashSet<ObjectRef<ImageAccess>> = held_by_others(&pass.states, namespace).chain(waiting_for).collect();
    pass.blocked |= !taken.is_empty();
    {
        let mut waiting = locked(&ctx.shares.taken);
        waiting.retain(|name, share| *share != me || taken.contains(name));
        for name in &taken {
            waiting.insert(name.clone(), me.clone());
        }
    }
    if created > 0 {
        pass.events.push(Happened::normal(
            "ImageAccessCreated",
            format!(
                "created {created} ImageAccess objects (kubectl get ia -n {namespace} -l {SHARE_LABEL}={})",
                share.name_any()
            ),
        ));
    }
    if !set_back.is_empty() {
        pass.events.push(Happened::normal(
            "ImageAccessSetBack",
            format!(
                "set {} ImageAccess objects back to what the share says: {}",
                set_back.len(),
                listed(set_back.into_iter())
            ),
        ));
    }
}

/// The share's status from what the pass found (written when it changed), and its events.
async fn report_share(
    share: &ImageShare,
    targets: &Targets,
    namespace: &str,
    ctx: &Context,
    pass: &mut Pass,
) -> Result<(), Error> {
    let previous = share.status.as_ref();
    let mut next = summary(
        share,
        targets,
        &pass.states,
        &pass.leaving,
        previous,
        ctx.clock.timestamp(),
    );
    if let Some(message) = &pass.refused {
        // The API server refused the children themselves (RBAC, admission): nothing below
        // can make progress until a human acts.
        let generation = share.metadata.generation;
        let now = ctx.clock.timestamp();
        let reason = "ImageAccessRefused";
        set_condition(&mut next.conditions, READY, "False", reason, message, generation, now);
        set_condition(&mut next.conditions, STALLED, "True", reason, message, generation, now);
    }
    let stalled_before = previous
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == STALLED))
        .is_some_and(|c| c.status == "True");
    let stalled_now = next.conditions.iter().find(|c| c.type_ == STALLED);
    if !stalled_before && let Some(stalled) = stalled_now.filter(|c| c.status == "True") {
        pass.events
            .push(Happened::warning("MembershipsStalled", stalled.message.clone()));
    }
    if differs(previous, &next) {
        let api: Api<ImageShare> = Api::namespaced(ctx.client.clone(), namespace);
        patch_status(&api, share, &next).await?;
    }
    for event in pass.events.drain(..) {
        publish(&ctx.events, share, event).await;
    }
    Ok(())
}

/// The reason of a child name held by an object the share does not control.
const NAME_TAKEN: &str = "NameTaken";

fn name_taken(namespace: &str, wanted: &ImageAccess) -> ChildState {
    ChildState::Stalled {
        reason: NAME_TAKEN.into(),
        message: format!(
            "ImageAccess {namespace}/{}, which this share does not control, has the name of its child for image {} and member {}; the share never takes over an object it did not make: delete that object (its membership goes with it unless its deletionPolicy is Orphan) and the share makes its own",
            wanted.name_any(),
            wanted.spec.image_id,
            wanted.spec.member_id
        ),
    }
}

/// [`write_child`], forgetting the write on failure so that the next look tries again.
async fn write_tracked(
    ctx: &Context,
    api: Api<ImageAccess>,
    share: &ImageShare,
    reference: ObjectRef<ImageAccess>,
    wanted: ImageAccess,
    create: bool,
) -> (String, Result<Written, Refusal>) {
    let result = write_child(&api, share, &wanted, create).await;
    if result.is_err() {
        locked(&ctx.shares.written).remove(&reference);
    }
    (reference.name, result)
}

/// Up to 5 names, then a count.
fn listed(names: impl Iterator<Item = String>) -> String {
    let names: Vec<String> = names.collect();
    let mut text = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        text.push_str(&format!(" and {} more", names.len() - 5));
    }
    text
}

/// A child write done.
enum Written {
    Created,
    SetBack,
}

/// A child write that failed: worth a retry, refused until a human acts, or blocked by an
/// object of the child's name that the share does not control.
enum Refusal {
    Transient(kube::Error),
    Stalled(String),
    Taken,
}

/// Writes one child. A child the cache does not have is created (a create, not an apply: an
/// apply would take over an object of that name the cache does not show, someone's own). One
/// that differs is set back by a forced server-side apply, and a spec field the share does not
/// set but someone added by hand (a region, say) is removed with a merge patch, since an apply
/// leaves other managers' fields alone.
async fn write_child(
    api: &Api<ImageAccess>,
    share: &ImageShare,
    wanted: &ImageAccess,
    create: bool,
) -> Result<Written, Refusal> {
    let name = wanted.name_any();
    if create {
        let params = PostParams {
            field_manager: Some(SHARE_FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        match api.create(&params, wanted).await {
            Ok(_) => return Ok(Written::Created),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // There already: ours (the cache was behind) is set back below; another's is not
                // touched.
                match api.get_opt(&name).await.map_err(refusal)? {
                    Some(existing) if controlled_by(&existing, share) => {}
                    Some(_) => return Err(Refusal::Taken),
                    // Gone between the two requests: the next look creates it.
                    None => return Err(Refusal::Transient(kube::Error::Api(status))),
                }
            }
            Err(e) => return Err(refusal(e)),
        }
    }
    let mut body = serde_json::to_value(wanted).map_err(|e| Refusal::Stalled(e.to_string()))?;
    body["apiVersion"] = json!(ImageAccess::api_version(&()));
    body["kind"] = json!(ImageAccess::kind(&()));
    if let Some(object) = body.as_object_mut() {
        object.remove("status");
    }
    let params = PatchParams::apply(SHARE_FIELD_MANAGER).force();
    let mut written = api.patch(&name, &params, &Patch::Apply(&body)).await.map_err(refusal)?;
    if written.spec != wanted.spec {
        let extra = serde_json::to_value(&written.spec).map_err(|e| Refusal::Stalled(e.to_string()))?;
        let wanted_spec = serde_json::to_value(&wanted.spec).map_err(|e| Refusal::Stalled(e.to_string()))?;
        let mut removal = serde_json::Map::new();
        if let (Some(extra), Some(wanted_spec)) = (extra.as_object(), wanted_spec.as_object()) {
            for key in extra.keys().filter(|key| !wanted_spec.contains_key(*key)) {
                removal.insert(key.clone(), serde_json::Value::Null);
            }
        }
        if !removal.is_empty() {
            let patch = json!({ "spec": removal });
            written = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(refusal)?;
        }
    }
    if !up_to_date(&written, wanted) {
        // Written, and stored otherwise: something on the API server's side changes it back.
        return Err(Refusal::Stalled(format!(
            "the API server stores ImageAccess {}/{name} otherwise than the share writes it (a mutating admission webhook or policy changes it?): exempt imageaccesses from that webhook or policy",
            written.namespace().unwrap_or_default()
        )));
    }
    Ok(Written::SetBack)
}

fn refusal(e: kube::Error) -> Refusal {
    match &e {
        kube::Error::Api(status) if matches!(status.code, 401 | 403) => Refusal::Stalled(format!(
            "the API server refused to let the operator write or delete an ImageAccess of this share ({}): grant its service account create, patch and delete on imageaccesses in this namespace (the Helm chart does)",
            status.message
        )),
        kube::Error::Api(status) if matches!(status.code, 400 | 422) => Refusal::Stalled(format!(
            "the API server refused an ImageAccess of this share ({}): change the share so that its pairs pass (validation or an admission policy of this cluster refuses what the message names)",
            status.message
        )),
        _ => Refusal::Transient(e),
    }
}

/// A failed reconcile: exponential backoff per share.
fn error_policy(share: Arc<ImageShare>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .reconcile_errors_total
        .get_or_create(&Metrics::controller_labels(CONTROLLER))
        .inc();
    let failures = {
        let mut failures = locked(&ctx.shares.failures);
        let count = failures.entry(share.uid().unwrap_or_default()).or_default();
        *count = count.saturating_add(1);
        *count
    };
    let delay = backoff_delay(&ctx.settings, failures, random_fraction());
    tracing::warn!(controller = CONTROLLER, namespace = %share.namespace().unwrap_or_default(), name = %share.name_any(), failures, retry_in_ms = delay.as_millis() as u64, error = %error, "reconcile failed; retrying");
    Action::requeue(delay)
}

/// The share controllers, one per watched scope, and a future that tells when their caches
/// have their first list.
pub(super) fn run_shares(
    ctx: &Arc<Context>,
    scope: &WatchScope,
    stop_signal: &impl Fn() -> StopSignal,
) -> (
    Vec<futures::future::BoxFuture<'static, ()>>,
    futures::future::BoxFuture<'static, bool>,
) {
    use futures::FutureExt;
    let mut config = watcher::Config::default().any_semantic();
    if let Some(selector) = &scope.label_selector {
        config = config.labels(selector);
    }
    ctx.metrics
        .max_concurrent_reconciles
        .get_or_create(&Metrics::controller_labels(CONTROLLER))
        .set(i64::from(ctx.settings.reconcile_concurrency()));
    let mut stores = Vec::new();
    let mut loops = Vec::new();
    for (namespace, api) in scope.apis::<ImageShare>(&ctx.client) {
        let (reader, writer) = reflector::store();
        ctx.shares.watch_scope(namespace.clone(), reader.clone());
        stores.push(reader.clone());
        let requeue = ctx.shares.requeue.register(namespace.clone());
        let tap = ctx.clone();
        let events = watcher(api, config.clone())
            .default_backoff()
            .modify(slim::<ImageShare>);
        let events = reflector::reflector(writer, events).map_ok(move |event| {
            tap.shares.observe_share(&event);
            event
        });
        // Every change wakes a share, the echo of its own status write included: a look that
        // ran before that echo reached the cache compared against the older status and may have
        // skipped a write; the look after the echo catches it (and writes nothing otherwise).
        let trigger = events.touched_objects();
        let controller = Controller::for_stream(trigger, reader)
            .reconcile_on(requeue)
            .with_config(kube::runtime::controller::Config::default().concurrency(ctx.settings.reconcile_concurrency()))
            .graceful_shutdown_on(stop_signal());
        let ctx = ctx.clone();
        loops.push(
            async move {
                controller
                    .run(reconcile, error_policy, ctx)
                    .for_each(|result| async move {
                        if let Err(e) = result {
                            tracing::debug!(controller = CONTROLLER, error = %e, "reconcile loop");
                        }
                    })
                    .await;
            }
            .boxed(),
        );
    }
    (loops, async move { wait_until_ready(&stores).await }.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CloudCredentialsRef, ImageId, ImageShareSpec, MemberId, MemberStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    const IMAGES: [&str; 3] = [
        "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10",
        "7d1b2f3c-3c2f-4a69-8b64-5a1d2e3f4b21",
        "8e2c3a4d-4d3a-4b7a-9c75-6b2e3f4a5c32",
    ];

    fn share(name: &str, images: &[&str], members: &[&str]) -> ImageShare {
        let mut share = ImageShare::new(
            name,
            ImageShareSpec {
                image_ids: images.iter().map(|i| ImageId((*i).into())).collect(),
                member_ids: members.iter().map(|m| MemberId((*m).into())).collect(),
                image_selector: None,
                member_selector: None,
                member_refs: Vec::new(),
                refresh_interval: None,
                status: None,
                region: None,
                cloud_credentials_ref: CloudCredentialsRef {
                    secret_name: "openstack-credentials".into(),
                    cloud_name: "owner".into(),
                },
                deletion_policy: None,
                resync_period: None,
                management_policy: None,
            },
        );
        share.metadata.namespace = Some("team".into());
        share.metadata.uid = Some(format!("uid-{name}"));
        share.metadata.generation = Some(1);
        share
    }

    fn is_dns_label(name: &str) -> bool {
        name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    }

    #[test]
    fn one_child_per_pair_with_stable_readable_names_labels_and_owner() {
        let golden = share("golden", &IMAGES, &["p1", "p2"]);
        let children = desired_children(&golden, &Targets::listed(&golden));
        assert_eq!(children.len(), 6);
        let again = desired_children(&golden, &Targets::listed(&golden));
        assert!(children.keys().eq(again.keys()), "stable");
        assert!(
            children.values().zip(again.values()).all(|(a, b)| up_to_date(a, b)),
            "stable"
        );
        let name = child_name("golden", IMAGES[0], "p1");
        assert_eq!(name, "golden-6c0a1e2b-".to_string() + &name[16..]);
        assert_eq!(name.len(), "golden-6c0a1e2b-".len() + 12);
        // Fixed forever: a change of hash would replace every child of every share.
        assert_eq!(child_name("golden", IMAGES[0], "p1"), "golden-6c0a1e2b-acba2b896812");
        let child = &children[&name];
        assert_eq!(child.spec.member_id, "p1");
        assert_eq!(child.labels()[SHARE_LABEL], "golden");
        assert_eq!(child.labels()[IMAGE_LABEL], IMAGES[0]);
        let owner = &child.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("ImageShare", "uid-golden", Some(true))
        );
        assert!(children.keys().all(|name| is_dns_label(name)), "{children:?}");
    }

    #[test]
    fn names_never_collide_across_shares_or_pairs_and_stay_valid_for_long_names() {
        let members: Vec<String> = (0..1000).map(|i| format!("project-{i:04}")).collect();
        let members: Vec<&str> = members.iter().map(String::as_str).collect();
        let mut seen = HashSet::new();
        let long = "a".repeat(63);
        let dotted = format!("{}.b-c", "x".repeat(38));
        for name in ["golden", "golden-1", "golden1", long.as_str(), dotted.as_str()] {
            let listed = share(name, &IMAGES, &members);
            for child in desired_children(&listed, &Targets::listed(&listed)).keys() {
                assert!(is_dns_label(child), "{child}");
                assert!(seen.insert(child.clone()), "collision: {child}");
            }
        }
        assert_eq!(seen.len(), 5 * 3 * 1000);
    }

    #[test]
    fn the_share_labels_and_spec_pass_to_every_child() {
        let mut golden = share("golden", &IMAGES[..1], &["p1"]);
        golden.metadata.labels = Some([("shard".to_string(), "a".to_string())].into());
        golden.spec.status = Some(MemberStatus::Accepted);
        golden.spec.region = Some("RegionTwo".into());
        golden.spec.deletion_policy = Some(crate::api::DeletionPolicy::Orphan);
        golden.spec.resync_period = Some("2m".into());
        golden.spec.image_ids[0] = ImageId(IMAGES[0].to_uppercase());
        let child = desired_children(&golden, &Targets::listed(&golden))
            .into_values()
            .next()
            .expect("child");
        assert_eq!(child.labels()["shard"], "a", "a sharded operator sees the children");
        assert_eq!(child.spec.image_id, IMAGES[0], "Glance's form");
        assert_eq!(child.spec.status, Some(MemberStatus::Accepted));
        assert_eq!(child.spec.region.as_deref(), Some("RegionTwo"));
        assert_eq!(child.spec.deletion_policy, Some(crate::api::DeletionPolicy::Orphan));
        assert_eq!(
            child.spec.resync_period.as_deref(),
            Some("2m"),
            "issue 23: the share's resync"
        );
    }

    fn condition<'a>(status: &'a ImageShareStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).expect("condition")
    }

    fn states(list: &[ChildState]) -> BTreeMap<String, ChildState> {
        list.iter()
            .enumerate()
            .map(|(i, s)| (format!("child-{i}"), s.clone()))
            .collect()
    }

    #[test]
    fn the_summary_counts_and_says_what_is_left() {
        let golden = share("golden", &IMAGES, &["p1", "p2"]);
        let now = jiff::Timestamp::from_second(1_800_000_000).expect("time");
        let ready = vec![ChildState::Ready; 6];
        let all = summary(
            &golden,
            &Targets::listed(&golden),
            &states(&ready),
            &BTreeMap::new(),
            None,
            now,
        );
        assert_eq!(
            (all.desired, all.ready, all.stalled, all.images, all.members),
            (6, 6, 0, 3, 2)
        );
        assert_eq!(all.ready_of_desired.as_deref(), Some("6/6"));
        assert_eq!(condition(&all, READY).status, "True");
        assert_eq!(condition(&all, RECONCILING).status, "False");
        assert_eq!(all.observed_generation, Some(1));

        let mut some = ready.clone();
        some[0] = ChildState::InProgress;
        let partial = summary(
            &golden,
            &Targets::listed(&golden),
            &states(&some),
            &BTreeMap::new(),
            Some(&all),
            now,
        );
        assert_eq!(condition(&partial, READY).status, "False");
        assert_eq!(condition(&partial, RECONCILING).status, "True");
        assert_eq!(condition(&partial, STALLED).status, "False");
        assert!(condition(&partial, READY).message.contains("5 of 6"));
        assert!(differs(Some(&all), &partial));
        let later = jiff::Timestamp::from_second(1_800_000_100).expect("time");
        assert!(
            !differs(
                Some(&partial),
                &summary(
                    &golden,
                    &Targets::listed(&golden),
                    &states(&some),
                    &BTreeMap::new(),
                    Some(&partial),
                    later
                )
            ),
            "steady: no write"
        );
    }

    #[test]
    fn stalled_children_are_named_up_to_five_with_how_to_list_them_all() {
        let golden = share("golden", &IMAGES, &["p1", "p2", "p3"]);
        let now = jiff::Timestamp::from_second(1_800_000_000).expect("time");
        let stalled = |i: usize| ChildState::Stalled {
            reason: "MembershipManagedElsewhere".into(),
            message: format!("ImageAccess team/hand-{i} already manages the membership"),
        };
        let mut list: Vec<ChildState> = (0..7).map(stalled).collect();
        list.push(ChildState::Ready);
        list.push(ChildState::Ready);
        let status = summary(
            &golden,
            &Targets::listed(&golden),
            &states(&list),
            &BTreeMap::new(),
            None,
            now,
        );
        assert_eq!((status.desired, status.ready, status.stalled), (9, 2, 7));
        let message = &condition(&status, STALLED).message;
        assert_eq!(condition(&status, STALLED).status, "True");
        assert_eq!(condition(&status, READY).reason, "MembershipsStalled");
        assert_eq!(
            condition(&status, RECONCILING).status,
            "False",
            "nothing else in flight"
        );
        assert!(
            message.contains("child-0 (MembershipManagedElsewhere: ImageAccess team/hand-0"),
            "{message}"
        );
        assert!(message.contains("child-4"), "{message}");
        assert!(!message.contains("child-5 ("), "{message}");
        assert!(message.contains("and 2 more"), "{message}");
        assert!(
            message.contains("kubectl get ia -n team -l glance.viettelidc.com.vn/image-share=golden"),
            "{message}"
        );
    }

    #[test]
    fn a_child_counts_only_with_conditions_for_its_current_generation() {
        let mut child = desired_children(
            &share("golden", &IMAGES[..1], &["p1"]),
            &Targets::listed(&share("golden", &IMAGES[..1], &["p1"])),
        )
        .into_values()
        .next()
        .expect("child");
        child.metadata.generation = Some(2);
        let ready = |generation: i64| Condition {
            type_: READY.into(),
            status: "True".into(),
            reason: "MemberReady".into(),
            message: String::new(),
            observed_generation: Some(generation),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        };
        child.status = Some(crate::api::ImageAccessStatus {
            conditions: vec![ready(1)],
            ..Default::default()
        });
        assert_eq!(child_state(&child), ChildState::InProgress, "stale");
        child.status = Some(crate::api::ImageAccessStatus {
            conditions: vec![ready(2)],
            ..Default::default()
        });
        assert_eq!(child_state(&child), ChildState::Ready);
        child.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(child_state(&child), ChildState::InProgress, "going");
        let stalled = Condition {
            type_: STALLED.into(),
            reason: "SecretNotFound".into(),
            ..ready(2)
        };
        child.status = Some(crate::api::ImageAccessStatus {
            conditions: vec![stalled],
            ..Default::default()
        });
        assert!(
            matches!(child_state(&child), ChildState::Stalled { .. }),
            "a blocked deletion shows"
        );
    }
}
