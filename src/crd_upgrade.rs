//! The operator keeps its own CRDs as new as itself. Helm installs a chart's `crds/` on the first
//! install only and never upgrades them, so after `helm upgrade` a new operator would otherwise
//! serve objects through its predecessor's schema (new fields pruned, new validation missing).
//! With `--upgrade-crds` (the chart's `crds.upgrade`, on by default, which grants `get` and
//! `update` on exactly these three CRDs), each instance writes its version's CRDs at start,
//! replacing them on the version it read; never over CRDs a newer version wrote (a rollback, or an old replica restarting
//! during a rollout, must not take fields away from objects stored with them): every CRD carries
//! the version that wrote it in [`VERSION_ANNOTATION`], the generated `crds/` files too.

use std::cmp::Ordering;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use std::time::Duration;

use kube::api::PostParams;
use kube::{Api, Client, CustomResourceExt};

use crate::api::{ImageAccess, ImageAccessAccept, ImageShare};

/// The operator version whose CRD this is.
pub const VERSION_ANNOTATION: &str = "glance.viettelidc.com.vn/operator-version";
const FIELD_MANAGER: &str = "image-access-operator";
const OWN_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every kind's CRD, as this version defines it (annotated with the version).
pub fn own_crds() -> Vec<CustomResourceDefinition> {
    [ImageAccess::crd(), ImageAccessAccept::crd(), ImageShare::crd()]
        .into_iter()
        .map(|mut crd| {
            crd.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(VERSION_ANNOTATION.into(), OWN_VERSION.into());
            crd
        })
        .collect()
}

/// Whether `installed` is this version's CRD: written by this version, with every field of this
/// version's spec (the API server adds defaults of its own, so equality would never hold).
pub fn is_current(installed: &CustomResourceDefinition) -> bool {
    let Some(ours) = own_crds()
        .into_iter()
        .find(|c| c.metadata.name == installed.metadata.name)
    else {
        return false;
    };
    let version = installed
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(VERSION_ANNOTATION));
    let (Ok(installed_spec), Ok(our_spec)) = (serde_json::to_value(&installed.spec), serde_json::to_value(&ours.spec))
    else {
        return false;
    };
    version.map(String::as_str) == Some(OWN_VERSION) && contains(&installed_spec, &our_spec)
}

/// Whether every field of `part` is in `whole` with the same value (arrays: element by element).
fn contains(whole: &serde_json::Value, part: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (whole, part) {
        (Value::Object(whole), Value::Object(part)) => part
            .iter()
            .all(|(key, value)| whole.get(key).is_some_and(|w| contains(w, value))),
        (Value::Array(whole), Value::Array(part)) => {
            whole.len() == part.len() && whole.iter().zip(part).all(|(w, p)| contains(w, p))
        }
        _ => whole == part,
    }
}

/// What to do with a CRD in the cluster that was written by `installed` (its annotation; None:
/// written by something that does not say, such as `kubectl apply` of an older file).
fn should_apply(installed: Option<&str>) -> bool {
    match installed {
        None => true,
        Some(installed) => compare_versions(installed, OWN_VERSION) != Ordering::Greater,
    }
}

/// SemVer order; a version that does not parse is older than any that does (it was not ours).
fn compare_versions(a: &str, b: &str) -> Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Err(_), Ok(_)) => Ordering::Less,
        (Ok(_), Err(_)) => Ordering::Greater,
        (Err(_), Err(_)) => Ordering::Equal,
    }
}

/// Applies this version's CRDs where the cluster has older ones. A CRD that is missing is left
/// to the caller (it says how to install it), one the operator may not read or update is left as
/// it is with a warning that says what to grant. A conflict (another replica wrote it meanwhile)
/// is read and decided again; other failures are retried a few times, then an error, so the pod
/// restarts and says why rather than run on a schema it meant to replace.
pub async fn upgrade_crds(client: &Client) -> Result<(), String> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in own_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let mut attempt: u32 = 0;
        loop {
            match upgrade_one(&api, &crd, &name).await {
                Ok(()) => break,
                Err(Failure::Conflict) if attempt < ATTEMPTS => {}
                Err(Failure::Other(e)) if attempt < ATTEMPTS => {
                    tracing::warn!(crd = %name, error = %e, "upgrading the CRD failed; trying again");
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                }
                Err(Failure::Conflict) => {
                    return Err(format!(
                        "the CRD {name} kept changing while the operator upgraded it: another writer (a second \
                         release of the chart, a GitOps tool applying an older crds/ file) fights over it; stop \
                         that writer, or set crds.upgrade=false and apply the chart's crds/ yourself"
                    ));
                }
                Err(Failure::Other(e)) => {
                    return Err(format!(
                        "cannot upgrade the CRD {name}: {e}; the pod restarts and tries again, or set \
                         crds.upgrade=false and apply the chart's crds/ yourself (kubectl apply --server-side -f crds/)"
                    ));
                }
            }
            attempt += 1;
        }
    }
    Ok(())
}

