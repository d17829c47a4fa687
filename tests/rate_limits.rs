//! Rate limits (`relay.limits.*`) against a real relay: each limit triggers and recovers,
//! connections are refused with 429 before the upgrade, repeat offenders are disconnected
//! and cooled down, exemptions, separate source addresses (127.0.0.2 / 127.0.0.3, bound on
//! the client side), and the real-IP header.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{keys, metric, note, Client, TestRelay, WAIT};
use tungstenite::stream::MaybeTlsStream;
use wok::config::Config;

/// How long a limit may take to recover before the test fails.
const RECOVER: Duration = Duration::from_secs(10);

/// Small limits on everything a test does not look at are off, so each test sees one limit.
fn quiet(c: &mut Config) {
    let l = &mut c.relay.limits;
    l.events_per_second_per_ip = 0;
    l.events_per_second_per_pubkey = 0;
    l.reqs_per_second_per_ip = 0;
    l.reqs_per_second_per_pubkey = 0;
    l.neg_opens_per_second_per_ip = 0;
    l.neg_opens_per_second_per_pubkey = 0;
    l.new_connections_per_second_per_ip = 0;
    l.violations_before_disconnect = 0;
}

/// A config to reload (keys that need a restart keep their running values).
fn live(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::default();
    f(&mut c);
    c
}

fn addr(url: &str) -> SocketAddr {
    url.trim_start_matches("ws://").parse().expect("addr")
}

/// A TCP connection to the relay from source address `src`.
fn tcp_from(url: &str, src: &str) -> TcpStream {
    let sa = addr(url);
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let local: SocketAddr = format!("{src}:0").parse().expect("src");
    sock.bind(&local.into()).expect("bind");
    sock.connect(&sa.into()).expect("connect");
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

/// A WebSocket client connected from `src`.
fn client_from(url: &str, src: &str) -> Client {
    let s = tcp_from(url, src);
    let (ws, _) = tungstenite::client::client(url, MaybeTlsStream::Plain(s)).expect("ws handshake");
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
    }
    Client { ws }
}

/// Tries a WebSocket upgrade from `src` with `extra` header lines: the response head (the
/// connection closes at once).
fn upgrade_head(url: &str, src: &str, extra: &str) -> String {
    upgrade(url, src, extra).0
}

/// The same, keeping the connection.
fn upgrade(url: &str, src: &str, extra: &str) -> (String, TcpStream) {
    let mut s = tcp_from(url, src);
    let host = url.trim_start_matches("ws://");
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
    .expect("request");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    (String::from_utf8_lossy(&head).into_owned(), s)
}

fn ok_of(c: &mut Client, i: usize) -> serde_json::Value {
    c.publish(&note(&keys(1), &format!("note {i} {:?}", Instant::now())))
}

fn refused(ok: &serde_json::Value) -> bool {
    ok[2] == false
        && ok[3]
            .as_str()
            .is_some_and(|m| m.starts_with("rate-limited:"))
}

#[test]
fn events_per_ip_trigger_and_recover() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.limits.events_per_second_per_ip = 5;
        c.relay.limits.events_burst_per_ip = 3;
    });
    let mut c = client_from(&relay.url, "127.0.0.1");
    for i in 0..3 {
        assert_eq!(ok_of(&mut c, i)[2], true);
    }
    let ok = ok_of(&mut c, 3);
    assert!(refused(&ok), "{ok}");
    assert!(
        ok[3].as_str().unwrap_or("").contains("EVENTs from your IP"),
        "{ok}"
    );
    assert!(metric(&relay.url, "wok_rate_limited_total{limit=\"events_ip\"}") >= 1);
    let mut i = 10;
    assert!(
        common::eventually(RECOVER, || {
            i += 1;
            ok_of(&mut c, i)[2] == true
        }),
        "the bucket never refilled"
    );
}

