//! Independent permessage-deflate (RFC 7692) clients for compression.rs and
//! compression_log.rs. Both run the same JSON job:
//!   {"url": "...",
//!    "offer": null | {"server_no_context_takeover": bool, "client_no_context_takeover": bool,
//!                     "server_max_window_bits": int|null, "client_max_window_bits": int|true|null},
//!    "raw_offer": null | "header value sent as is",
//!    "steps": [{"send": text} | {"send_fragments": [text, ...]} | {"recv": n}
//!              | {"recv_until": text} | {"pause_ms": n} (the Rust client only)]}
//! and answer {"extensions": header or null, "received": [text, ...], "close_code": int or null}.
//!
//! - [`client`]: yawc (a Rust WebSocket library with its own framing and deflate), after a
//!   handshake written here so the test sees the exact agreed header and every byte on the
//!   wire. It also answers `"wire": [{"rsv1": bool, "bytes": n}, ...]`, one per data message
//!   received, read off the raw socket: proof that frames really were compressed.
//! - [`python_client`]: tests/py/pmd_client.py on Python's `websockets` over CPython's zlib,
//!   a second implementation used only by `compression_python.rs` (ignored unless
//!   `pip install websockets` was done, as `.ci/run`'s extra step does).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::SinkExt;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use yawc::{CompressionLevel, Frame, OpCode, Options, Role, WebSocket};

use super::common::{keys, note};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Messages the relay sends uncompressed whatever was agreed (`frame::MIN_COMPRESS`).
const MIN_COMPRESS: usize = 32;

