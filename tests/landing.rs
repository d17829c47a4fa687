//! What a new operator and their visitors see first: NIP-11 from wok's own default config
//! and from strfry's, the HTML page a browser gets, and the `/status` JSON behind its live
//! panel. (The page's script in a real browser: `tests/landing_browser.rs`.)

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{keys, note, TestRelay, WAIT};
use wok::config::{load_source, ConfigSource, Loaded};

/// A relay running `loaded`'s config (on an ephemeral port, with a temp DB).
fn relay_with(loaded: Loaded) -> TestRelay {
    TestRelay::with(move |c| {
        *c = loaded.config;
        c.relay.port = 0;
    })
}

/// One plain HTTP request; the response's head and body.
fn get(r: &TestRelay, path: &str, headers: &str) -> (String, String) {
    let addr = r.url.trim_start_matches("ws://");
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read response");
    let (head, body) = out.split_once("\r\n\r\n").expect("a head and a body");
    (head.to_owned(), body.to_owned())
}

fn nip11(r: &TestRelay) -> serde_json::Value {
    let (head, body) = get(r, "/", "Accept: application/nostr+json\r\n");
    assert!(
        head.contains("Content-Type: application/nostr+json"),
        "{head}"
    );
    serde_json::from_str(&body).expect("NIP-11 JSON")
}

fn nips(doc: &serde_json::Value) -> Vec<u64> {
    doc["supported_nips"]
        .as_array()
        .expect("supported_nips")
        .iter()
        .map(|n| n.as_u64().expect("a number"))
        .collect()
}

#[test]
fn nip11_from_the_embedded_default_names_wok() {
    let loaded = load_source(&ConfigSource::Embedded, &[]).expect("embedded config");
    let r = relay_with(loaded);
    let doc = nip11(&r);
    assert_eq!(doc["name"], "wok");
    assert_eq!(doc["description"], "A Nostr relay running wok.");
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
    // No serviceUrl, so AUTH cannot succeed: no NIP-42, and DMs and gift wraps (restricted
    // to authenticated readers by default) cannot be fetched, so no NIP-04 or NIP-59.
    assert_eq!(nips(&doc), [1, 2, 9, 11, 28, 40, 45, 70, 77]);
}

#[test]
fn nip11_with_auth_lists_what_auth_enables() {
    let loaded = load_source(
        &ConfigSource::Embedded,
        &["relay.auth.serviceUrl=wss://relay.example.com".into()],
    )
    .expect("embedded config");
    let r = relay_with(loaded);
    assert_eq!(
        nips(&nip11(&r)),
        [1, 2, 4, 9, 11, 28, 40, 42, 45, 59, 70, 77]
    );
    // Kinds nobody restricts can be read without AUTH; switched-off features go away.
    let mut cfg = wok::config::Config::default();
    cfg.relay.auth.restricted_read_kinds = String::new();
    cfg.relay.max_filter_limit_count = 0;
    cfg.relay.negentropy.enabled = false;
    cfg.search.enabled = false;
    let doc: serde_json::Value =
        serde_json::from_str(&wok::relay::nip11(&cfg)).expect("NIP-11 JSON");
    assert_eq!(nips(&doc), [1, 2, 4, 9, 11, 28, 40, 59, 70]);
}

#[test]
fn nip11_from_strfrys_config_keeps_its_words() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/strfry.conf");
    let loaded = load_source(&ConfigSource::File(path), &[]).expect("strfry.conf");
    let r = relay_with(loaded);
    let doc = nip11(&r);
    assert_eq!(doc["name"], "strfry default");
    assert_eq!(doc["description"], "This is a strfry instance.");
}

#[test]
fn browser_gets_the_landing_page() {
    let r = TestRelay::with(|c| {
        c.relay.info.name = "Kitchen <relay>".into();
        c.relay.info.contact = "ops@example.com".into();
    });
    let accept = "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n";
    let (head, page) = get(&r, "/", accept);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        head.contains("Content-Security-Policy: default-src 'none'"),
        "{head}"
    );
    // The name (escaped), the address to paste into a client, the NIPs, the limits.
    assert!(page.contains("<h1 id=\"name\">Kitchen &lt;relay&gt;</h1>"));
    assert!(
        page.contains(&format!(">{}<", r.url)),
        "no {} in the page",
        r.url
    );
    for nip in ["NIP-01", "NIP-11", "NIP-45", "NIP-77"] {
        assert!(page.contains(&format!("<b>{nip}</b>")), "no {nip}");
    }
    assert!(page.contains("<td>Events per filter</td><td>500</td>"));
    assert!(page.contains("href=\"mailto:ops@example.com\""));
    // Nothing is loaded from elsewhere: the only src/href targets are links and data.
    for attr in ["src=\"http", "<link rel=\"stylesheet\"", "<script src"] {
        assert!(!page.contains(attr), "external asset: {attr}");
    }
    // Behind a TLS proxy, the address is wss://.
    let (_, page) = get(&r, "/", "X-Forwarded-Proto: https\r\n");
    let host = r.url.trim_start_matches("ws://");
    assert!(page.contains(&format!(">wss://{host}<")));
}

fn status(r: &TestRelay) -> serde_json::Value {
    let (head, body) = get(r, "/status", "");
    assert!(head.contains("Content-Type: application/json"), "{head}");
    assert!(head.contains("Cache-Control: no-store"), "{head}");
    serde_json::from_str(&body).expect("status JSON")
}

#[test]
fn status_counts_what_happens() {
    let r = TestRelay::start();
    let before = status(&r);
    for k in [
        "connections",
        "events_in",
        "events_out",
        "reqs",
        "events_written",
        "stored_events",
        "db_bytes",
        "uptime_ms",
    ] {
        assert!(before[k].is_u64(), "{k} missing in {before}");
    }
    assert_eq!(before["stored_events"], 0);
    assert_eq!(before["connections"], 0);

    let mut c = r.client();
    let mut sub = r.client();
    sub.req("live", "{\"kinds\":[1]}");
    for i in 0..3 {
        assert_eq!(c.publish(&note(&keys(40), &format!("status {i}")))[2], true);
    }
    // Counters are updated by other threads than the ones that answered: poll, bounded.
    let end = Instant::now() + WAIT;
    let after = loop {
        let s = status(&r);
        if s["stored_events"] == 3 && s["events_out"].as_u64() >= Some(3) {
            break s;
        }
        assert!(Instant::now() < end, "status never caught up: {s}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(after["connections"], 2);
    assert_eq!(after["events_in"], 3);
    assert_eq!(after["events_written"], 3);
    assert_eq!(after["reqs"], 1);
    assert!(after["db_bytes"].as_u64() > Some(0));
    assert!(after["uptime_ms"].as_u64() >= before["uptime_ms"].as_u64());
}
