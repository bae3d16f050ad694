//! The controllers, one per kind, and what they share.
//!
//! Every kind of object that holds a membership goes through one lifecycle ([`lifecycle`]):
//! resolve the credentials → let go of what the spec no longer names → may it hold the
//! membership (one manager, one setter) → claim → act in Glance → record → report; and on
//! deletion: orphan, hand over, or undo, then drop the finalizer. The decisions that destroy
//! or hand over ("gone?", "who takes it over?", "replace?", "never made?") are made there, once
//! for every kind. A kind ([`Kind`]) brings only what it reads and writes in Glance:
//! - [`access`]: `ImageAccess`, the owner's side (creates and removes memberships).
//! - [`accept`]: `ImageAccessAccept`, the member's side (sets the member status).
//!
//! [`share`] is of another sort: an `ImageShare` never calls OpenStack; it keeps one
//! `ImageAccess` per (image, member) pair and sums up their conditions.
//!
//! Around the lifecycle, by responsibility:
//! - [`context`]: what every reconcile shares, the watch taps that keep the [`index`] and wake
//!   the objects a change concerns.
//! - [`reconcile`]: the entry point kube-runtime calls, error policy and backoff.
//! - [`holding`]: credentials from a held Secret, the claim and the finalizer.
//! - [`report`]: status writes, events and conditions.
//! - [`run`]: the watches and controllers of every kind, and the Secret controller.
//!
//! To add a kind: implement [`crate::api::Managed`] for it, give the [`Context`] a
//! [`KindState`] for it, implement [`Kind`], and run it in [`run::run`].
//!
//! The promises every kind keeps under faults:
//! - Nothing in Glance changes before the object carries the finalizer and the claim
//!   annotation naming the membership and its holder ([`holding::claim`]), so a crash between
//!   a Glance write and the status write still leaves the deletion knowing what to undo.
//! - The finalizer goes only once what the deletion policy asks is done in Glance, as seen by
//!   credentials that could see it. Anything else keeps it, Stalled with a message that says
//!   how to let go. A transient failure decides nothing.
//! - Problems that need a human become conditions, a Warning event and a slow re-check;
//!   transient ones go to [`reconcile::error_policy`] for per-object exponential backoff. A
//!   reconcile that finds the object as it left it does nothing and keeps the pending re-check
//!   or retry.

pub mod accept;
pub mod access;
pub mod context;
pub mod holding;
pub mod index;
pub mod lifecycle;
pub mod lists;
pub mod ownership;
pub mod plan;
pub mod problem;
pub mod reconcile;
pub mod refs;
pub mod report;
pub mod run;
pub mod selection;
pub mod share;
pub mod status;

use std::future::Future;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use kube::runtime::watcher;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{Managed, Membership};
use crate::runtime::Happened;
pub use context::{Context, KindState};
use holding::Resolved;
use lifecycle::{Released, Why};
use problem::Problem;
pub use reconcile::{Error, Next, backoff_delay, error_policy, reconcile};
pub use run::{reconcile_secret, run, secret_error_policy};

/// Timing of re-checks and retries, and how many objects are worked on at once.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Glance cannot be watched: every object is re-checked this often (±10 % jitter).
    pub resync_period: Duration,
    /// Re-check of an object that needs a human (a fixed Secret wakes it at once).
    pub stalled_recheck: Duration,
    /// First retry after a transient failure; doubles per failure, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// OpenStack requests in flight at once (the load on the cloud). Objects at work at once:
    /// [`RECONCILES_PER_REQUEST`] times as many, so that their Kubernetes writes overlap the
    /// OpenStack calls of others instead of taking turns with them.
    pub concurrency: u16,
}

/// Objects at work at once per OpenStack request in flight.
pub const RECONCILES_PER_REQUEST: u16 = 4;

impl Settings {
    /// Objects at work at once, over all watched namespaces together.
    pub fn reconcile_concurrency(&self) -> u16 {
        self.concurrency.max(1).saturating_mul(RECONCILES_PER_REQUEST)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            resync_period: Duration::from_secs(600),
            stalled_recheck: Duration::from_secs(300),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            concurrency: 8,
        }
    }
}

/// Why an object may not hold the membership it names now.
pub struct Refusal {
    pub problem: Problem,
    /// Whether a claim it holds goes too: yes when another object manages the membership (this
    /// one must not touch it), no when only its credentials are wrong (it may hold it already).
    pub drop_claim: bool,
}

