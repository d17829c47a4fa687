//! Plain HTTP on the relay port: the WebSocket upgrade, NIP-11, `/metrics`, CORS, the
//! landing page and its `/status`. Responses close the connection; only WebSockets stay open.

use super::landing::{self, Landing};
use super::Shared;

/// What the HTTP side serves, rendered once from the config.
pub struct HttpInfo {
    pub nip11: String,
    pub landing: Landing,
}

/// Header lines a request head may have (the io thread's `httparse` room; more is a 400).
pub const MAX_HEADERS: usize = 64;

const CORS: &str = "Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Headers: *\r\nAccess-Control-Allow-Methods: GET, POST, OPTIONS\r\n";

fn header<'a>(req: &'a httparse::Request<'_, '_>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value).ok())
}

/// What an HTTP request asks of the WebSocket side.
pub enum Upgrade {
    /// A plain request (no `Upgrade: websocket`): NIP-11, the page, `/metrics`, …
    Plain,
    /// A valid upgrade, with its `Sec-WebSocket-Key`.
    Valid(String),
    /// An upgrade RFC 6455 §4.2.1 says to refuse, with the answer to send.
    Refused(Vec<u8>),
}

/// Checks a request that asks for `Upgrade: websocket`: GET, a Host, version 13 (else 426
/// naming it, §4.4) and a key of 16 base64-encoded bytes.
pub fn websocket_upgrade(req: &httparse::Request<'_, '_>) -> Upgrade {
    let wants = header(req, "upgrade").is_some_and(|u| {
        u.split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("websocket"))
    });
    if !wants {
        return Upgrade::Plain;
    }
    let bad = |why: &str| Upgrade::Refused(response("400 Bad Request", "text/plain", why));
    if req.method != Some("GET") {
        return bad("a WebSocket upgrade must be a GET");
    }
    if header(req, "host").is_none_or(|h| h.trim().is_empty()) {
        return bad("a WebSocket upgrade needs a Host header");
    }
    if header(req, "sec-websocket-version").map(str::trim) != Some("13") {
        return Upgrade::Refused(response_with(
            "426 Upgrade Required",
            "text/plain",
            "Sec-WebSocket-Version: 13\r\n",
            "only WebSocket version 13 is supported",
        ));
    }
    match header(req, "sec-websocket-key").map(str::trim) {
        Some(k) if is_websocket_key(k) => Upgrade::Valid(k.to_owned()),
        _ => bad("Sec-WebSocket-Key must be 16 bytes in base64"),
    }
}

/// 16 bytes in base64: 22 characters of the alphabet, the last carrying no stray bits,
/// then `==`.
fn is_websocket_key(k: &str) -> bool {
    let b = k.as_bytes();
    b.len() == 24
        && b[22..] == *b"=="
        && b[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
        && b"AQgw".contains(&b[21])
}

/// Every value of a header that may repeat (`Sec-WebSocket-Extensions`), in order.
pub fn headers<'a>(
    req: &'a httparse::Request<'_, '_>,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    req.headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
}

/// The 101 answer; `extensions` is the agreed `Sec-WebSocket-Extensions` value, if any.
pub fn upgrade_response(key: &str, extensions: Option<&str>) -> Vec<u8> {
    let ext = extensions
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{ext}\r\n",
        tungstenite::handshake::derive_accept_key(key.as_bytes())
    )
    .into_bytes()
}

fn response(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    response_with(status, content_type, "", body)
}

/// A response with `extra` header lines (each ending in CRLF).
fn response_with(status: &str, content_type: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{CORS}{extra}Server: wok\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// HEAD: the same headers, no body.
fn head_only(mut r: Vec<u8>) -> Vec<u8> {
    if let Some(i) = r.windows(4).position(|w| w == b"\r\n\r\n") {
        r.truncate(i + 4);
    }
    r
}

/// A NIP-86 answer (`manage::Answer`) as an HTTP response.
pub fn rpc_answer(status: u16, content_type: &str, body: &str) -> Vec<u8> {
    let line = match status {
        200 => "200 OK",
        401 => "401 Unauthorized",
        403 => "403 Forbidden",
        411 => "411 Length Required",
        413 => "413 Payload Too Large",
        415 => "415 Unsupported Media Type",
        503 => "503 Service Unavailable",
        _ => "500 Internal Server Error",
    };
    let extra = if status == 401 {
        "WWW-Authenticate: Nostr\r\n"
    } else {
        ""
    };
    response_with(line, content_type, extra, body)
}

/// Is this a NIP-86 management call (a POST of `application/nostr+json+rpc`)?
pub fn is_management(req: &httparse::Request<'_, '_>) -> bool {
    req.method == Some("POST")
        && header(req, "content-type").is_some_and(|t| {
            t.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case(crate::policy::manage::CONTENT_TYPE)
            })
        })
}

