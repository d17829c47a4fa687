//! NIP-77 sync with another relay (`wok sync`): reconcile the local set for a filter with
//! the relay's, then download what we lack and upload what it lacks, all on one connection.
//!
//! Downloads overlap the reconciliation: needed ids go out as `REQ {"ids":[…]}` batches as
//! soon as a round reveals them, with several batches in flight (strfry waits for the whole
//! reconciliation and keeps one batch of 50). Uploads keep a window of EVENTs in flight.
//! Downloaded events are verified and written through the store's write rules, in
//! batches, with no created_at window (synced events are history).

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use negentropy::{Id, Negentropy, NegentropyStorageVector};

use super::ws::{Recv, WsClient};
use crate::nostr::{hex, verify, Event, Filter, JsonParser, Limits};
use crate::policy::now;
use crate::store::negtree::TreeView;
use crate::store::query::{Progress, Query};
use crate::store::write::Outcome;
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dir {
    Down,
    Up,
    Both,
    None,
}

pub struct SyncOptions {
    pub dir: Dir,
    pub filter: Filter,
    pub print_missing: bool,
    /// 0 = unlimited.
    pub frame_size_limit: u64,
    /// Give up after this long without a message (`None` = never).
    pub timeout: Option<Duration>,
    pub limits: Limits,
    /// `relay.writePolicy.plugin` and its timeout: downloaded events are judged as strfry's
    /// sync does (sourceType `Sync`, sourceInfo the relay URL) before they are written.
    pub plugin: String,
    pub plugin_timeout: Duration,
    /// What the plugin is told the events came from: `Sync`, or `Stream` for a stream's
    /// catch-up after a reconnect.
    pub source_type: &'static str,
    pub url: String,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SyncStats {
    pub have: u64,
    pub need: u64,
    pub downloaded: u64,
    pub uploaded: u64,
    /// Downloads the write rules refused (duplicates, deleted, replaced) or that failed
    /// verification, and uploads the relay refused.
    pub down_rejected: u64,
    /// Downloads the DB's bans or kind lists refused (`Outcome::Blocked`; not in
    /// `down_rejected`).
    pub down_blocked: u64,
    pub up_rejected: u64,
    /// Local events not sent because their payload could not be read (a missing zstd
    /// dictionary, a corrupt row): skipped and reported, as the relay does.
    pub up_unreadable: u64,
    pub rounds: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// Ids per download REQ and REQs in flight; EVENTs in flight when uploading. Small enough
/// for relays' default `maxFilterLimit` (500) and `maxSubsPerConnection` (20).
const IDS_PER_REQ: usize = 250;
const REQS_IN_FLIGHT: usize = 8;
const UPLOADS_IN_FLIGHT: usize = 256;
/// Downloaded events written per transaction.
const WRITE_BATCH: usize = 2_000;
const POLL: Duration = Duration::from_millis(100);
const NEG_SUB: &str = "wok-sync";

/// NOTICE texts that, before the first NEG-MSG, mean the relay will not do NIP-77.
const REFUSALS: [&str; 10] = [
    "error",
    "invalid",
    "unrecognized",
    "bad msg",
    "bad message",
    "could not parse",
    "disabled",
    "unsupported",
    "unknown",
    "negentropy",
];

/// The (created_at, id) set of what `filter` matches locally.
pub fn local_set(store: &Store, filter: &Filter) -> Result<NegentropyStorageVector, String> {
    let err = |e: crate::store::StoreError| format!("local query failed: {e}");
    let mut storage = NegentropyStorageVector::new();
    let mut query = Query::new(vec![filter.clone()], u64::MAX, u64::MAX, now());
    loop {
        let txn = store.read_txn().map_err(err)?;
        let mut failed = None;
        // Straight from the record the scan loaded (no second lookup by levId).
        let mut add = |_, rec: &crate::store::Record<'_>| {
            use crate::nostr::filter::EventView;
            if let Err(e) = storage.insert(rec.created_at(), Id::from_byte_array(*rec.id())) {
                failed.get_or_insert(e.to_string());
            }
            true
        };
        // The set is sorted when sealed: any order will do.
        let progress = query
            .run_unordered(store, &txn, 1_000_000, &mut add)
            .map_err(err)?;
        if let Some(e) = failed {
            return Err(e);
        }
        if progress == Progress::Done {
            break;
        }
    }
    storage.seal().map_err(|e| e.to_string())?;
    Ok(storage)
}

/// Runs one sync over `ws`; `progress` is called after every message with the figures so far.
/// The local set comes from a stored tree when one matches the filter (held in one read
/// snapshot for the whole sync), otherwise from the query engine.
pub fn run(
    store: &Store,
    ws: &mut WsClient,
    opts: &SyncOptions,
    progress: impl FnMut(&SyncStats),
    missing: impl FnMut(&str, &[u8; 32]),
) -> Result<SyncStats, String> {
    let err = |e: crate::store::StoreError| format!("local read failed: {e}");
    // Expired events are not part of anyone's set (queries never return them); purging them
    // first keeps a local tree equal to what the query engine would collect.
    match store.purge_all_expired(now(), 10_000) {
        Ok(0) => {}
        Ok(n) => log::info!("purged {n} expired events before syncing"),
        Err(e) => return Err(format!("purging expired events failed: {e}")),
    }
    let txn = store.read_txn().map_err(err)?;
    if let Some(tree) = store.tree_for(&txn, &opts.filter).map_err(err)? {
        let view =
            TreeView::new(store, &txn, tree, opts.filter.since, opts.filter.until).map_err(err)?;
        log::debug!("local set: stored tree {tree}, {} events", view.len());
        let neg = Negentropy::borrowed(&view, opts.frame_size_limit).map_err(|e| e.to_string())?;
        return run_with(store, ws, opts, neg, progress, missing);
    }
    drop(txn);
    let storage = local_set(store, &opts.filter)?;
    {
        use negentropy::NegentropyStorageBase;
        log::debug!("local set: {} events", storage.size().unwrap_or(0));
    }
    let neg = Negentropy::owned(storage, opts.frame_size_limit).map_err(|e| e.to_string())?;
    run_with(store, ws, opts, neg, progress, missing)
}

fn run_with<T: negentropy::NegentropyStorageBase>(
    store: &Store,
    ws: &mut WsClient,
    opts: &SyncOptions,
    mut neg: Negentropy<'_, T>,
    mut progress: impl FnMut(&SyncStats),
    mut missing: impl FnMut(&str, &[u8; 32]),
) -> Result<SyncStats, String> {
    let first = neg.initiate().map_err(|e| e.to_string())?;
    let mut s = Session {
        store,
        ws,
        opts,
        stats: SyncStats::default(),
        neg_done: false,
        negotiated: false,
        need: VecDeque::new(),
        have: VecDeque::new(),
        reqs: HashSet::new(),
        next_req: 0,
        uploads: 0,
        downloaded: Vec::new(),
        parser: JsonParser::new(),
        seen: HashSet::new(),
        requested: HashSet::new(),
        plugin: crate::policy::plugin::Plugin::new(),
    };
    s.send(format!(
        "[\"NEG-OPEN\",\"{NEG_SUB}\",{},\"{}\"]",
        opts.filter.to_json(),
        hex::encode(&first)
    ))?;
    let result = s.exchange(&mut neg, opts, &mut progress, &mut missing);
    // Whatever ended the exchange, events already downloaded and checked are kept.
    let flushed = s.flush_writes();
    result.and(flushed).map(|()| s.stats)
}

struct Session<'a> {
    store: &'a Store,
    ws: &'a mut WsClient,
    opts: &'a SyncOptions,
    stats: SyncStats,
    neg_done: bool,
    /// A NEG-MSG has arrived (so a NOTICE is no longer a refusal).
    negotiated: bool,
    need: VecDeque<[u8; 32]>,
    have: VecDeque<[u8; 32]>,
    /// Download REQs in flight, by sub id number.
    reqs: HashSet<u64>,
    next_req: u64,
    uploads: usize,
    downloaded: Vec<Event>,
    parser: JsonParser,
    /// Every id reported as have or need so far.
    seen: HashSet<[u8; 32]>,
    /// Ids asked for by download REQs and not yet received.
    requested: HashSet<[u8; 32]>,
    plugin: crate::policy::plugin::Plugin,
}

