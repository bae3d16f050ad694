//! The `ImageAccess` kind, the owner's side: let go of what the spec no longer names → one
//! manager per membership → claim → create, observe, set status → status. Deleting removes the
//! membership (or hands it over, or orphans it).
//!
//! Everything around these steps (watch, scheduling, credentials, claim, status writes,
//! events, backoff) is the shared controller's ([`super`]).

use std::sync::Arc;

use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::lists::ListKey;
use super::plan::{self, CreateReason, Plan};
use super::problem::{Problem, Step};
use super::status::{self, Observation, Outcome, STALLED};
use super::{
    Context, Error, KindState, Next, claim, credentials, deletion_blocked, let_go_finalizer, ownership, release_claim,
    report, secret_label,
};
use crate::api::{
    ADOPT_ANNOTATION, CLAIM_ANNOTATION, DeletionPolicy, FINALIZER, ImageAccess, ImageAccessAccept, Managed, Membership,
};
use crate::openstack::{Cloud, Glance, HttpErrorKind, Member, OpenStackError, Session};
use crate::runtime::{Happened, patch_metadata, publish};

impl super::Kind for ImageAccess {
    const CONTROLLER: &'static str = "imageaccess";
    type Counterpart = ImageAccessAccept;

    fn state(ctx: &Context) -> &KindState<Self> {
        &ctx.access
    }

    fn image_id(&self) -> String {
        self.named_membership().image_id
    }

    fn named(&self) -> Option<Membership> {
        Some(self.named_membership())
    }

    async fn apply(object: &Self, api: &Api<Self>, ctx: &Context) -> Result<Next, Error> {
        apply(object, api, ctx).await
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
        let next = status::next(
            &previous,
            self.metadata.generation,
            desired,
            self.spec.status,
            outcome,
            now,
        );
        status::differs(self.status.as_ref(), &next).then_some(next)
    }

    fn tap(ctx: &Context, scope: Option<&str>, event: &kube::runtime::watcher::Event<Self>) {
        ctx.shares.observe_child(scope, event);
    }
}

/// The other ImageAccess objects that name, claim or hold a membership of `membership`'s image
/// and member.
fn others_naming(ctx: &Context, object: &ImageAccess, membership: &Membership) -> Vec<Arc<ImageAccess>> {
    ctx.naming(membership, Some(&ObjectRef::from(object)))
}

async fn apply(object: &ImageAccess, api: &Api<ImageAccess>, ctx: &Context) -> Result<Next, Error> {
    let mut events = Vec::new();
    let (desired, outcome) = converge(object, api, ctx, &mut events).await?;
    report(object, api, ctx, &desired, outcome, events).await
}

/// What happened to a membership the object let go of.
enum LetGo {
    Removed,
    AlreadyGone,
    /// Left for the object that takes it over (`namespace/name`).
    HandedOver(String),
    /// Glance refused, and the image is not shared (or its members grant nothing): nothing to
    /// remove. Says what the image is.
    NotGranting(String),
    /// Left in Glance, as `deletionPolicy: Orphan` asks.
    Orphaned,
}

