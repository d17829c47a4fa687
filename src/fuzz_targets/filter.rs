//! Fuzzes `Filter::from_json` (with max 3 tag filters, as the relay does) and `Filter::matches`.
//!
//! Checks, for any input that compiles to a filter:
//! - no panic in parsing or matching;
//! - the compiled form is canonical: `ids`/`authors`/`kinds` and every tag filter's values
//!   are sorted and deduplicated, tag filters are sorted by name, at most 3 of them;
//!   `never` is set exactly when some list is empty or `since > until`;
//! - `to_json` (the canonical text that names stored negentropy trees) parses back to an
//!   equal filter and renders the same text again;
//! - `matches` (which binary-searches) agrees with a naive linear re-implementation, against
//!   a few fixed signed events (with `t`, `e`, `p`, `d`, long and multi-letter tags).

use std::sync::OnceLock;

use crate::nostr::sign::Keys;
use crate::nostr::tags::Tags;
use crate::nostr::{Event, Filter, JsonParser, Limits};

fn events() -> &'static [Event] {
    static EVENTS: OnceLock<Vec<Event>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let keys = Keys::from_secret([1; 32]).expect("key");
        let other = Keys::from_secret([2; 32]).expect("key");
        let e_hex = "ab".repeat(32);
        let p_hex = crate::nostr::hex::encode(&other.pubkey);
        let long = "v".repeat(300);
        let lim = Limits::default();
        vec![
            keys.sign(
                1_700_000_000,
                1,
                Tags::from_vecs(&[
                    vec!["t", "nostr"],
                    vec!["e", e_hex.as_str()],
                    vec!["p", p_hex.as_str()],
                    vec!["tt", "x"],
                    vec!["t", long.as_str()],
                    vec!["a"],
                ]),
                "hello",
                &lim,
            )
            .expect("sign"),
            other
                .sign(
                    0,
                    30023,
                    Tags::from_vecs(&[vec!["d", ""], vec!["d", "post"]]),
                    "",
                    &lim,
                )
                .expect("sign"),
            keys.sign(u64::MAX, u64::MAX, Tags::default(), "x", &lim)
                .expect("sign"),
        ]
    })
}

fn sorted_unique<T: Ord>(v: &[T]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

fn naive_matches(f: &Filter, ev: &Event) -> bool {
    if f.never || ev.created_at < f.since || ev.created_at > f.until {
        return false;
    }
    if let Some(ids) = &f.ids {
        if !ids.iter().any(|x| x == &ev.id) {
            return false;
        }
    }
    if let Some(a) = &f.authors {
        if !a.iter().any(|x| x == &ev.pubkey) {
            return false;
        }
    }
    if let Some(k) = &f.kinds {
        if !k.contains(&ev.kind) {
            return false;
        }
    }
    f.tags.iter().all(|tf| {
        ev.packed_tags()
            .any(|(n, v)| n == tf.name && tf.values.iter().any(|x| x.as_slice() == v))
    })
}

pub fn run(data: &[u8]) {
    let mut buf = data.to_vec();
    let mut parser = JsonParser::new();
    let Ok(Ok(f)) = parser.parse(&mut buf, |v| Filter::from_json(v, 3)) else {
        return;
    };

    if let Some(ids) = &f.ids {
        assert!(sorted_unique(ids));
    }
    if let Some(a) = &f.authors {
        assert!(sorted_unique(a));
    }
    if let Some(k) = &f.kinds {
        assert!(sorted_unique(k));
    }
    assert!(f.tags.len() <= 3, "more than 3 tag filters accepted");
    assert!(f.tags.windows(2).all(|w| w[0].name <= w[1].name));
    for t in &f.tags {
        assert!(sorted_unique(&t.values));
        if t.name == b'e' || t.name == b'p' {
            assert!(t.values.iter().all(|v| v.len() == 32));
        }
    }
    let never = f.ids.as_ref().is_some_and(Vec::is_empty)
        || f.authors.as_ref().is_some_and(Vec::is_empty)
        || f.kinds.as_ref().is_some_and(Vec::is_empty)
        || f.tags.iter().any(|t| t.values.is_empty())
        || f.since > f.until;
    assert_eq!(f.never, never);

    let text = f.to_json();
    let mut again = text.clone().into_bytes();
    match parser.parse(&mut again, |v| Filter::from_json(v, 3)) {
        Ok(Ok(back)) => {
            assert_eq!(back, f, "to_json round trip changed the filter: {text}");
            assert_eq!(back.to_json(), text);
        }
        other => panic!("to_json output does not parse ({other:?}): {text}"),
    }

    for ev in events() {
        assert_eq!(
            f.matches(ev),
            naive_matches(&f, ev),
            "matches() disagrees with naive"
        );
    }
}
