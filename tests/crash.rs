//! `kill -9` at arbitrary moments while clients publish (after a SIGSTOP/SIGCONT freeze in
//! each round): every event the relay answered `OK true` is in the DB after the restart
//! ("OK true means durable", issue 18 item 4).
//! `cargo test` runs a few rounds; `scripts/kill-loop.sh` runs a hundred or more
//! (`WOK_KILL_ROUNDS`) against the release binary.

mod common;

use std::collections::HashSet;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{keys, now, sign, Running};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};
use wok::store::{Store, StoreOptions};

const STEP: Duration = Duration::from_secs(15);
/// EVENTs each publisher keeps in flight: a kill then lands among unanswered ones too.
const WINDOW: usize = 16;
const PUBLISHERS: u8 = 3;

fn rounds() -> usize {
    std::env::var("WOK_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Publishes until the connection dies or `stop`; records the ids answered `OK true`.
fn publish(
    url: &str,
    who: u8,
    round: usize,
    acked: &Mutex<HashSet<String>>,
    count: &AtomicUsize,
    stop: &AtomicBool,
) {
    let Ok((mut ws, _)) = tungstenite::connect(url) else {
        return;
    };
    if let MaybeTlsStream::Plain(s) = ws.get_mut() {
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    }
    let k = keys(who + 1);
    let t = now();
    let mut sent = 0usize;
    let mut in_flight = 0usize;
    // Bounded: a relay that stops answering ends the loop by the read timeout.
    while !stop.load(Ordering::Relaxed) && sent < 1_000_000 {
        while in_flight < WINDOW {
            let ev = sign(&k, t, 1, &[], &format!("r{round} p{who} #{sent}"));
            let text = format!("[\"EVENT\",{}]", String::from_utf8_lossy(ev.json()));
            if ws.send(Message::text(text)).is_err() {
                return;
            }
            sent += 1;
            in_flight += 1;
        }
        if !read_ok(&mut ws, acked, count) {
            return;
        }
        in_flight -= 1;
    }
}

/// Reads the next OK; false when the connection is gone.
fn read_ok(
    ws: &mut WebSocket<MaybeTlsStream<TcpStream>>,
    acked: &Mutex<HashSet<String>>,
    count: &AtomicUsize,
) -> bool {
    loop {
        let Ok(m) = ws.read() else { return false };
        let Message::Text(t) = m else { continue };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) else {
            continue;
        };
        if v[0] != "OK" {
            continue;
        }
        assert_eq!(v[2], true, "refused: {v}");
        if let Some(id) = v[1].as_str() {
            acked.lock().expect("lock").insert(id.to_owned());
            count.fetch_add(1, Ordering::Relaxed);
        }
        return true;
    }
}

#[test]
fn kill_9_while_clients_publish_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("db");
    let conf = dir.path().join("wok.conf");
    std::fs::write(
        &conf,
        format!(
            "db = {:?}\nrelay {{ port = 0 }}\n",
            db.display().to_string()
        ),
    )
    .expect("conf");
    let acked = Arc::new(Mutex::new(HashSet::new()));
    // A deterministic spread of kill points: after 20 to ~400 acknowledgements a round.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let started = Instant::now();
    for round in 0..rounds() {
        let mut relay = Running::spawn(
            Command::new(env!("CARGO_BIN_EXE_wok"))
                .args(["--config", conf.to_str().expect("utf8"), "relay"])
                .env_remove("STRFRY_CONFIG")
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        let url = format!("ws://127.0.0.1:{}", relay.await_port(STEP));
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|who| {
                let (url, acked, count, stop) =
                    (url.clone(), acked.clone(), count.clone(), stop.clone());
                std::thread::spawn(move || publish(&url, who, round, &acked, &count, &stop))
            })
            .collect();
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let kill_at = 20 + (seed >> 33) as usize % 400;
        assert!(
            common::eventually(STEP, || count.load(Ordering::Relaxed) >= kill_at),
            "round {round}: only {} acknowledged: {}",
            count.load(Ordering::Relaxed),
            relay.stderr_text()
        );
        // Frozen under load and thawed (SIGSTOP/SIGCONT): it must carry on where it was.
        relay.signal("-STOP");
        std::thread::sleep(Duration::from_millis(200)); // the fault's length, not a wait for state
        relay.signal("-CONT");
        let resumed = count.load(Ordering::Relaxed) + 20;
        assert!(
            common::eventually(STEP, || count.load(Ordering::Relaxed) >= resumed),
            "round {round}: no progress after SIGCONT: {}",
            relay.stderr_text()
        );
        relay.signal("-KILL");
        let status = relay.wait_within(STEP);
        assert!(!status.success(), "round {round}: {status:?}");
        stop.store(true, Ordering::Relaxed);
        for p in publishers {
            p.join().expect("publisher");
        }
    }
    let acked = acked.lock().expect("lock");
    let store = Store::open(&db, &StoreOptions::default()).expect("reopen");
    let txn = store.read_txn().expect("txn");
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| {
            let id = wok::nostr::hex::decode_lower::<32>(id.as_bytes()).expect("hex id");
            !matches!(store.lookup_id(&txn, &id), Ok(Some(_)))
        })
        .collect();
    println!(
        "kill loop: {} rounds, {} acknowledged, lost {} ({:.1} s)",
        rounds(),
        acked.len(),
        lost.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        lost.is_empty(),
        "lost {} acknowledged: {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}
