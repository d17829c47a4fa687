//! zstd-dictionary payloads: what they save and what they cost (custom harness, alternating
//! rounds; criterion for the per-event figures). `cargo bench --bench dict` generates
//! `WOK_BENCH_EVENTS` realistic events (default 50k, `wok gen`'s generator) into two DBs,
//! A stored raw and B trained (`dict train --limit 10000`, default dictSize) and compressed
//! (`dict compress`, level 3), then reports:
//! - bytes per event: the EventPayload table and all tables (pages in use), A vs B;
//! - per event (criterion): payload read raw vs decompressed, compressing one payload;
//! - export walk, scan (kinds:1, no limit) and REQ (`{"kinds":[1]}` over WebSocket to a
//!   running relay, until EOSE): medians of alternating A/B rounds;
//! - write_batch of 10k fresh events with `events.compression` off vs on.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::Criterion;
use tungstenite::Message;
use wok::bench::pct;
use wok::gen::GenConfig;
use wok::nostr::{Event, Filter, JsonParser};
use wok::store::dict;
use wok::store::query::{Progress, Query};
use wok::store::{LevId, Store, StoreOptions};

fn opts(compress: bool) -> StoreOptions {
    StoreOptions {
        map_size: 8 << 30,
        compress_new_events: compress,
        ..StoreOptions::default()
    }
}

fn filter(s: &str) -> Filter {
    JsonParser::new()
        .parse(&mut s.as_bytes().to_vec(), |v| Filter::from_json(v, 3))
        .expect("json")
        .expect("filter")
}

/// (EventPayload bytes, all tables' bytes) in use.
fn sizes(s: &Store) -> (u64, u64) {
    let txn = s.read_txn().expect("txn");
    let stats = s.table_stats(&txn).expect("stats");
    let payload = stats
        .iter()
        .find(|t| t.0 == "EventPayload")
        .map_or(0, |t| t.2);
    (payload, stats.iter().map(|t| t.2).sum())
}

/// Bytes of a compacted copy (`wok compact`): a rewrite in place leaves half-empty pages
/// behind, so only a compacted file shows what the data needs.
fn compacted(s: &Store) -> u64 {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("copy.mdb");
    s.env()
        .copy_to_path(&path, heed::CompactionOption::Enabled)
        .expect("compact");
    std::fs::metadata(&path).expect("meta").len()
}

fn levs(s: &Store) -> Vec<LevId> {
    let txn = s.read_txn().expect("txn");
    s.all_lev_ids(&txn).expect("levs")
}

/// Trains on up to 10k events (every k-th, deterministic) and compresses every payload.
fn train_and_compress(s: &Store) -> (f64, f64) {
    let all = levs(s);
    let step = (all.len() / 10_000).max(1);
    let txn = s.read_txn().expect("txn");
    let (mut data, mut sizes) = (Vec::new(), Vec::new());
    for &l in all.iter().step_by(step) {
        let j = s.payload(&txn, l).expect("p").expect("j");
        data.extend_from_slice(&j);
        sizes.push(j.len());
    }
    drop(txn);
    let t = Instant::now();
    let raw = dict::train(&data, &sizes, 100_000).expect("train");
    let train_s = t.elapsed().as_secs_f64();
    let id = s.add_dictionary(&raw).expect("add");
    let txn = s.read_txn().expect("txn");
    let d = s.dictionary(&txn, id).expect("dict");
    drop(txn);
    let t = Instant::now();
    for chunk in all.chunks(10_000) {
        s.recode_payloads(chunk, Some((&d, dict::DEFAULT_LEVEL)))
            .expect("recode");
    }
    (train_s, t.elapsed().as_secs_f64())
}

/// Export walk: (events, JSON bytes) through by_created_at + payload.
fn export(s: &Store) -> (u64, u64) {
    let txn = s.read_txn().expect("txn");
    let (mut n, mut bytes) = (0u64, 0u64);
    for lev in s.by_created_at(&txn, 0, u64::MAX, false).expect("walk") {
        if let Some(j) = s.payload(&txn, lev.expect("lev")).expect("p") {
            bytes += j.len() as u64;
            black_box(&j);
            n += 1;
        }
    }
    (n, bytes)
}

