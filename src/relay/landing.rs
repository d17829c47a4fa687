//! The page a browser gets at the relay's URL (name, description, the address to paste into
//! a client, NIPs, limits, a live status panel) and the `/status` JSON its script polls.
//! Everything is inline, so the page works on a relay with no Internet access.

use std::fmt::Write;
use std::net::SocketAddr;

use sha2::{Digest, Sha256};

use crate::config::Config;

use super::Shared;

const TEMPLATE: &str = include_str!("landing.html");

/// A wok (the pan), for relays that configure no icon.
const DEFAULT_ICON: &str = r##"<svg class="icon" viewBox="0 0 64 64" role="img" aria-label="wok"><rect width="64" height="64" rx="16" fill="#d9480f"/><path d="M10 31h44c0 11-9.8 18-22 18S10 42 10 31z" fill="#fff"/><path d="M53 31l7-5" stroke="#fff" stroke-width="4" stroke-linecap="round"/><path d="M25 24c-2-3 2-5 0-9M33 24c-2-3 2-5 0-9M41 24c-2-3 2-5 0-9" stroke="#fff" stroke-width="2.6" fill="none" stroke-linecap="round"/></svg>"##;
const DEFAULT_FAVICON: &str = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 64 64'%3E%3Crect width='64' height='64' rx='16' fill='%23d9480f'/%3E%3Cpath d='M10 31h44c0 11-9.8 18-22 18S10 42 10 31z' fill='%23fff'/%3E%3C/svg%3E";

/// Names shown under each NIP number (only for NIPs wok can advertise).
const NIP_NAMES: [(u64, &str); 13] = [
    (1, "Basic protocol"),
    (2, "Follow lists"),
    (4, "Encrypted DMs"),
    (9, "Deletion"),
    (11, "Relay info"),
    (28, "Public chat"),
    (40, "Expiration"),
    (42, "Authentication"),
    (45, "Counting"),
    (50, "Search"),
    (59, "Gift wrap"),
    (70, "Protected events"),
    (77, "Negentropy sync"),
];

/// The landing page for one config: rendered once (at start and on reload), only the
/// relay's address is filled in per request.
pub struct Landing {
    /// The page split where the relay's address goes.
    parts: Vec<String>,
    /// The configured `relay.auth.serviceUrl` as a WebSocket URL, if any.
    service_url: Option<String>,
    /// Shown when a request has no usable `Host` header.
    listen: String,
    /// `Content-Security-Policy`: only this page's own inline style and script may run, and
    /// its script may only fetch `/status`.
    pub csp: String,
}

impl Landing {
    pub fn new(cfg: &Config, addr: SocketAddr) -> Landing {
        let info = &cfg.relay.info;
        let service_url = ws_url(&cfg.relay.auth.service_url);
        let icon_url = http_url(&info.icon);
        let icon = match icon_url {
            Some(u) => format!("<img class=\"icon\" src=\"{}\" alt=\"\">", esc(u)),
            None => DEFAULT_ICON.to_owned(),
        };
        let favicon = icon_url.map_or_else(|| DEFAULT_FAVICON.to_owned(), esc);
        let parts = fill(TEMPLATE, |key, out| {
            match key {
                "name" => out.push_str(&esc(&info.name)),
                "description" => out.push_str(&esc(&info.description)),
                "icon" => out.push_str(&icon),
                "favicon" => out.push_str(&favicon),
                "url_from_host" => out.push(if service_url.is_some() { '0' } else { '1' }),
                "nips" => nips_html(&super::supported_nips(cfg), out),
                "limits" => limits_html(cfg, out),
                "operator" => operator_html(cfg, out),
                "version" => out.push_str(&esc(crate::LONG_VERSION)),
                _ => return false,
            }
            true
        });
        let hash = |tag: &str| {
            let open = format!("<{tag}>");
            let body = TEMPLATE
                .split_once(&open)
                .and_then(|(_, rest)| rest.split_once(&format!("</{tag}>")))
                .map_or("", |(body, _)| body);
            format!("'sha256-{}'", base64(&Sha256::digest(body.as_bytes())))
        };
        let img = if icon_url.is_some() {
            "data: https: http:"
        } else {
            "data:"
        };
        let csp = format!(
            "default-src 'none'; style-src {}; script-src {}; connect-src 'self'; img-src {img}; base-uri 'none'; form-action 'none'",
            hash("style"),
            hash("script")
        );
        Landing {
            parts,
            service_url,
            listen: addr.to_string(),
            csp,
        }
    }

    /// The page for a request with this `Host` header; `tls` when a proxy in front says the
    /// browser came over https (`X-Forwarded-Proto`).
    pub fn page(&self, host: Option<&str>, tls: bool) -> String {
        let url = self.service_url.clone().unwrap_or_else(|| {
            let host = host.filter(|h| valid_host(h)).unwrap_or(&self.listen);
            format!("{}://{host}", if tls { "wss" } else { "ws" })
        });
        self.parts.join(&esc(&url))
    }
}

