//! `ImageShare`: many images shared with many projects in one object. The operator makes one
//! `ImageAccess` per (image, member) pair, owned by the share the way a Deployment owns its
//! ReplicaSets: each pair keeps its own status, finalizer, drift repair and events, and the
//! share sums them up.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CloudCredentialsRef, DeletionPolicy, IMAGE_ID_RULE, MemberStatus};

/// Images shared with projects: one membership per (image, member) pair.
// kube-derive takes one `printcolumn(...)` per column; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "glance.viettelidc.com.vn",
    version = "v1alpha1",
    kind = "ImageShare",
    plural = "imageshares",
    shortname = "ishare",
    category = "openstack",
    namespaced,
    status = "ImageShareStatus",
    doc = "ImageShare shares OpenStack Glance images with projects: one ImageAccess per (image, \
           member) pair, owned by the share, like Terraform's openstack_images_image_access_v2 \
           over setproduct(images, projects).",
    validation = kube::core::Rule::new("size(self.metadata.name) <= 63").message(kube::core::Message::Message("metadata.name must be at most 63 characters: it labels the share's ImageAccess objects".into())),
    printcolumn(
        name = "Images",
        type_ = "integer",
        json_path = ".status.images",
        description = "Distinct images shared"
    ),
    printcolumn(
        name = "Members",
        type_ = "integer",
        json_path = ".status.members",
        description = "Distinct member projects"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.readyOfDesired",
        description = "Memberships Ready / memberships asked for"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ImageShareSpec {
    /// IDs of the Glance images to share (1 to 100), each a lowercase UUID with dashes. The
    /// images must have visibility `shared` and belong to the credentials' project. Removing
    /// one removes its memberships (as deletionPolicy says).
    #[schemars(length(min = 1, max = 100))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = kube::core::Rule::new(image_ids_rule()).message(kube::core::Message::Message("imageIds must be Glance image IDs: lowercase UUIDs with dashes, such as 6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10 (openstack image list shows them)".into())))]
    pub image_ids: Vec<ImageId>,

    /// IDs of the projects to share every image with (1 to 1,000). Glance does not check them
    /// against Keystone, so check them yourself. Removing one removes its memberships.
    #[schemars(length(min = 1, max = 1000))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = kube::core::Rule::new("self.all(m, !m.contains('/'))").message("memberIds must not contain '/': they are project IDs, used in the Glance URL"))]
    #[x_kube(validation = kube::core::Rule::new("self.all(m, m == m.trim())").message("memberIds must not start or end with whitespace"))]
    pub member_ids: Vec<MemberId>,

    /// Member status for every pair: pending, accepted or rejected. Leave it unset to let each
    /// consumer decide. Setting it needs admin credentials (Glance refuses a status change
    /// from the image owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<MemberStatus>,

    /// Region whose Glance endpoint is used. Overrides `region_name` of the cloud entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub region: Option<String>,

    /// Where the OpenStack credentials are: a Secret in this namespace with a clouds.yaml.
    pub cloud_credentials_ref: CloudCredentialsRef,

    /// What deleting the share (or removing a pair from it) does to the memberships: Delete
    /// (the default) removes them from Glance, Orphan leaves them. Passed to every ImageAccess.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// A Glance image ID (length bounded so the apiserver can cost the CEL rules).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[serde(transparent)]
pub struct ImageId(#[schemars(length(max = 36))] pub String);

/// A project ID (length bounded so the apiserver can cost the CEL rules).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[serde(transparent)]
pub struct MemberId(#[schemars(length(min = 1, max = 255))] pub String);

/// [`IMAGE_ID_RULE`] for every item of a list.
fn image_ids_rule() -> String {
    let single = IMAGE_ID_RULE.trim_start_matches("self.");
    format!("self.all(i, i.{single})")
}

/// Observed state, written by the operator: counts over the share's ImageAccess objects.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"observedGeneration": 0}))]
pub struct ImageShareStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready (every membership Ready), Reconciling (some still at work) and Stalled (some need
    /// a human: the message names them and how to list them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Memberships asked for: images × members.
    #[serde(default)]
    pub desired: i32,

    /// ImageAccess objects of the share that are Ready.
    #[serde(default)]
    pub ready: i32,

    /// ImageAccess objects of the share that are Stalled (need a human).
    #[serde(default)]
    pub stalled: i32,

    /// Distinct images in the spec.
    #[serde(default)]
    pub images: i32,

    /// Distinct members in the spec.
    #[serde(default)]
    pub members: i32,

    /// `ready/desired`, for the Ready column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub ready_of_desired: Option<String>,
}
