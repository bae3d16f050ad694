//! The custom resources: `ImageAccess` (the owner shares an image, here),
//! `ImageAccessAccept` (the member accepts it, in [`accept`]) and `ImageShare` (many images
//! with many projects, as ImageAccess objects it owns, in [`share`]): their specs, their status and the
//! schema the apiserver validates at admission. `crdgen` prints them as YAML into `crds/`.
//!
//! Everything here is data: no I/O, no clock. The controller owns behaviour.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod accept;
pub use accept::{AcceptDeletionPolicy, ImageAccessAccept, ImageAccessAcceptSpec, ImageAccessAcceptStatus};
mod share;
pub use share::{
    ImageId, ImageSelector, ImageShare, ImageShareSpec, ImageShareStatus, MemberId, MemberSelector, SelectedImage,
    SelectedMember, Selection, SelectorValue,
};

/// API group of every kind this operator serves.
pub const GROUP: &str = "glance.viettelidc.com.vn";
/// Finalizer that holds an object until its Glance membership is removed.
pub const FINALIZER: &str = "glance.viettelidc.com.vn/cleanup";
/// The membership an object has claimed, written (with [`FINALIZER`]) before the first Glance
/// call that could create it: if the operator stops before the status records the result, the
/// deletion still knows what to remove. JSON of a [`Membership`].
pub const CLAIM_ANNOTATION: &str = "glance.viettelidc.com.vn/membership";
/// The older form of `spec.onCreate: Adopt`: set to `"true"` on an object that names a
/// membership which already exists, its first look reads the image's members instead of
/// creating, so adopting what exists sends Glance no write at all. Without either a new object
/// creates first (one request, not two) and adopts on the 409.
pub const ADOPT_ANNOTATION: &str = "glance.viettelidc.com.vn/adopt";

/// Desired state of one Glance image membership: the image `imageId` shared with `memberId`.
// kube-derive takes one `printcolumn(...)` per column; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "glance.viettelidc.com.vn",
    version = "v1alpha1",
    kind = "ImageAccess",
    plural = "imageaccesses",
    shortname = "ia",
    category = "openstack",
    namespaced,
    status = "ImageAccessStatus",
    doc = "ImageAccess shares an OpenStack Glance image with another project: it manages one image \
           membership (image, member project, member status), like Terraform's \
           openstack_images_image_access_v2.",
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.imageId"),
    printcolumn(name = "Member", type_ = "string", json_path = ".spec.memberId"),
    printcolumn(
        name = "Member-Status",
        type_ = "string",
        json_path = ".status.memberStatus",
        description = "The member status Glance reports"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
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
#[x_kube(validation = kube::core::Rule::new("has(self.imageId) != has(self.imageRef)").message("give exactly one of imageId (the image by ID) and imageRef (the image by name)"))]
#[x_kube(validation = kube::core::Rule::new("has(self.memberId) != has(self.memberRef)").message("give exactly one of memberId (the project by ID) and memberRef (the project by name)"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.managementPolicy) || self.managementPolicy != 'Observe' || !has(self.onCreate)").message("onCreate has no effect with managementPolicy: Observe (an Observe object never creates nor adopts): remove onCreate, or set managementPolicy to Managed"))]
pub struct ImageAccessSpec {
    /// ID of the Glance image to share, as Glance shows it: a lowercase UUID with dashes. The
    /// image must have visibility `shared`, and the credentials must belong to its owner
    /// project (or an admin). Changing it replaces the membership: the old image stops being
    /// shared with the member (unless deletionPolicy is Orphan). Give this or imageRef.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 36))]
    #[x_kube(validation = kube::core::Rule::new(IMAGE_ID_RULE).message(kube::core::Message::Expression(IMAGE_ID_MESSAGE.into())))]
    pub image_id: String,

    /// The image by name instead of imageId: looked up among the images of the credentials'
    /// project when the spec changes, and kept (status.resolved) until it changes again: a
    /// rebuilt image of the same name is not followed (an ImageShare's imageSelector is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_ref: Option<ImageRef>,

    /// ID of the project the image is shared with (the consumer). Glance accepts any string and
    /// does not check it against Keystone, so check it yourself. Changing it replaces the
    /// membership. Give this or memberRef.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = kube::core::Rule::new("!self.contains('/')").message("memberId must not contain '/': it is a project ID, used in the Glance URL"))]
    #[x_kube(validation = kube::core::Rule::new("self == self.trim()").message("memberId must not start or end with whitespace"))]
    pub member_id: String,

    /// The project by name instead of memberId: looked up in Keystone when the spec changes
    /// (the credentials must be allowed to list projects: `identity:list_projects`), and kept
    /// (status.resolved) until it changes again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_ref: Option<MemberRef>,

    /// Desired member status: pending, accepted or rejected. Leave it unset to let the consumer
    /// decide. Setting it needs admin credentials or the member project's own: Glance refuses
    /// a status change from the image owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<MemberStatus>,

    /// Region whose Glance endpoint is used. Overrides `region_name` of the cloud entry.
    /// Changing it replaces the membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub region: Option<String>,

    /// Where the OpenStack credentials are: a Secret in this namespace with a clouds.yaml.
    pub cloud_credentials_ref: CloudCredentialsRef,

    /// What deleting this object does to the membership: Delete (the default) removes it from
    /// Glance, Orphan leaves it in place. Orphan also leaves the previous membership in place
    /// when a change of imageId, memberId or region replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// How often the operator looks at the membership in Glance again while nothing changes
    /// (Glance has no watch: a hand-made change is repaired at the next look): from 1m to 24h
    /// in whole h, m and s, such as `1m`, `1m30s` or `1h`. Unset: the operator's
    /// `--resync-period` (10m unless set otherwise). The objects of one image (same credentials,
    /// region and namespace) are looked at together, with one Glance member list, at the
    /// shortest period among them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(RESYNC_PERIOD_RULE).message(RESYNC_PERIOD_MESSAGE))]
    pub resync_period: Option<String>,

    /// What the first look does when the membership may exist already: Create (the default)
    /// creates it at once and adopts one that exists on Glance's 409 (one request for a new
    /// membership); Adopt reads the image's members first and adopts what is there with no
    /// write to Glance at all (what `export` writes for a migration), creating only what is
    /// missing. The annotation glance.viettelidc.com.vn/adopt: "true" is the older form of Adopt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_create: Option<OnCreate>,

    /// Managed (the default): the operator makes Glance follow the spec. Observe: it only reads
    /// the membership and reports it (status, Ready, and InSync False with what differs from the
    /// spec); it never writes to Glance, holds no finalizer, never blocks a Managed object of
    /// the same membership, and its deletion calls nothing. Managed → Observe stops managing
    /// with no Glance write (the membership stays as it is); Observe → Managed adopts what
    /// exists with reads only. A migration can start with Observe objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_policy: Option<ManagementPolicy>,
}

// Whether the operator writes to Glance for the object (no doc comment: kube-derive would put it
// in place of the field's description).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ManagementPolicy {
    /// Make Glance follow the spec.
    #[default]
    Managed,
    /// Read and report only; never write to Glance.
    Observe,
}

