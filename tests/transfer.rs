//! `wok upload` and `wok download` through the real binary against a real relay.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{keys, now, run_within, sign, TestRelay, RUN_LIMIT};

fn wok(args: &[&str], stdin: &[u8]) -> std::process::Output {
    run_within(
        Command::new(env!("CARGO_BIN_EXE_wok"))
            .args(args)
            .env_remove("STRFRY_CONFIG"),
        stdin,
        RUN_LIMIT,
    )
}

/// An event's JSON, as `download` prints it.
fn line(e: &wok::nostr::Event) -> String {
    String::from_utf8_lossy(e.json()).into_owned()
}

#[test]
fn upload_then_download_round_trip() {
    let r = TestRelay::start();
    let k = keys(40);
    // A minute apart, each half-way between two whole minutes before now: a `--range`
    // edge falls between two events however many seconds pass before the download.
    let t0 = now() - 300 * 60 + 30;
    let evs: Vec<_> = (0..300)
        .map(|i| sign(&k, t0 + i * 60, 1, &[], &format!("u{i}")))
        .collect();
    let mut input = Vec::new();
    for e in &evs {
        input.extend_from_slice(e.json());
        input.push(b'\n');
    }
    // A repeated event (OK true, "duplicate:") and a line that is not an event.
    input.extend_from_slice(evs[0].json());
    input.extend_from_slice(b"\nnot json\n");
    let out = wok(&["upload", &r.url, "--pipeline", "20"], &input);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("upload: 301 events, ")
            && err.contains(" (301 accepted, 0 refused, 1 lines skipped) in "),
        "{err}"
    );

    let out = wok(
        &[
            "download",
            &r.url,
            "--filter",
            r#"{"kinds":[1],"limit":500}"#,
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let want: BTreeSet<String> = evs.iter().map(line).collect();
    assert_eq!(got, want);

    // --range 6000-: since = (the download's now) - 6000 s. What that selects is computed
    // for the earliest and latest now the download can have seen; they agree unless the
    // download is half a minute late, and then the test says so instead of miscounting.
    let inside = |now: u64| -> BTreeSet<String> {
        evs.iter()
            .filter(|e| e.created_at >= now - 6000)
            .map(line)
            .collect()
    };
    let before = inside(now());
    let out = wok(&["download", &r.url, "--range", "6000-"], b"");
    let after = inside(now());
    assert_eq!(
        before, after,
        "the download took so long the range edge moved"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(got.len(), 100, "events 200..300");
    assert_eq!(got, before);
}

#[test]
fn unreachable_relays_fail_clearly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("ws://127.0.0.1:{port}");
    for cmd in ["upload", "download"] {
        let out = wok(&[cmd, &url], b"");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
    }
}
