//! What of an event is indexed, and its terms with their frequencies.
//!
//! Fields: `content` and the tags `title`, `summary`, `subject`, `t`, `alt`; for kind 0 the
//! `name`, `display_name`, `about` and `nip05` of its JSON content instead of the raw JSON.
//! The same function serves indexing (from a parsed event) and removal (from the stored
//! JSON), so the postings removed are exactly those that were added.

use super::tokenize::{tokenize, TokenBuf};
use crate::nostr::JsonParser;
use std::collections::HashMap;

/// Tag names whose first value is indexed text.
pub const TEXT_TAGS: [&str; 5] = ["title", "summary", "subject", "t", "alt"];

/// The kind-0 JSON fields that are indexed.
pub const PROFILE_FIELDS: [&str; 4] = ["name", "display_name", "about", "nip05"];

/// An event's terms: unique tokens (sorted) with their counts, and the document length.
/// The tokens sit end to end in one string (one allocation, not one per term).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Terms {
    text: String,
    /// (end of the term in `text`, count), in term order.
    terms: Vec<(u32, u32)>,
    pub len: u32,
}

impl Terms {
    /// Term frequency as stored (saturating at 255).
    pub fn tf_byte(n: u32) -> u8 {
        u8::try_from(n).unwrap_or(u8::MAX)
    }

    /// The document length as stored: exact up to 255 tokens, then 255 (BM25's length
    /// normalisation saturates long before that matters for ranking).
    pub fn norm_byte(&self) -> u8 {
        u8::try_from(self.len).unwrap_or(u8::MAX)
    }

    /// (term, count) in term order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, u32)> + '_ {
        self.terms.iter().enumerate().map(|(i, &(end, n))| {
            let start = if i == 0 { 0 } else { self.terms[i - 1].0 };
            (&self.text[start as usize..end as usize], n)
        })
    }

    /// How many distinct terms.
    pub fn count(&self) -> usize {
        self.terms.len()
    }

    fn term(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.terms[i - 1].0 };
        &self.text[start as usize..self.terms[i].0 as usize]
    }

    pub fn contains(&self, token: &str) -> bool {
        // The order `of_tokens` sorted by.
        let key = (head(token), token);
        let (mut lo, mut hi) = (0, self.terms.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let t = self.term(mid);
            match (head(t), t).cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }

    /// Counts and sorts a token list.
    pub fn of_tokens(toks: &TokenBuf) -> Terms {
        let len = u32::try_from(toks.len()).unwrap_or(u32::MAX);
        // Counted in a hash map first (a note repeats its common words), then the distinct
        // terms sorted by their first eight bytes as one integer, then the rest: most
        // comparisons are one integer compare instead of a memcmp call.
        let mut counts: HashMap<&str, u32, foldhash::fast::FixedState> =
            HashMap::with_capacity_and_hasher(toks.len(), Default::default());
        for t in toks.iter() {
            *counts.entry(t).or_insert(0) += 1;
        }
        let mut order: Vec<(u64, &str, u32)> =
            counts.into_iter().map(|(t, n)| (head(t), t, n)).collect();
        order.sort_unstable();
        let mut out = Terms {
            text: String::with_capacity(order.iter().map(|o| o.1.len()).sum()),
            terms: Vec::with_capacity(order.len()),
            len,
        };
        for (_, t, n) in order {
            out.text.push_str(t);
            out.terms.push((out.text.len() as u32, n));
        }
        out
    }
}

/// A token's first eight bytes as one integer (zero-padded).
fn head(t: &str) -> u64 {
    let mut h = [0u8; 8];
    let n = t.len().min(8);
    h[..n].copy_from_slice(&t.as_bytes()[..n]);
    u64::from_be_bytes(h)
}

/// All tokens of an event's indexed text, in order.
pub fn tokens<'a>(
    kind: u64,
    content: &str,
    tags: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> TokenBuf {
    // Tokens are at most the text's bytes: one allocation each, no regrowth.
    let mut out = TokenBuf::with_capacity(content.len());
    if kind == 0 {
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(content) {
            for f in PROFILE_FIELDS {
                if let Some(serde_json::Value::String(s)) = m.get(f) {
                    tokenize(s, &mut out);
                }
            }
        }
    } else {
        tokenize(content, &mut out);
    }
    for (name, value) in tags {
        if let Some(v) = value {
            if TEXT_TAGS.contains(&name) {
                tokenize(v, &mut out);
            }
        }
    }
    out
}

