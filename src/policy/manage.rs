//! NIP-86 relay management: JSON-RPC calls (`{"method": …, "params": […]}`) that change the
//! access-control state in the store's `Management` table, authorized by NIP-98 HTTP auth
//! against `relay.management.adminPubkeys`. The same [`call`] serves the relay's HTTP
//! endpoint (on its management thread, never the io thread) and `wok admin` offline.

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::access::admins;
use super::limits::Cidr;
use crate::config::Config;
use crate::nostr::{hex, verify, Event, JsonParser, Limits};
use crate::store::manage::List;
use crate::store::Store;

/// The content type NIP-86 calls use.
pub const CONTENT_TYPE: &str = "application/nostr+json+rpc";
/// NIP-98's kind.
pub const KIND_HTTP_AUTH: u64 = 27235;
/// How far a NIP-98 event's created_at may be from now.
pub const AUTH_WINDOW_SECS: u64 = 60;
/// How long past the end of its window an accepted token is still remembered, so a
/// clock stepped back by up to this much does not make it usable again.
pub const REPLAY_SLACK_SECS: u64 = 60;
/// The most accepted tokens remembered at once (about 60 bytes each). Only admins' tokens
/// are remembered, and only until their window has passed: 16,384 is well over 100 calls
/// a second, sustained. Past it new tokens are refused (401) until old ones expire, rather
/// than forgetting one that could then be replayed.
pub const REPLAY_CAP: usize = 16_384;

/// Every method served, as `supportedmethods` lists them (NIP-86's, plus `unbanpubkey`,
/// `disallowpubkey` and `unbanevent` to undo a ban or an allowlist entry).
pub const METHODS: &[&str] = &[
    "supportedmethods",
    "banpubkey",
    "unbanpubkey",
    "listbannedpubkeys",
    "allowpubkey",
    "disallowpubkey",
    "listallowedpubkeys",
    "listeventsneedingmoderation",
    "allowevent",
    "banevent",
    "unbanevent",
    "listbannedevents",
    "changerelayname",
    "changerelaydescription",
    "changerelayicon",
    "allowkind",
    "disallowkind",
    "listallowedkinds",
    "blockip",
    "unblockip",
    "listblockedips",
];

/// An HTTP answer: status line, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Answer {
    fn text(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            content_type: "text/plain",
            body: body.into(),
        }
    }
}

/// One management request as the io thread read it.
#[derive(Debug, Clone)]
pub struct HttpCall {
    /// The URLs this request may have been addressed to (see [`request_urls`]).
    pub urls: Vec<String>,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

/// The URLs a NIP-98 `u` tag may name for a request to `path`. With
/// `relay.auth.serviceUrl` set, only that relay's address counts (its scheme mapped to
/// HTTP, `wss` → `https`; the service URL itself or its host with the request's path), so
/// a token signed for another relay cannot be replayed here by sending its Host header;
/// behind a proxy this also holds whatever Host the proxy passes on. Without it, the Host
/// header decides, as `http://` or `https://` (a TLS proxy in front may or may not say
/// `X-Forwarded-Proto`).
pub fn request_urls(host: Option<&str>, path: &str, service_url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let s = service_url.trim();
    if !s.is_empty() {
        let http = if let Some(rest) = s.strip_prefix("wss://") {
            format!("https://{rest}")
        } else if let Some(rest) = s.strip_prefix("ws://") {
            format!("http://{rest}")
        } else {
            s.to_owned()
        };
        out.push(http.clone());
        if let Some((scheme, rest)) = http.split_once("://") {
            let host = rest.split('/').next().unwrap_or(rest);
            out.push(format!("{scheme}://{host}{path}"));
        }
        return out;
    }
    if let Some(h) = host.map(str::trim).filter(|h| !h.is_empty()) {
        out.push(format!("http://{h}{path}"));
        out.push(format!("https://{h}{path}"));
    }
    out
}

/// Comparable form of a URL: scheme and host lower-cased, a lone trailing `/` dropped.
fn normalise_url(u: &str) -> String {
    let u = u.trim();
    let (scheme, rest) = u.split_once("://").unwrap_or(("", u));
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = path.trim_end_matches('/');
    format!(
        "{}://{}{path}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase()
    )
}

/// A NIP-98 token that passed [`check_nip98`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// The signer.
    pub pubkey: [u8; 32],
    /// The event's id: what [`SeenTokens`] remembers.
    pub id: [u8; 32],
    pub created_at: u64,
}

