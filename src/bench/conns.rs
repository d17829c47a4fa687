//! Conns: K idle connections, each holding one subscription (answered with EOSE); the
//! connect rate and, with a relay pid, the relay's RSS per connection.

use std::time::{Duration, Instant};

use tungstenite::Message;

use super::{connect, rss_kb, verb, ProcWatch, Report};

pub struct ConnsOptions {
    pub url: String,
    pub conns: usize,
    pub pid: Option<u32>,
}

pub fn run(o: &ConnsOptions, r: &mut Report) -> Result<(), String> {
    let rss0 = o.pid.and_then(rss_kb);
    let watch = ProcWatch::start(o.pid);
    let t = Instant::now();
    let mut held = Vec::with_capacity(o.conns);
    for i in 0..o.conns {
        let mut ws = connect(&o.url, Duration::from_secs(30))?;
        ws.send(Message::text(format!(
            "[\"REQ\",\"idle{i}\",{{\"kinds\":[7],\"#t\":[\"wok-bench-idle\"],\"limit\":0}}]"
        )))
        .map_err(|e| format!("send: {e}"))?;
        loop {
            match ws.read() {
                Ok(Message::Text(m)) if verb(&m) == "EOSE" => break,
                Ok(_) => {}
                Err(e) => return Err(format!("connection {i}: {e}")),
            }
        }
        held.push(ws);
    }
    let secs = t.elapsed().as_secs_f64();
    r.add("conns", "connect_per_s", o.conns as f64 / secs, "conns/s");
    // Let the relay settle (buffers freed, allocator caches trimmed) before reading RSS.
    std::thread::sleep(Duration::from_millis(500));
    if let (Some(before), Some(after)) = (rss0, o.pid.and_then(rss_kb)) {
        r.add(
            "conns",
            "rss_per_conn_kb",
            after.saturating_sub(before) as f64 / o.conns.max(1) as f64,
            "KiB",
        );
    }
    watch.finish(r, "conns", secs);
    drop(held);
    Ok(())
}
