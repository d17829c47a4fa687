//! Retention inside the relay: the writer runs one bounded slice of pruning inside a write
//! batch's transaction before its commit (or, idle, in a transaction of its own), so ingest
//! waits for at most one slice, never for a whole pass, and shares its commit. When the last slice found more, slices follow each other
//! once no batch came for [`QUIET`]; while events keep arriving a slice runs at most every
//! [`BUSY_EVERY`] and never more than a fifth of the time (the wait after a slice is at least
//! [`BUSY_FACTOR`] times its length): pruning costs page writes and an fsync like a batch
//! does, and back-to-back slices made every arriving EVENT wait for one. When a pass found
//! nothing, the rules are looked at again after [`RECHECK`]. The rules are read from the live
//! config at every slice.

use std::time::{Duration, Instant};

use super::Shared;
use crate::config::retention::Rules;
use crate::store::archive::Archives;
use crate::store::retention::{Pruner, SliceLimits};
use heed::RwTxn;

/// The largest slice, and the size while the writer is idle. A delete costs ~10-20 µs of CPU when its pages are cached, but on a
/// DB larger than RAM each touches a few cold index pages, so the slice size adapts: halved
/// while a slice takes over [`SLICE_TARGET`], doubled (up to this) while it takes under a
/// quarter of it, in slices run while events arrive. An EVENT arriving during a slice waits
/// for it.
pub const SLICE: SliceLimits = SliceLimits {
    max_events: 256,
    max_rows: 20_000,
};
/// The smallest slice.
const MIN_SLICE: usize = 8;
/// How long one slice should take, at most. Short slices, more often, for the same share:
/// an EVENT that arrives during one waits less (with 5 ms every 20 ms the OK p99 under a
/// 5k/s load while pruning was 24.9 ms, with 2 ms every 8 ms 20.3 ms, as much pruned).
pub const SLICE_TARGET: Duration = Duration::from_millis(2);
/// While events arrive, the least time between two slices (the writer's share for pruning
/// is then at most one slice per this interval).
pub const BUSY_EVERY: Duration = Duration::from_millis(8);
/// No batch for this long: the writer is idle and slices may follow each other.
pub const QUIET: Duration = Duration::from_millis(200);
/// While busy, the wait after a slice is at least this many times the slice's length.
pub const BUSY_FACTOR: u32 = 4;
/// After a pass that found nothing to prune, when to look again.
pub const RECHECK: Duration = Duration::from_secs(1);
/// Errors (a full disk for the archive, say) are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

pub struct RelayPruner {
    pruner: Pruner,
    archives: Archives,
    last: Option<Instant>,
    /// How long the last slice took, and when the last write batch ended.
    last_took: Duration,
    last_batch: Option<Instant>,
    /// Events per slice now (adaptive, `MIN_SLICE..=SLICE.max_events`).
    size: usize,
    more: bool,
    rules_text: String,
    rules: Rules,
    last_error_log: Option<Instant>,
}

impl Default for RelayPruner {
    fn default() -> Self {
        RelayPruner {
            pruner: Pruner::default(),
            archives: Archives::default(),
            last: None,
            last_took: Duration::ZERO,
            last_batch: None,
            size: SLICE.max_events,
            more: true,
            rules_text: String::new(),
            rules: Rules::default(),
            last_error_log: None,
        }
    }
}

impl RelayPruner {
    /// How long an idle writer may block waiting for events before a slice is due.
    pub fn wait(&self, shared: &Shared, max: Duration) -> Duration {
        let cfg = shared.config();
        if cfg.retention.rules.is_empty() && cfg.retention.max_db_bytes == 0 {
            return max;
        }
        let Some(last) = self.last else {
            return Duration::ZERO;
        };
        if !self.more {
            return RECHECK.saturating_sub(last.elapsed()).min(max);
        }
        // The sooner of: the next busy slice, the moment the writer counts as idle.
        let busy = self.busy_every().saturating_sub(last.elapsed());
        let quiet = self
            .last_batch
            .map_or(Duration::ZERO, |b| QUIET.saturating_sub(b.elapsed()));
        busy.min(quiet).min(max)
    }

