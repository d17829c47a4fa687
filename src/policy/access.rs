//! Access control: who may write and read, and what is banned. The state lives in the
//! store's `Management` table (`store::manage`), so it survives restarts and is shared by
//! every process on the DB; here it is held as an immutable [`Snapshot`] behind an
//! [`Access`] handle. Checks read a per-thread cached `Arc<Snapshot>`: one atomic load per
//! message, plus a read lock only when the state has changed (no global mutex on the hot
//! path). A reload happens when the DB's management generation moves (any process's
//! change), when an admin's kind-3 follow list is replaced (web-of-trust mode), or when the
//! admin set in the config changes.

use std::cell::RefCell;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::config::Config;
use crate::nostr::bech32::parse_pubkey;
use crate::nostr::filter::EventView;
use crate::policy::limits::{Cidr, IpBlocks};
use crate::store::manage::{kind_refused, Blocked, List};
use crate::store::{LevId, Store};

/// `relay.management.writeAccess`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Anyone not banned (unless the allowlist has entries: then only they and the admins).
    Public,
    /// Admins and allowlisted pubkeys.
    Allowlist,
    /// Admins, allowlisted pubkeys, and everyone the admins follow (kind 3).
    Wot,
}

impl WriteMode {
    pub fn parse(s: &str) -> Result<WriteMode, String> {
        // Per message: no allocation.
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("public") {
            Ok(WriteMode::Public)
        } else if s.eq_ignore_ascii_case("allowlist") {
            Ok(WriteMode::Allowlist)
        } else if s.eq_ignore_ascii_case("wot") {
            Ok(WriteMode::Wot)
        } else {
            Err(format!(
                "relay.management.writeAccess: `{s}` is not public, allowlist or wot"
            ))
        }
    }
}

/// The write mode of `cfg`; a value that is none of the three restricts to the allowlist
/// (fail closed: a typo must not open a private relay).
pub fn write_mode(cfg: &Config) -> WriteMode {
    WriteMode::parse(&cfg.relay.management.write_access).unwrap_or(WriteMode::Allowlist)
}

/// May a connection authenticated as `authed` read, under `restrictReads`? `Err` is the
/// CLOSED reason (`auth-required:` asks for AUTH first).
pub fn may_read(cfg: &Config, a: &Snapshot, authed: Option<&[u8; 32]>) -> Result<(), &'static str> {
    let mode = write_mode(cfg);
    if !cfg.relay.management.restrict_reads || !a.restricted(mode) {
        return Ok(());
    }
    match authed {
        None => Err("auth-required: this relay serves its members only"),
        Some(pk) if a.is_writer(mode, pk) && !a.banned_pubkeys.contains(pk) => Ok(()),
        Some(_) => Err("restricted: this relay serves its members only"),
    }
}

/// The admins named in `relay.management.adminPubkeys` (bad entries are logged and left out).
pub fn admins(cfg: &Config) -> Vec<[u8; 32]> {
    parse_admins(&cfg.relay.management.admin_pubkeys).0
}

/// The parsed admin list and the entries that could not be read.
pub fn parse_admins(s: &str) -> (Vec<[u8; 32]>, Vec<String>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match parse_pubkey(part) {
            Ok(pk) => ok.push(pk),
            Err(e) => bad.push(e),
        }
    }
    ok.sort_unstable();
    ok.dedup();
    (ok, bad)
}

/// Everything access control decides with, at one moment.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub banned_pubkeys: HashSet<[u8; 32]>,
    pub allowed_pubkeys: HashSet<[u8; 32]>,
    pub banned_events: HashSet<[u8; 32]>,
    pub allowed_kinds: HashSet<u64>,
    pub disallowed_kinds: HashSet<u64>,
    /// Blocked addresses and CIDR prefixes.
    pub blocked_ips: IpBlocks,
    /// NIP-11 overrides set through NIP-86.
    pub name: Option<String>,
    pub description: Option<String>,
    pub icon: Option<String>,
    /// The admins this snapshot was computed for, and the pubkeys their current kind-3
    /// lists follow.
    pub admins: Vec<[u8; 32]>,
    pub follows: HashSet<[u8; 32]>,
    /// What the snapshot was read from: the management generation and each admin's
    /// current kind-3 levId (to notice a replaced follow list).
    generation: u64,
    follow_levs: Vec<Option<LevId>>,
}

