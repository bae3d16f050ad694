//! `image-access-operator export`: manifests for memberships that exist already, read from
//! Glance or from a Terraform state, so that a team moves them to GitOps in one step. Every
//! ImageAccess written says `onCreate: Adopt` ([`OnCreate::Adopt`]): applied, it adopts its
//! membership with reads only. `deletionPolicy` defaults to `Orphan`, so that a mistake in the migration can never
//! remove a membership.

mod glance;
mod manifest;
mod terraform;

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

pub use self::terraform::StateError;
use crate::api::MemberStatus;
#[cfg(doc)]
use crate::api::OnCreate;
use crate::openstack::{ConfigError, OpenStackError};

/// Write ImageAccess (and ImageAccessAccept) manifests for memberships that exist already, to
/// apply with kubectl or commit for Argo CD / Flux. The operator adopts them without changing
/// Glance.
#[derive(Args, Debug, Clone)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["from_glance", "from_terraform_state"]))]
pub struct ExportArgs {
    /// Read the members of the images the project owns with visibility `shared` (or of the
    /// images given with --image) from Glance, with the credentials of a clouds.yaml entry.
    #[arg(long)]
    pub from_glance: bool,

    /// Read every openstack_/viettelidc_images_image_access_v2 and _accept_v2 instance of a
    /// Terraform or OpenTofu state: terraform.tfstate, or `-` for stdin (`terraform show -json |`).
    #[arg(long, value_name = "FILE")]
    pub from_terraform_state: Option<PathBuf>,

    /// The clouds.yaml entry to use (as the openstack CLI's --os-cloud).
    #[arg(long, env = "OS_CLOUD", value_name = "NAME")]
    pub os_cloud: Option<String>,

    /// The clouds.yaml to read; by default ./clouds.yaml, ~/.config/openstack/clouds.yaml, then
    /// /etc/openstack/clouds.yaml (as the openstack CLI).
    #[arg(long, env = "OS_CLIENT_CONFIG_FILE", value_name = "FILE")]
    pub clouds_file: Option<PathBuf>,

    /// Only this image (repeatable), whatever its visibility.
    #[arg(long = "image", value_name = "ID", requires = "from_glance")]
    pub images: Vec<String>,

    /// Also write each ImageAccess's `spec.status` from the member status Glance (or the state)
    /// shows. The operator then holds Glance to it, which takes admin credentials when the
    /// member changes it; without it the member decides.
    #[arg(long)]
    pub with_status: bool,

    /// The namespace of every object (default: none written, so `kubectl apply -n` decides).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,

    /// The Secret with the clouds.yaml the operator uses (`spec.cloudCredentialsRef.secretName`).
    #[arg(long, default_value = "openstack-credentials")]
    pub secret_name: String,

    /// The cloud of that clouds.yaml (`cloudName`); default: --os-cloud with --from-glance,
    /// `openstack` otherwise.
    #[arg(long)]
    pub cloud_name: Option<String>,

    /// The Secret of ImageAccessAccept objects, which need the member project's credentials
    /// (default: --secret-name).
    #[arg(long)]
    pub accept_secret_name: Option<String>,

    /// The cloud of ImageAccessAccept objects (default: --cloud-name).
    #[arg(long)]
    pub accept_cloud_name: Option<String>,

    /// What deleting an exported object does. Orphan (the default) leaves the membership in
    /// Glance; Delete removes it (an ImageAccessAccept rejects the image instead). Switch to
    /// Delete once the migration is done.
    #[arg(long, value_enum, ignore_case = true, default_value_t = ExportDeletionPolicy::Orphan)]
    pub deletion_policy: ExportDeletionPolicy,

