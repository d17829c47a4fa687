//! Fuzzes the server's WebSocket frame decoder (`relay::frame::Decoder`, with and without
//! permessage-deflate) and the extension negotiation (`relay::extension::negotiate`).
//!
//! The first input byte picks the setup: no compression, or deflate with or without
//! context takeover; the second where the rest is split between two `feed`s (frames cut
//! anywhere). Checks:
//! - no panic on any input, however it is cut;
//! - every message handed up (text, binary, inflated or not) is within the size limit,
//!   every text message is UTF-8, and pings carry at most 125 bytes;
//! - after an error the decoder is not asked again (the connection is closed), and the
//!   error's close code is one a server may send;
//! - negotiation on the input as a header value never panics, and what it accepts is
//!   answered with a `permessage-deflate` header naming a window of 9–15 bits.

use crate::relay::extension::{negotiate, Agreed};
use crate::relay::frame::{Decoder, Incoming};

const MAX: usize = 4096;

pub fn run(data: &[u8]) {
    let (Some(&setup), Some(&cut)) = (data.first(), data.get(1)) else {
        return;
    };
    let rest = &data[2..];
    let deflate = match setup % 3 {
        0 => None,
        n => Some(Agreed {
            server_takeover: n == 1,
            client_takeover: n == 1,
            server_window_bits: 9 + setup % 7,
        }),
    };
    let mut d = Decoder::new(MAX, deflate);
    let at = (cut as usize).min(rest.len());
    for chunk in [&rest[..at], &rest[at..]] {
        d.feed(chunk);
        loop {
            match d.decode() {
                Ok(None) => break,
                Ok(Some(m)) => match m {
                    Incoming::Text(t) => {
                        assert!(t.len() <= MAX);
                        assert!(std::str::from_utf8(&t).is_ok());
                    }
                    Incoming::Binary(b) => assert!(b.len() <= MAX),
                    Incoming::Ping(p) => assert!(p.len() <= 125),
                    Incoming::Pong | Incoming::Close(_) => {}
                },
                Err(e) => {
                    assert!(matches!(e.close_code(), 1002 | 1007 | 1009 | 1011));
                    return;
                }
            }
        }
    }

    if let Ok(header) = std::str::from_utf8(rest) {
        for sliding in [true, false] {
            if let Some((agreed, answer)) = negotiate([header], sliding) {
                assert!(answer.starts_with("permessage-deflate"));
                assert!((9..=15).contains(&agreed.server_window_bits));
                assert!(sliding || (!agreed.server_takeover && !agreed.client_takeover));
            }
        }
    }
}
