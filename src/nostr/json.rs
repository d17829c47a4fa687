//! JSON writing with the escaping of JavaScript's `JSON.stringify`, which is what clients
//! (nostr-tools and most others) hash to make an event id: escape `"`, `\` and U+0000–U+001F
//! (`\b \f \n \r \t` where they exist, else `\u00xx` in lowercase hex) and nothing else.
//! DEL, U+2028/2029 and all non-ASCII text are written verbatim.

/// Escape needed for each ASCII byte: 0 = none, `u` = `\u00xx`, otherwise the letter after `\`.
static ESCAPE: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x80 && ESCAPE[b as usize] != 0
}

/// Appends `s` as a quoted JSON string.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !needs_escape(b) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match ESCAPE[b as usize] {
            b'u' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
            c => {
                out.push(b'\\');
                out.push(c);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends a decimal unsigned integer.
#[inline]
pub fn write_u64(out: &mut Vec<u8>, n: u64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn matches_json_stringify() {
        assert_eq!(esc("a\"b\\c/"), r#""a\"b\\c/""#);
        assert_eq!(esc("\u{8}\u{c}\n\r\t"), r#""\b\f\n\r\t""#);
        assert_eq!(
            esc("\u{0}\u{1}\u{b}\u{1f}"),
            r#""\u0000\u0001\u000b\u001f""#
        );
        // Written verbatim, unlike some relays (strfry escapes DEL).
        assert_eq!(
            esc("\u{7f}\u{2028}\u{2029}é😀"),
            "\"\u{7f}\u{2028}\u{2029}é😀\""
        );
        assert_eq!(esc(""), "\"\"");
    }

    #[test]
    fn integers() {
        let mut out = Vec::new();
        write_u64(&mut out, 0);
        out.push(b',');
        write_u64(&mut out, u64::MAX);
        assert_eq!(out, b"0,18446744073709551615");
    }
}
