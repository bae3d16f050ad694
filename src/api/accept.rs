//! `ImageAccessAccept`: the member project's side of a membership. The owner shares an image
//! (an `ImageAccess`, or anything else); the member says, with its own credentials, whether it
//! accepts it, as Terraform's `openstack_images_image_access_accept_v2` does.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    CloudCredentialsRef, IMAGE_ID_MESSAGE, IMAGE_ID_RULE, ImageAccessStatus, Managed, MemberStatus, Membership,
    normalize_image_id,
};

/// Desired status of one membership, as its member project wants it.
// kube-derive takes one `printcolumn(...)` per column; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "glance.viettelidc.com.vn",
    version = "v1alpha1",
    kind = "ImageAccessAccept",
    plural = "imageaccessaccepts",
    shortname = "iaa",
    category = "openstack",
    namespaced,
    status = "ImageAccessAcceptStatus",
    doc = "ImageAccessAccept accepts (or rejects) an OpenStack Glance image shared with a project, \
           with that project's credentials, like Terraform's \
           openstack_images_image_access_accept_v2.",
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.imageId"),
    printcolumn(
        name = "Member",
        type_ = "string",
        json_path = ".status.memberId",
        description = "The member project (spec.memberId, or the project of the credentials)"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".spec.status",
        description = "The member status asked for"
    ),
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
pub struct ImageAccessAcceptSpec {
    /// ID of the Glance image shared with the member project: a lowercase UUID with dashes.
    /// Changing it lets go of the previous image as deletionPolicy says. Give this or imageRef.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 36))]
    #[x_kube(validation = kube::core::Rule::new(IMAGE_ID_RULE).message(kube::core::Message::Expression(IMAGE_ID_MESSAGE.into())))]
    pub image_id: String,

    /// The image by name instead of imageId: looked up among the images shared with the member
    /// project when the spec changes, and kept (status.resolved) until it changes again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_ref: Option<super::ImageRef>,

    /// ID of the member project. Leave it unset to use the project the credentials are scoped
    /// to (read from the Keystone token), as Terraform does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = kube::core::Rule::new("!self.contains('/')").message("memberId must not contain '/': it is a project ID, used in the Glance URL"))]
    #[x_kube(validation = kube::core::Rule::new("self == self.trim()").message("memberId must not start or end with whitespace"))]
    pub member_id: Option<String>,

    /// The member status to set: accepted (the image shows in the member's image list),
    /// rejected or pending.
    pub status: MemberStatus,

    /// Region whose Glance endpoint is used. Overrides `region_name` of the cloud entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub region: Option<String>,

    /// Where the member project's credentials are: a Secret in this namespace with a
    /// clouds.yaml. The image owner's credentials cannot accept: Glance lets only the member
    /// (or an admin) set the status.
    pub cloud_credentials_ref: CloudCredentialsRef,

    /// What deleting this object does: Reject (the default, as Terraform) sets the member
    /// status to rejected, so the image leaves the member's image list; Orphan leaves it as it
    /// is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<AcceptDeletionPolicy>,

    /// How often the operator looks at the member status in Glance again while nothing changes
    /// (a change made by hand is set back at the next look): from 1m to 24h in whole h, m and
    /// s, such as `1m`, `1m30s` or `1h`. Unset: the operator's `--resync-period` (10m unless set
    /// otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new(super::RESYNC_PERIOD_RULE).message(super::RESYNC_PERIOD_MESSAGE))]
    pub resync_period: Option<String>,

    /// Managed (the default): the operator sets the member status to spec.status. Observe: it
    /// only reads and reports the member status (InSync False when it differs from
    /// spec.status); it never writes to Glance, holds no finalizer and never blocks another
    /// object that sets the same status. Managed → Observe leaves the status as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_policy: Option<super::ManagementPolicy>,
}

// What deleting an ImageAccessAccept does (no doc comment: schemars would put it in place of
// the field's).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AcceptDeletionPolicy {
    /// Set the member status to rejected.
    #[default]
    Reject,
    /// Leave the member status as it is.
    Orphan,
}

/// Observed state, written by the operator: the shape of ImageAccess's status, and what the
/// member may see of the image.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("default" = {"observedGeneration": 0}))]
pub struct ImageAccessAcceptStatus {
    #[serde(flatten)]
    pub membership: ImageAccessStatus,

    /// The member project: spec.memberId, or the project the credentials are scoped to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub member_id: Option<String>,

    /// The image's name, as Glance shows it to the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub image_name: Option<String>,

    /// The project that owns the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub image_owner: Option<String>,
}

impl Managed for ImageAccessAccept {
    fn membership_status(&self) -> Option<&ImageAccessStatus> {
        self.status.as_ref().map(|s| &s.membership)
    }

    fn credentials_ref(&self) -> &CloudCredentialsRef {
        &self.spec.cloud_credentials_ref
    }

    fn resync_period_spec(&self) -> Option<&str> {
        self.spec.resync_period.as_deref()
    }

    fn management_policy(&self) -> Option<super::ManagementPolicy> {
        self.spec.management_policy
    }
}

impl ImageAccessAccept {
    /// The member project: the spec's, or the one the credentials resolved to (known from the
    /// first reconcile that read them).
    pub fn member_id(&self) -> Option<String> {
        self.spec
            .member_id
            .clone()
            .or_else(|| self.status.as_ref()?.member_id.clone())
    }

    pub fn deletion_policy(&self) -> AcceptDeletionPolicy {
        self.spec.deletion_policy.unwrap_or_default()
    }

    /// The membership the spec names once the member is known (`member_id`: the spec's, or
    /// the credentials' project), before the cloud's default region is known.
    pub fn membership_of(&self, member_id: String) -> Membership {
        Membership::named(self.named_image_id(), member_id, self.spec.region.clone())
    }

    /// The image the spec names: its imageId, or what its imageRef last resolved to.
    pub fn named_image_id(&self) -> String {
        match &self.spec.image_ref {
            Some(_) => self
                .status
                .as_ref()
                .and_then(|s| s.membership.resolved.as_ref())
                .and_then(|r| r.image_id.clone())
                .unwrap_or_default(),
            None => normalize_image_id(&self.spec.image_id),
        }
    }
}
