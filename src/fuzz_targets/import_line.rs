//! Fuzzes one line of `wok import` (`nostr::jsonl::parse_line`, what each verifier thread
//! runs per line before the id and signature checks), plain or `--fried`.
//!
//! The first byte picks the mode: bit 0 `--fried`, bit 1 a 256-byte line limit instead of
//! import's (`maxEventSize`, three times that when fried). Checks, beyond no panic:
//! - `Blank` exactly when the line (less one trailing `\r`) is only whitespace, `Oversize`
//!   only past the limit and with the line's length;
//! - a rejected event's id, when given, is 64 lowercase hex digits;
//! - an accepted event's canonical JSON is a line that parses to an equal event, plainly and
//!   as a fried line (the JSON with a `"fried"` member appended).

use crate::nostr::jsonl::{parse_line, Line};
use crate::nostr::{JsonParser, Limits};

pub fn run(data: &[u8]) {
    let Some((&mode, line)) = data.split_first() else {
        return;
    };
    let fried = mode & 1 == 1;
    let limits = Limits::default();
    let max_line = match (mode & 2 == 2, fried) {
        (true, _) => 256,
        (false, true) => limits.max_event_size.saturating_mul(3),
        (false, false) => limits.max_event_size,
    };
    let mut parser = JsonParser::new();
    let mut buf = line.to_vec();
    let body = line.strip_suffix(b"\r").unwrap_or(line);
    let parsed = parse_line(&mut buf, &mut parser, &limits, max_line, fried);
    assert_eq!(
        matches!(parsed, Line::Blank),
        body.iter().all(u8::is_ascii_whitespace)
    );
    match parsed {
        Line::Blank => {}
        Line::Oversize(n) => {
            assert_eq!(n, body.len());
            assert!(n > max_line);
        }
        Line::Malformed(reason) => assert!(!reason.is_empty()),
        Line::Invalid { id, reason } => {
            assert!(!reason.is_empty());
            if let Some(id) = id {
                assert!(
                    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                );
            }
        }
        Line::Event(ev) => {
            let _ = ev.check_id();
            let canon = ev.json();
            let mut plain = canon.to_vec();
            match parse_line(&mut plain, &mut parser, &limits, usize::MAX, false) {
                Line::Event(again) => assert_eq!(again, ev),
                other => panic!("canonical JSON is not an event line: {other:?}"),
            }
            let mut fried_line = canon[..canon.len() - 1].to_vec();
            fried_line.extend_from_slice(b",\"fried\":\"00\"}");
            match parse_line(&mut fried_line, &mut parser, &limits, usize::MAX, true) {
                Line::Event(again) => assert_eq!(again, ev),
                other => panic!("canonical JSON as a fried line is not an event: {other:?}"),
            }
        }
    }
}
