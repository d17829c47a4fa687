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
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Metrics {
    pub connections: Gauge,
    pub slow_client_terminations: Counter,
    pub write_events: Counter,
    pub write_rejected: Counter,
    pub write_dups: Counter,
    pub write_time_us: Counter,
    pub write_batches: Counter,
    /// `nostr_client_messages_total{verb}` and `nostr_relay_messages_total{verb}`.
    pub client_messages: Mutex<Vec<(&'static str, u64)>>,
    /// Queue depth readers, filled in at startup: (stage, fn).
    #[allow(clippy::type_complexity)]
    pub queues: Mutex<Vec<(&'static str, Box<dyn Fn() -> usize + Send>)>>,
}

impl Metrics {
    pub fn client_message(&self, verb: &'static str) {
        if let Ok(mut v) = self.client_messages.lock() {
            match v.iter_mut().find(|(k, _)| *k == verb) {
                Some((_, n)) => *n += 1,
                None => v.push((verb, 1)),
            }
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
            "wok_write_batches_total",
            self.write_batches.get().to_string(),
        );
        if let Ok(v) = self.client_messages.lock() {
            for (verb, n) in v.iter() {
                let _ = writeln!(s, "nostr_client_messages_total{{verb=\"{verb}\"}} {n}");
            }
        }
        if let Ok(q) = self.queues.lock() {
            for (stage, f) in q.iter() {
                let _ = writeln!(s, "wok_queue_depth{{stage=\"{stage}\"}} {}", f());
            }
        }
        s
    }
}