impl Snapshot {
    /// May `pubkey` publish an event of `kind` with id `id`? `Err` is the `OK false` reason.
    pub fn may_write(
        &self,
        mode: WriteMode,
        id: &[u8; 32],
        pubkey: &[u8; 32],
        kind: u64,
    ) -> Result<(), String> {
        // The same rules and words as every writer's check in the store
        // (`store::manage::WriteBans`); here they refuse before the signature check.
        if self.banned_events.contains(id) {
            return Err(Blocked::Event.reason());
        }
        if self.banned_pubkeys.contains(pubkey) {
            return Err(Blocked::Pubkey.reason());
        }
        if kind_refused(&self.allowed_kinds, &self.disallowed_kinds, kind) {
            return Err(Blocked::Kind(kind).reason());
        }
        if !self.is_writer(mode, pubkey) {
            return Err("restricted: pubkey is not allowed to publish to this relay".into());
        }
        Ok(())
    }

    /// Is writing restricted to a set of pubkeys at all?
    pub fn restricted(&self, mode: WriteMode) -> bool {
        mode != WriteMode::Public || !self.allowed_pubkeys.is_empty()
    }

    /// Is `pubkey` among the writers under `mode` (not counting bans)?
    pub fn is_writer(&self, mode: WriteMode, pubkey: &[u8; 32]) -> bool {
        if !self.restricted(mode) {
            return true;
        }
        self.admins.contains(pubkey)
            || self.allowed_pubkeys.contains(pubkey)
            || (mode == WriteMode::Wot && self.follows.contains(pubkey))
    }

    pub fn ip_blocked(&self, ip: IpAddr) -> bool {
        !self.blocked_ips.is_empty() && self.blocked_ips.contains(ip)
    }
}

/// The shared handle: the current snapshot and a version that changes with it.
pub struct Access {
    /// Unique per handle, so a thread's cache never mixes two relays in one process.
    id: u64,
    version: AtomicU64,
    current: RwLock<Arc<Snapshot>>,
    /// Serialises reloads (management thread, writer); never taken on the hot path.
    reload: Mutex<()>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's copy: (handle id, version, snapshot).
    static VIEW: RefCell<Option<(u64, u64, Arc<Snapshot>)>> = const { RefCell::new(None) };
}

impl Access {
    /// Reads the state from the store.
    pub fn load(store: &Store, cfg: &Config) -> crate::store::Result<Access> {
        let a = Access {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            version: AtomicU64::new(1),
            current: RwLock::new(Arc::new(Snapshot::default())),
            reload: Mutex::new(()),
        };
        a.refresh(store, cfg, true)?;
        Ok(a)
    }

    /// Changes whenever the snapshot does (one atomic load).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Runs `f` on this thread's cached snapshot, refreshed only when the version moved.
    pub fn with<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> R {
        let v = self.version();
        VIEW.with(|view| {
            let mut view = view.borrow_mut();
            let fresh = matches!(&*view, Some((id, seen, _)) if *id == self.id && *seen == v);
            if !fresh {
                *view = Some((self.id, v, self.snapshot()));
            }
            match &*view {
                Some((_, _, s)) => f(s),
                None => f(&Snapshot::default()),
            }
        })
    }

