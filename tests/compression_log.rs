//! The connect line (`compression=Y sliding=Y`) and the disconnect line with strfry's
//! `UP: … (x% compressed) DN: …` stats, read from a logger installed for this test binary
//! alone (one relay, so connection ids are unambiguous).

mod common;
mod pmd;

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::TestRelay;
use pmd::{client, default_offer, exchange};
use serde_json::json;

/// Log lines, captured by a logger installed once for this test binary.
static LOG: OnceLock<(Mutex<Vec<String>>, Condvar)> = OnceLock::new();

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if let Some((lines, cv)) = LOG.get() {
            if let Ok(mut l) = lines.lock() {
                l.push(record.args().to_string());
                cv.notify_all();
            }
        }
    }
    fn flush(&self) {}
}

/// Waits (on the logger's condvar, not a sleep) for a line matching `pred`.
fn wait_line(pred: impl Fn(&str) -> bool) -> String {
    let (lines, cv) = LOG.get().expect("logger");
    let end = Instant::now() + Duration::from_secs(10);
    let mut l = lines.lock().expect("log");
    loop {
        if let Some(line) = l.iter().find(|s| pred(s)) {
            return line.clone();
        }
        let left = end.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no such log line in {l:#?}");
        l = cv.wait_timeout(l, left).expect("log").0;
    }
}

#[test]
fn connect_and_disconnect_lines() {
    LOG.get_or_init(|| (Mutex::new(Vec::new()), Condvar::new()));
    if log::set_boxed_logger(Box::new(Capture)).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    let r = TestRelay::start();
    exchange(&r.url, default_offer(), 8);
    let connect = wait_line(|s| s.contains("connect from") && s.contains("compression=Y"));
    assert!(connect.ends_with("compression=Y sliding=Y"), "{connect}");
    let id = connect.split(']').next().expect("id").to_owned() + "]";
    let line = wait_line(|s| s.starts_with(&id) && s.contains("disconnect from"));
    // `[id] disconnect from 127.0.0.1: UP: 9.87K (40.1% compressed) DN: …`
    let pct = |dir: &str| -> f64 {
        let after = line.split(dir).nth(1).expect(dir);
        let open = after.find('(').expect("(");
        let pct = after[open + 1..].split('%').next().expect("%");
        pct.parse().expect("percent")
    };
    assert!(pct("UP: ") > 10.0, "{line}");
    assert!(pct("DN: ") > 10.0, "{line}");
    // An uncompressed connection reports 0% saved.
    let out = client(json!({"url": r.url, "offer": null,
        "steps": [{"send": "[\"REQ\",\"x\",{}]"}, {"recv_until": "EOSE"}]}));
    assert!(out["extensions"].is_null());
    let plain = wait_line(|s| s.contains("compression=N sliding=N"));
    let id = plain.split(']').next().expect("id").to_owned() + "]";
    let line = wait_line(|s| s.starts_with(&id) && s.contains("disconnect from"));
    assert!(line.contains("(0.0% compressed) DN:"), "{line}");
}
