//! The `ImageAccessAccept` kind, the member's side: what it reads and writes in Glance. Its
//! membership is resolved with the credentials (the spec's member, or the credentials' project);
//! applying reads the member and sets its status; letting go sets it `rejected` (or, with
//! `Orphan`, leaves it). One setter per member status: the first object (of either kind) that
//! sets it does; the others wait. Everything around these steps is the shared lifecycle's
//! ([`super::lifecycle`]).
//!
//! Not shared yet is not a fault: the object waits (`WaitingForShare`) with backoff, and an
//! owner-side ImageAccess that creates the membership wakes it at once (the index reports the
//! membership's new holder to this kind).

use kube::Api;
use kube::runtime::reflector::ObjectRef;

use super::holding::Resolved;
use super::lifecycle::{self, Released, Why, stopped, witness_gone};
use super::problem::{Problem, Step};
use super::status::{self, Observation, Outcome};
use super::{Context, Kind, KindState, Refusal, ownership, refs};
use crate::api::{
    AcceptDeletionPolicy, ImageAccess, ImageAccessAccept, ImageAccessAcceptStatus, Managed, MemberStatus, Membership,
    ResolvedRefs,
};
use crate::openstack::{Glance, HttpErrorKind, Member, OpenStackError};
use crate::runtime::Happened;

/// The reason of a refusal by credentials that are not the member's.
const NOT_THE_MEMBER: &str = "NotTheMember";

impl Kind for ImageAccessAccept {
    const CONTROLLER: &'static str = "imageaccessaccept";
    const ORPHAN_HINT: &'static str = "to delete it without rejecting the image, set spec.deletionPolicy to Orphan";
    type Counterpart = ImageAccess;

    fn state(ctx: &Context) -> &KindState<Self> {
        &ctx.accept
    }

    fn image_id(&self) -> String {
        self.named_image_id()
    }

    fn named(&self) -> Option<Membership> {
        self.member_id().map(|member| self.membership_of(member))
    }

