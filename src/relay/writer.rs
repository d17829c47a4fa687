//! The writer: the only thread that opens write transactions (invariant 2). Group commit:
//! each transaction takes everything queued since the last one (up to MAX_BATCH, taken from
//! connections in turns); only while several connections' events keep coming does a small
//! batch wait a moment for more (`GATHER_*`); `OK` goes out only after the commit returns
//! (invariant 3), then the monitors are told.

use std::sync::Arc;
use std::time::Instant;

use super::fair::Turns;
use super::metrics::Stage;
use super::msg::{IoSender, MonitorMsg, Pool, WriterMsg};
use super::Shared;
use crate::nostr::message;
use crate::nostr::Event;
use crate::store::write::Outcome;

/// Most events in one transaction; the rest wait for the next one.
const MAX_BATCH: usize = 10_000;
/// Most index rows in one transaction (estimated by [`rows_of`]). LMDB keeps every page a
/// write transaction dirtied on a free list for the next one and never gives it back, so
/// the relay's heap keeps its largest batch's pages for good: a 4 KB page or more per row
/// when the rows land on distinct pages, as on a large DB they do. Without a bound, the
/// batch after a long fsync stall (a queue of 10,000 events, follow lists among them) could
/// pin up to LMDB's 512 MB limit of dirty pages; with it, on the order of 100 MB at most.
/// 2,000-event batches ingest as fast as 10,000-event ones here (the stall's is the rare one).
const MAX_BATCH_ROWS: usize = 16_384;

/// How often expired events are purged, and how many per transaction.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(9);
const PURGE_BATCH: usize = 1_000;
/// While events keep coming from several connections (the last batch ended under
/// `GATHER_WHEN` ago and was not one lone event), a batch of fewer than `GATHER_EVENTS` waits
/// up to `GATHER_WAIT` for more. A slow fsync makes batches by itself; a fast disk does
/// not, and one commit per event (its dirty index pages copied out each time) kept the
/// writer ~70% busy at 5k events/s, so pruning or a burst queued everyone. An idle relay's
/// events never wait, nor a lone client's publishing one at a time.
const GATHER_EVENTS: usize = 8;
const GATHER_WAIT: std::time::Duration = std::time::Duration::from_micros(300);
const GATHER_WHEN: std::time::Duration = std::time::Duration::from_millis(2);

pub struct Writer {
    pub rx: super::inbox::Inbox<WriterMsg>,
    pub shared: Arc<Shared>,
    pub io: IoSender,
    pub monitors: Pool<MonitorMsg>,
}

