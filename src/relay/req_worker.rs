//! Req-worker threads: the stored part of REQ and COUNT. Each query runs in time slices of
//! `relay.queryTimesliceBudgetMicroseconds`, each in a fresh read transaction; a new REQ
//! goes to the front and runs before any query that has already had a slice, so a long scan
//! never delays a short one. After EOSE the subscription moves to the req-monitor with the
//! snapshot its scan used, so nothing is missed or sent twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::auth::ReadAuth;
use super::msg::{ConnId, IoSender, MonitorMsg, Pool, ReqMsg};
use super::{now, Shared};
use crate::nostr::message;
use crate::nostr::{Filter, SubId};
use crate::store::query::{Progress, Query};
use crate::store::LevId;

/// Work units between clock checks inside a slice.
const WORK_CHUNK: u64 = 2_000;

/// A REQ (limit cap) or a COUNT (count cap).
enum Mode {
    Req(u64),
    Count(u64),
}

struct Running {
    conn: ConnId,
    sub_id: SubId,
    /// Kept for the monitor (the query consumes its own copy).
    filters: Vec<Filter>,
    query: Query,
    snapshot: LevId,
    /// `Some(n)` for COUNT: events counted so far.
    count: Option<u64>,
    auth: ReadAuth,
}

pub struct ReqWorker {
    pub rx: Receiver<ReqMsg>,
    pub shared: Arc<Shared>,
    pub io: IoSender,
    pub monitors: Pool<MonitorMsg>,
}

impl ReqWorker {
    pub fn run(self) {
        let mut running: VecDeque<Running> = VecDeque::new();
        // Every open subscription per connection (scanning or live), for the limit.
        let mut subs: HashMap<ConnId, HashSet<SubId>> = HashMap::new();
        loop {
            if running.is_empty() {
                match self.rx.recv() {
                    Ok(m) => self.handle(m, &mut running, &mut subs),
                    Err(_) => return,
                }
            }
            while let Ok(m) = self.rx.try_recv() {
                self.handle(m, &mut running, &mut subs);
            }
            if let Some(mut r) = running.pop_front() {
                match self.slice(&mut r) {
                    Ok(true) => self.finish(r),
                    Ok(false) => running.push_back(r),
                    Err(e) => {
                        log::error!("[{}] query failed: {e}", r.conn);
                        let mut out = Vec::new();
                        message::closed(&mut out, r.sub_id.as_str(), "error: internal error");
                        self.io.text(r.conn, out);
                        if let Some(s) = subs.get_mut(&r.conn) {
                            s.remove(&r.sub_id);
                        }
                    }
                }
            }
        }
    }

    fn handle(
        &self,
        m: ReqMsg,
        running: &mut VecDeque<Running>,
        subs: &mut HashMap<ConnId, HashSet<SubId>>,
    ) {
        let cfg = self.shared.config();
        match m {
            ReqMsg::Req {
                conn,
                sub_id,
                filters,
                auth,
            } => {
                running.retain(|r| !(r.conn == conn && r.sub_id == sub_id));
                let open = subs.entry(conn).or_default();
                if open.contains(&sub_id) {
                    // Same id again: the new REQ replaces the old subscription.
                    self.monitors.dispatch(
                        conn,
                        MonitorMsg::Unsubscribe {
                            conn,
                            sub_id: sub_id.clone(),
                        },
                    );
                } else if open.len() as u64 >= cfg.relay.max_subs_per_connection {
                    let mut out = Vec::new();
                    message::closed(&mut out, sub_id.as_str(), "error: too many concurrent REQs");
                    self.io.text(conn, out);
                    return;
                }
                open.insert(sub_id.clone());
                self.start(
                    running,
                    conn,
                    sub_id,
                    filters,
                    auth,
                    Mode::Req(cfg.relay.max_filter_limit),
                );
            }
            ReqMsg::Count {
                conn,
                sub_id,
                filters,
                auth,
            } => {
                // COUNT is a one-shot: it does not hold a subscription slot.
                let cap = cfg.relay.max_filter_limit_count.saturating_add(1);
                self.start(running, conn, sub_id, filters, auth, Mode::Count(cap));
            }
            ReqMsg::Close { conn, sub_id } => {
                running.retain(|r| !(r.conn == conn && r.sub_id == sub_id));
                if let Some(s) = subs.get_mut(&conn) {
                    s.remove(&sub_id);
                }
                self.monitors
                    .dispatch(conn, MonitorMsg::Unsubscribe { conn, sub_id });
            }
            ReqMsg::ConnClosed { conn } => {
                running.retain(|r| r.conn != conn);
                subs.remove(&conn);
            }
        }
    }

    fn start(
        &self,
        running: &mut VecDeque<Running>,
        conn: ConnId,
        sub_id: SubId,
        filters: Vec<Filter>,
        auth: ReadAuth,
        mode: Mode,
    ) {
        let (cap, count) = match mode {
            Mode::Req(cap) => (cap, None),
            Mode::Count(cap) => (cap, Some(0)),
        };
        let snapshot = match self
            .shared
            .store
            .read_txn()
            .and_then(|t| self.shared.store.latest_lev_id(&t))
        {
            Ok(s) => s,
            Err(e) => {
                log::error!("snapshot failed: {e}");
                return;
            }
        };
        let query = Query::new(filters.clone(), cap, snapshot, now());
        // New queries go first: they preempt scans that already had a slice.
        running.push_front(Running {
            conn,
            sub_id,
            filters,
            query,
            snapshot,
            count,
            auth,
        });
    }

    /// Runs one time slice; true when the query is complete.
    fn slice(&self, r: &mut Running) -> crate::store::Result<bool> {
        let cfg = self.shared.config();
        let budget = Duration::from_micros(cfg.relay.query_timeslice_budget_microseconds.max(100));
        let store = &self.shared.store;
        let txn = store.read_txn()?;
        let start = Instant::now();
        let mut levs = Vec::new();
        loop {
            levs.clear();
            let p = r.query.run(store, &txn, WORK_CHUNK, &mut levs)?;
            if !r.auth.restricted.is_empty() {
                // Restricted kinds are dropped per event, after the limit (as strfry).
                let mut kept = Vec::with_capacity(levs.len());
                for &lev in &levs {
                    if store
                        .record(&txn, lev)?
                        .is_some_and(|rec| r.auth.may_read(&rec))
                    {
                        kept.push(lev);
                    }
                }
                levs = kept;
            }
            match &mut r.count {
                Some(n) => *n += levs.len() as u64,
                None => {
                    for &lev in &levs {
                        if let Some(json) = store.payload(&txn, lev)? {
                            let mut out = Vec::with_capacity(json.len() + 80);
                            message::event(&mut out, &r.sub_id, &json);
                            self.io.text(r.conn, out);
                        }
                    }
                }
            }
            if p == Progress::Done {
                return Ok(true);
            }
            if start.elapsed() >= budget {
                return Ok(false);
            }
        }
    }

    fn finish(&self, r: Running) {
        let mut out = Vec::with_capacity(64);
        match r.count {
            Some(n) => {
                let max = self.shared.config().relay.max_filter_limit_count;
                message::count(&mut out, &r.sub_id, n.min(max), n > max);
                self.io.text(r.conn, out);
            }
            None => {
                message::eose(&mut out, &r.sub_id);
                self.io.text(r.conn, out);
                self.monitors.dispatch(
                    r.conn,
                    MonitorMsg::Subscribe {
                        conn: r.conn,
                        sub_id: r.sub_id,
                        filters: r.filters,
                        snapshot: r.snapshot,
                        auth: r.auth,
                    },
                );
            }
        }
    }
}
