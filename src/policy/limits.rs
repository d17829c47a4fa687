//! Rate limits (`relay.limits.*`): token buckets per IP, per authenticated pubkey and per
//! connection, connection caps, and the disconnect-and-cooldown of clients that keep pushing
//! after being limited.
//!
//! Where the state lives, so that no check takes a lock shared by all connections:
//! * [`IpTable`] belongs to the io thread alone (it is single-threaded): connections and new
//!   connections per IP, cooldowns, and one [`IpShare`] per IP.
//! * [`IpShare`] is the part of an IP's state that stages on other threads update: lock-free
//!   buckets (one atomic each), its subscription count and its violation count. Its
//!   connections each hold the `Arc`, so a check never looks anything up.
//! * [`Peer`] is one connection's, owned by the ingester thread its messages go to.
//! * [`Pubkeys`] maps an authenticated pubkey to its shared buckets; it is locked once per
//!   AUTH, never per message.
//!
//! Rates and bursts are read from the config at every check, and buckets keep their state
//! across reloads (see `bucket`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::bucket::{mono_ns, Bucket, Rate};
use crate::config::LimitsConfig;

/// What was limited, for the refusal counters (`wok_rate_limited_total{limit}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    EventsIp,
    EventsConnection,
    EventsPubkey,
    ReqsIp,
    ReqsConnection,
    ReqsPubkey,
    NegOpensIp,
    NegOpensConnection,
    NegOpensPubkey,
    SubscriptionsIp,
    ConnectionsIp,
    NewConnectionsIp,
    Cooldown,
    /// Reading a connection paused on the bytes/s limit (nothing is refused).
    BytesPaused,
    /// Malformed messages (answered with a NOTICE): each is a violation.
    Malformed,
}

const LIMITS: [(Limit, &str); 15] = [
    (Limit::EventsIp, "events_ip"),
    (Limit::EventsConnection, "events_connection"),
    (Limit::EventsPubkey, "events_pubkey"),
    (Limit::ReqsIp, "reqs_ip"),
    (Limit::ReqsConnection, "reqs_connection"),
    (Limit::ReqsPubkey, "reqs_pubkey"),
    (Limit::NegOpensIp, "neg_opens_ip"),
    (Limit::NegOpensConnection, "neg_opens_connection"),
    (Limit::NegOpensPubkey, "neg_opens_pubkey"),
    (Limit::SubscriptionsIp, "subscriptions_ip"),
    (Limit::ConnectionsIp, "connections_ip"),
    (Limit::NewConnectionsIp, "new_connections_ip"),
    (Limit::Cooldown, "cooldown"),
    (Limit::BytesPaused, "bytes_paused"),
    (Limit::Malformed, "malformed"),
];

/// The limits' counters (rendered by `relay::metrics`).
#[derive(Default)]
pub struct LimitStats {
    refused: [AtomicU64; 15],
    pub disconnects: AtomicU64,
    /// IPs refused for a cooldown right now (set by the io thread's sweep).
    pub cooling: AtomicU64,
}

impl LimitStats {
    pub fn count(&self, l: Limit) {
        self.refused[l as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, l: Limit) -> u64 {
        self.refused[l as usize].load(Ordering::Relaxed)
    }

    /// Prometheus lines.
    pub fn render(&self, s: &mut String) {
        use std::fmt::Write;
        for (l, name) in LIMITS {
            let _ = writeln!(
                s,
                "wok_rate_limited_total{{limit=\"{name}\"}} {}",
                self.get(l)
            );
        }
        let _ = writeln!(
            s,
            "wok_rate_limit_disconnects_total {}",
            self.disconnects.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            s,
            "wok_rate_limit_ips_in_cooldown {}",
            self.cooling.load(Ordering::Relaxed)
        );
    }
}

/// The unit IP limits count by: an IPv4 address, or an IPv6 address cut to
/// `ipv6PrefixLength` bits (IPv4-mapped IPv6 addresses count as their IPv4 address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpKey(IpAddr);

impl IpKey {
    pub fn new(ip: IpAddr, v6_prefix: u64) -> IpKey {
        match ip {
            IpAddr::V4(_) => IpKey(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey(IpAddr::V4(v4)),
                None => IpKey(IpAddr::V6(Ipv6Addr::from(mask128(
                    u128::from(v6),
                    v6_prefix.min(128) as u32,
                )))),
            },
        }
    }
}

impl std::fmt::Display for IpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

fn mask128(v: u128, bits: u32) -> u128 {
    if bits == 0 {
        0
    } else {
        v & (u128::MAX << (128 - bits))
    }
}

fn mask32(v: u32, bits: u32) -> u32 {
    if bits == 0 {
        0
    } else {
        v & (u32::MAX << (32 - bits))
    }
}

/// One `exemptCidrs` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cidr {
    V4(u32, u32),
    V6(u128, u32),
}

