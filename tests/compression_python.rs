//! The permessage-deflate exchange again, against a second independent client: Python's
//! `websockets` over CPython's zlib (tests/py/pmd_client.py). Ignored by `cargo test`, which
//! needs nothing cargo does not fetch; `.ci/run`'s extra step installs the package and runs
//! these with `--ignored`. Without the package they fail saying what is missing.

mod common;
mod pmd;

use common::TestRelay;
use pmd::{default_offer, exchange_with, python_client};
use serde_json::json;

#[test]
#[ignore = "needs python3 with `pip install websockets==17.4` (.ci/run's python step)"]
fn python_sliding_window() {
    let r = TestRelay::start();
    let out = exchange_with(python_client, &r.url, default_offer(), 1);
    assert_eq!(out["extensions"], "permessage-deflate");
}

#[test]
#[ignore = "needs python3 with `pip install websockets==17.4` (.ci/run's python step)"]
fn python_no_context_takeover_and_window_bits() {
    let r = TestRelay::start();
    let out = exchange_with(
        python_client,
        &r.url,
        json!({"server_no_context_takeover": true, "client_no_context_takeover": true}),
        2,
    );
    assert_eq!(
        out["extensions"],
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    let out = exchange_with(
        python_client,
        &r.url,
        json!({"server_max_window_bits": 10, "client_max_window_bits": 9}),
        4,
    );
    assert_eq!(
        out["extensions"],
        "permessage-deflate; server_max_window_bits=10"
    );
    // CPython's zlib fails a reference further back than the agreed window.
    pmd::far_reference(python_client, &r.url);
}

#[test]
#[ignore = "needs python3 with `pip install websockets==17.4` (.ci/run's python step)"]
fn python_zip_bomb_is_closed_with_1009() {
    let r = TestRelay::start();
    let bomb = "0".repeat(10_000_000);
    let out = python_client(json!({"url": r.url, "offer": default_offer(),
        "steps": [{"send": bomb}, {"recv": 1}]}));
    assert_eq!(out["close_code"], 1009, "{}", out["received"]);
}