// What the first look does with a membership that may exist (no doc comment: kube-derive would
// put it in the schema of every field of this type, over the field's own description).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum OnCreate {
    /// Create the membership, adopting it on Glance's 409.
    #[default]
    Create,
    /// Read the image's members first; adopt with no write what exists.
    Adopt,
}

/// The form of the CRDs' durations: up to three parts of up to 5 digits and h, m or s, so that
/// CEL's `duration()` never overflows (it would refuse with an evaluation error, not the rule's
/// message).
macro_rules! duration_form {
    () => {
        "'^([0-9]{1,5}(h|m|s)){1,3}$'"
    };
}
/// `resyncPeriod`: whole hours, minutes and seconds ([`go_duration`]), from a minute to a day
/// (the bounds of `--resync-period` but for the lower, which spares Glance).
pub(crate) const RESYNC_PERIOD_RULE: &str = concat!(
    "self.matches(",
    duration_form!(),
    ") && duration(self) >= duration('1m') && duration(self) <= duration('24h')"
);
/// `ImageShare.spec.refreshInterval`: at least 30s.
pub(crate) const REFRESH_INTERVAL_RULE: &str = concat!(
    "self.matches(",
    duration_form!(),
    ") && duration(self) >= duration('30s')"
);
pub(crate) const RESYNC_PERIOD_MESSAGE: &str =
    "resyncPeriod must be a duration from 1m to 24h in whole h, m and s, such as 1m, 1m30s, 10m or 1h";

/// The period of a `resyncPeriod` as written (`None`: the operator's `default`). Never below a
/// minute, whatever got stored: a cluster that skipped the CRD's rule must not loop on Glance.
pub fn resync_period(written: Option<&str>, default: std::time::Duration) -> std::time::Duration {
    written
        .and_then(go_duration)
        .map_or(default, |period| period.max(std::time::Duration::from_secs(60)))
}

