//! Relay-level tests that fail when one of the relay's invariants breaks (each was checked
//! against a mutation of the implementation that breaks it; see issue 22):
//! - levIds are never reused: removing the newest event (`wok delete`) must not hide the
//!   next event from live subscribers.
//! - Restricted kinds never leak: not through live delivery (committed or ephemeral, also
//!   after another connection closes), not through the replay after a scan, not through a
//!   NIP-77 set, collected or served by a stored tree.
//! - No gap, no duplicate between a REQ's scan and its live part, with the hand-over driven
//!   deterministically (a scan held by back-pressure while the monitor moves past its
//!   snapshot; a monitor that has not yet seen what the scan sent).
//! - A live subscriber whose backlog passes `maxPendingOutboundBytes` is dropped and counted.

mod common;

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use negentropy::{Negentropy, NegentropyStorageVector};
use tungstenite::stream::MaybeTlsStream;
use wok::nostr::sign::Keys;
use wok::nostr::{hex, Event};

const SERVICE_URL: &str = "wss://relay.example.com";

/// A client whose socket receive buffer is small (set before connecting, which also turns
/// off the kernel's autotuning): when it stops reading, the relay's backlog for it grows
/// after kilobytes instead of after the tens of megabytes a tuned loopback socket holds.
fn small_window_client(url: &str) -> Client {
    let addr: std::net::SocketAddr = url.trim_start_matches("ws://").parse().expect("addr");
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("socket");
    sock.set_recv_buffer_size(16 * 1024).expect("rcvbuf");
    sock.connect(&addr.into()).expect("connect");
    let stream: TcpStream = sock.into();
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let (mut ws, _) =
        tungstenite::client(url, MaybeTlsStream::Plain(stream)).expect("websocket handshake");
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
    }
    Client { ws }
}

/// The ids of the next `n` EVENTs for `sub`, in arrival order.
fn next_events(c: &mut Client, sub: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = c.recv();
        if m[0] == "EVENT" && m[1] == sub {
            out.push(m[2]["id"].as_str().unwrap_or_default().to_string());
        }
    }
    out
}

/// The ids of the EVENTs for `sub` before the EVENT carrying `marker`.
fn events_before(c: &mut Client, sub: &str, marker: &Event) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let got = next_events(c, sub, 1).remove(0);
        if got == marker.id_hex() {
            return out;
        }
        out.push(got);
    }
}

fn hex_of(k: &Keys) -> String {
    hex::encode(&k.pubkey)
}

fn id_set<'a>(evs: impl IntoIterator<Item = &'a Event>) -> BTreeSet<String> {
    evs.into_iter().map(|e| e.id_hex().to_string()).collect()
}

// ---- levIds are never reused ----

