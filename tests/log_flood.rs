//! A connect/close flood cannot flood the log: per-connection lines stay within the io
//! thread's budget (`relay::log_budget`, 20 a second), however many connections come and
//! go. Its own test binary, so its logger sees this relay alone.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use common::TestRelay;

static LINES: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

struct Count;

impl log::Log for Count {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = record.args().to_string();
        if line.contains("connect from") {
            LINES.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(line.len() + 60, Ordering::Relaxed);
        }
    }
    fn flush(&self) {}
}

fn open_close(addr: &str) {
    // Closed at once after the 101 (a TCP close, as a flooder would).
    drop(common::raw_upgrade(addr, None));
}

#[test]
fn a_connect_close_flood_stays_within_the_log_budget() {
    if log::set_boxed_logger(Box::new(Count)).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    // The log budget is what is tested: rate limits would refuse most of these upgrades.
    let r = TestRelay::with(|c| c.relay.limits.enabled = false);
    let addr = r.url.trim_start_matches("ws://").to_owned();
    let t0 = Instant::now();
    let n = 1500;
    for _ in 0..n {
        open_close(&addr);
    }
    // Every connection opened was logged or counted; the closes follow shortly (bounded).
    let secs = t0.elapsed().as_secs_f64();
    let lines = LINES.load(Ordering::Relaxed);
    // 20 lines a second (connects and disconnects together), whole seconds started.
    let budget = 20 * (secs.ceil() as usize + 1);
    assert!(
        lines <= budget,
        "{lines} connection lines for {n} connections in {secs:.1}s (budget {budget})"
    );
    assert!(
        lines >= 20,
        "the first lines of each second are still written"
    );
    let rate = BYTES.load(Ordering::Relaxed) as f64 / secs.max(1.0);
    assert!(rate < 10_000.0, "{rate:.0} bytes/s of connection lines");
    eprintln!("{n} connections in {secs:.2}s: {lines} lines, ~{rate:.0} B/s");
}
