//! Prometheus counters with strfry's metric names (so dashboards keep working), plus
//! per-stage queue depths.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Client and relay message verbs, in the order of their counters.
const CLIENT_VERBS: [&str; 8] = [
    "EVENT",
    "REQ",
    "COUNT",
    "CLOSE",
    "AUTH",
    "NEG-OPEN",
    "NEG-MSG",
    "NEG-CLOSE",
];
const RELAY_VERBS: [&str; 9] = [
    "EVENT", "OK", "EOSE", "CLOSED", "NOTICE", "COUNT", "AUTH", "NEG-MSG", "NEG-ERR",
];

/// The stages a client message waits in, for `wok_queue_wait_*{stage}`.
#[derive(Clone, Copy)]
pub enum Stage {
    Ingester,
    WritePolicy,
    Writer,
    ReqWorker,
    ReqMonitor,
    Negentropy,
}

const STAGES: [&str; 6] = [
    "ingester",
    "writePolicy",
    "writer",
    "reqWorker",
    "reqMonitor",
    "negentropy",
];

#[derive(Default)]
pub struct Metrics {
    pub connections: Gauge,
    pub slow_client_terminations: Counter,
    /// Connections refused or closed because their IP is blocked (NIP-86 `blockip`).
    pub blocked_connections: Counter,
    /// EVENTs refused by access control (bans, kind lists, allowlist / web of trust).
    pub access_refused: Counter,
    /// EVENTs refused for too little NIP-13 proof of work.
    pub pow_refused: Counter,
    /// COUNTs with `hll` that extended a cached answer (`relay::hll_cache`).
    pub hll_cache_hits: Counter,
    pub write_events: Counter,
    pub write_rejected: Counter,
    pub write_dups: Counter,
    pub write_time_us: Counter,
    pub write_batches: Counter,
    /// Part of `write_time_us` spent in `commit` (writing pages and fsync).
    pub commit_time_us: Counter,
    /// Batches whose events were all refused (already stored, deleted, replaced, banned):
    /// rolled back instead of committed, so they cost no page writes and no fsync.
    pub write_batches_rolled_back: Counter,
    pub auth_challenges: Counter,
    pub auth_success: Counter,
    pub auth_failure: Counter,
    pub authenticated: Gauge,
    /// Client messages read and not yet finished, all connections together (see
    /// `msg::Ticket`), and their bytes.
    pub inflight_messages: Gauge,
    pub inflight_bytes: Gauge,
    /// Times a connection stopped being read because its messages in flight were at the
    /// per-connection limit.
    pub read_pauses: Counter,
    /// Connections moved to the busy lane and back (`msg::Lane`), and those in it now.
    pub lane_to_busy: Counter,
    pub lane_to_light: Counter,
    pub busy_connections: Gauge,
    /// Turns of the io thread's loop and the microseconds they took (on and off the CPU):
    /// a mean turn of milliseconds means every connection waits that long for its reads
    /// and writes, so the io thread (or the CPU) is the bottleneck.
    pub io_turns: Counter,
    pub io_turn_us: Counter,
    /// Stage messages waiting for the io thread at the start of a turn, the latest seen.
    pub io_backlog: Gauge,
    /// Connects and closes io could not hand to a full ingester inbox at once (they wait
    /// and are retried each turn; io never blocks on a stage).
    pub io_deferred: Counter,
    /// Rate-limit refusals by limit, disconnects, IPs in cooldown (`policy::limits`).
    pub limits: crate::policy::limits::LimitStats,
    /// Per stage (`STAGES`): client messages taken up, and the microseconds they waited in
    /// its queue (the mean wait is their ratio between two scrapes).
    queue_waited: [Counter; 6],
    queue_wait_us: [Counter; 6],
    /// The same for light-lane connections only (`msg::Lane`): with a flood in the busy
    /// lane, these are the waits everyone else sees.
    light_waited: [Counter; 6],
    light_wait_us: [Counter; 6],
    /// `nostr_client_messages_total{verb}`, indexed like `CLIENT_VERBS`.
    client: [Counter; 8],
    /// `nostr_relay_messages_total{verb}`, indexed like `RELAY_VERBS`.
    relay: [Counter; 9],
    /// `nostr_events_total{kind}`: stored events by kind (the writer is the only updater).
    kinds: Mutex<std::collections::BTreeMap<u64, u64>>,
    /// Retention (relay/prune.rs): events pruned and archived, slices run and their
    /// microseconds, failed slices.
    pub pruned: Counter,
    pub archived: Counter,
    pub prune_slices: Counter,
    pub prune_us: Counter,
    pub prune_errors: Counter,
    /// Write batches refused because the disk or the map was full.
    pub storage_full: Counter,
    /// Queue depth readers, filled in at startup: (stage, fn).
    #[allow(clippy::type_complexity)]
    pub queues: Mutex<Vec<(&'static str, Box<dyn Fn() -> usize + Send>)>>,
}

impl Metrics {
    pub fn queue_wait(&self, stage: Stage, lane: super::msg::Lane, waited: std::time::Duration) {
        let i = stage as usize;
        let us = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.queue_waited[i].inc();
        self.queue_wait_us[i].add(us);
        if lane == super::msg::Lane::Light {
            self.light_waited[i].inc();
            self.light_wait_us[i].add(us);
        }
    }

