//! A real relay on 127.0.0.1:0 with a temp DB, and a blocking WebSocket client with
//! bounded waits (every read times out, so a broken relay fails a test instead of hanging).
#![allow(dead_code)]

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};
use wok::config::Config;
use wok::nostr::sign::Keys;
use wok::nostr::tags::Tags;
use wok::nostr::{Event, Limits};
use wok::relay::Relay;
use wok::store::{Store, StoreOptions};

pub const WAIT: Duration = Duration::from_secs(10);
/// How long `Client::until` reads in all: a relay that keeps talking without ever sending
/// what is awaited fails the test instead of holding it forever.
pub const UNTIL_LIMIT: Duration = Duration::from_secs(120);
/// How long a `wok` command run by a test may take before it counts as hung and is killed.
pub const RUN_LIMIT: Duration = Duration::from_secs(120);

pub struct TestRelay {
    pub relay: Option<Relay>,
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl TestRelay {
    pub fn start() -> TestRelay {
        Self::with(|_| {})
    }

    pub fn with(tweak: impl FnOnce(&mut Config)) -> TestRelay {
        Self::with_store(tweak, |_| {})
    }

    /// A relay whose store `fill` writes to before the relay starts (fast bulk setup).
    pub fn with_store(tweak: impl FnOnce(&mut Config), fill: impl FnOnce(&Store)) -> TestRelay {
        if std::env::var_os("WOK_TEST_LOG").is_some() {
            wok::logging::init(log::LevelFilter::Info);
        }
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = Config::default();
        cfg.relay.port = 0;
        cfg.relay.num_threads.ingester = 2;
        cfg.relay.num_threads.req_worker = 2;
        cfg.relay.num_threads.req_monitor = 2;
        tweak(&mut cfg);
        let store = Store::open(
            dir.path(),
            &StoreOptions {
                map_size: 1 << 30,
                // As `wok relay` opens it: with the public negentropy tree.
                ..StoreOptions::from_config(&cfg)
            },
        )
        .expect("store");
        fill(&store);
        let relay = Relay::start(cfg, store).expect("start");
        let url = format!("ws://{}", relay.addr);
        TestRelay {
            relay: Some(relay),
            dir,
            url,
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.url)
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(r) = self.relay.take() {
            r.stop();
        }
    }
}

pub struct Client {
    pub ws: WebSocket<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub fn connect(url: &str) -> Client {
        let (mut ws, _) = tungstenite::connect(url).expect("connect");
        if let MaybeTlsStream::Plain(s) = ws.get_mut() {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .expect("timeout");
        }
        Client { ws }
    }

    pub fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send");
    }

    /// Sends `texts` in one write, so the relay reads them together (no gap between them
    /// for the relay's threads to fill, however busy the machine).
    pub fn send_together(&mut self, texts: &[&str]) {
        for t in texts {
            self.ws.write(Message::text(*t)).expect("write");
        }
        self.ws.flush().expect("flush");
    }

    pub fn send_event(&mut self, ev: &Event) {
        let text = format!("[\"EVENT\",{}]", String::from_utf8_lossy(ev.json()));
        self.send(&text);
    }

    /// The next message, as JSON; `None` on timeout (`within`).
    pub fn recv_within(&mut self, within: Duration) -> Option<serde_json::Value> {
        self.recv_text_within(within)
            .map(|t| serde_json::from_str(&t).expect("relay sent JSON"))
    }

