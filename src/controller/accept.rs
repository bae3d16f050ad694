//! The `ImageAccessAccept` kind, the member's side: resolve the member (the spec's, or the
//! project of the credentials) → let go of what the spec no longer names → one setter per
//! member status → claim → read the member → set its status → status (with what the member
//! sees of the image). Deleting sets `rejected` (or, with `Orphan`, leaves it).
//!
//! Not shared yet is not a fault: the object waits (`WaitingForShare`) with backoff, and an
//! owner-side ImageAccess that creates the membership wakes it at once (the index reports the
//! membership's new holder to this kind).

use kube::Api;
use kube::runtime::reflector::ObjectRef;

use super::problem::{Problem, Step};
use super::status::{self, Observation, Outcome};
use super::{
    Context, Error, Kind, KindState, Next, claim, credentials, deletion_blocked, let_go_finalizer, ownership,
    release_claim, report, secret_label,
};
use crate::api::{
    AcceptDeletionPolicy, ImageAccess, ImageAccessAccept, ImageAccessAcceptStatus, Managed, MemberStatus, Membership,
    normalize_image_id,
};
use crate::openstack::{Glance, HttpErrorKind, OpenStackError, Session};
use crate::runtime::{Happened, publish};

impl Kind for ImageAccessAccept {
    const CONTROLLER: &'static str = "imageaccessaccept";
    type Counterpart = ImageAccess;

    fn state(ctx: &Context) -> &KindState<Self> {
        &ctx.accept
    }

    fn image_id(&self) -> String {
        normalize_image_id(&self.spec.image_id)
    }

    fn named(&self) -> Option<Membership> {
        self.member_id().map(|member| self.membership_of(member))
    }

    async fn apply(object: &Self, api: &Api<Self>, ctx: &Context) -> Result<Next, Error> {
        let mut events = Vec::new();
        let (desired, outcome) = converge(object, api, ctx, &mut events).await?;
        report(object, api, ctx, &desired, outcome, events).await
    }

    async fn cleanup(object: &Self, api: &Api<Self>, ctx: &Context) -> Result<Next, Error> {
        cleanup(object, api, ctx).await
    }

