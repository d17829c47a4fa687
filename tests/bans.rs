//! Bans and kind lists hold for every writer of the DB, not only the relay's ingester:
//! `wok admin` bans a pubkey and an event id and disallows a kind, then `wok import`,
//! `wok sync` and `wok stream` (the router's links are streams) through the real binary,
//! on real LMDB in temp dirs and real relays on 127.0.0.1, store the rest and not those.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{keys, note, now, sign, TestRelay};
use wok::nostr::{hex, Event};

/// Every `wok` run and the test's own opens use the same map size.
const MAP: &str = "dbParams.mapsize=1073741824";

fn wok(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wok"));
    c.arg("--set")
        .arg(format!("db={}/", dir.display()))
        .args(["--set", MAP])
        .env_remove("STRFRY_CONFIG")
        .env_remove("WOK_ADMIN_KEY")
        .current_dir(dir);
    c
}

fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    common::run_within(cmd, stdin, common::RUN_LIMIT)
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn admin(dir: &Path, args: &[&str]) {
    let o = run(wok(dir).arg("admin").args(args), b"");
    assert!(o.status.success(), "wok admin {args:?}: {}", stderr_of(&o));
}

fn stored(dir: &Path, evs: &[Event]) -> BTreeSet<[u8; 32]> {
    let s = common::open_store(dir);
    let txn = s.read_txn().expect("txn");
    let have = evs
        .iter()
        .filter(|e| s.lookup_id(&txn, &e.id).expect("lookup").is_some())
        .map(|e| e.id)
        .collect();
    drop(txn);
    s.close();
    have
}

fn ids(evs: &[Event]) -> BTreeSet<[u8; 32]> {
    evs.iter().map(|e| e.id).collect()
}

/// Four events the bans refuse (two by the banned author, the banned event, a kind 7)
/// and three that pass, all an hour old.
struct Cast {
    banned_author: String,
    banned_event: String,
    refused: Vec<Event>,
    good: Vec<Event>,
}

fn cast() -> Cast {
    let (bad, ok) = (keys(61), keys(62));
    let t = now() - 3600;
    let banned_event = sign(&ok, t, 1, &[], "banned note");
    Cast {
        banned_author: hex::encode(&bad.pubkey),
        banned_event: banned_event.id_hex().to_owned(),
        refused: vec![
            sign(&bad, t, 1, &[], "spam 1"),
            sign(&bad, t + 1, 1, &[], "spam 2"),
            banned_event,
            sign(&ok, t + 2, 7, &[], "+"),
        ],
        good: (0..3)
            .map(|i| sign(&ok, t + 3 + i, 1, &[], &format!("fine {i}")))
            .collect(),
    }
}

fn ban_all(dir: &Path, c: &Cast) {
    admin(dir, &["banpubkey", &c.banned_author, "spam"]);
    admin(dir, &["banevent", &c.banned_event, "illegal"]);
    admin(dir, &["disallowkind", "7"]);
}

