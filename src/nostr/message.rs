//! Client → relay messages (decoded from one WebSocket text message) and relay → client
//! messages (encoded into a byte buffer). Every refusal carries the reply that explains it,
//! with the NIP-01 machine-readable prefix first (`error:`, `invalid:`, …).

use super::event::{peek_id, Event, Invalid, Limits};
use super::filter::Filter;
use super::hex;
use super::json::{write_str, write_u64};
use super::tape::{Json, JsonParser};

/// Longest subscription id, in bytes (strfry's `MAX_SUBID_SIZE`).
pub const MAX_SUB_ID: usize = 64;

/// A validated subscription id: 1–64 bytes, no control characters, `"` or `\`, so it is
/// written into replies without escaping.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubId(String);

impl SubId {
    pub fn new(s: &str) -> Result<SubId, &'static str> {
        if s.is_empty() || s.len() > MAX_SUB_ID {
            return Err("invalid subscription id length");
        }
        if s.bytes()
            .any(|b| b < 0x20 || b == 0x7f || b == b'"' || b == b'\\')
        {
            return Err("invalid character in subscription id");
        }
        Ok(SubId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Limits applied while decoding (from the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    pub event: Limits,
    /// `relay.maxReqFilterSize`
    pub max_filters: usize,
    /// `relay.maxTagsPerFilter`
    pub max_tags_per_filter: usize,
    /// `relay.maxFilterValues`: items in one `ids`/`authors`/`kinds`/tag array.
    pub max_values_per_filter: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            event: Limits::default(),
            max_filters: 200,
            max_tags_per_filter: 3,
            max_values_per_filter: usize::MAX,
        }
    }
}

/// A well-formed client message. Events are structurally valid; their id and signature
/// are checked by the caller ([`super::verify::check_event`]).
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMsg {
    Event(Box<Event>),
    Req {
        sub_id: SubId,
        filters: Vec<Filter>,
    },
    Count {
        sub_id: SubId,
        filters: Vec<Filter>,
    },
    Close {
        sub_id: SubId,
    },
    Auth(Box<Event>),
    NegOpen {
        sub_id: SubId,
        filter: Filter,
        msg: Vec<u8>,
    },
    NegMsg {
        sub_id: SubId,
        msg: Vec<u8>,
    },
    NegClose {
        sub_id: SubId,
    },
}

/// A refused client message and the reply it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsgError {
    /// `["NOTICE", text]`
    Notice(String),
    /// `["OK", id, false, "invalid: …"]`
    BadEvent { id: String, reason: Invalid },
    /// `["CLOSED", sub, reason]`; the sub id may be invalid, so it is escaped on output.
    Closed { sub_id: String, reason: String },
    /// `["NEG-ERR", sub, reason]`
    NegErr { sub_id: String, reason: String },
}

impl MsgError {
    /// The reply to send back.
    pub fn reply(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        match self {
            MsgError::Notice(text) => notice(&mut out, text),
            MsgError::BadEvent { id, reason } => ok(&mut out, id, false, &reason.to_string()),
            MsgError::Closed { sub_id, reason } => closed(&mut out, sub_id, reason),
            MsgError::NegErr { sub_id, reason } => neg_err(&mut out, sub_id, reason),
        }
        out
    }
}

fn bad_msg(why: impl std::fmt::Display) -> MsgError {
    MsgError::Notice(format!("error: bad msg: {why}"))
}

/// Decodes one client message. `Ok(None)` for a message that is only whitespace (strfry
/// ignores a bare `"\n"`, which some clients send as a keep-alive).
pub fn decode(
    input: &mut [u8],
    parser: &mut JsonParser,
    limits: &DecodeLimits,
) -> Result<Option<ClientMsg>, MsgError> {
    match input.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(None),
        Some(b'[') => {}
        Some(_) => return Err(bad_msg("unparseable message")),
    }
    // Parsed from a copy (a memcpy beside the parse), so a broken message can be explained
    // from the bytes the client sent.
    let mut copy = std::mem::take(&mut parser.scratch);
    copy.clear();
    copy.extend_from_slice(input);
    let r = parser.parse(&mut copy, |root| decode_root(root, limits));
    if copy.capacity() <= SCRATCH_KEPT {
        parser.scratch = copy;
    }
    match r {
        Ok(r) => r.map(Some),
        Err(e) => Err(explain(input, e)),
    }
}

/// Largest message copy a parser keeps for the next message.
const SCRATCH_KEPT: usize = 256 * 1024;

