//! NIP-50 / NIP-45 figures (custom harness: percentiles and A/B ratios in one run).
//! `cargo bench --bench search` generates `WOK_BENCH_EVENTS` events (default 100k) and
//! measures, medians of interleaved runs:
//! - tokenizer throughput (MB/s of note text);
//! - ingest events/s through `write_batch` (10k batches) with the index on and off, the
//!   two stores written alternately batch by batch so both see the same machine load;
//! - index bytes against the payload bytes of the indexed events;
//! - search latency p50/p99 for one- and two-word queries (REQ limit 500 as the relay caps);
//! - COUNT with `hll` over 10k reactions to one event.

use std::time::{Duration, Instant};

use wok::bench::pct;
use wok::gen::{generate, GenConfig};
use wok::nostr::filter::EventView;
use wok::nostr::{Filter, JsonParser};
use wok::search::hll::Hll;
use wok::store::query::{Progress, Query};
use wok::store::{Store, StoreOptions};

fn filter(s: &str) -> Filter {
    JsonParser::new()
        .parse(&mut s.as_bytes().to_vec(), |v| Filter::from_json(v, 3))
        .expect("json")
        .expect("filter")
}

fn open(dir: &std::path::Path, index: bool) -> Store {
    let mut opts = StoreOptions {
        map_size: 1 << 36,
        ..StoreOptions::default()
    };
    // Search is off by default: the "on" store gets the default `search.kinds`.
    opts.search_kinds = if index {
        let mut cfg = wok::config::Config::default();
        cfg.search.enabled = true;
        wok::store::search_kinds_of(&cfg)
    } else {
        None
    };
    Store::open(dir, &opts).expect("open")
}