/// Checks a NIP-98 `Authorization` header for a POST of `body` to one of `urls`; the
/// token, or why not. (Whether it was used before is [`SeenTokens`]'s question.)
pub fn check_nip98(
    authorization: Option<&str>,
    urls: &[String],
    body: &[u8],
    now: u64,
) -> Result<Token, String> {
    let header =
        authorization.ok_or("missing Authorization header (NIP-98: Nostr <base64 event>)")?;
    let b64 = header
        .trim()
        .strip_prefix("Nostr ")
        .ok_or("Authorization must be `Nostr <base64 event>` (NIP-98)")?;
    let mut json = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("Authorization is not base64: {e}"))?;
    let ev = Event::parse(&mut json, &mut JsonParser::new(), &Limits::default())
        .map_err(|e| format!("Authorization event: {}", e.reason()))?;
    verify::check_event(&ev).map_err(|e| format!("Authorization event: {}", e.reason()))?;
    if ev.kind != KIND_HTTP_AUTH {
        return Err(format!(
            "Authorization event has kind {}, not {KIND_HTTP_AUTH}",
            ev.kind
        ));
    }
    if ev.created_at.abs_diff(now) > AUTH_WINDOW_SECS {
        return Err(format!(
            "Authorization event created_at {} is more than {AUTH_WINDOW_SECS} s from now ({now})",
            ev.created_at
        ));
    }
    let tag = |name: &str| ev.tags.find(name).and_then(|t| t.value());
    let u = tag("u").ok_or("Authorization event has no u tag")?;
    if !urls.iter().any(|c| normalise_url(c) == normalise_url(u)) {
        return Err(format!(
            "Authorization u tag {u} is not this URL ({})",
            urls.first().map_or("", String::as_str)
        ));
    }
    if !tag("method").is_some_and(|m| m.eq_ignore_ascii_case("POST")) {
        return Err("Authorization method tag must be POST".into());
    }
    let want = hex::encode(&Sha256::digest(body));
    match tag("payload") {
        Some(p) if p.eq_ignore_ascii_case(&want) => Ok(Token {
            pubkey: ev.pubkey,
            id: ev.id,
            created_at: ev.created_at,
        }),
        Some(_) => Err("Authorization payload tag is not the sha256 of the body".into()),
        None => Err("Authorization event has no payload tag".into()),
    }
}

/// Why [`SeenTokens::admit`] refused a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This token was accepted before.
    Replayed,
    /// [`REPLAY_CAP`] tokens are remembered; the earliest is forgotten in this many seconds.
    Full { retry_in: u64 },
}

/// The ids of the NIP-98 tokens accepted so far, each remembered until its window has
/// passed (its created_at + [`AUTH_WINDOW_SECS`] + [`REPLAY_SLACK_SECS`]; until then
/// [`check_nip98`] may accept it again), so a token is good for one request: a captured
/// `banpubkey` cannot be sent again after an `unbanpubkey`. At most `cap` at once.
///
/// One owner checks and records in one `&mut` call: the relay's management thread, the
/// only one that verifies NIP-98, keeps its own, so two copies of a token sent at once
/// are served one after the other and the second is refused.
#[derive(Debug)]
pub struct SeenTokens {
    /// (forget at, id), earliest first. A token's id fixes its created_at, so the
    /// forget-at time of a token being checked is known and the pair is the lookup key.
    seen: BTreeSet<(u64, [u8; 32])>,
    cap: usize,
    /// Refusals not yet logged, and when the last log line was: at most one a minute.
    unlogged: u64,
    logged_at: Option<u64>,
}

