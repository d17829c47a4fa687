//! A stage thread's inbox: a crossbeam channel whose receiver sleeps on a doorbell of its
//! own instead of in crossbeam's list of waiting receivers.
//!
//! Why: crossbeam wakes a sleeping receiver while holding that list's mutex, and the thread
//! it wakes often preempts the sender right there. When the sender is a busy-lane thread
//! (`relay.busyLaneNice`, below everyone else), it then keeps the mutex for as long as the
//! normal-priority threads keep the cores, and the stage it woke blocks on that mutex the
//! next time it waits for work: every connection behind that stage waits for the flood's
//! lowest-priority thread (priority inversion; perf showed a light-lane thread sleeping in
//! `SyncWaker::notify` and `register` in 69 of 735 switches under a flood). Here a sender
//! only stores into the channel, then swaps a flag and unparks: no lock is held anywhere.
//!
//! Messages travel boxed: a bounded crossbeam channel allocates and writes its whole ring
//! when it is made, so the writer's 65,536 slots of 112-byte messages and the 4,096-slot
//! inboxes of messages up to 288 bytes were ~18 MB of a fresh relay's 19 MB of anonymous
//! memory, idle or not. A boxed slot is 16 bytes; the box costs one allocation a message.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{
    Receiver, RecvError, RecvTimeoutError, SendError, Sender, TryRecvError, TrySendError,
};

/// The receiving thread and whether it is (about to be) parked.
#[derive(Default)]
struct Bell {
    asleep: AtomicBool,
    thread: OnceLock<Thread>,
}

impl Bell {
    fn ring(&self) {
        // Pairs with the receiver's fence: either it sees the message just sent, or this
        // sees it asleep (the store buffer may not hide both from each other).
        fence(Ordering::SeqCst);
        if self.asleep.load(Ordering::Relaxed) && self.asleep.swap(false, Ordering::AcqRel) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }
}

/// The sending side (cloned by every stage that hands work to this thread).
pub struct Door<T> {
    /// `None` only inside `drop`: the sender goes before the bell rings, so the receiver
    /// it wakes sees the channel disconnected when this was the last one.
    tx: Option<Sender<Box<T>>>,
    bell: Arc<Bell>,
}

impl<T> Clone for Door<T> {
    fn clone(&self) -> Self {
        Door {
            tx: self.tx.clone(),
            bell: self.bell.clone(),
        }
    }
}

impl<T> Drop for Door<T> {
    fn drop(&mut self) {
        drop(self.tx.take());
        self.bell.ring();
    }
}

impl<T> Door<T> {
    /// Blocks while a bounded inbox is full, like `Sender::send`.
    pub fn send(&self, m: T) -> Result<(), SendError<T>> {
        let Some(tx) = &self.tx else {
            return Err(SendError(m));
        };
        tx.send(Box::new(m)).map_err(|SendError(b)| SendError(*b))?;
        self.bell.ring();
        Ok(())
    }

    pub fn try_send(&self, m: T) -> Result<(), TrySendError<T>> {
        let Some(tx) = &self.tx else {
            return Err(TrySendError::Disconnected(m));
        };
        tx.try_send(Box::new(m)).map_err(|e| match e {
            TrySendError::Full(b) => TrySendError::Full(*b),
            TrySendError::Disconnected(b) => TrySendError::Disconnected(*b),
        })?;
        self.bell.ring();
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.tx.as_ref().map_or(0, Sender::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The receiving side, owned by one thread (the first to wait on it).
pub struct Inbox<T> {
    rx: Receiver<Box<T>>,
    bell: Arc<Bell>,
}

impl<T> Inbox<T> {
    pub fn recv(&self) -> Result<T, RecvError> {
        self.wait(None).map_err(|_| RecvError)
    }

    pub fn recv_timeout(&self, d: Duration) -> Result<T, RecvTimeoutError> {
        // A deadline past what `Instant` holds is no deadline.
        self.wait(Instant::now().checked_add(d))
    }

    /// Nothing queued now (a snapshot: a sender may add one right after).
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.rx.try_recv().map(|b| *b)
    }

    pub fn try_iter(&self) -> impl Iterator<Item = T> + '_ {
        self.rx.try_iter().map(|b| *b)
    }

    /// A receiver for reading the queue's depth (metrics); it never takes a message.
    pub fn depth_probe(&self) -> Receiver<Box<T>> {
        self.rx.clone()
    }

    fn wait(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let owner = self.bell.thread.get_or_init(std::thread::current);
        // The doorbell unparks the first thread that waited here, so only it may wait.
        debug_assert_eq!(
            owner.id(),
            std::thread::current().id(),
            "one receiving thread"
        );
        loop {
            match self.rx.try_recv() {
                Ok(m) => return Ok(*m),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            self.bell.asleep.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            // Again, now that a sender would see us asleep: a message sent before the flag
            // was visible is found here, one sent after rings.
            let got = match self.rx.try_recv() {
                Ok(m) => Some(Ok(*m)),
                Err(TryRecvError::Disconnected) => Some(Err(RecvTimeoutError::Disconnected)),
                Err(TryRecvError::Empty) => None,
            };
            if got.is_none() {
                match deadline {
                    None => std::thread::park(),
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            self.bell.asleep.store(false, Ordering::Relaxed);
                            return Err(RecvTimeoutError::Timeout);
                        }
                        std::thread::park_timeout(d - now);
                    }
                }
            }
            self.bell.asleep.store(false, Ordering::Relaxed);
            if let Some(r) = got {
                return r;
            }
        }
    }
}

