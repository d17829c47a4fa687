//! Criterion benches for the Nostr core hot paths: event parsing (simd-json tape walker vs a
//! serde_json baseline), id hashing, signature checks, the per-event ingest pipeline, filter
//! matching and REQ decoding.
//!
//! All inputs are built deterministically at start-up (fixed keys, a fixed PRNG), so runs
//! are comparable across machines and commits. Quick run:
//! `cargo bench --bench nostr -- --warm-up-time 1 --measurement-time 3`.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use serde::Deserialize;

use wok::nostr::event::Header;
use wok::nostr::sign::Keys;
use wok::nostr::tags::{self, Tags};
use wok::nostr::{decode, hex, verify, ClientMsg, DecodeLimits, Event, Filter, JsonParser, Limits};

// ---- deterministic inputs ----

/// xorshift64*: tiny, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        out
    }

    fn hex32(&mut self) -> String {
        hex::encode(&self.bytes32())
    }
}

/// Words for note text: mostly ASCII, with accents, CJK, emoji, quotes and a URL, so the
/// JSON has escapes and multi-byte UTF-8 like real notes do.
const WORDS: &str = "the relay nostr is a simple protocol for notes and other stuff zap me gm \
    pura vida café naïve Zürich 日本語 のテスト 🚀 ⚡ 🤙 — \"quoted\" it's \
    https://example.com/a/b?c=d #bitcoin nevent1qqs npub1 self-custody lightning sats über \
    ñandú Ελληνικά";

fn text(rng: &mut Rng, len: usize) -> String {
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut s = String::with_capacity(len + 32);
    while s.len() < len {
        if !s.is_empty() {
            s.push(match rng.below(14) {
                0 => '\n',
                1 => ',',
                _ => ' ',
            });
        }
        s.push_str(words[rng.below(words.len())]);
    }
    s
}

/// Deterministic secret keys: `[tag, 0, …, 0, i]`, all non-zero and below the curve order.
fn secret(tag: u8, i: u32) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[0] = tag;
    s[28..].copy_from_slice(&i.to_be_bytes());
    s
}

fn keys(tag: u8, i: u32) -> Keys {
    Keys::from_secret(secret(tag, i)).expect("valid secret")
}

const T0: u64 = 1_700_000_000;

