//! Req-worker threads: the stored part of REQ and COUNT. Each query runs in time slices of
//! `relay.queryTimesliceBudgetMicroseconds`, each in a fresh read transaction. Connections
//! take turns (`fair::Turns`): one slice of one query per connection per turn, so a
//! connection's new REQ waits for at most one slice of each other busy connection, however
//! many queries they have queued; within a connection a new REQ goes before its queries
//! that already had a slice, so its own long scan never delays its short one. After EOSE
//! the subscription moves to the req-monitor with the snapshot its scan used, so nothing
//! is missed or sent twice.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::auth::ReadAuth;
use super::conn_map::{locked, ConnMap, Entry};
use super::fair::Turns;
use super::metrics::Stage;
use super::msg::{ConnId, IoSender, Lane, MonitorMsg, Outbound, Pool, ReqMsg, TextBatch, Ticket};
use super::{now, Shared, ThreadPriority};
use crate::nostr::filter::EventView;
use crate::nostr::message;
use crate::nostr::{Filter, SubId};
use crate::policy::limits::SubSlot;
use crate::search::hll::Hll;
use crate::store::query::{Progress, Query};
use crate::store::LevId;

/// Work units between clock checks inside a slice.
const WORK_CHUNK: u64 = 2_000;
/// Events between back-pressure checks inside a slice.
const PACE: usize = 16;

/// A connection's open subscriptions, with the filter values each holds and its place in
/// its IP's count (given back when the entry is dropped).
pub type ConnSubs = HashMap<SubId, (usize, Option<SubSlot>)>;

/// A REQ (limit cap) or a COUNT (count cap).
enum Mode {
    Req(u64),
    Count(u64),
}

struct Running {
    conn: ConnId,
    sub_id: SubId,
    /// Owns the filters; handed to the monitor when the scan ends (one copy, not two).
    query: Query,
    snapshot: LevId,
    /// `Some(n)` for COUNT: events counted so far.
    count: Option<u64>,
    auth: ReadAuth,
    /// The connection's pending outbound bytes (back-pressure).
    outbound: Option<Arc<AtomicUsize>>,
    /// The REQ's place in its connection's count in flight, handed to the monitor with the
    /// subscription (or dropped with a COUNT's answer, or when replaced or closed).
    ticket: Ticket,
    /// Has had a slice (its wait in this worker's queue is counted at the first).
    started: bool,
    /// NIP-45: a COUNT of one filter whose first tag attribute has one value gets the
    /// HyperLogLog registers of the counted events' authors.
    hll: Option<std::cell::RefCell<Hll>>,
    /// Such a COUNT whose answer is the same for every reader: extends a cached answer (or
    /// starts one) and keeps the result (`hll_cache`).
    cached: Option<Cached>,
}

struct Cached {
    filter: Filter,
    offset: u8,
    /// `Store::deletions` in the snapshot's transaction.
    deletions: u64,
    /// The cached answer's count this COUNT started from.
    base: u64,
    /// The earliest expiration among the counted events.
    expires: std::cell::Cell<u64>,
}

impl Running {
    fn backlog(&self) -> usize {
        self.outbound
            .as_ref()
            .map_or(0, |p| p.load(Ordering::Relaxed))
    }
}

pub struct ReqWorker {
    pub rx: super::inbox::Inbox<ReqMsg>,
    /// Each connection's subscriptions (scanning or live), shared with this thread's sibling
    /// in the other lane: they count wherever the connection's next REQ is served.
    pub subs: RefCell<ConnMap<ConnSubs>>,
    /// Its lane: the busy lane's threads run at `relay.busyLaneNice`.
    pub lane: Lane,
    pub shared: Arc<Shared>,
    pub io: IoSender,
    pub monitors: Pool<MonitorMsg>,
}

