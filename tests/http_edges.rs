//! The HTTP side refuses malformed WebSocket upgrades as RFC 6455 §4.2.1/§4.4 say (400, or
//! 426 naming version 13), and `/metrics` answers as `relay.metrics.*` allows.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::TestRelay;

/// Sends `head` (the request line and headers, without the blank line) and returns the
/// whole answer.
fn ask(r: &TestRelay, head: &str) -> String {
    let addr = r.url.trim_start_matches("ws://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(s, "{head}\r\n\r\n").expect("request");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // A 101 keeps the socket open: stop at the end of its head.
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if out.starts_with(b"HTTP/1.1 101") && out.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade(extra: &str) -> String {
    format!("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade{extra}")
}

#[test]
fn malformed_upgrades_are_refused() {
    let r = TestRelay::start();
    let ok = ask(
        &r,
        &upgrade(&format!(
            "\r\nHost: x\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}"
        )),
    );
    assert!(ok.starts_with("HTTP/1.1 101"), "{ok}");
    for (extra, want) in [
        // Version 8, or none: 426 naming 13.
        (
            format!("\r\nHost: x\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: {KEY}"),
            "426",
        ),
        (format!("\r\nHost: x\r\nSec-WebSocket-Key: {KEY}"), "426"),
        // No key, an empty one, one that is not 16 bytes.
        ("\r\nHost: x\r\nSec-WebSocket-Version: 13".to_owned(), "400"),
        (
            "\r\nHost: x\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ".to_owned(),
            "400",
        ),
        (
            "\r\nHost: x\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: abc".to_owned(),
            "400",
        ),
        // No Host.
        (
            format!("\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}"),
            "400",
        ),
    ] {
        let got = ask(&r, &upgrade(&extra));
        assert!(
            got.starts_with(&format!("HTTP/1.1 {want}")),
            "{extra:?}: {got}"
        );
        if want == "426" {
            assert!(got.contains("Sec-WebSocket-Version: 13\r\n"), "{got}");
        }
    }
}

#[test]
fn metrics_can_be_closed_or_guarded() {
    let get = |auth: &str| format!("GET /metrics HTTP/1.1\r\nHost: x{auth}");
    let open = TestRelay::start();
    assert!(ask(&open, &get("")).contains("strfry_slow_client_terminations_total"));

    let off = TestRelay::with(|c| c.relay.metrics.enabled = false);
    assert!(ask(&off, &get("")).starts_with("HTTP/1.1 404"));

    let guarded = TestRelay::with(|c| c.relay.metrics.bearer_token = "s3cret".into());
    let none = ask(&guarded, &get(""));
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    assert!(!none.contains("strfry_"), "{none}");
    assert!(ask(&guarded, &get("\r\nAuthorization: Bearer wrong!")).starts_with("HTTP/1.1 401"));
    let with = ask(&guarded, &get("\r\nAuthorization: Bearer s3cret"));
    assert!(with.starts_with("HTTP/1.1 200"), "{with}");
    assert!(with.contains("strfry_slow_client_terminations_total"));
}