impl SeenTokens {
    pub fn new(cap: usize) -> SeenTokens {
        SeenTokens {
            seen: BTreeSet::new(),
            cap,
            unlogged: 0,
            logged_at: None,
        }
    }

    /// Records `token` as used at `now`, after forgetting those whose window has passed;
    /// refused if it was used before, or if `cap` tokens are remembered.
    pub fn admit(&mut self, token: &Token, now: u64) -> Result<(), Refused> {
        while self.seen.first().is_some_and(|&(until, _)| until < now) {
            self.seen.pop_first();
        }
        let until = token
            .created_at
            .saturating_add(AUTH_WINDOW_SECS + REPLAY_SLACK_SECS);
        if self.seen.contains(&(until, token.id)) {
            return Err(Refused::Replayed);
        }
        if self.seen.len() >= self.cap {
            let first = self.seen.first().map_or(now, |&(until, _)| until);
            return Err(Refused::Full {
                retry_in: first.saturating_sub(now) + 1,
            });
        }
        self.seen.insert((until, token.id));
        Ok(())
    }

    /// Counts a refusal; how many to log now, if a minute has passed since the last line
    /// (a captured token sent in a loop must not flood the log).
    fn refusals_to_log(&mut self, now: u64) -> Option<u64> {
        self.unlogged += 1;
        if self.logged_at.is_some_and(|t| now < t.saturating_add(60)) {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// The NIP-86 endpoint: authorization, then the call. 401 without or with a bad token, 403
/// for a signer who is not an admin, 401 for an admin's token used before (`seen`: a
/// token is good for one request), 200 with a JSON-RPC `result` or `error` otherwise.
/// Returns the answer and whether the state may have changed.
pub fn serve(
    store: &Store,
    cfg: &Config,
    call_in: &HttpCall,
    now: u64,
    seen: &mut SeenTokens,
) -> (Answer, bool) {
    let token = match check_nip98(
        call_in.authorization.as_deref(),
        &call_in.urls,
        &call_in.body,
        now,
    ) {
        Ok(t) => t,
        Err(why) => return (Answer::text(401, format!("unauthorized: {why}")), false),
    };
    if !admins(cfg).contains(&token.pubkey) {
        return (
            Answer::text(
                403,
                format!(
                    "forbidden: {} is not in relay.management.adminPubkeys",
                    hex::encode(&token.pubkey)
                ),
            ),
            false,
        );
    }
    // Remembered only once the signer is an admin: anyone can sign valid tokens, and
    // theirs must not fill the memory admins' tokens need.
    if let Err(refused) = seen.admit(&token, now) {
        let why = match refused {
            Refused::Replayed => "this Authorization token was already used (NIP-98 tokens \
                 are good for one request: sign a new one)"
                .to_owned(),
            Refused::Full { retry_in } => format!(
                "too many recent tokens: {} accepted and not yet expired, the most this \
                 relay remembers to refuse replays; retry in {retry_in} s",
                seen.len()
            ),
        };
        if let Some(n) = seen.refusals_to_log(now) {
            // A replay means someone has an admin's token; a full memory, a runaway
            // script or a leaked key.
            log::warn!(
                "NIP-86: refused {n} admin token(s) since the last such line; the last, \
                 signed by {}: {why}",
                hex::encode(&token.pubkey)
            );
        }
        return (Answer::text(401, format!("unauthorized: {why}")), false);
    }
    let rpc = |v: Value| Answer {
        status: 200,
        content_type: "application/json",
        body: v.to_string(),
    };
    let req: Value = match serde_json::from_slice(&call_in.body) {
        Ok(v) => v,
        Err(e) => {
            return (
                rpc(json!({ "result": null, "error": format!("invalid JSON: {e}") })),
                false,
            )
        }
    };
    let Some(method) = req["method"].as_str() else {
        return (
            rpc(json!({ "result": null, "error": "missing method" })),
            false,
        );
    };
    let params = match &req["params"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a.clone(),
        _ => {
            return (
                rpc(json!({ "result": null, "error": "params must be an array" })),
                false,
            )
        }
    };
    match call(store, method, &params) {
        Ok(result) => (rpc(json!({ "result": result })), true),
        Err(e) => (rpc(json!({ "result": null, "error": e })), false),
    }
}

fn param_str<'a>(params: &'a [Value], i: usize, what: &str) -> Result<&'a str, String> {
    params
        .get(i)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("params[{i}] must be {what}"))
}