    /// Write every object with `managementPolicy: Observe`: the operator only reads and reports
    /// the memberships (drift as InSync False) and never writes to Glance, while Terraform still
    /// manages them. Set `managementPolicy: Managed` (or drop it) when the team is ready: the
    /// objects then adopt what exists with reads only.
    #[arg(long)]
    pub observe: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportDeletionPolicy {
    #[value(name = "Orphan")]
    Orphan,
    #[value(name = "Delete")]
    Delete,
}

/// A membership found in the source.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    kind: FoundKind,
    image_id: String,
    /// Known when the source names the image (a Glance image, or an image resource of the
    /// same Terraform state).
    image_name: Option<String>,
    /// Always set for [`FoundKind::Access`]; an accept may leave it to the token's project.
    member_id: Option<String>,
    region: Option<String>,
    status: Option<MemberStatus>,
    /// Where it was found, for the comment above its manifest and for messages.
    origin: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FoundKind {
    Access,
    Accept,
}

/// Why nothing was exported. Each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read the Terraform state {path}: {source}")]
    ReadState { path: String, source: std::io::Error },
    #[error(
        "--from-terraform-state - reads the state from stdin: pipe it in (`terraform show -json | image-access-operator export --from-terraform-state -`)"
    )]
    StdinIsTerminal,
    #[error("cannot use the Terraform state {path}: {source}")]
    State { path: String, source: StateError },
    #[error("no clouds.yaml found (looked at {looked}): pass --clouds-file or set OS_CLIENT_CONFIG_FILE")]
    NoCloudsFile { looked: String },
    #[error("cannot read {path}: {source}")]
    ReadClouds { path: String, source: std::io::Error },
    #[error("say which cloud of {path} to use: --os-cloud NAME or OS_CLOUD")]
    NoCloud { path: String },
    #[error("{path}: {source}")]
    Clouds { path: String, source: ConfigError },
    #[error("{doing}: {source}; {}", what_to_do(source))]
    OpenStack { doing: String, source: OpenStackError },
    #[error(
        "image {image} was not found, or project {project} may not see it: check the ID (`openstack image show {image}`)"
    )]
    ImageNotFound { image: String, project: String },
    #[error(
        "image {image} is owned by project {owner}, not by {project}: its members are managed with the owner's credentials; export with those (a member accepts with an ImageAccessAccept)"
    )]
    NotOwner {
        image: String,
        owner: String,
        project: String,
    },
    #[error("the token of cloud {cloud:?} is not scoped to a project: give the entry a project_name or project_id")]
    Unscoped { cloud: String },
    #[error("cannot write the manifests: {0}")]
    Render(String),
}

/// The next step after an OpenStack failure, by what it was.
fn what_to_do(error: &OpenStackError) -> &'static str {
    use crate::openstack::HttpErrorKind;
    match error.http_kind() {
        Some(HttpErrorKind::Unauthorized) => {
            "check the cloud entry's credentials (`openstack --os-cloud NAME token issue` tries them)"
        }
        Some(HttpErrorKind::Forbidden) => {
            "the credentials may not do this: export with the image owner project's (or an admin's)"
        }
        _ if error.is_transient() => "Glance or the network failed for now: run the export again",
        _ => {
            "check the cloud entry (auth_url, region_name, interface) against `openstack --os-cloud NAME catalog list`"
        }
    }
}

/// The manifests, and what to tell the person on stderr.
#[derive(Debug)]
pub struct Exported {
    /// A multi-document YAML, for stdout.
    pub manifests: String,
    /// One line each.
    pub notes: Vec<String>,
}

/// Reads the source `args` names and writes the manifests.
pub async fn run(args: &ExportArgs) -> Result<Exported, ExportError> {
    let mut notes = Vec::new();
    let (found, cloud_name, source) = if let Some(path) = &args.from_terraform_state {
        let (text, shown) = read_state(path)?;
        let contents = terraform::read(&text).map_err(|source| ExportError::State {
            path: shown.clone(),
            source,
        })?;
        if !contents.ignored.is_empty() {
            let total: usize = contents.ignored.values().sum();
            let types: Vec<String> = contents.ignored.iter().map(|(t, n)| format!("{t} ×{n}")).collect();
            notes.push(format!(
                "ignored {total} instances of other resource types: {}",
                types.join(", ")
            ));
        }
        for unreadable in &contents.unreadable {
            notes.push(format!("skipped {unreadable}"));
        }
        (
            contents.found,
            args.cloud_name.clone().unwrap_or_else(|| "openstack".into()),
            format!("Terraform state {shown}"),
        )
    } else {
        let read = glance::memberships(args).await?;
        notes.extend(read.notes);
        let cloud = args.cloud_name.clone().unwrap_or(read.cloud);
        (read.found, cloud, format!("Glance (project {})", read.project))
    };
    let options = manifest::Options {
        namespace: args.namespace.clone(),
        secret_name: args.secret_name.clone(),
        cloud_name: cloud_name.clone(),
        accept_secret_name: args
            .accept_secret_name
            .clone()
            .unwrap_or_else(|| args.secret_name.clone()),
        accept_cloud_name: args.accept_cloud_name.clone().unwrap_or(cloud_name),
        deletion_policy: args.deletion_policy,
        with_status: args.with_status,
        observe: args.observe,
        source,
    };
    let rendered = manifest::render(found, &options).map_err(ExportError::Render)?;
    notes.extend(rendered.notes);
    Ok(Exported {
        manifests: rendered.yaml,
        notes,
    })
}

/// The state's text, and how to name it in messages.
fn read_state(path: &std::path::Path) -> Result<(String, String), ExportError> {
    let stdin = path.as_os_str() == "-";
    let shown = if stdin {
        "(stdin)".to_string()
    } else {
        path.display().to_string()
    };
    let read = if stdin {
        use std::io::IsTerminal;
        if std::io::stdin().is_terminal() {
            return Err(ExportError::StdinIsTerminal);
        }
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    let text = read.map_err(|source| ExportError::ReadState {
        path: shown.clone(),
        source,
    })?;
    Ok((text, shown))
}

#[cfg(test)]
mod tests;