impl Cidr {
    /// A NIP-86 `blockip` argument: an address, or an address and prefix length. Stricter
    /// than [`Cidr::parse`]: host bits past the prefix are an error (`203.0.113.7/24` is
    /// more likely a typo than a wish to block `203.0.113.0/24`), and an IPv4-mapped IPv6
    /// prefix of at least 96 bits becomes the IPv4 prefix it names, since connections from
    /// mapped addresses are matched as IPv4.
    pub fn parse_block(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let bad =
            || format!("{s:?} is not an IP address or CIDR prefix (203.0.113.0/24, 2001:db8::/32)");
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) if !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()) => {
                (a, Some(b.parse::<u32>().map_err(|_| bad())?))
            }
            Some(_) => return Err(bad()),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| bad())?;
        let c = match ip {
            IpAddr::V4(a) => {
                let b = bits.unwrap_or(32);
                if b > 32 {
                    return Err(format!("{s:?}: an IPv4 prefix is at most 32 bits"));
                }
                Cidr::V4(u32::from(a), b)
            }
            IpAddr::V6(a) => {
                let b = bits.unwrap_or(128);
                if b > 128 {
                    return Err(format!("{s:?}: an IPv6 prefix is at most 128 bits"));
                }
                match a.to_ipv4_mapped() {
                    Some(v4) if b >= 96 => Cidr::V4(u32::from(v4), b - 96),
                    _ => Cidr::V6(u128::from(a), b),
                }
            }
        };
        let masked = match c {
            Cidr::V4(v, b) => Cidr::V4(mask32(v, b), b),
            Cidr::V6(v, b) => Cidr::V6(mask128(v, b), b),
        };
        if masked != c {
            return Err(format!(
                "{s:?} has bits set past its prefix length: did you mean {masked}?"
            ));
        }
        Ok(c)
    }

    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a.trim(), Some(b.trim().parse::<u32>().ok()?)),
            None => (s.trim(), None),
        };
        match addr.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => {
                let b = bits.unwrap_or(32);
                (b <= 32).then(|| Cidr::V4(mask32(u32::from(a), b), b))
            }
            IpAddr::V6(a) => {
                let b = bits.unwrap_or(128);
                (b <= 128).then(|| Cidr::V6(mask128(u128::from(a), b), b))
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (*self, ip) {
            (Cidr::V4(net, b), IpAddr::V4(a)) => mask32(u32::from(a), b) == net,
            (Cidr::V6(net, b), IpAddr::V6(a)) => mask128(u128::from(a), b) == net,
            _ => false,
        }
    }
}

/// The canonical text: a lone address for a full-length prefix (so `blockip 10.0.0.1` and
/// `blockip 10.0.0.1/32` are the same entry), else `network/bits`.
impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Cidr::V4(v, 32) => std::net::Ipv4Addr::from(v).fmt(f),
            Cidr::V4(v, b) => write!(f, "{}/{b}", std::net::Ipv4Addr::from(v)),
            Cidr::V6(v, 128) => Ipv6Addr::from(v).fmt(f),
            Cidr::V6(v, b) => write!(f, "{}/{b}", Ipv6Addr::from(v)),
        }
    }
}

/// Blocked addresses and prefixes (NIP-86 `blockip`), looked up on every accept and
/// upgrade: one hash set per prefix length in use, so a check costs one masked lookup per
/// distinct length (at most 33 for IPv4, 129 for IPv6; single addresses and a few /24s are
/// two), whatever the number of entries.
#[derive(Debug, Default, Clone)]
pub struct IpBlocks {
    /// (prefix length, masked networks), longest prefix first.
    v4: Vec<(u32, NetSet<u32>)>,
    v6: Vec<(u32, NetSet<u128>)>,
}

/// A set of masked networks. Its entries come from admins, never from peers, so a fixed
/// multiplicative hash (no SipHash keying against flooding) is safe, and it is what keeps
/// a lookup per prefix length cheap.
type NetSet<T> = std::collections::HashSet<T, std::hash::BuildHasherDefault<NetHasher>>;

#[derive(Default)]
struct NetHasher(u64);

