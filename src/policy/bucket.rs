//! A lock-free token bucket: GCRA (the generic cell rate algorithm), whose whole state is
//! one `AtomicU64` — the theoretical arrival time of the next token. A check is one load and
//! one compare-exchange, whatever the rate, and the rate and burst are parameters of each
//! call, so a config reload changes them without touching (or resetting) any bucket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// Nanoseconds on a monotonic clock since the first call in this process.
pub fn mono_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A sustained rate and the burst a full bucket allows; `per_sec == 0` means no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_sec: u64,
    pub burst: u64,
}

impl Rate {
    pub const OFF: Rate = Rate {
        per_sec: 0,
        burst: 0,
    };

    pub fn new(per_sec: u64, burst: u64) -> Rate {
        Rate { per_sec, burst }
    }

    pub fn is_off(self) -> bool {
        self.per_sec == 0
    }

    /// Nanoseconds one token is worth.
    fn interval(self) -> u64 {
        (1_000_000_000 / self.per_sec.max(1)).max(1)
    }

    /// How far ahead of now the arrival time may run: the burst's worth of tokens. A burst
    /// below 1 is taken as 1 (a bucket that can never hold a token would refuse everything).
    fn window(self) -> u64 {
        self.interval().saturating_mul(self.burst.max(1))
    }
}

/// One bucket (see the module comment). A new bucket is full.
#[derive(Default, Debug)]
pub struct Bucket {
    tat: AtomicU64,
}

impl Bucket {
    /// Takes `n` tokens if all are there (nothing is taken otherwise).
    pub fn take(&self, rate: Rate, now: u64, n: u64) -> bool {
        if rate.is_off() {
            return true;
        }
        let (cost, window) = (rate.interval().saturating_mul(n), rate.window());
        let mut cur = self.tat.load(Ordering::Relaxed);
        loop {
            let next = cur.max(now).saturating_add(cost);
            if next - now > window {
                return false;
            }
            match self
                .tat
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(v) => cur = v,
            }
        }
    }

    /// Tokens available now (`u64::MAX` when the rate is off).
    pub fn available(&self, rate: Rate, now: u64) -> u64 {
        if rate.is_off() {
            return u64::MAX;
        }
        let ahead = self.tat.load(Ordering::Relaxed).saturating_sub(now);
        rate.window().saturating_sub(ahead) / rate.interval()
    }

    /// Takes `n` tokens whether or not they are there (bytes already read), going into
    /// debt; the debt is paid back before anything more is allowed, so the average holds
    /// even when one read takes more than a burst.
    pub fn charge(&self, rate: Rate, now: u64, n: u64) {
        if rate.is_off() {
            return;
        }
        let cost = rate.interval().saturating_mul(n);
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |cur| {
                Some(cur.max(now).saturating_add(cost))
            });
    }

    /// Full again: forgetting it loses nothing.
    pub fn is_full(&self, now: u64) -> bool {
        self.tat.load(Ordering::Relaxed) <= now
    }

    /// Nanoseconds until one token is there (0 if there is one now).
    pub fn wait_ns(&self, rate: Rate, now: u64) -> u64 {
        if rate.is_off() {
            return 0;
        }
        let ahead = self.tat.load(Ordering::Relaxed).saturating_sub(now);
        (ahead + rate.interval()).saturating_sub(rate.window())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn burst_then_rate() {
        let b = Bucket::default();
        let r = Rate::new(10, 5);
        let t0 = 100 * S;
        for _ in 0..5 {
            assert!(b.take(r, t0, 1));
        }
        assert!(!b.take(r, t0, 1), "the burst is spent");
        assert_eq!(b.available(r, t0), 0);
        // A token every 100 ms.
        assert!(!b.take(r, t0 + S / 20, 1));
        assert!(b.take(r, t0 + S / 10, 1));
        assert!(!b.take(r, t0 + S / 10, 1));
        // Idle for a second: full again, but never more than the burst.
        assert_eq!(b.available(r, t0 + 10 * S), 5);
        assert!(b.is_full(t0 + 10 * S));
    }

    #[test]
    fn off_and_reload() {
        let b = Bucket::default();
        assert!(b.take(Rate::OFF, 0, u64::MAX));
        let r = Rate::new(1, 2);
        assert!(b.take(r, 5 * S, 2));
        assert!(!b.take(r, 5 * S, 1));
        // A reload to a larger burst keeps the debt but allows more.
        assert!(b.take(Rate::new(1, 4), 5 * S, 2));
        assert_eq!(b.wait_ns(Rate::new(1, 4), 5 * S), S);
    }

    #[test]
    fn charge_goes_into_debt() {
        let b = Bucket::default();
        let r = Rate::new(1000, 1000);
        b.charge(r, S, 5000);
        // 4,000 tokens of debt: four seconds to pay back before anything is allowed.
        assert_eq!(b.available(r, S), 0);
        assert_eq!(b.available(r, 5 * S), 0);
        assert!(b.available(r, 5 * S + S / 10) >= 99);
    }
}
