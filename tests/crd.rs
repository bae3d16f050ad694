//! The generated CRD: `crds/` matches the generator, and the CEL rules in the schema behave
//! (evaluated offline with kube's `cel` feature; the real kube-apiserver proves them in the
//! end-to-end suite).

use image_access_operator::api::{ImageAccess, MemberStatus};
use kube::core::cel::validate_cel;

#[test]
fn crds_folder_matches_the_generator() {
    for (file, generated) in image_access_operator::crds().expect("CRDs serialize") {
        let path = format!("{}/crds/{file}", env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(generated == committed, "crds/{file} is stale: run `make crds`");
    }
}

fn object(member_id: &str) -> ImageAccess {
    ImageAccess::test("a", "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10", member_id, "owner")
}

#[test]
fn cel_accepts_a_plain_project_id() {
    validate_cel(&object("acdfb9791e07428483d18f670ffa14b5")).expect("valid");
    validate_cel(&object("acdf").with_member_status(MemberStatus::Accepted)).expect("valid with a status");
}

#[test]
fn cel_refuses_a_slash_in_member_id() {
    let errors = validate_cel(&object("a/b")).expect_err("slash refused");
    assert!(format!("{errors:?}").contains("must not contain '/'"), "{errors:?}");
}

#[test]
fn cel_refuses_whitespace_around_member_id() {
    let errors = validate_cel(&object(" abc ")).expect_err("whitespace refused");
    assert!(format!("{errors:?}").contains("whitespace"), "{errors:?}");
}

#[test]
fn every_spec_and_status_field_has_a_description() {
    for crd in all_crds() {
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut missing = Vec::new();
        fn walk(path: &str, node: &serde_json::Value, missing: &mut Vec<String>) {
            if let Some(properties) = node.get("properties").and_then(|p| p.as_object()) {
                for (name, child) in properties {
                    let child_path = format!("{path}.{name}");
                    if child.get("description").is_none() {
                        missing.push(child_path.clone());
                    }
                    walk(&child_path, child, missing);
                }
            }
        }
        walk("", &schema["properties"]["spec"], &mut missing);
        walk("", &schema["properties"]["status"], &mut missing);
        assert!(
            missing.is_empty(),
            "{}: fields without a description: {missing:?}",
            crd["metadata"]["name"]
        );
    }
}

/// Every kind's CRD, as JSON.
fn all_crds() -> Vec<serde_json::Value> {
    image_access_operator::crds()
        .expect("CRDs serialize")
        .into_iter()
        .map(|(_, yaml)| serde_saphyr::from_str(&yaml).expect("parse"))
        .collect()
}

#[test]
fn every_string_in_the_spec_is_bounded() {
    for crd in all_crds() {
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        fn walk(node: &serde_json::Value, path: &str, unbounded: &mut Vec<String>) {
            if node["type"] == "string" && node.get("maxLength").is_none() && node.get("enum").is_none() {
                unbounded.push(path.to_string());
            }
            if let Some(properties) = node.get("properties").and_then(|p| p.as_object()) {
                for (name, child) in properties {
                    walk(child, &format!("{path}.{name}"), unbounded);
                }
            }
        }
        let mut unbounded = Vec::new();
        walk(spec, "spec", &mut unbounded);
        assert!(unbounded.is_empty(), "strings without maxLength: {unbounded:?}");
    }
}

/// Issue 7, C12: Glance answers 404 for any spelling of an image ID but its own, so other
/// spellings are refused at admission, with the expected form in the message.
#[test]
fn cel_refuses_an_image_id_glance_would_not_find_and_shows_its_form() {
    let canonical = "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";
    let with_image = |id: &str| ImageAccess::test("a", id, "acdf", "owner");
    validate_cel(&with_image(canonical)).expect("Glance's form");
    for spelling in [canonical.to_uppercase(), canonical.replace('-', "")] {
        let errors = validate_cel(&with_image(&spelling)).expect_err("refused");
        let text = format!("{errors:?}");
        assert!(text.contains(canonical), "{spelling}: shows the form to use: {text}");
    }
    let errors = validate_cel(&with_image("my-golden-image")).expect_err("a name is not an ID");
    assert!(format!("{errors:?}").contains("openstack image list"), "{errors:?}");
}

#[test]
fn a_new_object_reads_as_not_yet_observed() {
    for crd in all_crds() {
        let status = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
        assert_eq!(
            status["default"],
            serde_json::json!({"observedGeneration": 0}),
            "kstatus reads generation 1 with observedGeneration 0 as InProgress"
        );
    }
}
