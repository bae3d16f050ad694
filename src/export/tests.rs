//! The export on states captured from real Terraform runs (tests/fixtures/terraform/), on
//! broken input, and against the in-process Glance.

use super::*;
use crate::api::{DeletionPolicy, ImageAccess, ImageAccessAccept};
use crate::testing::fake_openstack::{FakeOpenStack, MEMBER_PROJECT, OWNER_PROJECT, PASSWORD};

const RAW: &str = include_str!("../../tests/fixtures/terraform/terraform.tfstate");
const SHOWN: &str = include_str!("../../tests/fixtures/terraform/show.json");
const MEMBER1: &str = "2b6bfcee35b5454b9f93084873640725";
const MEMBER2: &str = "41007aca61264cd4889d59b852492619";
const UBUNTU: &str = "67e2c3a8-7dfe-425f-ab01-a279a003ea02";

fn sorted(mut found: Vec<Found>) -> Vec<Found> {
    found.sort_by(|a, b| a.origin.cmp(&b.origin));
    found
}

#[test]
fn a_raw_state_gives_every_instance_of_count_for_each_and_modules() {
    let contents = terraform::read(RAW).expect("state");
    let found = sorted(contents.found);
    let origins: Vec<&str> = found.iter().map(|f| f.origin.as_str()).collect();
    assert_eq!(
        origins,
        [
            "module.share.openstack_images_image_access_v2.this",
            "openstack_images_image_access_accept_v2.ubuntu_member1",
            "openstack_images_image_access_v2.debian_teams[\"team-a\"]",
            "openstack_images_image_access_v2.ubuntu_members[0]",
            "openstack_images_image_access_v2.ubuntu_members[1]",
        ]
    );
    let ubuntu = &found[4];
    assert_eq!(ubuntu.kind, FoundKind::Access);
    assert_eq!(ubuntu.image_id, UBUNTU);
    assert_eq!(
        ubuntu.image_name.as_deref(),
        Some("golden-ubuntu-24.04"),
        "from the image resource"
    );
    assert_eq!(ubuntu.member_id.as_deref(), Some(MEMBER2));
    assert_eq!(ubuntu.region.as_deref(), Some("RegionOne"));
    assert_eq!(ubuntu.status, Some(MemberStatus::Pending));
    let accept = &found[1];
    assert_eq!(accept.kind, FoundKind::Accept);
    assert_eq!(accept.member_id.as_deref(), Some(MEMBER1));
    assert_eq!(accept.status, Some(MemberStatus::Accepted));
    assert_eq!(
        contents.ignored.into_iter().collect::<Vec<_>>(),
        [
            ("openstack_images_image_v2".to_string(), 3),
            ("terraform_data".to_string(), 1)
        ]
    );
    assert!(contents.unreadable.is_empty());
}

#[test]
fn show_json_gives_the_same_as_the_raw_state() {
    let raw = terraform::read(RAW).expect("raw");
    let shown = terraform::read(SHOWN).expect("show -json");
    assert_eq!(sorted(shown.found), sorted(raw.found));
    assert_eq!(shown.ignored, raw.ignored);
}

#[test]
fn the_viettelidc_family_reads_as_the_openstack_one() {
    // The ViettelIdc provider is a fork with renamed types (it cannot be built here): the same
    // real state with its types renamed.
    for text in [RAW, SHOWN] {
        let renamed = text
            .replace("\"openstack_images_", "\"viettelidc_images_")
            .replace(".openstack_images_", ".viettelidc_images_");
        let found = terraform::read(&renamed).expect("state").found;
        assert_eq!(found.len(), 5);
        assert!(found.iter().all(|f| f.origin.contains("viettelidc_images_")));
        assert!(
            found.iter().all(|f| f.image_name.is_some()),
            "names from viettelidc_images_image_v2"
        );
    }
}

#[test]
fn broken_states_are_refused_with_what_to_do() {
    let cases = [
        ("{not json", "is not JSON (line 1, column 2)"),
        ("{\"a\": 1}", "not a Terraform state"),
        (
            "{\"version\": 3, \"modules\": []}",
            "state format version 3 is not supported",
        ),
        (
            "{\"format_version\": \"2.0\"}",
            "format version \"2.0\" is not supported",
        ),
        ("{\"format_version\": \"1.2\", \"planned_values\": {}}", "it is a plan"),
        ("{\"version\": 4, \"resources\": {}}", "does not have the shape"),
    ];
    for (text, expected) in cases {
        let error = terraform::read(text).expect_err(text).to_string();
        assert!(error.contains(expected), "{text}: {error}");
    }
    assert!(
        terraform::read("{\"version\": 4}")
            .expect("empty state")
            .found
            .is_empty()
    );
    assert!(
        terraform::read("{\"format_version\": \"1.0\"}")
            .expect("empty show")
            .found
            .is_empty()
    );
}