/// Brings Glance to the spec; returns the membership the spec names (its region resolved when
/// the credentials could be read) and the outcome. Only a failed Kubernetes write is an `Err`:
/// every other failure is part of the outcome.
async fn converge(
    object: &ImageAccess,
    api: &Api<ImageAccess>,
    ctx: &Context,
    events: &mut Vec<Happened>,
) -> Result<(Membership, Outcome), Error> {
    let spec = &object.spec;
    let mut applied = object.applied().cloned();
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

    let named = object.named_membership();
    let (session, cloud) = match credentials(object, ctx).await {
        Ok(found) => found,
        Err(problem) => return stop(named, applied, problem),
    };
    let desired = Membership {
        region: named.region.clone().or_else(|| cloud.region_name.clone()),
        ..named
    };
    let secret = secret_label(object);
    let fail =
        |error: &OpenStackError, step: Step, target: &Membership| Problem::openstack(error, step, target, &secret);
    let glance = match session.glance(desired.region.as_deref(), &cloud.interface).await {
        Ok(glance) => glance,
        Err(e) => return stop(desired.clone(), applied, fail(&e, Step::ObserveMember, &desired)),
    };

    // What the object holds and the spec no longer names (imageId, memberId or region
    // changed): removed first, as Terraform's "forces a new resource".
    for old in object.held_memberships().into_iter().filter(|m| *m != desired) {
        match let_go(object, &old, &session, &cloud.interface, ctx).await {
            Ok(LetGo::Removed) => events.push(Happened::normal(
                "Replaced",
                format!("removed the previous membership ({old}) because the spec now names {desired}"),
            )),
            Ok(LetGo::HandedOver(to)) => events.push(Happened::normal(
                "MemberHandedOver",
                format!("left the previous membership ({old}) to ImageAccess {to}, which names it too"),
            )),
            Ok(LetGo::AlreadyGone) => {}
            // Only claimed, never recorded: it may never have been made.
            Ok(LetGo::Orphaned) if applied.as_ref() != Some(&old) => {}
            Ok(LetGo::Orphaned) => events.push(Happened::normal(
                "PreviousMemberOrphaned",
                format!(
                    "left the previous membership ({old}) in Glance, as deletionPolicy Orphan asks; the spec now names {desired}"
                ),
            )),
            Ok(LetGo::NotGranting(detail)) => events.push(Happened::warning(
                "PreviousMemberNotRemoved",
                format!("could not remove the previous membership ({old}): {detail}; it grants nothing"),
            )),
            Err(problem) => return stop(desired.clone(), applied, problem),
        }
        if applied.as_ref() == Some(&old) {
            applied = None;
        }
    }

    // One manager per membership.
    let others = others_naming(ctx, object, &desired);
    if let Some(manager) = ownership::manager(object, &desired, others.iter().map(Arc::as_ref)) {
        if object.claim().is_some() {
            // Lost a race for it (or the claim is of a membership let go above): drop the
            // claim without touching Glance, so deleting this object removes nothing.
            release_claim(api, object).await?;
        }
        if applied.as_ref() == Some(&desired) {
            applied = None;
        }
        return stop(desired.clone(), applied, Problem::managed_elsewhere(manager, &desired));
    }

    // One setter per member status: an ImageAccessAccept of the member may set it to another
    // value already. The membership is still this object's to create and remove; only its
    // status is left alone.
    let conflict = spec.status.and_then(|wanted| {
        let accepts = super::accept::setting(ctx, &desired, None);
        let me = ownership::Setter {
            kind: "ImageAccess",
            meta: &object.metadata,
            status: wanted,
        };
        ownership::status_conflict(me, accepts.iter().map(|a| super::accept::as_setter(a)))
    });
    let wanted_status = if conflict.is_some() { None } else { spec.status };

    let adopting = applied.as_ref() != Some(&desired) && adopts_existing(object);
    if adopting && is_the_members(&session, &desired).await {
        // A member's list of members shows only its own row, so the member's credentials
        // would adopt a membership they can never remove (a create would have been refused).
        // Stopped before the claim: this object must not hold it.
        return stop(desired.clone(), applied, Problem::member_credentials(&desired, &secret));
    }
    let _: Option<ImageAccess> = claim(api, object, &desired, ctx).await?;

    // Not yet applied under this identity: create straight away and let a 409 say it exists
    // (then it is read and adopted). One Glance request per new object instead of two. An
    // object that says it names an existing membership is read first instead: adopting it
    // must not write to Glance (a POST answered 409 changes nothing, but it is a write in
    // every request log the migration is checked against).
    let create_first = applied.as_ref() != Some(&desired) && !adopting;
    let observed = if create_first {
        None
    } else {
        match observe(object, &glance, &session, &cloud.interface, &desired, ctx).await {
            Ok(observed) => observed,
            Err(e) => return stop(desired.clone(), applied, fail(&e, Step::ObserveMember, &desired)),
        }
    };
    // A write makes what was read of the image's members stale: a read answered while it is
    // in flight is not kept (marked before), nor one answered after it (marked after, unless
    // Glance refused it).
    let wrote = |ctx: &Context, written: bool| {
        if written {
            ctx.member_lists.wrote(&desired.image_id);
        }
    };
    let Plan { create, set_status, .. } = plan::plan(&desired, wanted_status, applied.as_ref(), observed.as_ref());

    let mut member = observed;
    if let Some(reason) = create {
        wrote(ctx, true);
        let created = glance.create_member(&desired.image_id, &desired.member_id).await;
        wrote(ctx, may_have_written(&created));
        match created {
            Ok(created) => {
                let (event, note) = match reason {
                    CreateReason::New => (
                        "MemberCreated",
                        format!("shared image {} with member {}", desired.image_id, desired.member_id),
                    ),
                    CreateReason::Drifted => (
                        "MemberRecreated",
                        format!("the membership ({desired}) was removed outside Kubernetes; created it again"),
                    ),
                };
                events.push(Happened::normal(event, note));
                member = Some(created);
            }
            // 409: it exists (made by hand, or by us before a restart): read and adopt it. Glance
            // checks the member quota before duplicates, so an existing member of a full image
            // answers 413: read it too, and report the quota only if it is really missing.
            Err(e)
                if matches!(
                    e.http_kind(),
                    Some(HttpErrorKind::Conflict | HttpErrorKind::QuotaExceeded)
                ) =>
            {
                match glance.show_member(&desired.image_id, &desired.member_id).await {
                    Ok(existing) => {
                        events.push(Happened::normal(
                            "MemberAdopted",
                            format!(
                                "the membership ({desired}) already existed in Glance; it is now managed by this object"
                            ),
                        ));
                        member = Some(existing);
                    }
                    Err(missing) if missing.is_not_found() => {
                        return stop(desired.clone(), applied, fail(&e, Step::CreateMember, &desired));
                    }
                    Err(other) => {
                        return stop(desired.clone(), applied, fail(&other, Step::ObserveMember, &desired));
                    }
                }
            }
            Err(e) => return stop(desired.clone(), applied, fail(&e, Step::CreateMember, &desired)),
        }
    } else if applied.is_none() && member.is_some() {
        events.push(Happened::normal(
            "MemberAdopted",
            format!("the membership ({desired}) already existed in Glance; it is now managed by this object"),
        ));
    }
    applied = Some(desired.clone());

    // Recomputed against what Glance answered: after an adoption the status may differ from
    // what the plan assumed.
    let current = member.as_ref().map(|m| m.status);
    let change = match (set_status, current) {
        (_, Some(current)) => plan::status_change(wanted_status, current),
        (change, None) => change,
    };
    if let Some(change) = change {
        wrote(ctx, true);
        let set = glance
            .set_member_status(&desired.image_id, &desired.member_id, change.to)
            .await;
        wrote(ctx, may_have_written(&set));
        match set {
            Ok(updated) => {
                events.push(Happened::normal(
                    "StatusSet",
                    format!("member status of {desired} set from {} to {}", change.from, change.to),
                ));
                member = Some(updated);
            }
            Err(e) => {
                let outcome = Outcome {
                    image: None,
                    applied,
                    observation: member.map_or(Observation::Unknown, Observation::Present),
                    problem: Some(fail(&e, Step::SetStatus(change.to), &desired)),
                };
                return Ok((desired, outcome));
            }
        }
    }
    let observation = member.map_or(Observation::Unknown, Observation::Present);
    let problem = conflict.map(|first| Problem::status_conflict(&first, &desired));
    Ok((
        desired,
        Outcome {
            image: None,
            applied,
            observation,
            problem,
        },
    ))
}

