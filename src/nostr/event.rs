//! Nostr events: structural validation with strfry's reasons, the canonical stored JSON,
//! and the id preimage. Pure: no I/O, no clock (the caller passes `now`).

use std::borrow::Cow;
use std::fmt;

use sha2::{Digest, Sha256};

use super::hex;
use super::json::{write_str, write_u64};
use super::kinds::{self, KindClass};
use super::tags::{self, PackedTags, Tags};
use super::tape::{Json, JsonParser};

/// Per-event size limits (`events.*` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest canonical JSON accepted, in bytes.
    pub max_event_size: usize,
    pub max_num_tags: usize,
    /// Largest value (element 1) of a single-letter tag.
    pub max_tag_val_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_size: 65_536,
            max_num_tags: 2_000,
            max_tag_val_size: 1_024,
        }
    }
}

/// Acceptance window for `created_at` (`events.reject*Seconds`); relay ingest only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    pub newer_than_secs: u64,
    pub older_than_secs: u64,
    pub ephemeral_older_than_secs: u64,
}

impl Default for TimeWindow {
    fn default() -> Self {
        TimeWindow {
            newer_than_secs: 900,
            older_than_secs: 94_608_000,
            ephemeral_older_than_secs: 60,
        }
    }
}

/// Why an event was refused; sent as `["OK",id,false,"invalid: <reason>"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub Cow<'static, str>);

impl Invalid {
    pub(crate) fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Invalid(reason.into())
    }

    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid: {}", self.0)
    }
}

impl std::error::Error for Invalid {}

/// A structurally valid event. Its id and signature are checked separately
/// ([`Event::check_id`], [`super::verify`]) so callers can order the cheap checks first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: [u8; 32],
    pub pubkey: [u8; 32],
    pub sig: [u8; 64],
    pub created_at: u64,
    pub kind: u64,
    pub tags: Tags,
    pub content: String,
    /// NIP-40 expiry, from the first `expiration` tag.
    pub expiration: Option<u64>,
    packed_tags: Vec<u8>,
    /// Canonical JSON (see [`Event::json`]).
    json: Vec<u8>,
    tags_at: (u32, u32),
    content_at: (u32, u32),
}

// Offsets of the fixed-width fields in the canonical JSON.
const ID_AT: usize = br#"{"id":""#.len();
const PUBKEY_AT: usize = ID_AT + 64 + br#"","pubkey":""#.len();

impl Event {
    /// Parses one event object from raw JSON bytes (which are unescaped in place).
    pub fn parse(
        input: &mut [u8],
        parser: &mut JsonParser,
        limits: &Limits,
    ) -> Result<Event, Invalid> {
        match parser.parse(input, |v| Event::from_json(v, limits)) {
            Ok(r) => r,
            Err(e) => Err(Invalid::new(format!("unparseable event: {e}"))),
        }
    }

    /// Validates an event object already on a simd-json tape.
    pub fn from_json(v: Json<'_, '_>, limits: &Limits) -> Result<Event, Invalid> {
        let obj = v
            .object()
            .ok_or_else(|| Invalid::new("event is not an object"))?;
        let mut f: [Option<Json<'_, '_>>; 7] = [None; 7];
        for (key, val) in obj {
            let slot = match key {
                "id" => 0,
                "pubkey" => 1,
                "created_at" => 2,
                "kind" => 3,
                "tags" => 4,
                "content" => 5,
                "sig" => 6,
                _ => continue, // unknown top-level fields are dropped
            };
            if f[slot].replace(val).is_some() {
                return Err(Invalid::new(format!("duplicate field: {key}")));
            }
        }
        const NAMES: [&str; 7] = [
            "id",
            "pubkey",
            "created_at",
            "kind",
            "tags",
            "content",
            "sig",
        ];
        let field =
            |i: usize| f[i].ok_or_else(|| Invalid::new(format!("missing field: {}", NAMES[i])));

        let id = hex_field::<32>(field(0)?, "id", true)?;
        let pubkey = hex_field::<32>(field(1)?, "pubkey", true)?;
        let sig = hex_field::<64>(field(6)?, "sig", false)?;
        let uint = |v: Json<'_, '_>, name: &str| {
            v.as_u64()
                .ok_or_else(|| Invalid::new(format!("event {name} field {}", v.not_u64_reason())))
        };
        let created_at = uint(field(2)?, "created_at")?;
        let kind = uint(field(3)?, "kind")?;
        let content = field(5)?
            .as_str()
            .ok_or_else(|| Invalid::new("event content field was not a string"))?;
        let tags = tags_from_json(field(4)?, limits)?;
        Event::assemble(
            Header {
                id,
                pubkey,
                sig,
                created_at,
                kind,
            },
            tags,
            content.to_owned(),
            limits,
        )
    }

