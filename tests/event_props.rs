//! Property tests: any event we sign survives parse → canonical JSON → parse unchanged,
//! whatever escaping the sender used, and its id always checks.

use proptest::prelude::*;
use wok::nostr::sign::Keys;
use wok::nostr::tags::Tags;
use wok::nostr::{verify, Event, JsonParser, Limits};

fn keys() -> Keys {
    Keys::from_secret([42; 32]).expect("valid key")
}

/// Text biased towards the characters escaping gets wrong.
fn text() -> impl Strategy<Value = String> {
    let tricky = prop::sample::select(vec![
        '\u{0}', '\u{1}', '\u{8}', '\t', '\n', '\u{b}', '\u{c}', '\r', '\u{1f}', '"', '\\', '/',
        '\u{7f}', '\u{80}', '\u{2028}', '\u{2029}', '\u{feff}', 'é', '😀', 'a',
    ]);
    prop::collection::vec(prop_oneof![tricky, any::<char>()], 0..40)
        .prop_map(|v| v.into_iter().collect())
}

fn tags() -> impl Strategy<Value = Vec<Vec<String>>> {
    let name = prop_oneof![
        Just("t".to_string()),
        Just("d".to_string()),
        Just("subject".to_string()),
        text()
    ];
    let tag = (name, prop::collection::vec(text(), 0..4)).prop_map(|(n, mut rest)| {
        rest.insert(0, n);
        rest
    });
    prop::collection::vec(tag, 0..6)
        // e/p values must be 64 hex and a-tags only matter for kind 5; keep names clear of them.
        .prop_map(|v| {
            v.into_iter()
                .filter(|t| !matches!(t[0].as_str(), "a" | "e" | "p" | "expiration"))
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn canonical_round_trip(content in text(), tags in tags(), created_at in any::<u64>(), kind in 0u64..70_000) {
        let ev = keys().sign(created_at, kind, Tags::from_vecs(&tags), &content, &Limits::default()).expect("sign");
        prop_assert!(verify::check_event(&ev).is_ok());

        let mut parser = JsonParser::new();
        let again = Event::parse(&mut ev.json().to_vec(), &mut parser, &Limits::default()).expect("reparse");
        prop_assert_eq!(&again, &ev);

        // The same event as serde_json writes it (different escapes, e.g. DEL, \u001f) must
        // come back to the same canonical bytes and the same id.
        let v: serde_json::Value = serde_json::from_slice(ev.json()).expect("serde reads it");
        let mut other = serde_json::to_vec_pretty(&v).expect("serde writes it");
        let third = Event::parse(&mut other, &mut parser, &Limits::default()).expect("parse serde form");
        prop_assert_eq!(third.json(), ev.json());
        prop_assert_eq!(third.compute_id(), ev.id);
        prop_assert_eq!(third.tags.to_vecs(), tags);
        prop_assert_eq!(third.content, content);
    }
}
