//! Reading memberships out of a Terraform (or OpenTofu) state: the raw `terraform.tfstate`
//! (format version 4, Terraform 0.12 and later) or `terraform show -json` (format 1.x). Pure.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::Value;

use super::{Found, FoundKind};
use crate::api::MemberStatus;

/// The two provider families whose resources are memberships (the ViettelIdc provider is a fork
/// of the OpenStack one with its types renamed, same attributes).
const FAMILIES: [&str; 2] = ["openstack", "viettelidc"];

/// What a state holds for us.
#[derive(Debug, Default)]
pub(super) struct StateContents {
    pub found: Vec<Found>,
    /// Instances of other resource types, by type.
    pub ignored: BTreeMap<String, usize>,
    /// Membership instances that could not be read (address: why).
    pub unreadable: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StateError {
    #[error(
        "it is not JSON (line {line}, column {column}): a Terraform state is the JSON of terraform.tfstate or of `terraform show -json`"
    )]
    NotJson { line: usize, column: usize },
    #[error(
        "it is not a Terraform state: expected the JSON of terraform.tfstate (with \"version\") or of `terraform show -json` (with \"format_version\")"
    )]
    NotAState,
    #[error("it is an encrypted OpenTofu state: pass the output of `tofu show -json` instead (on stdin with `-`)")]
    Encrypted,
    #[error("it is a plan, not a state: run `terraform show -json` without a plan file (or pass terraform.tfstate)")]
    Plan,
    #[error(
        "state format version {0} is not supported: this reads version 4 (Terraform 0.12 and later, OpenTofu); a `terraform apply` with a newer Terraform upgrades it"
    )]
    RawVersion(u64),
    #[error(
        "`terraform show -json` format version {0:?} is not supported: this reads 1.x (Terraform 0.12 and later, OpenTofu)"
    )]
    ShownVersion(String),
    #[error(
        "the state does not have the shape of its format version ({0}): export from the output of `terraform show -json` instead"
    )]
    Malformed(String),
}

#[derive(Deserialize)]
struct RawState {
    #[serde(default)]
    resources: Vec<RawResource>,
}

#[derive(Deserialize)]
struct RawResource {
    #[serde(default)]
    module: Option<String>,
    #[serde(default)]
    mode: String,
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    instances: Vec<RawInstance>,
}

#[derive(Deserialize)]
struct RawInstance {
    #[serde(default)]
    index_key: Option<Value>,
    /// Set on an instance `create_before_destroy` left behind to be destroyed: not live.
    #[serde(default)]
    deposed: Option<String>,
    #[serde(default)]
    attributes: Value,
}

#[derive(Deserialize)]
struct Shown {
    #[serde(default)]
    values: Option<ShownValues>,
}

#[derive(Deserialize)]
struct ShownValues {
    root_module: ShownModule,
}

#[derive(Deserialize)]
struct ShownModule {
    #[serde(default)]
    resources: Vec<ShownResource>,
    #[serde(default)]
    child_modules: Vec<ShownModule>,
}

#[derive(Deserialize)]
struct ShownResource {
    address: String,
    /// Set on an object `create_before_destroy` left behind to be destroyed: not live.
    #[serde(default)]
    deposed_key: Option<String>,
    #[serde(default)]
    mode: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    values: Value,
}

/// One managed resource instance: its address, type and attributes.
struct Instance {
    address: String,
    kind: String,
    attributes: Value,
}

/// Every membership in `text`, a state in either format.
pub(super) fn read(text: &str) -> Result<StateContents, StateError> {
    let json: Value = serde_json::from_str(text).map_err(|e| StateError::NotJson {
        line: e.line(),
        column: e.column(),
    })?;
    let malformed = |e: serde_json::Error| StateError::Malformed(e.to_string());
    let instances = if let Some(version) = json.get("format_version") {
        if json.get("planned_values").is_some() || json.get("resource_changes").is_some() {
            return Err(StateError::Plan);
        }
        let version = version.as_str().unwrap_or_default();
        if version.split('.').next() != Some("1") {
            return Err(StateError::ShownVersion(version.to_string()));
        }
        let shown: Shown = serde_json::from_value(json).map_err(malformed)?;
        let mut instances = Vec::new();
        if let Some(values) = shown.values {
            shown_instances(values.root_module, &mut instances);
        }
        instances
    } else if let Some(version) = json.get("version") {
        let version = version.as_u64().unwrap_or_default();
        if version != 4 {
            return Err(StateError::RawVersion(version));
        }
        let state: RawState = serde_json::from_value(json).map_err(malformed)?;
        raw_instances(state)
    } else if json.get("encrypted_data").is_some() {
        return Err(StateError::Encrypted);
    } else {
        return Err(StateError::NotAState);
    };
    Ok(contents(instances))
}