    /// Checks the semantic tag rules and builds the canonical JSON.
    pub fn assemble(
        h: Header,
        tags: Tags,
        content: String,
        limits: &Limits,
    ) -> Result<Event, Invalid> {
        if tags.len() > limits.max_num_tags {
            return Err(Invalid::new(format!("too many tags: {}", tags.len())));
        }
        let mut packed_tags = Vec::new();
        let mut expiration = None;
        let mut seen_expiration = false;
        for tag in tags.iter() {
            let name = tag.name();
            let Some(value) = tag.value() else { continue };
            if tags::indexed_name(name).is_some() {
                if value.len() > limits.max_tag_val_size {
                    return Err(Invalid::new(format!("tag val too large: {}", value.len())));
                }
                // Packing decodes e/p values, which is also their validation.
                if !tags::pack_tag(&mut packed_tags, name, value) {
                    let why = if value.len() == 64 {
                        "bad hex in"
                    } else {
                        "unexpected size for"
                    };
                    return Err(Invalid::new(format!("{why} fixed-size tag: {name}")));
                }
            } else if name == "expiration" && !seen_expiration {
                seen_expiration = true;
                expiration = Some(parse_expiration(value)?);
            }
        }
        if !seen_expiration {
            // A bare ["expiration"] with no value is as malformed as a bad number.
            if tags.find("expiration").is_some() {
                return Err(Invalid::new("invalid expiration"));
            }
        }
        if h.kind == kinds::KIND_DELETION {
            for tag in tags.iter().filter(|t| t.name() == "a") {
                let addr = tag
                    .value()
                    .and_then(Address::parse)
                    .ok_or_else(|| Invalid::new("malformed a tag in deletion"))?;
                if addr.pubkey != h.pubkey {
                    return Err(Invalid::new("can't delete other user's events"));
                }
            }
        }

        let mut json = Vec::with_capacity(256 + content.len() + tags.len() * 80);
        json.extend_from_slice(br#"{"id":""#);
        hex::encode_into(&h.id, &mut json);
        json.extend_from_slice(br#"","pubkey":""#);
        hex::encode_into(&h.pubkey, &mut json);
        json.extend_from_slice(br#"","created_at":"#);
        write_u64(&mut json, h.created_at);
        json.extend_from_slice(br#","kind":"#);
        write_u64(&mut json, h.kind);
        json.extend_from_slice(br#","tags":"#);
        let tags_start = json.len();
        write_tags(&mut json, &tags);
        let tags_end = json.len();
        json.extend_from_slice(br#","content":"#);
        let content_start = json.len();
        write_str(&mut json, &content);
        let content_end = json.len();
        json.extend_from_slice(br#","sig":""#);
        hex::encode_into(&h.sig, &mut json);
        json.extend_from_slice(br#""}"#);
        if json.len() > limits.max_event_size {
            return Err(Invalid::new(format!("event too large: {}", json.len())));
        }
        Ok(Event {
            id: h.id,
            pubkey: h.pubkey,
            sig: h.sig,
            created_at: h.created_at,
            kind: h.kind,
            tags,
            content,
            expiration,
            packed_tags,
            tags_at: (tags_start as u32, tags_end as u32),
            content_at: (content_start as u32, content_end as u32),
            json,
        })
    }

    /// The canonical JSON, stored and sent as-is: keys in NIP-01 order
    /// (`id pubkey created_at kind tags content sig`), no whitespace, `JSON.stringify` escaping.
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// The id as it appears in the JSON (lowercase hex).
    pub fn id_hex(&self) -> &str {
        std::str::from_utf8(&self.json[ID_AT..ID_AT + 64]).unwrap_or("")
    }

    pub fn pubkey_hex(&self) -> &str {
        std::str::from_utf8(&self.json[PUBKEY_AT..PUBKEY_AT + 64]).unwrap_or("")
    }

    fn slice(&self, (s, e): (u32, u32)) -> &[u8] {
        &self.json[s as usize..e as usize]
    }

    /// sha256 of `[0,pubkey,created_at,kind,tags,content]`, hashed from the pieces of the
    /// canonical JSON without building the preimage.
    pub fn compute_id(&self) -> [u8; 32] {
        id_hash(
            &self.json[PUBKEY_AT..PUBKEY_AT + 64],
            self.created_at,
            self.kind,
            self.slice(self.tags_at),
            self.slice(self.content_at),
        )
    }

    /// The id preimage itself (for diagnostics and tests; hashing does not build it).
    pub fn preimage(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.json.len());
        out.extend_from_slice(b"[0,\"");
        out.extend_from_slice(&self.json[PUBKEY_AT..PUBKEY_AT + 64]);
        out.extend_from_slice(b"\",");
        write_u64(&mut out, self.created_at);
        out.push(b',');
        write_u64(&mut out, self.kind);
        out.push(b',');
        out.extend_from_slice(self.slice(self.tags_at));
        out.push(b',');
        out.extend_from_slice(self.slice(self.content_at));
        out.push(b']');
        out
    }

    pub fn check_id(&self) -> Result<(), Invalid> {
        if self.compute_id() == self.id {
            Ok(())
        } else {
            Err(Invalid::new("bad event id"))
        }
    }

    /// strfry's `created_at` window and NIP-40; applied to live relay input only, never to
    /// imported or synced history.
    pub fn check_time(&self, now: u64, w: &TimeWindow) -> Result<(), Invalid> {
        if self.created_at > now.saturating_add(w.newer_than_secs) {
            return Err(Invalid::new("created_at too late"));
        }
        if self.created_at < now.saturating_sub(w.older_than_secs) {
            return Err(Invalid::new("created_at too early"));
        }
        if self.class() == KindClass::Ephemeral
            && self.created_at < now.saturating_sub(w.ephemeral_older_than_secs)
        {
            return Err(Invalid::new("ephemeral event expired"));
        }
        if self.is_expired(now) {
            return Err(Invalid::new("event expired"));
        }
        Ok(())
    }

    /// Expired (NIP-40) at `now`, as `Record::is_expired` says of a stored one.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expiration.is_some_and(|e| e <= now)
    }

    pub fn class(&self) -> KindClass {
        kinds::classify(self.kind)
    }

    /// The d tag that keys an addressable event: the value of the first `d` tag that has an
    /// indexable value (≤255 bytes), else "" — strfry's rule, which reads it from the packed
    /// tags, so the store can recompute it from a record. Replaceable events always use ""
    /// (strfry puts a virtual empty `d` first).
    pub fn d_tag(&self) -> &str {
        match self.class() {
            KindClass::Addressable => self
                .tags
                .iter()
                .filter(|t| t.name() == "d")
                .filter_map(|t| t.value())
                .find(|v| v.len() <= tags::MAX_INDEXED_VALUE)
                .unwrap_or(""),
            _ => "",
        }
    }

    /// Indexable tags (single-letter name, value ≤255 bytes, `e`/`p` as raw 32 bytes).
    pub fn packed_tags(&self) -> PackedTags<'_> {
        PackedTags(&self.packed_tags)
    }

    /// For a kind-5 deletion: the `a` addresses it names (all parse: checked on assembly).
    pub fn deleted_addresses(&self) -> impl Iterator<Item = Address<'_>> + '_ {
        let is_deletion = self.kind == kinds::KIND_DELETION;
        self.tags
            .iter()
            .filter(move |t| is_deletion && t.name() == "a")
            .filter_map(|t| t.value().and_then(Address::parse))
    }

    /// Does the content embed a NIP-70 protected event (a repost we must refuse)?
    pub fn embeds_protected(&self) -> bool {
        (self.kind == kinds::KIND_REPOST || self.kind == kinds::KIND_GENERIC_REPOST)
            && self.content.contains(r#"["-"]"#)
    }

    /// NIP-70: carries a `["-"]` tag.
    pub fn is_protected(&self) -> bool {
        self.tags.iter().any(|t| t.name() == "-")
    }
}

/// The fixed fields of an event, for [`Event::assemble`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: [u8; 32],
    pub pubkey: [u8; 32],
    pub sig: [u8; 64],
    pub created_at: u64,
    pub kind: u64,
}

/// A NIP-01 address `kind:pubkey:d` as used in `a` tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address<'a> {
    pub kind: u64,
    pub pubkey: [u8; 32],
    pub d: &'a str,
}

impl<'a> Address<'a> {
    /// Parses `kind:pubkey:d`; the `:d` part may be left out for replaceable kinds.
    pub fn parse(s: &'a str) -> Option<Address<'a>> {
        let (kind, rest) = s.split_once(':')?;
        if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let kind = kind.parse().ok()?;
        let (pk, d) = match rest.split_once(':') {
            Some((pk, d)) => (pk, d),
            None => (rest, ""),
        };
        let pubkey = hex::decode_lower::<32>(pk.as_bytes())?;
        Some(Address { kind, pubkey, d })
    }
}

fn hex_field<const N: usize>(
    v: Json<'_, '_>,
    name: &'static str,
    lower_only: bool,
) -> Result<[u8; N], Invalid> {
    let s = v
        .as_str()
        .ok_or_else(|| Invalid::new(format!("event {name} field was not a string")))?;
    if s.len() != N * 2 {
        return Err(Invalid::new(format!("unexpected {name} size")));
    }
    let decoded = if lower_only {
        hex::decode_lower::<N>(s.as_bytes())
    } else {
        hex::decode_any::<N>(s.as_bytes())
    };
    decoded.ok_or_else(|| Invalid::new(format!("event {name} field was not lowercase hex")))
}

fn tags_from_json(v: Json<'_, '_>, limits: &Limits) -> Result<Tags, Invalid> {
    let arr = v
        .array()
        .ok_or_else(|| Invalid::new("tags field not an array"))?;
    if arr.len() > limits.max_num_tags {
        return Err(Invalid::new(format!("too many tags: {}", arr.len())));
    }
    let mut tags = Tags::default();
    for tag in arr {
        let fields = tag
            .array()
            .ok_or_else(|| Invalid::new("tag in tags field was not an array"))?;
        if fields.is_empty() {
            return Err(Invalid::new("too few fields in tag"));
        }
        for (i, f) in fields.enumerate() {
            let s = f.as_str().ok_or_else(|| {
                Invalid::new(if i == 0 {
                    "tag name was not a string"
                } else {
                    "tag val was not a string"
                })
            })?;
            tags.push_field(s);
        }
        tags.end_tag();
    }
    Ok(tags)
}

fn parse_expiration(value: &str) -> Result<u64, Invalid> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Invalid::new("non-digit character"));
    }
    match value.parse::<u64>() {
        Ok(n) if n >= 100 => Ok(n),
        _ => Err(Invalid::new("invalid expiration")),
    }
}

/// Writes tags as a JSON array of arrays of strings.
pub fn write_tags(out: &mut Vec<u8>, tags: &Tags) {
    out.push(b'[');
    for (i, tag) in tags.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        for (j, f) in tag.fields().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            write_str(out, f);
        }
        out.push(b']');
    }
    out.push(b']');
}

