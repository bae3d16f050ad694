//! The status an object should have after a reconcile: a pure function of the previous status,
//! what the reconcile observed and did, and the time (given, so tests are deterministic).
//!
//! Conditions follow kstatus: `Ready` summarises, `Reconciling` is True only while a retry is in
//! flight, `Stalled` only when a human must act. A condition keeps its lastTransitionTime while
//! its status stays the same, and [`differs`] ignores those times, so a steady object is never
//! written again.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::problem::Problem;
use crate::api::{ImageAccessStatus, MemberStatus, Membership};
use crate::openstack::{Image, Member};

pub const READY: &str = "Ready";
/// The reason of an object that waits for another object managing the same membership.
pub const MANAGED_ELSEWHERE: &str = "MembershipManagedElsewhere";
/// The reason of an object that sets a member status another object already sets.
pub const STATUS_CONFLICT: &str = "MemberStatusConflict";
/// The reason of an ImageAccessAccept whose image is not shared with its member yet.
pub const WAITING_FOR_SHARE: &str = "WaitingForShare";
pub const RECONCILING: &str = "Reconciling";
/// Of an object that only observes (`managementPolicy: Observe`): whether Glance shows the
/// membership as the spec describes it. Managed objects have none: they make it so.
pub const IN_SYNC: &str = "InSync";
pub const STALLED: &str = "Stalled";

/// What the reconcile knows about the member in Glance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// It failed before it could look (or while removing): keep what the status says.
    Unknown,
    /// Glance has no such member.
    Absent,
    Present(Member),
}

/// What a reconcile achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The membership now in Glance under this object's management.
    pub applied: Option<Membership>,
    pub observation: Observation,
    pub problem: Option<Problem>,
    /// What the member may see of the image, when the reconcile read it.
    pub image: Option<Image>,
}

/// The status after a reconcile of `desired` (asking for `desired_status`) with `outcome`; with
/// `observe_only`, of an object that only reads (Ready says the membership is there, InSync
/// whether it is as the spec describes it).
pub fn next(
    previous: &ImageAccessStatus,
    generation: Option<i64>,
    desired: &Membership,
    desired_status: Option<MemberStatus>,
    observe_only: bool,
    outcome: &Outcome,
    now: jiff::Timestamp,
) -> ImageAccessStatus {
    let mut status = previous.clone();
    status.observed_generation = generation;
    status.applied = outcome.applied.clone();
    match &outcome.observation {
        Observation::Unknown => {}
        Observation::Absent => {
            status.member_status = None;
            status.created_at = None;
            status.updated_at = None;
            status.schema = None;
        }
        Observation::Present(member) => {
            status.member_status = Some(member.status);
            status.created_at = Some(member.created_at.clone());
            status.updated_at = Some(member.updated_at.clone());
            status.schema = member.schema.clone();
        }
    }
    let conditions = &mut status.conditions;
    match (&outcome.problem, &outcome.observation) {
        (Some(Problem::Stalled { reason, message }), _) => {
            set_condition(conditions, READY, "False", reason, message, generation, now);
            set_condition(
                conditions,
                RECONCILING,
                "False",
                reason,
                "waiting for a change to the object or its Secret",
                generation,
                now,
            );
            set_condition(conditions, STALLED, "True", reason, message, generation, now);
        }
        (Some(Problem::Waiting { reason, message }), _) => {
            set_condition(conditions, READY, "False", reason, message, generation, now);
            set_condition(conditions, RECONCILING, "True", reason, message, generation, now);
            set_condition(conditions, STALLED, "False", reason, "", generation, now);
        }
        (Some(Problem::Transient { reason, message, .. }), _) => {
            set_condition(conditions, READY, "False", reason, message, generation, now);
            set_condition(
                conditions,
                RECONCILING,
                "True",
                "RetryingAfterError",
                message,
                generation,
                now,
            );
            set_condition(conditions, STALLED, "False", reason, "", generation, now);
        }
        (None, Observation::Present(member)) if observe_only => {
            let message = format!(
                "image {} is shared with member {} (member status: {}); managementPolicy is Observe: the operator only reads it",
                desired.image_id, desired.member_id, member.status
            );
            set_condition(conditions, READY, "True", OBSERVED, &message, generation, now);
            set_condition(conditions, RECONCILING, "False", OBSERVED, "", generation, now);
            set_condition(conditions, STALLED, "False", OBSERVED, "", generation, now);
        }
        (None, Observation::Present(member)) if desired_status.is_none_or(|s| s == member.status) => {
            let message = format!(
                "image {} is shared with member {} (member status: {})",
                desired.image_id, desired.member_id, member.status
            );
            set_condition(conditions, READY, "True", "MemberReady", &message, generation, now);
            set_condition(conditions, RECONCILING, "False", "MemberReady", "", generation, now);
            set_condition(conditions, STALLED, "False", "MemberReady", "", generation, now);
        }
        (None, _) => {
            // Only reachable if Glance answered success but shows another state: look again.
            let message = "Glance does not show the membership as asked yet";
            set_condition(conditions, READY, "False", "MemberNotReady", message, generation, now);
            set_condition(
                conditions,
                RECONCILING,
                "True",
                "MemberNotReady",
                message,
                generation,
                now,
            );
            set_condition(conditions, STALLED, "False", "MemberNotReady", "", generation, now);
        }
    }
    if observe_only {
        let (in_sync, reason, message) = drift(desired, desired_status, &outcome.observation);
        set_condition(conditions, IN_SYNC, in_sync, reason, &message, generation, now);
    } else if outcome.applied.is_none() && conditions.iter().any(|c| c.type_ == IN_SYNC) {
        // Switched from Observe, and not holding it yet (a look that stopped before Glance):
        // kept, as the mark that the first look that gets there adopts with reads only.
        let message =
            "managementPolicy is Managed now: the first look that reaches Glance adopts what exists with reads only";
        set_condition(conditions, IN_SYNC, "Unknown", SWITCHING, message, generation, now);
    } else {
        conditions.retain(|c| c.type_ != IN_SYNC);
    }
    status
}

