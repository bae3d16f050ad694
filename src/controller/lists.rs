//! Member lists read at a resync, per image: the first object of an image to come due lists the
//! image's members once and lends the list to the other objects of that image, which are
//! checked against it (one Glance request per image per resync, not one per object). Only the
//! objects it was lent to use a list, once each: any other look at Glance reads it afresh, so a
//! change made by hand is always seen at the next look. A list is forgotten as soon as the
//! operator changes that image's members, and after a short time in any case.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::openstack::Member;

/// Whose view of which image: the credentials' digest, the region, the interface, the image.
pub type ListKey = ([u8; 32], Option<String>, String, String);

/// How long a lent list stands: long enough for the siblings woken by the object that read it
/// to get their turn in the queue, short enough to be a look at Glance of this resync.
const FRESH_FOR: Duration = Duration::from_secs(30);
/// Past this many lists (or loans), stale ones are dropped.
const PRUNE_ABOVE: usize = 4096;

/// A list and when it was read.
type Listed = (Instant, Arc<Vec<Member>>);

#[derive(Default)]
pub struct MemberLists {
    lists: Mutex<HashMap<ListKey, Listed>>,
    /// Which object (by uid) may use which list once, and since when.
    lent: Mutex<HashMap<String, (ListKey, Instant)>>,
    /// One read of a list at a time per key: objects that come due while it is in flight wait
    /// for it instead of reading the same list again.
    reading: Mutex<HashMap<ListKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl MemberLists {
    fn lists(&self) -> std::sync::MutexGuard<'_, HashMap<ListKey, Listed>> {
        self.lists.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lent(&self) -> std::sync::MutexGuard<'_, HashMap<String, (ListKey, Instant)>> {
        self.lent.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The list of `key` lent to the object `uid`, if it was lent one and the list still stands
    /// (read within [`FRESH_FOR`] of `now`, and not forgotten since). The loan is used up.
    pub fn borrow(&self, uid: &str, key: &ListKey, now: Instant) -> Option<Arc<Vec<Member>>> {
        let (lent_key, _) = self.lent().remove(uid)?;
        if &lent_key != key {
            return None;
        }
        let lists = self.lists();
        let (at, members) = lists.get(key)?;
        (now.duration_since(*at) < FRESH_FOR).then(|| members.clone())
    }

    /// Keeps the list just read, and lends it to the objects `to` (once each).
    pub fn put(&self, key: ListKey, members: Vec<Member>, now: Instant, to: impl IntoIterator<Item = String>) {
        let fresh = |at: &Instant| now.duration_since(*at) < FRESH_FOR;
        {
            let mut lent = self.lent();
            if lent.len() > PRUNE_ABOVE {
                lent.retain(|_, (_, at)| fresh(at));
            }
            lent.extend(to.into_iter().map(|uid| (uid, (key.clone(), now))));
        }
        let mut lists = self.lists();
        if lists.len() > PRUNE_ABOVE {
            lists.retain(|_, (at, _)| fresh(at));
        }
        lists.insert(key, (now, Arc::new(members)));
    }

    /// The right to read the list of `key` (held while reading): whoever waited for it looks
    /// for a loan again first.
    pub async fn read_turn(&self, key: &ListKey) -> ReadTurn {
        let lock = self
            .reading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        ReadTurn(lock.lock_owned().await)
    }

    /// Drops the turn locks nobody holds or waits for.
    pub fn done_reading(&self) {
        self.reading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|_, lock| Arc::strong_count(lock) > 1);
    }

    /// The operator changed the image's members: what was read of it no longer holds.
    pub fn forget_image(&self, image_id: &str) {
        self.lists().retain(|(_, _, _, image), _| image != image_id);
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
        lists.put(key("a"), vec![], now, lend_to(&["x", "y"]));
        assert!(lists.borrow("x", &key("a"), now).is_some());
        assert!(lists.borrow("x", &key("a"), now).is_none(), "used up");
        assert!(lists.borrow("z", &key("a"), now).is_none(), "not lent to z");
        assert!(lists.borrow("y", &key("b"), now).is_none(), "lent another list");
    }

    #[test]
    fn a_loan_lapses_with_time_and_when_the_image_changes() {
        let lists = MemberLists::default();
        let now = Instant::now();
        lists.put(key("a"), vec![], now, lend_to(&["x", "y"]));
        lists.put(key("b"), vec![], now, lend_to(&["w"]));
        assert!(lists.borrow("x", &key("a"), now + FRESH_FOR).is_none(), "stale");
        lists.forget_image("a");
        assert!(lists.borrow("y", &key("a"), now).is_none(), "forgotten");
        assert!(lists.borrow("w", &key("b"), now).is_some(), "other images keep theirs");
    }
}