/// Copies `template`, replacing each `{{key}}` through `value` (which returns false for a
/// key it does not know) and splitting it at each `{{url}}`. One pass, so a config value
/// that contains `{{url}}` stays text.
fn fill(template: &str, mut value: impl FnMut(&str, &mut String) -> bool) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        let Some((key, tail)) = rest[i + 2..].split_once("}}") else {
            break;
        };
        cur.push_str(&rest[..i]);
        if key == "url" {
            parts.push(std::mem::take(&mut cur));
        } else if !value(key, &mut cur) {
            cur.push_str(&rest[i..i + key.len() + 4]);
        }
        rest = tail;
    }
    cur.push_str(rest);
    parts.push(cur);
    parts
}

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An http(s) URL, the only kind put in `src`/`href` (no `javascript:` and the like).
fn http_url(u: &str) -> Option<&str> {
    let u = u.trim();
    let lower = u.get(..8).unwrap_or(u).to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://")).then_some(u)
}

/// `relay.auth.serviceUrl` as a WebSocket URL: wss:// unless it says ws:// or http://.
fn ws_url(u: &str) -> Option<String> {
    let u = u.trim();
    if u.is_empty() {
        return None;
    }
    let (scheme, rest) = match u.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => (String::new(), u),
    };
    let ws = if matches!(scheme.as_str(), "ws" | "http") {
        "ws"
    } else {
        "wss"
    };
    Some(format!("{ws}://{rest}"))
}

/// A `Host` value fit to show: a host name or IP literal and an optional port.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
}

fn nips_html(nips: &[u64], out: &mut String) {
    for n in nips {
        let name = NIP_NAMES
            .iter()
            .find(|(k, _)| k == n)
            .map_or("", |(_, v)| *v);
        let _ = write!(
            out,
            "<li><a href=\"https://github.com/nostr-protocol/nips/blob/master/{n:02}.md\" title=\"NIP-{n:02}\"><b>NIP-{n:02}</b>{}</a></li>",
            if name.is_empty() {
                String::new()
            } else {
                format!("<small>{name}</small>")
            }
        );
    }
}

fn limits_html(cfg: &Config, out: &mut String) {
    let r = &cfg.relay;
    let auth = r.auth.enabled && !r.auth.service_url.is_empty();
    let rows: [(&str, String); 9] = [
        ("Largest message", human_bytes(r.max_websocket_payload_size)),
        ("Largest event", human_bytes(cfg.events.max_event_size)),
        ("Tags per event", count(cfg.events.max_num_tags)),
        (
            "Subscriptions per connection",
            count(r.max_subs_per_connection),
        ),
        ("Filters per REQ", count(r.max_req_filter_size)),
        ("Events per filter", count(r.max_filter_limit)),
        (
            "Oldest event accepted",
            human_secs(cfg.events.reject_events_older_than_seconds),
        ),
        (
            "Clock skew allowed",
            human_secs(cfg.events.reject_events_newer_than_seconds),
        ),
        (
            "Authentication (NIP-42)",
            if auth { "available" } else { "off" }.to_owned(),
        ),
    ];
    for (k, v) in rows {
        let _ = write!(out, "<tr><td>{k}</td><td>{}</td></tr>", esc(&v));
    }
}

fn operator_html(cfg: &Config, out: &mut String) {
    let info = &cfg.relay.info;
    let mut rows = String::new();
    let contact = info.contact.trim();
    if !contact.is_empty() {
        let lower = contact.to_ascii_lowercase();
        let href = if http_url(contact).is_some() || lower.starts_with("mailto:") {
            Some(contact.to_owned())
        } else if contact.contains('@') && !contact.contains(':') && !contact.contains(' ') {
            Some(format!("mailto:{contact}"))
        } else {
            None
        };
        let _ = match href {
            Some(h) => write!(
                rows,
                "<dt>Contact</dt><dd id=\"contact\"><a href=\"{}\">{}</a></dd>",
                esc(&h),
                esc(contact)
            ),
            None => write!(
                rows,
                "<dt>Contact</dt><dd id=\"contact\">{}</dd>",
                esc(contact)
            ),
        };
    }
    if !info.pubkey.trim().is_empty() {
        let _ = write!(
            rows,
            "<dt>Operator</dt><dd class=\"mono\">{}</dd>",
            esc(info.pubkey.trim())
        );
    }
    for (label, u) in [("Privacy", &info.privacy), ("Terms", &info.terms)] {
        if let Some(u) = http_url(u) {
            let _ = write!(
                rows,
                "<dt>{label}</dt><dd><a href=\"{0}\">{0}</a></dd>",
                esc(u)
            );
        }
    }
    if !rows.is_empty() {
        let _ = write!(
            out,
            "<section class=\"operator\" aria-labelledby=\"op-h\"><h2 id=\"op-h\">Operator</h2><dl>{rows}</dl></section>"
        );
    }
}

