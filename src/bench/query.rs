//! Query: C concurrent clients run a realistic REQ mix against a relay preloaded with
//! `wok gen --count N --seed S` (the same arguments regenerate the same events here, from
//! which the queries pick real authors, threads, mentions, ids and time windows). Per query
//! type: time to EOSE p50/p99 and the events returned, which must be equal for two relays
//! holding the same data.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use tungstenite::Message;

use super::{connect, pct, verb, ProcWatch, Report};
use crate::gen::{GenConfig, Rng};
use crate::nostr::{hex, Event};

pub struct QueryOptions {
    pub url: String,
    pub clients: usize,
    pub queries: usize,
    pub count: usize,
    pub seed: u64,
    pub pid: Option<u32>,
}

/// `search1`/`search2` are NIP-50 queries (one and two words from the generated notes): a
/// relay without search (strfry) answers them with CLOSED, counted as zero events.
const TYPES: [&str; 9] = [
    "author", "feed", "thread", "mentions", "ids", "global", "window", "search1", "search2",
];

/// What the queries pick from.
struct Targets {
    authors: Vec<String>,
    roots: Vec<String>,
    mentioned: Vec<String>,
    ids: Vec<String>,
    times: Vec<u64>,
    /// Words of the notes (ASCII letters, 4+), for search queries.
    words: Vec<String>,
}

impl Targets {
    fn of(events: &[Event]) -> Targets {
        let mut authors: Vec<String> = events.iter().map(|e| hex::encode(&e.pubkey)).collect();
        authors.sort();
        authors.dedup();
        let tag = |name: u8| -> Vec<String> {
            let mut v: Vec<String> = events
                .iter()
                .flat_map(|e| {
                    e.packed_tags()
                        .filter(move |(n, v)| *n == name && v.len() == 32)
                        .map(|(_, v)| hex::encode(v))
                        .collect::<Vec<_>>()
                })
                .collect();
            v.sort();
            v.dedup();
            v
        };
        Targets {
            authors,
            roots: tag(b'e'),
            mentioned: tag(b'p'),
            ids: events.iter().map(|e| e.id_hex().to_owned()).collect(),
            times: events.iter().map(|e| e.created_at).collect(),
            words: {
                let mut w: Vec<String> = events
                    .iter()
                    .filter(|e| e.kind == 1)
                    .take(2000)
                    .flat_map(|e| crate::search::tokenize::tokens(&e.content))
                    .filter(|t| t.len() >= 4 && t.bytes().all(|b| b.is_ascii_lowercase()))
                    .collect();
                w.sort();
                w.dedup();
                w
            },
        }
    }

