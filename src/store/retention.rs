//! Retention: which events the rules of `retention { … }` would remove now, found in bounded
//! slices, and [`Pruner::slice`], which removes one slice through `Store::delete_batch` (the
//! one deletion path, so every index, negentropy tree and any later index stay exact).
//!
//! * By age: the `Event__kind` index, one seek per stored kind the rule covers; each kind's
//!   old events are the start of its range.
//! * By count per author: the `Event__pubkeyKind` index, one author at a time from a cursor
//!   that survives between slices; an author's rows of the rule's kinds are merged and all
//!   but the newest N are candidates.
//! * By size budget: the oldest events of every covered kind (same walk as by age, no
//!   cutoff), merged by created_at.
//!
//! Candidates are found in a read transaction and deleted in the caller's next write
//! transaction; in the relay both run on the writer thread, the only one that writes, so
//! nothing changes between the two (another process may, which `delete_lev` tolerates: a
//! row already gone is skipped).

use std::collections::{HashMap, HashSet};
use std::ops::Bound;

use heed::RoTxn;

use super::archive::Archives;
use super::keys::{self, LevId};
use super::{Result, Store};
use crate::config::retention::{Rule, Rules};

/// One slice's work, per rule (in the rules' order) and in total.
#[derive(Debug, Default, Clone)]
pub struct SliceReport {
    /// Events deleted (or, in a dry run, found) per rule name; the size budget is `maxDbBytes`.
    pub per_rule: Vec<(String, u64)>,
    pub deleted: u64,
    /// Events archived before deletion.
    pub archived: u64,
    /// Some rule may have more to prune now (a rule hit the slice's bound, or the count
    /// rules' walk over authors is not finished).
    pub more: bool,
}

/// The name the size budget's deletions are counted under.
pub const BUDGET: &str = "maxDbBytes";

impl Store {
    /// levIds of events older than `cutoff` (created_at < cutoff) of the kinds `rule`
    /// covers: at most `per_kind` per kind, oldest first within a kind, appended to `out`
    /// as (created_at, levId). Returns true if some kind had more than `per_kind`.
    pub fn age_candidates(
        &self,
        txn: &RoTxn,
        rule: &Rule,
        cutoff: u64,
        per_kind: usize,
        out: &mut Vec<(u64, LevId)>,
    ) -> Result<bool> {
        let mut more = false;
        for &(lo, hi) in &rule.kinds {
            let mut kind = lo;
            while kind <= hi {
                // The first stored row of a kind ≥ `kind`: one seek.
                let start = keys::kind_prefix(kind);
                let end = keys::kind_prefix(hi)
                    .into_iter()
                    .chain([0xff; 24])
                    .collect::<Vec<u8>>();
                let range = (Bound::Included(&start[..]), Bound::Included(&end[..]));
                let mut it = self.t.kind.range(txn, &range)?;
                let Some(first) = it.next() else {
                    break;
                };
                let (k, _) = first?;
                let Some(found) = keys::read_u64(k) else {
                    break;
                };
                if rule.covers(found) {
                    let mut n = 0;
                    let mut row = Some(k);
                    while let Some(k) = row {
                        if keys::read_u64(k) != Some(found) {
                            break;
                        }
                        let Some((ca, lev)) = keys::parse_suffix(k) else {
                            break;
                        };
                        if ca >= cutoff {
                            break;
                        }
                        if n == per_kind {
                            more = true;
                            break;
                        }
                        out.push((ca, lev));
                        n += 1;
                        row = match it.next() {
                            Some(r) => Some(r?.0),
                            None => None,
                        };
                    }
                }
                match found.checked_add(1) {
                    Some(next) => kind = next,
                    None => break,
                }
            }
        }
        Ok(more)
    }

