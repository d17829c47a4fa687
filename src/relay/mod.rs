//! `wok relay`: the staged pipeline (DESIGN §1). `start` builds the channels, spawns every
//! stage on its own OS thread and returns a handle; stages share only channels, the store
//! and the (reloadable) config.

pub mod auth;
pub mod compressor;
pub mod conn_map;
pub mod deflate;
pub mod extension;
pub mod fair;
pub mod frame;
pub mod hll_cache;
pub mod http;
pub mod inbox;
pub mod ingester;
pub mod io;
pub mod landing;
pub mod log_budget;
pub mod management;
pub mod metrics;
pub mod monitors;
pub mod msg;
pub mod negentropy;
pub mod prune;
pub mod req_monitor;
pub mod req_worker;
pub mod write_policy;
pub mod writer;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded};

use crate::config::Config;
use crate::nostr::message::DecodeLimits;
use crate::nostr::TimeWindow;
use crate::store::Store;
use metrics::Metrics;
use msg::{IoSender, Lane, Pool};

use crate::policy::now;

/// The JSON of a stored event, for sending; `None` when it is gone or cannot be decoded.
/// An undecodable payload (its zstd dictionary missing, say) is logged and skipped, so one
/// bad row neither ends a client's scan nor stalls live delivery for everyone.
pub(crate) fn stored_json<'t>(
    store: &Store,
    txn: &'t heed::RoTxn<'_>,
    lev: crate::store::LevId,
) -> crate::store::Result<Option<std::borrow::Cow<'t, [u8]>>> {
    use crate::store::StoreError;
    static FAILURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    match store.payload(txn, lev) {
        Err(e @ (StoreError::MissingDictionary(_) | StoreError::Corrupt(_))) => {
            // Logged at 1, 2, 4, 8, … failures: visible without flooding the log.
            let n = FAILURES.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                log::error!("levId {lev}: payload not readable, event not sent ({n} so far): {e}");
            }
            Ok(None)
        }
        other => other,
    }
}

/// Pending outbound bytes per connection, published by the io thread.
pub type Outbound =
    std::sync::Mutex<std::collections::HashMap<msg::ConnId, Arc<std::sync::atomic::AtomicUsize>>>;

/// What every stage may read.
pub struct Shared {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub outbound: Arc<Outbound>,
    /// When the relay started (uptime on the landing page).
    pub started: std::time::Instant,
    /// Filter values held by live and scanning subscriptions, all connections together
    /// (`Filter::values`; kept by the req-workers against `relay.maxFilterValuesTotal`).
    pub filter_values: AtomicUsize,
    /// Access control and bans (`policy::access`), read per message from a per-thread copy.
    pub access: Arc<crate::policy::access::Access>,
    /// Authenticated pubkeys' rate-limit buckets (looked up once per AUTH).
    pub pubkeys: crate::policy::limits::Pubkeys,
    /// NIP-45 COUNT answers with `hll`, extended by newer events (`hll_cache`).
    pub hll_cache: hll_cache::HllCache,
    config: RwLock<Arc<Config>>,
}

impl Shared {
    /// For a stage under test, without sockets: the relay's shared state over `store`.
    #[cfg(test)]
    pub(crate) fn for_tests(store: Store, cfg: Config) -> Arc<Shared> {
        let access = crate::policy::access::Access::load(&store, &cfg).expect("access");
        Arc::new(Shared {
            store,
            metrics: Arc::default(),
            outbound: Arc::default(),
            started: std::time::Instant::now(),
            filter_values: AtomicUsize::new(0),
            access: Arc::new(access),
            pubkeys: Default::default(),
            hll_cache: Default::default(),
            config: RwLock::new(Arc::new(cfg)),
        })
    }

    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn decode_limits(&self, cfg: &Config) -> DecodeLimits {
        let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        DecodeLimits {
            event: cfg.event_limits(),
            max_filters: n(cfg.relay.max_req_filter_size),
            max_tags_per_filter: n(cfg.relay.max_tags_per_filter),
            max_values_per_filter: match cfg.relay.max_filter_values {
                0 => usize::MAX,
                v => n(v),
            },
        }
    }

