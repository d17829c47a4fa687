//! `wok router` as a process in a mesh of three `wok relay` processes on loopback. The
//! router runs on relay A's DB (as strfry's does: it is a local writer) with one `both`
//! group linking A to B and C.
//! - An event published to any relay reaches the others exactly once, and no event is
//!   echoed back to the relay it came from (their duplicate counters stay at 0).
//! - A relay killed (SIGKILL) and restarted on its DB gets everything published meanwhile,
//!   and what it receives right after the restart reaches the others.
//! - The config is reloaded: adding a URL starts only its link, a broken file is ignored,
//!   pluginUp (sourceType `Stored`) keeps events from going up.
//!
//! Nothing here waits a fixed time: processes are awaited through their log lines, and
//! "never arrived" is shown by a later event on the same ordered path that did arrive.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{keys, note, now, sign, Client, Running};
use wok::nostr::Event;

/// How long a process gets to start, or to log what a step awaits.
const STEP: Duration = Duration::from_secs(15);

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: application/nostr+json\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    Some(out.split("\r\n\r\n").nth(1)?.to_owned())
}

/// A `wok relay` process on its own DB. The first start takes port 0 (no race for a free
/// port) and reads the port from the start-up line; a restart binds the same port again.
struct Node {
    dir: tempfile::TempDir,
    port: u16,
    url: String,
    proc: Option<Running>,
}

