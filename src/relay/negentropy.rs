//! Negentropy threads: NIP-77 sessions (`NEG-OPEN`, `NEG-MSG`, `NEG-CLOSE`). A session's
//! set is the (created_at, id) of every event its filter matches, collected at NEG-OPEN by
//! the query engine at one snapshot and kept sealed in memory; each NEG-MSG is one
//! reconcile round by the `negentropy` crate (protocol V1). Collecting runs in time slices
//! of `relay.queryTimesliceBudgetMicroseconds`, the open collections taking turns with each
//! other and with every message that arrives, so a large NEG-OPEN (or thousands of them)
//! cannot hold up the thread's other sessions.
//!
//! Differences from strfry, on purpose: a client's own `limit` is honoured (capped at
//! `maxSyncEvents + 1`); too many sessions on one connection is a `NEG-ERR` (strfry sends
//! a NOTICE the client cannot tie to the session); sessions idle for
//! `relay.negentropy.idleTimeoutSeconds` are freed and the client is told (strfry keeps them
//! until the connection closes).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use negentropy::{Id, Negentropy, NegentropyStorageVector};

use super::auth::ReadAuth;
use super::fair::Turns;
use super::metrics::Stage;
use super::msg::{ConnId, IoSender, NegMsg};
use super::{now, Shared};
use crate::nostr::filter::EventView;
use crate::nostr::{message, Filter, SubId};
use crate::store::negtree::{TreeId, TreeView};
use crate::store::query::{Progress, Query};

/// Largest NEG-MSG the relay sends (strfry uses the same).
pub const FRAME_SIZE_LIMIT: u64 = 500_000;
/// Bounds of the idle sweep's period (a quarter of the idle timeout): at least every 10 s,
/// so a reload that shortens the timeout soon applies, and not busier than every 50 ms.
const SWEEP_MAX: Duration = Duration::from_secs(10);
const SWEEP_MIN: Duration = Duration::from_millis(50);
/// Collected sets one negentropy thread holds at once, in units of maxSyncEvents.
const HELD_SETS_PER_THREAD: u64 = 4;
/// Query work units between clock checks inside a collecting slice.
const WORK_CHUNK: u64 = 2_000;

/// How often to look for idle sessions: a session outlives its timeout by at most a
/// quarter of it.
fn sweep_period(idle: Option<Duration>) -> Duration {
    idle.map_or(SWEEP_MAX, |i| (i / 4).clamp(SWEEP_MIN, SWEEP_MAX))
}

pub struct NegWorker {
    pub rx: super::inbox::Inbox<NegMsg>,
    pub shared: Arc<Shared>,
    pub io: IoSender,
}

struct Session {
    set: SessionSet,
    last_used: Instant,
}

enum SessionSet {
    /// Collected at NEG-OPEN from the query engine (`items` of them), held until the
    /// session ends.
    Vector {
        neg: Negentropy<'static, NegentropyStorageVector>,
        items: u64,
    },
    /// A stored tree, read afresh for every message (nothing held between messages).
    Tree {
        tree: TreeId,
        /// The tree's text (filter and left-out kinds) when the session opened: checked on
        /// every message.
        filter: String,
        since: u64,
        until: u64,
    },
}

/// A NEG-OPEN whose set is still being collected, a time slice at a time.
struct Collecting {
    conn: ConnId,
    sub_id: SubId,
    query: Query,
    storage: NegentropyStorageVector,
    items: u64,
    /// More than this many items fails the session.
    max: u64,
    /// `max` was cut to what the thread had room for (decides the NEG-ERR reason).
    short_of_room: bool,
    auth: ReadAuth,
    /// The client's first message, answered once the set is complete.
    msg: Vec<u8>,
}

/// How a collecting slice ended.
enum Slice {
    Done,
    Paused,
    TooMany,
}

#[derive(Default)]
struct Sessions {
    by_conn: HashMap<ConnId, HashMap<SubId, Session>>,
    /// NEG-OPENs still collecting, served in turns by connection (one with ten open
    /// collections gets one slice per round, like one with one).
    collecting: Turns<Collecting>,
    /// Items held by this thread's collected sets plus the room reserved by the ones still
    /// collecting (their `max`), against `HELD_SETS_PER_THREAD` × maxSyncEvents.
    held: u64,
}

impl SessionSet {
    fn held(&self) -> u64 {
        match self {
            SessionSet::Vector { items, .. } => *items,
            SessionSet::Tree { .. } => 0,
        }
    }
}

