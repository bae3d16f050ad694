//! The `ImageAccess` kind, the owner's side: what it reads and writes in Glance. Applying
//! creates the membership (or adopts it: a 409, or an object written for one that exists),
//! observes it and sets its status; letting go removes it. Who may hold it is decided with
//! [`ownership`]; everything around these steps (credentials, claim, let-go order, "gone?",
//! status, events, backoff) is the shared lifecycle's ([`super::lifecycle`]).

use std::sync::Arc;

use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::holding::Resolved;
use super::lifecycle::{self, Released, Why, stopped, witness_gone};
use super::lists::ListKey;
use super::plan::{self, CreateReason, Plan};
use super::problem::{Problem, Step};
use super::status::{self, IN_SYNC, Observation, Outcome, STALLED};
use super::{Context, Kind, KindState, Refusal, ownership, refs, share};
use crate::api::{
    ADOPT_ANNOTATION, CLAIM_ANNOTATION, DeletionPolicy, FINALIZER, ImageAccess, ImageAccessAccept, Managed, Membership,
    OnCreate, ResolvedRefs,
};
use crate::openstack::{Glance, HttpErrorKind, Member, OpenStackError};
use crate::runtime::{Happened, patch_metadata_if};

/// Reasons of a look that ended with Glance refusing what the object tried on a membership it
/// had not recorded: it changed nothing there.
const REFUSED: &[&str] = &[
    "ImageNotFound",
    "ImageNotShared",
    "MemberQuotaExceeded",
    "InvalidRequest",
];

impl Kind for ImageAccess {
    const CONTROLLER: &'static str = "imageaccess";
    const ORPHAN_HINT: &'static str = "to delete it without removing the membership, set spec.deletionPolicy to Orphan (on the ImageShare, for one of its ImageAccess objects)";
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

