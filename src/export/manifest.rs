//! The manifests of what was found: names, the spec, the adoption annotation, one YAML
//! document each with a comment saying where it came from.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::ObjectMeta;

use super::{ExportDeletionPolicy, Found, FoundKind};
use crate::api::{
    AcceptDeletionPolicy, CloudCredentialsRef, DeletionPolicy, ImageAccess, ImageAccessAccept, ImageAccessAcceptSpec,
    ImageAccessSpec, ManagementPolicy, OnCreate,
};
use crate::names::{dns_label_part, short_id, stable_hash};

pub(super) struct Options {
    pub namespace: Option<String>,
    pub secret_name: String,
    pub cloud_name: String,
    pub accept_secret_name: String,
    pub accept_cloud_name: String,
    pub deletion_policy: ExportDeletionPolicy,
    pub with_status: bool,
    /// `managementPolicy: Observe` on every object.
    pub observe: bool,
    /// For the header: where the memberships were read.
    pub source: String,
}

pub(super) struct Rendered {
    pub yaml: String,
    pub notes: Vec<String>,
}

/// The manifests of `found`, in a stable order (by kind and name), so that exporting twice
/// gives the same text.
pub(super) fn render(mut found: Vec<Found>, options: &Options) -> Result<Rendered, String> {
    let mut notes = Vec::new();
    found.sort_by(|a, b| {
        (a.kind, &a.image_name, &a.image_id, &a.member_id, &a.region).cmp(&(
            b.kind,
            &b.image_name,
            &b.image_id,
            &b.member_id,
            &b.region,
        ))
    });
    // One object per membership: a second would be Stalled as managed elsewhere.
    let mut seen: BTreeMap<(FoundKind, String, Option<String>, Option<String>), String> = BTreeMap::new();
    found.retain(|f| {
        let key = (f.kind, f.image_id.clone(), f.member_id.clone(), f.region.clone());
        match seen.get(&key) {
            Some(first) => {
                notes.push(format!("skipped {}: the same membership as {first}", f.origin));
                false
            }
            None => {
                seen.insert(key, f.origin.clone());
                true
            }
        }
    });
    // An accept of the same membership sets its status: the ImageAccess leaves it alone (two
    // setters would conflict).
    let accepted: BTreeSet<(String, Option<String>)> = found
        .iter()
        .filter(|f| f.kind == FoundKind::Accept)
        .map(|f| (f.image_id.clone(), f.member_id.clone()))
        .collect();
    let names = names(&found);
    let accesses = found.iter().filter(|f| f.kind == FoundKind::Access).count();
    let accepts = found.len() - accesses;
    let applied = if options.observe {
        "Applied, each object only observes its membership (managementPolicy: Observe): it reports it, drift included, and never writes to Glance; set managementPolicy to Managed when the team is ready (it adopts with reads only)."
    } else {
        "Applied, each ImageAccess adopts its membership with reads only (onCreate: Adopt)."
    };
    let mut yaml = format!(
        "# image-access-operator export: {accesses} ImageAccess, {accepts} ImageAccessAccept, from {}.\n\
         # {applied}\n\
         # deletionPolicy {:?}: {}\n",
        options.source,
        options.deletion_policy,
        match options.deletion_policy {
            ExportDeletionPolicy::Orphan =>
                "deleting an object leaves its membership in Glance; switch to Delete once the migration is done.",
            ExportDeletionPolicy::Delete =>
                "deleting an ImageAccess removes its membership; deleting an ImageAccessAccept rejects the image.",
        }
    );
    let mut documents: Vec<(&Found, &String)> = found.iter().zip(&names).collect();
    documents.sort_by_key(|(f, name)| (f.kind, name.as_str()));
    for (f, name) in documents {
        let document = match f.kind {
            FoundKind::Access => {
                let with_status = options.with_status && !accepted.contains(&(f.image_id.clone(), f.member_id.clone()));
                serde_saphyr::to_string(&access(f, name, options, with_status))
            }
            FoundKind::Accept => serde_saphyr::to_string(&accept(f, name, options)),
        }
        .map_err(|e| e.to_string())?;
        let image = f.image_name.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        let comment = one_line(&format!("{}: image {}{image}", f.origin, f.image_id));
        yaml.push_str(&format!("---\n# {comment}\n{document}"));
    }
    if found.is_empty() {
        notes.push("no membership found: nothing to export".into());
    } else {
        notes.push(format!(
            "exported {accesses} ImageAccess and {accepts} ImageAccessAccept objects"
        ));
    }
    if accepts > 0
        && options.accept_secret_name == options.secret_name
        && options.accept_cloud_name == options.cloud_name
    {
        notes.push(format!(
            "the ImageAccessAccept objects use the same credentials as the ImageAccess ones (Secret {}, cloud {}): an accept needs the member project's; pass --accept-secret-name / --accept-cloud-name",
            options.secret_name, options.cloud_name
        ));
    }
    Ok(Rendered { yaml, notes })
}

