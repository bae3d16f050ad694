//! The credentials Secrets that objects name: read (and cached by resourceVersion, so an
//! unchanged Secret is not read again), held with a finalizer while an object needs them, and
//! watched (metadata only) so that the objects using one are woken when it changes.
//!
//! The hold is what makes a namespace deletion clean: the namespace controller deletes the
//! Secret and the objects at once; the finalizer keeps the (terminating, still readable)
//! Secret until the objects' own cleanups have removed their memberships, and is released
//! when the last object that needs it is gone (K-ORC's credentials model).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use secrecy::{ExposeSecret, SecretString};

use crate::openstack::{Cloud, ConfigError, SecretFiles};

/// `(namespace, name)` of a Secret.
pub type SecretKey = (String, String);

/// The finalizer an operator instance puts on the Secrets its objects need. Instances that
/// shard one namespace by label selector each need their own, so that one releasing its hold
/// does not take away another's: the selector's digest names it.
pub fn hold_finalizer(label_selector: Option<&str>) -> String {
    match label_selector.filter(|s| !s.is_empty()) {
        None => "glance.viettelidc.com.vn/credentials-in-use".to_string(),
        Some(selector) => {
            let digest = ring::digest::digest(&ring::digest::SHA256, selector.as_bytes());
            let short: String = digest.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
            format!("glance.viettelidc.com.vn/credentials-in-use-{short}")
        }
    }
}

/// What an object needs from its Secret.
pub struct SecretData {
    /// The `clouds.yaml` key, as text.
    pub clouds_yaml: SecretString,
    /// The Secret's other keys: the files a cloud entry names (`cacert`, `cert`, `key`).
    files: SecretFiles,
    /// Cloud entries parsed so far, by name: this data lives as long as the Secret does not
    /// change, and parsing the YAML at every look cost a tenth of the operator's CPU at 10,000
    /// objects.
    parsed: Mutex<HashMap<String, Result<Cloud, ConfigError>>>,
}

impl SecretData {
    pub fn new(clouds_yaml: SecretString, files: BTreeMap<String, Vec<u8>>) -> Self {
        SecretData {
            clouds_yaml,
            files: SecretFiles(files),
            parsed: Mutex::default(),
        }
    }

    /// The cloud entry `name` of the clouds.yaml, parsed once per Secret version.
    pub fn cloud(&self, name: &str) -> Result<Cloud, ConfigError> {
        let mut parsed = self.parsed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        parsed
            .entry(name.to_string())
            .or_insert_with(|| Cloud::from_clouds_yaml(self.clouds_yaml.expose_secret(), name, &self.files))
            .clone()
    }
}

#[derive(Debug)]
pub enum ReadError {
    NotFound,
    /// The Secret exists but the key is missing or not text; says which.
    BadKey(&'static str),
    Kubernetes(kube::Error),
}

struct Cached {
    resource_version: String,
    data: Arc<SecretData>,
    finalizers: Vec<String>,
    deleting: bool,
}

/// The Secrets' metadata as the watch sees it, per watched scope (a namespace, or all).
type MetadataStores = Vec<(Option<String>, Store<PartialObjectMeta<Secret>>)>;

pub struct Secrets {
    client: kube::Client,
    finalizer: String,
    cache: Mutex<HashMap<SecretKey, Cached>>,
    stores: RwLock<MetadataStores>,
    /// resourceVersions our own finalizer writes produced: their echoes are not changes.
    own_versions: Mutex<VecDeque<(SecretKey, String)>>,
    /// Scopes whose first list is complete: before it, every Secret looks new.
    synced_scopes: Mutex<HashSet<Option<String>>>,
    /// Holds are written one at a time (see [`Secrets::hold`]).
    holding: tokio::sync::Mutex<()>,
    /// Secrets whose finalizers we are writing now, and the versions the watch showed
    /// meanwhile: the echo of our write can arrive before its answer, so what those versions
    /// are (ours, or someone else's change) is decided when the answer is in.
    in_flight: Mutex<HashMap<SecretKey, InFlight>>,
    /// The version of each Secret the watch last showed: the same version shown again (a
    /// relist) is no change. Kept apart from the cache, which an API read may fill with a
    /// version the watch has not shown yet (its event must still wake the Secret's users).
    last_shown: Mutex<HashMap<SecretKey, String>>,
    /// Secrets whose users are to be woken outside a watch event of their own: changed by
    /// someone else while we wrote their finalizers, or deleted while the watch was away. Woken
    /// by [`Secrets::take_changed_meanwhile`]'s caller.
    changed_meanwhile: Mutex<Vec<SecretKey>>,
}

#[derive(Default)]
struct InFlight {
    writers: usize,
    seen: Vec<String>,
}

/// A finalizer write in flight. Ended by [`Writing::finish`], or when dropped (a reconcile
/// cancelled mid-write), so that the Secret's watch events are never held back for good.
struct Writing<'a> {
    secrets: &'a Secrets,
    key: Option<SecretKey>,
}

