//! Fuzzes `Event::parse` (simd-json tape + structural validation + canonical JSON).
//!
//! Checks, for any input that parses:
//! - no panic anywhere in parse / `compute_id` / `check_id` / `preimage` / the accessors;
//! - the canonical JSON is valid JSON (serde_json) whose `content` and `tags` equal the
//!   parsed ones, and `sha256(preimage())` equals `compute_id()`;
//! - parse → serialize → parse is stable: re-parsing `json()` yields an equal `Event`
//!   with byte-identical canonical JSON;
//! - the parser is reusable after any input (a second parse with the same `JsonParser`).

use crate::nostr::{Event, JsonParser, Limits};

pub fn run(data: &[u8]) {
    let limits = Limits::default();
    let mut parser = JsonParser::new();
    let first = Event::parse(&mut data.to_vec(), &mut parser, &limits);
    let ev = match first {
        Ok(ev) => ev,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };

    // id helpers must not panic.
    let id = ev.compute_id();
    let _ = ev.check_id();
    assert_eq!(ev.check_id().is_ok(), id == ev.id);
    let pre = ev.preimage();
    assert!(
        serde_json::from_slice::<serde_json::Value>(&pre).is_ok(),
        "preimage is not JSON: {:?}",
        String::from_utf8_lossy(&pre)
    );
    assert_eq!(
        sha256(&pre),
        id,
        "compute_id disagrees with sha256(preimage)"
    );

    // Accessors.
    assert_eq!(ev.id_hex().len(), 64);
    assert_eq!(ev.pubkey_hex().len(), 64);
    let _ = ev.d_tag();
    let _ = ev.class();
    let _ = ev.is_protected();
    let _ = ev.embeds_protected();
    for (name, value) in ev.packed_tags() {
        let _ = (name, value.len());
    }
    assert_eq!(
        ev.deleted_addresses().count(),
        if ev.kind == 5 {
            ev.tags.iter().filter(|t| t.name() == "a").count()
        } else {
            0
        }
    );

    // Canonical JSON is real JSON and carries the same content and tags.
    let v: serde_json::Value = serde_json::from_slice(ev.json()).unwrap_or_else(|e| {
        panic!(
            "canonical JSON invalid ({e}): {:?}",
            String::from_utf8_lossy(ev.json())
        )
    });
    assert_eq!(v["content"].as_str(), Some(ev.content.as_str()));
    let tags: Vec<Vec<String>> = serde_json::from_value(v["tags"].clone()).expect("tags shape");
    assert_eq!(tags, ev.tags.to_vecs());
    assert_eq!(v["kind"].as_u64(), Some(ev.kind));
    assert_eq!(v["created_at"].as_u64(), Some(ev.created_at));

    // parse -> serialize -> parse is stable (same parser, reused).
    let mut canon = ev.json().to_vec();
    let again = Event::parse(&mut canon, &mut parser, &limits).unwrap_or_else(|e| {
        panic!(
            "canonical JSON re-parse failed ({e}): {:?}",
            String::from_utf8_lossy(ev.json())
        )
    });
    assert_eq!(again, ev, "re-parsed event differs");
    assert_eq!(again.json(), ev.json());
    assert_eq!(again.compute_id(), id);
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(b).into()
}
