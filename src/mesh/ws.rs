//! A blocking WebSocket client with bounded waits: every read returns within the wait it is
//! given, so callers can enforce inactivity timeouts and never hang on a silent peer.

use std::net::TcpStream;
use std::time::Duration;

use std::net::ToSocketAddrs;

use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// How long connecting and the opening handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct WsClient {
    ws: WebSocket<TcpStream>,
}

/// What one read produced.
pub enum Recv {
    Text(String),
    /// Nothing arrived within the wait.
    Idle,
}

impl WsClient {
    /// Connects to a `ws://` URL (`wss://` needs TLS, which this build does not have).
    pub fn connect(url: &str, max_message: usize) -> Result<WsClient, String> {
        if url.starts_with("wss://") {
            return Err(format!(
                "{url}: wss:// is not supported by this build yet; reach the relay over ws:// (e.g. through a local TLS terminator)"
            ));
        }
        let config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        let request = url
            .into_client_request()
            .map_err(|e| format!("bad relay URL {url}: {e}"))?;
        let host = request.uri().host().unwrap_or("").trim_matches(['[', ']']);
        let port = request.uri().port_u16().unwrap_or(80);
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {url}: {e}"))?
            .collect();
        let mut last = format!("cannot resolve {url}");
        for addr in addrs {
            let stream = match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(s) => s,
                Err(e) => {
                    last = format!("cannot connect to {url}: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            // A peer that accepts but never answers the handshake must not hang us.
            let _ = stream.set_read_timeout(Some(CONNECT_TIMEOUT));
            let _ = stream.set_write_timeout(Some(CONNECT_TIMEOUT));
            return match tungstenite::client::client_with_config(request, stream, Some(config)) {
                Ok((ws, _)) => {
                    let _ = ws.get_ref().set_write_timeout(None);
                    Ok(WsClient { ws })
                }
                Err(e) => Err(format!("WebSocket handshake with {url} failed: {e}")),
            };
        }
        Err(last)
    }

    pub fn send(&mut self, text: String) -> Result<(), String> {
        self.ws
            .send(Message::text(text))
            .map_err(|e| format!("send failed: {e}"))
    }

    /// The next text message, or `Idle` after `wait` without one.
    pub fn recv(&mut self, wait: Duration) -> Result<Recv, String> {
        let _ = self
            .ws
            .get_ref()
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => return Ok(Recv::Text(t.as_str().to_owned())),
                Ok(Message::Close(f)) => {
                    return Err(match f {
                        Some(f) => format!("relay closed the connection: {} {}", f.code, f.reason),
                        None => "relay closed the connection".into(),
                    })
                }
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(Recv::Idle)
                }
                Err(e) => return Err(format!("connection lost: {e}")),
            }
        }
    }

    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}
