//! The end of every reconcile: the status written when it changed, events on transitions, and
//! the conditions of a deletion that cannot finish.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::problem::Problem;
use super::reconcile::finish;
use super::{Context, Error, Kind, Next, status};
use crate::api::Membership;
use crate::runtime::{FIELD_MANAGER, Happened, publish};

/// How many write races in a row pass without a status: the next one is reported.
const QUIET_RACES: u32 = 3;

/// The end of every reconcile: writes the status `outcome` gives (when it changed), publishes
/// the events of what was done and of a problem entered, and says what happens next.
pub async fn report<K: Kind>(
    object: &K,
    api: &Api<K>,
    ctx: &Context,
    desired: &Membership,
    outcome: status::Outcome,
    events: Vec<Happened>,
) -> Result<Next, Error> {
    let uid = object.uid().unwrap_or_default();
    if outcome.problem.as_ref().is_some_and(Problem::is_write_race) && ctx.tracker.failures(&uid) < QUIET_RACES {
        // What this look saw is older than the object: so would be a status drawn from it
        // (Ready False for a race nobody needs to hear of). What it did is still told. A race
        // lost look after look is no passing lag: it shows (another writer fights the operator).
        for event in events {
            publish(&ctx.events, object, event).await;
        }
        return finish(ctx, outcome.problem, object.resync_period(ctx.settings.resync_period));
    }
    let previous: Vec<Condition> = object
        .membership_status()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    if let Some(next) = object.next_status(desired, &outcome, ctx.clock.timestamp()) {
        patch_status(api, object, &next).await?;
    }
    for event in events {
        publish(&ctx.events, object, event).await;
    }
    publish_problem_transition(ctx, object, &previous, outcome.problem.as_ref()).await;
    finish(ctx, outcome.problem, object.resync_period(ctx.settings.resync_period))
}

/// A deletion that cannot finish: the finalizer stays; the status and a Warning say why, and
/// the kind's hint how to let go without waiting for it.
pub async fn deletion_blocked<K: Kind>(
    object: &K,
    api: &Api<K>,
    ctx: &Context,
    target: &Membership,
    problem: Problem,
    events: Vec<Happened>,
) -> Result<Next, Error> {
    let problem = match problem {
        Problem::Stalled { reason, message } if !message.contains("deletionPolicy") => Problem::Stalled {
            reason,
            message: format!(
                "{message}. The object is being deleted and waits for this; {}",
                K::ORPHAN_HINT
            ),
        },
        other => other,
    };
    // What was done before the block is told even if the status write fails.
    for event in events {
        publish(&ctx.events, object, event).await;
    }
    let outcome = status::Outcome {
        image: None,
        applied: object.applied().cloned(),
        observation: status::Observation::Unknown,
        problem: Some(problem),
    };
    report(object, api, ctx, target, outcome, Vec::new()).await
}

/// Writes the status by server-side apply (the operator owns the whole status).
pub async fn patch_status<K>(api: &Api<K>, object: &K, status: &impl Serialize) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    match api
        .patch_status(
            &object.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone while we worked (its finalizer was removed by hand): nothing to report to.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// An event when the object enters a problem it was not in already (events on transitions
/// only: a stalled object re-checked every few minutes stays quiet): a Warning, or a Normal
/// event for a wait that needs nobody.
async fn publish_problem_transition<K: Kind>(
    ctx: &Context,
    object: &K,
    previous: &[Condition],
    problem: Option<&Problem>,
) {
    let Some(problem) = problem else { return };
    let before = previous.iter().find(|c| c.type_ == status::READY);
    let same = before.is_some_and(|c| c.status == "False" && c.reason == problem.reason());
    if !same {
        let happened = if matches!(problem, Problem::Waiting { .. }) {
            Happened::normal(problem.reason(), problem.message().to_string())
        } else {
            Happened::warning(problem.reason(), problem.message().to_string())
        };
        publish(&ctx.events, object, happened).await;
    }
}