/// A duration as the CRDs admit it (up to three parts of digits and h, m or s, such as `1h30m`); `None` for any other
/// text (an object stored before a rule existed), so its caller falls back to its default.
pub fn go_duration(text: &str) -> Option<std::time::Duration> {
    let (mut total, mut number) = (0u64, String::new());
    for c in text.chars() {
        match c {
            '0'..='9' => number.push(c),
            'h' | 'm' | 's' => {
                let n: u64 = number.parse().ok()?;
                number.clear();
                let unit = match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                total = total.checked_add(n.checked_mul(unit)?)?;
            }
            _ => return None,
        }
    }
    (number.is_empty() && !text.is_empty()).then_some(std::time::Duration::from_secs(total))
}

/// Glance's form of an image ID. Glance stores IDs lowercase with dashes and answers 404 for
/// any other spelling, so another spelling is refused at admission instead of looping on
/// ImageNotFound.
pub(crate) const IMAGE_ID_RULE: &str = "self.matches('^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')";
/// The refusal shows the value in the expected form when it is a UUID spelled otherwise.
pub(crate) const IMAGE_ID_MESSAGE: &str = "self.lowerAscii().matches('^[0-9a-f]{32}$') ? 'imageId must be written as Glance shows it, lowercase with dashes: ' + self.lowerAscii().substring(0, 8) + '-' + self.lowerAscii().substring(8, 12) + '-' + self.lowerAscii().substring(12, 16) + '-' + self.lowerAscii().substring(16, 20) + '-' + self.lowerAscii().substring(20, 32) : (self.lowerAscii().matches('^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$') ? 'imageId must be written as Glance shows it, lowercase with dashes: ' + self.lowerAscii() : 'imageId must be a Glance image ID: a lowercase UUID with dashes, such as 6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10 (openstack image list shows it)')";

/// The image ID in Glance's form (lowercase, dashed), whatever the spelling: objects stored
/// before admission refused other spellings still name the right image.
pub fn normalize_image_id(id: &str) -> String {
    let lower = id.trim().to_ascii_lowercase();
    if lower.len() == 32 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!(
            "{}-{}-{}-{}-{}",
            &lower[0..8],
            &lower[8..12],
            &lower[12..16],
            &lower[16..20],
            &lower[20..32]
        )
    } else {
        lower
    }
}

/// A clouds.yaml in a Secret, and the cloud in it to use.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudCredentialsRef {
    /// Name of a Secret in the object's namespace. Key `clouds.yaml` holds a standard OpenStack
    /// clouds.yaml; optional key `cacert` holds a PEM CA bundle for the cloud's TLS endpoints.
    #[schemars(length(min = 1, max = 253))]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"))]
    pub secret_name: String,

    /// Name of the cloud entry under `clouds:` in that clouds.yaml.
    #[schemars(length(min = 1, max = 255))]
    pub cloud_name: String,
}

// Glance member status. (No doc comment: schemars would put it in place of each field's.)
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// Shared, not yet accepted: the image does not show in the consumer's default image list.
    Pending,
    /// Accepted: the image shows in the consumer's image list.
    Accepted,
    /// Rejected by the consumer (the image still can be used by ID).
    Rejected,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Pending => "pending",
            MemberStatus::Accepted => "accepted",
            MemberStatus::Rejected => "rejected",
        }
    }
}

impl std::fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// What deleting the object does to the membership in Glance (no doc comment, as above).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Remove the membership from Glance.
    #[default]
    Delete,
    /// Leave the membership in Glance.
    Orphan,
}

/// Observed state, written by the operator.
// The default makes a new object read as not yet observed (generation 1, observed 0) from its
// first moment, so kstatus (Flux, Helm --wait) says InProgress, not Current, until the operator
// has looked, without a status write for a state that lasts milliseconds.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"observedGeneration": 0}))]
pub struct ImageAccessStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready (the membership exists as asked), Reconciling (work or a retry in flight) and
    /// Stalled (progress needs a human; the message says what to change).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The member status Glance reports now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_status: Option<MemberStatus>,

    /// When Glance created the membership (Glance's created_at).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub created_at: Option<String>,

    /// When Glance last updated the membership (Glance's updated_at).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub updated_at: Option<String>,

    /// The Glance schema of the member (Glance's schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub schema: Option<String>,

    /// The membership that exists in Glance under this object's management. The operator uses
    /// it to remove the old membership when imageId, memberId or region change, and on delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<Membership>,

    /// What imageRef and memberRef resolved to, and the names looked up (looked up again only
    /// when they change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<ResolvedRefs>,
}

