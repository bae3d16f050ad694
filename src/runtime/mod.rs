//! What every controller of this operator shares, whatever its kind: per-object scheduling
//! state ([`tracker`]), the watch scope, requeue channels into running controllers, events, and
//! metadata writes guarded by resourceVersion.

pub mod tracker;

use std::collections::HashMap;
use std::sync::RwLock;

use futures::channel::mpsc;
use kube::Api;
use kube::Resource;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use serde::de::DeserializeOwned;
use serde_json::json;

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "image-access-operator";

/// What the controllers watch.
#[derive(Clone, Debug, Default)]
pub struct WatchScope {
    /// Only these namespaces; empty means all.
    pub namespaces: Vec<String>,
    /// Only objects with these labels (to shard objects across operator instances).
    pub label_selector: Option<String>,
    /// Leave ImageAccessAccept objects alone (their CRD is not installed).
    pub skip_accepts: bool,
    /// Leave ImageShare objects alone (their CRD is not installed).
    pub skip_shares: bool,
}

impl WatchScope {
    /// One API per watched namespace, or one over all namespaces; with the namespace it covers.
    pub fn apis<K>(&self, client: &kube::Client) -> Vec<(Option<String>, Api<K>)>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        if self.namespaces.is_empty() {
            vec![(None, Api::all(client.clone()))]
        } else {
            self.namespaces
                .iter()
                .map(|ns| (Some(ns.clone()), Api::namespaced(client.clone(), ns)))
                .collect()
        }
    }
}

/// Senders into the running controllers of one kind (one per watched namespace, or one for
/// all), so that something outside an object can ask for it to be reconciled.
pub struct Requeue<K: Resource> {
    senders: RwLock<HashMap<Option<String>, mpsc::UnboundedSender<ObjectRef<K>>>>,
}

impl<K: Resource> Default for Requeue<K> {
    fn default() -> Self {
        Requeue {
            senders: RwLock::default(),
        }
    }
}

impl<K: Resource<DynamicType = ()>> Requeue<K> {
    /// The stream a controller of `scope` reconciles on.
    pub fn register(&self, scope: Option<String>) -> mpsc::UnboundedReceiver<ObjectRef<K>> {
        let (sender, receiver) = mpsc::unbounded();
        self.senders
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(scope, sender);
        receiver
    }

    /// Asks the controller watching `object`'s namespace to reconcile it (nothing when no
    /// controller runs, as in unit tests).
    pub fn send(&self, object: ObjectRef<K>) {
        let senders = self.senders.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let sender = senders.get(&None).or_else(|| senders.get(&object.namespace.clone()));
        if let Some(sender) = sender {
            let _ = sender.unbounded_send(object);
        }
    }
}

/// An event to publish about an object, once its status is written.
pub struct Happened {
    pub reason: &'static str,
    pub note: String,
    pub warning: bool,
}

impl Happened {
    pub fn normal(reason: &'static str, note: String) -> Self {
        Happened {
            reason,
            note,
            warning: false,
        }
    }

    pub fn warning(reason: &'static str, note: String) -> Self {
        Happened {
            reason,
            note,
            warning: true,
        }
    }
}

/// Publishes events, each on its own. kube's `Recorder` keeps every event it published in the
/// last six minutes to count repeats into a series: when thousands of objects are created at
/// once that is most of the operator's memory (17.7 of 45.7 MB at 5,000 objects, measured with
/// heaptrack) and a scan of the whole cache per event. Our events are published on transitions
/// only, so repeats within six minutes are rare and a recorder without a past loses little.
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    reporter: Reporter,
}

impl Events {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Events { client, reporter }
    }

    fn recorder(&self) -> Recorder {
        Recorder::new(self.client.clone(), self.reporter.clone())
    }
}

/// Publishes an event about `object`. Losing one is logged, never fatal: events inform.
pub async fn publish<K: Resource<DynamicType = ()>>(events: &Events, object: &K, happened: Happened) {
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
    if let Err(e) = events.recorder().publish(&event, &object.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish event");
    }
}

/// Sets `object`'s finalizers and annotations (`None` removes one) with a JSON patch that first
/// tests what the caller saw: the finalizers, the value of every annotation it sets (or keeps,
/// when it passes the value it saw), and that an object not being deleted still is not. A
/// concurrent change to any of these makes it fail (422) and the caller retries with what the
/// watch brings; status writes and spec edits in between do not get in the way. Returns the
/// object as written.
pub async fn patch_metadata<K>(
    api: &Api<K>,
    seen: &kube::api::ObjectMeta,
    finalizers: &[String],
    annotations: &[(&str, Option<String>)],
) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    patch_metadata_if(api, seen, finalizers, annotations, &[]).await
}

