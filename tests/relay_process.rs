//! `wok relay` as a process: config hot reload, SIGUSR1 drain, SIGTERM stop. Each step is
//! awaited through the relay's own log lines, never a fixed delay.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Running;

/// How long a relay process gets for any one step (start, reload, exit).
const STEP: Duration = Duration::from_secs(15);

fn nip11(port: u16) -> Option<serde_json::Value> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nAccept: application/nostr+json\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    serde_json::from_str(out.split("\r\n\r\n").nth(1)?).ok()
}

struct Proc {
    relay: Running,
    _dir: tempfile::TempDir,
    conf: std::path::PathBuf,
    port: u16,
}

/// A config in `dir` for a relay on port 0 (no race for a free port: the port comes from its
/// start-up line) and a DB in `dir/db`.
fn config_in(dir: &std::path::Path) -> std::path::PathBuf {
    let conf = dir.join("strfry.conf");
    let db = dir.join("db");
    std::fs::write(
        &conf,
        format!(
            "db = \"{}\"\nrelay {{ port = 0\n info {{ name = \"before\" }} }}\n",
            db.display()
        ),
    )
    .expect("write conf");
    conf
}

/// `wok --config CONF ARGS…`, stderr piped (relays are awaited through their log).
fn wok(conf: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wok"));
    c.args(["--config", conf.to_str().expect("utf8")])
        .args(args)
        .env_remove("STRFRY_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

impl Proc {
    /// Waits (bounded) for the relay to exit and asserts it exited 0, showing its log if not.
    fn exits_cleanly(&mut self) {
        let status = self.relay.wait_within(STEP);
        assert!(
            status.success(),
            "{status:?}: {}",
            self.relay.stderr_after_exit(STEP)
        );
    }
}

fn spawn() -> Proc {
    let dir = tempfile::tempdir().expect("tmp");
    let conf = config_in(dir.path());
    let relay = Running::spawn(&mut wok(&conf, &["relay"]));
    let port = relay.await_port(STEP);
    Proc {
        relay,
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
    common::rewrite(&p.conf, &text.replace("before", "after"));
    // Logged once applied.
    p.relay
        .await_stderr("'relay.info.name' changed from 'before' to 'after'", STEP);
    assert_eq!(
        nip11(p.port).map(|v| v["name"].clone()),
        Some("after".into())
    );
    p.relay.signal("-TERM");
    p.exits_cleanly();
}

#[test]
fn sigusr1_drains_until_the_last_client_leaves() {
    let mut p = spawn();
    let mut c = common::Client::connect(&format!("ws://127.0.0.1:{}", p.port));
    assert!(c.req("s", "{}").is_empty());
    p.relay.signal("-USR1");
    // Logged once the listener is closed.
    p.relay
        .await_stderr("draining: no new connections; 1 open", STEP);
    // Still serving the connected client, but no new connections.
    assert!(c.req("t", "{}").is_empty());
    assert!(p.relay.exited().is_none(), "exited with a client connected");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", p.port)).is_err(),
        "still accepting while draining"
    );
    drop(c);
    p.exits_cleanly();
}

/// A tree that is registered but not built (as an interrupted import leaves them) is named
/// at start, with the command that builds it.
#[test]
fn an_unbuilt_tree_is_named_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let conf = config_in(dir.path());
    let out = common::run_within(
        &mut wok(&conf, &["negentropy", "add", r#"{"kinds":[1]}"#]),
        b"",
        STEP,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let relay = Running::spawn(&mut wok(&conf, &["relay"]));
    relay.await_port(STEP);
    let log = relay.stderr_text();
    assert!(
        log.contains("negentropy tree 3 ({\"kinds\":[1]}) is not built")
            && log.contains("`wok negentropy build 3`"),
        "{log}"
    );
    assert!(!log.contains("tree 1 ({}) is not built"), "{log}");
}

/// `relay.batchScheduling` (default on): the pipeline's threads run as SCHED_BATCH, the io
/// thread and the writer as the process does; turned off by a reload, the threads go back as
/// they wake.
#[cfg(target_os = "linux")]
#[test]
fn batch_scheduling_follows_a_reload() {
    const BATCH: i64 = 3;
    let mut p = spawn();
    let pid = p.relay.id();
    let policy_of = |name: &str| -> Vec<i64> {
        common::thread_priorities(Some(pid), name)
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    };
    // The monitors wake every 100 ms on their own; ingesters and req-workers as they start.
    let stages = [
        "ReqMonitor 0",
        "ReqMonitor 1",
        "ReqMonitor 2",
        "ReqWorker 0",
        "Ingester 0",
    ];
    let all = |names: &[&str], want: &dyn Fn(i64) -> bool| {
        names.iter().all(|n| {
            let v = policy_of(n);
            !v.is_empty() && v.iter().all(|p| want(*p))
        })
    };
    assert!(
        common::eventually(STEP, || all(&stages, &|p| p == BATCH)),
        "not SCHED_BATCH: {:?}",
        stages.map(policy_of)
    );
    assert!(
        all(&["Websocket", "Writer"], &|p| p != BATCH),
        "the io thread and the writer: {:?} {:?}",
        policy_of("Websocket"),
        policy_of("Writer")
    );
    let text = std::fs::read_to_string(&p.conf).expect("read");
    common::rewrite(
        &p.conf,
        &text.replace(
            "relay { port = 0",
            "relay { port = 0\n batchScheduling = false",
        ),
    );
    p.relay.await_stderr(
        "'relay.batchScheduling' changed from 'true' to 'false'",
        STEP,
    );
    let monitors = ["ReqMonitor 0", "ReqMonitor 1", "ReqMonitor 2"];
    assert!(
        common::eventually(STEP, || all(&monitors, &|p| p != BATCH)),
        "still SCHED_BATCH after the reload: {:?}",
        monitors.map(policy_of)
    );
    p.relay.signal("-TERM");
    p.exits_cleanly();
}

/// An ingester that idles a second gives back the parser buffers a long message grew (the
/// 100 KB message below, 50,000 values, grows the heap by 3.5 MB, per ingester thread), so
/// a relay's heap falls back after a burst instead of keeping each thread's largest message.
#[test]
fn an_idle_ingester_gives_back_what_a_long_message_grew() {
    let p = spawn();
    let url = format!("ws://127.0.0.1:{}", p.port);
    let heap = || common::metric(&url, "wok_heap_in_use_bytes");
    let mut c = common::Client::connect(&url);
    let notice = |c: &mut common::Client| {
        let m = c.recv_within(STEP).expect("an answer");
        assert_eq!(m[0], "NOTICE", "{m}");
    };
    // A short message first: this connection's state and its ingester are in the baseline.
    c.send(r#"["HELLO"]"#);
    notice(&mut c);
    let before = heap();
    // ~100 KB of JSON with 50,000 values (under maxWebsocketPayloadSize): parsed in full,
    // then refused as an unknown command.
    c.send(&format!(r#"["HELLO",{}1]"#, "1,".repeat(50_000)));
    notice(&mut c);
    let grown = heap();
    let back = || heap() < before + 300_000;
    assert!(
        common::eventually(STEP, back),
        "heap {before} before the long message, {grown} after it, {} now",
        heap()
    );
}
