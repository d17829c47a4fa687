//! Set collection (`Query::gather`): every match of a query, each once, in levId order
//! rather than created_at order — for NIP-77 sets, which are sorted by the negentropy code
//! anyway and need no order from the scan.
//!
//! The ordered path loads each candidate's record by levId as the index merge yields it: a
//! B-tree descent per event into pages scattered by created_at order, which was ~40% of a
//! collected NIP-77 set's time (perf, `{"kinds":[1]}` over 100k events). Here the index
//! keys of a window of candidates are read first (no records), sorted by levId, and the
//! records fetched by one forward cursor that steps over short gaps and re-seeks over long
//! ones, so neighbouring events share pages and descents.

use std::ops::Bound;

use heed::RoTxn;

use super::{keys, refill, table, IndexKind, LevId, Progress, Query, Record, Result, Store};

/// Most candidate levIds read from the indexes before their records are fetched: bounds the
/// memory of a collection (8 bytes each) whatever its size. A caller holding less room can
/// lower it (`Query::window`).
const WINDOW: usize = if cfg!(test) { 16 } else { 65_536 };
/// A forward cursor steps over at most this many records to reach the next candidate; a
/// longer gap is a fresh seek (one descent costs about as much as this many steps).
const MAX_STEP: u64 = 32;

/// `gather`'s state between calls: the current window of candidates.
pub(super) struct Gathered {
    levs: Vec<LevId>,
    /// Most candidates held at once.
    window: usize,
    /// Sorted and deduplicated: being fetched from `next`.
    sorted: bool,
    next: usize,
    /// The window holds the indexes' last candidates.
    last: bool,
}

impl Default for Gathered {
    fn default() -> Self {
        Gathered {
            levs: Vec::new(),
            window: WINDOW,
            sorted: false,
            next: 0,
            last: false,
        }
    }
}

impl Query {
    /// Holds at most `candidates` (at least 1, at most 64k) candidates at once when
    /// gathered: a caller that reserved room for fewer events than a full window keeps the
    /// window within its reservation.
    pub fn window(mut self, candidates: usize) -> Query {
        self.gathered.window = candidates.clamp(1, WINDOW);
        self
    }