    fn refs(&self) -> refs::Refs<'_> {
        refs::Refs {
            image: self.spec.image_ref.as_ref().map(|r| (r, refs::Among::Owned)),
            member: self.spec.member_ref.as_ref(),
            region: self.spec.region.as_deref(),
            member_id: None,
        }
    }

    fn with_resolved(&self, resolved: ResolvedRefs) -> Self {
        let mut object = self.clone();
        object.status.get_or_insert_default().resolved = Some(resolved);
        object
    }

    fn next_status(
        &self,
        desired: &Membership,
        outcome: &Outcome,
        now: jiff::Timestamp,
    ) -> Option<impl serde::Serialize + Send + Sync> {
        let previous = self.status.clone().unwrap_or_default();
        let next = status::next(
            &previous,
            self.metadata.generation,
            desired,
            self.spec.status,
            self.observes(),
            outcome,
            now,
        );
        status::differs(self.status.as_ref(), &next).then_some(next)
    }

    fn member(object: &Self, _creds: &Resolved) -> Result<String, Problem> {
        Ok(object.named_membership().member_id)
    }

    const REFUSALS: &'static [&'static str] = &["ImageNotFound", "ImageNotShared"];

    async fn still_refused(_object: &Self, desired: &Membership, creds: &Resolved) -> Option<Problem> {
        let fail = |e: &OpenStackError| Problem::openstack(e, Step::CreateMember, desired, &creds.secret);
        let glance = match creds.glance(desired.region.as_deref()).await {
            Ok(glance) => glance,
            Err(e) => return Some(fail(&e)),
        };
        // An image these credentials may not share: not theirs to see (404), not shared (403),
        // or another project's (a member's credentials see it, and may not add members).
        match glance.show_image(&desired.image_id).await {
            Err(e) if e.is_not_found() => Some(fail(&e)),
            Ok(image) if image.visibility != "shared" || !owns(&creds.caller, &image) => {
                Some(fail(&OpenStackError::Http {
                    operation: crate::openstack::Operation::CreateMember,
                    status: 403,
                    kind: HttpErrorKind::Forbidden,
                    message: format!(
                        "image {} is {}, owned by project {}",
                        image.id,
                        image.visibility,
                        image.owner.as_deref().unwrap_or("unknown")
                    ),
                    retry_after: None,
                }))
            }
            _ => None,
        }
    }

    async fn may_hold(object: &Self, desired: &Membership, creds: &Resolved, ctx: &Context) -> Result<(), Refusal> {
        let others = others_naming(ctx, object, desired);
        if let Some(manager) = ownership::manager(object, desired, others.iter().map(Arc::as_ref)) {
            // Lost a race for it (or the claim is of a membership let go of): the claim goes
            // without touching Glance, so deleting this object removes nothing.
            return Err(Refusal {
                problem: Problem::managed_elsewhere(manager, desired),
                drop_claim: true,
            });
        }
        let adopting = !object.applied().is_some_and(|a| a.same(desired)) && adopts_existing(object);
        if adopting && creds.caller.is(&desired.member_id) {
            // A member's list of members shows only its own row, so the member's credentials
            // would adopt a membership they can never remove (a create would have been refused).
            return Err(Refusal {
                problem: Problem::member_credentials(desired, &creds.secret),
                drop_claim: false,
            });
        }
        Ok(())
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

    async fn orphans(object: &Self, ctx: &Context) -> Result<bool, Problem> {
        let policy = share::deletion_policy_of_child(ctx, object)
            .await?
            .unwrap_or_else(|| object.deletion_policy());
        Ok(policy == DeletionPolicy::Orphan)
    }

    async fn successor(object: &Self, target: &Membership, ctx: &Context) -> Result<Option<String>, Problem> {
        hand_over(object, target, ctx).await
    }

    async fn undo(object: &Self, target: &Membership, creds: &Resolved, ctx: &Context) -> Result<Released, Problem> {
        remove(object, target, creds, ctx).await
    }

    /// A claim of this operator is released as soon as Glance refuses the look that made it, so
    /// one that stays may have been acted on. Only a claim an older operator wrote (no holder
    /// recorded) is judged by the last look's refusal.
    fn made_nothing(&self, target: &Membership) -> bool {
        self.claim()
            .is_some_and(|claim| claim.same(target) && claim.project.is_none() && !claim.admin)
            && lifecycle::refused_before(self, target, REFUSED)
    }

    fn released(&self, target: &Membership, released: &Released, why: Why<'_>) -> Option<Happened> {
        let recorded = self.applied().is_some_and(|applied| applied.same(target));
        match (released, why) {
            (Released::Undone, Why::Deleted) => Some(Happened::normal(
                "MemberDeleted",
                format!("removed the membership ({target}) from Glance"),
            )),
            (Released::Undone, Why::Replaced { by }) => Some(Happened::normal(
                "Replaced",
                format!("removed the previous membership ({target}) because the spec now names {by}"),
            )),
            (Released::HandedOver(to), Why::Deleted) => Some(Happened::normal(
                "MemberHandedOver",
                format!("left the membership ({target}) to ImageAccess {to}, which names it too"),
            )),
            (Released::HandedOver(to), Why::Replaced { .. }) => Some(Happened::normal(
                "MemberHandedOver",
                format!("left the previous membership ({target}) to ImageAccess {to}, which names it too"),
            )),
            (Released::Orphaned, Why::Deleted) => Some(Happened::normal(
                "MemberOrphaned",
                format!("deletionPolicy is Orphan: left the membership ({target}) in Glance"),
            )),
            // Only claimed, never recorded: it may never have been made.
            (Released::Orphaned, Why::Replaced { by }) if recorded => Some(Happened::normal(
                "PreviousMemberOrphaned",
                format!(
                    "left the previous membership ({target}) in Glance, as deletionPolicy Orphan asks; the spec now names {by}"
                ),
            )),
            (Released::AlreadyGone, Why::Deleted) if recorded => Some(Happened::warning(
                "MemberAlreadyGone",
                format!(
                    "the membership ({target}) no longer exists in Glance (removed outside Kubernetes); nothing to remove"
                ),
            )),
            _ => None,
        }
    }

    fn tap(ctx: &Context, scope: Option<&str>, event: &kube::runtime::watcher::Event<Self>) {
        ctx.shares.observe_child(scope, event);
    }
}

/// Whether `caller` may manage the members of `image`: its owner, or an admin.
fn owns(caller: &crate::openstack::Caller, image: &crate::openstack::Image) -> bool {
    caller.admin || image.owner.as_deref().is_some_and(|owner| caller.is(owner))
}

/// The other ImageAccess objects that name, claim or hold a membership of `membership`'s image
/// and member.
fn others_naming(ctx: &Context, object: &ImageAccess, membership: &Membership) -> Vec<Arc<ImageAccess>> {
    ctx.naming(membership, Some(&ObjectRef::from(object)))
}

