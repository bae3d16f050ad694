//! An in-process Kubernetes API for the reconciler's unit and property tests: ImageAccess and
//! ImageAccessAccept objects and Secrets with the semantics the operator relies on (resourceVersion preconditions
//! on merge patches, finalizers that hold a deletion, generation bumped by spec edits and by the
//! deletion mark, status written by apply), events accepted, and every change queued as a watch
//! event for the test to feed into the controller's caches. Requests can be made to fail.
//!
//! It is a fake for fast tests and fault injection; the end-to-end suite runs a real
//! kube-apiserver.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use http::{Request, Response, StatusCode};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ObjectMeta, PartialObjectMeta};
use kube::client::Body;
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::api::{ImageAccess, ImageAccessAccept, ImageShare};

/// The plural of ImageAccess in the API's paths (objects are stored under their plural).
const ACCESSES: &str = "imageaccesses";
/// The plural of ImageAccessAccept.
const ACCEPTS: &str = "imageaccessaccepts";

/// `(plural, namespace, name)` of a stored object.
type ObjectKey = (String, String, String);

/// One request the operator made.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: Value,
}

/// A change the watch would deliver.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // a test fake: a few of these at a time
pub enum Change {
    Object(watcher::Event<ImageAccess>),
    Accept(watcher::Event<ImageAccessAccept>),
    Share(watcher::Event<ImageShare>),
    Secret(watcher::Event<PartialObjectMeta<Secret>>),
}

#[derive(Default)]
struct State {
    objects: BTreeMap<ObjectKey, Value>,
    secrets: BTreeMap<(String, String), Value>,
    version: u64,
    uids: u64,
    calls: Vec<Call>,
    changes: VecDeque<Change>,
    /// `(method, path fragment, status)`: the next matching request fails with `status`.
    faults: VecDeque<(String, String, u16)>,
    /// Seconds since the epoch of the next creationTimestamp (objects get increasing ones).
    created: i64,
    /// While set, answers wait for it after the change is made (and its watch event queued):
    /// a watch that delivers the echo of a write before the writer has its answer.
    answers_paused: Option<Arc<tokio::sync::Notify>>,
}

/// The fake API. Clone it to keep a handle; [`FakeKube::client`] is what the operator gets.
#[derive(Clone)]
pub struct FakeKube {
    state: Arc<Mutex<State>>,
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code})
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// The parent of a JSON pointer's target and the last key, unescaped.
fn parent<'a>(doc: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let (head, last) = path.rsplit_once('/')?;
    let unescape = |s: &str| s.replace("~1", "/").replace("~0", "~");
    let parent = if head.is_empty() {
        Some(doc)
    } else {
        doc.pointer_mut(head)
    }?;
    Some((parent, unescape(last)))
}

/// RFC 6902 with the API server's reading of `test`: a missing member tests as null.
fn json_patch(doc: &mut Value, ops: &[Value]) -> Result<(), String> {
    for op in ops {
        let path = op["path"].as_str().unwrap_or_default();
        match op["op"].as_str().unwrap_or_default() {
            "test" => {
                let actual = doc.pointer(path).cloned().unwrap_or(Value::Null);
                if actual != op["value"] {
                    return Err(format!("testing value {path} failed"));
                }
            }
            "add" | "replace" => {
                let (parent, key) = parent(doc, path).ok_or(format!("missing path {path}"))?;
                let map = parent
                    .as_object_mut()
                    .ok_or(format!("{path}: parent is not an object"))?;
                map.insert(key, op["value"].clone());
            }
            "remove" => {
                let (parent, key) = parent(doc, path).ok_or(format!("missing path {path}"))?;
                let map = parent
                    .as_object_mut()
                    .ok_or(format!("{path}: parent is not an object"))?;
                map.remove(&key).ok_or(format!("remove: missing {path}"))?;
            }
            other => return Err(format!("op {other} not served by the fake")),
        }
    }
    Ok(())
}