#[test]
fn unreadable_instances_are_skipped_and_named() {
    let text = r#"{"version": 4, "resources": [
        {"mode": "managed", "type": "openstack_images_image_access_v2", "name": "a",
         "instances": [{"attributes": {"image_id": "i", "member_id": ""}}]},
        {"mode": "managed", "type": "openstack_images_image_access_v2", "name": "b",
         "instances": [{"attributes": {"image_id": "i", "member_id": "m", "status": "maybe"}}]},
        {"mode": "data", "type": "openstack_images_image_access_v2", "name": "c",
         "instances": [{"attributes": {"image_id": "i", "member_id": "m"}}]}
    ]}"#;
    let contents = terraform::read(text).expect("state");
    assert!(contents.found.is_empty(), "a data source manages nothing");
    assert_eq!(
        contents.unreadable,
        [
            "openstack_images_image_access_v2.a: no member_id",
            "openstack_images_image_access_v2.b: status \"maybe\" is not pending, accepted or rejected"
        ]
    );
}

fn options() -> manifest::Options {
    manifest::Options {
        namespace: Some("apps".into()),
        secret_name: "owner-credentials".into(),
        cloud_name: "owner".into(),
        accept_secret_name: "member-credentials".into(),
        accept_cloud_name: "member".into(),
        deletion_policy: ExportDeletionPolicy::Orphan,
        with_status: false,
        observe: false,
        source: "test".into(),
    }
}

/// The documents of a multi-document YAML, as JSON values.
fn documents(yaml: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple(yaml).expect("valid YAML")
}

#[test]
fn manifests_adopt_orphan_and_name_every_object_once() {
    let found = terraform::read(RAW).expect("state").found;
    let rendered = manifest::render(found.clone(), &options()).expect("rendered");
    let docs = documents(&rendered.yaml);
    assert_eq!(docs.len(), 5);
    let accesses: Vec<ImageAccess> = docs
        .iter()
        .filter(|d| d["kind"] == "ImageAccess")
        .map(|d| serde_json::from_value(d.clone()).expect("an ImageAccess"))
        .collect();
    let accepts: Vec<ImageAccessAccept> = docs
        .iter()
        .filter(|d| d["kind"] == "ImageAccessAccept")
        .map(|d| serde_json::from_value(d.clone()).expect("an ImageAccessAccept"))
        .collect();
    assert_eq!((accesses.len(), accepts.len()), (4, 1));
    for access in &accesses {
        assert_eq!(access.metadata.namespace.as_deref(), Some("apps"));
        assert_eq!(
            access.spec.on_create,
            Some(crate::api::OnCreate::Adopt),
            "adopts with reads only"
        );
        assert_eq!(access.metadata.annotations, None, "the field, not the older annotation");
        assert_eq!(access.spec.deletion_policy, Some(DeletionPolicy::Orphan));
        assert_eq!(access.spec.status, None, "the member decides unless --with-status");
        assert_eq!(access.spec.region.as_deref(), Some("RegionOne"));
        assert_eq!(access.spec.cloud_credentials_ref.secret_name, "owner-credentials");
    }
    assert_eq!(accepts[0].spec.status, MemberStatus::Accepted);
    assert_eq!(accepts[0].spec.cloud_credentials_ref.cloud_name, "member");
    assert_eq!(
        accepts[0].spec.deletion_policy,
        Some(crate::api::AcceptDeletionPolicy::Orphan)
    );
    let names: Vec<String> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().expect("name").to_string())
        .collect();
    let stems: Vec<&str> = names.iter().map(|n| without_hash(n)).collect();
    assert_eq!(
        stems,
        [
            "golden-debian-12-2b6bfcee",
            "golden-ubuntu-24-04-2b6bfcee",
            "golden-ubuntu-24-04-41007aca",
            "windows-server-2022-eval-2b6bfcee",
            "golden-ubuntu-24-04-2b6bfcee-accept",
        ]
    );
    // The same input in another order gives the same text.
    let mut reversed = found;
    reversed.reverse();
    assert_eq!(
        manifest::render(reversed, &options()).expect("again").yaml,
        rendered.yaml
    );
}