/// Runs one job with the Rust client; a handshake or frame the client rejects is a panic.
pub fn client(job: Value) -> Value {
    let url = job["url"].as_str().expect("url");
    let offer = offer_header(&job["offer"]);
    let sent_offer = job["raw_offer"]
        .as_str()
        .map(str::to_owned)
        .or(offer.clone());
    let (stream, extensions, leftover) = handshake(url, sent_offer.as_deref());
    if let (Some(ext), Some(ours)) = (&extensions, &offer) {
        check_agreement(ours, ext);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .expect("runtime");
    let wire = Arc::new(Mutex::new(Vec::new()));
    let (received, close_code, cut) = rt.block_on(run_steps(
        stream,
        leftover,
        wire.clone(),
        offer.is_some().then_some(extensions.as_deref()).flatten(),
        offer.is_some(),
        &job["steps"],
    ));
    let bytes = wire.lock().expect("wire").clone();
    let frames = parse_frames(&bytes);
    let wire: Vec<Value> = data_messages(&frames)
        .into_iter()
        .take(received.len())
        .map(|(rsv1, n)| json!({"rsv1": rsv1, "bytes": n}))
        .collect();
    // A connection that ended under the client: its close code is read off the wire.
    let close_code = close_code.or_else(|| {
        frames
            .iter()
            .filter(|_| cut)
            .find(|f| f.opcode == 8 && f.payload.len() >= 2)
            .map(|f| u16::from_be_bytes([f.payload[0], f.payload[1]]))
    });
    json!({"extensions": extensions, "received": received, "close_code": close_code, "wire": wire})
}

/// The offer as Python's `ClientPerMessageDeflateFactory` makes it (client_max_window_bits
/// offered unless set to null), so both clients send the same header.
fn offer_header(offer: &Value) -> Option<String> {
    if offer.is_null() {
        return None;
    }
    let mut h = String::from("permessage-deflate");
    if offer["server_no_context_takeover"] == true {
        h += "; server_no_context_takeover";
    }
    if offer["client_no_context_takeover"] == true {
        h += "; client_no_context_takeover";
    }
    if let Some(b) = offer["server_max_window_bits"].as_u64() {
        h += &format!("; server_max_window_bits={b}");
    }
    match offer.get("client_max_window_bits") {
        None | Some(Value::Bool(true)) => h += "; client_max_window_bits",
        Some(Value::Number(n)) => h += &format!("; client_max_window_bits={n}"),
        _ => {}
    }
    Some(h)
}

/// RFC 7692 §7.1: the client fails the connection on an answer it did not allow.
fn check_agreement(offer: &str, answer: &str) {
    let param = |s: &str, name: &str| -> Option<Option<u8>> {
        s.split(';')
            .skip(1)
            .map(str::trim)
            .find(|p| p.split('=').next() == Some(name))
            .map(|p| p.split_once('=').map(|(_, v)| v.parse().expect("bits")))
    };
    let mut parts = answer.split(';').map(str::trim);
    assert_eq!(parts.next(), Some("permessage-deflate"), "answer {answer}");
    let mut seen = Vec::new();
    for p in parts {
        let name = p.split('=').next().unwrap_or(p);
        assert!(!seen.contains(&name), "duplicate {name} in {answer}");
        seen.push(name);
        match name {
            "server_no_context_takeover" | "client_no_context_takeover" => {}
            "server_max_window_bits" => {
                let bits = param(answer, name).flatten().expect("server bits value");
                assert!((9..=15).contains(&bits), "{answer}");
                if let Some(Some(asked)) = param(offer, name) {
                    assert!(bits <= asked, "{answer} exceeds {offer}");
                }
            }
            "client_max_window_bits" => {
                assert!(param(offer, name).is_some(), "{answer}: not offered");
            }
            _ => panic!("unknown parameter {p} in {answer}"),
        }
    }
}

/// The opening handshake over a plain socket: returns the socket, the agreed extensions
/// header and any bytes read past the response.
fn handshake(url: &str, offer: Option<&str>) -> (TcpStream, Option<String>, Vec<u8>) {
    let rest = url.strip_prefix("ws://").expect("ws:// url");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = TcpStream::connect(host).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let key = tungstenite::handshake::client::generate_key();
    let mut req = format!(
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    );
    if let Some(o) = offer {
        req += &format!("Sec-WebSocket-Extensions: {o}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).expect("request");
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        assert!(buf.len() < 65536, "response head too long");
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("response");
        assert!(
            n > 0,
            "closed during handshake: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(&buf[..end]).expect("response head");
    assert_eq!(
        resp.code,
        Some(101),
        "{}",
        String::from_utf8_lossy(&buf[..end])
    );
    let header = |name: &str| -> Option<String> {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    assert!(header("Upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
    assert!(header("Connection").is_some_and(|v| v.eq_ignore_ascii_case("upgrade")));
    assert_eq!(
        header("Sec-WebSocket-Accept").as_deref(),
        Some(tungstenite::handshake::derive_accept_key(key.as_bytes()).as_str())
    );
    let ext = header("Sec-WebSocket-Extensions");
    (s, ext, buf[end..].to_vec())
}

async fn run_steps(
    stream: TcpStream,
    leftover: Vec<u8>,
    wire: Arc<Mutex<Vec<u8>>>,
    extensions: Option<&str>,
    compress: bool,
    steps: &Value,
) -> (Vec<String>, Option<u16>, bool) {
    stream.set_nonblocking(true).expect("nonblocking");
    let io = Tap {
        inner: tokio::net::TcpStream::from_std(stream).expect("tokio stream"),
        prefix: leftover,
        wire,
    };
    let mut opts = Options::default().with_max_payload_read(1 << 24);
    if compress {
        opts = opts.with_compression_level(CompressionLevel::new(6));
    }
    let mut ws =
        WebSocket::from_stream_with_extensions(io, Role::Client, extensions, opts).expect("ws");
    let mut received = Vec::new();
    let mut close_code = None;
    let mut cut = false;
    'steps: for step in steps.as_array().expect("steps") {
        if let Some(text) = step["send"].as_str() {
            if ws.send(Frame::text(text.to_owned())).await.is_err() {
                break;
            }
        } else if let Some(ms) = step["pause_ms"].as_u64() {
            // Pacing, not synchronisation: time the relay measures (a lane's calm second).
            tokio::time::sleep(Duration::from_millis(ms)).await;
        } else if let Some(parts) = step["send_fragments"].as_array() {
            let n = parts.len();
            for (i, p) in parts.iter().enumerate() {
                let p = p.as_str().expect("fragment").to_owned();
                let f = if i == 0 {
                    Frame::text(p)
                } else {
                    Frame::continuation(p)
                };
                if ws.send(f.with_fin(i + 1 == n)).await.is_err() {
                    break 'steps;
                }
            }
        } else {
            let (count, until) = match (step["recv"].as_u64(), step["recv_until"].as_str()) {
                (Some(n), _) => (n, None),
                (None, Some(t)) => (u64::MAX, Some(t)),
                _ => panic!("bad step {step}"),
            };
            let mut got = 0;
            while got < count {
                let frame = tokio::time::timeout(TIMEOUT, ws.next_frame())
                    .await
                    .expect("no message within 10 s");
                let Ok(frame) = frame else {
                    cut = true;
                    break 'steps;
                };
                match frame.opcode() {
                    OpCode::Text => {
                        let text = std::str::from_utf8(frame.payload())
                            .expect("text is UTF-8")
                            .to_owned();
                        got += 1;
                        let done = until.is_some_and(|u| text.contains(u));
                        received.push(text);
                        if done {
                            break;
                        }
                    }
                    OpCode::Close => {
                        let p = frame.payload();
                        close_code = (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
                        break 'steps;
                    }
                    _ => {}
                }
            }
        }
    }
    if close_code.is_none() && !cut {
        // A clean close, as Python's `with connect(...)` does: ours, then the relay's answer.
        let _ = ws
            .send(Frame::close(yawc::close::CloseCode::Normal, b""))
            .await;
        let _ = tokio::time::timeout(TIMEOUT, async {
            while let Ok(f) = ws.next_frame().await {
                if f.opcode() == OpCode::Close {
                    break;
                }
            }
        })
        .await;
    }
    (received, close_code, cut)
}

/// The socket, with bytes read during the handshake served first and every byte the relay
/// sent recorded.
struct Tap {
    inner: tokio::net::TcpStream,
    prefix: Vec<u8>,
    wire: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Tap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head: Vec<u8> = self.prefix.drain(..n).collect();
            self.wire.lock().expect("wire").extend_from_slice(&head);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let new = buf.filled()[before..].to_vec();
            self.wire.lock().expect("wire").extend_from_slice(&new);
        }
        r
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One server frame as it was on the wire (servers do not mask).
pub struct WireFrame {
    pub fin: bool,
    pub rsv1: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Frames in a server byte stream; a frame cut off at the end is left out.
pub fn parse_frames(mut b: &[u8]) -> Vec<WireFrame> {
    let mut out = Vec::new();
    while b.len() >= 2 {
        let (fin, rsv1, opcode) = (b[0] & 0x80 != 0, b[0] & 0x40 != 0, b[0] & 0x0f);
        assert_eq!(b[1] & 0x80, 0, "a server frame must not be masked");
        let (len, head) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => {
                let mut l = [0u8; 8];
                l.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(l) as usize, 10)
            }
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if b.len() < head + len {
            break;
        }
        out.push(WireFrame {
            fin,
            rsv1,
            opcode,
            payload: b[head..head + len].to_vec(),
        });
        b = &b[head + len..];
    }
    out
}

/// (RSV1 of the first frame, wire payload bytes) per data message, in order.
fn data_messages(frames: &[WireFrame]) -> Vec<(bool, usize)> {
    let mut out: Vec<(bool, usize)> = Vec::new();
    let mut open = false;
    for f in frames {
        match f.opcode {
            1 | 2 => {
                out.push((f.rsv1, f.payload.len()));
                open = !f.fin;
            }
            0 if open => {
                if let Some(last) = out.last_mut() {
                    last.1 += f.payload.len();
                }
                open = !f.fin;
            }
            _ => {}
        }
    }
    out
}

/// Runs one job with tests/py/pmd_client.py (needs `pip install websockets`).
pub fn python_client(job: Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/pmd_client.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(job.to_string().as_bytes())
        .expect("job");
    let out = child.wait_with_output().expect("client");
    assert!(
        out.status.success(),
        "python client failed (needs `pip install websockets==17.4`, as .ci/run's extra \
         step does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("client output")
}

pub fn events(n: usize, who: u8) -> Vec<String> {
    let k = keys(who);
    (0..n)
        .map(|i| {
            let ev = note(
                &k,
                &format!("note {i}: the same words again and again, like Nostr"),
            );
            format!("[\"EVENT\",{}]", String::from_utf8_lossy(ev.json()))
        })
        .collect()
}

pub fn count(received: &Value, verb: &str) -> usize {
    received
        .as_array()
        .expect("received")
        .iter()
        .filter(|m| {
            m.as_str()
                .is_some_and(|m| m.starts_with(&format!("[\"{verb}\"")))
        })
        .count()
}

/// Publish 20 events, read them back with a fragmented REQ, then subscribe live and publish
/// 10 more on the same connection (the fanout path: each is delivered to the publisher's
/// own subscription).
pub fn exchange(url: &str, offer: Value, who: u8) -> Value {
    exchange_with(client, url, offer, who)
}

pub fn exchange_with(run: fn(Value) -> Value, url: &str, offer: Value, who: u8) -> Value {
    let stored = events(20, who);
    let live = events(10, who + 100);
    let author = hex_pubkey(who);
    let live_author = hex_pubkey(who + 100);
    let mut steps: Vec<Value> = Vec::new();
    for e in &stored {
        steps.push(json!({"send": e}));
    }
    steps.push(json!({"recv": 20}));
    let req = format!("[\"REQ\",\"stored\",{{\"authors\":[\"{author}\"]}}]");
    let (a, b) = req.split_at(req.len() / 2);
    steps.push(json!({"send_fragments": [a, b]}));
    steps.push(json!({"recv_until": "EOSE"}));
    steps.push(json!({"send": format!("[\"REQ\",\"live\",{{\"authors\":[\"{live_author}\"]}}]")}));
    steps.push(json!({"recv_until": "EOSE"}));
    for e in &live {
        steps.push(json!({"send": e}));
    }
    steps.push(json!({"recv": 20}));
    let out = run(json!({"url": url, "offer": offer, "steps": steps}));
    let r = &out["received"];
    // Every message must survive the round trip intact: valid JSON, live events included
    // (spliced frames around a shared compressed piece).
    for m in r.as_array().expect("received") {
        let text = m.as_str().expect("text message");
        assert!(
            serde_json::from_str::<Value>(text).is_ok(),
            "not JSON after inflating: {text}"
        );
    }
    assert_eq!(count(r, "OK"), 30, "{out}");
    assert_eq!(count(r, "EVENT"), 30, "{out}");
    assert!(out["close_code"].is_null(), "{out}");
    if let Some(wire) = out["wire"].as_array() {
        check_wire(r, wire, !out["extensions"].is_null());
    }
    out
}

/// What the relay put on the wire matches what was agreed: with permessage-deflate every
/// message it may compress carries RSV1 and the whole exchange is smaller than its text;
/// without it, no frame carries RSV1 and the bytes are the text.
pub fn check_wire(received: &Value, wire: &[Value], compressed: bool) {
    let texts = received.as_array().expect("received");
    assert_eq!(texts.len(), wire.len(), "one wire record per message");
    let (mut plain, mut sent) = (0, 0);
    for (t, w) in texts.iter().zip(wire) {
        let len = t.as_str().expect("text").len();
        let rsv1 = w["rsv1"].as_bool().expect("rsv1");
        let bytes = w["bytes"].as_u64().expect("bytes") as usize;
        plain += len;
        sent += bytes;
        if !compressed {
            assert!(!rsv1 && bytes == len, "plain link sent {w} for {len} bytes");
        } else if len >= MIN_COMPRESS {
            assert!(rsv1, "{len}-byte message not compressed: {t}");
        }
    }
    if compressed {
        // Measured 0.36 with a sliding window and 0.75 without (each message alone).
        assert!(
            sent * 100 < plain * 85,
            "compressed link sent {sent} bytes for {plain} bytes of text"
        );
    }
    eprintln!("wire: {sent} bytes for {plain} bytes of text (compressed: {compressed})");
}

/// With `server_max_window_bits=10`: one 1.5 KB random text sent twice (as the answers to
/// two REQs), the copies more than 1 KiB apart, so no back-reference may join them. Checks
/// both copies arrived intact.
pub fn far_reference(run: fn(Value) -> Value, url: &str) -> Value {
    let mut x: u32 = 7;
    let text: String = (0..1500)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(b'a' + ((x >> 16) % 26) as u8)
        })
        .collect();
    let ev = note(&keys(40), &text);
    let id = ev.id_hex().to_owned();
    let req = |sub: &str| format!("[\"REQ\",\"{sub}\",{{\"ids\":[\"{id}\"]}}]");
    let out = run(json!({"url": url,
        "offer": {"server_max_window_bits": 10, "client_max_window_bits": 9},
        "steps": [{"send": format!("[\"EVENT\",{}]", String::from_utf8_lossy(ev.json()))},
                  {"recv": 1},
                  {"send": req("a")}, {"recv_until": "EOSE"},
                  {"send": req("b")}, {"recv_until": "EOSE"}]}));
    assert_eq!(count(&out["received"], "EVENT"), 2, "{out}");
    assert!(out["close_code"].is_null(), "{out}");
    for m in out["received"].as_array().expect("received") {
        let m = m.as_str().expect("text");
        assert!(!m.starts_with("[\"EVENT\"") || m.contains(&text), "{m}");
    }
    out
}

/// Wire bytes over text bytes for the data messages the Rust client received.
pub fn wire_ratio(out: &Value) -> f64 {
    let wire: usize = out["wire"]
        .as_array()
        .expect("wire")
        .iter()
        .map(|w| w["bytes"].as_u64().expect("bytes") as usize)
        .sum();
    let text: usize = out["received"]
        .as_array()
        .expect("received")
        .iter()
        .map(|t| t.as_str().expect("text").len())
        .sum();
    wire as f64 / text as f64
}

pub fn hex_pubkey(who: u8) -> String {
    wok::nostr::hex::encode(&keys(who).pubkey)
}

pub fn default_offer() -> Value {
    json!({"client_max_window_bits": true})
}