    fn busy_every(&self) -> Duration {
        BUSY_EVERY.max(self.last_took * BUSY_FACTOR)
    }

    /// Inside a write batch's transaction, before its commit: runs a slice there if one is
    /// due, so the batch's commit (and fsync) carries the deletions too. A slice in a
    /// transaction of its own paid a commit of its own, which on this VM's disk took longer
    /// than the slice's budget and shrank slices to 8 events (~200 pruned/s under load).
    /// Returns how many events it deleted in `txn`.
    pub fn in_batch(&mut self, shared: &Shared, txn: &mut RwTxn) -> u64 {
        self.run(shared, false, Some(txn))
    }

    /// After a write batch has committed.
    pub fn after_batch(&mut self) {
        self.last_batch = Some(Instant::now());
    }

    /// Runs one slice, in a transaction of its own, if one is due; `idle`: no event is
    /// waiting for the writer.
    pub fn tick(&mut self, shared: &Shared, idle: bool) {
        self.run(shared, idle, None);
    }

    /// One slice if one is due; how many events it deleted.
    fn run(&mut self, shared: &Shared, idle: bool, txn: Option<&mut RwTxn>) -> u64 {
        let cfg = shared.config();
        if cfg.retention.rules.is_empty() && cfg.retention.max_db_bytes == 0 {
            self.more = true;
            return 0;
        }
        let quiet = idle && self.last_batch.is_none_or(|b| b.elapsed() >= QUIET);
        if let Some(last) = self.last {
            let every = match (self.more, quiet) {
                (true, true) => Duration::ZERO,
                (true, false) => self.busy_every(),
                (false, _) => RECHECK,
            };
            if last.elapsed() < every {
                return 0;
            }
        }
        if cfg.retention.rules != self.rules_text {
            self.rules_text = cfg.retention.rules.clone();
            self.rules = match cfg.retention_rules() {
                Ok(r) => r,
                Err(e) => {
                    log::error!("retention.rules: {e}; pruning nothing");
                    Rules::default()
                }
            };
        }
        let t = Instant::now();
        self.last = Some(t);
        let limits = SliceLimits {
            // Idle: nothing waits, so whole slices (the commit's fsync is shared by more).
            max_events: if quiet { SLICE.max_events } else { self.size },
            ..SLICE
        };
        let (store, now) = (&shared.store, crate::policy::now());
        let max_bytes = cfg.retention.max_db_bytes;
        // Inside a batch the deletions go in a nested transaction: a failure undoes the
        // slice, not the batch.
        let result = self
            .pruner
            .plan(
                store,
                &self.rules,
                max_bytes,
                now,
                limits,
                &mut self.archives,
            )
            .and_then(|(levs, mut report)| {
                if !levs.is_empty() {
                    report.deleted = match txn {
                        Some(txn) => store.delete_levs_nested(txn, &levs)?,
                        None => store.delete_batch(&levs)?,
                    } as u64;
                }
                Ok(report)
            });
        self.last_took = t.elapsed();
        if quiet {
            // Only busy slices set the size.
        } else if self.last_took > SLICE_TARGET {
            self.size = (self.size / 2).max(MIN_SLICE);
        } else if self.last_took < SLICE_TARGET / 4 {
            self.size = (self.size * 2).min(SLICE.max_events);
        }
        let m = &shared.metrics;
        m.prune_slices.inc();
        m.prune_us.add(t.elapsed().as_micros() as u64);
        match result {
            Ok(r) => {
                self.more = r.more;
                m.pruned.add(r.deleted);
                m.archived.add(r.archived);
                if r.deleted > 0 {
                    log::debug!("retention: pruned {} events ({:?})", r.deleted, r.per_rule);
                }
                r.deleted
            }
            Err(e) => {
                // Try again later, not in a loop against a full disk.
                self.more = false;
                m.prune_errors.inc();
                if self.last_error_log.is_none_or(|l| l.elapsed() >= LOG_EVERY) {
                    self.last_error_log = Some(Instant::now());
                    log::error!("retention: pruning failed: {e}");
                }
                0
            }
        }
    }
}
