//! The NIP-50 full-text index, inside the LMDB environment and written in the writer's
//! transaction, so it is exact by construction: an event's postings are added in the
//! transaction that stores it and removed in the one that deletes, replaces or expires it
//! (`OK true` implies searchable; a crash loses both or neither).
//!
//! Tables:
//! * `Search__postings` (DUPSORT|DUPFIXED): token → `levId(8 BE)‖tf(u8)‖len(u8)`, ten bytes
//!   per posting packed without per-row headers; duplicates sort by levId, so a token's
//!   postings come in levId order.
//! * `Search__doc`: levId → document length (u32 LE): which events are indexed (removal
//!   re-tokenizes only those, whatever `search.kinds` says now), and N for BM25.
//! * `Search__meta`: `total` → sum of document lengths (u64 LE; BM25's average),
//!   `version` → the tokenizer version the postings were made with (u32 LE).
//!
//! Removal re-tokenizes the stored JSON with the same code (`search::doc`), so it removes
//! exactly the postings that were added; a tokenizer change bumps `tokenize::VERSION` and
//! needs `wok search rebuild`.

use std::collections::HashMap;

use heed::types::Bytes;
use heed::{Database, DatabaseFlags, RoTxn, RwTxn};

use super::keys::{self, LevId};
use super::{Record, Result, Store, StoreError};
use crate::nostr::filter::EventView;
use crate::search::doc::{self, Terms};
use crate::search::query::{bm25, recency_boost, SearchQuery};
use crate::search::tokenize;

pub(crate) type Table = Database<Bytes, Bytes>;

/// Bytes of one posting value.
pub const POSTING_LEN: usize = 10;

const TOTAL_KEY: &[u8] = b"total";
const VERSION_KEY: &[u8] = b"version";

#[derive(Clone, Copy)]
pub(crate) struct SearchTables {
    pub postings: Table,
    pub docs: Table,
    pub meta: Table,
}

pub(crate) const TABLE_NAMES: [&str; 3] = ["Search__postings", "Search__doc", "Search__meta"];

impl SearchTables {
    pub(crate) fn create(env: &heed::Env<heed::WithoutTls>, txn: &mut RwTxn) -> Result<Self> {
        let postings = env
            .database_options()
            .types::<Bytes, Bytes>()
            .name(TABLE_NAMES[0])
            .flags(DatabaseFlags::DUP_SORT | DatabaseFlags::DUP_FIXED)
            .create(txn)?;
        let docs = env.create_database::<Bytes, Bytes>(txn, Some(TABLE_NAMES[1]))?;
        let meta = env.create_database::<Bytes, Bytes>(txn, Some(TABLE_NAMES[2]))?;
        if meta.get(txn, VERSION_KEY)?.is_none() && docs.is_empty(txn)? {
            meta.put(txn, VERSION_KEY, &tokenize::VERSION.to_le_bytes())?;
        }
        Ok(SearchTables {
            postings,
            docs,
            meta,
        })
    }
}

/// Which kinds are indexed (`search.kinds`): sorted inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KindSet(pub Vec<(u64, u64)>);

impl KindSet {
    /// strfry's list syntax: kinds separated by commas or spaces, `a-b` for a range.
    pub fn parse(s: &str) -> std::result::Result<KindSet, String> {
        let mut out = Vec::new();
        for item in s.split([',', ' ', '\t']).filter(|x| !x.is_empty()) {
            let (a, b) = match item.split_once('-') {
                Some((a, b)) => (a, b),
                None => (item, item),
            };
            let (Ok(a), Ok(b)) = (a.trim().parse::<u64>(), b.trim().parse::<u64>()) else {
                return Err(format!(
                    "bad kind or range {item:?} (expected e.g. 1, 30023 or 1-5)"
                ));
            };
            if a > b {
                return Err(format!("empty range {item:?}"));
            }
            out.push((a, b));
        }
        out.sort_unstable();
        Ok(KindSet(out))
    }

    pub fn contains(&self, kind: u64) -> bool {
        self.0.iter().any(|&(a, b)| a <= kind && kind <= b)
    }
}

