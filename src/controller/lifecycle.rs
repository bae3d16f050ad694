//! One membership lifecycle for every kind that holds one.
//!
//! Applying: resolve the credentials → let go of what the spec no longer names → may the object
//! hold the membership (one manager, one setter, credentials that can act) → claim it (holder
//! recorded) → the kind acts in Glance → record and report. Deleting: for every membership the
//! object holds, leave it (Orphan), hand it over, or undo it, then drop the finalizer.
//!
//! The decisions that destroy or hand over are made here and nowhere else:
//! - **Replace?** Only when the spec names another membership: another image, member or Glance
//!   endpoint ([`Membership::same`]). A region name that resolves to the same endpoint is the
//!   same membership.
//! - **Orphan?** Asked first, and needs no OpenStack call ([`Kind::orphans`]).
//! - **Who takes it over?** [`Kind::successor`]; a transient failure to tell retries, it never
//!   means "nobody".
//! - **Gone?** Only from credentials that could see it ([`witness_gone`]): an admin, the image's
//!   owner, or (for its own membership) the member. A "not found" to anyone else, or a refusal on
//!   an image that is not shared now, is *hidden*: the finalizer stays, Stalled, with both ways
//!   out.
//! - **Never made?** A claim made in a look whose Glance call was refused goes at once: the
//!   object holds nothing. A claim that stays may have been acted on, and is undone as held;
//!   [`Kind::made_nothing`] is only what the claim's recorded holder proves (credentials that
//!   could not have done it).

use kube::{Api, ResourceExt};

use super::holding::{self, Resolved, claim, let_go_finalizer, release_claim};
use super::problem::{Problem, Step};
use super::report::{deletion_blocked, report};
use super::status::{MANAGED_ELSEWHERE, Observation, Outcome, READY, STALLED, STATUS_CONFLICT};
use super::{Context, Error, Kind, Next, refs};
use crate::api::{Managed, Membership};
use crate::openstack::{Caller, Glance};
use crate::runtime::tracker::Fingerprint;
use crate::runtime::{Happened, patch_metadata_if, publish};

/// What letting go of a membership did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released {
    /// Undone in Glance: removed, or set rejected.
    Undone,
    /// It was already as letting go leaves it (rejected), seen by its credentials.
    AlreadyUndone,
    /// Gone from Glance, as credentials that could see it say.
    AlreadyGone,
    /// The object never changed it in Glance (its attempts were refused): nothing to undo.
    NothingToUndo(String),
    /// Left to the object that takes it over (`namespace/name`).
    HandedOver(String),
    /// Left in Glance, as `deletionPolicy: Orphan` asks.
    Orphaned,
}

/// Why a membership is let go of.
#[derive(Debug, Clone, Copy)]
pub enum Why<'a> {
    /// The object is deleted.
    Deleted,
    /// The spec names another membership now.
    Replaced { by: &'a Membership },
}

/// The reconcile of an object that is not being deleted: Glance and the status brought to
/// the spec.
pub async fn apply<K: Kind>(object: &K, api: &Api<K>, ctx: &Context) -> Result<Next, Error> {
    let mut events = Vec::new();
    let (desired, outcome, named) = converge(object, api, ctx, &mut events).await?;
    // The object with the names it resolved in this look: its status records them.
    report(named.as_ref().unwrap_or(object), api, ctx, &desired, outcome, events).await
}

/// An outcome that stopped at `problem`, keeping what the status records.
pub(super) fn stopped(applied: Option<Membership>, problem: Problem) -> Outcome {
    Outcome {
        image: None,
        applied,
        observation: Observation::Unknown,
        problem: Some(problem),
    }
}

