//! NIP-77 against the real relay: a client built on the `negentropy` crate reconciles with
//! wok over WebSocket and must find exactly the set difference.

mod common;

use std::collections::BTreeSet;

use common::{keys, now, sign, TestRelay};
use negentropy::{Id, Negentropy, NegentropyStorageVector};
use wok::nostr::{hex, Event};

/// `n` kind-1 events by a few authors, created_at spread over `n` seconds before now.
fn events(n: usize, salt: u8) -> Vec<Event> {
    let ks: Vec<_> = (1..=4).map(keys).collect();
    let t0 = now() - 10 * n as u64;
    (0..n)
        .map(|i| {
            sign(
                &ks[i % ks.len()],
                t0 + i as u64,
                1,
                &[],
                &format!("e{salt}-{i}"),
            )
        })
        .collect()
}

fn ids(evs: &[&Event]) -> BTreeSet<[u8; 32]> {
    evs.iter().map(|e| e.id).collect()
}

/// Runs a whole reconciliation as the initiator holding `mine`; returns (have, need, rounds):
/// ids only the client has and ids only the relay has.
fn reconcile(
    c: &mut common::Client,
    sub: &str,
    filter: &str,
    mine: &[&Event],
    frame_limit: u64,
) -> (BTreeSet<[u8; 32]>, BTreeSet<[u8; 32]>, usize) {
    let mut storage = NegentropyStorageVector::new();
    for e in mine {
        storage
            .insert(e.created_at, Id::from_byte_array(e.id))
            .expect("insert");
    }
    storage.seal().expect("seal");
    let mut neg = Negentropy::owned(storage, frame_limit).expect("neg");
    let first = neg.initiate().expect("initiate");
    c.send(&format!(
        "[\"NEG-OPEN\",\"{sub}\",{filter},\"{}\"]",
        hex::encode(&first)
    ));
    let (mut have, mut need) = (Vec::new(), Vec::new());
    let mut rounds = 0;
    loop {
        let m = c.recv();
        assert_eq!(m[0], "NEG-MSG", "expected NEG-MSG, got {m}");
        assert_eq!(m[1], sub);
        rounds += 1;
        assert!(rounds < 100, "reconciliation does not converge");
        let bytes = hex::decode_vec(m[2].as_str().expect("hex").as_bytes()).expect("hex");
        match neg
            .reconcile_with_ids(&bytes, &mut have, &mut need)
            .expect("reconcile")
        {
            Some(next) => c.send(&format!(
                "[\"NEG-MSG\",\"{sub}\",\"{}\"]",
                hex::encode(&next)
            )),
            None => break,
        }
    }
    c.send(&format!("[\"NEG-CLOSE\",\"{sub}\"]"));
    let set = |v: Vec<Id>| v.into_iter().map(|i| *i.as_bytes()).collect();
    (set(have), set(need), rounds)
}

#[test]
fn reconciles_the_exact_difference_over_several_rounds() {
    let all = events(3000, 1);
    // Relay: [0, 2000); client: [1000, 3000); 1000 on each side only.
    let (relay_side, client_side) = (&all[..2000], &all[1000..]);
    let r = TestRelay::with_store(
        |_| {},
        |s| {
            s.write_batch(relay_side).expect("write");
        },
    );
    let mut c = r.client();
    let mine: Vec<&Event> = client_side.iter().collect();
    // A small client frame limit forces several rounds.
    let (have, need, rounds) = reconcile(&mut c, "n1", "{}", &mine, 4096);
    assert_eq!(have, ids(&all[2000..].iter().collect::<Vec<_>>()));
    assert_eq!(need, ids(&all[..1000].iter().collect::<Vec<_>>()));
    assert!(rounds > 1, "expected several rounds, got {rounds}");

    // The same set on both sides: nothing to do.
    let same: Vec<&Event> = relay_side.iter().collect();
    let (have, need, _) = reconcile(&mut c, "n2", "{}", &same, 0);
    assert!(have.is_empty() && need.is_empty());
}

