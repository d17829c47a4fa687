//! The io thread: the only code that touches sockets. It accepts connections, answers
//! plain HTTP (NIP-11, metrics, landing page), performs the WebSocket handshake (with
//! permessage-deflate negotiation), reads frames (`frame.rs` does framing, fragmentation,
//! inflate and size limits), hands each text message to an ingester, and writes what the
//! stages send back through per-connection queues, compressing as it frames them. It never
//! parses Nostr JSON (invariant 5). Two run this loop: the main io thread, and the busy
//! lane's, which owns busy connections' sockets (`link`).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::compressor::{Compressors, Job};
use super::extension::{self, Agreed};
use super::frame::{Decoder, Encoder, Incoming, SharedEvent, OP_PING, OP_PONG};
use super::http::{self, HttpInfo};
use super::log_budget::LogBudget;
use super::metrics::Metrics;
use super::msg::{
    ConnId, Deferred, Framed, InFlight, IngesterMsg, Lane, LaneState, Outbound, Pool, TextBatch,
};
use crate::policy::limits::{IpTable, Limit, Peer};
use crossbeam_channel::Receiver;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

mod link;
pub use link::{BusyLink, Link, MainLink, Moved};

pub const LISTENER: Token = Token(0);
pub const WAKER: Token = Token(1);
const FIRST_CONN: u64 = 2;
/// Largest HTTP request head we read before giving up on a client.
const MAX_HTTP_HEAD: usize = 16 * 1024;
/// How long a client may take to send its HTTP request head.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a peer may take to complete a close we started.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Queued messages are framed (and compressed) into a connection's write buffer while it
/// holds less than this; the rest wait in `out`, where they count as pending.
const WBUF_TARGET: usize = 64 * 1024;
/// Stage messages (`Outbound`) taken per turn of the loop before sockets are served again.
/// Taking one only moves it to its connection's queue (framing and writing are bounded by
/// `WRITE_BUDGET`), so each turn takes the whole backlog: an answer to a polite connection
/// then waits behind one write slice per busy connection, not behind their whole output
/// in arrival order (fair share, issue 20: a 1,024 cap left 15-20k flood messages ahead).
const OUTBOUND_PER_TURN: usize = 1 << 16;
/// Bytes framed and written to one connection per turn of the loop: a turn stays short
/// under a flood, so every connection gets its slice soon.
const WRITE_BUDGET: usize = 256 * 1024;
/// Bytes read from one connection per turn of the loop.
const READ_BUDGET: usize = 256 * 1024;

#[derive(Clone)]
pub struct IoConfig {
    pub max_payload: usize,
    pub max_pending: usize,
    /// `relay.maxTotalPendingOutboundBytes`: the same, summed over every connection.
    pub max_total_pending: usize,
    pub auto_ping: Option<Duration>,
    pub keepalive: bool,
    pub real_ip_header: String,
    /// `relay.compression.enabled`: accept permessage-deflate offers.
    pub compression: bool,
    /// `relay.compression.slidingWindow`: keep deflate windows across messages.
    pub sliding_window: bool,
    /// `relay.maxMessagesInFlightPerConnection` and `…BytesInFlight…` (0 = no limit).
    pub max_inflight_msgs: u64,
    pub max_inflight_bytes: u64,
    /// `relay.busyAtMessagesInFlight` (0 = one lane; see `msg::Lane`).
    pub busy_at: u64,
    /// `relay.limits` (re-read every second, like the keys above).
    pub limits: crate::config::LimitsConfig,
}

impl IoConfig {
    /// May a connection with `f` in flight hand over one more message of `len` bytes? One
    /// message is always let through, so a message larger than the byte limit still goes.
    fn may_take(&self, f: &InFlight, len: usize) -> bool {
        let msgs = f.msgs.load(Ordering::Acquire) as u64;
        let bytes = f.bytes.load(Ordering::Acquire) as u64;
        (self.max_inflight_msgs == 0 || msgs < self.max_inflight_msgs)
            && (self.max_inflight_bytes == 0
                || msgs == 0
                || bytes + len as u64 <= self.max_inflight_bytes)
    }
}

/// A WebSocket connection's socket and framing state.
struct Ws {
    stream: TcpStream,
    dec: Decoder,
    enc: Encoder,
    /// Frame bytes not yet taken by the socket, from `wpos` on.
    wbuf: Vec<u8>,
    wpos: usize,
    close_sent: bool,
    close_received: bool,
    /// Our close is out and the write side shut: waiting for the peer's close.
    shut: bool,
    /// The answer to the latest ping, written at the next flush. Only the latest is kept
    /// (RFC 6455 §5.5.3): a ping flood from a client that never reads costs nothing.
    pong: Option<Vec<u8>>,
    /// The peer broke the protocol: its input is read and thrown away until it closes.
    failed: bool,
    /// Compressed by a compressor thread (see `compressor`); the io thread's encoder then
    /// only frames control frames.
    offload: bool,
    /// Without context takeover: the window bits a shared compressed event must keep to.
    shares: Option<u8>,
}

/// A queued outbound message.
enum Out {
    Text(Vec<u8>),
    /// `prefix ‖ event JSON ‖ ]` with the JSON compressed once for all recipients.
    Spliced(Vec<u8>, Arc<SharedEvent>),
    /// Framed (and compressed) by a compressor thread.
    Framed(Vec<u8>),
    /// Several texts in one buffer (a scan slice), framed a piece at a time.
    Batch(TextBatch),
}

enum Phase {
    /// `reply`: an HTTP answer still being written (non-blocking), then the socket closes.
    Http {
        stream: TcpStream,
        buf: Vec<u8>,
        reply: Vec<u8>,
        /// Handed to the management thread (NIP-86); its answer comes as `HttpReply`.
        awaiting: bool,
    },
    Ws(Box<Ws>),
    /// Only while switching from Http to Ws.
    Gone,
}

enum HttpStep {
    Wait,
    Close,
    Upgrade {
        head_len: usize,
        ip: IpAddr,
        deflate: Option<Agreed>,
        limits: Peer,
    },
}

struct Conn {
    phase: Phase,
    ip: IpAddr,
    /// Queued messages with their plain length, their cost (what `pending` counts for
    /// them) and `true` for scan output counted in `published`.
    out: VecDeque<(Out, usize, usize, bool)>,
    /// Bytes held for this connection: queued messages at their allocated size plus a
    /// queue slot each (see [`cost`]), and messages at its compressor thread.
    pending: usize,
    /// Scan output not yet handed to tungstenite (req-workers add, we subtract).
    published: Option<Arc<AtomicUsize>>,
    last_seen: Instant,
    pinged: bool,
    /// When we started closing: the peer gets a short grace to answer, then it is dropped.
    closing_since: Option<Instant>,
    /// A message read but not yet handed over, because the connection is at its in-flight
    /// limit or its ingester's inbox is full; reading resumes once it is delivered.
    stalled: Option<Vec<u8>>,
    /// Its messages read and not yet finished by the stages (see `msg::Ticket`).
    inflight: Arc<InFlight>,
    /// Held at the in-flight limit (counted once per pause in `read_pauses`).
    paused: bool,
    /// The threads its messages go to (fair share: busy connections get their own).
    lane: LaneState,
    /// Its read budget ran out with input left: read again on the next turn.
    more_to_read: bool,
    /// Its write budget ran out with output left and the socket still writable: write
    /// again on the next turn (no readiness edge will come).
    more_to_write: bool,
    closing: bool,
    /// Its rate limits once upgraded (bytes/s here; the ingester holds a sibling).
    limits: Option<Peer>,
    /// Not read because of the bytes/s limit (counted once per pause).
    throttled: bool,
    /// Its `Connected` when the ingester's inbox was full at the upgrade: nothing of it
    /// is read until this is delivered (its messages must follow it).
    unannounced: Option<IngesterMsg>,
}

