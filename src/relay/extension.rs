//! permessage-deflate negotiation (RFC 7692 §5, §7.1): read the client's offers from its
//! `Sec-WebSocket-Extensions` headers in order, accept the first one we can honour, and
//! say what we agreed to. An offer we cannot honour (a 256-byte window, which zlib cannot
//! compress with) or that is malformed (unknown or repeated parameter, bad value) is
//! declined and the next one tried; with none left the connection is simply uncompressed.

/// What one connection agreed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// Our compressor keeps its window across messages.
    pub server_takeover: bool,
    /// The client keeps its window, so our inflater must too.
    pub client_takeover: bool,
    /// Our compression window (9..=15).
    pub server_window_bits: u8,
}

/// The agreement and the `Sec-WebSocket-Extensions` value to answer with.
pub fn negotiate<'a>(
    headers: impl IntoIterator<Item = &'a str>,
    sliding: bool,
) -> Option<(Agreed, String)> {
    headers
        .into_iter()
        .flat_map(split_unquoted(','))
        .filter_map(|ext| {
            let mut parts = split_unquoted(';')(ext);
            let name = parts.next()?.trim();
            name.eq_ignore_ascii_case("permessage-deflate")
                .then(|| accept(parts, sliding))
                .flatten()
        })
        .next()
}

fn accept<'a>(params: impl Iterator<Item = &'a str>, sliding: bool) -> Option<(Agreed, String)> {
    let mut server_nct = false;
    let mut client_nct = false;
    let mut server_bits: Option<u8> = None;
    let mut client_bits: Option<Option<u8>> = None;
    for p in params {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(unquote(v.trim())?)),
            None => (p.trim(), None),
        };
        match (name.to_ascii_lowercase().as_str(), value) {
            ("server_no_context_takeover", None) if !server_nct => server_nct = true,
            ("client_no_context_takeover", None) if !client_nct => client_nct = true,
            ("server_max_window_bits", Some(v)) if server_bits.is_none() => {
                server_bits = Some(window_bits(v)?)
            }
            ("client_max_window_bits", None) if client_bits.is_none() => client_bits = Some(None),
            ("client_max_window_bits", Some(v)) if client_bits.is_none() => {
                client_bits = Some(Some(window_bits(v)?))
            }
            // Unknown, repeated, or a value where none belongs (or none where one must be).
            _ => return None,
        }
    }
    // zlib's raw deflate cannot keep to a 256-byte window: decline rather than overstep.
    if server_bits == Some(8) {
        return None;
    }
    let agreed = Agreed {
        server_takeover: sliding && !server_nct,
        client_takeover: sliding && !client_nct,
        server_window_bits: server_bits.unwrap_or(15),
    };
    let mut resp = String::from("permessage-deflate");
    // Both may be sent unasked (§7.1.1): they tell the client what it can free or reset.
    if !agreed.server_takeover {
        resp.push_str("; server_no_context_takeover");
    }
    if !agreed.client_takeover {
        resp.push_str("; client_no_context_takeover");
    }
    if let Some(b) = server_bits {
        resp.push_str(&format!("; server_max_window_bits={b}"));
    }
    // client_max_window_bits is left unanswered: our 15-bit inflater reads any window the
    // client picks, so there is nothing to ask of it.
    Some((agreed, resp))
}

/// 8..=15 written plainly (no sign, no leading zero), per the RFC's ABNF.
fn window_bits(v: &str) -> Option<u8> {
    if v.is_empty() || v.len() > 2 || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

/// A quoted-string value unquoted (no escapes needed in a token); `None` when unbalanced.
fn unquote(v: &str) -> Option<&str> {
    match v.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"').filter(|s| !s.contains('"')),
        None => (!v.contains('"')).then_some(v),
    }
}

/// Splits on `sep` outside double quotes.
fn split_unquoted(sep: char) -> impl Fn(&str) -> std::vec::IntoIter<&str> {
    move |s: &str| {
        let mut parts = Vec::new();
        let mut quoted = false;
        let mut start = 0;
        for (i, ch) in s.char_indices() {
            match ch {
                '"' => quoted = !quoted,
                c if c == sep && !quoted => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        parts.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(offers: &[&str], sliding: bool) -> Option<String> {
        negotiate(offers.iter().copied(), sliding).map(|(_, r)| r)
    }

    #[test]
    fn plain_offer() {
        let (a, r) = negotiate(["permessage-deflate"], true).expect("accepted");
        assert_eq!(r, "permessage-deflate");
        assert!(a.server_takeover && a.client_takeover);
        assert_eq!(a.server_window_bits, 15);
        // Without the sliding window neither side keeps context, and both are told so.
        assert_eq!(
            resp(&["permessage-deflate; client_max_window_bits"], false).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
    }

    #[test]
    fn parameters() {
        let (a, r) = negotiate(
            ["permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"],
            true,
        )
        .expect("accepted");
        assert_eq!(
            r,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        );
        assert_eq!(
            a,
            Agreed {
                server_takeover: false,
                client_takeover: false,
                server_window_bits: 10
            }
        );
        // Quoted values and odd case are accepted.
        assert_eq!(
            resp(&["PerMessage-Deflate; Server_Max_Window_Bits=\"12\""], true).as_deref(),
            Some("permessage-deflate; server_max_window_bits=12")
        );
    }

    #[test]
    fn first_acceptable_offer_wins() {
        // 8 bits cannot be honoured; garbage is declined; the next offer is taken.
        assert_eq!(
            resp(
                &[
                    "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=8",
                    "permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=11"
                ],
                true
            )
            .as_deref(),
            Some("permessage-deflate; server_max_window_bits=11")
        );
    }

    #[test]
    fn declined() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=09",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; server_max_window_bits=\"9",
            "permessage-deflate; client_max_window_bits=7",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; mystery",
            "permessage-deflate; server_max_window_bits=8",
            "deflate-frame",
            "",
            ";;;,,,\"",
        ] {
            assert_eq!(resp(&[bad], true), None, "{bad}");
        }
        assert_eq!(resp(&[], true), None);
    }
}
