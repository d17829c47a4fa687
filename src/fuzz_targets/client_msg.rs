//! Fuzzes `nostr::decode`, the client-message decoder (EVENT/AUTH/REQ/COUNT/CLOSE/NEG-*).
//!
//! Checks:
//! - no panic on any input;
//! - every error's `.reply()` (NOTICE / OK false / CLOSED / NEG-ERR) is valid JSON, is an
//!   array whose first element is the verb, and round-trips the error's text;
//! - for accepted messages, the relay replies built from the decoded values (EVENT, EOSE,
//!   COUNT, CLOSED, NEG-MSG, NEG-ERR with the sub id; OK with the event id) are valid JSON
//!   and carry the sub id unchanged (sub ids are written unescaped, so this checks
//!   `SubId::new`'s character rules);
//! - the same `JsonParser` still decodes a fixed message correctly afterwards.

use crate::nostr::message::{self, ClientMsg, MsgError, SubId};
use crate::nostr::{decode, DecodeLimits, JsonParser};
use serde_json::Value;

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "reply is not valid JSON ({e}): {:?}",
            String::from_utf8_lossy(bytes)
        )
    })
}

fn check_sub_replies(sub: &SubId) {
    let s = sub.as_str();
    let mut out = Vec::new();
    message::event(&mut out, sub, br#"{"k":1}"#);
    assert_eq!(json(&out)[1].as_str(), Some(s));
    out.clear();
    message::eose(&mut out, sub);
    assert_eq!(json(&out)[1].as_str(), Some(s));
    out.clear();
    message::count(&mut out, sub, 7, true);
    assert_eq!(json(&out)[1].as_str(), Some(s));
    out.clear();
    message::neg_msg(&mut out, sub, &[0x61, 0xff]);
    assert_eq!(json(&out)[1].as_str(), Some(s));
    out.clear();
    message::closed(&mut out, s, "closed");
    assert_eq!(json(&out)[1].as_str(), Some(s));
}

pub fn run(data: &[u8]) {
    let limits = DecodeLimits::default();
    let mut parser = JsonParser::new();
    let mut buf = data.to_vec();
    match decode(&mut buf, &mut parser, &limits) {
        Ok(None) => {}
        Ok(Some(msg)) => match &msg {
            ClientMsg::Event(ev) | ClientMsg::Auth(ev) => {
                let _ = ev.check_id();
                let mut out = Vec::new();
                message::ok(&mut out, ev.id_hex(), true, "");
                assert_eq!(json(&out)[1].as_str(), Some(ev.id_hex()));
            }
            ClientMsg::Req { sub_id, filters } | ClientMsg::Count { sub_id, filters } => {
                assert!(!filters.is_empty() && filters.len() <= limits.max_filters);
                check_sub_replies(sub_id);
            }
            ClientMsg::Close { sub_id }
            | ClientMsg::NegClose { sub_id }
            | ClientMsg::NegMsg { sub_id, .. }
            | ClientMsg::NegOpen { sub_id, .. } => check_sub_replies(sub_id),
        },
        Err(e) => {
            let reply = e.reply();
            let v = json(&reply);
            let arr = v.as_array().expect("reply is an array");
            let (verb, text) = match &e {
                MsgError::Notice(t) => ("NOTICE", t.clone()),
                MsgError::BadEvent { reason, .. } => ("OK", reason.to_string()),
                MsgError::Closed { reason, .. } => ("CLOSED", reason.clone()),
                MsgError::NegErr { reason, .. } => ("NEG-ERR", reason.clone()),
            };
            assert_eq!(arr[0].as_str(), Some(verb));
            assert_eq!(arr.last().and_then(Value::as_str), Some(text.as_str()));
        }
    }

    // The parser must be reusable after whatever happened above.
    let mut fixed = br#"["REQ","x",{"kinds":[1]}]"#.to_vec();
    assert!(matches!(
        decode(&mut fixed, &mut parser, &limits),
        Ok(Some(ClientMsg::Req { .. }))
    ));
}