/// Brings Glance to the spec (or, for an object that only observes, reads it); returns the
/// membership it names (as far as the credentials could resolve it), the outcome, and the object
/// with the names it resolved (imageRef, memberRef) when it resolved them. Only a failed
/// Kubernetes write that nothing can report is an `Err`.
async fn converge<K: Kind>(
    object: &K,
    api: &Api<K>,
    ctx: &Context,
    events: &mut Vec<Happened>,
) -> Result<(Membership, Outcome, Option<K>), Error> {
    let unresolved = holding::unresolved(object);
    let applied = if object.observes() {
        if let Err(problem) = stop_managing(object, api, ctx, events).await {
            return Ok((unresolved, stopped(None, problem), None));
        }
        None
    } else {
        object.applied().cloned()
    };
    let creds = match Resolved::of(object, ctx).await {
        Ok(creds) => creds,
        Err(problem) => return Ok((unresolved, stopped(applied, problem), None)),
    };
    // Names not resolved yet (new, or changed): what the spec names is unknown, so nothing held
    // is let go of or replaced until they resolve.
    let named_now = match refs::resolve(object, &creds).await {
        Ok(resolved) => resolved.map(|resolved| object.with_resolved(resolved)),
        Err(problem) => return Ok((unresolved, stopped(applied, problem), None)),
    };
    let named = named_now.as_ref().unwrap_or(object);
    let (desired, outcome) = if named.observes() {
        match locate(named, &creds).await {
            Ok(desired) => {
                let outcome = K::observe(named, &desired, &creds, ctx).await;
                (desired, outcome)
            }
            Err((desired, problem)) => (desired, stopped(None, problem)),
        }
    } else {
        converge_named(named, api, ctx, events, creds).await?
    };
    Ok((desired, outcome, named_now))
}

/// The membership the object names, where its credentials reach it; else the membership as far
/// as it is known, and why it could not be located.
async fn locate<K: Kind>(object: &K, creds: &Resolved) -> Result<Membership, (Membership, Problem)> {
    let member = K::member(object, creds).map_err(|problem| (holding::unresolved(object), problem))?;
    let named = object
        .named()
        .filter(|named| named.member_id == member)
        .unwrap_or_else(|| Membership::named(object.image_id(), member.clone(), None));
    let region = named.region.clone().or_else(|| listed_region_held(object, creds));
    match creds.locate(named.image_id.clone(), member, region).await {
        Ok((desired, _)) => Ok(desired),
        Err(e) => {
            let problem = Problem::openstack(&e, Step::ObserveMember, &named, &creds.secret);
            Err((named, problem))
        }
    }
}

/// With no region in the spec, and a cloud entry whose region is only the first of its
/// `regions` list: the region of the membership the object holds, when it is one of that list.
/// The list's first region is a default, not a choice: an entry read before `regions` was (any
/// region of the catalog), or a list reordered, must not replace (remove) a membership.
fn listed_region_held<K: Kind>(object: &K, creds: &Resolved) -> Option<String> {
    let listed = creds.cloud.region_from_list.as_ref()?;
    object
        .held_memberships()
        .into_iter()
        .filter_map(|held| held.region)
        .find(|region| listed.contains(region))
}

/// Managed → Observe (`managementPolicy: Observe`): the object stops managing what it held with
/// no OpenStack call: each membership stays in Glance as it is, and the claim and the finalizer
/// go, so its deletion calls nothing and it blocks no Managed object.
async fn stop_managing<K: Kind>(
    object: &K,
    api: &Api<K>,
    ctx: &Context,
    events: &mut Vec<Happened>,
) -> Result<(), Problem> {
    if !object.has_finalizer() && object.claim().is_none() {
        return Ok(());
    }
    let finalizers = without_finalizer(object);
    if let Err(e) = release_observing(api, object, &finalizers).await {
        let what = "the release of the finalizer and the claim (managementPolicy is Observe)";
        return Err(holding::patch_problem(api, object.meta(), e, what).await);
    }
    // The echo of this write is no change to look at again.
    let mut expected = object.meta().clone();
    expected.finalizers = Some(finalizers);
    let uid = object.uid().unwrap_or_default();
    ctx.tracker
        .note_written(&uid, Fingerprint::of(&expected, crate::api::FINALIZER));
    ctx.refused_claims().remove(&uid);
    events.extend(object.held_memberships().iter().map(stopped_managing));
    Ok(())
}

fn without_finalizer<K: Kind>(object: &K) -> Vec<String> {
    object
        .finalizers()
        .iter()
        .filter(|f| *f != crate::api::FINALIZER)
        .cloned()
        .collect()
}

/// Drops the finalizer and the claim of an object that observes, as long as it still does: one
/// switched back to Managed meanwhile (and maybe deleted) keeps them, and is looked at again.
async fn release_observing<K: Kind>(api: &Api<K>, object: &K, finalizers: &[String]) -> Result<K, kube::Error> {
    let still_observing = ("/spec/managementPolicy", serde_json::json!("Observe"));
    patch_metadata_if(
        api,
        object.meta(),
        finalizers,
        &[(crate::api::CLAIM_ANNOTATION, None)],
        &[still_observing],
    )
    .await
}