impl std::hash::Hasher for NetHasher {
    fn finish(&self) -> u64 {
        // murmur3's fmix64: masked networks end in zero bits, which a multiply alone keeps
        // in the low bits the table indexes by (every /8 in one bucket chain).
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        // FxHash's combining step; `finish` mixes the result.
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
}

impl IpBlocks {
    pub fn insert(&mut self, c: Cidr) {
        fn add<T: std::hash::Hash + Eq>(t: &mut Vec<(u32, NetSet<T>)>, bits: u32, net: T) {
            match t.binary_search_by(|(b, _)| bits.cmp(b)) {
                Ok(i) => {
                    t[i].1.insert(net);
                }
                Err(i) => t.insert(i, (bits, std::iter::once(net).collect())),
            }
        }
        match c {
            Cidr::V4(net, b) => add(&mut self.v4, b, mask32(net, b)),
            Cidr::V6(net, b) => add(&mut self.v6, b, mask128(net, b)),
        }
    }

    /// Is `ip` (IPv4-mapped IPv6 counting as its IPv4 address) inside any entry?
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.contains_v4(u32::from(v4)),
                None => {
                    let a = u128::from(v6);
                    self.v6.iter().any(|(b, set)| set.contains(&mask128(a, *b)))
                }
            },
            IpAddr::V4(v4) => self.contains_v4(u32::from(v4)),
        }
    }

    fn contains_v4(&self, a: u32) -> bool {
        self.v4.iter().any(|(b, set)| set.contains(&mask32(a, *b)))
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// Is `ip` exempt from every limit (`exemptLoopback`, `exemptCidrs`)? Parsed per call: it
/// runs once per connection, and a reload applies to the next connection.
pub fn ip_exempt(cfg: &LimitsConfig, ip: IpAddr) -> bool {
    let loopback = match ip {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v| v.is_loopback()),
    };
    (cfg.exempt_loopback && loopback)
        || cfg
            .exempt_cidrs
            .split(',')
            .filter(|c| !c.trim().is_empty())
            .filter_map(|c| {
                let parsed = Cidr::parse(c);
                if parsed.is_none() {
                    log::warn!("relay.limits.exemptCidrs: ignoring {c:?}, not an address or CIDR");
                }
                parsed
            })
            .any(|c| c.contains(ip))
}

/// Is this authenticated pubkey exempt (`exemptPubkeys`)? Once per AUTH.
pub fn pubkey_exempt(cfg: &LimitsConfig, pubkey: &[u8; 32]) -> bool {
    cfg.exempt_pubkeys
        .split(',')
        .any(|k| crate::nostr::hex::decode_any::<32>(k.trim().as_bytes()).as_ref() == Some(pubkey))
}

/// What a client sent that is rate limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Event,
    /// REQ or COUNT.
    Req,
    NegOpen,
}

impl Kind {
    fn what(self) -> &'static str {
        match self {
            Kind::Event => "EVENTs",
            Kind::Req => "REQs",
            Kind::NegOpen => "NEG-OPENs",
        }
    }

    /// (IP, connection, pubkey) rates for this kind.
    fn rates(self, c: &LimitsConfig) -> [(Rate, Limit, &'static str); 3] {
        match self {
            Kind::Event => [
                (
                    Rate::new(c.events_per_second_per_ip, c.events_burst_per_ip),
                    Limit::EventsIp,
                    "your IP",
                ),
                (
                    Rate::new(
                        c.events_per_second_per_connection,
                        c.events_burst_per_connection,
                    ),
                    Limit::EventsConnection,
                    "this connection",
                ),
                (
                    Rate::new(c.events_per_second_per_pubkey, c.events_burst_per_pubkey),
                    Limit::EventsPubkey,
                    "your pubkey",
                ),
            ],
            Kind::Req => [
                (
                    Rate::new(c.reqs_per_second_per_ip, c.reqs_burst_per_ip),
                    Limit::ReqsIp,
                    "your IP",
                ),
                (
                    Rate::new(
                        c.reqs_per_second_per_connection,
                        c.reqs_burst_per_connection,
                    ),
                    Limit::ReqsConnection,
                    "this connection",
                ),
                (
                    Rate::new(c.reqs_per_second_per_pubkey, c.reqs_burst_per_pubkey),
                    Limit::ReqsPubkey,
                    "your pubkey",
                ),
            ],
            Kind::NegOpen => [
                (
                    Rate::new(c.neg_opens_per_second_per_ip, c.neg_opens_burst_per_ip),
                    Limit::NegOpensIp,
                    "your IP",
                ),
                (
                    Rate::new(
                        c.neg_opens_per_second_per_connection,
                        c.neg_opens_burst_per_connection,
                    ),
                    Limit::NegOpensConnection,
                    "this connection",
                ),
                (
                    Rate::new(
                        c.neg_opens_per_second_per_pubkey,
                        c.neg_opens_burst_per_pubkey,
                    ),
                    Limit::NegOpensPubkey,
                    "your pubkey",
                ),
            ],
        }
    }
}

