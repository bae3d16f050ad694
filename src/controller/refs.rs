//! Names instead of IDs: `imageRef: {name}` and `memberRef: {projectName, domain}`, resolved
//! with the object's credentials when the spec changes, and kept in `status.resolved` until it
//! changes again. A rebuilt image of the same name is not followed silently (an ImageShare's
//! imageSelector is what follows builds); none or several candidates stop the look, naming them,
//! and change nothing.

use super::Kind;
use super::holding::Resolved;
use super::problem::Problem;
use crate::api::{ImageRef, MemberRef, ResolvedRefs};
use crate::openstack::{HttpErrorKind, ImageQuery, OpenStackError, Project, ProjectQuery, Session};

/// Where an image name is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Among {
    /// The images of the credentials' project (an owner sharing its image).
    Owned,
    /// The images shared with the credentials' project (a member accepting one).
    SharedWithMe,
}

/// The names an object's spec gives instead of IDs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Refs<'a> {
    pub image: Option<(&'a ImageRef, Among)>,
    pub member: Option<&'a MemberRef>,
    /// The spec's region (else the cloud entry's): where an image name is looked up.
    pub region: Option<&'a str>,
    /// The member an image shared with it is looked up for (an accept's spec.memberId).
    pub member_id: Option<&'a str>,
}

/// Candidates asked for: two tell "several" from "one".
const CANDIDATES: usize = 5;

/// What the object's names resolve to, when they changed since they were last resolved
/// (`Ok(None)`: no names, or resolved already: another edit of the spec does not look them up
/// again, so a rebuilt image of the same name is never followed silently). `Err` when a name
/// matches none or several, or the credentials may not look it up: the look stops there,
/// holding what it held.
pub async fn resolve<K: Kind>(object: &K, creds: &Resolved) -> Result<Option<ResolvedRefs>, Problem> {
    let refs = object.refs();
    if refs.image.is_none() && refs.member.is_none() {
        // Back to IDs: what names resolved to is forgotten (a name given again is looked up).
        let named_before = object
            .membership_status()
            .and_then(|s| s.resolved.as_ref())
            .is_some_and(|r| r.image_ref.is_some() || r.member_ref.is_some());
        return Ok(named_before.then(ResolvedRefs::default));
    }
    let image_ref = refs.image.map(|(image, _)| image.clone());
    let member_ref = refs.member.cloned();
    let region = refs.region.or(creds.cloud.region_name.as_deref());
    // Each name is looked up again only when it (or where it is looked up) changed: a change
    // of the member never moves the image to a newer build of its name.
    let looked_up_in = image_ref.as_ref().map(|_| {
        format!(
            "region={};member={}",
            region.unwrap_or(""),
            refs.member_id.unwrap_or("")
        )
    });
    let recorded = object
        .membership_status()
        .and_then(|s| s.resolved.clone())
        .unwrap_or_default();
    let image_current = recorded.image_ref == image_ref && recorded.image_looked_up_in == looked_up_in;
    let member_current = recorded.member_ref == member_ref;
    if image_current && member_current {
        return Ok(None);
    }
    let mut resolved = ResolvedRefs {
        image_ref,
        member_ref,
        image_looked_up_in: looked_up_in,
        image_id: recorded.image_id.filter(|_| image_current),
        member_id: recorded.member_id.filter(|_| member_current),
    };
    if let Some((image, among)) = refs.image.filter(|_| !image_current) {
        resolved.image_id = Some(image_named(&refs, creds, image, among).await?);
    }
    if let Some(member) = refs.member.filter(|_| !member_current) {
        resolved.member_id = Some(project_named(&creds.session, &creds.secret, member).await?.id);
    }
    Ok(Some(resolved))
}

/// Image states a name is not resolved to: an upload that failed, an image on its way out.
const GONE_STATES: [&str; 3] = ["killed", "deleted", "pending_delete"];