struct Corpus {
    /// Events by name, in size order.
    events: Vec<(&'static str, Event)>,
    /// Pubkeys of the fixed authors (keys 1..=4).
    authors: Vec<[u8; 32]>,
}

fn build_corpus() -> Corpus {
    let ks: Vec<Keys> = (1..=4).map(|i| keys(1, i)).collect();
    let authors = ks.iter().map(|k| k.pubkey).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let lim = Limits::default();
    let sign = |k: &Keys, at: u64, kind: u64, tags: Vec<Vec<String>>, content: &str| {
        k.sign(at, kind, Tags::from_vecs(&tags), content, &lim)
            .expect("sign")
    };
    let s = |x: &str| x.to_owned();

    // A short note: ~400 B (an event with empty content and no tags is already ~340 B).
    let small = sign(
        &ks[0],
        T0,
        1,
        vec![vec![s("t"), s("gm")]],
        "gm nostr ☀️ pura vida\nhave a great day 🤙",
    );

    // A reply: ~1 KB, with NIP-10 markers, mentions and a hashtag.
    let reply_tags = vec![
        vec![s("e"), rng.hex32(), s("wss://relay.damus.io"), s("root")],
        vec![s("e"), rng.hex32(), s(""), s("reply")],
        vec![s("p"), rng.hex32()],
        vec![s("p"), hex::encode(&ks[2].pubkey)],
        vec![s("t"), s("nostr")],
    ];
    let reply_text = text(&mut rng, 330);
    let reply = sign(&ks[1], T0 + 1, 1, reply_tags, &reply_text);

    // A long-form-ish note: ~5 KB with ~20 tags.
    let mut long_tags = Vec::new();
    for i in 0..4 {
        let marker = if i == 0 { "root" } else { "mention" };
        long_tags.push(vec![s("e"), rng.hex32(), s("wss://nos.lol"), s(marker)]);
    }
    for _ in 0..9 {
        long_tags.push(vec![s("p"), rng.hex32()]);
    }
    for t in ["nostr", "bitcoin", "zaps", "relays", "rust", "日本"] {
        long_tags.push(vec![s("t"), s(t)]);
    }
    long_tags.push(vec![s("client"), s("wok-bench")]);
    let long_text = text(&mut rng, 3_000);
    let long = sign(&ks[2], T0 + 2, 1, long_tags, &long_text);

    // A kind-3 contact list with 150 follows: ~11 KB.
    let follows: Vec<Vec<String>> = (0..150).map(|_| vec![s("p"), rng.hex32()]).collect();
    let contacts = sign(&ks[3], T0 + 3, 3, follows, "");

    Corpus {
        events: vec![
            ("note_small", small),
            ("note_1k", reply),
            ("note_5k", long),
            ("contacts_150p", contacts),
        ],
        authors,
    }
}

impl Corpus {
    fn get(&self, name: &str) -> &Event {
        &self
            .events
            .iter()
            .find(|(n, _)| *n == name)
            .expect("event")
            .1
    }
}

// ---- the serde_json baseline ----

/// A string borrowed from the input when it has no escapes. (`Cow` inside a `Vec` would
/// always be owned without this wrapper: serde only borrows a `Cow` field marked `borrow`.)
#[derive(Deserialize)]
#[serde(transparent)]
struct Str<'a>(#[serde(borrow)] Cow<'a, str>);

impl AsRef<str> for Str<'_> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[derive(Deserialize)]
struct SerdeEvent<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    pubkey: Cow<'a, str>,
    created_at: u64,
    kind: u64,
    #[serde(borrow)]
    tags: Vec<Vec<Str<'a>>>,
    #[serde(borrow)]
    content: Cow<'a, str>,
    #[serde(borrow)]
    sig: Cow<'a, str>,
}

/// The same checks `Event::from_json` makes before assembling: hex of id/pubkey/sig, tags
/// non-empty, single-letter tag value size, `e`/`p` values as 32-byte hex.
fn serde_validate(input: &[u8], lim: &Limits) -> Option<(Header, usize)> {
    let ev: SerdeEvent<'_> = serde_json::from_slice(input).ok()?;
    let header = Header {
        id: hex::decode_lower::<32>(ev.id.as_bytes())?,
        pubkey: hex::decode_lower::<32>(ev.pubkey.as_bytes())?,
        sig: hex::decode_any::<64>(ev.sig.as_bytes())?,
        created_at: ev.created_at,
        kind: ev.kind,
    };
    if ev.tags.len() > lim.max_num_tags {
        return None;
    }
    for tag in &ev.tags {
        let name = tag.first()?.as_ref();
        let Some(value) = tag.get(1) else { continue };
        if let Some((_, fixed)) = tags::indexed_name(name) {
            if value.0.len() > lim.max_tag_val_size {
                return None;
            }
            if fixed {
                hex::decode_any::<32>(value.0.as_bytes())?;
            }
        }
    }
    Some((header, ev.content.len()))
}

/// serde_json all the way to the same `Event` (canonical JSON included), for an
/// end-to-end comparison with `Event::parse`.
fn serde_event(input: &[u8], lim: &Limits) -> Option<Event> {
    let ev: SerdeEvent<'_> = serde_json::from_slice(input).ok()?;
    let header = Header {
        id: hex::decode_lower::<32>(ev.id.as_bytes())?,
        pubkey: hex::decode_lower::<32>(ev.pubkey.as_bytes())?,
        sig: hex::decode_any::<64>(ev.sig.as_bytes())?,
        created_at: ev.created_at,
        kind: ev.kind,
    };
    if ev.tags.iter().any(Vec::is_empty) {
        return None;
    }
    Event::assemble(
        header,
        Tags::from_vecs(&ev.tags),
        ev.content.into_owned(),
        lim,
    )
    .ok()
}

