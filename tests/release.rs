//! The release `make image` built and published (tests/env/publish-image.sh: hack/release.sh,
//! then hack/publish.sh to the environment's registry, signed with a key pair made for it), read
//! back from that registry the way users and their tools get it: the image index carries both
//! platforms with the binaries that were built, the arm64 binary runs (under qemu-user-static)
//! and serves its health endpoint against the real API server, the signatures and the SBOM
//! attestations verify, and an image changed by one byte and re-pushed under the same tag does
//! not.
#![cfg(feature = "e2e")]

mod common;

use common::cluster::{Operator, TestNamespace, WAIT, eventually, run};
use common::helm::{Published, release_dist};
use serde_json::Value;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run `make image` and source .e2e/env.sh"))
}

fn registry() -> String {
    var("IAO_REGISTRY")
}

/// A GET of the registry's HTTP API (`path` under /v2/), as bytes; `accept` is the media types
/// asked for.
fn registry_get(path: &str, accept: &str) -> Vec<u8> {
    let out = std::process::Command::new("curl")
        .args(["-fsS", "-H", &format!("Accept: {accept}")])
        .arg(format!("http://{}/v2/{path}", registry()))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "GET /v2/{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn registry_json(path: &str, accept: &str) -> Value {
    serde_json::from_slice(&registry_get(path, accept)).unwrap_or_else(|e| panic!("/v2/{path}: {e}"))
}

fn sha256(bytes: &[u8]) -> String {
    let out = run_bytes("sha256sum", &[], bytes);
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

fn run_bytes(program: &str, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&data));
    let out = child.wait_with_output().expect("output");
    writer.join().expect("writer").expect("write");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

