//! Explaining a client message that is not valid JSON (the cold path of
//! `message::decode`): where it breaks, in bytes, with a short excerpt, and for an EVENT the
//! id it names when one can still be read, so the client gets an `OK` for it instead of a
//! NOTICE it cannot tie to anything.
//!
//! simd-json reports some errors (a raw control character in a string, say) at byte 0, and
//! parses in place; `decode` keeps the original bytes for this. serde_json, already a
//! dependency, gives the true position.

/// Bytes shown either side of the error.
const EXCERPT: usize = 16;

/// "invalid JSON at byte N: what, near `…`" for `input`, or `None` if serde_json finds it
/// valid (the error was one only simd-json makes: depth, surrogates; its own text is kept).
pub fn json_error(input: &[u8]) -> Option<String> {
    let e = serde_json::from_slice::<serde::de::IgnoredAny>(input).err()?;
    let mut at = offset(input, e.line(), e.column());
    let what = e.to_string();
    if what.starts_with("EOF") {
        at = input.len();
    } else if what.starts_with("control character") {
        // serde_json places this one a byte early: point at the character itself.
        if let Some(i) = input[at.saturating_sub(1)..].iter().position(|&b| b < 0x20) {
            at = at.saturating_sub(1) + i;
        }
    }
    // serde_json appends " at line L column C": the byte offset says it better.
    let what = what.split(" at line ").next().unwrap_or(&what);
    let lo = at.saturating_sub(EXCERPT);
    let hi = (at + EXCERPT).min(input.len());
    let near: String = String::from_utf8_lossy(&input[lo..hi])
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    Some(format!("invalid JSON at byte {at}: {what}, near `{near}`"))
}

/// serde_json's 1-based line and column (in bytes) as an offset into `input`.
fn offset(input: &[u8], line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        input
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map_or(0, |(i, _)| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(input.len())
}

/// The 64-hex `id` of an EVENT whose JSON is broken, if it can still be read: the message
/// starts `["EVENT",{` and the event object's own `"id"` member (not one nested deeper)
/// holds 64 lowercase hex digits. Scans only up to the first broken byte it needs.
pub fn event_id(input: &[u8]) -> Option<String> {
    let s = skip_ws(input, 0);
    let s = expect(input, s, b"[")?;
    let s = expect(input, skip_ws(input, s), b"\"EVENT\"")?;
    let s = expect(input, skip_ws(input, s), b",")?;
    let mut i = expect(input, skip_ws(input, s), b"{")?;
    // Walk the object's members at its own level, skipping nested values by bracket depth.
    let mut depth = 0usize;
    let mut key_next = true;
    while i < input.len() {
        let b = input[i];
        match b {
            b'"' => {
                let end = string_end(input, i)?;
                if depth == 0 && key_next {
                    let key = &input[i + 1..end];
                    let v = skip_ws(input, end + 1);
                    let v = expect(input, v, b":")?;
                    let v = skip_ws(input, v);
                    if key == b"id" {
                        let hex = input.get(v..v + 66)?;
                        let ok = hex[0] == b'"'
                            && hex[65] == b'"'
                            && hex[1..65]
                                .iter()
                                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
                        return ok.then(|| String::from_utf8_lossy(&hex[1..65]).into_owned());
                    }
                    key_next = false;
                    i = v;
                    continue;
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return None,
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => key_next = true,
            _ => {}
        }
        i += 1;
    }
    None
}

fn skip_ws(input: &[u8], mut i: usize) -> usize {
    while input.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

fn expect(input: &[u8], i: usize, want: &[u8]) -> Option<usize> {
    input
        .get(i..i + want.len())
        .filter(|got| *got == want)
        .map(|_| i + want.len())
}

/// The index of the quote closing the string that opens at `start`.
fn string_end(input: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < input.len() {
        match input[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "ab12000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn the_true_position_and_an_excerpt() {
        let msg = format!("[\"EVENT\",{{\"id\":\"{ID}\",\"content\":\"a\u{1}b\"}}]");
        let at = msg.find('\u{1}').expect("control byte");
        let e = json_error(msg.as_bytes()).expect("invalid");
        assert!(
            e.starts_with(&format!("invalid JSON at byte {at}: control character")),
            "{e}"
        );
        assert!(e.contains("near `"), "{e}");
        assert!(
            !e.contains('\u{1}'),
            "control characters are not echoed: {e}"
        );
        // Several lines: still a byte offset.
        let e = json_error(b"[\n\"REQ\",\n x]").expect("invalid");
        assert!(e.starts_with("invalid JSON at byte 10:"), "{e}");
        assert_eq!(json_error(b"[\"REQ\",\"x\",{}]"), None);
    }

    #[test]
    fn the_id_of_a_broken_event() {
        let broken = format!("[\"EVENT\", {{\"kind\":1,\"tags\":[[\"id\",\"x\"]],\"id\":\"{ID}\",\"content\":\"\u{1}");
        assert_eq!(event_id(broken.as_bytes()).as_deref(), Some(ID));
        // A nested "id" is not the event's.
        let nested = format!("[\"EVENT\",{{\"tags\":{{\"id\":\"{ID}\"}},\"content\":\"\u{1}\"}}]");
        assert_eq!(event_id(nested.as_bytes()), None);
        // Uppercase or short ids, other verbs, values that are not strings: none.
        for m in [
            format!("[\"EVENT\",{{\"id\":\"{}\"", ID.to_uppercase()),
            "[\"EVENT\",{\"id\":\"ab12\"}".to_owned(),
            format!("[\"REQ\",{{\"id\":\"{ID}\"}}"),
            "[\"EVENT\",{\"id\":12}".to_owned(),
            "[\"EVENT\"".to_owned(),
        ] {
            assert_eq!(event_id(m.as_bytes()), None, "{m}");
        }
    }
}