/// Terms with counts of an event's indexed text.
pub fn terms<'a>(
    kind: u64,
    content: &str,
    tags: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Terms {
    Terms::of_tokens(&tokens(kind, content, tags))
}

/// Terms of a parsed event.
pub fn event_terms(ev: &crate::nostr::Event) -> Terms {
    terms(
        ev.kind,
        &ev.content,
        ev.tags.iter().map(|t| (t.name(), t.value())),
    )
}

/// Terms of an event's stored JSON; `None` if it is not an event object. (Read with the
/// relay's simd-json parser: the writer calls this for every indexed event it deletes or
/// replaces, and a generic JSON tree cost more than the tokenizing.)
pub fn json_terms(json: &[u8]) -> Option<Terms> {
    thread_local! {
        static PARSER: std::cell::RefCell<JsonParser> = std::cell::RefCell::new(JsonParser::new());
    }
    let mut buf = json.to_vec();
    PARSER.with(|p| {
        let mut p = p.try_borrow_mut().ok()?;
        p.parse(&mut buf, |v| {
            let (mut kind, mut content, mut tags) = (None, None, None);
            for (k, val) in v.object()? {
                match k {
                    "kind" => kind = Some(val.as_u64()?),
                    "content" => content = Some(val.as_str()?),
                    "tags" => tags = Some(val.array()?),
                    _ => {}
                }
            }
            let tags: Vec<(&str, Option<&str>)> = tags?
                .filter_map(|t| {
                    let mut t = t.array()?;
                    let name = t.next()?.as_str()?;
                    Some((name, t.next().and_then(|x| x.as_str())))
                })
                .collect();
            Some(terms(kind?, content?, tags.into_iter()))
        })
        .ok()
        .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_counts() {
        let t = terms(
            1,
            "rust rust nostr",
            [("t", Some("Rust")), ("p", Some("rust")), ("title", None)].into_iter(),
        );
        assert_eq!(t.len, 4);
        assert!(t.iter().eq([("nostr", 1), ("rust", 3)]));
        assert!(t.contains("rust") && t.contains("nostr") && !t.contains("rus"));
        // Terms of every length are found (the sort key is the first eight bytes, then all).
        let long = terms(
            1,
            "abcdefghij abcdefgh abcdefghi a ab zz",
            std::iter::empty(),
        );
        for w in ["abcdefghij", "abcdefgh", "abcdefghi", "a", "ab", "zz"] {
            assert!(long.contains(w), "{w}");
        }
        assert!(!long.contains("abcdefg") && !long.contains("abcdefghijk"));
        let p = terms(
            0,
            r#"{"name":"Alice","about":"Bitcoin dev","picture":"https://x.y/z.png","lud16":"q"}"#,
            std::iter::empty(),
        );
        let names: Vec<&str> = p.iter().map(|(t, _)| t).collect();
        assert_eq!(names, ["alice", "bitcoin", "dev"]);
        assert_eq!(terms(0, "not json", std::iter::empty()).len, 0);
    }

    #[test]
    fn json_and_event_agree_on_generated_events() {
        // Escapes, unicode, control characters, profiles, articles: removal re-reads the
        // stored JSON and must find exactly the terms indexing made.
        let events = crate::gen::generate(&crate::gen::GenConfig {
            count: 400,
            start: 1_760_000_000,
            ..crate::gen::GenConfig::default()
        });
        for ev in &events {
            assert_eq!(
                json_terms(ev.json()),
                Some(event_terms(ev)),
                "{}",
                ev.id_hex()
            );
        }
        assert_eq!(json_terms(b"[1,2]"), None);
        assert_eq!(json_terms(br#"{"kind":"1","content":"x","tags":[]}"#), None);
    }

    #[test]
    fn json_and_event_agree() {
        let ev = crate::nostr::sign::Keys::from_secret([5; 32])
            .expect("key")
            .sign(
                10,
                30023,
                crate::nostr::tags::Tags::from_vecs(&[
                    vec!["title", "Über Caf\u{e9}s"],
                    vec!["d", "x"],
                ]),
                "Long \"quoted\" text\nwith lines",
                &crate::nostr::Limits::default(),
            )
            .expect("sign");
        assert_eq!(json_terms(ev.json()), Some(event_terms(&ev)));
    }
}