/// The event of a membership an object stopped managing because it only observes now.
fn stopped_managing(held: &Membership) -> Happened {
    Happened::normal(
        "ManagementStopped",
        format!("managementPolicy is Observe: stopped managing the membership ({held}) and left it in Glance as it is"),
    )
}

/// [`converge`] once the spec's names are resolved.
async fn converge_named<K: Kind>(
    object: &K,
    api: &Api<K>,
    ctx: &Context,
    events: &mut Vec<Happened>,
    creds: Resolved,
) -> Result<(Membership, Outcome), Error> {
    let applied = object.applied().cloned();
    let desired = match locate(object, &creds).await {
        Ok(desired) => desired,
        Err((named, problem)) => return Ok((named, stopped(applied, problem))),
    };
    let applied = match applied {
        Some(applied) => Some(creds.placed(applied).await),
        None => None,
    };

    // What the object holds and the spec no longer names: let go first, as Terraform's
    // "forces a new resource".
    let mut let_go_of_claim = false;
    let mut let_go_of_any = false;
    for held in object.held_memberships() {
        let old = creds.placed(held).await;
        if old.same(&desired) {
            continue;
        }
        match let_go(object, &old, Some(&creds), ctx).await {
            Ok(released) => events.extend(object.released(&old, &released, Why::Replaced { by: &desired })),
            Err(problem) => return Ok((desired, stopped(applied, problem))),
        }
        let_go_of_claim |= object.claim().is_some_and(|claim| claim.same(&old));
        let_go_of_any = true;
    }
    let applied = applied.filter(|applied| applied.same(&desired));
    // A claim of what was just let go of goes now, before anything below can stop the look: left
    // there, a later look would decide about that membership again (undo what was orphaned or
    // handed over). The object as released is what the writes below start from.
    let released = if let_go_of_claim {
        match release_claim(api, object).await {
            Ok(written) => {
                ctx.refused_claims().remove(&object.uid().unwrap_or_default());
                // The object as this look saw it, with the metadata the release wrote: the API's
                // answer may carry a spec edited meanwhile, which this look must not act on.
                let mut released = object.clone();
                let (meta, fresh) = (released.meta_mut(), written.meta());
                meta.annotations = fresh.annotations.clone();
                meta.finalizers = fresh.finalizers.clone();
                meta.resource_version = fresh.resource_version.clone();
                Some(released)
            }
            Err(Error::Kube(e)) => {
                // Told even when it is a race: the membership was let go of already.
                let what = "the release of the claim of the previous membership";
                let problem = holding::patch_problem(api, object.meta(), e, what).await.reported();
                return Ok((desired, stopped(applied, problem)));
            }
            Err(other) => return Err(other),
        }
    } else {
        None
    };
    let object = released.as_ref().unwrap_or(object);

    if let Err(refusal) = K::may_hold(object, &desired, &creds, ctx).await {
        if refusal.drop_claim {
            if object.claim().is_some() {
                release_claim(api, object).await?;
                ctx.refused_claims().remove(&object.uid().unwrap_or_default());
            }
            return Ok((desired, stopped(None, refusal.problem)));
        }
        return Ok((desired, stopped(applied, refusal.problem)));
    }

    // Who made or adopted it stays recorded while other credentials look after it: the holder
    // the status records it applied with, else the claim's.
    let claimed = match object.claim() {
        Some(claim) => Some(creds.placed(claim).await).filter(|claim| claim.same(&desired)),
        None => None,
    };
    // Refused last time and holding nothing: a read first, so that an object Glance keeps
    // refusing writes nothing (no claim made and released at every look).
    if claimed.is_none()
        && applied.is_none()
        && refused_before(object, &desired, K::REFUSALS)
        && let Some(problem) = K::still_refused(object, &desired, &creds).await
    {
        return Ok((desired, stopped(None, problem)));
    }
    // A holder is recorded: a project, or a system-scoped admin (no project).
    let previous = applied
        .clone()
        .filter(|a| a.project.is_some() || a.admin)
        .or(claimed.clone());
    let record = desired.held_as(previous.as_ref());
    let written = match claim(api, object, &record, ctx).await {
        Ok(written) => written,
        // A race after a let-go is not quiet: the status must stop naming what was let go of,
        // or a later look decides about it again (removes what Orphan left).
        Err(problem) if let_go_of_any => return Ok((record, stopped(applied, problem.reported()))),
        Err(problem) => return Ok((record, stopped(applied, problem))),
    };
    let outcome = K::act(object, &record, applied, &creds, ctx, events).await;
    release_if_refused(object, api, ctx, &record, claimed.as_ref(), written.as_ref(), &outcome).await;
    Ok((record, outcome))
}