    /// Authors from `*cursor` on: for each, every stored event of `rule`'s kinds but the
    /// newest `keep` is appended to `out`. Stops after the author during which `out` reached
    /// `limits.max_events` or `limits.max_rows` index rows were read; `*cursor` is then the next author to
    /// visit, or None when the walk reached the last author (the pass is complete).
    pub fn count_candidates(
        &self,
        txn: &RoTxn,
        rule: &Rule,
        keep: u64,
        cursor: &mut Option<[u8; 32]>,
        limits: SliceLimits,
        out: &mut Vec<LevId>,
    ) -> Result<()> {
        let (max, max_rows) = (limits.max_events, limits.max_rows);
        let mut rows = 0usize;
        let mut mine: Vec<([u8; 24], LevId)> = Vec::new();
        let keep = usize::try_from(keep).unwrap_or(usize::MAX);
        loop {
            // The next author at or after the cursor: one seek.
            let from = cursor.unwrap_or([0; 32]);
            let pk = {
                let mut it = self
                    .t
                    .pubkey_kind
                    .range(txn, &(Bound::Included(&from[..]), Bound::Unbounded))?;
                match it.next() {
                    Some(r) => {
                        let (k, _) = r?;
                        match k.get(..32).and_then(|s| <[u8; 32]>::try_from(s).ok()) {
                            Some(pk) => pk,
                            None => {
                                *cursor = None;
                                return Ok(());
                            }
                        }
                    }
                    None => {
                        *cursor = None;
                        return Ok(());
                    }
                }
            };
            mine.clear();
            for &(lo, hi) in &rule.kinds {
                let start = keys::pubkey_kind_prefix(&pk, lo);
                let end: Vec<u8> = keys::pubkey_kind_prefix(&pk, hi)
                    .into_iter()
                    .chain([0xff; 24])
                    .collect();
                for r in self.t.pubkey_kind.range(
                    txn,
                    &(Bound::Included(&start[..]), Bound::Included(&end[..])),
                )? {
                    let (k, _) = r?;
                    rows += 1;
                    let (Some(kind), Some(s)) = (
                        k.get(32..).and_then(keys::read_u64),
                        k.get(40..64).and_then(|s| <[u8; 24]>::try_from(s).ok()),
                    ) else {
                        continue;
                    };
                    if rule.covers(kind) {
                        mine.push((s, keys::read_u64(&s[16..]).unwrap_or(0)));
                    }
                }
            }
            if mine.len() > keep {
                // Newest first: created_at descending, then NIP-01's id order (the suffix
                // holds the id complemented, so descending suffixes).
                mine.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
                out.extend(mine[keep..].iter().map(|(_, lev)| *lev));
            }
            *cursor = next_pubkey(&pk);
            if cursor.is_none() || out.len() >= max || rows >= max_rows {
                return Ok(());
            }
        }
    }

    /// Live data: pages in use by every table (and LMDB's own catalogue) × page size; freed
    /// pages, which LMDB reuses, are not counted.
    pub fn live_bytes(&self) -> Result<u64> {
        let txn = self.read_txn()?;
        let mut total: u64 = self.table_stats(&txn)?.iter().map(|t| t.2).sum();
        let s = self.env().stat();
        total += (s.branch_pages + s.leaf_pages + s.overflow_pages) as u64 * u64::from(s.page_size);
        Ok(total)
    }

    /// (file bytes, pages ever used × page size, page size): `wok info`.
    pub fn file_usage(&self) -> Result<(u64, u64, u64)> {
        let info = self.env().info();
        let page = u64::from(self.env().stat().page_size);
        let file = std::fs::metadata(self.path().join("data.mdb"))
            .map(|m| m.len())
            .unwrap_or(0);
        Ok((file, (info.last_page_number as u64 + 1) * page, page))
    }
}

/// The smallest 32-byte key above every key starting with `pk`; None after ff…ff.
fn next_pubkey(pk: &[u8; 32]) -> Option<[u8; 32]> {
    let mut n = *pk;
    for b in n.iter_mut().rev() {
        if *b == 0xff {
            *b = 0;
        } else {
            *b += 1;
            return Some(n);
        }
    }
    None
}

/// State kept between slices: where each count rule's walk over authors is.
#[derive(Default)]
pub struct Pruner {
    cursors: HashMap<String, [u8; 32]>,
}

/// Bounds of one slice.
#[derive(Debug, Clone, Copy)]
pub struct SliceLimits {
    /// Most events deleted.
    pub max_events: usize,
    /// Most index rows a count rule reads.
    pub max_rows: usize,
}

impl Pruner {
    /// Finds at most `limits.max_events` events the rules (and the size budget) prune now
    /// and archives those of rules that ask for it (fsynced) and then
    /// deletes them in one write transaction.
    pub fn slice(
        &mut self,
        store: &Store,
        rules: &Rules,
        max_db_bytes: u64,
        now: u64,
        limits: SliceLimits,
        archives: &mut Archives,
    ) -> Result<SliceReport> {
        let (levs, mut report) = self.plan(store, rules, max_db_bytes, now, limits, archives)?;
        if !levs.is_empty() {
            report.deleted = store.delete_batch(&levs)? as u64;
        }
        Ok(report)
    }

