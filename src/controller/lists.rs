//! Member lists read recently, per image: at a resync the first object of an image to come due
//! lists the image's members once and the others of that image are checked against the same
//! list (one Glance request per image per resync, not one per object). A list is forgotten as
//! soon as the operator changes that image's members, and after a short time in any case.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::openstack::Member;

/// Whose view of which image: the credentials' digest, the region, the interface, the image.
pub type ListKey = ([u8; 32], Option<String>, String, String);

/// How long a list stands for the image: long enough for the siblings woken by the object that
/// read it to use it, short enough that a change made by hand is seen at the next look.
const FRESH_FOR: Duration = Duration::from_secs(30);
/// Past this many lists, stale ones are dropped.
const PRUNE_ABOVE: usize = 4096;

/// A list and when it was read.
type Listed = (Instant, Arc<Vec<Member>>);

#[derive(Default)]
pub struct MemberLists {
    lists: Mutex<HashMap<ListKey, Listed>>,
    /// One read of a list at a time per key: objects that come due while it is in flight wait
    /// for it instead of reading the same list again.
    reading: Mutex<HashMap<ListKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl MemberLists {
    fn lists(&self) -> std::sync::MutexGuard<'_, HashMap<ListKey, Listed>> {
        self.lists.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The list read within [`FRESH_FOR`] of `now`, if any.
    pub fn get(&self, key: &ListKey, now: Instant) -> Option<Arc<Vec<Member>>> {
        let lists = self.lists();
        let (at, members) = lists.get(key)?;
        (now.duration_since(*at) < FRESH_FOR).then(|| members.clone())
    }

    pub fn put(&self, key: ListKey, members: Vec<Member>, now: Instant) {
        let mut lists = self.lists();
        if lists.len() > PRUNE_ABOVE {
            lists.retain(|_, (at, _)| now.duration_since(*at) < FRESH_FOR);
        }
        lists.insert(key, (now, Arc::new(members)));
    }

    /// The right to read the list of `key` (held while reading): whoever waited for it looks at
    /// the cache again first.
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

    #[test]
    fn a_list_stands_for_a_while_and_goes_when_the_image_changes() {
        let lists = MemberLists::default();
        let now = Instant::now();
        lists.put(key("a"), vec![], now);
        lists.put(key("b"), vec![], now);
        assert!(lists.get(&key("a"), now + Duration::from_secs(1)).is_some());
        assert!(lists.get(&key("a"), now + FRESH_FOR).is_none(), "stale");
        lists.forget_image("a");
        assert!(lists.get(&key("a"), now).is_none());
        assert!(lists.get(&key("b"), now).is_some(), "other images keep theirs");
    }
}
