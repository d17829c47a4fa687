//! `wok sync` through the real binary against real relays on 127.0.0.1: two relays and CLI
//! databases with overlapping sets must end up with exactly the union, in every direction.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{keys, now, sign, TestRelay};
use wok::nostr::{hex, Event};

/// `n` kind-1 events, created_at one second apart ending an hour ago.
fn events(n: usize, salt: &str) -> Vec<Event> {
    let ks: Vec<_> = (10..14).map(keys).collect();
    let t0 = now() - 3600 - n as u64;
    (0..n)
        .map(|i| sign(&ks[i % 4], t0 + i as u64, 1, &[], &format!("{salt}{i}")))
        .collect()
}

fn fill(dir: &Path, evs: &[Event]) {
    let s = common::open_store(dir);
    s.write_batch(evs).expect("write");
    s.close();
}

fn stored_ids(dir: &Path) -> BTreeSet<[u8; 32]> {
    let s = common::open_store(dir);
    let txn = s.read_txn().expect("txn");
    let ids = s
        .all_lev_ids(&txn)
        .expect("levs")
        .into_iter()
        .filter_map(|l| s.record(&txn, l).ok().flatten())
        .map(|r| *wok::nostr::filter::EventView::id(&r))
        .collect();
    drop(txn);
    s.close();
    ids
}

fn ids(evs: &[Event]) -> BTreeSet<[u8; 32]> {
    evs.iter().map(|e| e.id).collect()
}

/// Runs `wok sync <url> <args>` on the CLI database in `dir`.
fn sync(dir: &Path, url: &str, args: &[&str]) -> Output {
    common::run(
        Command::new(env!("CARGO_BIN_EXE_wok"))
            .arg("--set")
            .arg(format!("db={}", dir.display()))
            .args(["--set", "dbParams.mapsize=1073741824", "sync", url])
            .args(args)
            .env_remove("STRFRY_CONFIG")
            .current_dir(dir),
    )
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "sync failed: {err}");
    err
}

