//! The `Management` table: access-control and NIP-86 state (bans, allowlists, kind lists,
//! blocked IPs, NIP-11 overrides), shared by every process on the DB. A generation counter
//! is bumped in the same transaction as every change, so a relay notices changes made by
//! any process (`wok admin` offline included) with one key lookup.
//!
//! Keys: `list(1) ‖ item`, value: the reason (UTF-8). Items: pubkeys and event ids as 32
//! raw bytes, kinds as 8 bytes big-endian, IPs as their text form, info fields by name.
//! `#gen` → u64 big-endian.

use std::collections::HashSet;
use std::sync::Arc;

use heed::{RoTxn, RwTxn};

use super::{Result, Store};

/// One of the lists kept in the table (its key prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    BannedPubkey,
    AllowedPubkey,
    BannedEvent,
    AllowedKind,
    DisallowedKind,
    BlockedIp,
    /// NIP-11 overrides (`name`, `description`, `icon`) set by NIP-86.
    Info,
}

impl List {
    fn prefix(self) -> u8 {
        match self {
            List::BannedPubkey => b'b',
            List::AllowedPubkey => b'a',
            List::BannedEvent => b'e',
            List::AllowedKind => b'k',
            List::DisallowedKind => b'd',
            List::BlockedIp => b'i',
            List::Info => b'n',
        }
    }
}

const GEN_KEY: &[u8] = b"#gen";

fn key(list: List, item: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + item.len());
    k.push(list.prefix());
    k.extend_from_slice(item);
    k
}

/// Why a writer refuses an event: the `Management` table's bans and kind lists. Every
/// writer of the DB (relay, import, sync, stream, router) goes through
/// `Store::write_events`, which asks [`WriteBans::check`] for each event, so one rule
/// holds for all of them; the relay's ingester asks the same question earlier (before the
/// signature check) and gets the same words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    Event,
    Pubkey,
    Kind(u64),
}

impl Blocked {
    /// The `OK false` reason (the relay's wording).
    pub fn reason(self) -> String {
        match self {
            Blocked::Event => "blocked: this event is banned from this relay".into(),
            Blocked::Pubkey => "blocked: pubkey is banned from this relay".into(),
            Blocked::Kind(k) => format!("blocked: kind {k} is not accepted by this relay"),
        }
    }
}

/// The write-side lists (banned events and pubkeys, allowed and disallowed kinds) as read
/// at one management generation. Held by the store and reread inside a write transaction
/// when the generation moved, so a ban committed before a batch's transaction began applies
/// to that batch, whichever process wrote it.
#[derive(Debug, Default)]
pub struct WriteBans {
    generation: u64,
    events: HashSet<[u8; 32]>,
    pubkeys: HashSet<[u8; 32]>,
    allowed_kinds: HashSet<u64>,
    disallowed_kinds: HashSet<u64>,
}

impl WriteBans {
    /// Whether an event with this id, author and kind is refused (`None`: it may be
    /// written). The relay's order: event ban, pubkey ban, kind lists.
    pub fn check(&self, id: &[u8; 32], pubkey: &[u8; 32], kind: u64) -> Option<Blocked> {
        if self.is_empty() {
            return None;
        }
        if self.events.contains(id) {
            return Some(Blocked::Event);
        }
        if self.pubkeys.contains(pubkey) {
            return Some(Blocked::Pubkey);
        }
        kind_refused(&self.allowed_kinds, &self.disallowed_kinds, kind)
            .then_some(Blocked::Kind(kind))
    }

    /// Nothing is refused (the common case: one branch per event).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.pubkeys.is_empty()
            && self.allowed_kinds.is_empty()
            && self.disallowed_kinds.is_empty()
    }
}

/// The kind rule: a disallowed kind, or one missing from a non-empty allow list.
pub fn kind_refused(allowed: &HashSet<u64>, disallowed: &HashSet<u64>, kind: u64) -> bool {
    disallowed.contains(&kind) || (!allowed.is_empty() && !allowed.contains(&kind))
}

