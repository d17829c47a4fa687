//! Fanout: S subscribers, one publisher at a fixed rate. Half the subscribers use a broad
//! filter (every published event), half a narrow one (a tenth of them); delivery latency is
//! measured from the publisher's OK and from its send, and every expected delivery that
//! never arrives is a loss. All subscriber sockets are drained by one thread reading raw
//! frames (a thread per socket would swamp a small machine; a full WebSocket reader made
//! the client, not the relay, the bottleneck).

use std::collections::HashMap;
use std::io::Read;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::Message;

use super::{connect, pct, verb, ProcWatch, Report};
use crate::nostr::sign::Keys;
use crate::nostr::tags::Tags;
use crate::nostr::Limits;

pub struct FanoutOptions {
    pub url: String,
    pub subs: usize,
    pub events: usize,
    /// Events per second from the publisher.
    pub rate: f64,
    pub pid: Option<u32>,
}

/// Calls `f` with the payload of each complete unmasked server frame at the front of `buf`
/// and removes those frames.
fn drain_frames(buf: &mut Vec<u8>, mut f: impl FnMut(&[u8])) {
    let mut at = 0;
    loop {
        let b = &buf[at..];
        if b.len() < 2 {
            break;
        }
        let (len, head): (usize, usize) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            126 | 127 => break,
            n => (n as usize, 2),
        };
        // A length field from the wire can be anything: no overflow, no slice past the end.
        if head.checked_add(len).is_none_or(|end| b.len() < end) {
            break;
        }
        f(&b[head..head + len]);
        at += head + len;
    }
    buf.drain(..at);
}

