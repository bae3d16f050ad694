//! Writes the CustomResourceDefinitions, one YAML file per kind, into each folder named on the
//! command line: `cargo run --bin crdgen -- crds charts/image-access-operator/crds`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let folders: Vec<String> = std::env::args().skip(1).collect();
    if folders.is_empty() {
        return Err("usage: crdgen FOLDER... (writes one CRD file per kind into each)".into());
    }
    for folder in &folders {
        for (file, yaml) in image_access_operator::crds()? {
            std::fs::write(std::path::Path::new(folder).join(file), yaml)?;
        }
    }
    Ok(())
}