// ---- benches ----

/// Copies `src` into the reused buffer `buf` (simd-json parses in place).
fn refill(buf: &mut Vec<u8>, src: &[u8]) {
    buf.clear();
    buf.extend_from_slice(src);
}

type Routine<'a> = (&'static str, Box<dyn FnMut() + 'a>);

/// An A/B comparison that survives a noisy machine. Criterion measures benches one after
/// another, and on a shared box the speed can drift by 2x within seconds, so the ratio of
/// two separately measured benches can be noise. This bench alternates its routines in
/// blocks of ~20 us (each block timed on its own) and prints each routine's median time and
/// the median per-round ratio of the first routine to it. Criterion's time for it is the sum
/// of one run of each routine.
fn interleaved(g: &mut BenchmarkGroup<'_, WallTime>, param: &str, mut routines: Vec<Routine<'_>>) {
    let n = routines.len();
    let mut block = 0u32;
    // ns per run of each routine, `n` per round.
    let mut times: Vec<f64> = Vec::new();
    g.bench_function(BenchmarkId::new("interleaved", param), |b| {
        if block == 0 {
            // Warm every routine up, then size the blocks from ~2 ms of the first one.
            for (_, r) in routines.iter_mut() {
                for _ in 0..3 {
                    r();
                }
            }
            let (t, mut runs) = (Instant::now(), 0u128);
            while t.elapsed() < Duration::from_millis(2) {
                (routines[0].1)();
                runs += 1;
            }
            block = (20_000 * runs / t.elapsed().as_nanos().max(1)).clamp(1, 10_000) as u32;
        }
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for (_, r) in routines.iter_mut() {
                    let t = Instant::now();
                    for _ in 0..block {
                        r();
                    }
                    let d = t.elapsed();
                    total += d;
                    times.push(d.as_nanos() as f64 / f64::from(block));
                }
            }
            total / block
        })
    });
    if times.is_empty() {
        return; // filtered out
    }
    let rounds = times.len() / n;
    let quartiles = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 4], v[v.len() / 2], v[v.len() * 3 / 4])
    };
    let col = |i: usize| (0..rounds).map(|r| times[r * n + i]).collect::<Vec<_>>();
    let first = routines[0].0;
    let mut line = format!(
        "interleaved {param}: {first} {:.3} us",
        quartiles(col(0)).1 / 1e3
    );
    for (i, (name, _)) in routines.iter().enumerate().skip(1) {
        let t = quartiles(col(i)).1;
        let ratios = (0..rounds).map(|r| times[r * n] / times[r * n + i]);
        let (lo, mid, hi) = quartiles(ratios.collect());
        line += &format!(
            " | {name} {:.3} us, {first}/{name} = {mid:.3} (IQR {lo:.3}-{hi:.3})",
            t / 1e3
        );
    }
    eprintln!("{line} [{rounds} rounds of {block}]");
}

