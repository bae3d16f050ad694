//! Fixture builders on the types: `ImageAccess::test("a", IMAGE, "member-project", "owner").finalized()`,
//! `ImageAccessAccept::test("b", IMAGE, "member", MemberStatus::Accepted)`.

use kube::api::ObjectMeta;

use crate::api::{
    AcceptDeletionPolicy, CloudCredentialsRef, DeletionPolicy, FINALIZER, ImageAccess, ImageAccessAccept,
    ImageAccessAcceptSpec, ImageAccessSpec, ImageAccessStatus, MemberStatus, Membership,
};

pub const NAMESPACE: &str = "default";
pub const SECRET: &str = "openstack-credentials";

impl ImageAccess {
    /// An object in [`NAMESPACE`] using the cloud `cloud` of Secret [`SECRET`].
    pub fn test(name: &str, image_id: &str, member_id: &str, cloud: &str) -> ImageAccess {
        let mut object = ImageAccess::new(
            name,
            ImageAccessSpec {
                image_id: image_id.into(),
                image_ref: None,
                member_id: member_id.into(),
                member_ref: None,
                status: None,
                region: None,
                cloud_credentials_ref: CloudCredentialsRef {
                    secret_name: SECRET.into(),
                    cloud_name: cloud.into(),
                },
                deletion_policy: None,
                resync_period: None,
                on_create: None,
                management_policy: None,
            },
        );
        object.metadata = ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NAMESPACE.into()),
            uid: Some(format!("uid-{name}")),
            generation: Some(1),
            resource_version: Some("1".into()),
            ..Default::default()
        };
        object
    }

    pub fn finalized(mut self) -> Self {
        self.metadata.finalizers = Some(vec![FINALIZER.into()]);
        self
    }

    pub fn deleting(mut self) -> Self {
        self.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::now(),
        ));
        self
    }

    pub fn with_member_status(mut self, status: MemberStatus) -> Self {
        self.spec.status = Some(status);
        self
    }

    pub fn with_policy(mut self, policy: DeletionPolicy) -> Self {
        self.spec.deletion_policy = Some(policy);
        self
    }

    /// A status recording `applied` as the managed membership (region as the fake's).
    pub fn with_applied(mut self, image_id: &str, member_id: &str) -> Self {
        let status = self.status.get_or_insert_with(ImageAccessStatus::default);
        status.applied = Some(Membership::named(
            image_id.into(),
            member_id.into(),
            Some(crate::testing::fake_openstack::REGION.into()),
        ));
        self
    }
}

impl ImageAccessAccept {
    /// An object in [`NAMESPACE`] asking for `status` of `image_id`'s member (the credentials'
    /// project), with the cloud `cloud` of Secret [`SECRET`].
    pub fn test(name: &str, image_id: &str, cloud: &str, status: MemberStatus) -> ImageAccessAccept {
        let mut object = ImageAccessAccept::new(
            name,
            ImageAccessAcceptSpec {
                image_id: image_id.into(),
                image_ref: None,
                member_id: None,
                status,
                region: None,
                cloud_credentials_ref: CloudCredentialsRef {
                    secret_name: SECRET.into(),
                    cloud_name: cloud.into(),
                },
                deletion_policy: None,
                resync_period: None,
                management_policy: None,
            },
        );
        object.metadata.namespace = Some(NAMESPACE.into());
        object
    }

    pub fn for_member(mut self, member_id: &str) -> Self {
        self.spec.member_id = Some(member_id.into());
        self
    }

    pub fn with_policy(mut self, policy: AcceptDeletionPolicy) -> Self {
        self.spec.deletion_policy = Some(policy);
        self
    }
}