    /// Every match, in whatever order is cheapest, for about `budget` units of work per
    /// call: gathered in levId order when the query allows it (`gatherable`), else the
    /// ordered scan. For callers that build a set (NIP-77) and sort it themselves.
    pub fn run_unordered(
        &mut self,
        store: &Store,
        txn: &RoTxn,
        budget: u64,
        emit: &mut dyn FnMut(LevId, &Record<'_>) -> bool,
    ) -> Result<Progress> {
        if self.gatherable() {
            self.gather(store, txn, budget, emit)
        } else {
            self.run_with(store, txn, budget, emit)
        }
    }

    /// Can `gather` answer this query: no search filter (ranked, not an index scan) and no
    /// filter limited below the query's cap (a limit keeps the *newest* matches, which
    /// needs created_at order).
    fn gatherable(&self) -> bool {
        self.scans
            .iter()
            .all(|s| s.index != IndexKind::Search && s.limit == u64::MAX)
    }

    /// Every event that matches any filter (and is not expired, newer than the snapshot or
    /// at or below `after`), each once, in no particular order (levId order within each
    /// window of candidates), for about `budget` units of work per call, as `run_with`.
    /// Only for a `gatherable` query; `emit`'s answer is ignored.
    fn gather(
        &mut self,
        store: &Store,
        txn: &RoTxn,
        budget: u64,
        emit: &mut dyn FnMut(LevId, &Record<'_>) -> bool,
    ) -> Result<Progress> {
        let mut work = 0u64;
        loop {
            if !self.gathered.sorted {
                let exhausted = self.gather_levs(store, txn, budget, &mut work)?;
                if !exhausted && self.gathered.levs.len() < self.gathered.window {
                    return Ok(Progress::Paused);
                }
                let g = &mut self.gathered;
                g.levs.sort_unstable();
                g.levs.dedup();
                (g.sorted, g.next, g.last) = (true, 0, exhausted);
            }
            if !self.fetch(store, txn, budget, &mut work, emit)? {
                return Ok(Progress::Paused);
            }
            let g = &mut self.gathered;
            g.levs.clear();
            g.sorted = false;
            if g.last {
                return Ok(Progress::Done);
            }
            if work >= budget {
                return Ok(Progress::Paused);
            }
        }
    }

    /// Reads candidate levIds from the filters' indexes into the window until it is full,
    /// the budget is spent or every index is read (then true).
    fn gather_levs(
        &mut self,
        store: &Store,
        txn: &RoTxn,
        budget: u64,
        work: &mut u64,
    ) -> Result<bool> {
        let (snapshot, after) = (self.snapshot, self.after);
        let window = self.gathered.window;
        let levs = &mut self.gathered.levs;
        while let Some(scan) = self.scans.get_mut(self.current) {
            if scan.cursors.is_none() {
                scan.cursors = Some(super::open_cursors(
                    store,
                    txn,
                    &scan.filter,
                    scan.index,
                    scan.limit,
                )?);
            }
            let db = table(store, scan.index);
            let (lo, hi) = keys::suffix_bounds(scan.filter.since, scan.filter.until);
            for c in scan.cursors.as_deref_mut().unwrap_or_default() {
                loop {
                    // Never past the window: the rest stays in the cursor's buffer.
                    while levs.len() < window {
                        let Some(sfx) = c.buf.pop_front() else { break };
                        if let Some((_, lev)) = keys::parse_suffix(&sfx) {
                            if lev <= snapshot && lev > after {
                                levs.push(lev);
                            }
                        }
                    }
                    if levs.len() >= window {
                        return Ok(false);
                    }
                    if c.exhausted {
                        break;
                    }
                    if *work >= budget {
                        return Ok(false);
                    }
                    *work += refill(db, txn, c, &lo, &hi)?;
                }
            }
            self.current += 1;
        }
        Ok(true)
    }

    /// Fetches the window's records from `next` on in levId order and emits the matches;
    /// false if the budget ran out first.
    fn fetch(
        &mut self,
        store: &Store,
        txn: &RoTxn,
        budget: u64,
        work: &mut u64,
        emit: &mut dyn FnMut(LevId, &Record<'_>) -> bool,
    ) -> Result<bool> {
        // Several filters, or several tag values (an event can carry more than one), can
        // yield one event in different windows. Other indexes hold one key per event (one
        // pubkey, one kind), so their cursors never share an event and need no set.
        let dedup = self.scans.len() > 1
            || self.scans.iter().any(|s| {
                s.index == IndexKind::Tag && s.cursors.as_ref().is_some_and(|c| c.len() > 1)
            });
        let Query {
            scans,
            now,
            sent,
            gathered,
            ..
        } = self;
        let Gathered { levs, next, .. } = gathered;
        let mut i = *next;
        while i < levs.len() {
            if *work >= budget {
                *next = i;
                return Ok(false);
            }
            let from = keys::lev_key(levs[i]);
            let mut rows = store
                .t
                .event
                .range(txn, &(Bound::Included(&from[..]), Bound::Unbounded))?;
            *work += 1;
            // Walk forward while the next candidate is close; otherwise seek again.
            loop {
                let Some(row) = rows.next() else {
                    // No record at or after the candidates left: all deleted.
                    i = levs.len();
                    break;
                };
                let (k, v) = row?;
                *work += 1;
                let Some(lev) = keys::read_u64(k) else {
                    continue;
                };
                while i < levs.len() && levs[i] < lev {
                    i += 1; // deleted since its index key was read
                }
                let Some(&want) = levs.get(i) else { break };
                if want == lev {
                    let rec = Record::read(v)?;
                    if !rec.is_expired(*now)
                        && scans.iter().any(|s| s.filter.matches(&rec))
                        && (!dedup || sent.insert(lev))
                    {
                        emit(lev, &rec);
                    }
                    i += 1;
                }
                match levs.get(i) {
                    Some(&to) if to.saturating_sub(lev) <= MAX_STEP && *work < budget => {}
                    _ => break,
                }
            }
        }
        *next = i;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Query;
    use crate::nostr::filter::EventView;
    use crate::nostr::sign::Keys;
    use crate::nostr::tags::Tags;
    use crate::nostr::{Event, Filter, JsonParser, Limits};
    use crate::store::query::Progress;
    use crate::store::Store;
    use std::collections::BTreeSet;

    fn filter(s: &str) -> Filter {
        JsonParser::new()
            .parse(&mut s.as_bytes().to_vec(), |v| Filter::from_json(v, 3))
            .expect("json")
            .expect("filter")
    }

    /// The ordered scan's answer, as a set of levIds.
    fn ordered(s: &Store, filters: &[Filter], snap: u64, now: u64) -> BTreeSet<u64> {
        let txn = s.read_txn().expect("txn");
        let mut q = Query::new(filters.to_vec(), u64::MAX, snap, now);
        let mut out = Vec::new();
        assert_eq!(
            q.run(s, &txn, u64::MAX, &mut out).expect("run"),
            Progress::Done
        );
        out.into_iter().collect()
    }

    /// `gather`'s answer in slices of `budget` work, each in a fresh read transaction;
    /// every event must come once.
    fn gathered(s: &Store, filters: &[Filter], snap: u64, now: u64, budget: u64) -> Vec<u64> {
        let mut q = Query::new(filters.to_vec(), u64::MAX, snap, now);
        assert!(q.gatherable());
        let mut out = Vec::new();
        for _ in 0..20_000 {
            let txn = s.read_txn().expect("txn");
            let p = q
                .gather(s, &txn, budget, &mut |lev, r| {
                    // The record handed over is the event's own.
                    let again = s.record(&txn, lev).expect("rec").expect("stored");
                    assert_eq!(again.id(), r.id());
                    out.push(lev);
                    true
                })
                .expect("gather");
            assert!(q.gathered.levs.len() <= q.gathered.window, "window overrun");
            if p == Progress::Done {
                return out;
            }
        }
        panic!("gather never finished");
    }

    /// Two filters that match the same events, or two tag values that each event carries,
    /// read them in different windows (a cursor's first read is 50 keys, the next 500):
    /// each event still comes once.
    #[test]
    fn an_event_found_twice_comes_once() {
        let (_d, s) = crate::store::tests::temp_store();
        let k = Keys::from_secret([9; 32]).expect("key");
        let tags = [["t", "a"], ["t", "b"]];
        let evs: Vec<Event> = (0..120)
            .map(|i| {
                let tags = Tags::from_vecs(&tags.map(|t| t.to_vec()));
                k.sign(100 + i, 1, tags, "x", &Limits::default())
                    .expect("sign")
            })
            .collect();
        s.write_batch(&evs).expect("write");
        let txn = s.read_txn().expect("txn");
        let snap = s.latest_lev_id(&txn).expect("snap");
        drop(txn);
        for fs in [
            vec![filter(r#"{"kinds":[1]}"#), filter(r#"{"kinds":[1,7]}"#)],
            vec![filter(r##"{"#t":["a","b"]}"##)],
        ] {
            let got = gathered(&s, &fs, snap, 1000, 1_000_000);
            assert_eq!(got.len(), 120);
            assert_eq!(got.iter().collect::<BTreeSet<_>>().len(), 120);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Every event the ordered scan returns, and nothing else, each once: over several
        /// windows (16 candidates under test), paused slices, deleted and expired events,
        /// several values and several filters, a snapshot below the newest event.
        #[test]
        fn gather_returns_the_ordered_scans_set(
            events in proptest::collection::vec((0u8..4, 0usize..3, 0u64..40, 0usize..4, proptest::prelude::any::<bool>()), 1..260),
            deleted in proptest::collection::vec(0usize..260, 0..40),
            filters in proptest::collection::vec((0u8..6, 0u8..4, 0u8..5, 0u64..40, 0u64..45), 1..3),
            budget in 1u64..400,
            behind in 0u64..20,
        ) {
            let (_d, s) = crate::store::tests::temp_store();
            let keys: Vec<Keys> = (1..=4).map(|n| Keys::from_secret([n; 32]).expect("key")).collect();
            let kinds = [1u64, 7, 1984];
            let values = ["a", "b", "c"];
            let evs: Vec<Event> = events
                .iter()
                .enumerate()
                .map(|(i, &(k, kind, at, tag, expired))| {
                    let mut tags: Vec<Vec<String>> = Vec::new();
                    if let Some(v) = values.get(tag) {
                        tags.push(vec!["t".into(), (*v).into()]);
                    }
                    if expired {
                        tags.push(vec!["expiration".into(), "500".into()]);
                    }
                    let tags: Vec<Vec<&str>> =
                        tags.iter().map(|t| t.iter().map(String::as_str).collect()).collect();
                    keys[k as usize]
                        .sign(100 + at, kinds[kind], Tags::from_vecs(&tags), &format!("{i}"), &Limits::default())
                        .expect("sign")
                })
                .collect();
            s.write_batch(&evs).expect("write");
            let txn = s.read_txn().expect("txn");
            let newest = s.latest_lev_id(&txn).expect("snap");
            let gone: Vec<u64> = deleted.iter().map(|&d| d as u64 % newest + 1).collect();
            drop(txn);
            s.delete_batch(&gone).expect("delete");
            let snap = newest.saturating_sub(behind);
            // Filters over kinds, authors, a tag and a created_at window; mask bits pick
            // the values (0 = the field is absent).
            let pick = |mask: u8, all: &[String]| -> Option<String> {
                let chosen: Vec<&str> = all
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, v)| v.as_str())
                    .collect();
                (mask != 0).then(|| chosen.join(","))
            };
            let kind_s: Vec<String> = kinds.iter().map(u64::to_string).collect();
            let author_s: Vec<String> = keys.iter().map(|k| format!("\"{}\"", k.sign(1, 1, Tags::from_vecs::<&str>(&[]), "", &Limits::default()).expect("sign").pubkey_hex())).collect();
            let value_s: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
            let fs: Vec<Filter> = filters
                .iter()
                .map(|&(km, am, tm, since, until)| {
                    let mut parts = Vec::new();
                    if let Some(k) = pick(km & 7, &kind_s) { parts.push(format!("\"kinds\":[{k}]")); }
                    if let Some(a) = pick(am & 3, &author_s) { parts.push(format!("\"authors\":[{a}]")); }
                    if let Some(t) = pick(tm & 7, &value_s) { parts.push(format!("\"#t\":[{t}]")); }
                    if since > 0 { parts.push(format!("\"since\":{}", 100 + since)); }
                    if until > 0 { parts.push(format!("\"until\":{}", 100 + until)); }
                    filter(&format!("{{{}}}", parts.join(",")))
                })
                .collect();
            let want = ordered(&s, &fs, snap, 1000);
            let got = gathered(&s, &fs, snap, 1000, budget);
            let set: BTreeSet<u64> = got.iter().copied().collect();
            proptest::prop_assert_eq!(set.len(), got.len(), "an event came twice");
            proptest::prop_assert_eq!(set, want);
        }
    }
}