/// The `N` of content `"wb<nonce>-N"` in an EVENT frame.
fn seq_of(payload: &[u8], mark: &[u8]) -> Option<u32> {
    let i = payload.windows(mark.len()).position(|w| w == mark)? + mark.len();
    let digits = payload[i..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    std::str::from_utf8(&payload[i..i + digits])
        .ok()?
        .parse()
        .ok()
}

pub fn run(o: &FanoutOptions, r: &mut Report) -> Result<(), String> {
    let nonce = crate::policy::now() % 1_000_000_007;
    let tag = format!("wb{nonce}");
    let (subs, n_events) = (o.subs.max(1), o.events.max(1));
    let rate = o.rate.max(0.1);
    // The subscriber thread reports whether its set-up worked before anything is published.
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Result<(), String>>(1);
    let published = Arc::new(AtomicBool::new(false));
    let sub_thread = {
        let (url, tag) = (o.url.clone(), tag.clone());
        let published = published.clone();
        std::thread::spawn(move || -> Result<Vec<(u32, Instant)>, String> {
            let set_up = || -> Result<_, String> {
                let poll = mio::Poll::new().map_err(|e| e.to_string())?;
                let mut socks: Vec<(TcpStream, Vec<u8>)> = Vec::with_capacity(subs);
                for i in 0..subs {
                    let mut ws = connect(&url, Duration::from_secs(30))?;
                    let filter = if i % 2 == 0 {
                        format!(r##"{{"#t":["{tag}"],"limit":0}}"##)
                    } else {
                        format!(r##"{{"#t":["{tag}-{}"],"limit":0}}"##, (i / 2) % 10)
                    };
                    ws.send(Message::text(format!("[\"REQ\",\"f\",{filter}]")))
                        .map_err(|e| format!("send: {e}"))?;
                    loop {
                        match ws.read() {
                            Ok(Message::Text(t)) if verb(&t) == "EOSE" => break,
                            Ok(_) => {}
                            Err(e) => return Err(format!("subscriber {i}: {e}")),
                        }
                    }
                    let MaybeTlsStream::Plain(s) = ws.into_inner() else {
                        return Err("fanout needs ws:// URLs".into());
                    };
                    s.set_nonblocking(true).map_err(|e| e.to_string())?;
                    poll.registry()
                        .register(
                            &mut mio::unix::SourceFd(&s.as_raw_fd()),
                            mio::Token(i),
                            mio::Interest::READABLE,
                        )
                        .map_err(|e| e.to_string())?;
                    socks.push((s, Vec::with_capacity(4096)));
                }
                Ok((poll, socks))
            };
            let (mut poll, mut socks) = match set_up() {
                Ok(v) => {
                    let _ = ready_tx.send(Ok(()));
                    v
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            let mut got: Vec<(u32, Instant)> = Vec::with_capacity(subs * n_events);
            let mut events = mio::Events::with_capacity(1024);
            let mut chunk = vec![0u8; 64 << 10];
            let mark = format!("\"content\":\"{tag}-").into_bytes();
            let deadline = Instant::now()
                + Duration::from_secs(30)
                + Duration::from_secs_f64(n_events as f64 / rate);
            let mut idle_since = Instant::now();
            while Instant::now() < deadline {
                let _ = poll.poll(&mut events, Some(Duration::from_millis(100)));
                if events.is_empty() {
                    // Done once the publisher has finished and nothing came for a second.
                    if published.load(Ordering::Acquire)
                        && idle_since.elapsed() > Duration::from_secs(1)
                    {
                        break;
                    }
                    continue;
                }
                idle_since = Instant::now();
                for ev in events.iter() {
                    let (sock, buf) = &mut socks[ev.token().0];
                    loop {
                        match sock.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let at = Instant::now();
                                buf.extend_from_slice(&chunk[..n]);
                                drain_frames(buf, |p| {
                                    if let Some(i) = seq_of(p, &mark) {
                                        got.push((i, at));
                                    }
                                });
                            }
                        }
                    }
                }
            }
            Ok(got)
        })
    };
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err("the subscriber thread ended".into()),
    }
    let keys = Keys::from_secret([0x5b; 32]).ok_or("bad bench key")?;
    let mut publ = connect(&o.url, Duration::from_secs(30))?;
    let watch = ProcWatch::start(o.pid);
    let t = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / rate);
    let (mut sent_at, mut ok_at) = (HashMap::new(), HashMap::new());
    let mut expected = 0usize;
    for i in 0..n_events {
        let narrow = format!("{tag}-{}", i % 10);
        let ev = keys
            .sign(
                crate::policy::now(),
                1,
                Tags::from_vecs(&[vec!["t", tag.as_str()], vec!["t", narrow.as_str()]]),
                &format!("{tag}-{i}"),
                &Limits::default(),
            )
            .map_err(|e| e.to_string())?;
        // Broad subscribers (even) all match; narrow ones (odd) when their tenth matches.
        expected += subs.div_ceil(2)
            + (0..subs)
                .filter(|s| s % 2 == 1 && (s / 2) % 10 == i % 10)
                .count();
        let next = t + gap * i as u32;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        sent_at.insert(i as u32, Instant::now());
        publ.send(Message::text(format!(
            "[\"EVENT\",{}]",
            String::from_utf8_lossy(ev.json())
        )))
        .map_err(|e| format!("send: {e}"))?;
        loop {
            match publ.read() {
                Ok(Message::Text(m)) if verb(&m) == "OK" => break,
                Ok(_) => {}
                Err(e) => return Err(format!("publisher: {e}")),
            }
        }
        ok_at.insert(i as u32, Instant::now());
    }
    published.store(true, Ordering::Release);
    let got = sub_thread
        .join()
        .map_err(|_| "subscriber thread panicked")??;
    let secs = t.elapsed().as_secs_f64();
    let (mut after_ok, mut after_send) = (Vec::new(), Vec::new());
    // A delivery can arrive before the publisher has read its OK: it counts as negative
    // (clamping it to 0 made after-OK figures look better than they were).
    let mut before_ok = 0usize;
    for (i, at) in &got {
        if let Some(ok) = ok_at.get(i) {
            after_ok.push(signed_ms(*at, *ok));
            before_ok += usize::from(at < ok);
        }
        if let Some(s) = sent_at.get(i) {
            after_send.push(at.saturating_duration_since(*s).as_secs_f64() * 1e3);
        }
    }
    r.add("fanout", "deliveries", got.len() as f64, "events");
    r.add(
        "fanout",
        "lost",
        expected.saturating_sub(got.len()) as f64,
        "events",
    );
    r.add(
        "fanout",
        "delivered_before_ok",
        before_ok as f64,
        "deliveries",
    );
    r.add("fanout", "after_ok_p50_ms", pct(&mut after_ok, 0.5), "ms");
    r.add("fanout", "after_ok_p99_ms", pct(&mut after_ok, 0.99), "ms");
    r.add("fanout", "after_ok_max_ms", pct(&mut after_ok, 1.0), "ms");
    r.add(
        "fanout",
        "after_send_p50_ms",
        pct(&mut after_send, 0.5),
        "ms",
    );
    r.add(
        "fanout",
        "after_send_p99_ms",
        pct(&mut after_send, 0.99),
        "ms",
    );
    // Per event, the first and the last recipient after the OK: a late first delivery
    // points upstream of the io thread (writer, monitor), a wide spread at the io thread.
    let mut span: HashMap<u32, (f64, f64)> = HashMap::new();
    for (i, at) in &got {
        if let Some(ok) = ok_at.get(i) {
            let ms = signed_ms(*at, *ok);
            let e = span.entry(*i).or_insert((f64::MAX, 0.0));
            e.0 = e.0.min(ms);
            e.1 = e.1.max(ms);
        }
    }
    let (mut first, mut last): (Vec<f64>, Vec<f64>) = span.into_values().unzip();
    r.add(
        "fanout",
        "first_recipient_p50_ms",
        pct(&mut first, 0.5),
        "ms",
    );
    r.add("fanout", "last_recipient_p50_ms", pct(&mut last, 0.5), "ms");
    r.add(
        "fanout",
        "last_recipient_p99_ms",
        pct(&mut last, 0.99),
        "ms",
    );
    watch.finish(r, "fanout", secs);
    Ok(())
}

/// `at - since` in milliseconds, negative when `at` came first.
fn signed_ms(at: Instant, since: Instant) -> f64 {
    if at >= since {
        (at - since).as_secs_f64() * 1e3
    } else {
        -((since - at).as_secs_f64() * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_before_the_ok_count_as_negative() {
        let t = Instant::now();
        let later = t + Duration::from_millis(3);
        assert!((signed_ms(later, t) - 3.0).abs() < 1e-9);
        assert!((signed_ms(t, later) + 3.0).abs() < 1e-9);
    }
}
