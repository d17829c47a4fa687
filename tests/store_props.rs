//! Property tests of the store on real LMDB: random event streams (replaceables with ties,
//! deletions by e and a tags, gift wraps, expirations, expiration purges) written in random
//! batches must leave exactly the live set a simple model predicts, at the levIds its counter
//! gives, with consistent indexes; and random filters
//! must return exactly what a brute-force scan returns, in NIP-01 order, whether the query
//! runs in one go or pauses after every unit of work (resuming in a fresh transaction).

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;
use wok::nostr::kinds::{self, KindClass};
use wok::nostr::sign::Keys;
use wok::nostr::tags::Tags;
use wok::nostr::{hex, Event, Filter, JsonParser, Limits};
use wok::store::query::{Progress, Query};
use wok::store::write::Outcome;
use wok::store::{Store, StoreOptions};

const NOW: u64 = 115;

fn keys() -> Vec<Keys> {
    (1..=3)
        .map(|i| Keys::from_secret([i; 32]).expect("key"))
        .collect()
}

#[derive(Debug, Clone)]
struct Spec {
    author: usize,
    kind: u8,
    created_at: u64,
    t: u8,
    d: u8,
    target: usize,
    expiration: Option<u64>,
    new_batch: bool,
    /// After this event's batch, purge what has expired by `NOW` (no tombstones).
    purge: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..3usize,
        0..10u8,
        1..12u64,
        0..4u8,
        0..3u8,
        any::<usize>(),
        prop::option::weighted(0.15, 100..130u64),
        any::<bool>(),
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(author, kind, created_at, t, d, target, expiration, new_batch, purge)| Spec {
                author,
                kind,
                created_at,
                t,
                d,
                target,
                expiration,
                new_batch,
                purge,
            },
        )
}

/// What to do after writing an event: nothing, end the batch, or end it and purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Nothing,
    Commit,
    CommitAndPurge,
}

/// Turns specs into signed events; references point at earlier events.
fn build(specs: &[Spec], ks: &[Keys]) -> Vec<(Event, After)> {
    let mut out: Vec<(Event, After)> = Vec::new();
    for s in specs {
        let k = &ks[s.author];
        let pk = hex::encode(&k.pubkey);
        let earlier = (!out.is_empty()).then(|| out[s.target % out.len()].0.clone());
        let dval = ["", "a", "b"][s.d as usize].to_string();
        let mut tags: Vec<Vec<String>> = Vec::new();
        if s.t > 0 {
            tags.push(vec!["t".into(), format!("t{}", s.t)]);
        }
        let kind = match s.kind {
            0 | 1 => 1,
            2 => 7,
            3 => 0,
            4 => 3,
            5 => 30023,
            6 | 7 => 5,
            8 => 1059,
            _ => 20001,
        };
        match s.kind {
            2 | 6 => {
                if let Some(e) = &earlier {
                    tags.push(vec!["e".into(), e.id_hex().into()]);
                    tags.push(vec!["p".into(), e.pubkey_hex().into()]);
                }
            }
            5 => tags.push(vec!["d".into(), dval.clone()]),
            7 => {
                let (ak, ad) = if s.d == 0 {
                    (0, String::new())
                } else {
                    (30023, dval.clone())
                };
                tags.push(vec!["a".into(), format!("{ak}:{pk}:{ad}")]);
            }
            8 => tags.push(vec!["p".into(), hex::encode(&ks[s.target % 3].pubkey)]),
            _ => {}
        }
        if let Some(e) = s.expiration {
            tags.push(vec!["expiration".into(), e.to_string()]);
        }
        let ev = k
            .sign(
                s.created_at,
                kind,
                Tags::from_vecs(&tags),
                &format!("{s:?}"),
                &Limits::default(),
            )
            .expect("sign");
        let after = match (s.new_batch, s.purge) {
            (_, true) => After::CommitAndPurge,
            (true, false) => After::Commit,
            (false, false) => After::Nothing,
        };
        out.push((ev, after));
    }
    out
}

/// The write rules, restated as simply as possible.
#[derive(Default)]
struct Model {
    live: BTreeMap<u64, Event>,
    next: u64,
    tombstones: HashSet<([u8; 32], [u8; 32])>,
    replace: HashMap<([u8; 32], u64, String), u64>,
    deleted_until: HashMap<([u8; 32], u64, String), u64>,
}

impl Model {
    fn lev_of(&self, id: &[u8; 32]) -> Option<u64> {
        self.live.iter().find(|(_, e)| &e.id == id).map(|(l, _)| *l)
    }

    fn remove(&mut self, lev: u64) {
        if let Some(e) = self.live.remove(&lev) {
            let key = (e.pubkey, e.kind, e.d_tag().to_string());
            if self.replace.get(&key) == Some(&lev) {
                self.replace.remove(&key);
            }
        }
    }

    /// The expiration purge: expired events go, leaving no tombstone.
    fn purge(&mut self, now: u64) {
        let due: Vec<u64> = self
            .live
            .iter()
            .filter(|(_, e)| e.expiration.is_some_and(|x| x <= now))
            .map(|(l, _)| *l)
            .collect();
        for l in due {
            self.remove(l);
        }
    }

