//! Criterion benches for the live-subscription index (`wok::relay::monitors`): matching a new
//! event against 100k subscriptions over 10k connections, and REQ/CLOSE churn.
//!
//! The subscription mix (deterministic PRNG, fixed at start-up):
//! * 40% authors-only, 1–20 authors each, skewed towards popular users; one "celebrity"
//!   author is in ~20% of them;
//! * 20% `#p` with a single value (notifications), skewed;
//! * 20% `#e` with a thread root (+ `kinds:[1,7,9735]`);
//! * 10% kinds-only over 1–3 non-note kinds (0, 3, 6, 7, 1984, 9735, 10002, 30023);
//! * 10% `{since}` (others), since within the last hour.
//!
//! Events (kind 1, 5 tags: two `e`, two `p`, one `t`):
//! * `few`: old (two days back, so no `{since}` sub wants it), unknown author, tags that a
//!   handful of `#e`/`#p` subs follow;
//! * `fresh`: the same tags, created now: also goes to every `{since}` sub (~10k);
//! * `celebrity`: old, by the popular author: goes to ~8k author subs.
//!
//! Each case runs `matches` (clones a `SubId` per recipient) and `for_each_match` (no
//! clone).
//!
//! `idle_1m`: the same fresh event against 1M subscriptions that can never match it
//! (`{"until":1}`, `{"kinds":[1],"until":1}`, `{"kinds":[1],"since":<far future>}`; issue 23's
//! flood of never-matching filters), beside the same matcher with none of them.
//!
//! Quick run: `cargo bench --bench monitors -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};

use wok::nostr::filter::TagFilter;
use wok::nostr::sign::Keys;
use wok::nostr::tags::Tags;
use wok::nostr::{hex, Event, Filter, Limits, SubId};
use wok::relay::monitors::{ConnId, Monitors};

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

    /// Skewed towards small indices (index i has weight ~ log(n/i)).
    fn skewed(&mut self, n: usize) -> usize {
        let m = self.below(n) + 1;
        self.below(m)
    }

    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        out
    }
}

const SUBS: usize = 100_000;
const CONNS: u64 = 10_000;
const USERS: usize = 50_000;
const THREADS: usize = 20_000;
const NOW: u64 = 1_700_000_000;
const LIVE_KINDS: [u64; 8] = [0, 3, 6, 7, 1984, 9735, 10002, 30023];

struct Setup {
    monitors: Monitors,
    /// The filters by REQ, to replay the churn bench.
    reqs: Vec<(ConnId, SubId, Vec<Filter>)>,
    few: Event,
    fresh: Event,
    celebrity: Event,
}

fn setup() -> Setup {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let users: Vec<[u8; 32]> = (0..USERS).map(|_| rng.bytes32()).collect();
    let threads: Vec<[u8; 32]> = (0..THREADS).map(|_| rng.bytes32()).collect();
    let celebrity = Keys::from_secret([7; 32]).expect("key");
    let nobody = Keys::from_secret([8; 32]).expect("key");

    let mut reqs = Vec::with_capacity(SUBS);
    for i in 0..SUBS {
        let conn = (i as u64) % CONNS;
        let sub_id = SubId::new(&format!("sub{}", i as u64 / CONNS)).expect("sub id");
        let mut f = Filter::all();
        match i % 10 {
            0..=3 => {
                let n = 1 + rng.below(20);
                let mut authors: Vec<[u8; 32]> = (0..n).map(|_| users[rng.skewed(USERS)]).collect();
                if rng.below(5) == 0 {
                    authors.push(celebrity.pubkey);
                }
                authors.sort_unstable();
                authors.dedup();
                f.authors = Some(authors);
            }
            4 | 5 => {
                f.tags = vec![TagFilter {
                    name: b'p',
                    values: vec![users[rng.skewed(USERS)].to_vec()],
                }];
            }
            6 | 7 => {
                f.kinds = Some(vec![1, 7, 9735]);
                f.tags = vec![TagFilter {
                    name: b'e',
                    values: vec![threads[rng.skewed(THREADS)].to_vec()],
                }];
            }
            8 => {
                let mut kinds: Vec<u64> = (0..1 + rng.below(3))
                    .map(|_| LIVE_KINDS[rng.below(LIVE_KINDS.len())])
                    .collect();
                kinds.sort_unstable();
                kinds.dedup();
                f.kinds = Some(kinds);
            }
            _ => f.since = NOW - rng.below(3600) as u64,
        }
        reqs.push((conn, sub_id, vec![f]));
    }

    let t0 = Instant::now();
    let mut monitors = Monitors::new();
    for (conn, sub_id, filters) in &reqs {
        monitors.subscribe(*conn, sub_id.clone(), filters.clone());
    }
    eprintln!(
        "built {} subs over {} conns in {:?}",
        monitors.len(),
        CONNS,
        t0.elapsed()
    );

    // Mid-popularity targets: a few subs follow each.
    let tags = vec![
        vec!["e".to_string(), hex::encode(&threads[THREADS / 50])],
        vec!["e".to_string(), hex::encode(&rng.bytes32())],
        vec!["p".to_string(), hex::encode(&users[USERS / 50])],
        vec!["p".to_string(), hex::encode(&users[USERS / 10])],
        vec!["t".to_string(), "nostr".to_string()],
    ];
    let lim = Limits::default();
    let sign = |k: &Keys, at: u64| {
        k.sign(at, 1, Tags::from_vecs(&tags), "gm", &lim)
            .expect("sign")
    };
    Setup {
        few: sign(&nobody, NOW - 2 * 86_400),
        fresh: sign(&nobody, NOW),
        celebrity: sign(&celebrity, NOW - 2 * 86_400),
        monitors,
        reqs,
    }
}

