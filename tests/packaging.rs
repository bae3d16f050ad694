//! How the operator is shipped, checked without a cluster: the Helm chart (lint, renders,
//! schema), the manifests rendered from it, the Argo CD health check (run by a Lua
//! interpreter), the Dockerfile (hadolint) and the static musl binary the image carries.
//! Needs helm, lua5.4 and hadolint on PATH (`hack/tools.sh`), so it runs with the e2e feature.
#![cfg(feature = "e2e")]

mod common;

use std::path::Path;

use image_access_operator::api::{ImageAccess, MemberStatus, Membership};
use image_access_operator::controller::problem::Problem;
use image_access_operator::controller::status::{self, Observation, Outcome};
use image_access_operator::openstack::Member;
use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let out = common::cluster::run(program, args, stdin);
    (out.success, out.stdout, out.stderr)
}

/// `helm template` with `--set` values, as parsed documents.
fn render(sets: &[&str]) -> Vec<Value> {
    let mut args = vec![
        "template",
        "iao",
        "charts/image-access-operator",
        "--namespace",
        "iao-system",
    ];
    for set in sets {
        args.push("--set");
        args.push(set);
    }
    let (ok, out, err) = run("helm", &args, None);
    assert!(ok, "helm template {sets:?}: {err}");
    out.split("\n---")
        .filter(|doc| doc.lines().any(|l| l.starts_with("kind:")))
        .map(|doc| serde_saphyr::from_str::<Value>(doc).expect("rendered YAML"))
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn operator_args(docs: &[Value]) -> Vec<String> {
    let deployment = of_kind(docs, "Deployment")[0];
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn helm_lint_strict_passes() {
    let (ok, out, err) = run("helm", &["lint", "--strict", "charts/image-access-operator"], None);
    assert!(ok, "{out}{err}");
}

#[test]
fn chart_crds_are_the_generated_crds() {
    for (file, generated) in image_access_operator::crds().expect("CRDs serialize") {
        let chart = std::fs::read_to_string(Path::new(ROOT).join("charts/image-access-operator/crds").join(file))
            .unwrap_or_else(|e| panic!("chart CRD {file}: {e}"));
        assert!(
            chart == generated,
            "charts/image-access-operator/crds/{file} drifted: run `make crds`"
        );
    }
}

#[test]
fn default_render_is_restricted_and_least_privilege() {
    let docs = render(&[]);
    let pod = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(container["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(container["resources"]["limits"]["memory"].is_string());

    let (crd_roles, cluster_roles): (Vec<&Value>, Vec<&Value>) = of_kind(&docs, "ClusterRole")
        .into_iter()
        .partition(|r| r["metadata"]["name"].as_str().is_some_and(|n| n.ends_with("-crds")));
    assert_eq!(cluster_roles.len(), 1);
    let rules = serde_json::to_string(&cluster_roles[0]["rules"]).expect("rules");
    assert!(!rules.contains("apiextensions"), "no CRD permissions: {rules}");
    assert_only_its_own_crds(&crd_roles);
    assert!(operator_args(&docs).contains(&"--upgrade-crds".to_string()));
    assert!(!rules.contains("\"*\""), "no wildcards: {rules}");
    let secrets = cluster_roles[0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["resources"][0] == "secrets")
        .expect("a secrets rule");
    assert_eq!(
        secrets["verbs"],
        serde_json::json!(["get", "list", "watch", "patch"]),
        "secrets: read, watched (metadata), and patched for the hold finalizer; never created, updated or deleted"
    );
    let lease_roles: Vec<_> = of_kind(&docs, "Role")
        .into_iter()
        .filter(|r| {
            serde_json::to_string(&r["rules"])
                .unwrap_or_default()
                .contains("leases")
        })
        .collect();
    assert_eq!(
        lease_roles.len(),
        1,
        "the Lease Role comes with leader election (on by default)"
    );
    assert_eq!(lease_roles[0]["metadata"]["namespace"], "iao-system");
    assert!(operator_args(&docs).contains(&"--leader-elect".to_string()));
    assert!(
        of_kind(&docs, "ServiceMonitor").is_empty(),
        "ServiceMonitor is off by default"
    );
    assert!(
        of_kind(&docs, "NetworkPolicy").is_empty(),
        "NetworkPolicy is off by default"
    );
}

/// The one cluster-wide right `crds.upgrade` adds: get and update on the operator's own three
/// CRDs, by name (it never creates, deletes or lists CRDs).
fn assert_only_its_own_crds(roles: &[&Value]) {
    assert_eq!(roles.len(), 1, "{roles:?}");
    assert_eq!(
        roles[0]["rules"],
        serde_json::json!([{
            "apiGroups": ["apiextensions.k8s.io"],
            "resources": ["customresourcedefinitions"],
            "resourceNames": [
                "imageaccesses.glance.viettelidc.com.vn",
                "imageaccessaccepts.glance.viettelidc.com.vn",
                "imageshares.glance.viettelidc.com.vn"
            ],
            "verbs": ["get", "update"]
        }])
    );
}

#[test]
fn watch_namespaces_render_a_role_in_each_and_no_cluster_role() {
    // With crds.upgrade (the default), the one ClusterRole is the CRDs' own.
    let docs = render(&["watchNamespaces={team-a,team-b}"]);
    assert_only_its_own_crds(&of_kind(&docs, "ClusterRole"));
    let docs = render(&["watchNamespaces={team-a,team-b}", "crds.upgrade=false"]);
    assert!(of_kind(&docs, "ClusterRole").is_empty());
    assert!(of_kind(&docs, "ClusterRoleBinding").is_empty());
    assert!(!operator_args(&docs).contains(&"--upgrade-crds".to_string()));
    let namespaces: Vec<&str> = of_kind(&docs, "RoleBinding")
        .iter()
        .filter_map(|r| r["metadata"]["namespace"].as_str())
        .collect();
    assert!(
        namespaces.contains(&"team-a") && namespaces.contains(&"team-b"),
        "{namespaces:?}"
    );
    assert!(operator_args(&docs).contains(&"--watch-namespaces=team-a,team-b".to_string()));
}

#[test]
fn without_leader_election_there_is_no_lease_role() {
    let docs = render(&["leaderElection.enabled=false"]);
    let all = serde_json::to_string(&docs).expect("json");
    assert!(!all.contains("leases"));
    assert!(!operator_args(&docs).contains(&"--leader-elect".to_string()));
}

#[test]
fn host_network_renders_with_recreate_and_the_listen_address() {
    let docs = render(&[
        "hostNetwork=true",
        "listenAddress=$(POD_IP)",
        "extraEnv[0].name=HTTPS_PROXY",
        "extraEnv[0].value=http://proxy:3128",
    ]);
    let deployment = of_kind(&docs, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(
        deployment["spec"]["strategy"]["type"], "Recreate",
        "two pods of the release cannot share a node's ports"
    );
    let args = operator_args(&docs);
    assert!(args.contains(&"--metrics-addr=$(POD_IP):8080".to_string()), "{args:?}");
    assert!(args.contains(&"--health-addr=$(POD_IP):8081".to_string()), "{args:?}");
    let env = serde_json::to_string(&pod["containers"][0]["env"]).expect("env");
    assert!(env.contains("POD_IP") && env.contains("HTTPS_PROXY"), "{env}");
    let default = render(&[]);
    let deployment = of_kind(&default, "Deployment")[0];
    assert!(deployment["spec"]["template"]["spec"].get("hostNetwork").is_none());
    assert!(
        deployment["spec"].get("strategy").is_none(),
        "rolling update by default"
    );
}

#[test]
fn service_monitor_and_network_policy_render_when_enabled() {
    let docs = render(&[
        "metrics.serviceMonitor.enabled=true",
        "networkPolicy.enabled=true",
        "networkPolicy.openstack.cidrs={192.0.2.0/24}",
        "labelSelector=shard=a",
    ]);
    assert_eq!(of_kind(&docs, "ServiceMonitor").len(), 1);
    let policy = of_kind(&docs, "NetworkPolicy")[0];
    let egress = serde_json::to_string(&policy["spec"]["egress"]).expect("json");
    assert!(egress.contains("192.0.2.0/24") && egress.contains("53"), "{egress}");
    assert!(operator_args(&docs).contains(&"--label-selector=shard=a".to_string()));
}

#[test]
fn values_schema_refuses_bad_values() {
    for (set, named) in [
        ("concurrency=0", "concurrency"),
        ("logFormat=xml", "logFormat"),
        ("resyncPeriod=soon", "resyncPeriod"),
        ("unknownValue=1", "unknownValue"),
    ] {
        let (ok, _, err) = run(
            "helm",
            &["template", "x", "charts/image-access-operator", "--set", set],
            None,
        );
        assert!(!ok, "{set} accepted");
        assert!(err.contains(named), "{set}: the error should name {named}: {err}");
    }
}

/// The chart refuses at install time exactly the durations and lease the operator would refuse
/// at start (its flag ranges), instead of a pod that crash-loops on a value the schema let by.
#[test]
fn values_schema_bounds_are_the_operators_flag_ranges() {
    use image_access_operator::config::{REQUEST_TIMEOUT, RESYNC_PERIOD, STALLED_RECHECK};
    use image_access_operator::leader::LEASE_DURATION_SECONDS;
    let template = |set: &str, value: &str| {
        run(
            "helm",
            &["template", "x", "charts/image-access-operator", set, value],
            None,
        )
    };
    let durations = [
        "0",
        "0s",
        "999ms",
        "1000ms",
        "1",
        "1s",
        "01s",
        "10m",
        "600s",
        "600000ms",
        "601s",
        "11m",
        "1440m",
        "24h",
        "86400",
        "86400000ms",
        "86401s",
        "1441m",
        "25h",
        "1d",
        "soon",
    ];
    // More hours than a u64 of seconds holds.
    let overflow = "18446744073709551616h";
    for (key, range) in [
        ("resyncPeriod", RESYNC_PERIOD),
        ("stalledRecheck", STALLED_RECHECK),
        ("requestTimeout", REQUEST_TIMEOUT),
    ] {
        for text in durations.into_iter().chain([overflow]) {
            let (ok, _, err) = template("--set-string", &format!("{key}={text}"));
            let operator = range.parse(text);
            assert_eq!(
                ok,
                operator.is_ok(),
                "{key}={text}: the chart says {ok} ({err}), the operator {operator:?}"
            );
            assert!(
                ok || err.contains(key),
                "{key}={text}: the error should name {key}: {err}"
            );
        }
    }
    for seconds in [0, 2, 3, 15, 3600, 3601] {
        let (ok, _, err) = template("--set", &format!("leaderElection.leaseDurationSeconds={seconds}"));
        assert_eq!(
            ok,
            LEASE_DURATION_SECONDS.contains(&seconds),
            "leaseDurationSeconds={seconds}: the chart says {ok} ({err}), the operator accepts {LEASE_DURATION_SECONDS:?}"
        );
    }
}

#[test]
fn deploy_manifests_are_rendered_from_the_chart() {
    let out = std::env::temp_dir().join(format!("iao-manifests-{}.yaml", std::process::id()));
    let (ok, _, err) = run("hack/render-manifests.sh", &[out.to_str().expect("path")], None);
    assert!(ok, "{err}");
    let rendered = std::fs::read_to_string(&out).expect("rendered");
    let committed = std::fs::read_to_string(Path::new(ROOT).join("deploy/image-access-operator.yaml")).expect("deploy");
    assert!(
        rendered == committed,
        "deploy/image-access-operator.yaml drifted from the chart: run `make manifests`"
    );
}

// ---------------------------------------------------------------- Argo CD health check

/// A JSON value as a Lua table literal.
fn lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!("{{{}}}", items.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("[{k:?}] = {}", lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Runs the health check on `object` as Argo CD does (`obj` global), returns (status, message).
fn argo_health(object: &ImageAccess) -> (String, String) {
    let script = std::fs::read_to_string(Path::new(ROOT).join("deploy/argocd/health.lua")).expect("health.lua");
    let json = serde_json::to_value(object).expect("json");
    let program = format!(
        "obj = {}\nlocal function check()\n{script}\nend\nlocal hs = check()\nprint(hs.status)\nprint(hs.message)\n",
        lua(&json)
    );
    let (ok, out, err) = run("lua5.4", &["-"], Some(&program));
    assert!(ok, "lua: {err}");
    let mut lines = out.lines();
    (
        lines.next().unwrap_or_default().to_string(),
        lines.next().unwrap_or_default().to_string(),
    )
}

fn sample(outcome: Outcome, generation: i64, observed: i64) -> ImageAccess {
    let desired = Membership::named("img".into(), "mem".into(), None);
    let now = jiff::Timestamp::now();
    let mut object = ImageAccess::test("x", "img", "mem", "owner");
    object.metadata.generation = Some(generation);
    object.status = Some(status::next(
        &Default::default(),
        Some(observed),
        &desired,
        None,
        false,
        &outcome,
        now,
    ));
    object
}

#[test]
fn argo_cd_health_check_maps_conditions() {
    let member = Member {
        member_id: "mem".into(),
        image_id: "img".into(),
        status: MemberStatus::Pending,
        created_at: "2026-11-28T13:00:00Z".into(),
        updated_at: "2026-11-28T13:00:00Z".into(),
        schema: None,
    };
    let ready = Outcome {
        image: None,
        applied: None,
        observation: Observation::Present(member),
        problem: None,
    };
    let stalled = Outcome {
        image: None,
        applied: None,
        observation: Observation::Unknown,
        problem: Some(Problem::Stalled {
            reason: "ImageNotShared",
            message: "make it shared".into(),
        }),
    };
    let retrying = Outcome {
        image: None,
        applied: None,
        observation: Observation::Unknown,
        problem: Some(Problem::Transient {
            reason: "OpenStackUnavailable",
            message: "503".into(),
            retry_after: None,
        }),
    };
    assert_eq!(argo_health(&sample(ready.clone(), 1, 1)).0, "Healthy");
    let (health, message) = argo_health(&sample(stalled, 1, 1));
    assert_eq!(health, "Degraded");
    assert!(message.contains("ImageNotShared"), "{message}");
    assert_eq!(argo_health(&sample(retrying, 1, 1)).0, "Progressing");
    assert_eq!(
        argo_health(&sample(ready.clone(), 2, 1)).0,
        "Progressing",
        "old generation"
    );
    assert_eq!(
        argo_health(&sample(ready, 1, 1).deleting()).0,
        "Progressing",
        "deleting"
    );
    assert_eq!(
        argo_health(&ImageAccess::test("x", "img", "mem", "owner")).0,
        "Progressing",
        "no status yet"
    );
}

#[test]
fn chart_readme_carries_the_health_check() {
    let script = std::fs::read_to_string(Path::new(ROOT).join("deploy/argocd/health.lua")).expect("lua");
    let readme =
        std::fs::read_to_string(Path::new(ROOT).join("charts/image-access-operator/README.md")).expect("readme");
    for line in script.lines().filter(|l| !l.is_empty()) {
        assert!(readme.contains(&format!("    {line}")), "README snippet lacks: {line}");
    }
    assert!(readme.contains("resource.customizations.health.glance.viettelidc.com.vn_ImageAccess"));
}

// ---------------------------------------------------------------- container image

#[test]
fn dockerfile_passes_hadolint_and_builds_a_static_nonroot_image_for_both_platforms() {
    let (ok, out, err) = run("hadolint", &["Dockerfile"], None);
    assert!(ok, "hadolint: {out}{err}");
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile");
    // One build stage on the build machine's platform, cross-compiling for the target's.
    assert!(dockerfile.contains("FROM --platform=$BUILDPLATFORM "), "{dockerfile}");
    assert!(dockerfile.contains("ARG TARGETARCH"));
    for (arch, target) in [
        ("amd64", "x86_64-unknown-linux-musl"),
        ("arm64", "aarch64-unknown-linux-musl"),
    ] {
        assert!(dockerfile.contains(&format!("{arch}) target={target}")), "{arch}");
    }
    assert!(dockerfile.contains("cargo zigbuild --release --locked --target \"$target\""));
    // The file system is hack/rootfs.sh's, in the build stage as in hack/image.sh.
    assert!(dockerfile.contains("hack/rootfs.sh /rootfs \"target/$target/release/image-access-operator\""));
    let final_stage = dockerfile.rsplit_once("\nFROM ").map(|(_, s)| s).expect("stages");
    assert!(final_stage.starts_with("scratch\n"), "{final_stage}");
    assert!(final_stage.contains("COPY --from=build /rootfs/ /"));
    assert!(final_stage.contains("USER 65532:65532"));
}

/// The release's image (hack/image.sh via hack/release.sh, no Docker engine; `make image` built
/// it) is the one the Dockerfile describes: the config of its final stage and the file system of
/// hack/rootfs.sh, for each platform.
#[test]
fn the_released_image_is_the_image_the_dockerfile_describes() {
    let work = common::helm::unpack_release_image("image");
    let read_json = |path: std::path::PathBuf| -> Value {
        serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))).expect("json")
    };
    let blob = |digest: &Value| {
        work.join("blobs/sha256")
            .join(digest.as_str().unwrap_or_default().trim_start_matches("sha256:"))
    };
    let top = read_json(work.join("index.json"));
    let version = std::env::var("IAO_RELEASE_VERSION").expect("IAO_RELEASE_VERSION");
    assert_eq!(
        top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        version.as_str()
    );
    let index = read_json(blob(&top["manifests"][0]["digest"]));

    // The Dockerfile's final stage, read here independently of hack/image.sh.
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile");
    let final_stage = dockerfile.rsplit_once("\nFROM ").map(|(_, s)| s).expect("stages");
    let instruction = |name: &str| {
        final_stage
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in the final stage"))
            .trim()
            .to_string()
    };
    let mut archs = Vec::new();
    for entry in index["manifests"].as_array().expect("manifests") {
        let manifest = read_json(blob(&entry["digest"]));
        let config = read_json(blob(&manifest["config"]["digest"]));
        archs.push(config["architecture"].as_str().unwrap_or_default().to_string());
        assert_eq!(config["architecture"], entry["platform"]["architecture"]);
        assert_eq!(config["config"]["User"], instruction("USER"));
        let entrypoint: Value = serde_json::from_str(&instruction("ENTRYPOINT")).expect("exec form");
        assert_eq!(config["config"]["Entrypoint"], entrypoint);
        for port in instruction("EXPOSE").split_whitespace() {
            assert!(
                config["config"]["ExposedPorts"].get(format!("{port}/tcp")).is_some(),
                "port {port}: {config}"
            );
        }
        // The one layer holds exactly hack/rootfs.sh's files.
        let layer = blob(&manifest["layers"][0]["digest"]);
        let (ok, listing, err) = run("tar", &["-tzvf", layer.to_str().expect("path")], None);
        assert!(ok, "{err}");
        let mut files: Vec<&str> = listing
            .lines()
            .filter(|l| !l.starts_with('d'))
            .filter_map(|l| l.split_whitespace().last())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                "./etc/group",
                "./etc/passwd",
                "./etc/ssl/certs/ca-certificates.crt",
                "./image-access-operator"
            ]
        );
    }
    archs.sort();
    assert_eq!(archs, ["amd64", "arm64"]);
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn the_released_amd64_binary_is_static_and_runs() {
    let binary = common::helm::release_dist().join("linux-amd64/image-access-operator");
    let binary = binary.to_str().expect("path");
    let (ok, described, err) = run("file", &["-b", binary], None);
    assert!(ok, "{err}");
    assert!(
        described.contains("static-pie linked") || described.contains("statically linked"),
        "{described}"
    );
    assert!(described.contains("x86-64"), "{described}");
    let (ok, version, _) = run(binary, &["--version"], None);
    assert!(ok && version.contains("image-access-operator"), "{version}");
}

/// Every reason the operator can put in a condition has a row in the README's "When something is
/// wrong" tables, read from the source so that a new reason without one fails here.
#[test]
fn every_condition_reason_is_in_the_readme() {
    let root = Path::new(ROOT);
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let mut missing = Vec::new();
    for file in [
        "src/controller/problem.rs",
        "src/controller/status.rs",
        "src/controller/selection.rs",
        "src/controller/refs.rs",
    ] {
        let source = std::fs::read_to_string(root.join(file)).expect("source");
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        // CamelCase literals of two words or more are reasons (and condition types).
        for literal in code.split('"').skip(1).step_by(2) {
            let camel = literal.len() > 3
                && literal.chars().all(|c| c.is_ascii_alphanumeric())
                && literal.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && literal.chars().skip(1).any(|c| c.is_ascii_uppercase());
            let named = literal == "Unauthorized";
            if (camel || named) && !readme.contains(&format!("`{literal}`")) {
                missing.push(literal.to_string());
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "reasons without a README row: {missing:?}");
}

/// The chart README's values table and values.yaml name the same values: every value of
/// values.yaml has a row (its own, or its parent's, like `resources`), and every row names values
/// that exist.
#[test]
fn the_chart_readme_documents_every_value_and_only_those() {
    let chart = Path::new(ROOT).join("charts/image-access-operator");
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart.join("values.yaml")).expect("values.yaml"))
            .expect("values.yaml parses");
    let readme = std::fs::read_to_string(chart.join("README.md")).expect("chart README");
    let table = readme
        .split("## Values")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Values section");
    // The values each row's first cell names.
    let documented: Vec<String> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|row| {
            let cell = row.split('|').nth(1).unwrap_or_default().to_string();
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    fn leaves(prefix: &str, value: &Value, out: &mut Vec<String>) {
        match value.as_object() {
            Some(map) if !map.is_empty() => {
                for (key, child) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    leaves(&path, child, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let mut paths = Vec::new();
    leaves("", &values, &mut paths);
    let covered = |path: &String| {
        documented
            .iter()
            .any(|d| path == d || path.starts_with(&format!("{d}.")))
    };
    let undocumented: Vec<&String> = paths.iter().filter(|p| !covered(p)).collect();
    assert!(
        undocumented.is_empty(),
        "values without a row in the chart README: {undocumented:?}"
    );
    let unknown: Vec<&String> = documented
        .iter()
        .filter(|d| !paths.iter().any(|p| p == *d || p.starts_with(&format!("{d}."))))
        .collect();
    assert!(
        unknown.is_empty(),
        "rows for values that values.yaml lacks: {unknown:?}"
    );
}