fn bench_parse(c: &mut Criterion) {
    let corpus = build_corpus();
    let lim = Limits::default();
    let mut g = c.benchmark_group("parse");
    for (name, ev) in &corpus.events {
        let json = ev.json().to_vec();
        eprintln!("input {name}: {} bytes, {} tags", json.len(), ev.tags.len());
        // Sanity: both paths accept the input and agree.
        let mut copy = json.clone();
        let parsed = Event::parse(&mut copy, &mut JsonParser::new(), &lim).expect("parse");
        assert_eq!(&parsed, ev);
        assert_eq!(serde_event(&json, &lim).as_ref(), Some(ev));
        assert!(serde_validate(&json, &lim).is_some());

        g.throughput(Throughput::Bytes(json.len() as u64));
        // simd-json unescapes in place, so every variant copies the input into a reused
        // buffer first (a memcpy, a few % of the smallest case) and drops its output inside
        // the timed loop, as a relay would.
        let mut parser = JsonParser::new();
        let mut buf = Vec::with_capacity(json.len());
        g.bench_function(BenchmarkId::new("simd_json", name), |b| {
            b.iter(|| {
                refill(&mut buf, &json);
                Event::parse(&mut buf, &mut parser, &lim).expect("parse")
            })
        });
        // The JSON parse alone (tape only, no validation, no canonical JSON).
        g.bench_function(BenchmarkId::new("simd_json_tape_only", name), |b| {
            b.iter(|| {
                refill(&mut buf, &json);
                parser.parse(&mut buf, |v| v.is_object()).expect("json")
            })
        });
        g.bench_function(BenchmarkId::new("serde_json_validate", name), |b| {
            b.iter(|| {
                refill(&mut buf, &json);
                serde_validate(&buf, &lim).expect("parse")
            })
        });
        g.bench_function(BenchmarkId::new("serde_json_event", name), |b| {
            b.iter(|| {
                refill(&mut buf, &json);
                serde_event(&buf, &lim).expect("parse")
            })
        });
        // The same four, alternated for a drift-proof ratio.
        let routine = |f: fn(&mut Vec<u8>, &mut JsonParser, &Limits)| -> Box<dyn FnMut()> {
            let (mut buf, mut parser, json) = (Vec::new(), JsonParser::new(), json.clone());
            Box::new(move || {
                refill(&mut buf, &json);
                f(&mut buf, &mut parser, &lim);
            })
        };
        interleaved(
            &mut g,
            name,
            vec![
                (
                    "simd_json",
                    routine(|buf, p, lim| {
                        black_box(Event::parse(buf, p, lim).expect("parse"));
                    }),
                ),
                (
                    "serde_json_validate",
                    routine(|buf, _, lim| {
                        black_box(serde_validate(buf, lim).expect("parse"));
                    }),
                ),
                (
                    "serde_json_event",
                    routine(|buf, _, lim| {
                        black_box(serde_event(buf, lim).expect("parse"));
                    }),
                ),
                (
                    "simd_json_tape_only",
                    routine(|buf, p, _| {
                        black_box(p.parse(buf, |v| v.is_object()).expect("json"));
                    }),
                ),
            ],
        );
    }
    g.finish();
}

fn bench_id_hash(c: &mut Criterion) {
    let corpus = build_corpus();
    let mut g = c.benchmark_group("id_hash");
    for (name, ev) in &corpus.events {
        g.throughput(Throughput::Bytes(ev.json().len() as u64));
        g.bench_with_input(BenchmarkId::new("check_id", name), ev, |b, ev| {
            b.iter(|| black_box(ev).check_id().expect("id"))
        });
    }
    g.finish();
}

