//! Claims the README makes about the relay (mostly its "Where wok deliberately differs from
//! strfry" table) that no other test checked, each against the real relay on 127.0.0.1.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{keys, now, sign, Client, TestRelay};
use negentropy::{Negentropy, NegentropyStorageVector};
use wok::nostr::{hex, Event};

/// `n` kind-1 events, one second apart, ending a minute ago (oldest first).
fn events(n: usize) -> Vec<Event> {
    let k = keys(60);
    let t0 = now() - 60 - n as u64;
    (0..n)
        .map(|i| sign(&k, t0 + i as u64, 1, &[], &format!("claim {i}")))
        .collect()
}

fn relay_holding(evs: &[Event], tweak: impl FnOnce(&mut wok::config::Config)) -> TestRelay {
    TestRelay::with_store(tweak, |s| {
        s.write_batch(evs).expect("write");
    })
}

/// The first NEG-OPEN message of a client holding nothing.
fn empty_initiator() -> (Negentropy<'static, NegentropyStorageVector>, String) {
    let mut storage = NegentropyStorageVector::new();
    storage.seal().expect("seal");
    let mut neg = Negentropy::owned(storage, 0).expect("neg");
    let first = hex::encode(&neg.initiate().expect("initiate"));
    (neg, first)
}

/// Reconciles as a client holding nothing: the ids the relay's set for `filter` holds, or
/// the NEG-ERR reason it answered with.
fn relay_set(c: &mut Client, sub: &str, filter: &str) -> Result<BTreeSet<[u8; 32]>, String> {
    let (mut neg, first) = empty_initiator();
    c.send(&format!("[\"NEG-OPEN\",\"{sub}\",{filter},\"{first}\"]"));
    let (mut have, mut need) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let m = c.recv();
        assert_eq!(m[1], sub, "{m}");
        if m[0] == "NEG-ERR" {
            return Err(m[2].as_str().expect("reason").to_owned());
        }
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
                return Ok(need.into_iter().map(|i| *i.as_bytes()).collect());
            }
        }
    }
    panic!("reconciliation does not converge");
}

fn ids(evs: &[Event]) -> BTreeSet<[u8; 32]> {
    evs.iter().map(|e| e.id).collect()
}

/// Opens session `sub` and reads the relay's first answer (a NEG-MSG): the session exists.
fn open_session(c: &mut Client, sub: &str) {
    let (_, first) = empty_initiator();
    c.send(&format!("[\"NEG-OPEN\",\"{sub}\",{{}},\"{first}\"]"));
    let m = c.recv();
    assert_eq!((&m[0], &m[1]), (&"NEG-MSG".into(), &sub.into()), "{m}");
}

/// Waits (bounded) for the NEG-ERR that frees an idle session `sub`.
fn await_idle_close(c: &mut Client, sub: &str) {
    let m = c
        .recv_within(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("session {sub} was never closed"));
    assert_eq!(
        m,
        serde_json::json!(["NEG-ERR", sub, "closed: idle timeout"])
    );
}

#[test]
fn idle_neg_sessions_are_closed_with_neg_err() {
    let evs = events(5);
    let r = relay_holding(&evs, |c| c.relay.negentropy.idle_timeout_seconds = 1);
    let mut c = r.client();
    let opened = Instant::now();
    open_session(&mut c, "idle");
    await_idle_close(&mut c, "idle");
    assert!(
        opened.elapsed() >= Duration::from_secs(1),
        "closed before it was idle for the timeout"
    );
    // It is gone: a NEG-MSG on it is refused, and the connection still works.
    let (_, first) = empty_initiator();
    c.send(&format!("[\"NEG-MSG\",\"idle\",\"{first}\"]"));
    assert_eq!(
        c.recv(),
        serde_json::json!(["NEG-ERR", "idle", "closed: unknown subscription handle"])
    );
    assert_eq!(c.req("r", "{}").len(), 5);
}

#[test]
fn the_idle_timeout_is_live_reloadable() {
    let r = relay_holding(&events(5), |_| {});
    let mut c = r.client();
    // Opened under the default (five minutes)...
    open_session(&mut c, "before");
    let mut cfg = wok::config::Config::default();
    cfg.relay.negentropy.idle_timeout_seconds = 1;
    r.relay.as_ref().expect("relay").reload(cfg);
    // ...and one opened after the reload: both are freed a second after their last use.
    open_session(&mut c, "after");
    let mut closed = BTreeSet::new();
    for _ in 0..2 {
        let m = c
            .recv_within(Duration::from_secs(10))
            .expect("sessions closed after the reload");
        assert_eq!(
            (&m[0], &m[2]),
            (&"NEG-ERR".into(), &"closed: idle timeout".into())
        );
        closed.insert(m[1].as_str().expect("sub").to_owned());
    }
    assert_eq!(closed, BTreeSet::from(["before".into(), "after".into()]));
}