#[test]
fn reqs_and_counts_per_ip_trigger_and_recover() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.limits.reqs_per_second_per_ip = 5;
        c.relay.limits.reqs_burst_per_ip = 2;
    });
    let mut c = client_from(&relay.url, "127.0.0.1");
    c.req("a", "{}");
    c.send(r#"["COUNT","b",{}]"#);
    assert_eq!(c.recv()[0], "COUNT");
    c.send(r#"["REQ","c",{}]"#);
    let m = c.recv();
    assert_eq!(m[0], "CLOSED", "{m}");
    assert!(
        m[2].as_str()
            .unwrap_or("")
            .starts_with("rate-limited: too many REQs"),
        "{m}"
    );
    assert!(common::eventually(RECOVER, || {
        c.send(r#"["REQ","d",{}]"#);
        c.recv()[0] == "EOSE"
    }));
}

#[test]
fn neg_opens_per_ip_trigger_and_recover() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.limits.neg_opens_per_second_per_ip = 5;
        c.relay.limits.neg_opens_burst_per_ip = 1;
    });
    let mut c = client_from(&relay.url, "127.0.0.1");
    let open = |c: &mut Client, sub: &str| {
        c.send(&format!(r#"["NEG-OPEN","{sub}",{{}},"6100000200"]"#));
        c.until(|m| m[1] == sub).1
    };
    let first = open(&mut c, "n1");
    assert_eq!(first[0], "NEG-MSG", "{first}");
    let second = open(&mut c, "n2");
    assert_eq!(second[0], "NEG-ERR", "{second}");
    assert!(
        second[2]
            .as_str()
            .unwrap_or("")
            .starts_with("rate-limited:"),
        "{second}"
    );
    let mut n = 2;
    assert!(common::eventually(RECOVER, || {
        n += 1;
        open(&mut c, &format!("n{n}"))[0] == "NEG-MSG"
    }));
}

#[test]
fn subscriptions_per_ip_across_connections() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.limits.max_subscriptions_per_ip = 3;
    });
    let mut a = client_from(&relay.url, "127.0.0.1");
    let mut b = client_from(&relay.url, "127.0.0.1");
    a.req("a1", "{}");
    a.req("a2", "{}");
    b.req("b1", "{}");
    // Replacing an open subscription takes no new place.
    b.req("b1", r#"{"kinds":[1]}"#);
    b.send(r#"["REQ","b2",{}]"#);
    let m = b.until(|m| m[1] == "b2").1;
    assert_eq!(m[0], "CLOSED", "{m}");
    assert!(
        m[2].as_str().unwrap_or("").contains("subscriptions open"),
        "{m}"
    );
    // Another IP is not affected.
    let mut other = client_from(&relay.url, "127.0.0.2");
    other.req("o1", "{}");
    // A closed subscription, and a closed connection, give their places back.
    a.send(r#"["CLOSE","a1"]"#);
    assert!(common::eventually(RECOVER, || {
        b.send(r#"["REQ","b2",{}]"#);
        b.until(|m| m[1] == "b2").1[0] == "EOSE"
    }));
    drop(a);
    assert!(common::eventually(RECOVER, || {
        b.send(r#"["REQ","b3",{}]"#);
        b.until(|m| m[1] == "b3").1[0] == "EOSE"
    }));
}

#[test]
fn connections_per_ip_get_429_before_the_upgrade() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.limits.max_connections_per_ip = 2;
    });
    let a = client_from(&relay.url, "127.0.0.1");
    let _b = client_from(&relay.url, "127.0.0.1");
    let head = upgrade_head(&relay.url, "127.0.0.1", "");
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    assert!(head.contains("Retry-After: "), "{head}");
    // Another address still connects.
    assert!(upgrade_head(&relay.url, "127.0.0.2", "").starts_with("HTTP/1.1 101"));
    assert_eq!(
        metric(
            &relay.url,
            "wok_rate_limited_total{limit=\"connections_ip\"}"
        ),
        1
    );
    drop(a);
    assert!(common::eventually(RECOVER, || upgrade_head(
        &relay.url,
        "127.0.0.1",
        ""
    )
    .starts_with("HTTP/1.1 101")));
}

#[test]
fn new_connections_per_second_recover() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.limits.new_connections_per_second_per_ip = 2;
        c.relay.limits.new_connections_burst_per_ip = 2;
    });
    for _ in 0..2 {
        assert!(upgrade_head(&relay.url, "127.0.0.1", "").starts_with("HTTP/1.1 101"));
    }
    let head = upgrade_head(&relay.url, "127.0.0.1", "");
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    assert!(head.contains("Retry-After: 1\r\n"), "{head}");
    assert!(common::eventually(RECOVER, || upgrade_head(
        &relay.url,
        "127.0.0.1",
        ""
    )
    .starts_with("HTTP/1.1 101")));
}