#[test]
fn filter_since_until_and_authors_bound_the_relay_set() {
    let all = events(400, 2);
    let r = TestRelay::with_store(
        |_| {},
        |s| {
            s.write_batch(&all).expect("write");
        },
    );
    let mut c = r.client();
    let (since, until) = (all[100].created_at, all[299].created_at);
    let filter = format!("{{\"since\":{since},\"until\":{until}}}");
    let (have, need, _) = reconcile(&mut c, "w", &filter, &[], 0);
    assert!(have.is_empty());
    assert_eq!(need, ids(&all[100..300].iter().collect::<Vec<_>>()));

    let author = hex::encode(&all[0].pubkey);
    let filter = format!("{{\"authors\":[\"{author}\"]}}");
    let (_, need, _) = reconcile(&mut c, "a", &filter, &[], 0);
    let expected: Vec<&Event> = all.iter().filter(|e| e.pubkey == all[0].pubkey).collect();
    assert_eq!(need, ids(&expected));
}

#[test]
fn errors_leave_the_connection_working() {
    let all = events(20, 3);
    let r = TestRelay::with_store(
        |c| c.relay.negentropy.max_sync_events = 10,
        |s| {
            s.write_batch(&all).expect("write");
        },
    );
    let mut c = r.client();
    // Too many results for maxSyncEvents (a filter no stored tree answers is collected).
    c.send("[\"NEG-OPEN\",\"big\",{\"kinds\":[1]},\"6100000200\"]");
    // NIP-77's three elements exactly (strfry once sent a 4th).
    assert_eq!(
        c.recv(),
        serde_json::json!(["NEG-ERR", "big", "blocked: too many query results"])
    );

    // Unknown session.
    c.send("[\"NEG-MSG\",\"nope\",\"61\"]");
    assert_eq!(
        c.recv(),
        serde_json::json!(["NEG-ERR", "nope", "closed: unknown subscription handle"])
    );

    // A malformed first message (a range with an unknown mode) is a protocol error.
    c.send("[\"NEG-OPEN\",\"bad\",{\"limit\":5},\"61000005\"]");
    assert_eq!(
        c.recv(),
        serde_json::json!(["NEG-ERR", "bad", "PROTOCOL-ERROR"])
    );
    // ... and the session is gone.
    c.send("[\"NEG-MSG\",\"bad\",\"61\"]");
    assert_eq!(c.recv()[2], "closed: unknown subscription handle");

    // Not hex.
    c.send("[\"NEG-OPEN\",\"x\",{},\"zz\"]");
    let m = c.recv();
    assert_eq!(m[0], "NEG-ERR");
    assert!(m[2].as_str().unwrap_or("").starts_with("invalid:"), "{m}");

    // The connection still serves REQs.
    assert_eq!(c.req("q", "{\"limit\":3}").len(), 3);
}

#[test]
fn sessions_per_connection_are_limited_and_close_frees_them() {
    let r = TestRelay::with(|c| c.relay.max_subs_per_connection = 2);
    let mut c = r.client();
    let open = |c: &mut common::Client, sub: &str| {
        // An empty client set: the reply is the relay's (empty) set.
        c.send(&format!("[\"NEG-OPEN\",\"{sub}\",{{}},\"61\"]"));
        c.recv()
    };
    assert_eq!(open(&mut c, "a")[0], "NEG-MSG");
    assert_eq!(open(&mut c, "b")[0], "NEG-MSG");
    // Re-opening an open id replaces it rather than counting twice.
    assert_eq!(open(&mut c, "b")[0], "NEG-MSG");
    assert_eq!(
        open(&mut c, "c"),
        serde_json::json!(["NEG-ERR", "c", "blocked: too many concurrent NEG requests"])
    );
    c.send("[\"NEG-CLOSE\",\"a\"]");
    assert_eq!(open(&mut c, "c")[0], "NEG-MSG");
}

#[test]
fn disabled_negentropy_is_a_notice_and_not_in_nip11() {
    let r = TestRelay::with(|c| c.relay.negentropy.enabled = false);
    let mut c = r.client();
    c.send("[\"NEG-OPEN\",\"a\",{},\"61\"]");
    let m = c.recv();
    assert_eq!(m[0], "NOTICE");
    assert_eq!(m[1], "error: bad msg: negentropy disabled");
    let nips = |enabled: bool| {
        let mut cfg = wok::config::Config::default();
        cfg.relay.negentropy.enabled = enabled;
        let doc: serde_json::Value = serde_json::from_str(&wok::relay::nip11(&cfg)).expect("json");
        doc["supported_nips"]
            .as_array()
            .expect("nips")
            .contains(&serde_json::json!(77))
    };
    assert!(nips(true));
    assert!(!nips(false));
}