impl Writer {
    pub fn run(self) {
        // Purge at start-up too: a DB filled by `import` may hold expired events, which
        // would otherwise sit in the negentropy trees until the first timer.
        self.purge();
        let mut last_purge = Instant::now();
        // What is queued, by connection: a batch takes events from connections in turns,
        // so past MAX_BATCH one connection's backlog cannot fill every batch (fair share).
        let mut waiting: Turns<WriterMsg> = Turns::default();
        // Retention: one bounded slice inside a batch when due (relay/prune.rs).
        let mut prune = super::prune::RelayPruner::default();
        let mut last_end = Instant::now();
        // The last batch was not one lone event: it carried several, or more came meanwhile.
        // A client that publishes one event at a time, waiting for each OK, never waits.
        let mut contended = false;
        // Not SCHED_BATCH (`relay.batchScheduling`): the writer's wake-ups carry every OK and
        // live delivery; as a batch thread it waited behind the ingesters feeding it, and the
        // soak's OK p99 went from ~30 to ~56 ms.
        loop {
            // Expired events are purged here, the one place that writes (strfry's cron
            // thread does it every 9 s).
            if last_purge.elapsed() >= PURGE_EVERY {
                last_purge = Instant::now();
                self.purge();
            }
            if waiting.is_empty() {
                match self.rx.recv_timeout(prune.wait(&self.shared, PURGE_EVERY)) {
                    Ok(m) => waiting.push(m.conn, m),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        prune.tick(&self.shared, true);
                        continue;
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                }
            }
            // The inbox is bounded, so taking all of it is too.
            for m in self.rx.try_iter() {
                waiting.push(m.conn, m);
            }
            if contended && waiting.len() < GATHER_EVENTS && last_end.elapsed() < GATHER_WHEN {
                let until = Instant::now() + GATHER_WAIT;
                while waiting.len() < GATHER_EVENTS {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match self.rx.recv_timeout(left) {
                        Ok(m) => waiting.push(m.conn, m),
                        // A disconnect is seen by the blocking receive above next time.
                        Err(_) => break,
                    }
                }
            }
            let batch = take_batch(&mut waiting, MAX_BATCH, MAX_BATCH_ROWS, |m| {
                rows_of(&m.event)
            });
            let mut tickets = Vec::with_capacity(batch.len());
            let mut terms = Vec::with_capacity(batch.len());
            let batch_len = batch.len();
            let (conns, events): (Vec<u64>, Vec<Event>) = batch
                .into_iter()
                .map(|mut m| {
                    m.ticket.waited(Stage::Writer);
                    tickets.push(m.ticket);
                    terms.push(m.terms);
                    (m.conn, *m.event)
                })
                .unzip();
            let m = &self.shared.metrics;
            let t = Instant::now();
            let result = self.write(&events, &terms, &mut prune);
            m.write_time_us.add(t.elapsed().as_micros() as u64);
            m.write_batches.inc();
            match result {
                Ok(outcomes) => {
                    // A new follow list may be an admin's (web of trust): the writer set is
                    // refreshed before anyone hears OK, so a follow is a writer at once.
                    if events
                        .iter()
                        .zip(&outcomes)
                        .any(|(e, o)| e.kind == 3 && matches!(o, Outcome::Written(_)))
                    {
                        let cfg = self.shared.config();
                        if let Err(e) = self.shared.access.refresh(&self.shared.store, &cfg, false)
                        {
                            log::error!("refreshing the web of trust failed: {e}");
                        }
                    }
                    for ((conn, ev), o) in conns.iter().zip(&events).zip(&outcomes) {
                        match o {
                            Outcome::Written(_) => {
                                m.write_events.inc();
                                m.stored_kind(ev.kind);
                            }
                            Outcome::Duplicate => m.write_dups.inc(),
                            // A ban that landed after the ingester's check.
                            Outcome::Blocked(_) => {
                                m.write_rejected.inc();
                                m.access_refused.inc();
                            }
                            _ => m.write_rejected.inc(),
                        }
                        let (ok, msg) = o.ok_reply();
                        let mut out = Vec::with_capacity(128);
                        message::ok(&mut out, ev.id_hex(), ok, &msg);
                        self.io.text(*conn, out);
                    }
                    if outcomes.iter().any(|o| matches!(o, Outcome::Written(_))) {
                        for tx in self.monitors.all() {
                            let _ = tx.send(MonitorMsg::Committed);
                        }
                    }
                }
                Err(e) => {
                    let reason = self.refusal(&e, events.len());
                    for (conn, ev) in conns.iter().zip(&events) {
                        let mut out = Vec::new();
                        message::ok(&mut out, ev.id_hex(), false, &reason);
                        self.io.text(*conn, out);
                    }
                }
            }
            // Every OK is queued: the events leave their connections' counts in flight.
            drop(tickets);
            prune.after_batch();
            last_end = Instant::now();
            contended = batch_len > 1 || !self.rx.is_empty();
        }
    }