    pub fn client_message(&self, verb: &'static str) {
        if let Some(i) = CLIENT_VERBS.iter().position(|v| *v == verb) {
            self.client[i].inc();
        }
    }

    /// `nostr_client_messages_total{verb}` (0 for an unknown verb).
    pub fn client_count(&self, verb: &str) -> u64 {
        CLIENT_VERBS
            .iter()
            .position(|v| *v == verb)
            .map_or(0, |i| self.client[i].get())
    }

    /// `nostr_relay_messages_total{verb}` (0 for an unknown verb).
    pub fn relay_count(&self, verb: &str) -> u64 {
        RELAY_VERBS
            .iter()
            .position(|v| *v == verb)
            .map_or(0, |i| self.relay[i].get())
    }

    /// Counts an outgoing message by its verb, read from the fixed `["VERB"` prefix every
    /// relay message starts with (the io thread classifies bytes; it does not parse JSON).
    pub fn relay_message(&self, text: &[u8]) {
        let verb = text
            .strip_prefix(b"[\"")
            .and_then(|t| t.split(|&b| b == b'"').next());
        if let Some(i) = verb.and_then(|v| RELAY_VERBS.iter().position(|r| r.as_bytes() == v)) {
            self.relay[i].inc();
        }
    }

    /// `n` EVENT messages of one fanout batch.
    pub fn relay_events(&self, n: u64) {
        self.relay[0].add(n);
    }

