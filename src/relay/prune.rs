//! Retention inside the relay: the writer runs one bounded slice of pruning
//! (`store::retention::Pruner::slice`) between its batches, so ingest waits for at most one
//! slice, never for a whole pass. When the last slice found more, slices follow each other
//! while the inbox is empty and run every [`BUSY_EVERY`] while events keep arriving; when a
//! pass found nothing, the rules are looked at again after [`RECHECK`]. The rules are read
//! from the live config at every slice.

use std::time::{Duration, Instant};

use super::Shared;
use crate::config::retention::Rules;
use crate::store::archive::Archives;
use crate::store::retention::{Pruner, SliceLimits};

/// One slice: deletes are ~10-20 µs each (index rows, trees, payload) plus one commit, so a
/// slice costs a few ms, the same order as one ingest batch's fsync.
pub const SLICE: SliceLimits = SliceLimits {
    max_events: 256,
    max_rows: 20_000,
};
/// While events arrive, the least time between two slices (the writer's share for pruning
/// is then at most one slice per this interval).
pub const BUSY_EVERY: Duration = Duration::from_millis(20);
/// After a pass that found nothing to prune, when to look again.
pub const RECHECK: Duration = Duration::from_secs(1);
/// Errors (a full disk for the archive, say) are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

pub struct RelayPruner {
    pruner: Pruner,
    archives: Archives,
    last: Option<Instant>,
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
        let every = if self.more { Duration::ZERO } else { RECHECK };
        every.saturating_sub(last.elapsed()).min(max)
    }

    /// Runs one slice if one is due; `idle`: no event is waiting for the writer.
    pub fn tick(&mut self, shared: &Shared, idle: bool) {
        let cfg = shared.config();
        if cfg.retention.rules.is_empty() && cfg.retention.max_db_bytes == 0 {
            self.more = true;
            return;
        }
        if let Some(last) = self.last {
            let every = match (self.more, idle) {
                (true, true) => Duration::ZERO,
                (true, false) => BUSY_EVERY,
                (false, _) => RECHECK,
            };
            if last.elapsed() < every {
                return;
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
        let result = self.pruner.slice(
            &shared.store,
            &self.rules,
            cfg.retention.max_db_bytes,
            crate::policy::now(),
            SLICE,
            &mut self.archives,
        );
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
            }
            Err(e) => {
                // Try again later, not in a loop against a full disk.
                self.more = false;
                m.prune_errors.inc();
                if self.last_error_log.is_none_or(|l| l.elapsed() >= LOG_EVERY) {
                    self.last_error_log = Some(Instant::now());
                    log::error!("retention: pruning failed: {e}");
                }
            }
        }
    }
}
