//! NIP-45 HyperLogLog: 256 one-byte registers over the pubkeys of the counted events, at an
//! offset derived from the filter's first tag value, so registers from different relays
//! (and a client's own counting) merge by taking each register's maximum.

use sha2::{Digest, Sha256};

/// The NIP-45 offset for a filter whose first tag attribute's first value is `value`: a
/// 64-hex id or pubkey as is, an address `<kind>:<pubkey>:<d>` its pubkey, anything else
/// its sha256; then the hex digit at position 32, plus 8 (so 8..=23).
pub fn offset(value: &str) -> u8 {
    let is_hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let mut parts = value.splitn(3, ':');
    let addr_pk = match (parts.next(), parts.next(), parts.next()) {
        (Some(k), Some(pk), Some(_)) if k.parse::<u64>().is_ok() && is_hex64(pk) => Some(pk),
        _ => None,
    };
    let digit = if is_hex64(value) {
        value.as_bytes()[32]
    } else if let Some(pk) = addr_pk {
        pk.as_bytes()[32]
    } else {
        // Byte 16's high nibble is hex character 32 of the digest.
        let h = Sha256::digest(value.as_bytes());
        return (h[16] >> 4) + 8;
    };
    let n = match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    };
    n + 8
}

/// 256 registers.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Hll {
    pub offset: u8,
    pub registers: [u8; 256],
}

impl Hll {
    pub fn new(offset: u8) -> Hll {
        Hll {
            offset,
            registers: [0; 256],
        }
    }

    /// Adds one event's pubkey.
    pub fn add(&mut self, pubkey: &[u8; 32]) {
        let o = usize::from(self.offset.min(30));
        let ri = usize::from(pubkey[o]);
        let mut zeros: u32 = 0;
        for &b in &pubkey[o + 1..] {
            zeros += b.leading_zeros();
            if b != 0 {
                break;
            }
        }
        let v = u8::try_from(zeros + 1).unwrap_or(u8::MAX);
        if v > self.registers[ri] {
            self.registers[ri] = v;
        }
    }

    /// Register-wise maximum (merging another relay's answer).
    pub fn merge(&mut self, other: &Hll) {
        for (a, b) in self.registers.iter_mut().zip(other.registers.iter()) {
            *a = (*a).max(*b);
        }
    }

    /// The 512-character lowercase hex of the registers.
    pub fn to_hex(&self) -> String {
        let mut out = Vec::with_capacity(512);
        crate::nostr::hex::encode_into(&self.registers, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// The usual HLL estimate with small-range correction (for tests and tools).
    pub fn estimate(&self) -> f64 {
        let m = 256.0;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self
            .registers
            .iter()
            .map(|&r| 2f64.powi(-i32::from(r)))
            .sum();
        let e = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        if e <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        // Hex id: character 32 is 'c' (12) → 20.
        let id = format!("{}c{}", "0".repeat(32), "1".repeat(31));
        assert_eq!(offset(&id), 20);
        // Address: its pubkey's character 32 ('3' → 11).
        let pk = format!("{}3{}", "a".repeat(32), "f".repeat(31));
        assert_eq!(offset(&format!("30023:{pk}:my-article")), 11);
        // Anything else: sha256("nostr") =
        // 8b2cd5b1f3b5ff8bb8e7b4e7b39bf3a9 e2… → character 32 is 'e'? computed below.
        let h = Sha256::digest(b"nostr");
        let hexs: String = h.iter().map(|b| format!("{b:02x}")).collect();
        let c = hexs.as_bytes()[32];
        let want =
            u8::from_str_radix(std::str::from_utf8(&[c]).expect("ascii"), 16).expect("hex") + 8;
        assert_eq!(offset("nostr"), want);
        assert!((8..=23).contains(&offset("anything at all")));
    }

    #[test]
    fn registers_by_hand() {
        let mut h = Hll::new(8);
        let mut pk = [0xffu8; 32];
        pk[8] = 5; // register 5
        pk[9] = 0x00; // 8 zero bits
        pk[10] = 0x10; // then 3 more, then a one: 11 zeros + 1
        h.add(&pk);
        assert_eq!(h.registers[5], 12);
        // A smaller value never lowers a register.
        pk[9] = 0x80;
        h.add(&pk);
        assert_eq!(h.registers[5], 12);
        // Another register: byte 8 = 200, next byte 0x40 → 1 zero + 1 = 2.
        pk[8] = 200;
        pk[9] = 0x40;
        h.add(&pk);
        assert_eq!(h.registers[200], 2);
        let hex = h.to_hex();
        assert_eq!(hex.len(), 512);
        assert_eq!(&hex[10..12], "0c");
        assert_eq!(&hex[400..402], "02");
        assert_eq!(hex.matches('0').count(), 512 - 2);
        // All zero bytes after the offset: 8 × 23 zeros + 1.
        let mut z = Hll::new(8);
        z.add(&[0u8; 32]);
        assert_eq!(z.registers[0], 185);
    }

    #[test]
    fn merge_and_estimate() {
        let mut a = Hll::new(10);
        let mut b = Hll::new(10);
        for i in 0..2000u32 {
            let pk: [u8; 32] = Sha256::digest(i.to_le_bytes()).into();
            if i % 2 == 0 {
                a.add(&pk);
            } else {
                b.add(&pk);
            }
        }
        a.merge(&b);
        let e = a.estimate();
        assert!((1500.0..2500.0).contains(&e), "{e}");
    }
}