fn reason(params: &[Value], i: usize) -> &str {
    params.get(i).and_then(Value::as_str).unwrap_or("")
}

fn param32(params: &[Value], what: &str) -> Result<[u8; 32], String> {
    let s = param_str(params, 0, what)?;
    hex::decode_any::<32>(s.as_bytes()).ok_or_else(|| format!("params[0] must be {what}"))
}

fn param_kind(params: &[Value]) -> Result<u64, String> {
    params
        .first()
        .and_then(Value::as_u64)
        .ok_or_else(|| "params[0] must be a kind number".into())
}

/// An address or CIDR prefix, in its canonical text (the row key: an IPv4-mapped address
/// is its IPv4 one, a full-length prefix a lone address).
fn param_ip(params: &[Value]) -> Result<String, String> {
    let s = param_str(params, 0, "an IP address or CIDR prefix")?;
    Cidr::parse_block(s)
        .map(|c| c.to_string())
        .map_err(|e| format!("params[0]: {e}"))
}

/// Runs one NIP-86 method on the store (one write transaction for a change); its result.
pub fn call(store: &Store, method: &str, params: &[Value]) -> Result<Value, String> {
    let e = |x: crate::store::StoreError| x.to_string();
    let list = |l: List, field: &str| -> Result<Value, String> {
        let txn = store.read_txn().map_err(e)?;
        let rows = store.manage_list(&txn, l).map_err(e)?;
        Ok(Value::Array(
            rows.into_iter()
                .map(|(k, why)| {
                    let item = match l {
                        List::BlockedIp => String::from_utf8_lossy(&k).into_owned(),
                        _ => hex::encode(&k),
                    };
                    json!({ field: item, "reason": why })
                })
                .collect(),
        ))
    };
    let change =
        |f: &dyn Fn(&mut heed::RwTxn) -> crate::store::Result<()>| -> Result<Value, String> {
            let mut txn = store.write_txn().map_err(e)?;
            f(&mut txn).map_err(e)?;
            txn.commit().map_err(|x| x.to_string())?;
            Ok(Value::Bool(true))
        };
    match method {
        "supportedmethods" => Ok(json!(METHODS)),
        "banpubkey" => {
            let pk = param32(params, "a hex pubkey")?;
            let why = reason(params, 1);
            change(&|t| store.manage_put(t, List::BannedPubkey, &pk, why))
        }
        "unbanpubkey" => {
            let pk = param32(params, "a hex pubkey")?;
            change(&|t| store.manage_delete(t, List::BannedPubkey, &pk).map(|_| ()))
        }
        "listbannedpubkeys" => list(List::BannedPubkey, "pubkey"),
        "allowpubkey" => {
            let pk = param32(params, "a hex pubkey")?;
            let why = reason(params, 1);
            change(&|t| store.manage_put(t, List::AllowedPubkey, &pk, why))
        }
        "disallowpubkey" => {
            let pk = param32(params, "a hex pubkey")?;
            change(&|t| store.manage_delete(t, List::AllowedPubkey, &pk).map(|_| ()))
        }
        "listallowedpubkeys" => list(List::AllowedPubkey, "pubkey"),
        // Nothing is held for review: events are accepted or refused as they arrive.
        "listeventsneedingmoderation" => Ok(json!([])),
        "allowevent" | "unbanevent" => {
            let id = param32(params, "a hex event id")?;
            change(&|t| store.manage_delete(t, List::BannedEvent, &id).map(|_| ()))
        }
        "banevent" => {
            let id = param32(params, "a hex event id")?;
            let why = reason(params, 1);
            // The ban and the deletion in one transaction: no moment where the event is
            // gone but could be stored again.
            change(&|t| {
                store.manage_put(t, List::BannedEvent, &id, why)?;
                store.delete_by_id(t, &id).map(|_| ())
            })
        }
        "listbannedevents" => list(List::BannedEvent, "id"),
        "changerelayname" | "changerelaydescription" | "changerelayicon" => {
            let v = param_str(params, 0, "a string")?;
            let field = &method["changerelay".len()..];
            change(&|t| store.manage_put(t, List::Info, field.as_bytes(), v))
        }
        "allowkind" => {
            let k = param_kind(params)?.to_be_bytes();
            change(&|t| {
                store.manage_delete(t, List::DisallowedKind, &k)?;
                store.manage_put(t, List::AllowedKind, &k, "")
            })
        }
        "disallowkind" => {
            let k = param_kind(params)?.to_be_bytes();
            change(&|t| {
                store.manage_delete(t, List::AllowedKind, &k)?;
                store.manage_put(t, List::DisallowedKind, &k, "")
            })
        }
        "listallowedkinds" => {
            let txn = store.read_txn().map_err(e)?;
            let rows = store.manage_list(&txn, List::AllowedKind).map_err(e)?;
            Ok(Value::Array(
                rows.iter()
                    .filter_map(|(k, _)| crate::store::keys::read_u64(k))
                    .map(Value::from)
                    .collect(),
            ))
        }
        "blockip" => {
            let ip = param_ip(params)?;
            let why = reason(params, 1);
            change(&|t| store.manage_put(t, List::BlockedIp, ip.as_bytes(), why))
        }
        "unblockip" => {
            let ip = param_ip(params)?;
            change(&|t| {
                store
                    .manage_delete(t, List::BlockedIp, ip.as_bytes())
                    .map(|_| ())
            })
        }
        "listblockedips" => list(List::BlockedIp, "ip"),
        other => Err(format!("unknown method: {other}")),
    }
}