/// The `have,<id>` / `need,<id>` lines of a successful `--print-missing` run.
fn missing(o: &Output) -> BTreeSet<String> {
    ok(o);
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The lines `--print-missing` must print: `have` for what only the CLI holds, `need` for
/// what only the relay holds.
fn difference(have: &[Event], need: &[Event]) -> BTreeSet<String> {
    let line = |what: &str, e: &Event| format!("{what},{}", hex::encode(&e.id));
    have.iter()
        .map(|e| line("have", e))
        .chain(need.iter().map(|e| line("need", e)))
        .collect()
}

/// A relay holding `evs`, and its DB directory.
fn relay_with(evs: &[Event], tweak: impl FnOnce(&mut wok::config::Config)) -> TestRelay {
    TestRelay::with_store(tweak, |s| {
        s.write_batch(evs).expect("write");
    })
}

#[test]
fn both_directions_reach_the_union_over_several_rounds() {
    let all = events(1500, "u");
    let relay = relay_with(&all[..1000], |_| {});
    let cli = tempfile::tempdir().expect("tmp");
    fill(cli.path(), &all[500..]);
    // A small frame limit forces several rounds.
    let err = ok(&sync(
        cli.path(),
        &relay.url,
        &["--dir", "both", "--frame-size-limit", "4096"],
    ));
    assert!(
        err.contains("have 500, need 500, downloaded 500, uploaded 500"),
        "{err}"
    );
    assert_eq!(stored_ids(cli.path()), ids(&all));
    // The relay has the union too: a second run finds nothing to do.
    let err = ok(&sync(cli.path(), &relay.url, &["--dir", "both"]));
    assert!(err.contains("have 0, need 0"), "{err}");
    let mut c = relay.client();
    c.send(r#"["COUNT","n",{}]"#);
    assert_eq!(c.recv()[2]["count"], 1500);
}

#[test]
fn down_up_and_print_missing_move_only_what_they_say() {
    let all = events(600, "d");
    let relay = relay_with(&all[..400], |_| {});
    let cli = tempfile::tempdir().expect("tmp");
    fill(cli.path(), &all[200..]);

    let out = sync(cli.path(), &relay.url, &["--print-missing"]);
    assert_eq!(missing(&out), difference(&all[400..], &all[..200]));
    assert_eq!(
        stored_ids(cli.path()),
        ids(&all[200..]),
        "print-missing moves nothing"
    );

    // The default direction is down: the relay gains nothing.
    let err = ok(&sync(cli.path(), &relay.url, &[]));
    assert!(err.contains("downloaded 200, uploaded 0"), "{err}");
    assert_eq!(stored_ids(cli.path()), ids(&all));
    let mut c = relay.client();
    c.send(r#"["COUNT","n",{}]"#);
    assert_eq!(c.recv()[2]["count"], 400);

    let err = ok(&sync(cli.path(), &relay.url, &["--dir", "up"]));
    assert!(err.contains("downloaded 0, uploaded 200"), "{err}");
    c.send(r#"["COUNT","m",{}]"#);
    assert_eq!(c.recv()[2]["count"], 600);
}

#[test]
fn a_filter_limits_the_reconciled_set() {
    let all = events(300, "f");
    let relay = relay_with(&all, |_| {});
    let cli = tempfile::tempdir().expect("tmp");
    let (since, until) = (all[100].created_at, all[149].created_at);
    let filter = format!("{{\"since\":{since},\"until\":{until}}}");
    let err = ok(&sync(cli.path(), &relay.url, &["--filter", &filter]));
    assert!(err.contains("need 50, downloaded 50"), "{err}");
    assert_eq!(stored_ids(cli.path()), ids(&all[100..150]));
    // --range with a filter that already has since/until is refused.
    let o = sync(
        cli.path(),
        &relay.url,
        &["--filter", &filter, "--range", "1d-"],
    );
    assert!(!o.status.success());
}

/// A filter no stored tree holds (`kinds`): both sides collect their sets from the index
/// (the relay in its negentropy thread, the CLI in `local_set`), and the difference is
/// still exact.
#[test]
fn a_set_no_tree_holds_is_collected_on_both_sides() {
    let ks = keys(20);
    let t0 = now() - 7200;
    let notes = events(300, "k");
    let reactions: Vec<Event> = (0..100)
        .map(|i| sign(&ks, t0 + i, 7, &[], &format!("+{i}")))
        .collect();
    let relay_has: Vec<Event> = notes[..200]
        .iter()
        .chain(&reactions[..60])
        .cloned()
        .collect();
    let cli_has: Vec<Event> = notes[100..]
        .iter()
        .chain(&reactions[40..])
        .cloned()
        .collect();
    let relay = relay_with(&relay_has, |_| {});
    let cli = tempfile::tempdir().expect("tmp");
    fill(cli.path(), &cli_has);
    let out = sync(
        cli.path(),
        &relay.url,
        &["--filter", r#"{"kinds":[1]}"#, "--print-missing"],
    );
    assert_eq!(missing(&out), difference(&notes[200..], &notes[..100]));
}

#[test]
fn two_relays_reconcile_through_a_cli_writing_into_one_of_them() {
    let all = events(800, "r");
    let r1 = relay_with(&all[..500], |_| {});
    let r2 = relay_with(&all[300..], |_| {});
    // The CLI writes into r2's database while r2 runs; r2 serves what it wrote.
    let err = ok(&sync(r2.dir.path(), &r1.url, &["--dir", "both"]));
    assert!(
        err.contains("have 300, need 300, downloaded 300, uploaded 300"),
        "{err}"
    );
    for r in [&r1, &r2] {
        let mut c = r.client();
        c.send(r#"["COUNT","n",{}]"#);
        assert_eq!(c.recv()[2]["count"], 800);
    }
}

#[test]
fn relays_without_negentropy_and_unreachable_relays_fail_clearly() {
    let relay = TestRelay::with(|c| c.relay.negentropy.enabled = false);
    let cli = tempfile::tempdir().expect("tmp");
    let o = sync(cli.path(), &relay.url, &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("does not support negentropy"), "{err}");

    // Nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let o = sync(cli.path(), &format!("ws://127.0.0.1:{port}"), &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot connect"));
}

/// A peer that completes the WebSocket handshake and then says nothing; it returns once
/// the client has gone away (or after a minute, whatever happens).
fn silent_peer() -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("addr"));
    let peer = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(60);
        listener.set_nonblocking(true).expect("nonblocking");
        let s = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < end => {
                    // Polled: std's accept has no timeout.
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("nobody came: {e}"),
            }
        };
        s.set_nonblocking(false).expect("blocking");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let Ok(mut ws) = tungstenite::accept(s) else {
            return;
        };
        // Read (answering nothing) until the client goes away.
        while Instant::now() < end {
            match ws.read() {
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    });
    (url, peer)
}

#[test]
fn a_relay_gone_silent_ends_the_sync_after_timeout_with_exit_1() {
    let (url, peer) = silent_peer();
    let cli = tempfile::tempdir().expect("tmp");
    let started = Instant::now();
    let o = common::run_within(
        Command::new(env!("CARGO_BIN_EXE_wok"))
            .arg("--set")
            .arg(format!("db={}", cli.path().display()))
            .args(["--set", "dbParams.mapsize=1073741824", "sync", &url])
            .args(["--timeout", "1"])
            .env_remove("STRFRY_CONFIG")
            .current_dir(cli.path()),
        b"",
        Duration::from_secs(20),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(1), "gave up early");
    peer.join().expect("peer");
}

#[test]
fn sync_timeout_defaults_to_60_seconds() {
    let o = common::run(Command::new(env!("CARGO_BIN_EXE_wok")).args(["sync", "--help"]));
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    let line = help
        .lines()
        .find(|l| l.trim_start().starts_with("--timeout "))
        .unwrap_or_else(|| panic!("no --timeout in {help}"));
    assert!(line.trim_end().ends_with("[default: 60]"), "{line}");
}

#[test]
fn downloads_events_older_than_three_years() {
    // The relay's own created_at window refuses these on publish; a DB may hold them all
    // the same (imported history), and sync copies history as it is.
    let years = 4 * 365 * 24 * 3600;
    let old: Vec<Event> = (0..3)
        .map(|i| sign(&keys(15), now() - years - i, 1, &[], &format!("old {i}")))
        .collect();
    let recent = events(2, "o");
    let all: Vec<Event> = old.iter().chain(&recent).cloned().collect();
    let relay = relay_with(&all, |_| {});
    let cli = tempfile::tempdir().expect("tmp");
    let err = ok(&sync(cli.path(), &relay.url, &[]));
    assert!(err.contains("need 5, downloaded 5"), "{err}");
    assert_eq!(stored_ids(cli.path()), ids(&all));
}

/// A one-connection TLS terminator on 127.0.0.1 in front of `relay_port`, with `cert`.
fn tls_front(
    relay_port: u16,
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    use std::time::Duration;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .expect("cert");
    let config = std::sync::Arc::new(config);
    let h = std::thread::spawn(move || {
        let Ok((tcp, _)) = listener.accept() else {
            return;
        };
        let wait = Some(Duration::from_millis(5));
        let _ = tcp.set_read_timeout(wait);
        let conn = rustls::ServerConnection::new(config).expect("tls");
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut relay = std::net::TcpStream::connect(("127.0.0.1", relay_port)).expect("relay");
        let _ = relay.set_read_timeout(wait);
        let mut buf = vec![0u8; 64 << 10];
        let timed_out = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            )
        };
        // Bounded: 60 s at most, and it ends when either side closes.
        let end = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < end {
            match tls.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if relay.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if timed_out(&e) => {}
                Err(_) => return,
            }
            match relay.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tls.write_all(&buf[..n]).and_then(|()| tls.flush()).is_err() {
                        return;
                    }
                }
                Err(e) if timed_out(&e) => {}
                Err(_) => return,
            }
        }
    });
    (port, h)
}