fn bench_verify(c: &mut Criterion) {
    let corpus = build_corpus();
    let ev = corpus.get("note_1k");
    let mut g = c.benchmark_group("verify");
    g.bench_function("uncached", |b| {
        b.iter(|| {
            assert!(verify::verify_schnorr_uncached(
                black_box(&ev.id),
                black_box(&ev.pubkey),
                black_box(&ev.sig)
            ))
        })
    });
    g.bench_function("cached_warm", |b| {
        b.iter(|| {
            assert!(verify::verify_schnorr(
                black_box(&ev.id),
                black_box(&ev.pubkey),
                black_box(&ev.sig)
            ))
        })
    });

    // 8192 distinct authors cycled in order: each lands on a slot last filled by another
    // key (~8 keys per slot of the 1024), so practically every lookup misses.
    const COLD_KEYS: u32 = 8192;
    // Built on first use (signing 8192 events takes a while), so filtered runs skip it.
    let cold_set = std::cell::OnceCell::new();
    let make_cold = || -> Vec<([u8; 32], [u8; 32], [u8; 64])> {
        let lim = Limits::default();
        (0..COLD_KEYS)
            .map(|i| {
                let ev = keys(2, i + 1)
                    .sign(T0, 1, Tags::default(), "cold", &lim)
                    .expect("sign");
                (ev.id, ev.pubkey, ev.sig)
            })
            .collect()
    };
    let mut i = 0;
    g.bench_function("cached_cold", |b| {
        let cold = cold_set.get_or_init(make_cold);
        b.iter(|| {
            let (id, pk, sig) = &cold[i];
            i = (i + 1) % cold.len();
            assert!(verify::verify_schnorr(id, pk, sig))
        })
    });
    // Uncached over the same 8192 events: the fair baseline for `cached_cold`, since
    // verifying one event over and over lets the branch predictor learn its exact path.
    let mut k = 0;
    g.bench_function("uncached_varied", |b| {
        let cold = cold_set.get_or_init(make_cold);
        b.iter(|| {
            let (id, pk, sig) = &cold[k];
            k = (k + 1) % cold.len();
            assert!(verify::verify_schnorr_uncached(id, pk, sig))
        })
    });
    // All four alternated, for a drift-proof view of what the cache saves. The two varied
    // routines walk the set half a lap apart, so neither runs right after the other on the
    // same event.
    let (mut j, mut k) = (0, COLD_KEYS as usize / 2);
    interleaved(
        &mut g,
        "uncached_vs_cached",
        vec![
            (
                "uncached",
                Box::new(|| {
                    assert!(verify::verify_schnorr_uncached(
                        black_box(&ev.id),
                        black_box(&ev.pubkey),
                        black_box(&ev.sig)
                    ))
                }),
            ),
            (
                "cached_warm",
                Box::new(|| {
                    assert!(verify::verify_schnorr(
                        black_box(&ev.id),
                        black_box(&ev.pubkey),
                        black_box(&ev.sig)
                    ))
                }),
            ),
            (
                "uncached_varied",
                Box::new(|| {
                    let cold = cold_set.get_or_init(make_cold);
                    let (id, pk, sig) = &cold[k];
                    k = (k + 1) % cold.len();
                    assert!(verify::verify_schnorr_uncached(id, pk, sig))
                }),
            ),
            (
                "cached_cold",
                Box::new(|| {
                    let cold = cold_set.get_or_init(make_cold);
                    let (id, pk, sig) = &cold[j];
                    j = (j + 1) % cold.len();
                    assert!(verify::verify_schnorr(id, pk, sig))
                }),
            ),
        ],
    );
    g.finish();
}

fn event_msg(ev: &Event) -> Vec<u8> {
    let mut msg = b"[\"EVENT\",".to_vec();
    msg.extend_from_slice(ev.json());
    msg.push(b']');
    msg
}