fn metadata(name: &str, options: &Options) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: options.namespace.clone(),
        ..Default::default()
    }
}

fn access(f: &Found, name: &str, options: &Options, with_status: bool) -> ImageAccess {
    ImageAccess {
        metadata: metadata(name, options),
        spec: ImageAccessSpec {
            image_id: f.image_id.clone(),
            image_ref: None,
            member_id: f.member_id.clone().unwrap_or_default(),
            member_ref: None,
            status: f.status.filter(|_| with_status),
            region: f.region.clone(),
            cloud_credentials_ref: CloudCredentialsRef {
                secret_name: options.secret_name.clone(),
                cloud_name: options.cloud_name.clone(),
            },
            deletion_policy: Some(match options.deletion_policy {
                ExportDeletionPolicy::Orphan => DeletionPolicy::Orphan,
                ExportDeletionPolicy::Delete => DeletionPolicy::Delete,
            }),
            resync_period: None,
            // Adopts what exists with reads only (the annotation of earlier versions did too); an
            // Observe object never creates, and turned Managed it adopts with reads only anyway.
            on_create: (!options.observe).then_some(OnCreate::Adopt),
            management_policy: options.observe.then_some(ManagementPolicy::Observe),
        },
        status: None,
    }
}

fn accept(f: &Found, name: &str, options: &Options) -> ImageAccessAccept {
    ImageAccessAccept {
        // An accept reads the member before any write: it adopts without being told.
        metadata: metadata(name, options),
        spec: ImageAccessAcceptSpec {
            image_id: f.image_id.clone(),
            image_ref: None,
            member_id: f.member_id.clone(),
            status: f.status.unwrap_or(crate::api::MemberStatus::Accepted),
            region: f.region.clone(),
            cloud_credentials_ref: CloudCredentialsRef {
                secret_name: options.accept_secret_name.clone(),
                cloud_name: options.accept_cloud_name.clone(),
            },
            deletion_policy: Some(match options.deletion_policy {
                ExportDeletionPolicy::Orphan => AcceptDeletionPolicy::Orphan,
                ExportDeletionPolicy::Delete => AcceptDeletionPolicy::Reject,
            }),
            resync_period: None,
            management_policy: options.observe.then_some(ManagementPolicy::Observe),
        },
        status: None,
    }
}

/// A name per membership: the image's name (else the first 8 characters of its ID) and the
/// member's first 8, for people, then 6 hex digits of a hash of the membership (kind, image,
/// member, region), so that two exports into one namespace never name two memberships alike
/// (applying one over the other would replace a membership), and a name never changes when
/// other memberships come and go. A valid DNS label of at most 63 characters.
fn names(found: &[Found]) -> Vec<String> {
    let mut taken = BTreeSet::new();
    found
        .iter()
        .map(|f| {
            let image = f
                .image_name
                .as_deref()
                .map(|name| dns_label_part(name, 40))
                .filter(|label| !label.is_empty())
                .unwrap_or_else(|| short_id(&f.image_id, 8));
            let member = f.member_id.as_deref().map(|m| short_id(m, 8)).unwrap_or_default();
            let kind = match f.kind {
                FoundKind::Access => "access",
                FoundKind::Accept => "accept",
            };
            let hash = stable_hash(&[
                kind,
                &f.image_id,
                f.member_id.as_deref().unwrap_or_default(),
                f.region.as_deref().unwrap_or_default(),
            ]);
            let mut stem = image;
            for part in [member.as_str(), if f.kind == FoundKind::Accept { "accept" } else { "" }] {
                if !part.is_empty() {
                    stem = format!("{stem}-{part}");
                }
            }
            let mut name = format!("{stem}-{:06x}", hash & 0xff_ffff);
            // Only a 24-bit collision of two memberships gets here: count on, shortening the
            // image part to keep 63 characters.
            let mut n = 2;
            while !taken.insert(name.clone()) {
                let suffix = format!("-{:06x}-{n}", hash & 0xff_ffff);
                let keep = 63usize.saturating_sub(suffix.len());
                name = format!(
                    "{}{suffix}",
                    stem.chars().take(keep).collect::<String>().trim_end_matches('-')
                );
                n += 1;
            }
            name
        })
        .collect()
}

/// `text` for a YAML comment: on one line (an image name is free text; YAML parsers also break
/// lines at U+2028 and U+2029).
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect()
}