/// Brings Glance to the spec for `record`, which the object has claimed: creates it (or adopts
/// it), or observes it; sets the member status the spec asks for.
async fn act(
    object: &ImageAccess,
    record: &Membership,
    mut applied: Option<Membership>,
    creds: &Resolved,
    ctx: &Context,
    events: &mut Vec<Happened>,
) -> Outcome {
    let spec = &object.spec;
    let desired = record;
    let fail = |error: &OpenStackError, step: Step| Problem::openstack(error, step, desired, &creds.secret);
    let glance = match creds.glance(desired.region.as_deref()).await {
        Ok(glance) => glance,
        Err(e) => return stopped(applied, fail(&e, Step::ObserveMember)),
    };

    // One setter per member status: an ImageAccessAccept of the member may set it to another
    // value already. The membership is still this object's to create and remove; only its
    // status is left alone.
    let conflict = spec.status.and_then(|wanted| {
        let accepts = super::accept::setting(ctx, desired, None);
        let me = ownership::Setter {
            kind: "ImageAccess",
            meta: &object.metadata,
            status: wanted,
        };
        ownership::status_conflict(me, accepts.iter().map(|a| super::accept::as_setter(a)))
    });
    let wanted_status = if conflict.is_some() { None } else { spec.status };

    // Not yet applied under this identity: create straight away and let a 409 say it exists
    // (then it is read and adopted). One Glance request per new object instead of two. An
    // object that says it names an existing membership is read first instead: adopting it
    // must not write to Glance (a POST answered 409 changes nothing, but it is a write in
    // every request log the migration is checked against).
    let adopting = applied.is_none() && adopts_existing(object);
    let create_first = applied.is_none() && !adopting;
    let observed = if create_first {
        None
    } else {
        match observe(object, &glance, creds, desired, ctx).await {
            Ok(observed) => observed,
            Err(e) => return stopped(applied, fail(&e, Step::ObserveMember)),
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
    let Plan { create, set_status, .. } = plan::plan(desired, wanted_status, applied.as_ref(), observed.as_ref());

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
                        return stopped(applied, fail(&e, Step::CreateMember));
                    }
                    Err(other) => return stopped(applied, fail(&other, Step::ObserveMember)),
                }
            }
            Err(e) => return stopped(applied, fail(&e, Step::CreateMember)),
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
                return Outcome {
                    image: None,
                    applied,
                    observation: member.map_or(Observation::Unknown, Observation::Present),
                    problem: Some(fail(&e, Step::SetStatus(change.to))),
                };
            }
        }
    }
    Outcome {
        image: None,
        applied,
        observation: member.map_or(Observation::Unknown, Observation::Present),
        problem: conflict.map(|first| Problem::status_conflict(&first, desired)),
    }
}

/// What an object that only observes (`managementPolicy: Observe`) reports: the member as
/// the image's member list shows it (read once for the objects of the image, as a Managed
/// object's look), or its absence, believed only from credentials that could see it.
async fn observe_only(object: &ImageAccess, desired: &Membership, creds: &Resolved, ctx: &Context) -> Outcome {
    let fail = |error: &OpenStackError| Problem::openstack(error, Step::ObserveMember, desired, &creds.secret);
    let glance = match creds.glance(desired.region.as_deref()).await {
        Ok(glance) => glance,
        Err(e) => return stopped(None, fail(&e)),
    };
    match observe(object, &glance, creds, desired, ctx).await {
        Ok(Some(member)) => Outcome {
            image: None,
            applied: None,
            observation: Observation::Present(member),
            problem: None,
        },
        // The same witness as for "gone": one that could see it, or nothing is concluded.
        Ok(None) => match lifecycle::witness(&glance, &creds.caller, desired, true).await {
            Ok(lifecycle::Witness::Sees) => Outcome {
                image: None,
                applied: None,
                observation: Observation::Absent,
                problem: Some(Problem::observed_absent(desired)),
            },
            Ok(lifecycle::Witness::Blind { image_owner }) => {
                let problem = Problem::cannot_observe(desired, &creds.caller, image_owner.as_deref(), &creds.secret);
                stopped(None, problem)
            }
            Err(e) => stopped(None, fail(&e)),
        },
        Err(e) => stopped(None, fail(&e)),
    }
}