/// [`patch_metadata`] that also tests each `(path, value)` of `also`: a write that must not land
/// if that field changed since it was read (a JSON pointer, such as `/spec/managementPolicy`;
/// a missing field tests as null).
pub async fn patch_metadata_if<K>(
    api: &Api<K>,
    seen: &kube::api::ObjectMeta,
    finalizers: &[String],
    annotations: &[(&str, Option<String>)],
    also: &[(&str, serde_json::Value)],
) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut patch = metadata_patch(seen, finalizers, annotations);
    if let Some(ops) = patch.as_array_mut() {
        let tests = also
            .iter()
            .map(|(path, value)| json!({"op": "test", "path": path, "value": value}));
        ops.splice(0..0, tests);
    }
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(kube::Error::SerdeError)?;
    let name = seen.name.clone().unwrap_or_default();
    api.patch(&name, &merge_params(), &Patch::<()>::Json(patch)).await
}

/// The JSON patch operations of [`patch_metadata`].
fn metadata_patch(
    meta: &kube::api::ObjectMeta,
    finalizers: &[String],
    annotations: &[(&str, Option<String>)],
) -> serde_json::Value {
    let current = meta.finalizers.clone().filter(|f| !f.is_empty());
    // A missing member tests as null, as the API server's JSON patch does.
    let mut ops = vec![json!({"op": "test", "path": "/metadata/finalizers", "value": current})];
    if meta.deletion_timestamp.is_none() {
        ops.push(json!({"op": "test", "path": "/metadata/deletionTimestamp", "value": null}));
    }
    match (current.is_some(), finalizers.is_empty()) {
        (true, true) => ops.push(json!({"op": "remove", "path": "/metadata/finalizers"})),
        (_, false) => ops.push(json!({"op": "add", "path": "/metadata/finalizers", "value": finalizers})),
        (false, true) => {}
    }
    let escape = |key: &str| key.replace('~', "~0").replace('/', "~1");
    match meta.annotations.as_ref() {
        None => {
            let added: serde_json::Map<String, serde_json::Value> = annotations
                .iter()
                .filter_map(|(key, value)| value.as_ref().map(|v| (key.to_string(), json!(v))))
                .collect();
            if !annotations.is_empty() {
                ops.push(json!({"op": "test", "path": "/metadata/annotations", "value": null}));
            }
            if !added.is_empty() {
                ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": added}));
            }
        }
        Some(map) => {
            for (key, value) in annotations {
                let path = format!("/metadata/annotations/{}", escape(key));
                let before = map.get(*key);
                ops.push(json!({"op": "test", "path": path, "value": before}));
                match value {
                    Some(value) if before != Some(value) => {
                        ops.push(json!({"op": "add", "path": path, "value": value}))
                    }
                    None if before.is_some() => ops.push(json!({"op": "remove", "path": path})),
                    _ => {}
                }
            }
        }
    }
    json!(ops)
}

/// Parameters of the operator's patches (its name in managedFields).
pub fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_metadata_patch_tests_the_finalizers_it_saw_and_touches_only_its_annotation() {
        let fresh = kube::api::ObjectMeta::default();
        let ops = metadata_patch(&fresh, &["f".into()], &[("a/b", Some("v".into()))]);
        assert_eq!(
            ops,
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "test", "path": "/metadata/deletionTimestamp", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
                {"op": "test", "path": "/metadata/annotations", "value": null},
                {"op": "add", "path": "/metadata/annotations", "value": {"a/b": "v"}},
            ])
        );
        let annotated = kube::api::ObjectMeta {
            finalizers: Some(vec!["other".into(), "f".into()]),
            annotations: Some(BTreeMap::from([("a/b".to_string(), "v".to_string())])),
            deletion_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            )),
            ..Default::default()
        };
        // Removing the finalizer of a deleted object, keeping (and so testing) its claim.
        let ops = metadata_patch(&annotated, &["other".into()], &[("a/b", Some("v".into()))]);
        assert_eq!(
            ops,
            json!([
                {"op": "test", "path": "/metadata/finalizers", "value": ["other", "f"]},
                {"op": "add", "path": "/metadata/finalizers", "value": ["other"]},
                {"op": "test", "path": "/metadata/annotations/a~1b", "value": "v"},
            ])
        );
        let ops = metadata_patch(&annotated, &["other", "f"].map(String::from), &[("a/b", None)]);
        assert_eq!(
            ops[2],
            json!({"op": "test", "path": "/metadata/annotations/a~1b", "value": "v"})
        );
        assert_eq!(ops[3], json!({"op": "remove", "path": "/metadata/annotations/a~1b"}));
    }
}
