//! What of an event is indexed, and its terms with their frequencies.
//!
//! Fields: `content` and the tags `title`, `summary`, `subject`, `t`, `alt`; for kind 0 the
//! `name`, `display_name`, `about` and `nip05` of its JSON content instead of the raw JSON.
//! The same function serves indexing (from a parsed event) and removal (from the stored
//! JSON), so the postings removed are exactly those that were added.

use super::tokenize::tokenize;

/// Tag names whose first value is indexed text.
pub const TEXT_TAGS: [&str; 5] = ["title", "summary", "subject", "t", "alt"];

/// The kind-0 JSON fields that are indexed.
pub const PROFILE_FIELDS: [&str; 4] = ["name", "display_name", "about", "nip05"];

/// An event's terms: unique tokens (sorted) with their counts, and the document length.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Terms {
    pub terms: Vec<(String, u32)>,
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

    pub fn contains(&self, token: &str) -> bool {
        self.terms
            .binary_search_by(|(t, _)| t.as_str().cmp(token))
            .is_ok()
    }
}

/// All tokens of an event's indexed text, in order.
pub fn tokens<'a>(
    kind: u64,
    content: &str,
    tags: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Vec<String> {
    let mut out = Vec::new();
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
    let mut toks = tokens(kind, content, tags);
    let len = u32::try_from(toks.len()).unwrap_or(u32::MAX);
    toks.sort_unstable();
    let mut terms: Vec<(String, u32)> = Vec::new();
    for t in toks {
        match terms.last_mut() {
            Some((last, n)) if *last == t => *n += 1,
            _ => terms.push((t, 1)),
        }
    }
    Terms { terms, len }
}

/// Terms of a parsed event.
pub fn event_terms(ev: &crate::nostr::Event) -> Terms {
    terms(
        ev.kind,
        &ev.content,
        ev.tags.iter().map(|t| (t.name(), t.value())),
    )
}

/// Terms of an event's stored JSON; `None` if it is not an event object.
pub fn json_terms(json: &[u8]) -> Option<Terms> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let kind = v.get("kind")?.as_u64()?;
    let content = v.get("content")?.as_str()?;
    let tags: Vec<(&str, Option<&str>)> = v
        .get("tags")?
        .as_array()?
        .iter()
        .filter_map(|t| {
            let t = t.as_array()?;
            Some((t.first()?.as_str()?, t.get(1).and_then(|x| x.as_str())))
        })
        .collect();
    Some(terms(kind, content, tags.into_iter()))
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
        assert_eq!(t.terms, [("nostr".to_string(), 1), ("rust".to_string(), 3)]);
        let p = terms(
            0,
            r#"{"name":"Alice","about":"Bitcoin dev","picture":"https://x.y/z.png","lud16":"q"}"#,
            std::iter::empty(),
        );
        let names: Vec<&str> = p.terms.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(names, ["alice", "bitcoin", "dev"]);
        assert_eq!(terms(0, "not json", std::iter::empty()).len, 0);
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
