//! `wok upload` and `wok download` through the real binary against a real relay.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

use common::{keys, now, sign, TestRelay};

fn wok(args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wok"))
        .args(args)
        .env_remove("STRFRY_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wok");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait")
}

#[test]
fn upload_then_download_round_trip() {
    let r = TestRelay::start();
    let k = keys(40);
    let t0 = now() - 1000;
    let evs: Vec<_> = (0..300)
        .map(|i| sign(&k, t0 + i, 1, &[], &format!("u{i}")))
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
        err.contains("uploaded 301: 301 accepted, 0 refused, 1 lines skipped"),
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
    let want: BTreeSet<String> = evs
        .iter()
        .map(|e| String::from_utf8_lossy(e.json()).into_owned())
        .collect();
    assert_eq!(got, want);

    // --range: the last 100 seconds of the span only.
    let out = wok(&["download", &r.url, "--range", "800-"], b"");
    assert!(out.status.success());
    // Events 200..300 are inside (a clock tick between signing and the download may move
    // one across the edge).
    let n = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!((99..=101).contains(&n), "{n}");
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
