//! Ingester threads: decode client messages, validate events (structure, time window, id,
//! signature), refuse duplicates early with a read-only lookup, compile filters, keep each
//! connection's NIP-42 state, and route: events to the writer (ephemeral ones straight to
//! the monitors), REQ/COUNT/CLOSE to the req-workers. Every refusal is answered here.

use std::cell::RefCell;
use std::sync::Arc;

use heed::RoTxn;

use super::auth::{self, ReadAuth};
use super::conn_map::{locked, ConnMap};
use super::fair::Turns;
use super::metrics::Stage;
use super::msg::{ConnId, IngesterMsg, IoSender, Lane, NegMsg, Outbound, Pool, ReqMsg, Ticket};
use super::write_policy::PolicyMsg;
use super::{now, Shared, ThreadPriority};
use crate::config::Config;
use crate::nostr::kinds;
use crate::nostr::message::{self, ClientMsg, MsgError};
use crate::nostr::{decode, verify, Event, Filter, JsonParser, SubId};
use crate::policy::access;
use crate::policy::limits::{self, Peer};

/// Messages checked for duplicates under one read transaction before a fresh one is begun.
const TXN_MESSAGES: usize = 1024;
/// How long an ingester idles before it gives back parser buffers a long message grew.
const IDLE_TRIM: std::time::Duration = std::time::Duration::from_secs(1);

fn conn_of(m: &IngesterMsg) -> ConnId {
    match m {
        IngesterMsg::Text { conn, .. }
        | IngesterMsg::Connected { conn, .. }
        | IngesterMsg::Closed { conn } => *conn,
    }
}

/// NIP-42 state of one connection.
#[derive(Default)]
pub struct Session {
    challenge: Option<String>,
    authed: Option<[u8; 32]>,
    /// For the write-policy plugin's `sourceType`/`sourceInfo`.
    ip: Option<std::net::IpAddr>,
    /// Its rate limits (`relay.limits`).
    limits: Option<Box<Peer>>,
}

pub struct Ingester {
    pub rx: super::inbox::Inbox<IngesterMsg>,
    /// Each connection's session, shared with this thread's sibling in the other lane. A
    /// connection changes lane only with nothing in flight, but its last message's ticket
    /// is given back inside `handle`, just before that thread is done with the session: so
    /// each session has a lock of its own, which the other lane's thread waits for in that
    /// moment instead of seeing a session half-way.
    pub sessions: RefCell<ConnMap<Session>>,
    /// Its lane: the busy lane's threads run at `relay.busyLaneNice`.
    pub lane: Lane,
    pub shared: Arc<Shared>,
    pub io: IoSender,
    pub reqs: Pool<ReqMsg>,
    pub negs: Pool<NegMsg>,
    pub policy: Pool<PolicyMsg>,
}