/// The parts of a management request the management thread needs.
pub fn management_call(
    req: &httparse::Request<'_, '_>,
    body: &[u8],
    service_url: &str,
) -> crate::policy::manage::HttpCall {
    let path = req.path.unwrap_or("/");
    crate::policy::manage::HttpCall {
        urls: crate::policy::manage::request_urls(header(req, "host"), path, service_url),
        authorization: header(req, "authorization").map(str::to_owned),
        body: body.to_vec(),
    }
}

/// `Content-Length` of a request, if present and a number.
pub fn content_length(req: &httparse::Request<'_, '_>) -> Option<usize> {
    header(req, "content-length").and_then(|v| v.trim().parse().ok())
}

/// HTTP 429 with `Retry-After` (a WebSocket upgrade refused by `relay.limits`).
pub fn too_many(retry_after: u64, why: &str) -> Vec<u8> {
    response_with(
        "429 Too Many Requests",
        "text/plain",
        &format!("Retry-After: {retry_after}\r\n"),
        why,
    )
}

pub fn simple(code: u16, reason: &str) -> Vec<u8> {
    response(&format!("{code} {reason}"), "text/plain", reason)
}

/// Does an `Accept` header ask for NIP-11? (Lists and q-values allowed; q=0 refuses.)
pub fn wants_nip11(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let mut it = part.split(';');
        let ty = it.next().unwrap_or("").trim();
        let refused = it.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
        });
        ty.eq_ignore_ascii_case("application/nostr+json") && !refused
    })
}

/// `/metrics`, as `relay.metrics.*` allows.
fn metrics(req: &httparse::Request<'_, '_>, shared: &Shared) -> Vec<u8> {
    let cfg = shared.config();
    let m = &cfg.relay.metrics;
    if !m.enabled {
        return simple(404, "Not Found");
    }
    if !m.bearer_token.is_empty() {
        let given = header(req, "authorization")
            .and_then(|a| a.trim().strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or("");
        if !same_secret(given.as_bytes(), m.bearer_token.as_bytes()) {
            return response_with(
                "401 Unauthorized",
                "text/plain",
                "WWW-Authenticate: Bearer\r\n",
                "Unauthorized",
            );
        }
    }
    response(
        "200 OK",
        "text/plain; version=0.0.4",
        &shared.metrics.render(),
    )
}

/// Compares secrets in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn respond(req: &httparse::Request<'_, '_>, info: &HttpInfo, shared: &Shared) -> Vec<u8> {
    let path = req.path.unwrap_or("/");
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let get = || {
        if path == "/metrics" {
            metrics(req, shared)
        } else if path == "/status" {
            response_with(
                "200 OK",
                "application/json",
                "Cache-Control: no-store\r\n",
                &landing::status_json(shared),
            )
        } else if header(req, "accept").is_some_and(wants_nip11) {
            response("200 OK", "application/nostr+json", &info.nip11)
        } else {
            // Behind a TLS proxy the page's address is wss://.
            let tls = header(req, "x-forwarded-proto")
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
            let page = info.landing.page(header(req, "host"), tls);
            let extra = format!(
                "Content-Security-Policy: {}\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n",
                info.landing.csp
            );
            response_with("200 OK", "text/html; charset=utf-8", &extra, &page)
        }
    };
    match req.method {
        Some("OPTIONS") => format!(
            "HTTP/1.1 204 No Content\r\n{CORS}Access-Control-Max-Age: 86400\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .into_bytes(),
        Some("GET") => get(),
        Some("HEAD") => head_only(get()),
        _ => simple(405, "Method Not Allowed"),
    }
}

#[cfg(test)]
mod tests {
    use super::{is_websocket_key, same_secret, wants_nip11};

    #[test]
    fn websocket_keys() {
        assert!(is_websocket_key("dGhlIHNhbXBsZSBub25jZQ=="));
        for bad in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZR==",
            "dGhlIHNhbXBsZSBub25j*Q==",
            "dGhlIHNhbXBsZSBub25jZQ===",
        ] {
            assert!(!is_websocket_key(bad), "{bad}");
        }
    }

    #[test]
    fn secrets() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn accept_header_forms() {
        assert!(wants_nip11("application/nostr+json"));
        assert!(wants_nip11("text/html, application/nostr+json;q=0.9"));
        assert!(wants_nip11("Application/Nostr+JSON"));
        assert!(!wants_nip11("application/nostr+json;q=0"));
        assert!(!wants_nip11("application/json"));
    }
}