#[test]
fn a_neg_open_limit_is_honoured_and_capped_at_max_sync_events_plus_one() {
    let evs = events(20);
    let r = relay_holding(&evs, |c| c.relay.negentropy.max_sync_events = 10);
    let mut c = r.client();
    // The newest `limit` events (strfry replaces the limit with maxSyncEvents + 1, which
    // here would refuse the session).
    assert_eq!(
        relay_set(&mut c, "a", r#"{"limit":5}"#),
        Ok(ids(&evs[15..]))
    );
    assert_eq!(
        relay_set(&mut c, "b", r#"{"limit":10}"#),
        Ok(ids(&evs[10..]))
    );
    // A larger limit is capped at maxSyncEvents + 1: one more than allowed, so refused,
    // never silently truncated to maxSyncEvents.
    for (sub, filter) in [("c", r#"{"limit":11}"#), ("d", r#"{"limit":1000}"#)] {
        assert_eq!(
            relay_set(&mut c, sub, filter),
            Err("blocked: too many query results".into()),
            "{filter}"
        );
    }
}

#[test]
fn kind_22242_sent_as_event_is_refused() {
    let r = TestRelay::start();
    let mut c = r.client();
    let auth = sign(
        &keys(61),
        now(),
        22242,
        &[vec!["relay", &r.url], vec!["challenge", "x"]],
        "",
    );
    let ok = c.publish(&auth);
    assert_eq!(
        ok,
        serde_json::json!([
            "OK",
            auth.id_hex(),
            false,
            "invalid: kind 22242 is only for AUTH"
        ])
    );
}

#[test]
fn count_over_max_filter_limit_count_is_approximate() {
    let evs = events(8);
    let r = relay_holding(&evs, |c| c.relay.max_filter_limit_count = 5);
    let mut c = r.client();
    c.send(r#"["COUNT","over",{}]"#);
    assert_eq!(
        c.recv_text_within(common::WAIT).as_deref(),
        Some(r#"["COUNT","over",{"count":5,"approximate":true}]"#)
    );
    // At the ceiling, not over it: exact.
    let since = evs[3].created_at;
    c.send(&format!("[\"COUNT\",\"at\",{{\"since\":{since}}}]"));
    assert_eq!(
        c.recv_text_within(common::WAIT).as_deref(),
        Some(r#"["COUNT","at",{"count":5}]"#)
    );
}

/// A client whose upgrade request carries `X-Forwarded-For: value`.
fn connect_forwarded(url: &str, value: &str) -> Client {
    use tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().expect("request");
    req.headers_mut()
        .insert("x-forwarded-for", value.parse().expect("header value"));
    let (mut ws, _) = tungstenite::connect(req).expect("connect");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
    }
    Client { ws }
}

#[test]
fn real_ip_header_takes_the_last_forwarded_entry() {
    use std::os::unix::fs::PermissionsExt;
    // The address the relay settled on is what the write-policy plugin is told
    // (sourceType, sourceInfo): this plugin refuses every event, naming them.
    let dir = tempfile::tempdir().expect("tmp");
    let plugin = dir.path().join("whois.py");
    std::fs::write(
        &plugin,
        r#"#!/usr/bin/env python3
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print(json.dumps({"id": r["event"]["id"], "action": "reject",
                      "msg": "blocked: " + r["sourceType"] + " " + r["sourceInfo"]}), flush=True)
"#,
    )
    .expect("plugin");
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let r = TestRelay::with(|c| {
        c.relay.real_ip_header = "x-forwarded-for".into();
        c.relay.write_policy.plugin = plugin.display().to_string();
        // A fresh Python on a loaded CI machine.
        c.relay.write_policy.timeout_seconds = 5;
    });
    let k = keys(62);
    for (header, seen) in [
        // The first entries are whatever the client claimed; the proxy appended the last.
        ("6.6.6.6, 2001:db8::1", "IP6 2001:db8::1"),
        ("10.0.0.1, 6.6.6.6 ,192.0.2.7:4711", "IP4 192.0.2.7"),
        ("[2001:db8::5]:443", "IP6 2001:db8::5"),
    ] {
        let mut c = connect_forwarded(&r.url, header);
        let ok = c.publish(&common::note(&k, header));
        assert_eq!(
            ok[3],
            format!("blocked: {seen}"),
            "X-Forwarded-For: {header}"
        );
    }
    // Without the header: the socket's address.
    let ok = r.client().publish(&common::note(&k, "direct"));
    assert_eq!(ok[3], "blocked: IP4 127.0.0.1");
}

#[test]
fn lone_surrogates_get_a_notice() {
    let r = TestRelay::start();
    let mut c = r.client();
    let notice = serde_json::json!([
        "NOTICE",
        "error: bad msg: invalid unicode (lone surrogates are not accepted)"
    ]);
    // An event (its id and signature do not matter: it is refused as it is parsed)...
    let ev = common::note(&keys(63), "placeholder");
    let json = String::from_utf8_lossy(ev.json()).replace("placeholder", r"a\ud800b");
    c.send(&format!("[\"EVENT\",{json}]"));
    assert_eq!(c.recv(), notice);
    // ...a filter, and a lone low surrogate.
    c.send(r##"["REQ","s",{"#t":["\udc00"]}]"##);
    assert_eq!(c.recv(), notice);
    // The connection goes on.
    assert!(c.req("t", r#"{"kinds":[7]}"#).is_empty());
}
