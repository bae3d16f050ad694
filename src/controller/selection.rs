//! What an ImageShare shares: the images and projects its spec lists, or those its selectors
//! match in Glance and Keystone now ("the 2 newest builds tagged golden", "the projects tagged
//! analytics").
//!
//! Glance and Keystone have no watch, so a selector is evaluated when the share is created or
//! its spec changes, and every `refreshInterval` (jittered by the caller's requeue): one image
//! list and one project list per evaluation, filtered and sorted by the services themselves,
//! whatever the number of images and projects. Between evaluations the last one is used (kept
//! in memory and in the share's status, so a restarted operator does not list at once).
//!
//! A failed evaluation changes nothing: the share keeps every child it has and says why, so a
//! Glance outage or a refused list never reads as "nothing matches any more".

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::ResourceExt;

use super::Context;
use super::problem::Problem;
use crate::api::{ImageShare, SelectedImage, SelectedMember, Selection, normalize_image_id};
use crate::openstack::{HttpErrorKind, ImageQuery, OpenStackError, ProjectQuery};

/// At most this many images per share (as `imageIds`).
pub const IMAGE_CAP: usize = 100;
/// At most this many member projects per share (as `memberIds`).
pub const MEMBER_CAP: usize = 1000;
/// `refreshInterval` when the spec gives none.
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// The reason of an image that matched but whose visibility is not `shared`.
pub const NOT_SHARED_VISIBILITY: &str = "NotSharedVisibility";

/// What the share shares now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Targets {
    /// Image IDs (Glance's form), each with its children.
    pub images: Vec<String>,
    /// Member project IDs.
    pub members: Vec<String>,
    /// Images that match but are not `shared` now: no new children, and those they have stay
    /// (an image made private for a while still matches; removing its memberships would reset
    /// every member's accepted status when it is shared again).
    pub unshared: Vec<String>,
    /// What the selectors matched (the status shows it); `None` without a selector.
    pub selection: Option<Selection>,
    /// When the selectors are due again; `None` without a selector.
    pub refresh_in: Option<Duration>,
}

impl Targets {
    /// Whether `child` stays although it is not wanted: its image matches but is not shared
    /// now, and its member is still one of the share's.
    pub fn keeps(&self, child: &crate::api::ImageAccess) -> bool {
        self.unshared.contains(&child.spec.image_id) && self.members.contains(&child.spec.member_id)
    }

    /// Whether the share calls OpenStack itself (selectors, names): its Secret matters to it.
    pub fn reads_openstack(share: &ImageShare) -> bool {
        share.spec.image_selector.is_some()
            || share.spec.member_selector.is_some()
            || !share.spec.member_refs.is_empty()
    }

    /// The images and members the spec lists.
    pub fn listed(share: &ImageShare) -> Targets {
        Targets {
            images: share.spec.image_ids.iter().map(|i| normalize_image_id(&i.0)).collect(),
            members: share.spec.member_ids.iter().map(|m| m.0.clone()).collect(),
            unshared: Vec::new(),
            selection: None,
            refresh_in: None,
        }
    }

    fn of(share: &ImageShare, selection: Selection, refresh_in: Option<Duration>) -> Targets {
        let mut targets = Targets::listed(share);
        if share.spec.image_selector.is_some() {
            targets.images = selection
                .images
                .iter()
                .filter(|image| image.reason.is_none())
                .map(|image| image.id.clone())
                .collect();
            targets.unshared = selection
                .images
                .iter()
                .filter(|image| image.reason.is_some())
                .map(|image| image.id.clone())
                .collect();
        }
        if share.spec.member_selector.is_some() || !share.spec.member_refs.is_empty() {
            targets.members = selection.members.iter().map(|m| m.id.clone()).collect();
        }
        targets.selection = Some(selection);
        targets.refresh_in = refresh_in;
        targets
    }
}

/// The last evaluation of each share's selectors, by uid, and its last failure: forgotten with
/// the share.
#[derive(Default)]
pub struct Evaluations(Mutex<HashMap<String, Last>>);

