//! NIP-77 interop with strfry itself: strfry's `sync` against a wok relay, and `wok sync`
//! against a strfry relay, must each leave both sides with exactly the union.
//!
//! They need a strfry binary, so they are ignored by default; run them with
//! `STRFRY_BIN=/path/to/strfry cargo test --test strfry_interop -- --ignored`. Run without
//! `STRFRY_BIN` they fail: a test that passes without running would look like coverage.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{keys, now, run, run_within, sign, Running, TestRelay, RUN_LIMIT};
use wok::nostr::Event;

/// The strfry binary; fails the test when it is not given.
fn strfry() -> PathBuf {
    let Some(p) = std::env::var_os("STRFRY_BIN") else {
        panic!(
            "STRFRY_BIN is not set: this test needs a strfry binary (STRFRY_BIN=/path/to/strfry)"
        );
    };
    let p = PathBuf::from(p);
    assert!(p.is_file(), "STRFRY_BIN={} is not a file", p.display());
    p
}

fn events(n: usize, salt: &str) -> Vec<Event> {
    let ks: Vec<_> = (20..24).map(keys).collect();
    let t0 = now() - 3600 - n as u64;
    (0..n)
        .map(|i| sign(&ks[i % 4], t0 + i as u64, 1, &[], &format!("{salt}{i}")))
        .collect()
}

/// A strfry config for a DB in `dir`, listening on `port`.
fn strfry_conf(dir: &Path, port: u16) -> PathBuf {
    std::fs::create_dir_all(dir.join("db")).expect("db dir");
    let conf = dir.join("strfry.conf");
    std::fs::write(
        &conf,
        format!(
            "db = \"{}/db/\"\nrelay {{\n  bind = \"127.0.0.1\"\n  port = {port}\n  nofiles = 0\n}}\n",
            dir.display()
        ),
    )
    .expect("conf");
    conf
}

fn strfry_import(bin: &Path, conf: &Path, evs: &[Event]) {
    let mut input = Vec::new();
    for e in evs {
        input.extend_from_slice(e.json());
        input.push(b'\n');
    }
    let out = run_within(
        Command::new(bin).arg("--config").arg(conf).arg("import"),
        &input,
        RUN_LIMIT,
    );
    assert!(
        out.status.success(),
        "strfry import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn strfry_ids(bin: &Path, conf: &Path) -> BTreeSet<String> {
    let out = run(Command::new(bin).arg("--config").arg(conf).arg("export"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect()
}

fn hex_ids(evs: &[Event]) -> BTreeSet<String> {
    evs.iter().map(|e| e.id_hex().to_owned()).collect()
}

fn relay_count(r: &TestRelay) -> u64 {
    let mut c = r.client();
    c.send(r#"["COUNT","n",{}]"#);
    c.recv()[2]["count"].as_u64().unwrap_or(0)
}

#[test]
#[ignore = "needs a strfry binary in STRFRY_BIN"]
fn strfry_sync_against_wok_reaches_the_union() {
    let bin = strfry();
    let all = events(600, "s");
    let wok = TestRelay::with_store(
        |_| {},
        |s| {
            s.write_batch(&all[..400]).expect("write");
        },
    );
    let dir = tempfile::tempdir().expect("tmp");
    let conf = strfry_conf(dir.path(), 1);
    strfry_import(&bin, &conf, &all[200..]);
    let out = run(Command::new(&bin)
        .arg("--config")
        .arg(&conf)
        .args(["sync", &wok.url, "--dir", "both"]));
    assert!(
        out.status.success(),
        "strfry sync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(strfry_ids(&bin, &conf), hex_ids(&all));
    assert_eq!(relay_count(&wok), 600);
}

#[test]
#[ignore = "needs a strfry binary in STRFRY_BIN"]
fn wok_sync_against_strfry_reaches_the_union() {
    let bin = strfry();
    let all = events(600, "w");
    let dir = tempfile::tempdir().expect("tmp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let conf = strfry_conf(dir.path(), port);
    strfry_import(&bin, &conf, &all[..400]);
    let _relay = Running::spawn(
        Command::new(&bin)
            .arg("--config")
            .arg(&conf)
            .arg("relay")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // Polled: the port is the one start-up sign that does not depend on strfry's log format.
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "strfry relay did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let local = tempfile::tempdir().expect("tmp");
    {
        let s = wok::store::Store::open(
            local.path(),
            &wok::store::StoreOptions {
                map_size: 1 << 30,
                ..Default::default()
            },
        )
        .expect("store");
        s.write_batch(&all[200..]).expect("write");
        s.close();
    }
    let out = run(Command::new(env!("CARGO_BIN_EXE_wok"))
        .arg("--set")
        .arg(format!("db={}", local.path().display()))
        .args(["--set", "dbParams.mapsize=1073741824", "sync"])
        .arg(format!("ws://127.0.0.1:{port}"))
        .args(["--dir", "both", "--frame-size-limit", "4096"])
        .env_remove("STRFRY_CONFIG")
        .current_dir(local.path()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wok sync: {err}");
    assert!(
        err.contains("have 200, need 200, downloaded 200, uploaded 200"),
        "{err}"
    );
    assert_eq!(strfry_ids(&bin, &conf), hex_ids(&all));
}