#[test]
fn deleting_the_newest_event_does_not_hide_the_next_one_from_live_subscribers() {
    let r = TestRelay::start();
    let k = keys(60);
    let mut sub = r.client();
    assert!(sub.req("live", r#"{"kinds":[1]}"#).is_empty());
    let mut w = r.client();
    let newest = note(&k, "newest, then deleted");
    assert_eq!(w.publish(&newest)[2], true);
    // Delivered live: the subscriber's monitor has processed its levId.
    assert_eq!(next_events(&mut sub, "live", 1), [newest.id_hex()]);
    // An operator's `wok delete` (no tombstone) removes it while the relay runs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wok"))
        .arg("--set")
        .arg(format!("db={}", r.dir.path().display()))
        .args(["--set", "dbParams.mapsize=1073741824", "delete", "--filter"])
        .arg(format!("{{\"ids\":[\"{}\"]}}", newest.id_hex()))
        .env_remove("STRFRY_CONFIG")
        .output()
        .expect("wok delete");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(w
        .req("gone", &format!("{{\"ids\":[\"{}\"]}}", newest.id_hex()))
        .is_empty());
    // With strfry's max(levId)+1 the next event would reuse the deleted levId, which the
    // monitor is already past: it would never be delivered.
    let next = note(&k, "the next one");
    assert_eq!(w.publish(&next)[2], true);
    assert_eq!(next_events(&mut sub, "live", 1), [next.id_hex()]);
}

// ---- Restricted kinds never leak ----

fn auth_relay(restricted: &str) -> TestRelay {
    let restricted = restricted.to_string();
    TestRelay::with(move |c| {
        c.relay.auth.service_url = SERVICE_URL.into();
        c.relay.auth.restricted_read_kinds = restricted;
    })
}

#[test]
fn restricted_kinds_never_reach_live_subscribers_who_may_not_read_them() {
    // 21059 (an ephemeral gift wrap) is restricted too, so the ephemeral path is checked.
    let r = auth_relay("4, 1059, 21059");
    let (alice, bob, carol, wrapper) = (keys(61), keys(62), keys(63), keys(64));
    let filter = r#"{"kinds":[1,4,1059,20001,21059]}"#;
    let mut anon = r.client();
    assert!(anon.req("live", filter).is_empty());
    let mut third = r.client();
    common::authenticate(&mut third, &carol, SERVICE_URL);
    assert!(third.req("live", filter).is_empty());
    let mut recipient = r.client();
    common::authenticate(&mut recipient, &bob, SERVICE_URL);
    assert!(recipient.req("live", filter).is_empty());
    let mut sender = r.client();
    common::authenticate(&mut sender, &alice, SERVICE_URL);
    assert!(sender.req("live", filter).is_empty());

    let bob_hex = hex_of(&bob);
    let mut w = r.client();
    let dm = sign(&alice, now(), 4, &[vec!["p", &bob_hex]], "hi bob");
    let wrap = sign(&wrapper, now(), 1059, &[vec!["p", &bob_hex]], "sealed");
    let public = note(&alice, "public");
    for e in [&dm, &wrap, &public] {
        assert_eq!(w.publish(e)[2], true);
    }
    // A connection's live events come in commit order: the public note comes last, so
    // anything before it in the stream of a reader who may not see the others is a leak.
    for c in [&mut anon, &mut third] {
        assert_eq!(next_events(c, "live", 1), [public.id_hex()]);
    }
    assert_eq!(
        next_events(&mut recipient, "live", 3),
        [dm.id_hex(), wrap.id_hex(), public.id_hex()]
    );
    // Its author may read a DM too (she is not p-tagged in it).
    assert_eq!(
        next_events(&mut sender, "live", 2),
        [dm.id_hex(), public.id_hex()]
    );

    // Ephemeral events: delivered by the monitors straight from the write-policy stage, in
    // the order one connection sent them.
    let eph_wrap = sign(&wrapper, now(), 21059, &[vec!["p", &bob_hex]], "ephemeral");
    let eph_public = sign(&alice, now(), 20001, &[], "typing");
    for e in [&eph_wrap, &eph_public] {
        assert_eq!(w.publish(e)[2], true);
    }
    for c in [&mut anon, &mut third] {
        assert_eq!(next_events(c, "live", 1), [eph_public.id_hex()]);
    }
    assert_eq!(
        next_events(&mut recipient, "live", 2),
        [eph_wrap.id_hex(), eph_public.id_hex()]
    );
    assert_eq!(next_events(&mut sender, "live", 1), [eph_public.id_hex()]);
}

#[test]
fn a_closed_connection_does_not_lift_the_read_checks_of_others() {
    // One thread per stage: a connection's close and a later REQ reach the monitor in the
    // order the io thread saw them.
    let r = TestRelay::with(|c| {
        c.relay.num_threads.ingester = 1;
        c.relay.num_threads.req_worker = 1;
        c.relay.num_threads.req_monitor = 1;
    });
    let mut anon = r.client();
    assert!(anon.req("live", r#"{"kinds":[1,4]}"#).is_empty());
    let mut gone = r.client();
    assert!(gone.req("live", r#"{"kinds":[1]}"#).is_empty());
    // A clean close: once the relay ends the TCP connection, its close is on its way to
    // the monitor (sent before the socket is dropped).
    gone.ws.close(None).expect("close");
    let end = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < end,
            "the relay did not end the closed connection"
        );
        match gone.ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    // Behind the close: once this REQ is answered, the monitor has handled the close.
    assert!(anon
        .req("sync", &format!("{{\"ids\":[\"{}\"]}}", "0".repeat(64)))
        .is_empty());
    let (alice, bob) = (keys(77), keys(78));
    let dm = sign(&alice, now(), 4, &[vec!["p", &hex_of(&bob)]], "hi bob");
    let public = note(&alice, "public");
    let mut w = r.client();
    for e in [&dm, &public] {
        assert_eq!(w.publish(e)[2], true);
    }
    assert_eq!(next_events(&mut anon, "live", 1), [public.id_hex()]);
}

/// An initiator with an empty set: returns the ids the relay lists for `filter`.
fn negentropy_ids(c: &mut Client, sub: &str, filter: &str) -> BTreeSet<String> {
    let mut storage = NegentropyStorageVector::new();
    storage.seal().expect("seal");
    let mut neg = Negentropy::owned(storage, 0).expect("neg");
    let first = neg.initiate().expect("initiate");
    c.send(&format!(
        "[\"NEG-OPEN\",\"{sub}\",{filter},\"{}\"]",
        hex::encode(&first)
    ));
    let (mut have, mut need) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let m = c.until(|m| m[1] == sub).1;
        assert_eq!(m[0], "NEG-MSG", "{m}");
        let bytes = hex::decode_vec(m[2].as_str().expect("hex").as_bytes()).expect("hex");
        match neg
            .reconcile_with_ids(&bytes, &mut have, &mut need)
            .expect("reconcile")
        {
            Some(next) => c.send(&format!(
                "[\"NEG-MSG\",\"{sub}\",\"{}\"]",
                hex::encode(&next)
            )),
            None => {
                c.send(&format!("[\"NEG-CLOSE\",\"{sub}\"]"));
                assert!(have.is_empty());
                return need.iter().map(|i| hex::encode(i.as_bytes())).collect();
            }
        }
    }
    panic!("reconciliation does not converge");
}

#[test]
fn negentropy_never_lists_restricted_events_to_readers_who_may_not_read_them() {
    let (alice, bob, carol, wrapper) = (keys(65), keys(66), keys(67), keys(68));
    let bob_hex = hex_of(&bob);
    let t = now() - 100;
    let notes: Vec<Event> = (0..5)
        .map(|i| sign(&alice, t + i, 1, &[], &format!("public {i}")))
        .collect();
    let dm = sign(&alice, t + 10, 4, &[vec!["p", &bob_hex]], "hi bob");
    let wrap = sign(&wrapper, t + 11, 1059, &[vec!["p", &bob_hex]], "sealed");
    let mut all = notes.clone();
    all.extend([dm.clone(), wrap.clone()]);
    // Tree 1 (`{}`) holds all of them: it may serve only readers who may see everything.
    let r = TestRelay::with_store(
        |c| {
            c.relay.auth.service_url = SERVICE_URL.into();
            c.relay.auth.restricted_read_kinds = "4, 1059".into();
        },
        |s| {
            s.write_batch(&all).expect("write");
        },
    );
    let mut anon = r.client();
    assert_eq!(negentropy_ids(&mut anon, "n", "{}"), id_set(&notes));
    assert_eq!(
        negentropy_ids(&mut anon, "k", r#"{"kinds":[1,4,1059]}"#),
        id_set(&notes)
    );
    let mut third = r.client();
    common::authenticate(&mut third, &carol, SERVICE_URL);
    assert_eq!(negentropy_ids(&mut third, "n", "{}"), id_set(&notes));
    let mut recipient = r.client();
    common::authenticate(&mut recipient, &bob, SERVICE_URL);
    assert_eq!(negentropy_ids(&mut recipient, "n", "{}"), id_set(&all));
}

#[test]
fn stored_trees_serve_only_readers_who_may_see_all_of_them() {
    let (alice, bob, carol) = (keys(79), keys(80), keys(81));
    let t = now() - 100;
    let notes: Vec<Event> = (0..5)
        .map(|i| sign(&alice, t + i, 1, &[], &format!("public {i}")))
        .collect();
    let to_bob = sign(&alice, t + 10, 4, &[vec!["p", &hex_of(&bob)]], "hi bob");
    let to_carol = sign(&alice, t + 11, 4, &[vec!["p", &hex_of(&carol)]], "hi carol");
    let mut all = notes.clone();
    all.extend([to_bob.clone(), to_carol.clone()]);
    // maxSyncEvents 3 refuses a collected set of 5: only a tree can answer for the notes.
    let r = TestRelay::with_store(
        |c| {
            c.relay.auth.service_url = SERVICE_URL.into();
            c.relay.auth.restricted_read_kinds = "4, 1059".into();
            c.relay.negentropy.max_sync_events = 3;
        },
        |s| {
            s.write_batch(&all).expect("write");
            for f in [r#"{"kinds":[1]}"#, r#"{"kinds":[4]}"#] {
                let f = wok::nostr::JsonParser::new()
                    .parse(&mut f.as_bytes().to_vec(), |v| {
                        wok::nostr::Filter::from_json(v, 3)
                    })
                    .expect("json")
                    .expect("filter");
                let tree = s.add_tree(&f).expect("add tree");
                s.build_tree(tree).expect("build tree");
            }
        },
    );
    // No restricted kind in the filter: the tree serves anyone.
    let mut anon = r.client();
    assert_eq!(
        negentropy_ids(&mut anon, "n", r#"{"kinds":[1]}"#),
        id_set(&notes)
    );
    // A DM tree holds other people's DMs: Bob's set is collected, with his alone.
    let mut recipient = r.client();
    common::authenticate(&mut recipient, &bob, SERVICE_URL);
    assert_eq!(
        negentropy_ids(&mut recipient, "d", r#"{"kinds":[4]}"#),
        id_set([&to_bob])
    );
}

// ---- No gap, no duplicate between scan and live ----

/// Stored events of ~10 KB each, tagged `held`: 15 MB, far more than a small-window
/// client's socket buffers and the relay's send buffer and high-water mark hold, so a scan
/// over them cannot finish while that client does not read.
fn held_events() -> Vec<Event> {
    let k = keys(70);
    let pad = "h".repeat(10_000);
    let t = now() - 2000;
    (0..1500)
        .map(|i| sign(&k, t + i, 1, &[vec!["t", "held"]], &format!("{i}{pad}")))
        .collect()
}

/// One req-monitor, so a probe subscriber that receives an event proves that the monitor
/// of every other subscriber has processed it.
fn held_relay(stored: &[Event]) -> TestRelay {
    TestRelay::with_store(
        |c| {
            c.relay.num_threads.req_monitor = 1;
            c.relay.max_filter_limit = 5000;
        },
        |s| {
            s.write_batch(stored).expect("write");
        },
    )
}

/// Sends a REQ from a small-window client and reads only its first EVENT: the scan has
/// taken its snapshot, and it stays unfinished (so the subscription is not handed to the
/// monitor) until the client reads on.
fn held_scan(r: &TestRelay, sub: &str, filter: &str) -> (Client, String) {
    let mut c = small_window_client(&r.url);
    c.send(&format!("[\"REQ\",\"{sub}\",{filter}]"));
    let first = c.recv();
    assert_eq!(
        (first[0].as_str(), first[1].as_str()),
        (Some("EVENT"), Some(sub))
    );
    let id = first[2]["id"].as_str().unwrap_or_default().to_string();
    (c, id)
}

/// Reads the rest of a held scan: the stored ids (with the first one) up to EOSE.
fn rest_of_scan(c: &mut Client, sub: &str, first: String) -> Vec<String> {
    let mut ids = vec![first];
    loop {
        let m = c.recv();
        if m[0] == "EOSE" && m[1] == sub {
            return ids;
        }
        if m[0] == "EVENT" && m[1] == sub {
            ids.push(m[2]["id"].as_str().unwrap_or_default().to_string());
        }
    }
}

#[test]
fn the_replay_covers_the_gap_between_a_held_scan_and_live_exactly_once() {
    let stored = held_events();
    let r = held_relay(&stored);
    let mut probe = r.client();
    assert!(probe.req("probe", r##"{"#t":["new"]}"##).is_empty());
    let (mut s, first) = held_scan(&r, "s", r##"{"#t":["held"],"limit":5000}"##);
    // Committed after the scan's snapshot and processed by the monitor (the probe has them)
    // before the subscription reaches it: only the replay can deliver them.
    let k = keys(71);
    let new: Vec<Event> = (0..3)
        .map(|i| {
            sign(
                &k,
                now(),
                1,
                &[vec!["t", "held"], vec!["t", "new"]],
                &format!("n{i}"),
            )
        })
        .collect();
    // Committed in between too, but not matching the held REQ: never replayed to it.
    let other = sign(&k, now(), 1, &[vec!["t", "new"]], "not held");
    let mut w = r.client();
    for e in new.iter().chain([&other]) {
        assert_eq!(w.publish(e)[2], true);
    }
    let live: BTreeSet<String> = next_events(&mut probe, "probe", 4).into_iter().collect();
    assert_eq!(live, id_set(new.iter().chain([&other])));

    let scanned = rest_of_scan(&mut s, "s", first);
    assert_eq!(scanned.len(), stored.len(), "the scan sent an event twice");
    assert_eq!(
        scanned.iter().cloned().collect::<BTreeSet<_>>(),
        id_set(&stored)
    );
    // Live from here: the replay, then the marker, with nothing at or below the snapshot.
    let marker = sign(&k, now(), 1, &[vec!["t", "held"]], "marker");
    assert_eq!(w.publish(&marker)[2], true);
    let replayed = events_before(&mut s, "s", &marker);
    assert_eq!(replayed.len(), new.len(), "{replayed:?}");
    assert_eq!(replayed.into_iter().collect::<BTreeSet<_>>(), id_set(&new));
}

#[test]
fn restricted_kinds_never_leak_through_the_replay() {
    let stored = held_events();
    let r = held_relay(&stored);
    let mut probe = r.client();
    assert!(probe.req("probe", r##"{"#t":["new"]}"##).is_empty());
    // Unauthenticated, and its filter names no kind: allowed, with restricted kinds dropped.
    let (mut s, first) = held_scan(&r, "s", r##"{"#t":["held"],"limit":5000}"##);
    let (alice, bob, wrapper) = (keys(72), keys(73), keys(74));
    let bob_hex = hex_of(&bob);
    let tags = [vec!["t", "held"], vec!["t", "new"], vec!["p", &bob_hex]];
    let dm = sign(&alice, now(), 4, &tags, "hi bob");
    let wrap = sign(&wrapper, now(), 1059, &tags, "sealed");
    let public = sign(&alice, now(), 1, &tags, "public");
    let mut w = r.client();
    for e in [&dm, &wrap, &public] {
        assert_eq!(w.publish(e)[2], true);
    }
    // The probe (which may not read them either) gets the public note, committed last.
    assert_eq!(next_events(&mut probe, "probe", 1), [public.id_hex()]);

    assert_eq!(rest_of_scan(&mut s, "s", first).len(), stored.len());
    let marker = sign(&alice, now(), 1, &[vec!["t", "held"]], "marker");
    assert_eq!(w.publish(&marker)[2], true);
    assert_eq!(events_before(&mut s, "s", &marker), [public.id_hex()]);
}

#[test]
fn live_delivery_never_repeats_what_the_scan_sent() {
    let r = TestRelay::start();
    let store = r.relay.as_ref().expect("relay").store();
    let k = keys(75);
    let mut c = r.client();
    // Written behind the monitors' backs (as another process would): a monitor learns of it
    // from its 100 ms poll, or when a message wakes it, so the REQ's subscription reaches it
    // with a snapshot above what it has processed; the monitor then meets the event as new
    // and must not send it to the subscription whose scan already did. Several rounds, in
    // case a poll lands between a write and its REQ.
    for round in 0..5 {
        let e = sign(&k, now(), 1, &[], &format!("round {round}"));
        let out = store.write_batch(std::slice::from_ref(&e)).expect("write");
        assert!(matches!(out[0], wok::store::write::Outcome::Written(_)));
        let sub = format!("r{round}");
        let got = c.req(&sub, &format!("{{\"ids\":[\"{}\"]}}", e.id_hex()));
        assert_eq!(got.len(), 1);
        // The monitor sends live events and a later REQ's EOSE in order (one monitor per
        // connection): a live copy would arrive before this EOSE.
        let sync = format!("sync{round}");
        c.send(&format!(
            "[\"REQ\",\"{sync}\",{{\"ids\":[\"{}\"]}}]",
            "0".repeat(64)
        ));
        let (before, _) = c.until(|m| m[0] == "EOSE" && m[1] == sync.as_str());
        assert!(
            before.iter().all(|m| m[0] != "EVENT"),
            "sent again live: {before:?}"
        );
    }
}

// ---- maxPendingOutboundBytes ----

#[test]
fn a_live_subscriber_whose_backlog_passes_the_cap_is_dropped() {
    let r = TestRelay::with(|c| c.relay.max_pending_outbound_bytes = 256 * 1024);
    let name = "strfry_slow_client_terminations_total";
    let before = common::metric(&r.url, name);
    let mut slow = small_window_client(&r.url);
    assert!(slow.req("live", r#"{"kinds":[1]}"#).is_empty());
    // From here `slow` reads nothing: its live backlog grows with every event.
    let k = keys(76);
    let pad = "s".repeat(50_000);
    let mut w = r.client();
    let mut published = 0usize;
    while common::metric(&r.url, name) == before {
        // 30 MB: a few times what the sockets between us can hold.
        assert!(
            published < 600,
            "{published} events of 50 KB published to a subscriber that reads nothing, \
             which is still connected"
        );
        let batch: Vec<Event> = (0..10)
            .map(|i| sign(&k, now(), 1, &[], &format!("{published}.{i}{pad}")))
            .collect();
        for e in &batch {
            w.send_event(e);
        }
        let mut oks = 0;
        while oks < batch.len() {
            if w.recv()[0] == "OK" {
                oks += 1;
            }
        }
        published += batch.len();
    }
    assert_eq!(common::metric(&r.url, name), before + 1);
    // The relay closed the connection: what was in flight drains, then the stream ends.
    let end = Instant::now() + WAIT;
    loop {
        assert!(
            Instant::now() < end,
            "the slow subscriber is still connected"
        );
        match slow.ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    // Everyone else is still served.
    let after = note(&k, "after");
    assert_eq!(w.publish(&after)[2], true);
}
