//! `wok bench`: load scenarios that drive any relay by URL (wok, strfry, anything speaking
//! NIP-01), so two relays can be measured with the same client on the same machine. Every
//! loop is bounded in count and time. Each scenario returns named figures; `wok bench`
//! prints them as text or JSON lines, and `scripts/bench-vs-strfry.sh` takes medians.
//!
//! Relay-side cost is sampled for a given pid: CPU seconds from the kernel's per-process CPU
//! clock, RSS from /proc.

pub mod conns;
pub mod fairness;
pub mod fanout;
pub mod ingest;
pub mod plot;
pub mod query;

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::WebSocket;

pub type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    pub scenario: &'static str,
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    /// Seconds since the scenario started, for a time-series sample (CPU, RSS over time).
    pub t: Option<f64>,
}

/// Figures accumulate here, in the order they were measured.
#[derive(Default)]
pub struct Report {
    pub figures: Vec<Figure>,
}

impl Report {
    pub fn add(
        &mut self,
        scenario: &'static str,
        name: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) {
        self.push(scenario, name.into(), None, value, unit);
    }

    /// A sample of a time series at `t` seconds into the scenario.
    pub fn add_at(
        &mut self,
        scenario: &'static str,
        name: impl Into<String>,
        t: f64,
        value: f64,
        unit: &'static str,
    ) {
        self.push(scenario, name.into(), Some(t), value, unit);
    }

    fn push(
        &mut self,
        scenario: &'static str,
        name: String,
        t: Option<f64>,
        value: f64,
        unit: &'static str,
    ) {
        self.figures.push(Figure {
            scenario,
            name,
            value,
            unit,
            t,
        });
    }
}

/// Opens a WebSocket with a read timeout, so no read can hang.
pub fn connect(url: &str, read_timeout: Duration) -> Result<Ws, String> {
    let (ws, _) = tungstenite::connect(url).map_err(|e| format!("cannot connect to {url}: {e}"))?;
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        let _ = s.set_read_timeout(Some(read_timeout));
        let _ = s.set_nodelay(true);
    }
    Ok(ws)
}

/// The `p` quantile (0..=1) of `v` (sorted in place); NaN when empty.
pub fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// CPU seconds (user + system) a process has used so far, to the nanosecond: the kernel's
/// per-process CPU clock (all threads, exited ones too). `/proc/<pid>/stat` counts in
/// 10 ms ticks, which made a 30 ms NIP-77 reconcile's CPU a coin toss between 20 and 40.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    cpu_clock_secs(pid).or_else(|| cpu_tick_secs(pid))
}