fn raw_instances(state: RawState) -> Vec<Instance> {
    let mut out = Vec::new();
    for resource in state.resources.into_iter().filter(|r| r.mode == "managed") {
        let base = match &resource.module {
            Some(module) => format!("{module}.{}.{}", resource.kind, resource.name),
            None => format!("{}.{}", resource.kind, resource.name),
        };
        for instance in resource.instances.into_iter().filter(|i| i.deposed.is_none()) {
            let address = match &instance.index_key {
                Some(Value::String(key)) => format!("{base}[{}]", Value::String(key.clone())),
                Some(key) => format!("{base}[{key}]"),
                None => base.clone(),
            };
            out.push(Instance {
                address,
                kind: resource.kind.clone(),
                attributes: instance.attributes,
            });
        }
    }
    out
}

fn shown_instances(module: ShownModule, out: &mut Vec<Instance>) {
    for resource in module
        .resources
        .into_iter()
        .filter(|r| r.mode == "managed" && r.deposed_key.is_none())
    {
        out.push(Instance {
            address: resource.address,
            kind: resource.kind,
            attributes: resource.values,
        });
    }
    for child in module.child_modules {
        shown_instances(child, out);
    }
}

/// What each instance is for us: a membership, an image (for its name), or something else.
fn contents(instances: Vec<Instance>) -> StateContents {
    let mut contents = StateContents::default();
    let mut image_names: HashMap<String, String> = HashMap::new();
    for instance in &instances {
        if FAMILIES.iter().any(|f| instance.kind == format!("{f}_images_image_v2"))
            && let (Some(id), Some(name)) = (text(&instance.attributes, "id"), text(&instance.attributes, "name"))
        {
            image_names.insert(id, name);
        }
    }
    for instance in instances {
        let kind = match membership_kind(&instance.kind) {
            Some(kind) => kind,
            None => {
                *contents.ignored.entry(instance.kind).or_default() += 1;
                continue;
            }
        };
        let attributes = &instance.attributes;
        let Some(image_id) = text(attributes, "image_id") else {
            contents.unreadable.push(format!("{}: no image_id", instance.address));
            continue;
        };
        let member_id = text(attributes, "member_id");
        if kind == FoundKind::Access && member_id.is_none() {
            contents.unreadable.push(format!("{}: no member_id", instance.address));
            continue;
        }
        let status = match text(attributes, "status") {
            None => None,
            Some(status) => match serde_json::from_value::<MemberStatus>(Value::String(status.clone())) {
                Ok(status) => Some(status),
                Err(_) => {
                    contents.unreadable.push(format!(
                        "{}: status {status:?} is not pending, accepted or rejected",
                        instance.address
                    ));
                    continue;
                }
            },
        };
        if kind == FoundKind::Accept && status.is_none() {
            contents.unreadable.push(format!("{}: no status", instance.address));
            continue;
        }
        contents.found.push(Found {
            kind,
            image_name: image_names.get(&image_id).cloned(),
            image_id,
            member_id,
            region: text(attributes, "region"),
            status,
            origin: instance.address,
        });
    }
    contents
}

fn membership_kind(kind: &str) -> Option<FoundKind> {
    FAMILIES.iter().find_map(|family| {
        let rest = kind.strip_prefix(family)?;
        match rest {
            "_images_image_access_v2" => Some(FoundKind::Access),
            "_images_image_access_accept_v2" => Some(FoundKind::Accept),
            _ => None,
        }
    })
}

/// A non-empty string attribute.
fn text(attributes: &Value, key: &str) -> Option<String> {
    attributes
        .get(key)
        .and_then(Value::as_str)
        .filter(|value| !value.is_empty())
        .map(str::to_string)
}