    fn refs(&self) -> refs::Refs<'_> {
        refs::Refs {
            image: self.spec.image_ref.as_ref().map(|r| (r, refs::Among::SharedWithMe)),
            member: None,
            region: self.spec.region.as_deref(),
            member_id: self.spec.member_id.as_deref(),
        }
    }

    fn with_resolved(&self, resolved: ResolvedRefs) -> Self {
        let mut object = self.clone();
        object.status.get_or_insert_default().membership.resolved = Some(resolved);
        object
    }

    fn next_status(
        &self,
        desired: &Membership,
        outcome: &Outcome,
        now: jiff::Timestamp,
    ) -> Option<impl serde::Serialize + Send + Sync> {
        let previous = self.status.clone().unwrap_or_default();
        let membership = status::next(
            &previous.membership,
            self.metadata.generation,
            desired,
            Some(self.spec.status),
            self.observes(),
            outcome,
            now,
        );
        let (image_name, image_owner) = match &outcome.image {
            Some(image) => (image.name.clone(), image.owner.clone()),
            None => (previous.image_name.clone(), previous.image_owner.clone()),
        };
        let member_id = Some(desired.member_id.clone())
            .filter(|m| !m.is_empty())
            .or(previous.member_id.clone());
        let next = ImageAccessAcceptStatus {
            membership,
            member_id,
            image_name,
            image_owner,
        };
        let changed = status::differs(self.membership_status(), &next.membership)
            || (previous.member_id, previous.image_name, previous.image_owner)
                != (
                    next.member_id.clone(),
                    next.image_name.clone(),
                    next.image_owner.clone(),
                );
        changed.then_some(next)
    }

    fn member(object: &Self, creds: &Resolved) -> Result<String, Problem> {
        match (&object.spec.member_id, &creds.caller.project) {
            (Some(member), _) => Ok(member.clone()),
            (None, Some(project)) => Ok(project.clone()),
            (None, None) => Err(Problem::member_unknown(&creds.secret)),
        }
    }

    const REFUSALS: &'static [&'static str] = &[NOT_THE_MEMBER, "ImageNotShared"];

    async fn still_refused(_object: &Self, desired: &Membership, creds: &Resolved) -> Option<Problem> {
        // Only the member project or an admin may set a member status: no need to ask Glance.
        if !creds.caller.is(&desired.member_id) && !creds.caller.admin {
            return Some(Problem::not_the_member(
                desired,
                creds.caller.project.as_deref(),
                &creds.secret,
                "(only the member project or an admin may set its status)",
            ));
        }
        let glance = creds.glance(desired.region.as_deref()).await.ok()?;
        match glance.show_member(&desired.image_id, &desired.member_id).await {
            Err(e) if e.http_kind() == Some(HttpErrorKind::Forbidden) => {
                Some(Problem::no_members_to_accept(desired, &format!("({e})")))
            }
            // The image's owner as its own member (memberId unset with the owner's credentials).
            Err(e) if e.is_not_found() => match glance.show_image(&desired.image_id).await {
                Ok(image) if image.owner.as_deref().is_some_and(|owner| creds.caller.is(owner)) => {
                    Some(Problem::owner_credentials(desired, &desired.member_id, &creds.secret))
                }
                _ => None,
            },
            _ => None,
        }
    }

    async fn may_hold(object: &Self, desired: &Membership, _creds: &Resolved, ctx: &Context) -> Result<(), Refusal> {
        match first_setter(ctx, object, desired) {
            Some(first) => Err(Refusal {
                problem: Problem::status_conflict(&first, desired),
                drop_claim: true,
            }),
            None => Ok(()),
        }
    }

    async fn act(
        object: &Self,
        record: &Membership,
        applied: Option<Membership>,
        creds: &Resolved,
        ctx: &Context,
        events: &mut Vec<Happened>,
    ) -> Outcome {
        act(object, record, applied, creds, ctx, events).await
    }

    async fn observe(object: &Self, desired: &Membership, creds: &Resolved, ctx: &Context) -> Outcome {
        observe_only(object, desired, creds, ctx).await
    }

    async fn orphans(object: &Self, _ctx: &Context) -> Result<bool, Problem> {
        Ok(object.deletion_policy() == AcceptDeletionPolicy::Orphan)
    }

    async fn successor(object: &Self, target: &Membership, ctx: &Context) -> Result<Option<String>, Problem> {
        other_setter(ctx, object, target).await
    }

    async fn undo(object: &Self, target: &Membership, creds: &Resolved, ctx: &Context) -> Result<Released, Problem> {
        if object.made_nothing(target) {
            return Ok(Released::NothingToUndo(format!(
                "this object never set its status: the credentials it claimed it with ({}) could not",
                object
                    .claim()
                    .and_then(|claim| claim.project)
                    .unwrap_or_else(|| "not the member's".into())
            )));
        }
        let glance = creds.reach(target).await?;
        let member = MemberSession {
            glance: &glance,
            creds,
            ctx,
        };
        member.reject(target).await
    }

    /// Whether this object cannot have set `target`'s status: never recorded it as set, and the
    /// credentials its claim recorded could not set it (not the member's, not an admin's); for
    /// a claim from before holders were recorded, its last look said so (NotTheMember).
    fn made_nothing(&self, target: &Membership) -> bool {
        if self.applied().is_some_and(|applied| applied.same(target)) {
            return false;
        }
        match self
            .claim()
            .filter(|claim| claim.same(target))
            .and_then(|claim| claim.project.map(|p| (p, claim.admin)))
        {
            Some((project, admin)) => project != target.member_id && !admin,
            None => lifecycle::refused_before(self, target, &[NOT_THE_MEMBER]),
        }
    }

    fn released(&self, target: &Membership, released: &Released, why: Why<'_>) -> Option<Happened> {
        match (released, why) {
            (Released::Undone, Why::Deleted) => Some(Happened::normal(
                "MemberRejected",
                format!("set the membership ({target}) to rejected: the image leaves the member's image list"),
            )),
            (Released::Undone, Why::Replaced { by }) => Some(Happened::normal(
                "PreviousMemberRejected",
                format!("set the previous membership ({target}) to rejected because the spec now names {by}"),
            )),
            (Released::HandedOver(to), _) => Some(Happened::normal(
                "MemberStatusHandedOver",
                format!("left the member status of {target} to {to}, which sets it too"),
            )),
            (Released::Orphaned, Why::Deleted) => Some(Happened::normal(
                "MemberStatusOrphaned",
                format!("deletionPolicy is Orphan: left the membership ({target}) as it is"),
            )),
            (Released::NothingToUndo(why), _) => Some(Happened::warning(
                "MemberNotRejected",
                format!("left the membership ({target}) as it is: {why}"),
            )),
            _ => None,
        }
    }
}