fn jsonl(evs: &[&Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in evs {
        out.extend_from_slice(e.json());
        out.push(b'\n');
    }
    out
}

#[test]
fn import_refuses_banned_events_counts_them_and_exits_0() {
    let c = cast();
    let all: Vec<&Event> = c.refused.iter().chain(&c.good).collect();
    let input = jsonl(&all);

    // No bans: every event goes in and the summary is the one it always was.
    let plain = tempfile::tempdir().expect("tmp");
    let o = run(wok(plain.path()).arg("import"), &input);
    let err = stderr_of(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("Processed 7 lines. 7 added, 0 rejected, 0 duplicates\n"),
        "{err}"
    );
    assert!(!err.contains("blocked"), "{err}");

    let dir = tempfile::tempdir().expect("tmp");
    ban_all(dir.path(), &c);
    let o = run(wok(dir.path()).args(["import", "--show-rejected"]), &input);
    let err = stderr_of(&o);
    assert!(o.status.success(), "bans are policy, not an error: {err}");
    assert!(
        err.contains("Processed 7 lines. 3 added, 0 rejected, 0 duplicates, 4 blocked"),
        "{err}"
    );
    for why in [
        "blocked: pubkey is banned from this relay",
        "blocked: this event is banned from this relay",
        "blocked: kind 7 is not accepted by this relay",
    ] {
        assert!(err.contains(why), "no {why:?} in: {err}");
    }
    assert!(
        err.contains(&format!("Rejected event {}: blocked:", c.banned_event)),
        "{err}"
    );
    assert_eq!(stored(dir.path(), &c.refused), BTreeSet::new());
    assert_eq!(stored(dir.path(), &c.good), ids(&c.good));

    // Without --show-rejected the reasons are not printed, the count still is.
    let o = run(wok(dir.path()).arg("import"), &input);
    let err = stderr_of(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("0 added, 0 rejected, 3 duplicates, 4 blocked"),
        "{err}"
    );
    assert!(!err.contains("blocked: pubkey"), "{err}");
}

#[test]
fn sync_down_refuses_banned_events() {
    let c = cast();
    let all: Vec<Event> = c.refused.iter().chain(&c.good).cloned().collect();
    // The peer has no bans and serves all seven.
    let relay = TestRelay::with_store(
        |_| {},
        |s| {
            s.write_batch(&all).expect("write");
        },
    );
    let dir = tempfile::tempdir().expect("tmp");
    ban_all(dir.path(), &c);
    let o = run(
        wok(dir.path()).args(["sync", &relay.url, "--dir", "down"]),
        b"",
    );
    let err = stderr_of(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("have 0, need 7, downloaded 3, uploaded 0, blocked 4"),
        "{err}"
    );
    assert!(
        err.contains("4 downloaded events refused by this DB's bans or kind lists"),
        "{err}"
    );
    assert_eq!(stored(dir.path(), &c.refused), BTreeSet::new());
    assert_eq!(stored(dir.path(), &c.good), ids(&c.good));
}

/// A live `wok stream --dir down`: what a peer relays in real time is held to this DB's
/// bans too (in a router mesh, a banned event no longer flows back in from a peer).
#[test]
fn stream_down_refuses_banned_events() {
    let c = cast();
    let relay = TestRelay::start();
    let dir = tempfile::tempdir().expect("tmp");
    ban_all(dir.path(), &c);
    let store = common::open_store(dir.path());
    let child = common::Running::spawn(
        wok(dir.path())
            .args(["stream", &relay.url, "--dir", "down"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let arrived = |e: &Event| {
        let txn = store.read_txn().expect("txn");
        store.lookup_id(&txn, &e.id).expect("lookup").is_some()
    };
    let mut pubc = relay.client();
    // The stream subscribes with limit 0, so only events after its REQ come down: publish
    // probes until one arrives (bounded).
    let probe = keys(63);
    let mut i = 0;
    let live = common::eventually(Duration::from_secs(20), || {
        let ev = note(&probe, &format!("probe {i}"));
        i += 1;
        assert_eq!(pubc.publish(&ev)[2], true);
        common::eventually(Duration::from_millis(500), || arrived(&ev))
    });
    assert!(live, "the stream never delivered a probe");
    // The refused ones first, then the good ones: the stream writes in arrival order, so
    // once the last good event is stored every earlier one has been judged.
    for e in c.refused.iter().chain(&c.good) {
        assert_eq!(pubc.publish(e)[2], true, "the peer takes it");
    }
    let last = c.good.last().expect("good");
    assert!(
        common::eventually(common::WAIT, || arrived(last)),
        "the good events never came down"
    );
    drop(store);
    assert_eq!(stored(dir.path(), &c.refused), BTreeSet::new());
    assert_eq!(stored(dir.path(), &c.good), ids(&c.good));
    child.await_stderr("events down refused by this DB's bans", common::WAIT);
    child.signal("-TERM");
    let out = child.output_within(common::WAIT);
    let err = stderr_of(&out);
    assert!(err.contains("(4 blocked)"), "{err}");
}
