//! The relay's WebSocket layer against a raw TCP client that breaks the rules on purpose.
//! - A protocol error (an unmasked frame) gets close 1002 and then the TCP connection ends
//!   promptly once the client answers: the relay stops parsing but keeps reading, instead
//!   of leaving the connection to the 5-second grace timer.
//! - A ping flood from a client that does not read costs only the latest pong: a burst of
//!   pings the relay reads in one go gets exactly one pong, for its last ping.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::TestRelay;

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
    let mut s = common::raw_upgrade(&r.url, None);
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
    let mut s = common::raw_upgrade(&r.url, None);
    let mut frames = Frames::default();
    // Each round is one 40 KB write (4,000 pings) on an idle connection, which reaches the
    // relay's socket buffer whole and is read in one turn (under the 256 KiB read budget):
    // it must cost exactly one pong, for the latest ping. The client reads nothing until
    // the round's REQ, sent after it, is answered.
    let per_round = 4_000u32;
    for round in 0..5u32 {
        let mut burst = Vec::new();
        for i in 0..per_round {
            burst.extend_from_slice(&frame(0x9, &(round * per_round + i).to_be_bytes()));
        }
        s.write_all(&burst).expect("pings");
        let end = format!("end{round}");
        s.write_all(&frame(
            0x1,
            format!("[\"REQ\",\"{end}\",{{\"ids\":[]}}]").as_bytes(),
        ))
        .expect("req");
        let eose = format!("[\"EOSE\",\"{end}\"]");
        let mut pongs = Vec::new();
        loop {
            let (op, payload) = frames.next(&mut s);
            if op == 0xA {
                pongs.push(u32::from_be_bytes(payload.try_into().expect("4-byte pong")));
            } else if op == 0x1 && payload == eose.as_bytes() {
                break;
            }
        }
        assert_eq!(
            pongs,
            [round * per_round + per_round - 1],
            "round {round}: {} pongs for {per_round} pings",
            pongs.len()
        );
    }
}

/// Whole server frames (unmasked, payloads under 64 KiB) read off a raw socket.
#[derive(Default)]
struct Frames {
    buf: Vec<u8>,
}

impl Frames {
    /// The next frame's opcode and payload; fails the test after 20 s or on EOF.
    fn next(&mut self, s: &mut TcpStream) -> (u8, Vec<u8>) {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if self.buf.len() >= 2 {
                let (op, len) = (self.buf[0] & 0x0f, usize::from(self.buf[1] & 0x7f));
                let (head, len) = match len {
                    126 if self.buf.len() >= 4 => (
                        4,
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                    ),
                    126 => (usize::MAX, 0),
                    n => (2, n),
                };
                if head != usize::MAX && self.buf.len() >= head + len {
                    let payload = self.buf[head..head + len].to_vec();
                    self.buf.drain(..head + len);
                    return (op, payload);
                }
            }
            assert!(Instant::now() < end, "no frame within 20 s");
            let mut chunk = [0u8; 65536];
            let n = s.read(&mut chunk).expect("read");
            assert!(n > 0, "closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
