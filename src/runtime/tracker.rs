//! What the operator remembers about each object between reconciles: the state it last
//! handled, when the next look is due (resync, stalled re-check or backoff retry) and how many
//! transient failures in a row it had.
//!
//! This is what lets a reconcile triggered by the echo of our own write do nothing, safely:
//! [`Tracker::pending`] answers "nothing to do before `due`" only when the object still has the
//! [`Fingerprint`] we handled (so a spec edit, a deletion or a finalizer change is never
//! skipped), and it answers with the time left, so a skip never replaces a pending backoff retry
//! with a later one (kube-runtime keeps one scheduled entry per object). Outside triggers (a
//! changed Secret, a membership another object released) call [`Tracker::invalidate`] first;
//! one that arrives while the object is being reconciled is not lost: the reconcile began
//! ([`Tracker::begin`]) before it, so what it records does not pass for handled.
//!
//! Entries are keyed by uid, so an object deleted and created again under the same name starts
//! fresh; they are forgotten when the object goes, and pruned against the objects that exist.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kube::api::ObjectMeta;

/// The parts of an object whose change must always be looked at: its generation (the spec,
/// and the deletion mark on custom resources), whether it is being deleted, and whether it
/// carries our finalizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(u64);

impl Fingerprint {
    /// As a number (for kube-runtime's predicate filter).
    pub fn value(self) -> u64 {
        self.0
    }

    pub fn of(meta: &ObjectMeta, finalizer: &str) -> Fingerprint {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        meta.uid.hash(&mut hasher);
        meta.generation.hash(&mut hasher);
        meta.deletion_timestamp.is_some().hash(&mut hasher);
        meta.finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == finalizer))
            .hash(&mut hasher);
        Fingerprint(hasher.finish())
    }
}

#[derive(Debug)]
struct Entry {
    /// The state the last finished reconcile left the object in.
    handled: Option<Fingerprint>,
    /// A metadata write of the reconcile in flight (finalizer, claim): what the object looks
    /// like after it, so the echo of that write is recognised.
    written: Option<Fingerprint>,
    due: Instant,
    failures: u32,
    /// Outside triggers so far, and how many there had been when the last reconcile began.
    wakes: u64,
    wakes_at_begin: u64,
    /// A reconcile has begun and not finished.
    running: bool,
}

impl Entry {
    fn new(now: Instant) -> Entry {
        Entry {
            handled: None,
            written: None,
            due: now,
            failures: 0,
            wakes: 0,
            wakes_at_begin: 0,
            running: false,
        }
    }

    /// What the finished reconcile may record as handled: nothing if something outside the
    /// object asked for a look while it ran.
    fn handled_after(&mut self, seen: Fingerprint) -> Option<Fingerprint> {
        let written = self.written.take();
        (self.wakes == self.wakes_at_begin).then(|| written.unwrap_or(seen))
    }
}

/// The clock of the controllers: real time, moved forward by tests.
#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicU64,
}

impl Clock {
    pub fn now(&self) -> Instant {
        Instant::now() + self.offset()
    }

    /// Wall time, for condition timestamps.
    pub fn timestamp(&self) -> jiff::Timestamp {
        let offset = jiff::SignedDuration::try_from(self.offset()).unwrap_or_default();
        jiff::Timestamp::now()
            .checked_add(offset)
            .unwrap_or_else(|_| jiff::Timestamp::now())
    }

    fn offset(&self) -> Duration {
        Duration::from_millis(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward (tests: "the resync period has passed").
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }
}

/// Per-object scheduling state, keyed by uid.
#[derive(Debug, Default)]
pub struct Tracker {
    entries: Mutex<HashMap<String, Entry>>,
}

/// Within this much of `due`, a look is due now (timers fire a little early or late).
const DUE_TOLERANCE: Duration = Duration::from_millis(50);

impl Tracker {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `Some(wait)` when the object is exactly as a finished reconcile left it and nothing is
    /// due for `wait` yet; `None` when it must be reconciled now.
    pub fn pending(&self, uid: &str, fingerprint: Fingerprint, now: Instant) -> Option<Duration> {
        let entries = self.entries();
        let entry = entries.get(uid)?;
        if entry.handled != Some(fingerprint) {
            return None;
        }
        let wait = entry.due.checked_duration_since(now)?;
        (wait > DUE_TOLERANCE).then_some(wait)
    }

