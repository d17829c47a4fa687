//! NIP-01 filters: parsing with strfry's rules and errors, and a compiled form (sorted,
//! de-duplicated arrays; `e`/`p` values as raw bytes) for fast `matches`.

use std::fmt;

use super::event::Event;
use super::hex;
use super::tags::{PackedTags, MAX_INDEXED_VALUE};
use super::tape::Json;
use crate::search::doc::Terms;
use crate::search::query::SearchQuery;

/// What a filter is matched against: a parsed event or a stored record read in place.
pub trait EventView {
    fn id(&self) -> &[u8; 32];
    fn pubkey(&self) -> &[u8; 32];
    fn created_at(&self) -> u64;
    fn kind(&self) -> u64;
    fn packed_tags(&self) -> PackedTags<'_>;
    /// The event's indexed search terms, if it is in the search index (stored events read
    /// through `store::search::StoredEvent`); `None` never matches a `search` filter.
    fn search_terms(&self) -> Option<&Terms> {
        None
    }
}

impl EventView for Event {
    fn id(&self) -> &[u8; 32] {
        &self.id
    }
    fn pubkey(&self) -> &[u8; 32] {
        &self.pubkey
    }
    fn created_at(&self) -> u64 {
        self.created_at
    }
    fn kind(&self) -> u64 {
        self.kind
    }
    fn packed_tags(&self) -> PackedTags<'_> {
        Event::packed_tags(self)
    }
}

/// Why a filter was refused; sent as `CLOSED … "error: bad req: <reason>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError(pub String);

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError(msg.into()))
}

/// A tag condition: the event has a tag `name` whose value is one of `values` (sorted).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagFilter {
    pub name: u8,
    pub values: Vec<Vec<u8>>,
}

/// A compiled filter. Absent fields match everything; the arrays are sorted and unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Filter {
    pub ids: Option<Vec<[u8; 32]>>,
    pub authors: Option<Vec<[u8; 32]>>,
    pub kinds: Option<Vec<u64>>,
    /// Sorted by tag name.
    pub tags: Vec<TagFilter>,
    pub since: u64,
    pub until: u64,
    /// As requested; the relay clamps it to `relay.maxFilterLimit`.
    pub limit: Option<u64>,
    /// An empty array made this filter unsatisfiable (strfry drops such filters silently).
    pub never: bool,
    /// NIP-50 `search`, parsed (`crate::search::query`); `matches` ignores it (the caller
    /// checks it against the event's terms, see `matches_search`).
    pub search: Option<Box<SearchQuery>>,
    /// NIP-45: the HyperLogLog offset when the first tag attribute (as sent) has exactly
    /// one value. Not part of the filter's identity (it depends on the order as sent).
    pub hll_offset: HllOffset,
}

/// [`Filter::hll_offset`]: equal and hashed alike whatever it holds, so filters equal in
/// canonical form stay equal.
#[derive(Debug, Clone, Copy, Default)]
pub struct HllOffset(pub Option<u8>);

impl PartialEq for HllOffset {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for HllOffset {}
impl std::hash::Hash for HllOffset {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// Longest `search` string accepted (bytes): longer ones are refused with a `CLOSED` reason
/// rather than cut, so a client never gets results for a query it did not send.
pub const MAX_SEARCH_BYTES: usize = 512;

impl Filter {
    /// The filter that matches every event (`{}`).
    pub fn all() -> Filter {
        Filter {
            until: u64::MAX,
            ..Filter::default()
        }
    }

    /// Parses one filter object. `max_tags` is `relay.maxTagsPerFilter`.
    pub fn from_json(v: Json<'_, '_>, max_tags: usize) -> Result<Filter, FilterError> {
        Self::from_json_limited(v, max_tags, usize::MAX)
    }

