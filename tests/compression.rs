//! permessage-deflate (RFC 7692) against an independent client: yawc's framing and deflate
//! behind a handshake of our own (tests/pmd). Each test starts the real relay on an
//! ephemeral port and runs the client to completion: with and without context takeover,
//! fragmented messages, window-bits negotiation, declined offers, a zip bomb; every
//! exchange also checks RSV1 and the byte count on the wire, so a relay that agrees to
//! compress and then sends plain frames fails. `compression_python.rs` repeats the core
//! cases with Python's `websockets` as an extra `.ci/run` step. The connect and disconnect log lines are checked in `compression_log.rs`, a test
//! binary of its own so that no other relay writes to its logger.

mod common;
mod pmd;

use common::TestRelay;
use pmd::{client, default_offer, exchange};
use serde_json::json;

#[test]
fn sliding_window() {
    let r = TestRelay::start();
    let out = exchange(&r.url, default_offer(), 1);
    // strfry's answer shape: nothing to add when both sides keep their windows.
    assert_eq!(out["extensions"], "permessage-deflate");
    // The window spans messages: repeated keys and texts cost back-references (0.36 measured).
    assert!(pmd::wire_ratio(&out) < 0.5, "{}", pmd::wire_ratio(&out));
}

#[test]
fn no_context_takeover() {
    // Asked for by the client on a sliding-window relay.
    let r = TestRelay::start();
    let out = exchange(
        &r.url,
        json!({"server_no_context_takeover": true, "client_no_context_takeover": true}),
        2,
    );
    assert_eq!(
        out["extensions"],
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    // Imposed by the relay (`slidingWindow = false`) on a client that did not ask.
    let r = TestRelay::with(|c| c.relay.compression.sliding_window = false);
    let out = exchange(&r.url, default_offer(), 3);
    assert_eq!(
        out["extensions"],
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
}

#[test]
fn window_bits() {
    let r = TestRelay::start();
    // The client's inflater uses a 1 KiB window: a reference further back would fail it.
    let out = exchange(
        &r.url,
        json!({"server_max_window_bits": 10, "client_max_window_bits": 9}),
        4,
    );
    assert_eq!(
        out["extensions"],
        "permessage-deflate; server_max_window_bits=10"
    );
    // A relay compressing with a window over 1 KiB refers the second copy of a text back to
    // the first: a 24-byte frame instead of ~1.2 KB. (Python's zlib fails such a frame with
    // "invalid distance too far back"; yawc's zlib-rs inflater accepts it, so the wire is
    // checked here.)
    let out = pmd::far_reference(client, &r.url);
    let second = out["wire"][3]["bytes"].as_u64().expect("wire");
    assert!(
        second > 800,
        "second copy took {second} bytes: window over 1 KiB"
    );
    // 256 bytes is below what zlib can compress with: declined, the link stays plain.
    let out = exchange(&r.url, json!({"server_max_window_bits": 8}), 5);
    assert!(out["extensions"].is_null(), "{out}");
}

#[test]
fn declined_offers() {
    let r = TestRelay::start();
    // Garbage offers must be declined: no extension in the answer, and the link is plain
    // (no RSV1 on the wire).
    for raw in [
        "permessage-deflate; foo=bar",
        "permessage-deflate; server_max_window_bits=99, x-webkit-deflate-frame",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        ";;,\"",
    ] {
        let out = client(json!({"url": r.url, "raw_offer": raw,
            "steps": [{"send": "[\"REQ\",\"x\",{}]"}, {"recv_until": "EOSE"}]}));
        assert!(out["extensions"].is_null(), "{raw}: {out}");
        pmd::check_wire(
            &out["received"],
            out["wire"].as_array().expect("wire"),
            false,
        );
    }
    // Compression off: a valid offer is declined too.
    let r = TestRelay::with(|c| c.relay.compression.enabled = false);
    let out = exchange(&r.url, default_offer(), 6);
    assert!(out["extensions"].is_null(), "{out}");
}

#[test]
fn zip_bomb_is_closed_with_1009() {
    let r = TestRelay::start();
    // 10 MB of one byte is ~10 KB compressed: under the 128 KiB frame limit, far over it
    // once inflated.
    let bomb = "0".repeat(10_000_000);
    let out = client(json!({"url": r.url, "offer": default_offer(),
        "steps": [{"send": bomb}, {"recv": 1}]}));
    assert_eq!(out["close_code"], 1009, "{}", out["received"]);
    // The relay serves the next client as usual.
    exchange(&r.url, default_offer(), 7);
}
