//! Fairness (issue 20): F flooding connections push EVENTs and `{"kinds":[1],"limit":50}`
//! REQs as fast as the relay takes them, never waiting for answers. The EVENTs are the
//! relay's own stored data (`wok gen --count N --seed S`, as `query` assumes), so they are
//! duplicates, as in the measurement that opened the issue; `--fresh` sends new ones instead
//! (then the writer and live fanout carry the flood too) (a reader thread per
//! connection throws the answers away, so they are not closed as slow readers), while a
//! polite client on its own connection sends one REQ (time to EOSE) and one EVENT (time to
//! OK) at a time. The polite figures are taken unloaded first, then under the flood, then
//! unloaded again once the flood stops (`after_*`: drift between phases with no flood, such
//! as fsync times, shows there); the flooders' answered messages per second (OK, EOSE, and
//! the NOTICE or CLOSED of a message refused) is their throughput.
//!
//! Controls: `--polite-every-ms` paces the polite rounds (a real app's pace, and a long run
//! stays under the default per-IP REQ rate); `--flooders 0` runs the phases with no flood;
//! `--flood-url` aims the flood at another relay, so the polite figures show what the load
//! generator's own work on this shared machine costs them, apart from the relay's.
//! `--flood-nice N` lowers the flooding threads' scheduling priority, standing in for a
//! flood sent from other machines: the generator then takes only cores the relay and the
//! polite client leave idle (20: SCHED_IDLE, below the relay's busy lane at nice 19).
//!
//! Flooders speak raw WebSocket frames over `ws://` only (a blocking send that can stop at
//! any time needs its own framing); the polite client may use any URL.
//!
//! Rate limits (issue 14): `--flood-from` / `--polite-from` bind the two sides to different
//! source addresses (127.0.0.2 and 127.0.0.3, say), so the relay's per-IP limits tell them
//! apart. A flooder the relay disconnects reconnects at once (a refused upgrade, HTTP 429, is
//! retried after 10 ms), as an abuser would. Reported besides: the flood's messages sent per
//! second, the share of them not served (refused `rate-limited:`, or lost to a disconnect or
//! a 429), refused upgrades, and how many of the polite client's messages were refused
//! (`CLOSED`, or `OK false "rate-limited: …"`).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::Message;

use super::{connect, pct, verb, ProcWatch, Report, Ws};
use crate::gen::GenConfig;
use crate::nostr::Event;

pub struct FairnessOptions {
    pub url: String,
    /// Where the flood goes, when not at `url`: a second relay, so the polite figures show
    /// what the load generator's own work on this machine costs them (a control).
    pub flood_url: Option<String>,
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
    /// Start of one polite round to the next (zero: back to back).
    pub polite_every: Duration,
    /// Flood time before the polite client starts measuring.
    pub warmup: Duration,
    pub seed: u64,
    pub pid: Option<u32>,
    /// Source address of the flooding connections (default: the system's choice).
    pub flood_from: Option<IpAddr>,
    /// Source address of the polite client.
    pub polite_from: Option<IpAddr>,
    /// Flood with malformed messages instead of EVENTs and REQs.
    pub malformed: bool,
    /// Nice value the flooding threads give themselves (0: as the polite client's).
    pub flood_nice: i32,
}

/// What the flooders count, all connections together.
#[derive(Default)]
struct Counts {
    /// Bytes written.
    sent: AtomicU64,
    /// OK and EOSE answers.
    answered: AtomicU64,
    /// Answers saying `rate-limited:` (OK false, CLOSED, NEG-ERR).
    limited: AtomicU64,
    /// `OK … true` and EOSE: messages served.
    served: AtomicU64,
    /// Upgrades refused (HTTP 429 or any other non-101).
    refused_upgrades: AtomicU64,
    /// Connections the relay closed.
    disconnects: AtomicU64,
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
    let polite_evs = gen(o.seed.wrapping_add(1_000_003), o.polite.max(1) * 3);
    let mut polite = match o.polite_from {
        Some(from) => connect_from(&o.url, from, Duration::from_secs(1))?,
        None => connect(&o.url, Duration::from_secs(1))?,
    };