/// Whether `session`'s credentials are those of the member project of `membership` (its token is
/// cached: no request).
async fn is_the_members(session: &Session, membership: &Membership) -> bool {
    session.project_id().await.ok().flatten().as_deref() == Some(membership.member_id.as_str())
}

/// Whether the object was written for a membership that exists already ([`ADOPT_ANNOTATION`]).
fn adopts_existing(object: &ImageAccess) -> bool {
    object
        .annotations()
        .get(ADOPT_ANNOTATION)
        .is_some_and(|value| value == "true")
}

/// The member `desired` names, as Glance shows it now: from the image's member list, read once
/// for all the objects of the image (the one that reads it wakes the others that use the same
/// credentials, so they are checked against it now, and come due together next time).
async fn observe(
    object: &ImageAccess,
    glance: &Glance,
    session: &Session,
    interface: &str,
    desired: &Membership,
    ctx: &Context,
) -> Result<Option<Member>, OpenStackError> {
    let key = (
        session.key(),
        desired.region.clone(),
        interface.to_string(),
        desired.image_id.clone(),
    );
    let find = |list: &[Member]| list.iter().find(|m| m.member_id == desired.member_id).cloned();
    let uid = object.uid().unwrap_or_default();
    if let Some(list) = ctx.member_lists.borrow(&uid, &key, ctx.clock.now()) {
        return Ok(find(&list));
    }
    let asked = ctx.clock.now();
    let turn = ctx.member_lists.read_turn(&key, &uid).await;
    // The object that read the list while this one waited may have lent it, or failed to read
    // it (then this one does not try again at once: the same answer would most likely come).
    let waited = match ctx.member_lists.borrow(&uid, &key, ctx.clock.now()) {
        Some(list) => Some(Ok(find(&list))),
        None => ctx.member_lists.failed_since(&key, asked).map(Err),
    };
    let found = match waited {
        Some(found) => found,
        None => read_members(object, glance, key, desired, ctx)
            .await
            .map(|list| find(&list)),
    };
    drop(turn);
    ctx.member_lists.done_reading();
    found
}