impl Store {
    /// The bans and kind lists in force for `txn` (a write transaction, so exact): one
    /// lookup of the generation, and a reread of the lists only when it moved.
    pub fn write_bans(&self, txn: &RoTxn) -> Result<Arc<WriteBans>> {
        let generation = self.manage_generation(txn)?;
        let mut cache = self.ban_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = cache.as_ref().filter(|b| b.generation == generation) {
            return Ok(Arc::clone(b));
        }
        let mut b = WriteBans {
            generation,
            ..WriteBans::default()
        };
        let key32 = |k: &[u8]| <[u8; 32]>::try_from(k).ok();
        for (k, _) in self.manage_list(txn, List::BannedEvent)? {
            b.events.extend(key32(&k));
        }
        for (k, _) in self.manage_list(txn, List::BannedPubkey)? {
            b.pubkeys.extend(key32(&k));
        }
        for (k, _) in self.manage_list(txn, List::AllowedKind)? {
            b.allowed_kinds.extend(super::keys::read_u64(&k));
        }
        for (k, _) in self.manage_list(txn, List::DisallowedKind)? {
            b.disallowed_kinds.extend(super::keys::read_u64(&k));
        }
        let b = Arc::new(b);
        *cache = Some(Arc::clone(&b));
        Ok(b)
    }

    /// The management generation: changes whenever any list does (0 on a fresh DB).
    pub fn manage_generation(&self, txn: &RoTxn) -> Result<u64> {
        Ok(self
            .t
            .management
            .get(txn, GEN_KEY)?
            .and_then(super::keys::read_u64)
            .unwrap_or(0))
    }

    fn bump_generation(&self, txn: &mut RwTxn) -> Result<()> {
        let g = self.manage_generation(txn)? + 1;
        self.t.management.put(txn, GEN_KEY, &g.to_be_bytes())?;
        Ok(())
    }

    /// Adds (or replaces the reason of) `item` in `list`.
    pub fn manage_put(&self, txn: &mut RwTxn, list: List, item: &[u8], reason: &str) -> Result<()> {
        self.t
            .management
            .put(txn, &key(list, item), reason.as_bytes())?;
        self.bump_generation(txn)
    }

    /// Removes `item` from `list`; whether it was there.
    pub fn manage_delete(&self, txn: &mut RwTxn, list: List, item: &[u8]) -> Result<bool> {
        let had = self.t.management.delete(txn, &key(list, item))?;
        if had {
            self.bump_generation(txn)?;
        }
        Ok(had)
    }

    /// Every item of `list` with its reason, in key order.
    pub fn manage_list(&self, txn: &RoTxn, list: List) -> Result<Vec<(Vec<u8>, String)>> {
        let p = [list.prefix()];
        let mut out = Vec::new();
        for row in self.t.management.prefix_iter(txn, &p)? {
            let (k, v) = row?;
            out.push((k[1..].to_vec(), String::from_utf8_lossy(v).into_owned()));
        }
        Ok(out)
    }

    /// Deletes the stored event `id` (its index rows and tree items with it, as `wok delete`
    /// does: no tombstone; the ban list is what refuses it again). Whether it was stored.
    pub fn delete_by_id(&self, txn: &mut RwTxn, id: &[u8; 32]) -> Result<bool> {
        let Some(lev) = self.lookup_id(txn, id)? else {
            return Ok(false);
        };
        let mut pending = super::write::Pending::new(self, txn)?;
        let gone = self.delete_lev(txn, lev, &mut pending)?;
        pending.apply(self, txn)?;
        Ok(gone)
    }
}

