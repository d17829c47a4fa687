//! Fairness (issue 20): F flooding connections push EVENTs and `{"kinds":[1],"limit":50}`
//! REQs as fast as the relay takes them, never waiting for answers. The EVENTs are the
//! relay's own stored data (`wok gen --count N --seed S`, as `query` assumes), so they are
//! duplicates, as in the measurement that opened the issue; `--fresh` sends new ones instead
//! (then the writer and live fanout carry the flood too) (a reader thread per
//! connection throws the answers away, so they are not closed as slow readers), while a
//! polite client on its own connection sends one REQ (time to EOSE) and one EVENT (time to
//! OK) at a time. The polite figures are taken unloaded first, then under the flood; the
//! flooders' answered messages per second (OK + EOSE) is their throughput.
//!
//! Flooders speak raw WebSocket frames over `ws://` only (a blocking send that can stop at
//! any time needs its own framing); the polite client may use any URL.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::Message;

use super::{connect, pct, verb, ProcWatch, Report, Ws};
use crate::gen::GenConfig;
use crate::nostr::Event;

pub struct FairnessOptions {
    pub url: String,
    pub flooders: usize,
    /// Events each flooder sends (then it sends them again).
    pub flood_events: usize,
    /// The relay's data: `wok gen --count N --seed S`.
    pub count: usize,
    pub data_seed: u64,
    /// Flood with never-seen events instead of the stored ones.
    pub fresh: bool,
    /// Polite REQs (and as many EVENTs) per phase.
    pub polite: usize,
    /// Flood time before the polite client starts measuring.
    pub warmup: Duration,
    pub seed: u64,
    pub pid: Option<u32>,
}

const REQ_FILTER: &str = r#"{"kinds":[1],"limit":50}"#;
/// Sub ids each flooder cycles through (a REQ replaces the one before it with that id).
const FLOOD_SUBS: usize = 4;

pub fn run(o: &FairnessOptions, r: &mut Report) -> Result<(), String> {
    let now = crate::policy::now();
    let flooders = o.flooders.max(1);
    let gen = |seed: u64, count: usize| {
        crate::gen::generate(&GenConfig {
            seed,
            count,
            authors: 500,
            start: now - 600,
            span_secs: 590,
        })
    };
    let want = o.flood_events.max(1) * flooders;
    let flood_evs = if o.fresh {
        gen(o.seed, want)
    } else {
        let mut stored = crate::gen::generate(&GenConfig {
            seed: o.data_seed,
            count: o.count,
            ..GenConfig::default()
        });
        stored.truncate(want);
        stored
    };
    let polite_evs = gen(o.seed.wrapping_add(1_000_003), o.polite.max(1) * 2);
    let mut polite = connect(&o.url, Duration::from_secs(1))?;

    let (req0, pub0) = polite_phase(&mut polite, &polite_evs[..o.polite], "u", o.polite)?;
    add(r, "unloaded", req0, pub0);

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    let per = flood_evs.len().div_ceil(flooders).max(1);
    for (f, evs) in flood_evs.chunks(per).enumerate() {
        let bytes = flood_bytes(f, evs);
        let stream = raw_connect(&o.url)?;
        let reader = stream.try_clone().map_err(|e| format!("clone: {e}"))?;
        let (stop_w, sent) = (stop.clone(), sent.clone());
        threads.push(std::thread::spawn(move || {
            write_loop(stream, &bytes, &stop_w, &sent)
        }));
        let (stop_r, answered) = (stop.clone(), answered.clone());
        threads.push(std::thread::spawn(move || {
            read_loop(reader, &stop_r, &answered)
        }));
    }
    std::thread::sleep(o.warmup);
    let watch = ProcWatch::start(o.pid);
    let (a0, s0, t) = (
        answered.load(Ordering::Relaxed),
        sent.load(Ordering::Relaxed),
        Instant::now(),
    );
    let measured = polite_phase(&mut polite, &polite_evs[o.polite..], "f", o.polite);
    let secs = t.elapsed().as_secs_f64();
    let (a1, s1) = (
        answered.load(Ordering::Relaxed),
        sent.load(Ordering::Relaxed),
    );
    stop.store(true, Ordering::Relaxed);
    for h in threads {
        let _ = h.join();
    }
    let (req1, pub1) = measured?;
    add(r, "flood", req1, pub1);
    r.add(
        "fairness",
        "flood_answered_per_s",
        (a1 - a0) as f64 / secs,
        "msgs/s",
    );
    r.add(
        "fairness",
        "flood_sent_mb_per_s",
        (s1 - s0) as f64 / secs / 1e6,
        "MB/s",
    );
    watch.finish(r, "fairness", secs);
    Ok(())
}