/// One posting value.
fn posting(lev: LevId, tf: u8, len: u8) -> [u8; POSTING_LEN] {
    let mut v = [0u8; POSTING_LEN];
    v[..8].copy_from_slice(&lev.to_be_bytes());
    v[8] = tf;
    v[9] = len;
    v
}

/// Postings and document rows to add or remove at the end of a batch (see `write::Pending`).
#[derive(Default)]
pub(crate) struct SearchPending {
    /// (token, posting, add)
    postings: Vec<(String, [u8; POSTING_LEN], bool)>,
    /// (levId, length, add)
    docs: Vec<(LevId, u32, bool)>,
    /// Indexed by this batch (not yet in `Search__doc`).
    added: std::collections::HashSet<LevId>,
}

impl SearchPending {
    fn change(&mut self, lev: LevId, t: &Terms, add: bool) {
        let len = t.norm_byte();
        for (tok, n) in &t.terms {
            self.postings
                .push((tok.clone(), posting(lev, Terms::tf_byte(*n), len), add));
        }
        self.docs.push((lev, t.len, add));
    }
}

impl Store {
    /// `search.kinds` for new events (live; `None` indexes nothing).
    pub fn set_search_kinds(&self, kinds: Option<KindSet>) {
        if let Ok(mut k) = self.search_kinds.write() {
            *k = kinds.map(std::sync::Arc::new);
        }
    }

    pub fn search_kinds(&self) -> Option<std::sync::Arc<KindSet>> {
        self.search_kinds.read().ok().and_then(|k| k.clone())
    }

    /// Indexes a new event if its kind is indexed.
    pub(crate) fn search_insert(
        &self,
        p: &mut SearchPending,
        kinds: Option<&KindSet>,
        ev: &crate::nostr::Event,
        lev: LevId,
    ) {
        if kinds.is_some_and(|k| k.contains(ev.kind)) {
            let t = doc::event_terms(ev);
            p.change(lev, &t, true);
            p.added.insert(lev);
        }
    }

    /// Removes an event's postings, if it is indexed; call before its payload is deleted.
    pub(crate) fn search_remove(
        &self,
        txn: &RwTxn,
        p: &mut SearchPending,
        lev: LevId,
    ) -> Result<()> {
        let in_batch = p.added.remove(&lev);
        let stored_len = self
            .s
            .docs
            .get(txn, &keys::lev_key(lev))?
            .map(|v| <[u8; 4]>::try_from(v).map_or(0, u32::from_le_bytes));
        if !in_batch && stored_len.is_none() {
            return Ok(());
        }
        // An unreadable payload (its zstd dictionary lost, or corrupt) must not stop the
        // deletion: the doc row goes, its postings stay as strays that no query returns
        // (candidates are checked against the record) until `wok search rebuild`.
        let terms = match self.payload(txn, lev) {
            Ok(Some(json)) => doc::json_terms(&json),
            Ok(None) | Err(StoreError::MissingDictionary(_) | StoreError::Corrupt(_)) => None,
            Err(e) => return Err(e),
        };
        match terms {
            Some(t) => p.change(lev, &t, false),
            None => p.docs.push((lev, stored_len.unwrap_or(0), false)),
        }
        Ok(())
    }

