//! `wok stream <url>`: a live link to another relay. `down` subscribes to its new events and
//! writes them locally (write-policy plugin with sourceType `Stream`, then the write rules);
//! `up` sends events written locally by any process (the DB's newest levId is polled, as
//! the relay's monitors do); `both` does both and never sends back an event it received.
//!
//! Unlike strfry's stream (and router), a reconnect catches up: the new subscription asks
//! for everything since a minute before the newest event seen, so nothing published while
//! the link was down is lost (duplicates are harmless: the write rules drop them). Upstream
//! the same holds, since local levIds are remembered across reconnects.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::sync::Dir;
use super::ws::{Recv, WsClient};
use crate::nostr::{verify, Event, JsonParser, Limits};
use crate::relay::plugin::{Plugin, Request, Verdict};
use crate::store::{LevId, Store};

pub struct StreamOptions {
    pub url: String,
    pub dir: Dir,
    pub limits: Limits,
    pub plugin: String,
    pub plugin_timeout: Duration,
}

/// Ids received from the peer recently, so `both` never echoes them back.
const ECHO_MEMORY: usize = 100_000;
const POLL: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Events written per transaction, and local events sent per pass.
const WRITE_BATCH: usize = 1_000;

#[derive(Default, Debug, Clone, Copy)]
pub struct StreamStats {
    pub down: u64,
    pub up: u64,
    pub reconnects: u64,
}

struct State {
    /// Newest created_at received, for the catch-up after a reconnect.
    newest_seen: Option<u64>,
    /// Local events up to this levId have been considered for sending.
    sent_upto: LevId,
    recent: HashSet<[u8; 32]>,
    recent_order: VecDeque<[u8; 32]>,
    plugin: Plugin,
    parser: JsonParser,
    stats: StreamStats,
}

impl State {
    fn remember(&mut self, id: [u8; 32]) {
        if self.recent.insert(id) {
            self.recent_order.push_back(id);
            if self.recent_order.len() > ECHO_MEMORY {
                if let Some(old) = self.recent_order.pop_front() {
                    self.recent.remove(&old);
                }
            }
        }
    }
}

/// Runs until `stop` is set; reconnects (with backoff) whenever the link drops.
pub fn run(store: &Store, o: &StreamOptions, stop: &AtomicBool) -> Result<StreamStats, String> {
    let sent_upto = {
        let txn = store.read_txn().map_err(|e| e.to_string())?;
        store.latest_lev_id(&txn).map_err(|e| e.to_string())?
    };
    let mut st = State {
        newest_seen: None,
        sent_upto,
        recent: HashSet::new(),
        recent_order: VecDeque::new(),
        plugin: Plugin::new(),
        parser: JsonParser::new(),
        stats: StreamStats::default(),
    };
    let mut backoff = Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        match WsClient::connect(&o.url, 16 << 20) {
            Ok(mut ws) => {
                backoff = Duration::from_secs(1);
                log::info!("stream: connected to {}", o.url);
                if let Err(e) = serve(store, o, &mut ws, &mut st, stop) {
                    log::warn!("stream: {e}; reconnecting");
                    st.stats.reconnects += 1;
                }
                ws.close();
            }
            Err(e) => log::warn!("stream: {e}; retrying in {} s", backoff.as_secs()),
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(POLL);
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    Ok(st.stats)
}

fn down(o: &StreamOptions) -> bool {
    matches!(o.dir, Dir::Down | Dir::Both)
}

fn up(o: &StreamOptions) -> bool {
    matches!(o.dir, Dir::Up | Dir::Both)
}

/// One connection's life: subscribe, then move events both ways until it fails or `stop`.
fn serve(
    store: &Store,
    o: &StreamOptions,
    ws: &mut WsClient,
    st: &mut State,
    stop: &AtomicBool,
) -> Result<(), String> {
    if down(o) {
        let filter = match st.newest_seen {
            Some(t) => format!("{{\"since\":{}}}", t.saturating_sub(60)),
            None => "{\"limit\":0}".to_string(),
        };
        ws.send(format!("[\"REQ\",\"wok-stream\",{filter}]"))?;
    }
    let mut pending: Vec<Event> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if up(o) {
            send_local(store, ws, st)?;
        }
        // Take everything that is already here (up to a batch), so a busy link writes many
        // events per transaction, not one.
        let mut wait = POLL;
        while pending.len() < WRITE_BATCH {
            match ws.recv(wait)? {
                Recv::Idle => break,
                Recv::Text(t) => {
                    if t.starts_with("[\"CLOSED\",\"wok-stream\"") {
                        return Err(format!("the relay closed our subscription: {t}"));
                    }
                    if let Some(ev) = event_of(&mut st.parser, t, &o.limits) {
                        pending.push(ev);
                    }
                }
            }
            wait = Duration::from_millis(1);
        }
        if !pending.is_empty() {
            store_events(store, o, st, std::mem::take(&mut pending))?;
        }
    }
    Ok(())
}

