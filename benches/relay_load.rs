//! Whole-relay load scenario (custom harness; `cargo bench --bench relay_load`). Starts the
//! release `wok relay` as a separate process on a free loopback port with a temp DB, drives
//! it from this process over WebSocket and reads the relay's RSS from /proc:
//! - ingest: 64 connections × 32 EVENTs in flight, events/s, beside the 2-core verify
//!   ceiling measured in the same run;
//! - REQ `{"ids":[…]}`: time to EOSE, p50/p99;
//! - fanout (`wok::bench::fanout`): 1000 subscribers, half matching every event, half a
//!   tenth of them, one publisher at 50 events/s; latency after the publisher's OK, losses;
//! - memory: relay RSS per idle connection holding one subscription.
//!
//! Every loop is bounded; targets are 127.0.0.1 only. `-- --test` runs a tiny version.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use tungstenite::Message;
use wok::gen::GenConfig;
use wok::nostr::{verify, Event};

use wok::bench::Ws;

/// `wok::bench::connect` on the relay's loopback port.
fn connect(port: u16) -> Ws {
    wok::bench::connect(&format!("ws://127.0.0.1:{port}"), Duration::from_secs(30))
        .expect("connect")
}

fn recv(ws: &mut Ws) -> serde_json::Value {
    loop {
        match ws.read().expect("read") {
            Message::Text(t) => return serde_json::from_str(&t).expect("json"),
            _ => continue,
        }
    }
}

/// `wok::bench::cpu_secs`, 0 when the process cannot be read.
fn cpu_secs(pid: u32) -> f64 {
    wok::bench::cpu_secs(pid).unwrap_or(0.0)
}

/// Bytes a process has passed to write calls (`wchar` in /proc/<pid>/io): for the relay,
/// the LMDB pages its commits copy to the page cache before the fsync.
fn written_bytes(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("wchar:").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0.0)
}

fn rss_kb(pid: u32) -> u64 {
    wok::bench::rss_kb(pid).unwrap_or(0)
}

