//! The relay end to end: a real server on an ephemeral loopback port, spoken to over
//! WebSocket.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::time::Duration;

use common::*;

#[test]
fn publish_then_query_then_live() {
    let r = TestRelay::start();
    let mut a = r.client();
    let k = keys(1);
    let e1 = note(&k, "first");
    let ok = a.publish(&e1);
    assert_eq!(ok[2], true, "{ok}");
    assert_eq!(ok[3], "");
    let again = a.publish(&e1);
    assert_eq!(
        (again[2].clone(), again[3].clone()),
        (true.into(), "duplicate: have this event".into())
    );

    let mut b = r.client();
    b.send(r#"["REQ","s",{"kinds":[1]}]"#);
    // The stored canonical JSON is sent byte-for-byte.
    let want = format!("[\"EVENT\",\"s\",{}]", String::from_utf8_lossy(e1.json()));
    assert_eq!(b.recv_text_within(WAIT), Some(want));
    assert_eq!(b.recv_text_within(WAIT).as_deref(), Some(r#"["EOSE","s"]"#));

    let e2 = note(&k, "second");
    assert_eq!(a.publish(&e2)[2], true);
    let live = b.recv();
    assert_eq!(
        (live[0].clone(), live[1].clone(), live[2]["id"].clone()),
        ("EVENT".into(), "s".into(), e2.id_hex().into())
    );

    // CLOSE stops delivery: a later REQ's EOSE arrives with no EVENT for "s" before it.
    b.send(r#"["CLOSE","s"]"#);
    let e3 = note(&k, "third");
    assert_eq!(a.publish(&e3)[2], true);
    b.send(r#"["REQ","sync",{"ids":["0000000000000000000000000000000000000000000000000000000000000000"]}]"#);
    let (before, _) = b.until(|m| m[0] == "EOSE" && m[1] == "sync");
    assert!(before.iter().all(|m| m[1] != "s"), "{before:?}");
}

#[test]
fn refusals_have_strfry_strings() {
    let r = TestRelay::start();
    let mut c = r.client();
    let k = keys(2);
    let mut bad = note(&k, "x");
    bad.sig[3] ^= 1;
    let json = String::from_utf8_lossy(bad.json()).replace(
        &wok::nostr::hex::encode(&note(&k, "x").sig),
        &wok::nostr::hex::encode(&bad.sig),
    );
    c.send(&format!("[\"EVENT\",{json}]"));
    let ok = c.until(|m| m[0] == "OK").1;
    assert_eq!(
        (ok[2].clone(), ok[3].clone()),
        (false.into(), "invalid: bad signature".into())
    );

    let old = sign(&k, 1000, 1, &[], "ancient");
    assert_eq!(c.publish(&old)[3], "invalid: created_at too early");
    let future = sign(&k, now() + 3600, 1, &[], "future");
    assert_eq!(c.publish(&future)[3], "invalid: created_at too late");
    let expired = sign(&k, now(), 1, &[vec!["expiration", "1000"]], "gone");
    assert_eq!(c.publish(&expired)[3], "invalid: event expired");
    let protected = sign(&k, now(), 1, &[vec!["-"]], "mine");
    assert_eq!(
        c.publish(&protected)[3],
        "blocked: event marked as protected"
    );

    c.send("not json");
    assert_eq!(
        c.recv(),
        serde_json::json!(["NOTICE", "error: bad msg: unparseable message"])
    );
    c.send(r#"["FOO",1]"#);
    assert_eq!(
        c.recv(),
        serde_json::json!(["NOTICE", "error: bad msg: unknown cmd"])
    );
    c.send(r#"["REQ","s",{"bogus":1}]"#);
    assert_eq!(
        c.recv(),
        serde_json::json!([
            "CLOSED",
            "s",
            "error: bad req: unrecognised filter item: bogus"
        ])
    );
    c.send(r#"["REQ","s"]"#);
    assert_eq!(
        c.recv(),
        serde_json::json!(["CLOSED", "s", "error: bad req: arr too small"])
    );
    // The connection still works.
    assert!(c.req("ok", "{}").is_empty());
}

#[test]
fn ephemeral_is_live_only() {
    let r = TestRelay::start();
    let (mut sub, mut publ) = (r.client(), r.client());
    assert!(sub.req("e", r#"{"kinds":[20001]}"#).is_empty());
    let ev = sign(&keys(3), now(), 20001, &[], "typing");
    assert_eq!(publ.publish(&ev)[2], true);
    let got = sub.recv();
    assert_eq!(got[2]["id"], ev.id_hex());
    assert!(publ.req("again", r#"{"kinds":[20001]}"#).is_empty());
}

#[test]
fn limit_zero_and_count() {
    let r = TestRelay::start();
    let mut c = r.client();
    let k = keys(4);
    // One second apart, published oldest first: the newest two are the last two published.
    let t = now();
    let evs: Vec<_> = (0..5)
        .map(|i| sign(&k, t - 4 + i, 1, &[], &format!("n{i}")))
        .collect();
    for e in &evs {
        assert_eq!(c.publish(e)[2], true);
    }
    assert!(c.req("z", r#"{"limit":0}"#).is_empty());
    let two = c.req("two", r#"{"kinds":[1],"limit":2}"#);
    let ids: Vec<&str> = two.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids, [evs[4].id_hex(), evs[3].id_hex()]);
    c.send(r#"["COUNT","c",{"kinds":[1]}]"#);
    assert_eq!(c.recv(), serde_json::json!(["COUNT", "c", {"count": 5}]));
}

#[test]
fn oversize_message_closes_with_1009() {
    let r = TestRelay::with(|c| c.relay.max_websocket_payload_size = 1024);
    let mut c = r.client();
    c.send(&format!(
        "[\"REQ\",\"x\",{{\"#t\":[\"{}\"]}}]",
        "a".repeat(2000)
    ));
    let mut code = None;
    for _ in 0..50 {
        match c.ws.read() {
            Ok(tungstenite::Message::Close(f)) => {
                code = f.map(|f| u16::from(f.code));
                break;
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(_)) => {}
            Err(_) => break,
        }
    }
    assert_eq!(code, Some(1009));
}

#[test]
fn pipelined_events_all_get_ok() {
    let r = TestRelay::start();
    let mut c = r.client();
    let k = keys(5);
    let evs: Vec<_> = (0..1000)
        .map(|i| sign(&k, now(), 1, &[], &format!("p{i}")))
        .collect();
    for e in &evs {
        c.send_event(e);
    }
    let mut oks = HashSet::new();
    while oks.len() < evs.len() {
        let m = c.recv();
        assert_eq!(m[0], "OK");
        assert_eq!(m[2], true, "{m}");
        oks.insert(m[1].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(
        c.req("all", r#"{"kinds":[1],"limit":5000}"#).len(),
        500 // maxFilterLimit clamps the limit silently
    );
}

#[test]
fn no_gap_no_duplicate_under_concurrent_writes() {
    // Every event must come back, stored or live: lift the default 500 clamp.
    let r = TestRelay::with(|c| c.relay.max_filter_limit = 5000);
    let url = r.url.clone();
    let k = keys(6);
    let evs: Vec<_> = (0..600)
        .map(|i| sign(&k, now(), 1, &[vec!["t", "race"]], &format!("r{i}")))
        .collect();
    let want: HashSet<String> = evs.iter().map(|e| e.id_hex().to_string()).collect();
    let (progress, progress_rx) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let mut w = Client::connect(&url);
        for e in &evs {
            w.send_event(e);
        }
        let mut n = 0;
        while n < evs.len() {
            if w.recv()[0] == "OK" {
                n += 1;
                if n % 100 == 50 {
                    let _ = progress.send(n);
                }
            }
        }
    });
    // Subscribers join at several points while the writes are in flight, so some REQ is
    // likely to land on each side of a commit the monitor has already processed.
    let mut subs = Vec::new();
    for _ in 0..4 {
        progress_rx.recv_timeout(WAIT).expect("writes acknowledged");
        let mut s = r.client();
        s.send(r##"["REQ","race",{"#t":["race"],"limit":5000}]"##);
        subs.push(s);
    }
    for s in &mut subs {
        let mut got = Vec::new();
        while got.len() < want.len() {
            let m = s.recv();
            if m[0] == "EVENT" {
                got.push(m[2]["id"].as_str().unwrap_or_default().to_string());
            }
        }
        let unique: HashSet<String> = got.iter().cloned().collect();
        assert_eq!(unique.len(), got.len(), "duplicates delivered");
        assert_eq!(unique, want);
    }
    writer.join().expect("writer");
    for s in &mut subs {
        assert!(s
            .recv_within(Duration::from_millis(300))
            .is_none_or(|m| m[0] != "EVENT"));
    }
}

#[test]
fn nip11_and_cors_over_http() {
    let r = TestRelay::start();
    let addr = r.url.trim_start_matches("ws://").to_string();
    let get = |req: &str| {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        s.write_all(req.as_bytes()).expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    let doc =
        get("GET / HTTP/1.1\r\nHost: x\r\nAccept: text/html, application/nostr+json;q=0.9\r\n\r\n");
    assert!(
        doc.contains("Content-Type: application/nostr+json"),
        "{doc}"
    );
    assert!(doc.contains("Access-Control-Allow-Origin: *"));
    let body = doc.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(body).expect("nip11 json");
    assert_eq!(v["limitation"]["max_limit"], 500);
    assert!(v["supported_nips"]
        .as_array()
        .is_some_and(|a| a.contains(&1.into())));
    let pre = get("OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        pre.starts_with("HTTP/1.1 204") && pre.contains("Access-Control-Allow-Methods"),
        "{pre}"
    );
    let page = get("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(page.contains("text/html"));
    let mut c = r.client();
    assert_eq!(c.publish(&note(&keys(30), "counted"))[2], true);
    assert!(c.req("m", "{}").len() == 1);
    let metrics = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    for line in [
        "strfry_connections_current 1",
        "nostr_client_messages_total{verb=\"REQ\"} 1",
        "nostr_client_messages_total{verb=\"EVENT\"} 1",
        "nostr_relay_messages_total{verb=\"OK\"} 1",
        "nostr_relay_messages_total{verb=\"EOSE\"} 1",
        "nostr_events_total{kind=\"1\"} 1",
        "strfry_write_events_total 1",
    ] {
        assert!(metrics.contains(line), "missing {line}: {metrics}");
    }
}

#[test]
fn many_connections_each_with_a_req() {
    // 200 connections from one address at once: over the new-connection rate limit.
    let r = TestRelay::with(|c| c.relay.limits.enabled = false);
    let mut clients: Vec<Client> = (0..200).map(|_| r.client()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(&format!("[\"REQ\",\"s{i}\",{{\"kinds\":[1]}}]"));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let sub = format!("s{i}");
        c.until(|m| m[0] == "EOSE" && m[1] == sub.as_str());
    }
    let ev = note(&keys(7), "to all");
    let mut p = r.client();
    assert_eq!(p.publish(&ev)[2], true);
    for c in clients.iter_mut() {
        assert_eq!(c.recv()[2]["id"], ev.id_hex());
    }
}

#[test]
fn restricted_kinds_need_auth_and_involvement() {
    let url = "wss://relay.example.com";
    let r = TestRelay::with(|c| c.relay.auth.service_url = url.into());
    let (alice, bob, carol) = (keys(10), keys(11), keys(12));
    let bob_hex = wok::nostr::hex::encode(&bob.pubkey);
    let mut w = r.client();
    let dm_to_bob = sign(&alice, now(), 4, &[vec!["p", &bob_hex]], "hi bob");
    let dm_to_carol = sign(
        &alice,
        now(),
        4,
        &[vec!["p", &wok::nostr::hex::encode(&carol.pubkey)]],
        "hi carol",
    );
    assert_eq!(w.publish(&dm_to_bob)[2], true);
    assert_eq!(w.publish(&dm_to_carol)[2], true);

    let mut c = r.client();
    c.send(r#"["REQ","dm",{"kinds":[4]}]"#);
    let challenge = c.recv();
    assert_eq!(challenge[0], "AUTH");
    assert_eq!(
        c.recv(),
        serde_json::json!([
            "CLOSED",
            "dm",
            "auth-required: requested filter requires authentication"
        ])
    );
    // Mixed filters are allowed, but restricted events are filtered out.
    assert!(c.req("mixed", r#"{"kinds":[1,4]}"#).is_empty());

    let chal = challenge[1].as_str().unwrap_or_default().to_string();
    let wrong = sign(
        &bob,
        now(),
        22242,
        &[vec!["challenge", "nope"], vec!["relay", url]],
        "",
    );
    c.send(&format!(
        "[\"AUTH\",{}]",
        String::from_utf8_lossy(wrong.json())
    ));
    assert_eq!(c.recv()[3], "error: challenge string mismatch");
    let good = sign(
        &bob,
        now(),
        22242,
        &[
            vec!["challenge", &chal],
            vec!["relay", "wss://RELAY.example.com/"],
        ],
        "",
    );
    c.send(&format!(
        "[\"AUTH\",{}]",
        String::from_utf8_lossy(good.json())
    ));
    let ok = c.recv();
    assert_eq!(
        (ok[2].clone(), ok[3].clone()),
        (true.into(), "successfully authenticated".into())
    );
    // Bob sees only what involves him.
    let got = c.req("dm2", r#"{"kinds":[4]}"#);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["id"], dm_to_bob.id_hex());
    // Protected events: only their authenticated author may publish them.
    let mine = sign(&bob, now(), 1, &[vec!["-"]], "protected");
    assert_eq!(c.publish(&mine)[2], true);
    let theirs = sign(&alice, now(), 1, &[vec!["-"]], "not bob's");
    assert_eq!(
        c.publish(&theirs)[3],
        "restricted: must be published by the author"
    );
}

#[test]
fn nip11_lists_auth_only_when_configured() {
    let plain = wok::relay::nip11(&wok::config::Config::default());
    let v: serde_json::Value = serde_json::from_str(&plain).expect("json");
    assert!(
        v["supported_nips"]
            .as_array()
            .is_some_and(|a| !a.contains(&42.into()) && a.contains(&1.into())),
        "{plain}"
    );
    let mut cfg = wok::config::Config::default();
    cfg.relay.auth.service_url = "wss://x".into();
    let v: serde_json::Value = serde_json::from_str(&wok::relay::nip11(&cfg)).expect("json");
    assert!(v["supported_nips"]
        .as_array()
        .is_some_and(|a| a.contains(&42.into())));
}

#[test]
fn slow_reader_pauses_scans_instead_of_being_dropped() {
    // A backlog far above the cap: without back-pressure the relay would have to drop this
    // client; with it, the scan waits for the reader and everything arrives.
    let r = TestRelay::with(|c| {
        c.relay.max_pending_outbound_bytes = 256 * 1024;
        c.relay.max_filter_limit = 10_000;
    });
    let k = keys(20);
    let big = "x".repeat(4000);
    let mut w = r.client();
    let n = 3000;
    for i in 0..n {
        w.send_event(&sign(&k, now() - i, 1, &[], &format!("{i}{big}")));
    }
    let mut oks = 0;
    while oks < n {
        if w.recv()[0] == "OK" {
            oks += 1;
        }
    }
    let mut slow = r.client();
    slow.send(r#"["REQ","all",{"kinds":[1],"limit":10000}]"#);
    // Don't read for a while: ~12 MB wait on the relay side of the socket.
    std::thread::sleep(Duration::from_millis(1500));
    let mut got = 0;
    loop {
        let m = slow.recv();
        if m[0] == "EOSE" {
            break;
        }
        assert_eq!(m[0], "EVENT", "{m}");
        got += 1;
    }
    assert_eq!(got, n);
}

#[test]
fn writes_by_another_process_are_delivered_live() {
    let r = TestRelay::start();
    let mut sub = r.client();
    assert!(sub.req("ext", r#"{"kinds":[1]}"#).is_empty());
    let ev = note(&keys(21), "imported while the relay runs");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wok"))
        .args([
            "--set",
            &format!("db={}", r.dir.path().display()),
            // The same map size as the running relay (TestRelay uses 1 GiB).
            "--set",
            "dbParams.mapsize=1073741824",
            "import",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn import");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(ev.json()).expect("write");
    }
    assert!(child.wait().expect("wait").success());
    let got = sub.recv();
    assert_eq!(
        (got[0].clone(), got[1].clone(), got[2]["id"].clone()),
        ("EVENT".into(), "ext".into(), ev.id_hex().into())
    );
}

#[test]
fn a_client_vanishing_mid_req_harms_no_one() {
    let r = TestRelay::with(|c| c.relay.max_filter_limit = 5000);
    let k = keys(31);
    let mut w = r.client();
    let pad = "y".repeat(2000);
    for i in 0..800 {
        w.send_event(&sign(&k, now() - i, 1, &[], &format!("{i}{pad}")));
    }
    let mut oks = 0;
    while oks < 800 {
        if w.recv()[0] == "OK" {
            oks += 1;
        }
    }
    for _ in 0..20 {
        let mut gone = r.client();
        gone.send(r#"["REQ","big",{"kinds":[1],"limit":5000}]"#);
        drop(gone);
    }
    // Everyone else is still served, in full.
    let mut c = r.client();
    assert_eq!(c.req("after", r#"{"kinds":[1],"limit":5000}"#).len(), 800);
    let live = note(&k, "still live");
    let mut sub = r.client();
    assert!(sub
        .req(
            "l",
            r#"{"ids":["0000000000000000000000000000000000000000000000000000000000000000"]}"#
        )
        .is_empty());
    sub.send(&format!(
        "[\"REQ\",\"new\",{{\"ids\":[\"{}\"]}}]",
        live.id_hex()
    ));
    sub.until(|m| m[0] == "EOSE" && m[1] == "new");
    assert_eq!(w.publish(&live)[2], true);
    assert_eq!(sub.recv()[2]["id"], live.id_hex());
}

/// A write batch whose events are all refused (here an older version of a replaceable
/// event, sent after the newer one) is rolled back, not committed: no LMDB transaction, so
/// no page writes and no fsync. A flood of such events used to cost a disk flush per batch.
#[test]
fn a_batch_of_refused_events_commits_nothing() {
    let r = TestRelay::start();
    let mut c = r.client();
    let k = keys(7);
    let newer = sign(&k, now(), 0, &[], r#"{"name":"newer"}"#);
    let older = sign(&k, now() - 60, 0, &[], r#"{"name":"older"}"#);
    assert_eq!(c.publish(&newer)[2], true);
    let store = r.relay.as_ref().expect("relay").store();
    let txn_before = store.env().info().last_txn_id;
    let rolled = metric(&r.url, "wok_write_batches_rolled_back_total");
    for _ in 0..3 {
        let ok = c.publish(&older);
        assert_eq!(ok[2], false, "{ok}");
        assert!(
            ok[3].as_str().is_some_and(|m| m.starts_with("replaced:")),
            "{ok}"
        );
    }
    assert_eq!(
        store.env().info().last_txn_id,
        txn_before,
        "a batch of refused events committed a transaction"
    );
    assert_eq!(
        metric(&r.url, "wok_write_batches_rolled_back_total"),
        rolled + 3
    );
    // The writer goes on as before: the next new event is committed and served.
    let next = note(&k, "after");
    assert_eq!(c.publish(&next)[2], true);
    assert!(store.env().info().last_txn_id > txn_before);
    let ids = format!(r#"{{"ids":["{}","{}"]}}"#, older.id_hex(), next.id_hex());
    let got = c.req("s", &ids);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["id"], next.id_hex());
}

/// An event its author deleted, sent again, is refused by the ingester from the tombstone
/// (no signature check, no trip to the writer), with the writer's words; an event with a
/// forged id is still judged on its id.
#[test]
fn a_deleted_event_sent_again_is_refused_before_the_writer() {
    let r = TestRelay::start();
    let mut c = r.client();
    let k = keys(8);
    let ev = note(&k, "soon deleted");
    assert_eq!(c.publish(&ev)[2], true);
    let del = sign(&k, now(), 5, &[vec!["e", ev.id_hex()]], "");
    assert_eq!(c.publish(&del)[2], true);
    let batches = metric(&r.url, "wok_write_batches_total");
    for _ in 0..3 {
        let ok = c.publish(&ev);
        assert_eq!(ok[2], false, "{ok}");
        assert_eq!(ok[3], "deleted: user requested deletion", "{ok}");
    }
    assert_eq!(
        metric(&r.url, "wok_write_batches_total"),
        batches,
        "a deleted event went to the writer"
    );
    // The same id over other content is not the deleted event: its id is wrong.
    let forged = String::from_utf8_lossy(ev.json()).replace("soon deleted", "other words");
    c.send(&format!(r#"["EVENT",{forged}]"#));
    let id = ev.id_hex().to_string();
    let (_, ok) = c.until(|m| m[0] == "OK" && m[1] == id.as_str());
    assert!(
        ok[3].as_str().is_some_and(|m| m.starts_with("invalid:")),
        "{ok}"
    );
}
