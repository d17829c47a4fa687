//! Criterion benches for permessage-deflate's hot path (`wok::relay::frame`): framing 500
//! realistic kind-1 EVENT messages (one REQ's worth) plain, compressed with context
//! takeover (the sliding window), without it, and spliced from one shared compression
//! (fanout without takeover); and inflating a client's messages. Before the timings it
//! prints bytes per message at each zlib level, which is how `deflate::LEVEL` was chosen.
//!
//! Quick run: `cargo bench --bench deflate -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flate2::{Compress, Compression, FlushCompress};

use wok::gen::{generate, GenConfig};
use wok::relay::deflate::{Deflater, Inflater};
use wok::relay::extension::Agreed;
use wok::relay::frame::{Encoder, SharedEvent};

fn messages() -> Vec<Vec<u8>> {
    let events = generate(&GenConfig {
        count: 2000,
        ..GenConfig::default()
    });
    events
        .iter()
        .filter(|e| e.kind == 1)
        .take(500)
        .map(|e| [&br#"["EVENT","feed","#[..], e.json(), b"]"].concat())
        .collect()
}

fn agreed(takeover: bool) -> Option<Agreed> {
    Some(Agreed {
        server_takeover: takeover,
        client_takeover: takeover,
        server_window_bits: 15,
    })
}

/// Bytes after compression at each level, with and without a kept window.
fn ratios(msgs: &[Vec<u8>]) {
    let plain: usize = msgs.iter().map(Vec::len).sum();
    eprintln!("500 kind-1 EVENT messages, {plain} bytes plain");
    for level in [1, 2, 3, 6, 9] {
        for takeover in [true, false] {
            let mut c = Compress::new_with_window_bits(Compression::new(level), false, 15);
            let mut total = 0;
            let t = std::time::Instant::now();
            for m in msgs {
                if !takeover {
                    c.reset();
                }
                let mut out = Vec::with_capacity(m.len() + 64);
                c.compress_vec(m, &mut out, FlushCompress::Sync)
                    .expect("compress");
                total += out.len() - 4;
            }
            eprintln!(
                "level {level} takeover={takeover}: {total} bytes ({:.1}% saved) in {:?}",
                100.0 * (1.0 - total as f64 / plain as f64),
                t.elapsed()
            );
        }
    }
}

fn bench(c: &mut Criterion) {
    let msgs = messages();
    ratios(&msgs);
    let bytes: usize = msgs.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("frame_500_events");
    g.throughput(Throughput::Bytes(bytes as u64));
    for (name, deflate) in [
        ("plain", None),
        ("takeover", agreed(true)),
        ("no_takeover", agreed(false)),
    ] {
        g.bench_function(name, |b| {
            let mut e = Encoder::new(deflate);
            let mut out = Vec::with_capacity(bytes + 8192);
            b.iter(|| {
                out.clear();
                for m in &msgs {
                    e.text(m, &mut out);
                }
                black_box(out.len())
            })
        });
    }
    // Fanout without takeover: the event compressed once, spliced per recipient.
    let jsons: Vec<&[u8]> = msgs.iter().map(|m| &m[15..m.len() - 1]).collect();
    g.bench_function("shared_compress_once", |b| {
        b.iter(|| {
            for j in &jsons {
                black_box(SharedEvent::new(j, 15));
            }
        })
    });
    let shared: Vec<SharedEvent> = jsons
        .iter()
        .filter_map(|j| SharedEvent::new(j, 15))
        .collect();
    g.bench_function("shared_splice_per_recipient", |b| {
        let mut e = Encoder::new(agreed(false));
        let mut out = Vec::with_capacity(bytes + 8192);
        b.iter(|| {
            out.clear();
            for s in &shared {
                e.spliced(br#"["EVENT","feed","#, s, b"]", &mut out);
            }
            black_box(out.len())
        })
    });
    // Inflating what a client sends (the same messages, compressed as a client would).
    for takeover in [true, false] {
        let mut d = Deflater::new(15, takeover);
        let compressed: Vec<Vec<u8>> = msgs
            .iter()
            .map(|m| {
                let mut z = Vec::new();
                d.compress(m, &mut z).expect("compress");
                z
            })
            .collect();
        let name = if takeover {
            "inflate_takeover"
        } else {
            "inflate_no_takeover"
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut i = Inflater::new(takeover);
                let mut out = Vec::with_capacity(4096);
                for z in &compressed {
                    out.clear();
                    i.inflate(z, 131_072, &mut out).expect("inflate");
                }
                black_box(out.len())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