/// Three buckets, one per [`Kind`].
#[derive(Default, Debug)]
pub struct Buckets([Bucket; 3]);

impl Buckets {
    fn of(&self, k: Kind) -> &Bucket {
        &self.0[k as usize]
    }

    fn all_full(&self, now: u64) -> bool {
        self.0.iter().all(|b| b.is_full(now))
    }
}

/// An IP's state that every stage may update (see the module comment).
#[derive(Debug)]
pub struct IpShare {
    pub key: IpKey,
    buckets: Buckets,
    bytes: Bucket,
    /// Subscriptions open across its connections.
    subs: AtomicU64,
    /// Refusals in the current window: `window start (s) << 32 | count`.
    violations: AtomicU64,
    /// Set by the io thread while the IP is in a cooldown: any further violation then
    /// disconnects at once.
    cooling: std::sync::atomic::AtomicBool,
}

impl IpShare {
    fn new(key: IpKey) -> IpShare {
        IpShare {
            key,
            buckets: Buckets::default(),
            bytes: Bucket::default(),
            subs: AtomicU64::new(0),
            violations: AtomicU64::new(0),
            cooling: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Counts one refusal; true when the IP is past `violationsBeforeDisconnect` within
    /// the window (or in a cooldown already): the offending connection should be closed.
    fn violation(&self, cfg: &LimitsConfig, now_ns: u64) -> bool {
        if cfg.violations_before_disconnect == 0 {
            return false;
        }
        if self.cooling.load(Ordering::Relaxed) {
            return true;
        }
        let now_s = now_ns / 1_000_000_000;
        let window = cfg.violation_window_seconds.max(1);
        let prev = self
            .violations
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
                let (start, n) = (v >> 32, v & 0xFFFF_FFFF);
                Some(if now_s >= start + window {
                    (now_s << 32) | 1
                } else {
                    (start << 32) | (n + 1).min(0xFFFF_FFFF)
                })
            })
            .unwrap_or(0);
        let n = if now_s >= (prev >> 32) + window {
            1
        } else {
            (prev & 0xFFFF_FFFF) + 1
        };
        n >= cfg.violations_before_disconnect
    }

    fn idle(&self, now: u64) -> bool {
        self.buckets.all_full(now)
            && self.bytes.is_full(now)
            && self.subs.load(Ordering::Relaxed) == 0
    }
}

/// One subscription's place in its IP's count, given back when dropped (the req-worker
/// keeps it beside the subscription, so every way a subscription ends releases it).
#[derive(Debug)]
pub struct SubSlot(Arc<IpShare>);

impl Drop for SubSlot {
    fn drop(&mut self) {
        let _ = self
            .0
            .subs
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }
}

/// A connection's handle on its IP for the req-worker: `None` inside when exempt.
#[derive(Clone, Debug, Default)]
pub struct SubLimit(Option<Arc<IpShare>>);

impl SubLimit {
    /// Takes a place for one new subscription, or the CLOSED reason (`maxSubscriptionsPerIp`).
    pub fn take(&self, cfg: &LimitsConfig, stats: &LimitStats) -> Result<Option<SubSlot>, String> {
        let Some(ip) = &self.0 else {
            return Ok(None);
        };
        let max = cfg.max_subscriptions_per_ip;
        if !cfg.enabled || max == 0 {
            // Still counted, so turning the limit on later sees the true number.
            ip.subs.fetch_add(1, Ordering::AcqRel);
            return Ok(Some(SubSlot(ip.clone())));
        }
        match ip
            .subs
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            }) {
            Ok(_) => Ok(Some(SubSlot(ip.clone()))),
            Err(_) => {
                stats.count(Limit::SubscriptionsIp);
                Err(format!(
                    "rate-limited: your IP has {max} subscriptions open (maxSubscriptionsPerIp); close some first"
                ))
            }
        }
    }
}

/// A refused message: the reason to send (with its `rate-limited:` prefix) and whether the
/// connection is to be closed (too many refusals).
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub reason: String,
    pub disconnect: bool,
}

/// Buckets of one authenticated pubkey, shared by its connections.
#[derive(Default, Debug)]
pub struct PubkeyShare {
    buckets: Buckets,
}

