//! The per-EVENT cost of the access-control and proof-of-work checks the ingester runs
//! (`policy::access`, `policy::pow`), beside a Schnorr verify for scale: one atomic load and
//! a few hash lookups should be a rounding error next to it. The store holds 10,000 banned
//! pubkeys and an 800-follow admin list (what fits in maxEventSize) (web-of-trust mode) for the loaded cases.
//! The `store_bans_*` cases are the check every writer makes in its write transaction
//! (`Store::write_bans` once per batch, `WriteBans::check` per event), empty and with the
//! 10k bans.
//! `cargo bench --bench access -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use wok::config::Config;
use wok::nostr::sign::Keys;
use wok::nostr::tags::Tags;
use wok::nostr::{hex, verify, Limits};
use wok::policy::access::{self, Access};
use wok::store::manage::List;
use wok::store::{Store, StoreOptions};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(
        dir.path(),
        &StoreOptions {
            map_size: 1 << 30,
            ..StoreOptions::default()
        },
    )
    .expect("store");
    let admin = Keys::from_secret([1; 32]).expect("key");
    let author = Keys::from_secret([2; 32]).expect("key");
    let ev = author
        .sign(
            1_700_000_000,
            1,
            Tags::from_vecs(&[vec!["t", "bench"]]),
            "hello",
            &Limits::default(),
        )
        .expect("sign");

    let mut public = Config::default();
    public.relay.management.admin_pubkeys = hex::encode(&admin.pubkey);
    let empty = Access::load(&store, &public).expect("load");
    let bans_empty = store
        .write_bans(&store.read_txn().expect("r"))
        .expect("bans");

    // Loaded: 10k bans, an admin following 800 pubkeys (the author among them), wot mode.
    let mut w = store.write_txn().expect("w");
    for i in 0..10_000u32 {
        let mut pk = [0u8; 32];
        pk[..4].copy_from_slice(&i.to_be_bytes());
        pk[31] = 0xee;
        store
            .manage_put(&mut w, List::BannedPubkey, &pk, "")
            .expect("put");
    }
    w.commit().expect("commit");
    let bans_10k = store
        .write_bans(&store.read_txn().expect("r"))
        .expect("bans");
    assert_eq!(bans_10k.check(&ev.id, &ev.pubkey, ev.kind), None);
    let mut follows: Vec<Vec<String>> = (0..800u32)
        .map(|i| {
            let mut pk = [0u8; 32];
            pk[..4].copy_from_slice(&i.to_be_bytes());
            vec!["p".into(), hex::encode(&pk)]
        })
        .collect();
    follows.push(vec!["p".into(), hex::encode(&author.pubkey)]);
    let k3 = admin
        .sign(
            1_700_000_000,
            3,
            Tags::from_vecs(&follows),
            "",
            &Limits::default(),
        )
        .expect("sign");
    store.write_batch(&[k3]).expect("write");
    let mut wot = public.clone();
    wot.relay.management.write_access = "wot".into();
    let loaded = Access::load(&store, &wot).expect("load");
    assert!(loaded.with(|a| a.follows.len()) > 800);

    let mut pow = public.clone();
    pow.relay.pow.min_difficulty = 0;
    pow.relay.pow.kind_difficulty = "7:8, 30023:12".into();

    let mut g = c.benchmark_group("access");
    g.bench_function("may_write_public_empty", |b| {
        b.iter(|| {
            let mode = access::write_mode(black_box(&public));
            black_box(
                empty
                    .with(|a| a.may_write(mode, &ev.id, &ev.pubkey, ev.kind))
                    .is_ok(),
            )
        })
    });
    g.bench_function("may_write_wot_10k_bans_800_follows", |b| {
        b.iter(|| {
            let mode = access::write_mode(black_box(&wot));
            black_box(
                loaded
                    .with(|a| a.may_write(mode, &ev.id, &ev.pubkey, ev.kind))
                    .is_ok(),
            )
        })
    });
    g.bench_function("pow_check_off", |b| {
        b.iter(|| black_box(wok::policy::pow::check(black_box(&public), &ev).is_ok()))
    });
    g.bench_function("pow_check_kind_overrides", |b| {
        b.iter(|| black_box(wok::policy::pow::check(black_box(&pow), &ev).is_ok()))
    });
    g.bench_function("store_bans_check_empty", |b| {
        b.iter(|| black_box(bans_empty.check(black_box(&ev.id), &ev.pubkey, ev.kind)))
    });
    g.bench_function("store_bans_check_10k", |b| {
        b.iter(|| black_box(bans_10k.check(black_box(&ev.id), &ev.pubkey, ev.kind)))
    });
    let txn = store.read_txn().expect("r");
    g.bench_function("store_bans_per_batch_cached", |b| {
        b.iter(|| black_box(store.write_bans(black_box(&txn)).is_ok()))
    });
    drop(txn);
    g.bench_function("schnorr_verify_reference", |b| {
        b.iter(|| black_box(verify::check_event(black_box(&ev)).is_ok()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