/// An image by name.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ImageRef {
    /// The image's name, exactly as Glance has it.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
}

/// A Keystone project by name.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberRef {
    /// The project's name.
    #[schemars(length(min = 1, max = 64))]
    pub project_name: String,

    /// The ID of the project's domain (`default` for the Default domain). Unset: any domain
    /// (a name found in two domains is refused, naming both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub domain: Option<String>,
}

/// What imageRef and memberRef resolved to, and the names looked up: they are looked up again
/// only when the names change (not at any other edit of the spec).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedRefs {
    /// The imageRef looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_ref: Option<ImageRef>,

    /// The memberRef looked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_ref: Option<MemberRef>,

    /// Where the image name was looked up (the region), and for which member (an accept's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub image_looked_up_in: Option<String>,

    /// The ID of the image imageRef names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 36))]
    pub image_id: Option<String>,

    /// The ID of the project memberRef names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub member_id: Option<String>,
}

/// One membership in one Glance, as an object claims it and records it: the image, the member
/// and where it lives, and who holds it.
///
/// Two records name the same membership when image, member and Glance are the same
/// ([`Membership::same`]): the same endpoint URL, or the same image service of the catalog in the
/// same region (another interface or a new URL of one Glance). The region recorded is the
/// catalog endpoint's, so a `region_name` added to or dropped from a clouds.yaml that resolves to
/// the same endpoint changes nothing. The holder (`project`, `admin`) says whose credentials made or adopted it (or set its
/// status): the witness whose "not found" means gone, and who must be able to undo it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// Glance image ID.
    #[schemars(length(max = 36))]
    pub image_id: String,
    /// Member (project) ID.
    #[schemars(length(max = 255))]
    pub member_id: String,
    /// Region of the Glance endpoint (the catalog's, once resolved); absent when neither the spec
    /// nor the cloud names one and the record was written before regions were resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub region: Option<String>,
    /// The Glance endpoint URL the membership lives on, from the Keystone catalog. Absent in
    /// records written before it was recorded (the region decides then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub endpoint: Option<String>,
    /// The catalog's id of that image service (the same for each of its interfaces and URLs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub service: Option<String>,
    /// The Keystone project whose credentials made or adopted the membership (for an
    /// ImageAccessAccept: set its status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub project: Option<String>,
    /// Whether those credentials had the admin role.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}

impl std::fmt::Display for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "image {} / member {}", self.image_id, self.member_id)?;
        if let Some(region) = &self.region {
            write!(f, " in region {region}")?;
        }
        Ok(())
    }
}

impl Membership {
    /// A membership as a spec names it: no endpoint or holder known yet.
    pub fn named(image_id: String, member_id: String, region: Option<String>) -> Membership {
        Membership {
            image_id,
            member_id,
            region,
            ..Membership::default()
        }
    }

    /// Whether `self` and `other` are the same membership: the same image and member in the
    /// same Glance (see [`Membership::same_glance`]). Who holds it does not matter.
    pub fn same(&self, other: &Membership) -> bool {
        self.image_id == other.image_id && self.member_id == other.member_id && self.same_glance(other)
    }

    /// Whether both records live in the same Glance: the same endpoint URL, or the same catalog
    /// service in the same region; the same region, when either record has no endpoint.
    pub fn same_glance(&self, other: &Membership) -> bool {
        match (&self.endpoint, &other.endpoint) {
            (Some(a), Some(b)) => {
                a == b || (self.service.is_some() && self.service == other.service && self.region == other.region)
            }
            _ => self.region == other.region,
        }
    }

