//! A NEG-OPEN's set is collected in time slices that take turns with the thread's other
//! work: a large collection cannot hold up a small NEG-OPEN that arrives after it (issue
//! 23: 3,000 small NEG-OPENs cost 57 s of one thread, each collected in one go).

mod common;

use common::{keys, now, sign, TestRelay};
use negentropy::{Negentropy, NegentropyStorageVector};
use wok::nostr::hex;

fn first_message() -> String {
    let mut storage = NegentropyStorageVector::new();
    storage.seal().expect("seal");
    let mut neg = Negentropy::owned(storage, 0).expect("neg");
    hex::encode(&neg.initiate().expect("initiate"))
}

#[test]
fn a_small_neg_open_is_answered_before_a_large_one_sent_first() {
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
    let msg = first_message();
    // `{"kinds":[1]}` is no stored tree's filter: collected, all 6,000.
    c.send(&format!(
        "[\"NEG-OPEN\",\"big\",{{\"kinds\":[1]}},\"{msg}\"]"
    ));
    c.send(&format!(
        "[\"NEG-OPEN\",\"small\",{{\"ids\":[\"{target}\"]}},\"{msg}\"]"
    ));
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