impl Sessions {
    fn remove(&mut self, conn: ConnId, sub: &SubId) -> bool {
        let mut freed = None;
        self.collecting.retain_conn(conn, |c| {
            let keep = &c.sub_id != sub;
            if !keep {
                freed = Some(c.max);
            }
            keep
        });
        if let Some(max) = freed {
            self.held -= max;
            return true;
        }
        let Some(subs) = self.by_conn.get_mut(&conn) else {
            return false;
        };
        let Some(s) = subs.remove(sub) else {
            return false;
        };
        self.held -= s.set.held();
        if subs.is_empty() {
            self.by_conn.remove(&conn);
        }
        true
    }

    fn insert(&mut self, conn: ConnId, sub: SubId, s: Session) {
        self.held += s.set.held();
        self.by_conn.entry(conn).or_default().insert(sub, s);
    }

    fn count(&self, conn: ConnId) -> usize {
        self.by_conn.get(&conn).map_or(0, HashMap::len) + self.collecting.iter_conn(conn).count()
    }

    fn close_conn(&mut self, conn: ConnId) {
        if let Some(subs) = self.by_conn.remove(&conn) {
            self.held -= subs.values().map(|s| s.set.held()).sum::<u64>();
        }
        self.held -= self.collecting.iter_conn(conn).map(|c| c.max).sum::<u64>();
        self.collecting.remove_conn(conn);
    }
}