    /// Whether `self` and `other` may be the same membership. A place that is unknown on either
    /// side (an object that names no region and has not resolved its cloud's yet) matches any.
    pub fn overlaps(&self, other: &Membership) -> bool {
        self.image_id == other.image_id
            && self.member_id == other.member_id
            && match (&self.endpoint, &other.endpoint, &self.region, &other.region) {
                (Some(_), Some(_), _, _) => self.same_glance(other),
                (_, _, Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// This record with the holder of `previous` when that names the same membership: who made
    /// it stays recorded while others (a rotated Secret, an admin) look after it.
    pub fn held_as(mut self, previous: Option<&Membership>) -> Membership {
        if let Some(previous) = previous.filter(|p| p.same(&self) && (p.project.is_some() || p.admin)) {
            self.project = previous.project.clone();
            self.admin = previous.admin;
        }
        self
    }
}

/// What both kinds of object share: the membership they claimed and have applied, the
/// finalizer, the credentials and the status conditions. The controller's shared parts work on
/// any `Managed` object.
pub trait Managed: kube::Resource {
    /// The part of the status both kinds share.
    fn membership_status(&self) -> Option<&ImageAccessStatus>;

    /// The Secret and cloud the object's credentials come from.
    fn credentials_ref(&self) -> &CloudCredentialsRef;

    /// `spec.resyncPeriod` as written.
    fn resync_period_spec(&self) -> Option<&str>;

    /// `spec.managementPolicy` as written.
    fn management_policy(&self) -> Option<ManagementPolicy>;

    /// Whether the object only reads and reports (`managementPolicy: Observe`): it never writes
    /// to Glance, holds nothing, and takes no part in who manages a membership.
    fn observes(&self) -> bool {
        self.management_policy() == Some(ManagementPolicy::Observe)
    }

    /// How long a look that found nothing to do waits for the next: `spec.resyncPeriod`, else
    /// the operator's `default` (`--resync-period`).
    fn resync_period(&self, default: std::time::Duration) -> std::time::Duration {
        resync_period(self.resync_period_spec(), default)
    }

    /// The membership this object claimed before calling Glance (see [`CLAIM_ANNOTATION`]).
    fn claim(&self) -> Option<Membership> {
        let text = self.meta().annotations.as_ref()?.get(CLAIM_ANNOTATION)?;
        serde_json::from_str(text).ok()
    }

    /// The membership the status records as applied.
    fn applied(&self) -> Option<&Membership> {
        self.membership_status()?.applied.as_ref()
    }

    /// Whether this object holds `membership`: claimed it, or has it applied.
    fn holds(&self, membership: &Membership) -> bool {
        self.claim().is_some_and(|claim| claim.same(membership)) || self.applied().is_some_and(|a| a.same(membership))
    }

    fn has_finalizer(&self) -> bool {
        self.meta()
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
    }

    fn is_deleting(&self) -> bool {
        self.meta().deletion_timestamp.is_some()
    }

    /// The condition of the given type, if the status has one.
    fn condition(&self, type_: &str) -> Option<&Condition> {
        self.membership_status()?.conditions.iter().find(|c| c.type_ == type_)
    }

    /// The memberships the object may have touched in Glance: the one its status records, and
    /// the one it claimed before its last Glance call.
    fn held_memberships(&self) -> Vec<Membership> {
        let mut held: Vec<Membership> = self.applied().cloned().into_iter().collect();
        if let Some(claim) = self.claim()
            && !held.iter().any(|h| h.same(&claim))
        {
            held.push(claim);
        }
        held
    }
}

impl Managed for ImageAccess {
    fn membership_status(&self) -> Option<&ImageAccessStatus> {
        self.status.as_ref()
    }

    fn credentials_ref(&self) -> &CloudCredentialsRef {
        &self.spec.cloud_credentials_ref
    }

    fn resync_period_spec(&self) -> Option<&str> {
        self.spec.resync_period.as_deref()
    }

    fn management_policy(&self) -> Option<ManagementPolicy> {
        self.spec.management_policy
    }
}

impl ImageAccess {
    pub fn deletion_policy(&self) -> DeletionPolicy {
        self.spec.deletion_policy.unwrap_or_default()
    }

    /// The membership the spec names (its names as last resolved), before the cloud's default
    /// region is known.
    pub fn named_membership(&self) -> Membership {
        let resolved = self.status.as_ref().and_then(|s| s.resolved.as_ref());
        let image_id = match &self.spec.image_ref {
            Some(_) => resolved.and_then(|r| r.image_id.clone()).unwrap_or_default(),
            None => normalize_image_id(&self.spec.image_id),
        };
        let member_id = match &self.spec.member_ref {
            Some(_) => resolved.and_then(|r| r.member_id.clone()).unwrap_or_default(),
            None => self.spec.member_id.clone(),
        };
        Membership::named(image_id, member_id, self.spec.region.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 23: an object's own resyncPeriod, else the operator's.
    #[test]
    fn the_resync_period_is_the_objects_else_the_operators() {
        use std::time::Duration;
        let default = Duration::from_secs(600);
        let mut object = ImageAccess::test("a", "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10", "m", "owner");
        assert_eq!(object.resync_period(default), default);
        object.spec.resync_period = Some("1m30s".into());
        assert_eq!(object.resync_period(default), Duration::from_secs(90));
        // Stored before admission checked it: the operator's period, not a hot loop.
        object.spec.resync_period = Some("soon".into());
        assert_eq!(object.resync_period(default), default);
        object.spec.resync_period = Some("0s".into());
        assert_eq!(
            object.resync_period(default),
            Duration::from_secs(60),
            "never below a minute"
        );
        let mut accept = ImageAccessAccept::test(
            "b",
            "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10",
            "member",
            MemberStatus::Accepted,
        );
        accept.spec.resync_period = Some("2m".into());
        assert_eq!(accept.resync_period(default), Duration::from_secs(120));
    }

    #[test]
    fn image_ids_are_normalized_to_glances_form() {
        let canonical = "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";
        assert_eq!(normalize_image_id(canonical), canonical);
        assert_eq!(normalize_image_id("6C0A1E2B-2B1E-4F58-9A53-4F0C7F1C2A10"), canonical);
        assert_eq!(normalize_image_id("6c0a1e2b2b1e4f589a534f0c7f1c2a10"), canonical);
        assert_eq!(normalize_image_id("not-a-uuid"), "not-a-uuid");
    }

    #[test]
    fn an_unknown_region_overlaps_any() {
        let m = |region: Option<&str>| Membership::named("i".into(), "m".into(), region.map(str::to_string));
        assert!(m(Some("R1")).overlaps(&m(Some("R1"))));
        assert!(!m(Some("R1")).overlaps(&m(Some("R2"))));
        assert!(m(None).overlaps(&m(Some("R2"))));
        assert!(!m(None).overlaps(&Membership {
            member_id: "other".into(),
            ..m(None)
        }));
    }
}

#[cfg(test)]
mod membership_tests {
    use super::*;

    fn at(region: Option<&str>, endpoint: Option<&str>) -> Membership {
        Membership {
            endpoint: endpoint.map(str::to_string),
            ..Membership::named("i".into(), "m".into(), region.map(str::to_string))
        }
    }

    #[test]
    fn the_endpoint_decides_whether_two_records_are_the_same_membership() {
        let glance = Some("https://glance.example:9292");
        assert!(
            at(Some("RegionOne"), glance).same(&at(None, glance)),
            "region_name dropped, same Glance"
        );
        assert!(!at(Some("RegionOne"), glance).same(&at(Some("RegionOne"), Some("https://other:9292"))));
        assert!(
            at(Some("RegionOne"), None).same(&at(Some("RegionOne"), glance)),
            "an older record: by region"
        );
        assert!(!at(Some("RegionOne"), None).same(&at(None, glance)));
        let mut held = at(None, glance);
        held.project = Some("owner".into());
        assert!(held.same(&at(None, glance)), "the holder is not part of the identity");
    }

    #[test]
    fn another_interface_or_url_of_the_same_catalog_service_is_the_same_glance() {
        let place = |url: &str, service: Option<&str>, region: &str| Membership {
            endpoint: Some(url.into()),
            service: service.map(str::to_string),
            ..Membership::named("i".into(), "m".into(), Some(region.into()))
        };
        let public = place("https://glance.example:9292", Some("svc"), "RegionOne");
        assert!(
            public.same(&place("http://10.0.0.5:9292", Some("svc"), "RegionOne")),
            "internal interface"
        );
        assert!(
            !public.same(&place("http://10.0.0.5:9292", Some("svc"), "RegionTwo")),
            "another region"
        );
        assert!(
            !public.same(&place("http://10.0.0.5:9292", Some("other"), "RegionOne")),
            "another Glance"
        );
        assert!(
            public.same(&place("https://glance.example:9292", None, "RegionTwo")),
            "one URL, one Glance"
        );
        assert!(
            !public.same(&place("http://10.0.0.5:9292", None, "RegionOne")),
            "no service id: the URL decides"
        );
    }

    #[test]
    fn the_holder_of_the_same_membership_is_kept() {
        let mut first = at(None, Some("g"));
        first.project = Some("owner".into());
        let mut now = at(Some("RegionOne"), Some("g"));
        now.project = Some("admin-project".into());
        now.admin = true;
        let kept = now.clone().held_as(Some(&first));
        assert_eq!((kept.project.as_deref(), kept.admin), (Some("owner"), false));
        assert_eq!(kept.region.as_deref(), Some("RegionOne"), "the place as resolved now");
        let other = at(None, Some("elsewhere")).held_as(Some(&first));
        assert_eq!(other.project, None, "another membership keeps nothing");
    }
}
