//! The per-message cost of the rate limits (`wok::policy::limits`): `Peer::check` as an
//! ingester runs it for every EVENT / REQ / NEG-OPEN.
//!
//! * `check_allowed`: a connection under its limits (IP, connection and pubkey buckets: three
//!   compare-exchanges);
//! * `check_refused`: over the IP's limit (the refusal reason is formatted, the violation
//!   counted);
//! * `check_off`: `relay.limits.enabled = false`;
//! * `check_shared_2_threads`: two threads checking connections of the same IP at once (the
//!   IP's bucket is one contended atomic);
//! * `bytes_read`: io's bytes/s accounting per read (`readable` + `read`);
//! * `ip_blocked_{none,few,10k}_{hit,miss}`: the accept check (`Snapshot::ip_blocked`, NIP-86
//!   `blockip`) with no entries, 3, and 10k mixed addresses and CIDR prefixes of many lengths
//!   (IPv4 /8–/32, IPv6 /32–/128); a miss is the slow case (every length in use is tried).
//!
//! Quick run: `cargo bench --bench limits -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};

use wok::config::Config;
use wok::policy::access::Snapshot;
use wok::policy::limits::{Cidr, IpTable, Kind, LimitStats, Pubkeys};

fn bench(c: &mut Criterion) {
    let mut cfg = Config::default().relay.limits;
    // Rates no bench run reaches, so every check is allowed and takes tokens.
    cfg.events_per_second_per_ip = u64::MAX / 4;
    cfg.events_burst_per_ip = 1;
    cfg.events_per_second_per_connection = u64::MAX / 4;
    cfg.events_burst_per_connection = 1;
    cfg.events_per_second_per_pubkey = u64::MAX / 4;
    cfg.events_burst_per_pubkey = 1;
    cfg.bytes_per_second_per_ip = u64::MAX / 4;
    cfg.bytes_per_second_per_connection = u64::MAX / 4;
    let stats = LimitStats::default();
    let keys = Pubkeys::default();
    let mut table = IpTable::default();
    let ip = "203.0.113.7".parse().expect("ip");
    let mut peer = table.open(ip, &cfg, &stats).expect("open");
    peer.authed(&cfg, &[9; 32], &keys);

    let mut g = c.benchmark_group("limits");
    g.bench_function("check_allowed", |b| {
        b.iter(|| black_box(peer.check(black_box(Kind::Event), &cfg, &stats).is_ok()))
    });
    let mut tight = cfg.clone();
    tight.events_per_second_per_ip = 1;
    tight.events_burst_per_ip = 1;
    tight.violations_before_disconnect = 0;
    let _ = peer.check(Kind::Event, &tight, &stats);
    g.bench_function("check_refused", |b| {
        b.iter(|| black_box(peer.check(black_box(Kind::Event), &tight, &stats).is_err()))
    });
    let mut off = cfg.clone();
    off.enabled = false;
    g.bench_function("check_off", |b| {
        b.iter(|| black_box(peer.check(black_box(Kind::Event), &off, &stats).is_ok()))
    });
    let other = Arc::new(peer.sibling());
    let stop = Arc::new(AtomicBool::new(false));
    let rival = {
        let (other, stop, cfg) = (other.clone(), stop.clone(), cfg.clone());
        std::thread::spawn(move || {
            let stats = LimitStats::default();
            while !stop.load(Ordering::Relaxed) {
                black_box(other.check(Kind::Event, &cfg, &stats).is_ok());
            }
        })
    };
    g.bench_function("check_shared_2_threads", |b| {
        b.iter(|| black_box(peer.check(black_box(Kind::Event), &cfg, &stats).is_ok()))
    });
    stop.store(true, Ordering::Relaxed);
    let _ = rival.join();
    g.bench_function("bytes_read", |b| {
        b.iter(|| {
            if peer.readable(&cfg) > 0 {
                peer.read(&cfg, black_box(4096));
            }
        })
    });
    g.finish();
    blocked_ips(c);
}

/// `Snapshot`s holding `n` blocked entries: (a blocked address, one that is not).
fn blocked_ips(c: &mut Criterion) {
    // xorshift64: a fixed, dependency-free sequence of entries.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut g = c.benchmark_group("limits");
    let hit: std::net::IpAddr = "203.0.113.77".parse().expect("ip");
    let miss: std::net::IpAddr = "198.18.0.1".parse().expect("ip");
    for (name, n) in [("none", 0usize), ("few", 3), ("10k", 10_000)] {
        let mut s = Snapshot::default();
        if n > 0 {
            s.blocked_ips
                .insert(Cidr::parse_block("203.0.113.0/24").expect("cidr"));
        }
        for i in 1..n {
            let r = next();
            let entry = if i % 4 == 3 {
                // IPv6, /32 to /128 in steps of 8.
                let bits = 32 + 8 * (r % 13) as u32;
                let v = (u128::from(r) << 64 | u128::from(next())) & (u128::MAX << (128 - bits));
                Cidr::V6(v, bits)
            } else {
                // IPv4 in 10.0.0.0/8 (never the probes), /8 to /32.
                let bits = 8 + (r % 25) as u32;
                let v = (0x0A00_0000 | (r >> 40) as u32 & 0x00FF_FFFF) & (u32::MAX << (32 - bits));
                Cidr::V4(v, bits)
            };
            s.blocked_ips.insert(entry);
        }
        if n > 0 {
            assert!(s.ip_blocked(hit));
        }
        assert!(!s.ip_blocked(miss));
        g.bench_function(format!("ip_blocked_{name}_hit"), |b| {
            b.iter(|| black_box(s.ip_blocked(black_box(hit))))
        });
        g.bench_function(format!("ip_blocked_{name}_miss"), |b| {
            b.iter(|| black_box(s.ip_blocked(black_box(miss))))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
