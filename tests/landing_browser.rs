//! The landing page in a real browser: headless Chromium, driven over the Chrome DevTools
//! Protocol with tungstenite (no npm or pip packages). The page must load with no script
//! error, CSP violation or failed request, its status panel must go live and follow events
//! published to the relay, and a screenshot is saved for a person to look at.
//!
//! Ignored by default (it needs Chromium): `cargo test --test landing_browser -- --ignored`.
//! Run that way without Chromium, it fails and says what is missing.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{keys, note, TestRelay};
use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Chromium's start-up, each DevTools call, each wait for the page: generous for a loaded
/// 2-core machine, but bounded.
const START: Duration = Duration::from_secs(60);
const CALL: Duration = Duration::from_secs(30);
const PAGE: Duration = Duration::from_secs(30);

/// A headless Chromium in its own process group, killed (with every helper process) on drop.
struct Chromium {
    child: Child,
    devtools_url: String,
    _profile: tempfile::TempDir,
}

impl Chromium {
    fn start() -> Chromium {
        let bin =
            std::env::var_os("WOK_CHROMIUM").map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from);
        assert!(
            bin.exists(),
            "chromium is missing: {} does not exist. This test drives a real headless browser; \
             install it with `apt-get update && apt-get install -y chromium` (as .ci/run does), \
             or set WOK_CHROMIUM to a Chromium or Chrome binary.",
            bin.display()
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(&bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-proxy-server",
                "--hide-scrollbars",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--remote-debugging-port=0", "about:blank"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Reads stderr to its end, so Chromium never blocks on a full pipe; the DevTools
        // line goes to the test, the rest is kept for the failure message.
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(Ok(url.trim().to_owned()));
                } else if seen.len() < 200 {
                    seen.push(line);
                }
            }
            let _ = tx.send(Err(seen.join("\n")));
        });
        let mut guard = Chromium {
            child,
            devtools_url: String::new(),
            _profile: profile,
        };
        guard.devtools_url = match rx.recv_timeout(START) {
            Ok(Ok(url)) => url,
            Ok(Err(stderr)) => panic!("chromium exited before DevTools listened:\n{stderr}"),
            Err(_) => panic!("no `DevTools listening on` line from chromium within {START:?}"),
        };
        guard
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on the process group we created for Chromium (its pid).
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools Protocol client on one page target (a flattened session over the browser's
/// socket). Every read is bounded; page problems reported as events are collected.
struct Cdp {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    session: Option<String>,
    /// Uncaught exceptions, console errors, log errors (CSP violations, failed loads).
    problems: Vec<String>,
}

impl Cdp {
    fn connect(url: &str) -> Cdp {
        let (mut ws, _) = tungstenite::connect(url).expect("connect to DevTools");
        if let MaybeTlsStream::Plain(s) = ws.get_mut() {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .expect("timeout");
        }
        Cdp {
            ws,
            next_id: 0,
            session: None,
            problems: Vec::new(),
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws
            .send(Message::text(msg.to_string()))
            .expect("send to DevTools");
        let end = Instant::now() + CALL;
        while Instant::now() < end {
            let text = match self.ws.read() {
                Ok(Message::Text(t)) => t,
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(e) => panic!("DevTools connection: {e}"),
            };
            let v: Value = serde_json::from_str(text.as_str()).expect("DevTools sends JSON");
            if v["id"] == id {
                assert!(v["error"].is_null(), "{method} failed: {}", v["error"]);
                return v["result"].clone();
            }
            self.note_event(&v);
        }
        panic!("no answer to {method} within {CALL:?}");
    }

    fn note_event(&mut self, v: &Value) {
        let p = &v["params"];
        match v["method"].as_str() {
            Some("Runtime.exceptionThrown") => {
                let d = &p["exceptionDetails"];
                self.problems.push(format!(
                    "uncaught exception: {} {}",
                    d["text"], d["exception"]["description"]
                ));
            }
            Some("Runtime.consoleAPICalled")
                if matches!(p["type"].as_str(), Some("error" | "assert")) =>
            {
                self.problems
                    .push(format!("console.{}: {}", p["type"], p["args"]));
            }
            Some("Log.entryAdded") if p["entry"]["level"] == "error" => {
                self.problems.push(format!(
                    "log error: {} ({})",
                    p["entry"]["text"], p["entry"]["url"]
                ));
            }
            _ => {}
        }
    }

    /// Evaluates a JavaScript expression in the page; its JSON value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        assert!(
            r["exceptionDetails"].is_null(),
            "evaluating {expr}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Polls `expr` until `ok` accepts its value (bounded by `PAGE`).
    fn wait_for(&mut self, what: &str, expr: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + PAGE;
        loop {
            let v = self.eval(expr);
            if ok(&v) {
                return v;
            }
            // A script error will not heal: say so now rather than at the timeout.
            assert!(
                self.problems.is_empty(),
                "while waiting for {what}, the page reported problems: {:#?}",
                self.problems
            );
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}: {expr} is {v}; page problems: {:?}",
                self.problems
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn text(&mut self, id: &str) -> String {
        let v = self.eval(&format!("document.getElementById({id:?}).textContent"));
        v.as_str().unwrap_or_default().to_owned()
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6) | u32::from(val(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Saves a full-page PNG under `target/` and prints its path.
fn screenshot(cdp: &mut Cdp, name: &str) {
    let shot = cdp.call(
        "Page.captureScreenshot",
        json!({"format": "png", "captureBeyondViewport": true}),
    );
    let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .join(name);
    std::fs::write(&path, &png).expect("write the screenshot");
    println!("screenshot: {}", path.display());
}

#[test]
#[ignore = "needs chromium: .ci/run installs it (apt-get install chromium)"]
fn landing_page_goes_live_in_chromium() {
    let r = TestRelay::with(|c| {
        c.relay.info.name = "Test Kitchen".into();
        c.relay.info.description =
            "A wok relay for the browser test: cooks events, serves them hot.".into();
        c.relay.info.contact = "ops@example.com".into();
    });
    let http = r.url.replacen("ws://", "http://", 1);
    let chromium = Chromium::start();
    let mut cdp = Cdp::connect(&chromium.devtools_url);

    let target = cdp.call("Target.createTarget", json!({"url": "about:blank"}));
    let attached = cdp.call(
        "Target.attachToTarget",
        json!({"targetId": target["targetId"], "flatten": true}),
    );
    cdp.session = attached["sessionId"].as_str().map(str::to_owned);
    assert!(cdp.session.is_some(), "no session: {attached}");
    for domain in ["Page", "Runtime", "Log"] {
        cdp.call(&format!("{domain}.enable"), json!({}));
    }
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1100, "height": 1250, "deviceScaleFactor": 1, "mobile": false}),
    );
    let nav = cdp.call("Page.navigate", json!({"url": format!("{http}/")}));
    assert!(nav["errorText"].is_null(), "navigation failed: {nav}");
    cdp.wait_for("the page to load", "document.readyState", |v| {
        v == "complete"
    });

    // The status panel goes live: the script polled /status and filled in the numbers.
    cdp.wait_for(
        "the status panel to show live numbers",
        "[document.getElementById('status').dataset.polls, document.getElementById('live-text').textContent, document.getElementById('s-uptime').textContent]",
        |v| v[0].as_str().and_then(|n| n.parse::<u64>().ok()) >= Some(2) && v[1] == "live" && v[2] != "–",
    );
    assert_eq!(cdp.text("s-stored"), "0");
    assert_eq!(cdp.text("s-in-total"), "0 received");

    // Publish; the page follows without a reload.
    let mut c = r.client();
    let mut sub = r.client();
    sub.req("live", "{\"kinds\":[1]}");
    let k = keys(50);
    for i in 0..5 {
        assert_eq!(c.publish(&note(&k, &format!("hot event {i}")))[2], true);
    }
    cdp.wait_for(
        "the stored-events count to reach 5",
        "[document.getElementById('s-stored').textContent, document.getElementById('s-in-total').textContent, document.getElementById('s-out-total').textContent, document.getElementById('s-conns').textContent]",
        |v| v[0] == "5" && v[1] == "5 received" && v[2] == "5 sent" && v[3] == "2",
    );

    // What a visitor reads.
    assert_eq!(cdp.text("name"), "Test Kitchen");
    assert_eq!(cdp.eval("document.title"), "Test Kitchen");
    assert_eq!(cdp.text("relay-url"), r.url, "the address to paste");
    let nips = cdp.eval("[...document.querySelectorAll('#nips b')].map(e => e.textContent)");
    for nip in [
        "NIP-01", "NIP-09", "NIP-11", "NIP-40", "NIP-45", "NIP-70", "NIP-77",
    ] {
        assert!(
            nips.as_array().is_some_and(|a| a.contains(&json!(nip))),
            "{nip} not listed: {nips}"
        );
    }
    let limits = cdp.eval("document.querySelectorAll('#limits tr').length");
    assert!(limits.as_u64() >= Some(5), "limits table: {limits}");
    assert_eq!(cdp.text("contact"), "ops@example.com");
    // Nothing was fetched from anywhere but the relay.
    let foreign = cdp.eval(&format!(
        "performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith({http:?}))"
    ));
    assert_eq!(foreign, json!([]), "requests to other hosts");

    // Rates come from two samples with traffic in between: publish more and wait for a
    // non-zero rate, so the screenshot shows a relay at work.
    for i in 5..25 {
        c.send_event(&note(&k, &format!("hot event {i}")));
    }
    cdp.wait_for(
        "all 25 events and a non-zero events-in rate",
        "[document.getElementById('s-in-total').textContent, document.getElementById('s-in-rate').textContent]",
        |v| v[0] == "25 received" && v[1].as_str().is_some_and(|s| s.ends_with("/s") && s != "0/s"),
    );
    screenshot(&mut cdp, "landing-page.png");
    // The same page as people with a dark theme or a phone see it.
    cdp.call(
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    );
    screenshot(&mut cdp, "landing-page-dark.png");
    cdp.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
    );
    screenshot(&mut cdp, "landing-page-phone.png");

    // Last, so that everything above had its chance to report.
    cdp.eval("0");
    assert!(
        cdp.problems.is_empty(),
        "page problems: {:#?}",
        cdp.problems
    );
    drop(chromium);
}