/// One connection's limits, owned by its ingester thread.
#[derive(Debug)]
pub struct Peer {
    ip: Arc<IpShare>,
    exempt: bool,
    own: Buckets,
    /// The connection's bytes/s bucket (used by the io thread's copy).
    bytes: Bucket,
    pubkey: Option<Arc<PubkeyShare>>,
}

impl Peer {
    pub fn new(ip: Arc<IpShare>, exempt: bool) -> Peer {
        Peer {
            ip,
            exempt,
            own: Buckets::default(),
            bytes: Bucket::default(),
            pubkey: None,
        }
    }

    /// May this connection send one more message of `kind` now? O(1): at most three
    /// compare-exchanges on buckets it already holds.
    pub fn check(&self, kind: Kind, cfg: &LimitsConfig, stats: &LimitStats) -> Result<(), Refused> {
        if !cfg.enabled || self.exempt {
            return Ok(());
        }
        let now = mono_ns();
        let [ip, conn, pk] = kind.rates(cfg);
        let refused = if !self.ip.buckets.of(kind).take(ip.0, now, 1) {
            Some(ip)
        } else if !self.own.of(kind).take(conn.0, now, 1) {
            Some(conn)
        } else {
            match &self.pubkey {
                Some(p) if !p.buckets.of(kind).take(pk.0, now, 1) => Some(pk),
                _ => None,
            }
        };
        let Some((rate, limit, whose)) = refused else {
            return Ok(());
        };
        stats.count(limit);
        Err(Refused {
            reason: format!(
                "rate-limited: too many {} from {whose} (at most {}/s); slow down",
                kind.what(),
                rate.per_sec
            ),
            disconnect: self.ip.violation(cfg, now),
        })
    }

    /// A malformed message from this connection (it got a NOTICE): no well-behaved client
    /// sends many, so each counts as a violation of its IP, and past
    /// `violationsBeforeDisconnect` the connection is closed and the IP cooled down (true).
    /// Without this a garbage flood cost the relay a parse and a NOTICE per message at full
    /// speed, untouched by every rate (measured: 187k answered/s, a polite REQ p99 0.34 ->
    /// 4.0 ms).
    pub fn malformed(&self, cfg: &LimitsConfig, stats: &LimitStats) -> bool {
        if !cfg.enabled || self.exempt {
            return false;
        }
        stats.count(Limit::Malformed);
        self.ip.violation(cfg, mono_ns())
    }

    /// After a successful AUTH: the pubkey's buckets join the checks, or every limit is
    /// lifted for an `exemptPubkeys` key.
    pub fn authed(&mut self, cfg: &LimitsConfig, pubkey: &[u8; 32], keys: &Pubkeys) {
        if pubkey_exempt(cfg, pubkey) {
            self.exempt = true;
        }
        self.pubkey = Some(keys.get(pubkey));
    }

    /// The req-worker's handle for `maxSubscriptionsPerIp`.
    pub fn sub_limit(&self) -> SubLimit {
        SubLimit((!self.exempt).then(|| self.ip.clone()))
    }
}

/// Authenticated pubkeys' shared buckets. Locked once per AUTH; entries nobody holds are
/// dropped as the map grows.
#[derive(Default)]
pub struct Pubkeys {
    map: Mutex<HashMap<[u8; 32], Arc<PubkeyShare>>>,
}

impl Pubkeys {
    pub fn get(&self, pubkey: &[u8; 32]) -> Arc<PubkeyShare> {
        let mut m = match self.map.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if m.len() >= 1024 && m.len().is_power_of_two() {
            let now = mono_ns();
            m.retain(|_, s| Arc::strong_count(s) > 1 || !s.buckets.all_full(now));
        }
        m.entry(*pubkey).or_default().clone()
    }
}

/// The io thread's table of IPs (see the module comment).
#[derive(Default)]
pub struct IpTable {
    map: HashMap<IpKey, IpEntry>,
}

struct IpEntry {
    share: Arc<IpShare>,
    conns: u64,
    new_conns: Bucket,
    /// Cooldowns so far (the next lasts `cooldownSeconds << strikes`).
    strikes: u32,
    cooldown_until: Option<Instant>,
    /// When the last cooldown ended (or began): strikes are forgotten after a good spell.
    last_strike: Instant,
}

/// A WebSocket upgrade refused with HTTP 429.
#[derive(Debug, PartialEq, Eq)]
pub struct Refuse429 {
    pub retry_after: u64,
    pub reason: String,
}

