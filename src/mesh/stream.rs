//! One live link to another relay, used by `wok stream <url>` and by each URL of a `wok router`
//! group. `down` subscribes to the peer's new events matching the link's filter and writes
//! them locally (plugin `pluginDown` with sourceType `Stream`, then the write rules); `up`
//! sends events written locally by any process (the DB's newest levId is polled, as the
//! relay's monitors do) that match the filter and pass `pluginUp` (sourceType `Stored`);
//! `both` does both and never sends back an event it received from the same peer.
//!
//! Unlike strfry's stream and router, a reconnect loses nothing:
//! - up: an event counts as sent only when the peer's OK for it is back; after a reconnect
//!   sending resumes after the last levId whose OK (and every earlier one's) arrived;
//! - down: before subscribing again the link runs a NIP-77 round (download only) over the
//!   window since shortly before it was last known to be live, so what the peer received
//!   meanwhile comes over exactly; a peer without NIP-77 gets a `since` REQ instead (capped
//!   by its maxFilterLimit). Duplicates are harmless either way: the write rules drop them.
//!   The live REQ itself has no `since`, so an event dated in the past still comes live;
//! - a restart: each link saves its position (when last live, last acknowledged levId) in
//!   the DB's Meta table every 10 s and at a clean stop, and a new process resumes there.
//!
//! Not covered: an event dated more than 10 minutes before the link went down that reaches
//! the peer while the link is down (the catch-up window is by created_at).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::sync::{Dir, SyncOptions};
use super::ws::{Recv, WsClient};
use crate::nostr::filter::EventView;
use crate::nostr::{hex, verify, Event, Filter, JsonParser, Limits};
use crate::policy::now;
use crate::policy::plugin::{Plugin, Request, Verdict};
use crate::store::{LevId, Store};

pub struct StreamOptions {
    pub url: String,
    pub dir: Dir,
    /// The events the link carries, both ways (`Filter::all()` for everything). Without
    /// since/until: a live link carries new events whatever their created_at.
    pub filter: Filter,
    pub limits: Limits,
    /// Judges downloaded events before they are written (empty: none).
    pub plugin_down: String,
    /// Judges local events before they are sent (empty: none).
    pub plugin_up: String,
    pub plugin_timeout: Duration,
    pub connect_timeout: Duration,
    /// Longest wait between reconnect attempts (they start at 1 s and double).
    pub max_backoff: Duration,
    /// Names the link in log lines.
    pub name: String,
    /// Log a line per batch of events moved (shared, so a router reload can flip it).
    pub verbose: Arc<AtomicBool>,
}

impl StreamOptions {
    pub fn new(url: &str, dir: Dir, limits: Limits) -> StreamOptions {
        StreamOptions {
            url: url.to_owned(),
            dir,
            filter: Filter::all(),
            limits,
            plugin_down: String::new(),
            plugin_up: String::new(),
            plugin_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(30),
            name: format!("stream {url}"),
            verbose: Arc::new(AtomicBool::new(false)),
        }
    }

    fn down(&self) -> bool {
        matches!(self.dir, Dir::Down | Dir::Both)
    }

    fn up(&self) -> bool {
        matches!(self.dir, Dir::Up | Dir::Both)
    }
}

/// Ids received from the peer recently, so `both` never echoes them back.
const ECHO_MEMORY: usize = 100_000;
const POLL: Duration = Duration::from_millis(100);
/// Events written per transaction, and local events considered per pass.
const WRITE_BATCH: usize = 1_000;
/// Local events sent and not yet acknowledged.
const UP_WINDOW: usize = 500;
/// A peer that has not acknowledged anything for this long is treated as gone.
const OK_TIMEOUT: Duration = Duration::from_secs(60);
/// The down catch-up starts this long before the link was last known to be live, for
/// events whose created_at is a little older than their arrival.
const CATCH_UP_SLACK: u64 = 600;
const SUB: &str = "wok-stream";
/// How often a link saves its position (and at a clean stop): a `kill -9` costs at most
/// this much of catch-up window, never events (the catch-up reaches back further).
const SAVE_EVERY: Duration = Duration::from_secs(10);