#[derive(Default)]
struct Last {
    selection: Option<Selection>,
    /// A failed evaluation, for the generation it was of, told again without a call until
    /// the instant given: every child event wakes the share, and each must not be a Glance call.
    failed: Option<(Option<i64>, Instant, Problem)>,
    /// Wakes by a change of the share's Secret: a failure of an evaluation that started before
    /// the last one read the old Secret, and is not remembered.
    wakes: u64,
}

impl Evaluations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Last>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, uid: &str) -> Option<Selection> {
        self.lock().get(uid).and_then(|last| last.selection.clone())
    }

    fn put(&self, uid: String, selection: Selection) {
        let mut map = self.lock();
        let last = map.entry(uid).or_default();
        last.selection = Some(selection);
        last.failed = None;
    }

    fn failed(&self, uid: &str, generation: Option<i64>, now: Instant) -> Option<Problem> {
        let map = self.lock();
        let (of, until, problem) = map.get(uid)?.failed.as_ref()?;
        (*of == generation && now < *until).then(|| problem.clone())
    }

    /// The Secret wakes so far (see [`Last::wakes`]): read before an evaluation starts.
    fn wakes(&self, uid: &str) -> u64 {
        self.lock().get(uid).map_or(0, |last| last.wakes)
    }

    /// Remembers a failure of an evaluation that started at `wakes`, unless the Secret changed
    /// since (the failure is of the old Secret; the wake's look must call again).
    fn put_failure(&self, uid: String, generation: Option<i64>, until: Instant, problem: Problem, wakes: u64) {
        let mut map = self.lock();
        let last = map.entry(uid).or_default();
        if last.wakes == wakes {
            last.failed = Some((generation, until, problem));
        }
    }

    /// The share's Secret changed: its last failure is forgotten, and so is any failure of an
    /// evaluation in flight now.
    pub fn secret_changed(&self, uid: &str) {
        let mut map = self.lock();
        let last = map.entry(uid.to_string()).or_default();
        last.failed = None;
        last.wakes += 1;
    }

    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Keeps the evaluations of the shares in `uids` only (after a relist).
    pub fn retain(&self, uids: &std::collections::HashSet<String>) {
        self.lock().retain(|uid, _| uids.contains(uid));
    }
}

/// How long a failed evaluation is told again without a call: a transient failure for a few
/// seconds (the share's own backoff grows past it), a refusal until the stalled re-check.
fn quiet_after(problem: &Problem, ctx: &Context) -> Duration {
    match problem {
        Problem::Transient { retry_after, .. } => retry_after.unwrap_or(Duration::from_secs(5)),
        // Expired before the share's re-check comes (it is jittered by ±10 %).
        _ => ctx.settings.stalled_recheck.mul_f64(0.85),
    }
}

/// `refreshInterval` as a duration (the CRD admits only `([0-9]+(h|m|s))+`, at least 30s).
pub fn refresh_interval(share: &ImageShare) -> Duration {
    share
        .spec
        .refresh_interval
        .as_deref()
        .and_then(crate::api::go_duration)
        .map_or(DEFAULT_REFRESH, |d| d.max(Duration::from_secs(30)))
}