fn count(n: u64) -> String {
    // Thousands separated, as the page's script shows its numbers.
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{} bytes", count(n)),
    }
}

fn human_secs(s: u64) -> String {
    const DAY: u64 = 86_400;
    let (n, unit) = match s {
        s if s >= 365 * DAY => (s / (365 * DAY), "year"),
        s if s >= DAY => (s / DAY, "day"),
        s if s >= 3600 => (s / 3600, "hour"),
        s if s >= 60 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Standard base64 with padding (for CSP hashes).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `/status`: counters since start (the page turns them into rates), stored events and
/// database size. O(1): atomics, one LMDB stat and one `fstat`, no scan.
pub fn status_json(shared: &Shared) -> String {
    let m = &shared.metrics;
    let store = &shared.store;
    let stored = store.read_txn().ok().and_then(|t| store.count(&t).ok());
    let db_bytes = store.env().real_disk_size().ok();
    serde_json::json!({
        "connections": m.connections.get().max(0),
        "events_in": m.client_count("EVENT"),
        "events_out": m.relay_count("EVENT"),
        "reqs": m.client_count("REQ"),
        "events_written": m.write_events.get(),
        "stored_events": stored,
        "db_bytes": db_bytes,
        "uptime_ms": u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 7777))
    }

    #[test]
    fn every_placeholder_is_known() {
        let l = Landing::new(&Config::default(), addr());
        let page = l.page(Some("relay.example:7777"), false);
        assert!(!page.contains("{{"), "unfilled placeholder");
        assert!(page.contains(">ws://relay.example:7777<"));
    }

    #[test]
    fn config_strings_are_escaped() {
        let mut cfg = Config::default();
        cfg.relay.info.name = "<script>alert(1)</script> {{url}}".into();
        cfg.relay.info.description = "\"quoted\" & 'single'".into();
        cfg.relay.info.icon = "javascript:alert(1)".into();
        cfg.relay.info.contact = "<b>x</b>@example.com".into();
        cfg.relay.info.terms = "https://x.example/\"onmouseover=\"alert(1)".into();
        let page = Landing::new(&cfg, addr()).page(Some("h"), false);
        assert!(!page.contains("<script>alert"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; {{url}}"));
        assert!(page.contains("&quot;quoted&quot; &amp; &#39;single&#39;"));
        assert!(!page.contains("javascript:"));
        assert!(page.contains("&lt;b&gt;x&lt;/b&gt;@example.com"));
        assert!(!page.contains("\"onmouseover"));
        // Exactly one script element: the page's own.
        assert_eq!(page.matches("<script").count(), 1);
    }

    #[test]
    fn address_from_service_url_or_host() {
        let mut cfg = Config::default();
        let l = Landing::new(&cfg, addr());
        assert!(l
            .page(Some("r.example"), true)
            .contains(">wss://r.example<"));
        // A Host header that is not a host name is not shown.
        assert!(l
            .page(Some("x\"><img src=y>"), false)
            .contains(">ws://127.0.0.1:7777<"));
        assert!(l.page(None, false).contains(">ws://127.0.0.1:7777<"));
        cfg.relay.auth.service_url = "relay.example.com".into();
        let l = Landing::new(&cfg, addr());
        assert!(l
            .page(Some("other"), false)
            .contains(">wss://relay.example.com<"));
        assert_eq!(
            ws_url("https://A.example/x").as_deref(),
            Some("wss://A.example/x")
        );
        assert_eq!(ws_url("ws://a:1").as_deref(), Some("ws://a:1"));
    }

    #[test]
    fn csp_hashes_the_inline_script_and_style() {
        let l = Landing::new(&Config::default(), addr());
        assert_eq!(l.csp.matches("'sha256-").count(), 2, "{}", l.csp);
        assert!(!l.csp.contains("unsafe-inline"));
        // No icon configured: nothing may be loaded from elsewhere, not even images.
        assert!(l.csp.contains("img-src data:;"), "{}", l.csp);
    }

    #[test]
    fn configured_icon_is_the_only_remote_image() {
        let mut cfg = Config::default();
        cfg.relay.info.icon = "https://cdn.example/icon.png".into();
        let l = Landing::new(&cfg, addr());
        let page = l.page(None, false);
        assert!(page.contains("<img class=\"icon\" src=\"https://cdn.example/icon.png\""));
        assert!(page.contains("rel=\"icon\" href=\"https://cdn.example/icon.png\""));
        assert!(l.csp.contains("img-src data: https: http:;"), "{}", l.csp);
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(count(1_000_000), "1,000,000");
        assert_eq!(count(500), "500");
        assert_eq!(human_bytes(131_072), "128 KiB");
        assert_eq!(human_bytes(65536), "64 KiB");
        assert_eq!(human_secs(94_608_000), "3 years");
        assert_eq!(human_secs(900), "15 minutes");
        assert_eq!(human_secs(60), "1 minute");
    }
}
