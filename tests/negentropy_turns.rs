//! A NEG-OPEN's set is collected in time slices that take turns with the thread's other
//! work: a large collection cannot hold up a small NEG-OPEN that arrives after it (issue
//! 23: 3,000 small NEG-OPENs cost 57 s of one thread, each collected in one go).

mod common;

use common::{keys, now, sign, TestRelay};

/// The tests here compare when answers arrive, so they take turns: one's setup (signing
/// thousands of events) on a 2-core machine would otherwise starve the other's relay
/// threads and decide the order instead of the relay's scheduling.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_small_neg_open_is_answered_before_a_large_one_sent_first() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let k = keys(7);
    let t0 = now() - 100_000;
    let evs: Vec<_> = (0..6000u64)
        .map(|i| sign(&k, t0 + i, 1, &[], &format!("n{i}")))
        .collect();
    let target = evs[17].id_hex().to_owned();
    let r = TestRelay::with_store(
        |c| {
            c.relay.num_threads.negentropy = 1;
            // The smallest slice, so the large collection takes many turns.
            c.relay.query_timeslice_budget_microseconds = 100;
        },
        |s| {
            s.write_batch(&evs).expect("write");
        },
    );
    let mut c = r.client();
    let msg = common::neg_first_message();
    // `{"kinds":[1]}` is no stored tree's filter: collected, all 6,000.
    // Sent in one write, so the relay reads them together. The large collection must still
    // outlast the relay's handing on of the small one: tens of ms in a debug build (what
    // CI runs); a release build collects all 6,000 in ~1.3 ms and, on a busy 2-core
    // machine, can finish first.
    c.send_together(&[
        &format!("[\"NEG-OPEN\",\"big\",{{\"kinds\":[1]}},\"{msg}\"]"),
        &format!("[\"NEG-OPEN\",\"small\",{{\"ids\":[\"{target}\"]}},\"{msg}\"]"),
    ]);
    // One connection: the relay's answers arrive in the order it sent them.
    let first = c.recv();
    assert_eq!(first[0], "NEG-MSG", "{first}");
    assert_eq!(
        first[1], "small",
        "the small NEG-OPEN waited for the large one"
    );
    let second = c.recv();
    assert_eq!(second[0], "NEG-MSG", "{second}");
    assert_eq!(second[1], "big");
}

/// Collections take turns by connection, not by session: a connection with three large
/// collections under way does not get three slices for each one another connection gets, so
/// that connection's single collection of the same size finishes first (by session, it
/// would finish last).
///
/// The busy connection's collections start first (proved by a round trip), a head start of
/// h; each needs N slices. By connection, the other's finishes 2N after it arrives and the
/// busy one's first 6N − 2h after: the test holds while h < 2N, so the head start a loaded
/// machine adds (CI once saw ~N with two busy collections of 20,000) has room. By session
/// the busy one's first always finishes first.
#[test]
fn collections_take_turns_by_connection() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let k = keys(8);
    let t0 = now() - 100_000;
    let evs: Vec<_> = (0..40_000u64)
        .map(|i| sign(&k, t0 + i, 1, &[], &format!("m{i}")))
        .collect();
    let r = TestRelay::with_store(
        |c| {
            c.relay.num_threads.negentropy = 1;
            c.relay.query_timeslice_budget_microseconds = 100;
        },
        |s| {
            s.write_batch(&evs).expect("write");
        },
    );
    let msg = common::neg_first_message();
    let open = |sub: &str| format!("[\"NEG-OPEN\",\"{sub}\",{{\"kinds\":[1]}},\"{msg}\"]");
    let mut busy = r.client();
    let mut other = r.client();
    // At most HELD_SETS_PER_THREAD (4) collections at once on the thread: 3 + 1.
    busy.send(&open("b0"));
    busy.send(&open("b1"));
    busy.send(&open("b2"));
    // All are on the thread before the other's one: a round trip on the same connection
    // (the ingester hands messages on in order) proves they were read.
    busy.send("[\"COUNT\",\"sync\",{\"ids\":[]}]");
    let m = busy.recv();
    assert_eq!(m[0], "COUNT", "{m}");
    let reader = std::thread::spawn(move || {
        let m = busy.recv();
        assert_eq!(m[0], "NEG-MSG", "{m}");
        let first = std::time::Instant::now();
        for _ in 0..2 {
            let m = busy.recv();
            assert_eq!(m[0], "NEG-MSG", "{m}");
        }
        first
    });
    other.send(&open("o"));
    let m = other.recv();
    let theirs = std::time::Instant::now();
    assert_eq!(m[0], "NEG-MSG", "{m}");
    let busy_first = reader.join().expect("reader");
    assert!(
        theirs < busy_first,
        "the busy connection's first collection finished {:?} before the other's one",
        theirs - busy_first
    );
}
