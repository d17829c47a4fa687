//! What a client makes the relay hold for it is counted as held, per connection and for
//! the relay as a whole (issue "Every byte a client makes the relay hold is counted").
//! - A peer that never reads and sends one-byte garbage earns a ~48-byte NOTICE per frame,
//!   each held in a 128-byte buffer plus a queue slot: counted by what it holds, 400k of
//!   them pass the default 32 MB cap (counted by length they would take 700k).
//! - Several such peers, each under the per-connection cap, are closed by the relay-wide
//!   `maxTotalPendingOutboundBytes`, largest first.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::TestRelay;

const SLOW: &str = "strfry_slow_client_terminations_total";
const NOTICES: &str = "nostr_relay_messages_total{verb=\"NOTICE\"}";
/// How long a wait may take before it counts as a failure: the waits end as soon as their
/// event happens, but a debug build on a loaded 2-core machine answers 400k frames slowly.
const PATIENCE: Duration = Duration::from_secs(120);

/// `count` masked one-byte text frames (`x`): each is garbage that earns a NOTICE.
/// Returns false if the relay closed the connection before all were written.
fn flood(s: &mut TcpStream, count: usize) -> bool {
    let one = [0x81u8, 0x81, 0, 0, 0, 0, b'x'];
    let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
    s.set_write_timeout(Some(PATIENCE)).expect("timeout");
    for _ in 0..count / 1000 {
        if s.write_all(&batch).is_err() {
            return false;
        }
    }
    true
}

/// Waits (bounded) for the metric to reach `want`.
fn await_terminations(addr: &str, want: u64) -> u64 {
    let end = Instant::now() + PATIENCE;
    loop {
        let n = common::metric(addr, SLOW);
        if n >= want || Instant::now() > end {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn garbage_replies_count_what_they_hold() {
    // Rate limits off: malformed messages are violations, and this test is about what the
    // relay holds for a peer that does not read, not about who may send garbage.
    let r = TestRelay::with(|c| c.relay.limits.enabled = false);
    let addr = r.url.trim_start_matches("ws://").to_owned();
    let mut s = common::raw_upgrade(&addr, Some(4096));
    flood(&mut s, 400_000);
    assert_eq!(
        await_terminations(&addr, 1),
        1,
        "400k unread NOTICEs (~75 MB held) did not trip the 32 MB cap"
    );
}

#[test]
fn the_relay_wide_budget_closes_the_largest_backlogs() {
    // Per-connection cap off; 16 MB for everyone together.
    let r = TestRelay::with(|c| {
        c.relay.limits.enabled = false;
        c.relay.max_pending_outbound_bytes = 0;
        c.relay.max_total_pending_outbound_bytes = 16 << 20;
    });
    let addr = r.url.trim_start_matches("ws://").to_owned();
    let mut big = common::raw_upgrade(&addr, Some(4096));
    let mut small = common::raw_upgrade(&addr, Some(4096));
    // Each unread NOTICE holds ~220 bytes; the kernel takes ~60k of them per connection.
    // The big backlog is made first and left alone (~13 MB, under the budget), then the
    // small one grows (to ~9 MB) until the sum passes it: the small connection trips the
    // budget while the big one holds more. Flooding both at once made which one was larger
    // when the once-a-second check ran a matter of scheduling.
    let notices = |n: u64| {
        let end = Instant::now() + PATIENCE;
        while common::metric(&addr, NOTICES) < n && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    flood(&mut big, 120_000);
    notices(120_000);
    assert_eq!(
        common::metric(&addr, SLOW),
        0,
        "the big backlog alone passed the budget: the kernel took less than this test assumes"
    );
    flood(&mut small, 100_000);
    assert!(
        await_terminations(&addr, 1) >= 1,
        "no connection was closed"
    );
    // The big one went; the small one is still served.
    let end = Instant::now() + PATIENCE;
    let mut buf = [0u8; 65536];
    big.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut closed = false;
    while Instant::now() < end && !closed {
        match big.read(&mut buf) {
            Ok(0) => closed = true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => closed = true,
        }
    }
    assert!(closed, "the largest backlog was not closed");
    assert_eq!(common::metric(&addr, SLOW), 1, "only the largest had to go");
    small
        .write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8])
        .expect("the small connection is still open");
}
