//! `wok relay` as a process: config hot reload, SIGUSR1 drain, SIGTERM stop.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn nip11(port: u16) -> Option<serde_json::Value> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nAccept: application/nostr+json\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    serde_json::from_str(out.split("\r\n\r\n").nth(1)?).ok()
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

fn exit_within(child: &mut Child, d: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

struct Proc {
    child: Child,
    _dir: tempfile::TempDir,
    conf: std::path::PathBuf,
    port: u16,
}

fn spawn() -> Proc {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let conf = dir.path().join("strfry.conf");
    let db = dir.path().join("db");
    let text = |name: &str| {
        format!(
            "db = \"{}\"\nrelay {{ port = {port}\n info {{ name = \"{name}\" }} }}\n",
            db.display()
        )
    };
    std::fs::write(&conf, text("before")).expect("write conf");
    let child = Command::new(env!("CARGO_BIN_EXE_wok"))
        .args(["--config", conf.to_str().expect("utf8"), "relay"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for("the relay to listen", || nip11(port));
    Proc {
        child,
        _dir: dir,
        conf,
        port,
    }
}

#[test]
fn hot_reload_then_sigterm() {
    let mut p = spawn();
    assert_eq!(
        nip11(p.port).map(|v| v["name"].clone()),
        Some("before".into())
    );
    let text = std::fs::read_to_string(&p.conf).expect("read");
    // mtime granularity: make sure the change is visible as a new mtime.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&p.conf, text.replace("before", "after")).expect("write");
    wait_for("NIP-11 to show the reloaded name", || {
        nip11(p.port).filter(|v| v["name"] == "after").map(|_| ())
    });
    signal(&p.child, "-TERM");
    let status = exit_within(&mut p.child, Duration::from_secs(10)).expect("exits on SIGTERM");
    assert!(status.success());
}

#[test]
fn sigusr1_drains_until_the_last_client_leaves() {
    let mut p = spawn();
    let mut c = common::Client::connect(&format!("ws://127.0.0.1:{}", p.port));
    assert!(c.req("s", "{}").is_empty());
    signal(&p.child, "-USR1");
    // Still serving the connected client, but no new connections.
    assert!(exit_within(&mut p.child, Duration::from_millis(500)).is_none());
    assert!(c.req("t", "{}").is_empty());
    wait_for("the listener to close", || {
        std::net::TcpStream::connect(("127.0.0.1", p.port))
            .err()
            .map(|_| ())
    });
    drop(c);
    let status =
        exit_within(&mut p.child, Duration::from_secs(10)).expect("exits after the last client");
    assert!(status.success());
}