fn bench_ingest(c: &mut Criterion) {
    let corpus = build_corpus();
    let ev = corpus.get("note_1k");
    let msg = event_msg(ev);
    let limits = DecodeLimits::default();
    let mut parser = JsonParser::new();
    let mut buf = Vec::with_capacity(msg.len());
    let mut g = c.benchmark_group("ingest_pipeline");
    // The baseline: what a relay must pay per event no matter how good the rest is.
    g.bench_function("verify_uncached_1k", |b| {
        b.iter(|| {
            assert!(verify::verify_schnorr_uncached(
                black_box(&ev.id),
                black_box(&ev.pubkey),
                black_box(&ev.sig)
            ))
        })
    });
    // The full per-event cost: decode the client message, then check id and signature
    // (the author's key is warm in the cache, as for any active author). Includes copying
    // the message into the parse buffer and dropping the event.
    g.bench_function("decode_check_event_1k", |b| {
        b.iter(|| {
            refill(&mut buf, &msg);
            match decode(&mut buf, &mut parser, &limits) {
                Ok(Some(ClientMsg::Event(ev))) => verify::check_event(&ev).expect("valid"),
                _ => panic!("not an event"),
            }
        })
    });
    // The two alternated: the drift-proof form of the ratio above.
    let (mut buf2, mut parser2) = (Vec::with_capacity(msg.len()), JsonParser::new());
    interleaved(
        &mut g,
        "decode_check_event_1k_vs_verify_uncached",
        vec![
            (
                "decode_check_event_1k",
                Box::new(|| {
                    refill(&mut buf2, &msg);
                    match decode(&mut buf2, &mut parser2, &limits) {
                        Ok(Some(ClientMsg::Event(ev))) => verify::check_event(&ev).expect("valid"),
                        _ => panic!("not an event"),
                    }
                }),
            ),
            (
                "verify_uncached_1k",
                Box::new(|| {
                    assert!(verify::verify_schnorr_uncached(
                        black_box(&ev.id),
                        black_box(&ev.pubkey),
                        black_box(&ev.sig)
                    ))
                }),
            ),
        ],
    );
    // The non-crypto part on its own.
    g.bench_function("decode_only_1k", |b| {
        b.iter(|| {
            refill(&mut buf, &msg);
            match decode(&mut buf, &mut parser, &limits) {
                Ok(Some(ClientMsg::Event(ev))) => ev,
                _ => panic!("not an event"),
            }
        })
    });
    g.finish();
}

fn parse_filter(parser: &mut JsonParser, json: &str) -> Filter {
    let mut bytes = json.as_bytes().to_vec();
    parser
        .parse(&mut bytes, |v| Filter::from_json(v, 3))
        .expect("json")
        .expect("filter")
}

fn hex_list<'a>(items: impl IntoIterator<Item = &'a [u8; 32]>) -> String {
    let quoted: Vec<String> = items
        .into_iter()
        .map(|b| format!("\"{}\"", hex::encode(b)))
        .collect();
    quoted.join(",")
}