impl Conn {
    /// The window size a shared compressed event must keep to for this connection, when
    /// it compresses without context takeover (see `SharedEvent`).
    fn shares(&self) -> Option<u8> {
        match &self.phase {
            Phase::Ws(ws) if !self.closing => ws.shares.or_else(|| ws.enc.shares()),
            _ => None,
        }
    }
}

pub struct Io {
    pub poll: Poll,
    /// `None` once draining: dropping it makes the kernel refuse new connections.
    pub listener: Option<TcpListener>,
    pub rx: Receiver<Outbound>,
    /// Threads that compress for connections with context takeover.
    pub compressors: Option<Compressors>,
    pub ingesters: Pool<IngesterMsg>,
    /// NIP-86 calls go to the management thread (they write to LMDB).
    pub manage: crossbeam_channel::Sender<super::management::ManageMsg>,
    pub http: Arc<std::sync::RwLock<HttpInfo>>,
    pub metrics: Arc<Metrics>,
    pub cfg: IoConfig,
    pub shutdown: Arc<AtomicBool>,
    /// Graceful drain: stop accepting, finish when no connection is left.
    pub draining: Arc<AtomicBool>,
    /// Each WebSocket connection's pending outbound bytes (read by the req-workers).
    pub outbound: Arc<super::Outbound>,
    /// For the reloadable keys io uses (re-read every second).
    pub shared: Arc<super::Shared>,
    /// See `IoSender::woken`.
    pub woken: Arc<AtomicBool>,
    /// Per-connection log lines under a budget (see `log_budget`).
    pub log_budget: RefCell<LogBudget>,
    /// Connections, cooldowns and shared buckets per IP (`relay.limits`).
    pub ips: RefCell<IpTable>,
    /// Closes that met a full ingester inbox, retried every turn.
    pub closes: RefCell<Deferred<IngesterMsg>>,
    /// Main or busy io thread, and the way to the other (see `link`).
    pub link: Link,
    /// Each io thread's outbound backlog, main then busy (`maxTotalPendingOutboundBytes`
    /// counts both).
    pub backlogs: Arc<[AtomicUsize; 2]>,
}

