//! permessage-deflate's two halves (RFC 7692 §7.2) over flate2's raw deflate: a compressor
//! that ends each message with a sync flush and strips its `00 00 ff ff`, and an inflater
//! bounded by the message size limit *after* decompression (a zip bomb costs at most the
//! limit). No sockets: `frame.rs` drives these.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The empty stored block a sync flush ends with; senders strip it, receivers add it back.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// strfry (uWS) uses zlib's level 1. zlib-rs's level 1 is a different algorithm
/// (deflate_quick: static Huffman codes only), which saves 47% on 500 kind-1 events with the
/// sliding window and 15% without; level 2 is zlib's fast algorithm and saves 57% / 34% for
/// about twice the CPU; higher levels add under 2 points (`cargo bench --bench deflate`).
pub const LEVEL: u32 = 2;

/// Compresses outgoing messages, keeping its window across messages only with context
/// takeover (the receiving end then keeps the matching window).
pub struct Deflater {
    c: Compress,
    takeover: bool,
}

impl Deflater {
    /// `window_bits` must be 9..=15 (negotiation never agrees to anything else).
    pub fn new(window_bits: u8, takeover: bool) -> Deflater {
        Deflater {
            c: Compress::new_with_window_bits(
                Compression::new(LEVEL),
                false,
                window_bits.clamp(9, 15),
            ),
            takeover,
        }
    }

    pub fn takeover(&self) -> bool {
        self.takeover
    }

    /// Appends `input` compressed as one message (sync-flushed, tail stripped) to `out`.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), DeflateError> {
        if !self.takeover {
            self.c.reset();
        }
        let start = out.len();
        sync_compress(&mut self.c, input, out)?;
        if out.len() >= start + 4 && out[out.len() - 4..] == TAIL {
            out.truncate(out.len() - 4);
        }
        Ok(())
    }
}

