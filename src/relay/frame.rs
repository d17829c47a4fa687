//! The server side of RFC 6455 framing with RFC 7692's RSV1, as a pure state machine:
//! bytes go in (`Decoder::read_from` / `feed`), whole messages and control frames come out
//! (`Decoder::next`); messages go in (`Encoder`) and frame bytes come out into a buffer the
//! caller writes. No sockets, no clock: `io.rs` drives it, the tests below drive it with
//! slices. (tungstenite rejects RSV1, so it cannot carry permessage-deflate.)

use std::io::Read;
use std::sync::Arc;

use super::deflate::{self, Deflater, InflateError, Inflater};
use super::extension::Agreed;

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// Messages shorter than this go out uncompressed: deflate's framing would eat the gain.
pub const MIN_COMPRESS: usize = 32;

/// What the decoder hands up.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A complete text message (UTF-8 checked), inflated if it was compressed.
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    /// The peer's close; its status code when it gave one.
    Close(Option<u16>),
}

/// Why a connection must be closed, with the status code to close it with.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// 1002
    Protocol(&'static str),
    /// 1009: a frame, a message, or an inflated message over the limit.
    TooBig,
    /// 1007: invalid UTF-8 or undecodable compressed data.
    Invalid(&'static str),
}

impl FrameError {
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::Protocol(_) => 1002,
            FrameError::TooBig => 1009,
            FrameError::Invalid(_) => 1007,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::Protocol(r) | FrameError::Invalid(r) => r,
            FrameError::TooBig => "message too big",
        }
    }
}

/// Bytes a direction carried, to report how much compression saved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Frame bytes as they crossed the wire (headers included).
    pub wire: u64,
    /// What the same data frames would have taken uncompressed.
    pub plain: u64,
}

impl Traffic {
    /// Share of the uncompressed size that compression saved, in percent.
    pub fn saved_pct(&self) -> f64 {
        if self.plain == 0 {
            0.0
        } else {
            100.0 * (1.0 - self.wire as f64 / self.plain as f64)
        }
    }
}

/// A data message being reassembled from fragments.
struct Partial {
    text: bool,
    compressed: bool,
    data: Vec<u8>,
    wire: u64,
}

pub struct Decoder {
    max: usize,
    buf: Vec<u8>,
    pos: usize,
    partial: Option<Partial>,
    inflater: Option<Inflater>,
    pub traffic: Traffic,
}

/// The largest frame or message limit honoured.
pub const MAX_LIMIT: usize = 1 << 30;

/// Read-buffer capacity an emptied buffer may keep (one typical message).
const IDLE_KEEP: usize = 2 * 1024;

/// How much a read asks the socket for.
const READ_CHUNK: usize = 8 * 1024;