/// `name` without its 6 hex digits of hash (checked to be there).
fn without_hash(name: &str) -> &str {
    let (stem, hash) = name.rsplit_once('-').expect("a hash");
    assert!(hash.len() == 6 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    stem
}

#[test]
fn a_name_stays_when_other_memberships_come_and_go_and_differs_by_region() {
    let all = terraform::read(RAW).expect("state").found;
    let origin = "openstack_images_image_access_v2.ubuntu_members[0]";
    let name_of = |found: Vec<Found>| -> String {
        let docs = documents(&manifest::render(found, &options()).expect("rendered").yaml);
        docs.iter()
            .find(|d| d["kind"] == "ImageAccess" && d["spec"]["imageId"] == UBUNTU && d["spec"]["memberId"] == MEMBER1)
            .map(|d| d["metadata"]["name"].as_str().expect("name").to_string())
            .expect("exported")
    };
    let alone: Vec<Found> = all.iter().filter(|f| f.origin == origin).cloned().collect();
    assert_eq!(name_of(all.clone()), name_of(alone.clone()));
    // The same image and member in another region (another export into the same namespace):
    // another name, so applying it never rewrites this object.
    let mut elsewhere = alone.clone();
    elsewhere[0].region = Some("RegionTwo".into());
    assert_ne!(name_of(elsewhere), name_of(alone));
}

#[test]
fn an_image_access_leaves_the_status_to_an_exported_accept_of_the_same_membership() {
    let found = terraform::read(RAW).expect("state").found;
    let options = manifest::Options {
        with_status: true,
        ..options()
    };
    let docs = documents(&manifest::render(found, &options).expect("rendered").yaml);
    for doc in docs.iter().filter(|d| d["kind"] == "ImageAccess") {
        let accepted = doc["spec"]["imageId"] == UBUNTU && doc["spec"]["memberId"] == MEMBER1;
        assert_eq!(doc["spec"].get("status").is_none(), accepted, "{doc}");
    }
}

#[test]
fn image_names_cannot_break_out_of_their_comment() {
    let found = vec![Found {
        kind: FoundKind::Access,
        image_id: UBUNTU.into(),
        image_name: Some("evil\nkind: Secret\r\n\u{2028}kind: Secret\u{85}kind: Secret".into()),
        member_id: Some(MEMBER1.into()),
        region: None,
        status: None,
        origin: "Glance".into(),
    }];
    let yaml = manifest::render(found, &options()).expect("rendered").yaml;
    let breaks = ['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'];
    assert!(
        !yaml.split(breaks).any(|line| line.starts_with("kind: Secret")),
        "{yaml}"
    );
    assert_eq!(documents(&yaml)[0]["kind"], "ImageAccess");
}

#[test]
fn deposed_instances_are_not_exported_and_encrypted_states_are_named() {
    let text = r#"{"version": 4, "resources": [
        {"mode": "managed", "type": "openstack_images_image_access_v2", "name": "a",
         "instances": [{"attributes": {"image_id": "i", "member_id": "m"}},
                       {"deposed": "00000001", "attributes": {"image_id": "i", "member_id": "old"}}]}
    ]}"#;
    let found = terraform::read(text).expect("state").found;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].member_id.as_deref(), Some("m"));
    // `show -json` lists a deposed object as a resource of its own, same address.
    let shown = r#"{"format_version": "1.0", "values": {"root_module": {"resources": [
        {"address": "openstack_images_image_access_v2.a", "mode": "managed", "type": "openstack_images_image_access_v2",
         "values": {"image_id": "i", "member_id": "m"}},
        {"address": "openstack_images_image_access_v2.a", "mode": "managed", "type": "openstack_images_image_access_v2",
         "deposed_key": "00000001", "values": {"image_id": "i", "member_id": "old"}}
    ]}}}"#;
    let found = terraform::read(shown).expect("shown").found;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].member_id.as_deref(), Some("m"));
    let encrypted = r#"{"serial": 1, "lineage": "x", "meta": {"key_provider.pbkdf2.k": "e30="}, "encrypted_data": "AAAA", "encryption_version": "v0"}"#;
    let error = terraform::read(encrypted).expect_err("encrypted").to_string();
    assert!(error.contains("tofu show -json"), "{error}");
}