    /// Like [`Filter::from_json`], refusing an `ids`, `authors`, `kinds` or tag array of
    /// more than `max_values` items (`relay.maxFilterValues`), before it is copied.
    pub fn from_json_limited(
        v: Json<'_, '_>,
        max_tags: usize,
        max_values: usize,
    ) -> Result<Filter, FilterError> {
        let Some(members) = v.object() else {
            return err("filter is not an object");
        };
        let mut f = Filter::all();
        let mut seen: Vec<&str> = Vec::new();
        for (key, val) in members {
            if seen.contains(&key) {
                return err(format!("duplicate filter item: {key}"));
            }
            seen.push(key);
            if val.array().is_some_and(|a| a.len() > max_values) {
                return err(format!("too many values in {key} (max {max_values})"));
            }
            match key {
                "ids" => f.ids = Some(parse_hex32(val, key)?),
                "authors" => f.authors = Some(parse_hex32(val, key)?),
                "kinds" => {
                    let arr = array(val, key)?;
                    let mut kinds = Vec::with_capacity(arr.len());
                    for k in arr {
                        match k.as_u64() {
                            Some(n) => kinds.push(n),
                            None => return err("error parsing kinds: expected unsigned integers"),
                        }
                    }
                    kinds.sort_unstable();
                    kinds.dedup();
                    f.kinds = Some(kinds);
                }
                "since" => f.since = uint(val, key)?,
                "until" => f.until = uint(val, key)?,
                "limit" => f.limit = Some(uint(val, key)?),
                "search" => {
                    let Some(text) = val.as_str() else {
                        return err("invalid: search is not a string");
                    };
                    f.search = Some(Box::new(
                        SearchQuery::parse(text, MAX_SEARCH_BYTES).map_err(FilterError)?,
                    ));
                }
                _ => {
                    let Some(name) = key.strip_prefix('#') else {
                        return err(format!("unrecognised filter item: {key}"));
                    };
                    let &[c] = name.as_bytes() else {
                        return err("unindexed tag filter");
                    };
                    let tf = parse_tag_values(c, val, key)?;
                    if f.tags.is_empty() && tf.values.len() == 1 {
                        // The value as sent (e/p values are decoded to bytes).
                        let first = val
                            .array()
                            .and_then(|mut a| a.next())
                            .and_then(|v| v.as_str());
                        f.hll_offset = HllOffset(first.map(crate::search::hll::offset));
                    }
                    f.tags.push(tf);
                }
            }
        }
        if f.tags.len() > max_tags {
            return err("too many tags in filter");
        }
        f.tags.sort_unstable_by_key(|t| t.name);
        f.never = f.ids.as_ref().is_some_and(Vec::is_empty)
            || f.authors.as_ref().is_some_and(Vec::is_empty)
            || f.kinds.as_ref().is_some_and(Vec::is_empty)
            || f.tags.iter().any(|t| t.values.is_empty())
            || f.since > f.until;
        Ok(f)
    }

    /// What a live subscription holds for this filter, in values: its ids, authors, kinds
    /// and tag values, and at least 1 (a filter costs something even with none).
    pub fn values(&self) -> usize {
        let n = self.ids.as_ref().map_or(0, Vec::len)
            + self.authors.as_ref().map_or(0, Vec::len)
            + self.kinds.as_ref().map_or(0, Vec::len)
            + self.tags.iter().map(|t| t.values.len()).sum::<usize>();
        n.max(1)
    }

    /// Canonical JSON: keys sorted (`#x` tags, `authors`, `ids`, `kinds`, `limit`, `since`,
    /// `until`), arrays sorted and unique, default bounds left out. Equal filters give equal
    /// text, so it names stored negentropy trees and is what a client sends in NEG-OPEN.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(64);
        out.push(b'{');
        let mut first = true;
        let mut key = |out: &mut Vec<u8>, k: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            crate::nostr::json::write_str(out, k);
            out.push(b':');
        };
        let hexes = |out: &mut Vec<u8>, v: &[[u8; 32]]| {
            out.push(b'[');
            for (i, b) in v.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                hex::encode_into(b, out);
                out.push(b'"');
            }
            out.push(b']');
        };
        for t in &self.tags {
            key(&mut out, &format!("#{}", t.name as char));
            out.push(b'[');
            for (i, v) in t.values.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if t.name == b'e' || t.name == b'p' {
                    out.push(b'"');
                    hex::encode_into(v, &mut out);
                    out.push(b'"');
                } else {
                    crate::nostr::json::write_str(&mut out, &String::from_utf8_lossy(v));
                }
            }
            out.push(b']');
        }
        if let Some(a) = &self.authors {
            key(&mut out, "authors");
            hexes(&mut out, a);
        }
        if let Some(ids) = &self.ids {
            key(&mut out, "ids");
            hexes(&mut out, ids);
        }
        if let Some(kinds) = &self.kinds {
            key(&mut out, "kinds");
            let list: Vec<String> = kinds.iter().map(u64::to_string).collect();
            out.extend_from_slice(format!("[{}]", list.join(",")).as_bytes());
        }
        if let Some(l) = self.limit {
            key(&mut out, "limit");
            out.extend_from_slice(l.to_string().as_bytes());
        }
        if let Some(q) = &self.search {
            key(&mut out, "search");
            crate::nostr::json::write_str(&mut out, &q.raw);
        }
        let mut num = |out: &mut Vec<u8>, k: &str, n: u64| {
            key(out, k);
            out.extend_from_slice(n.to_string().as_bytes());
        };
        if self.since > 0 {
            num(&mut out, "since", self.since);
        }
        if self.until < u64::MAX {
            num(&mut out, "until", self.until);
        }
        out.push(b'}');
        // Only ASCII and valid UTF-8 went in (tag values are strings from JSON).
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Does an event with these indexed terms satisfy `search` (true without one)?
    pub fn matches_search(&self, terms: &Terms) -> bool {
        self.search.as_ref().is_none_or(|q| q.matches(terms))
    }

    /// `matches`, and `search` against the event's indexed terms (an event that is not
    /// in the search index never matches a `search` filter).
    pub fn matches_with_search<E: EventView + ?Sized>(&self, ev: &E) -> bool {
        self.matches(ev)
            && self
                .search
                .as_ref()
                .is_none_or(|q| ev.search_terms().is_some_and(|t| q.matches(t)))
    }

    /// Does `ev` satisfy every condition? (`limit` is not a matching condition, and
    /// `search` is checked apart: see `matches_search`.)
    pub fn matches<E: EventView + ?Sized>(&self, ev: &E) -> bool {
        if self.never {
            return false;
        }
        let t = ev.created_at();
        if t < self.since || t > self.until {
            return false;
        }
        if let Some(ids) = &self.ids {
            if ids.binary_search(ev.id()).is_err() {
                return false;
            }
        }
        if let Some(authors) = &self.authors {
            if authors.binary_search(ev.pubkey()).is_err() {
                return false;
            }
        }
        if let Some(kinds) = &self.kinds {
            if kinds.binary_search(&ev.kind()).is_err() {
                return false;
            }
        }
        self.tags.iter().all(|tf| {
            ev.packed_tags().any(|(name, value)| {
                name == tf.name
                    && tf
                        .values
                        .binary_search_by(|v| v.as_slice().cmp(value))
                        .is_ok()
            })
        })
    }
}

