//! Hex codecs for ids, pubkeys and signatures. Events must carry lowercase hex (the id is
//! a hash over the hex text, so `AB` and `ab` would be different events); filters and tag
//! values are looked up by raw bytes, so they may use either case.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Nibble value of each byte; 0xff = not a hex digit. Upper-case digits are marked 0x10
/// above their value so a lowercase-only decode can refuse them with one test.
static NIBBLE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 0x10 | (10 + i as u8);
        i += 1;
    }
    t
};

fn decode_into(s: &[u8], out: &mut [u8], lower_only: bool) -> bool {
    if s.len() != out.len() * 2 {
        return false;
    }
    // Table lookups, with the validity of the whole input folded into one OR (contact
    // lists carry hundreds of 64-digit values, so this is on the ingest hot path).
    let reject = if lower_only { 0xf0 } else { 0xe0 };
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (h, l) = (NIBBLE[pair[0] as usize], NIBBLE[pair[1] as usize]);
        bad |= (h | l) & reject;
        *o = (h << 4) | (l & 0x0f);
    }
    bad == 0
}

/// Decodes exactly `2*N` lowercase hex digits.
pub fn decode_lower<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    decode_into(s, &mut out, true).then_some(out)
}

/// Decodes exactly `2*N` hex digits of either case.
pub fn decode_any<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    decode_into(s, &mut out, false).then_some(out)
}

/// Decodes any even-length hex string of either case (NIP-77 payloads).
pub fn decode_vec(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let mut out = vec![0u8; s.len() / 2];
    decode_into(s, &mut out, false).then_some(out)
}

/// Appends the lowercase hex of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

pub fn encode(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    encode_into(bytes, &mut out);
    // Only ASCII hex digits were written.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes: [u8; 4] = [0x00, 0x7f, 0xab, 0xff];
        assert_eq!(encode(&bytes), "007fabff");
        assert_eq!(decode_lower::<4>(b"007fabff"), Some(bytes));
        assert_eq!(decode_any::<4>(b"007FABFF"), Some(bytes));
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(decode_lower::<2>(b"ABCD"), None);
        assert_eq!(decode_lower::<2>(b"abc"), None);
        assert_eq!(decode_lower::<2>(b"abcde"), None);
        assert_eq!(decode_lower::<2>(b"abcg"), None);
        assert_eq!(decode_vec(b"abc"), None);
        assert_eq!(decode_vec(b""), Some(vec![]));
    }
}