    /// The next text message as sent; `None` on timeout.
    pub fn recv_text_within(&mut self, within: Duration) -> Option<String> {
        let end = Instant::now() + within;
        while Instant::now() < end {
            match self.ws.read() {
                Ok(Message::Text(t)) => return Some(t.as_str().to_owned()),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        None
    }

    pub fn recv(&mut self) -> serde_json::Value {
        self.recv_within(WAIT).expect("a message within the wait")
    }

    /// Reads until `pred` matches, returning what came before it and the match.
    pub fn until(
        &mut self,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> (Vec<serde_json::Value>, serde_json::Value) {
        let mut before = Vec::new();
        let end = Instant::now() + UNTIL_LIMIT;
        while Instant::now() < end {
            let m = self.recv();
            if pred(&m) {
                return (before, m);
            }
            before.push(m);
        }
        panic!(
            "the awaited message did not come within {UNTIL_LIMIT:?} ({} others did)",
            before.len()
        );
    }

    /// Sends a REQ and returns the stored events up to EOSE.
    pub fn req(&mut self, sub: &str, filters: &str) -> Vec<serde_json::Value> {
        self.send(&format!("[\"REQ\",\"{sub}\",{filters}]"));
        let (before, _) = self.until(|m| m[0] == "EOSE" && m[1] == sub);
        before
            .into_iter()
            .filter(|m| m[0] == "EVENT" && m[1] == sub)
            .map(|m| m[2].clone())
            .collect()
    }

    /// Publishes and returns the OK message.
    pub fn publish(&mut self, ev: &Event) -> serde_json::Value {
        self.send_event(ev);
        let id = ev.id_hex().to_string();
        self.until(|m| m[0] == "OK" && m[1] == id.as_str()).1
    }
}

pub fn keys(n: u8) -> Keys {
    Keys::from_secret([n; 32]).expect("key")
}

pub fn now() -> u64 {
    wok::policy::now()
}

pub fn note(k: &Keys, content: &str) -> Event {
    sign(k, now(), 1, &[], content)
}

/// `evs` as JSON lines (what `wok import` reads and `wok export` writes).
pub fn jsonl(evs: &[Event]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in evs {
        out.extend_from_slice(e.json());
        out.push(b'\n');
    }
    out
}

pub fn sign(k: &Keys, created_at: u64, kind: u64, tags: &[Vec<&str>], content: &str) -> Event {
    k.sign(
        created_at,
        kind,
        Tags::from_vecs(tags),
        content,
        &Limits::default(),
    )
    .expect("sign")
}

/// What a child writes to a pipe, read as it comes (a full pipe would block the child), with
/// a condvar so a test can await a log line instead of polling for it.
pub struct Captured {
    /// The bytes so far, and whether the pipe reached EOF.
    state: Mutex<(Vec<u8>, bool)>,
    cv: Condvar,
}

impl Captured {
    fn start(mut r: impl Read + Send + 'static) -> Arc<Captured> {
        let c = Arc::new(Captured {
            state: Mutex::new((Vec::new(), false)),
            cv: Condvar::new(),
        });
        let w = c.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = r.read(&mut buf).unwrap_or(0);
                let mut s = w.state.lock().unwrap_or_else(|p| p.into_inner());
                if n == 0 {
                    s.1 = true;
                } else {
                    s.0.extend_from_slice(&buf[..n]);
                }
                w.cv.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        c
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Waits until `done` holds for the text so far (or the pipe closes); the text, and
    /// whether `done` held.
    fn wait_until(&self, within: Duration, done: impl Fn(&str, bool) -> bool) -> (String, bool) {
        let end = Instant::now() + within;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let text = String::from_utf8_lossy(&s.0).into_owned();
            if done(&text, s.1) {
                return (text, true);
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() || s.1 {
                return (text, false);
            }
            s = self
                .cv
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits (at most `within`) until the text contains `needle`, and returns the text;
    /// panics with the text so far otherwise.
    pub fn wait_for(&self, needle: &str, within: Duration) -> String {
        let (text, ok) = self.wait_until(within, |t, _| t.contains(needle));
        assert!(ok, "no {needle:?} within {within:?} in:\n{text}");
        text
    }

    /// Waits (at most `within`) for EOF; false if it did not come.
    fn wait_eof(&self, within: Duration) -> bool {
        self.wait_until(within, |_, eof| eof).1
    }
}

/// A child process killed when dropped, so a failing assertion never leaves it running.
/// Its piped stdout and stderr are read as they come (`Captured`).
pub struct Running {
    child: Option<Child>,
    pub stdout: Option<Arc<Captured>>,
    pub stderr: Option<Arc<Captured>>,
}

impl Running {
    /// Spawns `cmd`.
    pub fn spawn(cmd: &mut Command) -> Running {
        Running::new(cmd.spawn().expect("spawn"))
    }

    /// Takes over `child`, capturing whichever of its stdout and stderr are still piped.
    pub fn new(mut child: Child) -> Running {
        Running {
            stdout: child.stdout.take().map(Captured::start),
            stderr: child.stderr.take().map(Captured::start),
            child: Some(child),
        }
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("child")
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// Sends a signal (`"-TERM"`, `"-USR1"`, …) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.id().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill {sig} failed");
    }

    /// The exit status if the process has ended, without waiting.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child().try_wait().expect("try_wait")
    }

    /// The exit status once the process ends, or `None` if it is still running after
    /// `within`.
    pub fn exit_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + within;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            // std has no wait with a timeout: poll, briefly.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The exit status; panics if the process has not ended within `within` (it is then
    /// killed by the drop).
    pub fn wait_within(&mut self, within: Duration) -> ExitStatus {
        let s = self.exit_within(within);
        s.unwrap_or_else(|| panic!("the process did not exit within {within:?}"))
    }

    /// Waits (bounded) for the end and for EOF on the captured pipes; their bytes.
    pub fn output_within(mut self, within: Duration) -> Output {
        let end = Instant::now() + within;
        let status = self.wait_within(within);
        let take = |c: &Option<Arc<Captured>>| {
            c.as_ref().map_or_else(Vec::new, |c| {
                // A grandchild holding the pipe open would keep it from EOF: bounded too.
                let left = end.saturating_duration_since(Instant::now());
                assert!(c.wait_eof(left), "output still open {within:?} after start");
                c.bytes()
            })
        };
        let stdout = take(&self.stdout);
        let stderr = take(&self.stderr);
        Output {
            status,
            stdout,
            stderr,
        }
    }

    /// stderr so far (it must be piped).
    pub fn stderr_text(&self) -> String {
        self.stderr.as_ref().expect("stderr is not piped").text()
    }

    /// All of stderr, for a process that has ended: waits (bounded) for EOF on the pipe,
    /// since the thread reading it may not yet have the last lines the process wrote.
    pub fn stderr_after_exit(&self, within: Duration) -> String {
        let c = self.stderr.as_ref().expect("stderr is not piped");
        // A grandchild holding the pipe open keeps it from EOF: what came is still returned.
        c.wait_eof(within);
        c.text()
    }

    /// Waits (bounded) until stderr contains `needle`; all of stderr so far.
    pub fn await_stderr(&self, needle: &str, within: Duration) -> String {
        self.stderr
            .as_ref()
            .expect("stderr is not piped")
            .wait_for(needle, within)
    }

    /// For a `wok relay` process: waits (bounded) for its "relay listening" line and returns
    /// the port it reports (the ephemeral one when it was given port 0).
    pub fn await_port(&self, within: Duration) -> u16 {
        const LISTENING: &str = "relay listening on 127.0.0.1:";
        let log = self.await_stderr(LISTENING, within);
        log.split(LISTENING)
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no port in {log}"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            // Reaps it: SIGKILL cannot be ignored, so this returns at once.
            let _ = c.wait();
        }
    }
}

/// Runs `cmd` to its end with `stdin` as its input and returns its output; a command still
/// running after `within` is killed and fails the test.
pub fn run_within(cmd: &mut Command, stdin: &[u8], within: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    // Fed from a thread: a child that writes before it has read everything must not
    // deadlock against us. A child that stops reading gets EPIPE once it is killed.
    std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    Running::new(child).output_within(within)
}

/// `run_within` with `RUN_LIMIT` and no input.
pub fn run(cmd: &mut Command) -> Output {
    run_within(cmd, b"", RUN_LIMIT)
}

/// Replaces `path` with `text` (atomically) and gives it an mtime one second after the old
/// one, so a watcher comparing mtimes sees the change however coarse the file system's
/// clock is: no sleeping for a new timestamp.
pub fn rewrite(path: &Path, text: &str) {
    let before = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let tmp = path.with_extension("rewrite-tmp");
    std::fs::write(&tmp, text).expect("write");
    let mtime = before.map_or_else(SystemTime::now, |t| t + Duration::from_secs(1));
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .and_then(|f| f.set_modified(mtime))
        .expect("set mtime");
    std::fs::rename(&tmp, path).expect("rename");
}

/// The first line of `r` (a child's stdout), read in a thread so the wait is bounded; `r`
/// is closed once the line is read, as `head -1` would.
pub fn first_line(r: impl Read + Send + 'static, within: Duration) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(r).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(within)
        .unwrap_or_else(|_| panic!("no line within {within:?}"))
}

/// A raw WebSocket connection to `url` (`ws://host:port` or `host:port`), read up to the
/// end of its 101, for tests that write frames by hand. `rcvbuf` shrinks the socket's
/// receive buffer before connecting, so the kernel holds little of what the relay sends.
pub fn raw_upgrade(url: &str, rcvbuf: Option<usize>) -> TcpStream {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("ws://");
    let sa: std::net::SocketAddr = addr.parse().expect("addr");
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(sa),
        socket2::Type::STREAM,
        None,
    )
    .expect("socket");
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n).expect("rcvbuf");
    }
    sock.connect(&sa.into()).expect("connect");
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .expect("request");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut b).expect("read head"),
            1,
            "closed during handshake"
        );
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// One value from the relay's `/metrics` (`name` as written there, labels included).
pub fn metric(url: &str, name: &str) -> u64 {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("ws://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

/// One raw HTTP/1.1 request to the relay at `url` (`ws://host:port`); the status code, the
/// head and the body. The relay closes after answering, so the body is read to EOF.
pub fn http_request(
    url: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, String, String) {
    let addr = url.trim_start_matches("ws://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).expect("write");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// The relay's NIP-11 document over HTTP.
pub fn nip11_of(url: &str) -> serde_json::Value {
    let (status, _, body) =
        http_request(url, "GET", "/", "Accept: application/nostr+json\r\n", b"");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("NIP-11 JSON")
}

/// Reads until the relay ends the connection: `Some(code)` once it did (the close frame's
/// code, `None` inside if it closed without one), `None` if it stays open past `WAIT`.
pub fn closed_by_relay(ws: &mut WebSocket<MaybeTlsStream<TcpStream>>) -> Option<Option<u16>> {
    let end = Instant::now() + WAIT;
    while Instant::now() < end {
        match ws.read() {
            Ok(Message::Close(f)) => return Some(f.map(|f| u16::from(f.code))),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(None),
        }
    }
    None
}

/// Retries `f` until it is true, for at most `within`: for state the relay changes on its
/// own clock (a refilled bucket, a table another process wrote, a pruning pass), where there
/// is nothing to await but the state itself.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A NEG-OPEN's first message from an empty set, hex (what a client with nothing sends).
pub fn neg_first_message() -> String {
    let mut storage = negentropy::NegentropyStorageVector::new();
    storage.seal().expect("seal");
    let mut neg = negentropy::Negentropy::owned(storage, 0).expect("neg");
    wok::nostr::hex::encode(&neg.initiate().expect("initiate"))
}

/// Opens a test DB (1 GiB map) at `dir`, e.g. one a child process wrote.
/// Asserts `Store::check_consistency` finds nothing: every record has exactly its index
/// rows and nothing points anywhere else.
pub fn assert_consistent(store: &Store) {
    let txn = store.read_txn().expect("txn");
    assert_eq!(
        store.check_consistency(&txn).expect("check"),
        Vec::<String>::new()
    );
}

pub fn open_store(dir: &Path) -> Store {
    Store::open(
        dir,
        &StoreOptions {
            map_size: 1 << 30,
            ..StoreOptions::default()
        },
    )
    .expect("store")
}

/// NIP-42 on `c` as `k`, for a relay whose `serviceUrl` is `url`: a REQ only for a
/// restricted kind draws the challenge (and a CLOSED), then AUTH must be accepted.
pub fn authenticate(c: &mut Client, k: &Keys, url: &str) {
    c.send(r#"["REQ","auth-probe",{"kinds":[4]}]"#);
    let (_, challenge) = c.until(|m| m[0] == "AUTH");
    c.until(|m| m[0] == "CLOSED" && m[1] == "auth-probe");
    let chal = challenge[1].as_str().expect("challenge").to_string();
    let ev = sign(
        k,
        now(),
        22242,
        &[vec!["challenge", &chal], vec!["relay", url]],
        "",
    );
    c.send(&format!(
        "[\"AUTH\",{}]",
        String::from_utf8_lossy(ev.json())
    ));
    let ok = c.until(|m| m[0] == "OK").1;
    assert_eq!(ok[2], true, "{ok}");
}

/// (nice, scheduling policy) from a `/proc/…/stat` line: after the parenthesised name,
/// state is field 3, nice field 19, policy field 41.
#[cfg(target_os = "linux")]
pub fn nice_and_policy(stat: &str) -> Option<(i64, i64)> {
    let rest: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let field = |i: usize| rest.get(i).and_then(|n| n.parse().ok());
    Some((field(16)?, field(38)?))
}

/// The (nice, scheduling policy) of each thread named `name` in process `pid` (this
/// process when `None`), read from /proc.
#[cfg(target_os = "linux")]
pub fn thread_priorities(pid: Option<u32>, name: &str) -> Vec<(i64, i64)> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}/task"),
        None => "/proc/self/task".to_string(),
    };
    let mut v = Vec::new();
    for t in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            v.extend(nice_and_policy(&stat));
        }
    }
    v
}
