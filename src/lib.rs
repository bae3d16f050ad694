//! image-access-operator: manages OpenStack Glance image memberships from Kubernetes.
//!
//! - [`api`]: the `ImageAccess` and `ImageAccessAccept` custom resources.
//! - [`openstack`]: a thin Keystone + Glance client.
//! - [`controller`]: the reconciler.
//! - [`export`]: manifests for memberships that exist already (`image-access-operator export`).
//! - [`metrics`], [`server`], [`telemetry`], [`config`]: running it.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod controller;
pub mod credentials;
pub mod export;
pub mod leader;
pub mod metrics;
mod names;
pub mod openstack;
pub mod runtime;
pub mod server;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// The CRD of every kind: its file name in `crds/` (and the chart's `crds/`) and its YAML.
pub fn crds() -> Result<Vec<(&'static str, String)>, serde_saphyr::ser_error::Error> {
    use kube::CustomResourceExt;
    Ok(vec![
        ("imageaccesses.yaml", serde_saphyr::to_string(&api::ImageAccess::crd())?),
        (
            "imageaccessaccepts.yaml",
            serde_saphyr::to_string(&api::ImageAccessAccept::crd())?,
        ),
        ("imageshares.yaml", serde_saphyr::to_string(&api::ImageShare::crd())?),
    ])
}