/// `{"kinds":[1]}` with no limit, payloads loaded.
fn scan(s: &Store) -> u64 {
    let txn = s.read_txn().expect("txn");
    let snap = s.latest_lev_id(&txn).expect("snap");
    let mut q = Query::new(
        vec![filter(r#"{"kinds":[1]}"#)],
        u64::MAX,
        snap,
        u64::MAX / 2,
    );
    let mut out = Vec::new();
    while q.run(s, &txn, 100_000, &mut out).expect("run") == Progress::Paused {}
    for &l in &out {
        black_box(s.payload(&txn, l).expect("p"));
    }
    out.len() as u64
}

/// One REQ to EOSE; returns the number of events.
fn req(url: &str, sub: &str) -> u64 {
    let mut ws = wok::bench::connect(url, Duration::from_secs(30)).expect("connect");
    ws.send(Message::text(format!(
        r#"["REQ","{sub}",{{"kinds":[1],"limit":1000000}}]"#
    )))
    .expect("send");
    let mut n = 0;
    loop {
        match ws.read().expect("read") {
            Message::Text(t) if t.starts_with("[\"EVENT\"") => n += 1,
            Message::Text(t) if t.starts_with("[\"EOSE\"") => return n,
            _ => {}
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    pct(v, 0.5)
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let n: usize = if smoke {
        2_000
    } else {
        std::env::var("WOK_BENCH_EVENTS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(50_000)
    };
    let rounds = if smoke { 1 } else { 5 };
    let gen = |seed, count| {
        wok::gen::generate(&GenConfig {
            seed,
            count,
            start: wok::policy::now() - 300 * 86_400,
            span_secs: 280 * 86_400,
            ..GenConfig::default()
        })
    };
    let events: Vec<Event> = gen(1, n);
    let (ta, tb) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let open = |p: &Path| Store::open(p, &opts(false)).expect("open");
    let (a, b) = (open(ta.path()), open(tb.path()));
    for chunk in events.chunks(10_000) {
        a.write_batch(chunk).expect("write");
        b.write_batch(chunk).expect("write");
    }
    let stored = levs(&a).len() as f64;
    let (train_s, compress_s) = train_and_compress(&b);
    let (pa, ta_all) = sizes(&a);
    let (pb, tb_all) = sizes(&b);
    println!("{n} generated events, {stored} stored (the rest replaced or deleted)");
    println!("dict train on <=10k events: {train_s:.2}s; dict compress: {compress_s:.2}s ({:.0} events/s)", stored / compress_s);
    println!(
        "bytes/event  EventPayload: raw {:.0}  compressed {:.0}  ({:.1}% smaller)",
        pa as f64 / stored,
        pb as f64 / stored,
        100.0 * (1.0 - pb as f64 / pa as f64)
    );
    println!(
        "bytes/event  all tables:   raw {:.0}  compressed {:.0}  ({:.1}% smaller; pages in use)",
        ta_all as f64 / stored,
        tb_all as f64 / stored,
        100.0 * (1.0 - tb_all as f64 / ta_all as f64)
    );
    let (ca, cb) = (compacted(&a), compacted(&b));
    println!(
        "bytes/event  compacted DB file: raw {:.0}  compressed {:.0}  ({:.1}% smaller)",
        ca as f64 / stored,
        cb as f64 / stored,
        100.0 * (1.0 - cb as f64 / ca as f64)
    );
    {
        // What `dict stats` reports: JSON bytes vs stored payload bytes.
        let txn = b.read_txn().expect("txn");
        let (mut json, mut st) = (0u64, 0u64);
        for l in levs(&b) {
            json += b.payload(&txn, l).expect("p").map_or(0, |j| j.len() as u64);
            st += b
                .raw_payload(&txn, l)
                .expect("r")
                .map_or(0, |r| r.len() as u64);
        }
        println!(
            "payload bytes/event (dict stats): JSON {:.0}  stored {:.0}  ({:.1}% smaller)",
            json as f64 / stored,
            st as f64 / stored,
            100.0 * (1.0 - st as f64 / json as f64)
        );
    }

    // Per event (criterion): reading one payload, raw vs compressed; compressing one.
    {
        let la = levs(&a);
        let lb = levs(&b);
        let mut c = Criterion::default()
            .configure_from_args()
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(if smoke { 1 } else { 3 }));
        let mut g = c.benchmark_group("payload");
        let txn = a.read_txn().expect("txn");
        let mut i = 0;
        g.bench_function("read raw", |bn| {
            bn.iter(|| {
                i = (i + 7919) % la.len();
                black_box(a.payload(&txn, la[i]).expect("p"))
            })
        });
        drop(txn);
        let txn = b.read_txn().expect("txn");
        g.bench_function("read compressed (decompress)", |bn| {
            bn.iter(|| {
                i = (i + 7919) % lb.len();
                black_box(b.payload(&txn, lb[i]).expect("p"))
            })
        });
        let d = b.dictionary(&txn, 1).expect("dict");
        let jsons: Vec<Vec<u8>> = lb
            .iter()
            .take(5000)
            .map(|&l| b.payload(&txn, l).expect("p").expect("j").into_owned())
            .collect();
        drop(txn);
        g.bench_function("compress one (writer, level 3)", |bn| {
            bn.iter(|| {
                i = (i + 7919) % jsons.len();
                black_box(d.compress_payload(&jsons[i], 3).expect("c"))
            })
        });
        g.finish();
    }

    // Export and scan: alternating rounds.
    let (mut ea, mut eb, mut sa, mut sb) = (vec![], vec![], vec![], vec![]);
    let mut mb = 0.0;
    for _ in 0..rounds {
        for (s, out) in [(&a, &mut ea), (&b, &mut eb)] {
            let t = Instant::now();
            let (k, bytes) = export(s);
            let secs = t.elapsed().as_secs_f64();
            out.push(k as f64 / secs);
            mb = bytes as f64 / 1e6;
        }
        for (s, out) in [(&a, &mut sa), (&b, &mut sb)] {
            let t = Instant::now();
            let k = scan(s);
            out.push(k as f64 / t.elapsed().as_secs_f64());
        }
    }
    println!(
        "export ({mb:.1} MB of JSON) events/s, median of {rounds}: raw {:.0}  compressed {:.0}",
        median(&mut ea),
        median(&mut eb)
    );
    println!(
        "scan kinds:1 (no limit) events/s, median of {rounds}: raw {:.0}  compressed {:.0}",
        median(&mut sa),
        median(&mut sb)
    );

    // Writes: 10k fresh events into a DB holding B's dictionary, compression off vs on.
    let dict_raw = {
        let txn = b.read_txn().expect("txn");
        b.dictionary(&txn, 1).expect("dict").bytes().to_vec()
    };
    let fresh = gen(2, if smoke { 2_000 } else { 10_000 });
    let (mut wa, mut wb) = (vec![], vec![]);
    for _ in 0..rounds {
        for (on, out) in [(false, &mut wa), (true, &mut wb)] {
            let dir = tempfile::tempdir().expect("tmp");
            let s = Store::open(dir.path(), &opts(on)).expect("open");
            // B's dictionary (trained on the same kind of events).
            s.add_dictionary(&dict_raw).expect("add");
            let t = Instant::now();
            for chunk in fresh.chunks(1_000) {
                s.write_batch(chunk).expect("write");
            }
            out.push(fresh.len() as f64 / t.elapsed().as_secs_f64());
            s.close();
        }
    }
    println!(
        "write_batch (1k-event batches, fsync each) events/s, median of {rounds}: compression off {:.0}  on {:.0}",
        median(&mut wa),
        median(&mut wb)
    );

    // REQ over WebSocket to two relays, alternating.
    let start = |s: Store| {
        let mut cfg = wok::config::Config::default();
        cfg.relay.port = 0;
        cfg.relay.max_filter_limit = 1_000_000;
        wok::relay::Relay::start(cfg, s).expect("relay")
    };
    let (ra, rb) = (start(a), start(b));
    let (ua, ub) = (format!("ws://{}", ra.addr), format!("ws://{}", rb.addr));
    let (mut qa, mut qb) = (vec![], vec![]);
    let mut count = 0;
    for i in 0..rounds {
        for (u, out) in [(&ua, &mut qa), (&ub, &mut qb)] {
            let t = Instant::now();
            count = req(u, &format!("r{i}"));
            out.push(count as f64 / t.elapsed().as_secs_f64());
        }
    }
    println!(
        "REQ kinds:1 ({count} events to EOSE) events/s, median of {rounds}: raw {:.0}  compressed {:.0}",
        median(&mut qa),
        median(&mut qb)
    );
    ra.stop();
    rb.stop();
}