impl<'a> Writing<'a> {
    fn start(secrets: &'a Secrets, key: SecretKey) -> Self {
        secrets.in_flight().entry(key.clone()).or_default().writers += 1;
        Writing {
            secrets,
            key: Some(key),
        }
    }

    /// Whether someone else changed the Secret while it was written.
    fn finish(mut self, written: Option<String>) -> bool {
        self.key
            .take()
            .is_some_and(|key| self.secrets.write_done(&key, written))
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // The answer is unknown: what was seen counts as a change (at worst a spare wake).
            self.secrets.write_done(&key, None);
        }
    }
}

/// Own writes remembered; an echo older than this many writes is taken for a change (harmless:
/// the dependents look once more).
const OWN_VERSIONS_KEPT: usize = 256;

impl Secrets {
    pub fn new(client: kube::Client, finalizer: String) -> Self {
        Secrets {
            client,
            finalizer,
            cache: Mutex::default(),
            stores: RwLock::default(),
            own_versions: Mutex::default(),
            synced_scopes: Mutex::default(),
            holding: tokio::sync::Mutex::new(()),
            in_flight: Mutex::default(),
            last_shown: Mutex::default(),
            changed_meanwhile: Mutex::default(),
        }
    }

    /// The Secrets changed (or deleted) without a watch event of their own that said so: the
    /// caller wakes their users, as that event would have.
    pub fn take_changed_meanwhile(&self) -> Vec<SecretKey> {
        std::mem::take(
            &mut *self
                .changed_meanwhile
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    fn last_shown(&self) -> std::sync::MutexGuard<'_, HashMap<SecretKey, String>> {
        self.last_shown.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<SecretKey, InFlight>> {
        self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn finalizer(&self) -> &str {
        &self.finalizer
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<SecretKey, Cached>> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers the watch's store of one scope, so reads can tell an unchanged Secret.
    pub fn watch_scope(&self, scope: Option<String>, store: Store<PartialObjectMeta<Secret>>) {
        self.stores
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((scope, store));
    }

    /// The Secret's resourceVersion as the watch last saw it; `None` when no watch covers it
    /// or has seen it.
    fn watched_version(&self, namespace: &str, name: &str) -> Option<String> {
        let stores = self.stores.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let reference = ObjectRef::new(name).within(namespace);
        stores
            .iter()
            .filter(|(scope, _)| scope.as_deref().is_none_or(|s| s == namespace))
            .find_map(|(_, store)| store.get(&reference))
            .and_then(|meta| meta.metadata.resource_version.clone())
    }

    /// After a (re)list of `scope`: the Secrets deleted while the watch was away send no Delete
    /// event. What is kept of them is dropped, and their users are woken (through
    /// [`Secrets::take_changed_meanwhile`]) as a Delete would have.
    fn forget_unlisted(&self, scope: Option<&str>) {
        let listed: HashSet<SecretKey> = {
            let stores = self.stores.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            let Some((_, store)) = stores.iter().find(|(s, _)| s.as_deref() == scope) else {
                return;
            };
            store
                .state()
                .iter()
                .map(|meta| (meta.namespace().unwrap_or_default(), meta.name_any()))
                .collect()
        };
        let in_scope = |key: &SecretKey| scope.is_none_or(|namespace| key.0 == namespace);
        let mut gone: Vec<SecretKey> = Vec::new();
        self.last_shown().retain(|key, _| {
            let keep = !in_scope(key) || listed.contains(key);
            if !keep {
                gone.push(key.clone());
            }
            keep
        });
        self.cache().retain(|key, _| !in_scope(key) || listed.contains(key));
        self.changed_meanwhile
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend(gone);
    }

    /// The Secret's data: from the cache when the watch says it has not changed, else read.
    pub async fn read(&self, namespace: &str, name: &str) -> Result<Arc<SecretData>, ReadError> {
        let key = (namespace.to_string(), name.to_string());
        if let Some(version) = self.watched_version(namespace, name)
            && let Some(cached) = self.cache().get(&key)
            && cached.resource_version == version
        {
            return Ok(cached.data.clone());
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = match api.get_opt(name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                self.cache().remove(&key);
                return Err(ReadError::NotFound);
            }
            Err(e) => return Err(ReadError::Kubernetes(e)),
        };
        self.remember(key, secret)
    }

    /// Caches what a read (or our own patch) returned.
    fn remember(&self, key: SecretKey, secret: Secret) -> Result<Arc<SecretData>, ReadError> {
        let finalizers = secret.finalizers().to_vec();
        let deleting = secret.metadata.deletion_timestamp.is_some();
        let resource_version = secret.resource_version().unwrap_or_default();
        let mut data = secret.data.unwrap_or_default();
        let Some(clouds_yaml) = data.remove("clouds.yaml") else {
            self.cache().remove(&key);
            return Err(ReadError::BadKey("has no key clouds.yaml"));
        };
        let Ok(clouds_yaml) = String::from_utf8(clouds_yaml.0) else {
            self.cache().remove(&key);
            return Err(ReadError::BadKey("has a clouds.yaml that is not UTF-8 text"));
        };
        let data = Arc::new(SecretData::new(
            SecretString::from(clouds_yaml),
            data.into_iter().map(|(key, value)| (key, value.0)).collect(),
        ));
        self.cache().insert(
            key,
            Cached {
                resource_version,
                data: data.clone(),
                finalizers,
                deleting,
            },
        );
        Ok(data)
    }

    /// Whether the cached Secret needs our finalizer added: `Some(finalizers seen)` if so.
    fn unheld(&self, key: &SecretKey) -> Option<Vec<String>> {
        let cache = self.cache();
        let cached = cache.get(key)?;
        // A Secret being deleted cannot take a new finalizer: it stays readable as long as
        // someone else's holds it.
        (!cached.deleting && !cached.finalizers.contains(&self.finalizer)).then(|| cached.finalizers.clone())
    }

    /// Makes sure the Secret (read just before) carries this instance's finalizer, so that it
    /// outlives the objects that need it. Objects reconciled together share one write: holds
    /// are taken one at a time, and each looks again at what the one before wrote.
    pub async fn hold(&self, namespace: &str, name: &str) -> Result<(), kube::Error> {
        let key = (namespace.to_string(), name.to_string());
        if self.unheld(&key).is_none() {
            return Ok(());
        }
        let _one_at_a_time = self.holding.lock().await;
        for attempt in 0..2 {
            let Some(seen) = self.unheld(&key) else { return Ok(()) };
            let mut finalizers = seen.clone();
            finalizers.push(self.finalizer.clone());
            let meta = kube::api::ObjectMeta {
                name: Some(name.to_string()),
                finalizers: Some(seen),
                ..Default::default()
            };
            match self.patch_finalizers(namespace, &meta, &finalizers).await {
                Ok(written) => {
                    tracing::info!(secret = %format!("{namespace}/{name}"), "holding the credentials Secret while objects need it");
                    // The patch changed metadata only: the data read before is still the Secret's.
                    if let Some(written) = written {
                        let _ = self.remember(key, written);
                    }
                    return Ok(());
                }
                // Someone else changed its finalizers since we read it: read it again, once.
                Err(kube::Error::Api(status)) if attempt == 0 && matches!(status.code, 409 | 422) => {
                    let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
                    if let Some(secret) = api.get_opt(name).await? {
                        let _ = self.remember(key.clone(), secret);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Holds a Secret an object needs that lost (or never got) its hold, as the watch shows it:
    /// a hold released in the same moment a new object came to need it is put back.
    pub async fn hold_seen(&self, secret: &PartialObjectMeta<Secret>) -> Result<(), kube::Error> {
        if secret.metadata.deletion_timestamp.is_some() || secret.finalizers().contains(&self.finalizer) {
            return Ok(());
        }
        let _one_at_a_time = self.holding.lock().await;
        let namespace = secret.namespace().unwrap_or_default();
        let mut finalizers = secret.finalizers().to_vec();
        finalizers.push(self.finalizer.clone());
        let written = self.patch_finalizers(&namespace, &secret.metadata, &finalizers).await?;
        tracing::info!(secret = %format!("{namespace}/{}", secret.name_any()), "holding the credentials Secret while objects need it");
        if let Some(written) = written {
            let _ = self.remember((namespace, secret.name_any()), written);
        }
        Ok(())
    }

    /// Drops what is cached of a Secret no object uses.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.cache().remove(&(namespace.to_string(), name.to_string()));
    }

    /// Removes this instance's finalizer from a Secret no object needs any more.
    pub async fn release(&self, secret: &PartialObjectMeta<Secret>) -> Result<(), kube::Error> {
        let (namespace, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
        let finalizers: Vec<String> = secret
            .finalizers()
            .iter()
            .filter(|f| **f != self.finalizer)
            .cloned()
            .collect();
        self.patch_finalizers(&namespace, &secret.metadata, &finalizers).await?;
        self.cache().remove(&(namespace.clone(), name.clone()));
        tracing::info!(secret = %format!("{namespace}/{name}"), "released the credentials Secret: no object needs it");
        Ok(())
    }

    /// Sets the finalizers, if they are still as `seen` has them (else the API refuses:
    /// someone else changed them, and the caller reads again).
    async fn patch_finalizers(
        &self,
        namespace: &str,
        seen: &kube::api::ObjectMeta,
        finalizers: &[String],
    ) -> Result<Option<Secret>, kube::Error> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let key = (namespace.to_string(), seen.name.clone().unwrap_or_default());
        let writing = Writing::start(self, key);
        let result: Result<Secret, kube::Error> = crate::runtime::patch_metadata(&api, seen, finalizers, &[]).await;
        let changed = writing.finish(result.as_ref().ok().and_then(|written| written.resource_version()));
        // What we wrote is the Secret as it is, unless someone else changed it meanwhile.
        result.map(|written| (!changed).then_some(written))
    }

    /// The end of a finalizer write of `key` (`written`: the version it made, if it was made).
    /// The last writer decides what the watch showed meanwhile: the echoes of our writes
    /// (forgotten here, as `observe` would have), or someone else's change (true: its users
    /// are to be woken).
    fn write_done(&self, key: &SecretKey, written: Option<String>) -> bool {
        let mut flights = self.in_flight();
        let mut own = self
            .own_versions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(version) = written {
            own.push_back((key.clone(), version));
            while own.len() > OWN_VERSIONS_KEPT {
                own.pop_front();
            }
        }
        let last = flights.get_mut(key).is_some_and(|flight| {
            flight.writers = flight.writers.saturating_sub(1);
            flight.writers == 0
        });
        let mut changed = false;
        if last {
            for version in flights.remove(key).map(|flight| flight.seen).unwrap_or_default() {
                match own.iter().position(|(k, v)| k == key && *v == version) {
                    Some(position) => {
                        own.remove(position);
                    }
                    None => changed = true,
                }
            }
        }
        drop(own);
        drop(flights);
        if changed {
            self.cache().remove(key);
            self.changed_meanwhile
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(key.clone());
        }
        changed
    }

    /// Looks at one watch event and returns the Secret if it changed in a way its users must
    /// see: created, edited or deleted, but not our own finalizer write and not the first list
    /// (every object is looked at then anyway). What is cached of a changed Secret is dropped,
    /// so the users read it anew.
    pub fn observe(&self, scope: Option<&str>, event: &watcher::Event<PartialObjectMeta<Secret>>) -> Option<SecretKey> {
        let (meta, listed) = match event {
            watcher::Event::Apply(meta) => (meta, false),
            watcher::Event::InitApply(meta) => (meta, true),
            watcher::Event::Delete(meta) => {
                let key = (meta.namespace().unwrap_or_default(), meta.name_any());
                self.cache().remove(&key);
                self.last_shown().remove(&key);
                return Some(key);
            }
            watcher::Event::Init => return None,
            watcher::Event::InitDone => {
                self.synced_scopes
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .insert(scope.map(str::to_string));
                self.forget_unlisted(scope);
                return None;
            }
        };
        let key = (meta.namespace().unwrap_or_default(), meta.name_any());
        let version = meta.resource_version().unwrap_or_default();
        let first_list = listed
            && !self
                .synced_scopes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .contains(&scope.map(str::to_string));
        let shown_before =
            self.last_shown().insert(key.clone(), version.to_string()).as_deref() == Some(version.as_str());
        {
            // Both at once, in the writer's order: a write that ends between the two looks
            // would otherwise be neither ours nor in flight.
            let mut flights = self.in_flight();
            let mut own = self
                .own_versions
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(position) = own.iter().position(|(k, v)| *k == key && *v == version) {
                own.remove(position);
                return None;
            }
            if let Some(flight) = flights.get_mut(&key) {
                // Decided when the write's answer is in (a first list or a relist of the same
                // version changes nothing).
                if !first_list && !shown_before {
                    flight.seen.push(version.to_string());
                }
                return None;
            }
        }
        if shown_before {
            return None;
        }
        // A read may have cached this very version already; any other is stale.
        let mut cache = self.cache();
        if cache.get(&key).is_some_and(|cached| cached.resource_version != version) {
            cache.remove(&key);
        }
        drop(cache);
        (!first_list).then_some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fake_kube::{Change, FakeKube, secret_metadata};

    /// The Secret watch events the fake has queued.
    fn secret_events(kube: &FakeKube) -> Vec<watcher::Event<PartialObjectMeta<Secret>>> {
        kube.take_changes()
            .into_iter()
            .filter_map(|change| match change {
                Change::Secret(event) => Some(event),
                _ => None,
            })
            .collect()
    }

    /// A fake API server with Secret ns/creds, and the Secrets of an operator whose watch has
    /// listed it.
    fn one_listed_secret() -> (FakeKube, Secrets, SecretKey) {
        let (kube, client) = FakeKube::start();
        kube.put_secret("ns", "creds", &[("clouds.yaml", "clouds: {}")]);
        let secrets = Secrets::new(client, hold_finalizer(None));
        secrets.observe(None, &watcher::Event::Init);
        for event in secret_events(&kube) {
            let watcher::Event::Apply(meta) = event else { continue };
            secrets.observe(None, &watcher::Event::InitApply(meta));
        }
        secrets.observe(None, &watcher::Event::InitDone);
        (kube, secrets, ("ns".to_string(), "creds".to_string()))
    }

    /// The watch events of a write the fake has made but not answered yet.
    async fn echo_of_the_write(kube: &FakeKube) -> Vec<watcher::Event<PartialObjectMeta<Secret>>> {
        for _ in 0..10_000 {
            tokio::task::yield_now().await;
            let events = secret_events(kube);
            if !events.is_empty() {
                return events;
            }
        }
        panic!("the write made no change")
    }

    /// A change a read saw before the watch showed it still wakes the Secret's users when the
    /// watch shows it; the same version listed again does not.
    #[tokio::test]
    async fn a_change_read_before_the_watch_shows_it_still_wakes() {
        let (kube, secrets, key) = one_listed_secret();

        kube.put_secret("ns", "creds", &[("clouds.yaml", "clouds: {fixed: {}}")]);
        secrets
            .read("ns", "creds")
            .await
            .expect("read: the new version is cached");
        let events = secret_events(&kube);
        let Some(watcher::Event::Apply(meta)) = events.last().cloned() else {
            panic!("an event: {events:?}")
        };
        assert_eq!(secrets.observe(None, &watcher::Event::Apply(meta.clone())), Some(key));
        assert_eq!(
            secrets.observe(None, &watcher::Event::InitApply(meta)),
            None,
            "a relist"
        );
    }

    /// A Secret deleted while the watch was away sends no Delete event: the relist's end
    /// forgets it and wakes its users.
    #[tokio::test]
    async fn a_secret_deleted_during_a_watch_gap_is_forgotten_at_the_relist() {
        let (_kube, client) = FakeKube::start();
        let secrets = Secrets::new(client, hold_finalizer(None));
        let (store, mut writer) = kube::runtime::reflector::store::<PartialObjectMeta<Secret>>();
        secrets.watch_scope(None, store);
        let meta = |name: &str| {
            let mut meta = PartialObjectMeta::<Secret>::default();
            meta.metadata.name = Some(name.into());
            meta.metadata.namespace = Some("ns".into());
            meta.metadata.resource_version = Some("1".into());
            meta
        };
        let mut relist = |names: &[&str]| {
            let mut events = vec![watcher::Event::Init];
            events.extend(names.iter().map(|n| watcher::Event::InitApply(meta(n))));
            events.push(watcher::Event::InitDone);
            for event in events {
                writer.apply_watcher_event(&event);
                assert_eq!(secrets.observe(None, &event), None);
            }
        };
        relist(&["kept", "gone"]);
        assert!(
            secrets.take_changed_meanwhile().is_empty(),
            "the first list changes nothing"
        );
        relist(&["kept"]);
        assert_eq!(
            secrets.take_changed_meanwhile(),
            vec![("ns".to_string(), "gone".to_string())]
        );
        // Made again later with the same version number: a change, not a relist.
        assert!(secrets.observe(None, &watcher::Event::Apply(meta("gone"))).is_some());
    }

    /// The echo of our finalizer write can arrive before its answer: it wakes nobody. A change
    /// by someone else in that moment still does, once the answer is in.
    #[tokio::test]
    async fn the_echo_of_a_finalizer_write_is_told_from_a_change_made_meanwhile() {
        let (kube, secrets, key) = one_listed_secret();
        let secrets = Arc::new(secrets);

        for someone_else_edits in [false, true] {
            let seen = secret_metadata(&kube.secret("ns", "creds").expect("secret"));
            let resume = kube.pause_next_answer();
            let writer = secrets.clone();
            let write = tokio::spawn(async move {
                if seen.finalizers().is_empty() {
                    writer.hold_seen(&seen).await
                } else {
                    writer.release(&seen).await
                }
            });
            // The write is made and its echo delivered; its answer has not come back yet.
            let mut events = echo_of_the_write(&kube).await;
            if someone_else_edits {
                kube.put_secret("ns", "creds", &[("clouds.yaml", "clouds: {edited: {}}")]);
                events.extend(secret_events(&kube));
            }
            for event in &events {
                assert_eq!(secrets.observe(None, event), None, "held back until the answer");
            }
            resume.notify_one();
            write.await.expect("joined").expect("written");
            let expected = if someone_else_edits { vec![key.clone()] } else { vec![] };
            assert_eq!(
                secrets.take_changed_meanwhile(),
                expected,
                "edited: {someone_else_edits}"
            );
        }

        // A write dropped before its answer (a cancelled reconcile) holds nothing back after.
        let seen = secret_metadata(&kube.secret("ns", "creds").expect("secret"));
        let _resume = kube.pause_next_answer();
        let writer = secrets.clone();
        let write = tokio::spawn(async move { writer.hold_seen(&seen).await });
        let echo = echo_of_the_write(&kube).await;
        for event in &echo {
            assert_eq!(secrets.observe(None, event), None);
        }
        write.abort();
        let _ = write.await;
        assert_eq!(
            secrets.take_changed_meanwhile(),
            vec![key.clone()],
            "unknown: taken for a change"
        );
        kube.put_secret("ns", "creds", &[("clouds.yaml", "clouds: {again: {}}")]);
        let events = secret_events(&kube);
        assert!(!events.is_empty());
        assert_eq!(secrets.observe(None, &events[events.len() - 1]), Some(key));
    }

    #[test]
    fn each_label_selector_gets_its_own_hold() {
        let plain = hold_finalizer(None);
        assert_eq!(plain, "glance.viettelidc.com.vn/credentials-in-use");
        assert_eq!(hold_finalizer(Some("")), plain);
        let a = hold_finalizer(Some("shard=a"));
        let b = hold_finalizer(Some("shard=b"));
        assert_ne!(a, b);
        assert_eq!(a, hold_finalizer(Some("shard=a")), "stable");
        let name = a.split('/').nth(1).expect("qualified");
        assert!(name.len() <= 63, "a finalizer name part is at most 63 characters");
    }
}
