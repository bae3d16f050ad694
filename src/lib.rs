//! image-access-operator: manages OpenStack Glance image memberships from Kubernetes.
//!
//! - [`api`]: the `ImageAccess` custom resource.
//! - [`openstack`]: a thin Keystone + Glance client.
//! - [`metrics`]: Prometheus metrics.
#![forbid(unsafe_code)]

pub mod api;
pub mod controller;
pub mod metrics;
pub mod openstack;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// The CRD of every kind, as the YAML document that `crds/` holds.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser_error::Error> {
    use kube::CustomResourceExt;
    serde_saphyr::to_string(&api::ImageAccess::crd())
}
