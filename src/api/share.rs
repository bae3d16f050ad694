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
#[x_kube(validation = kube::core::Rule::new("has(self.imageIds) != has(self.imageSelector)").message("give exactly one of imageIds (the images by ID) and imageSelector (the images by name, tags or properties)"))]
#[x_kube(validation = kube::core::Rule::new("[has(self.memberIds), has(self.memberSelector), has(self.memberRefs)].filter(x, x).size() == 1").message("give exactly one of memberIds (the projects by ID), memberRefs (the projects by name) and memberSelector (the projects by tags, domain or parent)"))]
pub struct ImageShareSpec {
    /// IDs of the Glance images to share (1 to 100), each a lowercase UUID with dashes. The
    /// images must have visibility `shared` and belong to the credentials' project. Removing
    /// one removes its memberships (as deletionPolicy says). Give this or imageSelector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 100))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = kube::core::Rule::new(image_ids_rule()).message(kube::core::Message::Message("imageIds must be Glance image IDs: lowercase UUIDs with dashes, such as 6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10 (openstack image list shows them)".into())))]
    pub image_ids: Vec<ImageId>,

    /// The images to share by what they are: the `active` images of the credentials' project
    /// that match every criterion given, looked up with Glance's own filters at creation, at
    /// every spec change and every refreshInterval. A rebuilt image that matches is shared; one
    /// that stops matching leaves the share as if removed from imageIds. Give this or imageIds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_selector: Option<ImageSelector>,

    /// IDs of the projects to share every image with (1 to 1,000). Glance does not check them
    /// against Keystone, so check them yourself. Removing one removes its memberships. Give this
    /// or memberSelector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 1000))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = kube::core::Rule::new("self.all(m, !m.contains('/'))").message("memberIds must not contain '/': they are project IDs, used in the Glance URL"))]
    #[x_kube(validation = kube::core::Rule::new("self.all(m, m == m.trim())").message("memberIds must not start or end with whitespace"))]
    pub member_ids: Vec<MemberId>,

    /// The projects to share with by what they are: the Keystone projects that match every
    /// criterion given, looked up like imageSelector. Listing projects needs the right to list
    /// them in Keystone (`identity:list_projects`: by default, the admin role). Give this
    /// or memberIds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_selector: Option<MemberSelector>,

    /// The projects to share with by name instead of memberIds (1 to 100), looked up in
    /// Keystone when the spec changes (the credentials must be allowed to list projects:
    /// `identity:list_projects`) and kept (status.selection.members) until it changes again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 100))]
    pub member_refs: Vec<super::MemberRef>,

    /// How often the selectors are evaluated again (Glance and Keystone have no watch): a Go
    /// duration such as `5m` (the default) or `1h30m`, at least 30s. Each evaluation is one image
    /// list and one project list, whatever the number of images and projects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(super::REFRESH_INTERVAL_RULE).message("refreshInterval must be a duration of at least 30s, such as 30s, 5m or 1h"))]
    pub refresh_interval: Option<String>,

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

    /// How often the operator looks at each membership in Glance again while nothing changes,
    /// given to every child ImageAccess (and used by the share for itself): from 1m to 24h in
    /// whole h, m and s, such as `1m`, `1m30s` or `1h`. Unset: the operator's `--resync-period`
    /// (10m unless set otherwise). Not how often selectors are evaluated: that is refreshInterval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(super::RESYNC_PERIOD_RULE).message(super::RESYNC_PERIOD_MESSAGE))]
    pub resync_period: Option<String>,

    /// Managed (the default) or Observe, given to every child ImageAccess: Observe children
    /// only read and report their memberships (InSync), never write to Glance and hold no
    /// finalizer. Managed → Observe leaves every membership as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_policy: Option<super::ManagementPolicy>,
}

/// Images by what they are. Every criterion given must match.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.name) || has(self.tags) || has(self.properties)").message("imageSelector needs name, tags or properties: an empty selector would share every image of the project"))]
pub struct ImageSelector {
    /// The image name, exactly (Glance's `name` filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub name: Option<String>,

    /// Tags the image must all carry (Glance's `tag` filter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub tags: Vec<SelectorValue>,

    /// Image properties that must have these values, such as `os_distro: ubuntu`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 20, "minProperties" = 1))]
    #[x_kube(validation = kube::core::Rule::new("self.all(k, k.matches('^[A-Za-z0-9_:.-]{1,255}$') && !(k in ['name', 'tag', 'status', 'owner', 'visibility', 'limit', 'marker', 'sort', 'sort_key', 'sort_dir', 'member_status', 'id', 'created_at', 'updated_at', 'size_min', 'size_max']))").message("imageSelector.properties keys must be image property names (letters, digits, _ : . -); use name and tags for those"))]
    pub properties: std::collections::BTreeMap<String, SelectorValue>,

    /// Only the N newest of the matching `shared` images by created_at (ties by ID), 1 to 100:
    /// "the 2 newest builds". A newer build not shared yet is listed with its reason and does not
    /// count (it pushes no shared build out). Unset: every matching image (at most 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub newest: Option<i32>,
}

/// Projects by what they are. Every criterion given must match.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.tags) || has(self.tagsAny) || has(self.domain) || has(self.parent)").message("memberSelector needs tags, tagsAny, domain or parent: an empty selector would share with every project"))]
pub struct MemberSelector {
    /// Tags the project must all carry (Keystone's `tags` filter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = kube::core::Rule::new("self.all(t, !t.contains(','))").message("memberSelector.tags must not contain ',': Keystone reads it as a list"))]
    pub tags: Vec<SelectorValue>,

    /// Tags of which the project must carry at least one (Keystone's `tags-any` filter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 20))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[x_kube(validation = kube::core::Rule::new("self.all(t, !t.contains(','))").message("memberSelector.tagsAny must not contain ',': Keystone reads it as a list"))]
    pub tags_any: Vec<SelectorValue>,

    /// The ID of the domain the projects are in (`default` for the Default domain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub domain: Option<String>,

    /// The ID of the projects' parent project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub parent: Option<String>,
}

/// A tag, name or property value of a selector.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[serde(transparent)]
pub struct SelectorValue(#[schemars(length(min = 1, max = 255))] pub String);

/// What the selectors matched at their last evaluation.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    /// When the selectors found this (RFC 3339). A refresh that finds the same is not written:
    /// a steady share writes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub evaluated_at: Option<String>,

    /// The metadata.generation whose selectors were evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The images imageSelector matched, newest first; those the share cannot share say why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub images: Vec<SelectedImage>,

    /// The projects memberSelector matched, or memberRefs named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub members: Vec<SelectedMember>,
}

/// One image imageSelector matched.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectedImage {
    #[schemars(length(max = 36))]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub name: Option<String>,
    /// Glance's created_at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub created_at: Option<String>,
    /// Why the image matched but is not shared (`NotSharedVisibility`): the message says what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub message: Option<String>,
}

/// One project memberSelector matched.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectedMember {
    #[schemars(length(max = 255))]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub name: Option<String>,
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

    /// Distinct images shared (listed, or selected and shareable).
    #[serde(default)]
    pub images: i32,

    /// Distinct member projects (listed or selected).
    #[serde(default)]
    pub members: i32,

    /// What imageSelector and memberSelector matched, and when (only with a selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,

    /// `ready/desired`, for the Ready column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub ready_of_desired: Option<String>,
}

impl ImageShare {
    /// Whether the share only observes (`managementPolicy: Observe`): its children do too.
    pub fn observes(&self) -> bool {
        self.spec.management_policy == Some(super::ManagementPolicy::Observe)
    }
}