#[test]
fn restricted_kinds_need_auth() {
    let r = TestRelay::with(|c| {
        c.relay.auth.enabled = true;
        c.relay.auth.service_url = "ws://127.0.0.1/".into();
        c.relay.auth.restricted_read_kinds = "4".into();
    });
    let mut c = r.client();
    c.send("[\"NEG-OPEN\",\"dm\",{\"kinds\":[4]},\"61\"]");
    let (_, m) = c.until(|m| m[0] == "NEG-ERR");
    assert_eq!(
        m,
        serde_json::json!([
            "NEG-ERR",
            "dm",
            "auth-required: requested filter requires authentication"
        ])
    );
}

#[test]
fn a_stored_tree_serves_its_filter_exactly_without_collecting() {
    let all = events(3000, 4);
    // No restricted kinds: every reader may see all of tree 1 (`{}`), so it serves `{}`.
    // maxSyncEvents only limits collected sets, which shows which path answered.
    let r = TestRelay::with_store(
        |c| {
            c.relay.auth.restricted_read_kinds = String::new();
            c.relay.negentropy.max_sync_events = 100;
        },
        |s| {
            s.write_batch(&all[..2000]).expect("write");
        },
    );
    let mut c = r.client();
    let mine: Vec<&Event> = all[1000..].iter().collect();
    let (have, need, rounds) = reconcile(&mut c, "t", "{}", &mine, 4096);
    assert_eq!(have, ids(&all[2000..].iter().collect::<Vec<_>>()));
    assert_eq!(need, ids(&all[..1000].iter().collect::<Vec<_>>()));
    assert!(rounds > 1);
    // A since/until window of the tree.
    let (since, until) = (all[500].created_at, all[1499].created_at);
    let filter = format!("{{\"since\":{since},\"until\":{until}}}");
    let (have, need, _) = reconcile(&mut c, "w", &filter, &[], 0);
    assert!(have.is_empty());
    assert_eq!(need, ids(&all[500..1500].iter().collect::<Vec<_>>()));
    // Events published now go into the tree at once.
    let extra = sign(&keys(9), now(), 1, &[], "late");
    assert_eq!(c.publish(&extra)[2], true);
    let (_, need, _) = reconcile(&mut c, "x", "{}", &mine, 0);
    assert_eq!(need.len(), 1001);
    // A filter with no tree is collected, and over maxSyncEvents.
    c.send("[\"NEG-OPEN\",\"v\",{\"kinds\":[1]},\"61\"]");
    assert_eq!(
        c.recv(),
        serde_json::json!(["NEG-ERR", "v", "blocked: too many query results"])
    );

    // A session whose tree is removed (here by another process) is ended, not answered
    // from a tree that no longer holds its set.
    c.send("[\"NEG-OPEN\",\"gone\",{},\"61\"]");
    assert_eq!(c.recv()[0], "NEG-MSG");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wok"))
        .arg("--set")
        .arg(format!("db={}", r.dir.path().display()))
        .args([
            "--set",
            "dbParams.mapsize=1073741824",
            "negentropy",
            "remove",
            "1",
        ])
        .env_remove("STRFRY_CONFIG")
        .output()
        .expect("wok negentropy remove");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.send("[\"NEG-MSG\",\"gone\",\"61\"]");
    assert_eq!(
        c.recv(),
        serde_json::json!(["NEG-ERR", "gone", "closed: the stored set changed; reopen"])
    );
}

