//! Clients that vanish mid-handshake, mid-frame and mid-NEG (its set still being collected)
//! leave nothing behind: no connection, no message counted in flight, no stuck thread; the
//! next client is served in full, NIP-77 included (issue 18 item 4).

mod common;

use std::io::Write;
use std::net::TcpStream;

use common::{keys, now, sign, TestRelay, WAIT};

#[test]
fn clients_vanishing_mid_handshake_mid_frame_and_mid_neg_leave_nothing_behind() {
    let k = keys(12);
    let t0 = now() - 100_000;
    let evs: Vec<_> = (0..3000u64)
        .map(|i| sign(&k, t0 + i, 1, &[], &format!("v{i}")))
        .collect();
    let r = TestRelay::with_store(
        |c| {
            c.relay.max_filter_limit = 5000;
            c.relay.num_threads.negentropy = 1;
            // Small slices: a vanished client's collection is still under way when it goes.
            c.relay.query_timeslice_budget_microseconds = 100;
        },
        |s| {
            s.write_batch(&evs).expect("write");
        },
    );
    let addr = r.url.trim_start_matches("ws://").to_string();
    let msg = common::neg_first_message();
    for _ in 0..20 {
        // Half an upgrade request, then gone.
        let mut s = TcpStream::connect(&addr).expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
            .expect("write");
        drop(s);
        // A frame that announces 1,000 bytes and brings 10.
        let mut s = common::raw_upgrade(&r.url, None);
        s.write_all(&[0x81, 0x80 | 126, 0x03, 0xe8, 0, 0, 0, 0])
            .expect("write");
        s.write_all(b"[\"REQ\",\"x\"").expect("write");
        drop(s);
        // A NEG-OPEN whose set (every kind 1, no stored tree) is being collected.
        let mut c = r.client();
        c.send(&format!("[\"NEG-OPEN\",\"n\",{{\"kinds\":[1]}},\"{msg}\"]"));
        drop(c);
    }
    assert!(
        common::eventually(WAIT, || {
            common::metric(&r.url, "strfry_connections_current") == 0
                && common::metric(&r.url, "wok_inflight_messages") == 0
        }),
        "connections {}, messages in flight {}",
        common::metric(&r.url, "strfry_connections_current"),
        common::metric(&r.url, "wok_inflight_messages")
    );
    let mut c = r.client();
    assert_eq!(c.req("all", r#"{"kinds":[1],"limit":5000}"#).len(), 3000);
    c.send(&format!("[\"NEG-OPEN\",\"m\",{{\"kinds\":[1]}},\"{msg}\"]"));
    let m = c.until(|m| m[0] == "NEG-MSG" || m[0] == "NEG-ERR").1;
    assert_eq!(m[0], "NEG-MSG", "{m}");
}
