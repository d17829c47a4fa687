//! Retention rules (`retention { rules { … } maxDbBytes }`): pruned by the running relay in
//! slices, and offline by `wok prune`; archives before delete.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{keys, now, sign, TestRelay, WAIT};
use wok::nostr::filter::EventView;
use wok::nostr::Event;
use wok::store::{Store, StoreOptions};

const RULES: &str = r#"oldnotes { kinds = "1" maxAgeSeconds = 3600 }
    broad { kinds = "0-9999" maxAgeSeconds = 3600 }
    reactions { kinds = "7" maxEventsPerPubkey = 5 }"#;

/// The fixture: author 1 has 10 old and 20 recent notes and an old profile and follow list
/// (replaceable: only a rule naming them may prune them); author 2 has 15 reactions.
fn fixture(t: u64) -> Vec<Event> {
    let (a, b) = (keys(1), keys(2));
    let mut evs = Vec::new();
    for i in 0..10 {
        evs.push(sign(&a, t - 10_000 + i, 1, &[], &format!("old {i}")));
    }
    for i in 0..20 {
        evs.push(sign(&a, t - 100 + i, 1, &[], &format!("new {i}")));
    }
    evs.push(sign(&a, t - 10_000, 0, &[], "{}"));
    evs.push(sign(&a, t - 10_000, 3, &[], ""));
    for i in 0..15 {
        evs.push(sign(&b, t - 1000 + i, 7, &[], "+"));
    }
    evs
}

/// What must be left of the fixture (plus `extra`) once the rules ran: ids.
fn expected_left(evs: &[Event], t: u64) -> BTreeSet<String> {
    let mut reactions: Vec<&Event> = evs.iter().filter(|e| e.kind == 7).collect();
    reactions.sort_by_key(|e| std::cmp::Reverse(e.created_at));
    evs.iter()
        .filter(|e| match e.kind {
            1 => e.created_at >= t - 3600,
            7 => reactions[..5].iter().any(|r| r.id == e.id),
            _ => true,
        })
        .map(|e| e.id_hex().to_string())
        .collect()
}

fn stored_ids(store: &Store) -> BTreeSet<String> {
    let txn = store.read_txn().expect("txn");
    store
        .all_lev_ids(&txn)
        .expect("levs")
        .into_iter()
        .filter_map(|l| store.record(&txn, l).expect("record"))
        .map(|r| wok::nostr::hex::encode(r.id()))
        .collect()
}

fn await_metric(url: &str, name: &str, want: u64) {
    let end = Instant::now() + WAIT;
    loop {
        let v = common::metric(url, name);
        if v >= want {
            assert_eq!(v, want, "{name}");
            return;
        }
        assert!(Instant::now() < end, "{name} is {v}, waiting for {want}");
        // Polling an HTTP counter: the relay has no event to wait on from outside.
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_running_relay_prunes_by_age_and_by_count_per_author() {
    let t = now();
    let mut evs = fixture(t);
    let fill = evs.clone();
    let r = TestRelay::with_store(
        |c| {
            c.retention.rules = wok::config::retention::Rules::parse_text(RULES)
                .expect("rules")
                .canonical()
        },
        |s| {
            s.write_batch(&fill).expect("fill");
        },
    );
    // 10 old notes, 10 surplus reactions.
    await_metric(&r.url, "wok_retention_pruned_total", 20);
    // Published while it runs: an old note and one more reaction.
    let mut c = r.client();
    let late_old = sign(&keys(1), t - 7200, 1, &[], "late old");
    let late_reaction = sign(&keys(2), t, 7, &[], "+");
    for e in [&late_old, &late_reaction] {
        assert_eq!(c.publish(e)[2], true);
        evs.push(e.clone());
    }
    await_metric(&r.url, "wok_retention_pruned_total", 22);
    // A whole pass more finds nothing else (and the count did not move past 22 above).
    let slices = common::metric(&r.url, "wok_retention_slices_total");
    let end = Instant::now() + WAIT;
    while common::metric(&r.url, "wok_retention_slices_total") < slices + 2 {
        assert!(Instant::now() < end, "no more slices");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(common::metric(&r.url, "wok_retention_pruned_total"), 22);
    let got: BTreeSet<String> = c
        .req("all", "{}")
        .iter()
        .map(|e| e["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(got, expected_left(&evs, t));

    // NIP-11 lists the rules with a time or a count.
    let doc = nip11(&r.url);
    assert_eq!(
        doc["retention"],
        serde_json::json!([
            {"kinds": [[0, 9999]], "time": 3600},
            {"kinds": [1], "time": 3600},
            {"kinds": [7], "count": 5},
        ])
    );

    // Every index and tree row went with its event.
    let mut r = r;
    if let Some(relay) = r.relay.take() {
        relay.stop();
    }
    let store = Store::open(r.dir.path(), &StoreOptions::default()).expect("reopen");
    let txn = store.read_txn().expect("txn");
    assert_eq!(
        store.check_consistency(&txn).expect("check"),
        Vec::<String>::new()
    );
}

fn nip11(url: &str) -> serde_json::Value {
    let addr = url.trim_start_matches("ws://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nAccept: application/nostr+json\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    let (_, body) = out.split_once("\r\n\r\n").expect("head and body");
    serde_json::from_str(body).expect("NIP-11 JSON")
}

fn wok(conf: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wok"));
    c.arg("--config").arg(conf).arg("--quiet");
    c
}

/// A DB holding the fixture and a config with `rules`, in `dir`.
fn offline_setup(dir: &std::path::Path, rules: &str, evs: &[Event]) -> std::path::PathBuf {
    let db = dir.join("db");
    let store = Store::open(&db, &StoreOptions::default()).expect("store");
    store.write_batch(evs).expect("fill");
    store.close();
    let conf = dir.join("wok.conf");
    std::fs::write(
        &conf,
        format!(
            "db = {:?}\nretention {{\n  rules {{\n    {rules}\n  }}\n  maxDbBytes = 0\n}}\n",
            db.display().to_string()
        ),
    )
    .expect("conf");
    conf
}

#[test]
fn wok_prune_counts_per_rule_and_prunes_the_same_events() {
    let dir = tempfile::tempdir().expect("tmp");
    let t = now();
    let evs = fixture(t);
    let conf = offline_setup(dir.path(), RULES, &evs);
    let out = common::run(wok(&conf).args(["prune", "--dry-run"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // broad covers the old notes too (not the profile or follow list); each event counts once
    // in the total.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "broad: 10\noldnotes: 10\nreactions: 10\ntotal: 20\n"
    );
    let store = Store::open(&dir.path().join("db"), &StoreOptions::default()).expect("open");
    assert_eq!(
        stored_ids(&store).len(),
        evs.len(),
        "a dry run deletes nothing"
    );
    store.close();

    let out = common::run(wok(&conf).arg("prune"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "broad: 10\noldnotes: 0\nreactions: 10\ntotal: 20\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("prune: 20 events in "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(&dir.path().join("db"), &StoreOptions::default()).expect("open");
    assert_eq!(stored_ids(&store), expected_left(&evs, t));
    let txn = store.read_txn().expect("txn");
    assert_eq!(
        store.check_consistency(&txn).expect("check"),
        Vec::<String>::new()
    );
}

#[test]
fn bad_rules_are_refused_with_their_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let conf = offline_setup(dir.path(), r#"x { kinds = "1-" maxAgeSeconds = 5 }"#, &[]);
    let out = common::run(wok(&conf).arg("prune"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rules.x.kinds"), "{err}");
}