/// A NIP-98 `Authorization` header value for a POST of `body` to `url`, signed by `keys`
/// (`wok admin --url`). Each carries a random `nonce` tag, so two identical calls in the
/// same second are two tokens (a relay that refuses replays would refuse the second).
pub fn nip98_header(
    keys: &crate::nostr::sign::Keys,
    url: &str,
    body: &[u8],
    now: u64,
) -> Result<String, String> {
    let payload = hex::encode(&Sha256::digest(body));
    let nonce = nonce();
    let tags = crate::nostr::tags::Tags::from_vecs(&[
        vec!["u", url],
        vec!["method", "POST"],
        vec!["payload", payload.as_str()],
        vec!["nonce", nonce.as_str()],
    ]);
    let ev = keys
        .sign(now, KIND_HTTP_AUTH, tags, "", &Limits::default())
        .map_err(|e| e.reason().to_string())?;
    Ok(format!(
        "Nostr {}",
        base64::engine::general_purpose::STANDARD.encode(ev.json())
    ))
}

/// 128 bits that differ from call to call: std's randomly keyed SipHash over a counter
/// and the time (unique, which is all a token needs; the signature does the rest).
fn nonce() -> String {
    use std::hash::{BuildHasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let s = RandomState::new();
    format!(
        "{:016x}{:016x}",
        s.hash_one((n, t, std::process::id())),
        s.hash_one((t, n, 1u8))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_compare_loosely() {
        let matches =
            |urls: &[String], u: &str| urls.iter().any(|c| normalise_url(c) == normalise_url(u));
        let by_host = request_urls(Some("Relay.example:7777"), "/", "");
        assert!(matches(&by_host, "http://relay.example:7777"));
        assert!(matches(&by_host, "https://relay.example:7777/"));
        assert!(!matches(&by_host, "https://evil.example/"));
        // With serviceUrl, only it counts, whatever the Host header says.
        let by_service = request_urls(Some("evil.example"), "/", "wss://relay.example/");
        assert!(matches(&by_service, "https://relay.example"));
        assert!(matches(&by_service, "HTTPS://RELAY.EXAMPLE/"));
        assert!(!matches(&by_service, "https://evil.example/"));
        assert!(!matches(&by_service, "http://relay.example/"));
    }

    /// A small store in a temporary directory (kept alive by the returned guard).
    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(
            dir.path(),
            &crate::store::StoreOptions {
                map_size: 1 << 26,
                ..crate::store::StoreOptions::default()
            },
        )
        .expect("open");
        (dir, store)
    }

    #[test]
    fn blockip_takes_cidr_prefixes() {
        let (_dir, store) = temp_store();
        let ok = |m: &str, p: Value| call(&store, m, p.as_array().expect("params")).expect(m);
        ok("blockip", json!(["203.0.113.0/24", "range"]));
        ok("blockip", json!(["2001:db8::/32"]));
        ok("blockip", json!(["10.0.0.1/32"]));
        assert_eq!(
            ok("listblockedips", json!([])),
            json!([
                { "ip": "10.0.0.1", "reason": "" },
                { "ip": "2001:db8::/32", "reason": "" },
                { "ip": "203.0.113.0/24", "reason": "range" },
            ])
        );
        for bad in ["203.0.113.7/24", "10.0.0.0/33", "nope/8"] {
            let e = call(&store, "blockip", &[json!(bad)]).expect_err(bad);
            assert!(e.starts_with("params[0]: "), "{e}");
        }
        ok("unblockip", json!(["10.0.0.1"]));
        ok("unblockip", json!(["203.0.113.0/24"]));
        assert_eq!(
            ok("listblockedips", json!([])),
            json!([{ "ip": "2001:db8::/32", "reason": "" }])
        );
    }

    #[test]
    fn nip98_round_trip_and_refusals() {
        let k = crate::nostr::sign::Keys::from_secret([9; 32]).expect("key");
        let urls = vec!["http://h/".to_string()];
        let now = 1_700_000_000;
        let h = nip98_header(&k, "http://h/", b"{}", now).expect("sign");
        let t = check_nip98(Some(&h), &urls, b"{}", now).expect("valid");
        assert_eq!((t.pubkey, t.created_at), (k.pubkey, now));
        // Two tokens for the same call in the same second differ (the nonce tag).
        let again = nip98_header(&k, "http://h/", b"{}", now).expect("sign");
        assert_ne!(again, h);
        let t2 = check_nip98(Some(&again), &urls, b"{}", now).expect("valid");
        assert_ne!(t2.id, t.id);
        assert!(check_nip98(Some(&h), &urls, b"{ }", now).is_err_and(|e| e.contains("payload")));
        assert!(
            check_nip98(Some(&h), &urls, b"{}", now + 61).is_err_and(|e| e.contains("created_at"))
        );
        let other = vec!["http://other/".to_string()];
        assert!(check_nip98(Some(&h), &other, b"{}", now).is_err_and(|e| e.contains("u tag")));
        assert!(check_nip98(None, &urls, b"{}", now).is_err());
        assert!(check_nip98(Some("Nostr !!"), &urls, b"{}", now).is_err());
    }

    fn token(n: u8, created_at: u64) -> Token {
        Token {
            pubkey: [1; 32],
            id: [n; 32],
            created_at,
        }
    }

    /// A token is accepted once; remembered until its window and the slack have passed,
    /// then forgotten; past the cap new tokens are refused (a replay still says so) until
    /// the earliest expire.
    #[test]
    fn seen_tokens_refuse_replays_expire_and_stay_bounded() {
        let now = 1_700_000_000;
        let mut seen = SeenTokens::new(3);
        let a = token(1, now);
        assert_eq!(seen.admit(&a, now), Ok(()));
        assert_eq!(seen.admit(&a, now), Err(Refused::Replayed));
        // Still refused at the very end of its window and within the slack after it.
        let last = now + AUTH_WINDOW_SECS + REPLAY_SLACK_SECS;
        assert_eq!(
            seen.admit(&a, now + AUTH_WINDOW_SECS),
            Err(Refused::Replayed)
        );
        assert_eq!(seen.admit(&a, last), Err(Refused::Replayed));
        assert_eq!(seen.len(), 1);
        // A token dated ahead (check_nip98 allows up to the window) lives as much longer.
        let ahead = token(2, now + AUTH_WINDOW_SECS);
        assert_eq!(seen.admit(&ahead, now), Ok(()));
        // Past it, forgotten (check_nip98 refuses it by then anyway): memory goes back.
        assert_eq!(seen.admit(&token(3, last + 1), last + 1), Ok(()));
        assert_eq!(seen.len(), 2, "the first token is forgotten");
        assert_eq!(seen.admit(&token(5, last + 1), last + 1), Ok(()));
        // Full: 3 remembered. A new token is refused, with when to retry; a replay is
        // still a replay.
        assert_eq!(seen.len(), 3);
        let retry_at = now + 2 * AUTH_WINDOW_SECS + REPLAY_SLACK_SECS + 1;
        assert_eq!(
            seen.admit(&token(4, last + 1), last + 1),
            Err(Refused::Full {
                retry_in: retry_at - (last + 1)
            })
        );
        assert_eq!(
            seen.admit(&token(3, last + 1), last + 1),
            Err(Refused::Replayed)
        );
        assert_eq!(seen.len(), 3, "refusals add nothing");
        // Once the earliest (`ahead`) has expired, there is room again.
        assert_eq!(seen.admit(&token(4, retry_at), retry_at), Ok(()));
        assert_eq!(seen.len(), 3);
    }

    /// Through `serve`: an admin's token works once, then 401 with the reason; the same
    /// call signed again works; a non-admin's tokens are not remembered (403 each time).
    #[test]
    fn serve_refuses_a_token_used_before() {
        let (_dir, store) = temp_store();
        let admin = crate::nostr::sign::Keys::from_secret([9; 32]).expect("key");
        let mut cfg = Config::default();
        cfg.relay.management.admin_pubkeys = hex::encode(&admin.pubkey);
        let now = 1_700_000_000;
        let body = br#"{"method":"supportedmethods","params":[]}"#.to_vec();
        let call_with = |auth: &str| HttpCall {
            urls: vec!["http://h/".into()],
            authorization: Some(auth.to_owned()),
            body: body.clone(),
        };
        let mut seen = SeenTokens::new(REPLAY_CAP);
        let h = nip98_header(&admin, "http://h/", &body, now).expect("sign");
        assert_eq!(
            serve(&store, &cfg, &call_with(&h), now, &mut seen).0.status,
            200
        );
        let (a, changed) = serve(&store, &cfg, &call_with(&h), now + 1, &mut seen);
        assert_eq!(a.status, 401, "{}", a.body);
        assert!(a.body.contains("already used"), "{}", a.body);
        assert!(!changed);
        let h2 = nip98_header(&admin, "http://h/", &body, now).expect("sign");
        assert_eq!(
            serve(&store, &cfg, &call_with(&h2), now, &mut seen)
                .0
                .status,
            200
        );
        let other = crate::nostr::sign::Keys::from_secret([7; 32]).expect("key");
        let h3 = nip98_header(&other, "http://h/", &body, now).expect("sign");
        for _ in 0..2 {
            assert_eq!(
                serve(&store, &cfg, &call_with(&h3), now, &mut seen)
                    .0
                    .status,
                403
            );
        }
        assert_eq!(seen.len(), 2);
    }
}