impl NegWorker {
    pub fn run(self) {
        let mut sessions = Sessions::default();
        let mut last_sweep = Instant::now();
        let mut next_sweep = last_sweep + sweep_period(self.idle_timeout());
        // The inbox by connection, served in turns (fair share): a connection with a
        // burst of NEG-MSGs delays another's by at most one of them.
        let mut inbox: Turns<NegMsg> = Turns::default();
        let mut prio = super::ThreadPriority::default();
        loop {
            prio.follow_config(super::msg::Lane::Light, &self.shared.config());
            // With work under way, only look at the inbox between turns.
            let wait = if sessions.collecting.is_empty() && inbox.is_empty() {
                next_sweep.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            match self.rx.recv_timeout(wait) {
                Ok(m) => inbox.push(m.conn(), m),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // The inbox is bounded, so taking all of it is too.
            for m in self.rx.try_iter() {
                inbox.push(m.conn(), m);
            }
            if let Some((_, m)) = inbox.pop() {
                self.handle(m, &mut sessions);
                // A reload may have shortened the timeout since the sweep was planned.
                next_sweep = next_sweep.min(last_sweep + sweep_period(self.idle_timeout()));
            }
            if let Some((_, c)) = sessions.collecting.pop() {
                self.collect_turn(c, &mut sessions);
            }
            if Instant::now() >= next_sweep {
                let idle = self.idle_timeout();
                if let Some(idle) = idle {
                    self.sweep(&mut sessions, idle);
                }
                last_sweep = Instant::now();
                next_sweep = last_sweep + sweep_period(idle);
            }
        }
    }

    /// `relay.negentropy.idleTimeoutSeconds` (live); `None` = sessions never expire.
    fn idle_timeout(&self) -> Option<Duration> {
        let secs = self.shared.config().relay.negentropy.idle_timeout_seconds;
        (secs > 0).then(|| Duration::from_secs(secs))
    }

    fn handle(&self, m: NegMsg, sessions: &mut Sessions) {
        match m {
            NegMsg::Open {
                conn,
                sub_id,
                filter,
                msg,
                auth,
                // Held to the end of the arm: the message leaves the count in flight once
                // its answer is queued.
                mut ticket,
            } => {
                ticket.waited(Stage::Negentropy);
                // NIP-77: opening an open id closes the old session first.
                sessions.remove(conn, &sub_id);
                let cfg = self.shared.config();
                let max_sessions =
                    usize::try_from(cfg.relay.max_subs_per_connection).unwrap_or(usize::MAX);
                if sessions.count(conn) >= max_sessions {
                    return self.err(conn, &sub_id, "blocked: too many concurrent NEG requests");
                }
                // Collected sets cost ~40 bytes an item for the whole session: each thread
                // holds at most a few maxSyncEvents' worth across all its sessions.
                let max = cfg.relay.negentropy.max_sync_events;
                let room = max
                    .saturating_mul(HELD_SETS_PER_THREAD)
                    .saturating_sub(sessions.held);
                let mut set = match self.tree_set(&filter, &auth) {
                    Ok(Some(set)) => set,
                    Ok(None) => {
                        // Collected in turns (see `collect_turn`), its room reserved now.
                        let cap = max.min(room);
                        let snapshot = match self.shared.store.snapshot() {
                            Ok(s) => s,
                            Err(e) => {
                                log::error!("negentropy snapshot failed: {e}");
                                return self.err(conn, &sub_id, "error: internal error");
                            }
                        };
                        // Without a client limit the set is every match (more than `cap`
                        // fails the session, checked as it grows): gathered in levId order.
                        // A client's limit keeps the newest matches: the ordered scan.
                        let mut filter = filter;
                        if let Some(l) = filter.limit {
                            filter.limit = Some(l.min(cap.saturating_add(1)));
                        }
                        sessions.held += cap;
                        sessions.collecting.push(
                            conn,
                            Collecting {
                                conn,
                                sub_id,
                                // Candidates held while gathering stay within the
                                // room reserved (8 bytes each against ~40 an item).
                                query: Query::new(vec![filter], u64::MAX, snapshot, now())
                                    .window(usize::try_from(cap).unwrap_or(usize::MAX).max(1024)),
                                storage: NegentropyStorageVector::new(),
                                items: 0,
                                max: cap,
                                short_of_room: room < max,
                                auth,
                                msg,
                            },
                        );
                        return;
                    }
                    Err(reason) => return self.err(conn, &sub_id, reason),
                };
                if self.round(conn, &sub_id, &mut set, &msg) {
                    sessions.insert(
                        conn,
                        sub_id,
                        Session {
                            set,
                            last_used: Instant::now(),
                        },
                    );
                }
            }
            NegMsg::Msg {
                conn,
                sub_id,
                msg,
                mut ticket,
            } => {
                ticket.waited(Stage::Negentropy);
                let Some(s) = sessions
                    .by_conn
                    .get_mut(&conn)
                    .and_then(|subs| subs.get_mut(&sub_id))
                else {
                    return self.err(conn, &sub_id, "closed: unknown subscription handle");
                };
                s.last_used = Instant::now();
                if !self.round(conn, &sub_id, &mut s.set, &msg) {
                    sessions.remove(conn, &sub_id);
                }
            }
            NegMsg::Close {
                conn,
                sub_id,
                ticket: _done,
            } => {
                sessions.remove(conn, &sub_id);
            }
            NegMsg::ConnClosed { conn } => {
                sessions.close_conn(conn);
            }
        }
    }

    /// A built tree serving `filter` (since/until aside) that holds exactly what this
    /// reader may see of it; `None` when the set must be collected; the NEG-ERR reason on
    /// failure.
    fn tree_set(
        &self,
        filter: &Filter,
        auth: &ReadAuth,
    ) -> Result<Option<SessionSet>, &'static str> {
        // A reader who sees everything the filter matches: the exact tree. One who may see
        // no restricted event (no AUTH) and everything else: the public tree that leaves
        // exactly those kinds out. Anyone else (an authenticated reader of only their own
        // DMs) has the set collected.
        let except: &[u64] = if auth.sees_all_of(filter) {
            &[]
        } else if auth.authed.is_none() {
            &auth.restricted
        } else {
            return Ok(None);
        };
        let store = &self.shared.store;
        let tree = store
            .read_txn()
            .and_then(|txn| store.tree_for_except(&txn, filter, except))
            .map_err(|e| {
                log::error!("negentropy tree lookup failed: {e}");
                "error: internal error"
            })?;
        Ok(tree.map(|tree| SessionSet::Tree {
            tree,
            filter: crate::store::negtree::tree_text(
                &crate::store::negtree::tree_filter_text(filter),
                except,
            ),
            since: filter.since,
            until: filter.until,
        }))
    }

    /// One turn of a collecting NEG-OPEN: a time slice of its query; then, when complete,
    /// its first round, or its NEG-ERR; else back in line.
    fn collect_turn(&self, mut c: Collecting, sessions: &mut Sessions) {
        let outcome = match self.collect_slice(&mut c) {
            Ok(o) => o,
            Err(e) => {
                log::error!("[{}] negentropy query failed: {e}", c.conn);
                sessions.held -= c.max;
                return self.err(c.conn, &c.sub_id, "error: internal error");
            }
        };
        match outcome {
            Slice::Paused => sessions.collecting.push(c.conn, c),
            Slice::TooMany => {
                sessions.held -= c.max;
                let reason = if c.short_of_room {
                    "rate-limited: too many negentropy sessions in progress, try again later"
                } else {
                    "blocked: too many query results"
                };
                self.err(c.conn, &c.sub_id, reason);
            }
            Slice::Done => {
                sessions.held -= c.max;
                // Neither call can fail on a fresh vector sealed once.
                let _ = c.storage.seal();
                log::debug!("negentropy set: {} events", c.items);
                let mut set = match Negentropy::owned(c.storage, FRAME_SIZE_LIMIT) {
                    Ok(neg) => SessionSet::Vector {
                        neg,
                        items: c.items,
                    },
                    Err(e) => {
                        log::error!("negentropy setup failed: {e}");
                        return self.err(c.conn, &c.sub_id, "error: internal error");
                    }
                };
                if self.round(c.conn, &c.sub_id, &mut set, &c.msg) {
                    sessions.insert(
                        c.conn,
                        c.sub_id,
                        Session {
                            set,
                            last_used: Instant::now(),
                        },
                    );
                }
            }
        }
    }

    /// Adds what `c`'s filter matches (and its reader may read) to its set, for at most
    /// one time slice, in a fresh read transaction (the query keeps its snapshot).
    fn collect_slice(&self, c: &mut Collecting) -> crate::store::Result<Slice> {
        let budget = Duration::from_micros(
            self.shared
                .config()
                .relay
                .query_timeslice_budget_microseconds
                .max(100),
        );
        let store = &self.shared.store;
        let txn = store.read_txn()?;
        let start = Instant::now();
        loop {
            let (auth, storage, items) = (&c.auth, &mut c.storage, &mut c.items);
            // Straight from the record the scan loaded (no second lookup by levId).
            let mut add = |_, r: &crate::store::Record<'_>| {
                let ok = auth.may_read(r);
                if ok {
                    // Cannot fail on an unsealed vector.
                    let _ = storage.insert(r.created_at(), Id::from_byte_array(*r.id()));
                    *items += 1;
                }
                ok
            };
            let p = c.query.run_unordered(store, &txn, WORK_CHUNK, &mut add)?;
            if c.items > c.max {
                return Ok(Slice::TooMany);
            }
            if p == Progress::Done {
                return Ok(Slice::Done);
            }
            if start.elapsed() >= budget {
                return Ok(Slice::Paused);
            }
        }
    }