#[derive(Default, Debug, Clone, Copy)]
pub struct StreamStats {
    /// Downloaded events that were new here.
    pub down: u64,
    /// Local events sent (again after a reconnect if their OK had not come back).
    pub up: u64,
    /// Local events the peer refused (`OK false`).
    pub up_rejected: u64,
    /// Downloaded events this DB's bans or kind lists refused.
    pub down_blocked: u64,
    pub reconnects: u64,
}

impl StreamStats {
    /// ` (N blocked)` when the DB's bans refused some downloads, else nothing (so the
    /// summary of an unbanned DB reads as before).
    pub fn blocked_note(&self) -> String {
        if self.down_blocked == 0 {
            String::new()
        } else {
            format!(" ({} blocked)", self.down_blocked)
        }
    }
}

struct State {
    /// Wall-clock second at which the link was last known to receive everything live (the
    /// subscription was in place), for the catch-up after a reconnect.
    alive_at: Option<u64>,
    /// Local events up to this levId have been sent or skipped.
    sent_upto: LevId,
    /// Sent and not yet acknowledged, by levId (and the reverse map for the OKs).
    inflight: BTreeMap<LevId, [u8; 32]>,
    inflight_ids: HashMap<[u8; 32], LevId>,
    last_ack: Instant,
    recent: HashSet<[u8; 32]>,
    recent_order: VecDeque<[u8; 32]>,
    plugin_down: Plugin,
    plugin_up: Plugin,
    parser: JsonParser,
    stats: StreamStats,
    /// The link's identity in the DB's saved positions, and when it was last saved.
    key: String,
    saved_at: Instant,
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

    /// Saves where the link is, so a restarted process resumes there instead of at the
    /// DB's tip (which lost what was written on either side while it was down). A failure
    /// is logged: the link goes on, and a restart then starts at the tip as before.
    fn save(&mut self, store: &Store) {
        self.saved_at = Instant::now();
        // 0: never live downwards (an up-only link, or not connected yet).
        let alive_at = self.alive_at.unwrap_or(0);
        if let Err(e) = store.save_link_position(&self.key, alive_at, self.acked_upto()) {
            log::warn!("{}: cannot save the link's position: {e}", self.key);
        }
    }

    /// Every local event up to here was acknowledged (or skipped).
    fn acked_upto(&self) -> LevId {
        self.inflight
            .keys()
            .next()
            .map_or(self.sent_upto, |first| first - 1)
    }
}

/// Starts a link error that ends the link for good: the store cannot take writes (full disk
/// or map), and reconnecting would only download the same events to fail again.
pub const STORAGE_FULL: &str = "storage full: ";

/// Runs until `stop` is set; reconnects (with backoff) whenever the link drops. Returns an
/// error starting with [`STORAGE_FULL`] when the store refuses writes.
pub fn run(store: &Store, o: &StreamOptions, stop: &AtomicBool) -> Result<StreamStats, String> {
    let key = format!("{:?} {} {}", o.dir, o.url, o.filter.to_json());
    let (latest, saved) = {
        let txn = store.read_txn().map_err(|e| e.to_string())?;
        (
            store.latest_lev_id(&txn).map_err(|e| e.to_string())?,
            store.link_position(&txn, &key).map_err(|e| e.to_string())?,
        )
    };
    // A link seen before resumes where it was: its first connection catches up since it
    // was last live, and local events written since its last acknowledged one go up.
    let (alive_at, sent_upto) = match saved {
        Some((alive_at, acked)) => {
            log::info!(
                "{}: resuming: live until {alive_at}, sent up to levId {acked}",
                o.name
            );
            ((alive_at > 0).then_some(alive_at), acked.min(latest))
        }
        None => (None, latest),
    };
    let mut st = State {
        alive_at,
        sent_upto,
        inflight: BTreeMap::new(),
        inflight_ids: HashMap::new(),
        last_ack: Instant::now(),
        recent: HashSet::new(),
        recent_order: VecDeque::new(),
        plugin_down: Plugin::new(),
        plugin_up: Plugin::new(),
        parser: JsonParser::new(),
        stats: StreamStats::default(),
        key,
        saved_at: Instant::now(),
    };
    let mut backoff = Duration::from_secs(1);
    let max_message = o.limits.max_event_size.saturating_mul(4).max(16 << 20);
    while !stop.load(Ordering::Relaxed) {
        match WsClient::connect_within(&o.url, max_message, o.connect_timeout) {
            Ok(mut ws) => {
                backoff = Duration::from_secs(1);
                log::info!("{}: connected", o.name);
                if let Err(e) = serve(store, o, &mut ws, &mut st, stop) {
                    if e.starts_with(STORAGE_FULL) {
                        ws.close();
                        st.plugin_down.stop();
                        st.plugin_up.stop();
                        return Err(e);
                    }
                    log::warn!("{}: {e}; reconnecting", o.name);
                    st.stats.reconnects += 1;
                }
                ws.close();
            }
            Err(e) => log::warn!("{}: {e}; retrying in {} s", o.name, backoff.as_secs()),
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(POLL);
        }
        backoff = (backoff * 2).min(o.max_backoff.max(Duration::from_secs(1)));
    }
    st.save(store);
    st.plugin_down.stop();
    st.plugin_up.stop();
    Ok(st.stats)
}