/// One kind of object that holds a membership. The shared lifecycle ([`lifecycle`]) does
/// everything around what the kind reads and writes in Glance.
pub trait Kind:
    Managed
    + Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The `controller` label of its metrics: the kind in lowercase, as controller-runtime
    /// names controllers.
    const CONTROLLER: &'static str;

    /// How to delete the object without undoing anything in Glance (for blocked deletions).
    const ORPHAN_HINT: &'static str;

    /// The other kind whose objects can name the same membership: when one of ours changes
    /// its hold on a membership, those are woken (a conflict may be over, a share may exist).
    type Counterpart: Kind;

    /// This kind's watch caches, index and requeue channels.
    fn state(ctx: &Context) -> &KindState<Self>;

    /// The image the spec names, in Glance's form.
    fn image_id(&self) -> String;

    /// The membership the spec names, before the cloud's default region is known; `None` when
    /// the member is known only once the credentials are read.
    fn named(&self) -> Option<Membership>;

    /// The names the spec gives instead of IDs (resolved by [`refs::resolve`]).
    fn refs(&self) -> refs::Refs<'_> {
        refs::Refs::default()
    }

    /// The object with `resolved` recorded in its status (what the look goes on with, and the
    /// status it writes).
    fn with_resolved(&self, resolved: crate::api::ResolvedRefs) -> Self;

    /// The status after a reconcile of `desired` with `outcome`; `None` when it would not
    /// change (transition times aside), so a steady object is never written.
    fn next_status(
        &self,
        desired: &Membership,
        outcome: &status::Outcome,
        now: jiff::Timestamp,
    ) -> Option<impl Serialize + Send + Sync>;

    /// The member the object names, once the credentials are known (an accept without
    /// spec.memberId names its credentials' project).
    fn member(object: &Self, creds: &Resolved) -> Result<String, Problem>;

    /// Whether the object may hold `desired` now: one manager per membership, one setter per
    /// member status, credentials that can act on it.
    fn may_hold(
        object: &Self,
        desired: &Membership,
        creds: &Resolved,
        ctx: &Context,
    ) -> impl Future<Output = Result<(), Refusal>> + Send;

    /// Reasons of a look Glance refused (nothing changed there): an object whose last look was
    /// one, and that holds nothing, asks [`Kind::still_refused`] before it claims again.
    const REFUSALS: &'static [&'static str];

    /// A read-only look whether Glance still refuses what the object asks (its credentials, the
    /// image): the refusal, or `None` to go on and claim. Keeps an object Glance refuses from
    /// claiming and releasing at every look.
    fn still_refused(
        object: &Self,
        desired: &Membership,
        creds: &Resolved,
    ) -> impl Future<Output = Option<Problem>> + Send;

    /// Brings Glance to the spec for `record` (claimed); `applied` is what the status records
    /// of it. Only what Glance said: every failure is part of the outcome.
    fn act(
        object: &Self,
        record: &Membership,
        applied: Option<Membership>,
        creds: &Resolved,
        ctx: &Context,
        events: &mut Vec<Happened>,
    ) -> impl Future<Output = status::Outcome> + Send;

    /// Reads `desired` and reports it with no write anywhere (`managementPolicy: Observe`): the
    /// outcome holds nothing (`applied` is `None`). "Absent" only on the word of credentials
    /// that could see it.
    fn observe(
        object: &Self,
        desired: &Membership,
        creds: &Resolved,
        ctx: &Context,
    ) -> impl Future<Output = status::Outcome> + Send;

    /// Whether letting go leaves the membership in Glance as it is (`deletionPolicy: Orphan`,
    /// the object's or the share's that controls it). No OpenStack call.
    fn orphans(object: &Self, ctx: &Context) -> impl Future<Output = Result<bool, Problem>> + Send;

    /// The object that takes `target` over when this one lets go, named for the event; a
    /// transient failure to tell is an `Err`, never "nobody".
    fn successor(
        object: &Self,
        target: &Membership,
        ctx: &Context,
    ) -> impl Future<Output = Result<Option<String>, Problem>> + Send;

    /// Undoes in Glance what holding `target` did (removes it; sets it rejected), with
    /// `creds`. "Already undone" only on the word of credentials that could see it
    /// ([`lifecycle::witness_gone`]).
    fn undo(
        object: &Self,
        target: &Membership,
        creds: &Resolved,
        ctx: &Context,
    ) -> impl Future<Output = Result<Released, Problem>> + Send;

    /// Whether this object cannot have changed `target` in Glance: never recorded it, and what
    /// it recorded says its attempts were refused.
    fn made_nothing(&self, target: &Membership) -> bool;

    /// The event for a membership let go of.
    fn released(&self, target: &Membership, released: &Released, why: Why<'_>) -> Option<Happened>;

    /// What else a watch event of this kind concerns, once the cache has it (a share woken by
    /// its children, for one).
    fn tap(_ctx: &Context, _scope: Option<&str>, _event: &watcher::Event<Self>) {}
}

#[cfg(test)]
mod accept_tests;
#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod observe_tests;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod selection_tests;
#[cfg(test)]
mod tests;
