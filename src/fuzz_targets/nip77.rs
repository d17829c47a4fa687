//! Fuzzes NIP-77 as wok runs it: the NEG-OPEN / NEG-MSG / NEG-CLOSE decode (`nostr::decode`)
//! and the negentropy message decode in both roles: the relay's (`reconcile`, as
//! `relay::negentropy` answers NEG-OPEN and NEG-MSG) and the initiator's
//! (`reconcile_with_ids`, as `wok sync` reads a relay's NEG-MSG).
//!
//! The first byte picks what the rest is (`% 3`): a client message (JSON text), a raw
//! negentropy message for the relay, or a raw message for an initiator that has sent its
//! first message; bit 2 picks the relay's frame size limit or the smallest one (4096, so
//! answers get cut). The sets are fixed: 300 items on each side, 200 in common, with
//! repeated time stamps.
//!
//! Checks, beyond no panic:
//! - a decoded NEG-OPEN's filter has no `search` (a ranked search is not a set);
//! - the relay's answer fits the frame size limit, reads back through an initiator without
//!   error (it is a well-formed message), and as a NEG-MSG text is valid JSON whose hex
//!   decodes to the same bytes;
//! - the initiator's next message, if any, fits its limit and the relay reads it.

use std::sync::OnceLock;

use negentropy::{Id, Negentropy, NegentropyStorageVector};
use sha2::{Digest, Sha256};

use crate::nostr::message::{self, SubId};
use crate::nostr::{decode, hex, ClientMsg, DecodeLimits, JsonParser};
use crate::relay::negentropy::FRAME_SIZE_LIMIT;

const SMALL_FRAME: u64 = 4096;

fn set(range: std::ops::Range<u32>) -> NegentropyStorageVector {
    let mut s = NegentropyStorageVector::new();
    for i in range {
        let id: [u8; 32] = Sha256::digest(i.to_le_bytes()).into();
        // Clusters of equal time stamps, so bounds need id prefixes.
        let at = 1_700_000_000 + u64::from(i / 7) * 60;
        s.insert(at, Id::from_byte_array(id)).expect("unsealed");
    }
    s.seal().expect("sealed once");
    s
}

/// (relay's set, initiator's set)
fn sets() -> &'static (NegentropyStorageVector, NegentropyStorageVector) {
    static SETS: OnceLock<(NegentropyStorageVector, NegentropyStorageVector)> = OnceLock::new();
    SETS.get_or_init(|| (set(0..300), set(100..400)))
}

/// One relay round on `msg`, as a NEG-OPEN or NEG-MSG would get, and checks on its answer.
fn relay_round(msg: &[u8], limit: u64) {
    let (relay_set, client_set) = sets();
    let mut relay = Negentropy::borrowed(relay_set, limit).expect("limit");
    let Ok(answer) = relay.reconcile(msg) else {
        return;
    };
    assert!(
        answer.len() as u64 <= limit,
        "answer over the frame size limit"
    );

    let sub = SubId::new("neg").expect("sub id");
    let mut out = Vec::new();
    message::neg_msg(&mut out, &sub, &answer);
    let v: serde_json::Value = serde_json::from_slice(&out).expect("NEG-MSG is JSON");
    let back = v[2]
        .as_str()
        .and_then(|h| hex::decode_vec(h.as_bytes()))
        .expect("NEG-MSG carries hex");
    assert_eq!(back, answer);

    let mut client = Negentropy::borrowed(client_set, limit).expect("limit");
    client.initiate().expect("first message");
    let (mut have, mut need) = (Vec::new(), Vec::new());
    if let Err(e) = client.reconcile_with_ids(&answer, &mut have, &mut need) {
        panic!("the relay's answer does not read back: {e}");
    }
}

/// One initiator round on `msg`, as `wok sync` runs on a relay's NEG-MSG.
fn initiator_round(msg: &[u8], limit: u64) {
    let (relay_set, client_set) = sets();
    let mut client = Negentropy::borrowed(client_set, limit).expect("limit");
    client.initiate().expect("first message");
    let (mut have, mut need) = (Vec::new(), Vec::new());
    let Ok(next) = client.reconcile_with_ids(msg, &mut have, &mut need) else {
        return;
    };
    if let Some(next) = next {
        assert!(
            next.len() as u64 <= limit,
            "next message over the frame size limit"
        );
        let mut relay = Negentropy::borrowed(relay_set, limit).expect("limit");
        if let Err(e) = relay.reconcile(&next) {
            panic!("the initiator's message does not read: {e}");
        }
    }
}

pub fn run(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let limit = if pick & 4 == 0 {
        FRAME_SIZE_LIMIT
    } else {
        SMALL_FRAME
    };
    match pick % 3 {
        0 => {
            let mut buf = rest.to_vec();
            let mut parser = JsonParser::new();
            match decode(&mut buf, &mut parser, &DecodeLimits::default()) {
                Ok(Some(ClientMsg::NegOpen { filter, msg, .. })) => {
                    assert!(filter.search.is_none(), "a search filter was accepted");
                    relay_round(&msg, limit);
                }
                Ok(Some(ClientMsg::NegMsg { msg, .. })) => relay_round(&msg, limit),
                _ => {}
            }
        }
        1 => relay_round(rest, limit),
        _ => initiator_round(rest, limit),
    }
}