/// What `share` shares now: its lists, or its selectors' last evaluation while it is fresh
/// (same generation, younger than refreshInterval), else a new evaluation. `Err` when the
/// selectors cannot be evaluated: the caller changes no child.
pub async fn targets(share: &ImageShare, ctx: &Context) -> Result<Targets, Problem> {
    let refreshes = share.spec.image_selector.is_some() || share.spec.member_selector.is_some();
    if !Targets::reads_openstack(share) {
        return Ok(Targets::listed(share));
    }
    let uid = share.uid().unwrap_or_default();
    // Names only: resolved once per spec, never refreshed (a renamed project is not followed).
    let refresh = if refreshes {
        refresh_interval(share)
    } else {
        Duration::MAX
    };
    let now = ctx.clock.timestamp();
    let generation = share.metadata.generation;
    let recorded = share.status.as_ref().and_then(|s| s.selection.clone());
    let last = newest(ctx.shares.evaluations.get(&uid), recorded).filter(|last| last.observed_generation == generation);
    if let Some(last) = &last
        && let Some(at) = last
            .evaluated_at
            .as_deref()
            .and_then(|at| at.parse::<jiff::Timestamp>().ok())
    {
        // A time ahead of this clock (another replica's, skewed) counts as now.
        let age = Duration::try_from(now.duration_since(at)).unwrap_or_default();
        if age < refresh {
            return Ok(Targets::of(share, last.clone(), refreshes.then(|| refresh - age)));
        }
    }
    if let Some(problem) = ctx.shares.evaluations.failed(&uid, generation, ctx.clock.now()) {
        return Err(problem);
    }
    let wakes = ctx.shares.evaluations.wakes(&uid);
    match evaluate(share, last.as_ref(), ctx, now).await {
        Ok(selection) => {
            ctx.shares.evaluations.put(uid, selection.clone());
            Ok(Targets::of(share, selection, refreshes.then_some(refresh)))
        }
        Err(problem) => {
            let until = ctx.clock.now() + quiet_after(&problem, ctx);
            ctx.shares
                .evaluations
                .put_failure(uid, generation, until, problem.clone(), wakes);
            Err(problem)
        }
    }
}

/// The images a selector picks from `matched` (newest first): with `newest: N`, up to the Nth
/// `shared` one (newer images that are not shared are listed too, with their reason, and do
/// not count: a new build not shared yet does not push the last shared one out); without, all.
/// `None` when more than the cap match (and, with N, the Nth shared one is not among the cap's
/// newest: the status lists at most the cap).
fn newest_shared(matched: Vec<crate::openstack::Image>, newest: Option<usize>) -> Option<Vec<crate::openstack::Image>> {
    let Some(wanted) = newest else {
        return (matched.len() <= IMAGE_CAP).then_some(matched);
    };
    let mut picked = Vec::new();
    let mut shared = 0;
    let over_cap = matched.len() > IMAGE_CAP;
    for image in matched {
        if shared == wanted {
            return Some(picked);
        }
        if picked.len() == IMAGE_CAP {
            return None;
        }
        shared += usize::from(image.visibility == "shared");
        picked.push(image);
    }
    (!over_cap || shared == wanted).then_some(picked)
}