    let mut polite_refused = 0;
    let mut stored_ids = Vec::new();
    let (req0, pub0) = polite_phase(
        &mut polite,
        &polite_evs[..o.polite],
        "u",
        o.polite,
        o.polite_every,
        &mut polite_refused,
        &mut stored_ids,
    )?;
    add(r, "unloaded", req0, pub0);

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let mut threads = Vec::new();
    let per = flood_evs.len().div_ceil(flooders).max(1);
    // Bytes per message of the flood, to turn bytes sent into messages.
    let (mut total_bytes, mut total_msgs) = (0usize, 0usize);
    // `--flooders 0` runs both phases without a flood: a control for drift between them.
    let chunks = flood_evs.chunks(per).take(o.flooders);
    for (f, evs) in chunks.enumerate() {
        let bytes = if o.malformed {
            malformed_bytes(evs.len())
        } else {
            flood_bytes(f, evs)
        };
        total_bytes += bytes.len();
        total_msgs += 2 * evs.len();
        // The first flooder's connection must work (a relay that refuses it is not
        // flooded); later ones may already find their address refused by rate limits.
        let flood_url = o.flood_url.as_deref().unwrap_or(&o.url);
        let first = match raw_connect(flood_url, o.flood_from) {
            Ok(s) => Some(s),
            Err(e) if f == 0 => return Err(e),
            Err(_) => None,
        };
        let (stop, counts, url, from) = (
            stop.clone(),
            counts.clone(),
            flood_url.to_string(),
            o.flood_from,
        );
        let nice = o.flood_nice;
        threads.push(std::thread::spawn(move || {
            lower_priority(nice);
            flooder(first, &url, from, &bytes, &stop, &counts, nice)
        }));
    }
    let msg_bytes = total_bytes as f64 / total_msgs.max(1) as f64;
    std::thread::sleep(o.warmup);
    let watch = ProcWatch::start(o.pid);
    let snap = |c: &Counts| {
        [
            c.sent.load(Ordering::Relaxed),
            c.answered.load(Ordering::Relaxed),
            c.limited.load(Ordering::Relaxed),
            c.served.load(Ordering::Relaxed),
            c.refused_upgrades.load(Ordering::Relaxed),
            c.disconnects.load(Ordering::Relaxed),
        ]
    };
    let (c0, t) = (snap(&counts), Instant::now());
    let measured = polite_phase(
        &mut polite,
        &polite_evs[o.polite..2 * o.polite],
        "f",
        o.polite,
        o.polite_every,
        &mut polite_refused,
        &mut stored_ids,
    );
    let secs = t.elapsed().as_secs_f64();
    let c1 = snap(&counts);
    stop.store(true, Ordering::Relaxed);
    for h in threads {
        let _ = h.join();
    }
    let (req1, pub1) = measured?;
    add(r, "flood", req1, pub1);
    let d = |i: usize| c1[i].saturating_sub(c0[i]) as f64;
    let (s0, s1, a0, a1) = (c0[0], c1[0], c0[1], c1[1]);
    let sent_msgs = d(0) / msg_bytes;
    r.add(
        "fairness",
        "flood_sent_msgs_per_s",
        sent_msgs / secs,
        "msgs/s",
    );
    r.add("fairness", "flood_served_per_s", d(3) / secs, "msgs/s");
    r.add(
        "fairness",
        "flood_rate_limited_per_s",
        d(2) / secs,
        "msgs/s",
    );
    r.add(
        "fairness",
        "flood_not_served_pct",
        if sent_msgs > 0.0 {
            100.0 * (1.0 - (d(3) / sent_msgs).min(1.0))
        } else {
            0.0
        },
        "%",
    );
    r.add("fairness", "flood_refused_upgrades", d(4), "conns");
    r.add("fairness", "flood_disconnects", d(5), "conns");
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
    // Unloaded again once the flood has stopped: what drifts between phases without any
    // flood (fsync times as the DB grows, the machine's other tenants) shows here, so the
    // flood's effect is read against both unloaded phases, not only the first.
    let (req2, pub2) = polite_phase(
        &mut polite,
        &polite_evs[2 * o.polite..],
        "a",
        o.polite,
        o.polite_every,
        &mut polite_refused,
        &mut stored_ids,
    )?;
    add(r, "after", req2, pub2);
    r.add(
        "fairness",
        "polite_rate_limited",
        polite_refused as f64,
        "msgs",
    );
    let (checked, lost) = lost_events(&mut polite, &polite_evs, &stored_ids)?;
    r.add(
        "fairness",
        "polite_checked_stored",
        checked as f64,
        "events",
    );
    r.add("fairness", "polite_lost", lost as f64, "events");
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
    every: Duration,
    refused: &mut u64,
    stored: &mut Vec<String>,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    let (mut req, mut publ) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let start = Instant::now();
    for (i, ev) in evs.iter().take(n).enumerate() {
        // Paced rounds start on a fixed grid, so a slow answer does not shift the rest.
        if let Some(wait) = (start + every * i as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sub = format!("{tag}{i}");
        let t = Instant::now();
        send(ws, format!(r#"["REQ","{sub}",{REQ_FILTER}]"#))?;
        let m = await_msg(ws, |m| {
            matches!(verb(m), "EOSE" | "CLOSED") && super::second_str(m) == Some(&sub)
        })?;
        if verb(&m) == "CLOSED" {
            eprintln!("polite REQ refused: {m}");
            *refused += 1;
        }
        req.push(t.elapsed().as_secs_f64() * 1e3);
        send(ws, format!(r#"["CLOSE","{sub}"]"#))?;
        let t = Instant::now();
        send(
            ws,
            format!("[\"EVENT\",{}]", String::from_utf8_lossy(ev.json())),
        )?;
        let id = ev.id_hex();
        let m = await_msg(ws, |m| verb(m) == "OK" && super::second_str(m) == Some(id))?;
        // (An `OK false` for another reason, such as a generated replaceable event older
        // than one the flood stored, is not a refusal of the client.)
        if m.contains("rate-limited:") {
            eprintln!("polite EVENT refused: {m}");
            *refused += 1;
        }
        if m.contains(",true,") && !m.contains("duplicate:") {
            stored.push(id.to_string());
        }
        publ.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((req, publ))
}

/// Of the polite client's events the relay accepted (`OK true`, not a duplicate), the ones
/// that must still be there at the end — regular kinds with no expiry that none of its own
/// deletions names, and not DMs or gift wraps (restricted reads by default) — asked back by
/// id: (how many were checked, how many are missing).
fn lost_events(ws: &mut Ws, sent: &[Event], ok: &[String]) -> Result<(usize, usize), String> {
    use std::collections::HashSet;
    let deleted: HashSet<&str> = sent
        .iter()
        .filter(|e| e.kind == crate::nostr::kinds::KIND_DELETION)
        .flat_map(|e| {
            e.tags
                .iter()
                .filter(|t| t.name() == "e")
                .filter_map(|t| t.value())
        })
        .collect();
    let lasting: HashSet<&str> = sent
        .iter()
        .filter(|e| {
            e.class() == crate::nostr::kinds::KindClass::Regular
                && e.expiration.is_none()
                && !matches!(e.kind, 4 | crate::nostr::kinds::KIND_GIFT_WRAP)
        })
        .map(|e| e.id_hex())
        .filter(|id| !deleted.contains(id))
        .collect();
    let want: Vec<&str> = ok
        .iter()
        .map(String::as_str)
        .filter(|id| lasting.contains(id))
        .collect();
    let mut found = 0;
    for (i, chunk) in want.chunks(100).enumerate() {
        let sub = format!("lost{i}");
        let ids: Vec<String> = chunk.iter().map(|id| format!("\"{id}\"")).collect();
        send(
            ws,
            format!(r#"["REQ","{sub}",{{"ids":[{}]}}]"#, ids.join(",")),
        )?;
        loop {
            let m = await_msg(ws, |m| super::second_str(m) == Some(&sub))?;
            match verb(&m) {
                "EVENT" => found += 1,
                "EOSE" => break,
                _ => return Err(format!("checking stored events: {m}")),
            }
        }
        send(ws, format!(r#"["CLOSE","{sub}"]"#))?;
    }
    Ok((want.len(), want.len() - found.min(want.len())))
}

fn send(ws: &mut Ws, text: String) -> Result<(), String> {
    ws.send(Message::text(text))
        .map_err(|e| format!("send: {e}"))
}

/// Reads until `want` matches (other messages, such as live events, are skipped); an
/// answer later than 60 s is an error.
fn await_msg(ws: &mut Ws, want: impl Fn(&str) -> bool) -> Result<String, String> {
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        match ws.read() {
            Ok(Message::Text(t)) if want(t.as_str()) => return Ok(t.as_str().to_owned()),
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

/// Two malformed messages per event slot (the same count as `flood_bytes`), cycling through
/// the kinds of garbage a relay must answer without harm.
fn malformed_bytes(n: usize) -> Vec<u8> {
    const BAD: [&str; 6] = [
        "x",
        r#"["EVENT",{"id":"nope"}]"#,
        r#"["REQ"]"#,
        r#"["WHAT","is this"]"#,
        r#"[1,2"#,
        r#"["EVENT",{"kind":"one","content":7,"tags":{}}]"#,
    ];
    let mut b = Vec::new();
    for i in 0..2 * n.max(1) {
        frame(&mut b, BAD[i % BAD.len()].as_bytes());
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
fn raw_connect(url: &str, from: Option<IpAddr>) -> Result<TcpStream, String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or("fairness: flooders need a ws:// URL")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = tcp_from(host, from)?;
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

/// A TCP connection to `host` (`addr:port`) from source address `from`.
fn tcp_from(host: &str, from: Option<IpAddr>) -> Result<TcpStream, String> {
    let Some(from) = from else {
        return TcpStream::connect(host).map_err(|e| format!("connect {host}: {e}"));
    };
    let to: SocketAddr = host
        .parse()
        .map_err(|e| format!("--flood-from/--polite-from need an IP:port URL: {e}"))?;
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        None,
    )
    .map_err(|e| format!("socket: {e}"))?;
    sock.bind(&SocketAddr::new(from, 0).into())
        .map_err(|e| format!("bind {from}: {e}"))?;
    sock.connect(&to.into())
        .map_err(|e| format!("connect {host} from {from}: {e}"))?;
    Ok(sock.into())
}

/// A WebSocket client connected from source address `from` (ws:// only).
fn connect_from(url: &str, from: IpAddr, read_timeout: Duration) -> Result<Ws, String> {
    let host = url
        .strip_prefix("ws://")
        .ok_or("--polite-from needs a ws:// URL")?;
    let host = host.split('/').next().unwrap_or(host);
    let s = tcp_from(host, Some(from))?;
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(read_timeout));
    let (ws, _) = tungstenite::client::client(url, tungstenite::stream::MaybeTlsStream::Plain(s))
        .map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

/// One flooder: pushes its messages over `first`, and whenever the relay closes the
/// connection, connects again at once (after 10 ms if the upgrade is refused), until `stop`.
/// Lowers the calling thread's scheduling priority (Linux nice values are per thread), so a
/// flood generated on the relay's own machine yields the cores to the relay and the polite
/// client as a flood from elsewhere would. Lowering needs no privilege; failure is ignored.
/// 20 means SCHED_IDLE: below every nice value, so the generator does not compete even with
/// a relay's busy lane (nice 19), which a flood from elsewhere would not.
fn lower_priority(nice: i32) {
    if nice >= 20 {
        #[cfg(target_os = "linux")]
        {
            let p = libc::sched_param { sched_priority: 0 };
            // SAFETY: `p` outlives the call; pid 0 is the calling thread.
            unsafe {
                libc::sched_setscheduler(0, libc::SCHED_IDLE, &p);
            }
        }
    } else if nice > 0 {
        // SAFETY: setpriority has no memory effects; who = 0 is the calling thread.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, 0, nice);
        }
    }
}

fn flooder(
    first: Option<TcpStream>,
    url: &str,
    from: Option<IpAddr>,
    bytes: &[u8],
    stop: &Arc<AtomicBool>,
    counts: &Arc<Counts>,
    nice: i32,
) {
    let mut conn = first;
    while !stop.load(Ordering::Relaxed) {
        let s = match conn.take() {
            Some(s) => s,
            None => match raw_connect(url, from) {
                Ok(s) => s,
                Err(_) => {
                    counts.refused_upgrades.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let Ok(reader) = s.try_clone() else {
            continue;
        };
        // Ends the reader when the writer is done with this connection.
        let done = Arc::new(AtomicBool::new(false));
        let (d, c) = (done.clone(), counts.clone());
        let r = std::thread::spawn(move || {
            lower_priority(nice);
            read_loop(reader, &d, &c)
        });
        write_loop(&s, bytes, stop, &counts.sent);
        if !stop.load(Ordering::Relaxed) {
            counts.disconnects.fetch_add(1, Ordering::Relaxed);
        }
        let _ = s.shutdown(std::net::Shutdown::Both);
        done.store(true, Ordering::Relaxed);
        let _ = r.join();
    }
}

/// Writes `bytes` over and over until `stop` or an error (the second pass on are
/// duplicates; a new connection starts from the beginning again).
fn write_loop(mut s: &TcpStream, bytes: &[u8], stop: &AtomicBool, sent: &AtomicU64) {
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

/// Throws answers away, counting the OKs and EOSEs among them, the `rate-limited:` ones and
/// the served ones (`OK … true`, EOSE). The relay's frames are unmasked and uncompressed
/// (no extension was offered), so they are cut here by their headers.
fn read_loop(mut s: TcpStream, stop: &AtomicBool, counts: &Counts) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                let mut at = 0;
                while let Some((op, body, next)) = server_frame(&pending[at..]) {
                    if op == 0x8 {
                        return;
                    }
                    classify(&pending[at + body.0..at + body.1], counts);
                    at += next;
                }
                pending.drain(..at);
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

/// One complete unmasked frame at the start of `b`: (opcode, payload range, frame length).
fn server_frame(b: &[u8]) -> Option<(u8, (usize, usize), usize)> {
    let (&b0, &b1) = (b.first()?, b.get(1)?);
    let (len, head) = match b1 & 0x7F {
        126 => (u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4),
        127 => (
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    (b.len() >= head + len).then_some((b0 & 0x0F, (head, head + len), head + len))
}

fn classify(m: &[u8], c: &Counts) {
    let find = |needle: &[u8]| m.windows(needle.len()).any(|w| w == needle);
    if m.starts_with(b"[\"OK\",") {
        c.answered.fetch_add(1, Ordering::Relaxed);
        // `["OK","<64 hex>",true` once accepted.
        if m.get(73..77) == Some(b"true".as_slice()) {
            c.served.fetch_add(1, Ordering::Relaxed);
        }
    } else if m.starts_with(b"[\"EOSE\",") {
        c.answered.fetch_add(1, Ordering::Relaxed);
        c.served.fetch_add(1, Ordering::Relaxed);
    } else if m.starts_with(b"[\"NOTICE\",") || m.starts_with(b"[\"CLOSED\",") {
        // What a malformed message (or a refused REQ) gets: answered, not served.
        c.answered.fetch_add(1, Ordering::Relaxed);
    }
    if !m.starts_with(b"[\"EVENT\"") && find(b"rate-limited:") {
        c.limited.fetch_add(1, Ordering::Relaxed);
    }
}