impl Session<'_> {
    /// Messages back and forth until everything is reconciled and transferred.
    fn exchange<T: negentropy::NegentropyStorageBase>(
        &mut self,
        neg: &mut Negentropy<'_, T>,
        opts: &SyncOptions,
        progress: &mut impl FnMut(&SyncStats),
        missing: &mut impl FnMut(&str, &[u8; 32]),
    ) -> Result<(), String> {
        let mut last_heard = Instant::now();
        while !self.finished() {
            self.pump()?;
            match self.ws.recv(POLL)? {
                Recv::Idle => {
                    if let Some(t) = opts.timeout {
                        if last_heard.elapsed() >= t {
                            return Err(format!(
                                "timed out: nothing from the relay for {} s",
                                t.as_secs()
                            ));
                        }
                    }
                }
                Recv::Text(text) => {
                    last_heard = Instant::now();
                    self.stats.bytes_down += text.len() as u64;
                    self.on_message(text, neg, missing)?;
                    progress(&self.stats);
                }
            }
        }
        Ok(())
    }

    fn down(&self) -> bool {
        !self.opts.print_missing && matches!(self.opts.dir, Dir::Down | Dir::Both)
    }

    fn up(&self) -> bool {
        !self.opts.print_missing && matches!(self.opts.dir, Dir::Up | Dir::Both)
    }

    fn finished(&self) -> bool {
        self.neg_done
            && self.need.is_empty()
            && self.have.is_empty()
            && self.reqs.is_empty()
            && self.uploads == 0
    }

    fn send(&mut self, text: String) -> Result<(), String> {
        self.stats.bytes_up += text.len() as u64;
        self.ws.send(text)
    }

    /// Keeps the download and upload windows full.
    fn pump(&mut self) -> Result<(), String> {
        while self.reqs.len() < REQS_IN_FLIGHT && !self.need.is_empty() {
            let n = self.need.len().min(IDS_PER_REQ);
            let mut text = format!("[\"REQ\",\"wok-dl-{}\",{{\"ids\":[", self.next_req);
            let ids: Vec<[u8; 32]> = self.need.drain(..n).collect();
            self.requested.extend(ids.iter().copied());
            for (i, id) in ids.into_iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                text.push('"');
                text.push_str(&hex::encode(&id));
                text.push('"');
            }
            text.push_str("]}]");
            self.reqs.insert(self.next_req);
            self.next_req += 1;
            self.send(text)?;
        }
        if self.uploads < UPLOADS_IN_FLIGHT && !self.have.is_empty() {
            let txn = self
                .store
                .read_txn()
                .map_err(|e| format!("local read failed: {e}"))?;
            while self.uploads < UPLOADS_IN_FLIGHT {
                let Some(id) = self.have.pop_front() else {
                    break;
                };
                let lev = self
                    .store
                    .lookup_id(&txn, &id)
                    .map_err(|e| format!("local read failed: {e}"))?;
                let json = match lev.map(|lev| (lev, self.store.payload(&txn, lev))) {
                    Some((_, Ok(json))) => json,
                    Some((
                        lev,
                        Err(e @ (StoreError::MissingDictionary(_) | StoreError::Corrupt(_))),
                    )) => {
                        // One unreadable row must not stop the whole sync.
                        self.stats.up_unreadable += 1;
                        // Logged at 1, 2, 4, 8, … of them: visible without a flood.
                        if self.stats.up_unreadable.is_power_of_two() {
                            log::warn!(
                                "levId {lev}: not uploaded, payload not readable ({} so far): {e}",
                                self.stats.up_unreadable
                            );
                        }
                        None
                    }
                    Some((_, Err(e))) => return Err(format!("local read failed: {e}")),
                    None => None,
                };
                // Deleted locally since the reconciliation: nothing to send.
                let Some(json) = json else { continue };
                let text = format!("[\"EVENT\",{}]", String::from_utf8_lossy(&json));
                self.uploads += 1;
                self.stats.bytes_up += text.len() as u64;
                self.ws.send(text)?;
            }
        }
        Ok(())
    }

    fn on_message<T: negentropy::NegentropyStorageBase>(
        &mut self,
        text: String,
        neg: &mut Negentropy<'_, T>,
        missing: &mut impl FnMut(&str, &[u8; 32]),
    ) -> Result<(), String> {
        let mut bytes = text.into_bytes();
        let limits = self.opts.limits;
        let msg = self
            .parser
            .parse(&mut bytes, |v| RelayMsg::from_json(v, &limits))
            .map_err(|e| format!("relay sent bad JSON: {e}"))?;
        match msg {
            RelayMsg::NegMsg(sub, hex_msg) if sub == NEG_SUB => {
                self.negotiated = true;
                self.stats.rounds += 1;
                let msg = hex::decode_vec(hex_msg.as_bytes())
                    .ok_or("relay sent a NEG-MSG that is not hex")?;
                let (mut have, mut need) = (Vec::new(), Vec::new());
                let next = neg
                    .reconcile_with_ids(&msg, &mut have, &mut need)
                    .map_err(|e| format!("negentropy protocol error: {e}"))?;
                // negentropy 0.5.3 reports some ids again in later rounds when the
                // initiator's frame limit splits a message (its remaining-range fingerprint
                // restarts before ranges it already settled); the result is right, so the
                // repeats are dropped here.
                for id in have {
                    let id = *id.as_bytes();
                    if !self.seen.insert(id) {
                        continue;
                    }
                    self.stats.have += 1;
                    missing("have", &id);
                    if !self.opts.print_missing && self.up() {
                        self.have.push_back(id);
                    }
                }
                for id in need {
                    let id = *id.as_bytes();
                    if !self.seen.insert(id) {
                        continue;
                    }
                    self.stats.need += 1;
                    missing("need", &id);
                    if !self.opts.print_missing && self.down() {
                        self.need.push_back(id);
                    }
                }
                match next {
                    Some(next) => self.send(format!(
                        "[\"NEG-MSG\",\"{NEG_SUB}\",\"{}\"]",
                        hex::encode(&next)
                    ))?,
                    None => {
                        self.neg_done = true;
                        self.send(format!("[\"NEG-CLOSE\",\"{NEG_SUB}\"]"))?;
                    }
                }
            }
            RelayMsg::NegErr(sub, reason) if sub == NEG_SUB => {
                return Err(format!("relay refused the sync: {reason}"));
            }
            RelayMsg::Notice(msg) => {
                let lower = msg.to_ascii_lowercase();
                if !self.negotiated && REFUSALS.iter().any(|w| lower.contains(w)) {
                    return Err(format!(
                        "relay does not support negentropy (NIP-77): NOTICE {msg}"
                    ));
                }
                log::warn!("relay says: {msg}");
            }
            RelayMsg::Event(sub, ev) if sub.starts_with("wok-dl-") => {
                match ev.and_then(|e| verify::check_event(&e).map(|()| e)) {
                    // Only what was asked for is taken: a relay could push anything here.
                    Ok(e) if !self.requested.remove(&e.id) => {
                        log::warn!("dropping an event the relay sent unasked: {}", e.id_hex());
                        self.stats.down_rejected += 1;
                    }
                    Ok(e) => {
                        self.downloaded.push(e);
                        if self.downloaded.len() >= WRITE_BATCH {
                            self.flush_writes()?;
                        }
                    }
                    Err(e) => {
                        log::warn!("dropping a downloaded event: {e}");
                        self.stats.down_rejected += 1;
                    }
                }
            }
            RelayMsg::Eose(sub) => {
                if let Some(n) = sub.strip_prefix("wok-dl-").and_then(|n| n.parse().ok()) {
                    if self.reqs.remove(&n) {
                        self.send(format!("[\"CLOSE\",\"{sub}\"]"))?;
                    }
                }
            }
            RelayMsg::Closed(sub, reason) => {
                if let Some(n) = sub.strip_prefix("wok-dl-").and_then(|n| n.parse().ok()) {
                    if self.reqs.remove(&n) {
                        return Err(format!("relay refused a download: {reason}"));
                    }
                }
            }
            RelayMsg::Ok(accepted, why) => {
                self.uploads = self.uploads.saturating_sub(1);
                if accepted {
                    self.stats.uploaded += 1;
                } else {
                    self.stats.up_rejected += 1;
                    log::debug!("upload refused: {why}");
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn flush_writes(&mut self) -> Result<(), String> {
        if self.downloaded.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.downloaded);
        if !self.opts.plugin.trim().is_empty() {
            let now = now();
            let (plugin, opts) = (&mut self.plugin, self.opts);
            let before = batch.len();
            batch.retain(|e| {
                let v = plugin.judge(
                    &opts.plugin,
                    opts.plugin_timeout,
                    &crate::policy::plugin::Request {
                        event_json: e.json(),
                        id_hex: e.id_hex(),
                        received_at: now,
                        source_type: opts.source_type,
                        source_info: &opts.url,
                        authed: None,
                    },
                );
                matches!(v, crate::policy::plugin::Verdict::Accept(_))
            });
            self.stats.down_rejected += (before - batch.len()) as u64;
        }
        let outcomes = self
            .store
            .write_batch(&batch)
            .map_err(|e| format!("writing downloaded events failed: {e}"))?;
        let mut blocked = 0u64;
        for (o, e) in outcomes.iter().zip(&batch) {
            match o {
                Outcome::Written(_) => self.stats.downloaded += 1,
                Outcome::Blocked(b) => {
                    blocked += 1;
                    log::debug!(
                        "not storing downloaded event {}: {}",
                        e.id_hex(),
                        b.reason()
                    );
                }
                _ => self.stats.down_rejected += 1,
            }
        }
        if blocked > 0 {
            self.stats.down_blocked += blocked;
            log::info!(
                "{}: {blocked} downloaded events refused by this DB's bans or kind lists",
                self.opts.url
            );
        }
        Ok(())
    }
}

/// The relay messages sync reacts to, read off the tape in one pass.
// Events are the common message; boxing them would add an allocation per event.
#[allow(clippy::large_enum_variant)]
enum RelayMsg {
    NegMsg(String, String),
    NegErr(String, String),
    Notice(String),
    Event(String, Result<Event, crate::nostr::Invalid>),
    Eose(String),
    Closed(String, String),
    Ok(bool, String),
    Other,
}

impl RelayMsg {
    fn from_json(v: crate::nostr::tape::Json<'_, '_>, limits: &Limits) -> RelayMsg {
        let Some(mut items) = v.array() else {
            return RelayMsg::Other;
        };
        let verb = items.next().and_then(|v| v.as_str()).unwrap_or("");
        let Some(second) = items.next() else {
            return RelayMsg::Other;
        };
        let text = |v: Option<crate::nostr::tape::Json<'_, '_>>| {
            v.and_then(|v| v.as_str()).unwrap_or("").to_owned()
        };
        let sub = second.as_str().unwrap_or("").to_owned();
        match verb {
            "NEG-MSG" => RelayMsg::NegMsg(sub, text(items.next())),
            "NEG-ERR" => RelayMsg::NegErr(sub, text(items.next())),
            "NOTICE" => RelayMsg::Notice(sub),
            "EVENT" => match items.next() {
                Some(ev) => RelayMsg::Event(sub, Event::from_json(ev, limits)),
                None => RelayMsg::Other,
            },
            "EOSE" => RelayMsg::Eose(sub),
            "CLOSED" => RelayMsg::Closed(sub, text(items.next())),
            "OK" => {
                let accepted = items.next().and_then(|v| v.as_bool()).unwrap_or(false);
                RelayMsg::Ok(accepted, text(items.next()))
            }
            _ => RelayMsg::Other,
        }
    }
}
