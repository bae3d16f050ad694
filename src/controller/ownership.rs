//! One manager per membership. When several objects (in any namespaces) name the same
//! (image, member, region), exactly one may act on it in Glance; the others wait, Stalled, and
//! one of them takes over when the manager goes. Pure: the controller passes the objects the
//! index found.
//!
//! The manager is the object that holds the membership (claimed it before its first Glance
//! call, or has it applied); when two hold it (two operators raced), the one that has it
//! applied, then the older. When nobody holds it yet, the oldest object naming it may claim it,
//! so that objects applied together settle without both touching Glance. Objects that cannot
//! act on the membership take no part (see [`manager`]).

use std::cmp::Ordering;

use kube::api::ObjectMeta;

use crate::api::{ImageAccess, Managed, MemberStatus, Membership};
use crate::controller::lifecycle;
use crate::controller::status::MANAGED_ELSEWHERE;

/// Objects in creation order (then namespace and name, so the order is total).
fn older(a: &ImageAccess, b: &ImageAccess) -> Ordering {
    created_before(&a.metadata, &b.metadata)
}

/// Objects of any kind in creation order (then namespace and name).
fn created_before(a: &ObjectMeta, b: &ObjectMeta) -> Ordering {
    let at = |m: &ObjectMeta| {
        let created = m.creation_timestamp.as_ref().map(|t| t.0);
        (created.is_none(), created)
    };
    at(a)
        .cmp(&at(b))
        .then_with(|| a.namespace.cmp(&b.namespace))
        .then_with(|| a.name.cmp(&b.name))
}

/// An object that sets the member status of a membership: its kind (for the message and the
/// order), its metadata and the status it asks for.
#[derive(Clone, Copy, Debug)]
pub struct Setter<'a> {
    pub kind: &'static str,
    pub meta: &'a ObjectMeta,
    pub status: MemberStatus,
}

/// One setter per member status: of the objects that set the status of one membership (an
/// ImageAccess with spec.status, an ImageAccessAccept), the first created sets it. Creation
/// times have a resolution of a second, so ties are broken by namespace, name, kind and uid, an
/// order every object agrees on. Returns the first setter, named for the message, when it is
/// not `me` and asks for another status than `me` (asking for the same is no conflict).
pub fn status_conflict<'a>(me: Setter<'a>, others: impl IntoIterator<Item = Setter<'a>>) -> Option<String> {
    let order = |a: &Setter, b: &Setter| {
        created_before(a.meta, b.meta)
            .then_with(|| a.kind.cmp(b.kind))
            .then_with(|| a.meta.uid.cmp(&b.meta.uid))
    };
    let is_me = |s: &Setter| s.kind == me.kind && s.meta.uid == me.meta.uid;
    let first = others
        .into_iter()
        .filter(|other| !is_me(other))
        .chain(std::iter::once(me))
        .min_by(order)?;
    (!is_me(&first) && first.status != me.status).then(|| {
        format!(
            "{} {}/{}",
            first.kind,
            first.meta.namespace.as_deref().unwrap_or_default(),
            first.meta.name.as_deref().unwrap_or_default()
        )
    })
}

/// The membership `object` names, with the region its claim resolved when it still names the
/// same image and member (the spec alone does not say which region a cloud defaults to).
pub fn declared(object: &ImageAccess) -> Membership {
    let named = object.named_membership();
    match object.claim() {
        Some(claim)
            if claim.image_id == named.image_id
                && claim.member_id == named.member_id
                && (named.region.is_none() || named.region == claim.region) =>
        {
            claim
        }
        _ => named,
    }
}

/// Whether `object` keeps naming `membership`: not being deleted, and its spec still names it.
/// A holder that does not is leaving, and hands the membership over or removes it.
fn stays_with(object: &ImageAccess, membership: &Membership) -> bool {
    !object.is_deleting() && declared(object).overlaps(membership)
}

/// Whether `object` has `membership` applied: it made or adopted it with credentials Glance
/// accepted, so it is the one that can undo it.
fn proven(object: &ImageAccess, membership: &Membership) -> bool {
    object.applied().is_some_and(|applied| applied.same(membership))
}

/// Which of two holders keeps a membership both hold: the one that has it applied, then the
/// older.
fn keeps_before(a: &ImageAccess, b: &ImageAccess, membership: &Membership) -> Ordering {
    proven(b, membership)
        .cmp(&proven(a, membership))
        .then_with(|| older(a, b))
}