impl IpTable {
    /// A WebSocket upgrade from `ip`: the connection's [`Peer`], or the 429 to answer.
    /// Counts the connection until [`IpTable::closed`].
    pub fn open(
        &mut self,
        ip: IpAddr,
        cfg: &LimitsConfig,
        stats: &LimitStats,
    ) -> Result<Peer, Refuse429> {
        let key = IpKey::new(ip, cfg.ipv6_prefix_length);
        let exempt = !cfg.enabled || ip_exempt(cfg, ip);
        let e = self.map.entry(key).or_insert_with(|| IpEntry {
            share: Arc::new(IpShare::new(key)),
            conns: 0,
            new_conns: Bucket::default(),
            strikes: 0,
            cooldown_until: None,
            last_strike: Instant::now(),
        });
        if !exempt {
            let now = Instant::now();
            if let Some(until) = e.cooldown_until.filter(|u| *u > now) {
                stats.count(Limit::Cooldown);
                return Err(Refuse429 {
                    retry_after: (until - now).as_secs() + 1,
                    reason: "rate-limited: too many refused messages from your IP; wait".into(),
                });
            }
            if cfg.max_connections_per_ip > 0 && e.conns >= cfg.max_connections_per_ip {
                stats.count(Limit::ConnectionsIp);
                return Err(Refuse429 {
                    retry_after: 10,
                    reason: format!(
                        "rate-limited: your IP has {} connections open (maxConnectionsPerIp)",
                        e.conns
                    ),
                });
            }
            let rate = Rate::new(
                cfg.new_connections_per_second_per_ip,
                cfg.new_connections_burst_per_ip,
            );
            let t = mono_ns();
            if !e.new_conns.take(rate, t, 1) {
                stats.count(Limit::NewConnectionsIp);
                return Err(Refuse429 {
                    retry_after: e.new_conns.wait_ns(rate, t).div_ceil(1_000_000_000).max(1),
                    reason: format!(
                        "rate-limited: too many new connections from your IP (at most {}/s)",
                        rate.per_sec
                    ),
                });
            }
        }
        e.conns += 1;
        Ok(Peer::new(e.share.clone(), exempt))
    }

    /// A connection counted by `open` has closed.
    pub fn closed(&mut self, key: IpKey) {
        if let Some(e) = self.map.get_mut(&key) {
            e.conns = e.conns.saturating_sub(1);
        }
    }

    /// The IP of a connection disconnected for its refusals: refused for a cooldown, doubled
    /// at each repeat. Returns the cooldown, or `None` if one was already running.
    pub fn strike(
        &mut self,
        key: IpKey,
        cfg: &LimitsConfig,
        stats: &LimitStats,
    ) -> Option<Duration> {
        stats.disconnects.fetch_add(1, Ordering::Relaxed);
        let e = self.map.get_mut(&key)?;
        let now = Instant::now();
        if e.cooldown_until.is_some_and(|u| u > now) {
            return None;
        }
        let cap = cfg.max_cooldown_seconds.max(1);
        if now.duration_since(e.last_strike) > Duration::from_secs(cap.saturating_mul(2)) {
            e.strikes = 0;
        }
        let secs = cfg
            .cooldown_seconds
            .saturating_mul(1u64 << e.strikes.min(32))
            .min(cap);
        e.strikes = e.strikes.saturating_add(1);
        let d = Duration::from_secs(secs);
        e.cooldown_until = Some(now + d);
        e.last_strike = now + d;
        e.share.cooling.store(true, Ordering::Relaxed);
        Some(d)
    }