/// Whether the object was written for a membership that exists already: `spec.onCreate: Adopt`,
/// or its older form, [`ADOPT_ANNOTATION`]; or it observed it until now (its status has
/// InSync), and adopts it with reads only as it turns Managed.
fn adopts_existing(object: &ImageAccess) -> bool {
    object.spec.on_create == Some(OnCreate::Adopt)
        || object
            .annotations()
            .get(ADOPT_ANNOTATION)
            .is_some_and(|value| value == "true")
        || object.condition(IN_SYNC).is_some()
}

/// The member `desired` names, as Glance shows it now: from the image's member list, read once
/// for all the objects of the image (the one that reads it wakes the others that use the same
/// credentials, so they are checked against it now, and come due together next time).
async fn observe(
    object: &ImageAccess,
    glance: &Glance,
    creds: &Resolved,
    desired: &Membership,
    ctx: &Context,
) -> Result<Option<Member>, OpenStackError> {
    let key = (
        creds.session.key(),
        desired.region.clone(),
        creds.cloud.reached_by(),
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
    for reference in ctx.access.index.naming_image(&object.image_id()) {
        if reference == me {
            continue;
        }
        let Some(sibling) = ctx.object(&reference) else {
            continue;
        };
        let uid = sibling.uid().unwrap_or_default();
        let would_look = (sibling.applied().is_some() || adopts_existing(&sibling) || sibling.observes())
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
/// credentials: they reach this very membership (the same Glance endpoint), Glance shows it to
/// them, and they are not the member's; its Secret is held. Returns the successor
/// (`namespace/name`), or `None` when nobody takes it. A transient failure on the way is an
/// `Err`: it is retried, never taken for "nobody".
async fn hand_over(object: &ImageAccess, target: &Membership, ctx: &Context) -> Result<Option<String>, Problem> {
    let others = others_naming(ctx, object, target);
    for successor in ownership::successors(object, target, others.iter().map(Arc::as_ref)) {
        if let Some(label) = hand_over_to(successor, target, ctx).await? {
            return Ok(Some(label));
        }
    }
    Ok(None)
}

/// Hands `target` over to `successor` if it can take it: `None` when it cannot (the next
/// candidate is asked), `Err` when that could not be told.
async fn hand_over_to(successor: &ImageAccess, target: &Membership, ctx: &Context) -> Result<Option<String>, Problem> {
    let namespace = successor.namespace().unwrap_or_default();
    let label = format!("{namespace}/{}", successor.name_any());
    // It made or adopted it with its own credentials: it can undo it. Else its credentials are
    // asked whether they could.
    let holds = successor.applied().is_some_and(|applied| applied.same(target));
    if !holds && !can_take(successor, target, &label, ctx).await? {
        return Ok(None);
    }
    let failed = |e: kube::Error| Problem::kubernetes_write(&e, &format!("the hand-over to ImageAccess {label}"));
    let secret = &successor.spec.cloud_credentials_ref.secret_name;
    let held = ctx.secrets.hold(&namespace, secret).await;
    ctx.secrets_changed_meanwhile();
    held.map_err(failed)?;
    let api: Api<ImageAccess> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut finalizers = successor.finalizers().to_vec();
    if !successor.has_finalizer() {
        finalizers.push(FINALIZER.to_string());
    }
    // Who made it stays recorded; one that holds it keeps its own claim (only tested).
    let claim = if holds {
        successor.annotations().get(CLAIM_ANNOTATION).cloned()
    } else {
        serde_json::to_string(target).ok()
    };
    // Not if it turned Observe since the cache showed it (an Observe object is never a
    // successor): it would let go of the membership with no write, and leave it to nobody. The
    // claim annotation is tested too, so the one the cache showed is the one overwritten.
    let policy = (
        "/spec/managementPolicy",
        serde_json::json!(successor.spec.management_policy),
    );
    let claimed = patch_metadata_if::<ImageAccess>(
        &api,
        &successor.metadata,
        &finalizers,
        &[(CLAIM_ANNOTATION, claim)],
        &[policy],
    )
    .await;
    if let Err(e) = claimed {
        let what = format!("the hand-over to ImageAccess {label}");
        let problem = super::holding::patch_problem(&api, &successor.metadata, e, &what).await;
        // The race was on the successor: what this object saw of itself is not stale, so its
        // status is written as for any transient failure.
        return Err(problem.reported());
    }
    // What it claimed before and Glance refused is not what it holds now.
    ctx.refused_claims().remove(&successor.uid().unwrap_or_default());
    // Its finalizer may have been there already: its fingerprint need not change, so wake it.
    ctx.wake(ObjectRef::from(successor));
    Ok(Some(label))
}

/// Whether `successor`, which does not hold `target`, could take it over: its claim records no
/// other membership, its credentials are not the member's, reach this very Glance and see the
/// membership. A transient failure to tell is an `Err`.
async fn can_take(successor: &ImageAccess, target: &Membership, label: &str, ctx: &Context) -> Result<bool, Problem> {
    if successor.claim().is_some_and(|claim| !claim.same(target)) {
        // Its claim records another membership it may hold: not overwritten.
        return Ok(false);
    }
    let transient = |problem: Problem| match problem {
        Problem::Transient { .. } => Err(problem),
        _ => Ok(false),
    };
    let creds = match Resolved::of(successor, ctx).await {
        Ok(creds) => creds,
        Err(problem) => return transient(problem),
    };
    if creds.caller.is(&target.member_id) {
        // It would see the membership, and never be able to remove it.
        return Ok(false);
    }
    let unavailable = |e: &OpenStackError| Problem::openstack(e, Step::ObserveMember, target, label);
    let located = creds
        .locate(
            target.image_id.clone(),
            target.member_id.clone(),
            successor.spec.region.clone(),
        )
        .await;
    let glance = match located {
        Ok((reached, glance)) if reached.same(target) => glance,
        // Another Glance: another membership.
        Ok(_) => return Ok(false),
        Err(e) if e.is_transient() => return Err(unavailable(&e)),
        Err(_) => return Ok(false),
    };
    match glance.show_member(&target.image_id, &target.member_id).await {
        Ok(_) => {}
        Err(e) if e.is_transient() => return Err(unavailable(&e)),
        // Its credentials cannot see the membership: it could not remove it either.
        Err(_) => return Ok(false),
    }
    Ok(true)
}

/// Removes `target` from Glance with the object's credentials. A "not found" or a refusal is
/// "gone" only on the word of credentials that could see it ([`witness_gone`]); a refusal on an
/// image that is not shared now leaves member rows that grant access again once it is, so it
/// waits; one by credentials that may not remove members of a shared image says whose are
/// needed.
async fn remove(
    object: &ImageAccess,
    target: &Membership,
    creds: &Resolved,
    ctx: &Context,
) -> Result<Released, Problem> {
    let secret = &creds.secret;
    let fail = |e: &OpenStackError| Problem::openstack(e, Step::RemoveMember, target, secret);
    let glance = creds.reach(target).await?;
    // As for a create: no list read across the removal is kept.
    ctx.member_lists.wrote(&target.image_id);
    let removed = glance.delete_member(&target.image_id, &target.member_id).await;
    if may_have_written(&removed) {
        ctx.member_lists.wrote(&target.image_id);
    }
    let refused = match removed {
        Ok(()) => return Ok(Released::Undone),
        Err(e) if e.is_not_found() || e.http_kind() == Some(HttpErrorKind::Forbidden) => e,
        Err(e) => return Err(fail(&e)),
    };
    if object.made_nothing(target) {
        return Ok(Released::NothingToUndo(format!(
            "Glance refused what it tried on the membership ({target}), so it changed nothing there"
        )));
    }
    if refused.is_not_found() {
        return witness_gone(&glance, &creds.caller, target, false, secret)
            .await
            .map(|()| Released::AlreadyGone);
    }
    // A 403 alone does not say whether access remains: the image tells.
    match glance.show_image(&target.image_id).await {
        Ok(image) if image.visibility == "shared" => Err(Problem::removal_forbidden(
            target,
            image.owner.as_deref(),
            creds.caller.project.as_deref(),
            secret,
        )),
        Ok(image) => Err(Problem::no_longer_shared(target, &image.visibility, secret)),
        Err(read) if read.is_not_found() => Err(Problem::hidden(target, &creds.caller, None, secret)),
        Err(read) => Err(fail(&read)),
    }
}