/// One connection's life: catch up, subscribe, then move events both ways until it fails
/// or `stop`.
fn serve(
    store: &Store,
    o: &StreamOptions,
    ws: &mut WsClient,
    st: &mut State,
    stop: &AtomicBool,
) -> Result<(), String> {
    // Whatever the previous connection did not get an OK for is sent again.
    st.sent_upto = st.acked_upto();
    st.inflight.clear();
    st.inflight_ids.clear();
    st.last_ack = Instant::now();
    if o.down() {
        // New events whatever their created_at, and no stored ones.
        let mut live = o.filter.clone();
        live.until = u64::MAX;
        live.since = 0;
        live.limit = Some(0);
        let mut filters = vec![live.to_json()];
        if let Some(alive_at) = st.alive_at {
            let started = now();
            let since = alive_at.saturating_sub(CATCH_UP_SLACK);
            // Stored events from the catch-up's start on, for what arrived between its
            // snapshot and this REQ, as a second filter: a `since` on the live filter
            // itself (as before) dropped every later event dated before it, for good.
            let mut gap = o.filter.clone();
            gap.until = u64::MAX;
            gap.limit = None;
            match catch_up(store, o, ws, st, since) {
                Ok(n) => {
                    log::info!("{}: caught up since {since}: {n} events", o.name);
                    gap.since = started.saturating_sub(60);
                }
                Err(e) => {
                    log::warn!(
                        "{}: NIP-77 catch-up failed ({e}); asking with since",
                        o.name
                    );
                    gap.since = alive_at.saturating_sub(60);
                }
            }
            filters.push(gap.to_json());
        }
        ws.send(format!("[\"REQ\",\"{SUB}\",{}]", filters.join(",")))?;
        st.alive_at = Some(now());
    }
    let mut pending: Vec<Event> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if o.up() {
            send_local(store, o, ws, st)?;
            if !st.inflight.is_empty() && st.last_ack.elapsed() > OK_TIMEOUT {
                return Err(format!(
                    "no OK from the relay for {} s",
                    OK_TIMEOUT.as_secs()
                ));
            }
        }
        // Take everything that is already here (up to a batch), so a busy link writes many
        // events per transaction, not one.
        let mut wait = POLL;
        while pending.len() < WRITE_BATCH {
            match ws.recv(wait)? {
                Recv::Idle => break,
                Recv::Text(t) => {
                    if let Some(ev) = on_message(o, st, t)? {
                        pending.push(ev);
                    }
                }
            }
            wait = Duration::from_millis(1);
        }
        if o.down() {
            // The subscription is in place and everything that arrived has been read.
            st.alive_at = Some(now());
        }
        if !pending.is_empty() {
            store_events(store, o, st, std::mem::take(&mut pending))?;
        }
        // After the events read are stored: a saved position never claims more.
        if st.saved_at.elapsed() >= SAVE_EVERY {
            st.save(store);
        }
    }
    Ok(())
}

