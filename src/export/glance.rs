//! Reading the memberships that exist from Glance, with a clouds.yaml entry as the openstack
//! CLI reads it (`--os-cloud`/`OS_CLOUD`, `OS_CLIENT_CONFIG_FILE`, `OS_CACERT`).

use std::path::PathBuf;
use std::sync::Arc;

use super::{ExportArgs, ExportError, Found, FoundKind};
use crate::metrics::Metrics;
use crate::openstack::{ClientSettings, Cloud, Files, Glance, Image, OpenStack, OpenStackError};

pub(super) struct FromGlance {
    pub found: Vec<Found>,
    pub notes: Vec<String>,
    /// The cloud entry used: the default `cloudName` of the manifests.
    pub cloud: String,
    pub project: String,
}

pub(super) async fn memberships(args: &ExportArgs) -> Result<FromGlance, ExportError> {
    let path = clouds_file(args)?;
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|source| ExportError::ReadClouds {
        path: shown.clone(),
        source,
    })?;
    let cloud_name = args
        .os_cloud
        .clone()
        .ok_or_else(|| ExportError::NoCloud { path: shown.clone() })?;
    let cloud = Cloud::from_clouds_yaml(&text, &cloud_name, &DiskFiles).map_err(|source| ExportError::Clouds {
        path: shown.clone(),
        source,
    })?;
    // Run by hand on the user's machine, as the openstack CLI: a clouds.yaml that turns TLS
    // verification off is the user's own choice here.
    let settings = ClientSettings {
        allow_insecure_tls: true,
        ..ClientSettings::default()
    };
    let openstack = OpenStack::new(settings, Arc::new(Metrics::default()));
    let failed = |doing: String| move |source| ExportError::OpenStack { doing, source };
    let session = openstack
        .session(&cloud.credentials)
        .map_err(failed(format!("cloud {cloud_name:?}")))?;
    let glance = session
        .glance(cloud.region_name.as_deref(), &cloud)
        .await
        .map_err(failed(format!("cloud {cloud_name:?}")))?;
    let project = session
        .project_id()
        .await
        .map_err(failed(format!("cloud {cloud_name:?}")))?
        .ok_or_else(|| ExportError::Unscoped {
            cloud: cloud_name.clone(),
        })?;

    let images = if args.images.is_empty() {
        glance
            .list_images(&project, "shared")
            .await
            .map_err(failed(format!("listing the shared images of project {project}")))?
    } else {
        let mut images = Vec::new();
        for id in &args.images {
            images.push(named_image(&glance, id, &project).await?);
        }
        images
    };
    let mut found = Vec::new();
    let mut notes = Vec::new();
    let mut without_members = 0;
    for image in &images {
        let listed = glance.list_members(&image.id).await;
        if args.images.is_empty() && listed.as_ref().is_err_and(OpenStackError::is_not_found) {
            // Deleted since the listing.
            notes.push(format!("skipped image {}: gone since it was listed", image.id));
            continue;
        }
        let members = listed.map_err(failed(format!("listing the members of image {}", image.id)))?;
        if members.is_empty() {
            without_members += 1;
        }
        for member in members {
            found.push(Found {
                kind: FoundKind::Access,
                image_id: image.id.clone(),
                image_name: image.name.clone(),
                member_id: Some(member.member_id),
                // Where it was read (when the entry names it): the manifests hold on to it
                // whatever the Secret's entry says.
                region: cloud.region_name.clone(),
                status: Some(member.status),
                origin: "Glance".into(),
            });
        }
    }
    if cloud.region_name.is_none() && !found.is_empty() {
        notes.push(format!(
            "cloud {cloud_name:?} names no region_name: the manifests name none either, so the region of the operator's cloud entry applies; add spec.region if the cloud has several"
        ));
    }
    if without_members > 0 {
        notes.push(format!("{without_members} of {} images have no members", images.len()));
    }
    Ok(FromGlance {
        found,
        notes,
        cloud: cloud_name,
        project,
    })
}

/// `--image ID`: an image that cannot be seen, or that another project owns, is an error
/// naming it (an ImageAccess is managed with the owner's credentials).
async fn named_image(glance: &Glance, id: &str, project: &str) -> Result<Image, ExportError> {
    let image = glance.show_image(id).await.map_err(|source: OpenStackError| {
        if source.is_not_found() {
            ExportError::ImageNotFound {
                image: id.to_string(),
                project: project.to_string(),
            }
        } else {
            ExportError::OpenStack {
                doing: format!("reading image {id}"),
                source,
            }
        }
    })?;
    match &image.owner {
        Some(owner) if owner != project => Err(ExportError::NotOwner {
            image: id.to_string(),
            owner: owner.clone(),
            project: project.to_string(),
        }),
        _ => Ok(image),
    }
}

/// `--clouds-file`/`OS_CLIENT_CONFIG_FILE`, else the first of the places the openstack CLI looks.
fn clouds_file(args: &ExportArgs) -> Result<PathBuf, ExportError> {
    if let Some(path) = &args.clouds_file {
        return Ok(path.clone());
    }
    let mut candidates = vec![PathBuf::from("clouds.yaml")];
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")));
    if let Some(config_home) = config_home {
        candidates.push(config_home.join("openstack/clouds.yaml"));
    }
    candidates.push(PathBuf::from("/etc/openstack/clouds.yaml"));
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| ExportError::NoCloudsFile {
            looked: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The files a cloud entry names, from the disk, as the openstack CLI reads them: `OS_CACERT`,
/// `OS_CERT` and `OS_KEY` first, then the entry's paths.
struct DiskFiles;

impl Files for DiskFiles {
    fn named(&self, what: &str, path: Option<&str>) -> Option<Vec<u8>> {
        let variable = format!("OS_{}", what.to_ascii_uppercase());
        let path = std::env::var(variable)
            .ok()
            .filter(|p| !p.is_empty())
            .or(path.map(str::to_string))?;
        std::fs::read(path).ok()
    }

    fn missing(&self, what: &str, path: &str) -> String {
        format!("{what} names the file {path}, which cannot be read")
    }
}