/// The later of two evaluations.
fn newest(a: Option<Selection>, b: Option<Selection>) -> Option<Selection> {
    let at = |s: &Selection| {
        s.evaluated_at
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    };
    match (a, b) {
        (Some(a), Some(b)) => Some(if at(&b) > at(&a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// One image list and one project list, as the share's credentials see them; the names of
/// memberRefs are looked up once per spec (`last`: the evaluation of this spec before, if any).
async fn evaluate(
    share: &ImageShare,
    last: Option<&Selection>,
    ctx: &Context,
    now: jiff::Timestamp,
) -> Result<Selection, Problem> {
    let namespace = share.namespace().unwrap_or_default();
    let reference = &share.spec.cloud_credentials_ref;
    let secret = format!("{namespace}/{}", reference.secret_name);
    let data = super::holding::read_secret(ctx, &namespace, &reference.secret_name).await?;
    let cloud = data
        .cloud(&reference.cloud_name)
        .map_err(|e| Problem::selection(&OpenStackError::Config(e), "read the credentials", &secret))?;
    let session = ctx
        .openstack
        .session(&cloud.credentials)
        .map_err(|e| Problem::selection(&e, "read the credentials", &secret))?;
    let mut selection = Selection {
        evaluated_at: Some(now.to_string()),
        observed_generation: share.metadata.generation,
        ..Selection::default()
    };
    if let Some(selector) = &share.spec.image_selector {
        let what = "list the images of imageSelector in Glance";
        let caller = session
            .caller()
            .await
            .map_err(|e| Problem::selection(&e, what, &secret))?;
        let Some(owner) = caller.project else {
            return Err(Problem::Stalled {
                reason: "SelectionRefused",
                message: format!(
                    "the credentials of Secret {secret} are not scoped to a project: imageSelector picks the images of the credentials' project; give project_name (or project_id) in the cloud entry"
                ),
            });
        };
        let region = share.spec.region.as_deref().or(cloud.region_name.as_deref());
        let glance = session
            .glance(region, &cloud)
            .await
            .map_err(|e| Problem::selection(&e, what, &secret))?;
        let query = ImageQuery {
            owner: Some(&owner),
            shared_with_me: false,
            status: Some("active"),
            name: selector.name.as_deref(),
            tags: selector.tags.iter().map(|t| t.0.as_str()).collect(),
            properties: selector
                .properties
                .iter()
                .map(|(k, v)| (k.as_str(), v.0.as_str()))
                .collect(),
        };
        // One more than the cap tells whether there are more (Glance says `next` whenever a
        // page is full).
        let images = glance
            .select_images(&query, IMAGE_CAP + 1)
            .await
            .map_err(|e| Problem::selection(&e, what, &secret))?;
        let newest = selector.newest.map(|n| usize::try_from(n).unwrap_or(1).max(1));
        let Some(images) = newest_shared(images, newest) else {
            return Err(match newest {
                None => Problem::selection_too_large("images", "imageSelector", IMAGE_CAP, "add newest: N, or a tag"),
                Some(wanted) => Problem::Stalled {
                    reason: "SelectionTooLarge",
                    message: format!(
                        "imageSelector's newest {wanted} shared images are not among its {IMAGE_CAP} newest matches (the newer ones are not shared): share the builds to use (openstack image set --shared), delete old private builds, or narrow imageSelector with a name or a tag; nothing was removed"
                    ),
                },
            });
        };
        selection.images = images
            .into_iter()
            .map(|image| {
                let shared = image.visibility == "shared";
                SelectedImage {
                    reason: (!shared).then(|| NOT_SHARED_VISIBILITY.to_string()),
                    message: (!shared).then(|| {
                        format!(
                            "visibility is {}: Glance refuses members on it; make it shared (openstack image set --shared {}) to share it",
                            image.visibility, image.id
                        )
                    }),
                    id: normalize_image_id(&image.id),
                    name: image.name,
                    created_at: image.created_at,
                }
            })
            .collect();
    }
    if let Some(last) = last.filter(|_| !share.spec.member_refs.is_empty()) {
        selection.members = last.members.clone();
    } else if !share.spec.member_refs.is_empty() {
        let mut projects = Vec::new();
        for member in &share.spec.member_refs {
            let project = super::refs::project_named(&session, &secret, member).await?;
            if !projects.iter().any(|p: &SelectedMember| p.id == project.id) {
                projects.push(SelectedMember {
                    id: project.id,
                    name: project.name,
                });
            }
        }
        selection.members = projects;
    }
    if let Some(selector) = &share.spec.member_selector {
        let what = "list the projects of memberSelector in Keystone";
        let query = ProjectQuery {
            name: None,
            tags: selector.tags.iter().map(|t| t.0.as_str()).collect(),
            tags_any: selector.tags_any.iter().map(|t| t.0.as_str()).collect(),
            domain: selector.domain.as_deref(),
            parent: selector.parent.as_deref(),
        };
        let mut projects = session
            .list_projects(&query)
            .await
            .map_err(|e| Problem::selection(&e, what, &secret))?;
        if projects.len() > MEMBER_CAP {
            return Err(Problem::selection_too_large(
                "projects",
                "memberSelector",
                MEMBER_CAP,
                "add a tag",
            ));
        }
        projects.sort_by(|a, b| a.id.cmp(&b.id));
        selection.members = projects
            .into_iter()
            .map(|p| SelectedMember { id: p.id, name: p.name })
            .collect();
    }
    tracing::info!(
        namespace = %namespace,
        name = %share.name_any(),
        images = selection.images.len(),
        members = selection.members.len(),
        "selectors evaluated"
    );
    Ok(selection)
}

impl Problem {
    /// A selector that could not be evaluated while doing `what` with the credentials of
    /// `secret`: transient failures retry; a refusal says what to grant.
    fn selection(error: &OpenStackError, what: &str, secret: &str) -> Problem {
        if error.is_transient() {
            return Problem::Transient {
                reason: "SelectionFailed",
                message: format!("could not {what}: {error}; retrying with backoff (the share keeps what it shares)"),
                retry_after: error.retry_after(),
            };
        }
        if let OpenStackError::Incomplete { .. } = error {
            return Problem::Stalled {
                reason: "SelectionTooLarge",
                message: format!(
                    "could not {what} whole ({error}): nothing was removed; narrow the selector (a tag), or raise the service's list limit"
                ),
            };
        }
        let message = match error.http_kind() {
            Some(HttpErrorKind::Forbidden) if what.contains("Keystone") => format!(
                "Keystone refused to {what} with the credentials of Secret {secret} (policy identity:list_projects): Keystone's default policy lets a project-scoped token (the one Glance needs) list projects only with the admin role: grant their user the admin role on their project, or allow identity:list_projects to them in Keystone's policy, or name the projects in memberIds"
            ),
            Some(HttpErrorKind::Forbidden | HttpErrorKind::Unauthorized) => format!(
                "OpenStack refused to {what} with the credentials of Secret {secret}: {error}; use credentials of the images' owner project"
            ),
            _ => format!(
                "could not {what} with the credentials of Secret {secret}: {error}; fix the selector or the Secret"
            ),
        };
        Problem::Stalled {
            reason: "SelectionRefused",
            message,
        }
    }

    fn selection_too_large(what: &str, selector: &str, cap: usize, narrow: &str) -> Problem {
        Problem::Stalled {
            reason: "SelectionTooLarge",
            message: format!(
                "{selector} matches more than {cap} {what}, the most one ImageShare shares: narrow it ({narrow}) or split it into several shares; nothing was removed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An evaluation that read the old Secret and fails after the Secret changed leaves no
    /// remembered failure: the wake's look calls again (it would wait for the re-check).
    #[test]
    fn a_failure_of_the_old_secret_is_not_remembered_after_a_change() {
        let evaluations = Evaluations::default();
        let problem = || Problem::Stalled {
            reason: "CredentialsSecretNotFound",
            message: String::new(),
        };
        let until = Instant::now() + Duration::from_secs(300);
        let started_at = evaluations.wakes("u");
        evaluations.secret_changed("u");
        evaluations.put_failure("u".into(), Some(1), until, problem(), started_at);
        assert!(
            evaluations.failed("u", Some(1), Instant::now()).is_none(),
            "the old Secret's failure"
        );
        let started_at = evaluations.wakes("u");
        evaluations.put_failure("u".into(), Some(1), until, problem(), started_at);
        assert!(
            evaluations.failed("u", Some(1), Instant::now()).is_some(),
            "the new Secret's failure"
        );
    }

    /// `newest: N` never lists more than the cap: a Nth shared image past the cap's newest
    /// matches is refused, not written into a status the CRD caps at 100.
    #[test]
    fn newest_never_picks_more_than_the_cap() {
        let image = |i: usize, visibility: &str| crate::openstack::Image {
            id: format!("{i:08}"),
            visibility: visibility.into(),
            owner: None,
            name: None,
            created_at: None,
            status: None,
        };
        let matches = |private: usize| -> Vec<_> {
            (0..private)
                .map(|i| image(i, "private"))
                .chain([image(private, "shared")])
                .collect()
        };
        assert_eq!(newest_shared(matches(99), Some(1)).map(|p| p.len()), Some(100));
        assert_eq!(newest_shared(matches(100), Some(1)).map(|p| p.len()), None);
    }

    #[test]
    fn durations_read_as_the_crds_admit_them() {
        use crate::api::go_duration;
        assert_eq!(go_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(go_duration("45s"), Some(Duration::from_secs(45)));
        assert_eq!(go_duration("5"), None);
        assert_eq!(go_duration("5d"), None);
        assert_eq!(go_duration(""), None);
    }
}