    /// A reconcile of the object begins (after the skip check).
    pub fn begin(&self, uid: &str) {
        let mut entries = self.entries();
        let entry = entries
            .entry(uid.to_string())
            .or_insert_with(|| Entry::new(Instant::now()));
        entry.wakes_at_begin = entry.wakes;
        entry.written = None;
        entry.running = true;
    }

    /// A reconcile changed the object's metadata: its echo shows `fingerprint`.
    pub fn note_written(&self, uid: &str, fingerprint: Fingerprint) {
        let mut entries = self.entries();
        let entry = entries
            .entry(uid.to_string())
            .or_insert_with(|| Entry::new(Instant::now()));
        entry.written = Some(fingerprint);
    }

    /// A reconcile of the object as `seen` finished without a transient failure: look again
    /// after `next`. Returns `next`.
    pub fn settled(&self, uid: &str, seen: Fingerprint, now: Instant, next: Duration) -> Duration {
        let mut entries = self.entries();
        let entry = entries.entry(uid.to_string()).or_insert_with(|| Entry::new(now));
        entry.handled = entry.handled_after(seen);
        entry.due = now + next;
        entry.failures = 0;
        entry.running = false;
        next
    }

    /// A reconcile of the object as `seen` failed transiently: counts the failure and returns
    /// the wait `delay(failures)` decides, which is recorded as due.
    pub fn failed(
        &self,
        uid: &str,
        seen: Fingerprint,
        now: Instant,
        delay: impl FnOnce(u32) -> Duration,
    ) -> (u32, Duration) {
        let mut entries = self.entries();
        let entry = entries.entry(uid.to_string()).or_insert_with(|| Entry::new(now));
        entry.failures = entry.failures.saturating_add(1);
        let wait = delay(entry.failures);
        entry.handled = entry.handled_after(seen);
        entry.due = now + wait;
        entry.running = false;
        (entry.failures, wait)
    }

    /// Something outside the object changed (its Secret, another object's claim): its next
    /// reconcile must look, whatever the fingerprint, even if one is running now. Failure
    /// counts stay.
    pub fn invalidate(&self, uid: &str) {
        let mut entries = self.entries();
        let entry = entries
            .entry(uid.to_string())
            .or_insert_with(|| Entry::new(Instant::now()));
        entry.handled = None;
        entry.wakes = entry.wakes.wrapping_add(1);
    }

    /// The object is gone.
    pub fn forget(&self, uid: &str) {
        self.entries().remove(uid);
    }

    /// Drops entries of objects that no longer exist (a deletion missed while the watch was
    /// down), once there are more entries than `live_count` can explain.
    pub fn prune(&self, live_count: usize, is_live: impl Fn(&str) -> bool) {
        let mut entries = self.entries();
        if entries.len() > live_count.saturating_mul(2).max(1024) {
            entries.retain(|uid, _| is_live(uid));
        }
    }

    /// Whether a reconcile of the object has begun and not finished.
    pub fn running(&self, uid: &str) -> bool {
        self.entries().get(uid).is_some_and(|e| e.running)
    }