async fn image_named(refs: &Refs<'_>, creds: &Resolved, image: &ImageRef, among: Among) -> Result<String, Problem> {
    // System-scoped credentials have no project: any image they see (an admin's: all).
    let project = creds.caller.project.clone();
    let region = refs.region.or(creds.cloud.region_name.as_deref());
    let failed =
        |e: OpenStackError| lookup_failed(&e, &format!("look image {:?} up in Glance", image.name), &creds.secret);
    let glance = creds.glance(region).await.map_err(failed)?;
    let query = ImageQuery {
        owner: project.as_deref().filter(|_| among == Among::Owned),
        shared_with_me: among == Among::SharedWithMe,
        // An upload still running or failed is no candidate (a rebuild in progress would make
        // the name ambiguous).
        status: Some("active"),
        name: Some(&image.name),
        ..ImageQuery::default()
    };
    let found = glance.select_images(&query, CANDIDATES).await.map_err(failed)?;
    let mut candidates = Vec::new();
    for candidate in found {
        if candidate.status.as_deref().is_some_and(|s| GONE_STATES.contains(&s)) {
            continue;
        }
        if among == Among::SharedWithMe {
            if candidate.owner.is_some() && candidate.owner == project {
                continue;
            }
            // An admin sees every shared image: only those shared with this member count.
            let member = refs.member_id.or(project.as_deref()).unwrap_or_default();
            match glance.show_member(&candidate.id, member).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(failed(e)),
            }
        }
        candidates.push(candidate);
    }
    let found = candidates;
    let place = match among {
        Among::Owned => match &project {
            Some(project) => format!("among the images of project {project}"),
            None => "among the images the system-scoped credentials see".to_string(),
        },
        Among::SharedWithMe => format!(
            "among the images shared with project {}",
            refs.member_id.or(project.as_deref()).unwrap_or("(none: give memberId)")
        ),
    };
    match found.as_slice() {
        [one] => Ok(crate::api::normalize_image_id(&one.id)),
        [] => Err(Problem::Stalled {
            reason: "ImageNameNotFound",
            message: format!(
                "no image is named {:?} {place} (openstack image list --name {:?}): check the name, or give imageId",
                image.name, image.name
            ),
        }),
        several => Err(Problem::Stalled {
            reason: "ImageNameAmbiguous",
            message: format!(
                "{} images are named {:?} {place}: {}; give imageId, or share with an ImageShare whose imageSelector has name and newest: 1 to follow the newest build",
                if several.len() >= CANDIDATES {
                    format!("{CANDIDATES} or more")
                } else {
                    several.len().to_string()
                },
                image.name,
                several
                    .iter()
                    .map(|i| format!("{} (created {})", i.id, i.created_at.as_deref().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// The project `member` names, looked up with `session` (the credentials of `secret`).
pub async fn project_named(session: &Session, secret: &str, member: &MemberRef) -> Result<Project, Problem> {
    let query = ProjectQuery {
        name: Some(&member.project_name),
        domain: member.domain.as_deref(),
        ..ProjectQuery::default()
    };
    let projects = session.list_projects(&query).await.map_err(|e| {
        if e.http_kind() == Some(HttpErrorKind::Forbidden) {
            return Problem::Stalled {
                reason: "ProjectLookupForbidden",
                message: format!(
                    "Keystone refused to look project {:?} up with the credentials of Secret {} (policy identity:list_projects), as `openstack image add project {}` would fail: grant their user the admin role on their project (Keystone's default policy for a project-scoped token), or allow identity:list_projects to them in Keystone's policy, or give memberId (openstack project show {} -f value -c id)",
                    member.project_name, secret, member.project_name, member.project_name
                ),
            };
        }
        lookup_failed(&e, &format!("look project {:?} up in Keystone", member.project_name), secret)
    })?;
    let domain = member
        .domain
        .as_deref()
        .map_or(String::new(), |d| format!(" in domain {d}"));
    match projects.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Problem::Stalled {
            reason: "ProjectNameNotFound",
            message: format!(
                "no project is named {:?}{domain} (or the credentials of Secret {} cannot see it): check projectName and domain, or give memberId",
                member.project_name, secret
            ),
        }),
        several => Err(Problem::Stalled {
            reason: "ProjectNameAmbiguous",
            message: format!(
                "{} projects are named {:?}: {}; set memberRef.domain, or give memberId",
                several.len(),
                member.project_name,
                several
                    .iter()
                    .map(|p| format!("{} (domain {})", p.id, p.domain_id.as_deref().unwrap_or("?")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

fn lookup_failed(error: &OpenStackError, what: &str, secret: &str) -> Problem {
    if error.is_transient() {
        return Problem::Transient {
            reason: "NameLookupFailed",
            message: format!("could not {what}: {error}; retrying with backoff"),
            retry_after: error.retry_after(),
        };
    }
    Problem::Stalled {
        reason: "NameLookupRefused",
        message: format!(
            "could not {what} with the credentials of Secret {secret}: {error}; fix the Secret, or give the ID"
        ),
    }
}
