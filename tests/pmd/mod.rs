//! Drives tests/py/pmd_client.py (Python `websockets`, an independent permessage-deflate
//! client) for compression.rs and compression_log.rs.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::common::{keys, note};

/// Runs one client job; the client's own checks (handshake, inflate) failing is a panic.
pub fn client(job: Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/pmd_client.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with `pip install websockets`, as .ci/run does)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(job.to_string().as_bytes())
        .expect("job");
    let out = child.wait_with_output().expect("client");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("client output")
}

pub fn events(n: usize, who: u8) -> Vec<String> {
    let k = keys(who);
    (0..n)
        .map(|i| {
            let ev = note(
                &k,
                &format!("note {i}: the same words again and again, like Nostr"),
            );
            format!("[\"EVENT\",{}]", String::from_utf8_lossy(ev.json()))
        })
        .collect()
}

pub fn count(received: &Value, verb: &str) -> usize {
    received
        .as_array()
        .expect("received")
        .iter()
        .filter(|m| {
            m.as_str()
                .is_some_and(|m| m.starts_with(&format!("[\"{verb}\"")))
        })
        .count()
}

/// Publish 20 events, read them back with a fragmented REQ, then subscribe live and publish
/// 10 more on the same connection (the fanout path: each is delivered to the publisher's
/// own subscription).
pub fn exchange(url: &str, offer: Value, who: u8) -> Value {
    let stored = events(20, who);
    let live = events(10, who + 100);
    let author = hex_pubkey(who);
    let live_author = hex_pubkey(who + 100);
    let mut steps: Vec<Value> = Vec::new();
    for e in &stored {
        steps.push(json!({"send": e}));
    }
    steps.push(json!({"recv": 20}));
    let req = format!("[\"REQ\",\"stored\",{{\"authors\":[\"{author}\"]}}]");
    let (a, b) = req.split_at(req.len() / 2);
    steps.push(json!({"send_fragments": [a, b]}));
    steps.push(json!({"recv_until": "EOSE"}));
    steps.push(json!({"send": format!("[\"REQ\",\"live\",{{\"authors\":[\"{live_author}\"]}}]")}));
    steps.push(json!({"recv_until": "EOSE"}));
    for e in &live {
        steps.push(json!({"send": e}));
    }
    steps.push(json!({"recv": 20}));
    let out = client(json!({"url": url, "offer": offer, "steps": steps}));
    let r = &out["received"];
    // Every message must survive the round trip intact: valid JSON, live events included
    // (spliced frames around a shared compressed piece).
    for m in r.as_array().expect("received") {
        let text = m.as_str().expect("text message");
        assert!(
            serde_json::from_str::<Value>(text).is_ok(),
            "not JSON after inflating: {text}"
        );
    }
    assert_eq!(count(r, "OK"), 30, "{out}");
    assert_eq!(count(r, "EVENT"), 30, "{out}");
    assert!(out["close_code"].is_null(), "{out}");
    out
}

pub fn hex_pubkey(who: u8) -> String {
    wok::nostr::hex::encode(&keys(who).pubkey)
}

pub fn default_offer() -> Value {
    json!({"client_max_window_bits": true})
}