/// Claimed in this very look, and Glance refused what it was asked for one of the kind's
/// [`Kind::REFUSALS`] (a refusal changes nothing there): the claim goes, so the object holds
/// nothing, blocks no one and keeps no deletion waiting for credentials that could never have
/// made anything. A claim from an earlier look stays (that look's write may have landed), unless
/// it is this operator's own refused claim whose release could not be written then.
async fn release_if_refused<K: Kind>(
    object: &K,
    api: &Api<K>,
    ctx: &Context,
    record: &Membership,
    claimed: Option<&Membership>,
    written: Option<&K>,
    outcome: &Outcome,
) {
    let uid = object.uid().unwrap_or_default();
    let refused = outcome.applied.is_none()
        && outcome
            .problem
            .as_ref()
            .is_some_and(|p| p.is_stalled() && K::REFUSALS.contains(&p.reason()));
    // Trusted only while the claim on the object is still the one Glance refused.
    let pending = ctx.refused_claims().get(&uid).is_some_and(|m| m.same(record))
        && claimed.is_some_and(|claim| claim.same(record));
    if !refused {
        if pending {
            // Acted under it since: it may have made something now.
            ctx.refused_claims().remove(&uid);
        }
        return;
    }
    if claimed.is_some() && !pending {
        return;
    }
    match release_claim(api, written.unwrap_or(object)).await {
        Ok(_) => {
            ctx.refused_claims().remove(&uid);
        }
        Err(e) => {
            // Remembered: the next look, or the deletion, knows this claim made nothing.
            tracing::debug!(error = %e, "refused claim not released yet");
            ctx.refused_claims().insert(uid, record.clone());
        }
    }
}

/// Lets go of `target`, which `object` holds: leaves it (Orphan), hands it over, or undoes it
/// with the object's credentials (`creds`, resolved here when `None`). `Err` when it stays as
/// it is and the object must wait: a transient failure, or a human must act.
async fn let_go<K: Kind>(
    object: &K,
    target: &Membership,
    creds: Option<&Resolved>,
    ctx: &Context,
) -> Result<Released, Problem> {
    if K::orphans(object, ctx).await? {
        return Ok(Released::Orphaned);
    }
    let uid = object.uid().unwrap_or_default();
    let refused = ctx.refused_claims().get(&uid).cloned();
    // Trusted only while the claim on the object is still the one Glance refused.
    let still = |refused: &Membership| {
        object
            .claim()
            .is_some_and(|claim| claim.same(refused) && claim.project == refused.project)
    };
    if refused.is_some_and(|refused| refused.same(target) && still(&refused)) {
        return Ok(Released::NothingToUndo(
            "Glance refused the look that claimed it, so it changed nothing there".to_string(),
        ));
    }
    if let Some(successor) = K::successor(object, target, ctx).await? {
        return Ok(Released::HandedOver(successor));
    }
    match creds {
        Some(creds) => K::undo(object, target, creds, ctx).await,
        None => match Resolved::of(object, ctx).await {
            Ok(creds) => K::undo(object, target, &creds, ctx).await,
            // Nothing to undo needs no credentials.
            Err(_) if object.made_nothing(target) => Ok(Released::NothingToUndo(
                "its attempts were refused, so it changed nothing".to_string(),
            )),
            Err(problem) => Err(problem),
        },
    }
}