/// Tries before giving up on one CRD (the waits between them add up to about 15 s).
const ATTEMPTS: u32 = 5;

enum Failure {
    /// Written by someone else since it was read: read it again.
    Conflict,
    Other(kube::Error),
}

async fn upgrade_one(
    api: &Api<CustomResourceDefinition>,
    ours: &CustomResourceDefinition,
    name: &str,
) -> Result<(), Failure> {
    let forbidden = |verb: &str, message: &str| {
        tracing::warn!(
            crd = %name,
            "not upgrading the CRD: the operator may not {verb} it ({message}); grant get and update on it (the chart's crds.upgrade) or apply the chart's crds/ yourself after each upgrade"
        );
    };
    let installed = match api.get_opt(name).await {
        Ok(Some(installed)) => installed,
        Ok(None) => return Ok(()),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            forbidden("read", &status.message);
            return Ok(());
        }
        Err(e) => return Err(Failure::Other(e)),
    };
    let installed_version = installed
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(VERSION_ANNOTATION))
        .map(String::as_str);
    if !should_apply(installed_version) {
        tracing::info!(
            crd = %name,
            installed = installed_version.unwrap_or_default(),
            own = OWN_VERSION,
            "the CRD is from a newer version of the operator: left as it is"
        );
        return Ok(());
    }
    if is_current(&installed) {
        return Ok(());
    }
    // The whole CRD, replaced on the version just read: a field this version dropped goes too
    // (an apply would leave what other managers set), and a newer replica's write in between is
    // a conflict, never overwritten. Others' labels and annotations (a GitOps tool's) stay.
    let mut next = ours.clone();
    next.metadata.resource_version = installed.metadata.resource_version.clone();
    for (mine, theirs) in [
        (&mut next.metadata.labels, &installed.metadata.labels),
        (&mut next.metadata.annotations, &installed.metadata.annotations),
    ] {
        let merged = mine.get_or_insert_with(Default::default);
        for (key, value) in theirs.iter().flatten() {
            merged.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match api.replace(name, &params, &next).await {
        Ok(_) => {
            tracing::info!(
                crd = %name,
                from = installed_version.unwrap_or("(unannotated)"),
                to = OWN_VERSION,
                "upgraded the CRD"
            );
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Err(Failure::Conflict),
        Err(kube::Error::Api(status)) if status.code == 403 => {
            forbidden("update", &status.message);
            Ok(())
        }
        Err(e) => Err(Failure::Other(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_applies_over_a_newer_version() {
        assert!(should_apply(None));
        assert!(should_apply(Some(OWN_VERSION)));
        assert!(should_apply(Some("0.0.1")));
        assert!(should_apply(Some("not a version")));
        assert!(!should_apply(Some("999.0.0")));
        // Pre-releases come before their release, and after the one before.
        assert_eq!(compare_versions("0.2.0-dev", "0.2.0"), Ordering::Less);
        assert_eq!(compare_versions("0.2.0-dev", "0.1.0"), Ordering::Greater);
    }

    #[test]
    fn a_crd_with_the_servers_defaults_added_is_current_and_one_field_less_is_not() {
        let mut installed = own_crds().remove(0);
        assert!(is_current(&installed));
        // What the API server adds on its own.
        installed.spec.conversion = Some(Default::default());
        assert!(is_current(&installed));
        let mut older = installed.clone();
        older.spec.versions[0].additional_printer_columns = None;
        assert!(!is_current(&older));
        let mut unannotated = installed;
        unannotated.metadata.annotations = None;
        assert!(!is_current(&unannotated));
    }

    #[test]
    fn every_crd_says_which_version_wrote_it() {
        let crds = own_crds();
        assert_eq!(crds.len(), 3);
        for crd in crds {
            let annotations = crd.metadata.annotations.unwrap_or_default();
            assert_eq!(
                annotations.get(VERSION_ANNOTATION).map(String::as_str),
                Some(OWN_VERSION)
            );
        }
    }
}