/// Who manages `desired`, which `me` wants to manage: `None` when `me` may, or the other
/// object that does. Only objects that can act take part ([`lifecycle::able`]): one whose
/// credentials cannot act on the membership (no Secret, another project's, refused by Glance)
/// never blocks another, whichever namespace it is in, unless it has the membership applied.
pub fn manager<'a>(
    me: &ImageAccess,
    desired: &Membership,
    others: impl IntoIterator<Item = &'a ImageAccess>,
) -> Option<&'a ImageAccess> {
    let others: Vec<&ImageAccess> = others
        .into_iter()
        .filter(|o| o.metadata.uid != me.metadata.uid && lifecycle::able(*o, desired))
        .collect();
    let first = |candidates: Vec<&'a ImageAccess>| candidates.into_iter().min_by(|a, b| keeps_before(a, b, desired));
    if me.holds(desired) {
        // I hold it: only a holder that stays and keeps it before me wins (two operators
        // raced). A holder that is leaving handed it to me.
        return first(
            others
                .into_iter()
                .filter(|o| {
                    o.holds(desired) && stays_with(o, desired) && keeps_before(o, me, desired) == Ordering::Less
                })
                .collect(),
        );
    }
    // Whoever holds it manages it until it hands it over, even while leaving.
    if let Some(holder) = first(others.iter().copied().filter(|o| o.holds(desired)).collect()) {
        return Some(holder);
    }
    // Nobody holds it yet: the oldest object naming it may claim it.
    others
        .into_iter()
        .filter(|o| stays_with(o, desired))
        .min_by(|a, b| older(a, b))
        .filter(|first| older(first, me) == Ordering::Less)
}

/// The object that takes `membership` over when `leaving` lets go of it: one that stays with
/// it and has it applied, or holds it and can act ([`lifecycle::able`]), or waits for it (it got
/// as far as the ownership check, so its credentials worked). Only one that has it applied is
/// taken at its word; the caller checks the others' credentials against Glance. `None`: nobody
/// will, so letting go means removing it.
pub fn successor<'a>(
    leaving: &ImageAccess,
    membership: &Membership,
    others: impl IntoIterator<Item = &'a ImageAccess>,
) -> Option<&'a ImageAccess> {
    successors(leaving, membership, others).into_iter().next()
}

/// Every object that may take `membership` over when `leaving` lets go of it, the one to ask
/// first first: when one's credentials turn out not to see it, the next is asked.
pub fn successors<'a>(
    leaving: &ImageAccess,
    membership: &Membership,
    others: impl IntoIterator<Item = &'a ImageAccess>,
) -> Vec<&'a ImageAccess> {
    let mut candidates: Vec<&ImageAccess> = others
        .into_iter()
        .filter(|o| o.metadata.uid != leaving.metadata.uid && stays_with(o, membership))
        .filter(|o| {
            proven(o, membership) || (lifecycle::able(*o, membership) && o.holds(membership)) || waits_for_a_manager(o)
        })
        .collect();
    candidates.sort_by(|a, b| keeps_before(a, b, membership));
    candidates
}