impl Store {
    /// levId of the current version of `pubkey`'s replaceable `kind` (d-tag empty), if any.
    pub fn current_replaceable(
        &self,
        txn: &RoTxn,
        pubkey: &[u8; 32],
        kind: u64,
    ) -> Result<Option<super::LevId>> {
        Ok(self
            .t
            .replace
            .get(txn, &super::keys::address_key(pubkey, kind, ""))?
            .and_then(super::keys::read_u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::write::Outcome;

    fn event(secret: u8, kind: u64, content: &str) -> crate::nostr::Event {
        let k = crate::nostr::sign::Keys::from_secret([secret; 32]).expect("key");
        k.sign(
            1_700_000_000,
            kind,
            crate::nostr::tags::Tags::from_vecs::<&str>(&[]),
            content,
            &crate::nostr::Limits::default(),
        )
        .expect("sign")
    }

    /// Every writer goes through `write_events`: bans and kind lists written by another
    /// transaction (another process, in life) refuse events there, and lifting them lets
    /// the same events in.
    #[test]
    fn the_write_path_refuses_what_the_lists_refuse() {
        let (_dir, store) = crate::store::tests::temp_store();
        let (by_banned, banned_ev, kind7, fine) = (
            event(1, 1, "a"),
            event(2, 1, "b"),
            event(2, 7, "+"),
            event(2, 1, "c"),
        );
        let all = [
            by_banned.clone(),
            banned_ev.clone(),
            kind7.clone(),
            fine.clone(),
        ];
        let mut w = store.write_txn().expect("w");
        store
            .manage_put(&mut w, List::BannedPubkey, &by_banned.pubkey, "")
            .expect("put");
        store
            .manage_put(&mut w, List::BannedEvent, &banned_ev.id, "")
            .expect("put");
        store
            .manage_put(&mut w, List::DisallowedKind, &7u64.to_be_bytes(), "")
            .expect("put");
        w.commit().expect("commit");
        let out = store.write_batch(&all).expect("write");
        assert_eq!(out[0], Outcome::Blocked(Blocked::Pubkey));
        assert_eq!(out[1], Outcome::Blocked(Blocked::Event));
        assert_eq!(out[2], Outcome::Blocked(Blocked::Kind(7)));
        assert!(matches!(out[3], Outcome::Written(_)));
        assert_eq!(
            out[2].ok_reply().1,
            "blocked: kind 7 is not accepted by this relay"
        );
        // An allow list refuses every other kind.
        let mut w = store.write_txn().expect("w");
        store
            .manage_put(&mut w, List::AllowedKind, &30023u64.to_be_bytes(), "")
            .expect("put");
        w.commit().expect("commit");
        assert_eq!(
            store.write_batch(&[event(3, 1, "d")]).expect("write")[0],
            Outcome::Blocked(Blocked::Kind(1))
        );
        // Lifted (a new generation): the cached lists are reread.
        let mut w = store.write_txn().expect("w");
        for (l, item) in [
            (List::BannedPubkey, &by_banned.pubkey[..]),
            (List::BannedEvent, &banned_ev.id[..]),
            (List::DisallowedKind, &7u64.to_be_bytes()[..]),
            (List::AllowedKind, &30023u64.to_be_bytes()[..]),
        ] {
            assert!(store.manage_delete(&mut w, l, item).expect("del"));
        }
        w.commit().expect("commit");
        let out = store.write_batch(&all).expect("write");
        assert!(matches!(out[0], Outcome::Written(_)), "{out:?}");
        assert!(matches!(out[1], Outcome::Written(_)), "{out:?}");
        assert!(matches!(out[2], Outcome::Written(_)), "{out:?}");
        assert_eq!(out[3], Outcome::Duplicate);
    }

    #[test]
    fn lists_and_generation() {
        let (_dir, store) = crate::store::tests::temp_store();
        let g0 = store
            .manage_generation(&store.read_txn().expect("r"))
            .expect("g");
        let mut w = store.write_txn().expect("w");
        store
            .manage_put(&mut w, List::BannedPubkey, &[1; 32], "spam")
            .expect("put");
        store
            .manage_put(&mut w, List::BlockedIp, b"10.0.0.1", "")
            .expect("put");
        assert!(!store
            .manage_delete(&mut w, List::AllowedKind, &1u64.to_be_bytes())
            .expect("del"));
        w.commit().expect("commit");
        let r = store.read_txn().expect("r");
        assert_eq!(store.manage_generation(&r).expect("g"), g0 + 2);
        assert_eq!(
            store.manage_list(&r, List::BannedPubkey).expect("list"),
            vec![(vec![1; 32], "spam".to_string())]
        );
        assert_eq!(
            store.manage_list(&r, List::BlockedIp).expect("list").len(),
            1
        );
        assert!(store.manage_list(&r, List::Info).expect("list").is_empty());
    }
}
