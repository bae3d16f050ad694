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
pub mod crd_upgrade;
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

/// The CRD of every kind: its file name in `crds/` (and the chart's `crds/`) and its YAML, as
/// this version defines it (annotated with the version, see [`crd_upgrade`]).
pub fn crds() -> Result<Vec<(&'static str, String)>, serde_saphyr::ser_error::Error> {
    let files = ["imageaccesses.yaml", "imageaccessaccepts.yaml", "imageshares.yaml"];
    files
        .into_iter()
        .zip(crd_upgrade::own_crds())
        .map(|(file, crd)| Ok((file, serde_saphyr::to_string(&crd)?)))
        .collect()
}