/// Handles one message from the peer; returns the event if it is one of ours.
fn on_message(o: &StreamOptions, st: &mut State, text: String) -> Result<Option<Event>, String> {
    enum Msg {
        Event(Box<Event>),
        Ok([u8; 32], bool, String),
        Closed(String),
        Notice(String),
        Other,
    }
    let mut bytes = text.into_bytes();
    let limits = &o.limits;
    let msg = st
        .parser
        .parse(&mut bytes, |v| {
            let mut items = v.array()?;
            Some(match items.next()?.as_str()? {
                "EVENT" => {
                    (items.next()?.as_str()? == SUB).then_some(())?;
                    match Event::from_json(items.next()?, limits) {
                        Ok(ev) => Msg::Event(Box::new(ev)),
                        Err(e) => Msg::Notice(format!("unusable event: {e}")),
                    }
                }
                "OK" => {
                    let id = hex::decode_any::<32>(items.next()?.as_str()?.as_bytes())?;
                    let ok = items.next()?.as_bool()?;
                    let why = items.next().and_then(|m| m.as_str()).unwrap_or("");
                    Msg::Ok(id, ok, why.to_owned())
                }
                "CLOSED" => {
                    (items.next()?.as_str()? == SUB).then_some(())?;
                    Msg::Closed(items.next().and_then(|m| m.as_str()).unwrap_or("").into())
                }
                "NOTICE" => Msg::Notice(items.next()?.as_str()?.to_owned()),
                _ => Msg::Other,
            })
        })
        .ok()
        .flatten()
        .unwrap_or(Msg::Other);
    match msg {
        Msg::Event(ev) => match verify::check_event(&ev) {
            Ok(()) => return Ok(Some(*ev)),
            Err(e) => log::warn!("{}: dropping an invalid event: {e}", o.name),
        },
        Msg::Ok(id, ok, why) => {
            if st
                .inflight_ids
                .remove(&id)
                .is_some_and(|lev| st.inflight.remove(&lev).is_some())
            {
                st.last_ack = Instant::now();
                if !ok {
                    st.stats.up_rejected += 1;
                    if o.verbose.load(Ordering::Relaxed) {
                        log::info!("{}: relay refused {}: {why}", o.name, hex::encode(&id));
                    }
                }
            }
        }
        Msg::Closed(why) => return Err(format!("the relay closed our subscription: {why}")),
        Msg::Notice(n) => log::warn!("{}: NOTICE {n}", o.name),
        Msg::Other => {}
    }
    Ok(None)
}

/// A download-only NIP-77 round over `filter` since `since`; returns the events it wrote.
fn catch_up(
    store: &Store,
    o: &StreamOptions,
    ws: &mut WsClient,
    st: &mut State,
    since: u64,
) -> Result<u64, String> {
    let mut filter = o.filter.clone();
    filter.since = filter.since.max(since);
    filter.until = u64::MAX;
    filter.limit = None;
    let opts = SyncOptions {
        dir: Dir::Down,
        filter,
        print_missing: false,
        frame_size_limit: 60_000,
        timeout: Some(o.connect_timeout.max(Duration::from_secs(30))),
        limits: o.limits,
        plugin: o.plugin_down.clone(),
        plugin_timeout: o.plugin_timeout,
        source_type: "Stream",
        url: o.url.clone(),
    };
    let mut need = Vec::new();
    let stats = super::sync::run(
        store,
        ws,
        &opts,
        |_| {},
        |what, id| {
            if what == "need" {
                need.push(*id);
            }
        },
    )?;
    // What came down must not go back up in `both`.
    for id in need {
        st.remember(id);
    }
    st.stats.down += stats.downloaded;
    st.stats.down_blocked += stats.down_blocked;
    Ok(stats.downloaded)
}