/// The reason of an observed membership's Ready.
const OBSERVED: &str = "Observed";
/// The reason of the InSync an object keeps from Observe until it adopts as Managed.
const SWITCHING: &str = "SwitchingToManaged";

/// The InSync condition of an object that only observes: status, reason and what differs.
fn drift(
    desired: &Membership,
    desired_status: Option<MemberStatus>,
    observation: &Observation,
) -> (&'static str, &'static str, String) {
    const TO_APPLY: &str = "managementPolicy is Observe, so the operator changes nothing: set it to Managed to make Glance follow the spec";
    match observation {
        Observation::Present(member) => match desired_status {
            Some(wanted) if wanted != member.status => (
                "False",
                "MemberStatusDiffers",
                format!(
                    "Glance shows member status {} for {desired}, the spec says {wanted}; {TO_APPLY}",
                    member.status
                ),
            ),
            _ => (
                "True",
                "InSync",
                format!("Glance shows {desired} as the spec describes it"),
            ),
        },
        // What to do is the kind's (Ready says it): an owner's object may create it, a
        // member's cannot.
        Observation::Absent => (
            "False",
            "MemberNotFound",
            format!("Glance has no membership {desired}; managementPolicy is Observe, so the operator changes nothing"),
        ),
        Observation::Unknown => (
            "Unknown",
            "NotObserved",
            "the membership could not be read: Ready says why".to_string(),
        ),
    }
}

/// Whether writing `next` would change anything but condition transition times.
pub fn differs(previous: Option<&ImageAccessStatus>, next: &ImageAccessStatus) -> bool {
    let Some(previous) = previous else { return true };
    let without_conditions = |s: &ImageAccessStatus| ImageAccessStatus {
        conditions: Vec::new(),
        ..s.clone()
    };
    without_conditions(previous) != without_conditions(next) || !same_conditions(&previous.conditions, &next.conditions)
}

