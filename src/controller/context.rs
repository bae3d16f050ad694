//! What every reconcile shares ([`Context`]), and the watch taps: each watch event, once the
//! cache has it, keeps the kind's [`super::index`] and wakes the objects it concerns (of both
//! kinds), and asks for the Secrets whose use changed to be held or released.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use super::index::{self, Index};
use super::{Kind, Settings, lists, share};
use crate::api::{ImageAccess, ImageAccessAccept, Membership};
use crate::credentials::Secrets;
use crate::metrics::Metrics;
use crate::openstack::OpenStack;
use crate::runtime::tracker::{Clock, Tracker};
use crate::runtime::{Events, Requeue};

/// What the shared controller keeps per kind.
pub struct KindState<K: Kind> {
    /// Which objects name which memberships and Secrets.
    pub index: Index<K>,
    /// The watch caches, per watched scope.
    pub(super) stores: RwLock<Vec<(Option<String>, Store<K>)>>,
    pub(super) requeue: Requeue<K>,
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
    pub(super) fn object(&self, reference: &ObjectRef<K>) -> Option<Arc<K>> {
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
    pub(super) member_lists: lists::MemberLists,
    pub(super) requeue_secret: Requeue<PartialObjectMeta<Secret>>,
    /// Bounds the reconciles at work over all kinds and namespaces (one kube-runtime controller
    /// runs per kind and watched namespace, each with this same limit).
    pub(super) permits: tokio::sync::Semaphore,
    /// Set once every watch of every kind has listed: before that, no Secret is released.
    pub(super) objects_synced: AtomicBool,
    /// Failures in a row of each Secret's hold (backoff), forgotten on success.
    pub(super) secret_failures: Mutex<HashMap<ObjectRef<PartialObjectMeta<Secret>>, u32>>,
    /// Claims made in a look whose Glance call was refused, by object uid, while their release
    /// has not been written: the object made nothing under them. Forgotten once released, once
    /// a later look acts under the claim, and with the object.
    pub(super) refused_claims: Mutex<HashMap<String, Membership>>,
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
            secret_failures: Mutex::default(),
            refused_claims: Mutex::default(),
        }
    }

    pub(super) fn refused_claims(&self) -> MutexGuard<'_, HashMap<String, Membership>> {
        self.refused_claims
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
    pub(super) fn object<K: Kind>(&self, reference: &ObjectRef<K>) -> Option<Arc<K>> {
        K::state(self).object(reference)
    }

    /// The objects of kind `K` that name, claim or hold `membership`'s image and member (any
    /// region, any namespace this instance watches), but `me`.
    pub(super) fn naming<K: Kind>(&self, membership: &Membership, me: Option<&ObjectRef<K>>) -> Vec<Arc<K>> {
        K::state(self)
            .index
            .naming(&membership.image_id, &membership.member_id)
            .into_iter()
            .filter(|reference| Some(reference) != me)
            .filter_map(|reference| self.object(&reference))
            // An object that only observes takes no part in who manages or sets a membership.
            .filter(|other| !other.observes())
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
            self.refused_claims().remove(uid);
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
        // The backoff of a Secret's hold is forgotten with the Secret (and at a relist, which
        // may have missed deletions: a count started again costs one quick retry).
        let mut failures = self
            .secret_failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match event {
            watcher::Event::Delete(secret) => {
                failures.remove(&ObjectRef::from_obj(secret));
            }
            watcher::Event::InitDone => failures.clear(),
            _ => {}
        }
    }

    /// After a write of a Secret's finalizers: the Secrets someone else changed meanwhile
    /// (their watch events were held back until the write's answer told them from its echo).
    pub(super) fn secrets_changed_meanwhile(&self) {
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
        self.shares.secret_changed(namespace, name);
        self.requeue_secret.send(ObjectRef::new(name).within(namespace));
    }

    /// Reconcile `reference` now, even if it looks unchanged.
    pub(super) fn wake<K: Kind>(&self, reference: ObjectRef<K>) {
        if let Some(object) = self.object(&reference) {
            self.tracker.invalidate(&object.uid().unwrap_or_default());
        }
        K::state(self).requeue.send(reference);
    }

    /// Whether an object of any kind still needs the Secret.
    pub(super) fn secret_in_use(&self, namespace: &str, name: &str) -> bool {
        self.access.index.secret_in_use(namespace, name) || self.accept.index.secret_in_use(namespace, name)
    }

    /// Drops the tracker's entries of objects no kind knows any more.
    pub(super) fn prune_tracker(&self) {
        let live = self.access.index.len() + self.accept.index.len();
        self.tracker.prune(live, |uid| {
            self.access.index.has_uid(uid) || self.accept.index.has_uid(uid)
        });
        // An object gone while its reconcile was writing may leave an entry behind its Delete.
        let mut refused = self.refused_claims();
        if !refused.is_empty() {
            refused.retain(|uid, _| self.access.index.has_uid(uid) || self.accept.index.has_uid(uid));
        }
    }
}
