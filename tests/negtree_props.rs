//! Stored negentropy trees stay exact: after random inserts (with replaceables and
//! deletions), deletes and expiry purges, every tree holds exactly the stored events its
//! filter matches, and its positional answers (item at i, lower bound, range fingerprints,
//! since/until views) equal those of the crate's own sorted vector over the same set.

use std::collections::BTreeSet;

use negentropy::{Bound, Id, NegentropyStorageBase, NegentropyStorageVector};
use proptest::prelude::*;
use wok::nostr::filter::EventView;
use wok::nostr::sign::Keys;
use wok::nostr::tags::Tags;
use wok::nostr::{hex, Event, Filter, JsonParser, Limits};
use wok::store::negtree::{tree_summary, TreeView};
use wok::store::{Store, StoreOptions};

/// created_at values spread over every bucket level (seconds to decades), with collisions.
fn created_at() -> impl Strategy<Value = u64> {
    prop_oneof![
        0..40u64,
        1_700_000_000..1_700_000_100u64,
        1_700_000_000..1_700_100_000u64,
        0..(1u64 << 36),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Write(Vec<(u8, u8, u64, Option<u64>)>),
    Delete(Vec<usize>),
    Purge(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => prop::collection::vec(
            (0..3u8, 0..3u8, created_at(), prop::option::weighted(0.2, 0..(1u64 << 36))),
            1..25
        )
        .prop_map(Step::Write),
        1 => prop::collection::vec(any::<usize>(), 1..5).prop_map(Step::Delete),
        1 => (0..(1u64 << 36)).prop_map(Step::Purge),
    ]
}

fn filter(s: &str) -> Filter {
    JsonParser::new()
        .parse(&mut s.as_bytes().to_vec(), |v| Filter::from_json(v, 10))
        .expect("json")
        .expect("filter")
}

/// (created_at, id) of every stored event `f` matches, sorted.
fn stored(store: &Store, f: &Filter) -> Vec<(u64, [u8; 32])> {
    stored_except(store, f, &[])
}

/// `stored`, leaving out the events of `except` kinds (what a public tree holds).
fn stored_except(store: &Store, f: &Filter, except: &[u64]) -> Vec<(u64, [u8; 32])> {
    let txn = store.read_txn().expect("txn");
    let mut v: Vec<_> = store
        .all_lev_ids(&txn)
        .expect("levs")
        .into_iter()
        .filter_map(|l| store.record(&txn, l).expect("read"))
        .filter(|r| f.matches(r) && !except.contains(&r.kind()))
        .map(|r| (r.created_at(), *r.id()))
        .collect();
    v.sort();
    v
}

fn vector(items: &[(u64, [u8; 32])]) -> NegentropyStorageVector {
    let mut s = NegentropyStorageVector::new();
    for (t, id) in items {
        s.insert(*t, Id::from_byte_array(*id)).expect("insert");
    }
    s.seal().expect("seal");
    s
}

fn check_tree(store: &Store, tree: u64, f: &Filter, probe: u64) -> Result<(), TestCaseError> {
    check_tree_except(store, tree, f, &[], probe)
}

fn check_tree_except(
    store: &Store,
    tree: u64,
    f: &Filter,
    except: &[u64],
    probe: u64,
) -> Result<(), TestCaseError> {
    let want = stored_except(store, f, except);
    let txn = store.read_txn().expect("txn");
    let view = TreeView::new(store, &txn, tree, 0, u64::MAX).expect("view");
    let vec = vector(&want);
    let n = want.len();
    prop_assert_eq!(view.size().expect("size"), n);
    let mut got = Vec::new();
    view.iterate(0, n, &mut |item, _| {
        got.push((item.timestamp, *item.id.as_bytes()));
        Ok(true)
    })
    .expect("iterate");
    prop_assert_eq!(&got, &want);
    // Positional answers against the crate's vector.
    for i in 0..n {
        prop_assert_eq!(
            view.get_item(i).expect("item"),
            vec.get_item(i).expect("item")
        );
    }
    let mut x = probe;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20 {
        let (a, b) = ((next() as usize) % (n + 1), (next() as usize) % (n + 1));
        let (a, b) = (a.min(b), a.max(b));
        prop_assert_eq!(
            view.fingerprint(a, b).expect("fp").to_bytes(),
            vec.fingerprint(a, b).expect("fp").to_bytes()
        );
        let ts = match (next() % 3, want.get(a)) {
            (0, Some((t, _))) => *t,
            (1, Some((t, _))) => t.saturating_add(1),
            _ => next() % (1 << 37),
        };
        let bound = Bound::with_timestamp(ts);
        prop_assert_eq!(
            view.find_lower_bound(0, n, &bound),
            vec.find_lower_bound(0, n, &bound)
        );
        // A bound with an id: an item's own (sorts at it) or a random one (between items
        // of the same second).
        let id: [u8; 32] = match (next() % 2, want.get(a)) {
            (0, Some((_, id))) => *id,
            _ => {
                let mut r = [0u8; 32];
                for c in r.chunks_mut(8) {
                    c.copy_from_slice(&next().to_le_bytes());
                }
                r
            }
        };
        let bound = Bound::with_timestamp_and_id(ts, id).expect("bound");
        prop_assert_eq!(
            view.find_lower_bound(0, n, &bound),
            vec.find_lower_bound(0, n, &bound)
        );
        // A since/until window answers like a vector of just the items inside it.
        let until = ts.saturating_add(next() % (1 << 30));
        let sub = TreeView::new(store, &txn, tree, ts, until).expect("view");
        let inside: Vec<(u64, [u8; 32])> = want
            .iter()
            .filter(|(t, _)| *t >= ts && *t <= until)
            .copied()
            .collect();
        let sub_vec = vector(&inside);
        let m = inside.len();
        prop_assert_eq!(sub.len() as usize, m);
        let (c, d) = ((next() as usize) % (m + 1), (next() as usize) % (m + 1));
        let (c, d) = (c.min(d), c.max(d));
        prop_assert_eq!(
            sub.fingerprint(c, d).expect("fp").to_bytes(),
            sub_vec.fingerprint(c, d).expect("fp").to_bytes()
        );
        if c < m {
            prop_assert_eq!(
                sub.get_item(c).expect("item"),
                sub_vec.get_item(c).expect("item")
            );
        }
        let mut got = Vec::new();
        sub.iterate(c, d, &mut |item, _| {
            got.push((item.timestamp, *item.id.as_bytes()));
            Ok(true)
        })
        .expect("iterate");
        prop_assert_eq!(&got[..], &inside[c..d]);
        prop_assert_eq!(
            sub.find_lower_bound(0, m, &bound),
            sub_vec.find_lower_bound(0, m, &bound)
        );
    }
    let (size, fp) = tree_summary(store, &txn, tree).expect("summary");
    prop_assert_eq!(size as usize, n);
    prop_assert_eq!(fp, vec.fingerprint(0, n).expect("fp").to_bytes());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn trees_stay_exact(steps in prop::collection::vec(step(), 1..12), probe in 1..u64::MAX) {
        let ks: Vec<Keys> = (1..=3).map(|i| Keys::from_secret([i; 32]).expect("key")).collect();
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(dir.path(), &StoreOptions { map_size: 1 << 28, ..StoreOptions::default() }).expect("open");
        // Tree 1 is `{}`; tree 2 follows kind 1 by the first author only.
        let f2 = filter(&format!(r#"{{"kinds":[1],"authors":["{}"]}}"#, hex::encode(&ks[0].pubkey)));
        let t2 = store.add_tree(&f2).expect("add");
        store.build_tree(t2).expect("build");
        // Tree 3 is public: `{}` but kind 0 (as if kind 0 were a restricted read kind).
        let t3 = store.add_tree_except(&Filter::all(), &[0]).expect("add");
        store.build_tree(t3).expect("build");
        let mut written: Vec<Event> = Vec::new();
        let mut salt = 0u32;
        for s in steps {
            match s {
                Step::Write(evs) => {
                    let batch: Vec<Event> = evs
                        .iter()
                        .map(|&(author, kind, ts, exp)| {
                            salt += 1;
                            // Kinds 1, 0 (replaceable) and 5 (deleting an earlier event).
                            let kind = [1u64, 0, 5][kind as usize];
                            let mut tags: Vec<Vec<String>> = Vec::new();
                            if kind == 5 && !written.is_empty() {
                                let target = &written[salt as usize % written.len()];
                                tags.push(vec!["e".into(), hex::encode(&target.id)]);
                            }
                            if let Some(e) = exp {
                                tags.push(vec!["expiration".into(), e.to_string()]);
                            }
                            let tags: Vec<Vec<&str>> =
                                tags.iter().map(|t| t.iter().map(String::as_str).collect()).collect();
                            ks[author as usize]
                                .sign(ts, kind, Tags::from_vecs(&tags), &format!("c{salt}"), &Limits::default())
                                .expect("sign")
                        })
                        .collect();
                    store.write_batch(&batch).expect("write");
                    written.extend(batch);
                }
                Step::Delete(picks) => {
                    let txn = store.read_txn().expect("txn");
                    let levs = store.all_lev_ids(&txn).expect("levs");
                    drop(txn);
                    if !levs.is_empty() {
                        let doomed: Vec<u64> = picks.iter().map(|p| levs[p % levs.len()]).collect();
                        store.delete_batch(&doomed).expect("delete");
                    }
                }
                Step::Purge(now) => {
                    while store.purge_expired(now, 7).expect("purge") == 7 {}
                }
            }
        }
        check_tree(&store, 1, &Filter::all(), probe)?;
        check_tree(&store, t2, &f2, probe)?;
        check_tree_except(&store, t3, &Filter::all(), &[0], probe)?;
        // Built again from the stored events (tree 1 before the later trees' rows, tree 3
        // at the table's end), they answer the same, and writes keep them from then on.
        store.build_tree(1).expect("build");
        store.build_tree(t3).expect("build");
        let more: Vec<Event> = (0..3u64)
            .map(|i| {
                ks[(i % 2) as usize]
                    .sign(probe % (1 << 36) + i, i % 2, Tags::default(), "after", &Limits::default())
                    .expect("sign")
            })
            .collect();
        store.write_batch(&more).expect("write");
        check_tree(&store, 1, &Filter::all(), probe)?;
        check_tree(&store, t2, &f2, probe)?;
        check_tree_except(&store, t3, &Filter::all(), &[0], probe)?;
    }
}

#[test]
fn trees_are_managed_and_an_unbuilt_tree_is_never_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
    let k = Keys::from_secret([7; 32]).expect("key");
    let evs: Vec<Event> = (0..50)
        .map(|i| {
            k.sign(
                1000 + i,
                1 + i % 2,
                Tags::from_vecs::<&str>(&[]),
                "x",
                &Limits::default(),
            )
            .expect("sign")
        })
        .collect();
    store.write_batch(&evs).expect("write");
    let f = filter(r#"{"kinds":[2]}"#);
    let t = store.add_tree(&f).expect("add");
    assert!(store.add_tree(&f).is_err(), "duplicate filter");
    assert!(store.add_tree(&filter(r#"{"since":5}"#)).is_err());
    assert!(store.add_tree(&filter(r#"{"kinds":[]}"#)).is_err());
    let txn = store.read_txn().expect("txn");
    assert_eq!(
        store
            .tree_for(&txn, &filter(r#"{"kinds":[2],"since":3}"#))
            .expect("q"),
        None
    );
    assert_eq!(store.tree_for(&txn, &Filter::all()).expect("q"), Some(1));
    drop(txn);
    assert_eq!(store.build_tree(t).expect("build"), 25);
    let txn = store.read_txn().expect("txn");
    assert_eq!(
        store
            .tree_for(&txn, &filter(r#"{"kinds":[2],"until":9}"#))
            .expect("q"),
        Some(t)
    );
    assert_eq!(
        store
            .tree_for(&txn, &filter(r#"{"kinds":[2],"limit":9}"#))
            .expect("q"),
        None
    );
    drop(txn);
    let ids: BTreeSet<[u8; 32]> = stored(&store, &f).into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 25);
    assert!(store.remove_tree(t).expect("remove"));
    assert!(!store.remove_tree(t).expect("remove"));
    let txn = store.read_txn().expect("txn");
    assert_eq!(store.trees(&txn).expect("trees").len(), 1);
}

/// A tree built over more events than one build piece (4,096) holds exactly the matching
/// events: the build reads and writes a piece at a time, so its memory does not grow with
/// the DB, and the pieces' boundaries must lose or repeat nothing.
#[test]
fn a_tree_built_in_pieces_over_a_large_db_is_exact() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path(), &StoreOptions::default()).expect("open");
    let k = Keys::from_secret([8; 32]).expect("key");
    let evs: Vec<Event> = (0..9_000u64)
        .map(|i| {
            k.sign(
                1_000_000 + i * 7 % 5_000,
                // Mostly matching, so the piece boundaries fall on matching events.
                if i >= 8_900 { 7 } else { 1 },
                Tags::from_vecs::<&str>(&[]),
                &format!("e{i}"),
                &Limits::default(),
            )
            .expect("sign")
        })
        .collect();
    for chunk in evs.chunks(3_000) {
        store.write_batch(chunk).expect("write");
    }
    let f = filter(r#"{"kinds":[1]}"#);
    let t = store.add_tree(&f).expect("add");
    assert_eq!(store.build_tree(t).expect("build"), 8_900);
    check_tree(&store, t, &f, 42).expect("exact");
}
