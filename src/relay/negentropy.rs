//! Negentropy threads: NIP-77 sessions (`NEG-OPEN`, `NEG-MSG`, `NEG-CLOSE`). A session's
//! set is the (created_at, id) of every event its filter matches, collected once at
//! NEG-OPEN by the query engine in one read snapshot and kept sealed in memory; each
//! NEG-MSG is one reconcile round by the `negentropy` crate (protocol V1).
//!
//! Differences from strfry, on purpose: a client's own `limit` is honoured (capped at
//! `maxSyncEvents + 1`); too many sessions on one connection is a `NEG-ERR` (strfry sends
//! a NOTICE the client cannot tie to the session); sessions idle for
//! `relay.negentropy.idleTimeoutSeconds` are freed and the client is told (strfry keeps them
//! until the connection closes).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use negentropy::{Id, Negentropy, NegentropyStorageVector};

use super::auth::ReadAuth;
use super::metrics::Stage;
use super::msg::{ConnId, IoSender, NegMsg};
use super::{now, Shared};
use crate::nostr::filter::EventView;
use crate::nostr::{message, Filter, SubId};
use crate::store::negtree::{TreeId, TreeView};
use crate::store::query::Query;

/// Largest NEG-MSG the relay sends (strfry uses the same).
pub const FRAME_SIZE_LIMIT: u64 = 500_000;
/// Bounds of the idle sweep's period (a quarter of the idle timeout): at least every 10 s,
/// so a reload that shortens the timeout soon applies, and not busier than every 50 ms.
const SWEEP_MAX: Duration = Duration::from_secs(10);
const SWEEP_MIN: Duration = Duration::from_millis(50);
/// Collected sets one negentropy thread holds at once, in units of maxSyncEvents.
const HELD_SETS_PER_THREAD: u64 = 4;

/// How often to look for idle sessions: a session outlives its timeout by at most a
/// quarter of it.
fn sweep_period(idle: Option<Duration>) -> Duration {
    idle.map_or(SWEEP_MAX, |i| (i / 4).clamp(SWEEP_MIN, SWEEP_MAX))
}

pub struct NegWorker {
    pub rx: Receiver<NegMsg>,
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
        /// The tree's filter when the session opened: checked on every message.
        filter: String,
        since: u64,
        until: u64,
    },
}

#[derive(Default)]
struct Sessions {
    by_conn: HashMap<ConnId, HashMap<SubId, Session>>,
    /// Items held by this thread's collected sets, against `HELD_ITEMS_PER_THREAD`.
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
        self.by_conn.get(&conn).map_or(0, HashMap::len)
    }

    fn close_conn(&mut self, conn: ConnId) {
        if let Some(subs) = self.by_conn.remove(&conn) {
            self.held -= subs.values().map(|s| s.set.held()).sum::<u64>();
        }
    }
}

impl NegWorker {
    pub fn run(self) {
        let mut sessions = Sessions::default();
        let mut last_sweep = Instant::now();
        let mut next_sweep = last_sweep + sweep_period(self.idle_timeout());
        loop {
            let wait = next_sweep.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(m) => {
                    self.handle(m, &mut sessions);
                    // A reload may have shortened the timeout since the sweep was planned.
                    next_sweep = next_sweep.min(last_sweep + sweep_period(self.idle_timeout()));
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
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
                let mut set = match self.open_set(filter, &auth, max, room) {
                    Ok(set) => set,
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

    /// The set a new session reconciles against, or the NEG-ERR reason it cannot have one.
    /// A filter that is a built tree's (since/until aside) is served from the tree when this
    /// reader may see everything in it; any other is collected by the query engine.
    fn open_set(
        &self,
        filter: Filter,
        auth: &ReadAuth,
        max_events: u64,
        room: u64,
    ) -> Result<SessionSet, &'static str> {
        let internal = |what: &str, e: &dyn std::fmt::Display| {
            log::error!("negentropy {what} failed: {e}");
            "error: internal error"
        };
        if auth.sees_all_of(&filter) {
            let store = &self.shared.store;
            let tree = store
                .read_txn()
                .and_then(|txn| store.tree_for(&txn, &filter))
                .map_err(|e| internal("tree lookup", &e))?;
            if let Some(tree) = tree {
                return Ok(SessionSet::Tree {
                    tree,
                    filter: crate::store::negtree::tree_filter_text(&filter),
                    since: filter.since,
                    until: filter.until,
                });
            }
        }
        let storage = self
            .collect(filter, max_events.min(room), auth)
            .map_err(|e| internal("query", &e))?
            .ok_or(if room < max_events {
                "rate-limited: too many negentropy sessions in progress, try again later"
            } else {
                "blocked: too many query results"
            })?;
        let items = {
            use negentropy::NegentropyStorageBase;
            storage.size().unwrap_or(0) as u64
        };
        let neg =
            Negentropy::owned(storage, FRAME_SIZE_LIMIT).map_err(|e| internal("setup", &e))?;
        Ok(SessionSet::Vector { neg, items })
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

    /// The sealed (created_at, id) set of what `filter` matches and `auth` may read; `None`
    /// when it holds more than `max` events.
    fn collect(
        &self,
        mut filter: Filter,
        max: u64,
        auth: &ReadAuth,
    ) -> crate::store::Result<Option<NegentropyStorageVector>> {
        let store = &self.shared.store;
        let txn = store.read_txn()?;
        let snapshot = store.latest_lev_id(&txn)?;
        let cap = max.saturating_add(1);
        filter.limit = Some(filter.limit.map_or(cap, |l| l.min(cap)));
        let mut query = Query::new(vec![filter], u64::MAX, snapshot, now());
        let mut levs = Vec::new();
        query.run_keeping(store, &txn, u64::MAX, &mut levs, &|r| auth.may_read(r))?;
        if levs.len() as u64 > max {
            return Ok(None);
        }
        let mut storage = NegentropyStorageVector::with_capacity(levs.len());
        for lev in levs {
            if let Some(rec) = store.record(&txn, lev)? {
                // Neither call can fail on a fresh, unsealed vector.
                let _ = storage.insert(rec.created_at(), Id::from_byte_array(*rec.id()));
            }
        }
        let _ = storage.seal();
        {
            use negentropy::NegentropyStorageBase;
            log::debug!("negentropy set: {} events", storage.size().unwrap_or(0));
        }
        Ok(Some(storage))
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