    fn next_status(
        &self,
        desired: &Membership,
        outcome: &Outcome,
        now: jiff::Timestamp,
    ) -> Option<impl serde::Serialize + Send> {
        let previous = self.status.clone().unwrap_or_default();
        let membership = status::next(
            &previous.membership,
            self.metadata.generation,
            desired,
            Some(self.spec.status),
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
}

/// Brings the member status to the spec; returns the membership (its member and region
/// resolved as far as the credentials allowed) and the outcome. Only a failed Kubernetes
/// write is an `Err`.
async fn converge(
    object: &ImageAccessAccept,
    api: &Api<ImageAccessAccept>,
    ctx: &Context,
    events: &mut Vec<Happened>,
) -> Result<(Membership, Outcome), Error> {
    let applied = object.applied().cloned();
    let stop = |desired: Membership, applied: Option<Membership>, problem| {
        Ok((
            desired,
            Outcome {
                image: None,
                applied,
                observation: Observation::Unknown,
                problem: Some(problem),
            },
        ))
    };
    let unresolved = object.named().unwrap_or_else(|| object.membership_of(String::new()));
    let (session, cloud) = match credentials(object, ctx).await {
        Ok(found) => found,
        Err(problem) => return stop(unresolved, applied, problem),
    };
    let secret = secret_label(object);
    let caller = match session.project_id().await {
        Ok(caller) => caller,
        Err(e) => {
            let problem = Problem::openstack(&e, Step::ReadCredentials, &unresolved, &secret);
            return stop(unresolved, applied, problem);
        }
    };
    let member_id = match (&object.spec.member_id, &caller) {
        (Some(member), _) => member.clone(),
        (None, Some(project)) => project.clone(),
        (None, None) => return stop(unresolved, applied, Problem::member_unknown(&secret)),
    };
    let named = object.membership_of(member_id);
    let desired = Membership {
        region: named.region.clone().or_else(|| cloud.region_name.clone()),
        ..named
    };
    let fail = |error: &OpenStackError, step: Step| Problem::openstack(error, step, &desired, &secret);
    let glance = match session.glance(desired.region.as_deref(), &cloud.interface).await {
        Ok(glance) => glance,
        Err(e) => return stop(desired.clone(), applied, fail(&e, Step::ObserveMember)),
    };
    let member_session = MemberSession {
        glance: &glance,
        session: &session,
        caller: caller.as_deref(),
        secret: &secret,
        ctx,
    };

    // What the object set before and the spec no longer names: let go as on deletion.
    for old in object.held_memberships().into_iter().filter(|m| *m != desired) {
        if object.deletion_policy() == AcceptDeletionPolicy::Orphan {
            continue;
        }
        match other_setter(ctx, object, &old).await {
            Ok(Some(successor)) => {
                events.push(handed_over(&old, &successor));
                continue;
            }
            Ok(None) => {}
            Err(problem) => return stop(desired.clone(), applied, problem),
        }
        let glance = match session.glance(old.region.as_deref(), &cloud.interface).await {
            Ok(glance) => glance,
            Err(e) => return stop(desired.clone(), applied, fail(&e, Step::ObserveMember)),
        };
        let old_session = MemberSession {
            glance: &glance,
            ..member_session
        };
        match old_session.reject(&old).await {
            Ok(Rejection::Rejected) => events.push(Happened::normal(
                "PreviousMemberRejected",
                format!("set the previous membership ({old}) to rejected because the spec now names {desired}"),
            )),
            Ok(Rejection::AlreadyRejected | Rejection::AlreadyGone) => {}
            Err(problem) if never_set(object, &old, &problem) => events.push(not_rejected(&old, &problem)),
            Err(problem) => {
                let hint =
                    format!("to leave the previous membership ({old}) as it is, set spec.deletionPolicy to Orphan");
                return stop(desired.clone(), applied, with_hint(problem, &hint));
            }
        }
    }
    let applied = applied.filter(|m| *m == desired);

    // One setter per member status.
    if let Some(first) = first_setter(ctx, object, &desired) {
        if object.claim().is_some() {
            release_claim(api, object).await?;
        }
        return stop(desired.clone(), None, Problem::status_conflict(&first, &desired));
    }

    let _: Option<ImageAccessAccept> = claim(api, object, &desired, ctx).await?;

    let mut member = match glance.show_member(&desired.image_id, &desired.member_id).await {
        Ok(member) => member,
        Err(e) if e.is_not_found() => {
            let problem = match member_session.why_not_found(&desired).await {
                Ok(problem) => problem,
                Err(e) => fail(&e, Step::ObserveMember),
            };
            let outcome = Outcome {
                image: None,
                applied: None,
                observation: Observation::Absent,
                problem: Some(problem),
            };
            return Ok((desired, outcome));
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
            return stop(desired.clone(), applied, Problem::no_members_to_accept(&desired, &said));
        }
        Err(e) => return stop(desired.clone(), applied, fail(&e, Step::ObserveMember)),
    };
    let wanted = object.spec.status;
    if member.status != wanted {
        let from = member.status;
        match member_session.set_status(&desired, wanted).await {
            Ok(updated) => {
                events.push(Happened::normal(
                    "StatusSet",
                    format!("member status of {desired} set from {from} to {wanted}"),
                ));
                member = updated;
            }
            Err(problem) => {
                let outcome = Outcome {
                    image: None,
                    applied,
                    observation: Observation::Present(member),
                    problem: Some(problem),
                };
                return Ok((desired, outcome));
            }
        }
    }
    // What the member sees of the image: read when the status has none for this membership
    // yet (a name changes rarely; a resync does not read it again).
    let known = object.status.as_ref().is_some_and(|s| s.image_owner.is_some()) && applied.is_some();
    let image = if known {
        None
    } else {
        glance.show_image(&desired.image_id).await.ok()
    };
    Ok((
        desired.clone(),
        Outcome {
            image,
            applied: Some(desired),
            observation: Observation::Present(member),
            problem: None,
        },
    ))
}

/// The reason of a refusal by credentials that are not the member's.
const NOT_THE_MEMBER: &str = "NotTheMember";

/// Whether `target` was only claimed, never recorded as set, these credentials are not the
/// member's, and the object's last look already said so: the claim was written before a
/// status change that Glance refused to these same credentials, so this object set nothing
/// there and has nothing to undo. Without the recorded NotTheMember (a crash after Glance
/// took the change but before the status said so, then a switch of Secret), the status may
/// have been set, and the deletion waits for credentials that can undo it.
fn never_set(object: &ImageAccessAccept, target: &Membership, problem: &Problem) -> bool {
    problem.reason() == NOT_THE_MEMBER
        && object.applied() != Some(target)
        && object
            .condition(status::READY)
            .is_some_and(|ready| ready.reason == NOT_THE_MEMBER)
}

fn not_rejected(target: &Membership, problem: &Problem) -> Happened {
    Happened::warning(
        "MemberNotRejected",
        format!(
            "left the membership ({target}) as it is: this object never set its status, and {}",
            problem.message()
        ),
    )
}

/// `problem` with `hint` added to its message (how to let go without it).
fn with_hint(problem: Problem, hint: &str) -> Problem {
    match problem {
        Problem::Stalled { reason, message } => Problem::Stalled {
            reason,
            message: format!("{message}; {hint}"),
        },
        other => other,
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

fn handed_over(membership: &Membership, successor: &str) -> Happened {
    Happened::normal(
        "MemberStatusHandedOver",
        format!("left the member status of {membership} to {successor}, which sets it too"),
    )
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
    session: &'a Session,
    /// The project the credentials are scoped to.
    caller: Option<&'a str>,
    secret: &'a str,
    ctx: &'a Context,
}

enum Rejection {
    Rejected,
    AlreadyRejected,
    /// The membership (or the image) is gone: nothing to reject.
    AlreadyGone,
}

impl MemberSession<'_> {
    /// Whether these credentials are the member project's own.
    fn is_member(&self, target: &Membership) -> bool {
        self.caller == Some(target.member_id.as_str())
    }

    /// Why Glance shows no `target` to these credentials: credentials of another project
    /// cannot see the member's membership at all; the member's own see it once it is shared,
    /// unless they are the owner's (memberId unset with the owner's credentials).
    async fn why_not_found(&self, target: &Membership) -> Result<Problem, OpenStackError> {
        if !self.is_member(target) {
            return Ok(Problem::not_the_member(
                target,
                self.caller,
                self.secret,
                "(404: the membership is not visible to them)",
            ));
        }
        match self.glance.show_image(&target.image_id).await {
            Ok(image) if image.owner.is_some() && image.owner.as_deref() == self.caller => {
                Ok(Problem::owner_credentials(target, &target.member_id, self.secret))
            }
            Ok(_) => Ok(Problem::waiting_for_share(target)),
            // A member does not see a shared image before it is shared with it.
            Err(e) if e.is_not_found() => Ok(Problem::waiting_for_share(target)),
            Err(e) => Err(e),
        }
    }

    /// Whether a membership these credentials do not find is really gone: the member sees its
    /// own, the image's owner sees all of them; any other credentials might just not see it,
    /// and "not visible" must not pass for "gone".
    async fn really_gone(&self, target: &Membership) -> Result<(), Problem> {
        if self.is_member(target) {
            return Ok(());
        }
        let unseen = "(404: they cannot tell whether the membership is gone)";
        match self.glance.show_image(&target.image_id).await {
            Ok(image) if image.owner.is_some() && image.owner.as_deref() == self.caller => Ok(()),
            Ok(_) => Err(Problem::not_the_member(target, self.caller, self.secret, unseen)),
            Err(e) if e.is_not_found() => Err(Problem::not_the_member(target, self.caller, self.secret, unseen)),
            Err(e) => Err(Problem::openstack(&e, Step::ObserveMember, target, self.secret)),
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
                let caller = self.session.project_id().await.ok().flatten();
                let said = match &e {
                    OpenStackError::Http { status, message, .. } => format!("({status}: {message})"),
                    other => format!("({other})"),
                };
                Err(Problem::not_the_member(target, caller.as_deref(), self.secret, &said))
            }
            Err(e) => Err(Problem::openstack(&e, Step::SetStatus(to), target, self.secret)),
        }
    }

    /// Sets `target` to rejected, so the image leaves the member's image list.
    async fn reject(&self, target: &Membership) -> Result<Rejection, Problem> {
        match self.glance.show_member(&target.image_id, &target.member_id).await {
            Ok(member) if member.status == MemberStatus::Rejected => return Ok(Rejection::AlreadyRejected),
            Ok(_) => {}
            Err(e) if e.is_not_found() => return self.really_gone(target).await.map(|()| Rejection::AlreadyGone),
            Err(e) => return Err(Problem::openstack(&e, Step::ObserveMember, target, self.secret)),
        }
        match self.set_status(target, MemberStatus::Rejected).await {
            Ok(_) => Ok(Rejection::Rejected),
            Err(problem) => Err(problem),
        }
    }
}

async fn cleanup(object: &ImageAccessAccept, api: &Api<ImageAccessAccept>, ctx: &Context) -> Result<Next, Error> {
    if !object.has_finalizer() {
        return Ok(Next::Gone);
    }
    let mut events = Vec::new();
    let held = object.held_memberships();
    let hint = "to delete it without rejecting the image, set spec.deletionPolicy to Orphan";
    let mut found = None;
    for target in &held {
        if object.deletion_policy() == AcceptDeletionPolicy::Orphan {
            events.push(Happened::normal(
                "MemberStatusOrphaned",
                format!("deletionPolicy is Orphan: left the membership ({target}) as it is"),
            ));
            continue;
        }
        // Another object sets this status (a rename, say): it is left to it, not rejected.
        match other_setter(ctx, object, target).await {
            Ok(Some(successor)) => {
                events.push(handed_over(target, &successor));
                continue;
            }
            Ok(None) => {}
            Err(problem) => return deletion_blocked(object, api, ctx, target, problem, events, hint).await,
        }
        let (session, cloud) = match &found {
            Some(found) => found,
            None => match credentials(object, ctx).await {
                Ok(resolved) => found.insert(resolved),
                Err(problem) => return deletion_blocked(object, api, ctx, target, problem, events, hint).await,
            },
        };
        let secret = secret_label(object);
        let refused =
            |e: &OpenStackError| Problem::openstack(e, Step::SetStatus(MemberStatus::Rejected), target, &secret);
        let caller = match session.project_id().await {
            Ok(caller) => caller,
            Err(e) => return deletion_blocked(object, api, ctx, target, refused(&e), events, hint).await,
        };
        let glance = match session.glance(target.region.as_deref(), &cloud.interface).await {
            Ok(glance) => glance,
            Err(e) => return deletion_blocked(object, api, ctx, target, refused(&e), events, hint).await,
        };
        let member_session = MemberSession {
            glance: &glance,
            session,
            caller: caller.as_deref(),
            secret: &secret,
            ctx,
        };
        match member_session.reject(target).await {
            Ok(Rejection::Rejected) => events.push(Happened::normal(
                "MemberRejected",
                format!("set the membership ({target}) to rejected: the image leaves the member's image list"),
            )),
            Ok(Rejection::AlreadyRejected | Rejection::AlreadyGone) => {}
            Err(problem) if never_set(object, target, &problem) => events.push(not_rejected(target, &problem)),
            Err(problem) => return deletion_blocked(object, api, ctx, target, problem, events, hint).await,
        }
    }
    for event in events {
        publish(&ctx.events, object, event).await;
    }
    let_go_finalizer(api, object).await
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
