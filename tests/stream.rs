//! `wok stream` through the real binary: events published on the relay arrive in the local
//! DB, events written locally (by another process: this test) arrive on the relay, and
//! SIGTERM ends it cleanly.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{keys, note, TestRelay};

#[test]
fn both_directions_live() {
    let r = TestRelay::start();
    let local = tempfile::tempdir().expect("tmp");
    let store = common::open_store(local.path());
    let child = common::Running::spawn(
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
            .stderr(Stdio::piped()),
    );
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
            // Polled: another process writes this DB, and nothing tells us when.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(arrived, "no event came down");

    // Up: written locally by this process, delivered to the relay. Subscribed first, so the
    // arrival is awaited rather than polled for.
    let up = note(&keys(51), "up");
    assert!(c
        .req("u", &format!("{{\"ids\":[\"{}\"]}}", up.id_hex()))
        .is_empty());
    store.write_batch(std::slice::from_ref(&up)).expect("write");
    // The stream notices local writes by polling the DB: allow it more than one `WAIT`.
    let got = c
        .recv_within(Duration::from_secs(20))
        .expect("the local event reached the relay");
    assert_eq!(
        (&got[0], &got[2]["id"]),
        (&"EVENT".into(), &up.id_hex().into())
    );

    // SIGTERM: a clean end with a summary. Exactly one event went up: what came down was
    // never echoed back.
    child.signal("-TERM");
    let out = child.output_within(Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(
        err.contains("stream ended") && err.contains(" 1 up ("),
        "{err}"
    );
}