impl Ingester {
    pub fn run(self) {
        let mut parser = JsonParser::new();
        // The inbox sorted by connection, served in turns (fair share): a connection's one
        // message waits for one message of each busy connection, not for their backlogs.
        let mut turns: Turns<IngesterMsg> = Turns::default();
        let mut prio = ThreadPriority::default();
        prio.follow_config(self.lane, &self.shared.config());
        verify::warm_cache();
        loop {
            // Idle for IDLE_TRIM after a long message: give back the parser buffers it grew
            // (a 100 KB message of 50,000 values: 3.5 MB), not keep them until the next.
            let first = if parser.holds_large() {
                match self.rx.recv_timeout(IDLE_TRIM) {
                    Ok(m) => m,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        parser.trim();
                        continue;
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match self.rx.recv() {
                    Ok(m) => m,
                    Err(_) => return,
                }
            };
            prio.follow_config(self.lane, &self.shared.config());
            turns.push(conn_of(&first), first);
            // One read transaction for the duplicate checks of many messages (DESIGN §1):
            // beginning one per event takes LMDB's reader-table lock every time.
            let mut txn = self.shared.store.read_txn().ok();
            let mut served = 0;
            loop {
                // What arrived meanwhile joins the turns before the next round.
                for m in self.rx.try_iter() {
                    turns.push(conn_of(&m), m);
                }
                if turns.is_empty() {
                    break;
                }
                if served >= TXN_MESSAGES {
                    // One read transaction per thread at a time: end the old one first.
                    txn.take();
                    txn = self.shared.store.read_txn().ok();
                    served = 0;
                }
                for _ in 0..turns.conns() {
                    let Some((_, m)) = turns.pop() else {
                        break;
                    };
                    served += 1;
                    self.serve(m, &mut parser, txn.as_deref());
                }
            }
        }
    }

    fn serve(&self, m: IngesterMsg, parser: &mut JsonParser, txn: Option<&RoTxn>) {
        match m {
            IngesterMsg::Text {
                conn,
                mut text,
                mut ticket,
            } => {
                ticket.waited(Stage::Ingester);
                let session = self.sessions.borrow_mut().get(conn).clone();
                let mut s = locked(&session);
                self.handle(conn, &mut s, &mut text, ticket, parser, txn);
            }
            IngesterMsg::Connected { conn, ip, limits } => {
                let s = Session {
                    ip: Some(ip),
                    limits: Some(limits),
                    ..Session::default()
                };
                self.sessions.borrow_mut().insert(conn, s);
            }
            IngesterMsg::Closed { conn } => {
                // Only authenticated connections leave the gauge (strfry decrements
                // it for every disconnect).
                let gone = self.sessions.borrow_mut().remove(conn);
                if gone.is_some_and(|s| locked(&s).authed.is_some()) {
                    self.shared.metrics.authenticated.dec();
                }
                self.reqs.dispatch(conn, ReqMsg::ConnClosed { conn });
                self.negs.dispatch(conn, NegMsg::ConnClosed { conn });
            }
        }
    }

    fn reply(&self, conn: ConnId, f: impl FnOnce(&mut Vec<u8>)) {
        let mut out = Vec::with_capacity(128);
        f(&mut out);
        self.io.text(conn, out);
    }

    /// Sends the connection its challenge, once (strfry sends it only when needed).
    fn ensure_challenge(&self, conn: ConnId, s: &mut Session) {
        if s.challenge.is_none() {
            self.shared.metrics.auth_challenges.inc();
            let c = auth::challenge(conn);
            self.reply(conn, |o| message::auth(o, &c));
            s.challenge = Some(c);
        }
    }

    fn read_auth(&self, cfg: &Config, s: &Session) -> ReadAuth {
        thread_local! {
            /// The restricted kinds parsed from the config text they came from: parsed again
            /// only when a reload changes that text, not per REQ.
            static RESTRICTED: std::cell::RefCell<(String, Arc<Vec<u64>>)> =
                std::cell::RefCell::new((String::new(), Arc::new(Vec::new())));
        }
        let text = &cfg.relay.auth.restricted_read_kinds;
        let restricted = RESTRICTED.with_borrow_mut(|(t, kinds)| {
            if t != text {
                t.clone_from(text);
                *kinds = Arc::new(auth::restricted_kinds(cfg));
            }
            kinds.clone()
        });
        ReadAuth {
            restricted,
            authed: s.authed,
            involved_only: cfg.relay.auth.restrict_read_to_involved_pubkey,
        }
    }

    /// The checks REQ and COUNT share: `filterValidation`, then the read restrictions
    /// (a request only for restricted kinds needs AUTH first). `None` once refused.
    fn admit(
        &self,
        conn: ConnId,
        s: &mut Session,
        cfg: &Config,
        sub_id: &SubId,
        filters: &[Filter],
    ) -> Option<ReadAuth> {
        if let Err(why) = validate_filters(cfg, filters) {
            self.closed(
                conn,
                sub_id,
                &format!("error: bad req: filter validation failed: {why}"),
            );
            return None;
        }
        if !self.may_read(conn, s, cfg, |why| self.closed(conn, sub_id, why)) {
            return None;
        }
        let auth = self.read_auth(cfg, s);
        if s.authed.is_none() && auth.fully_restricted(filters) {
            self.ensure_challenge(conn, s);
            self.closed(
                conn,
                sub_id,
                "auth-required: requested filter requires authentication",
            );
            return None;
        }
        Some(auth)
    }

    /// `relay.management.restrictReads`: members only (answered through `refuse`).
    fn may_read(
        &self,
        conn: ConnId,
        s: &mut Session,
        cfg: &Config,
        refuse: impl FnOnce(&str),
    ) -> bool {
        let verdict = self
            .shared
            .access
            .with(|a| access::may_read(cfg, a, s.authed.as_ref()));
        match verdict {
            Ok(()) => true,
            Err(why) => {
                if s.authed.is_none() {
                    self.ensure_challenge(conn, s);
                }
                refuse(why);
                false
            }
        }
    }

    /// `relay.limits`: the refusal reason when this connection may not send one more
    /// `kind` now; past `violationsBeforeDisconnect` io is told to close it.
    fn limited(
        &self,
        conn: ConnId,
        s: &Session,
        kind: limits::Kind,
        cfg: &Config,
    ) -> Option<String> {
        let r = s
            .limits
            .as_ref()?
            .check(kind, &cfg.relay.limits, &self.shared.metrics.limits)
            .err()?;
        if r.disconnect {
            self.io.send(Outbound::RateLimited { conn });
        }
        Some(r.reason)
    }

    fn closed(&self, conn: ConnId, sub: &SubId, reason: &str) {
        self.reply(conn, |o| message::closed(o, sub.as_str(), reason));
    }

    fn handle(
        &self,
        conn: ConnId,
        s: &mut Session,
        text: &mut [u8],
        ticket: Ticket,
        parser: &mut JsonParser,
        txn: Option<&RoTxn>,
    ) {
        // `ticket` goes on with the message when another stage finishes it; otherwise it is
        // dropped here, after the answer is queued.
        let cfg = self.shared.config();
        let msg = match decode(text, parser, &self.shared.decode_limits(&cfg)) {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                self.io.text(conn, e.reply());
                let limits = &self.shared.metrics.limits;
                if s.limits
                    .as_ref()
                    .is_some_and(|l| l.malformed(&cfg.relay.limits, limits))
                {
                    self.io.send(Outbound::RateLimited { conn });
                }
                return;
            }
        };
        match msg {
            ClientMsg::Event(ev) => {
                self.shared.metrics.client_message("EVENT");
                if let Some(why) = self.limited(conn, s, limits::Kind::Event, &cfg) {
                    return self.reply(conn, |o| message::ok(o, ev.id_hex(), false, &why));
                }
                self.event(conn, s, &cfg, ev, ticket, txn);
            }
            ClientMsg::Req { sub_id, filters } => {
                self.shared.metrics.client_message("REQ");
                if let Some(why) = self.limited(conn, s, limits::Kind::Req, &cfg) {
                    return self.closed(conn, &sub_id, &why);
                }
                let Some(auth) = self.admit(conn, s, &cfg, &sub_id, &filters) else {
                    return;
                };
                self.reqs.dispatch(
                    conn,
                    ReqMsg::Req {
                        conn,
                        sub_id,
                        filters,
                        auth,
                        ticket,
                        subs: s.limits.as_ref().map(|l| l.sub_limit()).unwrap_or_default(),
                    },
                );
            }
            ClientMsg::Count { sub_id, filters } => {
                self.shared.metrics.client_message("COUNT");
                if let Some(why) = self.limited(conn, s, limits::Kind::Req, &cfg) {
                    return self.closed(conn, &sub_id, &why);
                }
                if cfg.relay.max_filter_limit_count == 0 {
                    let e = MsgError::Closed {
                        sub_id: sub_id.as_str().to_owned(),
                        reason: "error: bad req: COUNT disabled".into(),
                    };
                    return self.io.text(conn, e.reply());
                }
                let Some(auth) = self.admit(conn, s, &cfg, &sub_id, &filters) else {
                    return;
                };
                if !auth.count_allowed(&filters) {
                    return self.closed(
                        conn,
                        &sub_id,
                        "restricted: can only count events you are involved in",
                    );
                }
                self.reqs.dispatch(
                    conn,
                    ReqMsg::Count {
                        conn,
                        sub_id,
                        filters,
                        auth,
                        ticket,
                    },
                );
            }
            ClientMsg::Close { sub_id } => {
                self.shared.metrics.client_message("CLOSE");
                self.reqs.dispatch(
                    conn,
                    ReqMsg::Close {
                        conn,
                        sub_id,
                        ticket,
                    },
                );
            }
            ClientMsg::Auth(ev) => {
                self.shared.metrics.client_message("AUTH");
                let checked = verify::check_event(&ev)
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        auth::check_auth_event(
                            &ev,
                            s.challenge.as_deref(),
                            s.authed.is_some(),
                            &cfg.relay.auth.service_url,
                        )
                        .map_err(|e| format!("error: {e}"))
                    })
                    .and_then(|()| {
                        ev.check_time(now(), &self.shared.time_window(&cfg))
                            .map_err(|e| e.to_string())
                    });
                match checked {
                    Ok(()) => {
                        s.authed = Some(ev.pubkey);
                        if let Some(l) = s.limits.as_mut() {
                            l.authed(&cfg.relay.limits, &ev.pubkey, &self.shared.pubkeys);
                        }
                        self.shared.metrics.auth_success.inc();
                        self.shared.metrics.authenticated.inc();
                        self.reply(conn, |o| {
                            message::ok(o, ev.id_hex(), true, "successfully authenticated")
                        });
                    }
                    Err(e) => {
                        self.shared.metrics.auth_failure.inc();
                        self.reply(conn, |o| message::ok(o, ev.id_hex(), false, &e));
                    }
                }
            }
            ClientMsg::NegOpen { .. } | ClientMsg::NegMsg { .. } | ClientMsg::NegClose { .. }
                if !cfg.relay.negentropy.enabled =>
            {
                self.reply(conn, |o| {
                    message::notice(o, "error: bad msg: negentropy disabled")
                });
            }
            ClientMsg::NegOpen {
                sub_id,
                filter,
                msg,
            } => {
                self.shared.metrics.client_message("NEG-OPEN");
                if !self.may_read(conn, s, &cfg, |why| {
                    self.reply(conn, |o| message::neg_err(o, sub_id.as_str(), why))
                }) {
                    return;
                }
                if let Some(why) = self.limited(conn, s, limits::Kind::NegOpen, &cfg) {
                    return self.reply(conn, |o| message::neg_err(o, sub_id.as_str(), &why));
                }
                let auth = self.read_auth(&cfg, s);
                if s.authed.is_none() && auth.fully_restricted(std::slice::from_ref(&filter)) {
                    self.ensure_challenge(conn, s);
                    return self.reply(conn, |o| {
                        message::neg_err(
                            o,
                            sub_id.as_str(),
                            "auth-required: requested filter requires authentication",
                        )
                    });
                }
                self.negs.dispatch(
                    conn,
                    NegMsg::Open {
                        conn,
                        sub_id,
                        filter,
                        msg,
                        auth,
                        ticket,
                    },
                );
            }
            ClientMsg::NegMsg { sub_id, msg } => {
                self.shared.metrics.client_message("NEG-MSG");
                self.negs.dispatch(
                    conn,
                    NegMsg::Msg {
                        conn,
                        sub_id,
                        msg,
                        ticket,
                    },
                );
            }
            ClientMsg::NegClose { sub_id } => {
                self.shared.metrics.client_message("NEG-CLOSE");
                self.negs.dispatch(
                    conn,
                    NegMsg::Close {
                        conn,
                        sub_id,
                        ticket,
                    },
                );
            }
        }
    }

    fn event(
        &self,
        conn: ConnId,
        s: &mut Session,
        cfg: &Config,
        ev: Box<Event>,
        ticket: Ticket,
        txn: Option<&RoTxn>,
    ) {
        let refuse = |reason: &str| {
            self.reply(conn, |o| message::ok(o, ev.id_hex(), false, reason));
        };
        if let Err(e) = ev.check_time(now(), &self.shared.time_window(cfg)) {
            return refuse(&e.to_string());
        }
        // Bans, kind lists and who may write: a few hash lookups in this thread's snapshot.
        let mode = access::write_mode(cfg);
        if let Err(why) = self
            .shared
            .access
            .with(|a| a.may_write(mode, &ev.id, &ev.pubkey, ev.kind))
        {
            self.shared.metrics.access_refused.inc();
            return refuse(&why);
        }
        if ev.kind == kinds::KIND_AUTH {
            return refuse("invalid: kind 22242 is only for AUTH");
        }
        if ev.embeds_protected() {
            return refuse("blocked: reposts can't embed protected events");
        }
        if ev.is_protected() {
            // NIP-70: only the authenticated author may publish it.
            if !cfg.relay.auth.enabled || cfg.relay.auth.service_url.is_empty() {
                return refuse("blocked: event marked as protected");
            }
            match s.authed {
                None => {
                    self.ensure_challenge(conn, s);
                    return refuse("auth-required: event marked as protected");
                }
                Some(pk) if pk != ev.pubkey => {
                    return refuse("restricted: must be published by the author")
                }
                Some(_) => {}
            }
        }
        // A duplicate costs one lookup instead of a signature check. (The batch's snapshot
        // may miss a just-committed copy; the writer's own check catches that.)
        if let Some(txn) = txn {
            if matches!(self.shared.store.lookup_id(txn, &ev.id), Ok(Some(_))) {
                // Counted like the writer's duplicates: strfry finds them all in its writer.
                self.shared.metrics.write_dups.inc();
                return self.reply(conn, |o| {
                    message::ok(o, ev.id_hex(), true, "duplicate: have this event")
                });
            }
        }
        // An event its author deleted, sent again (clients and mirrors re-broadcast), is
        // refused from its tombstone, one lookup instead of a signature check; the writer
        // would refuse it anyway. (Its id is checked to be the hash of its pubkey and
        // content, so only the signature goes unchecked: nothing is stored either way.)
        if let Some(txn) = txn {
            // The lookup first: hashing the id too would be done twice for every event
            // that is not deleted (verify checks it again).
            if matches!(
                self.shared.store.is_deleted(txn, &ev.id, &ev.pubkey),
                Ok(true)
            ) && ev.check_id().is_ok()
            {
                self.shared.metrics.write_rejected.inc();
                let (_, why) = crate::store::write::Outcome::Deleted.ok_reply();
                return refuse(&why);
            }
        }
        // NIP-13 before the signature: counting zero bits is cheaper than a verify.
        if let Err(e) = crate::policy::pow::check(cfg, &ev) {
            self.shared.metrics.pow_refused.inc();
            return refuse(&e);
        }
        if let Err(e) = verify::check_event(&ev) {
            if cfg.relay.logging.invalid_events {
                log::info!(
                    "[{conn}] rejected invalid event {}: {}",
                    ev.id_hex(),
                    e.reason()
                );
            }
            return refuse(&e.to_string());
        }
        // NIP-50: the index's terms are made here, on one of several ingester threads,
        // not on the one writer thread (which still tokenizes anything that comes without).
        let terms = self
            .shared
            .store
            .search_kinds()
            .filter(|k| k.contains(ev.kind) && ev.class() != kinds::KindClass::Ephemeral)
            .map(|_| crate::search::doc::event_terms(&ev));
        // Always through the write-policy thread, plugin or not: a connection's events then
        // keep one path, so turning the plugin on or off live cannot reorder them.
        self.policy.dispatch(
            conn,
            PolicyMsg {
                conn,
                event: ev,
                ip: s.ip,
                authed: s.authed,
                ticket,
                terms,
            },
        );
    }
}

