//! Kind classes (NIP-01) as strfry draws them.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindClass {
    Regular,
    /// Latest per (pubkey, kind): 0, 3, 41 and 10000–19999.
    Replaceable,
    /// Delivered live, never stored: 20000–29999.
    Ephemeral,
    /// Latest per (pubkey, kind, d tag): 30000–39999.
    Addressable,
}

pub const KIND_DELETION: u64 = 5;
pub const KIND_REPOST: u64 = 6;
pub const KIND_GENERIC_REPOST: u64 = 16;
pub const KIND_GIFT_WRAP: u64 = 1059;
pub const KIND_EPHEMERAL_GIFT_WRAP: u64 = 21059;
pub const KIND_AUTH: u64 = 22242;

pub fn classify(kind: u64) -> KindClass {
    match kind {
        0 | 3 | 41 | 10_000..=19_999 => KindClass::Replaceable,
        20_000..=29_999 => KindClass::Ephemeral,
        30_000..=39_999 => KindClass::Addressable,
        _ => KindClass::Regular,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        assert_eq!(classify(0), KindClass::Replaceable);
        assert_eq!(classify(1), KindClass::Regular);
        assert_eq!(classify(3), KindClass::Replaceable);
        assert_eq!(classify(41), KindClass::Replaceable);
        assert_eq!(classify(9_999), KindClass::Regular);
        assert_eq!(classify(10_000), KindClass::Replaceable);
        assert_eq!(classify(19_999), KindClass::Replaceable);
        assert_eq!(classify(20_000), KindClass::Ephemeral);
        assert_eq!(classify(29_999), KindClass::Ephemeral);
        assert_eq!(classify(30_000), KindClass::Addressable);
        assert_eq!(classify(39_999), KindClass::Addressable);
        assert_eq!(classify(40_000), KindClass::Regular);
        assert_eq!(classify(u64::MAX), KindClass::Regular);
    }
}