    /// The first half of a slice: chooses the events (from the last committed state) and
    /// archives those of rules that ask for it, fsynced, so that the caller's deletion
    /// (`Store::delete_levs`, in whatever write transaction it likes) can never lose one.
    pub fn plan(
        &mut self,
        store: &Store,
        rules: &Rules,
        max_db_bytes: u64,
        now: u64,
        limits: SliceLimits,
        archives: &mut Archives,
    ) -> Result<(Vec<LevId>, SliceReport)> {
        let mut report = SliceReport::default();
        let mut chosen: Vec<(usize, LevId)> = Vec::new();
        let mut seen: HashSet<LevId> = HashSet::new();
        {
            let txn = store.read_txn()?;
            for (i, rule) in rules.0.iter().enumerate() {
                let room = limits.max_events.saturating_sub(chosen.len());
                let mut levs = Vec::new();
                if room > 0 {
                    if let Some(age) = rule.max_age_seconds {
                        let mut found = Vec::new();
                        let more = store.age_candidates(
                            &txn,
                            rule,
                            now.saturating_sub(age),
                            room,
                            &mut found,
                        )?;
                        report.more |= more || found.len() > room;
                        found.sort_unstable();
                        found.truncate(room);
                        levs.extend(found.into_iter().map(|(_, l)| l));
                    }
                }
                if let Some(keep) = rule.max_events_per_pubkey {
                    let room = limits.max_events.saturating_sub(chosen.len() + levs.len());
                    if room > 0 {
                        let mut cur = self.cursors.get(&rule.name).copied();
                        store.count_candidates(
                            &txn,
                            rule,
                            keep,
                            &mut cur,
                            SliceLimits {
                                max_events: room,
                                max_rows: limits.max_rows,
                            },
                            &mut levs,
                        )?;
                        match cur {
                            Some(c) => {
                                self.cursors.insert(rule.name.clone(), c);
                                report.more = true;
                            }
                            None => {
                                self.cursors.remove(&rule.name);
                            }
                        }
                    } else {
                        report.more = true;
                    }
                }
                let before = chosen.len();
                chosen.extend(levs.into_iter().filter(|l| seen.insert(*l)).map(|l| (i, l)));
                report
                    .per_rule
                    .push((rule.name.clone(), (chosen.len() - before) as u64));
            }
        }
        // The size budget, only when the rules alone left nothing to do in this slice.
        if max_db_bytes > 0 && chosen.is_empty() && store.live_bytes()? > max_db_bytes {
            let txn = store.read_txn()?;
            let room = limits.max_events;
            let mut found: Vec<(u64, LevId)> = Vec::new();
            for rule in &rules.0 {
                store.age_candidates(&txn, rule, u64::MAX, room, &mut found)?;
            }
            found.sort_unstable();
            found.dedup();
            found.truncate(room);
            report.more = !found.is_empty();
            let budget_rule = rules.0.len();
            chosen.extend(found.into_iter().map(|(_, l)| (budget_rule, l)));
            report
                .per_rule
                .push((BUDGET.to_string(), chosen.len() as u64));
        }
        if chosen.is_empty() {
            return Ok((Vec::new(), report));
        }
        // Archive first and fsync (Archives::append does), so a crash before the delete
        // commits leaves an event archived and still stored, never in neither.
        {
            let txn = store.read_txn()?;
            for (i, rule) in rules.0.iter().enumerate() {
                let Some(dir) = &rule.archive else {
                    continue;
                };
                let mut lines: Vec<u8> = Vec::new();
                let mut n = 0;
                for &(_, lev) in chosen.iter().filter(|(r, _)| *r == i) {
                    if let Some(json) = store.payload(&txn, lev)? {
                        lines.extend_from_slice(&json);
                        lines.push(b'\n');
                        n += 1;
                    }
                }
                if n > 0 {
                    archives
                        .append(dir, &rule.name, now, &lines)
                        .map_err(|e| super::StoreError::Io(format!("archive {dir}: {e}")))?;
                    report.archived += n;
                }
            }
        }
        Ok((chosen.iter().map(|(_, l)| *l).collect(), report))
    }
}

/// What the rules would prune now, per rule (an event two rules cover counts for both),
/// and in total (each event once). The size budget is not predicted: it depends on the
/// pages the deletions free.
pub fn would_prune(store: &Store, rules: &Rules, now: u64) -> Result<(Vec<(String, u64)>, u64)> {
    let txn = store.read_txn()?;
    let mut all: HashSet<LevId> = HashSet::new();
    let mut per_rule = Vec::new();
    for rule in &rules.0 {
        let mut levs: Vec<LevId> = Vec::new();
        if let Some(age) = rule.max_age_seconds {
            let mut found = Vec::new();
            store.age_candidates(&txn, rule, now.saturating_sub(age), usize::MAX, &mut found)?;
            levs.extend(found.into_iter().map(|(_, l)| l));
        }
        if let Some(keep) = rule.max_events_per_pubkey {
            let mut cur = None;
            store.count_candidates(
                &txn,
                rule,
                keep,
                &mut cur,
                SliceLimits {
                    max_events: usize::MAX,
                    max_rows: usize::MAX,
                },
                &mut levs,
            )?;
        }
        levs.sort_unstable();
        levs.dedup();
        per_rule.push((rule.name.clone(), levs.len() as u64));
        all.extend(levs);
    }
    Ok((per_rule, all.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_pubkey_carries() {
        let mut a = [0u8; 32];
        a[31] = 0xff;
        let mut b = [0u8; 32];
        b[30] = 1;
        assert_eq!(next_pubkey(&a), Some(b));
        assert_eq!(next_pubkey(&[0xff; 32]), None);
    }
}