#[test]
fn repeat_offender_is_disconnected_and_cooled_down() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.limits.events_per_second_per_ip = 1;
        c.relay.limits.events_burst_per_ip = 1;
        c.relay.limits.violations_before_disconnect = 3;
        c.relay.limits.violation_window_seconds = 60;
        c.relay.limits.cooldown_seconds = 1;
        c.relay.limits.max_cooldown_seconds = 30;
    });
    let push: Vec<_> = (0..10)
        .map(|i| note(&keys(2), &format!("push {i}")))
        .collect();
    let mut c = client_from(&relay.url, "127.0.0.2");
    for ev in &push {
        let text = format!("[\"EVENT\",{}]", String::from_utf8_lossy(ev.json()));
        if c.ws.send(tungstenite::Message::text(text)).is_err() {
            break;
        }
    }
    assert_eq!(common::closed_by_relay(&mut c.ws), Some(Some(1008)));
    assert_eq!(metric(&relay.url, "wok_rate_limit_disconnects_total"), 1);
    let head = upgrade_head(&relay.url, "127.0.0.2", "");
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");
    assert!(head.contains("Retry-After: "), "{head}");
    assert_eq!(
        metric(&relay.url, "wok_rate_limited_total{limit=\"cooldown\"}"),
        1
    );
    // Other addresses are not cooled down.
    assert!(upgrade_head(&relay.url, "127.0.0.3", "").starts_with("HTTP/1.1 101"));
    // The cooldown ends.
    assert!(common::eventually(RECOVER, || upgrade_head(
        &relay.url,
        "127.0.0.2",
        ""
    )
    .starts_with("HTTP/1.1 101")));
    // A second offence: a longer cooldown (2 s), shown as Retry-After.
    // Signed first, then sent back to back; the relay may close while they are still
    // going out, so a refused write is part of what is tested, not a failure.
    let again: Vec<_> = (0..10)
        .map(|i| note(&keys(2), &format!("again {i}")))
        .collect();
    let mut c = client_from(&relay.url, "127.0.0.2");
    for ev in &again {
        let text = format!("[\"EVENT\",{}]", String::from_utf8_lossy(ev.json()));
        if c.ws.send(tungstenite::Message::text(text)).is_err() {
            break;
        }
    }
    assert_eq!(common::closed_by_relay(&mut c.ws), Some(Some(1008)));
    let head = upgrade_head(&relay.url, "127.0.0.2", "");
    assert!(
        head.contains("Retry-After: 2\r\n") || head.contains("Retry-After: 3\r\n"),
        "{head}"
    );
}

