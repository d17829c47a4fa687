//! The messages stages send each other. Every stage thread owns its inbox (`inbox::Inbox`);
//! the io thread is additionally woken through its `mio::Waker`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;

use super::auth::ReadAuth;
use super::inbox::Door;
use crate::nostr::{Event, Filter, SubId};
use crate::store::LevId;

pub type ConnId = u64;

/// Text messages packed end to end in one buffer: a scan slice's events cost one
/// allocation in the req-worker and one free in the io thread, not one of each per event
/// (a `Vec` per event was ~8% of a REQ's relay CPU in malloc, free and the arena lock they
/// contend on across the two threads).
#[derive(Default)]
pub struct TextBatch {
    buf: Vec<u8>,
    /// Where each message ends in `buf`.
    ends: Vec<u32>,
    /// Messages already taken by `take_next` (the io thread frames a batch in pieces).
    taken: usize,
}

impl TextBatch {
    /// Room for `n` messages of `bytes` in all.
    pub fn with_capacity(bytes: usize, n: usize) -> TextBatch {
        TextBatch {
            buf: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(n),
            taken: 0,
        }
    }

    /// Appends one message, written by `f` at the end of the buffer.
    pub fn push_with(&mut self, f: impl FnOnce(&mut Vec<u8>)) {
        f(&mut self.buf);
        // A message is bounded far below 4 GiB (relay.maxWebsocketPayloadSize and the
        // stored event size); saturate rather than wrap if that ever changed.
        self.ends
            .push(u32::try_from(self.buf.len()).unwrap_or(u32::MAX));
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Bytes of all its messages.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Bytes allocated for it.
    pub fn capacity(&self) -> usize {
        self.buf.capacity() + self.ends.capacity() * std::mem::size_of::<u32>()
    }

    /// Message `i`.
    fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p] as usize);
        self.buf.get(start..end)
    }

    /// Every message, from the first (ignores `take_next`).
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.ends.len()).filter_map(|i| self.get(i))
    }

    /// The next message not yet taken.
    pub fn take_next(&mut self) -> Option<&[u8]> {
        let i = self.taken;
        self.taken = (i + 1).min(self.ends.len());
        self.get(i)
    }

    /// Whether `take_next` has taken every message.
    pub fn done(&self) -> bool {
        self.taken >= self.ends.len()
    }
}

/// One connection's client messages read but not yet finished by the stages (fair share:
/// past `relay.maxMessagesInFlightPerConnection` or `…BytesInFlight…` the io thread stops
/// reading the connection until this drains).
pub struct InFlight {
    pub msgs: AtomicUsize,
    pub bytes: AtomicUsize,
    metrics: Arc<super::metrics::Metrics>,
}

impl InFlight {
    pub fn new(metrics: Arc<super::metrics::Metrics>) -> Arc<InFlight> {
        Arc::new(InFlight {
            msgs: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            metrics,
        })
    }

    /// Takes one message of `bytes`, handed to `lane`, into the count; its ticket gives it
    /// back when dropped.
    pub fn ticket(self: &Arc<Self>, bytes: usize, lane: Lane) -> Ticket {
        self.msgs.fetch_add(1, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.metrics.inflight_messages.inc();
        self.metrics.inflight_bytes.add(bytes as i64);
        Ticket {
            of: self.clone(),
            bytes,
            lane,
            since: std::time::Instant::now(),
        }
    }
}

/// One client message's place in its connection's in-flight count. It travels with the
/// message from stage to stage and is dropped by whichever stage finishes it — after the
/// answer is queued (OK, EOSE, CLOSED, COUNT, NEG-MSG, NOTICE), or when the message is
/// refused, replaced or its connection closes. Dropping is the only way the count goes
/// down, so no path can leak a place (and pause a connection for good).
pub struct Ticket {
    of: Arc<InFlight>,
    bytes: usize,
    /// Light-lane waits are also counted apart: what a polite client waits for.
    lane: Lane,
    /// When the message entered the queue it is leaving now (see `waited`).
    since: std::time::Instant,
}

impl Ticket {
    /// A stage takes the message up: counts the time it waited in that stage's queue
    /// (`wok_queue_wait_*`), and starts the clock for the next one.
    pub fn waited(&mut self, stage: super::metrics::Stage) {
        let now = std::time::Instant::now();
        self.of
            .metrics
            .queue_wait(stage, self.lane, now.saturating_duration_since(self.since));
        self.since = now;
    }

