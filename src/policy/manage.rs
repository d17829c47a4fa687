//! NIP-86 relay management: JSON-RPC calls (`{"method": …, "params": […]}`) that change the
//! access-control state in the store's `Management` table, authorized by NIP-98 HTTP auth
//! against `relay.management.adminPubkeys`. The same [`call`] serves the relay's HTTP
//! endpoint (on its management thread, never the io thread) and `wok admin` offline.

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

/// Checks a NIP-98 `Authorization` header for a POST of `body` to one of `urls`; the
/// signer's pubkey, or why not.
pub fn check_nip98(
    authorization: Option<&str>,
    urls: &[String],
    body: &[u8],
    now: u64,
) -> Result<[u8; 32], String> {
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
        Some(p) if p.eq_ignore_ascii_case(&want) => Ok(ev.pubkey),
        Some(_) => Err("Authorization payload tag is not the sha256 of the body".into()),
        None => Err("Authorization event has no payload tag".into()),
    }
}

/// The NIP-86 endpoint: authorization, then the call. 401 without or with a bad token, 403
/// for a signer who is not an admin, 200 with a JSON-RPC `result` or `error` otherwise.
/// Returns the answer and whether the state may have changed.
pub fn serve(store: &Store, cfg: &Config, call_in: &HttpCall, now: u64) -> (Answer, bool) {
    let signer = match check_nip98(
        call_in.authorization.as_deref(),
        &call_in.urls,
        &call_in.body,
        now,
    ) {
        Ok(pk) => pk,
        Err(why) => return (Answer::text(401, format!("unauthorized: {why}")), false),
    };
    if !admins(cfg).contains(&signer) {
        return (
            Answer::text(
                403,
                format!(
                    "forbidden: {} is not in relay.management.adminPubkeys",
                    hex::encode(&signer)
                ),
            ),
            false,
        );
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
/// (`wok admin --url`).
pub fn nip98_header(
    keys: &crate::nostr::sign::Keys,
    url: &str,
    body: &[u8],
    now: u64,
) -> Result<String, String> {
    let payload = hex::encode(&Sha256::digest(body));
    let tags = crate::nostr::tags::Tags::from_vecs(&[
        vec!["u", url],
        vec!["method", "POST"],
        vec!["payload", payload.as_str()],
    ]);
    let ev = keys
        .sign(now, KIND_HTTP_AUTH, tags, "", &Limits::default())
        .map_err(|e| e.reason().to_string())?;
    Ok(format!(
        "Nostr {}",
        base64::engine::general_purpose::STANDARD.encode(ev.json())
    ))
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

    #[test]
    fn blockip_takes_cidr_prefixes() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(
            dir.path(),
            &crate::store::StoreOptions {
                map_size: 1 << 26,
                ..crate::store::StoreOptions::default()
            },
        )
        .expect("open");
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
        assert_eq!(check_nip98(Some(&h), &urls, b"{}", now), Ok(k.pubkey));
        assert!(check_nip98(Some(&h), &urls, b"{ }", now).is_err_and(|e| e.contains("payload")));
        assert!(
            check_nip98(Some(&h), &urls, b"{}", now + 61).is_err_and(|e| e.contains("created_at"))
        );
        let other = vec!["http://other/".to_string()];
        assert!(check_nip98(Some(&h), &other, b"{}", now).is_err_and(|e| e.contains("u tag")));
        assert!(check_nip98(None, &urls, b"{}", now).is_err());
        assert!(check_nip98(Some("Nostr !!"), &urls, b"{}", now).is_err());
    }
}