    /// Writes a batch's postings: pairs added and removed in the batch cancel out.
    pub(crate) fn search_apply(&self, txn: &mut RwTxn, mut p: SearchPending) -> Result<()> {
        if p.postings.is_empty() && p.docs.is_empty() {
            return Ok(());
        }
        // Token order (for page locality and cancelling); the first eight bytes as one
        // integer settle most comparisons without a memcmp call.
        let prefix = |t: &str| {
            let mut b = [0u8; 8];
            let n = t.len().min(8);
            b[..n].copy_from_slice(&t.as_bytes()[..n]);
            u64::from_be_bytes(b)
        };
        p.postings.sort_unstable_by(|a, b| {
            prefix(&a.0)
                .cmp(&prefix(&b.0))
                .then_with(|| (&a.0, &a.1, !a.2).cmp(&(&b.0, &b.1, !b.2)))
        });
        let mut i = 0;
        while i < p.postings.len() {
            let (tok, val, add) = &p.postings[i];
            if let Some((t2, v2, a2)) = p.postings.get(i + 1) {
                if *add && !*a2 && t2 == tok && v2 == val {
                    i += 2;
                    continue;
                }
            }
            if *add {
                // levIds only grow, so a new posting is almost always its token's last:
                // APPEND_DUP skips the search within the token's postings. A rebuild of
                // older events falls back to an ordinary put.
                match self.s.postings.put_with_flags(
                    txn,
                    heed::PutFlags::APPEND_DUP,
                    tok.as_bytes(),
                    val,
                ) {
                    Ok(()) => {}
                    Err(heed::Error::Mdb(heed::MdbError::KeyExist)) => {
                        self.s.postings.put(txn, tok.as_bytes(), val)?;
                    }
                    Err(e) => return Err(e.into()),
                }
            } else {
                self.s
                    .postings
                    .delete_one_duplicate(txn, tok.as_bytes(), val)?;
            }
            i += 1;
        }
        let mut total = self.search_total(txn)? as i128;
        p.docs.sort_unstable_by_key(|d| (d.0, !d.2));
        let mut i = 0;
        while i < p.docs.len() {
            let (lev, len, add) = p.docs[i];
            if let Some(&(l2, _, a2)) = p.docs.get(i + 1) {
                if add && !a2 && l2 == lev {
                    i += 2;
                    continue;
                }
            }
            if add {
                self.s
                    .docs
                    .put(txn, &keys::lev_key(lev), &len.to_le_bytes())?;
                total += i128::from(len);
            } else if self.s.docs.delete(txn, &keys::lev_key(lev))? {
                total -= i128::from(len);
            }
            i += 1;
        }
        let total = u64::try_from(total.max(0)).unwrap_or(0);
        self.s.meta.put(txn, TOTAL_KEY, &total.to_le_bytes())?;
        Ok(())
    }