    /// Starts the clock for the next queue without counting (after work that is not
    /// waiting, such as a scan).
    pub fn restart(&mut self) {
        self.since = std::time::Instant::now();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.of.msgs.fetch_sub(1, Ordering::AcqRel);
        self.of.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        self.of.metrics.inflight_messages.dec();
        self.of.metrics.inflight_bytes.add(-(self.bytes as i64));
    }
}

/// io → ingester.
pub enum IngesterMsg {
    /// One complete WebSocket text message.
    Text {
        conn: ConnId,
        text: Vec<u8>,
        ticket: Ticket,
    },
    Connected {
        conn: ConnId,
        ip: IpAddr,
        /// Its rate limits (`policy::limits`); the io thread keeps a sibling for bytes/s.
        limits: Box<crate::policy::limits::Peer>,
    },
    Closed {
        conn: ConnId,
    },
}

/// ingester → writer.
pub struct WriterMsg {
    pub conn: ConnId,
    pub event: Box<Event>,
    pub ticket: Ticket,
    /// Its search terms, tokenized off the writer's thread when its kind is indexed.
    pub terms: Option<crate::search::doc::Terms>,
}

/// ingester / io → req-worker.
pub enum ReqMsg {
    Req {
        conn: ConnId,
        sub_id: SubId,
        filters: Vec<Filter>,
        auth: ReadAuth,
        ticket: Ticket,
        /// `relay.limits.maxSubscriptionsPerIp`.
        subs: crate::policy::limits::SubLimit,
    },
    Count {
        conn: ConnId,
        sub_id: SubId,
        filters: Vec<Filter>,
        auth: ReadAuth,
        ticket: Ticket,
    },
    Close {
        conn: ConnId,
        sub_id: SubId,
        ticket: Ticket,
    },
    ConnClosed {
        conn: ConnId,
    },
}

/// ingester → negentropy.
pub enum NegMsg {
    Open {
        conn: ConnId,
        sub_id: SubId,
        filter: Filter,
        msg: Vec<u8>,
        auth: ReadAuth,
        ticket: Ticket,
    },
    Msg {
        conn: ConnId,
        sub_id: SubId,
        msg: Vec<u8>,
        ticket: Ticket,
    },
    Close {
        conn: ConnId,
        sub_id: SubId,
        ticket: Ticket,
    },
    ConnClosed {
        conn: ConnId,
    },
}

impl NegMsg {
    /// The connection it belongs to (the negentropy threads serve connections in turns).
    pub fn conn(&self) -> ConnId {
        match self {
            NegMsg::Open { conn, .. }
            | NegMsg::Msg { conn, .. }
            | NegMsg::Close { conn, .. }
            | NegMsg::ConnClosed { conn } => *conn,
        }
    }
}

/// req-worker / writer / ingester → req-monitor.
pub enum MonitorMsg {
    /// Install a live subscription whose stored part was scanned up to `snapshot`.
    Subscribe {
        conn: ConnId,
        sub_id: SubId,
        filters: Vec<Filter>,
        snapshot: LevId,
        auth: ReadAuth,
        /// The REQ's place in flight: given back once EOSE is queued.
        ticket: Ticket,
    },
    Unsubscribe {
        conn: ConnId,
        sub_id: SubId,
    },
    ConnClosed {
        conn: ConnId,
    },
    /// New events are committed (the writer says so after each commit).
    Committed,
    /// An ephemeral event: delivered live, never stored.
    Ephemeral(Arc<Event>),
}

/// anything → io.
pub enum Outbound {
    /// One text message for one connection.
    Send {
        conn: ConnId,
        text: Vec<u8>,
    },
    /// Several, in order, for one connection (one channel message and wake-up): a new
    /// subscription's EOSE and its replay.
    SendAll {
        conn: ConnId,
        texts: Vec<Vec<u8>>,
    },
    /// Stored-scan output, a slice's messages at once (one channel message and wake-up
    /// per slice, not per event): counted in the connection's published backlog until
    /// handed to the socket layer, so req-workers can pause (back-pressure).
    SendPaced {
        conn: ConnId,
        batch: TextBatch,
    },
    /// One event for many subscriptions: the io thread frames
    /// `["EVENT","<sub>",` + json + `]` per recipient, never re-encoding the JSON.
    EventBatch {
        json: Arc<[u8]>,
        recipients: Vec<(ConnId, SubId)>,
    },
    /// Close a connection that kept pushing after being rate limited, and refuse its IP
    /// for a cooldown (`relay.limits.violationsBeforeDisconnect`).
    RateLimited {
        conn: ConnId,
    },
    /// Messages a compressor thread framed (see `compressor`), in order per connection.
    Framed(Vec<Framed>),
    /// The answer to a plain HTTP request served off the io thread (NIP-86 management):
    /// written, then the connection closes.
    HttpReply {
        conn: ConnId,
        bytes: Vec<u8>,
    },
    /// Between the two io threads only (see `io`'s "Two io threads"): a connection, its
    /// socket and its queues, handed to the busy io thread (`Adopt`) or back (`Returned`).
    Adopt(super::io::Moved),
    Returned(super::io::Moved),
    /// To the busy io thread: everything the main thread forwarded for `conn` before this
    /// has been sent back (as `Back`); answered with `Fenced`.
    Fence(ConnId),
    /// To the main io thread: the fence passed, so messages it held for `conn` may follow.
    Fenced(ConnId),
    /// To the main io thread: a message forwarded to the busy thread for a connection it had
    /// already returned; older than anything the stages sent since.
    Back(Box<Outbound>),
    /// To the main io thread: a connection the busy thread owned is gone (its IP's slot
    /// freed in the per-IP table, which only the main thread keeps).
    Gone {
        conn: ConnId,
        key: Option<crate::policy::limits::IpKey>,
    },
    /// To the main io thread: a busy connection was closed for its refusals (a strike
    /// against its IP; see `relay.limits.violationsBeforeDisconnect`).
    Strike {
        conn: ConnId,
        key: crate::policy::limits::IpKey,
    },
}

/// One message framed by a compressor thread: `len` plain bytes (for pacing), `cost` bytes
/// of the connection's counted backlog, and the frame's plain/wire sizes for its stats.
pub struct Framed {
    pub conn: ConnId,
    pub frame: Vec<u8>,
    pub len: usize,
    pub cost: usize,
    pub paced: bool,
    pub plain: u64,
    pub wire: u64,
}

/// The io thread's inbox plus the waker that makes it look.
#[derive(Clone)]
pub struct IoSender {
    pub tx: Sender<Outbound>,
    pub waker: Arc<mio::Waker>,
    /// Set when a wake-up is already on its way; the io thread clears it before draining
    /// its inbox. Saves a syscall (and an epoll round) per message under load.
    pub woken: Arc<std::sync::atomic::AtomicBool>,
}

impl IoSender {
    pub fn send(&self, m: Outbound) {
        // A send fails only when the io thread has exited (shutdown): nothing to tell.
        if self.tx.send(m).is_ok() && !self.woken.swap(true, std::sync::atomic::Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    /// Makes the io thread take a turn (it re-reads shared state, such as access control).
    pub fn wake(&self) {
        if !self.woken.swap(true, std::sync::atomic::Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
    }

    pub fn text(&self, conn: ConnId, text: Vec<u8>) {
        self.send(Outbound::Send { conn, text });
    }
}

/// Which of a stage's threads serve a connection (fair share). A connection is `Light`
/// until it has `relay.busyAtMessagesInFlight` messages in flight; then its ingester and
/// req-worker work goes to the `Busy` lane, threads of their own at a lower CPU priority
/// (`relay.busyLaneNice`), so a flood keeps the cores busy only when nobody else needs them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lane {
    #[default]
    Light,
    Busy,
}

/// How long a busy connection stays busy after it last had `busyAtMessagesInFlight`
/// messages in flight: a flood that pauses for a moment does not get light threads back.
pub const BUSY_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// One connection's lane, as the io thread decides it message by message (sans IO: the
/// counts and the clock are parameters).
#[derive(Debug, Default)]
pub struct LaneState {
    pub lane: Lane,
    /// When it last had `busy_at` messages in flight (counting the one being handed over).
    busy_seen: Option<std::time::Instant>,
}

impl LaneState {
    /// The lane for the connection's next message, given its messages in flight before it
    /// and `busy_at` (`relay.busyAtMessagesInFlight`, 0 = one lane); `None` while it must
    /// change lane but still has messages in flight: its order across stages holds only if
    /// it changes with nothing in flight, so the caller stops reading it until then.
    pub fn next(
        &mut self,
        in_flight: usize,
        busy_at: u64,
        now: std::time::Instant,
    ) -> Option<Lane> {
        let want = if busy_at == 0 {
            Lane::Light
        } else if in_flight as u64 + 1 >= busy_at {
            self.busy_seen = Some(now);
            Lane::Busy
        } else if self
            .busy_seen
            .is_some_and(|t| now.saturating_duration_since(t) < BUSY_LINGER)
        {
            Lane::Busy
        } else {
            Lane::Light
        };
        if want != self.lane {
            if in_flight > 0 {
                return None;
            }
            self.lane = want;
        }
        Some(self.lane)
    }
}

/// A pool of one stage: a message for connection `c` goes to thread `c % n` of the
/// connection's lane, so one connection's messages stay ordered (a connection changes lane
/// only with nothing in flight). A pool without busy threads serves both lanes with one set.
pub struct Pool<T> {
    senders: Vec<Door<T>>,
    busy: Vec<Door<T>>,
}

impl<T> Clone for Pool<T> {
    fn clone(&self) -> Self {
        Pool {
            senders: self.senders.clone(),
            busy: self.busy.clone(),
        }
    }
}

impl<T> Pool<T> {
    pub fn new(senders: Vec<Door<T>>) -> Self {
        Pool {
            senders,
            busy: Vec::new(),
        }
    }

    /// A pool whose `Busy` lane has threads of its own.
    pub fn with_busy(senders: Vec<Door<T>>, busy: Vec<Door<T>>) -> Self {
        Pool { senders, busy }
    }

    /// The one lane's threads, as a pool (what a stage of that lane hands its work to).
    pub fn lane(&self, lane: Lane) -> Pool<T> {
        Pool::new(self.lane_senders(lane).to_vec())
    }

    fn lane_senders(&self, lane: Lane) -> &[Door<T>] {
        match lane {
            Lane::Busy if !self.busy.is_empty() => &self.busy,
            _ => &self.senders,
        }
    }

    fn sender(&self, lane: Lane, conn: ConnId) -> Option<&Door<T>> {
        let s = self.lane_senders(lane);
        let n = s.len() as u64;
        (n > 0).then(|| &s[(conn % n) as usize])
    }

    pub fn dispatch(&self, conn: ConnId, m: T) {
        if let Some(s) = self.sender(Lane::Light, conn) {
            let _ = s.send(m);
        }
    }

    /// Like `dispatch` (in `lane`), but hands the message back when that thread's inbox
    /// is full, so the caller (the io thread) never blocks on one busy stage.
    pub fn try_dispatch(&self, lane: Lane, conn: ConnId, m: T) -> Result<(), T> {
        let Some(s) = self.sender(lane, conn) else {
            return Ok(());
        };
        match s.try_send(m) {
            Ok(()) => Ok(()),
            Err(crossbeam_channel::TrySendError::Full(m)) => Err(m),
            // The stage is gone (shutdown): nothing to deliver to.
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Ok(()),
        }
    }

    pub fn all(&self) -> &[Door<T>] {
        &self.senders
    }

    pub fn queued(&self) -> usize {
        self.senders.iter().chain(&self.busy).map(Door::len).sum()
    }
}

/// Connection-ended messages the io thread could not hand to a full stage inbox, kept in
/// order and retried every turn: io never blocks on a stage (a blocked io thread stops
/// every socket), and a close is never lost (its subscriptions and sessions must end).
pub struct Deferred<T> {
    queue: std::collections::VecDeque<(Lane, ConnId, T)>,
}

impl<T> Default for Deferred<T> {
    fn default() -> Self {
        Deferred {
            queue: std::collections::VecDeque::new(),
        }
    }
}

impl<T> Deferred<T> {
    /// Delivers `m` now if nothing is waiting and its inbox has room, else queues it
    /// behind what waits; returns whether it had to wait.
    pub fn send(&mut self, pool: &Pool<T>, lane: Lane, conn: ConnId, m: T) -> bool {
        if self.queue.is_empty() {
            match pool.try_dispatch(lane, conn, m) {
                Ok(()) => return false,
                Err(m) => self.queue.push_back((lane, conn, m)),
            }
        } else {
            self.queue.push_back((lane, conn, m));
        }
        true
    }

    /// Delivers waiting messages in order until an inbox is full.
    pub fn retry(&mut self, pool: &Pool<T>) {
        while let Some((lane, conn, m)) = self.queue.pop_front() {
            if let Err(m) = pool.try_dispatch(lane, conn, m) {
                self.queue.push_front((lane, conn, m));
                return;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A close that meets a full inbox waits instead of blocking, later ones queue
    /// behind it, and retries deliver them all, in order, as room appears.
    #[test]
    fn deferred_messages_wait_in_order_and_are_all_delivered() {
        let (tx, rx) = crate::relay::inbox::bounded::<u64>(1);
        let pool = Pool::new(vec![tx]);
        let mut d = Deferred::default();
        assert!(!d.send(&pool, Lane::Light, 1, 1), "room: delivered at once");
        assert!(d.send(&pool, Lane::Light, 2, 2), "full: waits");
        assert_eq!(rx.try_recv(), Ok(1));
        assert!(
            d.send(&pool, Lane::Light, 3, 3),
            "queued behind 2 although there is room"
        );
        assert_eq!(d.len(), 2);
        d.retry(&pool);
        assert_eq!(d.len(), 1, "one slot: one delivered");
        assert_eq!(rx.try_recv(), Ok(2));
        d.retry(&pool);
        assert!(d.is_empty());
        assert_eq!(rx.try_recv(), Ok(3));
        d.retry(&pool);
        assert!(rx.try_recv().is_err());
    }

    /// A connection turns busy at `busy_at` in flight, but only once nothing it sent is in
    /// flight (its order across stages depends on it); it stays busy for `BUSY_LINGER`
    /// after it was last that busy, and goes back the same way. `busy_at` 0: one lane.
    #[test]
    fn a_connection_changes_lane_only_with_nothing_in_flight() {
        let t0 = std::time::Instant::now();
        let at = |ms: u64| t0 + std::time::Duration::from_millis(ms);
        let mut l = LaneState::default();
        for n in 0..7 {
            assert_eq!(l.next(n, 8, at(0)), Some(Lane::Light), "{n} in flight");
        }
        assert_eq!(
            l.next(7, 8, at(1)),
            None,
            "the 8th waits for the 7 to finish"
        );
        assert_eq!(l.next(3, 8, at(2)), None, "still 3 in flight");
        assert_eq!(l.next(0, 8, at(3)), Some(Lane::Busy), "moved, empty-handed");
        assert_eq!(l.next(7, 8, at(4)), Some(Lane::Busy));
        assert_eq!(l.next(0, 8, at(900)), Some(Lane::Busy), "lingers");
        let calm = 4 + BUSY_LINGER.as_millis() as u64;
        assert_eq!(l.next(2, 8, at(calm)), None, "calm, but 2 in flight");
        assert_eq!(l.next(0, 8, at(calm)), Some(Lane::Light));
        assert_eq!(l.next(1, 8, at(calm + 1)), Some(Lane::Light));
        // Switched off live: a busy connection comes back the same way.
        let mut l = LaneState::default();
        assert_eq!(
            l.next(0, 1, at(0)),
            Some(Lane::Busy),
            "busy_at 1: every message"
        );
        assert_eq!(l.next(5, 0, at(1)), None);
        assert_eq!(l.next(0, 0, at(2)), Some(Lane::Light));
        assert_eq!(l.next(100, 0, at(3)), Some(Lane::Light), "0: never busy");
    }

    /// Each lane has its own threads; a pool without busy threads serves both with one set,
    /// and a lane's view is an ordinary pool of that lane's threads.
    #[test]
    fn a_pool_sends_each_lane_to_its_own_threads() {
        let (light, busy): (Vec<_>, Vec<_>) = (0..4)
            .map(|_| crate::relay::inbox::unbounded::<u64>())
            .unzip();
        let (ltx, lrx) = (light[..2].to_vec(), &busy[..2]);
        let (btx, brx) = (light[2..].to_vec(), &busy[2..]);
        let pool = Pool::with_busy(ltx, btx);
        assert!(pool.try_dispatch(Lane::Light, 3, 30).is_ok());
        assert!(pool.try_dispatch(Lane::Busy, 3, 31).is_ok());
        pool.lane(Lane::Busy).dispatch(4, 40);
        pool.dispatch(5, 50);
        assert_eq!(lrx[1].try_recv(), Ok(30), "light thread 3 % 2");
        assert_eq!(brx[1].try_recv(), Ok(31), "busy thread 3 % 2");
        assert_eq!(brx[0].try_recv(), Ok(40));
        assert_eq!(lrx[1].try_recv(), Ok(50), "dispatch is the light lane");
        assert_eq!(pool.queued(), 0);
        let (tx, rx) = crate::relay::inbox::unbounded::<u64>();
        let one = Pool::new(vec![tx]);
        assert!(one.try_dispatch(Lane::Busy, 9, 90).is_ok());
        assert_eq!(rx.try_recv(), Ok(90), "no busy threads: the light ones");
    }

    #[test]
    fn a_text_batch_gives_back_each_message_whole_and_in_order() {
        let mut b = TextBatch::default();
        assert!(b.is_empty() && b.done() && b.take_next().is_none());
        for m in [&b"one"[..], b"", b"three"] {
            b.push_with(|out| out.extend_from_slice(m));
        }
        assert_eq!(b.bytes(), 8);
        let all: Vec<&[u8]> = b.iter().collect();
        assert_eq!(all, [&b"one"[..], b"", b"three"]);
        assert_eq!(b.take_next(), Some(&b"one"[..]));
        assert!(!b.done());
        assert_eq!(b.take_next(), Some(&b""[..]));
        assert_eq!(b.take_next(), Some(&b"three"[..]));
        assert!(b.done() && b.take_next().is_none());
        // `iter` still sees every message after `next` took them.
        assert_eq!(b.iter().count(), 3);
    }
}
