//! Upgrading an installed release, the way users do: the previous release (the newest of
//! hack/releases.tsv, rebuilt from its commit and published to the environment's registry by
//! tests/env/publish-previous.sh) installed with `helm install oci://…` from that registry,
//! objects of every kind Ready under it, then `helm upgrade` to the current sources' release.
//! No object changes generation or leaves Ready, Glance sees no write, and the CRDs become the
//! current version's: Helm upgrades no CRD, the new operator applies its own (crd_upgrade).
//!
//! The test first puts the previous release's CRDs in place of the current ones, as a cluster
//! that ran the previous release has them; so it runs alone: it is ignored in the main run and
//! `make test` runs it afterwards with `--ignored`. It puts the current CRDs back when it ends.
#![cfg(feature = "e2e")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::RealOpenStack;
use common::cluster::{TestNamespace, WAIT, condition, eventually, is_ready, kubectl, kubectl_ok, manifest};
use common::helm::{Published, Release, glance_requests, glance_requests_since, writes};
use image_access_operator::api::{ImageAccess, ImageAccessAccept, ImageShare, Managed};
use image_access_operator::crd_upgrade::{VERSION_ANNOTATION, is_current, own_crds};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use serde_json::Value;

/// Replaces each CRD with the previous release's (from its chart's crds/), whole: an apply would
/// leave the fields other managers own.
fn install_previous_crds() -> Vec<(String, Value)> {
    let dir = std::env::var("IAO_PREVIOUS_CRDS").expect("IAO_PREVIOUS_CRDS (tests/env/publish-previous.sh)");
    let mut replaced = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the previous release's crds/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("CRD file");
        let mut crd: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let name = crd["metadata"]["name"].as_str().expect("name").to_string();
        let version = kubectl_ok(
            &["get", "crd", &name, "-o", "jsonpath={.metadata.resourceVersion}"],
            None,
        );
        crd["metadata"]["resourceVersion"] = Value::String(version);
        let out = kubectl(&["replace", "-f", "-"], Some(&crd.to_string()));
        assert!(out.success, "kubectl replace {name}: {}", out.stderr);
        replaced.push((name, crd["spec"].clone()));
    }
    replaced
}

fn share_manifest(name: &str, image: &str, members: &[&str]) -> String {
    format!(
        "apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageShare\nmetadata:\n  name: {name}\nspec:\n  imageIds: [{image}]\n  memberIds: [{}]\n  cloudCredentialsRef:\n    secretName: openstack-credentials\n    cloudName: owner\n",
        members.join(", ")
    )
}

fn accept_manifest(name: &str, image: &str) -> String {
    format!(
        "apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageAccessAccept\nmetadata:\n  name: {name}\nspec:\n  imageId: {image}\n  status: accepted\n  cloudCredentialsRef:\n    secretName: openstack-credentials\n    cloudName: member1\n"
    )
}