    /// Rereads the state when the DB's management generation, an admin's kind-3 list or
    /// the admin set changed (always with `force`). Whether the snapshot changed.
    pub fn refresh(&self, store: &Store, cfg: &Config, force: bool) -> crate::store::Result<bool> {
        let _one = self.reload.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot();
        let admins = admins(cfg);
        let txn = store.read_txn()?;
        let generation = store.manage_generation(&txn)?;
        let mut follow_levs = Vec::with_capacity(admins.len());
        for a in &admins {
            follow_levs.push(store.current_replaceable(&txn, a, 3)?);
        }
        if !force
            && generation == old.generation
            && admins == old.admins
            && follow_levs == old.follow_levs
        {
            return Ok(false);
        }
        let mut s = Snapshot {
            generation,
            admins,
            follow_levs,
            ..Snapshot::default()
        };
        let key32 = |k: &[u8]| <[u8; 32]>::try_from(k).ok();
        let kind = |k: &[u8]| crate::store::keys::read_u64(k);
        for (k, _) in store.manage_list(&txn, List::BannedPubkey)? {
            s.banned_pubkeys.extend(key32(&k));
        }
        for (k, _) in store.manage_list(&txn, List::AllowedPubkey)? {
            s.allowed_pubkeys.extend(key32(&k));
        }
        for (k, _) in store.manage_list(&txn, List::BannedEvent)? {
            s.banned_events.extend(key32(&k));
        }
        for (k, _) in store.manage_list(&txn, List::AllowedKind)? {
            s.allowed_kinds.extend(kind(&k));
        }
        for (k, _) in store.manage_list(&txn, List::DisallowedKind)? {
            s.disallowed_kinds.extend(kind(&k));
        }
        for (k, _) in store.manage_list(&txn, List::BlockedIp)? {
            // Rows are written canonical by `blockip`; one that no longer parses (written
            // by hand, or by a future version) is skipped, not fatal.
            match std::str::from_utf8(&k).map(Cidr::parse_block) {
                Ok(Ok(c)) => s.blocked_ips.insert(c),
                _ => log::warn!(
                    "management table: ignoring blocked IP entry {:?}",
                    String::from_utf8_lossy(&k)
                ),
            }
        }
        for (k, v) in store.manage_list(&txn, List::Info)? {
            match &k[..] {
                b"name" => s.name = Some(v),
                b"description" => s.description = Some(v),
                b"icon" => s.icon = Some(v),
                _ => {}
            }
        }
        for lev in s.follow_levs.iter().flatten() {
            if let Some(rec) = store.record(&txn, *lev)? {
                // Packed `p` values are the 32 raw bytes (non-hex ones are not packed).
                s.follows.extend(
                    rec.packed_tags()
                        .filter(|(n, _)| *n == b'p')
                        .filter_map(|(_, v)| <[u8; 32]>::try_from(v).ok()),
                );
            }
        }
        drop(txn);
        match self.current.write() {
            Ok(mut c) => *c = Arc::new(s),
            Err(p) => *p.into_inner() = Arc::new(s),
        }
        self.version.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_rules() {
        let mut s = Snapshot::default();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        assert!(s.may_write(WriteMode::Public, &[0; 32], &a, 1).is_ok());
        assert!(s.may_write(WriteMode::Allowlist, &[0; 32], &a, 1).is_err());
        s.allowed_pubkeys.insert(a);
        assert!(s.may_write(WriteMode::Public, &[0; 32], &a, 1).is_ok());
        // A non-empty allowlist restricts even the public mode.
        assert!(s.may_write(WriteMode::Public, &[0; 32], &b, 1).is_err());
        s.follows.insert(b);
        assert!(s.may_write(WriteMode::Wot, &[0; 32], &b, 1).is_ok());
        assert!(s.may_write(WriteMode::Allowlist, &[0; 32], &b, 1).is_err());
        s.banned_pubkeys.insert(a);
        assert!(s
            .may_write(WriteMode::Public, &[0; 32], &a, 1)
            .is_err_and(|e| e.starts_with("blocked:")));
        s.allowed_kinds.insert(7);
        assert!(s
            .may_write(WriteMode::Wot, &[0; 32], &b, 1)
            .is_err_and(|e| e.contains("kind 1")));
        assert!(s.may_write(WriteMode::Wot, &[0; 32], &b, 7).is_ok());
        s.blocked_ips
            .insert(Cidr::parse_block("10.0.0.1").expect("ip"));
        assert!(s.ip_blocked("::ffff:10.0.0.1".parse().expect("ip")));
        assert!(!s.ip_blocked("10.0.0.2".parse().expect("ip")));
    }

    #[test]
    fn modes_and_admins() {
        assert_eq!(WriteMode::parse("WoT"), Ok(WriteMode::Wot));
        assert!(WriteMode::parse("friends").is_err());
        let (ok, bad) = parse_admins(&format!("{} , nope", "ab".repeat(32)));
        assert_eq!(ok, vec![[0xab; 32]]);
        assert_eq!(bad.len(), 1);
    }
}
