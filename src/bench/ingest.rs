//! Ingest: C connections each keeping W pre-signed, never-seen EVENTs in flight; events/s
//! and send→OK latency. Events come from the deterministic generator with created_at in the
//! last ten minutes (so every relay's created_at window accepts them) and a seed of their
//! own (so two runs never send duplicates).

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use tungstenite::Message;

use super::{connect, pct, verb, ProcWatch, Report};
use crate::gen::GenConfig;

pub struct IngestOptions {
    pub url: String,
    pub conns: usize,
    pub inflight: usize,
    pub events: usize,
    pub seed: u64,
    /// Events/s over all connections (0: as fast as OKs come back).
    pub rate: u64,
    pub pid: Option<u32>,
}

pub fn run(o: &IngestOptions, r: &mut Report) -> Result<(), String> {
    let now = crate::policy::now();
    let events = crate::gen::generate(&GenConfig {
        seed: o.seed,
        count: o.events,
        authors: 500,
        start: now - 600,
        span_secs: 590,
    });
    let per = events.len().div_ceil(o.conns.max(1));
    let chunks: Vec<Vec<(String, String)>> = events
        .chunks(per.max(1))
        .map(|c| {
            c.iter()
                .map(|e| {
                    let text = format!("[\"EVENT\",{}]", String::from_utf8_lossy(e.json()));
                    (e.id_hex().to_owned(), text)
                })
                .collect()
        })
        .collect();
    let go = Arc::new(Barrier::new(chunks.len() + 1));
    let inflight = o.inflight.max(1);
    // With a rate, each connection sends its n-th event at start + n / (rate / conns).
    let gap = (o.rate > 0).then(|| Duration::from_secs_f64(chunks.len() as f64 / o.rate as f64));
    let mut handles = Vec::new();
    for msgs in chunks {
        let (go, url) = (go.clone(), o.url.clone());
        handles.push(std::thread::spawn(
            move || -> Result<(Vec<f64>, u64), String> {
                // Everyone reaches the barrier, also a thread that could not connect.
                let ws = connect(&url, Duration::from_secs(30));
                go.wait();
                let mut ws = ws?;
                // The generator may repeat an event; each send waits for its own OK.
                let mut sent_at: HashMap<String, Vec<Instant>> =
                    HashMap::with_capacity(inflight * 2);
                let (mut sent, mut acked, mut refused) = (0usize, 0usize, 0u64);
                let mut lat = Vec::with_capacity(msgs.len());
                let deadline = Instant::now() + Duration::from_secs(600);
                let start = Instant::now();
                let due = |n: usize| gap.map(|g| start + g * n as u32);
                while acked < msgs.len() {
                    // Nothing in flight: wait for the next event's time (the pacing itself).
                    if sent == acked && sent < msgs.len() {
                        if let Some(at) = due(sent) {
                            std::thread::sleep(at.saturating_duration_since(Instant::now()));
                        }
                    }
                    while sent < msgs.len()
                        && sent - acked < inflight
                        && due(sent).is_none_or(|at| at <= Instant::now())
                    {
                        let (id, text) = &msgs[sent];
                        sent_at.entry(id.clone()).or_default().push(Instant::now());
                        ws.send(Message::text(text.as_str()))
                            .map_err(|e| format!("send: {e}"))?;
                        sent += 1;
                    }
                    if Instant::now() > deadline {
                        return Err("ingest: no progress for 10 minutes".into());
                    }
                    let m = match ws.read() {
                        Ok(Message::Text(t)) => t,
                        Ok(_) => continue,
                        Err(e) => return Err(format!("ingest connection: {e}")),
                    };
                    if verb(&m) != "OK" {
                        continue;
                    }
                    acked += 1;
                    if m.contains(",false,") {
                        refused += 1;
                    }
                    let t0 = super::second_str(&m)
                        .and_then(|id| sent_at.get_mut(id))
                        .and_then(|v| (!v.is_empty()).then(|| v.remove(0)));
                    if let Some(t0) = t0 {
                        lat.push(t0.elapsed().as_secs_f64() * 1e3);
                    }
                }
                Ok((lat, refused))
            },
        ));
    }
    go.wait();
    let watch = ProcWatch::start(o.pid);
    let t = Instant::now();
    let (mut lat, mut refused) = (Vec::new(), 0);
    for h in handles {
        let (l, n) = h.join().map_err(|_| "ingest thread panicked")??;
        lat.extend(l);
        refused += n;
    }
    let secs = t.elapsed().as_secs_f64();
    r.add(
        "ingest",
        "events_per_s",
        events.len() as f64 / secs,
        "events/s",
    );
    r.add("ingest", "ok_p50_ms", pct(&mut lat, 0.5), "ms");
    r.add("ingest", "ok_p99_ms", pct(&mut lat, 0.99), "ms");
    r.add("ingest", "refused", refused as f64, "events");
    watch.finish(r, "ingest", secs);
    Ok(())
}
