//! Which objects of one kind name which memberships and which Secrets, kept up to date from the
//! watch (after the reflector, so every event is seen, deletions included).
//!
//! The controller asks it "who else names this membership?" (one manager per membership) and
//! "who uses this Secret?" (requeue them when it changes; hold it while they need it). Each
//! event returns what it changed for others: the objects to wake (a membership was released)
//! and the Secrets whose use changed. It holds references, not objects: the reflector's store
//! has those.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::Kind;
use crate::api::normalize_image_id;

/// `(imageId, memberId)`: memberships in all regions, as the index keys them.
pub type PairKey = (String, String);
/// `(namespace, name)` of a Secret.
pub type SecretKey = (String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    uid: String,
    /// The image the spec names.
    image: String,
    pairs: Vec<PairKey>,
    secret: SecretKey,
    /// Whether the operator holds the object's Secret for it: it is not deleted (and manages),
    /// or it is deleted but still holds the finalizer whose cleanup reads it.
    needs_secret: bool,
    /// A digest of what other objects' decisions depend on (claim, applied, deletion,
    /// finalizer, conditions): when it changes, the others naming the same pairs are woken.
    stake: u64,
}

/// What one watch event changed for others.
#[derive(Debug, PartialEq, Eq)]
pub struct Changes<K: Kind> {
    /// Other objects naming a membership whose holder changed: they may take over, or must
    /// wait.
    pub wake: HashSet<ObjectRef<K>>,
    /// The memberships whose holder changed (for the objects of the other kind naming them).
    pub pairs: HashSet<PairKey>,
    /// Secrets whose use changed: hold or release them.
    pub secrets: HashSet<SecretKey>,
    /// Uids of objects that are gone (their per-object state can be forgotten).
    pub gone: Vec<String>,
}

impl<K: Kind> Default for Changes<K> {
    fn default() -> Self {
        Changes {
            wake: HashSet::new(),
            pairs: HashSet::new(),
            secrets: HashSet::new(),
            gone: Vec::new(),
        }
    }
}

impl<K: Kind> Changes<K> {
    fn merge(&mut self, other: Changes<K>) {
        self.wake.extend(other.wake);
        self.pairs.extend(other.pairs);
        self.secrets.extend(other.secrets);
        self.gone.extend(other.gone);
    }
}

/// An object as the index refers to it: its name and namespace only (a reference compares by
/// those), shared by every map it is in; at 10,000 objects, copies of full references were
/// a tenth of the operator's memory.
type Key<K> = Arc<ObjectRef<K>>;

fn key_of<K: Kind>(object: &K) -> Key<K> {
    let name = object.meta().name.as_deref().unwrap_or_default();
    let mut key = ObjectRef::new(name);
    key.namespace = object.meta().namespace.clone();
    Arc::new(key)
}

struct Inner<K: Kind> {
    entries: HashMap<Key<K>, Entry>,
    by_pair: HashMap<PairKey, HashSet<Key<K>>>,
    /// Objects by the image their spec names (normalized).
    by_image: HashMap<String, HashSet<Key<K>>>,
    by_secret: HashMap<SecretKey, HashSet<Key<K>>>,
    /// Objects seen since a relist of the scope (a namespace, or all) started.
    relisting: HashMap<Option<String>, HashSet<Key<K>>>,
}

impl<K: Kind> Default for Inner<K> {
    fn default() -> Self {
        Inner {
            entries: HashMap::new(),
            by_pair: HashMap::new(),
            by_image: HashMap::new(),
            by_secret: HashMap::new(),
            relisting: HashMap::new(),
        }
    }
}

fn refs<'a, K: Kind>(keys: impl IntoIterator<Item = &'a Key<K>>) -> Vec<ObjectRef<K>> {
    keys.into_iter().map(|key| ObjectRef::clone(key)).collect()
}

pub struct Index<K: Kind> {
    inner: Mutex<Inner<K>>,
}