/// The member as Glance shows it to the member's credentials; else the outcome of a look that
/// could not read it (what the status records as `applied` stays, unless the member's own
/// credentials see it is not there).
async fn read_member(
    session: &MemberSession<'_>,
    desired: &Membership,
    applied: Option<Membership>,
) -> Result<Member, Outcome> {
    let fail = |error: &OpenStackError| Problem::openstack(error, Step::ObserveMember, desired, &session.creds.secret);
    match session.glance.show_member(&desired.image_id, &desired.member_id).await {
        Ok(member) => Ok(member),
        Err(e) if e.is_not_found() => {
            let problem = match session.why_not_found(desired).await {
                Ok(problem) => problem,
                Err(e) => fail(&e),
            };
            // Only the member's own credentials see that it is not there: to any other, it is
            // hidden, and what the status records of it stays.
            let (applied, observation) = if session.is_member(desired) {
                (None, Observation::Absent)
            } else {
                (applied, Observation::Unknown)
            };
            Err(Outcome {
                image: None,
                applied,
                observation,
                problem: Some(problem),
            })
        }
        Err(
            e @ OpenStackError::Http {
                kind: HttpErrorKind::Forbidden,
                ..
            },
        ) => {
            let said = match &e {
                OpenStackError::Http { status, message, .. } => format!("({status}: {message})"),
                other => format!("({other})"),
            };
            Err(stopped(applied, Problem::no_members_to_accept(desired, &said)))
        }
        Err(e) => Err(stopped(applied, fail(&e))),
    }
}

/// What an object that only observes reports: the member status as the member's credentials
/// see it (InSync says whether it is spec.status), with no write.
async fn observe_only(object: &ImageAccessAccept, desired: &Membership, creds: &Resolved, ctx: &Context) -> Outcome {
    let glance = match creds.glance(desired.region.as_deref()).await {
        Ok(glance) => glance,
        Err(e) => {
            return stopped(
                None,
                Problem::openstack(&e, Step::ObserveMember, desired, &creds.secret),
            );
        }
    };
    let session = MemberSession {
        glance: &glance,
        creds,
        ctx,
    };
    match read_member(&session, desired, None).await {
        Ok(member) => {
            let known = object.status.as_ref().is_some_and(|s| s.image_owner.is_some());
            found(&glance, desired, member, None, known).await
        }
        Err(outcome) => outcome,
    }
}

/// Reads the member and brings its status to the spec; the outcome says what Glance showed.
async fn act(
    object: &ImageAccessAccept,
    desired: &Membership,
    applied: Option<Membership>,
    creds: &Resolved,
    ctx: &Context,
    events: &mut Vec<Happened>,
) -> Outcome {
    let fail = |error: &OpenStackError, step: Step| Problem::openstack(error, step, desired, &creds.secret);
    let glance = match creds.glance(desired.region.as_deref()).await {
        Ok(glance) => glance,
        Err(e) => return stopped(applied, fail(&e, Step::ObserveMember)),
    };
    let member_session = MemberSession {
        glance: &glance,
        creds,
        ctx,
    };
    let mut member = match read_member(&member_session, desired, applied.clone()).await {
        Ok(member) => member,
        Err(outcome) => return outcome,
    };
    let wanted = object.spec.status;
    if member.status != wanted {
        let from = member.status;
        match member_session.set_status(desired, wanted).await {
            Ok(updated) => {
                events.push(Happened::normal(
                    "StatusSet",
                    format!("member status of {desired} set from {from} to {wanted}"),
                ));
                member = updated;
            }
            Err(problem) => {
                return Outcome {
                    image: None,
                    applied,
                    observation: Observation::Present(member),
                    problem: Some(problem),
                };
            }
        }
    }
    // For this membership: a new one's image is read anew.
    let known = object.status.as_ref().is_some_and(|s| s.image_owner.is_some()) && applied.is_some();
    found(&glance, desired, member, Some(desired.clone()), known).await
}