fn cpu_clock_secs(pid: u32) -> Option<f64> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: both calls only write the out-parameter they are given.
    if unsafe { libc::clock_getcpuclockid(pid, &mut clock) } != 0 {
        return None;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

/// The same from `/proc/<pid>/stat`, in clock ticks (where the clock cannot be read).
fn cpu_tick_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit(')').next()?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// Resident set size of a process, in KiB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// How often the sampler reads /proc: fine enough to show a few-second scenario's shape,
/// coarse enough (two small file reads) to cost the relay nothing measurable.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// At most one hour of samples are kept, so a forgotten run cannot grow without bound.
const MAX_SAMPLES: usize = 36_000;

/// (seconds since start, CPU seconds so far, RSS KiB) for one sample.
type Sample = (f64, f64, u64);

/// Relay CPU and RSS around a scenario, when a pid was given, and a sampler thread that
/// reads them every `SAMPLE_EVERY` so the run can be drawn over time (`wok bench plot`).
pub struct ProcWatch {
    pid: Option<u32>,
    cpu0: f64,
    rss0: u64,
    start: Instant,
    stop: Arc<AtomicBool>,
    sampler: Mutex<Option<JoinHandle<Vec<Sample>>>>,
}

impl ProcWatch {
    pub fn start(pid: Option<u32>) -> ProcWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let sampler = pid.map(|pid| {
            let stop = stop.clone();
            std::thread::spawn(move || sample(pid, start, &stop))
        });
        ProcWatch {
            start,
            pid,
            cpu0: pid.and_then(cpu_secs).unwrap_or(0.0),
            rss0: pid.and_then(rss_kb).unwrap_or(0),
            stop,
            sampler: Mutex::new(sampler),
        }
    }

    /// Adds relay CPU seconds, cores used over `secs`, and RSS figures, then the sampled
    /// series: `relay_cores` (CPU used between two samples / their interval) and
    /// `relay_rss_kb`, each with its time `t`. Returns the relay CPU seconds used, when known.
    pub fn finish(&self, r: &mut Report, scenario: &'static str, secs: f64) -> Option<f64> {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.sampler.lock().ok().and_then(|mut h| h.take());
        let mut samples = handle.and_then(|h| h.join().ok()).unwrap_or_default();
        let pid = self.pid?;
        // One at the very end too, so even a run shorter than SAMPLE_EVERY has a segment.
        if let (Some(cpu), Some(rss)) = (cpu_secs(pid), rss_kb(pid)) {
            samples.push((self.start.elapsed().as_secs_f64(), cpu, rss));
        }
        let used = cpu_secs(pid).map(|cpu| cpu - self.cpu0);
        if let Some(cpu) = cpu_secs(pid) {
            r.add(scenario, "relay_cpu_s", cpu - self.cpu0, "s");
            if secs > 0.0 {
                r.add(scenario, "relay_cores", (cpu - self.cpu0) / secs, "cores");
            }
        }
        if let Some(rss) = rss_kb(pid) {
            r.add(scenario, "relay_rss_kb", rss as f64, "KiB");
            r.add(
                scenario,
                "relay_rss_growth_kb",
                rss as f64 - self.rss0 as f64,
                "KiB",
            );
        }
        for w in samples.windows(2) {
            let (t0, c0, _) = w[0];
            let (t1, c1, rss) = w[1];
            if t1 > t0 {
                r.add_at(scenario, "relay_cores", t1, (c1 - c0) / (t1 - t0), "cores");
            }
            r.add_at(scenario, "relay_rss_kb", t1, rss as f64, "KiB");
        }
        used
    }
}

/// The sampler thread: reads /proc/<pid>/stat and status every `SAMPLE_EVERY` until told
/// to stop, the process is gone, or `MAX_SAMPLES` are taken.
fn sample(pid: u32, start: Instant, stop: &AtomicBool) -> Vec<Sample> {
    let mut out = Vec::new();
    while out.len() < MAX_SAMPLES {
        let (Some(cpu), Some(rss)) = (cpu_secs(pid), rss_kb(pid)) else {
            break;
        };
        out.push((start.elapsed().as_secs_f64(), cpu, rss));
        if stop.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    out
}

/// The subscription id and event id in `["OK","<id>",…` or `["EVENT","<sub>",…`; cheap
/// enough that the client never becomes the bottleneck it measures.
pub fn second_str(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('[')?;
    let rest = &rest[rest.find(',')? + 1..];
    let rest = rest.trim_start().strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

/// The verb of a relay message (`OK`, `EVENT`, `EOSE`, …).
pub fn verb(text: &str) -> &str {
    text.strip_prefix("[\"")
        .and_then(|r| r.find('"').map(|i| &r[..i]))
        .unwrap_or("")
}

#[cfg(test)]
mod cpu_tests {
    use super::*;

    /// The process clock agrees with /proc's ticks and sees a few milliseconds of work
    /// that ticks count as 0 or 10 ms. Other test threads share the process clock, so a round
    /// may overshoot while this one waits for a core: any of five rounds may show it.
    #[test]
    fn cpu_secs_resolves_below_a_tick() {
        let me = std::process::id();
        let (clock, ticks) = (
            cpu_secs(me).expect("clock"),
            cpu_tick_secs(me).expect("stat"),
        );
        assert!(
            (clock - ticks).abs() < 0.05,
            "clock {clock} vs ticks {ticks}"
        );
        let mut seen = Vec::new();
        for _ in 0..5 {
            let before = cpu_secs(me).expect("clock");
            let wall = std::time::Instant::now();
            let mut x = 0u64;
            // About 3 ms of CPU (bounded by 2 s of wall time on a busy machine).
            while cpu_secs(me).expect("clock") - before < 0.003
                && wall.elapsed() < std::time::Duration::from_secs(2)
            {
                for i in 0..10_000u64 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
            }
            let used = cpu_secs(me).expect("clock") - before;
            if (0.003..0.008).contains(&used) {
                return;
            }
            seen.push((used, x));
        }
        panic!("never between 3 and 8 ms: {seen:?}");
    }
}
