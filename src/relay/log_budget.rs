//! The io thread's per-connection log lines under a budget. strfry writes a line for every
//! connect and disconnect; a connect/close flood then writes ~1 MB/s of them (249 bytes a
//! connection) and a slowloris run one per connection. Here at most `per_sec` such lines
//! are written each second; the rest are counted, and a summary line every
//! [`SUMMARY_EVERY`] says how many connections came and went, how many lines were left
//! out, and which addresses opened the most connections. A quiet relay logs exactly as
//! before.
//!
//! Pure bookkeeping: the caller passes the time, so it is tested without a clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How often a summary may be written (only when lines were left out).
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);
/// Per-connection lines a second before the rest are left out.
pub const LINES_PER_SEC: u32 = 20;
/// Addresses tracked for the summary; past this, new ones count as "others".
const MAX_IPS: usize = 1024;

pub struct LogBudget {
    per_sec: u32,
    second: Instant,
    used: u32,
    since: Instant,
    suppressed: u64,
    opened: u64,
    closed: u64,
    ips: HashMap<IpAddr, u64>,
    other_ips: u64,
}

impl LogBudget {
    pub fn new(per_sec: u32, now: Instant) -> LogBudget {
        LogBudget {
            per_sec,
            second: now,
            used: 0,
            since: now,
            suppressed: 0,
            opened: 0,
            closed: 0,
            ips: HashMap::new(),
            other_ips: 0,
        }
    }

    /// May one more per-connection line be written now? If not, it is counted.
    pub fn allow(&mut self, now: Instant) -> bool {
        if now.duration_since(self.second) >= Duration::from_secs(1) {
            self.second = now;
            self.used = 0;
        }
        if self.used < self.per_sec {
            self.used += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    pub fn opened(&mut self, ip: IpAddr) {
        self.opened += 1;
        if let Some(n) = self.ips.get_mut(&ip) {
            *n += 1;
        } else if self.ips.len() < MAX_IPS {
            self.ips.insert(ip, 1);
        } else {
            self.other_ips += 1;
        }
    }

    pub fn closed(&mut self) {
        self.closed += 1;
    }

    /// The summary line, once per [`SUMMARY_EVERY`], when lines were left out since the
    /// last one; counters start again after it.
    pub fn summary(&mut self, now: Instant) -> Option<String> {
        let span = now.duration_since(self.since);
        if span < SUMMARY_EVERY {
            return None;
        }
        let line = (self.suppressed > 0).then(|| {
            let mut top: Vec<(&IpAddr, &u64)> = self.ips.iter().collect();
            top.sort_unstable_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let mut busiest: Vec<String> = top
                .iter()
                .take(3)
                .map(|(ip, n)| format!("{ip} ({n})"))
                .collect();
            if self.other_ips > 0 {
                busiest.push(format!("others ({})", self.other_ips));
            }
            format!(
                "connections in the last {}s: {} opened, {} closed; {} connection log lines \
                 left out; busiest addresses: {}",
                span.as_secs(),
                self.opened,
                self.closed,
                self.suppressed,
                busiest.join(", ")
            )
        });
        self.since = now;
        self.suppressed = 0;
        self.opened = 0;
        self.closed = 0;
        self.other_ips = 0;
        self.ips.clear();
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_cut_to_the_budget_and_summarised() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(3, t0);
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        let mut written = 0;
        for i in 0..100u64 {
            b.opened(ip);
            b.closed();
            // 100 connections over 2 s.
            if b.allow(t0 + Duration::from_millis(i * 20)) {
                written += 1;
            }
        }
        assert_eq!(written, 6, "3 a second for 2 seconds");
        assert_eq!(b.summary(t0 + Duration::from_secs(5)), None, "not yet");
        let line = b.summary(t0 + SUMMARY_EVERY).expect("summary");
        assert_eq!(
            line,
            "connections in the last 10s: 100 opened, 100 closed; 94 connection log lines \
             left out; busiest addresses: 10.0.0.1 (100)"
        );
        // Quiet afterwards: nothing left out, no summary.
        assert!(b.allow(t0 + SUMMARY_EVERY + Duration::from_secs(1)));
        assert_eq!(b.summary(t0 + SUMMARY_EVERY * 2), None);
    }

    #[test]
    fn addresses_past_the_table_count_as_others() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(0, t0);
        for i in 0..(MAX_IPS as u32 + 5) {
            b.opened(IpAddr::from(i.to_be_bytes()));
            b.allow(t0);
        }
        let line = b.summary(t0 + SUMMARY_EVERY).expect("summary");
        assert!(line.ends_with("others (5)"), "{line}");
    }
}