impl ReqWorker {
    pub fn run(self) {
        let mut running: Turns<Running> = Turns::default();
        let mut prio = ThreadPriority::default();
        loop {
            prio.follow_config(self.lane, &self.shared.config());
            if running.is_empty() {
                match self.rx.recv() {
                    Ok(m) => self.handle(m, &mut running),
                    Err(_) => return,
                }
            }
            while let Ok(m) = self.rx.try_recv() {
                self.handle(m, &mut running);
            }
            // Back-pressure: skip queries whose connection has not drained its backlog.
            let hwm = self.high_water_mark();
            let Some((_, mut r)) = running.pop_where(|_, r| r.backlog() < hwm) else {
                // Everything is waiting for slow readers: wait for a message or a moment.
                match self.rx.recv_timeout(Duration::from_millis(5)) {
                    Ok(m) => self.handle(m, &mut running),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                }
                continue;
            };
            if !r.started {
                r.started = true;
                r.ticket.waited(Stage::ReqWorker);
            }
            match self.slice(&mut r) {
                Ok(true) => self.finish(r),
                // Behind its connection's other queries, and the connection behind the others.
                Ok(false) => running.push(r.conn, r),
                Err(e) => {
                    log::error!("[{}] query failed: {e}", r.conn);
                    let mut out = Vec::new();
                    message::closed(&mut out, r.sub_id.as_str(), "error: internal error");
                    self.io.text(r.conn, out);
                    self.release(r.conn, &r.sub_id);
                }
            }
        }
    }

    /// A connection's subscriptions; the lock is its own, uncontended but while the
    /// connection changes lane (`conn_map`).
    fn subs(&self, conn: ConnId) -> Entry<ConnSubs> {
        self.subs.borrow_mut().get(conn).clone()
    }

    fn handle(&self, m: ReqMsg, running: &mut Turns<Running>) {
        let cfg = self.shared.config();
        if let ReqMsg::Req {
            conn,
            sub_id,
            filters,
            ..
        }
        | ReqMsg::Count {
            conn,
            sub_id,
            filters,
            ..
        } = &m
        {
            if !cfg.search.enabled && filters.iter().any(|f| f.search.is_some()) {
                let mut out = Vec::new();
                message::closed(
                    &mut out,
                    sub_id.as_str(),
                    "invalid: search (NIP-50) is not enabled on this relay",
                );
                self.io.text(*conn, out);
                return;
            }
        }
        match m {
            ReqMsg::Req {
                conn,
                sub_id,
                filters,
                auth,
                ticket,
                subs: per_ip,
            } => {
                let values: usize = filters.iter().map(Filter::values).sum();
                let admitted = self.admit(&cfg, conn, &sub_id, values, &per_ip);
                let replaces = match admitted {
                    Ok(replaces) => replaces,
                    Err(why) => {
                        let mut out = Vec::new();
                        message::closed(&mut out, sub_id.as_str(), &why);
                        self.io.text(conn, out);
                        return;
                    }
                };
                // Only an accepted REQ stops the old one's scan: a refused replacement leaves
                // it running, to its EOSE.
                running.retain_conn(conn, |r| r.sub_id != sub_id);
                if replaces {
                    // Same id again: the new REQ replaces the old subscription.
                    self.monitors.dispatch(
                        conn,
                        MonitorMsg::Unsubscribe {
                            conn,
                            sub_id: sub_id.clone(),
                        },
                    );
                }
                let mode = Mode::Req(cfg.relay.max_filter_limit);
                // A new query goes before its connection's scans that already had a slice.
                if let Some(r) = self.start(conn, sub_id, filters, auth, mode, ticket) {
                    running.push_front(conn, r);
                }
            }
            ReqMsg::Count {
                conn,
                sub_id,
                filters,
                auth,
                ticket,
            } => {
                // A running COUNT takes a slot too, so COUNTs cannot flood a worker.
                let counting = running
                    .iter_conn(conn)
                    .filter(|r| r.count.is_some())
                    .count();
                let open = locked(&self.subs(conn)).len();
                if (counting + open) as u64 >= cfg.relay.max_subs_per_connection {
                    let mut out = Vec::new();
                    message::closed(&mut out, sub_id.as_str(), "error: too many concurrent REQs");
                    self.io.text(conn, out);
                    return;
                }
                let cap = cfg.relay.max_filter_limit_count.saturating_add(1);
                let mode = Mode::Count(cap);
                if let Some(r) = self.start(conn, sub_id, filters, auth, mode, ticket) {
                    running.push_front(conn, r);
                }
            }
            ReqMsg::Close {
                conn,
                sub_id,
                ticket: _done,
            } => {
                running.retain_conn(conn, |r| r.sub_id != sub_id);
                self.release(conn, &sub_id);
                self.monitors
                    .dispatch(conn, MonitorMsg::Unsubscribe { conn, sub_id });
            }
            ReqMsg::ConnClosed { conn } => {
                running.remove_conn(conn);
                if let Some(open) = self.subs.borrow_mut().remove(conn) {
                    self.give_back(locked(&open).values().map(|v| v.0).sum());
                }
                // After any Subscribe this worker sent for the connection.
                self.monitors
                    .dispatch(conn, MonitorMsg::ConnClosed { conn });
            }
        }
    }