/// Whether two lists of conditions say the same, transition times and order aside.
pub fn same_conditions(a: &[Condition], b: &[Condition]) -> bool {
    let strip = |conditions: &[Condition]| {
        let mut conditions = conditions.to_vec();
        for c in &mut conditions {
            c.last_transition_time = Time(jiff::Timestamp::UNIX_EPOCH);
        }
        conditions.sort_by(|x, y| x.type_.cmp(&y.type_));
        conditions
    };
    strip(a) == strip(b)
}

/// Sets the condition `type_`, keeping its lastTransitionTime while its status stays.
pub(super) fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    // Condition messages are bounded (32768 in metav1.Condition); ours are short, but Glance's
    // text is quoted in them.
    let message: String = message.chars().take(2048).collect();
    let condition = Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time: Time(now),
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            let last_transition_time = if existing.status == status {
                existing.last_transition_time.clone()
            } else {
                Time(now)
            };
            *existing = Condition {
                last_transition_time,
                ..condition
            };
        }
        None => conditions.push(condition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> jiff::Timestamp {
        s.parse().expect("timestamp")
    }

    fn desired() -> Membership {
        Membership {
            image_id: "img".into(),
            member_id: "mem".into(),
            region: None,
            ..Membership::default()
        }
    }

    fn member(status: MemberStatus) -> Member {
        Member {
            member_id: "mem".into(),
            image_id: "img".into(),
            status,
            created_at: "2026-11-28T13:03:47Z".into(),
            updated_at: "2026-11-28T13:05:00Z".into(),
            schema: Some("/v2/schemas/member".into()),
        }
    }

    fn cond<'a>(s: &'a ImageAccessStatus, type_: &str) -> &'a Condition {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition present")
    }

    fn ok(member: Member) -> Outcome {
        Outcome {
            image: None,
            applied: Some(desired()),
            observation: Observation::Present(member),
            problem: None,
        }
    }

    #[test]
    fn ready_copies_glance_timestamps_and_status() {
        let now = t("2026-11-28T14:00:00Z");
        let s = next(
            &ImageAccessStatus::default(),
            Some(1),
            &desired(),
            None,
            false,
            &ok(member(MemberStatus::Pending)),
            now,
        );
        assert_eq!(cond(&s, READY).status, "True");
        assert_eq!(cond(&s, RECONCILING).status, "False");
        assert_eq!(cond(&s, STALLED).status, "False");
        assert_eq!(s.member_status, Some(MemberStatus::Pending));
        assert_eq!(s.created_at.as_deref(), Some("2026-11-28T13:03:47Z"));
        assert_eq!(s.updated_at.as_deref(), Some("2026-11-28T13:05:00Z"));
        assert_eq!(s.schema.as_deref(), Some("/v2/schemas/member"));
        assert_eq!(s.applied, Some(desired()));
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(cond(&s, READY).observed_generation, Some(1));
    }

    #[test]
    fn status_table() {
        let now = t("2026-11-28T14:00:00Z");
        let stalled = Problem::Stalled {
            reason: "ImageNotShared",
            message: "make it shared".into(),
        };
        let transient = Problem::Transient {
            reason: "OpenStackUnavailable",
            message: "503".into(),
            retry_after: None,
        };
        // (name, desired status, outcome, expected Ready, Reconciling, Stalled, Ready reason)
        type Row<'a> = (
            &'a str,
            Option<MemberStatus>,
            Outcome,
            &'a str,
            &'a str,
            &'a str,
            &'a str,
        );
        let rows: Vec<Row> = vec![
            (
                "member present",
                None,
                ok(member(MemberStatus::Pending)),
                "True",
                "False",
                "False",
                "MemberReady",
            ),
            (
                "member present with the asked status",
                Some(MemberStatus::Accepted),
                ok(member(MemberStatus::Accepted)),
                "True",
                "False",
                "False",
                "MemberReady",
            ),
            (
                "member present with another status",
                Some(MemberStatus::Accepted),
                ok(member(MemberStatus::Pending)),
                "False",
                "True",
                "False",
                "MemberNotReady",
            ),
            (
                "needs a human",
                None,
                Outcome {
                    image: None,
                    applied: None,
                    observation: Observation::Unknown,
                    problem: Some(stalled),
                },
                "False",
                "False",
                "True",
                "ImageNotShared",
            ),
            (
                "transient",
                None,
                Outcome {
                    image: None,
                    applied: Some(desired()),
                    observation: Observation::Unknown,
                    problem: Some(transient),
                },
                "False",
                "True",
                "False",
                "OpenStackUnavailable",
            ),
        ];
        for (name, desired_status, outcome, ready, reconciling, stalled, reason) in rows {
            let s = next(
                &ImageAccessStatus::default(),
                Some(2),
                &desired(),
                desired_status,
                false,
                &outcome,
                now,
            );
            assert_eq!(cond(&s, READY).status, ready, "{name}");
            assert_eq!(cond(&s, RECONCILING).status, reconciling, "{name}");
            assert_eq!(cond(&s, STALLED).status, stalled, "{name}");
            assert_eq!(cond(&s, READY).reason, reason, "{name}");
        }
    }

    #[test]
    fn unknown_observation_keeps_what_glance_said_last_and_absent_clears_it() {
        let now = t("2026-11-28T14:00:00Z");
        let ready = next(
            &ImageAccessStatus::default(),
            Some(1),
            &desired(),
            None,
            false,
            &ok(member(MemberStatus::Accepted)),
            now,
        );
        let transient = Outcome {
            image: None,
            applied: Some(desired()),
            observation: Observation::Unknown,
            problem: Some(Problem::Transient {
                reason: "OpenStackUnavailable",
                message: "down".into(),
                retry_after: None,
            }),
        };
        let after = next(&ready, Some(1), &desired(), None, false, &transient, now);
        assert_eq!(after.member_status, Some(MemberStatus::Accepted));
        let gone = Outcome {
            image: None,
            applied: None,
            observation: Observation::Absent,
            problem: None,
        };
        let after = next(&ready, Some(1), &desired(), None, false, &gone, now);
        assert_eq!(after.member_status, None);
        assert_eq!(after.created_at, None);
    }

    #[test]
    fn steady_object_is_not_written_again_and_transition_times_stay() {
        let first = t("2026-11-28T14:00:00Z");
        let later = t("2026-11-28T14:10:00Z");
        let s1 = next(
            &ImageAccessStatus::default(),
            Some(1),
            &desired(),
            None,
            false,
            &ok(member(MemberStatus::Pending)),
            first,
        );
        let s2 = next(
            &s1,
            Some(1),
            &desired(),
            None,
            false,
            &ok(member(MemberStatus::Pending)),
            later,
        );
        assert!(!differs(Some(&s1), &s2), "nothing changed, nothing to write");
        assert_eq!(cond(&s2, READY).last_transition_time, Time(first));
        let mut updated = member(MemberStatus::Pending);
        updated.updated_at = "2026-11-28T14:09:00Z".into();
        let s3 = next(&s2, Some(1), &desired(), None, false, &ok(updated), later);
        assert!(differs(Some(&s2), &s3), "Glance's updated_at changed");
        let s4 = next(
            &s3,
            Some(2),
            &desired(),
            None,
            false,
            &ok(member(MemberStatus::Pending)),
            later,
        );
        assert!(differs(Some(&s3), &s4), "a new generation is recorded");
    }

    #[test]
    fn a_status_flip_moves_the_transition_time() {
        let first = t("2026-11-28T14:00:00Z");
        let later = t("2026-11-28T14:10:00Z");
        let ready = next(
            &ImageAccessStatus::default(),
            Some(1),
            &desired(),
            None,
            false,
            &ok(member(MemberStatus::Pending)),
            first,
        );
        let stalled = Outcome {
            image: None,
            applied: None,
            observation: Observation::Unknown,
            problem: Some(Problem::Stalled {
                reason: "ImageNotShared",
                message: "m".into(),
            }),
        };
        let s = next(&ready, Some(1), &desired(), None, false, &stalled, later);
        assert_eq!(cond(&s, READY).last_transition_time, Time(later));
        assert_eq!(cond(&s, STALLED).last_transition_time, Time(later));
    }
}