/// The answer to a message that is not valid JSON: where it breaks (simd-json places some
/// errors at byte 0), and an `OK` when it is an EVENT whose id can still be read.
fn explain(input: &[u8], e: super::tape::JsonError) -> MsgError {
    let simd = e.to_string();
    if !simd.starts_with("invalid JSON at byte") {
        // Depth and unicode errors already say what is wrong.
        return bad_msg(simd);
    }
    let text = super::diagnose::json_error(input).unwrap_or(simd);
    match super::diagnose::event_id(input) {
        Some(id) => MsgError::BadEvent {
            id,
            reason: super::event::Invalid(text.into()),
        },
        None => bad_msg(text),
    }
}

fn decode_root(root: Json<'_, '_>, limits: &DecodeLimits) -> Result<ClientMsg, MsgError> {
    let Some(mut arr) = root.array() else {
        return Err(bad_msg("message is not an array"));
    };
    let len = arr.len();
    if len < 2 {
        return Err(bad_msg("too few array elements"));
    }
    let cmd = arr
        .next()
        .and_then(|c| c.as_str())
        .ok_or_else(|| bad_msg("first element not a command like REQ"))?;
    // `len >= 2`, so the second element exists.
    let Some(second) = arr.next() else {
        return Err(bad_msg("too few array elements"));
    };
    match cmd {
        "EVENT" | "AUTH" => {
            let ev = Event::from_json(second, &limits.event).map_err(|reason| {
                match peek_id(second) {
                    Some(id) => MsgError::BadEvent { id, reason },
                    // Without an id an OK cannot be matched to anything: explain in a NOTICE.
                    None => MsgError::Notice(reason.to_string()),
                }
            })?;
            Ok(if cmd == "EVENT" {
                ClientMsg::Event(Box::new(ev))
            } else {
                ClientMsg::Auth(Box::new(ev))
            })
        }
        "REQ" | "COUNT" => {
            let sub = second.as_str().ok_or_else(|| {
                MsgError::Notice("error: bad req: subscription id was not a string".into())
            })?;
            let closed = |reason: String| MsgError::Closed {
                sub_id: sub.to_owned(),
                // NIP-50 search errors already carry NIP-01's `invalid:` prefix.
                reason: if reason.starts_with("invalid: ") {
                    reason
                } else {
                    format!("error: bad req: {reason}")
                },
            };
            let sub_id = SubId::new(sub).map_err(|e| closed(e.into()))?;
            if arr.is_empty() {
                return Err(closed("arr too small".into()));
            }
            if arr.len() > limits.max_filters {
                return Err(closed("arr too big".into()));
            }
            let filters = arr
                .map(|f| {
                    Filter::from_json_limited(
                        f,
                        limits.max_tags_per_filter,
                        limits.max_values_per_filter,
                    )
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| closed(e.0))?;
            Ok(if cmd == "REQ" {
                ClientMsg::Req { sub_id, filters }
            } else {
                ClientMsg::Count { sub_id, filters }
            })
        }
        "CLOSE" => {
            if len > 2 {
                return Err(MsgError::Notice("error: bad close: arr too big".into()));
            }
            let sub_id = sub_id_or_notice(second, "bad close")?;
            Ok(ClientMsg::Close { sub_id })
        }
        "NEG-OPEN" | "NEG-MSG" | "NEG-CLOSE" => decode_neg(cmd, second, arr, len, limits),
        _ => Err(bad_msg("unknown cmd")),
    }
}

fn sub_id_or_notice(v: Json<'_, '_>, what: &str) -> Result<SubId, MsgError> {
    let s = v.as_str().ok_or_else(|| {
        MsgError::Notice(format!("error: {what}: subscription id was not a string"))
    })?;
    SubId::new(s).map_err(|e| MsgError::Notice(format!("error: {what}: {e}")))
}

fn decode_neg<'t, 'i>(
    cmd: &str,
    second: Json<'t, 'i>,
    mut rest: super::tape::Elems<'t, 'i>,
    len: usize,
    limits: &DecodeLimits,
) -> Result<ClientMsg, MsgError> {
    let neg_notice = |why: &str| MsgError::Notice(format!("error: negentropy error: {why}"));
    let want = match cmd {
        "NEG-OPEN" => 4,
        "NEG-MSG" => 3,
        _ => 2,
    };
    if len < want {
        return Err(neg_notice("negentropy query missing elements"));
    }
    let sub_id = sub_id_or_notice(second, "negentropy error")?;
    let neg_err = |reason: &str| MsgError::NegErr {
        sub_id: sub_id.as_str().to_owned(),
        reason: reason.to_owned(),
    };
    match cmd {
        "NEG-CLOSE" => Ok(ClientMsg::NegClose { sub_id }),
        "NEG-MSG" => {
            let msg = rest
                .next()
                .and_then(|m| m.as_str())
                .and_then(|s| hex::decode_vec(s.as_bytes()));
            let msg = msg.ok_or_else(|| neg_err("invalid: negentropy message is not hex"))?;
            Ok(ClientMsg::NegMsg { sub_id, msg })
        }
        _ => {
            let Some(fv) = rest.next() else {
                return Err(neg_notice("negentropy query missing elements"));
            };
            if !fv.is_object() {
                return Err(neg_err("invalid: negentropy filter must be an object"));
            }
            let filter = Filter::from_json_limited(
                fv,
                limits.max_tags_per_filter,
                limits.max_values_per_filter,
            )
            .map_err(|e| neg_err(&format!("invalid: bad filter: {e}")))?;
            if filter.search.is_some() {
                // A ranked search is not a set to reconcile.
                return Err(neg_err("invalid: search filters cannot be synced"));
            }
            let msg = rest
                .next()
                .and_then(|m| m.as_str())
                .and_then(|s| hex::decode_vec(s.as_bytes()));
            let msg = msg.ok_or_else(|| neg_err("invalid: negentropy message is not hex"))?;
            Ok(ClientMsg::NegOpen {
                sub_id,
                filter,
                msg,
            })
        }
    }
}

// ---- relay → client encoders. Each appends one complete message to `out`. ----

/// `["OK",<id>,<accepted>,<msg>]`
pub fn ok(out: &mut Vec<u8>, id_hex: &str, accepted: bool, msg: &str) {
    out.extend_from_slice(b"[\"OK\",");
    write_str(out, id_hex);
    out.extend_from_slice(if accepted { b",true," } else { b",false," });
    write_str(out, msg);
    out.push(b']');
}

/// Bytes `event` adds around the sub id and the JSON: `["EVENT","` `",` `]`.
pub const EVENT_OVERHEAD: usize = 13;

/// `["EVENT",<sub>,<json>]` with the stored JSON copied verbatim (never re-encoded).
pub fn event(out: &mut Vec<u8>, sub_id: &SubId, json: &[u8]) {
    event_prefix(out, sub_id);
    out.extend_from_slice(json);
    out.push(b']');
}

/// `["EVENT","<sub>",` — the per-recipient part of a fanout frame; the event JSON and a
/// closing `]` follow.
pub fn event_prefix(out: &mut Vec<u8>, sub_id: &SubId) {
    out.extend_from_slice(b"[\"EVENT\",\"");
    out.extend_from_slice(sub_id.as_str().as_bytes());
    out.extend_from_slice(b"\",");
}

/// `["EOSE",<sub>]`
pub fn eose(out: &mut Vec<u8>, sub_id: &SubId) {
    out.extend_from_slice(b"[\"EOSE\",\"");
    out.extend_from_slice(sub_id.as_str().as_bytes());
    out.extend_from_slice(b"\"]");
}

/// `["CLOSED",<sub>,<reason>]`; `reason` should start with a NIP-01 prefix.
pub fn closed(out: &mut Vec<u8>, sub_id: &str, reason: &str) {
    out.extend_from_slice(b"[\"CLOSED\",");
    write_str(out, sub_id);
    out.push(b',');
    write_str(out, reason);
    out.push(b']');
}

/// `["NOTICE",<text>]`
pub fn notice(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"[\"NOTICE\",");
    write_str(out, text);
    out.push(b']');
}