    pub fn failures(&self, uid: &str) -> u32 {
        self.entries().get(uid).map_or(0, |e| e.failures)
    }

    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(generation: i64, finalized: bool, deleting: bool) -> ObjectMeta {
        ObjectMeta {
            uid: Some("u1".into()),
            generation: Some(generation),
            finalizers: finalized.then(|| vec!["f".to_string()]),
            deletion_timestamp: deleting.then_some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            )),
            ..Default::default()
        }
    }

    #[test]
    fn an_unchanged_object_waits_for_its_due_time_and_nothing_else_does() {
        let tracker = Tracker::default();
        let now = Instant::now();
        let seen = Fingerprint::of(&meta(1, true, false), "f");
        tracker.settled("u1", seen, now, Duration::from_secs(600));
        let wait = tracker.pending("u1", seen, now).expect("nothing due");
        assert!(wait > Duration::from_secs(599));
        for changed in [meta(2, true, false), meta(1, false, false), meta(1, true, true)] {
            let other = Fingerprint::of(&changed, "f");
            assert_eq!(tracker.pending("u1", other, now), None, "{changed:?}");
        }
        assert_eq!(tracker.pending("u1", seen, now + Duration::from_secs(600)), None, "due");
        assert_eq!(tracker.pending("other-uid", seen, now), None, "never seen");
    }

    #[test]
    fn a_skip_keeps_the_backoff_of_the_failure_before_it() {
        let tracker = Tracker::default();
        let now = Instant::now();
        let seen = Fingerprint::of(&meta(1, true, false), "f");
        let (failures, wait) = tracker.failed("u1", seen, now, |n| Duration::from_secs(u64::from(n)));
        assert_eq!((failures, wait), (1, Duration::from_secs(1)));
        // The echo of the status write that said "retrying" must not postpone the retry.
        let left = tracker.pending("u1", seen, now).expect("skipped");
        assert!(left <= Duration::from_secs(1));
        let (failures, _) = tracker.failed("u1", seen, now, |n| Duration::from_secs(u64::from(n)));
        assert_eq!(failures, 2);
        tracker.settled("u1", seen, now, Duration::from_secs(600));
        assert_eq!(tracker.failures("u1"), 0, "success resets");
    }

    #[test]
    fn the_echo_of_our_own_metadata_write_is_recognised() {
        let tracker = Tracker::default();
        let now = Instant::now();
        let before = Fingerprint::of(&meta(1, false, false), "f");
        let after = Fingerprint::of(&meta(1, true, false), "f");
        tracker.note_written("u1", after);
        tracker.settled("u1", before, now, Duration::from_secs(600));
        assert!(tracker.pending("u1", after, now).is_some(), "our finalizer write");
        assert!(tracker.pending("u1", before, now).is_none());
    }

    #[test]
    fn a_wake_during_a_reconcile_is_not_lost() {
        let tracker = Tracker::default();
        let now = Instant::now();
        let seen = Fingerprint::of(&meta(1, true, false), "f");
        tracker.begin("u1");
        // The object's Secret changes while the reconcile works with the old one.
        tracker.invalidate("u1");
        tracker.settled("u1", seen, now, Duration::from_secs(300));
        assert_eq!(tracker.pending("u1", seen, now), None, "the held wake-up looks again");
        tracker.begin("u1");
        tracker.settled("u1", seen, now, Duration::from_secs(300));
        assert!(tracker.pending("u1", seen, now).is_some(), "and then it is handled");
    }

    #[test]
    fn invalidate_and_forget() {
        let tracker = Tracker::default();
        let now = Instant::now();
        let seen = Fingerprint::of(&meta(1, true, false), "f");
        tracker.settled("u1", seen, now, Duration::from_secs(600));
        tracker.invalidate("u1");
        assert_eq!(tracker.pending("u1", seen, now), None);
        tracker.forget("u1");
        assert!(tracker.is_empty());
    }

    #[test]
    fn entries_of_objects_that_are_gone_are_pruned() {
        let tracker = Tracker::default();
        let now = Instant::now();
        let seen = Fingerprint::of(&meta(1, true, false), "f");
        for i in 0..2000 {
            tracker.settled(&format!("u{i}"), seen, now, Duration::from_secs(1));
        }
        tracker.prune(10, |uid| uid == "u1" || uid == "u2");
        assert_eq!(tracker.len(), 2);
    }
}