fn pair<T>((tx, rx): (Sender<Box<T>>, Receiver<Box<T>>)) -> (Door<T>, Inbox<T>) {
    let bell = Arc::new(Bell::default());
    (
        Door {
            tx: Some(tx),
            bell: bell.clone(),
        },
        Inbox { rx, bell },
    )
}

/// An inbox holding at most `cap` messages (senders wait while it is full).
pub fn bounded<T>(cap: usize) -> (Door<T>, Inbox<T>) {
    pair(crossbeam_channel::bounded(cap))
}

pub fn unbounded<T>() -> (Door<T>, Inbox<T>) {
    pair(crossbeam_channel::unbounded())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two threads pass a message back and forth, each parking between turns: a wake-up
    /// lost between "empty" and "asleep" leaves both waiting (the 10 s bound turns that
    /// hang into a failure).
    #[test]
    fn no_wake_up_is_lost() {
        let (ping, pings) = bounded::<u32>(1);
        let (pong, pongs) = bounded::<u32>(1);
        let echo = std::thread::spawn(move || {
            while let Ok(i) = pings.recv_timeout(Duration::from_secs(10)) {
                if pong.send(i).is_err() {
                    break;
                }
            }
        });
        for i in 0..20_000 {
            ping.send(i).expect("echo alive");
            assert_eq!(
                pongs.recv_timeout(Duration::from_secs(10)),
                Ok(i),
                "turn {i}"
            );
        }
        drop(ping);
        echo.join().expect("echo");
    }

    /// Every message from many senders arrives, each sender's in order.
    #[test]
    fn no_message_is_lost() {
        let (tx, rx) = bounded::<(usize, u64)>(8);
        let senders: Vec<_> = (0..4)
            .map(|s| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u64 {
                        tx.send((s, i)).expect("receiver alive");
                        if i % 64 == 0 {
                            // Let the receiver drain and park.
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        let mut next = [0u64; 4];
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok((s, i)) => {
                    assert_eq!(i, next[s], "sender {s} out of order");
                    next[s] += 1;
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("a wake-up was lost: {next:?}"),
            }
        }
        assert_eq!(next, [20_000; 4]);
        for s in senders {
            s.join().expect("sender");
        }
    }

    /// A receiver asleep without a deadline wakes when the last door goes.
    #[test]
    fn the_last_door_going_wakes_the_receiver() {
        let (tx, rx) = unbounded::<u8>();
        let r = std::thread::spawn(move || rx.recv());
        let tx2 = tx.clone();
        drop(tx);
        // Still one door: it must be able to deliver.
        tx2.send(7).expect("receiver alive");
        drop(tx2);
        assert_eq!(r.join().expect("receiver"), Ok(7));
        // Asleep before the door goes, so only the door's ring can wake it.
        let (tx, rx) = unbounded::<u8>();
        let bell = rx.bell.clone();
        let r = std::thread::spawn(move || rx.recv_timeout(Duration::from_secs(5)));
        let t = Instant::now();
        while !bell.asleep.load(Ordering::SeqCst) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "receiver never slept"
            );
            std::thread::yield_now();
        }
        drop(tx);
        let woke = Instant::now();
        assert_eq!(
            r.join().expect("receiver"),
            Err(RecvTimeoutError::Disconnected)
        );
        // Without the ring it would see the disconnection only at its deadline.
        assert!(
            woke.elapsed() < Duration::from_secs(4),
            "woken by the deadline"
        );
    }

    #[test]
    fn a_deadline_passes_and_a_full_inbox_refuses() {
        let (tx, rx) = bounded::<u8>(1);
        let t = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(20)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(t.elapsed() >= Duration::from_millis(20));
        tx.try_send(1).expect("room for one");
        assert!(matches!(tx.try_send(2), Err(TrySendError::Full(2))));
        assert_eq!(tx.len(), 1);
        assert!(!tx.is_empty());
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![1]);
        assert!(tx.is_empty());
        drop(rx);
        assert!(matches!(tx.try_send(3), Err(TrySendError::Disconnected(3))));
    }
}