/// The reconcile of an object being deleted: every membership it holds is let go of as its
/// policy says, then the finalizer goes. Anything that keeps a membership as it is without the
/// policy's word keeps the finalizer too, Stalled with how to let go.
pub async fn cleanup<K: Kind>(object: &K, api: &Api<K>, ctx: &Context) -> Result<Next, Error> {
    if !object.has_finalizer() {
        return Ok(Next::Gone);
    }
    if object.observes() {
        // Switched to Observe while (or before) being deleted: it lets go of what it held with
        // no OpenStack call, as the switch does.
        return match release_observing(api, object, &without_finalizer(object)).await {
            Ok(_) => {
                for held in object.held_memberships() {
                    publish(&ctx.events, object, stopped_managing(&held)).await;
                }
                Ok(Next::Gone)
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(Next::Gone),
            // Switched back meanwhile (the patch's test): looked at again, as Managed.
            Err(e) => Err(Error::Kube(e)),
        };
    }
    let mut events = Vec::new();
    for target in object.held_memberships() {
        match let_go(object, &target, None, ctx).await {
            Ok(released) => events.extend(object.released(&target, &released, Why::Deleted)),
            Err(problem) => return deletion_blocked(object, api, ctx, &target, problem, events).await,
        }
    }
    for event in events {
        publish(&ctx.events, object, event).await;
    }
    let_go_finalizer(api, object).await
}

/// Whether `caller`'s "not found" for `target` is worth believing.
pub enum Witness {
    /// The credentials could see it: it is not there.
    Sees,
    /// They might just not see it; the image's owner, when Glance shows the image to them.
    Blind { image_owner: Option<String> },
}

/// Who could see `target`: an admin sees every image and member; the image's owner sees all its
/// members; with `member_sees_own`, the member sees its own membership. Anyone else might just
/// not see it. A failure to tell is an `Err`, never a verdict.
pub async fn witness(
    glance: &Glance,
    caller: &Caller,
    target: &Membership,
    member_sees_own: bool,
) -> Result<Witness, crate::openstack::OpenStackError> {
    if caller.admin || (member_sees_own && caller.is(&target.member_id)) {
        return Ok(Witness::Sees);
    }
    match glance.show_image(&target.image_id).await {
        Ok(image) if image.owner.as_deref().is_some_and(|owner| caller.is(owner)) => Ok(Witness::Sees),
        Ok(image) => Ok(Witness::Blind {
            image_owner: image.owner,
        }),
        Err(e) if e.is_not_found() => Ok(Witness::Blind { image_owner: None }),
        Err(e) => Err(e),
    }
}

/// Whether a "not found" that `caller` got for `target` means it is gone ([`witness`]); else it
/// is hidden, a Stalled problem that names who made it and both ways out.
pub async fn witness_gone(
    glance: &Glance,
    caller: &Caller,
    target: &Membership,
    member_sees_own: bool,
    secret: &str,
) -> Result<(), Problem> {
    match witness(glance, caller, target, member_sees_own).await {
        Ok(Witness::Sees) => Ok(()),
        Ok(Witness::Blind { image_owner }) => Err(Problem::hidden(target, caller, image_owner.as_deref(), secret)),
        Err(e) => Err(Problem::openstack(&e, Step::ObserveMember, target, secret)),
    }
}

/// Whether the object's last look ended Stalled with one of `reasons` and nothing recorded as
/// applied for `target`: what it tried on `target` was refused. Only for claims written before
/// claims were released on a refusal (an older operator's): the conditions show the last look
/// only, so a write of an earlier look that landed cannot be ruled out; the generation is not
/// compared (a deletion raises it).
pub fn refused_before(object: &impl Managed, target: &Membership, reasons: &[&str]) -> bool {
    !object.applied().is_some_and(|applied| applied.same(target))
        && object.condition(STALLED).is_some_and(|c| c.status == "True")
        && object
            .condition(READY)
            .is_some_and(|ready| reasons.contains(&ready.reason.as_str()))
}

/// Whether `object` proved it can act on `target` or may still: it has it applied, or its
/// last look for its current spec did not end Stalled, or only because another object manages
/// the membership or sets its status (it got that far with its credentials). Objects that cannot
/// act (no Secret, another project's credentials, refused by Glance) never block another object,
/// nor take a membership over.
pub fn able(object: &impl Managed, target: &Membership) -> bool {
    let stalled_now = object.condition(STALLED).is_some_and(|c| {
        c.status == "True"
            && c.observed_generation == object.meta().generation
            && c.reason != MANAGED_ELSEWHERE
            && c.reason != STATUS_CONFLICT
    });
    object.applied().is_some_and(|applied| applied.same(target)) || !stalled_now
}