    /// Once a second: ends cooldowns, forgets IPs with nothing to remember (no connection,
    /// full buckets, no cooldown, no recent strike), updates the cooldown gauge.
    pub fn sweep(&mut self, cfg: &LimitsConfig, stats: &LimitStats) {
        let now = Instant::now();
        let t = mono_ns();
        let memory = Duration::from_secs(cfg.max_cooldown_seconds.max(1).saturating_mul(2));
        let mut cooling = 0;
        self.map.retain(|_, e| {
            match e.cooldown_until {
                Some(u) if u <= now => {
                    e.cooldown_until = None;
                    e.share.cooling.store(false, Ordering::Relaxed);
                    e.share.violations.store(0, Ordering::Relaxed);
                }
                Some(_) => cooling += 1,
                None => {}
            }
            e.conns > 0
                || e.cooldown_until.is_some()
                || !e.new_conns.is_full(t)
                || !e.share.idle(t)
                || (e.strikes > 0 && now.saturating_duration_since(e.last_strike) < memory)
        });
        stats.cooling.store(cooling, Ordering::Relaxed);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Peer {
    /// Bytes this IP's connection may read now (`u64::MAX` when unlimited), by the IP's
    /// and the connection's byte buckets.
    pub fn readable(&self, cfg: &LimitsConfig) -> u64 {
        if !cfg.enabled || self.exempt {
            return u64::MAX;
        }
        let now = mono_ns();
        let ip = Rate::new(cfg.bytes_per_second_per_ip, cfg.bytes_burst_per_ip);
        let conn = Rate::new(
            cfg.bytes_per_second_per_connection,
            cfg.bytes_burst_per_connection,
        );
        self.ip
            .bytes
            .available(ip, now)
            .min(self.bytes.available(conn, now))
    }

    /// Counts `n` bytes read against the IP's and the connection's byte buckets.
    pub fn read(&self, cfg: &LimitsConfig, n: u64) {
        if !cfg.enabled || self.exempt {
            return;
        }
        let now = mono_ns();
        self.ip.bytes.charge(
            Rate::new(cfg.bytes_per_second_per_ip, cfg.bytes_burst_per_ip),
            now,
            n,
        );
        self.bytes.charge(
            Rate::new(
                cfg.bytes_per_second_per_connection,
                cfg.bytes_burst_per_connection,
            ),
            now,
            n,
        );
    }

    pub fn key(&self) -> IpKey {
        self.ip.key
    }

    /// A peer for a connection that no table counts (benches, tests).
    pub fn detached(ip: IpAddr) -> Peer {
        Peer::new(Arc::new(IpShare::new(IpKey::new(ip, 64))), false)
    }

    /// A second handle on the same IP and exemption with its own connection buckets: the
    /// io thread keeps one for the byte limits, the ingester the other.
    pub fn sibling(&self) -> Peer {
        Peer::new(self.ip.clone(), self.exempt)
    }
}

/// Loopback addresses for tests and examples.
pub const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LimitsConfig {
        crate::config::Config::default().relay.limits
    }

    #[test]
    fn ip_keys() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(IpKey::new(a, 64), IpKey::new(b, 64));
        assert_ne!(IpKey::new(a, 64), IpKey::new(c, 64));
        assert_eq!(IpKey::new(a, 48), IpKey::new(c, 48));
        assert_ne!(IpKey::new(a, 128), IpKey::new(b, 128));
        let mapped: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
        assert_eq!(
            IpKey::new(mapped, 64),
            IpKey::new("1.2.3.4".parse().unwrap(), 64)
        );
    }