impl Node {
    fn start() -> Node {
        let mut n = Node {
            dir: tempfile::tempdir().expect("tmp"),
            port: 0,
            url: String::new(),
            proc: None,
        };
        n.launch();
        n
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    fn launch(&mut self) {
        let proc = Running::spawn(
            Command::new(env!("CARGO_BIN_EXE_wok"))
                .args(db_args(&self.db()))
                .args(["--set", &format!("relay.port={}", self.port), "relay"])
                .env_remove("STRFRY_CONFIG")
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        self.port = proc.await_port(STEP);
        self.url = format!("ws://127.0.0.1:{}", self.port);
        self.proc = Some(proc);
    }

    /// SIGKILL: no clean shutdown.
    fn kill(&mut self) {
        drop(self.proc.take());
    }

    fn client(&self) -> Client {
        Client::connect(&self.url)
    }

    fn metric(&self, name: &str) -> u64 {
        let text = http_get(self.port, "/metrics").expect("metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    }

    /// Waits (bounded) until this relay holds every one of `evs`: one subscription by ids
    /// returns those stored, then delivers the rest as they arrive.
    fn await_holds(&self, evs: &[&Event], within: Duration) {
        let list: Vec<String> = evs.iter().map(|e| format!("\"{}\"", e.id_hex())).collect();
        let mut c = self.client();
        let mut seen: std::collections::BTreeSet<String> = c
            .req("h", &format!("{{\"ids\":[{}]}}", list.join(",")))
            .iter()
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect();
        let end = Instant::now() + within;
        while seen.len() < evs.len() {
            let left = end.saturating_duration_since(Instant::now());
            let Some(m) = c.recv_within(left) else {
                panic!("{} holds only {seen:?} of {list:?}", self.url);
            };
            if m[0] == "EVENT" && m[1] == "h" {
                seen.extend(m[2]["id"].as_str().map(str::to_owned));
            }
        }
    }
}

fn db_args(db: &Path) -> Vec<String> {
    vec![
        "--set".into(),
        format!("db={}", db.display()),
        "--set".into(),
        "dbParams.mapsize=1073741824".into(),
    ]
}

/// The router process on `node`'s DB; its log is read as it comes (`Running` drains the
/// pipe, so it cannot fill and block the router).
struct Router {
    proc: Running,
    conf: PathBuf,
}

impl Router {
    fn start(node: &Node, conf_text: &str) -> Router {
        let conf = node.dir.path().join("router.conf");
        std::fs::write(&conf, conf_text).expect("write router conf");
        let proc = Running::spawn(
            Command::new(env!("CARGO_BIN_EXE_wok"))
                .args(db_args(&node.db()))
                .args(["router", conf.to_str().expect("utf8")])
                .env_remove("STRFRY_CONFIG")
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        );
        Router { proc, conf }
    }

    fn log(&self) -> String {
        self.proc.stderr_text()
    }

    /// Waits (bounded) for `needle` in the log.
    fn await_log(&self, needle: &str) -> String {
        self.proc.await_stderr(needle, STEP)
    }

    /// Rewrites the config with a new mtime (what the router watches).
    fn rewrite(&self, text: &str) {
        common::rewrite(&self.conf, text);
    }
}

fn mesh_conf(urls: &[&str], extra: &str) -> String {
    let list: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "connectionTimeout = 2\nstreams {{\n  mesh {{\n    dir = \"both\"\n    urls = [ {} ]\n{extra}  }}\n}}\n",
        list.join(" ")
    )
}

/// A live subscription to kind 1 on one relay, counting deliveries per event id.
struct Watch {
    c: Client,
    seen: Vec<String>,
}

impl Watch {
    fn on(node: &Node) -> Watch {
        let mut c = node.client();
        assert!(c.req("w", "{\"kinds\":[1],\"limit\":0}").is_empty());
        Watch {
            c,
            seen: Vec::new(),
        }
    }

    fn pump(&mut self, within: Duration) {
        while let Some(m) = self.c.recv_within(within) {
            if m[0] == "EVENT" && m[1] == "w" {
                self.seen.push(m[2]["id"].as_str().expect("id").to_owned());
            }
        }
    }

    fn count(&self, ev: &Event) -> usize {
        self.seen.iter().filter(|s| *s == ev.id_hex()).count()
    }

    /// Reads until `ev` has been delivered (bounded).
    fn wait(&mut self, ev: &Event) {
        let end = Instant::now() + Duration::from_secs(20);
        while self.count(ev) == 0 {
            assert!(Instant::now() < end, "{} never arrived", ev.id_hex());
            self.pump(Duration::from_millis(50));
        }
    }
}

/// Publishes fresh probes on `from` until one is delivered to `to`: the router's link to
/// `from` is then subscribed (it asks for live events only, so earlier ones never come).
fn link_is_live(from: &Node, to: &mut Watch, tag: &str) {
    let mut c = from.client();
    let end = Instant::now() + Duration::from_secs(20);
    for i in 0.. {
        assert!(
            Instant::now() < end,
            "the link from {} never came up",
            from.url
        );
        let probe = note(&keys(90), &format!("probe {tag} {i}"));
        assert_eq!(c.publish(&probe)[2], true);
        let wait = Instant::now() + Duration::from_secs(1);
        while Instant::now() < wait && to.count(&probe) == 0 {
            to.pump(Duration::from_millis(50));
        }
        if to.count(&probe) > 0 {
            return;
        }
    }
}

#[test]
fn every_event_reaches_every_relay_exactly_once_without_echoes() {
    let (a, b, c) = (Node::start(), Node::start(), Node::start());
    let router = Router::start(&a, &mesh_conf(&[&b.url, &c.url], ""));
    let (mut wa, mut wb, mut wc) = (Watch::on(&a), Watch::on(&b), Watch::on(&c));
    link_is_live(&b, &mut wa, "b");
    link_is_live(&c, &mut wa, "c");

    let k = keys(1);
    let (xa, xb, xc) = (note(&k, "from a"), note(&k, "from b"), note(&k, "from c"));
    let (ma, mb, mc) = (note(&k, "mark a"), note(&k, "mark b"), note(&k, "mark c"));
    for (node, ev) in [
        (&a, &xa),
        (&b, &xb),
        (&c, &xc),
        (&a, &ma),
        (&b, &mb),
        (&c, &mc),
    ] {
        assert_eq!(node.client().publish(ev)[2], true);
    }
    // Each link keeps its order, so once a relay has every marker it has every event.
    for w in [&mut wa, &mut wb, &mut wc] {
        for m in [&ma, &mb, &mc] {
            w.wait(m);
        }
    }
    // A second copy, or an echo back to its source, would travel the same ordered links
    // ahead of sentinels published now (each after every event above is in every DB): once
    // every relay has every sentinel, anything extra has had its chance to show.
    let (sa, sb, sc) = (
        note(&k, "sentinel a"),
        note(&k, "sentinel b"),
        note(&k, "sentinel c"),
    );
    for (node, ev) in [(&a, &sa), (&b, &sb), (&c, &sc)] {
        assert_eq!(node.client().publish(ev)[2], true);
    }
    for w in [&mut wa, &mut wb, &mut wc] {
        for s in [&sa, &sb, &sc] {
            w.wait(s);
        }
    }
    for (name, w) in [("a", &wa), ("b", &wb), ("c", &wc)] {
        for ev in [&xa, &xb, &xc, &ma, &mb, &mc] {
            assert_eq!(w.count(ev), 1, "relay {name}, {}", ev.id_hex());
        }
    }
    // No event went back to where it came from: B and C never saw a duplicate.
    assert_eq!(b.metric("strfry_write_dups_total"), 0);
    assert_eq!(c.metric("strfry_write_dups_total"), 0);
    router.await_log("router: 1 groups, 2 links");
}

#[test]
fn a_relay_killed_and_restarted_gets_what_it_missed() {
    let (a, b, mut c) = (Node::start(), Node::start(), Node::start());
    let router = Router::start(&a, &mesh_conf(&[&b.url, &c.url], ""));
    let mut wa = Watch::on(&a);
    link_is_live(&b, &mut wa, "b");
    link_is_live(&c, &mut wa, "c");

    c.kill();
    let k = keys(2);
    let (ya, yb) = (
        note(&k, "while c was down, on a"),
        note(&k, "while c was down, on b"),
    );
    assert_eq!(a.client().publish(&ya)[2], true);
    assert_eq!(b.client().publish(&yb)[2], true);
    wa.wait(&yb);

    c.launch();
    // Published on C before the router is back: the reconnect's catch-up brings it over.
    let yc = note(&k, "on c right after its restart");
    assert_eq!(c.client().publish(&yc)[2], true);
    let all = [&ya, &yb, &yc];
    for node in [&a, &b, &c] {
        node.await_holds(&all, Duration::from_secs(30));
    }
    if std::env::var_os("WOK_TEST_LOG").is_some() {
        eprintln!("{}", router.log());
    }
    // Awaited, not read once: the thread reading the router's stderr may lag its writes.
    assert!(
        common::eventually(STEP, || {
            let log = router.log();
            log.contains("reconnecting") || log.contains("retrying")
        }),
        "{}",
        router.log()
    );
}

/// After a reconnect, the live subscription still carries events dated in the past (a
/// delayed note, an import on the peer): its REQ once had `since` = the reconnect time
/// minus a minute, so a one-way link dropped every older-dated event for good.
#[test]
fn after_a_reconnect_a_down_link_still_carries_events_dated_in_the_past() {
    let (a, mut b) = (Node::start(), Node::start());
    let conf = mesh_conf(&[&b.url], "").replace("dir = \"both\"", "dir = \"down\"");
    let router = Router::start(&a, &conf);
    let mut wa = Watch::on(&a);
    link_is_live(&b, &mut wa, "b");
    b.kill();
    b.launch();
    // The link is back once it has caught up and subscribed again.
    router.await_log("caught up since");
    link_is_live(&b, &mut wa, "b again");
    let day_old = sign(&keys(5), now() - 86_400, 1, &[], "dated yesterday");
    assert_eq!(b.client().publish(&day_old)[2], true);
    a.await_holds(&[&day_old], Duration::from_secs(10));
}

/// A router that stops and starts again resumes each link where it was (its position is
/// saved in the DB): what either side got while it was down goes across. Before, a new
/// process started at the DB's tip with no catch-up, so both were lost on a one-way link
/// and on the mesh alike.
#[test]
fn a_restarted_router_carries_what_was_written_while_it_was_down() {
    let (a, b) = (Node::start(), Node::start());
    let conf = mesh_conf(&[&b.url], "");
    let mut router = Router::start(&a, &conf);
    let mut wa = Watch::on(&a);
    link_is_live(&b, &mut wa, "b");
    router.proc.signal("-TERM");
    assert!(router.proc.wait_within(STEP).success(), "{}", router.log());
    let k = keys(6);
    let (on_a, on_b) = (note(&k, "on a, router down"), note(&k, "on b, router down"));
    assert_eq!(a.client().publish(&on_a)[2], true);
    assert_eq!(b.client().publish(&on_b)[2], true);
    router = Router::start(&a, &conf);
    a.await_holds(&[&on_b], Duration::from_secs(15));
    b.await_holds(&[&on_a], Duration::from_secs(15));
    router.await_log("resuming");
}

#[test]
fn reload_starts_only_new_links_ignores_a_broken_file_and_applies_both_plugins() {
    let (a, b, c) = (Node::start(), Node::start(), Node::start());
    // pluginUp refuses events whose content says "private", pluginDown those that say
    // "unwanted"; each records the sourceType it was given.
    let dir = a.dir.path();
    let up = policy(dir, "up", "private");
    let down = policy(dir, "down", "unwanted");
    let extra = format!(
        "    pluginUp = \"{}\"\n    pluginDown = \"{}\"\n",
        up.display(),
        down.display()
    );
    let router = Router::start(&a, &mesh_conf(&[&b.url], &extra));
    let (mut wa, mut wb) = (Watch::on(&a), Watch::on(&b));
    link_is_live(&b, &mut wa, "b");

    let k = keys(3);
    let (open, private) = (note(&k, "open"), note(&k, "private"));
    assert_eq!(a.client().publish(&private)[2], true);
    assert_eq!(a.client().publish(&open)[2], true);
    // Published first, on the same link: had it gone up, it would have arrived before
    // `open`.
    wb.wait(&open);
    assert_eq!(wb.count(&private), 0, "pluginUp refused it");
    let saw = std::fs::read_to_string(dir.join("up-saw")).expect("pluginUp ran");
    assert!(saw.lines().all(|l| l == "Stored"), "{saw}");

    // pluginDown: the unwanted event stays on B; the one after it comes down.
    let (unwanted, wanted) = (note(&k, "unwanted"), note(&k, "wanted"));
    assert_eq!(b.client().publish(&unwanted)[2], true);
    assert_eq!(b.client().publish(&wanted)[2], true);
    // Likewise: `unwanted` would have come down before `wanted`.
    wa.wait(&wanted);
    assert_eq!(wa.count(&unwanted), 0, "pluginDown refused it");
    let saw = std::fs::read_to_string(dir.join("down-saw")).expect("pluginDown ran");
    assert!(saw.lines().all(|l| l == "Stream"), "{saw}");

    // A broken file is logged and ignored; the running links go on.
    router.rewrite("streams { mesh { dir = \"both\" ");
    router.await_log("keeping the running config");
    let still = note(&k, "still linked");
    assert_eq!(a.client().publish(&still)[2], true);
    wb.wait(&still);

    // Adding C starts one link; B's is left alone.
    router.rewrite(&mesh_conf(&[&b.url, &c.url], &extra));
    router.await_log("config reloaded");
    let mut wc = Watch::on(&c);
    link_is_live(&c, &mut wa, "c");
    let later = note(&k, "after the reload");
    assert_eq!(a.client().publish(&later)[2], true);
    wc.wait(&later);
    wb.wait(&later);
    let log = router.log();
    assert!(!log.contains("stopping"), "{log}");
    assert_eq!(
        log.matches(&format!("router mesh {}: connected", b.url))
            .count(),
        1,
        "{log}"
    );
}

/// A Python write-policy plugin `<dir>/<name>.py` refusing events whose content contains
/// `word`, appending each request's sourceType to `<dir>/<name>-saw`.
fn policy(dir: &Path, name: &str, word: &str) -> PathBuf {
    let path = dir.join(format!("{name}.py"));
    let saw = dir.join(format!("{name}-saw"));
    std::fs::write(
        &path,
        format!(
            "#!/usr/bin/env python3\nimport json, sys\nfor line in sys.stdin:\n    r = json.loads(line)\n    open({saw:?}, 'a').write(r['sourceType'] + '\\n')\n    ok = {word:?} not in r['event']['content']\n    print(json.dumps({{'id': r['event']['id'], 'action': 'accept' if ok else 'reject', 'msg': ''}}), flush=True)\n",
            saw = saw.display().to_string()
        ),
    )
    .expect("plugin");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[test]
fn a_bad_router_config_fails_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let conf = dir.path().join("router.conf");
    std::fs::write(&conf, "streams { g { dir = \"down\" } }").expect("write");
    let out = common::run(
        Command::new(env!("CARGO_BIN_EXE_wok"))
            .args(db_args(&dir.path().join("db")))
            .args(["router", conf.to_str().expect("utf8")])
            .env_remove("STRFRY_CONFIG"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("urls is required"), "{err}");
}