fn share_is_ready(share: &ImageShare) -> bool {
    share.status.as_ref().is_some_and(|s| {
        s.observed_generation == share.metadata.generation
            && s.desired > 0
            && s.ready == s.desired
            && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// "Kind/name", and what its Ready condition says when it is not Ready (for the failure's message).
fn described<K: Managed>(kind: &str, object: &K) -> String {
    let name = object.meta().name.clone().unwrap_or_default();
    if is_ready(object) {
        return format!("{kind}/{name}");
    }
    format!("{kind}/{name} (Ready: {:?})", condition(object, "Ready"))
}

/// (kind/name, generation, Ready) of every object of the namespace, of every kind.
async fn objects(ns: &TestNamespace) -> Result<Vec<(String, Option<i64>, bool)>, kube::Error> {
    let mut all = Vec::new();
    let params = Default::default();
    for o in Api::<ImageAccess>::namespaced(ns.client.clone(), &ns.name)
        .list(&params)
        .await?
    {
        all.push((described("ImageAccess", &o), o.metadata.generation, is_ready(&o)));
    }
    for o in Api::<ImageAccessAccept>::namespaced(ns.client.clone(), &ns.name)
        .list(&params)
        .await?
    {
        all.push((described("ImageAccessAccept", &o), o.metadata.generation, is_ready(&o)));
    }
    for o in Api::<ImageShare>::namespaced(ns.client.clone(), &ns.name)
        .list(&params)
        .await?
    {
        all.push((
            format!("ImageShare/{}", o.metadata.name.clone().unwrap_or_default()),
            o.metadata.generation,
            share_is_ready(&o),
        ));
    }
    all.sort();
    Ok(all)
}

/// Puts the current CRDs back when the test ends, passed or not (a failure before the upgrade
/// would leave the previous release's CRDs to the next run in this environment).
struct RestoreCurrentCrds;

impl Drop for RestoreCurrentCrds {
    fn drop(&mut self) {
        let crds = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
        let out = kubectl(&["apply", "--server-side", "--force-conflicts", "-f", crds], None);
        if !out.success {
            eprintln!("could not put the current CRDs back: {}", out.stderr);
        }
    }
}

// Two workers: the watcher looks on while `helm upgrade --wait` blocks the test's thread.
// Ignored in the main run: it replaces the cluster's CRDs, so `make test` runs it on its own,
// after the others (`--ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "replaces the cluster's CRDs: make test runs it alone, after the others"]
async fn helm_upgrade_from_the_previous_release_keeps_every_object_and_upgrades_the_crds() {
    let env = RealOpenStack::from_env();
    let previous = Published::previous();
    let current = Published::current();
    assert_ne!(
        previous.version, current.version,
        "hack/releases.tsv's newest is not the current version"
    );

    // The cluster as the previous release left it.
    let _restore = RestoreCurrentCrds;
    let replaced = install_previous_crds();
    let generated: Vec<CustomResourceDefinition> = own_crds();
    let changed = replaced.iter().any(|(name, spec)| {
        let ours = generated
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(name))
            .expect("a CRD of ours");
        serde_json::to_value(&ours.spec).expect("spec") != *spec
    });
    // When a CRD changed between the two (it did from 0.1.0), the checks below see it upgraded.
    eprintln!(
        "CRDs {} between {} and {}",
        if changed { "changed" } else { "did not change" },
        previous.version,
        current.version
    );

    let ns = TestNamespace::new("upgrade", &env).await;
    let release = Release::install_from(&previous, &ns.name, &[]);
    let plain = env.create_image("shared").await;
    let offered = env.create_image("shared").await;
    let shared = env.create_image("shared").await;
    let images = vec![plain.clone(), offered.clone(), shared.clone()];
    let manifests = [
        manifest("plain", &plain, &env.member2_project_id, "owner", ""),
        manifest("offer", &offered, &env.member1_project_id, "owner", ""),
        accept_manifest("take", &offered),
        share_manifest("golden", &shared, &[&env.member1_project_id, &env.member2_project_id]),
    ]
    .join("---\n");
    assert!(ns.apply(&manifests).success);
    let every_ready = |expected: usize| {
        let ns = &ns;
        async move {
            let all = objects(ns).await.ok()?;
            (all.len() == expected && all.iter().all(|o| o.2)).then_some(all)
        }
    };
    // 2 ImageAccess, the accept, the share and its 2 children.
    let before_objects = eventually("every object Ready under the previous release", WAIT, || every_ready(6)).await;
    let before_requests = glance_requests(&images).len();

    // Watch every object through the upgrade: any look that is not Ready for its generation, or
    // a changed generation, is kept.
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let watching = watching.clone();
        let client = ns.client.clone();
        let name = ns.name.clone();
        let expected = before_objects.clone();
        tokio::spawn(async move {
            let ns = TestNamespace { name, client };
            let mut seen_wrong = Vec::new();
            let mut looks = 0;
            while watching.load(Ordering::SeqCst) {
                if let Ok(all) = objects(&ns).await {
                    looks += 1;
                    if all != expected {
                        seen_wrong.push(all);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (looks, seen_wrong)
        })
    };

    let (ok, out) = release.helm_with("upgrade", &current, &[]);
    assert!(ok, "helm upgrade --wait: {out}\n{}", release.describe());
    // The new operator applies its CRDs at start.
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
    for ours in &generated {
        let name = ours.metadata.name.clone().expect("name");
        eventually(&format!("{name} upgraded to {}", current.version), WAIT, || async {
            let installed = crds.get(&name).await.ok()?;
            let version = installed
                .metadata
                .annotations
                .as_ref()?
                .get(VERSION_ANNOTATION)?
                .clone();
            (version == current.version && is_current(&installed)).then_some(())
        })
        .await;
    }
    // The new leader looks at every ImageAccess (the 4) once; then Glance's log covers it.
    let leader = release.wait_leader_looked_at(4).await;
    let during = glance_requests_since(&images, before_requests).await;
    watching.store(false, Ordering::SeqCst);
    let (looks, seen_wrong) = watcher.await.expect("watcher");
    eprintln!(
        "upgraded {} -> {}: {leader} leads; {looks} looks at the 6 objects during the upgrade; Glance member requests: {} ({} writes)",
        previous.version,
        current.version,
        during.len(),
        writes(&during)
    );
    assert!(
        looks > 10,
        "the objects were watched through the upgrade ({looks} looks)"
    );
    assert!(
        seen_wrong.is_empty(),
        "an object left Ready or changed generation during the upgrade: before {before_objects:?}, seen {:?}\n{}",
        seen_wrong.first(),
        release.describe()
    );
    assert_eq!(writes(&during), 0, "no Glance write: {during:?}");
    let after = objects(&ns).await.expect("list");
    assert_eq!(after, before_objects, "every object as it was");
}
