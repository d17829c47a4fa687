//! `wok stream` through the real binary: events published on the relay arrive in the local
//! DB, events written locally (by another process: this test) arrive on the relay, and
//! SIGTERM ends it cleanly.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{keys, note, TestRelay};
use wok::store::{Store, StoreOptions};

fn open(dir: &std::path::Path) -> Store {
    Store::open(
        dir,
        &StoreOptions {
            map_size: 1 << 30,
            ..StoreOptions::default()
        },
    )
    .expect("store")
}

#[test]
fn both_directions_live() {
    let r = TestRelay::start();
    let local = tempfile::tempdir().expect("tmp");
    let store = open(local.path());
    let child = common::Running(Some(
        Command::new(env!("CARGO_BIN_EXE_wok"))
            .arg("--set")
            .arg(format!("db={}", local.path().display()))
            .args([
                "--set",
                "dbParams.mapsize=1073741824",
                "stream",
                &r.url,
                "--dir",
                "both",
            ])
            .env_remove("STRFRY_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wok stream"),
    ));
    let mut c = r.client();
    let k = keys(50);

    // Down: publish until one arrives locally (the stream subscribes with limit 0, so only
    // events after its REQ come down); bounded.
    let end = Instant::now() + Duration::from_secs(20);
    let mut arrived = false;
    let mut i = 0;
    while !arrived && Instant::now() < end {
        let ev = note(&k, &format!("down {i}"));
        i += 1;
        assert_eq!(c.publish(&ev)[2], true);
        let wait = Instant::now() + Duration::from_secs(1);
        while Instant::now() < wait {
            let txn = store.read_txn().expect("txn");
            if store.lookup_id(&txn, &ev.id).expect("lookup").is_some() {
                arrived = true;
                break;
            }
            drop(txn);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(arrived, "no event came down");

    // Up: written locally by this process, delivered to the relay.
    let up = note(&keys(51), "up");
    store.write_batch(std::slice::from_ref(&up)).expect("write");
    let end = Instant::now() + Duration::from_secs(20);
    let mut seen = false;
    while !seen && Instant::now() < end {
        seen = !c
            .req("u", &format!("{{\"ids\":[\"{}\"]}}", up.id_hex()))
            .is_empty();
        c.send(r#"["CLOSE","u"]"#);
    }
    assert!(seen, "the local event never reached the relay");

    // SIGTERM: a clean end with a summary. Exactly one event went up: what came down was
    // never echoed back.
    let child = child.take();
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stream ended") && err.contains(" 1 up ("),
        "{err}"
    );
}
