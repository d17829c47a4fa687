//! Answers a client can act on (issue "Answers a client can act on"): a broken EVENT whose
//! id can be read gets its `OK`, with the true position of what is wrong; other broken
//! messages get a NOTICE with the true byte offset; refusal reasons say what is wrong.

mod common;

use common::{keys, TestRelay};

#[test]
fn a_broken_event_gets_its_ok_with_the_true_position() {
    let r = TestRelay::start();
    let mut c = r.client();
    let id = "ab".repeat(32);
    let msg = format!(
        "[\"EVENT\",{{\"id\":\"{id}\",\"pubkey\":\"{}\",\"content\":\"raw\u{1}control\"}}]",
        "cd".repeat(32)
    );
    let at = msg.find('\u{1}').expect("control byte");
    c.send(&msg);
    let m = c.recv();
    assert_eq!(m[0], "OK", "{m}");
    assert_eq!(m[1], id.as_str());
    assert_eq!(m[2], false);
    let why = m[3].as_str().expect("reason");
    assert!(
        why.starts_with(&format!(
            "invalid: invalid JSON at byte {at}: control character"
        )),
        "{why}"
    );
    // Not an EVENT (or no readable id): a NOTICE, still with the true offset.
    c.send("[\"REQ\",\"s\",{\"kinds\":[1,]}]");
    let m = c.recv();
    assert_eq!(m[0], "NOTICE", "{m}");
    let why = m[1].as_str().expect("notice");
    assert!(
        why.starts_with("error: bad msg: invalid JSON at byte 23: "),
        "{why}"
    );
}

#[test]
fn refusal_reasons_say_what_is_wrong() {
    let r = TestRelay::start();
    let mut c = r.client();
    let ev = common::note(&keys(3), "hello");
    let json = String::from_utf8_lossy(ev.json()).into_owned();
    let created = format!("\"created_at\":{}", ev.created_at);
    for (with, want) in [
        (
            "\"created_at\":-200",
            "invalid: event created_at field was negative",
        ),
        (
            "\"created_at\":1.5",
            "invalid: event created_at field was not a whole number",
        ),
        (
            "\"created_at\":\"1\"",
            "invalid: event created_at field was a string, not a number",
        ),
    ] {
        c.send(&format!("[\"EVENT\",{}]", json.replace(&created, with)));
        let m = c.recv();
        assert_eq!(m[0], "OK", "{m}");
        assert_eq!(m[3], want, "{with}");
    }
}