    #[test]
    fn block_entries_parse_strictly_and_print_canonically() {
        let text = |s: &str| Cidr::parse_block(s).map(|c| c.to_string());
        assert_eq!(text("203.0.113.0/24").as_deref(), Ok("203.0.113.0/24"));
        assert_eq!(text(" 10.0.0.1 ").as_deref(), Ok("10.0.0.1"));
        assert_eq!(text("10.0.0.1/32").as_deref(), Ok("10.0.0.1"));
        assert_eq!(text("2001:db8::/32").as_deref(), Ok("2001:db8::/32"));
        assert_eq!(text("::ffff:10.0.0.1").as_deref(), Ok("10.0.0.1"));
        assert_eq!(text("::ffff:10.0.0.0/104").as_deref(), Ok("10.0.0.0/8"));
        assert_eq!(text("0.0.0.0/0").as_deref(), Ok("0.0.0.0/0"));
        assert!(text("203.0.113.7/24").is_err_and(|e| e.contains("203.0.113.0/24")));
        for bad in [
            "10.0.0.1/33",
            "2001:db8::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "x",
            "",
            "10.0.0.0/8/8",
        ] {
            assert!(text(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ip_blocks_match_addresses_and_prefixes() {
        let mut b = IpBlocks::default();
        assert!(b.is_empty());
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for e in [
            "127.0.0.2/32",
            "203.0.113.0/24",
            "2001:db8::/32",
            "198.51.100.7",
        ] {
            b.insert(Cidr::parse_block(e).unwrap());
        }
        assert!(b.contains(ip("127.0.0.2")));
        assert!(!b.contains(ip("127.0.0.3")));
        assert!(b.contains(ip("203.0.113.255")));
        assert!(b.contains(ip("::ffff:203.0.113.1")));
        assert!(!b.contains(ip("203.0.114.0")));
        assert!(b.contains(ip("2001:db8:1234::1")));
        assert!(!b.contains(ip("2001:db9::1")));
        assert!(b.contains(ip("198.51.100.7")));
        // Every length in one table, against a linear scan of the same entries.
        let mut all = IpBlocks::default();
        let entries: Vec<Cidr> = (0..=32u32)
            .map(|bits| Cidr::V4(mask32(0xC633_6400 ^ (bits * 0x0101_0101), bits), bits))
            .collect();
        for c in &entries {
            all.insert(*c);
        }
        for probe in [0u32, 0xC633_6401, 0xFFFF_FFFF, 0x0A00_0001, 0xC633_6400] {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(probe));
            assert_eq!(
                all.contains(a),
                entries.iter().any(|c| c.contains(a)),
                "{a}"
            );
        }
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains("2001:db8:ff::1".parse().unwrap()));
        assert!(Cidr::parse("1.2.3.4")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        assert_eq!(Cidr::parse("1.2.3.4/33"), None);
        assert_eq!(Cidr::parse("nonsense"), None);
        let mut l = cfg();
        l.exempt_cidrs = "junk, 127.0.0.2/32".into();
        assert!(ip_exempt(&l, "127.0.0.2".parse().unwrap()));
        assert!(!ip_exempt(&l, "127.0.0.3".parse().unwrap()));
        l.exempt_loopback = true;
        assert!(ip_exempt(&l, "127.0.0.3".parse().unwrap()));
    }

    #[test]
    fn peer_limits_and_violations() {
        let mut l = cfg();
        l.events_per_second_per_ip = 1;
        l.events_burst_per_ip = 3;
        l.violations_before_disconnect = 2;
        let stats = LimitStats::default();
        let p = Peer::detached(LOCAL);
        let q = p.sibling();
        for _ in 0..2 {
            assert!(p.check(Kind::Event, &l, &stats).is_ok());
        }
        // The IP's bucket is shared by its connections.
        assert!(q.check(Kind::Event, &l, &stats).is_ok());
        let r = q.check(Kind::Event, &l, &stats).unwrap_err();
        assert!(r
            .reason
            .starts_with("rate-limited: too many EVENTs from your IP"));
        assert!(!r.disconnect);
        assert!(p.check(Kind::Event, &l, &stats).unwrap_err().disconnect);
        assert_eq!(stats.get(Limit::EventsIp), 2);
        // REQs have their own bucket.
        assert!(p.check(Kind::Req, &l, &stats).is_ok());
        l.enabled = false;
        assert!(p.check(Kind::Event, &l, &stats).is_ok());
    }

    #[test]
    fn pubkey_buckets_and_exemption() {
        let mut l = cfg();
        l.reqs_per_second_per_pubkey = 1;
        l.reqs_burst_per_pubkey = 1;
        let stats = LimitStats::default();
        let keys = Pubkeys::default();
        let (mut a, mut b) = (
            Peer::detached(LOCAL),
            Peer::detached("127.0.0.9".parse().unwrap()),
        );
        a.authed(&l, &[7; 32], &keys);
        b.authed(&l, &[7; 32], &keys);
        assert!(a.check(Kind::Req, &l, &stats).is_ok());
        assert!(b.check(Kind::Req, &l, &stats).is_err());
        l.exempt_pubkeys = format!("{}, x", "07".repeat(32));
        let mut c = Peer::detached(LOCAL);
        c.authed(&l, &[7; 32], &keys);
        assert!(c.check(Kind::Req, &l, &stats).is_ok());
    }

    #[test]
    fn table_caps_and_cooldown() {
        let mut l = cfg();
        l.max_connections_per_ip = 2;
        l.cooldown_seconds = 10;
        l.max_cooldown_seconds = 25;
        let stats = LimitStats::default();
        let mut t = IpTable::default();
        let p = t.open(LOCAL, &l, &stats).unwrap();
        let _q = t.open(LOCAL, &l, &stats).unwrap();
        assert!(t.open(LOCAL, &l, &stats).is_err());
        assert!(t.open("127.0.0.2".parse().unwrap(), &l, &stats).is_ok());
        t.closed(p.key());
        assert_eq!(t.strike(p.key(), &l, &stats), Some(Duration::from_secs(10)));
        assert_eq!(t.strike(p.key(), &l, &stats), None, "already cooling");
        let e = t.open(LOCAL, &l, &stats).unwrap_err();
        assert!((9..=11).contains(&e.retry_after), "{e:?}");
        // The next cooldown doubles, up to the cap.
        t.map.get_mut(&p.key()).unwrap().cooldown_until = Some(Instant::now());
        t.sweep(&l, &stats);
        assert_eq!(t.strike(p.key(), &l, &stats), Some(Duration::from_secs(20)));
        t.map.get_mut(&p.key()).unwrap().cooldown_until = Some(Instant::now());
        assert_eq!(t.strike(p.key(), &l, &stats), Some(Duration::from_secs(25)));
        l.exempt_loopback = true;
        assert!(t.open(LOCAL, &l, &stats).is_ok(), "exempt");
    }
}