/// The outcome of a look that found `member`, holding `applied`, with what the member sees of
/// the image unless the status has it (`known`) (a name changes rarely; a resync does not read it
/// again).
async fn found(
    glance: &Glance,
    desired: &Membership,
    member: Member,
    applied: Option<Membership>,
    known: bool,
) -> Outcome {
    let image = if known {
        None
    } else {
        glance.show_image(&desired.image_id).await.ok()
    };
    Outcome {
        image,
        applied,
        observation: Observation::Present(member),
        problem: None,
    }
}

/// The object of either kind that sets the status of `desired`, came first and asks for
/// another status than `object`, named for the message.
fn first_setter(ctx: &Context, object: &ImageAccessAccept, desired: &Membership) -> Option<String> {
    let accepts = setting(ctx, desired, Some(&ObjectRef::from(object)));
    let owners = owners_setting(ctx, desired);
    let owners = owners.iter().filter_map(|owner| {
        owner.spec.status.map(|status| ownership::Setter {
            kind: "ImageAccess",
            meta: &owner.metadata,
            status,
        })
    });
    ownership::status_conflict(as_setter(object), accepts.iter().map(|a| as_setter(a)).chain(owners))
}

/// An accept object as a setter of its membership's status.
pub(super) fn as_setter(object: &ImageAccessAccept) -> ownership::Setter<'_> {
    ownership::Setter {
        kind: "ImageAccessAccept",
        meta: &object.metadata,
        status: object.spec.status,
    }
}

/// Another object, of either kind and not being deleted, that has set the status of
/// `membership` and is Ready (it keeps it when `object` lets go), named for the event. One
/// that could not set it (wrong credentials, say) does not count: it could not undo it either.
/// A candidate from the caches is read again before it is trusted: the caches of the two kinds
/// are not ordered with each other, and a successor deleted or failed since would leave the
/// status set with nobody to undo it. A failed read is retried with backoff: neither handing
/// over nor undoing on a guess.
async fn other_setter(
    ctx: &Context,
    object: &ImageAccessAccept,
    membership: &Membership,
) -> Result<Option<String>, Problem> {
    let accepts = setting(ctx, membership, Some(&ObjectRef::from(object)));
    for other in accepts.iter().filter(|other| keeps(other.as_ref(), membership)) {
        if let Some(label) = still_keeps::<ImageAccessAccept>(ctx, other, membership).await? {
            return Ok(Some(label));
        }
    }
    for other in owners_setting(ctx, membership)
        .iter()
        .filter(|other| keeps(other.as_ref(), membership))
    {
        if let Some(label) = still_keeps::<ImageAccess>(ctx, other, membership).await? {
            return Ok(Some(label));
        }
    }
    Ok(None)
}

/// Whether `other` has set `membership`'s status and is Ready for its current spec.
fn keeps(other: &impl Managed, membership: &Membership) -> bool {
    other.applied().is_some_and(|applied| applied.overlaps(membership))
        && other
            .condition(status::READY)
            .is_some_and(|c| c.status == "True" && c.observed_generation == other.meta().generation)
        && !other.is_deleting()
}

/// Whether the spec of `other` still sets `membership`'s status: read again, a successor whose
/// spec moved away meanwhile (both objects of a rename edited at once) is letting go too.
trait StillSets {
    fn still_sets(&self, membership: &Membership) -> bool;
}

impl StillSets for ImageAccessAccept {
    fn still_sets(&self, membership: &Membership) -> bool {
        self.named().is_none_or(|named| named.overlaps(membership))
    }
}

impl StillSets for ImageAccess {
    fn still_sets(&self, membership: &Membership) -> bool {
        self.spec.status.is_some() && self.named_membership().overlaps(membership)
    }
}

/// `cached`, read again from the API server, labelled for the event if it still keeps
/// `membership`.
async fn still_keeps<K>(ctx: &Context, cached: &K, membership: &Membership) -> Result<Option<String>, Problem>
where
    K: Managed + StillSets + kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let meta = cached.meta();
    let (Some(namespace), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return Ok(None);
    };
    let label = format!("{} {namespace}/{name}", K::kind(&()));
    let fresh = Api::<K>::namespaced(ctx.client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| Problem::kubernetes_read(&e, &label))?;
    Ok(fresh
        .filter(|fresh| keeps(fresh, membership) && fresh.still_sets(membership))
        .map(|_| label))
}