#[test]
fn with_status_and_delete_carry_over() {
    let found = terraform::read(RAW).expect("state").found;
    let options = manifest::Options {
        with_status: true,
        deletion_policy: ExportDeletionPolicy::Delete,
        namespace: None,
        ..options()
    };
    let docs = documents(&manifest::render(found, &options).expect("rendered").yaml);
    for doc in &docs {
        assert!(doc["metadata"].get("namespace").is_none(), "kubectl apply -n decides");
        let expected = if doc["kind"] == "ImageAccess" {
            "Delete"
        } else {
            "Reject"
        };
        assert_eq!(doc["spec"]["deletionPolicy"], expected);
        // The one membership an accept also names leaves the status to it.
        let left_to_the_accept =
            doc["kind"] == "ImageAccess" && doc["spec"]["imageId"] == UBUNTU && doc["spec"]["memberId"] == MEMBER1;
        assert_eq!(doc["spec"]["status"].is_string(), !left_to_the_accept, "{doc}");
    }
}

#[test]
fn names_that_would_meet_are_told_apart_and_stay_dns_labels() {
    let membership = |image: &str, name: Option<&str>, member: &str, region: Option<&str>| Found {
        kind: FoundKind::Access,
        image_id: image.into(),
        image_name: name.map(str::to_string),
        member_id: Some(member.into()),
        region: region.map(str::to_string),
        status: None,
        origin: format!("{image}/{member}"),
    };
    let long = "An Extremely Long Image Name That Goes On And On Past Every Limit";
    let found = vec![
        membership("img-1", Some("ubuntu"), MEMBER1, None),
        membership("img-2", Some("Ubuntu"), MEMBER1, None),
        membership("img-3", Some(long), MEMBER1, None),
        membership("img-4", None, MEMBER1, Some("RegionOne")),
        membership("img-4", None, MEMBER1, Some("RegionTwo")),
        membership("img-5", Some("日本語"), MEMBER1, None),
        // The same membership twice (two resources, or both families): one object.
        membership("img-1", Some("ubuntu"), MEMBER1, None),
    ];
    let rendered = manifest::render(found, &options()).expect("rendered");
    assert!(
        rendered.notes.iter().any(|n| n.starts_with("skipped img-1/")),
        "{:?}",
        rendered.notes
    );
    let names: Vec<String> = documents(&rendered.yaml)
        .iter()
        .map(|d| d["metadata"]["name"].as_str().expect("name").to_string())
        .collect();
    assert_eq!(names.len(), 6);
    let unique: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), 6, "{names:?}");
    for name in &names {
        assert!(name.len() <= 63, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !name.starts_with('-')
                && !name.ends_with('-'),
            "{name}"
        );
    }
    let stems: Vec<&str> = names.iter().map(|n| without_hash(n)).collect();
    assert!(stems.contains(&"an-extremely-long-image-name-that-goes-o-2b6bfcee"));
    assert!(stems.contains(&"img5-2b6bfcee"), "no letters left: the ID: {names:?}");
    assert_eq!(
        stems.iter().filter(|n| **n == "ubuntu-2b6bfcee").count(),
        2,
        "{names:?}"
    );
}

fn glance_args(clouds: &std::path::Path, cloud: &str) -> ExportArgs {
    ExportArgs {
        from_glance: true,
        from_terraform_state: None,
        os_cloud: Some(cloud.into()),
        clouds_file: Some(clouds.to_path_buf()),
        images: Vec::new(),
        with_status: false,
        observe: false,
        namespace: None,
        secret_name: "openstack-credentials".into(),
        cloud_name: None,
        accept_secret_name: None,
        accept_cloud_name: None,
        deletion_policy: ExportDeletionPolicy::Orphan,
    }
}

async fn fake_with_clouds() -> (FakeOpenStack, std::path::PathBuf) {
    let fake = FakeOpenStack::start().await;
    let path = std::env::temp_dir().join(format!(
        "iao-export-{}-{}.yaml",
        std::process::id(),
        fake.auth_url().len() + rand_suffix()
    ));
    std::fs::write(&path, fake.clouds_yaml()).expect("clouds.yaml");
    (fake, path)
}