thread_local! {
    /// The io thread's read buffer, zeroed once: a stack array per read was zeroed on
    /// every read (callgrind: 8 KiB memset per read, 3% of a query run's instructions).
    static CHUNK: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

impl Decoder {
    /// `max`: the largest frame and the largest (inflated) message (at most 1 GiB, so
    /// length arithmetic can never overflow).
    pub fn new(max: usize, deflate: Option<Agreed>) -> Decoder {
        Decoder {
            max: max.min(MAX_LIMIT),
            buf: Vec::new(),
            pos: 0,
            partial: None,
            inflater: deflate.map(|a| Inflater::new(a.client_takeover)),
            traffic: Traffic::default(),
        }
    }

    /// Bytes read past the HTTP request head.
    pub fn feed(&mut self, data: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(data);
    }

    /// One `read` from `r` into the buffer (its result as `Read` gives it). The read lands
    /// in a stack buffer and only what arrived is kept, so an idle connection holds no
    /// read buffer of its own.
    pub fn read_from(&mut self, r: &mut impl Read) -> std::io::Result<usize> {
        self.compact();
        CHUNK.with_borrow_mut(|chunk| {
            let n = r.read(chunk)?;
            self.buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        })
    }

    /// Drops consumed bytes; an idle connection keeps at most a small buffer.
    fn compact(&mut self) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.buf.capacity() > IDLE_KEEP {
                self.buf = Vec::new();
            }
        } else if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// The next complete message or control frame, `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self) -> Result<Option<Incoming>, FrameError> {
        loop {
            let avail = &self.buf[self.pos..];
            if avail.len() < 2 {
                return Ok(None);
            }
            let (b0, b1) = (avail[0], avail[1]);
            let fin = b0 & 0x80 != 0;
            let rsv1 = b0 & 0x40 != 0;
            let op = b0 & 0x0f;
            if b0 & 0x30 != 0 {
                return Err(FrameError::Protocol("reserved bits set"));
            }
            if b1 & 0x80 == 0 {
                return Err(FrameError::Protocol("unmasked client frame"));
            }
            let (len, at) = match b1 & 0x7f {
                126 if avail.len() >= 4 => (u64::from(u16::from_be_bytes([avail[2], avail[3]])), 4),
                127 if avail.len() >= 10 => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&avail[2..10]);
                    (u64::from_be_bytes(n), 10)
                }
                126 | 127 => return Ok(None),
                n => (u64::from(n), 2),
            };
            let control = op & 0x08 != 0;
            if control && (!fin || len > 125) {
                return Err(FrameError::Protocol("bad control frame"));
            }
            // Before the payload is buffered: a huge length costs nothing.
            if len > self.max as u64 {
                return Err(FrameError::TooBig);
            }
            let len = len as usize;
            let head = at + 4;
            if avail.len() < head + len {
                // Room for the frame so it arrives in few reads, but never more than 1 MiB
                // ahead of what was actually sent: a header alone must not cost memory.
                let missing = head + len - avail.len();
                self.buf.reserve(missing.min(1 << 20));
                return Ok(None);
            }
            let mask = [avail[at], avail[at + 1], avail[at + 2], avail[at + 3]];
            let start = self.pos + head;
            self.pos = start + len;
            let payload = &mut self.buf[start..start + len];
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i & 3];
            }
            let wire = (head + len) as u64;
            let payload = &self.buf[start..start + len];
            if control {
                if rsv1 {
                    return Err(FrameError::Protocol("RSV1 on a control frame"));
                }
                self.traffic.wire += wire;
                self.traffic.plain += wire;
                return match op {
                    OP_CLOSE => close_payload(payload).map(|c| Some(Incoming::Close(c))),
                    OP_PING => Ok(Some(Incoming::Ping(payload.to_vec()))),
                    OP_PONG => Ok(Some(Incoming::Pong)),
                    _ => Err(FrameError::Protocol("unknown opcode")),
                };
            }
            match (op, &mut self.partial) {
                (OP_CONT, Some(p)) => {
                    if rsv1 {
                        return Err(FrameError::Protocol("RSV1 on a continuation frame"));
                    }
                    if p.data.len() + len > self.max {
                        return Err(FrameError::TooBig);
                    }
                    p.data.extend_from_slice(payload);
                    p.wire += wire;
                }
                (OP_CONT, None) => {
                    return Err(FrameError::Protocol("continuation with no message"))
                }
                (OP_TEXT | OP_BINARY, None) => {
                    if rsv1 && self.inflater.is_none() {
                        return Err(FrameError::Protocol("RSV1 without permessage-deflate"));
                    }
                    self.partial = Some(Partial {
                        text: op == OP_TEXT,
                        compressed: rsv1,
                        data: payload.to_vec(),
                        wire,
                    });
                }
                (OP_TEXT | OP_BINARY, Some(_)) => {
                    return Err(FrameError::Protocol("new message inside a fragmented one"))
                }
                _ => return Err(FrameError::Protocol("unknown opcode")),
            }
            if fin {
                if let Some(p) = self.partial.take() {
                    return self.finish(p).map(Some);
                }
            }
        }
    }

    fn finish(&mut self, p: Partial) -> Result<Incoming, FrameError> {
        let data = match (&mut self.inflater, p.compressed) {
            (Some(inf), true) => {
                let mut out = Vec::new();
                inf.inflate(&p.data, self.max, &mut out)
                    .map_err(|e| match e {
                        InflateError::TooBig => FrameError::TooBig,
                        InflateError::Corrupt => FrameError::Invalid("invalid compressed data"),
                    })?;
                out
            }
            _ => p.data,
        };
        self.traffic.wire += p.wire;
        // A client frame has a 4-byte mask key besides the header.
        self.traffic.plain += if p.compressed {
            (data.len() + header_len(data.len()) + 4) as u64
        } else {
            p.wire
        };
        if p.text {
            if std::str::from_utf8(&data).is_err() {
                return Err(FrameError::Invalid("invalid utf-8"));
            }
            Ok(Incoming::Text(data))
        } else {
            Ok(Incoming::Binary(data))
        }
    }
}

