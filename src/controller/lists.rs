//! Member lists read at a resync, per image: the first object of an image to come due lists the
//! image's members once and lends the list to the other objects of that image, which are
//! checked against it (one Glance request per image per resync, not one per object). Only the
//! objects it was lent to use a list, once each: any other look at Glance reads it afresh, so a
//! change made by hand is always seen at the next look.
//!
//! A list must never hide a change the operator made itself: every write to an image's members
//! that may have reached Glance moves the image to a new epoch, which drops its list, and a
//! read that began in an earlier epoch is not kept (it may have been answered before the write).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::openstack::{Member, OpenStackError};

/// Whose view of which image: the credentials' digest, the region, the interface, the image.
/// `(credentials, region, how Glance is reached (interface, or the override URL), image)`.
pub type ListKey = ([u8; 32], Option<String>, String, String);

/// How long a lent list stands: long enough for the siblings woken by the object that read it
/// to get their turn in the queue, short enough to be a look at Glance of this resync.
const FRESH_FOR: Duration = Duration::from_secs(30);
/// Past this many loans, stale ones are dropped.
const PRUNE_ABOVE: usize = 4096;

/// A list and when it was read.
type Listed = (Instant, Arc<Vec<Member>>);

#[derive(Default)]
struct Inner {
    lists: HashMap<ListKey, Listed>,
    /// A read that failed, and when: whoever waited for it gets the same answer.
    failed: HashMap<ListKey, (Instant, OpenStackError)>,
    /// Which object (by uid) may use which list once: the list's key and when it was read.
    lent: HashMap<String, (ListKey, Instant)>,
    /// Writes to image members so far, over all images: each write's epoch.
    writes: u64,
    /// The last write to each image's members (by image).
    epochs: HashMap<String, u64>,
    /// The epoch of images whose own was forgotten.
    forgotten: u64,
    /// Objects (by uid) waiting for their turn to read a list: the list read meanwhile is lent
    /// to them too.
    waiting: HashMap<ListKey, HashSet<String>>,
}

#[derive(Default)]
pub struct MemberLists {
    inner: Mutex<Inner>,
    /// One read of a list at a time per key: objects that come due while it is in flight wait
    /// for it instead of reading the same list again.
    reading: Mutex<HashMap<ListKey, Arc<tokio::sync::Mutex<()>>>>,
}

/// What a read of a list is measured against: the image's epoch when it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(u64);

impl MemberLists {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The list of `key` lent to the object `uid`, if it was lent that very list and the list
    /// still stands (read within [`FRESH_FOR`] of `now`, no write since). The loan is used up.
    pub fn borrow(&self, uid: &str, key: &ListKey, now: Instant) -> Option<Arc<Vec<Member>>> {
        let mut inner = self.inner();
        let (lent_key, lent_at) = inner.lent.remove(uid)?;
        let (at, members) = inner.lists.get(key)?;
        (&lent_key == key && *at == lent_at && now.duration_since(*at) < FRESH_FOR).then(|| members.clone())
    }

    /// A read that failed since `since`, for those who waited for it.
    pub fn failed_since(&self, key: &ListKey, since: Instant) -> Option<OpenStackError> {
        let inner = self.inner();
        let (at, error) = inner.failed.get(key)?;
        (*at >= since).then(|| error.clone())
    }

    /// Where the image stands now: taken before reading its list.
    pub fn epoch(&self, image_id: &str) -> Epoch {
        let inner = self.inner();
        Epoch(inner.epochs.get(image_id).copied().unwrap_or(inner.forgotten))
    }

    /// Keeps the list read since `epoch` and lends it to the objects `to` (once each), unless
    /// the image's members were written to since. Returns whether it was kept.
    pub fn put(
        &self,
        key: ListKey,
        epoch: Epoch,
        members: Vec<Member>,
        now: Instant,
        to: impl IntoIterator<Item = String>,
    ) -> bool {
        let fresh = |at: &Instant| now.duration_since(*at) < FRESH_FOR;
        let mut inner = self.inner();
        inner.failed.remove(&key);
        if inner.epochs.get(&key.3).copied().unwrap_or(inner.forgotten) != epoch.0 {
            return false;
        }
        inner.lists.retain(|_, (at, _)| fresh(at));
        inner.failed.retain(|_, (at, _)| fresh(at));
        if inner.lent.len() > PRUNE_ABOVE {
            inner.lent.retain(|_, (_, at)| fresh(at));
        }
        let waiting: Vec<String> = inner.waiting.get(&key).into_iter().flatten().cloned().collect();
        let loan = (key.clone(), now);
        inner
            .lent
            .extend(to.into_iter().chain(waiting).map(|uid| (uid, loan.clone())));
        inner.lists.insert(key, (now, Arc::new(members)));
        true
    }

    /// A read of `key` failed: those waiting for it get `error` instead of reading again.
    pub fn put_failure(&self, key: ListKey, error: OpenStackError, now: Instant) {
        self.inner().failed.insert(key, (now, error));
    }

    /// The right of the object `uid` to read the list of `key` (held while reading): whoever
    /// waited for it looks for a loan (or the failure) again first.
    pub async fn read_turn(&self, key: &ListKey, uid: &str) -> ReadTurn {
        let lock = self
            .reading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        self.inner()
            .waiting
            .entry(key.clone())
            .or_default()
            .insert(uid.to_string());
        let turn = lock.lock_owned().await;
        let mut inner = self.inner();
        if let Some(waiting) = inner.waiting.get_mut(key) {
            waiting.remove(uid);
            if waiting.is_empty() {
                inner.waiting.remove(key);
            }
        }
        ReadTurn(turn)
    }

