//! NIP-13 proof of work on a real relay: the global minimum, per-kind overrides, the
//! committed target in the nonce tag, the reasons, and NIP-11.

mod common;

use common::{keys, now, TestRelay};
use wok::nostr::{Event, Limits};

fn mined(seed: u8, kind: u64, target: u32, commit: u32) -> Event {
    keys(seed)
        .mine(
            now(),
            kind,
            &[],
            "proof",
            target,
            commit,
            &Limits::default(),
        )
        .expect("mine")
}

fn ok_of(c: &mut common::Client, ev: &Event) -> (bool, String) {
    let r = c.publish(ev);
    (r[2] == true, r[3].as_str().unwrap_or("").to_owned())
}

#[test]
fn pow_accepts_refuses_and_explains() {
    let relay = TestRelay::with(|c| {
        c.relay.pow.min_difficulty = 10;
        c.relay.pow.kind_difficulty = "7:0, 30023:12".into();
    });
    let mut c = relay.client();

    // Enough work, committed honestly.
    let good = mined(1, 1, 10, 10);
    assert!(wok::policy::pow::difficulty(&good.id) >= 10);
    assert_eq!(ok_of(&mut c, &good), (true, String::new()));

    // No nonce tag at all (and, almost surely, too few zero bits): refused with the count.
    let plain = common::note(&keys(2), "no work");
    let have = wok::policy::pow::difficulty(&plain.id);
    let (ok, why) = ok_of(&mut c, &plain);
    assert!(!ok);
    if have < 10 {
        assert_eq!(why, format!("pow: difficulty {have} is less than 10"));
    }

    // Enough zero bits but committed to a lower target: refused.
    let low_commit = mined(3, 1, 10, 4);
    let (ok, why) = ok_of(&mut c, &low_commit);
    assert!(!ok);
    assert_eq!(why, "pow: committed target 4 is less than 10");

    // Enough zero bits and no nonce tag: refused, saying why.
    let lucky = (0..u32::MAX)
        .map(|i| common::note(&keys(4), &format!("lucky {i}")))
        .find(|e| wok::policy::pow::difficulty(&e.id) >= 10)
        .expect("some note has 10 zero bits");
    let (ok, why) = ok_of(&mut c, &lucky);
    assert!(!ok);
    assert!(why.starts_with("pow: missing nonce tag"), "{why}");

    // Per-kind overrides: kind 7 needs nothing, kind 30023 needs 12.
    let reaction = common::sign(&keys(5), now(), 7, &[], "+");
    assert_eq!(ok_of(&mut c, &reaction), (true, String::new()));
    let article = mined(6, 30023, 10, 10);
    let have = wok::policy::pow::difficulty(&article.id);
    if have < 12 {
        assert_eq!(
            ok_of(&mut c, &article),
            (false, format!("pow: difficulty {have} is less than 12"))
        );
    }
    let article = mined(6, 30023, 12, 12);
    assert_eq!(ok_of(&mut c, &article), (true, String::new()));

    // Every refusal above is counted.
    assert!(common::metric(&relay.url, "wok_pow_refused_total") >= 3);
    // NIP-11 shows the minimum and NIP-13.
    let doc = common::nip11_of(&relay.url);
    assert_eq!(doc["limitation"]["min_pow_difficulty"], 10);
    assert!(doc["supported_nips"]
        .as_array()
        .expect("nips")
        .contains(&13.into()));
}

#[test]
fn pow_off_by_default() {
    let relay = TestRelay::start();
    let mut c = relay.client();
    let plain = common::note(&keys(1), "no work");
    assert_eq!(c.publish(&plain)[2], true);
    let doc = common::nip11_of(&relay.url);
    assert!(doc["limitation"].get("min_pow_difficulty").is_none());
    assert!(!doc["supported_nips"]
        .as_array()
        .expect("nips")
        .contains(&13.into()));
}
