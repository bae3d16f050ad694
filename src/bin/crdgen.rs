//! Prints the CustomResourceDefinitions as YAML: `cargo run --bin crdgen > crds/imageaccesses.yaml`.
use image_access_operator::api::ImageAccess;
use kube::CustomResourceExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    print!("{}", image_access_operator::crd_yaml()?);
    let _ = ImageAccess::crd_name();
    Ok(())
}
