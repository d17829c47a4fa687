//! NIP-45 COUNT answers with `hll`, kept per filter so the next COUNT of the same thing (a
//! note's reactions, an author's followers: clients ask again and again) reads only the
//! events stored since.
//!
//! An answer holds for a snapshot: its count and registers cover every matching event up to
//! `through` (a levId), and it was computed while the DB's deletion count
//! (`Store::deletions`) was `deletions`. If a later snapshot has the same deletion count,
//! nothing the answer counted has gone since, so the answer plus the matches above
//! `through` is that snapshot's answer. An answer is also dropped once any event it counted
//! expires (NIP-40). Only filters whose answer is the same for every reader are kept
//! (`ReadAuth::sees_all_of`), and only complete counts (not stopped at the count cap).

use std::collections::HashMap;

use std::sync::{Mutex, MutexGuard};

use crate::nostr::Filter;
use crate::search::hll::Hll;
use crate::store::keys::LevId;

/// Most answers kept; past it the cache starts over (a bound, not an LRU: the answers are
/// cheap to recompute once).
const CAPACITY: usize = 4096;

#[derive(Clone, Debug)]
pub struct Answer {
    pub count: u64,
    pub hll: Hll,
    pub through: LevId,
    pub deletions: u64,
    /// The earliest NIP-40 expiration among the counted events (`u64::MAX` if none).
    pub expires: u64,
}

type Answers = HashMap<(Filter, u8), Answer>;

#[derive(Default)]
pub struct HllCache {
    answers: Mutex<Answers>,
}

impl HllCache {
    /// The map (a panic elsewhere while holding it leaves answers that are still whole).
    fn lock(&self) -> MutexGuard<'_, Answers> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer for `f` (at HLL offset `offset`) that a snapshot with `deletions` and
    /// last levId `snapshot` can extend at `now`.
    pub fn get(
        &self,
        f: &Filter,
        offset: u8,
        deletions: u64,
        snapshot: LevId,
        now: u64,
    ) -> Option<Answer> {
        let map = self.lock();
        let a = map.get(&(f.clone(), offset))?;
        (a.deletions == deletions && a.through <= snapshot && now < a.expires).then(|| a.clone())
    }

    pub fn put(&self, f: Filter, offset: u8, a: Answer) {
        let mut map = self.lock();
        if map.len() >= CAPACITY && !map.contains_key(&(f.clone(), offset)) {
            map.clear();
        }
        map.insert((f, offset), a);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(through: LevId, deletions: u64, expires: u64) -> Answer {
        Answer {
            count: 3,
            hll: Hll::new(8),
            through,
            deletions,
            expires,
        }
    }

    #[test]
    fn an_answer_holds_only_while_nothing_was_removed_and_nothing_expired() {
        let c = HllCache::default();
        let f = Filter {
            kinds: Some(vec![7]),
            ..Filter::default()
        };
        c.put(f.clone(), 8, answer(100, 5, 1_000));
        assert!(
            c.get(&f, 8, 5, 150, 999).is_some(),
            "newer events extend it"
        );
        assert!(
            c.get(&f, 9, 5, 150, 999).is_none(),
            "another offset is another answer"
        );
        assert!(
            c.get(&f, 8, 6, 150, 999).is_none(),
            "an event was removed since"
        );
        assert!(
            c.get(&f, 8, 5, 150, 1_000).is_none(),
            "a counted event expired"
        );
        assert!(c.get(&f, 8, 5, 99, 999).is_none(), "an older snapshot");
        let g = Filter {
            kinds: Some(vec![6]),
            ..Filter::default()
        };
        assert!(c.get(&g, 8, 5, 150, 999).is_none());
    }

    #[test]
    fn bounded() {
        let c = HllCache::default();
        for k in 0..(CAPACITY as u64 + 10) {
            let f = Filter {
                kinds: Some(vec![k]),
                ..Filter::default()
            };
            c.put(f, 8, answer(1, 0, u64::MAX));
        }
        assert!(c.len() <= CAPACITY);
    }
}
