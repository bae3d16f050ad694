//! End to end, the migration (issue 11): memberships made by Terraform, or by hand, exported
//! with `image-access-operator export`, applied, adopted by the operator with no write to
//! Glance (its request log is the judge), and left in place when the objects are deleted with
//! the exported `Orphan` policy. Real Terraform + terraform-provider-openstack, real Keystone +
//! Glance, a real kube-apiserver, production timings.
#![cfg(feature = "e2e")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::cluster::{Operator, TestNamespace, WAIT, eventually, is_ready, kubectl, kubectl_ok};
use common::{RealOpenStack, var};
use image_access_operator::api::{ImageAccess, ImageAccessAccept, Managed};

/// Glance's request log (uwsgi's, one line per request), read from an offset.
struct GlanceLog {
    path: PathBuf,
    start: u64,
}

impl GlanceLog {
    fn from_now() -> GlanceLog {
        let state = var("OSL_STATE_DIR");
        let path = Path::new(&state).join("log/glance-uwsgi.log");
        let start = std::fs::metadata(&path).map(|m| m.len()).expect("Glance's request log");
        GlanceLog { path, start }
    }

    /// A log from now on, once this one shows `writes` member writes on `images`: uwsgi writes
    /// a request's line after answering it, so the setup's last writes could otherwise land in
    /// the log of what comes next.
    async fn after_member_writes(&self, images: &[String], writes: usize) -> GlanceLog {
        eventually("Glance's log shows the setup's member writes", WAIT, || async {
            (member_writes(&self.requests(images)).len() >= writes).then_some(())
        })
        .await;
        GlanceLog::from_now()
    }

    /// `METHOD path` of each request since the start that names one of `images`.
    fn requests(&self, images: &[String]) -> Vec<String> {
        let bytes = std::fs::read(&self.path).expect("Glance's request log");
        let start = usize::try_from(self.start).expect("offset");
        String::from_utf8_lossy(&bytes[start.min(bytes.len())..])
            .lines()
            .filter_map(|line| {
                // `[pid: …] 127.0.0.1 () {26 vars in 585 bytes} [date] GET /v2/images/… => …`
                let (method, rest) = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]
                    .iter()
                    .find_map(|method| {
                        line.split_once(&format!("] {method} /"))
                            .map(|(_, rest)| (method, rest))
                    })?;
                let path = format!("/{}", rest.split_whitespace().next()?);
                images
                    .iter()
                    .any(|image| path.contains(image.as_str()))
                    .then(|| format!("{method} {path}"))
            })
            .collect()
    }
}

/// The member writes (create, status, delete) among `requests`.
fn member_writes(requests: &[String]) -> Vec<&String> {
    requests
        .iter()
        .filter(|r| r.contains("/members") && !r.starts_with("GET "))
        .collect()
}

/// Glance's log since `log` started shows reads of `images`' members (so it is the log Glance
/// writes to) and no member write. Prints the requests: the figures of the adoption.
fn reads_only(log: &GlanceLog, images: &[String], what: &str) {
    let requests = log.requests(images);
    eprintln!(
        "{what}: {} Glance requests on these images, {requests:#?}",
        requests.len()
    );
    assert!(reads_members(&requests), "the log shows the reads: {requests:?}");
    assert_eq!(
        member_writes(&requests),
        Vec::<&String>::new(),
        "{what}: no POST, PUT or DELETE on members"
    );
}

/// Whether `requests` read an image's members (so the log is the one Glance writes to).
fn reads_members(requests: &[String]) -> bool {
    requests.iter().any(|r| r.starts_with("GET ") && r.contains("/members"))
}

/// A Terraform working folder with the configuration of tests/fixtures/terraform/config (3
/// images; memberships by count, for_each and a module; an accept by member1; an unrelated
/// resource), the provider wired without a registry as the benchmark does.
struct Terraform {
    dir: PathBuf,
    applied: bool,
}

