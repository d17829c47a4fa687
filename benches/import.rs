//! CLI data-path load scenario (custom harness; `cargo build --release && cargo bench --bench
//! import`). Runs the release `wok` binary the way operators do:
//! - `wok gen --count N --seed 1` writes the event file (N = `WOK_BENCH_EVENTS`, 100k);
//! - a single-thread bare verify loop (uncached libsecp256k1 Schnorr verify of every event,
//!   nothing else) gives the 1-core baseline, measured in this run;
//! - `wok import`, `wok import --no-verify` into fresh temp DBs and `wok export` of the
//!   result, timed wall-clock.
//!
//! The measurements alternate over `WOK_BENCH_ROUNDS` rounds (default 3) and medians are
//! printed, so a noisy neighbour shifts every figure alike. `-- --test` runs a tiny version.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use wok::nostr::{verify, Event, JsonParser, Limits};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn wok() -> Command {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/wok");
    assert!(
        bin.exists(),
        "run `cargo build --release` first ({} is missing)",
        bin.display()
    );
    Command::new(bin)
}

/// Runs `wok --set db=<db> <args>` with `input` on stdin and stdout discarded; wall seconds.
fn timed(db: &Path, args: &[&str], input: Option<&Path>) -> f64 {
    std::fs::create_dir_all(db).expect("db dir");
    let stdin = match input {
        Some(p) => Stdio::from(std::fs::File::open(p).expect("input")),
        None => Stdio::null(),
    };
    let t = Instant::now();
    let out = wok()
        .arg("--set")
        .arg(format!("db={}", db.display()))
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run wok");
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "wok {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (n, rounds) = if smoke {
        (500, 1)
    } else {
        (env("WOK_BENCH_EVENTS", 100_000), env("WOK_BENCH_ROUNDS", 3))
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("events.jsonl");
    let out = wok()
        .args(["gen", "--count", &n.to_string(), "--seed", "1"])
        .stdout(Stdio::from(std::fs::File::create(&file).expect("file")))
        .status()
        .expect("wok gen");
    assert!(out.success(), "wok gen failed");

    // Parsed once, outside the timed loop: the baseline is the signature check alone.
    let text = std::fs::read(&file).expect("read");
    let mut parser = JsonParser::new();
    let events: Vec<Event> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| Event::parse(&mut l.to_vec(), &mut parser, &Limits::default()).ok())
        .collect();

    let (mut verify_s, mut import_s, mut nov_s, mut export_s) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let t = Instant::now();
        let ok = events
            .iter()
            .filter(|e| verify::verify_schnorr_uncached(&e.id, &e.pubkey, &e.sig))
            .count();
        verify_s.push(t.elapsed().as_secs_f64());
        assert_eq!(ok, events.len(), "generated events must verify");

        let db = tmp.path().join(format!("v{round}"));
        import_s.push(timed(&db, &["import"], Some(&file)));
        let db_nv = tmp.path().join(format!("nv{round}"));
        nov_s.push(timed(&db_nv, &["import", "--no-verify"], Some(&file)));
        export_s.push(timed(&db, &["export"], None));
        let _ = std::fs::remove_dir_all(&db_nv);
    }
    let lines = n as f64;
    let v = median(&mut verify_s);
    let i = median(&mut import_s);
    let nv = median(&mut nov_s);
    let ex = median(&mut export_s);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!("{n} generated events, {rounds} rounds, {cores} cores, medians:");
    println!(
        "bare verify loop, 1 core: {:.2} s = {:.0} events/s",
        v,
        lines / v
    );
    println!(
        "import (verifying): {:.2} s = {:.0} events/s = {:.2}x the 1-core verify loop",
        i,
        lines / i,
        v / i
    );
    println!(
        "import --no-verify: {:.2} s = {:.0} events/s",
        nv,
        lines / nv
    );
    println!("export: {:.2} s = {:.0} events/s", ex, lines / ex);
}
