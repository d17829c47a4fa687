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

#[cfg(test)]
mod tests {
    use crate::store::keys;
    use crate::store::tests::{ev, key, temp_store};
    use crate::store::Store;

    /// A store with a tagged note, an addressable event and an expiring one.
    fn filled() -> (tempfile::TempDir, Store) {
        let (dir, s) = temp_store();
        let k = key(1);
        let p = crate::nostr::hex::encode(&key(2).pubkey);
        s.write_batch(&[
            ev(&k, 1_700_000_000, 1, &[vec!["p", &p], vec!["t", "x"]], "a"),
            ev(&k, 1_700_000_001, 30023, &[vec!["d", "slug"]], "b"),
            ev(
                &k,
                1_700_000_002,
                1,
                &[vec!["expiration", "4000000000"]],
                "c",
            ),
        ])
        .expect("write");
        (dir, s)
    }

    /// What the checker says after `harm` ran in a write transaction on a filled store.
    fn problems_after(harm: impl FnOnce(&Store, &mut heed::RwTxn)) -> Vec<String> {
        let (_dir, s) = filled();
        let mut txn = s.write_txn().expect("txn");
        harm(&s, &mut txn);
        txn.commit().expect("commit");
        let txn = s.read_txn().expect("txn");
        s.check_consistency(&txn).expect("check")
    }

    fn first_key(txn: &heed::RwTxn, db: crate::store::Table) -> Vec<u8> {
        db.first(txn).expect("first").expect("a row").0.to_vec()
    }

    /// The checker is the oracle of the property and bulk-load tests, so it must see each
    /// kind of damage, not only pass a healthy store.
    #[test]
    fn the_checker_reports_each_kind_of_damage() {
        assert_eq!(problems_after(|_, _| {}), Vec::<String>::new());
        let has = |p: &[String], needle: &str| p.iter().any(|l| l.contains(needle));

        let p = problems_after(|s, txn| {
            let k = first_key(txn, s.t.created_at);
            s.t.created_at.delete(txn, &k).expect("delete");
        });
        assert!(has(&p, "missing index row 0"), "{p:?}");
        assert!(has(&p, "index 0: 2 rows, expected 3"), "{p:?}");

        let p = problems_after(|s, txn| {
            let mut k = first_key(txn, s.t.tag);
            *k.last_mut().expect("key") ^= 1; // a row no event has
            s.t.tag.put(txn, &k, &[]).expect("put");
        });
        assert!(has(&p, "index 4: 4 rows, expected 3"), "{p:?}");

        let p = problems_after(|s, txn| {
            s.t.payload.delete(txn, &keys::lev_key(1)).expect("delete");
        });
        assert!(has(&p, "lev 1: no payload"), "{p:?}");
        assert!(has(&p, "payload: 2 rows for 3 events"), "{p:?}");

        let p = problems_after(|s, txn| {
            let k = first_key(txn, s.t.id);
            s.t.id.put(txn, &k, &keys::lev_key(99)).expect("put");
        });
        assert!(has(&p, "id index does not point here"), "{p:?}");

        let p = problems_after(|s, txn| {
            let k = first_key(txn, s.t.replace);
            s.t.replace.put(txn, &k, &keys::lev_key(99)).expect("put");
        });
        assert!(has(&p, "points at a missing event"), "{p:?}");

        // Events at or past a bulk load's marker must have no rows yet: the last one here
        // has its own, so each table holds one row more than expected.
        let p = problems_after(|s, txn| {
            s.t.meta
                .put(txn, crate::store::bulk::UNINDEXED_KEY, &keys::lev_key(3))
                .expect("put");
        });
        assert!(has(&p, "index 0: 3 rows, expected 2"), "{p:?}");
        assert!(has(&p, "index 5: 1 rows, expected 0"), "{p:?}");
    }
}