struct Relay {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_relay() -> Relay {
    let dir = tempfile::tempdir().expect("tmp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let conf = dir.path().join("strfry.conf");
    let mut f = std::fs::File::create(&conf).expect("conf");
    // Throughput and memory per connection from one loopback client: past the per-IP rate
    // limits by design, so they are off.
    writeln!(
        f,
        "db = \"{}\"\nevents {{ rejectEventsOlderThanSeconds = 4000000000 }}\nrelay {{ port = {port} maxSubsPerConnection = 1000 limits {{ enabled = false }} }}",
        dir.path().join("db").display()
    )
    .expect("write");
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/wok");
    let child = Command::new(bin)
        .args(["--config", conf.to_str().expect("utf8"), "relay"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn target/release/wok (run `cargo build --release` first)");
    let end = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "relay did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Relay {
        child,
        port,
        _dir: dir,
    }
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    let (n_events, conns, inflight, subs, fan_events, idle) = if smoke {
        (200, 4, 8, 10, 5, 20)
    } else {
        (60_000, 64, 32, 1000, 200, 2000)
    };
    // WOK_BENCH_INFLIGHT overrides EVENTs in flight per connection (to show how ingest
    // scales with the window); the default is the scenario the figures are quoted for.
    let inflight = std::env::var("WOK_BENCH_INFLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(inflight);
    let relay = start_relay();
    let port = relay.port;
    let pid = relay.child.id();
    let events: Vec<Event> = wok::gen::generate(&GenConfig {
        seed: 7,
        count: n_events,
        authors: 500,
        start: wok::policy::now() - 30 * 86_400,
        span_secs: 29 * 86_400,
    });

    // The 2-core verify ceiling, measured now on the same events.
    let sample = &events[..events.len().min(2000)];
    let t = Instant::now();
    for e in sample {
        let _ = std::hint::black_box(verify::check_event(e));
    }
    let one_core = sample.len() as f64 / t.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;

    // Ingest.
    let per = events.len().div_ceil(conns);
    let chunks: Vec<Vec<Vec<u8>>> = events
        .chunks(per)
        .map(|c| {
            c.iter()
                .map(|e| [b"[\"EVENT\",".as_slice(), e.json(), b"]"].concat())
                .collect()
        })
        .collect();
    let go = Arc::new(Barrier::new(chunks.len() + 1));
    let handles: Vec<_> = chunks
        .into_iter()
        .map(|msgs| {
            let go = go.clone();
            std::thread::spawn(move || {
                let mut ws = connect(port);
                go.wait();
                let (mut sent, mut acked) = (0, 0);
                while acked < msgs.len() {
                    while sent < msgs.len() && sent - acked < inflight {
                        let text = String::from_utf8(msgs[sent].clone()).expect("utf8");
                        ws.send(Message::text(text)).expect("send");
                        sent += 1;
                    }
                    if recv(&mut ws)[0] == "OK" {
                        acked += 1;
                    }
                }
            })
        })
        .collect();
    go.wait();
    let t = Instant::now();
    let (relay_cpu0, client_cpu0) = (cpu_secs(pid), cpu_secs(std::process::id()));
    let written0 = written_bytes(pid);
    for h in handles {
        h.join().expect("ingest thread");
    }
    let secs = t.elapsed().as_secs_f64();
    let ingest = events.len() as f64 / secs;
    let relay_cpu = cpu_secs(pid) - relay_cpu0;
    let written = written_bytes(pid) - written0;
    let client_cpu = cpu_secs(std::process::id()) - client_cpu0;
    let metric = |name: &str| -> f64 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("metrics");
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut out);
        out.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    let batches = metric("wok_write_batches_total ");
    println!(
        "ingest writer: {batches} transactions, {:.0} events and {:.2} ms each on average, {:.2} ms of it in commit",
        events.len() as f64 / batches.max(1.0),
        metric("strfry_write_time_microseconds_total ") / batches.max(1.0) / 1e3,
        metric("wok_write_commit_microseconds_total ") / batches.max(1.0) / 1e3
    );
    println!(
        "ingest disk: the relay wrote {:.1} KB per event ({:.0} MB/s), socket writes included",
        written / events.len() as f64 / 1e3,
        written / secs / 1e6
    );
    println!(
        "ingest CPU: relay {:.1} us/event ({:.2} cores), load client {:.2} cores, over {secs:.1} s",
        relay_cpu / events.len() as f64 * 1e6,
        relay_cpu / secs,
        client_cpu / secs
    );
    println!(
        "ingest: {:.0} events/s with {conns} conns x {inflight} in flight; verify ceiling {:.0}/s ({:.0}/s x {cores} cores) -> {:.0}% of ceiling",
        ingest,
        one_core * cores,
        one_core,
        100.0 * ingest / (one_core * cores)
    );

    // REQ by id.
    let mut ws = connect(port);
    let mut lat = Vec::new();
    for (i, e) in events
        .iter()
        .step_by(7)
        .take(if smoke { 20 } else { 2000 })
        .enumerate()
    {
        let t = Instant::now();
        ws.send(Message::text(format!(
            "[\"REQ\",\"q{i}\",{{\"ids\":[\"{}\"]}}]",
            e.id_hex()
        )))
        .expect("send");
        while recv(&mut ws)[0] != "EOSE" {}
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        ws.send(Message::text(format!("[\"CLOSE\",\"q{i}\"]")))
            .expect("send");
    }
    println!(
        "REQ ids: p50 {:.3} ms, p99 {:.3} ms ({} queries)",
        wok::bench::pct(&mut lat, 0.5),
        wok::bench::pct(&mut lat, 0.99),
        lat.len()
    );

    // Fanout, through the same scenario `wok bench fanout` runs against any relay.
    let mut report = wok::bench::Report::default();
    wok::bench::fanout::run(
        &wok::bench::fanout::FanoutOptions {
            url: format!("ws://127.0.0.1:{port}"),
            subs,
            events: fan_events,
            rate: 50.0,
            pid: None,
        },
        &mut report,
    )
    .expect("fanout");
    let fig = |name: &str| {
        report
            .figures
            .iter()
            .find(|f| f.name == name)
            .map_or(f64::NAN, |f| f.value)
    };
    println!(
        "fanout: {subs} subscribers (half broad, half narrow) x {fan_events} events, {} deliveries, lost {}: after the publisher's OK p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; from its send p50 {:.2} ms, p99 {:.2} ms",
        fig("deliveries"),
        fig("lost"),
        fig("after_ok_p50_ms"),
        fig("after_ok_p99_ms"),
        fig("after_ok_max_ms"),
        fig("after_send_p50_ms"),
        fig("after_send_p99_ms")
    );
    println!(
        "fanout per event: first recipient p50 {:.2} ms; last recipient p50 {:.2} ms, p99 {:.2} ms",
        fig("first_recipient_p50_ms"),
        fig("last_recipient_p50_ms"),
        fig("last_recipient_p99_ms")
    );

    // Memory per idle connection with one subscription.
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kb(pid);
    let mut idle_conns = Vec::new();
    for i in 0..idle {
        let mut ws = connect(port);
        ws.send(Message::text(format!(
            "[\"REQ\",\"idle{i}\",{{\"kinds\":[7],\"limit\":0}}]"
        )))
        .expect("send");
        while recv(&mut ws)[0] != "EOSE" {}
        idle_conns.push(ws);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kb(pid);
    println!(
        "memory: relay RSS {before} KB -> {after} KB with {idle} idle subscribed connections = {:.1} KB/conn",
        after.saturating_sub(before) as f64 / idle as f64
    );
}