/// sha256 of the id preimage `[0,"<pubkey>",<created_at>,<kind>,<tags>,<content>]`, given
/// the pubkey hex and the already-serialised tags and content.
pub fn id_hash(
    pubkey_hex: &[u8],
    created_at: u64,
    kind: u64,
    tags_json: &[u8],
    content_json: &[u8],
) -> [u8; 32] {
    let mut nums = Vec::with_capacity(48);
    nums.extend_from_slice(b"\",");
    write_u64(&mut nums, created_at);
    nums.push(b',');
    write_u64(&mut nums, kind);
    nums.push(b',');
    let mut h = Sha256::new();
    h.update(b"[0,\"");
    h.update(pubkey_hex);
    h.update(&nums);
    h.update(tags_json);
    h.update(b",");
    h.update(content_json);
    h.update(b"]");
    h.finalize().into()
}

/// Reads the `id` of a (possibly invalid) event object, for the `OK` of a rejected event.
pub fn peek_id(v: Json<'_, '_>) -> Option<String> {
    let (_, id) = v.object()?.find(|(k, _)| *k == "id")?;
    let s = id.as_str()?;
    hex::decode_lower::<32>(s.as_bytes()).map(|_| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PK: &str = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

    fn ev_json(extra: &str) -> String {
        format!(
            r#"{{"id":"{id}","pubkey":"{PK}","created_at":1700000000,"kind":1,"tags":[["e","{id}"],["t","nostr"]],"content":"hi\n","sig":"{sig}"{extra}}}"#,
            id = "a".repeat(64),
            sig = "b".repeat(128),
        )
    }

    fn parse(s: &str) -> Result<Event, Invalid> {
        let mut p = JsonParser::new();
        Event::parse(&mut s.as_bytes().to_vec(), &mut p, &Limits::default())
    }

    fn reason(s: &str) -> String {
        parse(s)
            .err()
            .map(|e| e.reason().to_owned())
            .unwrap_or_default()
    }

    #[test]
    fn canonical_form_reorders_and_drops_unknown_fields() {
        let src = format!(
            r#"{{"sig":"{}","content":"x","tags":[],"kind":7,"created_at":5,"pubkey":"{PK}","id":"{}","extra":[1,2]}}"#,
            "B".repeat(128),
            "c".repeat(64)
        );
        let ev = parse(&src).expect("valid");
        let want = format!(
            r#"{{"id":"{}","pubkey":"{PK}","created_at":5,"kind":7,"tags":[],"content":"x","sig":"{}"}}"#,
            "c".repeat(64),
            "b".repeat(128)
        );
        assert_eq!(String::from_utf8_lossy(ev.json()), want);
        assert_eq!(ev.id_hex(), "c".repeat(64));
        assert_eq!(ev.pubkey_hex(), PK);
        // Reparsing the canonical form is a fixed point.
        assert_eq!(parse(&want).expect("valid").json(), ev.json());
    }

    #[test]
    fn strfry_reasons() {
        let base = ev_json("");
        assert_eq!(reason("[1]"), "event is not an object");
        // strfry says "was not an integer" for all of these; the prefix is kept and the
        // reason says what is wrong.
        assert_eq!(
            reason(&base.replace(r#""kind":1"#, r#""kind":-1"#)),
            "event kind field was negative"
        );
        assert_eq!(
            reason(&base.replace(r#""kind":1"#, r#""kind":1.5"#)),
            "event kind field was not a whole number"
        );
        assert_eq!(
            reason(&base.replace("1700000000", "\"1700000000\"")),
            "event created_at field was a string, not a number"
        );
        assert_eq!(
            reason(&base.replace("1700000000", "-200")),
            "event created_at field was negative"
        );
        assert_eq!(
            reason(&base.replace("1700000000", "1e20")),
            "event created_at field was out of range"
        );
        assert_eq!(
            reason(&base.replace("1700000000", "null")),
            "event created_at field was null, not a number"
        );
        assert_eq!(
            reason(&base.replace(r#""content":"hi\n""#, r#""content":1"#)),
            "event content field was not a string"
        );
        assert_eq!(
            reason(&base.replace(&"a".repeat(64), &"a".repeat(63))),
            "unexpected id size"
        );
        assert_eq!(
            reason(&base.replace(PK, &PK.to_uppercase())),
            "event pubkey field was not lowercase hex"
        );
        assert_eq!(
            reason(&base.replace(&"b".repeat(128), "bb")),
            "unexpected sig size"
        );
        assert_eq!(
            reason(&base.replace(r#""tags":["#, r#""tags":{"a":1},"x":["#)),
            "tags field not an array"
        );
        assert_eq!(
            reason(&base.replace(r#"["t","nostr"]"#, "[]")),
            "too few fields in tag"
        );
        assert_eq!(
            reason(&base.replace(r#"["t","nostr"]"#, "\"t\"")),
            "tag in tags field was not an array"
        );
        assert_eq!(
            reason(&base.replace(r#"["t","nostr"]"#, "[1]")),
            "tag name was not a string"
        );
        assert_eq!(
            reason(&base.replace(r#"["t","nostr"]"#, r#"["t","a",2]"#)),
            "tag val was not a string"
        );
        assert_eq!(
            reason(&base.replace(r#"["t","nostr"]"#, r#"["e","abc"]"#)),
            "unexpected size for fixed-size tag: e"
        );
        assert_eq!(
            reason(&base.replace(r#","sig":"#, r#","id":"x","sig":"#)),
            "duplicate field: id"
        );
        assert_eq!(
            reason(&base.replace(r#""content":"hi\n","#, "")),
            "missing field: content"
        );
    }

    #[test]
    fn limits() {
        let base = ev_json("");
        let many: Vec<String> = (0..2001).map(|i| format!(r#"["x","{i}"]"#)).collect();
        assert_eq!(
            reason(&base.replace(r#"["t","nostr"]"#, &many.join(","))),
            "too many tags: 2002"
        );
        let long = "v".repeat(1025);
        assert_eq!(
            reason(&base.replace(r#"["t","nostr"]"#, &format!(r#"["t","{long}"]"#))),
            "tag val too large: 1025"
        );
        // Multi-letter names are not limited by maxTagValSize.
        assert!(parse(&base.replace(r#"["t","nostr"]"#, &format!(r#"["tt","{long}"]"#))).is_ok());
        let big = "z".repeat(65_536);
        assert!(reason(&base.replace("hi\\n", &big)).starts_with("event too large: "));
    }

    #[test]
    fn expiration_rules() {
        let with = |v: &str| {
            ev_json("").replace(
                r#"["t","nostr"]"#,
                &format!(r#"["expiration",{v}],["expiration","x"]"#),
            )
        };
        assert_eq!(
            parse(&with("\"1700000100\"")).expect("ok").expiration,
            Some(1_700_000_100)
        );
        assert_eq!(reason(&with("\"99\"")), "invalid expiration");
        assert_eq!(reason(&with("\"\"")), "invalid expiration");
        assert_eq!(reason(&with("\"12a\"")), "non-digit character");
        assert_eq!(reason(&with("\"-5\"")), "non-digit character");
        assert_eq!(
            reason(&with("\"99999999999999999999999\"")),
            "invalid expiration"
        );
        let bare = ev_json("").replace(r#"["t","nostr"]"#, r#"["expiration"]"#);
        assert_eq!(reason(&bare), "invalid expiration");
    }

    #[test]
    fn time_window() {
        let ev = parse(&ev_json("")).expect("ok");
        let w = TimeWindow::default();
        assert!(ev.check_time(1_700_000_000, &w).is_ok());
        assert_eq!(
            ev.check_time(1_700_000_000 - 901, &w).err().map(|e| e.0),
            Some("created_at too late".into())
        );
        assert_eq!(
            ev.check_time(1_700_000_000 + 94_608_001, &w)
                .err()
                .map(|e| e.0),
            Some("created_at too early".into())
        );
    }

    #[test]
    fn deletion_a_tags() {
        let del = |a: &str| {
            ev_json("")
                .replace(r#""kind":1"#, r#""kind":5"#)
                .replace(r#"["t","nostr"]"#, &format!(r#"["a","{a}"]"#))
        };
        let ok = parse(&del(&format!("30023:{PK}:my-post"))).expect("valid");
        let addrs: Vec<_> = ok.deleted_addresses().collect();
        assert_eq!(addrs.len(), 1);
        assert_eq!((addrs[0].kind, addrs[0].d), (30023, "my-post"));
        assert!(parse(&del(&format!("0:{PK}"))).is_ok());
        assert_eq!(reason(&del("30023:zz:d")), "malformed a tag in deletion");
        assert_eq!(
            reason(&del(&format!("x:{PK}:d"))),
            "malformed a tag in deletion"
        );
        assert_eq!(
            reason(&del(&format!("1:{}:d", "1".repeat(64)))),
            "can't delete other user's events"
        );
    }

    #[test]
    fn d_tag_rule() {
        let with = |kind: u64, tags: &str| {
            parse(
                &ev_json("")
                    .replace(r#""kind":1"#, &format!(r#""kind":{kind}"#))
                    .replace(r#"["t","nostr"]"#, tags),
            )
            .expect("valid")
        };
        assert_eq!(with(30000, r#"["d","a"],["d","b"]"#).d_tag(), "a");
        assert_eq!(with(30000, r#"["t","x"]"#).d_tag(), "");
        assert_eq!(with(30000, r#"["d"]"#).d_tag(), "");
        assert_eq!(with(30000, r#"["d"],["d","b"]"#).d_tag(), "b");
        let long = format!(r#"["d","{}"],["d","c"]"#, "x".repeat(256));
        assert_eq!(with(30000, &long).d_tag(), "c");
        assert_eq!(with(10002, r#"["d","a"]"#).d_tag(), "");
        let packed: Vec<_> = with(1, r#"["d","a"]"#)
            .packed_tags()
            .map(|(n, v)| (n, v.len()))
            .collect();
        assert_eq!(packed, vec![(b'e', 32), (b'd', 1)]);
    }
}