/// Whether the object's status for its current generation says it waits for another manager.
fn waits_for_a_manager(object: &ImageAccess) -> bool {
    let current = object.status.as_ref().and_then(|s| s.observed_generation) == object.metadata.generation;
    current
        && object
            .condition("Stalled")
            .is_some_and(|c| c.status == "True" && c.reason == MANAGED_ELSEWHERE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CLAIM_ANNOTATION, ImageAccessStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    const IMAGE: &str = "6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10";

    fn at(name: &str, namespace: &str, second: i64) -> ImageAccess {
        let mut o = ImageAccess::test(name, IMAGE, "m1", "owner");
        o.metadata.namespace = Some(namespace.into());
        o.metadata.creation_timestamp = Some(Time(
            jiff::Timestamp::from_second(1_800_000_000 + second).expect("time"),
        ));
        o
    }

    fn m(region: Option<&str>) -> Membership {
        Membership {
            image_id: IMAGE.into(),
            member_id: "m1".into(),
            region: region.map(str::to_string),
            ..Membership::default()
        }
    }

    fn claimed(mut o: ImageAccess, membership: &Membership) -> ImageAccess {
        o.metadata.annotations.get_or_insert_default().insert(
            CLAIM_ANNOTATION.into(),
            serde_json::to_string(membership).expect("json"),
        );
        o
    }

    fn waiting(mut o: ImageAccess) -> ImageAccess {
        o.status = Some(ImageAccessStatus {
            observed_generation: o.metadata.generation,
            conditions: vec![Condition {
                type_: "Stalled".into(),
                status: "True".into(),
                reason: MANAGED_ELSEWHERE.into(),
                message: String::new(),
                observed_generation: o.metadata.generation,
                last_transition_time: Time(jiff::Timestamp::UNIX_EPOCH),
            }],
            ..Default::default()
        });
        o
    }

    #[test]
    fn manager_table() {
        let r1 = m(Some("R1"));
        let old = at("old", "team-a", 0);
        let new = at("new", "team-b", 10);
        let mut moved_on = old.clone();
        moved_on.spec.image_id = "7d1b2f3c-3c2f-4a69-8b64-5a1d8a2d3b21".into();
        struct Row {
            name: &'static str,
            me: ImageAccess,
            others: Vec<ImageAccess>,
            expect: Option<&'static str>,
        }
        let rows = vec![
            Row {
                name: "alone: manage",
                me: new.clone(),
                others: vec![],
                expect: None,
            },
            Row {
                name: "an older object names it, nobody holds it: wait for the older one",
                me: new.clone(),
                others: vec![old.clone()],
                expect: Some("old"),
            },
            Row {
                name: "the older one: manage",
                me: old.clone(),
                others: vec![new.clone()],
                expect: None,
            },
            Row {
                name: "a newer object holds it: it came first, wait",
                me: old.clone(),
                others: vec![claimed(new.clone(), &r1)],
                expect: Some("new"),
            },
            Row {
                name: "handed to me by an older holder that is leaving: manage",
                me: claimed(new.clone(), &r1),
                others: vec![claimed(old.clone(), &r1).finalized().deleting()],
                expect: None,
            },
            Row {
                name: "an older holder whose spec moved on is leaving too: manage what it handed me",
                me: claimed(new.clone(), &r1),
                others: vec![claimed(moved_on.clone(), &r1)],
                expect: None,
            },
            Row {
                name: "while I only name it, a holder that is leaving still manages it",
                me: new.clone(),
                others: vec![claimed(moved_on.clone(), &r1)],
                expect: Some("old"),
            },
            Row {
                name: "I hold it and a newer one only names it: keep managing",
                me: claimed(new.clone(), &r1),
                others: vec![old.clone()],
                expect: None,
            },
            Row {
                name: "both hold it (a race): the older keeps it",
                me: claimed(new.clone(), &r1),
                others: vec![claimed(old.clone(), &r1)],
                expect: Some("old"),
            },
            Row {
                name: "both hold it, I am older: keep it",
                me: claimed(old.clone(), &r1),
                others: vec![claimed(new.clone(), &r1)],
                expect: None,
            },
            Row {
                name: "an older object being deleted that never held it does not count",
                me: new.clone(),
                others: vec![old.clone().finalized().deleting()],
                expect: None,
            },
            Row {
                name: "an older holder being deleted still holds it until its cleanup is done",
                me: new.clone(),
                others: vec![claimed(old.clone(), &r1).finalized().deleting()],
                expect: Some("old"),
            },
            Row {
                name: "another region is another membership",
                me: new.clone(),
                others: vec![claimed(old.clone(), &m(Some("R2")))],
                expect: None,
            },
        ];
        for row in rows {
            let got = manager(&row.me, &r1, &row.others).map(|o| o.metadata.name.clone().unwrap_or_default());
            assert_eq!(got.as_deref(), row.expect, "{}", row.name);
        }
    }

    #[test]
    fn a_membership_is_handed_over_only_to_an_object_that_waits_for_it() {
        let r1 = m(Some("R1"));
        let leaving = claimed(at("old", "a", 0), &r1);
        let ready_to_take_over = waiting(at("new", "b", 10));
        let stuck_on_credentials = at("stuck", "b", 5);
        assert_eq!(
            successor(&leaving, &r1, [&ready_to_take_over, &stuck_on_credentials])
                .and_then(|o| o.metadata.name.as_deref()),
            Some("new")
        );
        assert!(successor(&leaving, &r1, [&stuck_on_credentials]).is_none());
        assert!(
            successor(&leaving, &r1, [&waiting(at("gone", "b", 1)).finalized().deleting()]).is_none(),
            "not to one that is going too"
        );
        let handed_before = claimed(at("holder", "b", 20), &r1);
        assert_eq!(
            successor(&leaving, &r1, [&handed_before]).and_then(|o| o.metadata.name.as_deref()),
            Some("holder"),
            "one that holds it already"
        );
    }
}
