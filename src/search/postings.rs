//! Posting blocks: how the search index stores a token's postings (sans-IO; the store reads
//! and writes the blocks, `store/search.rs`).
//!
//! A token's postings (levId, term frequency, document length), in levId order, are cut
//! into blocks of at most [`BLOCK_BYTES`]. A block's key is `token ‖ 0xFF ‖ first levId
//! (8 bytes BE)`: 0xFF never occurs in UTF-8, so one token's blocks are contiguous and in
//! levId order. Its value is one `varint(levId − previous levId) ‖ tf ‖ len` per posting,
//! the first delta taken from the key's levId (so it is 0). A posting costs 3 bytes when
//! postings are dense, against 10 plus LMDB's per-duplicate overhead as one DUPSORT row.
//! levIds only grow, so a new event's postings are appended to its tokens' last blocks: one
//! read and one write per token per batch, however many events of the batch share it.

/// A block is closed once it passes this many bytes: small enough that rewriting it on
/// append is a short copy and it never needs an LMDB overflow page (values stay under half
/// a 4 KiB page with the key), large enough that a common token is a few hundred blocks.
pub const BLOCK_BYTES: usize = 1024;

/// The most bytes one posting takes (a 10-byte varint, tf, len).
pub const MAX_POSTING_BYTES: usize = 12;

const SEPARATOR: u8 = 0xFF;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Posting {
    pub lev: u64,
    pub tf: u8,
    pub len: u8,
}

/// `token ‖ 0xFF`: every block key of `token` starts with it.
pub fn prefix(token: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(token.len() + 9);
    k.extend_from_slice(token);
    k.push(SEPARATOR);
    k
}

/// The key of `token`'s block whose first posting is `first`.
pub fn key(token: &[u8], first: u64) -> Vec<u8> {
    let mut k = prefix(token);
    k.extend_from_slice(&first.to_be_bytes());
    k
}

/// A block key's token and first levId (`None` if it is not one).
pub fn split_key(key: &[u8]) -> Option<(&[u8], u64)> {
    let cut = key.len().checked_sub(9)?;
    if key[cut] != SEPARATOR {
        return None;
    }
    let lev = u64::from_be_bytes(key[cut + 1..].try_into().ok()?);
    Some((&key[..cut], lev))
}

/// Appends one posting; `prev` is the levId before it (the block's first for its first).
pub fn encode(buf: &mut Vec<u8>, prev: u64, p: Posting) {
    let mut d = p.lev.wrapping_sub(prev);
    while d >= 0x80 {
        buf.push((d as u8) | 0x80);
        d >>= 7;
    }
    buf.push(d as u8);
    buf.push(p.tf);
    buf.push(p.len);
}