#[test]
fn wss_with_a_private_ca_from_ssl_cert_file() {
    let all = events(120, "t");
    let relay = relay_with(&all, |_| {});
    let relay_port = relay
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let ca = tempfile::tempdir().expect("tmp");
    let ca_file = ca.path().join("ca.pem");
    std::fs::write(&ca_file, ck.cert.pem()).expect("write ca");
    let der = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());

    // Trusted through SSL_CERT_FILE: the sync works over TLS.
    let (port, front) = tls_front(relay_port, der.clone(), key.clone_key());
    let cli = tempfile::tempdir().expect("tmp");
    let out = common::run(
        Command::new(env!("CARGO_BIN_EXE_wok"))
            .arg("--set")
            .arg(format!("db={}", cli.path().display()))
            .args(["--set", "dbParams.mapsize=1073741824", "sync"])
            .arg(format!("wss://localhost:{port}"))
            .env("SSL_CERT_FILE", &ca_file)
            .env_remove("STRFRY_CONFIG")
            .current_dir(cli.path()),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("need 120, downloaded 120"), "{err}");
    front.join().expect("front");

    // Not trusted: a clear failure.
    let (port, front) = tls_front(relay_port, der, key);
    let out = common::run(
        Command::new(env!("CARGO_BIN_EXE_wok"))
            .arg("--set")
            .arg(format!("db={}", cli.path().display()))
            .args(["--set", "dbParams.mapsize=1073741824", "sync"])
            .arg(format!("wss://localhost:{port}"))
            .env_remove("SSL_CERT_FILE")
            .env_remove("STRFRY_CONFIG")
            .current_dir(cli.path()),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "{err}");
    front.join().expect("front");
}

#[test]
fn downloads_pass_the_write_policy_plugin() {
    use std::os::unix::fs::PermissionsExt;
    let all = events(100, "p");
    let relay = relay_with(&all, |_| {});
    let dir = tempfile::tempdir().expect("tmp");
    let plugin = dir.path().join("policy.py");
    // Refuses events whose content ends in 7, and checks it is told where they came from.
    std::fs::write(
        &plugin,
        r#"#!/usr/bin/env python3
import json, sys
for line in sys.stdin:
    req = json.loads(line)
    ev = req["event"]
    ok = req["sourceType"] == "Sync" and req["sourceInfo"].startswith("ws://") and not ev["content"].endswith("7")
    print(json.dumps({"id": ev["id"], "action": "accept" if ok else "reject"}), flush=True)
"#,
    )
    .expect("plugin");
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cli = tempfile::tempdir().expect("tmp");
    let set = format!("relay.writePolicy.plugin={}", plugin.display());
    let err = ok(&sync(cli.path(), &relay.url, &["--set", &set]));
    assert!(err.contains("need 100, downloaded 90"), "{err}");
    let want: Vec<Event> = all
        .iter()
        .filter(|e| !String::from_utf8_lossy(e.json()).contains("7\",\"sig\""))
        .cloned()
        .collect();
    assert_eq!(stored_ids(cli.path()), ids(&want));
}
