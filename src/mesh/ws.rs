//! A blocking WebSocket client with bounded waits: every read returns within the wait it is
//! given, so callers can enforce inactivity timeouts and never hang on a silent peer.
//! `ws://` and `wss://` (rustls, Mozilla's roots plus any PEM bundle in `SSL_CERT_FILE`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// How long connecting and the opening handshakes (TLS, WebSocket) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one send may wait for the peer to take our bytes.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The connection under the WebSocket: plain TCP or TLS over TCP.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

pub struct WsClient {
    ws: WebSocket<Conn>,
}

/// What one read produced.
pub enum Recv {
    Text(String),
    /// Nothing arrived within the wait.
    Idle,
}

/// The TLS client settings, built once: Mozilla's roots, plus the certificates of the PEM
/// bundle named by `SSL_CERT_FILE` (a private CA, or a test's).
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            if let Some(path) = std::env::var_os("SSL_CERT_FILE") {
                let certs = CertificateDer::pem_file_iter(&path)
                    .map_err(|e| format!("SSL_CERT_FILE {}: {e}", path.to_string_lossy()))?;
                for cert in certs {
                    let cert =
                        cert.map_err(|e| format!("SSL_CERT_FILE {}: {e}", path.to_string_lossy()))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("SSL_CERT_FILE {}: {e}", path.to_string_lossy()))?;
                }
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// A plain or TLS connection to `host:port` (for one HTTP request: `wok admin --url`), with
/// `timeout` on connect and on every read and write.
pub fn open_stream(host: &str, port: u16, tls: bool, timeout: Duration) -> Result<Conn, String> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("cannot resolve {host}");
    for addr in addrs {
        let stream = match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => s,
            Err(e) => {
                last = format!("cannot connect to {host}:{port}: {e}");
                continue;
            }
        };
        let _ = stream.set_read_timeout(Some(timeout));
        let _ = stream.set_write_timeout(Some(timeout));
        if !tls {
            return Ok(Conn::Plain(stream));
        }
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("bad host name {host}: {e}"))?;
        let session = rustls::ClientConnection::new(tls_config()?, name)
            .map_err(|e| format!("TLS setup for {host}: {e}"))?;
        return Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(
            session, stream,
        ))));
    }
    Err(last)
}

impl WsClient {
    /// Connects to a `ws://` or `wss://` URL.
    pub fn connect(url: &str, max_message: usize) -> Result<WsClient, String> {
        WsClient::connect_within(url, max_message, CONNECT_TIMEOUT)
    }

    /// Connects, giving the TCP connect and each handshake read/write `timeout`.
    pub fn connect_within(
        url: &str,
        max_message: usize,
        timeout: Duration,
    ) -> Result<WsClient, String> {
        let config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        let request = url
            .into_client_request()
            .map_err(|e| format!("bad relay URL {url}: {e}"))?;
        let tls = match request.uri().scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(format!("bad relay URL {url}: expected ws:// or wss://")),
        };
        let host = request
            .uri()
            .host()
            .unwrap_or("")
            .trim_matches(['[', ']'])
            .to_owned();
        let port = request
            .uri()
            .port_u16()
            .unwrap_or(if tls { 443 } else { 80 });
        let addrs: Vec<_> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {url}: {e}"))?
            .collect();
        let mut last = format!("cannot resolve {url}");
        for addr in addrs {
            let stream = match TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => s,
                Err(e) => {
                    last = format!("cannot connect to {url}: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            // A peer that accepts but never answers the handshakes must not hang us.
            let _ = stream.set_read_timeout(Some(timeout));
            let _ = stream.set_write_timeout(Some(timeout));
            let conn = if tls {
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| format!("bad host name in {url}: {e}"))?;
                let session = rustls::ClientConnection::new(tls_config()?, name)
                    .map_err(|e| format!("TLS setup for {url}: {e}"))?;
                Conn::Tls(Box::new(rustls::StreamOwned::new(session, stream)))
            } else {
                Conn::Plain(stream)
            };
            return match tungstenite::client::client_with_config(request, conn, Some(config)) {
                Ok((ws, _)) => {
                    // A peer that stops reading must not block a send forever either.
                    let _ = ws.get_ref().tcp().set_write_timeout(Some(SEND_TIMEOUT));
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
            .tcp()
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
