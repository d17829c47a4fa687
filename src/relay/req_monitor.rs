//! Req-monitor threads: live subscriptions. The writer says `Committed` after each commit;
//! a short poll of the DB's latest levId also catches events written by other processes
//! (`wok import` into a running relay's DB). Each new event is matched once against the
//! inverted index and sent as one batch (one JSON copy, many recipients) to the io thread.
//!
//! No gap, no duplicate: a subscription arrives with the snapshot levId its stored scan
//! used. Events in (snapshot, last processed] are replayed to it alone; events at or below
//! the snapshot are never sent to it live.

use crate::store::search::StoredEvent;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::auth::ReadAuth;
use super::metrics::Stage;
use super::monitors::Monitors;
use super::msg::{ConnId, IoSender, MonitorMsg, Outbound};
use super::{now, Shared};
use crate::nostr::{message, Event, Filter, SubId};
use crate::store::LevId;

/// How often the DB is checked for writes by other processes.
const EXTERNAL_POLL: Duration = Duration::from_millis(100);
/// Most new levIds looked at per step.
const CATCH_UP_STEP: LevId = 10_000;

pub struct ReqMonitor {
    pub rx: Receiver<MonitorMsg>,
    pub shared: Arc<Shared>,
    pub io: IoSender,
}

impl ReqMonitor {
    pub fn run(self) {
        let store = &self.shared.store;
        let mut last_seen = match store.snapshot() {
            Ok(l) => l,
            Err(e) => {
                log::error!("monitor cannot read the DB: {e}");
                return;
            }
        };
        let mut mon = Monitors::new();
        let mut floors: HashMap<(ConnId, SubId), (LevId, ReadAuth)> = HashMap::new();
        let mut behind = false;
        loop {
            // Still catching up on a large external write: look at the inbox, don't wait.
            let wait = if behind {
                Duration::ZERO
            } else {
                EXTERNAL_POLL
            };
            match self.rx.recv_timeout(wait) {
                Ok(first) => {
                    for m in std::iter::once(first).chain(self.rx.try_iter()) {
                        self.handle(m, &mut mon, &mut floors, last_seen);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            behind = match self.deliver_new(&mut mon, &floors, &mut last_seen) {
                Ok(more) => more,
                Err(e) => {
                    log::error!("live delivery failed: {e}");
                    false
                }
            };
        }
    }

    fn handle(
        &self,
        m: MonitorMsg,
        mon: &mut Monitors,
        floors: &mut HashMap<(ConnId, SubId), (LevId, ReadAuth)>,
        last_seen: LevId,
    ) {
        match m {
            MonitorMsg::Subscribe {
                conn,
                sub_id,
                filters,
                snapshot,
                auth,
                mut ticket,
            } => {
                ticket.waited(Stage::ReqMonitor);
                let mut out = Vec::with_capacity(32 + sub_id.as_str().len());
                message::eose(&mut out, &sub_id);
                self.io.text(conn, out);
                if snapshot < last_seen {
                    if let Err(e) = self.replay(conn, &sub_id, &filters, &auth, snapshot, last_seen)
                    {
                        log::error!("[{conn}] replay failed: {e}");
                    }
                }
                floors.insert((conn, sub_id.clone()), (snapshot, auth));
                mon.set_clock(now());
                mon.subscribe(conn, sub_id, filters);
                // EOSE and the replay are queued: the REQ is finished.
                drop(ticket);
            }
            MonitorMsg::Unsubscribe { conn, sub_id } => {
                mon.unsubscribe(conn, &sub_id);
                floors.remove(&(conn, sub_id));
            }
            MonitorMsg::ConnClosed { conn } => {
                mon.close_conn(conn);
                floors.retain(|(c, _), _| *c != conn);
            }
            MonitorMsg::Committed => {}
            MonitorMsg::Ephemeral(ev) => self.ephemeral(mon, floors, &ev),
        }
    }

    /// Sends one subscription the events committed between its snapshot and `upto`.
    fn replay(
        &self,
        conn: ConnId,
        sub: &SubId,
        filters: &[Filter],
        auth: &ReadAuth,
        from: LevId,
        upto: LevId,
    ) -> crate::store::Result<()> {
        let store = &self.shared.store;
        let txn = store.read_txn()?;
        let t = now();
        for lev in from + 1..=upto {
            let Some(rec) = store.record(&txn, lev)? else {
                continue;
            };
            let ev = StoredEvent::new(store, &txn, rec, lev);
            if ev.rec.is_expired(t)
                || !filters.iter().any(|f| f.matches_with_search(&ev))
                || !auth.may_read(&ev.rec)
            {
                continue;
            }
            if let Some(json) = super::stored_json(store, &txn, lev)? {
                let mut out = Vec::with_capacity(json.len() + 80);
                message::event(&mut out, sub, &json);
                self.io.text(conn, out);
            }
        }
        Ok(())
    }

    fn deliver_new(
        &self,
        mon: &mut Monitors,
        floors: &HashMap<(ConnId, SubId), (LevId, ReadAuth)>,
        last_seen: &mut LevId,
    ) -> crate::store::Result<bool> {
        let store = &self.shared.store;
        let txn = store.read_txn()?;
        let newest = store.latest_lev_id(&txn)?;
        if newest <= *last_seen {
            return Ok(false);
        }
        // A bounded step, so a million-event import by another process neither holds one
        // read transaction for long nor keeps subscribe/close messages waiting.
        let latest = newest.min(last_seen.saturating_add(CATCH_UP_STEP));
        let t = now();
        let mut recipients = Vec::new();
        for lev in *last_seen + 1..=latest {
            if mon.is_empty() {
                break;
            }
            let Some(rec) = store.record(&txn, lev)? else {
                continue;
            };
            if rec.is_expired(t) {
                continue;
            }
            let ev = StoredEvent::new(store, &txn, rec, lev);
            mon.matches(&ev, &mut recipients);
            let rec = &ev.rec;
            // Fail closed: a subscription without its floor and read check gets nothing.
            recipients.retain(|r| {
                floors
                    .get(r)
                    .is_some_and(|(floor, auth)| lev > *floor && auth.may_read(rec))
            });
            if recipients.is_empty() {
                continue;
            }
            if let Some(json) = super::stored_json(store, &txn, lev)? {
                self.io.send(Outbound::EventBatch {
                    json: Arc::from(json.as_ref()),
                    recipients: std::mem::take(&mut recipients),
                });
            }
        }
        *last_seen = latest;
        Ok(latest < newest)
    }

    fn ephemeral(
        &self,
        mon: &mut Monitors,
        floors: &HashMap<(ConnId, SubId), (LevId, ReadAuth)>,
        ev: &Event,
    ) {
        let mut recipients = Vec::new();
        mon.matches(ev, &mut recipients);
        recipients.retain(|r| floors.get(r).is_some_and(|(_, auth)| auth.may_read(ev)));
        if !recipients.is_empty() {
            self.io.send(Outbound::EventBatch {
                json: Arc::from(ev.json()),
                recipients,
            });
        }
    }
}