/// Malformed messages are violations: a garbage flood (which no rate sees, each message
/// only earning a NOTICE) is disconnected and its IP cooled down; a client that sends one
/// now and then is not, and the limits switched off leave even the flood connected.
#[test]
fn a_malformed_flood_is_disconnected_and_cooled_down() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.limits.violations_before_disconnect = 5;
        c.relay.limits.violation_window_seconds = 60;
        c.relay.limits.cooldown_seconds = 30;
    });
    // Four bad messages: answered, still connected.
    let mut polite = client_from(&relay.url, "127.0.0.3");
    for _ in 0..4 {
        polite.send("x");
        assert_eq!(polite.recv()[0], "NOTICE");
    }
    assert!(polite.req("ok", "{}").is_empty(), "still served");
    // A flood of them from another address: closed after the fifth, the address refused.
    let mut c = client_from(&relay.url, "127.0.0.2");
    for _ in 0..20 {
        c.send(r#"["WHAT","is this"]"#);
    }
    assert_eq!(common::closed_by_relay(&mut c.ws), Some(Some(1008)));
    assert!(metric(&relay.url, "wok_rate_limited_total{limit=\"malformed\"}") >= 5);
    let head = upgrade_head(&relay.url, "127.0.0.2", "");
    assert!(head.starts_with("HTTP/1.1 429"), "{head}");

    let off = TestRelay::with(|c| {
        c.relay.limits.enabled = false;
        c.relay.limits.violations_before_disconnect = 5;
    });
    let mut c = client_from(&off.url, "127.0.0.2");
    for _ in 0..20 {
        c.send("x");
    }
    for _ in 0..20 {
        assert_eq!(c.recv()[0], "NOTICE");
    }
    assert!(c.req("ok", "{}").is_empty(), "limits off: still served");
}

/// A flooder closed for violations is not read for the whole closing grace (5 s): its
/// connection ends as soon as our close is out, even while it keeps writing and never
/// answers the close (its writes then fail: the socket is gone).
#[test]
fn a_flooder_closed_for_violations_is_dropped_at_once() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.limits.violations_before_disconnect = 5;
        c.relay.limits.violation_window_seconds = 60;
    });
    let (head, mut s) = upgrade(&relay.url, "127.0.0.2", "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    // A masked text frame holding "x": not a Nostr message.
    let mask = [1u8, 2, 3, 4];
    let frame = [
        0x81,
        0x81,
        mask[0],
        mask[1],
        mask[2],
        mask[3],
        b'x' ^ mask[0],
    ];
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    let ended = loop {
        if start.elapsed() > Duration::from_secs(10) {
            break false;
        }
        if s.write_all(&frame).is_err() {
            break true;
        }
        match s.read(&mut buf) {
            // The relay's half-close after its close frame: it may still be reading, so
            // keep writing until a write fails (the relay dropped the socket), paced.
            Ok(0) => std::thread::sleep(Duration::from_millis(1)),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break true,
        }
    };
    let took = start.elapsed();
    assert!(ended, "still open after {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "ended after {took:?}, the grace is 5 s"
    );
}

#[test]
fn exempt_cidrs_and_loopback() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.limits.events_per_second_per_ip = 1;
        c.relay.limits.events_burst_per_ip = 1;
        c.relay.limits.exempt_cidrs = "10.0.0.0/8, 127.0.0.2/32".into();
    });
    let mut exempt = client_from(&relay.url, "127.0.0.2");
    for i in 0..5 {
        assert_eq!(ok_of(&mut exempt, i)[2], true);
    }
    let mut limited = client_from(&relay.url, "127.0.0.3");
    assert_eq!(ok_of(&mut limited, 0)[2], true);
    assert!(refused(&ok_of(&mut limited, 1)));
    // exemptLoopback, live: applies to the next connection.
    let mut cfg = live(quiet);
    cfg.relay.limits.events_per_second_per_ip = 1;
    cfg.relay.limits.events_burst_per_ip = 1;
    cfg.relay.limits.exempt_cidrs = "10.0.0.0/8, 127.0.0.2/32".into();
    cfg.relay.limits.exempt_loopback = true;
    relay.relay.as_ref().expect("relay").reload(cfg);
    assert!(common::eventually(RECOVER, || {
        let mut c = client_from(&relay.url, "127.0.0.3");
        (0..3).all(|i| ok_of(&mut c, 100 + i)[2] == true)
    }));
}

