//! A real relay on 127.0.0.1:0 with a temp DB, and a blocking WebSocket client with
//! bounded waits (every read times out, so a broken relay fails a test instead of hanging).
#![allow(dead_code)]

use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};
use wok::config::Config;
use wok::nostr::sign::Keys;
use wok::nostr::tags::Tags;
use wok::nostr::{Event, Limits};
use wok::relay::Relay;
use wok::store::{Store, StoreOptions};

pub const WAIT: Duration = Duration::from_secs(10);

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
                ..StoreOptions::default()
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
        loop {
            let m = self.recv();
            if pred(&m) {
                return (before, m);
            }
            before.push(m);
        }
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
    wok::relay::now()
}

pub fn note(k: &Keys, content: &str) -> Event {
    sign(k, now(), 1, &[], content)
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

/// A child process killed when dropped, so a failing assertion never leaves it running.
pub struct Running(pub Option<std::process::Child>);

impl Running {
    /// Takes the child back (to signal it and collect its output).
    pub fn take(mut self) -> std::process::Child {
        self.0.take().expect("child")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