    fn search_total(&self, txn: &RoTxn) -> Result<u64> {
        Ok(self
            .s
            .meta
            .get(txn, TOTAL_KEY)?
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes))
    }

    /// The tokenizer version of the stored postings.
    pub fn search_version(&self, txn: &RoTxn) -> Result<Option<u32>> {
        Ok(self
            .s
            .meta
            .get(txn, VERSION_KEY)?
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes))
    }

    /// Indexed events (documents), postings and the index's bytes (an estimate, see below).
    pub fn search_stats(&self, txn: &RoTxn) -> Result<SearchStats> {
        let mut bytes = 0u64;
        let mut tokens = 0u64;
        for (i, db) in [self.s.postings, self.s.docs, self.s.meta]
            .iter()
            .enumerate()
        {
            let s = db.stat(txn)?;
            bytes +=
                (s.branch_pages + s.leaf_pages + s.overflow_pages) as u64 * u64::from(s.page_size);
            if i == 0 {
                tokens = s.entries as u64;
            }
        }
        // LMDB's stat leaves out the pages of DUPSORT sub-databases: add the postings'
        // packed bytes (a lower bound; `benches/search.rs` measures the real difference).
        bytes += tokens * POSTING_LEN as u64;
        Ok(SearchStats {
            docs: self.s.docs.len(txn)?,
            tokens,
            bytes,
            total_len: self.search_total(txn)?,
            version: self.search_version(txn)?,
        })
    }

    /// Postings of one token (levId ascending): (levId, tf, length byte).
    pub fn postings(&self, txn: &RoTxn, token: &str) -> Result<Vec<(LevId, u8, u8)>> {
        let mut out = Vec::new();
        if let Some(iter) = self.s.postings.get_duplicates(txn, token.as_bytes())? {
            for row in iter {
                let (_, v) = row?;
                if let (Some(lev), Some(&tf), Some(&len)) = (keys::read_u64(v), v.get(8), v.get(9))
                {
                    out.push((lev, tf, len));
                }
            }
        }
        Ok(out)
    }

    /// Every indexed event containing all of `q`'s terms, with levId ≤ `snapshot`, best
    /// first (BM25 with a mild recency boost; ties newest first), and the work done
    /// (postings read). Candidates are not checked against the rest of the filter.
    pub fn search(
        &self,
        txn: &RoTxn,
        q: &SearchQuery,
        snapshot: LevId,
    ) -> Result<(Vec<LevId>, u64)> {
        let n = self.s.docs.len(txn)?;
        let avgdl = self.search_total(txn)? as f64 / n.max(1) as f64;
        let mut lists = Vec::with_capacity(q.terms.len());
        let mut work = 0u64;
        for t in &q.terms {
            let mut l = self.postings(txn, t)?;
            work += l.len() as u64;
            l.retain(|p| p.0 <= snapshot);
            if l.is_empty() {
                return Ok((Vec::new(), work));
            }
            lists.push(l);
        }
        lists.sort_by_key(Vec::len);
        let dfs: Vec<u64> = lists.iter().map(|l| l.len() as u64).collect();
        // Intersect, starting from the rarest term: (levId, score so far).
        let mut cands: Vec<(LevId, f64)> = lists[0]
            .iter()
            .map(|&(lev, tf, len)| (lev, bm25(tf, len, dfs[0], n, avgdl)))
            .collect();
        for (l, &df) in lists.iter().zip(&dfs).skip(1) {
            let mut j = 0;
            cands.retain_mut(|(lev, score)| {
                // Both ascending: gallop through `l`.
                while j < l.len() && l[j].0 < *lev {
                    j += 1;
                }
                match l.get(j) {
                    Some(&(l2, tf, len)) if l2 == *lev => {
                        *score += bm25(tf, len, df, n, avgdl);
                        true
                    }
                    _ => false,
                }
            });
        }
        for (lev, score) in cands.iter_mut() {
            *score *= recency_boost(*lev, snapshot);
        }
        cands.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
        Ok((cands.into_iter().map(|c| c.0).collect(), work))
    }

    /// Is `lev` in the index?
    pub fn is_indexed(&self, txn: &RoTxn, lev: LevId) -> Result<bool> {
        Ok(self.s.docs.get(txn, &keys::lev_key(lev))?.is_some())
    }

    /// The indexed terms of a stored event (`None` if it is not indexed).
    pub fn stored_terms(&self, txn: &RoTxn, lev: LevId) -> Result<Option<Terms>> {
        if !self.is_indexed(txn, lev)? {
            return Ok(None);
        }
        Ok(self.payload(txn, lev)?.and_then(|j| doc::json_terms(&j)))
    }

    /// NIP-50 `domain:`: does `pubkey`'s stored profile claim a NIP-05 address there?
    /// (Cached per query by the caller.)
    pub fn author_domain_is(&self, txn: &RoTxn, pubkey: &[u8; 32], domain: &str) -> Result<bool> {
        let key = keys::address_key(pubkey, 0, "");
        let Some(lev) = self.t.replace.get(txn, &key)?.and_then(keys::read_u64) else {
            return Ok(false);
        };
        Ok(self
            .payload(txn, lev)?
            .is_some_and(|j| crate::search::query::profile_domain_is(&j, domain)))
    }

    /// Drops every posting and document row (`wok search drop`, or before a rebuild).
    pub fn search_clear(&self, txn: &mut RwTxn) -> Result<()> {
        self.s.postings.clear(txn)?;
        self.s.docs.clear(txn)?;
        self.s.meta.clear(txn)?;
        self.s
            .meta
            .put(txn, VERSION_KEY, &tokenize::VERSION.to_le_bytes())?;
        Ok(())
    }

    /// Indexes the stored events `levs` that are of `kinds` and not yet indexed, in one
    /// transaction (`wok search build`); returns how many were added.
    pub fn search_index_stored(&self, levs: &[LevId], kinds: &KindSet) -> Result<usize> {
        let mut txn = self.write_txn()?;
        let mut p = SearchPending::default();
        let mut n = 0;
        for &lev in levs {
            let Some(rec) = self.record(&txn, lev)? else {
                continue;
            };
            if !kinds.contains(rec.kind()) || self.is_indexed(&txn, lev)? {
                continue;
            }
            let Some(t) = self.payload(&txn, lev)?.and_then(|j| doc::json_terms(&j)) else {
                continue;
            };
            p.change(lev, &t, true);
            n += 1;
        }
        self.search_apply(&mut txn, p)?;
        txn.commit()?;
        Ok(n)
    }

    /// Brute-force check: the postings are exactly those of the indexed stored events
    /// (tests and `wok search inspect --check`). Returns the differences found.
    pub fn search_check(&self, txn: &RoTxn) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let mut expected: HashMap<(String, LevId), (u8, u8)> = HashMap::new();
        for row in self.s.docs.iter(txn)? {
            let (k, _) = row?;
            let Some(lev) = keys::read_u64(k) else {
                continue;
            };
            match self.payload(txn, lev)?.and_then(|j| doc::json_terms(&j)) {
                Some(t) => {
                    for (tok, n) in &t.terms {
                        expected.insert((tok.clone(), lev), (Terms::tf_byte(*n), t.norm_byte()));
                    }
                }
                None => problems.push(format!("indexed levId {lev} has no stored event")),
            }
        }
        let mut seen = 0usize;
        for row in self.s.postings.iter(txn)? {
            let (k, v) = row?;
            let tok = String::from_utf8_lossy(k).into_owned();
            let lev = keys::read_u64(v).unwrap_or(0);
            let got = (
                v.get(8).copied().unwrap_or(0),
                v.get(9).copied().unwrap_or(0),
            );
            match expected.get(&(tok.clone(), lev)) {
                Some(want) if *want == got => seen += 1,
                _ => problems.push(format!("stray posting {tok:?} → levId {lev}")),
            }
        }
        if seen != expected.len() {
            problems.push(format!(
                "{} postings missing",
                expected.len().saturating_sub(seen)
            ));
        }
        Ok(problems)
    }
}

