//! Index scans through the query engine (criterion): one filter shape per index on a 20k-event
//! generated store, each run to completion in one read transaction with payloads left
//! unread (what the req-worker pays before it copies JSON out). `benches/store.rs` reports
//! latency percentiles on bigger stores; this one tracks regressions per index.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use wok::gen::GenConfig;
use wok::nostr::{hex, Filter, JsonParser};
use wok::store::query::Query;
use wok::store::{Store, StoreOptions};

fn filter(s: &str) -> Filter {
    JsonParser::new()
        .parse(&mut s.as_bytes().to_vec(), |v| Filter::from_json(v, 10))
        .expect("json")
        .expect("filter")
}

fn bench_scans(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
    let events = wok::gen::generate(&GenConfig {
        seed: 5,
        count: 20_000,
        authors: 200,
        ..GenConfig::default()
    });
    for chunk in events.chunks(5_000) {
        store.write_batch(chunk).expect("write");
    }
    let author = hex::encode(&events[0].pubkey);
    let mentioned = events
        .iter()
        .find_map(|e| e.packed_tags().find(|(n, v)| *n == b'p' && v.len() == 32))
        .map(|(_, v)| hex::encode(v))
        .unwrap_or_else(|| "0".repeat(64));
    let ids: Vec<String> = events
        .iter()
        .step_by(997)
        .map(|e| format!("\"{}\"", e.id_hex()))
        .collect();
    // A follow feed: 50 authors × 3 kinds, one cursor per pair, merged.
    let mut follows: Vec<String> = events.iter().map(|e| hex::encode(&e.pubkey)).collect();
    follows.sort();
    follows.dedup();
    let follows: Vec<String> = follows
        .iter()
        .take(50)
        .map(|a| format!("\"{a}\""))
        .collect();
    let shapes = [
        (
            "feed_50x3",
            format!(
                r#"{{"authors":[{}],"kinds":[1,6,7],"limit":100}}"#,
                follows.join(",")
            ),
        ),
        ("ids_20", format!(r#"{{"ids":[{}]}}"#, ids.join(","))),
        (
            "pubkey_kind",
            format!(r#"{{"authors":["{author}"],"kinds":[1],"limit":100}}"#),
        ),
        (
            "pubkey",
            format!(r#"{{"authors":["{author}"],"limit":100}}"#),
        ),
        (
            "tag_p",
            format!(r##"{{"#p":["{mentioned}"],"limit":100}}"##),
        ),
        ("kind", r#"{"kinds":[1],"limit":100}"#.to_string()),
        ("created_at", r#"{"limit":100}"#.to_string()),
    ];
    let mut g = c.benchmark_group("scan");
    for (name, text) in &shapes {
        let f = filter(text);
        g.bench_function(*name, |b| {
            b.iter(|| {
                let txn = store.read_txn().expect("txn");
                let mut q = Query::new(vec![f.clone()], 500, u64::MAX, wok::policy::now());
                let mut out = Vec::new();
                q.run(&store, &txn, u64::MAX, &mut out).expect("run");
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_scans);
criterion_main!(benches);
