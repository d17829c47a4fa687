//! The `Management` table: access-control and NIP-86 state (bans, allowlists, kind lists,
//! blocked IPs, NIP-11 overrides), shared by every process on the DB. A generation counter
//! is bumped in the same transaction as every change, so a relay notices changes made by
//! any process (`wok admin` offline included) with one key lookup.
//!
//! Keys: `list(1) ‖ item`, value: the reason (UTF-8). Items: pubkeys and event ids as 32
//! raw bytes, kinds as 8 bytes big-endian, IPs as their text form, info fields by name.
//! `#gen` → u64 big-endian.

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

impl Store {
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
    use crate::store::StoreOptions;

    #[test]
    fn lists_and_generation() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(
            dir.path(),
            &StoreOptions {
                map_size: 1 << 26,
                ..StoreOptions::default()
            },
        )
        .expect("open");
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