fn run_query(store: &Store, f: &str, cap: u64) -> (usize, Duration) {
    let t = Instant::now();
    let txn = store.read_txn().expect("txn");
    let snap = store.latest_lev_id(&txn).expect("snap");
    let mut q = Query::new(vec![filter(f)], cap, snap, u64::MAX / 2);
    let mut out = Vec::new();
    while q.run(store, &txn, u64::MAX, &mut out).expect("run") == Progress::Paused {}
    (out.len(), t.elapsed())
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let n: usize = if smoke {
        2_000
    } else {
        std::env::var("WOK_BENCH_EVENTS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(100_000)
    };
    let events = generate(&GenConfig {
        count: n,
        start: 1_760_000_000,
        ..GenConfig::default()
    });

    // Tokenizer.
    let texts: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == 1)
        .map(|e| e.content.as_str())
        .collect();
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let mut toks = 0usize;
        for s in &texts {
            toks += wok::search::tokenize::tokens(s).len();
        }
        std::hint::black_box(toks);
        rates.push(bytes as f64 / t.elapsed().as_secs_f64() / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    println!("tokenize: {:.1} MB/s of note text (median of 5)", rates[2]);

    // Ingest, index on vs off, interleaved.
    let (d_on, d_off) = (
        tempfile::tempdir().expect("t"),
        tempfile::tempdir().expect("t"),
    );
    let (on, off) = (open(d_on.path(), true), open(d_off.path(), false));
    let (mut t_on, mut t_off) = (Vec::new(), Vec::new());
    for (i, chunk) in events.chunks(10_000).enumerate() {
        let time = |s: &Store, v: &mut Vec<f64>| {
            let t = Instant::now();
            s.write_batch(chunk).expect("write");
            v.push(chunk.len() as f64 / t.elapsed().as_secs_f64());
        };
        // Alternate which goes first, so neither always meets a warmer cache.
        if i % 2 == 0 {
            time(&on, &mut t_on);
            time(&off, &mut t_off);
        } else {
            time(&off, &mut t_off);
            time(&on, &mut t_on);
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (a, b) = (med(&mut t_on), med(&mut t_off));
    println!(
        "ingest: {a:.0} ev/s with the index, {b:.0} ev/s without: ratio {:.2} (median of {} batches)",
        a / b,
        t_on.len()
    );

    // Size.
    let kinds = on.search_kinds().expect("kinds");
    let covered: usize = events
        .iter()
        .filter(|e| kinds.contains(e.kind))
        .map(|e| e.json().len())
        .sum();
    let txn = on.read_txn().expect("txn");
    let s = on.search_stats(&txn).expect("stats");
    drop(txn);
    // LMDB's table and page stats leave out DUPSORT sub-databases: the honest size is the
    // difference between compacted copies of the two otherwise identical stores.
    let used = |st: &Store| {
        let dir = tempfile::tempdir().expect("t");
        let f = st
            .env()
            .copy_to_path(dir.path().join("c.mdb"), heed::CompactionOption::Enabled)
            .expect("copy");
        f.metadata().expect("meta").len()
    };
    let extra = used(&on).saturating_sub(used(&off));
    println!(
        "index: {} docs, {} postings; {} more bytes than without (compacted copies) = {:.1}% of the {} payload bytes it covers ({:.1} B/posting; stats estimate {} bytes)",
        s.docs,
        s.tokens,
        extra,
        100.0 * extra as f64 / covered.max(1) as f64,
        covered,
        extra as f64 / s.tokens.max(1) as f64,
        s.bytes,
    );

    // Search latency.
    let one = [
        "censorship",
        "nostr",
        "everyone",
        "guillemets",
        "zap",
        "bitcoin",
        "relays",
        "crème",
    ];
    let two = [
        "nostr relays",
        "everyone love",
        "censorship resistant",
        "code building",
        "gm zap",
        "open freedom",
    ];
    let runs = if smoke { 20 } else { 400 };
    for (name, qs) in [("1-word", &one[..]), ("2-word", &two[..])] {
        let mut lat = Vec::new();
        let mut found = 0;
        for i in 0..runs {
            let (k, d) = run_query(&on, &format!(r#"{{"search":"{}"}}"#, qs[i % qs.len()]), 500);
            found += k;
            lat.push(d.as_secs_f64() * 1e3);
        }
        lat.sort_by(f64::total_cmp);
        println!(
            "search {name}: p50 {:.2} ms, p99 {:.2} ms (limit 500, {:.0} results on average)",
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
            found as f64 / runs as f64
        );
    }

    // HLL over 10k reactions.
    let target = events.iter().find(|e| e.kind == 1).expect("a note");
    let id = target.id_hex().to_string();
    let reactions = if smoke { 500 } else { 10_000 };
    let keys: Vec<_> = (0..reactions as u64)
        .map(|i| {
            let mut s = [7u8; 32];
            s[..8].copy_from_slice(&i.to_le_bytes());
            wok::nostr::sign::Keys::from_secret(s).expect("key")
        })
        .collect();
    let reacts: Vec<_> = keys
        .iter()
        .map(|k| {
            k.sign(
                1_760_000_100,
                7,
                wok::nostr::tags::Tags::from_vecs(&[vec!["e", &id]]),
                "+",
                &wok::nostr::Limits::default(),
            )
            .expect("sign")
        })
        .collect();
    for c in reacts.chunks(5_000) {
        on.write_batch(c).expect("write");
    }
    let f = format!(r##"{{"#e":["{id}"],"kinds":[7]}}"##);
    let mut lat = Vec::new();
    for _ in 0..if smoke { 5 } else { 50 } {
        let flt = filter(&f);
        let t = Instant::now();
        let txn = on.read_txn().expect("txn");
        let snap = on.latest_lev_id(&txn).expect("snap");
        let h = std::cell::RefCell::new(Hll::new(flt.hll_offset.0.expect("eligible")));
        let mut q = Query::new(vec![flt], 1_000_001, snap, u64::MAX / 2);
        let mut out = Vec::new();
        while q
            .run_keeping(&on, &txn, u64::MAX, &mut out, &|r| {
                h.borrow_mut().add(r.pubkey());
                true
            })
            .expect("run")
            == Progress::Paused
        {}
        std::hint::black_box(h.borrow().to_hex());
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(out.len() >= reactions);
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "COUNT+hll over {reactions} reactions: p50 {:.2} ms, p99 {:.2} ms",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
}
