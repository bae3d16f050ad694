//! What to do, given the spec, the member Glance shows and the membership recorded in the
//! status. Pure: no I/O, no clock; the reconciler executes the plan.

use crate::api::{MemberStatus, Membership};
use crate::openstack::Member;

/// Why a member is about to be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateReason {
    /// Not managed before: a new membership.
    New,
    /// We had created it and it is gone: someone removed it outside Kubernetes.
    Drifted,
}

/// A member status change to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusChange {
    pub from: MemberStatus,
    pub to: MemberStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The membership recorded in the status that the spec no longer names (imageId, memberId
    /// or region changed): removed before anything else, as Terraform's "forces new resource".
    pub remove_previous: Option<Membership>,
    pub create: Option<CreateReason>,
    pub set_status: Option<StatusChange>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.remove_previous.is_none() && self.create.is_none() && self.set_status.is_none()
    }
}

/// The plan for `desired` (with the member status the spec asks for, if any), given the
/// membership the status records as applied and the member Glance shows for `desired`.
pub fn plan(
    desired: &Membership,
    desired_status: Option<MemberStatus>,
    applied: Option<&Membership>,
    observed: Option<&Member>,
) -> Plan {
    let remove_previous = applied.filter(|previous| !previous.same(desired)).cloned();
    let create = match observed {
        Some(_) => None,
        None if applied.is_some_and(|applied| applied.same(desired)) => Some(CreateReason::Drifted),
        None => Some(CreateReason::New),
    };
    // Glance creates every member as pending.
    let current_status = observed.map_or(MemberStatus::Pending, |m| m.status);
    Plan {
        remove_previous,
        create,
        set_status: status_change(desired_status, current_status),
    }
}

/// The status change that brings `current` to what the spec asks, if any.
pub fn status_change(desired: Option<MemberStatus>, current: MemberStatus) -> Option<StatusChange> {
    desired
        .filter(|wanted| *wanted != current)
        .map(|to| StatusChange { from: current, to })
}

#[cfg(test)]
mod tests {
    use super::*;
    use MemberStatus::*;

    fn identity(image: &str, member: &str) -> Membership {
        Membership {
            image_id: image.into(),
            member_id: member.into(),
            region: None,
            ..Membership::default()
        }
    }

    fn member(status: MemberStatus) -> Member {
        Member {
            member_id: "m".into(),
            image_id: "i".into(),
            status,
            created_at: "2026-11-28T13:03:47Z".into(),
            updated_at: "2026-11-28T13:03:47Z".into(),
            schema: Some("/v2/schemas/member".into()),
        }
    }

    #[test]
    fn plan_table() {
        let a = identity("i", "m");
        let old_image = identity("old", "m");
        let other_region = Membership {
            region: Some("R2".into()),
            ..a.clone()
        };
        struct Row<'a> {
            name: &'a str,
            desired_status: Option<MemberStatus>,
            applied: Option<&'a Membership>,
            observed: Option<Member>,
            expect: Plan,
        }
        let rows = [
            Row {
                name: "new object, nothing in Glance: create",
                desired_status: None,
                applied: None,
                observed: None,
                expect: Plan {
                    remove_previous: None,
                    create: Some(CreateReason::New),
                    set_status: None,
                },
            },
            Row {
                name: "member exists already (not ours yet): adopt, nothing to do",
                desired_status: None,
                applied: None,
                observed: Some(member(Pending)),
                expect: Plan {
                    remove_previous: None,
                    create: None,
                    set_status: None,
                },
            },
            Row {
                name: "steady state: nothing to do",
                desired_status: Some(Accepted),
                applied: Some(&a),
                observed: Some(member(Accepted)),
                expect: Plan {
                    remove_previous: None,
                    create: None,
                    set_status: None,
                },
            },
            Row {
                name: "create and accept: status set after create",
                desired_status: Some(Accepted),
                applied: None,
                observed: None,
                expect: Plan {
                    remove_previous: None,
                    create: Some(CreateReason::New),
                    set_status: Some(StatusChange {
                        from: Pending,
                        to: Accepted,
                    }),
                },
            },
            Row {
                name: "create as pending: no status call",
                desired_status: Some(Pending),
                applied: None,
                observed: None,
                expect: Plan {
                    remove_previous: None,
                    create: Some(CreateReason::New),
                    set_status: None,
                },
            },
            Row {
                name: "member deleted by hand: recreate",
                desired_status: None,
                applied: Some(&a),
                observed: None,
                expect: Plan {
                    remove_previous: None,
                    create: Some(CreateReason::Drifted),
                    set_status: None,
                },
            },
            Row {
                name: "status changed by hand: restore",
                desired_status: Some(Accepted),
                applied: Some(&a),
                observed: Some(member(Rejected)),
                expect: Plan {
                    remove_previous: None,
                    create: None,
                    set_status: Some(StatusChange {
                        from: Rejected,
                        to: Accepted,
                    }),
                },
            },
            Row {
                name: "status unset in spec: whatever the consumer chose stays",
                desired_status: None,
                applied: Some(&a),
                observed: Some(member(Rejected)),
                expect: Plan {
                    remove_previous: None,
                    create: None,
                    set_status: None,
                },
            },
            Row {
                name: "imageId changed: remove the old membership, create the new",
                desired_status: None,
                applied: Some(&old_image),
                observed: None,
                expect: Plan {
                    remove_previous: Some(old_image.clone()),
                    create: Some(CreateReason::New),
                    set_status: None,
                },
            },
            Row {
                name: "region changed: the old region's membership goes",
                desired_status: None,
                applied: Some(&other_region),
                observed: Some(member(Pending)),
                expect: Plan {
                    remove_previous: Some(other_region.clone()),
                    create: None,
                    set_status: None,
                },
            },
        ];
        for row in rows {
            let got = plan(&a, row.desired_status, row.applied, row.observed.as_ref());
            assert_eq!(got, row.expect, "{}", row.name);
        }
    }

    #[test]
    fn noop_only_when_nothing_to_do() {
        let a = identity("i", "m");
        assert!(plan(&a, None, Some(&a), Some(&member(Pending))).is_noop());
        assert!(!plan(&a, None, Some(&a), None).is_noop());
    }
}