    fn apply(&mut self, batch: &[Event]) {
        let mut order: Vec<&Event> = batch.iter().collect();
        order.sort_by_key(|e| (e.created_at, e.id));
        for e in order {
            let class = e.class();
            if class == KindClass::Ephemeral || self.lev_of(&e.id).is_some() {
                continue;
            }
            if self.tombstones.contains(&(e.id, e.pubkey)) {
                continue;
            }
            if (e.kind == 1059)
                && e.packed_tags().any(|(n, v)| {
                    n == b'p'
                        && v.len() == 32
                        && self
                            .tombstones
                            .iter()
                            .any(|(i, p)| i == &e.id && &p[..] == v)
                })
            {
                continue;
            }
            let addr = matches!(class, KindClass::Replaceable | KindClass::Addressable)
                .then(|| (e.pubkey, e.kind, e.d_tag().to_string()));
            let mut old = None;
            if let Some(a) = &addr {
                if self
                    .deleted_until
                    .get(a)
                    .is_some_and(|&t| e.created_at <= t)
                {
                    continue;
                }
                if let Some(&l) = self.replace.get(a) {
                    let o = &self.live[&l];
                    if (o.created_at, std::cmp::Reverse(o.id))
                        > (e.created_at, std::cmp::Reverse(e.id))
                    {
                        continue;
                    }
                    old = Some(l);
                }
            }
            self.next += 1;
            let lev = self.next;
            self.live.insert(lev, e.clone());
            if let Some(l) = old {
                self.remove(l);
            }
            if let Some(a) = addr {
                self.replace.insert(a, lev);
            }
            if e.kind == 5 {
                for t in e.tags.iter().filter(|t| t.name() == "e") {
                    let Some(target) = t.value().and_then(|v| hex::decode_any::<32>(v.as_bytes()))
                    else {
                        continue;
                    };
                    let mut tomb = true;
                    if let Some(l) = self.lev_of(&target) {
                        let te = &self.live[&l];
                        tomb = te.kind != 5;
                        let addressed = te.kind == 1059
                            && te.packed_tags().any(|(n, v)| n == b'p' && v == e.pubkey);
                        if tomb && (te.pubkey == e.pubkey || addressed) {
                            self.remove(l);
                        }
                    }
                    if tomb {
                        self.tombstones.insert((target, e.pubkey));
                    }
                }
                for a in e.deleted_addresses() {
                    let d = match kinds::classify(a.kind) {
                        KindClass::Addressable => a.d.to_string(),
                        KindClass::Replaceable => String::new(),
                        _ => continue,
                    };
                    let key = (a.pubkey, a.kind, d);
                    let t = self.deleted_until.entry(key.clone()).or_insert(0);
                    *t = (*t).max(e.created_at);
                    if let Some(&l) = self.replace.get(&key) {
                        if self.live[&l].created_at <= e.created_at {
                            self.remove(l);
                        }
                    }
                }
            }
        }
    }
}

fn filter_json(p: &FilterParts, events: &[(Event, After)], ks: &[Keys]) -> String {
    let (authors, kinds, t, e, since, until, limit) = p;
    let e_ref = e.map(|i| &events[i % events.len()].0);
    let (since, until, limit) = (*since, *until, *limit);
    let mut parts = Vec::new();
    if !authors.is_empty() {
        let a: Vec<String> = authors
            .iter()
            .map(|&i| format!("\"{}\"", hex::encode(&ks[i % 3].pubkey)))
            .collect();
        parts.push(format!("\"authors\":[{}]", a.join(",")));
    }
    if let Some(k) = kinds {
        parts.push(format!("\"kinds\":{k:?}"));
    }
    if let Some(t) = t {
        let v: Vec<String> = t.iter().map(|x| format!("\"t{x}\"")).collect();
        parts.push(format!("\"#t\":[{}]", v.join(",")));
    }
    if let Some(e) = e_ref {
        parts.push(format!("\"#e\":[\"{}\"]", e.id_hex()));
    }
    for (k, v) in [("since", since), ("until", until), ("limit", limit)] {
        if let Some(v) = v {
            parts.push(format!("\"{k}\":{v}"));
        }
    }
    format!("{{{}}}", parts.join(","))
}

fn parse_filter(s: &str) -> Filter {
    JsonParser::new()
        .parse(&mut s.as_bytes().to_vec(), |v| Filter::from_json(v, 3))
        .expect("json")
        .expect("filter")
}

fn brute_force(model: &Model, filters: &[Filter]) -> Vec<[u8; 32]> {
    let mut sent = HashSet::new();
    let mut out = Vec::new();
    for f in filters.iter().filter(|f| !f.never) {
        let mut m: Vec<&Event> = model
            .live
            .values()
            .filter(|e| f.matches(*e) && e.expiration.is_none_or(|x| x > NOW))
            .collect();
        m.sort_by_key(|e| (std::cmp::Reverse(e.created_at), e.id));
        for e in m.into_iter().take(f.limit.unwrap_or(u64::MAX) as usize) {
            if sent.insert(e.id) {
                out.push(e.id);
            }
        }
    }
    out
}