/// Compresses `input` with a sync flush, keeping the flush's tail: the result is byte
/// aligned and can be spliced between other such pieces (see `frame::shared_event`).
pub fn sync_compress(
    c: &mut Compress,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), DeflateError> {
    let mut done = 0usize;
    loop {
        // Text compresses; the worst case (stored blocks) adds 5 bytes per 16 KiB plus flush.
        out.reserve((input.len() - done) / 2 + 64);
        let before_in = c.total_in();
        c.compress_vec(&input[done..], out, FlushCompress::Sync)
            .map_err(|_| DeflateError)?;
        done += (c.total_in() - before_in) as usize;
        // zlib's contract: the flush is complete once a call leaves output space unused.
        if done == input.len() && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

/// A fresh compressor for pieces shared by several connections (no context takeover).
pub fn shared_compressor(window_bits: u8) -> Compress {
    Compress::new_with_window_bits(Compression::new(LEVEL), false, window_bits.clamp(9, 15))
}

#[derive(Debug, PartialEq, Eq)]
pub struct DeflateError;

#[derive(Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The inflated message would exceed the limit (close 1009).
    TooBig,
    /// Not valid deflate data (close 1007).
    Corrupt,
}

/// Inflates incoming messages; one per connection, since with client context takeover the
/// window is that client's history.
pub struct Inflater {
    d: Decompress,
    takeover: bool,
}

impl Inflater {
    pub fn new(takeover: bool) -> Inflater {
        // 15 bits decodes whatever window the client chose (a smaller one is a subset).
        Inflater {
            d: Decompress::new_with_window_bits(false, 15),
            takeover,
        }
    }

    /// Appends the inflated message to `out`; never lets `out` grow past `max` bytes.
    pub fn inflate(
        &mut self,
        input: &[u8],
        max: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        if !self.takeover {
            self.d.reset(false);
        }
        let start = out.len();
        let r = self.feed(input, max, start, out).and_then(|ended| {
            if ended {
                Ok(true)
            } else {
                self.feed(&TAIL, max, start, out)
            }
        });
        match r {
            Ok(ended) => {
                // A client that ended its stream (BFINAL) starts the next one afresh.
                if ended {
                    self.d.reset(false);
                }
                Ok(())
            }
            Err(e) => {
                // The window is now unusable for this client; the connection is closed.
                self.d.reset(false);
                Err(e)
            }
        }
    }

    /// Feeds one piece; `Ok(true)` when the deflate stream ended (BFINAL).
    fn feed(
        &mut self,
        input: &[u8],
        max: usize,
        start: usize,
        out: &mut Vec<u8>,
    ) -> Result<bool, InflateError> {
        let mut done = 0usize;
        loop {
            // Room for at most one byte past the limit: that byte proves the excess.
            let room = (max + 1).saturating_sub(out.len() - start);
            if room == 0 {
                return Err(InflateError::TooBig);
            }
            // Text inflates a few times over; grow in steps so a small message zeroes little.
            let want = room.min(((input.len() - done) * 4).clamp(1024, 64 * 1024));
            let before_in = self.d.total_in();
            let before_out = out.len();
            let limit = out.len() + want;
            let status = decompress_bounded(&mut self.d, &input[done..], out, limit)?;
            done += (self.d.total_in() - before_in) as usize;
            if out.len() - start > max {
                return Err(InflateError::TooBig);
            }
            if status == Status::StreamEnd {
                // Bytes after the final block belong to no message: refuse, not ignore.
                return if done < input.len() {
                    Err(InflateError::Corrupt)
                } else {
                    Ok(true)
                };
            }
            let progressed = out.len() > before_out || self.d.total_in() > before_in;
            // All input taken and output space left over: nothing more is pending.
            if done == input.len() && out.len() < limit {
                return Ok(false);
            }
            if !progressed {
                return Err(InflateError::Corrupt);
            }
        }
    }
}

/// Inflates into `out[len..limit]`: zlib never writes past the limit we chose.
fn decompress_bounded(
    d: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<Status, InflateError> {
    let len = out.len();
    out.resize(limit, 0);
    let before = d.total_out();
    let r = d.decompress(input, &mut out[len..], FlushDecompress::Sync);
    let produced = (d.total_out() - before) as usize;
    out.truncate(len + produced);
    r.map_err(|_| InflateError::Corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: usize) -> Vec<u8> {
        format!(
            r#"["EVENT","sub{}",{{"id":"{:064x}","pubkey":"{:064x}","kind":1,"content":"hello {i}"}}]"#,
            i % 3,
            i * 7919,
            i % 5
        )
        .into_bytes()
    }

    fn roundtrip(takeover: bool, bits: u8) {
        let mut d = Deflater::new(bits, takeover);
        let mut i = Inflater::new(takeover);
        for n in 0..50 {
            let m = msg(n);
            let mut z = Vec::new();
            d.compress(&m, &mut z).expect("compress");
            assert_ne!(&z[z.len().saturating_sub(4)..], &TAIL);
            let mut back = Vec::new();
            i.inflate(&z, 1 << 20, &mut back).expect("inflate");
            assert_eq!(back, m);
        }
    }

    #[test]
    fn roundtrips() {
        for bits in [9, 12, 15] {
            roundtrip(true, bits);
            roundtrip(false, bits);
        }
    }

    #[test]
    fn takeover_shrinks_repeats() {
        let m = msg(1);
        let mut with = Deflater::new(15, true);
        let mut without = Deflater::new(15, false);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..2 {
            a.clear();
            b.clear();
            with.compress(&m, &mut a).expect("compress");
            without.compress(&m, &mut b).expect("compress");
        }
        // The second copy is one back-reference with the window kept.
        assert!(a.len() * 4 < b.len(), "{} vs {}", a.len(), b.len());
    }

    #[test]
    fn bytes_after_a_final_block_are_corrupt() {
        // A whole raw deflate stream (BFINAL set), as a client may send one.
        let mut c = flate2::Compress::new_with_window_bits(Compression::new(6), false, 15);
        let mut z = Vec::with_capacity(256);
        c.compress_vec(b"[\"REQ\",\"x\",{}]", &mut z, flate2::FlushCompress::Finish)
            .expect("deflate");
        let mut i = Inflater::new(true);
        let mut out = Vec::new();
        i.inflate(&z, 1 << 20, &mut out)
            .expect("a final block alone is fine");
        assert_eq!(out, b"[\"REQ\",\"x\",{}]");
        z.extend_from_slice(b"junk");
        out.clear();
        assert_eq!(i.inflate(&z, 1 << 20, &mut out), Err(InflateError::Corrupt));
    }

    #[test]
    fn inflate_is_bounded() {
        let bomb = vec![b'0'; 10 << 20];
        let mut z = Vec::new();
        Deflater::new(15, false)
            .compress(&bomb, &mut z)
            .expect("compress");
        assert!(z.len() < 200_000, "{}", z.len());
        let mut out = Vec::new();
        let mut i = Inflater::new(false);
        assert_eq!(i.inflate(&z, 131_072, &mut out), Err(InflateError::TooBig));
        assert!(out.capacity() <= 2 * 131_072 + 2, "{}", out.capacity());
        // Exactly at the limit is fine.
        let exact = vec![b'a'; 1000];
        let mut z = Vec::new();
        Deflater::new(15, false)
            .compress(&exact, &mut z)
            .expect("compress");
        let mut out = Vec::new();
        i.inflate(&z, 1000, &mut out).expect("at the limit");
        assert_eq!(out.len(), 1000);
        out.clear();
        assert_eq!(i.inflate(&z, 999, &mut out), Err(InflateError::TooBig));
    }

    #[test]
    fn garbage_is_corrupt() {
        let mut out = Vec::new();
        let r = Inflater::new(false).inflate(&[0xff, 0xff, 0xff, 0xff, 0x12], 1 << 20, &mut out);
        assert_eq!(r, Err(InflateError::Corrupt));
    }
}