    /// Records a new subscription, or one replacing the same id, if it fits the
    /// connection's, its IP's and the relay's limits: `Ok(replaces)`, or the reason for
    /// CLOSED (a refused replacement leaves the old one as it was).
    fn admit(
        &self,
        cfg: &crate::config::Config,
        conn: ConnId,
        sub_id: &SubId,
        values: usize,
        per_ip: &crate::policy::limits::SubLimit,
    ) -> Result<bool, String> {
        let subs = self.subs(conn);
        let mut open = locked(&subs);
        let replaces = open.contains_key(sub_id);
        if !replaces && open.len() as u64 >= cfg.relay.max_subs_per_connection {
            return Err("error: too many concurrent REQs".to_string());
        }
        let old = open.get(sub_id).map_or(0, |v| v.0);
        // A new subscription takes a place in its IP's count (`maxSubscriptionsPerIp`; given
        // back as `slot` drops if refused below); a replacement keeps the old one's.
        let slot = match replaces {
            true => None,
            false => per_ip.take(&cfg.relay.limits, &self.shared.metrics.limits)?,
        };
        self.take_values(cfg, &open, old, values)?;
        let slot = slot.or_else(|| open.get_mut(sub_id).and_then(|v| v.1.take()));
        open.insert(sub_id.clone(), (values, slot));
        Ok(replaces)
    }