/// Reads the image's members, keeps the list and lends it to the siblings it wakes; a failure
/// (a 404 included: the image is gone, or hidden from these credentials, and a create would
/// only be answered 404 too) is kept for those waiting.
async fn read_members(
    object: &ImageAccess,
    glance: &Glance,
    key: ListKey,
    desired: &Membership,
    ctx: &Context,
) -> Result<Vec<Member>, OpenStackError> {
    let epoch = ctx.member_lists.epoch(&desired.image_id);
    match glance.list_members(&desired.image_id).await {
        Ok(list) => {
            let siblings = siblings(object, ctx);
            let uids = siblings.iter().map(|(_, uid)| uid.clone());
            if ctx.member_lists.put(key, epoch, list.clone(), ctx.clock.now(), uids) {
                for (sibling, _) in siblings {
                    ctx.wake(sibling);
                }
            }
            Ok(list)
        }
        Err(e) => {
            ctx.member_lists.put_failure(key, e.clone(), ctx.clock.now());
            Err(e)
        }
    }
}

/// Whether a write to an image's members may have reached Glance: anything but a refusal.
fn may_have_written<T>(result: &Result<T, OpenStackError>) -> bool {
    match result.as_ref().err().and_then(OpenStackError::http_kind) {
        None => true,
        Some(kind) => matches!(kind, HttpErrorKind::ServerError | HttpErrorKind::Other),
    }
}

/// The other objects of `object`'s image (with their uids) that use the same Secret and cloud
/// and would look at their member now: they are woken to be checked against the list just
/// read. Left out: objects waiting out a backoff or a stalled re-check (waking them would
/// break that schedule), objects not applied yet unless they adopt (the others create without
/// looking), and objects in a reconcile (they look for a loan when they get to it; a wake
/// would run them twice).
fn siblings(object: &ImageAccess, ctx: &Context) -> Vec<(ObjectRef<ImageAccess>, String)> {
    let me = ObjectRef::from(object);
    let mut siblings = Vec::new();
    let same_credentials = |other: &ImageAccess| {
        other.metadata.namespace == object.metadata.namespace
            && other.spec.cloud_credentials_ref == object.spec.cloud_credentials_ref
            && other.spec.region == object.spec.region
    };
    for reference in ctx.access.index.naming_image(&object.spec.image_id) {
        if reference == me {
            continue;
        }
        let Some(sibling) = ctx.object(&reference) else {
            continue;
        };
        let uid = sibling.uid().unwrap_or_default();
        let would_look = (sibling.applied().is_some() || adopts_existing(&sibling))
            && !sibling.is_deleting()
            && sibling.condition(STALLED).is_none_or(|c| c.status != "True")
            && ctx.tracker.failures(&uid) == 0
            && !ctx.tracker.running(&uid);
        if same_credentials(&sibling) && would_look {
            siblings.push((reference, uid));
        }
    }
    siblings
}