#[test]
fn source_addresses_are_limited_independently() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.limits.events_per_second_per_ip = 1;
        c.relay.limits.events_burst_per_ip = 2;
    });
    let mut a = client_from(&relay.url, "127.0.0.2");
    let mut b = client_from(&relay.url, "127.0.0.3");
    assert_eq!(ok_of(&mut a, 0)[2], true);
    assert_eq!(ok_of(&mut a, 1)[2], true);
    assert!(refused(&ok_of(&mut a, 2)));
    assert_eq!(ok_of(&mut b, 3)[2], true);
    assert_eq!(ok_of(&mut b, 4)[2], true);
}

#[test]
fn real_ip_header_is_the_address_limited() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.real_ip_header = "x-forwarded-for".into();
        c.relay.limits.max_connections_per_ip = 1;
    });
    let xff = |ip: &str| format!("X-Forwarded-For: 6.6.6.6, {ip}\r\n");
    let (first, _kept) = upgrade(&relay.url, "127.0.0.1", &xff("10.1.1.1"));
    assert!(first.starts_with("HTTP/1.1 101"), "{first}");
    let again = upgrade_head(&relay.url, "127.0.0.1", &xff("10.1.1.1"));
    assert!(again.starts_with("HTTP/1.1 429"), "{again}");
    // The same socket address, another client behind the proxy.
    let other = upgrade_head(&relay.url, "127.0.0.1", &xff("10.1.1.2"));
    assert!(other.starts_with("HTTP/1.1 101"), "{other}");
}

#[test]
fn inbound_bytes_are_paced_not_refused() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.limits.bytes_per_second_per_ip = 20_000;
        c.relay.limits.bytes_burst_per_ip = 2_000;
    });
    let mut c = client_from(&relay.url, "127.0.0.2");
    let big = "x".repeat(1_000);
    let evs: Vec<_> = (0..40)
        .map(|i| note(&keys(3), &format!("{i} {big}")))
        .collect();
    let t = Instant::now();
    for ev in &evs {
        c.send_event(ev);
    }
    for ev in &evs {
        let id = ev.id_hex().to_string();
        let ok = c.until(|m| m[0] == "OK" && m[1] == id.as_str()).1;
        assert_eq!(ok[2], true, "{ok}");
    }
    // ~56 KB at 20 KB/s after a 2 KB burst: over 2 s (without the limit, milliseconds).
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert!(metric(&relay.url, "wok_rate_limited_total{limit=\"bytes_paused\"}") >= 1);
}

#[test]
fn switched_off_live_and_shown_in_nip11() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.limits.events_per_second_per_ip = 1;
        c.relay.limits.events_burst_per_ip = 1;
    });
    let nip11 = || common::nip11_of(&relay.url);
    let doc = nip11();
    assert_eq!(doc["limitation"]["events_per_second"], 1, "{doc}");
    assert_eq!(doc["limitation"]["max_connections_per_ip"], 200, "{doc}");
    let mut c = client_from(&relay.url, "127.0.0.1");
    assert_eq!(ok_of(&mut c, 0)[2], true);
    assert!(refused(&ok_of(&mut c, 1)));
    let r = relay.relay.as_ref().expect("relay");
    let mut cfg = live(quiet);
    cfg.relay.limits.enabled = false;
    r.reload(cfg);
    // Per check: the open connection is no longer limited.
    for i in 2..10 {
        assert_eq!(ok_of(&mut c, i)[2], true);
    }
    assert!(nip11()["limitation"].get("events_per_second").is_none());
}

#[test]
fn loopback_is_not_exempt_by_default() {
    let relay = TestRelay::with(|c| {
        quiet(c);
        c.relay.limits.events_per_second_per_ip = 1;
        c.relay.limits.events_burst_per_ip = 1;
    });
    let ip: IpAddr = "127.0.0.1".parse().expect("ip");
    assert!(ip.is_loopback());
    let mut c = relay.client();
    assert_eq!(ok_of(&mut c, 0)[2], true);
    assert!(refused(&ok_of(&mut c, 1)));
}