/// The postings of a block whose first levId is `first`, appended to `out`; `None` if the
/// value is malformed (what was decoded before the fault stays in `out`).
pub fn decode_into(first: u64, mut v: &[u8], out: &mut Vec<Posting>) -> Option<()> {
    let mut lev = first;
    while !v.is_empty() {
        let mut d = 0u64;
        let mut shift = 0;
        loop {
            let (&b, rest) = v.split_first()?;
            v = rest;
            if shift > 63 {
                return None;
            }
            d |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        lev = lev.checked_add(d)?;
        let [tf, len, rest @ ..] = v else {
            return None;
        };
        out.push(Posting {
            lev,
            tf: *tf,
            len: *len,
        });
        v = rest;
    }
    Some(())
}

/// The levId of a block's last posting, without collecting them.
pub fn last_lev(first: u64, v: &[u8]) -> Option<u64> {
    walk(first, v, u64::MAX).map(|(_, last)| last)
}

/// How many of a block's postings have a levId at or below `upto` (a search's snapshot),
/// without collecting them: a term's document frequency from blocks it need not decode.
pub fn count_upto(first: u64, v: &[u8], upto: u64) -> Option<u64> {
    walk(first, v, upto).map(|(n, _)| n)
}

/// (postings at or below `upto`, last levId) of a block; `None` if it is malformed.
///
/// The varint loop is written out here and in `decode_into` on purpose: one shared
/// per-posting reader measured 2x slower searches (300k events, 1-word p50 0.96 -> 1.80 ms,
/// 2-word 0.98 -> 2.67 ms; the cause was not traced).
fn walk(first: u64, v: &[u8], upto: u64) -> Option<(u64, u64)> {
    let mut lev = first;
    let mut n = 0u64;
    let mut i = 0;
    while i < v.len() {
        let mut d = 0u64;
        let mut shift = 0;
        loop {
            let b = *v.get(i)?;
            i += 1;
            if shift > 63 {
                return None;
            }
            d |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        lev = lev.checked_add(d)?;
        n += u64::from(lev <= upto);
        i += 2;
    }
    (i == v.len()).then_some((n, lev))
}

/// Cuts sorted postings into blocks: (first levId, value), each at most about
/// [`BLOCK_BYTES`].
pub fn blocks(postings: &[Posting]) -> Vec<(u64, Vec<u8>)> {
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut prev = 0;
    for &p in postings {
        match out.last_mut() {
            Some((_, buf)) if buf.len() + MAX_POSTING_BYTES <= BLOCK_BYTES => encode(buf, prev, p),
            _ => {
                let mut buf = Vec::with_capacity(64);
                encode(&mut buf, p.lev, p);
                out.push((p.lev, buf));
            }
        }
        prev = p.lev;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(lev: u64) -> Posting {
        Posting {
            lev,
            tf: (lev % 7) as u8,
            len: (lev % 251) as u8,
        }
    }

    #[test]
    fn keys_keep_tokens_apart_and_levids_in_order() {
        let (a, ab) = (key(b"ab", 5), key(b"abc", 1));
        assert!(a.starts_with(&prefix(b"ab")) && !ab.starts_with(&prefix(b"ab")));
        assert!(
            key(b"ab", 5) < key(b"ab", 256),
            "levIds in order within a token"
        );
        assert_eq!(split_key(&key(b"nostr", 42)), Some((&b"nostr"[..], 42)));
        assert_eq!(split_key(b"short"), None);
    }

    #[test]
    fn hand_encoded_block() {
        let mut v = Vec::new();
        encode(&mut v, 100, p(100));
        encode(&mut v, 100, p(101));
        encode(&mut v, 101, p(101 + 300));
        // delta 0, delta 1, delta 300 = 0xAC 0x02 (LEB128).
        assert_eq!(v, [0, 2, 100, 1, 3, 101, 0xAC, 0x02, 2, 150]);
        let mut out = Vec::new();
        assert_eq!(decode_into(100, &v, &mut out), Some(()));
        assert_eq!(out, [p(100), p(101), p(401)]);
        assert_eq!(last_lev(100, &v), Some(401));
        // A truncated value is malformed, not a panic.
        for cut in 0..v.len() {
            let mut out = Vec::new();
            let ok = decode_into(100, &v[..cut], &mut out).is_some();
            assert_eq!(ok, [0, 3, 6].contains(&cut), "cut at {cut}");
            assert_eq!(last_lev(100, &v[..cut]).is_some(), ok);
        }
    }

    proptest::proptest! {
        #[test]
        fn blocks_round_trip(mut levs in proptest::collection::vec(0u64..1 << 40, 0..2000)) {
            levs.sort_unstable();
            levs.dedup();
            let ps: Vec<Posting> = levs.iter().map(|&l| p(l)).collect();
            let bs = blocks(&ps);
            let mut back = Vec::new();
            for (first, v) in &bs {
                proptest::prop_assert!(v.len() <= BLOCK_BYTES);
                let before = back.len();
                proptest::prop_assert!(decode_into(*first, v, &mut back).is_some());
                proptest::prop_assert_eq!(back[before].lev, *first);
                proptest::prop_assert_eq!(last_lev(*first, v), back.last().map(|x| x.lev));
                let mid = levs.get(levs.len() / 2).copied().unwrap_or(0);
                let below = back[before..].iter().filter(|p| p.lev <= mid).count() as u64;
                proptest::prop_assert_eq!(count_upto(*first, v, mid), Some(below));
            }
            proptest::prop_assert_eq!(back, ps);
        }

        #[test]
        fn garbage_never_panics(first in proptest::num::u64::ANY, v in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut out = Vec::new();
            let _ = decode_into(first, &v, &mut out);
            let _ = last_lev(first, &v);
        }
    }
}