/// Hands `target` over to the object that takes it over, if there is one that can: writes the
/// claim (and the finalizer) onto it, so that from then on it holds the membership (its deletion
/// removes it) even if it never reconciles again. "Can" is checked with the successor's own
/// credentials: they resolve to this very membership (region included) and Glance shows it to
/// them; its Secret is held. Returns the successor (`namespace/name`), or `None` when nobody
/// takes it.
async fn hand_over(object: &ImageAccess, target: &Membership, ctx: &Context) -> Result<Option<String>, Problem> {
    let others = others_naming(ctx, object, target);
    let Some(successor) = ownership::successor(object, target, others.iter().map(Arc::as_ref)) else {
        return Ok(None);
    };
    let namespace = successor.namespace().unwrap_or_default();
    let label = format!("{namespace}/{}", successor.name_any());
    if successor.holds(target) {
        return Ok(Some(label));
    }
    if successor.claim().is_some() {
        // Its claim records another membership it may hold: not overwritten.
        return Ok(None);
    }
    let Ok((session, cloud)) = credentials(successor, ctx).await else {
        return Ok(None);
    };
    if is_the_members(&session, target).await {
        // It would see the membership, and never be able to remove it.
        return Ok(None);
    }
    let region = successor.spec.region.clone().or_else(|| cloud.region_name.clone());
    if region != target.region {
        return Ok(None);
    }
    let unavailable = |e: &OpenStackError| Problem::openstack(e, Step::ObserveMember, target, &label);
    let glance = match session.glance(region.as_deref(), &cloud.interface).await {
        Ok(glance) => glance,
        Err(e) if e.is_transient() => return Err(unavailable(&e)),
        Err(_) => return Ok(None),
    };
    match glance.show_member(&target.image_id, &target.member_id).await {
        Ok(_) => {}
        Err(e) if e.is_transient() => return Err(unavailable(&e)),
        // Its credentials cannot see the membership: it could not remove it either.
        Err(_) => return Ok(None),
    }
    let failed = |e: kube::Error| Problem::kubernetes_write(&e, &label);
    let secret = &successor.spec.cloud_credentials_ref.secret_name;
    let held = ctx.secrets.hold(&namespace, secret).await;
    ctx.secrets_changed_meanwhile();
    held.map_err(failed)?;
    let api: Api<ImageAccess> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut finalizers = successor.finalizers().to_vec();
    if !successor.has_finalizer() {
        finalizers.push(FINALIZER.to_string());
    }
    let claim = serde_json::to_string(target).ok();
    let _: ImageAccess = patch_metadata(&api, &successor.metadata, &finalizers, &[(CLAIM_ANNOTATION, claim)])
        .await
        .map_err(failed)?;
    // Its finalizer may have been there already: its fingerprint need not change, so wake it.
    ctx.wake(ObjectRef::from(successor));
    Ok(Some(label))
}

/// Lets go of a membership the object holds: hands it to the object that takes it over, or
/// removes it from Glance. `Err` when it stays and still grants access (a human must act) or
/// Glance could not be asked.
async fn let_go(
    object: &ImageAccess,
    target: &Membership,
    session: &Arc<Session>,
    interface: &str,
    ctx: &Context,
) -> Result<LetGo, Problem> {
    if let Some(successor) = hand_over(object, target, ctx).await? {
        return Ok(LetGo::HandedOver(successor));
    }
    if object.deletion_policy() == DeletionPolicy::Orphan {
        return Ok(LetGo::Orphaned);
    }
    remove(object, target, session, interface, ctx).await
}

/// Removes `target` from Glance.
async fn remove(
    object: &ImageAccess,
    target: &Membership,
    session: &Arc<Session>,
    interface: &str,
    ctx: &Context,
) -> Result<LetGo, Problem> {
    let secret = secret_label(object);
    let fail = |e: &OpenStackError| Problem::openstack(e, Step::RemoveMember, target, &secret);
    let glance = session
        .glance(target.region.as_deref(), interface)
        .await
        .map_err(|e| fail(&e))?;
    // As for a create: no list read across the removal is kept.
    ctx.member_lists.wrote(&target.image_id);
    let removed = remove_membership(&glance, target).await;
    if may_have_written(&removed) {
        ctx.member_lists.wrote(&target.image_id);
    }
    match removed.map_err(|e| fail(&e))? {
        Removal::Removed => Ok(LetGo::Removed),
        Removal::AlreadyGone => Ok(LetGo::AlreadyGone),
        Removal::NotGranting(detail) => Ok(LetGo::NotGranting(detail)),
        Removal::StillGranting { owner } => {
            let caller = session.project_id().await.ok().flatten();
            Err(Problem::removal_forbidden(
                target,
                owner.as_deref(),
                caller.as_deref(),
                &secret,
            ))
        }
    }
}

enum Removal {
    Removed,
    AlreadyGone,
    /// Glance refused, and the image is not shared: its member rows grant nothing.
    NotGranting(String),
    /// Glance refused and the image is still shared: the member keeps access.
    StillGranting {
        owner: Option<String>,
    },
}