    pub fn stored_kind(&self, kind: u64) {
        if let Ok(mut m) = self.kinds.lock() {
            *m.entry(kind).or_default() += 1;
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut line = |name: &str, v: String| {
            let _ = writeln!(s, "{name} {v}");
        };
        line(
            "strfry_connections_current",
            self.connections.get().to_string(),
        );
        line(
            "strfry_slow_client_terminations_total",
            self.slow_client_terminations.get().to_string(),
        );
        line(
            "wok_blocked_connections_total",
            self.blocked_connections.get().to_string(),
        );
        line(
            "wok_access_refused_total",
            self.access_refused.get().to_string(),
        );
        line("wok_pow_refused_total", self.pow_refused.get().to_string());
        line(
            "wok_hll_cache_hits_total",
            self.hll_cache_hits.get().to_string(),
        );
        line(
            "strfry_write_events_total",
            self.write_events.get().to_string(),
        );
        line(
            "strfry_write_rejected_total",
            self.write_rejected.get().to_string(),
        );
        line("strfry_write_dups_total", self.write_dups.get().to_string());
        line(
            "strfry_write_time_microseconds_total",
            self.write_time_us.get().to_string(),
        );
        line(
            "strfry_auth_challenges_sent_total",
            self.auth_challenges.get().to_string(),
        );
        line(
            "strfry_auth_success_total",
            self.auth_success.get().to_string(),
        );
        line(
            "strfry_auth_failure_total",
            self.auth_failure.get().to_string(),
        );
        line(
            "strfry_authenticated_connections_current",
            self.authenticated.get().to_string(),
        );
        line(
            "wok_write_batches_total",
            self.write_batches.get().to_string(),
        );
        line(
            "wok_write_commit_microseconds_total",
            self.commit_time_us.get().to_string(),
        );
        line(
            "wok_write_batches_rolled_back_total",
            self.write_batches_rolled_back.get().to_string(),
        );
        line(
            "wok_inflight_messages",
            self.inflight_messages.get().to_string(),
        );
        line("wok_inflight_bytes", self.inflight_bytes.get().to_string());
        line(
            "wok_conn_read_pauses_total",
            self.read_pauses.get().to_string(),
        );
        line(
            "wok_lane_changes_total{to=\"busy\"}",
            self.lane_to_busy.get().to_string(),
        );
        line(
            "wok_lane_changes_total{to=\"light\"}",
            self.lane_to_light.get().to_string(),
        );
        line(
            "wok_busy_connections",
            self.busy_connections.get().to_string(),
        );
        line("wok_io_turns_total", self.io_turns.get().to_string());
        line(
            "wok_io_turn_microseconds_total",
            self.io_turn_us.get().to_string(),
        );
        line("wok_io_backlog_messages", self.io_backlog.get().to_string());
        line(
            "wok_io_deferred_handoffs_total",
            self.io_deferred.get().to_string(),
        );
        if let Some(bytes) = heap_in_use() {
            line("wok_heap_in_use_bytes", bytes.to_string());
        }
        line("wok_retention_pruned_total", self.pruned.get().to_string());
        line(
            "wok_retention_archived_total",
            self.archived.get().to_string(),
        );
        line(
            "wok_retention_slices_total",
            self.prune_slices.get().to_string(),
        );
        line(
            "wok_retention_slice_microseconds_total",
            self.prune_us.get().to_string(),
        );
        line(
            "wok_retention_errors_total",
            self.prune_errors.get().to_string(),
        );
        line(
            "wok_write_storage_full_total",
            self.storage_full.get().to_string(),
        );
        self.limits.render(&mut s);
        for (verb, c) in CLIENT_VERBS.iter().zip(&self.client) {
            let _ = writeln!(
                s,
                "nostr_client_messages_total{{verb=\"{verb}\"}} {}",
                c.get()
            );
        }
        for (verb, c) in RELAY_VERBS.iter().zip(&self.relay) {
            let _ = writeln!(
                s,
                "nostr_relay_messages_total{{verb=\"{verb}\"}} {}",
                c.get()
            );
        }
        if let Ok(m) = self.kinds.lock() {
            for (kind, n) in m.iter() {
                let _ = writeln!(s, "nostr_events_total{{kind=\"{kind}\"}} {n}");
            }
        }
        if let Ok(q) = self.queues.lock() {
            for (stage, f) in q.iter() {
                let _ = writeln!(s, "wok_queue_depth{{stage=\"{stage}\"}} {}", f());
            }
        }
        let per_stage = [
            ("wok_queue_waited_total", &self.queue_waited),
            ("wok_queue_wait_microseconds_total", &self.queue_wait_us),
            ("wok_light_queue_waited_total", &self.light_waited),
            (
                "wok_light_queue_wait_microseconds_total",
                &self.light_wait_us,
            ),
        ];
        for (i, stage) in STAGES.iter().enumerate() {
            for (name, counters) in per_stage {
                let _ = writeln!(s, "{name}{{stage=\"{stage}\"}} {}", counters[i].get());
            }
        }
        s
    }
}

/// Bytes the allocator has handed out and not had back, all arenas together: what a leak
/// grows. RSS cannot tell a leak from the allocator keeping freed memory (glibc rarely
/// returns it), so a soak watches this. Chunks parked in glibc's per-thread caches
/// (tcache) count as in use: a soak runs the relay with them off. Walks the arenas under
/// their locks: for a scrape, not a hot path.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn heap_in_use() -> Option<u64> {
    // SAFETY: mallinfo2 only reads the allocator's own counters (glibc >= 2.33).
    let m = unsafe { libc::mallinfo2() };
    u64::try_from(m.uordblks.saturating_add(m.hblkhd)).ok()
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_in_use() -> Option<u64> {
    None
}