fn array<'t, 'i>(v: Json<'t, 'i>, key: &str) -> Result<super::tape::Elems<'t, 'i>, FilterError> {
    match v.array() {
        Some(a) => Ok(a),
        None => err(format!("{key} not an array")),
    }
}

fn uint(v: Json<'_, '_>, key: &str) -> Result<u64, FilterError> {
    match v.as_u64() {
        Some(n) => Ok(n),
        None => err(format!("{key} not an unsigned integer")),
    }
}

fn parse_hex32(v: Json<'_, '_>, key: &str) -> Result<Vec<[u8; 32]>, FilterError> {
    let arr = array(v, key)?;
    let mut out = Vec::with_capacity(arr.len());
    for item in arr {
        match item
            .as_str()
            .and_then(|s| hex::decode_any::<32>(s.as_bytes()))
        {
            Some(b) => out.push(b),
            None => return err(format!("error parsing {key}: expected 64 hex characters")),
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn parse_tag_values(name: u8, v: Json<'_, '_>, key: &str) -> Result<TagFilter, FilterError> {
    let arr = array(v, key)?;
    let fixed = name == b'e' || name == b'p';
    let mut values = Vec::with_capacity(arr.len());
    for item in arr {
        let Some(s) = item.as_str() else {
            return err(format!("error parsing {key}: expected strings"));
        };
        if fixed {
            match hex::decode_any::<32>(s.as_bytes()) {
                Some(b) => values.push(b.to_vec()),
                None => return err(format!("error parsing {key}: expected 64 hex characters")),
            }
        } else if s.len() > MAX_INDEXED_VALUE {
            // Longer values are never indexed, so they could never match.
            return err(format!(
                "error parsing {key}: value longer than {MAX_INDEXED_VALUE} bytes"
            ));
        } else {
            values.push(s.as_bytes().to_vec());
        }
    }
    values.sort_unstable();
    values.dedup();
    Ok(TagFilter { name, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_and_round_trips() {
        let parse = |s: &str| {
            crate::nostr::JsonParser::new()
                .parse(&mut s.as_bytes().to_vec(), |v| Filter::from_json(v, 10))
                .expect("json")
                .expect("filter")
        };
        let a = "a".repeat(64);
        let text = format!(
            r##"{{"until":9,"kinds":[7,1,1],"#t":["b","a\"q"],"authors":["{}"],"limit":5,"#e":["{}"]}}"##,
            a.to_uppercase(),
            a
        );
        let f = parse(&text);
        let canon = f.to_json();
        assert_eq!(
            canon,
            format!(
                r##"{{"#e":["{a}"],"#t":["a\"q","b"],"authors":["{a}"],"kinds":[1,7],"limit":5,"until":9}}"##
            )
        );
        assert_eq!(parse(&canon), f);
        assert_eq!(Filter::all().to_json(), "{}");
    }
    use crate::nostr::sign::Keys;
    use crate::nostr::tags::Tags;
    use crate::nostr::{JsonParser, Limits};

    fn filter(s: &str) -> Result<Filter, FilterError> {
        let mut p = JsonParser::new();
        p.parse(&mut s.as_bytes().to_vec(), |v| Filter::from_json(v, 3))
            .map_err(|e| FilterError(e.0))?
    }

    fn event(kind: u64, created_at: u64, tags: &[Vec<&str>]) -> Event {
        Keys::from_secret([3; 32])
            .expect("key")
            .sign(
                created_at,
                kind,
                Tags::from_vecs(tags),
                "x",
                &Limits::default(),
            )
            .expect("sign")
    }

    #[test]
    fn strfry_errors() {
        let e = |s: &str| filter(s).err().map(|e| e.0).unwrap_or_default();
        assert_eq!(e(r#"{"foo":1}"#), "unrecognised filter item: foo");
        assert_eq!(e(r##"{"#ab":["x"]}"##), "unindexed tag filter");
        assert_eq!(e(r##"{"#":["x"]}"##), "unindexed tag filter");
        assert_eq!(e(r#"{"ids":"x"}"#), "ids not an array");
        assert_eq!(
            e(r#"{"authors":["abcd"]}"#),
            "error parsing authors: expected 64 hex characters"
        );
        assert_eq!(
            e(r##"{"#e":["abcd"]}"##),
            "error parsing #e: expected 64 hex characters"
        );
        assert_eq!(
            e(r#"{"kinds":[-1]}"#),
            "error parsing kinds: expected unsigned integers"
        );
        assert_eq!(e(r#"{"since":1.5}"#), "since not an unsigned integer");
        assert_eq!(e(r#"{"limit":-1}"#), "limit not an unsigned integer");
        assert_eq!(
            e(r##"{"#a":[],"#b":[],"#c":[],"#d":[]}"##),
            "too many tags in filter"
        );
        assert_eq!(
            e(r#"{"kinds":[1],"kinds":[2]}"#),
            "duplicate filter item: kinds"
        );
        assert_eq!(e("[]"), "filter is not an object");
    }

    #[test]
    fn compiles_sorted_unique() {
        let f = filter(r##"{"kinds":[3,1,3],"#t":["b","a","b"],"#e":["AA"]}"##);
        assert!(f.is_err());
        let f = filter(r##"{"kinds":[3,1,3],"#t":["b","a","b"],"limit":10}"##).expect("ok");
        assert_eq!(f.kinds, Some(vec![1, 3]));
        assert_eq!(f.tags[0].values, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(f.limit, Some(10));
        assert!(!f.never);
        assert!(filter(r#"{"kinds":[]}"#).expect("ok").never);
        assert!(filter(r#"{"since":5,"until":4}"#).expect("ok").never);
    }

    #[test]
    fn matching() {
        let pk_other = "ab".repeat(32);
        let ev = event(
            1,
            100,
            &[vec!["t", "nostr"], vec!["p", &pk_other], vec!["tt", "x"]],
        );
        let id = ev.id_hex().to_owned();
        let me = ev.pubkey_hex().to_owned();
        let yes = [
            "{}".to_string(),
            format!(r#"{{"ids":["{id}"]}}"#),
            format!(r#"{{"authors":["{}","{me}"]}}"#, "00".repeat(32)),
            r#"{"kinds":[0,1]}"#.into(),
            r#"{"since":100,"until":100}"#.into(),
            r##"{"#t":["x","nostr"]}"##.into(),
            format!(
                r##"{{"#p":["{}"],"#t":["nostr"]}}"##,
                pk_other.to_uppercase()
            ),
        ];
        for s in &yes {
            assert!(filter(s).expect(s).matches(&ev), "should match {s}");
        }
        let no = [
            format!(r#"{{"ids":["{}"]}}"#, "00".repeat(32)),
            r#"{"kinds":[2]}"#.into(),
            r#"{"since":101}"#.into(),
            r#"{"until":99}"#.into(),
            r##"{"#t":["nost"]}"##.into(),
            r##"{"#t":["nostr"],"#x":["y"]}"##.into(),
            r#"{"kinds":[]}"#.into(),
        ];
        for s in &no {
            assert!(!filter(s).expect(s).matches(&ev), "should not match {s}");
        }
    }
}