impl State {
    /// `POST`: a new object (uid, generation 1, a later creationTimestamp), or 409.
    fn create(&mut self, plural: &str, namespace: &str, body: &Value) -> (StatusCode, Value) {
        let name = body["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let key = (plural.to_string(), namespace.to_string(), name.clone());
        if self.objects.contains_key(&key) {
            return (
                StatusCode::CONFLICT,
                status_body(409, "AlreadyExists", &format!("{plural} \"{name}\" already exists")),
            );
        }
        self.uids += 1;
        self.created += 1;
        let created = jiff::Timestamp::from_second(self.created).unwrap_or_default();
        let mut object = body.clone();
        object["metadata"]["namespace"] = json!(namespace);
        object["metadata"]["uid"] = json!(format!("uid-{}", self.uids));
        object["metadata"]["generation"] = json!(1);
        object["metadata"]["creationTimestamp"] = serde_json::to_value(Time(created)).unwrap_or_default();
        object["metadata"]["resourceVersion"] = json!(self.next_version());
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
        self.objects.insert(key, object.clone());
        self.emit_object(&object, false);
        (StatusCode::CREATED, object)
    }

    /// `DELETE`: gone at once without finalizers, else marked (generation + 1). The object as
    /// it was, or `None` when there is none.
    fn delete(&mut self, key: &ObjectKey) -> Option<Value> {
        let mut object = self.objects.get(key).cloned()?;
        if State::finalizers_empty(&object) {
            self.objects.remove(key);
            self.emit_object(&object, true);
            return Some(object);
        }
        if State::deleting(&object) {
            return Some(object);
        }
        let version = self.next_version();
        object["metadata"]["deletionTimestamp"] = json!("2026-11-29T00:00:00Z");
        let generation = object["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        object["metadata"]["generation"] = json!(generation);
        object["metadata"]["resourceVersion"] = json!(version);
        self.objects.insert(key.clone(), object.clone());
        self.emit_object(&object, false);
        Some(object)
    }

    /// `GET` of a collection, with a `labelSelector` of `key=value` terms.
    fn list(&self, plural: &str, namespace: &str, query: &str) -> (StatusCode, Value) {
        let selector: Vec<(String, String)> = reqwest::Url::parse(&format!("http://fake/?{query}"))
            .map(|url| {
                url.query_pairs()
                    .filter(|(key, _)| key == "labelSelector")
                    .flat_map(|(_, value)| {
                        value
                            .split(',')
                            .filter_map(|term| term.split_once('='))
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect::<Vec<_>>()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|((p, ns, _), _)| p == plural && ns == namespace)
            .filter(|(_, object)| {
                selector
                    .iter()
                    .all(|(key, value)| object["metadata"]["labels"][key].as_str() == Some(value.as_str()))
            })
            .map(|(_, object)| object.clone())
            .collect();
        (
            StatusCode::OK,
            json!({"apiVersion": "glance.viettelidc.com.vn/v1alpha1", "kind": "List", "metadata": {"resourceVersion": self.version.to_string()}, "items": items}),
        )
    }

    fn next_version(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    fn emit_object(&mut self, object: &Value, deleted: bool) {
        fn event<K>(typed: K, deleted: bool) -> watcher::Event<K> {
            if deleted {
                watcher::Event::Delete(typed)
            } else {
                watcher::Event::Apply(typed)
            }
        }
        if object["kind"] == "ImageAccessAccept" {
            if let Ok(typed) = serde_json::from_value::<ImageAccessAccept>(object.clone()) {
                self.changes.push_back(Change::Accept(event(typed, deleted)));
            }
        } else if object["kind"] == "ImageShare" {
            if let Ok(typed) = serde_json::from_value::<ImageShare>(object.clone()) {
                self.changes.push_back(Change::Share(event(typed, deleted)));
            }
        } else if let Ok(typed) = serde_json::from_value::<ImageAccess>(object.clone()) {
            self.changes.push_back(Change::Object(event(typed, deleted)));
        }
    }

    fn emit_secret(&mut self, secret: &Value, deleted: bool) {
        let meta: ObjectMeta = serde_json::from_value(secret["metadata"].clone()).unwrap_or_default();
        let partial = PartialObjectMeta::<Secret> {
            types: None,
            metadata: meta,
            _phantom: Default::default(),
        };
        self.changes.push_back(Change::Secret(if deleted {
            watcher::Event::Delete(partial)
        } else {
            watcher::Event::Apply(partial)
        }));
    }

    fn finalizers_empty(object: &Value) -> bool {
        object["metadata"]["finalizers"].as_array().is_none_or(|f| f.is_empty())
    }

    fn deleting(object: &Value) -> bool {
        !object["metadata"]["deletionTimestamp"].is_null()
    }

    /// A merge patch on a stored object, with the resourceVersion precondition; an object being
    /// deleted goes once its finalizers are gone.
    fn patch(&mut self, secret: bool, key: ObjectKey, patch: &Value) -> (StatusCode, Value) {
        let found = if secret {
            self.secrets.get(&(key.1.clone(), key.2.clone()))
        } else {
            self.objects.get(&key)
        };
        let Some(mut current) = found.cloned() else {
            return (
                StatusCode::NOT_FOUND,
                status_body(404, "NotFound", &format!("{:?} not found", key)),
            );
        };
        if let Some(expected) = patch["metadata"]["resourceVersion"].as_str()
            && current["metadata"]["resourceVersion"].as_str() != Some(expected)
        {
            return (
                StatusCode::CONFLICT,
                status_body(
                    409,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version and try again",
                ),
            );
        }
        let adds_finalizer = |before: &Value, after: &Value| {
            let count = |v: &Value| v["metadata"]["finalizers"].as_array().map_or(0, Vec::len);
            count(after) > count(before)
        };
        let before = current.clone();
        match patch {
            Value::Array(ops) => {
                if let Err(message) = json_patch(&mut current, ops) {
                    return (StatusCode::UNPROCESSABLE_ENTITY, status_body(422, "Invalid", &message));
                }
            }
            _ => merge(&mut current, patch),
        }
        if State::deleting(&before) && adds_finalizer(&before, &current) {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                status_body(
                    422,
                    "Invalid",
                    "no new finalizers can be added if the object is being deleted",
                ),
            );
        }
        current["metadata"]["resourceVersion"] = json!(self.next_version());
        let gone = State::deleting(&current) && State::finalizers_empty(&current);
        match (secret, gone) {
            (true, true) => drop(self.secrets.remove(&(key.1, key.2))),
            (true, false) => drop(self.secrets.insert((key.1, key.2), current.clone())),
            (false, true) => drop(self.objects.remove(&key)),
            (false, false) => drop(self.objects.insert(key, current.clone())),
        }
        if secret {
            self.emit_secret(&current, gone);
        } else {
            self.emit_object(&current, gone);
        }
        (StatusCode::OK, current)
    }

    fn answer(&mut self, method: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        if let Some(index) = self
            .faults
            .iter()
            .position(|(m, fragment, _)| m == method && path.contains(fragment.as_str()))
            && let Some((_, _, code)) = self.faults.remove(index)
        {
            return (
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                status_body(code, "InternalError", "injected fault"),
            );
        }
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, parts.as_slice()) {
            ("POST", ["apis", "glance.viettelidc.com.vn", "v1alpha1", "namespaces", ns, plural]) => {
                self.create(plural, ns, body)
            }
            (
                "DELETE",
                [
                    "apis",
                    "glance.viettelidc.com.vn",
                    "v1alpha1",
                    "namespaces",
                    ns,
                    plural,
                    name,
                ],
            ) => {
                let key = (plural.to_string(), ns.to_string(), name.to_string());
                match self.delete(&key) {
                    Some(object) => (StatusCode::OK, object),
                    None => (StatusCode::NOT_FOUND, status_body(404, "NotFound", "not found")),
                }
            }
            ("GET", ["apis", "glance.viettelidc.com.vn", "v1alpha1", "namespaces", ns, plural]) => {
                self.list(plural, ns, query)
            }
            ("GET", ["api", "v1", "namespaces", ns, "secrets", name]) => {
                found("secrets", name, self.secrets.get(&(ns.to_string(), name.to_string())))
            }
            ("PATCH", ["api", "v1", "namespaces", ns, "secrets", name]) => {
                self.patch(true, (String::new(), ns.to_string(), name.to_string()), body)
            }
            (
                "GET",
                [
                    "apis",
                    "glance.viettelidc.com.vn",
                    "v1alpha1",
                    "namespaces",
                    ns,
                    plural,
                    name,
                ],
            ) => found(
                plural,
                name,
                self.objects
                    .get(&(plural.to_string(), ns.to_string(), name.to_string())),
            ),
            (
                "PATCH",
                [
                    "apis",
                    "glance.viettelidc.com.vn",
                    "v1alpha1",
                    "namespaces",
                    ns,
                    plural,
                    name,
                ],
            ) => self.patch(false, (plural.to_string(), ns.to_string(), name.to_string()), body),
            (
                "PATCH",
                [
                    "apis",
                    "glance.viettelidc.com.vn",
                    "v1alpha1",
                    "namespaces",
                    ns,
                    plural,
                    name,
                    "status",
                ],
            ) => {
                let key = (plural.to_string(), ns.to_string(), name.to_string());
                let version = self.next_version();
                let Some(object) = self.objects.get_mut(&key) else {
                    return (StatusCode::NOT_FOUND, status_body(404, "NotFound", "not found"));
                };
                object["status"] = body["status"].clone();
                object["metadata"]["resourceVersion"] = json!(version);
                let object = object.clone();
                self.emit_object(&object, false);
                (StatusCode::OK, object)
            }
            (_, ["apis", "events.k8s.io", "v1", "namespaces", _, "events", ..]) => (StatusCode::CREATED, body.clone()),
            _ => (
                StatusCode::NOT_FOUND,
                status_body(404, "NotFound", &format!("{method} {path}: not served by the fake")),
            ),
        }
    }
}

/// A GET's answer: the object, or the API server's 404.
fn found(resource: &str, name: &str, object: Option<&Value>) -> (StatusCode, Value) {
    match object {
        Some(object) => (StatusCode::OK, object.clone()),
        None => (
            StatusCode::NOT_FOUND,
            status_body(404, "NotFound", &format!("{resource} \"{name}\" not found")),
        ),
    }
}

impl FakeKube {
    /// The fake, and a client that talks to it.
    pub fn start() -> (FakeKube, kube::Client) {
        let fake = FakeKube {
            state: Arc::new(Mutex::new(State {
                created: 1_800_000_000,
                ..Default::default()
            })),
        };
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let state = fake.state.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().to_string();
                let path = request
                    .uri()
                    .path_and_query()
                    .map_or_else(|| request.uri().path().to_string(), |p| p.as_str().to_string());
                let bytes = request.into_body().collect_bytes().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let ((status, answer), paused) = {
                    let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                    let answer = state.answer(&method, &path, &body);
                    // Calls are recorded by path, as the tests match them; the answer saw the query.
                    let path = path.split_once('?').map_or(path.clone(), |(path, _)| path.to_string());
                    state.calls.push(Call { method, path, body });
                    (answer, state.answers_paused.take())
                };
                if let Some(resume) = paused {
                    resume.notified().await;
                }
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer).unwrap_or_default()))
                    .expect("response");
                send.send_response(response);
            }
        });
        let client = kube::Client::new(service, "default");
        (fake, client)
    }

    /// The next request is answered only once the returned `Notify` is notified; its change
    /// (and watch event) is made at once.
    pub fn pause_next_answer(&self) -> Arc<tokio::sync::Notify> {
        let resume = Arc::new(tokio::sync::Notify::new());
        self.lock().answers_paused = Some(resume.clone());
        resume
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates an object (of either kind) as `kubectl apply` would (generation 1, a uid, a
    /// creationTimestamp later than every earlier one), or edits its spec (generation + 1)
    /// when it exists.
    pub fn apply<K>(&self, object: &K) -> K
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize + serde::de::DeserializeOwned,
    {
        let mut state = self.lock();
        let namespace = object.meta().namespace.clone().unwrap_or_else(|| "default".into());
        let name = object.meta().name.clone().unwrap_or_default();
        let key = (K::plural(&()).to_string(), namespace.clone(), name.clone());
        let version = state.next_version();
        let stored = match state.objects.get(&key).cloned() {
            Some(mut existing) => {
                let spec = serde_json::to_value(object).expect("object")["spec"].clone();
                if existing["spec"] != spec {
                    existing["spec"] = spec;
                    let generation = existing["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                    existing["metadata"]["generation"] = json!(generation);
                }
                existing["metadata"]["resourceVersion"] = json!(version);
                existing
            }
            None => {
                state.uids += 1;
                state.created += 1;
                let created = jiff::Timestamp::from_second(state.created).unwrap_or_default();
                let metadata = ObjectMeta {
                    name: Some(name),
                    namespace: Some(namespace),
                    uid: Some(format!("uid-{}", state.uids)),
                    generation: Some(1),
                    resource_version: Some(version),
                    creation_timestamp: Some(Time(created)),
                    labels: object.meta().labels.clone(),
                    annotations: object.meta().annotations.clone(),
                    ..Default::default()
                };
                let mut fresh = serde_json::to_value(object).expect("object");
                if let Some(map) = fresh.as_object_mut() {
                    map.remove("status");
                }
                fresh["metadata"] = serde_json::to_value(metadata).expect("metadata");
                fresh
            }
        };
        state.objects.insert(key, stored.clone());
        state.emit_object(&stored, false);
        serde_json::from_value(stored).expect("typed")
    }

    /// Stores `object` as it is, metadata and status included (as an older operator left it).
    pub fn replace<K>(&self, object: &K)
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize,
    {
        let mut state = self.lock();
        let namespace = object.meta().namespace.clone().unwrap_or_else(|| "default".into());
        let name = object.meta().name.clone().unwrap_or_default();
        let key = (K::plural(&()).to_string(), namespace, name);
        let mut stored = serde_json::to_value(object).expect("object");
        stored["metadata"]["resourceVersion"] = json!(state.next_version());
        state.objects.insert(key, stored.clone());
        state.emit_object(&stored, false);
    }

    /// `kubectl delete` of an ImageAccess: gone at once without finalizers, else marked
    /// (generation + 1).
    pub fn delete(&self, namespace: &str, name: &str) {
        self.delete_object(ACCESSES, namespace, name);
    }

    /// `kubectl delete` of an ImageAccessAccept.
    pub fn delete_accept(&self, namespace: &str, name: &str) {
        self.delete_object(ACCEPTS, namespace, name);
    }

    fn delete_object(&self, plural: &str, namespace: &str, name: &str) {
        let key = (plural.to_string(), namespace.to_string(), name.to_string());
        self.lock().delete(&key);
    }

    /// `kubectl delete` of an ImageShare (the garbage collector is the test's to play).
    pub fn delete_share(&self, namespace: &str, name: &str) {
        self.delete_object("imageshares", namespace, name);
    }

    /// Creates or replaces a Secret's data (its finalizers stay).
    pub fn put_secret(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let mut state = self.lock();
        let key = (namespace.to_string(), name.to_string());
        let version = state.next_version();
        // k8s-openapi writes ByteString as base64, as the API does.
        let typed = Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        let encoded = serde_json::to_value(&typed).expect("secret")["data"].clone();
        let mut secret = state.secrets.get(&key).cloned().unwrap_or_else(|| {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace, "uid": format!("secret-{namespace}-{name}")}})
        });
        secret["data"] = encoded;
        secret["metadata"]["resourceVersion"] = json!(version);
        state.secrets.insert(key, secret.clone());
        state.emit_secret(&secret, false);
    }

    /// `kubectl delete secret`: gone at once without finalizers, else marked.
    pub fn delete_secret(&self, namespace: &str, name: &str) {
        let mut state = self.lock();
        let key = (namespace.to_string(), name.to_string());
        let Some(mut secret) = state.secrets.get(&key).cloned() else {
            return;
        };
        if State::finalizers_empty(&secret) {
            state.secrets.remove(&key);
            state.emit_secret(&secret, true);
            return;
        }
        let version = state.next_version();
        secret["metadata"]["deletionTimestamp"] = json!("2026-11-29T00:00:00Z");
        secret["metadata"]["resourceVersion"] = json!(version);
        state.secrets.insert(key, secret.clone());
        state.emit_secret(&secret, false);
    }

    /// The Secret is gone whatever held it (its finalizers removed by hand, then deleted).
    pub fn remove_secret(&self, namespace: &str, name: &str) {
        let mut state = self.lock();
        if let Some(secret) = state.secrets.remove(&(namespace.to_string(), name.to_string())) {
            state.emit_secret(&secret, true);
        }
    }

    /// The stored object of kind `K` named `name` in `namespace`.
    fn stored<K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<K> {
        let key = (K::plural(&()).to_string(), namespace.to_string(), name.to_string());
        let value = self.lock().objects.get(&key)?.clone();
        serde_json::from_value(value).ok()
    }

    /// Every stored object of kind `K`.
    fn all<K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned>(&self) -> Vec<K> {
        let plural = K::plural(&()).to_string();
        self.lock()
            .objects
            .iter()
            .filter(|((stored, _, _), _)| *stored == plural)
            .filter_map(|(_, v)| serde_json::from_value(v.clone()).ok())
            .collect()
    }

    pub fn object(&self, namespace: &str, name: &str) -> Option<ImageAccess> {
        self.stored(namespace, name)
    }

    pub fn accept(&self, namespace: &str, name: &str) -> Option<ImageAccessAccept> {
        self.stored(namespace, name)
    }

    pub fn share(&self, namespace: &str, name: &str) -> Option<ImageShare> {
        self.stored(namespace, name)
    }

    /// The ImageAccess objects.
    pub fn objects(&self) -> Vec<ImageAccess> {
        self.all()
    }

    pub fn accepts(&self) -> Vec<ImageAccessAccept> {
        self.all()
    }

    pub fn shares(&self) -> Vec<ImageShare> {
        self.all()
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        let state = self.lock();
        let value = state.secrets.get(&(namespace.to_string(), name.to_string()))?;
        serde_json::from_value(value.clone()).ok()
    }

    pub fn secrets(&self) -> Vec<Secret> {
        self.lock()
            .secrets
            .values()
            .filter_map(|v| serde_json::from_value(v.clone()).ok())
            .collect()
    }

    /// The requests made since the last call, oldest first.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.lock().calls)
    }

    /// The watch events since the last call, oldest first.
    pub fn take_changes(&self) -> Vec<Change> {
        self.lock().changes.drain(..).collect()
    }

    /// The next `method` request whose path contains `fragment` fails with `status`.
    pub fn fail_next(&self, method: &str, fragment: &str, status: u16) {
        self.lock()
            .faults
            .push_back((method.to_string(), fragment.to_string(), status));
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }
}

/// The Secret's metadata as a metadata-only watch delivers it.
pub fn secret_metadata(secret: &Secret) -> PartialObjectMeta<Secret> {
    PartialObjectMeta::<Secret> {
        types: None,
        metadata: secret.metadata.clone(),
        _phantom: Default::default(),
    }
}
