//! The relay's WebSocket layer against a raw TCP client that breaks the rules on purpose.
//! - A protocol error (an unmasked frame) gets close 1002 and then the TCP connection ends
//!   promptly once the client answers: the relay stops parsing but keeps reading, instead
//!   of leaving the connection to the 5-second grace timer.
//! - A ping flood from a client that does not read costs only the latest pong: once the
//!   client reads, it finds far fewer pongs than pings.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::TestRelay;

fn upgrade(url: &str) -> TcpStream {
    let addr = url.trim_start_matches("ws://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
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

/// A masked client frame (the mask is zero, which leaves the payload as it is).
fn frame(op: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![0x80 | op, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

#[test]
fn a_protocol_error_closes_with_1002_and_ends_promptly() {
    let r = TestRelay::start();
    let mut s = upgrade(&r.url);
    // Unmasked text frame.
    s.write_all(&[0x81, 0x02, b'h', b'i']).expect("write");
    let mut got = [0u8; 4];
    s.read_exact(&mut got).expect("close frame");
    assert_eq!(got[0], 0x88, "a close frame");
    let mut code = [0u8; 2];
    code.copy_from_slice(&got[2..4]);
    assert_eq!(u16::from_be_bytes(code), 1002);
    // Answer the close as a client does (and keep the socket open, waiting for the
    // server to end the TCP connection, as RFC 6455 §7.1.1 has it).
    let started = Instant::now();
    s.write_all(&frame(0x8, &1002u16.to_be_bytes()))
        .expect("close back");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the relay held the failed connection for {:?}",
        started.elapsed()
    );
}

#[test]
fn a_ping_flood_is_answered_with_the_latest_pong_only() {
    let r = TestRelay::start();
    let mut s = upgrade(&r.url);
    let pings = 20_000usize;
    let mut burst = Vec::new();
    for i in 0..pings {
        burst.extend_from_slice(&frame(0x9, &(i as u32).to_be_bytes()));
    }
    s.write_all(&burst).expect("pings");
    // A text message after the flood: its answer marks the end of what the relay sent.
    s.write_all(&frame(0x1, br#"["CLOSE","x"]"#)).ok();
    s.write_all(&frame(0x1, br#"["REQ","end",{"ids":[]}]"#))
        .expect("req");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let end = Instant::now() + Duration::from_secs(20);
    let mut pongs = 0usize;
    loop {
        assert!(Instant::now() < end, "no EOSE after the flood");
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "closed");
        buf.extend_from_slice(&chunk[..n]);
        // Walk whole server frames (unmasked, short).
        let mut at = 0;
        let mut done = false;
        while buf.len() >= at + 2 {
            let (op, len) = (buf[at] & 0x0f, usize::from(buf[at + 1] & 0x7f));
            let (head, len) = match len {
                126 if buf.len() >= at + 4 => (
                    4,
                    usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]])),
                ),
                126 => break,
                n => (2, n),
            };
            if buf.len() < at + head + len {
                break;
            }
            let payload = &buf[at + head..at + head + len];
            if op == 0xA {
                pongs += 1;
            } else if op == 0x1 && payload.starts_with(br#"["EOSE","end"]"#) {
                done = true;
            }
            at += head + len;
        }
        buf.drain(..at);
        if done {
            break;
        }
    }
    assert!(pongs >= 1, "no pong at all");
    assert!(
        pongs < pings / 2,
        "{pongs} pongs for {pings} pings: every ping was answered"
    );
}