/// `wok info` / `wok search inspect` figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchStats {
    pub docs: u64,
    pub tokens: u64,
    pub bytes: u64,
    pub total_len: u64,
    pub version: Option<u32>,
}

/// A stored record that can also give its indexed terms (read from the payload once, on
/// first use), for live matching of `search` filters against stored events.
pub struct StoredEvent<'s, 't> {
    pub rec: Record<'t>,
    pub lev: LevId,
    store: &'s Store,
    txn: &'t RoTxn<'t, heed::WithoutTls>,
    terms: std::cell::OnceCell<Option<Terms>>,
}

impl<'s, 't> StoredEvent<'s, 't> {
    pub fn new(
        store: &'s Store,
        txn: &'t RoTxn<'t, heed::WithoutTls>,
        rec: Record<'t>,
        lev: LevId,
    ) -> Self {
        StoredEvent {
            rec,
            lev,
            store,
            txn,
            terms: std::cell::OnceCell::new(),
        }
    }
}

impl EventView for StoredEvent<'_, '_> {
    fn id(&self) -> &[u8; 32] {
        self.rec.id()
    }
    fn pubkey(&self) -> &[u8; 32] {
        self.rec.pubkey()
    }
    fn created_at(&self) -> u64 {
        self.rec.created_at()
    }
    fn kind(&self) -> u64 {
        self.rec.kind()
    }
    fn packed_tags(&self) -> crate::nostr::tags::PackedTags<'_> {
        self.rec.packed_tags()
    }
    fn search_terms(&self) -> Option<&Terms> {
        self.terms
            .get_or_init(|| {
                // A read error counts as not indexed: the filter then does not match.
                self.store.stored_terms(self.txn, self.lev).ok().flatten()
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nostr::sign::Keys;
    use crate::nostr::tags::Tags;
    use crate::nostr::{Event, Filter, JsonParser, Limits};
    use crate::store::query::{Progress, Query};
    use crate::store::tests::temp_store;

    fn ev(k: u8, created_at: u64, kind: u64, tags: &[Vec<&str>], content: &str) -> Event {
        Keys::from_secret([k; 32])
            .expect("key")
            .sign(
                created_at,
                kind,
                Tags::from_vecs(tags),
                content,
                &Limits::default(),
            )
            .expect("sign")
    }

    fn search(store: &Store, f: &str, now: u64) -> Vec<[u8; 32]> {
        let filter = JsonParser::new()
            .parse(&mut f.as_bytes().to_vec(), |v| Filter::from_json(v, 3))
            .expect("json")
            .expect("filter");
        let txn = store.read_txn().expect("txn");
        let snap = store.latest_lev_id(&txn).expect("snap");
        let mut q = Query::new(vec![filter], u64::MAX, snap, now);
        let mut out = Vec::new();
        while q.run(store, &txn, u64::MAX, &mut out).expect("run") == Progress::Paused {}
        out.iter()
            .map(|&l| *store.record(&txn, l).expect("rec").expect("exists").id())
            .collect()
    }

    fn consistent(store: &Store) {
        let txn = store.read_txn().expect("txn");
        let problems = store.search_check(&txn).expect("check");
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn delete_replace_expire_and_wok_delete_remove_postings() {
        let (_d, store) = temp_store();
        let a = ev(1, 100, 1, &[], "zebra crossing");
        let p1 = ev(2, 100, 0, &[], r#"{"name":"Oldname","about":"zebra fan"}"#);
        let exp = ev(3, 100, 1, &[vec!["expiration", "150"]], "zebra expiring");
        let gone = ev(4, 100, 1, &[], "zebra banned");
        store
            .write_batch(&[a.clone(), p1.clone(), exp.clone(), gone.clone()])
            .expect("write");
        consistent(&store);
        assert_eq!(search(&store, r#"{"search":"zebra"}"#, 120).len(), 4);
        // Expired events are never found, then purged with their postings.
        assert_eq!(search(&store, r#"{"search":"zebra"}"#, 200).len(), 3);
        assert_eq!(store.purge_expired(200, 100).expect("purge"), 1);
        consistent(&store);
        // NIP-09 deletion.
        let del = ev(1, 101, 5, &[vec!["e", a.id_hex()]], "");
        store.write_batch(&[del]).expect("write");
        consistent(&store);
        assert_eq!(
            search(&store, r#"{"search":"crossing"}"#, 200),
            Vec::<[u8; 32]>::new()
        );
        // Replacement: the old profile's words go.
        let p2 = ev(2, 102, 0, &[], r#"{"name":"Newname"}"#);
        store.write_batch(std::slice::from_ref(&p2)).expect("write");
        consistent(&store);
        assert!(search(&store, r#"{"search":"oldname"}"#, 200).is_empty());
        assert_eq!(search(&store, r#"{"search":"newname"}"#, 200), vec![p2.id]);
        // `wok delete` (bans) removes postings too.
        let txn = store.read_txn().expect("txn");
        let lev = store
            .lookup_id(&txn, &gone.id)
            .expect("id")
            .expect("stored");
        drop(txn);
        store.delete_batch(&[lev]).expect("delete");
        consistent(&store);
        assert!(search(&store, r#"{"search":"zebra"}"#, 200).is_empty());
        let txn = store.read_txn().expect("txn");
        assert!(store.postings(&txn, "zebra").expect("p").is_empty());
    }

    #[test]
    fn same_batch_insert_and_replace_cancel() {
        let (_d, store) = temp_store();
        let old = ev(
            5,
            100,
            30023,
            &[vec!["d", "x"], vec!["title", "First draft"]],
            "alpha",
        );
        let new = ev(
            5,
            101,
            30023,
            &[vec!["d", "x"], vec!["title", "Final"]],
            "beta",
        );
        store.write_batch(&[new.clone(), old]).expect("write");
        consistent(&store);
        assert!(search(&store, r#"{"search":"draft"}"#, 200).is_empty());
        assert_eq!(
            search(&store, r#"{"search":"final beta"}"#, 200),
            vec![new.id]
        );
        let txn = store.read_txn().expect("txn");
        assert_eq!(store.search_stats(&txn).expect("stats").docs, 1);
    }

    #[test]
    fn kinds_outside_the_set_are_not_indexed_but_removal_follows_the_index() {
        let (_d, store) = temp_store();
        let a = ev(6, 100, 1, &[], "walrus");
        store.write_batch(std::slice::from_ref(&a)).expect("write");
        // Kind 1 leaves the set: the indexed event is still removed exactly.
        store.set_search_kinds(Some(KindSet::parse("30023").expect("kinds")));
        let b = ev(6, 100, 1, &[], "walrus two");
        store.write_batch(&[b]).expect("write");
        assert_eq!(search(&store, r#"{"search":"walrus"}"#, 200), vec![a.id]);
        let del = ev(6, 101, 5, &[vec!["e", a.id_hex()]], "");
        store.write_batch(&[del]).expect("write");
        consistent(&store);
        assert!(search(&store, r#"{"search":"walrus"}"#, 200).is_empty());
    }

    #[test]
    fn ranking_and_filters() {
        let (_d, store) = temp_store();
        let best = ev(7, 100, 1, &[], "nostr nostr nostr");
        let mid = ev(
            8,
            101,
            1,
            &[],
            "nostr is a protocol for notes and more words here",
        );
        let other_kind = ev(7, 102, 30023, &[vec!["d", "a"]], "nostr article");
        let none = ev(9, 103, 1, &[], "nothing relevant");
        store
            .write_batch(&[best.clone(), mid.clone(), other_kind.clone(), none])
            .expect("write");
        let got = search(&store, r#"{"search":"nostr","kinds":[1]}"#, 200);
        assert_eq!(got, vec![best.id, mid.id]);
        let author = best.pubkey_hex();
        let got = search(
            &store,
            &format!(r#"{{"search":"nostr","authors":["{author}"]}}"#),
            200,
        );
        assert_eq!(got.len(), 2);
        assert!(!got.contains(&mid.id));
        assert_eq!(
            search(&store, r#"{"search":"nostr","limit":1}"#, 200).len(),
            1
        );
        assert_eq!(
            search(&store, r#"{"search":"nostr","since":102}"#, 200),
            vec![other_kind.id]
        );
        assert!(search(&store, r#"{"search":"nostr protocol zzz"}"#, 200).is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Random notes, deletions and replacements: the index equals a fresh tokenization
        /// of what is stored, and every search equals a naive scan of the stored events.
        #[test]
        fn matches_a_naive_scan(ops in proptest::collection::vec((0u8..4, 0usize..6, 0usize..6, 0u8..3), 1..40)) {
            const WORDS: [&str; 6] = ["apple", "Banana", "cherry", "dátil", "東京", "fig"];
            let (_d, store) = temp_store();
            let mut written: Vec<Event> = Vec::new();
            for (i, (op, w1, w2, who)) in ops.into_iter().enumerate() {
                let t = 1000 + i as u64;
                let content = format!("{} and {}", WORDS[w1], WORDS[w2]);
                let e = match op {
                    0 | 1 => ev(who + 10, t, 1, &[], &content),
                    2 => ev(who + 10, t, 0, &[], &format!(r#"{{"name":"{content}"}}"#)),
                    _ => match written.get(w1 % written.len().max(1)) {
                        Some(target) => ev(who + 10, t, 5, &[vec!["e", target.id_hex()]], ""),
                        None => continue,
                    },
                };
                store.write_batch(std::slice::from_ref(&e)).expect("write");
                written.push(e);
            }
            consistent(&store);
            let txn = store.read_txn().expect("txn");
            for w in WORDS {
                let q = crate::search::query::SearchQuery::parse(w, 100).expect("q");
                let mut naive: Vec<[u8; 32]> = Vec::new();
                for lev in store.all_lev_ids(&txn).expect("levs") {
                    let json = store.payload(&txn, lev).expect("p").expect("json");
                    let rec = store.record(&txn, lev).expect("r").expect("rec");
                    if [0, 1].contains(&rec.kind()) {
                        if let Some(t) = doc::json_terms(&json) {
                            if q.matches(&t) {
                                naive.push(*rec.id());
                            }
                        }
                    }
                }
                let mut got = search(&store, &format!(r#"{{"search":"{w}"}}"#), 5000);
                got.sort_unstable();
                naive.sort_unstable();
                proptest::prop_assert_eq!(got, naive, "query {}", w);
            }
        }
    }
}