fn add(r: &mut Report, phase: &str, mut req: Vec<f64>, mut publ: Vec<f64>) {
    r.add(
        "fairness",
        format!("{phase}_req_p50_ms"),
        pct(&mut req, 0.5),
        "ms",
    );
    r.add(
        "fairness",
        format!("{phase}_req_p99_ms"),
        pct(&mut req, 0.99),
        "ms",
    );
    r.add(
        "fairness",
        format!("{phase}_pub_p50_ms"),
        pct(&mut publ, 0.5),
        "ms",
    );
    r.add(
        "fairness",
        format!("{phase}_pub_p99_ms"),
        pct(&mut publ, 0.99),
        "ms",
    );
}

/// `n` rounds of one REQ (to EOSE, then CLOSE) and one EVENT (to OK), each awaited.
fn polite_phase(
    ws: &mut Ws,
    evs: &[Event],
    tag: &str,
    n: usize,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (mut req, mut publ) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (i, ev) in evs.iter().take(n).enumerate() {
        let sub = format!("{tag}{i}");
        let t = Instant::now();
        send(ws, format!(r#"["REQ","{sub}",{REQ_FILTER}]"#))?;
        await_msg(ws, |m| {
            verb(m) == "EOSE" && super::second_str(m) == Some(&sub)
        })?;
        req.push(t.elapsed().as_secs_f64() * 1e3);
        send(ws, format!(r#"["CLOSE","{sub}"]"#))?;
        let t = Instant::now();
        send(
            ws,
            format!("[\"EVENT\",{}]", String::from_utf8_lossy(ev.json())),
        )?;
        let id = ev.id_hex();
        await_msg(ws, |m| verb(m) == "OK" && super::second_str(m) == Some(id))?;
        publ.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((req, publ))
}

fn send(ws: &mut Ws, text: String) -> Result<(), String> {
    ws.send(Message::text(text))
        .map_err(|e| format!("send: {e}"))
}

/// Reads until `want` matches (other messages, such as live events, are skipped); an
/// answer later than 60 s is an error.
fn await_msg(ws: &mut Ws, want: impl Fn(&str) -> bool) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        match ws.read() {
            Ok(Message::Text(t)) if want(t.as_str()) => return Ok(()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("polite connection: {e}")),
        }
    }
    Err("polite client: no answer within 60 s".into())
}

/// One flooder's messages: a REQ and an EVENT, in turn, as masked client frames.
fn flood_bytes(f: usize, evs: &[Event]) -> Vec<u8> {
    let mut b = Vec::new();
    for (i, ev) in evs.iter().enumerate() {
        let req = format!(r#"["REQ","f{f}-{}",{REQ_FILTER}]"#, i % FLOOD_SUBS);
        frame(&mut b, req.as_bytes());
        let mut m = b"[\"EVENT\",".to_vec();
        m.extend_from_slice(ev.json());
        m.push(b']');
        frame(&mut b, &m);
    }
    b
}

/// A masked text frame; the zero mask leaves the payload as it is.
fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
}

/// A WebSocket connection as a bare socket, handshake done (`ws://host:port[/path]`).
fn raw_connect(url: &str) -> Result<TcpStream, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or("fairness: flooders need a ws:// URL")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = TcpStream::connect(host).map_err(|e| format!("connect {host}: {e}"))?;
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .map_err(|e| format!("handshake: {e}"))?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) if head.len() < 16 * 1024 => head.push(b[0]),
            _ => return Err("handshake: no complete answer".into()),
        }
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(format!(
            "handshake refused: {}",
            String::from_utf8_lossy(&head)
        ));
    }
    let timeout = Some(Duration::from_millis(100));
    s.set_read_timeout(timeout).map_err(|e| e.to_string())?;
    s.set_write_timeout(timeout).map_err(|e| e.to_string())?;
    Ok(s)
}

/// Writes `bytes` over and over until `stop` (the second pass on are duplicates).
fn write_loop(mut s: TcpStream, bytes: &[u8], stop: &AtomicBool, sent: &AtomicU64) {
    let mut pos = 0;
    while !stop.load(Ordering::Relaxed) {
        match s.write(&bytes[pos..]) {
            Ok(0) => return,
            Ok(n) => {
                sent.fetch_add(n as u64, Ordering::Relaxed);
                pos = (pos + n) % bytes.len();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

/// Throws answers away, counting the OKs and EOSEs among them.
fn read_loop(mut s: TcpStream, stop: &AtomicBool, answered: &AtomicU64) {
    let mut buf = vec![0u8; 256 * 1024];
    // The tail of the last read, so a marker split across reads is still seen.
    let mut carry: Vec<u8> = Vec::new();
    const MARKS: [&[u8]; 2] = [b"[\"OK\",\"", b"[\"EOSE\",\""];
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let old = carry.len();
                carry.extend_from_slice(&buf[..n]);
                // Only marks ending in the new bytes: the others were counted before. (A
                // scan for '[' first keeps this thread cheap beside the relay it measures.)
                let found = carry
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'[')
                    .filter(|(i, _)| {
                        MARKS
                            .iter()
                            .any(|m| i + m.len() > old && carry[*i..].starts_with(m))
                    })
                    .count() as u64;
                answered.fetch_add(found, Ordering::Relaxed);
                carry.drain(..carry.len().saturating_sub(MARKS[1].len() - 1));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}
