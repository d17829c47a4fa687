//! The `search` string of a NIP-50 filter: words (all must match), `"quoted phrases"`
//! (treated as their words: never wrong, only less strict), and `key:value` extensions
//! (`include:spam` accepted, `domain:` by the author's NIP-05 domain, `language:` parsed and not
//! enforced, unknown keys ignored, as NIP-50 asks). And BM25 scoring.

use super::doc::Terms;
use super::tokenize::{fold_into, tokens};

/// Does a kind-0 profile JSON claim a NIP-05 address at `domain` (folded, no `www.`)?
pub fn profile_domain_is(profile_json: &[u8], domain: &str) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(profile_json) else {
        return false;
    };
    let Some(nip05) = v.get("content").and_then(|c| c.as_str()) else {
        return false;
    };
    let Ok(serde_json::Value::Object(m)) = serde_json::from_str(nip05) else {
        return false;
    };
    let Some(addr) = m.get("nip05").and_then(|n| n.as_str()) else {
        return false;
    };
    let host = addr.rsplit('@').next().unwrap_or(addr);
    let mut folded = String::new();
    fold_into(host.trim_start_matches("www."), &mut folded);
    folded == domain
}

/// A parsed `search` value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SearchQuery {
    /// As sent (for the canonical filter JSON).
    pub raw: String,
    /// Every token that must occur, sorted and unique.
    pub terms: Vec<String>,
    /// `include:spam` (wok does no spam filtering, so it changes nothing).
    pub include_spam: bool,
    /// `language:xx`, lowercase (parsed; events carry no reliable language to check).
    pub language: Option<String>,
    /// `domain:host`: only events whose author's profile (kind 0) claims a NIP-05 address
    /// at this domain (the claim is not fetched and checked over HTTP).
    pub domain: Option<String>,
}

/// Extension keys that are really the start of text.
const NOT_EXTENSIONS: [&str; 3] = ["nostr", "http", "https"];

impl SearchQuery {
    /// Parses `s`; the error is a `CLOSED` reason (`invalid: …`).
    pub fn parse(s: &str, max_bytes: usize) -> Result<SearchQuery, String> {
        if s.len() > max_bytes {
            return Err(format!(
                "invalid: search longer than {max_bytes} bytes (search.maxQueryBytes)"
            ));
        }
        if s.trim().is_empty() {
            return Err("invalid: empty search".into());
        }
        let mut q = SearchQuery {
            raw: s.to_string(),
            terms: Vec::new(),
            include_spam: false,
            language: None,
            domain: None,
        };
        let mut text = String::with_capacity(s.len());
        for chunk in s.split_whitespace() {
            if let Some((key, value)) = chunk.split_once(':') {
                let is_key = !key.is_empty()
                    && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    && !NOT_EXTENSIONS.contains(&key)
                    && !value.is_empty()
                    && !value.starts_with('/');
                if is_key {
                    match key {
                        "include" if value == "spam" => q.include_spam = true,
                        "language" => q.language = Some(value.to_ascii_lowercase()),
                        "domain" => {
                            let mut host = String::new();
                            fold_into(value.trim_start_matches("www."), &mut host);
                            q.domain = Some(host);
                        }
                        // NIP-50: unknown extensions are ignored.
                        _ => {}
                    }
                    continue;
                }
            }
            text.push_str(&chunk.replace('"', " "));
            text.push(' ');
        }
        q.terms = tokens(&text);
        q.terms.sort_unstable();
        q.terms.dedup();
        if q.terms.is_empty() {
            return Err("invalid: search has no words to look for (only punctuation, symbols or extensions)".into());
        }
        Ok(q)
    }

    /// Does an event with these terms match (every query term present)?
    pub fn matches(&self, doc: &Terms) -> bool {
        self.terms.iter().all(|t| doc.contains(t))
    }
}

/// BM25 parameters (the usual ones).
pub const K1: f64 = 1.2;
const B: f64 = 0.75;

/// BM25 contribution of one term: `tf` occurrences in a document of `dl` tokens, the term
/// in `df` of `n` documents whose average length is `avgdl`.
pub fn bm25(tf: u8, dl: u8, df: u64, n: u64, avgdl: f64) -> f64 {
    let tf = f64::from(tf);
    bm25_idf(df, n) * tf * (K1 + 1.0) / (tf + bm25_norm(dl, avgdl))
}

/// BM25's inverse document frequency of a term in `df` of `n` documents.
pub fn bm25_idf(df: u64, n: u64) -> f64 {
    let (df, n) = (df as f64, n.max(1) as f64);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

/// BM25's length normalisation of a document of `dl` tokens.
pub fn bm25_norm(dl: u8, avgdl: f64) -> f64 {
    K1 * (1.0 - B + B * f64::from(dl) / avgdl.max(1.0))
}

/// The mild recency boost NIP-50 suggests: up to +10% for the newest document, by its
/// place in insertion order (`rank` of `of`, 0 = oldest).
pub fn recency_boost(rank: u64, of: u64) -> f64 {
    1.0 + 0.1 * (rank as f64 / of.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<SearchQuery, String> {
        SearchQuery::parse(s, 256)
    }

    #[test]
    fn parsing() {
        let q = p(r#"Nostr "Café society" include:spam language:EN foo:bar"#).expect("ok");
        assert_eq!(q.terms, ["cafe", "nostr", "society"]);
        assert!(q.include_spam);
        assert_eq!(q.language.as_deref(), Some("en"));
        let q = p("rust domain:www.Example.com").expect("ok");
        assert_eq!(q.terms, ["rust"]);
        assert_eq!(q.domain.as_deref(), Some("example.com"));
        assert_eq!(p("nostr:npub1abc").expect("ok").terms, ["nostr:npub1abc"]);
        assert!(p("").unwrap_err().starts_with("invalid: empty"));
        assert!(p("   ").unwrap_err().starts_with("invalid: empty"));
        assert!(p("!!! 🎉 ...")
            .unwrap_err()
            .starts_with("invalid: search has no words"));
        assert!(p("include:spam").unwrap_err().starts_with("invalid:"));
        assert!(p(&"a ".repeat(200))
            .unwrap_err()
            .contains("longer than 256"));
    }

    #[test]
    fn bm25_orders_sensibly() {
        // Rarer terms weigh more; more occurrences score more; shorter documents more.
        assert!(bm25(1, 10, 5, 1000, 10.0) > bm25(1, 10, 500, 1000, 10.0));
        assert!(bm25(3, 10, 5, 1000, 10.0) > bm25(1, 10, 5, 1000, 10.0));
        assert!(bm25(1, 5, 5, 1000, 10.0) > bm25(1, 50, 5, 1000, 10.0));
        assert!(bm25(1, 10, 1000, 1000, 10.0) > 0.0);
        assert!(recency_boost(10, 10) > recency_boost(0, 10));
    }
}