impl Terraform {
    fn new(env: &RealOpenStack) -> Terraform {
        let dir = std::env::temp_dir().join(common::cluster::unique("iao-terraform"));
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/config");
        copy_tree(&fixtures, &dir);
        std::fs::write(dir.join("tiny.img"), "tiny image\n").expect("image file");
        let provider = which("terraform-provider-openstack");
        std::fs::create_dir_all(dir.join("plugins")).expect("plugins");
        std::os::unix::fs::symlink(provider, dir.join("plugins/terraform-provider-openstack")).expect("link");
        std::fs::write(
            dir.join("cli.rc"),
            format!(
                "provider_installation {{\n  dev_overrides {{\n    \"terraform-provider-openstack/openstack\" = \"{}\"\n  }}\n  direct {{}}\n}}\n",
                dir.join("plugins").display()
            ),
        )
        .expect("cli.rc");
        let _ = env;
        let terraform = Terraform { dir, applied: false };
        terraform.ok(&["get"]);
        terraform
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(which("terraform"));
        command
            .args(args)
            .current_dir(&self.dir)
            .env("TF_CLI_CONFIG_FILE", self.dir.join("cli.rc"))
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_VAR_auth_url", var("OSL_KEYSTONE_URL"))
            .env("TF_VAR_user_password", var("OSL_USER_PASSWORD"))
            .env("TF_VAR_owner_user_name", var("OSL_OWNER_USERNAME"))
            .env("TF_VAR_owner_project_name", var("OSL_OWNER_PROJECT_NAME"))
            .env("TF_VAR_member1_user_name", var("OSL_MEMBER1_USERNAME"))
            .env("TF_VAR_member1_project_name", var("OSL_MEMBER1_PROJECT_NAME"))
            .env("TF_VAR_member1_project_id", var("OSL_MEMBER1_PROJECT_ID"))
            .env("TF_VAR_member2_project_id", var("OSL_MEMBER2_PROJECT_ID"));
        command
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.command(args).arg("-no-color").output().expect("run terraform");
        assert!(
            out.status.success(),
            "terraform {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&mut self) {
        self.applied = true;
        self.ok(&["apply", "-auto-approve", "-input=false"]);
    }

    /// `terraform show -json` of the state.
    fn show_json(&self) -> String {
        self.ok(&["show", "-json"])
    }

    /// The image IDs in the state.
    fn images(&self) -> Vec<String> {
        let shown: serde_json::Value = serde_json::from_str(&self.show_json()).expect("show -json");
        shown["values"]["root_module"]["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter(|r| r["type"] == "openstack_images_image_v2")
            .map(|r| r["values"]["id"].as_str().expect("id").to_string())
            .collect()
    }
}

impl Drop for Terraform {
    /// Nothing left in Glance: destroying the images removes their members too.
    fn drop(&mut self) {
        if self.applied {
            let _ = self
                .command(&["destroy", "-auto-approve", "-input=false", "-no-color"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|path| path.is_file())
        })
        .unwrap_or_else(|| panic!("{program} is not on PATH: `hack/tools.sh all` builds it (make test does)"))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// `image-access-operator export ARGS` (stdin `input`): the manifests; fails the test on a
/// non-zero exit.
fn export(args: &[&str], input: Option<&str>) -> String {
    let out = common::cluster::run(
        env!("CARGO_BIN_EXE_image-access-operator"),
        &[&["export"], args].concat(),
        input,
    );
    assert!(out.success, "export {args:?}: {}", out.stderr);
    out.stdout
}

/// The names of the objects of `kind` in `manifests`.
fn names_of(manifests: &str, kind: &str) -> Vec<String> {
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(manifests).expect("YAML");
    documents
        .iter()
        .filter(|d| d["kind"] == kind)
        .map(|d| d["metadata"]["name"].as_str().expect("name").to_string())
        .collect()
}

/// Each of `names` Ready, with a MemberAdopted event.
async fn adopted(ns: &TestNamespace, names: &[String]) {
    for name in names {
        let object = ns.wait_for::<ImageAccess>(name, "Ready", WAIT, is_ready).await;
        assert!(
            object.status.as_ref().and_then(|s| s.applied.as_ref()).is_some(),
            "{name}: applied"
        );
    }
    eventually("a MemberAdopted event per object", WAIT, || async {
        let reasons = kubectl_ok(
            &[
                "get",
                "events",
                "-n",
                &ns.name,
                "--field-selector",
                "reason=MemberAdopted",
                "-o",
                "jsonpath={.items[*].involvedObject.name}",
            ],
            None,
        );
        let named: Vec<&str> = reasons.split_whitespace().collect();
        names.iter().all(|n| named.contains(&n.as_str())).then_some(())
    })
    .await;
}

/// The member statuses Glance shows for every member of `images`, sorted.
async fn memberships(env: &RealOpenStack, images: &[String]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for image in images {
        for member in [&env.member1_project_id, &env.member2_project_id] {
            if let Some(m) = env.member(image, member).await {
                out.push((
                    image.clone(),
                    member.clone(),
                    m["status"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// Deletes every exported object (as `kubectl delete -f` of the manifests would) and waits
/// until they are gone.
async fn delete_all(ns: &TestNamespace, manifests: &str) {
    let out = kubectl(&["delete", "-n", &ns.name, "--wait=false", "-f", "-"], Some(manifests));
    assert!(out.success, "{}", out.stderr);
    for name in names_of(manifests, "ImageAccess") {
        ns.wait_gone_of::<ImageAccess>(&name).await;
    }
    for name in names_of(manifests, "ImageAccessAccept") {
        ns.wait_gone_of::<ImageAccessAccept>(&name).await;
    }
}

/// Deletes the exported objects (their policy is Orphan): every membership stays as `before`,
/// and Glance saw no member write since `log` started.
async fn deleted_with_orphan(
    ns: &TestNamespace,
    manifests: &str,
    env: &RealOpenStack,
    images: &[String],
    before: &[(String, String, String)],
    log: &GlanceLog,
) {
    delete_all(ns, manifests).await;
    assert_eq!(
        memberships(env, images).await,
        before,
        "Orphan: every membership still there"
    );
    reads_only(log, images, "the deletions");
}

#[tokio::test]
async fn memberships_made_by_terraform_move_to_the_operator_untouched() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("migrate-tf", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let mut terraform = Terraform::new(&env);
    let setup = GlanceLog::from_now();
    terraform.apply();
    let images = terraform.images();
    assert_eq!(images.len(), 3);
    let before = memberships(&env, &images).await;
    assert_eq!(before.len(), 4, "{before:?}");

    // Both inputs: the raw state, and `terraform show -json |` on stdin. The same manifests.
    let common_flags = [
        "-n",
        ns.name.as_str(),
        "--cloud-name",
        "owner",
        "--accept-cloud-name",
        "member1",
    ];
    let state = terraform.dir.join("terraform.tfstate");
    let manifests = export(
        &[
            &["--from-terraform-state", state.to_str().expect("path")],
            &common_flags[..],
        ]
        .concat(),
        None,
    );
    let from_stdin = export(
        &[&["--from-terraform-state", "-"], &common_flags[..]].concat(),
        Some(&terraform.show_json()),
    );
    assert_eq!(
        from_stdin.lines().skip(1).collect::<Vec<_>>(),
        manifests.lines().skip(1).collect::<Vec<_>>(),
        "the same objects from either input (the first line names the input)"
    );
    let accesses = names_of(&manifests, "ImageAccess");
    let accepts = names_of(&manifests, "ImageAccessAccept");
    assert_eq!((accesses.len(), accepts.len()), (4, 1), "{manifests}");

    // Terraform made 4 members and accepted one.
    let log = setup.after_member_writes(&images, 5).await;
    let out = ns.apply(&manifests);
    assert!(out.success, "{}", out.stderr);
    adopted(&ns, &accesses).await;
    for name in &accepts {
        ns.wait_for::<ImageAccessAccept>(name, "Ready", WAIT, is_ready).await;
    }
    let what = format!(
        "{} ImageAccess + {} ImageAccessAccept from Terraform",
        accesses.len(),
        accepts.len()
    );
    reads_only(&log, &images, &what);
    assert_eq!(memberships(&env, &images).await, before, "Glance as Terraform left it");

    // Terraform lets go of them; the objects are deleted with the exported policy (Orphan).
    terraform.ok(&[
        "state",
        "rm",
        "openstack_images_image_access_v2.ubuntu_members",
        "openstack_images_image_access_v2.debian_teams",
        "module.share.openstack_images_image_access_v2.this",
        "openstack_images_image_access_accept_v2.ubuntu_member1",
    ]);
    let listed = terraform.ok(&["state", "list"]);
    assert!(
        !listed.contains("image_access"),
        "Terraform holds only the images now: {listed}"
    );
    deleted_with_orphan(&ns, &manifests, &env, &images, &before, &log).await;
}

#[tokio::test]
async fn memberships_made_by_hand_move_to_the_operator_untouched() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("migrate-glance", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let setup = GlanceLog::from_now();
    let images = vec![env.create_image("shared").await, env.create_image("shared").await];
    let post = reqwest::Method::POST;
    for (image, member) in [
        (&images[0], &env.member1_project_id),
        (&images[0], &env.member2_project_id),
        (&images[1], &env.member1_project_id),
    ] {
        let path = format!("/v2/images/{image}/members");
        let body = serde_json::json!({ "member": member });
        assert_eq!(env.raw("owner", post.clone(), &path, Some(body)).await, 200);
    }
    let accepted = serde_json::json!({"status": "accepted"});
    let path = format!("/v2/images/{}/members/{}", images[0], env.member1_project_id);
    assert_eq!(
        env.raw("member1", reqwest::Method::PUT, &path, Some(accepted)).await,
        200
    );
    let before = memberships(&env, &images).await;

    let clouds = var("IAO_CLOUDS_YAML");
    let manifests = export(
        &[
            "--from-glance",
            "--clouds-file",
            &clouds,
            "--os-cloud",
            "owner",
            "--image",
            &images[0],
            "--image",
            &images[1],
            "--with-status",
            "-n",
            &ns.name,
        ],
        None,
    );
    let accesses = names_of(&manifests, "ImageAccess");
    assert_eq!(accesses.len(), 3, "{manifests}");
    assert!(manifests.contains("status: accepted"), "--with-status: {manifests}");

    let log = setup.after_member_writes(&images, 4).await;
    let out = ns.apply(&manifests);
    assert!(out.success, "{}", out.stderr);
    adopted(&ns, &accesses).await;
    for name in &accesses {
        let object = ns.get(name).await.expect("object");
        let glance = before
            .iter()
            .find(|(image, member, _)| *image == object.spec.image_id && *member == object.spec.member_id)
            .expect("exported from Glance");
        let status = object
            .status
            .as_ref()
            .and_then(|s| s.member_status)
            .expect("member status");
        assert_eq!(status.as_str(), glance.2, "{name}: the status Glance shows");
        assert!(object.condition("Ready").is_some());
    }
    reads_only(&log, &images, &format!("{} ImageAccess from Glance", accesses.len()));

    deleted_with_orphan(&ns, &manifests, &env, &images, &before, &log).await;
}

#[tokio::test]
async fn export_refuses_what_it_cannot_read_and_says_why() {
    let env = RealOpenStack::from_env();
    let clouds = var("IAO_CLOUDS_YAML");
    let run = |args: &[&str], input: Option<&str>| {
        let out = common::cluster::run(
            env!("CARGO_BIN_EXE_image-access-operator"),
            &[&["export"], args].concat(),
            input,
        );
        (out.success, out.stderr)
    };
    let missing = "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (
            vec!["--from-terraform-state", "/nonexistent.tfstate"],
            None,
            "cannot read the Terraform state /nonexistent.tfstate",
        ),
        (
            vec!["--from-terraform-state", "-"],
            Some("{\"version\": 3}"),
            "state format version 3 is not supported",
        ),
        (
            vec![
                "--from-glance",
                "--clouds-file",
                &clouds,
                "--os-cloud",
                "owner",
                "--image",
                missing,
            ],
            None,
            "was not found",
        ),
        (
            vec!["--from-glance", "--clouds-file", &clouds, "--os-cloud", "nowhere"],
            None,
            "no cloud named \"nowhere\"",
        ),
        (vec![], None, "--from-glance"),
    ];
    for (args, input, expected) in cases {
        let (success, stderr) = run(&args, input);
        assert!(!success, "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains(&env.user_password), "{args:?}: a password in {stderr}");
    }
    // Refused credentials: a clouds.yaml with a wrong password.
    let wrong = std::env::temp_dir().join(common::cluster::unique("iao-wrong-clouds"));
    let text = env.clouds_yaml().replace(&env.user_password, "not-the-password");
    std::fs::write(&wrong, text).expect("clouds.yaml");
    let (success, stderr) = run(
        &[
            "--from-glance",
            "--clouds-file",
            wrong.to_str().expect("path"),
            "--os-cloud",
            "owner",
        ],
        None,
    );
    let _ = std::fs::remove_file(&wrong);
    assert!(!success);
    assert!(
        stderr.contains("401") && stderr.contains("check the cloud entry's credentials"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
}

/// `kubectl patch --type merge` of the ImageAccess `name`'s spec.
fn patch_spec(ns: &TestNamespace, name: &str, spec: serde_json::Value) {
    let patch = serde_json::json!({ "spec": spec }).to_string();
    kubectl_ok(
        &[
            "patch",
            "imageaccess",
            name,
            "-n",
            &ns.name,
            "--type",
            "merge",
            "-p",
            &patch,
        ],
        None,
    );
}

/// Whether `object` only observes, as its status says for its current generation: InSync of
/// `in_sync` (and `reason`), no finalizer, nothing recorded as held.
fn observing(object: &ImageAccess, in_sync: &str, reason: &str) -> bool {
    common::cluster::has_reason(object, "InSync", in_sync, Some(reason))
        && !object.has_finalizer()
        && object.status.as_ref().is_some_and(|s| s.applied.is_none())
}

/// Issue 23: a migration that starts with Observe objects (`export --observe`). They read and
/// report, drift included, and never write to Glance (its request log is the judge); a Managed
/// object of the same membership is not blocked by them; the switch to Managed adopts with
/// reads only, and back to Observe lets go with no write; their deletion calls nothing.
#[tokio::test]
async fn observe_objects_report_and_switch_both_ways_with_no_write() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("migrate-observe", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let setup = GlanceLog::from_now();
    let images = vec![env.create_image("shared").await, env.create_image("shared").await];
    let (accepted_one, plain_one) = (&images[0], &images[1]);
    let (member1, member2) = (&env.member1_project_id, &env.member2_project_id);
    for (image, member) in [(accepted_one, member1), (plain_one, member2)] {
        let path = format!("/v2/images/{image}/members");
        let body = serde_json::json!({ "member": member });
        assert_eq!(env.raw("owner", reqwest::Method::POST, &path, Some(body)).await, 200);
    }
    let member1_path = format!("/v2/images/{accepted_one}/members/{member1}");
    let accepted = serde_json::json!({"status": "accepted"});
    assert_eq!(
        env.raw("member1", reqwest::Method::PUT, &member1_path, Some(accepted))
            .await,
        200
    );

    let clouds = var("IAO_CLOUDS_YAML");
    let export_of = |image: &str, with_status: bool| {
        let mut args = vec![
            "--from-glance",
            "--clouds-file",
            &clouds,
            "--os-cloud",
            "owner",
            "--image",
            image,
            "--observe",
            "-n",
            &ns.name,
        ];
        if with_status {
            args.push("--with-status");
        }
        export(&args, None)
    };
    let manifests = format!("{}---\n{}", export_of(accepted_one, true), export_of(plain_one, false));
    assert!(manifests.contains("managementPolicy: Observe"), "{manifests}");
    assert!(
        !manifests.contains("onCreate"),
        "an Observe object never creates: {manifests}"
    );
    let names = names_of(&manifests, "ImageAccess");
    assert_eq!(names.len(), 2, "{manifests}");
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&manifests).expect("YAML");
    let name_of = |image: &str| {
        documents
            .iter()
            .find(|d| d["kind"] == "ImageAccess" && d["spec"]["imageId"] == image)
            .and_then(|d| d["metadata"]["name"].as_str())
            .unwrap_or_else(|| panic!("the object of {image} in {manifests}"))
            .to_string()
    };
    let (watched, switched) = (name_of(accepted_one), name_of(plain_one));

    let log = setup.after_member_writes(&images, 3).await;
    assert!(ns.apply(&manifests).success);
    for name in &names {
        let object = ns
            .wait_for::<ImageAccess>(name, "observed and InSync", WAIT, |o| {
                is_ready(o) && observing(o, "True", "InSync")
            })
            .await;
        assert!(object.status.as_ref().and_then(|s| s.member_status).is_some(), "{name}");
    }
    reads_only(&log, &images, "Observe objects applied");

    // Drift: the member rejects the image by hand; at the object's next look (1m) it shows.
    patch_spec(&ns, &watched, serde_json::json!({"resyncPeriod": "1m"}));
    ns.wait_for::<ImageAccess>(&watched, "the patch observed", WAIT, |o| observing(o, "True", "InSync"))
        .await;
    let rejected = serde_json::json!({"status": "rejected"});
    assert_eq!(
        env.raw("member1", reqwest::Method::PUT, &member1_path, Some(rejected))
            .await,
        200
    );
    let log = log.after_member_writes(&images, 1).await;
    let drifted = ns
        .wait_for::<ImageAccess>(&watched, "InSync False", Duration::from_secs(90), |o| {
            observing(o, "False", "MemberStatusDiffers")
        })
        .await;
    let message = &drifted.condition("InSync").expect("InSync").message;
    assert!(
        message.contains("rejected") && message.contains("accepted"),
        "{message}"
    );
    assert!(is_ready(&drifted), "observed: Ready");

    // A Managed object of the same membership is not blocked by the Observe one.
    let managed = "managed-beside";
    let adopt = "  onCreate: Adopt\n  deletionPolicy: Orphan\n";
    assert!(
        ns.apply(&common::cluster::manifest(
            managed,
            accepted_one,
            member1,
            "owner",
            adopt
        ))
        .success
    );
    let object = ns.wait_ready(managed).await;
    assert!(object.status.as_ref().and_then(|s| s.applied.as_ref()).is_some());

    // Observe → Managed: adopted with reads only; Managed → Observe: let go with no write.
    patch_spec(&ns, &switched, serde_json::json!({"managementPolicy": "Managed"}));
    let object = ns
        .wait_for::<ImageAccess>(&switched, "adopted", WAIT, |o| {
            is_ready(o) && o.has_finalizer() && o.status.as_ref().is_some_and(|s| s.applied.is_some())
        })
        .await;
    assert!(object.condition("InSync").is_none(), "InSync is for Observe only");
    patch_spec(&ns, &switched, serde_json::json!({"managementPolicy": "Observe"}));
    ns.wait_for::<ImageAccess>(&switched, "let go of", WAIT, |o| observing(o, "True", "InSync"))
        .await;
    ns.wait_events(None, &["MemberAdopted", "ManagementStopped"]).await;

    // Deleting the Observe objects calls nothing (and waits for nothing).
    for name in [&watched, &switched] {
        kubectl_ok(&["delete", "imageaccess", name, "-n", &ns.name, "--wait=false"], None);
        ns.wait_gone_of::<ImageAccess>(name).await;
    }
    assert!(env.member(plain_one, member2).await.is_some(), "left as it is");
    assert!(env.member(accepted_one, member1).await.is_some(), "left as it is");
    reads_only(
        &log,
        &images,
        "drift, a Managed neighbour, both switches and the deletions",
    );
}

/// Issue 23: an ImageShare in Observe mode makes Observe children: a hand-made membership is
/// reported, a missing one is `MemberNotFound` (not made), Glance sees no write, and deleting the
/// share leaves every membership as it is.
#[tokio::test]
async fn an_observe_share_makes_observe_children_and_writes_nothing() {
    let env = RealOpenStack::from_env();
    let ns = TestNamespace::new("share-observe", &env).await;
    let _operator = Operator::start(&ns.name, &[]);
    let setup = GlanceLog::from_now();
    let image = env.create_image("shared").await;
    let (member1, member2) = (env.member1_project_id.clone(), env.member2_project_id.clone());
    let path = format!("/v2/images/{image}/members");
    let body = serde_json::json!({ "member": member1 });
    assert_eq!(env.raw("owner", reqwest::Method::POST, &path, Some(body)).await, 200);
    let images = vec![image.clone()];
    let log = setup.after_member_writes(&images, 1).await;

    let share = format!(
        "apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageShare\nmetadata:\n  name: watched\nspec:\n  imageIds: [{image}]\n  memberIds: [{member1}, {member2}]\n  managementPolicy: Observe\n  cloudCredentialsRef: {{secretName: {}, cloudName: owner}}\n",
        common::cluster::SECRET
    );
    assert!(ns.apply(&share).success);
    let children = eventually("the share's two children", WAIT, || async {
        let names = kubectl_ok(
            &[
                "get",
                "ia",
                "-n",
                &ns.name,
                "-l",
                "glance.viettelidc.com.vn/image-share=watched",
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ],
            None,
        );
        let names: Vec<String> = names.split_whitespace().map(str::to_string).collect();
        (names.len() == 2).then_some(names)
    })
    .await;
    let mut reported = Vec::new();
    for name in &children {
        let child = ns
            .wait_for::<ImageAccess>(name, "observed", WAIT, |o| {
                observing(o, "True", "InSync") || observing(o, "False", "MemberNotFound")
            })
            .await;
        assert_eq!(
            child.spec.management_policy,
            Some(image_access_operator::api::ManagementPolicy::Observe)
        );
        let in_sync = child.condition("InSync").expect("InSync").status.clone();
        reported.push((child.spec.member_id.clone(), in_sync));
    }
    reported.sort();
    let mut expected = vec![
        (member1.clone(), "True".to_string()),
        (member2.clone(), "False".to_string()),
    ];
    expected.sort();
    assert_eq!(reported, expected, "the hand-made one in sync, the other missing");

    kubectl_ok(
        &[
            "delete",
            "imageshare",
            "watched",
            "-n",
            &ns.name,
            "--wait=true",
            "--timeout=60s",
        ],
        None,
    );
    for name in &children {
        ns.wait_gone_of::<ImageAccess>(name).await;
    }
    assert!(env.member(&image, &member1).await.is_some(), "left as it is");
    assert!(env.member(&image, &member2).await.is_none(), "never made");
    reads_only(&log, &images, "an Observe share, applied and deleted");
}