    /// One reconcile round; false (after telling the client) if the session is over.
    fn round(&self, conn: ConnId, sub: &SubId, set: &mut SessionSet, msg: &[u8]) -> bool {
        let result = match set {
            SessionSet::Vector { neg, .. } => neg.reconcile(msg).map_err(|e| e.to_string()),
            SessionSet::Tree {
                tree,
                filter,
                since,
                until,
            } => {
                let store = &self.shared.store;
                let txn = match store.read_txn() {
                    Ok(t) => t,
                    Err(e) => {
                        log::error!("[{conn}] negentropy: {e}");
                        self.err(conn, sub, "error: internal error");
                        return false;
                    }
                };
                match store.tree_serving(&txn, *tree) {
                    Ok(Some(f)) if f == *filter => {}
                    Ok(_) => {
                        // Removed or rebuilt under this session: its answers would be wrong.
                        self.err(conn, sub, "closed: the stored set changed; reopen");
                        return false;
                    }
                    Err(e) => {
                        log::error!("[{conn}] negentropy tree {tree}: {e}");
                        self.err(conn, sub, "error: internal error");
                        return false;
                    }
                }
                let view = match TreeView::new(store, &txn, *tree, *since, *until) {
                    Ok(v) => v,
                    Err(e) => {
                        log::error!("[{conn}] negentropy tree {tree}: {e}");
                        self.err(conn, sub, "error: internal error");
                        return false;
                    }
                };
                let out = Negentropy::borrowed(&view, FRAME_SIZE_LIMIT)
                    .and_then(|mut n| n.reconcile(msg))
                    .map_err(|e| e.to_string());
                if view.failed() {
                    self.err(conn, sub, "error: internal error");
                    return false;
                }
                out
            }
        };
        match result {
            Ok(reply) => {
                let mut out = Vec::with_capacity(reply.len() * 2 + 64);
                message::neg_msg(&mut out, sub, &reply);
                self.io.text(conn, out);
                true
            }
            Err(e) => {
                log::debug!("[{conn}] negentropy protocol error: {e}");
                self.err(conn, sub, "PROTOCOL-ERROR");
                false
            }
        }
    }

    fn sweep(&self, sessions: &mut Sessions, timeout: Duration) {
        let idle: Vec<(ConnId, SubId)> = sessions
            .by_conn
            .iter()
            .flat_map(|(conn, subs)| {
                subs.iter()
                    .filter(|(_, s)| s.last_used.elapsed() >= timeout)
                    .map(|(sub, _)| (*conn, sub.clone()))
            })
            .collect();
        for (conn, sub) in idle {
            sessions.remove(conn, &sub);
            self.err(conn, &sub, "closed: idle timeout");
        }
    }

    fn err(&self, conn: ConnId, sub: &SubId, reason: &str) {
        let mut out = Vec::with_capacity(64 + reason.len());
        message::neg_err(&mut out, sub.as_str(), reason);
        self.io.text(conn, out);
    }
}