    /// Drops the turn locks nobody holds or waits for.
    pub fn done_reading(&self) {
        self.reading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|_, lock| Arc::strong_count(lock) > 1);
    }

    /// The operator wrote to the image's members (or may have, or is about to): what was read
    /// of them, or is being read, no longer holds.
    pub fn wrote(&self, image_id: &str) {
        let mut inner = self.inner();
        inner.lists.retain(|(_, _, _, image), _| image != image_id);
        inner.writes = inner.writes.wrapping_add(1);
        let written = inner.writes;
        inner.epochs.insert(image_id.to_string(), written);
        if inner.epochs.len() > PRUNE_ABOVE {
            // Epochs of images nobody lists now are forgotten; they all stand at the count of
            // writes so far from now on, so no forgotten epoch can come back to match a read
            // that began before a write.
            inner.forgotten = written;
            let listed: HashSet<String> = inner.lists.keys().map(|(_, _, _, image)| image.clone()).collect();
            inner.epochs.retain(|image, _| listed.contains(image));
        }
    }
}

/// Held while reading one list.
pub struct ReadTurn(#[allow(dead_code)] tokio::sync::OwnedMutexGuard<()>);

#[cfg(test)]
mod tests {
    use super::*;

    fn key(image: &str) -> ListKey {
        ([0; 32], None, "public".into(), image.into())
    }

    fn lend_to(uids: &[&str]) -> Vec<String> {
        uids.iter().map(|uid| uid.to_string()).collect()
    }

    #[test]
    fn a_list_is_used_once_by_each_object_it_was_lent_to() {
        let lists = MemberLists::default();
        let now = Instant::now();
        assert!(lists.put(key("a"), lists.epoch("a"), vec![], now, lend_to(&["x", "y"])));
        assert!(lists.borrow("x", &key("a"), now).is_some());
        assert!(lists.borrow("x", &key("a"), now).is_none(), "used up");
        assert!(lists.borrow("z", &key("a"), now).is_none(), "not lent to z");
        assert!(lists.borrow("y", &key("b"), now).is_none(), "lent another list");
    }

    #[test]
    fn a_loan_lapses_with_time_with_a_write_and_with_a_newer_list() {
        let lists = MemberLists::default();
        let now = Instant::now();
        lists.put(key("a"), lists.epoch("a"), vec![], now, lend_to(&["x", "y", "v"]));
        lists.put(key("b"), lists.epoch("b"), vec![], now, lend_to(&["w"]));
        assert!(lists.borrow("x", &key("a"), now + FRESH_FOR).is_none(), "stale");
        lists.put(
            key("a"),
            lists.epoch("a"),
            vec![],
            now + Duration::from_secs(1),
            lend_to(&[]),
        );
        assert!(lists.borrow("v", &key("a"), now).is_none(), "lent the older list");
        lists.wrote("a");
        assert!(lists.borrow("y", &key("a"), now).is_none(), "written since");
        assert!(lists.borrow("w", &key("b"), now).is_some(), "other images keep theirs");
    }

    #[tokio::test]
    async fn a_list_is_lent_to_those_waiting_to_read_it() {
        let lists = Arc::new(MemberLists::default());
        let now = Instant::now();
        let turn = lists.read_turn(&key("a"), "x").await;
        let waiter = {
            let lists = lists.clone();
            tokio::spawn(async move {
                let _turn = lists.read_turn(&key("a"), "y").await;
                lists.borrow("y", &key("a"), now).is_some()
            })
        };
        tokio::task::yield_now().await;
        lists.put(key("a"), lists.epoch("a"), vec![], now, lend_to(&[]));
        drop(turn);
        assert!(waiter.await.expect("waiter"), "y waited and was lent the list");
    }

    #[test]
    fn a_list_read_across_a_write_is_not_kept() {
        let lists = MemberLists::default();
        let now = Instant::now();
        let before = lists.epoch("a");
        lists.wrote("a");
        assert!(!lists.put(key("a"), before, vec![], now, lend_to(&["x"])));
        assert!(lists.borrow("x", &key("a"), now).is_none());
    }

    #[test]
    fn a_forgotten_epoch_never_matches_a_read_from_before_a_write() {
        let lists = MemberLists::default();
        let before = lists.epoch("a");
        lists.wrote("a");
        for i in 0..=PRUNE_ABOVE {
            lists.wrote(&format!("other-{i}"));
        }
        assert!(!lists.put(key("a"), before, vec![], Instant::now(), lend_to(&[])));
    }

    #[test]
    fn a_failed_read_is_the_answer_of_those_who_waited_for_it() {
        let lists = MemberLists::default();
        let now = Instant::now();
        let error = OpenStackError::Config(crate::openstack::ConfigError::Malformed { position: None });
        lists.put_failure(key("a"), error.clone(), now);
        assert_eq!(lists.failed_since(&key("a"), now), Some(error));
        assert_eq!(
            lists.failed_since(&key("a"), now + Duration::from_millis(1)),
            None,
            "an older failure"
        );
        lists.put(key("a"), lists.epoch("a"), vec![], now, lend_to(&[]));
        assert_eq!(lists.failed_since(&key("a"), now), None, "a read succeeded since");
    }
}