fn rand_suffix() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn from_glance_every_member_of_the_shared_images_of_the_project_every_page() {
    let (fake, clouds) = fake_with_clouds().await;
    // More than a page (100) of shared images, one with a member; others' images and private
    // ones are not listed.
    for i in 0..105 {
        fake.add_image(&format!("img-{i:03}"), OWNER_PROJECT, "shared");
    }
    fake.put_member("img-104", MEMBER_PROJECT, MemberStatus::Accepted);
    fake.put_member("img-000", MEMBER_PROJECT, MemberStatus::Pending);
    fake.add_image("private-1", OWNER_PROJECT, "private");
    fake.add_image("theirs", MEMBER_PROJECT, "shared");
    let exported = run(&glance_args(&clouds, "owner")).await.expect("exported");
    let docs = documents(&exported.manifests);
    let images: Vec<&str> = docs
        .iter()
        .map(|d| d["spec"]["imageId"].as_str().expect("id"))
        .collect();
    assert_eq!(images, ["img-000", "img-104"]);
    assert_eq!(fake.requests("GET images"), 2, "two pages (the second not full)");
    assert!(
        docs.iter()
            .all(|d| d["spec"]["cloudCredentialsRef"]["cloudName"] == "owner")
    );
    assert!(docs.iter().all(|d| d["spec"].get("status").is_none()));
    assert!(
        exported.notes.iter().any(|n| n == "103 of 105 images have no members"),
        "{:?}",
        exported.notes
    );

    let mut args = glance_args(&clouds, "owner");
    args.with_status = true;
    args.images = vec!["img-104".into()];
    let docs = documents(&run(&args).await.expect("exported").manifests);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["spec"]["status"], "accepted");
    assert_eq!(
        without_hash(docs[0]["metadata"]["name"].as_str().expect("name")),
        "image-img-104-memberpr"
    );
    assert_eq!(docs[0]["spec"]["region"], "RegionOne", "where it was read");
    let _ = std::fs::remove_file(clouds);
}

#[tokio::test]
async fn from_glance_failures_name_what_to_fix_and_never_the_password() {
    let (fake, clouds) = fake_with_clouds().await;
    fake.add_image("img-1", OWNER_PROJECT, "shared");
    let mut args = glance_args(&clouds, "owner");
    args.images = vec!["nope".into()];
    let error = run(&args).await.expect_err("no such image").to_string();
    assert!(error.contains("image nope was not found"), "{error}");

    let error = run(&glance_args(&clouds, "wrong"))
        .await
        .expect_err("refused")
        .to_string();
    assert!(error.contains("check the cloud entry's credentials"), "{error}");
    assert!(
        !error.contains("not-the-password") && !error.contains(PASSWORD),
        "{error}"
    );

    let error = run(&glance_args(&clouds, "nowhere"))
        .await
        .expect_err("no cloud")
        .to_string();
    assert!(error.contains("no cloud named \"nowhere\""), "{error}");

    let mut args = glance_args(&clouds, "owner");
    args.os_cloud = None;
    let error = run(&args).await.expect_err("which cloud").to_string();
    assert!(error.contains("--os-cloud NAME or OS_CLOUD"), "{error}");

    let mut args = glance_args(&clouds, "owner");
    args.clouds_file = Some("/nonexistent/clouds.yaml".into());
    let error = run(&args).await.expect_err("no file").to_string();
    assert!(error.contains("cannot read /nonexistent/clouds.yaml"), "{error}");

    // Another project's image: its members are the owner's to manage.
    fake.put_member("img-1", MEMBER_PROJECT, MemberStatus::Accepted);
    let mut args = glance_args(&clouds, "member");
    args.images = vec!["img-1".into()];
    let error = run(&args).await.expect_err("not the owner").to_string();
    assert!(
        error.contains("is owned by project owner-project, not by member-project"),
        "{error}"
    );
    let _ = std::fs::remove_file(clouds);
}

#[test]
fn a_state_file_that_cannot_be_read_is_named() {
    let args = ExportArgs {
        from_glance: false,
        from_terraform_state: Some("/nonexistent/terraform.tfstate".into()),
        ..glance_args(std::path::Path::new("unused"), "unused")
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let error = runtime.block_on(run(&args)).expect_err("unreadable").to_string();
    assert!(
        error.starts_with("cannot read the Terraform state /nonexistent/terraform.tfstate"),
        "{error}"
    );
}
