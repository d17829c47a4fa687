//! The write-policy plugin with real plugin programs (shell and Python) against the real
//! relay: verdicts, shadow rejection, and misbehaving plugins (slow, dead, lying, printing
//! garbage) that are restarted while their event gets `error: internal error`.

mod common;

use std::path::{Path, PathBuf};

use common::{keys, note, TestRelay};

/// Writes an executable plugin script.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, body).expect("write plugin");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    p
}

const PYTHON: &str = r#"#!/usr/bin/env python3
import json, sys, time, os
for line in sys.stdin:
    req = json.loads(line)
    ev = req["event"]
    c = ev["content"]
    out = {"id": ev["id"], "action": "accept"}
    if c == "spam":
        out = {"id": ev["id"], "action": "reject", "msg": "blocked: no spam " + req["sourceType"]}
    elif c == "shadow":
        out = {"id": ev["id"], "action": "shadowReject"}
    elif c == "hang":
        time.sleep(30)
    elif c == "crash":
        sys.exit(1)
    elif c == "lie":
        out = {"id": "0" * 64, "action": "accept"}
    elif c == "garbage":
        print("this is not json", flush=True)
        continue
    print(json.dumps(out), flush=True)
"#;

fn relay_with_plugin(cmd: &str) -> TestRelay {
    let cmd = cmd.to_owned();
    TestRelay::with(move |c| {
        c.relay.write_policy.plugin = cmd;
        // Long enough for a fresh Python to start on a loaded 2-core CI machine (the time
        // counts from the request, so a restarted plugin's start-up is inside it); the
        // "hang" case waits this long.
        c.relay.write_policy.timeout_seconds = 5;
    })
}

#[test]
fn python_plugin_verdicts_and_misbehaviour() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = script(dir.path(), "policy.py", PYTHON);
    let r = relay_with_plugin(p.to_str().expect("utf8"));
    let mut c = r.client();
    let k = keys(30);

    let ok = c.publish(&note(&k, "hello"));
    assert_eq!(ok[2], true, "{ok}");
    let spam = c.publish(&note(&k, "spam"));
    assert_eq!(spam[2], false);
    assert_eq!(spam[3], "blocked: no spam IP4");
    // shadowReject: OK true, but nothing stored.
    let shadow = note(&k, "shadow");
    assert_eq!(c.publish(&shadow)[2], true);
    let stored = c.req("s", r#"{"kinds":[1]}"#);
    let contents: Vec<&str> = stored
        .iter()
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert_eq!(contents, vec!["hello"]);

    // Each kind of misbehaviour costs only its own event; the next one is judged by a
    // fresh plugin process.
    for bad in ["hang", "crash", "lie", "garbage"] {
        let m = c.publish(&note(&k, bad));
        assert_eq!(m[2], false, "{bad}: {m}");
        assert_eq!(m[3], "error: internal error", "{bad}");
        let after = c.publish(&note(&k, &format!("after {bad}")));
        assert_eq!(after[2], true, "after {bad}: {after}");
    }
}

#[test]
fn shell_plugin_and_restart_when_the_file_changes() {
    let dir = tempfile::tempdir().expect("tmp");
    // Rejects everything, naming the event's id (the first "id" of the request line).
    let reject_all = r#"#!/bin/sh
while read -r line; do
  id=$(printf '%s' "$line" | sed 's/^{"type":"new","event":{"id":"\([0-9a-f]*\)".*/\1/')
  printf '{"id":"%s","action":"reject","msg":"blocked: closed for now"}\n' "$id"
done
"#;
    let p = script(dir.path(), "policy.sh", reject_all);
    let r = relay_with_plugin(p.to_str().expect("utf8"));
    let mut c = r.client();
    let k = keys(31);
    let m = c.publish(&note(&k, "one"));
    assert_eq!(m[2], false);
    assert_eq!(m[3], "blocked: closed for now");

    // A new file (new mtime): the next event meets the new plugin.
    let accept_all = reject_all
        .replace("reject", "accept")
        .replace("blocked: closed for now", "");
    std::fs::write(&p, accept_all).expect("rewrite");
    // Make the new mtime unmistakable even on coarse-timestamp filesystems.
    std::fs::File::options()
        .write(true)
        .open(&p)
        .and_then(|f| {
            f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        })
        .expect("mtime");
    let m = c.publish(&note(&k, "two"));
    assert_eq!(m[2], true, "{m}");
}

#[test]
fn a_plugin_that_cannot_start_refuses_clearly() {
    let r = relay_with_plugin("/nonexistent/plugin-that-is-not-there");
    let mut c = r.client();
    let m = c.publish(&note(&keys(32), "x"));
    assert_eq!(m[2], false);
    assert_eq!(m[3], "error: internal error");
}

/// Fair share in the write-policy stage: with a slow plugin, one connection's burst does not
/// queue another connection's event behind all of it; the other is judged after at most one
/// more of the burst's (the stage serves connections in turns).
#[test]
fn a_burst_does_not_queue_another_connection_behind_it_at_a_slow_plugin() {
    const SLOW: &str = r#"#!/usr/bin/env python3
import json, sys, time
for line in sys.stdin:
    ev = json.loads(line)["event"]
    time.sleep(0.02)
    print(json.dumps({"id": ev["id"], "action": "accept"}), flush=True)
"#;
    const BURST: usize = 30;
    let dir = tempfile::tempdir().expect("tmp");
    let p = script(dir.path(), "slow.py", SLOW);
    let cmd = p.to_str().expect("utf8").to_owned();
    let r = TestRelay::with(move |c| {
        c.relay.write_policy.plugin = cmd;
        c.relay.write_policy.timeout_seconds = 5;
        // One ingester, so one write-policy thread judges both connections.
        c.relay.num_threads.ingester = 1;
    });
    let k = keys(32);
    let mut burst = r.client();
    let mut other = r.client();
    // The plugin is running (its start-up is not part of the race).
    assert_eq!(burst.publish(&note(&k, "warm-up"))[2], true);
    for i in 0..BURST {
        burst.send_event(&note(&k, &format!("burst {i}")));
    }
    // The burst is at the plugin: its first answer is back, the rest queued behind it.
    let first = burst.recv();
    assert_eq!(first[0], "OK", "{first}");
    let ok = other.publish(&note(&keys(33), "polite"));
    assert_eq!(ok[2], true, "{ok}");
    // Burst answers already sent when the polite one came back (they were judged first),
    // plus the two or three a slow plugin judges while we read them for 50 ms.
    let mut before = 1;
    let t = std::time::Instant::now();
    while let Some(m) = burst.recv_within(std::time::Duration::from_millis(50)) {
        assert_eq!(m[0], "OK", "{m}");
        before += 1;
        if t.elapsed() >= std::time::Duration::from_millis(50) {
            break;
        }
    }
    assert!(
        before <= 8,
        "{before} of the burst's {BURST} events were judged before the other connection's one"
    );
    let mut all = before;
    while all < BURST {
        let m = burst.recv();
        assert_eq!(m[0], "OK", "{m}");
        assert_eq!(m[2], true, "{m}");
        all += 1;
    }
}