fn store_events(
    store: &Store,
    o: &StreamOptions,
    st: &mut State,
    mut evs: Vec<Event>,
) -> Result<(), String> {
    for e in &evs {
        st.remember(e.id);
    }
    let received = evs.len();
    if !o.plugin_down.trim().is_empty() {
        let now = now();
        evs.retain(|e| {
            let v = st.plugin_down.judge(
                &o.plugin_down,
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
    let outcomes = store.write_batch(&evs).map_err(|e| match e {
        crate::store::StoreError::MapFull | crate::store::StoreError::Io(_) => {
            format!("{STORAGE_FULL}writing streamed events failed: {e}")
        }
        _ => format!("writing streamed events failed: {e}"),
    })?;
    let written = outcomes
        .iter()
        .filter(|o| matches!(o, crate::store::write::Outcome::Written(_)))
        .count() as u64;
    st.stats.down += written;
    let mut blocked = 0u64;
    for (out, e) in outcomes.iter().zip(&evs) {
        if let crate::store::write::Outcome::Blocked(b) = out {
            blocked += 1;
            log::debug!(
                "{}: not storing event {}: {}",
                o.name,
                e.id_hex(),
                b.reason()
            );
        }
    }
    if blocked > 0 {
        st.stats.down_blocked += blocked;
        log::info!(
            "{}: {blocked} events down refused by this DB's bans or kind lists",
            o.name
        );
    }
    if o.verbose.load(Ordering::Relaxed) {
        log::info!("{}: {received} events down, {written} new", o.name);
    }
    Ok(())
}

/// Sends local events newer than the last one considered, except those the peer sent us,
/// those outside the filter and those `pluginUp` refuses, keeping at most `UP_WINDOW`
/// unacknowledged.
fn send_local(
    store: &Store,
    o: &StreamOptions,
    ws: &mut WsClient,
    st: &mut State,
) -> Result<(), String> {
    if st.inflight.len() >= UP_WINDOW {
        return Ok(());
    }
    let txn = store.read_txn().map_err(|e| e.to_string())?;
    let newest = store.latest_lev_id(&txn).map_err(|e| e.to_string())?;
    // A bounded pass: the caller reads replies (and sees `stop`) between passes.
    let end = newest.min(st.sent_upto.saturating_add(WRITE_BATCH as u64));
    let mut sent = 0usize;
    while st.sent_upto < end && st.inflight.len() < UP_WINDOW {
        let lev = st.sent_upto + 1;
        let Some(rec) = store.record(&txn, lev).map_err(|e| e.to_string())? else {
            st.sent_upto = lev;
            continue;
        };
        let id = *rec.id();
        if st.recent.contains(&id) || !o.filter.matches(&rec) {
            st.sent_upto = lev;
            continue;
        }
        let json = match store.payload(&txn, lev) {
            Ok(Some(json)) => json,
            Ok(None) => {
                st.sent_upto = lev;
                continue;
            }
            // One unreadable event must not wedge the link on its levId forever.
            Err(
                e @ (crate::store::StoreError::MissingDictionary(_)
                | crate::store::StoreError::Corrupt(_)),
            ) => {
                log::warn!("{}: not sending event {lev}: {e}", o.name);
                st.sent_upto = lev;
                continue;
            }
            Err(e) => return Err(e.to_string()),
        };
        if !o.plugin_up.trim().is_empty() {
            let v = st.plugin_up.judge(
                &o.plugin_up,
                o.plugin_timeout,
                &Request {
                    event_json: &json,
                    id_hex: &hex::encode(&id),
                    received_at: now(),
                    source_type: "Stored",
                    source_info: "",
                    authed: None,
                },
            );
            if !matches!(v, Verdict::Accept(_)) {
                st.sent_upto = lev;
                continue;
            }
        }
        // Marked sent only once it is on the wire: a failed send is retried after the
        // reconnect.
        ws.send(format!("[\"EVENT\",{}]", String::from_utf8_lossy(&json)))?;
        if st.inflight.is_empty() {
            st.last_ack = Instant::now();
        }
        st.inflight.insert(lev, id);
        st.inflight_ids.insert(id, lev);
        st.sent_upto = lev;
        st.stats.up += 1;
        sent += 1;
    }
    if sent > 0 && o.verbose.load(Ordering::Relaxed) {
        log::info!("{}: {sent} events up", o.name);
    }
    Ok(())
}