impl<K: Kind> Default for Index<K> {
    fn default() -> Self {
        Index {
            inner: Mutex::default(),
        }
    }
}

fn entry_of<K: Kind>(object: &K) -> Entry {
    let named = object.named();
    let mut pairs: Vec<PairKey> = named
        .iter()
        .map(|named| (named.image_id.clone(), named.member_id.clone()))
        .collect();
    for held in [object.claim(), object.applied().cloned()].into_iter().flatten() {
        let pair = (normalize_image_id(&held.image_id), held.member_id);
        if !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    object.claim().hash(&mut hasher);
    object.applied().hash(&mut hasher);
    object.is_deleting().hash(&mut hasher);
    object.has_finalizer().hash(&mut hasher);
    named.hash(&mut hasher);
    object.meta().generation.hash(&mut hasher);
    if let Some(status) = object.membership_status() {
        status.observed_generation.hash(&mut hasher);
        for condition in &status.conditions {
            (&condition.type_, &condition.status, &condition.reason).hash(&mut hasher);
        }
    }
    Entry {
        uid: object.uid().unwrap_or_default(),
        image: object.image_id(),
        pairs,
        secret: (
            object.namespace().unwrap_or_default(),
            object.credentials_ref().secret_name.clone(),
        ),
        // An object that only observes needs it to read, and not to be deleted.
        needs_secret: object.has_finalizer() || (!object.is_deleting() && !object.observes()),
        stake: hasher.finish(),
    }
}

impl<K: Kind> Inner<K> {
    fn remove(&mut self, key: &Key<K>) -> Option<Entry> {
        let old = self.entries.remove(key)?;
        for pair in &old.pairs {
            if let Some(set) = self.by_pair.get_mut(pair) {
                set.remove(key);
                if set.is_empty() {
                    self.by_pair.remove(pair);
                }
            }
        }
        if let Some(set) = self.by_secret.get_mut(&old.secret) {
            set.remove(key);
            if set.is_empty() {
                self.by_secret.remove(&old.secret);
            }
        }
        if let Some(set) = self.by_image.get_mut(&old.image) {
            set.remove(key);
            if set.is_empty() {
                self.by_image.remove(&old.image);
            }
        }
        Some(old)
    }

    fn insert(&mut self, key: Key<K>, entry: Entry) {
        for pair in &entry.pairs {
            self.by_pair.entry(pair.clone()).or_default().insert(key.clone());
        }
        self.by_secret
            .entry(entry.secret.clone())
            .or_default()
            .insert(key.clone());
        self.by_image
            .entry(entry.image.clone())
            .or_default()
            .insert(key.clone());
        self.entries.insert(key, entry);
    }

    /// The others naming any of `pairs`.
    fn others(&self, key: &Key<K>, pairs: &[PairKey]) -> HashSet<ObjectRef<K>> {
        pairs
            .iter()
            .filter_map(|pair| self.by_pair.get(pair))
            .flatten()
            .filter(|other| *other != key)
            .map(|other| ObjectRef::clone(other))
            .collect()
    }

    fn changed(&self, key: &Key<K>, old: Option<&Entry>, new: Option<&Entry>) -> Changes<K> {
        let mut changes = Changes::default();
        if old.map(|e| e.stake) != new.map(|e| e.stake) {
            let mut pairs: Vec<PairKey> = old.map(|e| e.pairs.clone()).unwrap_or_default();
            pairs.extend(new.map(|e| e.pairs.clone()).unwrap_or_default());
            changes.wake = self.others(key, &pairs);
            changes.pairs = pairs.into_iter().collect();
        }
        let use_of = |e: Option<&Entry>| e.map(|e| (e.secret.clone(), e.needs_secret));
        if use_of(old) != use_of(new) {
            changes.secrets.extend(old.map(|e| e.secret.clone()));
            changes.secrets.extend(new.map(|e| e.secret.clone()));
        }
        if let Some(old) = old
            && new.is_none_or(|n| n.uid != old.uid)
        {
            changes.gone.push(old.uid.clone());
        }
        changes
    }
}

impl<K: Kind> Index<K> {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner<K>> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An object was added or changed.
    pub fn apply(&self, object: &K) -> Changes<K> {
        let key = key_of(object);
        let new = entry_of(object);
        let mut inner = self.inner();
        for seen in inner.relisting.values_mut() {
            seen.insert(key.clone());
        }
        let old = inner.remove(&key);
        let changes = inner.changed(&key, old.as_ref(), Some(&new));
        inner.insert(key, new);
        changes
    }

    /// An object is gone.
    pub fn delete(&self, object: &K) -> Changes<K> {
        let key = key_of(object);
        let mut inner = self.inner();
        let old = inner.remove(&key);
        inner.changed(&key, old.as_ref(), None)
    }

    /// A relist of `scope` (a namespace, or all when `None`) starts: objects it does not list
    /// again are gone.
    pub fn relist_started(&self, scope: Option<&str>) {
        self.inner().relisting.insert(scope.map(str::to_string), HashSet::new());
    }

    /// The relist of `scope` is complete.
    pub fn relist_done(&self, scope: Option<&str>) -> Changes<K> {
        let mut inner = self.inner();
        let Some(seen) = inner.relisting.remove(&scope.map(str::to_string)) else {
            return Changes::default();
        };
        let stale: Vec<Key<K>> = inner
            .entries
            .keys()
            .filter(|key| scope.is_none_or(|ns| key.namespace.as_deref() == Some(ns)) && !seen.contains(*key))
            .cloned()
            .collect();
        let mut changes = Changes::default();
        for key in stale {
            let old = inner.remove(&key);
            let change = inner.changed(&key, old.as_ref(), None);
            changes.merge(change);
        }
        changes
    }

    /// Objects that name, claim or hold a membership of `image_id` with `member_id`.
    pub fn naming(&self, image_id: &str, member_id: &str) -> Vec<ObjectRef<K>> {
        let key = (normalize_image_id(image_id), member_id.to_string());
        self.inner().by_pair.get(&key).map(refs).unwrap_or_default()
    }

    /// Objects whose spec names the image.
    pub fn naming_image(&self, image_id: &str) -> Vec<ObjectRef<K>> {
        self.inner()
            .by_image
            .get(&normalize_image_id(image_id))
            .map(refs)
            .unwrap_or_default()
    }

    /// Objects whose `cloudCredentialsRef` names the Secret.
    pub fn using_secret(&self, namespace: &str, name: &str) -> Vec<ObjectRef<K>> {
        self.inner()
            .by_secret
            .get(&(namespace.to_string(), name.to_string()))
            .map(refs)
            .unwrap_or_default()
    }

    /// Whether an object still needs the Secret (so the operator holds it).
    pub fn secret_in_use(&self, namespace: &str, name: &str) -> bool {
        let inner = self.inner();
        inner
            .by_secret
            .get(&(namespace.to_string(), name.to_string()))
            .is_some_and(|set| {
                set.iter()
                    .any(|key| inner.entries.get(key).is_some_and(|e| e.needs_secret))
            })
    }

    /// Whether an object with this uid is known.
    pub fn has_uid(&self, uid: &str) -> bool {
        self.inner().entries.values().any(|e| e.uid == uid)
    }

    /// The uids of all known objects.
    pub fn uids(&self) -> HashSet<String> {
        self.inner().entries.values().map(|e| e.uid.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.inner().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{FINALIZER, ImageAccess};

    const IMAGE: &str = "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";

    fn object(name: &str, member: &str) -> ImageAccess {
        ImageAccess::test(name, IMAGE, member, "owner")
    }

    #[test]
    fn objects_are_found_by_membership_and_by_secret() {
        let index = Index::<ImageAccess>::default();
        index.apply(&object("a", "m1"));
        index.apply(&object("b", "m1"));
        index.apply(&object("c", "m2"));
        assert_eq!(index.naming(IMAGE, "m1").len(), 2);
        assert_eq!(index.naming(&IMAGE.to_uppercase(), "m2").len(), 1, "normalized");
        assert_eq!(index.using_secret("default", "openstack-credentials").len(), 3);
        assert!(index.secret_in_use("default", "openstack-credentials"));
        assert!(!index.secret_in_use("default", "other"));
    }

    #[test]
    fn a_changed_holder_wakes_the_others_naming_the_same_membership() {
        let index = Index::<ImageAccess>::default();
        let waiting = object("waiting", "m1");
        index.apply(&waiting);
        let unrelated = object("unrelated", "m2");
        index.apply(&unrelated);
        let holder = object("holder", "m1");
        let changes = index.apply(&holder);
        assert_eq!(changes.wake, HashSet::from([ObjectRef::from(&waiting)]));
        // The same object again, unchanged: nobody to wake.
        assert!(index.apply(&holder).wake.is_empty());
        let changes = index.delete(&holder);
        assert_eq!(changes.wake, HashSet::from([ObjectRef::from(&waiting)]));
        assert_eq!(changes.gone, vec!["uid-holder".to_string()]);
    }

    /// The stake: whether a holder can act ([`super::super::lifecycle::able`]) is read from its
    /// conditions, so a holder that becomes Stalled (or recovers) wakes the objects waiting for
    /// the same membership; a status write that changes only what others do not read wakes
    /// nobody.
    #[test]
    fn a_holder_that_stalls_or_recovers_wakes_the_others_and_nothing_else_does() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let index = Index::<ImageAccess>::default();
        let waiting = object("waiting", "m1");
        index.apply(&waiting);
        let mut holder = object("holder", "m1");
        index.apply(&holder);
        let condition = |status: &str, reason: &str| Condition {
            type_: "Stalled".into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
        };
        let status = holder.status.get_or_insert_default();
        status.conditions = vec![condition("True", "CredentialsSecretNotFound")];
        assert_eq!(
            index.apply(&holder).wake,
            HashSet::from([ObjectRef::from(&waiting)]),
            "stalled"
        );
        holder.status.get_or_insert_default().created_at = Some("2026-12-06T00:00:00Z".into());
        assert!(index.apply(&holder).wake.is_empty(), "nothing others read changed");
        holder.status.get_or_insert_default().conditions = vec![condition("False", "MemberReady")];
        assert_eq!(
            index.apply(&holder).wake,
            HashSet::from([ObjectRef::from(&waiting)]),
            "recovered"
        );
    }

    #[test]
    fn a_deleted_object_without_our_finalizer_no_longer_needs_its_secret() {
        let index = Index::<ImageAccess>::default();
        let finalized = object("a", "m1").finalized();
        index.apply(&finalized);
        let deleting = finalized.clone().deleting();
        assert!(index.apply(&deleting).secrets.is_empty(), "still needs it for cleanup");
        assert!(index.secret_in_use("default", "openstack-credentials"));
        let mut released = deleting;
        released.metadata.finalizers = Some(vec![]);
        let changes = index.apply(&released);
        assert_eq!(
            changes.secrets,
            HashSet::from([("default".to_string(), "openstack-credentials".to_string())])
        );
        assert!(!index.secret_in_use("default", "openstack-credentials"));
        let _ = FINALIZER;
    }

    #[test]
    fn a_relist_forgets_objects_deleted_while_the_watch_was_down() {
        let index = Index::<ImageAccess>::default();
        index.apply(&object("kept", "m1"));
        index.apply(&object("gone", "m1"));
        index.relist_started(Some("default"));
        index.apply(&object("kept", "m1"));
        let changes = index.relist_done(Some("default"));
        assert_eq!(changes.gone, vec!["uid-gone".to_string()]);
        assert_eq!(index.naming(IMAGE, "m1").len(), 1);
        assert!(index.has_uid("uid-kept") && !index.has_uid("uid-gone"));
    }
}
