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
    opts.search_kinds = index.then(default_kinds);
    Store::open(dir, &opts).expect("open")
}

/// The default `search.kinds` (search itself is off by default).
fn default_kinds() -> wok::store::search::KindSet {
    let mut cfg = wok::config::Config::default();
    cfg.search.enabled = true;
    wok::store::search_kinds_of(&cfg).expect("default kinds")
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

    // Terms per event: what the relay's ingesters (and import's workers) add per indexed
    // event, off the writer's thread.
    let kinds_on = default_kinds();
    let indexed: Vec<&wok::nostr::Event> = events
        .iter()
        .filter(|e| kinds_on.contains(e.kind))
        .collect();
    let mut per = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for e in &indexed {
            std::hint::black_box(wok::search::doc::event_terms(e));
        }
        per.push(t.elapsed().as_secs_f64() * 1e6 / indexed.len().max(1) as f64);
    }
    per.sort_by(f64::total_cmp);
    println!(
        "terms: {:.1} µs per indexed event (median of 5; the ingesters' share)",
        per[2]
    );

    // Ingest: the writer with the index off, on with terms made by the caller (the relay's
    // and import's path), and on tokenizing itself (sync, stream, router); interleaved.
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("t")).collect();
    let stores = [
        open(dirs[0].path(), false),
        open(dirs[1].path(), true),
        open(dirs[2].path(), true),
    ];
    let mut rates: [Vec<f64>; 3] = Default::default();
    let ingest_ab = std::env::var("WOK_BENCH_INGEST").map_or(true, |v| v != "0");
    for (i, chunk) in events.chunks(10_000).enumerate() {
        let terms: Vec<Option<wok::search::doc::Terms>> = chunk
            .iter()
            .map(|e| {
                kinds_on
                    .contains(e.kind)
                    .then(|| wok::search::doc::event_terms(e))
            })
            .collect();
        // Rotate which goes first, so none always meets a warmer cache.
        for k in 0..3 {
            let which = (i + k) % 3;
            // WOK_BENCH_INGEST=0: only the store the rest measures (big runs for latency).
            if which != 1 && !ingest_ab {
                continue;
            }
            let s = &stores[which];
            let t = Instant::now();
            let mut txn = s.write_txn().expect("txn");
            let given: &[Option<wok::search::doc::Terms>] = if which == 1 { &terms } else { &[] };
            s.write_events_with(&mut txn, chunk, given).expect("write");
            txn.commit().expect("commit");
            rates[which].push(chunk.len() as f64 / t.elapsed().as_secs_f64());
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [mut r_off, mut r_given, mut r_self] = rates;
    let (off, given, itself) = if ingest_ab {
        (med(&mut r_off), med(&mut r_given), med(&mut r_self))
    } else {
        (f64::NAN, med(&mut r_given), f64::NAN)
    };
    println!(
        "ingest: {off:.0} ev/s without the index; with it {given:.0} ev/s given terms (ratio {:.2}), {itself:.0} ev/s tokenizing in the writer (ratio {:.2}) (medians of {} batches of 10k)",
        given / off,
        itself / off,
        r_off.len()
    );
    let (on, off) = (&stores[1], &stores[0]);

    // Size.
    let kinds = kinds_on.clone();
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
    if !ingest_ab {
        // The store without the index was not filled: no size to compare with.
        println!(
            "index: {} docs, {} postings (stats estimate {} bytes; sizes need WOK_BENCH_INGEST=1)",
            s.docs, s.tokens, s.bytes
        );
    }
    if ingest_ab {
        let extra = used(on).saturating_sub(used(off));
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
    }

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
            let (k, d) = run_query(on, &format!(r#"{{"search":"{}"}}"#, qs[i % qs.len()]), 500);
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
    let reacts_more: Vec<_> = keys[..10]
        .iter()
        .map(|k| {
            k.sign(
                1_760_000_200,
                7,
                wok::nostr::tags::Tags::from_vecs(&[vec!["e", &id]]),
                "++",
                &wok::nostr::Limits::default(),
            )
            .expect("sign")
        })
        .collect();
    let f = format!(r##"{{"#e":["{id}"],"kinds":[7]}}"##);
    // One COUNT+hll: from scratch (`after` = 0), or extending the answer the relay cached
    // up to levId `after` (`relay::hll_cache`: only newer events are read).
    let count = |after: u64| {
        let flt = filter(&f);
        let t = Instant::now();
        let txn = on.read_txn().expect("txn");
        let snap = on.latest_lev_id(&txn).expect("snap");
        let h = std::cell::RefCell::new(Hll::new(flt.hll_offset.0.expect("eligible")));
        let mut q = Query::new(vec![flt], 1_000_001, snap, u64::MAX / 2).after(after);
        let mut out = Vec::new();
        while q
            .run_keeping(on, &txn, u64::MAX, &mut out, &|r| {
                h.borrow_mut().add(r.pubkey());
                true
            })
            .expect("run")
            == Progress::Paused
        {}
        std::hint::black_box(h.borrow().to_hex());
        (t.elapsed().as_secs_f64() * 1e3, out.len(), snap)
    };
    // WOK_BENCH_HLL_RUNS: more counts, for a profiler attached to this phase.
    let runs = if smoke {
        5
    } else {
        std::env::var("WOK_BENCH_HLL_RUNS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(50)
    };
    let mut cold = Vec::new();
    let mut through = 0;
    for _ in 0..runs {
        let (ms, n, snap) = count(0);
        assert!(n >= reactions);
        cold.push(ms);
        through = snap;
    }
    // Ten more reactions since the cached answer.
    on.write_batch(&reacts_more).expect("write");
    let mut warm = Vec::new();
    for _ in 0..runs {
        let (ms, n, _) = count(through);
        assert_eq!(n, reacts_more.len());
        warm.push(ms);
    }
    println!(
        "COUNT+hll over {reactions} reactions: p50 {:.2} ms, p99 {:.2} ms from scratch; p50 {:.2} ms, p99 {:.2} ms extending a cached answer by {} new ones",
        pct(&mut cold, 0.5),
        pct(&mut cold, 0.99),
        pct(&mut warm, 0.5),
        pct(&mut warm, 0.99),
        reacts_more.len()
    );
}