    pub fn time_window(&self, cfg: &Config) -> TimeWindow {
        TimeWindow {
            newer_than_secs: cfg.events.reject_events_newer_than_seconds,
            older_than_secs: cfg.events.reject_events_older_than_seconds,
            ephemeral_older_than_secs: cfg.events.reject_ephemeral_events_older_than_seconds,
        }
    }
}

/// A running relay.
pub struct Relay {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    http: Arc<RwLock<http::HttpInfo>>,
    shutdown: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    waker: Arc<mio::Waker>,
    io_thread: Option<JoinHandle<()>>,
    stages: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Binds `relay.bind:relay.port` (SO_REUSEPORT) and starts every stage.
    pub fn start(cfg: Config, store: Store) -> std::io::Result<Relay> {
        let addr: SocketAddr = format!("{}:{}", cfg.relay.bind, cfg.relay.port)
            .parse()
            .or_else(|_| format!("[{}]:{}", cfg.relay.bind, cfg.relay.port).parse())
            .map_err(|_| {
                std::io::Error::other(format!("bad relay.bind address: {}", cfg.relay.bind))
            })?;
        let listener = listen(addr)?;
        let addr = listener.local_addr()?;
        let poll = mio::Poll::new()?;
        let mut listener = mio::net::TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, io::LISTENER, mio::Interest::READABLE)?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), io::WAKER)?);

        let metrics = Arc::new(Metrics::default());
        let threads = |n: u64| usize::try_from(n.max(1)).unwrap_or(1);
        let nt = &cfg.relay.num_threads;
        let (n_ing, n_req, n_mon, n_neg) = (
            threads(nt.ingester),
            threads(nt.req_worker),
            threads(nt.req_monitor),
            threads(nt.negentropy),
        );
        let access = Arc::new(
            crate::policy::access::Access::load(&store, &cfg)
                .map_err(|e| std::io::Error::other(format!("management table: {e}")))?,
        );
        let http = Arc::new(RwLock::new(http_info(&cfg, &access.snapshot(), addr)));
        let io_cfg = io::IoConfig {
            max_payload: usize::try_from(cfg.relay.max_websocket_payload_size)
                .unwrap_or(usize::MAX),
            max_pending: usize::try_from(cfg.relay.max_pending_outbound_bytes)
                .unwrap_or(usize::MAX),
            max_total_pending: usize::try_from(cfg.relay.max_total_pending_outbound_bytes)
                .unwrap_or(usize::MAX),
            auto_ping: (cfg.relay.auto_ping_seconds > 0)
                .then(|| Duration::from_secs(cfg.relay.auto_ping_seconds)),
            keepalive: cfg.relay.enable_tcp_keepalive,
            real_ip_header: cfg.relay.real_ip_header.clone(),
            compression: cfg.relay.compression.enabled,
            sliding_window: cfg.relay.compression.sliding_window,
            max_inflight_msgs: cfg.relay.max_messages_in_flight_per_connection,
            max_inflight_bytes: cfg.relay.max_bytes_in_flight_per_connection,
            busy_at: cfg.relay.busy_at_messages_in_flight,
            limits: cfg.relay.limits.clone(),
        };
        let outbound: Arc<Outbound> = Arc::default();
        // The config decides, whatever the store was opened with (tests open it themselves).
        store.set_compress_new_events(cfg.events.compression);
        store.set_search_kinds(crate::store::search_kinds_of(&cfg));
        let shared = Arc::new(Shared {
            store,
            metrics: metrics.clone(),
            outbound: outbound.clone(),
            started: std::time::Instant::now(),
            filter_values: AtomicUsize::new(0),
            access,
            pubkeys: Default::default(),
            hll_cache: Default::default(),
            config: RwLock::new(Arc::new(cfg)),
        });

        let (io_tx, io_rx) = unbounded();
        let woken = Arc::new(AtomicBool::new(false));
        let io_sender = IoSender {
            tx: io_tx,
            waker: waker.clone(),
            woken: woken.clone(),
        };
        // The busy lane's io thread (see `io::link`): its own poll, inbox and waker; it
        // runs until the main io thread tells it to stop. The busy lane's stage threads
        // answer through it; every other stage through the main one.
        let busy_poll = mio::Poll::new()?;
        let (busy_tx, busy_rx) = unbounded();
        let busy_sender = IoSender {
            tx: busy_tx,
            waker: Arc::new(mio::Waker::new(busy_poll.registry(), io::WAKER)?),
            woken: Arc::new(AtomicBool::new(false)),
        };
        let io_of = |lane: Lane| match lane {
            Lane::Light => io_sender.clone(),
            Lane::Busy => busy_sender.clone(),
        };
        // Bounded inboxes: a flood waits in the socket buffers, not in memory.
        // Light and busy lanes (`msg::Lane`): n threads each.
        let (mut ing_tx, ing_rx): (Vec<_>, Vec<_>) =
            (0..2 * n_ing).map(|_| inbox::bounded(4096)).unzip();
        let (mut req_tx, req_rx): (Vec<_>, Vec<_>) =
            (0..2 * n_req).map(|_| inbox::bounded(4096)).unzip();
        let (mon_tx, mon_rx): (Vec<_>, Vec<_>) = (0..n_mon).map(|_| inbox::unbounded()).unzip();
        let (neg_tx, neg_rx): (Vec<_>, Vec<_>) = (0..n_neg).map(|_| inbox::bounded(4096)).unzip();
        // One write-policy thread (and plugin process) per ingester; idle without a plugin.
        let (pol_tx, pol_rx): (Vec<_>, Vec<_>) = (0..n_ing).map(|_| inbox::bounded(4096)).unzip();
        let (writer_tx, writer_rx) = inbox::bounded(65_536);
        let ingesters = Pool::with_busy(ing_tx.drain(..n_ing).collect(), ing_tx);
        let reqs = Pool::with_busy(req_tx.drain(..n_req).collect(), req_tx);
        let monitors = Pool::new(mon_tx);
        let negs = Pool::new(neg_tx);
        let policies = Pool::new(pol_tx);
        if let Ok(mut q) = metrics.queues.lock() {
            q.push(("ingester", Box::new(depth(&ing_rx))));
            q.push(("reqWorker", Box::new(depth(&req_rx))));
            q.push(("reqMonitor", Box::new(depth(&mon_rx))));
            q.push(("writer", Box::new(depth(std::slice::from_ref(&writer_rx)))));
            q.push(("negentropy", Box::new(depth(&neg_rx))));
            q.push(("writePolicy", Box::new(depth(&pol_rx))));
        }
        let mut stages = Vec::new();
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new().name(name).spawn(f)
        };
        for (i, (rx, sessions)) in ing_rx.into_iter().zip(pair_views(n_ing)).enumerate() {
            let (lane, name) = lane_of(i, n_ing, "Ingester");
            let s = ingester::Ingester {
                rx,
                sessions: RefCell::new(sessions),
                lane,
                shared: shared.clone(),
                io: io_of(lane),
                reqs: reqs.lane(lane),
                negs: negs.clone(),
                policy: policies.clone(),
            };
            stages.push(spawn(name, Box::new(move || s.run()))?);
        }
        drop(policies);
        for (i, rx) in pol_rx.into_iter().enumerate() {
            let s = write_policy::Policy {
                rx,
                shared: shared.clone(),
                io: io_sender.clone(),
                writer: writer_tx.clone(),
                monitors: monitors.clone(),
            };
            stages.push(spawn(
                format!("WritePolicy {i}"),
                Box::new(move || s.run()),
            )?);
        }
        drop(writer_tx);
        let w = writer::Writer {
            rx: writer_rx,
            shared: shared.clone(),
            io: io_sender.clone(),
            monitors: monitors.clone(),
        };
        stages.push(spawn("Writer".into(), Box::new(move || w.run()))?);
        for (i, (rx, subs)) in req_rx.into_iter().zip(pair_views(n_req)).enumerate() {
            let (lane, name) = lane_of(i, n_req, "ReqWorker");
            let s = req_worker::ReqWorker {
                rx,
                subs: RefCell::new(subs),
                lane,
                shared: shared.clone(),
                io: io_of(lane),
                monitors: monitors.clone(),
            };
            stages.push(spawn(name, Box::new(move || s.run()))?);
        }
        for (i, rx) in mon_rx.into_iter().enumerate() {
            let s = req_monitor::ReqMonitor {
                rx,
                shared: shared.clone(),
                io: io_sender.clone(),
            };
            stages.push(spawn(format!("ReqMonitor {i}"), Box::new(move || s.run()))?);
        }
        for (i, rx) in neg_rx.into_iter().enumerate() {
            let s = negentropy::NegWorker {
                rx,
                shared: shared.clone(),
                io: io_sender.clone(),
            };
            stages.push(spawn(format!("Negentropy {i}"), Box::new(move || s.run()))?);
        }
        drop(negs);
        // One per core but the io thread's, at least one, at most four: compression with
        // context takeover is CPU work the io thread no longer does (the threads idle
        // unless clients agree to a sliding window).
        let compressors = Some(compressor::Compressors::start(
            std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1).clamp(1, 4)),
            &io_sender,
        )?);
        // NIP-86 calls, handed over by io (bounded: a flood of calls gets 503, not memory).
        let (manage_tx, manage_rx) = bounded(256);
        let m = management::Management {
            rx: manage_rx,
            shared: shared.clone(),
            io: io_sender.clone(),
            http: http.clone(),
            addr,
        };
        stages.push(spawn("Management".into(), Box::new(move || m.run()))?);

        let shutdown = Arc::new(AtomicBool::new(false));
        let draining = Arc::new(AtomicBool::new(false));
        let backlogs: Arc<[AtomicUsize; 2]> = Arc::default();
        let new_log_budget = || {
            std::cell::RefCell::new(log_budget::LogBudget::new(
                log_budget::LINES_PER_SEC,
                std::time::Instant::now(),
            ))
        };
        let busy_stop = Arc::new(AtomicBool::new(false));
        let busy = io::Io {
            poll: busy_poll,
            listener: None,
            rx: busy_rx,
            compressors: compressors.as_ref().map(compressor::Compressors::handle),
            ingesters: ingesters.clone(),
            manage: manage_tx.clone(),
            http: http.clone(),
            metrics: metrics.clone(),
            cfg: io_cfg.clone(),
            shutdown: busy_stop.clone(),
            draining: draining.clone(),
            outbound: outbound.clone(),
            shared: shared.clone(),
            woken: busy_sender.woken.clone(),
            log_budget: new_log_budget(),
            ips: Default::default(),
            closes: Default::default(),
            link: io::Link::Busy(io::BusyLink::new(io_sender)),
            backlogs: backlogs.clone(),
        };
        let busy_thread = spawn("WebsocketBusy".into(), Box::new(move || busy.run()))?;
        let io = io::Io {
            poll,
            listener: Some(listener),
            rx: io_rx,
            compressors,
            ingesters,
            manage: manage_tx,
            http: http.clone(),
            metrics,
            cfg: io_cfg,
            shutdown: shutdown.clone(),
            draining: draining.clone(),
            outbound,
            shared: shared.clone(),
            woken,
            log_budget: new_log_budget(),
            ips: Default::default(),
            closes: Default::default(),
            link: io::Link::Main(io::MainLink::new(busy_sender, busy_thread, busy_stop)),
            backlogs,
        };
        let io_thread = Some(spawn("Websocket".into(), Box::new(move || io.run()))?);
        log::info!("relay listening on {addr}");
        Ok(Relay {
            addr,
            shared,
            http,
            shutdown,
            draining,
            waker,
            io_thread,
            stages,
        })
    }

    /// The relay's store (read-only use: only the writer stage writes).
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// Stops accepting, closes connections, lets every stage drain its inbox (the writer
    /// commits what it was given) and joins the threads.
    pub fn stop(mut self) {
        self.shutdown.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
        self.join();
    }

    /// Blocks until the relay stops.
    pub fn wait(mut self) {
        self.join();
    }

    /// strfry's SIGUSR1: stop accepting connections and exit once the last client has left.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        let _ = self.waker.wake();
    }

    /// Has the io thread finished (after `drain`, when the last client left)?
    pub fn is_finished(&self) -> bool {
        self.io_thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Applies a reloaded config: keys that need a restart keep their running value (each
    /// change is logged); the rest take effect on their next use.
    pub fn reload(&self, new: crate::config::Config) {
        let old = self.shared.config();
        let (effective, changes) = crate::config::diff_reload(&old, &new);
        // NIP-11 and the landing page follow the new values.
        render_http(&self.http, &effective, &self.shared, self.addr);
        self.shared
            .store
            .set_compress_new_events(effective.events.compression);
        self.shared
            .store
            .set_search_kinds(crate::store::search_kinds_of(&effective));
        match self.shared.config.write() {
            Ok(mut c) => *c = Arc::new(effective),
            Err(p) => *p.into_inner() = Arc::new(effective),
        }
        // Logged once applied, so a logged change is one already in effect.
        for line in changes {
            log::info!("{line}");
        }
    }

    fn join(&mut self) {
        if let Some(t) = self.io_thread.take() {
            let _ = t.join();
        }
        for t in self.stages.drain(..) {
            let _ = t.join();
        }
    }
}

/// `cfg` with the NIP-11 fields NIP-86 overrode (`changerelayname` …) in place.
fn with_info_overrides(cfg: &Config, a: &crate::policy::access::Snapshot) -> Config {
    let mut c = cfg.clone();
    if let Some(v) = &a.name {
        c.relay.info.name.clone_from(v);
    }
    if let Some(v) = &a.description {
        c.relay.info.description.clone_from(v);
    }
    if let Some(v) = &a.icon {
        c.relay.info.icon.clone_from(v);
    }
    c
}

/// NIP-11 and the landing page from the config and the management overrides.
fn http_info(
    cfg: &Config,
    a: &crate::policy::access::Snapshot,
    addr: SocketAddr,
) -> http::HttpInfo {
    let cfg = with_info_overrides(cfg, a);
    let mut doc = nip11_doc(&cfg);
    // What a client must know before writing or reading (NIP-11 `limitation`); the
    // allowlist in the DB counts too.
    let restricted = a.restricted(crate::policy::access::write_mode(&cfg));
    let pow = &cfg.relay.pow;
    doc["limitation"]["restricted_writes"] = serde_json::json!(
        restricted || pow.min_difficulty > 0 || !pow.kind_difficulty.trim().is_empty()
    );
    if restricted && cfg.relay.management.restrict_reads {
        doc["limitation"]["auth_required"] = serde_json::json!(true);
    }
    http::HttpInfo {
        nip11: doc.to_string(),
        landing: landing::Landing::new(&cfg, addr),
    }
}

/// Re-renders what the HTTP side serves (after a reload or a management change).
pub(crate) fn render_http(
    h: &RwLock<http::HttpInfo>,
    cfg: &Config,
    shared: &Shared,
    addr: SocketAddr,
) {
    let info = http_info(cfg, &shared.access.snapshot(), addr);
    match h.write() {
        Ok(mut h) => *h = info,
        Err(p) => *p.into_inner() = info,
    }
}

/// Each thread's view of its pair's per-connection map, in `lane_of`'s order: the `n` light
/// threads' views, then their busy siblings' (thread `i` and `n + i` share one map).
fn pair_views<V: Default>(n: usize) -> impl Iterator<Item = conn_map::ConnMap<V>> {
    let (light, busy): (Vec<_>, Vec<_>) = (0..n).map(|_| conn_map::ConnMap::pair()).unzip();
    light.into_iter().chain(busy)
}

/// The lane of a pool's `i`th thread (the first `n` are light) and its name, which says so
/// (`top -H` shows which threads the busy connections keep busy).
fn lane_of(i: usize, n: usize, stage: &str) -> (Lane, String) {
    if i < n {
        (Lane::Light, format!("{stage} {i}"))
    } else {
        // Thread names are cut at 15 bytes: "ReqWorkerBusy 0".
        (Lane::Busy, format!("{stage}Busy {}", i - n))
    }
}

/// A stage thread's CPU scheduling, following the config (checked each time the thread
/// wakes for work, so a reload applies within a moment).
///
/// Busy-lane threads take `relay.busyLaneNice`: a nice value 0-19, or 20 for SCHED_IDLE,
/// below every nice value. SCHED_IDLE is more than nice 19 with less weight: a waking thread
/// of any nice value preempts it at once, where a nice-19 one may run on to the end of its
/// time slice (about 1.4 ms with EEVDF on two cores).
///
/// With `relay.batchScheduling` the pipeline's threads (not the io threads, not the writer)
/// run as SCHED_BATCH: a thread woken with work no longer preempts the running one, which
/// goes on until it blocks or its slice ends. Each hop of a request wakes the next stage;
/// with more stage threads than cores, preempting the sender mid-batch meant switching back
/// to it soon after. On 2 cores about 10% less CPU per REQ (README, "Configuration"). The
/// writer stays out: its wake-ups carry every OK and live delivery. A SCHED_IDLE thread is
/// still preempted at once by a SCHED_BATCH one.
#[derive(Default)]
pub(crate) struct ThreadPriority {
    /// The (nice, batch) last applied.
    set: Option<(u64, bool)>,
}

/// `relay.busyLaneNice` meaning SCHED_IDLE.
pub(crate) const SCHED_IDLE_NICE: u64 = 20;

impl ThreadPriority {
    /// For a pipeline thread of `lane`, as the config says now.
    pub(crate) fn follow_config(&mut self, lane: Lane, cfg: &crate::config::Config) {
        self.follow(lane, cfg.relay.busy_lane_nice, cfg.relay.batch_scheduling);
    }

    /// For a thread of `lane` given `relay.busyLaneNice` and `relay.batchScheduling`.
    pub(crate) fn follow(&mut self, lane: Lane, busy_nice: u64, batch: bool) {
        let nice = match lane {
            Lane::Busy => busy_nice.min(SCHED_IDLE_NICE),
            // Light threads keep the process's own nice value.
            Lane::Light => 0,
        };
        let want = (nice, batch);
        if self.set == Some(want) {
            return;
        }
        // Tried once per value: raising the priority again (a reload from 19 to 10, or from
        // 20 to any nice value) needs CAP_SYS_NICE or RLIMIT_NICE; without them the thread
        // keeps its priority.
        let first = self.set.is_none();
        let was = self.set.replace(want).unwrap_or((0, false));
        #[cfg(target_os = "linux")]
        {
            let policy = |(nice, batch): (u64, bool)| match (nice == SCHED_IDLE_NICE, batch) {
                (true, _) => libc::SCHED_IDLE,
                (false, true) => libc::SCHED_BATCH,
                (false, false) => libc::SCHED_OTHER,
            };
            let (from, to) = (policy(was), policy(want));
            if from != to {
                let p = libc::sched_param { sched_priority: 0 };
                // SAFETY: `p` outlives the call; pid 0 is the calling thread.
                if unsafe { libc::sched_setscheduler(0, to, &p) } != 0 {
                    let name = match to {
                        libc::SCHED_IDLE => "SCHED_IDLE (relay.busyLaneNice = 20)",
                        libc::SCHED_BATCH => "SCHED_BATCH (relay.batchScheduling)",
                        _ => "SCHED_OTHER",
                    };
                    log::warn!(
                        "a {} stage thread cannot switch to {name}: {}",
                        if lane == Lane::Busy { "busy" } else { "light" },
                        std::io::Error::last_os_error()
                    );
                    return;
                }
            }
            if lane == Lane::Busy && to != libc::SCHED_IDLE && (first || nice != was.0) {
                let v = i32::try_from(nice).unwrap_or(19);
                // SAFETY: setpriority touches no memory; `who` 0 is the calling thread on Linux.
                if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, v) } != 0 {
                    log::warn!(
                        "busy lane: cannot set nice {v}: {}",
                        std::io::Error::last_os_error()
                    );
                }
            }
        }
    }
}

