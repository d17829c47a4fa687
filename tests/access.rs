//! Access control on a real relay: bans, kind lists, the allowlist and web-of-trust write
//! modes (with the live refresh when an admin's follow list is replaced), members-only
//! reads, and state written by another process (the store, as `wok admin` offline would).

mod common;

use std::time::Duration;

use common::{keys, note, now, sign, TestRelay};
use wok::nostr::hex;
use wok::store::manage::List;
use wok::store::Store;

fn put(store: &Store, list: List, item: &[u8]) {
    let mut w = store.write_txn().expect("txn");
    store.manage_put(&mut w, list, item, "test").expect("put");
    w.commit().expect("commit");
}

fn reason(c: &mut common::Client, ev: &wok::nostr::Event) -> (bool, String) {
    let r = c.publish(ev);
    (r[2] == true, r[3].as_str().unwrap_or("").to_owned())
}

#[test]
fn bans_and_kind_lists_from_the_store() {
    let (banned, ok) = (keys(1), keys(2));
    let banned_event = note(&ok, "banned note");
    let bp = banned.pubkey;
    let bid = banned_event.id;
    let relay = TestRelay::with_store(
        |_| {},
        |s| {
            put(s, List::BannedPubkey, &bp);
            put(s, List::BannedEvent, &bid);
            put(s, List::DisallowedKind, &7u64.to_be_bytes());
        },
    );
    let mut c = relay.client();
    let (accepted, why) = reason(&mut c, &note(&banned, "hi"));
    assert!(!accepted);
    assert!(why.starts_with("blocked: pubkey is banned"), "{why}");
    let (accepted, why) = reason(&mut c, &banned_event);
    assert!(!accepted);
    assert!(why.starts_with("blocked: this event is banned"), "{why}");
    let (accepted, why) = reason(&mut c, &sign(&ok, now(), 7, &[], "+"));
    assert!(!accepted);
    assert_eq!(why, "blocked: kind 7 is not accepted by this relay");
    assert_eq!(reason(&mut c, &note(&ok, "fine")), (true, String::new()));
    assert!(common::metric(&relay.url, "wok_access_refused_total") >= 3);
}

fn challenge_in(msgs: &[serde_json::Value]) -> String {
    msgs.iter()
        .find(|m| m[0] == "AUTH")
        .and_then(|m| m[1].as_str())
        .expect("an AUTH challenge")
        .to_owned()
}

#[test]
fn allowlist_mode_and_members_only_reads() {
    let (admin, member, stranger) = (keys(1), keys(2), keys(3));
    let admin_hex = hex::encode(&admin.pubkey);
    let mpk = member.pubkey;
    let relay = TestRelay::with_store(
        |c| {
            c.relay.management.admin_pubkeys = admin_hex.clone();
            c.relay.management.write_access = "allowlist".into();
            c.relay.management.restrict_reads = true;
            c.relay.auth.service_url = "ws://wok.test".into();
        },
        |s| put(s, List::AllowedPubkey, &mpk),
    );
    let mut c = relay.client();
    assert!(reason(&mut c, &note(&admin, "admin")).0);
    assert!(reason(&mut c, &note(&member, "member")).0);
    let (accepted, why) = reason(&mut c, &note(&stranger, "me too"));
    assert!(!accepted);
    assert!(why.starts_with("restricted:"), "{why}");

    // Reads need AUTH as a member: first the challenge and a CLOSED.
    c.send(r#"["REQ","r",{}]"#);
    let (before, closed) = c.until(|m| m[0] == "CLOSED");
    let challenge = challenge_in(&before);
    assert!(
        closed[2]
            .as_str()
            .unwrap_or("")
            .starts_with("auth-required:"),
        "{closed}"
    );
    assert!(!challenge.is_empty());
    // A stranger who authenticates is still refused.
    let auth = |k: &wok::nostr::sign::Keys, ch: &str| {
        sign(
            k,
            now(),
            22242,
            &[vec!["relay", "ws://wok.test"], vec!["challenge", ch]],
            "",
        )
    };
    let mut s2 = relay.client();
    s2.send(r#"["REQ","r",{}]"#);
    let ch2 = challenge_in(&s2.until(|m| m[0] == "CLOSED").0);
    let a = auth(&stranger, &ch2);
    s2.send(&format!(
        r#"["AUTH",{}]"#,
        String::from_utf8_lossy(a.json())
    ));
    s2.until(|m| m[0] == "OK");
    s2.send(r#"["REQ","r",{}]"#);
    let (_, closed) = s2.until(|m| m[0] == "CLOSED");
    assert!(
        closed[2].as_str().unwrap_or("").starts_with("restricted:"),
        "{closed}"
    );
    // The member reads.
    let a = auth(&member, &challenge);
    c.send(&format!(
        r#"["AUTH",{}]"#,
        String::from_utf8_lossy(a.json())
    ));
    assert_eq!(c.until(|m| m[0] == "OK").1[2], true);
    let got = c.req("r", "{}");
    assert_eq!(got.len(), 2, "{got:?}");
}

#[test]
fn web_of_trust_follows_the_admins_latest_follow_list() {
    let (admin, friend, other) = (keys(1), keys(2), keys(3));
    let relay = TestRelay::with(|c| {
        c.relay.management.admin_pubkeys = hex::encode(&admin.pubkey);
        c.relay.management.write_access = "wot".into();
    });
    let mut c = relay.client();
    assert!(reason(&mut c, &note(&friend, "early"))
        .1
        .starts_with("restricted:"));
    let friend_hex = hex::encode(&friend.pubkey);
    let follows = sign(&admin, now() - 10, 3, &[vec!["p", &friend_hex]], "");
    assert!(reason(&mut c, &follows).0);
    // The writer refreshed the set before the OK: the friend may write at once.
    assert_eq!(reason(&mut c, &note(&friend, "now")), (true, String::new()));
    assert!(reason(&mut c, &note(&other, "me?"))
        .1
        .starts_with("restricted:"));
    // The admin replaces the list: the friend is out, the other in.
    let other_hex = hex::encode(&other.pubkey);
    let follows = sign(&admin, now(), 3, &[vec!["p", &other_hex]], "");
    assert!(reason(&mut c, &follows).0);
    assert!(reason(&mut c, &note(&friend, "still?"))
        .1
        .starts_with("restricted:"));
    assert_eq!(reason(&mut c, &note(&other, "yes")), (true, String::new()));
}

/// A change written by another process reaches the running relay (through the management
/// generation it polls every 100 ms): bounded wait for the refusal.
#[test]
fn changes_from_another_process_apply_live() {
    let relay = TestRelay::start();
    let k = keys(5);
    let mut c = relay.client();
    assert!(reason(&mut c, &note(&k, "before")).0);
    put(
        relay.relay.as_ref().expect("relay").store(),
        List::BannedPubkey,
        &k.pubkey,
    );
    let mut i = 0;
    let mut why = String::new();
    let refused = common::eventually(Duration::from_secs(10), || {
        i += 1;
        let (accepted, w) = reason(&mut c, &note(&k, &format!("after {i}")));
        why = w;
        !accepted
    });
    assert!(refused, "ban never applied");
    assert!(why.starts_with("blocked:"), "{why}");
}