fn bench(c: &mut Criterion) {
    let mut s = setup();
    let mut out = Vec::new();
    let mut g = c.benchmark_group("monitors_100k");
    for (name, ev) in [
        ("few", &s.few),
        ("fresh", &s.fresh),
        ("celebrity", &s.celebrity),
    ] {
        s.monitors.matches(ev, &mut out);
        eprintln!("{name}: {} recipients", out.len());
        g.bench_function(format!("matches_{name}"), |b| {
            b.iter(|| {
                s.monitors.matches(black_box(ev), &mut out);
                out.len()
            })
        });
        g.bench_function(format!("for_each_{name}"), |b| {
            b.iter(|| {
                let mut n = 0usize;
                s.monitors
                    .for_each_match(black_box(ev), |c, id| n += c as usize + id.as_str().len());
                n
            })
        });
    }

    // REQ + CLOSE of one existing subscription's filters (e.g. a 20-author feed).
    let (conn, sub_id, filters) = s.reqs[0].clone();
    g.bench_function("resubscribe_authors", |b| {
        b.iter(|| {
            s.monitors
                .subscribe(conn, sub_id.clone(), black_box(filters.clone()));
        })
    });
    g.bench_function("close_reopen_conn_10_subs", |b| {
        let mine: Vec<_> = s.reqs.iter().filter(|r| r.0 == 1).cloned().collect();
        b.iter(|| {
            s.monitors.close_conn(1);
            for (c, id, f) in &mine {
                s.monitors.subscribe(*c, id.clone(), f.clone());
            }
        })
    });
    g.finish();
}

/// 1M never-matching filters: the cost of a new event must not grow with them.
fn idle(c: &mut Criterion) {
    let s = setup();
    let ev = s.fresh;
    let mut g = c.benchmark_group("idle_1m");
    let mut base = Monitors::new();
    base.subscribe(1, SubId::new("live").expect("sub"), vec![Filter::all()]);
    let mut flooded = Monitors::new();
    // As the relay's monitor does before each subscription.
    flooded.set_clock(NOW);
    flooded.subscribe(1, SubId::new("live").expect("sub"), vec![Filter::all()]);
    let t0 = Instant::now();
    for i in 0..1_000_000u64 {
        let mut f = Filter::all();
        match i % 3 {
            0 => f.until = 1,
            1 => {
                f.kinds = Some(vec![1]);
                f.until = 1;
            }
            _ => {
                f.kinds = Some(vec![1]);
                f.since = 4_000_000_000;
            }
        }
        let sub = SubId::new(&format!("s{}", i % 200)).expect("sub");
        flooded.subscribe(2 + i / 200, sub, vec![f]);
    }
    eprintln!("1M idle filters subscribed in {:?}", t0.elapsed());
    let t0 = Instant::now();
    let mut out = Vec::new();
    flooded.matches(&ev, &mut out);
    eprintln!(
        "first event through them: {:?}, {} recipient(s)",
        t0.elapsed(),
        out.len()
    );
    // One connection's 40,000 filters on one tag value, closed beside the 1M others (each
    // filter's removal scanned the whole posting list: quadratic).
    let mut one_tag = Filter::all();
    one_tag.tags = vec![TagFilter {
        name: b't',
        values: vec![b"nostr".to_vec()],
    }];
    for s in 0..200u32 {
        let id = SubId::new(&format!("t{s}")).expect("sub");
        flooded.subscribe(1_000_000, id, vec![one_tag.clone(); 200]);
    }
    let t0 = Instant::now();
    flooded.close_conn(1_000_000);
    eprintln!(
        "closing a connection with 40k filters on one tag: {:?}",
        t0.elapsed()
    );
    for (name, m) in [("none", &mut base), ("flooded", &mut flooded)] {
        g.bench_function(format!("fresh_{name}"), |b| {
            b.iter(|| {
                m.matches(black_box(&ev), &mut out);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench, idle);
criterion_main!(benches);