fn run_query(store: &Store, filters: &[Filter], budget: u64) -> Vec<[u8; 32]> {
    let snap = store
        .latest_lev_id(&store.read_txn().expect("txn"))
        .expect("snap");
    let mut q = Query::new(filters.to_vec(), u64::MAX, snap, NOW);
    let mut levs = Vec::new();
    for _ in 0..1_000_000 {
        let txn = store.read_txn().expect("txn");
        if q.run(store, &txn, budget, &mut levs).expect("run") == Progress::Done {
            let ids = levs
                .iter()
                .map(|&l| {
                    let r = store.record(&txn, l).expect("rec").expect("exists");
                    *wok::nostr::EventView::id(&r)
                })
                .collect();
            return ids;
        }
    }
    panic!("query did not finish");
}

type FilterParts = (
    Vec<usize>,
    Option<Vec<u64>>,
    Option<Vec<u8>>,
    Option<usize>,
    Option<u64>,
    Option<u64>,
    Option<u64>,
);

fn filter_parts() -> impl Strategy<Value = FilterParts> {
    (
        prop::collection::vec(0..4usize, 0..3),
        prop::option::of(prop::collection::vec(
            prop::sample::select(vec![0u64, 1, 3, 5, 7, 1059, 30023, 42]),
            0..3,
        )),
        prop::option::weighted(0.3, prop::collection::vec(1..4u8, 1..3)),
        prop::option::weighted(0.2, any::<usize>()),
        prop::option::weighted(0.3, 0..13u64),
        prop::option::weighted(0.3, 0..13u64),
        prop::option::weighted(0.5, 0..8u64),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model_and_brute_force(
        specs in prop::collection::vec(spec(), 1..40),
        fparts in prop::collection::vec(prop::collection::vec(filter_parts(), 1..3), 1..5),
        // A bulk load (`wok import` into an empty DB): index rows left out until the build
        // after this event's batch (or the last one); the answers must not tell.
        bulk_until in prop::option::weighted(0.4, 0..40usize),
    ) {
        let ks = keys();
        let events = build(&specs, &ks);
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path(), &StoreOptions { map_size: 1 << 28, ..StoreOptions::default() }).expect("open");
        let mut bulk = bulk_until.map(|_| store.begin_bulk_load().expect("defer").expect("empty"));
        let mut model = Model::default();
        let mut batch: Vec<Event> = Vec::new();
        for (i, (e, after)) in events.iter().enumerate() {
            batch.push(e.clone());
            if *after != After::Nothing || i + 1 == events.len() {
                // The store's levIds are the model's counter: never reused, even after the
                // newest event was purged (strfry's max(levId)+1 would reuse it).
                let outcomes = store.write_batch(&batch).expect("write");
                let before = model.next;
                model.apply(&batch);
                let mut written: Vec<u64> = outcomes
                    .iter()
                    .filter_map(|o| match o {
                        Outcome::Written(l) => Some(*l),
                        _ => None,
                    })
                    .collect();
                written.sort_unstable();
                prop_assert_eq!(written, (before + 1..=model.next).collect::<Vec<u64>>());
                batch.clear();
                let txn = store.read_txn().expect("txn");
                let problems = store.check_consistency(&txn).expect("check");
                prop_assert!(problems.is_empty(), "{:?}", problems);
                drop(txn);
                if bulk.is_some() && bulk_until.is_some_and(|k| i >= k || i + 1 == events.len()) {
                    store.build_deferred_indexes(&mut |_| {}).expect("build");
                    bulk = None;
                }
            }
            // A purge finds events by the expiration index: none of a bulk load's before its
            // build (the import purges after it).
            if *after == After::CommitAndPurge && bulk.is_none() {
                store.purge_expired(NOW, 1000).expect("purge");
                model.purge(NOW);
            }
        }

        let txn = store.read_txn().expect("txn");
        let problems = store.check_consistency(&txn).expect("check");
        prop_assert!(problems.is_empty(), "{:?}", problems);
        // Every stored event sits at the levId the model gave it.
        let stored: BTreeMap<u64, [u8; 32]> = store
            .all_lev_ids(&txn)
            .expect("levs")
            .into_iter()
            .map(|l| (l, *wok::nostr::EventView::id(&store.record(&txn, l).expect("r").expect("e"))))
            .collect();
        let live: BTreeMap<u64, [u8; 32]> = model.live.iter().map(|(l, e)| (*l, e.id)).collect();
        prop_assert_eq!(stored, live);
        prop_assert_eq!(store.latest_lev_id(&txn).expect("latest"), model.next);
        drop(txn);

        for parts in &fparts {
            let filters: Vec<Filter> = parts
                .iter()
                .map(|p| parse_filter(&filter_json(p, &events, &ks)))
                .collect();
            let want = brute_force(&model, &filters);
            prop_assert_eq!(&run_query(&store, &filters, u64::MAX), &want);
            prop_assert_eq!(&run_query(&store, &filters, 1), &want);
            prop_assert_eq!(&run_query(&store, &filters, 3), &want);
        }
    }
}