    /// Accounts a subscription's `values` (replacing one that held `old`) against the
    /// connection's and the relay's budgets; the reason for CLOSED when either is full.
    fn take_values(
        &self,
        cfg: &crate::config::Config,
        open: &HashMap<SubId, (usize, Option<SubSlot>)>,
        old: usize,
        values: usize,
    ) -> Result<(), String> {
        let r = &cfg.relay;
        let mine: usize = open.values().map(|v| v.0).sum::<usize>() - old + values;
        let per_conn = usize::try_from(r.max_filter_values_per_connection).unwrap_or(usize::MAX);
        if per_conn > 0 && mine > per_conn {
            return Err(format!(
                "rate-limited: this connection's subscriptions would hold {mine} filter values \
                 (max {per_conn}); close some first"
            ));
        }
        let total = usize::try_from(r.max_filter_values_total).unwrap_or(usize::MAX);
        let fits =
            self.shared
                .filter_values
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                    let next = held.saturating_sub(old).saturating_add(values);
                    (total == 0 || next <= total || values <= old).then_some(next)
                });
        if fits.is_err() {
            return Err(
                "rate-limited: the relay holds as many subscriptions as it can; \
                        try again later"
                    .into(),
            );
        }
        Ok(())
    }

    /// Forgets one subscription and gives its filter values back.
    fn release(&self, conn: ConnId, sub_id: &SubId) {
        let removed = locked(&self.subs(conn)).remove(sub_id);
        if let Some((v, _slot)) = removed {
            self.give_back(v);
        }
    }

    fn give_back(&self, values: usize) {
        let _ =
            self.shared
                .filter_values
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                    Some(held.saturating_sub(values))
                });
    }

    /// A new query, with the snapshot it scans up to; `None` (CLOSED sent) on a DB error.
    fn start(
        &self,
        conn: ConnId,
        sub_id: SubId,
        filters: Vec<Filter>,
        auth: ReadAuth,
        mode: Mode,
        ticket: Ticket,
    ) -> Option<Running> {
        let (cap, count) = match mode {
            Mode::Req(cap) => (cap, None),
            Mode::Count(cap) => (cap, Some(0)),
        };
        let hll = match (&count, filters.as_slice()) {
            (Some(_), [f]) => f.hll_offset.0.map(|o| std::cell::RefCell::new(Hll::new(o))),
            _ => None,
        };
        let cacheable = match (&hll, filters.as_slice()) {
            (Some(h), [f]) if f.search.is_none() && auth.sees_all_of(f) => {
                Some((f.clone(), h.borrow().offset))
            }
            _ => None,
        };
        // The snapshot, and for a cacheable COUNT the deletion count in the same
        // transaction (the two must describe one state of the DB).
        let store = &self.shared.store;
        let snap = store.read_txn().and_then(|txn| {
            let s = store.latest_lev_id(&txn)?;
            let d = match cacheable {
                Some(_) => store.deletions(&txn)?,
                None => 0,
            };
            Ok((s, d))
        });
        let (snapshot, deletions) = match snap {
            Ok(s) => s,
            Err(e) => {
                log::error!("snapshot failed: {e}");
                let mut out = Vec::new();
                message::closed(&mut out, sub_id.as_str(), "error: internal error");
                self.io.text(conn, out);
                return None;
            }
        };
        let mut after = 0;
        let mut count = count;
        let cached = cacheable.map(|(filter, offset)| {
            let mut c = Cached {
                filter,
                offset,
                deletions,
                base: 0,
                expires: std::cell::Cell::new(u64::MAX),
            };
            let hit = self
                .shared
                .hll_cache
                .get(&c.filter, offset, deletions, snapshot, now());
            if let (Some(a), Some(h)) = (hit, &hll) {
                after = a.through;
                c.base = a.count;
                c.expires.set(a.expires);
                *h.borrow_mut() = a.hll;
                count = Some(a.count);
                self.shared.metrics.hll_cache_hits.inc();
            }
            c
        });
        // Pause every few events so back-pressure is checked often (see `slice`).
        let query = Query::new(filters, cap, snapshot, now())
            .after(after)
            .pace(PACE);
        let outbound = self
            .shared
            .outbound
            .lock()
            .ok()
            .and_then(|m| m.get(&conn).cloned());
        Some(Running {
            conn,
            sub_id,
            query,
            snapshot,
            count,
            auth,
            outbound,
            ticket,
            started: false,
            hll,
            cached,
        })
    }

    /// Above this many pending outbound bytes a connection's scans pause (they resume as
    /// the socket drains); the connection is only closed past `maxPendingOutboundBytes`.
    fn high_water_mark(&self) -> usize {
        let cap = usize::try_from(self.shared.config().relay.max_pending_outbound_bytes)
            .unwrap_or(usize::MAX);
        if cap == 0 {
            1 << 20
        } else {
            (cap / 4).clamp(1, 1 << 20)
        }
    }

    /// Runs one time slice; true when the query is complete.
    fn slice(&self, r: &mut Running) -> crate::store::Result<bool> {
        let cfg = self.shared.config();
        let budget = Duration::from_micros(cfg.relay.query_timeslice_budget_microseconds.max(100));
        let store = &self.shared.store;
        let txn = store.read_txn()?;
        let start = Instant::now();
        let hwm = self.high_water_mark();
        let mut sent = 0usize;
        let mut levs = Vec::new();
        loop {
            levs.clear();
            // Restricted kinds are dropped per event, after the limit (as strfry).
            let auth = &r.auth;
            let hll = &r.hll;
            let expires = r.cached.as_ref().map(|c| &c.expires);
            let p = r
                .query
                .run_keeping(store, &txn, WORK_CHUNK, &mut levs, &|rec| {
                    let ok = auth.may_read(rec);
                    if let (true, Some(h)) = (ok, hll) {
                        h.borrow_mut().add(rec.pubkey());
                        if let (Some(e), Some(x)) = (expires, rec.expiration()) {
                            e.set(e.get().min(x));
                        }
                    }
                    ok
                })?;
            match &mut r.count {
                Some(n) => *n += levs.len() as u64,
                None => {
                    let mut jsons = Vec::with_capacity(levs.len());
                    for &lev in &levs {
                        if let Some(json) = super::stored_json(store, &txn, lev)? {
                            jsons.push(json);
                        }
                    }
                    // Sized up front: growing the buffer would copy the slice again.
                    let frame = r.sub_id.as_str().len() + message::EVENT_OVERHEAD;
                    let bytes = jsons.iter().map(|j| j.len() + frame).sum();
                    let mut batch = TextBatch::with_capacity(bytes, jsons.len());
                    for json in &jsons {
                        batch.push_with(|out| message::event(out, &r.sub_id, json));
                    }
                    if !batch.is_empty() {
                        sent += batch.bytes();
                        if let Some(p) = &r.outbound {
                            p.fetch_add(batch.bytes(), Ordering::Relaxed);
                        }
                        self.io.send(Outbound::SendPaced {
                            conn: r.conn,
                            batch,
                        });
                    }
                }
            }
            if p == Progress::Done {
                return Ok(true);
            }
            // Out of time, or the client is not keeping up: pause and let others run.
            if start.elapsed() >= budget || sent + r.backlog() >= hwm {
                return Ok(false);
            }
        }
    }

    /// Caches a complete COUNT+hll answer, if the DB removed nothing while it ran (the
    /// answer then holds for the snapshot it started from).
    fn keep_answer(&self, r: &Running, n: u64) {
        let (Some(c), Some(h)) = (&r.cached, &r.hll) else {
            return;
        };
        // Stopped at the count cap: not the whole count.
        if n - c.base
            >= self
                .shared
                .config()
                .relay
                .max_filter_limit_count
                .saturating_add(1)
        {
            return;
        }
        let store = &self.shared.store;
        let unchanged = store
            .read_txn()
            .and_then(|txn| store.deletions(&txn))
            .is_ok_and(|d| d == c.deletions);
        if unchanged {
            self.shared.hll_cache.put(
                c.filter.clone(),
                c.offset,
                crate::relay::hll_cache::Answer {
                    count: n,
                    hll: h.borrow().clone(),
                    through: r.snapshot,
                    deletions: c.deletions,
                    expires: c.expires.get(),
                },
            );
        }
    }

    fn finish(&self, mut r: Running) {
        // The scan was work, not waiting: the monitor's queue wait starts now.
        r.ticket.restart();
        let mut out = Vec::with_capacity(64);
        match r.count {
            Some(n) => {
                let max = self.shared.config().relay.max_filter_limit_count;
                self.keep_answer(&r, n);
                let hll = r.hll.as_ref().map(|h| h.borrow().to_hex());
                message::count_hll(&mut out, &r.sub_id, n.min(max), n > max, hll.as_deref());
                self.io.text(r.conn, out);
            }
            None => {
                // The monitor sends EOSE once the subscription is installed: a client that
                // reacts to EOSE (e.g. by publishing an ephemeral event elsewhere) can then
                // never race the subscription. It still follows the stored events, which
                // this worker queued to the io thread before this message.
                self.monitors.dispatch(
                    r.conn,
                    MonitorMsg::Subscribe {
                        conn: r.conn,
                        sub_id: r.sub_id,
                        filters: r.query.into_filters(),
                        snapshot: r.snapshot,
                        auth: r.auth,
                        ticket: r.ticket,
                    },
                );
            }
        }
    }
}
