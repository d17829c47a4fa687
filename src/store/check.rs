//! Consistency check: every record has exactly its index rows and nothing else points
//! anywhere. Used by the property tests; cheap enough for an operator's `info --check` later.

use heed::RoTxn;

use super::keys::{self, LevId};
use super::{Record, Result, Store};
use crate::nostr::filter::EventView;
use crate::nostr::tags::PackedTags;

impl Store {
    /// Returns a description of each inconsistency found (empty when consistent).
    pub fn check_consistency(&self, txn: &RoTxn) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let mut expect = [0u64; 6]; // created_at, pubkey, kind, pubkey_kind, tag, expiration
        let mut events = 0u64;
        // A bulk load's events from here on have no index rows yet (`bulk.rs`).
        let unindexed = self.unindexed_from(txn)?.unwrap_or(LevId::MAX);
        for row in self.t.event.iter(txn)? {
            let (k, v) = row?;
            let Some(lev) = keys::read_u64(k) else {
                problems.push("bad Event key".into());
                continue;
            };
            events += 1;
            let r = Record::read(v)?;
            if self.lookup_id(txn, r.id())? != Some(lev) {
                problems.push(format!("lev {lev}: id index does not point here"));
            }
            if self.t.payload.get(txn, k)?.is_none() {
                problems.push(format!("lev {lev}: no payload"));
            }
            if lev >= unindexed {
                continue;
            }
            let s = keys::suffix(r.created_at(), r.id(), lev);
            let mut need: Vec<(usize, super::Table, Vec<u8>)> = vec![
                (0, self.t.created_at, s.to_vec()),
                (
                    1,
                    self.t.pubkey,
                    keys::with_suffix(keys::pubkey_prefix(r.pubkey()), &s),
                ),
                (
                    2,
                    self.t.kind,
                    keys::with_suffix(keys::kind_prefix(r.kind()), &s),
                ),
                (
                    3,
                    self.t.pubkey_kind,
                    keys::with_suffix(keys::pubkey_kind_prefix(r.pubkey(), r.kind()), &s),
                ),
            ];
            for (n, v) in PackedTags(r.tags_bytes()) {
                if let Some(p) = keys::tag_prefix(n, v) {
                    need.push((4, self.t.tag, keys::with_suffix(p, &s)));
                }
            }
            if let Some(e) = r.expiration() {
                need.push((5, self.t.expiration, keys::expiration_key(e, lev).to_vec()));
            }
            for (i, db, key) in need {
                expect[i] += 1;
                if db.get(txn, &key)?.is_none() {
                    problems.push(format!("lev {lev}: missing index row {i}"));
                }
            }
        }
        let tables = [
            self.t.created_at,
            self.t.pubkey,
            self.t.kind,
            self.t.pubkey_kind,
            self.t.tag,
            self.t.expiration,
        ];
        for (i, db) in tables.iter().enumerate() {
            let n = db.len(txn)?;
            if n != expect[i] {
                problems.push(format!("index {i}: {n} rows, expected {}", expect[i]));
            }
        }
        for (name, n) in [
            ("id", self.t.id.len(txn)?),
            ("payload", self.t.payload.len(txn)?),
        ] {
            if n != events {
                problems.push(format!("{name}: {n} rows for {events} events"));
            }
        }
        for row in self.t.replace.iter(txn)? {
            let (k, v) = row?;
            let lev: Option<LevId> = keys::read_u64(v);
            if lev
                .map(|l| self.t.event.get(txn, &keys::lev_key(l)))
                .transpose()?
                .flatten()
                .is_none()
            {
                problems.push(format!("replace row {} points at a missing event", k.len()));
            }
        }
        Ok(problems)
    }
}
