//! Fuzzes the HTTP side of the relay port on a request head, in the io thread's order:
//! `httparse` with its header room (`http::MAX_HEADERS`), `http::websocket_upgrade`, the
//! real-IP header (`io::real_ip`), `Sec-WebSocket-Extensions` negotiation and the 101
//! answer, the NIP-86 checks (`is_management`, `content_length`, `management_call`), NIP-11's
//! `Accept` test and the landing page's address from `Host` / `X-Forwarded-Proto`.
//!
//! Checks, beyond no panic:
//! - every answer written is a complete HTTP/1.1 response that httparse reads back, with the
//!   expected status and a `Content-Length` equal to its body;
//! - a valid upgrade's key is 24 characters, and its 101 carries a 28-character
//!   `Sec-WebSocket-Accept` and exactly the agreed extension;
//! - the real IP is the header's last entry when that parses, else the socket's;
//! - the landing page escapes whatever `Host` says: it has as many `<` as with no `Host`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use crate::relay::http::{self, Upgrade};
use crate::relay::landing::Landing;
use crate::relay::{extension, io};

const SOCKET: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn landing() -> &'static (Landing, usize) {
    static L: OnceLock<(Landing, usize)> = OnceLock::new();
    L.get_or_init(|| {
        let (cfg, _) = crate::config::parse_str("", "fuzz.conf").expect("empty config");
        let l = Landing::new(&cfg, SocketAddr::new(SOCKET, 7777));
        let lt = l.page(None, false).matches('<').count();
        (l, lt)
    })
}

/// Parses `resp` as an HTTP/1.1 response: status `code`, body as long as `Content-Length`.
fn check_response(resp: &[u8], code: u16) -> Vec<(String, String)> {
    let mut h = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut h);
    let n = match r.parse(resp) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!(
            "our answer is not an HTTP response ({other:?}): {:?}",
            String::from_utf8_lossy(resp)
        ),
    };
    assert_eq!(r.code, Some(code), "{:?}", String::from_utf8_lossy(resp));
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse::<usize>().expect("Content-Length is a number"));
    assert_eq!(
        len.unwrap_or(0),
        resp.len() - n,
        "Content-Length is not the body's"
    );
    headers
}

fn value<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub fn run(data: &[u8]) {
    let mut headers = [httparse::EMPTY_HEADER; http::MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(data) {
        Ok(httparse::Status::Complete(n)) => n,
        // io answers a malformed head with this.
        Err(_) => return drop(check_response(&http::simple(400, "Bad Request"), 400)),
        Ok(httparse::Status::Partial) => return,
    };
    assert!(head_len <= data.len());

    let first = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let ip = io::real_ip(&req, "X-Forwarded-For", SOCKET, || false);
    let claimed = first("x-forwarded-for")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(io::parse_forwarded);
    assert_eq!(ip, claimed.unwrap_or(SOCKET));
    assert_eq!(io::real_ip(&req, "", SOCKET, || false), SOCKET);

    match http::websocket_upgrade(&req) {
        Upgrade::Plain => {}
        Upgrade::Refused(resp) => {
            let code = if resp.starts_with(b"HTTP/1.1 426") {
                426
            } else {
                400
            };
            check_response(&resp, code);
        }
        Upgrade::Valid(key) => {
            assert_eq!(key.len(), 24);
            for sliding in [true, false] {
                let agreed =
                    extension::negotiate(http::headers(&req, "sec-websocket-extensions"), sliding);
                let resp = http::upgrade_response(&key, agreed.as_ref().map(|(_, r)| r.as_str()));
                let h = check_response(&resp, 101);
                assert_eq!(value(&h, "sec-websocket-accept").map(str::len), Some(28));
                assert_eq!(
                    value(&h, "sec-websocket-extensions"),
                    agreed.as_ref().map(|(_, r)| r.as_str())
                );
            }
        }
    }

    if http::is_management(&req) {
        let body = http::content_length(&req)
            .and_then(|len| data.get(head_len..head_len.checked_add(len)?))
            .unwrap_or_default();
        for service_url in ["", "wss://relay.example.com/x"] {
            let call = http::management_call(&req, body, service_url);
            assert_eq!(call.body, body);
            assert!(call.urls.len() <= 2);
        }
    }

    for accept in http::headers(&req, "accept") {
        let _ = http::wants_nip11(accept);
    }
    let host = first("host").and_then(|v| std::str::from_utf8(v).ok());
    let (l, baseline) = landing();
    for tls in [false, true] {
        let page = l.page(host, tls);
        assert_eq!(
            page.matches('<').count(),
            *baseline,
            "Host {host:?} changed the page's markup"
        );
    }
}
