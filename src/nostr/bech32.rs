//! Just enough bech32 (BIP-173) for NIP-19 `npub`/`nsec`: decoding a 32-byte payload with its
//! checksum verified. Pure; no allocation beyond the result.

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn polymod(values: impl Iterator<Item = u8>) -> u32 {
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// Decodes `<hrp>1<data>` whose payload is exactly 32 bytes (case-blind, not mixed case).
pub fn decode32(s: &str, hrp: &str) -> Result<[u8; 32], String> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) && s.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("mixed case".into());
    }
    let s = s.to_ascii_lowercase();
    let (h, data) = s.rsplit_once('1').ok_or("no separator")?;
    if h != hrp {
        return Err(format!("expected {hrp}, got {h}"));
    }
    let mut vals = Vec::with_capacity(data.len());
    for c in data.bytes() {
        let v = CHARSET
            .iter()
            .position(|x| *x == c)
            .ok_or_else(|| format!("bad character {:?}", c as char))?;
        vals.push(v as u8);
    }
    if vals.len() < 6 {
        return Err("too short".into());
    }
    let expanded = h
        .bytes()
        .map(|b| b >> 5)
        .chain(std::iter::once(0))
        .chain(h.bytes().map(|b| b & 31))
        .chain(vals.iter().copied());
    if polymod(expanded) != 1 {
        return Err("bad checksum".into());
    }
    // 5-bit groups to bytes, no padding beyond the last partial group of zero bits.
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::with_capacity(32));
    for v in &vals[..vals.len() - 6] {
        acc = (acc << 5) | u32::from(*v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    if bits >= 5 || (acc & ((1 << bits) - 1)) != 0 {
        return Err("bad padding".into());
    }
    out.try_into().map_err(|_| "payload is not 32 bytes".into())
}

/// A pubkey given as 64 hex digits or as an `npub`.
pub fn parse_pubkey(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    if s.len() == 64 {
        return super::hex::decode_any::<32>(s.as_bytes())
            .ok_or_else(|| format!("{s}: not 64 hex digits"));
    }
    decode32(s, "npub").map_err(|e| format!("{s}: not a hex pubkey or npub ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nip19_vector() {
        // NIP-19's example.
        let pk = parse_pubkey("npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg")
            .expect("npub");
        assert_eq!(
            crate::nostr::hex::encode(&pk),
            "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"
        );
        assert!(
            parse_pubkey("npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjpth")
                .is_err()
        );
        assert!(parse_pubkey(&"ab".repeat(32)).is_ok());
        assert!(parse_pubkey(&"zz".repeat(32)).is_err());
    }
}