/// A queue-depth reader over a pool's inboxes, through receivers that never take a message
/// (holding senders would keep stages alive at shutdown).
fn depth<T: Send + 'static>(inboxes: &[inbox::Inbox<T>]) -> impl Fn() -> usize + Send {
    let rs: Vec<_> = inboxes.iter().map(inbox::Inbox::depth_probe).collect();
    move || rs.iter().map(|r| r.len()).sum()
}

fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    // Several relay processes may share the port (and the DB), as with strfry.
    s.set_reuse_port(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// The NIPs this relay serves with `cfg`, sorted (what NIP-11 and the landing page list,
/// unless `relay.info.nips` replaces it).
pub fn supported_nips(cfg: &Config) -> Vec<u64> {
    let r = &cfg.relay;
    // Always on: NIP-01 (with NIP-02's kind 3 and NIP-28's channel kinds as its
    // replaceable/regular kinds), NIP-09 deletions, NIP-11, NIP-40 expiration (refused when
    // already expired, never served, purged), NIP-70 protected events (refused unless their
    // author has authenticated, so refused outright while AUTH cannot succeed).
    let mut nips: Vec<u64> = vec![1, 2, 9, 11, 28, 40, 70];
    let auth = r.auth.enabled && !r.auth.service_url.is_empty();
    if auth {
        nips.push(42);
    }
    // DMs (kind 4) and gift wraps (kind 1059, whose recipients may also delete them) are
    // advertised only when their readers can fetch them: restricted kinds need AUTH.
    let restricted = auth::restricted_kinds(cfg);
    for (nip, kind) in [(4, 4), (59, 1059)] {
        if auth || !restricted.contains(&kind) {
            nips.push(nip);
        }
    }
    if r.max_filter_limit_count > 0 {
        nips.push(45);
    }
    if cfg.search.enabled {
        nips.push(50);
    }
    if r.negentropy.enabled {
        nips.push(77);
    }
    // NIP-86 once someone may manage the relay.
    if !r.management.admin_pubkeys.trim().is_empty() {
        nips.push(86);
    }
    // NIP-13 only while some kind must carry proof of work.
    if r.pow.min_difficulty > 0 || !r.pow.kind_difficulty.trim().is_empty() {
        nips.push(13);
    }
    if !r.info.nips.trim().is_empty() {
        match serde_json::from_str::<Vec<u64>>(&r.info.nips) {
            Ok(v) => nips = v,
            Err(e) => log::warn!(
                "relay.info.nips is not a JSON array of numbers ({e}); using the default"
            ),
        }
    }
    nips.sort_unstable();
    nips.dedup();
    nips
}

/// The NIP-11 document as a value, from `relay.info.*` and what is enabled.
pub fn nip11_doc(cfg: &Config) -> serde_json::Value {
    let r = &cfg.relay;
    let mut doc = serde_json::json!({
        "name": r.info.name,
        "description": r.info.description,
        "software": "https://github.com/wok-relay/wok",
        "version": env!("CARGO_PKG_VERSION"),
        "supported_nips": supported_nips(cfg),
        "limitation": {
            "max_message_length": r.max_websocket_payload_size,
            "max_subscriptions": r.max_subs_per_connection,
            "max_filters": r.max_req_filter_size,
            "max_limit": r.max_filter_limit,
            "max_event_tags": cfg.events.max_num_tags,
            "max_content_length": cfg.events.max_event_size,
            "max_filter_values": r.max_filter_values,
            "max_filter_values_per_connection": r.max_filter_values_per_connection,
            "auth_required": false,
        },
    });
    if r.pow.min_difficulty > 0 {
        doc["limitation"]["min_pow_difficulty"] = serde_json::json!(r.pow.min_difficulty);
    }
    // NIP-11 `retention`: what the relay deletes by itself ({"kinds":[…],"time":s} /
    // {"kinds":[…],"count":n}); rules with neither only serve the size budget.
    if let Ok(rules) = cfg.retention_rules() {
        let list: Vec<serde_json::Value> = rules
            .0
            .iter()
            .filter(|r| r.max_age_seconds.is_some() || r.max_events_per_pubkey.is_some())
            .map(|r| r.nip11())
            .collect();
        if !list.is_empty() {
            doc["retention"] = serde_json::Value::Array(list);
        }
    }
    // NIP-11 has no fields for rates: wok's own, for what one IP must keep to (0 = none).
    // Per-connection and per-pubkey limits are not advertised when off (0).
    let l = &r.limits;
    if l.enabled {
        let lim = &mut doc["limitation"];
        for (key, val) in [
            ("events_per_second", l.events_per_second_per_ip),
            ("events_burst", l.events_burst_per_ip),
            ("reqs_per_second", l.reqs_per_second_per_ip),
            ("reqs_burst", l.reqs_burst_per_ip),
            ("neg_opens_per_second", l.neg_opens_per_second_per_ip),
            ("neg_opens_burst", l.neg_opens_burst_per_ip),
            ("bytes_per_second", l.bytes_per_second_per_ip),
            ("max_subscriptions_per_ip", l.max_subscriptions_per_ip),
            ("max_connections_per_ip", l.max_connections_per_ip),
            (
                "new_connections_per_second",
                l.new_connections_per_second_per_ip,
            ),
            (
                "events_per_second_per_connection",
                l.events_per_second_per_connection,
            ),
            (
                "reqs_per_second_per_connection",
                l.reqs_per_second_per_connection,
            ),
            (
                "events_per_second_per_pubkey",
                l.events_per_second_per_pubkey,
            ),
            ("reqs_per_second_per_pubkey", l.reqs_per_second_per_pubkey),
        ] {
            if val > 0 {
                lim[key] = val.into();
            }
        }
    }
    for (key, val) in [
        ("pubkey", &r.info.pubkey),
        ("self", &r.info.self_pubkey),
        ("contact", &r.info.contact),
        ("icon", &r.info.icon),
        ("banner", &r.info.banner),
        ("privacy_policy", &r.info.privacy),
        ("terms_of_service", &r.info.terms),
    ] {
        if !val.is_empty() {
            doc[key] = serde_json::Value::String(val.clone());
        }
    }
    doc
}

/// The NIP-11 document, from `relay.info.*` and what is enabled.
pub fn nip11(cfg: &Config) -> String {
    nip11_doc(cfg).to_string()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// This thread's scheduling policy and nice value, from /proc (fields 41 and 19).
    fn policy_and_nice() -> (i64, i64) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("stat");
        // After the parenthesised name, state is field 3.
        let f: Vec<i64> = stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(-1))
            .collect();
        (f[38], f[16])
    }

    /// `busyLaneNice` 20 is SCHED_IDLE, a lower value a nice value; light threads keep the
    /// process's nice value; `batchScheduling` makes every non-idle thread SCHED_BATCH.
    #[test]
    fn a_stage_thread_follows_busy_lane_nice_and_batch_scheduling() {
        let run = |steps: &'static [(Lane, u64, bool)]| {
            std::thread::spawn(move || {
                let mut n = ThreadPriority::default();
                for &(lane, nice, batch) in steps {
                    n.follow(lane, nice, batch);
                }
                policy_and_nice()
            })
            .join()
            .expect("thread")
        };
        let (policy, nice) = std::thread::spawn(policy_and_nice).join().expect("thread");
        let (other, batch, idle) = (
            i64::from(libc::SCHED_OTHER),
            i64::from(libc::SCHED_BATCH),
            i64::from(libc::SCHED_IDLE),
        );
        assert_eq!(run(&[(Lane::Light, 20, false)]), (policy, nice));
        assert_eq!(run(&[(Lane::Light, 20, true)]), (batch, nice));
        assert_eq!(run(&[(Lane::Busy, 19, false)]), (policy, 19));
        assert_eq!(run(&[(Lane::Busy, 19, true)]), (batch, 19));
        assert_eq!(run(&[(Lane::Busy, SCHED_IDLE_NICE, true)]).0, idle);
        assert_eq!(run(&[(Lane::Busy, 99, false)]).0, idle);
        // Reloads: batch off again (an unprivileged thread may leave SCHED_BATCH too).
        assert_eq!(
            run(&[(Lane::Light, 0, true), (Lane::Light, 0, false)]),
            (other, nice)
        );
        assert_eq!(
            run(&[(Lane::Busy, 10, true), (Lane::Busy, 10, false)]),
            (other, 10)
        );
        // From 20 to 19: back to a nice value where leaving SCHED_IDLE is allowed (root, as
        // in CI), else the thread stays idle (and says so in the log).
        let back = run(&[(Lane::Busy, SCHED_IDLE_NICE, true), (Lane::Busy, 19, true)]);
        // SAFETY: geteuid only reads the calling process's credentials.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(back, (batch, 19));
        } else {
            assert_eq!(back.0, idle);
        }
    }
}