fn bench_filter_match(c: &mut Criterion) {
    let corpus = build_corpus();
    let mut parser = JsonParser::new();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let note = corpus.get("note_1k");
    let long = corpus.get("note_5k");
    let contacts = corpus.get("contacts_150p");

    // 20 authors including the 1 KB note's author (the 5 KB note's author is not in it).
    let mut authors: Vec<[u8; 32]> = (0..19).map(|_| rng.bytes32()).collect();
    authors.insert(7, note.pubkey);
    assert!(!authors.contains(&long.pubkey) && corpus.authors.contains(&note.pubkey));
    let f_authors = parse_filter(
        &mut parser,
        &format!(r#"{{"kinds":[1],"authors":[{}]}}"#, hex_list(&authors)),
    );

    // 50 #p values including the last follow of the contact list and one of the 1 KB
    // note's mentions; the 5 KB note mentions none of them.
    let mut ps: Vec<[u8; 32]> = (0..48).map(|_| rng.bytes32()).collect();
    let last_follow = contacts.packed_tags().last().expect("p").1;
    ps.push(last_follow.try_into().expect("32 bytes"));
    let note_p = note.packed_tags().find(|(n, _)| *n == b'p').expect("p").1;
    ps.push(note_p.try_into().expect("32 bytes"));
    let f_p = parse_filter(&mut parser, &format!(r##"{{"#p":[{}]}}"##, hex_list(&ps)));

    // 100 ids including the 1 KB note's.
    let mut ids: Vec<[u8; 32]> = (0..99).map(|_| rng.bytes32()).collect();
    ids.insert(42, note.id);
    let f_ids = parse_filter(&mut parser, &format!(r#"{{"ids":[{}]}}"#, hex_list(&ids)));

    let cases: [(&str, &Filter, &Event, bool); 7] = [
        ("authors20/hit", &f_authors, note, true),
        ("authors20/miss", &f_authors, long, false),
        ("p50/hit_note_1k", &f_p, note, true),
        ("p50/miss_note_5k", &f_p, long, false),
        ("p50/hit_contacts_last", &f_p, contacts, true),
        ("ids100/hit", &f_ids, note, true),
        ("ids100/miss", &f_ids, long, false),
    ];
    let mut g = c.benchmark_group("filter_match");
    for (name, f, ev, want) in cases {
        assert_eq!(f.matches(ev), want, "{name}");
        g.bench_function(name, |b| b.iter(|| black_box(f).matches(black_box(ev))));
    }
    // Worst case for tag filters: a miss that scans all 150 packed p tags.
    let mut ps_miss = ps.clone();
    ps_miss.retain(|p| p[..] != *last_follow);
    let f_p_miss = parse_filter(
        &mut parser,
        &format!(r##"{{"#p":[{}]}}"##, hex_list(&ps_miss)),
    );
    assert!(!f_p_miss.matches(contacts));
    g.bench_function("p50/miss_contacts_150p", |b| {
        b.iter(|| black_box(&f_p_miss).matches(black_box(contacts)))
    });
    g.finish();
}

fn bench_decode(c: &mut Criterion) {
    let corpus = build_corpus();
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let follows: Vec<[u8; 32]> = (0..20).map(|_| rng.bytes32()).collect();
    let me = corpus.authors[0];
    let ids: Vec<[u8; 32]> = (0..10).map(|_| rng.bytes32()).collect();
    // A typical client opening: the home feed, my notifications, and a thread's events.
    let req = format!(
        r##"["REQ","home-feed:3f9a",{{"kinds":[1,6,7],"authors":[{}],"limit":100}},{{"kinds":[1,7,9735],"#p":["{}"],"since":{}}},{{"ids":[{}]}}]"##,
        hex_list(&follows),
        hex::encode(&me),
        T0 - 86_400,
        hex_list(&ids),
    );
    let req = req.into_bytes();
    eprintln!("input req_3_filters: {} bytes", req.len());
    let limits = DecodeLimits::default();
    let mut parser = JsonParser::new();
    let mut buf = req.clone();
    match decode(&mut buf, &mut parser, &limits) {
        Ok(Some(ClientMsg::Req { filters, .. })) => assert_eq!(filters.len(), 3),
        _ => panic!("not a REQ"),
    }
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(req.len() as u64));
    g.bench_function("req_3_filters", |b| {
        b.iter(|| {
            refill(&mut buf, &req);
            match decode(&mut buf, &mut parser, &limits) {
                Ok(Some(ClientMsg::Req { filters, .. })) => filters,
                _ => panic!("not a REQ"),
            }
        })
    });
    g.finish();
}

/// The io thread's fanout step for one event: the `["EVENT","<sub>",` prefix, the stored JSON
/// and `]` per recipient, with no re-encoding (what `Outbound::EventBatch` turns into).
fn bench_fanout_frames(c: &mut Criterion) {
    let corpus = build_corpus();
    let json = corpus.get("note_1k").json().to_vec();
    let subs: Vec<wok::nostr::SubId> = (0..1000)
        .filter_map(|i| wok::nostr::SubId::new(&format!("sub-{i}")).ok())
        .collect();
    let mut g = c.benchmark_group("fanout_frames");
    g.throughput(Throughput::Elements(subs.len() as u64));
    g.bench_function("1k_note_to_1000_subs", |b| {
        b.iter(|| {
            let mut total = 0;
            for sub in &subs {
                let mut f = Vec::with_capacity(json.len() + sub.as_str().len() + 16);
                wok::nostr::message::event_prefix(&mut f, sub);
                f.extend_from_slice(&json);
                f.push(b']');
                total += black_box(f).len();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_fanout_frames,
    bench_parse,
    bench_id_hash,
    bench_verify,
    bench_ingest,
    bench_filter_match,
    bench_decode
);
criterion_main!(benches);
