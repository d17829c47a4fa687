//! Key layouts of every index. Numbers are fixed-width big-endian and variable parts are
//! length-prefixed or last, so plain byte order (no custom comparators) clusters each index
//! by value, then created_at, and a scan walks backwards from `value‖until`.
//!
//! Every scannable index key ends with the same 24-byte suffix
//! `created_at(8) ‖ !id[0..8](8) ‖ levId(8)`: walking backwards yields created_at descending
//! and, within a second, id *ascending* (the id prefix is stored complemented), which is
//! NIP-01's order, without loading any record. The levId makes each key unique. Two events
//! with the same created_at and the same first 8 id bytes (only possible by grinding ids) are
//! ordered by levId instead; nothing is lost.

pub type LevId = u64;

pub const SUFFIX_LEN: usize = 24;

pub fn lev_key(lev: LevId) -> [u8; 8] {
    lev.to_be_bytes()
}

pub fn read_u64(b: &[u8]) -> Option<u64> {
    b.get(..8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes)
}

/// The shared suffix for an event.
pub fn suffix(created_at: u64, id: &[u8; 32], lev: LevId) -> [u8; SUFFIX_LEN] {
    let mut s = [0u8; SUFFIX_LEN];
    s[..8].copy_from_slice(&created_at.to_be_bytes());
    for (d, b) in s[8..16].iter_mut().zip(&id[..8]) {
        *d = !b;
    }
    s[16..].copy_from_slice(&lev.to_be_bytes());
    s
}

/// The lowest and highest suffix for created_at in `[since, until]`.
pub fn suffix_bounds(since: u64, until: u64) -> ([u8; SUFFIX_LEN], [u8; SUFFIX_LEN]) {
    let mut lo = [0u8; SUFFIX_LEN];
    lo[..8].copy_from_slice(&since.to_be_bytes());
    let mut hi = [0xffu8; SUFFIX_LEN];
    hi[..8].copy_from_slice(&until.to_be_bytes());
    (lo, hi)
}

/// created_at and levId from a key ending in the suffix.
pub fn parse_suffix(key: &[u8]) -> Option<(u64, LevId)> {
    let s = key.len().checked_sub(SUFFIX_LEN).map(|at| &key[at..])?;
    Some((read_u64(s)?, read_u64(&s[16..])?))
}

/// `pubkey(32)`
pub fn pubkey_prefix(pk: &[u8; 32]) -> Vec<u8> {
    pk.to_vec()
}

/// `kind(8)`
pub fn kind_prefix(kind: u64) -> Vec<u8> {
    kind.to_be_bytes().to_vec()
}

/// `pubkey(32) ‖ kind(8)`
pub fn pubkey_kind_prefix(pk: &[u8; 32], kind: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(40 + SUFFIX_LEN);
    k.extend_from_slice(pk);
    k.extend_from_slice(&kind.to_be_bytes());
    k
}

/// `name(1) ‖ len(1) ‖ value` (values over 255 bytes are never indexed).
pub fn tag_prefix(name: u8, value: &[u8]) -> Option<Vec<u8>> {
    let len = u8::try_from(value.len()).ok()?;
    let mut k = Vec::with_capacity(2 + value.len() + SUFFIX_LEN);
    k.push(name);
    k.push(len);
    k.extend_from_slice(value);
    Some(k)
}

pub fn with_suffix(mut prefix: Vec<u8>, s: &[u8; SUFFIX_LEN]) -> Vec<u8> {
    prefix.extend_from_slice(s);
    prefix
}

/// `replace` and `replaceDeletion`: `pubkey(32) ‖ kind(8) ‖ d`.
pub fn address_key(pk: &[u8; 32], kind: u64, d: &str) -> Vec<u8> {
    let mut k = pubkey_kind_prefix(pk, kind);
    k.extend_from_slice(d.as_bytes());
    k
}

/// `deletion`: `eventId(32) ‖ deleterPubkey(32)`.
pub fn deletion_key(id: &[u8; 32], deleter: &[u8; 32]) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(id);
    k[32..].copy_from_slice(deleter);
    k
}

/// `expiration`: `expiration(8) ‖ levId(8)`.
pub fn expiration_key(exp: u64, lev: LevId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&exp.to_be_bytes());
    k[8..].copy_from_slice(&lev.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_orders_created_at_then_id_ascending_when_reversed() {
        let a = suffix(10, &[1; 32], 7);
        let b = suffix(10, &[2; 32], 3);
        let c = suffix(11, &[0; 32], 1);
        // Byte order: c > a > b, so a backwards walk gives c, then a (id 01…), then b (id 02…).
        assert!(c > a && a > b);
        assert_eq!(parse_suffix(&with_suffix(vec![9, 9], &a)), Some((10, 7)));
        let (lo, hi) = suffix_bounds(10, 10);
        assert!(lo <= b && a <= hi && c > hi);
    }

    #[test]
    fn tag_keys_do_not_interleave() {
        // "ab" and "ab\0…" have different length prefixes, so their ranges cannot mix.
        let short = with_suffix(
            tag_prefix(b't', b"ab").expect("short"),
            &suffix(u64::MAX, &[0; 32], 0),
        );
        let long = with_suffix(
            tag_prefix(b't', b"ab\0\0").expect("long"),
            &suffix(0, &[0; 32], 0),
        );
        assert!(short < long);
        assert!(tag_prefix(b't', &[0; 256]).is_none());
    }
}