    /// `Store::write_batch` plus a retention slice when one is due, with the commit timed on
    /// its own.
    fn write(
        &self,
        events: &[Event],
        terms: &[Option<crate::search::doc::Terms>],
        prune: &mut super::prune::RelayPruner,
    ) -> crate::store::Result<Vec<Outcome>> {
        let store = &self.shared.store;
        let mut txn = store.write_txn()?;
        let out = store.write_events_with(&mut txn, events, terms)?;
        let pruned = prune.in_batch(&self.shared, &mut txn);
        if pruned == 0 && !out.iter().any(|o| matches!(o, Outcome::Written(_))) {
            // Every event was refused (already stored, deleted, replaced, banned): nothing
            // to keep. Committing would still write pages (the id rows claimed and given
            // back, Meta) and fsync, so a flood of re-sent deleted events cost a disk flush
            // per batch; their OKs promise nothing durable.
            txn.abort();
            self.shared.metrics.write_batches_rolled_back.inc();
            return Ok(out);
        }
        let t = Instant::now();
        txn.commit()?;
        self.shared
            .metrics
            .commit_time_us
            .add(t.elapsed().as_micros() as u64);
        Ok(out)
    }

    /// The OK reason for a failed batch, and its log line: a full disk or map is
    /// `error: storage full, try later` (the OS error string means nothing to a client),
    /// counted, and logged at most once a minute, not once per batch.
    fn refusal(&self, e: &crate::store::StoreError, n: usize) -> String {
        use crate::store::StoreError;
        if !matches!(e, StoreError::MapFull | StoreError::Io(_)) {
            log::error!("write of {n} events failed: {e}");
            return format!("error: {e}");
        }
        self.shared.metrics.storage_full.inc();
        static LAST_LOG: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
        let mut last = LAST_LOG.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60)) {
            *last = Some(Instant::now());
            log::error!(
                "write of {n} events failed: {e} (storage full: refusing writes, logged once a minute; see wok_write_storage_full_total)"
            );
        }
        "error: storage full, try later".to_string()
    }

    fn purge(&self) {
        match self
            .shared
            .store
            .purge_all_expired(super::now(), PURGE_BATCH)
        {
            Ok(0) => {}
            Ok(total) => log::info!("purged {total} expired events"),
            Err(e) => log::error!("purging expired events failed: {e}"),
        }
    }
}

/// The next batch from `waiting`, taken in turns: at most `max` items, and none more once
/// their `rows` reach `max_rows` (so a batch always has at least one).
fn take_batch<T>(
    waiting: &mut Turns<T>,
    max: usize,
    max_rows: usize,
    rows: impl Fn(&T) -> usize,
) -> Vec<T> {
    let mut batch = Vec::with_capacity(waiting.len().min(max));
    let mut n = 0;
    while batch.len() < max && n < max_rows {
        let Some((_, m)) = waiting.pop() else {
            break;
        };
        n += rows(&m);
        batch.push(m);
    }
    batch
}

/// The index rows an event's write adds, about: created_at, id, pubkey, kind,
/// pubkey+kind, its record and payload, and one per indexed (single-letter) tag.
fn rows_of(ev: &Event) -> usize {
    7 + ev.packed_tags().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_stops_at_the_event_or_the_row_budget() {
        // Items are their own row counts, from two connections.
        let mut w: Turns<usize> = Turns::default();
        for r in [10, 10, 10, 10] {
            w.push(1, r);
            w.push(2, r);
        }
        assert_eq!(
            take_batch(&mut w, 100, 25, |r| *r).len(),
            3,
            "30 rows >= 25"
        );
        assert_eq!(
            take_batch(&mut w, 2, 1_000, |r| *r).len(),
            2,
            "the event budget"
        );
        // An event past the row budget on its own still goes (no batch is empty), and a
        // batch stops at the first event that reaches the budget.
        w.push(3, 5_000);
        let mut left = 4;
        while left > 0 {
            let b = take_batch(&mut w, 100, 25, |r| *r);
            assert!(!b.is_empty());
            let before_last: usize = b[..b.len() - 1].iter().sum();
            assert!(before_last < 25, "{b:?}");
            left -= b.len();
        }
        assert!(take_batch(&mut w, 100, 25, |r| *r).is_empty());
    }
}