fn close_payload(p: &[u8]) -> Result<Option<u16>, FrameError> {
    match p.len() {
        0 => Ok(None),
        1 => Err(FrameError::Protocol("bad close frame")),
        _ => {
            let code = u16::from_be_bytes([p[0], p[1]]);
            // IANA-registered codes (RFC 6455 §7.4.2 plus 1012–1014) and private ones.
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(FrameError::Protocol("bad close code"));
            }
            if std::str::from_utf8(&p[2..]).is_err() {
                return Err(FrameError::Invalid("invalid utf-8"));
            }
            Ok(Some(code))
        }
    }
}

/// Length of an unmasked (server) frame header for a payload of `len` bytes.
pub fn header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

/// Appends an unmasked frame header.
pub fn put_header(out: &mut Vec<u8>, rsv1: bool, op: u8, len: usize) {
    out.push(0x80 | if rsv1 { 0x40 } else { 0 } | op);
    match len {
        0..=125 => out.push(len as u8),
        126..=65535 => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// Frames outgoing messages, compressing them when the connection agreed to it.
pub struct Encoder {
    deflater: Option<Deflater>,
    window_bits: u8,
    scratch: Vec<u8>,
    pub traffic: Traffic,
}

impl Encoder {
    pub fn new(deflate: Option<Agreed>) -> Encoder {
        Encoder {
            deflater: deflate.map(|a| Deflater::new(a.server_window_bits, a.server_takeover)),
            window_bits: deflate.map_or(15, |a| a.server_window_bits),
            scratch: Vec::new(),
            traffic: Traffic::default(),
        }
    }

    /// Whether this connection's messages are compressed without context takeover, so a
    /// piece compressed once (`SharedEvent`) can be spliced into its frames; the window
    /// size that piece must keep to.
    pub fn shares(&self) -> Option<u8> {
        match &self.deflater {
            Some(d) if !d.takeover() => Some(self.window_bits),
            _ => None,
        }
    }

    /// Appends one text message as a single frame.
    pub fn text(&mut self, msg: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        self.traffic.plain += (header_len(msg.len()) + msg.len()) as u64;
        if let Some(d) = &mut self.deflater {
            if msg.len() >= MIN_COMPRESS {
                self.scratch.clear();
                // With context takeover the window already holds this message, so it must
                // go out compressed; without it, whichever is smaller may go.
                let ok = d.compress(msg, &mut self.scratch).is_ok();
                if ok && (d.takeover() || self.scratch.len() < msg.len()) {
                    put_header(out, true, OP_TEXT, self.scratch.len());
                    out.extend_from_slice(&self.scratch);
                    self.traffic.wire += (out.len() - start) as u64;
                    if self.scratch.capacity() > 64 * 1024 {
                        self.scratch = Vec::new();
                    }
                    return;
                }
                if !ok && d.takeover() {
                    // The window may hold part of the message: start again from nothing
                    // would desynchronise the client, so stop compressing this link.
                    self.deflater = None;
                }
            }
        }
        put_header(out, false, OP_TEXT, msg.len());
        out.extend_from_slice(msg);
        self.traffic.wire += (out.len() - start) as u64;
    }

    /// `prefix ‖ shared ‖ suffix` as one compressed message, `shared` being compressed once
    /// for every recipient (see `SharedEvent`). Only for `shares()` connections.
    pub fn spliced(
        &mut self,
        prefix: &[u8],
        shared: &SharedEvent,
        suffix: &[u8],
        out: &mut Vec<u8>,
    ) {
        let start = out.len();
        let plain_len = prefix.len() + shared.plain_len + suffix.len();
        self.traffic.plain += (header_len(plain_len) + plain_len) as u64;
        // Each end goes in a stored block: 5 bytes of framing, no compressor state needed.
        // The last byte opens the empty stored block that the receiver's `00 00 ff ff`
        // completes (RFC 7692 §7.2.2): after the suffix we are byte-aligned, so it is 0.
        let len = stored_len(prefix) + shared.deflated.len() + stored_len(suffix) + 1;
        put_header(out, true, OP_TEXT, len);
        put_stored(out, prefix);
        out.extend_from_slice(&shared.deflated);
        put_stored(out, suffix);
        out.push(0x00);
        self.traffic.wire += (out.len() - start) as u64;
    }

    /// A control frame (ping, pong, close); `payload` ≤ 125 bytes.
    pub fn control(&mut self, op: u8, payload: &[u8], out: &mut Vec<u8>) {
        let payload = &payload[..payload.len().min(125)];
        let start = out.len();
        put_header(out, false, op, payload.len());
        out.extend_from_slice(payload);
        let n = (out.len() - start) as u64;
        self.traffic.wire += n;
        self.traffic.plain += n;
    }

    pub fn close(&mut self, code: u16, reason: &str, out: &mut Vec<u8>) {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(&reason.as_bytes()[..reason.len().min(123)]);
        self.control(OP_CLOSE, &p, out);
    }
}

/// The middle of a message compressed once for many connections that use no context
/// takeover: deflate output ending on a sync flush is byte-aligned and refers to nothing
/// before it, so it can follow any prefix sent as a stored block and precede any suffix.
pub struct SharedEvent {
    pub deflated: Arc<[u8]>,
    pub plain_len: usize,
}

impl SharedEvent {
    pub fn new(json: &[u8], window_bits: u8) -> Option<SharedEvent> {
        let mut c = deflate::shared_compressor(window_bits);
        let mut out = Vec::with_capacity(json.len() / 2 + 64);
        deflate::sync_compress(&mut c, json, &mut out).ok()?;
        Some(SharedEvent {
            deflated: out.into(),
            plain_len: json.len(),
        })
    }
}

fn stored_len(data: &[u8]) -> usize {
    if data.is_empty() {
        0
    } else {
        5 + data.len()
    }
}

/// A non-final stored deflate block (`data` < 64 KiB: a sub id prefix, a bracket).
fn put_stored(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let n = data.len().min(0xffff) as u16;
    out.push(0x00);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(!n).to_le_bytes());
    out.extend_from_slice(&data[..n as usize]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1000;

    fn agreed(takeover: bool, bits: u8) -> Agreed {
        Agreed {
            server_takeover: takeover,
            client_takeover: takeover,
            server_window_bits: bits,
        }
    }

    /// A client frame: masked, with the given first byte.
    fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        put_header(&mut f, false, 0, payload.len());
        f[0] = b0;
        f[1] |= 0x80;
        let mask = [0x12, 0x34, 0x56, 0x78];
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        f
    }

    /// Decodes server frames (unmasked) back into (rsv1, opcode, payload).
    fn server_frames(mut b: &[u8]) -> Vec<(bool, u8, Vec<u8>)> {
        let mut v = Vec::new();
        while !b.is_empty() {
            let (len, at) = match b[1] & 0x7f {
                126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            v.push((b[0] & 0x40 != 0, b[0] & 0x0f, b[at..at + len].to_vec()));
            b = &b[at + len..];
        }
        v
    }

    fn all(d: &mut Decoder) -> Vec<Result<Incoming, FrameError>> {
        let mut v = Vec::new();
        loop {
            match d.decode() {
                Ok(Some(m)) => v.push(Ok(m)),
                Ok(None) => return v,
                Err(e) => {
                    v.push(Err(e));
                    return v;
                }
            }
        }
    }

    #[test]
    fn text_byte_by_byte_and_fragments() {
        let mut d = Decoder::new(MAX, None);
        let mut bytes = client_frame(0x80 | OP_TEXT, b"hello");
        bytes.extend(client_frame(OP_TEXT, b"frag"));
        bytes.extend(client_frame(0x80 | OP_PING, b"p")); // control frames may interleave
        bytes.extend(client_frame(OP_CONT, b"men"));
        bytes.extend(client_frame(0x80 | OP_CONT, b"ted"));
        let mut got = Vec::new();
        for b in &bytes {
            d.feed(std::slice::from_ref(b));
            got.extend(all(&mut d));
        }
        assert_eq!(
            got,
            vec![
                Ok(Incoming::Text(b"hello".to_vec())),
                Ok(Incoming::Ping(b"p".to_vec())),
                Ok(Incoming::Text(b"fragmented".to_vec()))
            ]
        );
        assert_eq!(d.traffic.wire, bytes.len() as u64);
    }

    #[test]
    fn protocol_errors() {
        let cases: Vec<(Vec<u8>, FrameError)> = vec![
            (
                client_frame(0x80 | 0x20 | OP_TEXT, b"x"),
                FrameError::Protocol("reserved bits set"),
            ),
            (
                client_frame(0x80 | 0x40 | OP_TEXT, b"x"),
                FrameError::Protocol("RSV1 without permessage-deflate"),
            ),
            (
                client_frame(0x80 | OP_CONT, b"x"),
                FrameError::Protocol("continuation with no message"),
            ),
            (
                client_frame(OP_PING, b"x"),
                FrameError::Protocol("bad control frame"),
            ),
            (
                client_frame(0x80 | OP_PING, &[0; 126]),
                FrameError::Protocol("bad control frame"),
            ),
            (
                client_frame(0x80 | 0x3, b"x"),
                FrameError::Protocol("unknown opcode"),
            ),
            (
                client_frame(0x80 | OP_CLOSE, &[3, 0xed]),
                FrameError::Protocol("bad close code"),
            ),
            (
                client_frame(0x80 | OP_CLOSE, &[3]),
                FrameError::Protocol("bad close frame"),
            ),
            (
                client_frame(0x80 | OP_TEXT, &[0xff]),
                FrameError::Invalid("invalid utf-8"),
            ),
            (
                [client_frame(OP_TEXT, b"a"), client_frame(OP_TEXT, b"b")].concat(),
                FrameError::Protocol("new message inside a fragmented one"),
            ),
        ];
        for (bytes, want) in cases {
            let mut d = Decoder::new(MAX, None);
            d.feed(&bytes);
            assert_eq!(all(&mut d).pop(), Some(Err(want)));
        }
        // Unmasked.
        let mut d = Decoder::new(MAX, None);
        d.feed(&[0x81, 0x01, b'x']);
        assert_eq!(
            d.decode(),
            Err(FrameError::Protocol("unmasked client frame"))
        );
        // Binary messages are delivered as such (the relay answers them with a NOTICE).
        let mut d = Decoder::new(MAX, None);
        d.feed(&client_frame(0x80 | OP_BINARY, &[0xff]));
        assert_eq!(d.decode(), Ok(Some(Incoming::Binary(vec![0xff]))));
        let mut d = Decoder::new(MAX, None);
        d.feed(&client_frame(0x80 | OP_CLOSE, &[3, 0xe8, b'o', b'k']));
        assert_eq!(d.decode(), Ok(Some(Incoming::Close(Some(1000)))));
    }

    #[test]
    fn size_limits() {
        // A frame over the limit is refused from its header alone.
        let mut d = Decoder::new(MAX, None);
        d.feed(&[0x81, 0xff, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff]);
        assert_eq!(d.decode(), Err(FrameError::TooBig));
        // Fragments that add up to more than the limit.
        let mut d = Decoder::new(MAX, None);
        d.feed(&client_frame(OP_TEXT, &[b'a'; 600]));
        d.feed(&client_frame(0x80 | OP_CONT, &[b'a'; 600]));
        assert_eq!(d.decode(), Err(FrameError::TooBig));
        // Exactly the limit passes.
        let mut d = Decoder::new(MAX, None);
        d.feed(&client_frame(0x80 | OP_TEXT, &[b'a'; MAX]));
        assert!(matches!(d.decode(), Ok(Some(Incoming::Text(t))) if t.len() == MAX));
    }

    fn compressed_frame(msg: &[u8], d: &mut Deflater) -> Vec<u8> {
        let mut z = Vec::new();
        d.compress(msg, &mut z).expect("compress");
        client_frame(0x80 | 0x40 | OP_TEXT, &z)
    }

    #[test]
    fn inflates_with_and_without_takeover() {
        for takeover in [true, false] {
            let mut d = Decoder::new(MAX, Some(agreed(takeover, 15)));
            let mut client = Deflater::new(15, takeover);
            for i in 0..5 {
                let msg = format!(
                    r#"["REQ","sub",{{"kinds":[1],"limit":{i}}},{{"kinds":[1],"limit":{i}}}]"#
                );
                d.feed(&compressed_frame(msg.as_bytes(), &mut client));
                assert_eq!(d.decode(), Ok(Some(Incoming::Text(msg.into_bytes()))));
            }
            // Uncompressed messages may be mixed in.
            d.feed(&client_frame(0x80 | OP_TEXT, b"plain"));
            assert_eq!(d.decode(), Ok(Some(Incoming::Text(b"plain".to_vec()))));
            assert!(d.traffic.wire < d.traffic.plain);
        }
    }

    #[test]
    fn compressed_fragments_and_bomb() {
        let msg = [b'x'; 800];
        let mut z = Vec::new();
        Deflater::new(15, false)
            .compress(&msg, &mut z)
            .expect("compress");
        let mut d = Decoder::new(MAX, Some(agreed(false, 15)));
        let (a, b) = z.split_at(z.len() / 2);
        d.feed(&client_frame(0x40 | OP_TEXT, a));
        d.feed(&client_frame(0x80 | OP_CONT, b));
        assert_eq!(d.decode(), Ok(Some(Incoming::Text(msg.to_vec()))));
        // RSV1 belongs on the first frame only.
        d.feed(&client_frame(OP_TEXT, a));
        d.feed(&client_frame(0x80 | 0x40 | OP_CONT, b));
        assert_eq!(
            d.decode(),
            Err(FrameError::Protocol("RSV1 on a continuation frame"))
        );
        // A small frame that inflates past the limit.
        let mut d = Decoder::new(MAX, Some(agreed(false, 15)));
        let mut z = Vec::new();
        Deflater::new(15, false)
            .compress(&[b'0'; 100_000], &mut z)
            .expect("compress");
        assert!(z.len() < MAX);
        d.feed(&client_frame(0x80 | 0x40 | OP_TEXT, &z));
        assert_eq!(d.decode(), Err(FrameError::TooBig));
        // Garbage marked compressed.
        let mut d = Decoder::new(MAX, Some(agreed(false, 15)));
        d.feed(&client_frame(0xc1, &[0xff; 8]));
        assert_eq!(
            d.decode(),
            Err(FrameError::Invalid("invalid compressed data"))
        );
    }

    /// Our frames read back through an independent inflater (a fresh flate2 stream).
    fn inflate_all(frames: &[(bool, u8, Vec<u8>)], takeover: bool) -> Vec<Vec<u8>> {
        let mut inf = Inflater::new(takeover);
        frames
            .iter()
            .map(|(rsv1, _, p)| {
                if *rsv1 {
                    let mut out = Vec::new();
                    inf.inflate(p, 1 << 20, &mut out).expect("inflate");
                    out
                } else {
                    p.clone()
                }
            })
            .collect()
    }

    #[test]
    fn encoder_compresses() {
        let msgs: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                format!(r#"["EVENT","s",{{"content":"event number {i} with the same words, the same words, the same words"}}]"#)
                    .into_bytes()
            })
            .chain([b"[\"EOSE\",\"s\"]".to_vec()])
            .collect();
        for takeover in [true, false] {
            let mut e = Encoder::new(Some(agreed(takeover, 10)));
            let mut out = Vec::new();
            for m in &msgs {
                e.text(m, &mut out);
            }
            let frames = server_frames(&out);
            assert!(frames[0].0 && !frames[20].0, "short messages go plain");
            assert_eq!(inflate_all(&frames, takeover), msgs);
            assert!(e.traffic.saved_pct() > 0.0);
        }
        let mut plain = Encoder::new(None);
        let mut out = Vec::new();
        plain.text(&msgs[0], &mut out);
        assert_eq!(server_frames(&out), vec![(false, OP_TEXT, msgs[0].clone())]);
        assert_eq!(plain.traffic.saved_pct(), 0.0);
    }

    #[test]
    fn spliced_frames_inflate() {
        let json =
            br#"{"id":"ab","kind":1,"content":"shared by every recipient, compressed once"}"#;
        let shared = SharedEvent::new(json, 15).expect("compress");
        let mut e = Encoder::new(Some(agreed(false, 15)));
        assert_eq!(e.shares(), Some(15));
        assert_eq!(Encoder::new(Some(agreed(true, 15))).shares(), None);
        let mut out = Vec::new();
        for sub in ["a", "second-sub"] {
            let prefix = format!(r#"["EVENT","{sub}","#);
            e.spliced(prefix.as_bytes(), &shared, b"]", &mut out);
        }
        // A client keeping its window across messages reads them too.
        for takeover in [true, false] {
            let got = inflate_all(&server_frames(&out), takeover);
            assert_eq!(
                got[1],
                [&br#"["EVENT","second-sub","#[..], json, b"]"].concat()
            );
        }
    }

    #[test]
    fn control_frames() {
        let mut e = Encoder::new(None);
        let mut out = Vec::new();
        e.control(OP_PONG, b"hi", &mut out);
        e.close(1009, "message too big", &mut out);
        let f = server_frames(&out);
        assert_eq!(f[0], (false, OP_PONG, b"hi".to_vec()));
        assert_eq!(f[1].2[..2], 1009u16.to_be_bytes());
    }
}
