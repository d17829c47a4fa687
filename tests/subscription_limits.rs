//! Live subscriptions are bounded by what they hold: items per filter array
//! (`relay.maxFilterValues`), filter values per connection
//! (`relay.maxFilterValuesPerConnection`) and for the whole relay
//! (`relay.maxFilterValuesTotal`), with CLOSED reasons a client can act on and NIP-11
//! `limitation` fields.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{keys, sign, Client, TestRelay};
use serde_json::Value;

/// A filter on `n` distinct `#t` values (`t0`…), all prefixed by `p`.
fn tags(p: &str, n: usize) -> String {
    let vals: Vec<String> = (0..n).map(|i| format!("\"{p}{i}\"")).collect();
    format!("{{\"#t\":[{}]}}", vals.join(","))
}

/// Sends a REQ and returns its EOSE or CLOSED.
fn answer(c: &mut Client, sub: &str, filters: &str) -> Value {
    c.send(&format!("[\"REQ\",\"{sub}\",{filters}]"));
    c.until(|m| (m[0] == "EOSE" || m[0] == "CLOSED") && m[1] == sub)
        .1
}

#[test]
fn too_many_values_in_one_filter_is_a_bad_req() {
    let r = TestRelay::with(|c| c.relay.max_filter_values = 10);
    let mut c = r.client();
    assert_eq!(answer(&mut c, "ok", &tags("x", 10))[0], "EOSE");
    let m = answer(&mut c, "big", &tags("x", 11));
    assert_eq!(m[0], "CLOSED");
    assert_eq!(m[2], "error: bad req: too many values in #t (max 10)");
    // Every array counts, kinds included.
    let kinds: Vec<String> = (0..11).map(|k| k.to_string()).collect();
    let m = answer(&mut c, "k", &format!("{{\"kinds\":[{}]}}", kinds.join(",")));
    assert_eq!(m[2], "error: bad req: too many values in kinds (max 10)");
}

#[test]
fn a_connection_holds_at_most_its_share_of_filter_values() {
    let r = TestRelay::with(|c| c.relay.max_filter_values_per_connection = 100);
    let mut c = r.client();
    assert_eq!(answer(&mut c, "a", &tags("a", 60))[0], "EOSE");
    let m = answer(&mut c, "b", &tags("b", 50));
    assert_eq!(m[0], "CLOSED");
    let why = m[2].as_str().expect("reason");
    assert!(why.starts_with("rate-limited: "), "{why}");
    assert!(why.contains("110 filter values (max 100)"), "{why}");
    // A replacement that would not fit leaves the old subscription as it was.
    assert_eq!(answer(&mut c, "a", &tags("a", 101))[0], "CLOSED");
    let ev = sign(&keys(1), common::now(), 1, &[vec!["t", "a7"]], "still live");
    c.send_event(&ev);
    let (_, live) = c.until(|m| m[0] == "EVENT");
    assert_eq!(live[1], "a");
    // Closing gives the values back.
    c.send("[\"CLOSE\",\"a\"]");
    assert_eq!(answer(&mut c, "b", &tags("b", 50))[0], "EOSE");
    // Empty filters count one each: 60 of them do not fit beside b's 50.
    let empties = vec!["{}"; 60].join(",");
    assert_eq!(answer(&mut c, "c", &empties)[0], "CLOSED");
}

#[test]
fn the_relay_holds_at_most_its_total_of_filter_values() {
    let r = TestRelay::with(|c| c.relay.max_filter_values_total = 100);
    let mut first = r.client();
    let mut second = r.client();
    assert_eq!(answer(&mut first, "a", &tags("a", 80))[0], "EOSE");
    let m = answer(&mut second, "b", &tags("b", 30));
    assert_eq!(m[0], "CLOSED");
    assert!(
        m[2].as_str().expect("reason").starts_with("rate-limited: "),
        "{m}"
    );
    // Values come back when a subscription closes and when a connection goes
    // (asynchronously, maybe through another req-worker: retried, bounded).
    first.send("[\"CLOSE\",\"a\"]");
    eventually(&mut second, "b", &tags("b", 30));
    assert_eq!(answer(&mut first, "a", &tags("a", 70))[0], "EOSE");
    assert_eq!(answer(&mut second, "c", &tags("c", 1))[0], "CLOSED");
    drop(first);
    eventually(&mut second, "c", &tags("c", 1));
}

/// Repeats a REQ until it gets EOSE (at most 10 s).
fn eventually(c: &mut Client, sub: &str, filters: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let m = answer(c, sub, filters);
        if m[0] == "EOSE" {
            return;
        }
        assert!(Instant::now() < end, "values never came back: {m}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn nip11_tells_clients_the_limits() {
    let r = TestRelay::start();
    let addr = r.url.trim_start_matches("ws://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nAccept: application/nostr+json\r\n\
         Connection: close\r\n\r\n"
    )
    .expect("request");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let body = resp.split("\r\n\r\n").nth(1).expect("body");
    let doc: Value = serde_json::from_str(body).expect("NIP-11 JSON");
    assert_eq!(doc["limitation"]["max_filter_values"], 5000);
    assert_eq!(doc["limitation"]["max_filter_values_per_connection"], 50000);
}