/// Removes a membership. A 403 alone does not say whether access remains: the image is read
/// to tell "no longer shared" (nothing granted) from "these credentials may not" (granted).
async fn remove_membership(glance: &Glance, target: &Membership) -> Result<Removal, OpenStackError> {
    match glance.delete_member(&target.image_id, &target.member_id).await {
        Ok(()) => Ok(Removal::Removed),
        Err(e) if e.is_not_found() => Ok(Removal::AlreadyGone),
        Err(e) if e.http_kind() == Some(HttpErrorKind::Forbidden) => match glance.show_image(&target.image_id).await {
            Ok(image) if image.visibility == "shared" => Ok(Removal::StillGranting { owner: image.owner }),
            Ok(image) => Ok(Removal::NotGranting(format!(
                "image {} is {} now, not shared",
                target.image_id, image.visibility
            ))),
            Err(read) if read.is_not_found() => Ok(Removal::AlreadyGone),
            Err(read) => Err(read),
        },
        Err(e) => Err(e),
    }
}

async fn cleanup(object: &ImageAccess, api: &Api<ImageAccess>, ctx: &Context) -> Result<Next, Error> {
    if !object.has_finalizer() {
        return Ok(Next::Gone);
    }
    let held = object.held_memberships();
    let recorded = object.applied().cloned();
    let mut events = Vec::new();
    let mut found: Option<(Arc<Session>, Cloud)> = None;
    for target in &held {
        // Whatever the deletion policy, an object that takes the membership over gets it.
        let handed = match hand_over(object, target, ctx).await {
            Ok(handed) => handed,
            Err(problem) => return blocked(object, api, ctx, target, problem, events).await,
        };
        if let Some(successor) = handed {
            events.push(Happened::normal(
                "MemberHandedOver",
                format!("left the membership ({target}) to ImageAccess {successor}, which names it too"),
            ));
            continue;
        }
        if object.deletion_policy() == DeletionPolicy::Orphan {
            events.push(Happened::normal(
                "MemberOrphaned",
                format!("deletionPolicy is Orphan: left the membership ({target}) in Glance"),
            ));
            continue;
        }
        let (session, cloud) = match &found {
            Some(found) => found.clone(),
            None => match credentials(object, ctx).await {
                Ok(resolved) => found.insert(resolved).clone(),
                Err(problem) => return blocked(object, api, ctx, target, problem, events).await,
            },
        };
        match remove(object, target, &session, &cloud.interface, ctx).await {
            Ok(LetGo::Removed) => events.push(Happened::normal(
                "MemberDeleted",
                format!("removed the membership ({target}) from Glance"),
            )),
            Ok(LetGo::HandedOver(to)) => events.push(Happened::normal(
                "MemberHandedOver",
                format!("left the membership ({target}) to ImageAccess {to}, which names it too"),
            )),
            // Claimed but never recorded: the create may not have happened at all.
            // Orphan was handled above, without a call: `remove` never leaves one.
            Ok(LetGo::Orphaned) => {}
            Ok(LetGo::AlreadyGone) if recorded.as_ref() != Some(target) => {}
            Ok(LetGo::AlreadyGone) => events.push(Happened::warning(
                "MemberAlreadyGone",
                format!("the membership ({target}) or its image no longer exists in Glance; nothing to remove"),
            )),
            Ok(LetGo::NotGranting(detail)) => events.push(Happened::warning(
                "MemberNotRemoved",
                format!(
                    "Glance refused to remove the membership ({target}): {detail}, so the membership grants nothing; deletion finished"
                ),
            )),
            Err(problem) => return blocked(object, api, ctx, target, problem, events).await,
        }
    }
    for event in events {
        publish(&ctx.events, object, event).await;
    }
    let_go_finalizer(api, object).await
}

/// The deletion cannot finish: the finalizer stays; the status and a Warning say why and how
/// to let go without removing the membership.
async fn blocked(
    object: &ImageAccess,
    api: &Api<ImageAccess>,
    ctx: &Context,
    target: &Membership,
    problem: Problem,
    events: Vec<Happened>,
) -> Result<Next, Error> {
    let hint = "to delete it without removing the membership, set spec.deletionPolicy to Orphan";
    deletion_blocked(object, api, ctx, target, problem, events, hint).await
}