    fn filter(&self, kind: usize, rng: &mut Rng) -> String {
        let pick = |v: &[String], rng: &mut Rng| {
            if v.is_empty() {
                "0".repeat(64)
            } else {
                v[rng.below(v.len() as u64) as usize].clone()
            }
        };
        let list = |v: &[String], n: usize, rng: &mut Rng| {
            (0..n)
                .map(|_| format!("\"{}\"", pick(v, rng)))
                .collect::<Vec<_>>()
                .join(",")
        };
        match kind {
            0 => format!(
                r#"{{"authors":["{}"],"limit":50}}"#,
                pick(&self.authors, rng)
            ),
            1 => format!(
                r#"{{"authors":[{}],"kinds":[1,6],"limit":100}}"#,
                list(&self.authors, 20, rng)
            ),
            2 => format!(r##"{{"#e":["{}"],"limit":100}}"##, pick(&self.roots, rng)),
            3 => format!(
                r##"{{"#p":["{}"],"kinds":[1,7],"limit":50}}"##,
                pick(&self.mentioned, rng)
            ),
            4 => format!(r#"{{"ids":[{}]}}"#, list(&self.ids, 10, rng)),
            5 => r#"{"kinds":[1],"limit":100}"#.to_string(),
            7 => format!(r#"{{"search":"{}","limit":50}}"#, pick(&self.words, rng)),
            8 => format!(
                r#"{{"search":"{} {}","limit":50}}"#,
                pick(&self.words, rng),
                pick(&self.words, rng)
            ),
            _ => {
                let t = if self.times.is_empty() {
                    0
                } else {
                    self.times[rng.below(self.times.len() as u64) as usize]
                };
                format!(
                    r#"{{"kinds":[1],"since":{},"until":{},"limit":200}}"#,
                    t.saturating_sub(1800),
                    t + 1800
                )
            }
        }
    }
}

pub fn run(o: &QueryOptions, r: &mut Report) -> Result<(), String> {
    let events = crate::gen::generate(&GenConfig {
        seed: o.seed,
        count: o.count,
        ..GenConfig::default()
    });
    let targets = Arc::new(Targets::of(&events));
    drop(events);
    let clients = o.clients.max(1);
    let go = Arc::new(Barrier::new(clients + 1));
    let mut handles = Vec::new();
    for c in 0..clients {
        let (go, url, targets) = (go.clone(), o.url.clone(), targets.clone());
        let (queries, seed) = (o.queries, o.seed);
        handles.push(std::thread::spawn(
            move || -> Result<Vec<(usize, f64, u64)>, String> {
                // Everyone reaches the barrier, also a thread that could not connect.
                let ws = connect(&url, Duration::from_secs(30));
                let mut rng = Rng::new(seed ^ (c as u64 + 1).wrapping_mul(0x9e37_79b9));
                go.wait();
                let mut ws = ws?;
                let mut out = Vec::with_capacity(queries);
                for q in 0..queries {
                    let kind = (q + c) % TYPES.len();
                    let sub = format!("q{q}");
                    let text = format!("[\"REQ\",\"{sub}\",{}]", targets.filter(kind, &mut rng));
                    let t = Instant::now();
                    ws.send(Message::text(text))
                        .map_err(|e| format!("send: {e}"))?;
                    let mut n = 0u64;
                    loop {
                        let m = match ws.read() {
                            Ok(Message::Text(m)) => m,
                            Ok(_) => continue,
                            Err(e) => return Err(format!("query connection: {e}")),
                        };
                        match verb(&m) {
                            "EVENT" => n += 1,
                            "EOSE" | "CLOSED" => break,
                            _ => {}
                        }
                    }
                    out.push((kind, t.elapsed().as_secs_f64() * 1e3, n));
                    ws.send(Message::text(format!("[\"CLOSE\",\"{sub}\"]")))
                        .map_err(|e| format!("send: {e}"))?;
                }
                Ok(out)
            },
        ));
    }
    go.wait();
    let watch = ProcWatch::start(o.pid);
    let t = Instant::now();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().map_err(|_| "query thread panicked")??);
    }
    let secs = t.elapsed().as_secs_f64();
    let total_events: u64 = all.iter().map(|x| x.2).sum();
    r.add("query", "reqs_per_s", all.len() as f64 / secs, "REQs/s");
    r.add(
        "query",
        "events_per_s",
        total_events as f64 / secs,
        "events/s",
    );
    for (k, name) in TYPES.iter().enumerate() {
        let mut lat: Vec<f64> = all.iter().filter(|x| x.0 == k).map(|x| x.1).collect();
        let n: u64 = all.iter().filter(|x| x.0 == k).map(|x| x.2).sum();
        r.add("query", format!("{name}_p50_ms"), pct(&mut lat, 0.5), "ms");
        r.add("query", format!("{name}_p99_ms"), pct(&mut lat, 0.99), "ms");
        r.add("query", format!("{name}_events"), n as f64, "events");
    }
    if let Some(cpu) = watch.finish(r, "query", secs) {
        // What one REQ costs the relay, and how much of the machine it left unused: a relay
        // that is not the bottleneck shows idle cores while the clients wait on their own turn.
        if !all.is_empty() {
            r.add(
                "query",
                "relay_cpu_per_req_us",
                cpu * 1e6 / all.len() as f64,
                "us",
            );
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        if secs > 0.0 {
            r.add(
                "query",
                "relay_idle_share",
                (1.0 - cpu / (secs * cores)).max(0.0),
                "share",
            );
        }
    }
    Ok(())
}
