//! Store load scenario (custom harness: it reports latency percentiles, which criterion
//! does not). `cargo bench --bench store` builds a DB of `WOK_BENCH_EVENTS` generated events
//! (default 100k) in a temp dir, or opens `WOK_BENCH_DB` if set (e.g. a 1M-event DB made with
//! `wok gen --count 1000000 | wok --set db=DIR import`), then measures:
//! - write: events/s through `write_batch` in batches of 10k (only when it builds the DB);
//! - query latency p50/p99/max per query shape, 2000 runs each over varied authors/tags;
//! - export walk: events/s through `by_created_at` + payload;
//! - DB bytes per event.

use std::time::Instant;

use wok::gen::{author_keys, GenConfig};
use wok::nostr::{hex, Event, Filter, JsonParser};
use wok::store::query::{Progress, Query};
use wok::store::{Store, StoreOptions};

fn filter(s: &str) -> Filter {
    JsonParser::new()
        .parse(&mut s.as_bytes().to_vec(), |v| Filter::from_json(v, 3))
        .expect("json")
        .expect("filter")
}

/// Makes the filter JSON for run `i` of a query shape.
type Shape<'a> = Box<dyn Fn(usize) -> String + 'a>;

use wok::bench::pct;

fn main() {
    // `cargo test --benches` / `cargo bench -- --test` pass `--test`: just prove it runs.
    let smoke = std::env::args().any(|a| a == "--test");
    let seed = 1;
    let (events, authors) = if smoke {
        (2_000, 100)
    } else {
        let n = std::env::var("WOK_BENCH_EVENTS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(100_000);
        (n, 1_000)
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let (dir, built) = match std::env::var("WOK_BENCH_DB") {
        Ok(d) if !smoke => (std::path::PathBuf::from(d), false),
        _ => (tmp.path().to_path_buf(), true),
    };
    let store = Store::open(&dir, &StoreOptions::default()).expect("open");
    if built {
        let cfg = GenConfig {
            seed,
            count: events,
            authors,
            ..GenConfig::default()
        };
        let all: Vec<Event> = wok::gen::generate(&cfg);
        let t = Instant::now();
        for chunk in all.chunks(10_000) {
            store.write_batch(chunk).expect("write");
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "write: {} events in {:.2}s = {:.0} events/s",
            all.len(),
            secs,
            all.len() as f64 / secs
        );
    }
    let txn = store.read_txn().expect("txn");
    let count = store.count(&txn).expect("count");
    let snap = store.latest_lev_id(&txn).expect("snap");
    drop(txn);
    let keys = author_keys(seed, authors);
    let pks: Vec<String> = keys.iter().map(|k| hex::encode(&k.pubkey)).collect();
    // Ids for #e and #p shapes: the most active authors' pubkeys double as #p values.
    let runs = if smoke { 20 } else { 2_000 };
    let shapes: Vec<(&str, Shape)> = vec![
        (
            "authors+kinds:1 limit 100",
            Box::new(|i| {
                format!(
                    r#"{{"authors":["{}"],"kinds":[1],"limit":100}}"#,
                    pks[i % 50]
                )
            }),
        ),
        (
            "authors (10) limit 100",
            Box::new(|i| {
                let a: Vec<String> = (0..10)
                    .map(|j| format!("\"{}\"", pks[(i + j * 7) % pks.len()]))
                    .collect();
                format!(r#"{{"authors":[{}],"limit":100}}"#, a.join(","))
            }),
        ),
        (
            "#p limit 100",
            Box::new(|i| format!(r##"{{"#p":["{}"],"limit":100}}"##, pks[i % 50])),
        ),
        (
            "kinds:1 limit 500",
            Box::new(|_| r#"{"kinds":[1],"limit":500}"#.to_string()),
        ),
        (
            "kinds:0,3 window limit 100",
            Box::new(|i| {
                let until = 1_700_000_000 + (i as u64).wrapping_mul(7_919_993) % 31_536_000;
                format!(r#"{{"kinds":[0,3],"until":{until},"limit":100}}"#)
            }),
        ),
        (
            "global limit 100",
            Box::new(|_| r#"{"limit":100}"#.to_string()),
        ),
    ];
    println!("db: {count} events at {}", dir.display());
    for (name, make) in &shapes {
        let mut lat = Vec::with_capacity(runs);
        let mut returned = 0usize;
        for i in 0..runs {
            let f = filter(&make(i));
            let t = Instant::now();
            let txn = store.read_txn().expect("txn");
            let mut q = Query::new(vec![f], 500, snap, u64::MAX / 2);
            let mut out = Vec::new();
            while q.run(&store, &txn, 10_000, &mut out).expect("run") == Progress::Paused {}
            // Load the payloads too: that is what serving a REQ costs.
            let bytes: usize = out
                .iter()
                .map(|&l| store.payload(&txn, l).expect("p").map_or(0, |p| p.len()))
                .sum();
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(bytes);
            returned += out.len();
        }
        let n = lat.len();
        println!(
            "query {name:<28} p50 {:>7.1} us  p99 {:>7.1} us  max {:>8.1} us  ({:.0} events/query, {n} runs)",
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
            pct(&mut lat, 1.0),
            returned as f64 / n as f64
        );
    }
    let txn = store.read_txn().expect("txn");
    let t = Instant::now();
    let mut n = 0u64;
    let mut bytes = 0usize;
    for lev in store.by_created_at(&txn, 0, u64::MAX, false).expect("walk") {
        let p = store
            .payload(&txn, lev.expect("lev"))
            .expect("payload")
            .expect("exists");
        bytes += p.len();
        n += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "export walk: {n} events, {bytes} bytes in {secs:.3}s = {:.0} events/s",
        n as f64 / secs
    );
    let size = std::fs::metadata(dir.join("data.mdb"))
        .map(|m| m.len())
        .unwrap_or(0);
    let used = store.env().non_free_pages_size().unwrap_or(0);
    println!(
        "db size: data.mdb {size} bytes, {used} bytes in use = {:.0} bytes/event",
        used as f64 / count.max(1) as f64
    );
}