/// The ImageAccess objects, not being deleted, whose spec.status sets `membership`'s status.
fn owners_setting(ctx: &Context, membership: &Membership) -> Vec<std::sync::Arc<ImageAccess>> {
    let mut owners = ctx.naming::<ImageAccess>(membership, None);
    owners.retain(|other| {
        !other.is_deleting() && other.spec.status.is_some() && other.named_membership().overlaps(membership)
    });
    owners
}

/// The ImageAccessAccept objects (but `except`) that set the status of `membership`: their spec
/// names it, or they claimed or applied it. Objects being deleted do not count: they are
/// letting go.
pub(super) fn setting(
    ctx: &Context,
    membership: &Membership,
    except: Option<&ObjectRef<ImageAccessAccept>>,
) -> Vec<std::sync::Arc<ImageAccessAccept>> {
    let mut accepts = ctx.naming::<ImageAccessAccept>(membership, except);
    accepts.retain(|other| {
        !other.is_deleting()
            && (other.named().is_some_and(|named| named.overlaps(membership))
                || other.held_memberships().iter().any(|held| held.overlaps(membership)))
    });
    accepts
}

/// The member's view of Glance: its credentials, and who they belong to.
#[derive(Clone, Copy)]
struct MemberSession<'a> {
    glance: &'a Glance,
    creds: &'a Resolved,
    ctx: &'a Context,
}

