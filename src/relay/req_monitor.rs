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
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use super::auth::ReadAuth;
use super::fair::Turns;
use super::metrics::Stage;
use super::monitors::Monitors;
use super::msg::{ConnId, IoSender, MonitorMsg, Outbound};
use super::{now, Shared};
use crate::nostr::{message, Event, Filter, SubId};
use crate::store::LevId;

/// How often the DB is checked for writes by other processes.
const EXTERNAL_POLL: Duration = Duration::from_millis(100);
/// How long subscriptions are installed, in turns, before new events are delivered.
const ROUNDS_BUDGET: Duration = Duration::from_millis(1);
/// Most new levIds looked at per step.
const CATCH_UP_STEP: LevId = 10_000;

pub struct ReqMonitor {
    pub rx: super::inbox::Inbox<MonitorMsg>,
    pub shared: Arc<Shared>,
    pub io: IoSender,
}

/// A monitor thread's state between steps.
struct State {
    mon: Monitors,
    floors: HashMap<(ConnId, SubId), (LevId, ReadAuth)>,
    /// The newest levId delivered live.
    last_seen: LevId,
    /// Subscribe/unsubscribe messages by connection, served in turns (fair share).
    turns: Turns<MonitorMsg>,
    /// Still catching up on a large external write.
    behind: bool,
}

impl ReqMonitor {
    pub fn run(self) {
        let last_seen = match self.shared.store.snapshot() {
            Ok(l) => l,
            Err(e) => {
                log::error!("monitor cannot read the DB: {e}");
                return;
            }
        };
        let mut st = State {
            mon: Monitors::new(),
            floors: HashMap::new(),
            last_seen,
            turns: Turns::default(),
            behind: false,
        };
        let mut prio = super::ThreadPriority::default();
        loop {
            prio.follow_config(super::msg::Lane::Light, &self.shared.config());
            if !self.step(&mut st) {
                break;
            }
        }
    }

    /// Takes what the inbox holds, serves one round of turns (one message of each
    /// connection waiting), then delivers new events. False once the inbox is gone.
    fn step(&self, st: &mut State) -> bool {
        // Work queued or a large external write to catch up on: look at the inbox, don't wait.
        let wait = if st.behind || !st.turns.is_empty() {
            Duration::ZERO
        } else {
            EXTERNAL_POLL
        };
        match self.rx.recv_timeout(wait) {
            Ok(first) => {
                for m in std::iter::once(first).chain(self.rx.try_iter()) {
                    self.take(m, st);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return false,
        }
        // A connection's REQ waits for one subscription of each busy connection (each with
        // its replay), not for every subscription queued before it. Rounds go on for a
        // short budget before live delivery, so a burst of subscriptions shares one
        // delivery pass instead of one per round.
        let started = Instant::now();
        while !st.turns.is_empty() && started.elapsed() < ROUNDS_BUDGET {
            for _ in 0..st.turns.conns() {
                let Some((_, m)) = st.turns.pop() else { break };
                self.handle(m, &mut st.mon, &mut st.floors, st.last_seen);
            }
        }
        st.behind = match self.deliver_new(&mut st.mon, &st.floors, &mut st.last_seen) {
            Ok(more) => more,
            Err(e) => {
                log::error!("live delivery failed: {e}");
                false
            }
        };
        true
    }

    /// Sorts one inbox message: a connection's subscribe/unsubscribe wait their turn; a
    /// close ends the connection at once (what it still had queued is dropped with it);
    /// ephemeral events go out at once to the subscriptions installed so far.
    fn take(&self, m: MonitorMsg, st: &mut State) {
        match m {
            MonitorMsg::Subscribe { conn, .. } | MonitorMsg::Unsubscribe { conn, .. } => {
                st.turns.push(conn, m);
            }
            MonitorMsg::ConnClosed { conn } => {
                st.turns.remove_conn(conn);
                self.handle(m, &mut st.mon, &mut st.floors, st.last_seen);
            }
            MonitorMsg::Committed | MonitorMsg::Ephemeral(_) => {
                self.handle(m, &mut st.mon, &mut st.floors, st.last_seen);
            }
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
                let mut eose = Vec::with_capacity(32 + sub_id.as_str().len());
                message::eose(&mut eose, &sub_id);
                let mut texts = vec![eose];
                if snapshot < last_seen {
                    if let Err(e) =
                        self.replay(&mut texts, &sub_id, &filters, &auth, snapshot, last_seen)
                    {
                        log::error!("[{conn}] replay failed: {e}");
                    }
                }
                // EOSE and the replay in one message: one wake-up of io, not one per event.
                self.io.send(Outbound::SendAll { conn, texts });
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

    /// Adds to `out` one subscription's events committed between its snapshot and `upto`.
    fn replay(
        &self,
        out: &mut Vec<Vec<u8>>,
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
                let mut text = Vec::with_capacity(json.len() + 80);
                message::event(&mut text, sub, &json);
                out.push(text);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::msg::{InFlight, IoSender};

    fn subscribe(inflight: &Arc<InFlight>, conn: ConnId, sub: &str) -> MonitorMsg {
        MonitorMsg::Subscribe {
            conn,
            sub_id: SubId::new(sub).expect("sub id"),
            filters: vec![Filter::default()],
            snapshot: 0,
            auth: ReadAuth::open(),
            ticket: inflight.ticket(1, crate::relay::msg::Lane::Light),
        }
    }

    /// The monitor serves connections in turns: a polite connection's one REQ gets its
    /// EOSE after at most one of a busy connection's, not after its whole backlog (in
    /// arrival order it came 51st); a close drops what its connection still had queued.
    #[test]
    fn subscriptions_are_served_in_turns_by_connection() {
        let (_dir, store) = crate::store::tests::temp_store();
        let shared = Shared::for_tests(store, crate::config::Config::default());
        let poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        let (io_tx, io_rx) = crossbeam_channel::unbounded();
        let (tx, rx) = crate::relay::inbox::unbounded();
        let m = ReqMonitor {
            rx,
            shared: shared.clone(),
            io: IoSender {
                tx: io_tx,
                waker,
                woken: Arc::default(),
            },
        };
        let inflight = InFlight::new(shared.metrics.clone());
        let (busy, polite, gone) = (1, 2, 3);
        for i in 0..50 {
            tx.send(subscribe(&inflight, busy, &format!("b{i}")))
                .expect("send");
        }
        for i in 0..5 {
            tx.send(subscribe(&inflight, gone, &format!("g{i}")))
                .expect("send");
        }
        tx.send(MonitorMsg::ConnClosed { conn: gone })
            .expect("send");
        tx.send(subscribe(&inflight, polite, "p")).expect("send");
        let mut st = State {
            mon: Monitors::new(),
            floors: HashMap::new(),
            last_seen: 0,
            turns: Turns::default(),
            behind: false,
        };
        let mut order = Vec::new();
        while order.len() < 51 {
            assert!(m.step(&mut st));
            for out in io_rx.try_iter() {
                if let Outbound::SendAll { conn, .. } = out {
                    order.push(conn);
                }
            }
        }
        let at = order
            .iter()
            .position(|c| *c == polite)
            .expect("polite EOSE");
        assert!(at <= 1, "polite EOSE came {} of {}", at + 1, order.len());
        assert!(
            !order.contains(&gone),
            "a closed connection's queue was served"
        );
        assert_eq!(order.iter().filter(|c| **c == busy).count(), 50);
        assert!(io_rx.try_recv().is_err());
    }
}