/// `["COUNT",<sub>,{"count":N}]`, with `"approximate":true` when the count hit the
/// configured ceiling (NIP-45's flag for a count that is not exact).
pub fn count(out: &mut Vec<u8>, sub_id: &SubId, n: u64, capped: bool) {
    count_hll(out, sub_id, n, capped, None);
}

/// `["COUNT",<sub>,{"count":n[,"approximate":true][,"hll":"<512 hex>"]}]` (NIP-45).
pub fn count_hll(out: &mut Vec<u8>, sub_id: &SubId, n: u64, capped: bool, hll: Option<&str>) {
    out.extend_from_slice(b"[\"COUNT\",\"");
    out.extend_from_slice(sub_id.as_str().as_bytes());
    out.extend_from_slice(b"\",{\"count\":");
    write_u64(out, n);
    if capped {
        out.extend_from_slice(b",\"approximate\":true");
    }
    if let Some(h) = hll {
        out.extend_from_slice(b",\"hll\":\"");
        out.extend_from_slice(h.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"}]");
}

/// `["AUTH",<challenge>]`
pub fn auth(out: &mut Vec<u8>, challenge: &str) {
    out.extend_from_slice(b"[\"AUTH\",");
    write_str(out, challenge);
    out.push(b']');
}

/// `["NEG-MSG",<sub>,<hex>]`
pub fn neg_msg(out: &mut Vec<u8>, sub_id: &SubId, msg: &[u8]) {
    out.extend_from_slice(b"[\"NEG-MSG\",\"");
    out.extend_from_slice(sub_id.as_str().as_bytes());
    out.extend_from_slice(b"\",\"");
    hex::encode_into(msg, out);
    out.extend_from_slice(b"\"]");
}

/// `["NEG-ERR",<sub>,<reason>]`
pub fn neg_err(out: &mut Vec<u8>, sub_id: &str, reason: &str) {
    out.extend_from_slice(b"[\"NEG-ERR\",");
    write_str(out, sub_id);
    out.push(b',');
    write_str(out, reason);
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nostr::sign::Keys;
    use crate::nostr::tags::Tags;

    #[test]
    fn event_overhead_is_what_event_adds() {
        let sub = SubId::new("feed").expect("sub id");
        let mut out = Vec::new();
        event(&mut out, &sub, b"{}");
        assert_eq!(out, br#"["EVENT","feed",{}]"#);
        assert_eq!(out.len(), 4 + 2 + EVENT_OVERHEAD);
    }

    fn dec(s: &str) -> Result<Option<ClientMsg>, MsgError> {
        decode(
            &mut s.as_bytes().to_vec(),
            &mut JsonParser::new(),
            &DecodeLimits::default(),
        )
    }

    fn reply(s: &str) -> String {
        match dec(s) {
            Err(e) => String::from_utf8(e.reply()).unwrap_or_default(),
            Ok(m) => format!("accepted: {m:?}"),
        }
    }

    fn signed() -> Event {
        Keys::from_secret([9; 32])
            .expect("key")
            .sign(
                1_700_000_000,
                1,
                Tags::from_vecs(&[vec!["t", "a"]]),
                "hello",
                &Limits::default(),
            )
            .expect("sign")
    }

    #[test]
    fn decodes_every_verb() {
        let ev = signed();
        let json = String::from_utf8_lossy(ev.json()).into_owned();
        assert!(
            matches!(dec(&format!(r#"["EVENT",{json}]"#)), Ok(Some(ClientMsg::Event(e))) if *e == ev)
        );
        assert!(matches!(
            dec(&format!(r#"["AUTH",{json}]"#)),
            Ok(Some(ClientMsg::Auth(_)))
        ));
        match dec(r#"["REQ","s1",{"kinds":[1]},{"limit":5}]"#) {
            Ok(Some(ClientMsg::Req { sub_id, filters })) => {
                assert_eq!(sub_id.as_str(), "s1");
                assert_eq!(filters.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            dec(r#"["COUNT","c",{}]"#),
            Ok(Some(ClientMsg::Count { .. }))
        ));
        assert!(matches!(
            dec(r#"["CLOSE","s1"]"#),
            Ok(Some(ClientMsg::Close { .. }))
        ));
        match dec(r#"["NEG-OPEN","n",{"kinds":[1]},"61ff"]"#) {
            Ok(Some(ClientMsg::NegOpen { msg, .. })) => assert_eq!(msg, vec![0x61, 0xff]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            dec(r#"["NEG-MSG","n","00"]"#),
            Ok(Some(ClientMsg::NegMsg { .. }))
        ));
        assert!(matches!(
            dec(r#"["NEG-CLOSE","n"]"#),
            Ok(Some(ClientMsg::NegClose { .. }))
        ));
        assert!(matches!(dec("\n"), Ok(None)));
    }

    #[test]
    fn refusals_carry_their_reply() {
        assert_eq!(
            reply("{}"),
            r#"["NOTICE","error: bad msg: unparseable message"]"#
        );
        assert_eq!(
            reply("[1,"),
            r#"["NOTICE","error: bad msg: invalid JSON at byte 3: EOF while parsing a value, near `[1,`"]"#
        );
        // A broken EVENT whose id can be read gets its OK, with the true position (simd-json
        // said byte 0).
        let id = "ab".repeat(32);
        let broken = format!("[\"EVENT\",{{\"id\":\"{id}\",\"content\":\"a\u{1}b\"}}]");
        let at = broken.find('\u{1}').expect("control byte");
        let r = reply(&broken);
        assert!(
            r.starts_with(&format!(
                "[\"OK\",\"{id}\",false,\"invalid: invalid JSON at byte {at}: control character"
            )),
            "{r}"
        );
        assert_eq!(
            reply(r#"["REQ"]"#),
            r#"["NOTICE","error: bad msg: too few array elements"]"#
        );
        assert_eq!(
            reply(r#"[1,2]"#),
            r#"["NOTICE","error: bad msg: first element not a command like REQ"]"#
        );
        assert_eq!(
            reply(r#"["FOO",2]"#),
            r#"["NOTICE","error: bad msg: unknown cmd"]"#
        );
        assert_eq!(
            reply(r#"["REQ",1,{}]"#),
            r#"["NOTICE","error: bad req: subscription id was not a string"]"#
        );
        assert_eq!(
            reply(r#"["REQ","s"]"#),
            r#"["CLOSED","s","error: bad req: arr too small"]"#
        );
        let long = "x".repeat(65);
        assert_eq!(
            reply(&format!(r#"["REQ","{long}",{{}}]"#)),
            format!(r#"["CLOSED","{long}","error: bad req: invalid subscription id length"]"#)
        );
        assert_eq!(
            reply(r#"["REQ","a\"b",{}]"#),
            r#"["CLOSED","a\"b","error: bad req: invalid character in subscription id"]"#
        );
        assert_eq!(
            reply(r#"["REQ","s",{"x":1}]"#),
            r#"["CLOSED","s","error: bad req: unrecognised filter item: x"]"#
        );
        let many = vec!["{}"; 201].join(",");
        assert_eq!(
            reply(&format!(r#"["REQ","s",{many}]"#)),
            r#"["CLOSED","s","error: bad req: arr too big"]"#
        );
        assert_eq!(
            reply(r#"["CLOSE","s","x"]"#),
            r#"["NOTICE","error: bad close: arr too big"]"#
        );
        let ev = signed();
        let bad = String::from_utf8_lossy(ev.json()).replace(r#""kind":1"#, r#""kind":"1""#);
        assert_eq!(
            reply(&format!(r#"["EVENT",{bad}]"#)),
            format!(
                r#"["OK","{}",false,"invalid: event kind field was a string, not a number"]"#,
                ev.id_hex()
            )
        );
        assert_eq!(
            reply(r#"["EVENT",{"id":1}]"#),
            r#"["NOTICE","invalid: event id field was not a string"]"#
        );
        assert_eq!(
            reply(r#"["NEG-OPEN","n",{}]"#),
            r#"["NOTICE","error: negentropy error: negentropy query missing elements"]"#
        );
        assert_eq!(
            reply(r#"["NEG-OPEN","n",[{}],"61"]"#),
            r#"["NEG-ERR","n","invalid: negentropy filter must be an object"]"#
        );
        assert_eq!(
            reply(r#"["NEG-MSG","n","zz"]"#),
            r#"["NEG-ERR","n","invalid: negentropy message is not hex"]"#
        );
    }

    #[test]
    fn encoders() {
        let s = SubId::new("sub").expect("sub");
        let mut out = Vec::new();
        ok(&mut out, "ab", true, "");
        event(&mut out, &s, br#"{"id":"x"}"#);
        eose(&mut out, &s);
        count(&mut out, &s, 7, true);
        neg_msg(&mut out, &s, &[0x61]);
        auth(&mut out, "chal\"lenge");
        assert_eq!(
            String::from_utf8_lossy(&out),
            concat!(
                r#"["OK","ab",true,""]"#,
                r#"["EVENT","sub",{"id":"x"}]"#,
                r#"["EOSE","sub"]"#,
                r#"["COUNT","sub",{"count":7,"approximate":true}]"#,
                r#"["NEG-MSG","sub","61"]"#,
                r#"["AUTH","chal\"lenge"]"#
            )
        );
        assert!(SubId::new("").is_err());
        assert!(SubId::new("a\u{7f}").is_err());
        assert!(SubId::new("ünïcode").is_ok());
    }
}