impl MemberSession<'_> {
    /// Whether these credentials are the member project's own.
    fn is_member(&self, target: &Membership) -> bool {
        self.creds.caller.is(&target.member_id)
    }

    /// Why Glance shows no `target` to these credentials: credentials of another project
    /// cannot see the member's membership at all; the member's own see it once it is shared,
    /// unless they are the owner's (memberId unset with the owner's credentials).
    async fn why_not_found(&self, target: &Membership) -> Result<Problem, OpenStackError> {
        let caller = self.creds.caller.project.as_deref();
        if !self.is_member(target) {
            return Ok(Problem::not_the_member(
                target,
                caller,
                &self.creds.secret,
                "(404: the membership is not visible to them)",
            ));
        }
        match self.glance.show_image(&target.image_id).await {
            Ok(image) if image.owner.is_some() && image.owner.as_deref() == caller => Ok(Problem::owner_credentials(
                target,
                &target.member_id,
                &self.creds.secret,
            )),
            Ok(_) => Ok(Problem::waiting_for_share(target)),
            // A member does not see a shared image before it is shared with it.
            Err(e) if e.is_not_found() => Ok(Problem::waiting_for_share(target)),
            Err(e) => Err(e),
        }
    }

    /// Sets the member status; a 403 says these are not the member's credentials. What was
    /// read of the image's members before is stale after it (see [`super::lists`]).
    async fn set_status(&self, target: &Membership, to: MemberStatus) -> Result<crate::openstack::Member, Problem> {
        self.ctx.member_lists.wrote(&target.image_id);
        let set = self
            .glance
            .set_member_status(&target.image_id, &target.member_id, to)
            .await;
        self.ctx.member_lists.wrote(&target.image_id);
        match set {
            Ok(member) => Ok(member),
            Err(e) if e.http_kind() == Some(HttpErrorKind::Forbidden) => {
                let said = match &e {
                    OpenStackError::Http { status, message, .. } => format!("({status}: {message})"),
                    other => format!("({other})"),
                };
                Err(Problem::not_the_member(
                    target,
                    self.creds.caller.project.as_deref(),
                    &self.creds.secret,
                    &said,
                ))
            }
            Err(e) => Err(Problem::openstack(&e, Step::SetStatus(to), target, &self.creds.secret)),
        }
    }

    /// Sets `target` to rejected, so the image leaves the member's image list. A membership
    /// these credentials do not find is gone only if they could see it: the member sees its
    /// own, the image's owner and an admin see all of them.
    async fn reject(&self, target: &Membership) -> Result<Released, Problem> {
        match self.glance.show_member(&target.image_id, &target.member_id).await {
            Ok(member) if member.status == MemberStatus::Rejected => return Ok(Released::AlreadyUndone),
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                return match witness_gone(self.glance, &self.creds.caller, target, true, &self.creds.secret).await {
                    Ok(()) => Ok(Released::AlreadyGone),
                    Err(Problem::Stalled { .. }) => Err(Problem::not_the_member(
                        target,
                        self.creds.caller.project.as_deref(),
                        &self.creds.secret,
                        "(404: they cannot tell whether the membership is gone)",
                    )),
                    Err(other) => Err(other),
                };
            }
            Err(e) => return Err(Problem::openstack(&e, Step::ObserveMember, target, &self.creds.secret)),
        }
        self.set_status(target, MemberStatus::Rejected)
            .await
            .map(|_| Released::Undone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openstack::{Image, Member};

    const IMAGE: &str = "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";

    fn desired() -> Membership {
        Membership {
            image_id: IMAGE.into(),
            member_id: "member-project".into(),
            region: Some("RegionOne".into()),
            ..Membership::default()
        }
    }

    fn ready_outcome(image: Option<Image>) -> Outcome {
        Outcome {
            image,
            applied: Some(desired()),
            observation: Observation::Present(Member {
                member_id: "member-project".into(),
                image_id: IMAGE.into(),
                status: MemberStatus::Accepted,
                created_at: "2026-11-29T00:00:00Z".into(),
                updated_at: "2026-11-29T00:00:01Z".into(),
                schema: Some("/v2/schemas/member".into()),
            }),
            problem: None,
        }
    }

    fn golden() -> Image {
        Image {
            id: IMAGE.into(),
            visibility: "shared".into(),
            owner: Some("owner-project".into()),
            name: Some("golden".into()),
            created_at: None,
            status: None,
        }
    }

    fn with_status(status: serde_json::Value) -> ImageAccessAccept {
        let mut object = ImageAccessAccept::test("a", IMAGE, "member", MemberStatus::Accepted);
        object.metadata.generation = Some(1);
        object.status = Some(serde_json::from_value(status).expect("status"));
        object
    }

    fn next(object: &ImageAccessAccept, outcome: &Outcome) -> Option<serde_json::Value> {
        object
            .next_status(&desired(), outcome, jiff::Timestamp::UNIX_EPOCH)
            .map(|s| serde_json::to_value(s).expect("json"))
    }

    #[test]
    fn the_status_records_the_resolved_member_and_what_the_member_sees_of_the_image() {
        let mut object = ImageAccessAccept::test("a", IMAGE, "member", MemberStatus::Accepted);
        object.metadata.generation = Some(1);
        let image = golden();
        let status = next(&object, &ready_outcome(Some(image))).expect("a first status");
        assert_eq!(status["memberId"], "member-project", "the member from the token");
        assert_eq!(status["imageName"], "golden");
        assert_eq!(status["imageOwner"], "owner-project");
        assert_eq!(status["memberStatus"], "accepted");
        assert_eq!(status["applied"]["memberId"], "member-project");
        // Written back as it is: the next look (no image read) changes nothing.
        let object = with_status(status);
        assert!(next(&object, &ready_outcome(None)).is_none(), "steady: no write");
    }

    #[test]
    fn a_failed_look_keeps_the_member_and_the_image() {
        let mut object = ImageAccessAccept::test("a", IMAGE, "member", MemberStatus::Accepted);
        object.metadata.generation = Some(1);
        let image = golden();
        let object = with_status(next(&object, &ready_outcome(Some(image))).expect("status"));
        let unknown = Membership {
            member_id: String::new(),
            ..desired()
        };
        let failed = Outcome {
            image: None,
            applied: Some(desired()),
            observation: Observation::Unknown,
            problem: Some(Problem::secret_not_found("default", "s")),
        };
        let status = object
            .next_status(&unknown, &failed, jiff::Timestamp::UNIX_EPOCH)
            .map(|s| serde_json::to_value(s).expect("json"))
            .expect("conditions change");
        assert_eq!(
            status["memberId"], "member-project",
            "kept when the credentials could not be read"
        );
        assert_eq!(status["imageName"], "golden");
        assert_eq!(status["memberStatus"], "accepted");
    }
}
