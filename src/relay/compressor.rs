//! Compressor threads, for every connection that agreed to permessage-deflate. With the
//! sliding window, compressing cost the io thread ~35 µs per 1 KB message — four times the
//! rest of a fanout's work — and without it a scan's messages are each compressed from a
//! reset state; and a connection's messages must be compressed in send order, whichever
//! stage produced them. So the io thread hands them over, in queue order, to thread
//! `connId % N`, which owns the connection's encoder and sends the framed bytes back the
//! same way; channels keep the order, and the io thread stays the only one touching
//! sockets. (A fanout event for no-takeover connections is still compressed once, by the
//! io thread, and only spliced here.)
//!
//! Jobs are batched: the io thread collects them while it drains its inbox and sends one
//! batch per thread per turn, and a thread answers a batch with one batch of frames, so a
//! 1,000-recipient event costs a few channel operations, not 2,000.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::extension::Agreed;
use super::frame::{Encoder, SharedEvent};
use super::msg::{ConnId, Framed, IoSender, Outbound};

pub enum Job {
    /// A connection that agreed to compression with context takeover.
    Open { conn: ConnId, agreed: Agreed },
    /// One message, to be framed and compressed in order.
    Text {
        conn: ConnId,
        text: Vec<u8>,
        paced: bool,
        /// What the io thread counted in the connection's `pending` for it.
        cost: usize,
    },
    /// A shared compressed event spliced into this connection's frame (no context
    /// takeover; see `SharedEvent`): cheap, but it must keep its place in the order.
    Spliced {
        conn: ConnId,
        prefix: Vec<u8>,
        shared: Arc<SharedEvent>,
        cost: usize,
    },
    /// The connection is gone: its encoder is dropped.
    Forget { conn: ConnId },
}

/// The io thread's handle on the compressor threads.
pub struct Compressors {
    txs: Vec<Sender<Vec<Job>>>,
    /// Jobs collected this turn, per thread (the io thread is the only user).
    pending: RefCell<Vec<Vec<Job>>>,
}

impl Compressors {
    /// Starts `n` threads (at least one). They end when every handle is dropped.
    pub fn start(n: usize, io: &IoSender) -> std::io::Result<Compressors> {
        let mut txs = Vec::new();
        for i in 0..n.max(1) {
            let (tx, rx) = unbounded();
            let io = io.clone();
            std::thread::Builder::new()
                .name(format!("Compressor {i}"))
                .spawn(move || run(&rx, &io))?;
            txs.push(tx);
        }
        Ok(Compressors::over(txs))
    }

    /// A handle on these threads with its own (empty) batches.
    fn over(txs: Vec<Sender<Vec<Job>>>) -> Compressors {
        let pending = RefCell::new((0..txs.len()).map(|_| Vec::new()).collect());
        Compressors { txs, pending }
    }

    /// A second handle on the same threads, with its own batches (the busy io thread's):
    /// one connection's jobs still come from one io thread at a time, in order.
    pub fn handle(&self) -> Compressors {
        Compressors::over(self.txs.clone())
    }

    /// Queues a job for `conn`'s thread; it leaves at the next `flush`.
    pub fn send(&self, conn: ConnId, job: Job) {
        let i = (conn % self.txs.len() as u64) as usize;
        if let Some(q) = self.pending.borrow_mut().get_mut(i) {
            q.push(job);
        }
    }

    /// Hands this turn's jobs over, one batch per thread.
    pub fn flush(&self) {
        for (q, tx) in self.pending.borrow_mut().iter_mut().zip(&self.txs) {
            if !q.is_empty() {
                // Fails only if the thread died; its connections then get nothing more.
                let _ = tx.send(std::mem::take(q));
            }
        }
    }
}

fn run(rx: &Receiver<Vec<Job>>, io: &IoSender) {
    let mut encoders: HashMap<ConnId, Encoder> = HashMap::new();
    for batch in rx {
        let mut frames = Vec::new();
        for job in batch {
            match job {
                Job::Open { conn, agreed } => {
                    encoders.insert(conn, Encoder::new(Some(agreed)));
                }
                Job::Text {
                    conn,
                    text,
                    paced,
                    cost,
                } => {
                    let Some(enc) = encoders.get_mut(&conn) else {
                        continue;
                    };
                    let before = enc.traffic;
                    let mut frame = Vec::with_capacity(text.len() / 2 + 16);
                    enc.text(&text, &mut frame);
                    frames.push(Framed {
                        conn,
                        frame,
                        len: text.len(),
                        cost,
                        paced,
                        plain: enc.traffic.plain - before.plain,
                        wire: enc.traffic.wire - before.wire,
                    });
                }
                Job::Spliced {
                    conn,
                    prefix,
                    shared,
                    cost,
                } => {
                    let Some(enc) = encoders.get_mut(&conn) else {
                        continue;
                    };
                    let before = enc.traffic;
                    let mut frame = Vec::with_capacity(shared.deflated.len() + prefix.len() + 32);
                    enc.spliced(&prefix, &shared, b"]", &mut frame);
                    frames.push(Framed {
                        conn,
                        frame,
                        len: prefix.len() + shared.plain_len + 1,
                        cost,
                        paced: false,
                        plain: enc.traffic.plain - before.plain,
                        wire: enc.traffic.wire - before.wire,
                    });
                }
                Job::Forget { conn } => {
                    encoders.remove(&conn);
                }
            }
        }
        if !frames.is_empty() {
            io.send(Outbound::Framed(frames));
        }
    }
}