impl Io {
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut conns: HashMap<ConnId, Conn> = HashMap::new();
        let mut next_id = FIRST_CONN;
        let mut last_tick = Instant::now();
        let mut stalled: HashSet<ConnId> = HashSet::new();
        // Connections whose write budget ran out last turn.
        let mut unflushed: Vec<ConnId> = Vec::new();
        // Connections to flush this iteration (reused: the loop runs per wake-up).
        let mut touched: HashSet<ConnId> = HashSet::new();
        let mut listening = true;
        // Access-control version last acted on (blocked IPs closed).
        let mut access_seen = self.shared.access.version();
        // This thread's part of each inbox message (see `route`).
        let mut local: Vec<Outbound> = Vec::new();
        let main = matches!(self.link, Link::Main(_));
        self.follow_nice();
        while !self.shutdown.load(Ordering::Relaxed) {
            if main && self.draining.load(Ordering::Relaxed) {
                if listening {
                    if let Some(mut l) = self.listener.take() {
                        let _ = self.poll.registry().deregister(&mut l);
                    }
                    listening = false;
                    log::info!("draining: no new connections; {} open", conns.len());
                }
                if conns.is_empty() && self.away() == 0 {
                    break;
                }
            }
            // Stage output left over from the last turn: only look at the sockets. While some
            // connection waits (in-flight limit, full ingester), look again soon.
            let timeout = if !self.rx.is_empty() || !unflushed.is_empty() {
                Duration::ZERO
            } else if stalled.is_empty() && self.closes.borrow().is_empty() {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(1)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("poll failed: {e}");
                break;
            }
            touched.clear();
            touched.extend(unflushed.drain(..));
            let turn = Instant::now();
            if main {
                self.metrics
                    .io_backlog
                    .set(i64::try_from(self.rx.len()).unwrap_or(i64::MAX));
            }
            self.closes.borrow_mut().retry(&self.ingesters);
            // Connections paused on a full ingester inbox: retry them (no readiness edge
            // will come for data already in their socket buffers).
            for id in stalled.drain().collect::<Vec<_>>() {
                if let Some(c) = conns.get_mut(&id) {
                    self.on_readable(id, c);
                    touched.insert(id);
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(&mut conns, &mut next_id),
                    WAKER => {}
                    Token(t) => {
                        let id = t as ConnId;
                        if let Some(c) = conns.get_mut(&id) {
                            if ev.is_readable() || ev.is_read_closed() {
                                self.on_readable(id, c);
                            }
                            touched.insert(id);
                        }
                    }
                }
            }
            // Clear before draining: a message sent after this point wakes us again.
            self.woken.store(false, Ordering::Release);
            // The whole backlog (bounded, see OUTBOUND_PER_TURN): taking a message only
            // queues it; writes are budgeted per connection below. What is for the other
            // io thread's connections goes on to it (see `link`).
            for m in self.rx.try_iter().take(OUTBOUND_PER_TURN) {
                self.route(m, &mut conns, &mut touched, &mut local);
                for m in local.drain(..) {
                    self.handle(m, &mut conns, &mut touched);
                }
            }
            // A management change (NIP-86, `wok admin`) may have blocked IPs that are
            // connected: they go now.
            let v = self.shared.access.version();
            if v != access_seen {
                access_seen = v;
                self.close_blocked(&mut conns);
                if let Link::Main(l) = &self.link {
                    l.busy.wake();
                }
            }
            // This turn's messages for compressed connections, one batch per thread.
            if let Some(comp) = &self.compressors {
                comp.flush();
            }
            for &id in &touched {
                let Some(c) = conns.get_mut(&id) else {
                    continue;
                };
                if c.stalled.is_some() || c.more_to_read || c.unannounced.is_some() {
                    stalled.insert(id);
                }
                if !flush(c, WRITE_BUDGET) {
                    self.drop_conn(id, &mut conns);
                    continue;
                }
                if c.more_to_write {
                    unflushed.push(id);
                }
                // Checked after writing what the socket would take: only a real backlog counts.
                if self.cfg.max_pending > 0 && backlog(c) > self.cfg.max_pending {
                    if self.log_line() {
                        log::info!("[{id}] slow client: {} bytes pending, closing", backlog(c));
                    }
                    self.metrics.slow_client_terminations.inc();
                    self.drop_conn(id, &mut conns);
                    continue;
                }
            }
            // Connections that changed lane go to the other io thread.
            self.hand_over(&mut conns, &touched);
            self.metrics.io_turns.inc();
            self.metrics
                .io_turn_us
                .add(u64::try_from(turn.elapsed().as_micros()).unwrap_or(u64::MAX));
            if last_tick.elapsed() >= Duration::from_secs(1) {
                last_tick = Instant::now();
                // Hot-reloadable keys (strfry reads these live too).
                let cfg = self.shared.config();
                self.cfg
                    .real_ip_header
                    .clone_from(&cfg.relay.real_ip_header);
                self.cfg.keepalive = cfg.relay.enable_tcp_keepalive;
                self.cfg.max_pending =
                    usize::try_from(cfg.relay.max_pending_outbound_bytes).unwrap_or(usize::MAX);
                self.cfg.max_total_pending =
                    usize::try_from(cfg.relay.max_total_pending_outbound_bytes)
                        .unwrap_or(usize::MAX);
                self.cfg.max_inflight_msgs = cfg.relay.max_messages_in_flight_per_connection;
                self.cfg.max_inflight_bytes = cfg.relay.max_bytes_in_flight_per_connection;
                self.cfg.busy_at = cfg.relay.busy_at_messages_in_flight;
                self.cfg.limits.clone_from(&cfg.relay.limits);
                self.ips
                    .borrow_mut()
                    .sweep(&self.cfg.limits, &self.metrics.limits);
                self.follow_nice();
                self.tick(&mut conns);
            }
            // Forgotten connections (dropped this turn) free their encoders promptly.
            if let Some(comp) = &self.compressors {
                comp.flush();
            }
        }
        let ids: Vec<ConnId> = conns.keys().copied().collect();
        for id in ids {
            self.drop_conn(id, &mut conns);
        }
        self.finish();
    }

    /// The busy io thread's CPU priority follows `relay.busyLaneNice` (as the busy lane's
    /// stage threads do).
    fn follow_nice(&self) {
        if let Link::Busy(b) = &self.link {
            let nice = self.shared.config().relay.busy_lane_nice;
            // The io threads stay out of SCHED_BATCH: their wake-ups are the network's.
            b.nice.borrow_mut().follow(Lane::Busy, nice, false);
        }
    }

    /// Takes one stage message for connections this thread owns: queues it (framing and
    /// writing come later, budgeted per connection).
    fn handle(
        &self,
        m: Outbound,
        conns: &mut HashMap<ConnId, Conn>,
        touched: &mut HashSet<ConnId>,
    ) {
        match m {
            Outbound::Send { conn, text } => {
                self.metrics.relay_message(&text);
                if let Some(c) = conns.get_mut(&conn) {
                    self.enqueue(conn, c, text, false);
                    touched.insert(conn);
                }
            }
            Outbound::SendPaced { conn, batch } => {
                self.enqueue_batch(conns, touched, conn, batch);
            }
            Outbound::SendAll { conn, texts } => {
                self.enqueue_all(conns, touched, conn, texts, false);
            }
            Outbound::RateLimited { conn } => {
                if let Some(c) = conns.get_mut(&conn) {
                    self.rate_limited(conn, c);
                    touched.insert(conn);
                }
            }
            Outbound::Framed(frames) => {
                for Framed {
                    conn,
                    frame,
                    len,
                    cost,
                    paced,
                    plain,
                    wire,
                } in frames
                {
                    let Some(c) = conns.get_mut(&conn) else {
                        continue;
                    };
                    if let Phase::Ws(ws) = &mut c.phase {
                        ws.enc.traffic.plain += plain;
                        ws.enc.traffic.wire += wire;
                    }
                    if c.closing {
                        unpace(&c.published, paced, len);
                    } else {
                        // Its cost is in `pending` since it was handed over.
                        c.out.push_back((Out::Framed(frame), len, cost, paced));
                        touched.insert(conn);
                    }
                }
            }
            Outbound::HttpReply { conn, bytes } => {
                if let Some(c) = conns.get_mut(&conn) {
                    if let Phase::Http {
                        reply, awaiting, ..
                    } = &mut c.phase
                    {
                        *reply = bytes;
                        *awaiting = false;
                        c.closing = true;
                        touched.insert(conn);
                    }
                }
            }
            Outbound::EventBatch { json, recipients } => {
                self.metrics.relay_events(recipients.len() as u64);
                // Compressed once, on first need, for every recipient that uses no
                // context takeover (with it, each connection's bytes differ).
                let mut shared: Option<(u8, Arc<SharedEvent>)> = None;
                for (conn, sub) in recipients {
                    if let Some(c) = conns.get_mut(&conn) {
                        let piece = c.shares().and_then(|bits| match &shared {
                            Some((b, s)) if *b == bits => Some(s.clone()),
                            _ => {
                                let s = Arc::new(SharedEvent::new(&json, bits)?);
                                shared = Some((bits, s.clone()));
                                Some(s)
                            }
                        });
                        // A spliced recipient keeps only its prefix queued.
                        let body = if piece.is_some() { 0 } else { json.len() + 1 };
                        let mut f = Vec::with_capacity(sub.as_str().len() + 16 + body);
                        crate::nostr::message::event_prefix(&mut f, &sub);
                        match piece {
                            Some(s) => {
                                self.enqueue_spliced(conn, c, f, s);
                            }
                            None => {
                                f.extend_from_slice(&json);
                                f.push(b']');
                                self.enqueue(conn, c, f, false);
                            }
                        }
                        touched.insert(conn);
                    }
                }
            }
            // Between the io threads: taken by `route`.
            Outbound::Adopt(_)
            | Outbound::Returned(_)
            | Outbound::Fence(_)
            | Outbound::Fenced(_)
            | Outbound::Back(_)
            | Outbound::Gone { .. }
            | Outbound::Strike { .. } => {}
        }
    }

    fn accept(&mut self, conns: &mut HashMap<ConnId, Conn>, next_id: &mut u64) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    // A blocked IP is dropped unanswered (the socket closes here).
                    if self.shared.access.with(|a| a.ip_blocked(addr.ip())) {
                        self.metrics.blocked_connections.inc();
                        continue;
                    }
                    let id = *next_id;
                    *next_id += 1;
                    // Without NODELAY small replies wait for delayed ACKs (~40 ms).
                    let _ = stream.set_nodelay(true);
                    if self.cfg.keepalive {
                        let _ = socket2::SockRef::from(&stream).set_keepalive(true);
                    }
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(id as usize),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("register failed: {e}");
                        continue;
                    }
                    conns.insert(
                        id,
                        Conn {
                            phase: Phase::Http {
                                stream,
                                buf: Vec::new(),
                                reply: Vec::new(),
                                awaiting: false,
                            },
                            ip: addr.ip(),
                            out: VecDeque::new(),
                            pending: 0,
                            published: None,
                            last_seen: Instant::now(),
                            pinged: false,
                            closing_since: None,
                            stalled: None,
                            inflight: InFlight::new(self.metrics.clone()),
                            paused: false,
                            lane: LaneState::default(),
                            more_to_read: false,
                            more_to_write: false,
                            closing: false,
                            limits: None,
                            throttled: false,
                            unannounced: None,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // EMFILE and friends: log and try again on the next readiness event.
                    log::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Closes every connection whose IP is now blocked.
    fn close_blocked(&self, conns: &mut HashMap<ConnId, Conn>) {
        let blocked: Vec<ConnId> = self.shared.access.with(|a| {
            if a.blocked_ips.is_empty() {
                return Vec::new();
            }
            conns
                .iter()
                .filter(|(_, c)| a.ip_blocked(c.ip))
                .map(|(id, _)| *id)
                .collect()
        });
        for id in blocked {
            if self.log_line() {
                log::info!("[{id}] IP blocked, closing");
            }
            self.metrics.blocked_connections.inc();
            self.drop_conn(id, conns);
        }
    }

    fn on_readable(&self, id: ConnId, c: &mut Conn) {
        c.more_to_read = false;
        // Before the upgrade the HTTP timeout runs from accept: a peer trickling its request
        // head byte by byte must not keep the socket forever.
        if !c.closing && matches!(c.phase, Phase::Ws(_)) {
            c.last_seen = Instant::now();
            c.pinged = false;
        }
        // A plain HTTP request already answered (its reply may still be draining) is not
        // read again: re-parsing the same buffered request would queue its reply twice.
        if matches!(c.phase, Phase::Http { awaiting: true, .. })
            || (c.closing && matches!(c.phase, Phase::Http { .. }))
        {
            return;
        }
        if let Phase::Http { .. } = c.phase {
            match self.read_http(id, c) {
                HttpStep::Wait => return,
                HttpStep::Close => {
                    c.closing = true;
                    return;
                }
                HttpStep::Upgrade {
                    head_len,
                    ip,
                    deflate,
                    limits,
                } => {
                    let Phase::Http { stream, buf, .. } =
                        std::mem::replace(&mut c.phase, Phase::Gone)
                    else {
                        return;
                    };
                    c.ip = ip;
                    let mut dec = Decoder::new(self.cfg.max_payload, deflate);
                    dec.feed(&buf[head_len..]);
                    let offload = match (&self.compressors, deflate) {
                        (Some(comp), Some(agreed)) => {
                            comp.send(id, Job::Open { conn: id, agreed });
                            true
                        }
                        _ => false,
                    };
                    c.phase = Phase::Ws(Box::new(Ws {
                        stream,
                        dec,
                        enc: Encoder::new(if offload { None } else { deflate }),
                        wbuf: Vec::new(),
                        wpos: 0,
                        close_sent: false,
                        close_received: false,
                        shut: false,
                        pong: None,
                        failed: false,
                        offload,
                        shares: deflate
                            .filter(|a| !a.server_takeover)
                            .map(|a| a.server_window_bits),
                    }));
                    let published = Arc::new(AtomicUsize::new(0));
                    if let Ok(mut m) = self.outbound.lock() {
                        m.insert(id, published.clone());
                    }
                    c.published = Some(published);
                    let yn = |b: bool| if b { 'Y' } else { 'N' };
                    self.log_budget.borrow_mut().opened(ip);
                    if self.log_line() {
                        log::info!(
                            "[{id}] connect from {ip} compression={} sliding={}",
                            yn(deflate.is_some()),
                            yn(deflate.is_some_and(|d| d.server_takeover))
                        );
                    }
                    self.metrics.connections.inc();
                    let sibling = Box::new(limits.sibling());
                    c.limits = Some(limits);
                    let hello = IngesterMsg::Connected {
                        conn: id,
                        ip,
                        limits: sibling,
                    };
                    if let Err(hello) = self.ingesters.try_dispatch(Lane::Light, id, hello) {
                        self.metrics.io_deferred.inc();
                        c.unannounced = Some(hello);
                    }
                }
            }
        }
        // Announced first: the ingester must know the connection before its messages.
        if let Some(hello) = c.unannounced.take() {
            if let Err(hello) = self.ingesters.try_dispatch(Lane::Light, id, hello) {
                c.unannounced = Some(hello);
                return;
            }
        }
        // A message held back (in-flight limit, a lane change or a full ingester): deliver
        // it before reading more. A connection we are closing is read only to drain it, so
        // its held message goes unread too, and the draining is not held up behind it
        // (unread input when the socket is dropped would reset it, losing our close).
        if let Some(text) = c.stalled.take() {
            if !c.closing {
                if let Err(text) = self.deliver(id, &c.inflight, &mut c.paused, &mut c.lane, text) {
                    c.stalled = Some(text);
                    return;
                }
            }
        }
        let Phase::Ws(ws) = &mut c.phase else { return };
        if ws.failed {
            // The peer broke the protocol and our close is going out (RFC 6455 §7.1.7: we
            // may close without waiting). Its input is drained unparsed, and anything it
            // sends now — normally its close — or its EOF ends the connection once our
            // close is written; with the input drained, that is a FIN, not a reset.
            let mut sink = [0u8; 4096];
            let mut budget = READ_BUDGET;
            loop {
                match ws.stream.read(&mut sink) {
                    Ok(0) => {
                        ws.close_received = true;
                        return;
                    }
                    Ok(n) => {
                        ws.close_received = true;
                        if n >= budget {
                            c.more_to_read = true;
                            return;
                        }
                        budget -= n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(_) => {
                        ws.close_received = true;
                        ws.wbuf.clear();
                        ws.wpos = 0;
                        return;
                    }
                }
            }
        }
        let mut replies = Vec::new();
        // One connection gets at most this much reading per turn; a fast sender is resumed
        // on the next loop iteration instead of holding the io thread.
        let mut budget = READ_BUDGET;
        loop {
            match ws.dec.decode() {
                Ok(Some(Incoming::Text(text))) => {
                    // A connection we are closing is read only to drain it.
                    if !c.closing {
                        // A flooding client waits in its own socket buffer; others go on.
                        if let Err(text) =
                            self.deliver(id, &c.inflight, &mut c.paused, &mut c.lane, text)
                        {
                            c.stalled = Some(text);
                            break;
                        }
                    }
                }
                Ok(Some(Incoming::Binary(_))) => {
                    if !c.closing {
                        let mut m = Vec::new();
                        crate::nostr::message::notice(
                            &mut m,
                            "error: bad msg: binary messages are not supported",
                        );
                        replies.push(m);
                    }
                }
                Ok(Some(Incoming::Ping(p))) => {
                    if !ws.close_sent {
                        ws.pong = Some(p);
                    }
                }
                Ok(Some(Incoming::Pong)) => {}
                Ok(Some(Incoming::Close(code))) => {
                    // Answer with the same code (RFC 6455 §5.5.1), unless ours is out.
                    ws.close_received = true;
                    if !ws.close_sent {
                        match code {
                            Some(code) => ws.enc.close(code, "", &mut ws.wbuf),
                            None => ws.enc.control(super::frame::OP_CLOSE, &[], &mut ws.wbuf),
                        }
                        ws.close_sent = true;
                    }
                    stop_sending(c);
                    return;
                }
                // Need more bytes: one read from the socket.
                Ok(None) if budget == 0 => {
                    c.more_to_read = true;
                    break;
                }
                // `bytesPerSecond…`: past it the connection is not read until its buckets
                // refill (TCP slows the sender); retried every millisecond like a stall.
                Ok(None)
                    if c.limits
                        .as_ref()
                        .is_some_and(|l| l.readable(&self.cfg.limits) == 0) =>
                {
                    if !c.throttled {
                        c.throttled = true;
                        self.metrics.limits.count(Limit::BytesPaused);
                    }
                    c.more_to_read = true;
                    break;
                }
                Ok(None) => match ws.dec.read_from(&mut ws.stream) {
                    Ok(0) => {
                        // The peer is gone: nothing more to send it either.
                        ws.close_received = true;
                        ws.close_sent = true;
                        stop_sending(c);
                        return;
                    }
                    Ok(n) => {
                        budget = budget.saturating_sub(n);
                        c.throttled = false;
                        if let Some(l) = &c.limits {
                            l.read(&self.cfg.limits, n as u64);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        ws.close_received = true;
                        ws.close_sent = true;
                        ws.wbuf.clear();
                        ws.wpos = 0;
                        stop_sending(c);
                        return;
                    }
                },
                Err(e) => {
                    // RFC 6455 §7.1.7: no more frames are processed from this peer.
                    ws.failed = true;
                    start_close(c, e.close_code(), e.reason());
                    return;
                }
            }
        }
        for m in replies {
            self.enqueue(id, c, m, false);
        }
    }

    /// Hands one client message to the connection's ingester with its place in flight, or
    /// gives it back when the connection is at its in-flight limit or the ingester's inbox
    /// is full: the caller then stops reading the connection (TCP slows the sender) and
    /// retries every millisecond.
    fn deliver(
        &self,
        id: ConnId,
        inflight: &Arc<InFlight>,
        paused: &mut bool,
        lane: &mut LaneState,
        text: Vec<u8>,
    ) -> Result<(), Vec<u8>> {
        if !self.cfg.may_take(inflight, text.len()) {
            if !*paused {
                *paused = true;
                self.metrics.read_pauses.inc();
            }
            return Err(text);
        }
        *paused = false;
        let before = lane.lane;
        let in_flight = inflight.msgs.load(Ordering::Acquire);
        // Changing lane waits (unread) for its messages in flight to finish.
        let Some(to) = lane.next(in_flight, self.cfg.busy_at, Instant::now()) else {
            return Err(text);
        };
        if to != before {
            let m = &self.metrics;
            match to {
                Lane::Busy => {
                    m.lane_to_busy.inc();
                    m.busy_connections.inc();
                }
                Lane::Light => {
                    m.lane_to_light.inc();
                    m.busy_connections.dec();
                }
            }
        }
        // A connection changing lane moves to the other io thread first, with this message
        // held: that thread delivers it, so the lane's answers (which its stage threads send
        // to their own io thread) never arrive before the connection does.
        if to != self.serves() {
            return Err(text);
        }
        let ticket = inflight.ticket(text.len(), to);
        match self.ingesters.try_dispatch(
            to,
            id,
            IngesterMsg::Text {
                conn: id,
                text,
                ticket,
            },
        ) {
            Ok(()) => Ok(()),
            // Its ticket is dropped with the wrapper: the count goes back down.
            Err(IngesterMsg::Text { text, .. }) => Err(text),
            Err(_) => Ok(()),
        }
    }

    /// Queues a connection's messages, in order (`paced`: scan output, see `SendPaced`).
    fn enqueue_all(
        &self,
        conns: &mut HashMap<ConnId, Conn>,
        touched: &mut HashSet<ConnId>,
        conn: ConnId,
        texts: Vec<Vec<u8>>,
        paced: bool,
    ) {
        for text in &texts {
            self.metrics.relay_message(text);
        }
        if let Some(c) = conns.get_mut(&conn) {
            for text in texts {
                self.enqueue(conn, c, text, paced);
            }
            touched.insert(conn);
        }
    }

    /// Queues a scan slice's messages (paced, see `SendPaced`) as one entry, framed by
    /// `flush` straight from the batch's buffer; a connection whose compressor thread frames
    /// its messages gets them one by one, in order.
    fn enqueue_batch(
        &self,
        conns: &mut HashMap<ConnId, Conn>,
        touched: &mut HashSet<ConnId>,
        conn: ConnId,
        batch: TextBatch,
    ) {
        for text in batch.iter() {
            self.metrics.relay_message(text);
        }
        let Some(c) = conns.get_mut(&conn) else {
            return;
        };
        touched.insert(conn);
        if self.compressor_of(c).is_some() {
            for text in batch.iter() {
                self.enqueue(conn, c, text.to_vec(), true);
            }
        } else {
            let (len, cost) = (batch.bytes(), cost(batch.capacity()));
            queue_len(c, Out::Batch(batch), len, cost, true);
        }
    }

    /// Queues one text message: framed later by `flush`, or now handed to the
    /// connection's compressor thread (in order; it comes back as `Outbound::Framed`).
    fn enqueue(&self, id: ConnId, c: &mut Conn, text: Vec<u8>, paced: bool) {
        match self.compressor_of(c) {
            Some(comp) => {
                let cost = cost(text.capacity());
                c.pending += cost;
                comp.send(
                    id,
                    Job::Text {
                        conn: id,
                        text,
                        paced,
                        cost,
                    },
                );
            }
            _ => queue(c, text, paced),
        }
    }

    /// Queues a fanout event spliced from a shared compressed piece, through the
    /// connection's compressor thread when it has one (to keep its order).
    fn enqueue_spliced(&self, id: ConnId, c: &mut Conn, prefix: Vec<u8>, shared: Arc<SharedEvent>) {
        let len = prefix.len() + shared.plain_len + 1;
        // The shared piece is held once for all recipients, but each owes its client the
        // whole message: count that.
        let cost = cost(prefix.capacity().max(len));
        match self.compressor_of(c) {
            Some(comp) => {
                c.pending += cost;
                comp.send(
                    id,
                    Job::Spliced {
                        conn: id,
                        prefix,
                        shared,
                        cost,
                    },
                );
            }
            None => queue_len(c, Out::Spliced(prefix, shared), len, cost, false),
        }
    }

    /// The compressor threads, when they frame this connection's messages (it agreed to a
    /// sliding window and is not closing): then everything for it goes through them, to
    /// keep its order.
    fn compressor_of(&self, c: &Conn) -> Option<&Compressors> {
        match (&self.compressors, &c.phase) {
            (Some(comp), Phase::Ws(ws)) if ws.offload && !c.closing => Some(comp),
            _ => None,
        }
    }

    /// Reads and answers a plain HTTP request, or recognises a WebSocket upgrade.
    fn read_http(&self, id: ConnId, c: &mut Conn) -> HttpStep {
        let Phase::Http {
            stream,
            buf,
            reply,
            awaiting,
        } = &mut c.phase
        else {
            return HttpStep::Close;
        };
        // A request head, and a NIP-86 body after it.
        let max_body = usize::try_from(self.shared.config().relay.management.max_body_bytes)
            .unwrap_or(usize::MAX);
        let mut chunk = [0u8; 4096];
        let mut eof = false;
        loop {
            match stream.read(&mut chunk) {
                // A client may half-close after its request: answer what it sent.
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return HttpStep::Close,
            }
            if buf.len() > MAX_HTTP_HEAD + max_body {
                *reply = http::simple(431, "Request Header Fields Too Large");
                return HttpStep::Close;
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; http::MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if eof => return HttpStep::Close,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HTTP_HEAD => {
                *reply = http::simple(431, "Request Header Fields Too Large");
                return HttpStep::Close;
            }
            Ok(httparse::Status::Partial) => return HttpStep::Wait,
            Err(_) => {
                *reply = http::simple(400, "Bad Request");
                return HttpStep::Close;
            }
        };
        match http::websocket_upgrade(&req) {
            http::Upgrade::Refused(resp) => {
                *reply = resp;
                HttpStep::Close
            }
            http::Upgrade::Valid(_)
                if self.shared.access.with(|a| {
                    a.ip_blocked(real_ip(&req, &self.cfg.real_ip_header, c.ip, || false))
                }) =>
            {
                self.metrics.blocked_connections.inc();
                *reply = http::simple(403, "Forbidden");
                HttpStep::Close
            }
            http::Upgrade::Valid(key) => {
                // Limits apply to the real client (behind a proxy, its header's address),
                // and a refused upgrade gets its 429 before any 101.
                let ip = real_ip(&req, &self.cfg.real_ip_header, c.ip, || self.log_line());
                let limits =
                    match self
                        .ips
                        .borrow_mut()
                        .open(ip, &self.cfg.limits, &self.metrics.limits)
                    {
                        Ok(p) => p,
                        Err(r) => {
                            if self.log_line() {
                                log::info!("refused a connection from {ip}: {}", r.reason);
                            }
                            *reply = http::too_many(r.retry_after, &r.reason);
                            return HttpStep::Close;
                        }
                    };
                let deflate = if self.cfg.compression {
                    extension::negotiate(
                        http::headers(&req, "sec-websocket-extensions"),
                        self.cfg.sliding_window,
                    )
                } else {
                    None
                };
                let resp = http::upgrade_response(&key, deflate.as_ref().map(|(_, r)| r.as_str()));
                // A fresh socket's send buffer takes a handshake response whole.
                if stream.write(&resp).ok() != Some(resp.len()) {
                    self.ips.borrow_mut().closed(limits.key());
                    return HttpStep::Close;
                }
                HttpStep::Upgrade {
                    head_len,
                    ip,
                    deflate: deflate.map(|(a, _)| a),
                    limits,
                }
            }
            http::Upgrade::Plain if http::is_management(&req) => {
                let ip = real_ip(&req, &self.cfg.real_ip_header, c.ip, || false);
                if self.shared.access.with(|a| a.ip_blocked(ip)) {
                    *reply = http::simple(403, "Forbidden");
                    return HttpStep::Close;
                }
                let Some(len) = http::content_length(&req) else {
                    *reply = http::rpc_answer(411, "text/plain", "a Content-Length is required");
                    return HttpStep::Close;
                };
                if len > max_body {
                    *reply = http::rpc_answer(
                        413,
                        "text/plain",
                        &format!("request body over relay.management.maxBodyBytes ({max_body})"),
                    );
                    return HttpStep::Close;
                }
                if buf.len() < head_len + len {
                    return if eof { HttpStep::Close } else { HttpStep::Wait };
                }
                let call = http::management_call(
                    &req,
                    &buf[head_len..head_len + len],
                    &self.shared.config().relay.auth.service_url,
                );
                // Never blocks: a full inbox is a 503.
                match self
                    .manage
                    .try_send(super::management::ManageMsg { conn: id, call })
                {
                    Ok(()) => {
                        *awaiting = true;
                        HttpStep::Wait
                    }
                    Err(_) => {
                        *reply = http::rpc_answer(503, "text/plain", "management busy");
                        HttpStep::Close
                    }
                }
            }
            http::Upgrade::Plain => {
                let resp = match self.http.read() {
                    Ok(info) => http::respond(&req, &info, &self.shared),
                    Err(_) => http::simple(500, "Internal Server Error"),
                };
                // Written by `flush`, as the socket takes it.
                *reply = resp;
                HttpStep::Close
            }
        }
    }

    fn tick(&self, conns: &mut HashMap<ConnId, Conn>) {
        let mut dead = Vec::new();
        for (id, c) in conns.iter_mut() {
            if c.closing_since.is_some_and(|t| t.elapsed() >= CLOSE_GRACE) {
                dead.push((*id, "no answer to close"));
                continue;
            }
            match &mut c.phase {
                // Slowloris and silent peers: the request head must arrive promptly.
                Phase::Http { .. } if c.last_seen.elapsed() >= HTTP_TIMEOUT => {
                    dead.push((*id, "HTTP request timeout"))
                }
                // A closing connection gets no ping: its write side may be shut already.
                Phase::Ws(ws) if !c.closing => {
                    let Some(every) = self.cfg.auto_ping else {
                        continue;
                    };
                    let idle = c.last_seen.elapsed();
                    if c.pinged && idle >= every * 2 {
                        dead.push((*id, "no answer to ping"));
                    } else if !c.pinged && idle >= every {
                        ws.enc.control(OP_PING, &[], &mut ws.wbuf);
                        c.pinged = true;
                        if !flush(c, usize::MAX) {
                            dead.push((*id, "write failed"));
                        }
                    }
                }
                _ => {}
            }
        }
        for (id, why) in dead {
            if self.log_line() {
                log::info!("[{id}] {why}, closing");
            }
            self.drop_conn(id, conns);
        }
        if let Some(line) = self.log_budget.borrow_mut().summary(Instant::now()) {
            log::info!("{line}");
        }
        self.enforce_total_pending(conns);
    }

    /// The relay-wide outbound budget: many slow readers, each under the per-connection
    /// cap, must not add up to more than the machine can hold. Past the budget the largest
    /// backlogs go first, until the rest fits.
    fn enforce_total_pending(&self, conns: &mut HashMap<ConnId, Conn>) {
        if self.cfg.max_total_pending == 0 {
            return;
        }
        let own: usize = conns.values().map(backlog).sum();
        let (mine, theirs) = match self.link {
            Link::Main(_) => (0, 1),
            Link::Busy(_) => (1, 0),
        };
        self.backlogs[mine].store(own, Ordering::Relaxed);
        let other = self.backlogs[theirs].load(Ordering::Relaxed);
        let total = own + other;
        // The thread holding the larger part closes its largest backlogs (both doing so
        // would close more than needed).
        if total <= self.cfg.max_total_pending || own < other {
            return;
        }
        let mut by_size: Vec<(usize, ConnId)> = conns
            .iter()
            .map(|(id, c)| (backlog(c), *id))
            .filter(|(b, _)| *b > 0)
            .collect();
        by_size.sort_unstable_by(|a, b| b.cmp(a));
        let mut left = total;
        let mut closed = 0;
        for (b, id) in by_size {
            if left <= self.cfg.max_total_pending {
                break;
            }
            left -= b;
            closed += 1;
            self.metrics.slow_client_terminations.inc();
            self.drop_conn(id, conns);
        }
        log::warn!(
            "outbound backlog {total} bytes over maxTotalPendingOutboundBytes: closed the \
             {closed} largest"
        );
    }

    /// A connection that kept pushing after being rate limited: closed (1008), and its IP
    /// refused for a cooldown (unless one is running already).
    fn rate_limited(&self, id: ConnId, c: &mut Conn) {
        if c.closing {
            return;
        }
        let Some(key) = c.limits.as_ref().map(Peer::key) else {
            return;
        };
        match &self.link {
            Link::Main(_) => self.strike(id, key),
            // The per-IP table is the main thread's.
            Link::Busy(b) => b.main.send(Outbound::Strike { conn: id, key }),
        }
        start_close(c, 1008, "rate-limited: too many refused messages");
        // An abuser is not waited for (RFC 6455 §7.1.7 lets us fail the connection): what
        // it keeps sending is drained unparsed and ends the connection once our close is
        // out, instead of being read for the whole closing grace.
        if let Phase::Ws(ws) = &mut c.phase {
            ws.failed = true;
        }
    }

    /// A strike against the IP of connection `id`, closed for its refusals: a cooldown.
    fn strike(&self, id: ConnId, key: crate::policy::limits::IpKey) {
        let cooldown = self
            .ips
            .borrow_mut()
            .strike(key, &self.cfg.limits, &self.metrics.limits);
        if self.log_line() {
            match cooldown {
                Some(d) => log::info!(
                    "[{id}] rate limited too often, closing; {key} refused for {}s",
                    d.as_secs()
                ),
                None => log::info!("[{id}] rate limited too often during a cooldown, closing"),
            }
        }
    }

    /// May a per-connection line be logged now (see `log_budget`)?
    fn log_line(&self) -> bool {
        self.log_budget.borrow_mut().allow(Instant::now())
    }

    fn drop_conn(&self, id: ConnId, conns: &mut HashMap<ConnId, Conn>) {
        let Some(mut c) = conns.remove(&id) else {
            return;
        };
        // Its IP's connection slot is freed (only an upgraded connection holds one).
        self.forget(id, c.limits.as_ref().map(Peer::key));
        if let Ok(mut m) = self.outbound.lock() {
            m.remove(&id);
        }
        match &mut c.phase {
            Phase::Http { stream, .. } => {
                let _ = self.poll.registry().deregister(stream);
            }
            Phase::Gone => {}
            Phase::Ws(ws) => {
                if let (true, Some(comp)) = (ws.offload, &self.compressors) {
                    comp.send(id, Job::Forget { conn: id });
                }
                let _ = self.poll.registry().deregister(&mut ws.stream);
                // strfry's shape: wire bytes each way and what compression saved.
                let (up, dn) = (ws.dec.traffic, ws.enc.traffic);
                self.log_budget.borrow_mut().closed();
                if self.log_line() {
                    log::info!(
                        "[{id}] disconnect from {}: UP: {} ({:.1}% compressed) DN: {} ({:.1}% compressed)",
                        c.ip,
                        human_bytes(up.wire),
                        up.saved_pct(),
                        human_bytes(dn.wire),
                        dn.saved_pct()
                    );
                }
                self.metrics.connections.dec();
                // Down the pipeline, behind anything this connection already sent: the
                // ingester passes it to the req-worker, which passes it to the monitor, so
                // no subscription can be installed after its connection is gone.
                // Never announced: the stages never heard of it, so nothing to end.
                let announced = c.unannounced.take().is_none();
                if c.lane.lane == Lane::Busy {
                    self.metrics.busy_connections.dec();
                }
                if announced
                    && self.closes.borrow_mut().send(
                        &self.ingesters,
                        c.lane.lane,
                        id,
                        IngesterMsg::Closed { conn: id },
                    )
                {
                    self.metrics.io_deferred.inc();
                }
            }
        }
    }
}

/// Bookkeeping per queued message beyond its buffer: the queue slot and the allocator's
/// header. A one-byte garbage message earns a ~48-byte NOTICE held in a 128-byte buffer;
/// counting only its length let a peer that never reads hold ~4× the cap.
const MSG_OVERHEAD: usize = std::mem::size_of::<(Out, usize, usize, bool)>() + 16;

/// What a queued message of `capacity` allocated bytes holds.
fn cost(capacity: usize) -> usize {
    capacity + MSG_OVERHEAD
}

fn queue(c: &mut Conn, text: Vec<u8>, paced: bool) {
    let len = text.len();
    let cost = cost(text.capacity());
    queue_len(c, Out::Text(text), len, cost, paced);
}

fn queue_len(c: &mut Conn, m: Out, len: usize, cost: usize, paced: bool) {
    if c.closing {
        unpace(&c.published, paced, len);
        return;
    }
    c.pending += cost;
    c.out.push_back((m, len, cost, paced));
}

/// Drops what was queued (a closing connection sends nothing more but its close).
fn stop_sending(c: &mut Conn) {
    for (_, len, _, paced) in std::mem::take(&mut c.out) {
        unpace(&c.published, paced, len);
    }
    c.pending = 0;
    c.closing = true;
    // A peer that stops reading cannot keep a closing connection forever.
    c.closing_since.get_or_insert_with(Instant::now);
}

fn start_close(c: &mut Conn, code: u16, reason: &'static str) {
    if let Phase::Ws(ws) = &mut c.phase {
        if !ws.close_sent {
            ws.enc.close(code, reason, &mut ws.wbuf);
            ws.close_sent = true;
        }
    }
    stop_sending(c);
}

/// Takes paced bytes out of the published backlog (sent, or dropped).
fn unpace(published: &Option<Arc<AtomicUsize>>, paced: bool, len: usize) {
    if let (true, Some(p)) = (paced, published) {
        let _ = p.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(len))
        });
    }
}

/// Writes queued messages, about `budget` bytes at most (see `more_to_write`); false when
/// the connection is finished and should be dropped.
fn flush(c: &mut Conn, budget: usize) -> bool {
    c.more_to_write = false;
    if let Phase::Http { stream, reply, .. } = &mut c.phase {
        while !reply.is_empty() {
            match stream.write(reply) {
                Ok(0) => return false,
                Ok(n) => {
                    reply.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        return !c.closing;
    }
    let Phase::Ws(ws) = &mut c.phase else {
        return !c.closing;
    };
    let mut written = 0;
    if let Some(p) = ws.pong.take() {
        ws.enc.control(OP_PONG, &p, &mut ws.wbuf);
    }
    loop {
        // Frame (and compress) queued messages, in order, while the buffer has room:
        // bytes count as sent from here on (req-workers see their backlog shrink).
        let mut moved = false;
        while ws.wbuf.len() - ws.wpos < WBUF_TARGET {
            let Some((m, len, cost, paced)) = c.out.pop_front() else {
                break;
            };
            moved = true;
            match m {
                Out::Text(t) => ws.enc.text(&t, &mut ws.wbuf),
                Out::Spliced(prefix, shared) => {
                    ws.enc.spliced(&prefix, &shared, b"]", &mut ws.wbuf)
                }
                Out::Framed(f) => ws.wbuf.extend_from_slice(&f),
                Out::Batch(mut b) => {
                    // Framed only while the buffer has room, so one big slice does not
                    // stretch a turn's write budget; the rest goes back to the front.
                    let mut framed = 0;
                    while ws.wbuf.len() - ws.wpos < WBUF_TARGET {
                        let Some(t) = b.take_next() else { break };
                        framed += t.len();
                        ws.enc.text(t, &mut ws.wbuf);
                    }
                    unpace(&c.published, paced, framed);
                    if b.done() {
                        c.pending = c.pending.saturating_sub(cost);
                    } else {
                        c.pending = c.pending.saturating_sub(framed);
                        let rest = (
                            Out::Batch(b),
                            len.saturating_sub(framed),
                            cost.saturating_sub(framed),
                            paced,
                        );
                        c.out.push_front(rest);
                        break;
                    }
                    continue;
                }
            }
            c.pending = c.pending.saturating_sub(cost);
            unpace(&c.published, paced, len);
        }
        if moved {
            // A client that reads what we send is alive, even if it sends nothing.
            c.last_seen = Instant::now();
            c.pinged = false;
        }
        while ws.wpos < ws.wbuf.len() {
            match ws.stream.write(&ws.wbuf[ws.wpos..]) {
                Ok(0) => return false,
                Ok(n) => {
                    ws.wpos += n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if ws.wpos * 2 >= ws.wbuf.len() {
                        ws.wbuf.drain(..ws.wpos);
                        ws.wpos = 0;
                    }
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        ws.wbuf.clear();
        ws.wpos = 0;
        if ws.wbuf.capacity() > 4 * WBUF_TARGET {
            ws.wbuf = Vec::new();
        }
        if c.out.is_empty() {
            break;
        }
        if written >= budget {
            c.more_to_write = true;
            return true;
        }
    }
    if !c.closing {
        return true;
    }
    // Closing and all written: done once both closes have crossed (or the peer is gone).
    if ws.close_received || !ws.close_sent {
        return false;
    }
    // Our close is out: half-close so the peer reads it (dropping a socket with unread
    // input would reset it and could lose the close), then wait for its answer.
    if !ws.shut {
        let _ = ws.stream.shutdown(Shutdown::Write);
        ws.shut = true;
    }
    true
}

/// Bytes owed to a connection: queued messages plus framed bytes the socket has not taken.
fn backlog(c: &Conn) -> usize {
    match &c.phase {
        Phase::Ws(ws) => c.pending + (ws.wbuf.len() - ws.wpos),
        _ => c.pending,
    }
}

/// strfry's rendering: bytes, then K/M/G with two decimals.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.2}{}", UNITS[u])
}

/// The client address: from `relay.realIpHeader` when set (a single address, or an
/// X-Forwarded-For list, of which the last entry is used: see `parse_forwarded`), else the
/// socket's.
pub fn real_ip(
    req: &httparse::Request<'_, '_>,
    header: &str,
    socket: IpAddr,
    may_log: impl FnOnce() -> bool,
) -> IpAddr {
    if header.is_empty() {
        return socket;
    }
    let Some(h) = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(header))
    else {
        return socket;
    };
    match std::str::from_utf8(h.value).ok().and_then(parse_forwarded) {
        Some(ip) => ip,
        None => {
            if may_log() {
                log::warn!("could not parse {header} header, using socket address {socket}");
            }
            socket
        }
    }
}

/// The address a list ends with: a proxy *appends* the address it saw to any
/// `X-Forwarded-For` the client sent, so only the last entry can be trusted (the first is
/// whatever the client claims). Accepts `[v6]:port` and `v4:port` forms.
pub fn parse_forwarded(v: &str) -> Option<IpAddr> {
    let last = v.rsplit(',').next()?.trim();
    if let Ok(ip) = last.parse() {
        return Some(ip);
    }
    if let Ok(sa) = last.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    last.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WebSocket connection over a real loopback socket, and its peer.
    fn ws_conn() -> (Conn, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let peer = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (s, _) = l.accept().expect("accept");
        // Room for more than one write budget in flight, so the budget (not the socket)
        // is what stops the first flush.
        socket2::SockRef::from(&s)
            .set_send_buffer_size(1 << 20)
            .expect("sndbuf");
        socket2::SockRef::from(&peer)
            .set_recv_buffer_size(1 << 20)
            .expect("rcvbuf");
        s.set_nonblocking(true).expect("nonblocking");
        let ws = Ws {
            stream: TcpStream::from_std(s),
            dec: Decoder::new(1 << 20, None),
            enc: Encoder::new(None),
            wbuf: Vec::new(),
            wpos: 0,
            close_sent: false,
            close_received: false,
            shut: false,
            pong: None,
            failed: false,
            offload: false,
            shares: None,
        };
        let c = Conn {
            phase: Phase::Ws(Box::new(ws)),
            ip: IpAddr::from([127, 0, 0, 1]),
            out: VecDeque::new(),
            pending: 0,
            published: None,
            last_seen: Instant::now(),
            pinged: false,
            closing_since: None,
            stalled: None,
            inflight: InFlight::new(Arc::new(Metrics::default())),
            paused: false,
            lane: LaneState::default(),
            more_to_read: false,
            more_to_write: false,
            closing: false,
            limits: None,
            throttled: false,
            unannounced: None,
        };
        (c, peer)
    }

    /// One turn writes about one budget to a connection with a big backlog and marks it
    /// for the next turn, so a turn stays short and every connection gets its slice
    /// (issue 20); the rest follows in later turns, all of it, in order.
    #[test]
    fn a_turn_writes_one_budget_to_a_busy_connection() {
        let (mut c, mut peer) = ws_conn();
        let msg = vec![b'x'; 16 * 1024];
        let n = 64;
        for _ in 0..n {
            c.out
                .push_back((Out::Text(msg.clone()), msg.len(), msg.len(), false));
        }
        let reader = std::thread::spawn(move || {
            let mut got = 0usize;
            let mut buf = vec![0u8; 64 * 1024];
            // Every message's frame: a 4-byte header and the payload.
            while got < n * (msg.len() + 4) {
                match peer.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => got += k,
                }
            }
            got
        });
        assert!(flush(&mut c, WRITE_BUDGET));
        let written = n * (16 * 1024 + 4) - c.out.len() * (16 * 1024 + 4);
        assert!(
            written <= WRITE_BUDGET + WBUF_TARGET,
            "one turn framed {written} bytes for one connection"
        );
        assert!(c.more_to_write, "the rest must be written next turn");
        // Later turns finish it while the peer reads (bounded in time).
        let deadline = Instant::now() + Duration::from_secs(20);
        while (!c.out.is_empty() || c.more_to_write) && Instant::now() < deadline {
            assert!(flush(&mut c, WRITE_BUDGET));
            std::thread::yield_now();
        }
        let flushed = matches!(&c.phase, Phase::Ws(ws) if ws.wbuf.is_empty());
        assert!(c.out.is_empty() && flushed, "backlog left");
        drop(c);
        assert_eq!(reader.join().expect("reader"), n * (16 * 1024 + 4));
    }

    /// A scan slice packed in one batch is framed a piece at a time like separate
    /// messages: one turn stays within its budget, the published backlog (what req-workers
    /// pause on) and `pending` shrink by exactly what was framed, and every message
    /// arrives whole and in order.
    #[test]
    fn a_packed_batch_is_framed_in_pieces_and_accounted_exactly() {
        let (mut c, mut peer) = ws_conn();
        let (n, size) = (64usize, 16 * 1024);
        let mut batch = TextBatch::default();
        for i in 0..n {
            batch.push_with(|out| out.extend(std::iter::repeat_n(i as u8, size)));
        }
        let (len, cost) = (batch.bytes(), cost(batch.capacity()));
        let published = Arc::new(AtomicUsize::new(len));
        c.published = Some(published.clone());
        queue_len(&mut c, Out::Batch(batch), len, cost, true);
        let reader = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            while bytes.len() < n * (size + 4) {
                match peer.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => bytes.extend_from_slice(&buf[..k]),
                }
            }
            bytes
        });
        assert!(flush(&mut c, WRITE_BUDGET));
        let framed = len - published.load(Ordering::Relaxed);
        assert!(
            framed > 0 && framed < len,
            "one turn framed {framed} of {len}"
        );
        assert!(framed <= WRITE_BUDGET + WBUF_TARGET);
        assert_eq!(
            c.pending,
            cost - framed,
            "pending must drop by what was framed"
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while (!c.out.is_empty() || c.more_to_write) && Instant::now() < deadline {
            assert!(flush(&mut c, WRITE_BUDGET));
            std::thread::yield_now();
        }
        assert!(c.out.is_empty(), "backlog left");
        assert_eq!((c.pending, published.load(Ordering::Relaxed)), (0, 0));
        drop(c);
        let bytes = reader.join().expect("reader");
        assert_eq!(bytes.len(), n * (size + 4));
        for (i, frame) in bytes.chunks(size + 4).enumerate() {
            // 0x81 (FIN, text), 126: a 16-bit length follows.
            assert_eq!(frame[..4], [0x81, 126, (size >> 8) as u8, size as u8]);
            assert!(
                frame[4..].iter().all(|&b| b == i as u8),
                "message {i} out of order"
            );
        }
    }

    #[test]
    fn forwarded_chains() {
        use super::parse_forwarded;
        assert_eq!(
            parse_forwarded("1.2.3.4").map(|i| i.to_string()),
            Some("1.2.3.4".into())
        );
        assert_eq!(
            parse_forwarded(" 6.6.6.6 , 1.2.3.4").map(|i| i.to_string()),
            Some("1.2.3.4".into())
        );
        assert_eq!(
            parse_forwarded("6.6.6.6, 2001:db8::1").map(|i| i.to_string()),
            Some("2001:db8::1".into())
        );
        assert_eq!(
            parse_forwarded("[2001:db8::1]:443").map(|i| i.to_string()),
            Some("2001:db8::1".into())
        );
        assert_eq!(
            parse_forwarded("1.2.3.4:80").map(|i| i.to_string()),
            Some("1.2.3.4".into())
        );
        assert_eq!(parse_forwarded("nonsense"), None);
    }
}