/// A verified event from `["EVENT","wok-stream",{…}]`, if that is what `text` is.
fn event_of(parser: &mut JsonParser, text: String, limits: &Limits) -> Option<Event> {
    let mut bytes = text.into_bytes();
    let ev = parser
        .parse(&mut bytes, |v| {
            let mut items = v.array()?;
            (items.next()?.as_str()? == "EVENT").then_some(())?;
            (items.next()?.as_str()? == "wok-stream").then_some(())?;
            Event::from_json(items.next()?, limits).ok()
        })
        .ok()
        .flatten()?;
    match verify::check_event(&ev) {
        Ok(()) => Some(ev),
        Err(e) => {
            log::warn!("stream: dropping an invalid event: {e}");
            None
        }
    }
}

fn store_events(
    store: &Store,
    o: &StreamOptions,
    st: &mut State,
    mut evs: Vec<Event>,
) -> Result<(), String> {
    // A future-dated event must not push the catch-up point past what really happened.
    let now = crate::relay::now();
    for e in &evs {
        let at = e.created_at.min(now);
        st.newest_seen = Some(st.newest_seen.map_or(at, |t| t.max(at)));
        st.remember(e.id);
    }
    if !o.plugin.trim().is_empty() {
        evs.retain(|e| {
            let v = st.plugin.judge(
                &o.plugin,
                o.plugin_timeout,
                &Request {
                    event_json: e.json(),
                    id_hex: e.id_hex(),
                    received_at: now,
                    source_type: "Stream",
                    source_info: &o.url,
                    authed: None,
                },
            );
            matches!(v, Verdict::Accept(_))
        });
    }
    let outcomes = store
        .write_batch(&evs)
        .map_err(|e| format!("writing streamed events failed: {e}"))?;
    st.stats.down += outcomes
        .iter()
        .filter(|o| matches!(o, crate::store::write::Outcome::Written(_)))
        .count() as u64;
    Ok(())
}

/// Sends local events newer than the last one considered, except those the peer sent us.
fn send_local(store: &Store, ws: &mut WsClient, st: &mut State) -> Result<(), String> {
    let txn = store.read_txn().map_err(|e| e.to_string())?;
    let newest = store.latest_lev_id(&txn).map_err(|e| e.to_string())?;
    let mut lev = st.sent_upto;
    // A bounded pass: the caller reads replies (and sees `stop`) between passes.
    let end = newest.min(st.sent_upto.saturating_add(WRITE_BATCH as u64));
    while lev < end {
        lev += 1;
        let Some(rec) = store.record(&txn, lev).map_err(|e| e.to_string())? else {
            continue;
        };
        if st
            .recent
            .contains(crate::nostr::filter::EventView::id(&rec))
        {
            continue;
        }
        if let Some(json) = store.payload(&txn, lev).map_err(|e| e.to_string())? {
            ws.send(format!("[\"EVENT\",{}]", String::from_utf8_lossy(&json)))?;
            st.stats.up += 1;
        }
        // Remembered per event, so a failed send is retried after the reconnect.
        st.sent_upto = lev;
    }
    st.sent_upto = st.sent_upto.max(end);
    Ok(())
}