/// strfry's `relay.filterValidation.*` (off by default).
fn validate_filters(cfg: &Config, filters: &[Filter]) -> Result<(), String> {
    let v = &cfg.relay.filter_validation;
    if !v.enabled {
        return Ok(());
    }
    let n = filters.len() as u64;
    if n < v.min_filters_per_req || n > v.max_filters_per_req {
        return Err(format!("invalid number of filters: {n}"));
    }
    let allowed: Vec<u64> = v
        .allowed_kinds
        .split(',')
        .filter_map(|k| k.trim().parse().ok())
        .collect();
    for f in filters {
        let kinds = f.kinds.as_deref().unwrap_or(&[]);
        if kinds.len() as u64 > v.max_kinds_per_filter {
            return Err(format!("too many kinds in filter: {}", kinds.len()));
        }
        if let Some(k) = kinds
            .iter()
            .find(|k| !allowed.is_empty() && !allowed.contains(k))
        {
            return Err(format!("kind not allowed: {k}"));
        }
        if v.require_author_or_tag {
            let one = |n: Option<usize>| n == Some(1);
            let tag = |c: u8| f.tags.iter().find(|t| t.name == c).map(|t| t.values.len());
            if !(one(f.authors.as_ref().map(Vec::len)) || one(tag(b'p')) || one(tag(b'e'))) {
                return Err("filter must have exactly one author, p tag, or e tag".into());
            }
        }
    }
    Ok(())
}
