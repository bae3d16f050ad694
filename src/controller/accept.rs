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
    let member_id = match &object.spec.member_id {
        Some(member) => member.clone(),
        None => match session.project_id().await {
            Ok(Some(project)) => project,
            Ok(None) => return stop(unresolved, applied, Problem::member_unknown(&secret)),
            Err(e) => {
                let problem = Problem::openstack(&e, Step::ReadCredentials, &unresolved, &secret);
                return stop(unresolved, applied, problem);
            }
        },
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

    // What the object set before and the spec no longer names: let go as on deletion.
    for old in object.held_memberships().into_iter().filter(|m| *m != desired) {
        if object.deletion_policy() == AcceptDeletionPolicy::Reject {
            match reject(&old, &session, &cloud.interface, &secret).await {
                Ok(Rejection::Rejected) => events.push(Happened::normal(
                    "PreviousMemberRejected",
                    format!("set the previous membership ({old}) to rejected because the spec now names {desired}"),
                )),
                Ok(Rejection::AlreadyGone) => {}
                Err(problem) => return stop(desired.clone(), applied, problem),
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

    claim(api, object, &desired, ctx).await?;

    let mut member = match glance.show_member(&desired.image_id, &desired.member_id).await {
        Ok(member) => member,
        Err(e) if e.is_not_found() => {
            let outcome = Outcome {
                image: None,
                applied: None,
                observation: Observation::Absent,
                problem: Some(Problem::waiting_for_share(&desired)),
            };
            return Ok((desired, outcome));
        }
        Err(e) => return stop(desired.clone(), applied, fail(&e, Step::ObserveMember)),
    };
    let wanted = object.spec.status;
    if member.status != wanted {
        let from = member.status;
        match set_status(&glance, &session, &desired, wanted, &secret).await {
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
                    applied: Some(desired.clone()),
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

/// The object of either kind that sets the status of `desired` and came before `object`, named
/// for the message.
fn first_setter(ctx: &Context, object: &ImageAccessAccept, desired: &Membership) -> Option<String> {
    let accepts = setting(ctx, desired, Some(&ObjectRef::from(object)));
    let accepts = accepts.iter().map(|other| ("ImageAccessAccept", &other.metadata));
    let owners = ctx.naming::<ImageAccess>(desired, None);
    let owners = owners
        .iter()
        .filter(|other| !other.is_deleting() && other.spec.status.is_some())
        .filter(|other| other.named_membership().overlaps(desired))
        .map(|other| ("ImageAccess", &other.metadata));
    ownership::first_status_setter(&object.metadata, accepts.chain(owners))
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

/// Sets the member status; a 403 says these are not the member's credentials.
async fn set_status(
    glance: &Glance,
    session: &Session,
    target: &Membership,
    to: MemberStatus,
    secret: &str,
) -> Result<crate::openstack::Member, Problem> {
    match glance.set_member_status(&target.image_id, &target.member_id, to).await {
        Ok(member) => Ok(member),
        Err(e) if e.http_kind() == Some(HttpErrorKind::Forbidden) => {
            let caller = session.project_id().await.ok().flatten();
            let said = match &e {
                OpenStackError::Http { status, message, .. } => format!("({status}: {message})"),
                other => format!("({other})"),
            };
            Err(Problem::not_the_member(target, caller.as_deref(), secret, &said))
        }
        Err(e) => Err(Problem::openstack(&e, Step::SetStatus(to), target, secret)),
    }
}

enum Rejection {
    Rejected,
    /// The membership (or the image) is gone: nothing to reject.
    AlreadyGone,
}

/// Sets `target` to rejected, so the image leaves the member's image list.
async fn reject(
    target: &Membership,
    session: &std::sync::Arc<Session>,
    interface: &str,
    secret: &str,
) -> Result<Rejection, Problem> {
    let glance = session
        .glance(target.region.as_deref(), interface)
        .await
        .map_err(|e| Problem::openstack(&e, Step::SetStatus(MemberStatus::Rejected), target, secret))?;
    match glance.show_member(&target.image_id, &target.member_id).await {
        Ok(member) if member.status == MemberStatus::Rejected => return Ok(Rejection::Rejected),
        Ok(_) => {}
        Err(e) if e.is_not_found() => return Ok(Rejection::AlreadyGone),
        Err(e) => return Err(Problem::openstack(&e, Step::ObserveMember, target, secret)),
    }
    match set_status(&glance, session, target, MemberStatus::Rejected, secret).await {
        Ok(_) => Ok(Rejection::Rejected),
        Err(problem) => Err(problem),
    }
}

async fn cleanup(object: &ImageAccessAccept, api: &Api<ImageAccessAccept>, ctx: &Context) -> Result<Next, Error> {
    if !object.has_finalizer() {
        return Ok(Next::Gone);
    }
    let mut events = Vec::new();
    let held = object.held_memberships();
    if object.deletion_policy() == AcceptDeletionPolicy::Orphan {
        for target in &held {
            events.push(Happened::normal(
                "MemberStatusOrphaned",
                format!("deletionPolicy is Orphan: left the membership ({target}) as it is"),
            ));
        }
    } else if !held.is_empty() {
        let secret = secret_label(object);
        let hint = "to delete it without rejecting the image, set spec.deletionPolicy to Orphan";
        let (session, cloud) = match credentials(object, ctx).await {
            Ok(found) => found,
            Err(problem) => return deletion_blocked(object, api, ctx, &held[0], problem, events, hint).await,
        };
        for target in &held {
            match reject(target, &session, &cloud.interface, &secret).await {
                Ok(Rejection::Rejected) => events.push(Happened::normal(
                    "MemberRejected",
                    format!("set the membership ({target}) to rejected: the image leaves the member's image list"),
                )),
                Ok(Rejection::AlreadyGone) => {}
                Err(problem) => return deletion_blocked(object, api, ctx, target, problem, events, hint).await,
            }
        }
    }
    for event in events {
        publish(&ctx.events, object, event).await;
    }
    let_go_finalizer(api, object).await
}