#[test]
fn collected_sets_share_a_bounded_budget() {
    let all = events(8, 5);
    // maxSyncEvents 10 → a thread holds at most 40 collected items at once.
    let r = TestRelay::with_store(
        |c| {
            c.relay.negentropy.max_sync_events = 10;
            c.relay.num_threads.negentropy = 1;
        },
        |s| {
            s.write_batch(&all).expect("write");
        },
    );
    let mut c = r.client();
    for i in 0..5 {
        c.send(&format!("[\"NEG-OPEN\",\"s{i}\",{{\"kinds\":[1]}},\"61\"]"));
        assert_eq!(c.recv()[0], "NEG-MSG", "session {i}");
    }
    c.send("[\"NEG-OPEN\",\"s5\",{\"kinds\":[1]},\"61\"]");
    assert_eq!(
        c.recv(),
        serde_json::json!([
            "NEG-ERR",
            "s5",
            "rate-limited: too many negentropy sessions in progress, try again later"
        ])
    );
    // Closing one frees its items.
    c.send("[\"NEG-CLOSE\",\"s0\"]");
    c.send("[\"NEG-OPEN\",\"s5\",{\"kinds\":[1]},\"61\"]");
    assert_eq!(c.recv()[0], "NEG-MSG");
}

/// With restricted kinds (the default `4, 1059`), an unauthenticated `{}` NEG-OPEN is
/// answered from the public tree (tree 2: every event but those kinds), exactly, and kept
/// exact by the write path; maxSyncEvents (which limits only collected sets) shows which
/// path answered. Without that tree (an older DB) the set is collected, as before, until
/// `wok negentropy build` registers and builds it.
#[test]
fn an_unauthenticated_full_sync_is_served_from_the_public_tree() {
    let notes = events(300, 7);
    let dm = |i: usize| {
        let to = hex::encode(&keys(9).pubkey);
        sign(
            &keys(1),
            now() - 5_000 + i as u64,
            4,
            &[vec!["p", &to]],
            "secret",
        )
    };
    let dms: Vec<Event> = (0..20).map(dm).collect();
    let r = TestRelay::with_store(
        |c| c.relay.negentropy.max_sync_events = 100,
        |s| {
            s.write_batch(&notes).expect("write");
            s.write_batch(&dms).expect("write");
        },
    );
    let mut c = r.client();
    let (have, need, _) = reconcile(&mut c, "p", "{}", &[], 4096);
    assert!(have.is_empty());
    assert_eq!(
        need,
        ids(&notes.iter().collect::<Vec<_>>()),
        "every public event and no DM"
    );
    // New events: the note joins the tree, the DM stays out of it.
    let late = sign(&keys(2), now(), 1, &[], "late");
    assert_eq!(c.publish(&late)[2], true);
    assert_eq!(c.publish(&dm(99))[2], true);
    let (_, need, _) = reconcile(&mut c, "q", "{}", &[], 4096);
    assert_eq!(need.len(), notes.len() + 1);
    assert!(need.contains(&late.id));

    // Without the public tree the same sync is collected (and here over maxSyncEvents) ...
    let wok = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wok"))
            .arg("--set")
            .arg(format!("db={}", r.dir.path().display()))
            .args(["--set", "dbParams.mapsize=1073741824"])
            .args(args)
            .env_remove("STRFRY_CONFIG")
            .output()
            .expect("wok");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = wok(&["negentropy", "list"]);
    assert!(listed.contains("{} except kinds 4,1059"), "{listed}");
    wok(&["negentropy", "remove", "2"]);
    c.send("[\"NEG-OPEN\",\"c\",{},\"61\"]");
    assert_eq!(
        c.recv(),
        serde_json::json!(["NEG-ERR", "c", "blocked: too many query results"])
    );
    // ... until `wok negentropy build` registers and builds it again.
    let built = wok(&["negentropy", "build"]);
    assert!(built.contains("public"), "{built}");
    let (_, need, _) = reconcile(&mut c, "r", "{}", &[], 4096);
    assert_eq!(need.len(), notes.len() + 1);
    // Another restricted set than the tree's: it no longer holds exactly what this reader
    // may see, so the set is collected again.
    let mut cfg = wok::config::Config::default();
    cfg.relay.negentropy.max_sync_events = 100;
    cfg.relay.auth.restricted_read_kinds = "4".into();
    r.relay.as_ref().expect("relay").reload(cfg);
    c.send("[\"NEG-OPEN\",\"d\",{},\"61\"]");
    assert_eq!(
        c.recv(),
        serde_json::json!(["NEG-ERR", "d", "blocked: too many query results"])
    );
}