#[test]
fn the_published_index_holds_both_platforms_with_the_binaries_that_were_built() {
    let version = Published::current().version;
    let index = registry_json(&format!("image-access-operator/manifests/{version}"), INDEX);
    assert_eq!(index["mediaType"], INDEX, "{index}");
    let mut platforms = Vec::new();
    for entry in index["manifests"].as_array().expect("manifests") {
        let arch = entry["platform"]["architecture"]
            .as_str()
            .expect("architecture")
            .to_string();
        assert_eq!(entry["platform"]["os"], "linux");
        let digest = entry["digest"].as_str().expect("digest");
        let manifest = registry_json(&format!("image-access-operator/manifests/{digest}"), MANIFEST);
        let layers = manifest["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 1, "one layer: {manifest}");
        let layer = registry_get(
            &format!(
                "image-access-operator/blobs/{}",
                layers[0]["digest"].as_str().expect("digest")
            ),
            "*/*",
        );
        let binary_in_image = run_bytes("tar", &["-xzOf", "-", "./image-access-operator"], &layer);
        let built =
            std::fs::read(release_dist().join(format!("linux-{arch}/image-access-operator"))).expect("built binary");
        assert_eq!(
            sha256(&binary_in_image),
            sha256(&built),
            "the {arch} image carries the {arch} binary that was built"
        );
        let config = registry_json(
            &format!(
                "image-access-operator/blobs/{}",
                manifest["config"]["digest"].as_str().expect("digest")
            ),
            "*/*",
        );
        assert_eq!(config["architecture"], arch.as_str());
        eprintln!(
            "linux/{arch}: image {} bytes compressed, binary {} bytes",
            layers[0]["size"],
            built.len()
        );
        platforms.push(arch);
    }
    platforms.sort();
    assert_eq!(platforms, ["amd64", "arm64"]);
}

#[test]
fn the_published_chart_has_the_release_version() {
    let published = Published::current();
    let (ok, out, err) = {
        let o = run(
            "helm",
            &[
                "show",
                "chart",
                &published.chart,
                "--version",
                &published.version,
                "--plain-http",
            ],
            None,
        );
        (o.success, o.stdout, o.stderr)
    };
    assert!(ok, "helm show chart: {err}");
    assert!(out.contains(&format!("version: {}", published.version)), "{out}");
    assert!(out.contains(&format!("appVersion: {}", published.version)), "{out}");
}

#[tokio::test]
async fn the_arm64_binary_runs_under_qemu_and_serves_its_health_endpoint() {
    let binary = release_dist().join("linux-arm64/image-access-operator");
    let path = binary.to_str().expect("path");
    let described = run("file", &["-b", path], None).stdout;
    assert!(described.contains("ARM aarch64"), "{described}");
    assert!(
        described.contains("statically linked") || described.contains("static-pie"),
        "{described}"
    );
    let version = run("qemu-aarch64-static", &[path, "--version"], None);
    assert!(version.success, "{}", version.stderr);
    assert!(
        version.stdout.contains(&Published::current().version),
        "{}",
        version.stdout
    );
    let help = run("qemu-aarch64-static", &[path, "--help"], None);
    assert!(
        help.success && help.stdout.contains("--resync-period"),
        "{}",
        help.stdout
    );

    // Against the real API server: it starts, answers /healthz, and leads an empty namespace.
    let env = common::RealOpenStack::from_env();
    let ns = TestNamespace::new("arm64", &env).await;
    let operator = Operator::spawn_binary(&["qemu-aarch64-static", path], &["--watch-namespaces", &ns.name], None);
    let health = eventually("the arm64 operator answers /healthz", WAIT, || async {
        operator
            .get(operator.health_port, "/healthz")
            .await
            .filter(|(code, _)| *code == 200)
    })
    .await;
    assert_eq!(health.1.trim(), "ok");
    operator.wait_ready().await;
}

fn cosign(args: &[&str]) -> (bool, String) {
    let mut all = args.to_vec();
    all.extend(["--allow-http-registry", "--allow-insecure-registry"]);
    let out = run("cosign", &all, None);
    (out.success, format!("{}{}", out.stdout, out.stderr))
}

fn verify(reference: &str) -> (bool, String) {
    let key = var("IAO_COSIGN_PUB");
    cosign(&["verify", "--key", &key, "--insecure-ignore-tlog=true", reference])
}

#[test]
fn the_image_chart_and_sboms_are_signed_and_verify() {
    let image = format!("{}@{}", var("IAO_RELEASE_IMAGE"), var("IAO_RELEASE_IMAGE_DIGEST"));
    let (ok, out) = verify(&image);
    assert!(ok, "cosign verify {image}: {out}");
    let chart = format!(
        "{}@{}",
        var("IAO_RELEASE_CHART").trim_start_matches("oci://"),
        var("IAO_RELEASE_CHART_DIGEST")
    );
    let (ok, out) = verify(&chart);
    assert!(ok, "cosign verify {chart}: {out}");
    // Each platform's SBOM, attached as a signed CycloneDX attestation.
    let index = registry_json(
        &format!("image-access-operator/manifests/{}", var("IAO_RELEASE_IMAGE_DIGEST")),
        INDEX,
    );
    for entry in index["manifests"].as_array().expect("manifests") {
        let reference = format!(
            "{}@{}",
            var("IAO_RELEASE_IMAGE"),
            entry["digest"].as_str().expect("digest")
        );
        let key = var("IAO_COSIGN_PUB");
        let (ok, out) = cosign(&[
            "verify-attestation",
            "--key",
            &key,
            "--insecure-ignore-tlog=true",
            "--type",
            "cyclonedx",
            &reference,
        ]);
        assert!(ok, "cosign verify-attestation {reference}: {out}");
    }
    for arch in ["amd64", "arm64"] {
        let sbom: Value = serde_json::from_slice(
            &std::fs::read(release_dist().join(format!("sbom/image-access-operator-linux-{arch}.cdx.json")))
                .expect("SBOM"),
        )
        .expect("JSON");
        assert_eq!(sbom["bomFormat"], "CycloneDX");
        let components = sbom["components"].as_array().map(Vec::len).unwrap_or_default();
        assert!(components > 50, "{arch}: {components} components");
    }
}

/// The published image, copied with its signature to a repository of this test's own, then
/// changed by one byte (the image config's group: 65532 -> 65533) and pushed under the same tag:
/// the signature no longer verifies.
#[test]
fn an_image_changed_by_one_byte_and_re_pushed_under_the_same_tag_fails_verification() {
    let version = Published::current().version;
    let signed = format!("{}@{}", var("IAO_RELEASE_IMAGE"), var("IAO_RELEASE_IMAGE_DIGEST"));
    let target = format!("{}/tamper-test-{}:{version}", registry(), std::process::id());
    let (ok, out) = cosign(&["copy", "--force", &signed, &target]);
    assert!(ok, "cosign copy: {out}");
    let (ok, out) = verify(&target);
    assert!(ok, "the copy verifies before the change: {out}");

    let work = common::helm::unpack_release_image("tamper");
    // One byte of the amd64 image's config, then every digest above it rewritten, as an
    // attacker with push rights would.
    let rewrite = r#"
import hashlib, json, os, sys
root = sys.argv[1]
blobs = os.path.join(root, "blobs", "sha256")
def read(d): return open(os.path.join(blobs, d.split(":")[1]), "rb").read()
def write(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d), "wb").write(data)
    return "sha256:" + d, len(data)
top = json.load(open(os.path.join(root, "index.json")))
index = json.loads(read(top["manifests"][0]["digest"]))
for entry in index["manifests"]:
    if entry["platform"]["architecture"] != "amd64":
        continue
    manifest = json.loads(read(entry["digest"]))
    config = read(manifest["config"]["digest"])
    changed = config.replace(b'"User":"65532:65532"', b'"User":"65532:65533"', 1)
    assert changed != config and len(changed) == len(config)
    manifest["config"]["digest"], manifest["config"]["size"] = write(changed)
    entry["digest"], entry["size"] = write(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
top["manifests"][0]["digest"], top["manifests"][0]["size"] = write(json.dumps(index, sort_keys=True, separators=(",", ":")).encode())
json.dump(top, open(os.path.join(root, "index.json"), "w"))
print(top["manifests"][0]["digest"])
"#;
    let out = run("python3", &["-c", rewrite, work.to_str().expect("path")], None);
    assert!(out.success, "{}", out.stderr);
    let changed_digest = out.stdout.trim().to_string();
    let signed_digest = var("IAO_RELEASE_IMAGE_DIGEST");
    assert_ne!(changed_digest, signed_digest);
    let out = run(
        "skopeo",
        &[
            "copy",
            "-q",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &format!("oci:{}:{version}", work.display()),
            &format!("docker://{target}"),
        ],
        None,
    );
    assert!(out.success, "skopeo copy of the changed image: {}", out.stderr);
    // The attacker also puts the genuine signature where cosign looks for the new digest's:
    // it is found, and refused because it signs another digest.
    let repository = target.rsplit_once(':').map(|(r, _)| r.to_string()).expect("a tag");
    let tag = |digest: &str| format!("docker://{repository}:{}.sig", digest.replace(':', "-"));
    let out = run(
        "skopeo",
        &[
            "copy",
            "-q",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &tag(&signed_digest),
            &tag(&changed_digest),
        ],
        None,
    );
    assert!(out.success, "copying the signature: {}", out.stderr);
    let (ok, out) = verify(&target);
    assert!(!ok, "the changed image must not verify: {out}");
    assert!(
        out.contains("no matching signatures"),
        "refused for its signature, not for a missing one: {out}"
    );
    let _ = std::fs::remove_dir_all(&work);
}
