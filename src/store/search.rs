//! The NIP-50 full-text index, inside the LMDB environment and written in the writer's
//! transaction, so it is exact by construction: an event's postings are added in the
//! transaction that stores it and removed in the one that deletes, replaces or expires it
//! (`OK true` implies searchable; a crash loses both or neither).
//!
//! Tables:
//! * `Search__blocks`: a token's postings (levId, tf, length byte) in levId order, cut into
//!   delta-varint blocks keyed `token ‖ 0xFF ‖ first levId` (`search::postings`). A batch
//!   appends each of its tokens' new postings to the token's last block in one write.
//! * `Search__doc`: levId → document length (u32 LE): which events are indexed (removal
//!   re-tokenizes only those, whatever `search.kinds` says now), and N for BM25.
//! * `Search__meta`: `total` → sum of document lengths (u64 LE; BM25's average),
//!   `postings` → the number of postings (u64 LE), `version` → the tokenizer version the
//!   postings were made with (u32 LE).
//!
//! Removal re-tokenizes the stored JSON with the same code (`search::doc`), so it removes
//! exactly the postings that were added; a tokenizer change bumps `tokenize::VERSION` and
//! needs `wok search rebuild`. An index in the first layout (`Search__postings`, one
//! DUPSORT row per posting) is converted to blocks when the store is opened.

use std::collections::{BTreeMap, HashMap};

use heed::types::Bytes;
use heed::{Database, DatabaseFlags, RoTxn, RwTxn};

use super::keys::{self, LevId};
use super::{Record, Result, Store, StoreError};
use crate::nostr::filter::EventView;
use crate::search::doc::{self, Terms};
use crate::search::postings::{self, Posting, BLOCK_BYTES, MAX_POSTING_BYTES};
use crate::search::query::{bm25_idf, bm25_norm, SearchQuery, K1};
use crate::search::tokenize;

pub(crate) type Table = Database<Bytes, Bytes>;

const TOTAL_KEY: &[u8] = b"total";
const VERSION_KEY: &[u8] = b"version";
const POSTINGS_KEY: &[u8] = b"postings";

/// The first layout's table (one DUPSORT|DUPFIXED row `levId‖tf‖len` per posting).
const OLD_POSTINGS: &str = "Search__postings";

#[derive(Clone, Copy)]
pub(crate) struct SearchTables {
    pub blocks: Table,
    pub docs: Table,
    pub meta: Table,
}

pub(crate) const TABLE_NAMES: [&str; 3] = ["Search__blocks", "Search__doc", "Search__meta"];

impl SearchTables {
    pub(crate) fn create(env: &heed::Env<heed::WithoutTls>, txn: &mut RwTxn) -> Result<Self> {
        let blocks = env.create_database::<Bytes, Bytes>(txn, Some(TABLE_NAMES[0]))?;
        let docs = env.create_database::<Bytes, Bytes>(txn, Some(TABLE_NAMES[1]))?;
        let meta = env.create_database::<Bytes, Bytes>(txn, Some(TABLE_NAMES[2]))?;
        if meta.get(txn, VERSION_KEY)?.is_none() && docs.is_empty(txn)? {
            meta.put(txn, VERSION_KEY, &tokenize::VERSION.to_le_bytes())?;
        }
        let t = SearchTables { blocks, docs, meta };
        let old = env
            .database_options()
            .types::<Bytes, Bytes>()
            .name(OLD_POSTINGS)
            .flags(DatabaseFlags::DUP_SORT | DatabaseFlags::DUP_FIXED)
            .open(txn)?;
        if let Some(old) = old {
            if !old.is_empty(txn)? {
                t.convert_first_layout(txn, old)?;
            }
        }
        Ok(t)
    }

    /// Rewrites an index of the first layout as blocks, a slice of tokens at a time (the
    /// old rows are read before the new ones are written in the same transaction).
    fn convert_first_layout(&self, txn: &mut RwTxn, old: Table) -> Result<()> {
        let mut after: Option<Vec<u8>> = None;
        let mut count = 0u64;
        loop {
            let mut slice: Vec<(Vec<u8>, Vec<Posting>)> = Vec::new();
            let mut n = 0usize;
            {
                let bound = match &after {
                    Some(a) => std::ops::Bound::Excluded(a.as_slice()),
                    None => std::ops::Bound::Unbounded,
                };
                for row in old.range(txn, &(bound, std::ops::Bound::Unbounded))? {
                    let (k, v) = row?;
                    let (Some(lev), Some(&tf), Some(&len)) =
                        (keys::read_u64(v), v.get(8), v.get(9))
                    else {
                        return Err(StoreError::Corrupt(format!("{OLD_POSTINGS} row")));
                    };
                    match slice.last_mut() {
                        Some((t, ps)) if t.as_slice() == k => ps.push(Posting { lev, tf, len }),
                        _ => {
                            // Stop between tokens once the slice is big enough.
                            if n >= 1 << 20 {
                                break;
                            }
                            slice.push((k.to_vec(), vec![Posting { lev, tf, len }]));
                        }
                    }
                    n += 1;
                }
            }
            let Some((last, _)) = slice.last() else {
                break;
            };
            after = Some(last.clone());
            for (token, ps) in &slice {
                for (first, v) in postings::blocks(ps) {
                    self.blocks.put(txn, &postings::key(token, first), &v)?;
                }
                count += ps.len() as u64;
            }
        }
        old.clear(txn)?;
        self.meta.put(txn, POSTINGS_KEY, &count.to_le_bytes())?;
        log::info!("search index converted to posting blocks ({count} postings)");
        Ok(())
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

/// One token's (posting, add) changes in a batch.
type Changes = Vec<(Posting, bool)>;

/// Postings and document rows to add or remove at the end of a batch (see `write::Pending`),
/// grouped by token as they come: a batch of thousands of events has hundreds of thousands
/// of postings but only a few thousand distinct tokens, so grouping by hash and sorting the
/// tokens is far cheaper than sorting the postings.
#[derive(Default)]
pub(crate) struct SearchPending {
    /// token → its (posting, add) changes, in the order they came.
    tokens: HashMap<Box<str>, Changes, foldhash::fast::FixedState>,
    /// (levId, length, add)
    docs: Vec<(LevId, u32, bool)>,
    /// Indexed by this batch (not yet in `Search__doc`).
    added: std::collections::HashSet<LevId>,
}

impl SearchPending {
    fn change(&mut self, lev: LevId, t: &Terms, add: bool) {
        let len = t.norm_byte();
        for (tok, n) in t.iter() {
            let p = Posting {
                lev,
                tf: Terms::tf_byte(n),
                len,
            };
            match self.tokens.get_mut(tok) {
                Some(list) => list.push((p, add)),
                None => {
                    self.tokens.insert(tok.into(), vec![(p, add)]);
                }
            }
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

    /// Indexes a new event if its kind is indexed, with its `terms` if the caller made them.
    pub(crate) fn search_insert(
        &self,
        p: &mut SearchPending,
        kinds: Option<&KindSet>,
        ev: &crate::nostr::Event,
        terms: Option<&Terms>,
        lev: LevId,
    ) {
        if kinds.is_some_and(|k| k.contains(ev.kind)) {
            match terms {
                Some(t) => p.change(lev, t, true),
                None => p.change(lev, &doc::event_terms(ev), true),
            }
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

    /// Writes a batch's postings, token by token: pairs added and removed in the batch
    /// cancel out.
    pub(crate) fn search_apply(&self, txn: &mut RwTxn, mut p: SearchPending) -> Result<()> {
        if p.tokens.is_empty() && p.docs.is_empty() {
            return Ok(());
        }
        // Token order: neighbouring tokens share B-tree pages.
        let mut groups: Vec<(Box<str>, Changes)> = p.tokens.drain().collect();
        groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut delta = 0i64;
        let mut changes: Vec<(Posting, bool)> = Vec::new();
        for (tok, mut list) in groups {
            // levId order, an addition before the removal of the same posting (a batch
            // that stores and replaces an event): the two cancel out. New events come in
            // levId order already, which the sort only checks.
            list.sort_unstable_by_key(|(p, add)| (p.lev, !add));
            changes.clear();
            let mut i = 0;
            while i < list.len() {
                let (p, add) = list[i];
                if let Some(&(n, n_add)) = list.get(i + 1) {
                    if add && !n_add && n.lev == p.lev {
                        i += 2;
                        continue;
                    }
                }
                changes.push((p, add));
                i += 1;
            }
            if !changes.is_empty() {
                delta += self.apply_token(txn, tok.as_bytes(), &changes)?;
            }
        }
        let count = self.search_postings(txn)? as i128 + i128::from(delta);
        let count = u64::try_from(count.max(0)).unwrap_or(0);
        self.s.meta.put(txn, POSTINGS_KEY, &count.to_le_bytes())?;

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
                // New events' levIds are past every stored one: APPEND skips the tree
                // search. Indexing older events (`wok search build`) falls back to a put.
                let (k, v) = (keys::lev_key(lev), len.to_le_bytes());
                match self
                    .s
                    .docs
                    .put_with_flags(txn, heed::PutFlags::APPEND, &k, &v)
                {
                    Ok(()) => {}
                    Err(heed::Error::Mdb(heed::MdbError::KeyExist)) => {
                        self.s.docs.put(txn, &k, &v)?
                    }
                    Err(e) => return Err(e.into()),
                }
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

    /// Applies one token's changes (levId order); returns the change in the posting count.
    fn apply_token(
        &self,
        txn: &mut RwTxn,
        token: &[u8],
        changes: &[(Posting, bool)],
    ) -> Result<i64> {
        // The usual case: new events' postings, all past the token's last one. They are
        // appended to its last block (a new token starts its first).
        if changes.iter().all(|c| c.1) {
            let last = self.last_block(txn, token)?;
            let (mut first, mut buf, mut prev) = match last {
                None => (changes[0].0.lev, Vec::new(), changes[0].0.lev),
                Some((first, v)) => {
                    let last_lev =
                        postings::last_lev(first, &v).ok_or_else(|| corrupt_block(token, first))?;
                    (first, v, last_lev)
                }
            };
            if buf.is_empty() || changes[0].0.lev > prev {
                for &(p, _) in changes {
                    if !buf.is_empty() && buf.len() + MAX_POSTING_BYTES > BLOCK_BYTES {
                        self.s.blocks.put(txn, &postings::key(token, first), &buf)?;
                        (first, prev) = (p.lev, p.lev);
                        buf.clear();
                    }
                    postings::encode(&mut buf, prev, p);
                    prev = p.lev;
                }
                self.s.blocks.put(txn, &postings::key(token, first), &buf)?;
                return Ok(changes.len() as i64);
            }
        }
        // Removals, or additions among older postings (`wok search build` on a DB indexed
        // since): decode every block a change falls in, change it, write it again. Additions
        // past the token's last posting (the batch's new events) join its last block.
        const NEW: u64 = u64::MAX;
        let last = self.last_block(txn, token)?;
        let last_lev = match &last {
            Some((first, v)) => {
                Some(postings::last_lev(*first, v).ok_or_else(|| corrupt_block(token, *first))?)
            }
            None => None,
        };
        let mut touched: BTreeMap<u64, Vec<Posting>> = BTreeMap::new();
        let load = |touched: &mut BTreeMap<u64, Vec<Posting>>, first: u64, v: &[u8]| {
            if let std::collections::btree_map::Entry::Vacant(e) = touched.entry(first) {
                let mut list = Vec::new();
                postings::decode_into(first, v, &mut list)
                    .ok_or_else(|| corrupt_block(token, first))?;
                e.insert(list);
            }
            Ok::<(), StoreError>(())
        };
        let mut tail: Vec<Posting> = Vec::new();
        let mut delta = 0i64;
        for &(p, add) in changes {
            if add && last_lev.is_none_or(|l| p.lev > l) {
                tail.push(p);
                continue;
            }
            let first = match self.block_for(txn, token, p.lev)? {
                Some((first, v)) => {
                    load(&mut touched, first, &v)?;
                    first
                }
                None => NEW,
            };
            let list = touched.entry(first).or_default();
            match list.binary_search_by_key(&p.lev, |x| x.lev) {
                Ok(i) if add => list[i] = p,
                Ok(i) => {
                    list.remove(i);
                    delta -= 1;
                }
                Err(i) if add => {
                    list.insert(i, p);
                    delta += 1;
                }
                // A stray removal (its posting is not there): nothing to do.
                Err(_) => {}
            }
        }
        if !tail.is_empty() {
            delta += tail.len() as i64;
            let first = match &last {
                Some((first, v)) => {
                    load(&mut touched, *first, v)?;
                    *first
                }
                None => NEW,
            };
            // Every tail posting is past the block's last one: the list stays sorted.
            touched.entry(first).or_default().extend(tail);
        }
        for (first, list) in touched {
            let pieces = postings::blocks(&list);
            // A block that keeps its first posting is overwritten in place.
            if first != NEW && pieces.first().map(|p| p.0) != Some(first) {
                self.s.blocks.delete(txn, &postings::key(token, first))?;
            }
            for (f, v) in pieces {
                self.s.blocks.put(txn, &postings::key(token, f), &v)?;
            }
        }
        Ok(delta)
    }

    /// A token's last block: (first levId, value).
    fn last_block(&self, txn: &RoTxn, token: &[u8]) -> Result<Option<(u64, Vec<u8>)>> {
        let found = self
            .s
            .blocks
            .get_lower_than_or_equal_to(txn, &postings::key(token, u64::MAX))?;
        Ok(own_block(token, found))
    }

    /// The block `lev` falls in: the token's last block starting at or before it, else the
    /// token's first block; `None` if the token has none.
    fn block_for(&self, txn: &RoTxn, token: &[u8], lev: LevId) -> Result<Option<(u64, Vec<u8>)>> {
        let at_or_before = self
            .s
            .blocks
            .get_lower_than_or_equal_to(txn, &postings::key(token, lev))?;
        if let Some(b) = own_block(token, at_or_before) {
            return Ok(Some(b));
        }
        let after = self
            .s
            .blocks
            .get_greater_than_or_equal_to(txn, &postings::prefix(token))?;
        Ok(own_block(token, after))
    }

    fn search_postings(&self, txn: &RoTxn) -> Result<u64> {
        Ok(self
            .s
            .meta
            .get(txn, POSTINGS_KEY)?
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes))
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

    /// Indexed events (documents), postings and the index's bytes (LMDB's page counts).
    pub fn search_stats(&self, txn: &RoTxn) -> Result<SearchStats> {
        let mut bytes = 0u64;
        for db in [self.s.blocks, self.s.docs, self.s.meta] {
            let s = db.stat(txn)?;
            bytes +=
                (s.branch_pages + s.leaf_pages + s.overflow_pages) as u64 * u64::from(s.page_size);
        }
        Ok(SearchStats {
            docs: self.s.docs.len(txn)?,
            tokens: self.search_postings(txn)?,
            bytes,
            total_len: self.search_total(txn)?,
            version: self.search_version(txn)?,
        })
    }

    /// Postings of one token (levId ascending): (levId, tf, length byte).
    pub fn postings(&self, txn: &RoTxn, token: &str) -> Result<Vec<(LevId, u8, u8)>> {
        let list = self.posting_list(txn, token.as_bytes())?;
        Ok(list.into_iter().map(|p| (p.lev, p.tf, p.len)).collect())
    }

    /// Every indexed event containing all of `q`'s terms, with levId ≤ `snapshot`, best
    /// first (BM25 with a mild recency boost; ties newest first), and the work done
    /// (postings read). Candidates are not checked against the rest of the filter.
    pub fn search(&self, txn: &RoTxn, q: &SearchQuery, snapshot: LevId) -> Result<(Ranked, u64)> {
        let n = self.s.docs.len(txn)?;
        let avgdl = self.search_total(txn)? as f64 / n.max(1) as f64;
        // Each term's blocks and document frequency (counted, not decoded).
        let mut terms = Vec::with_capacity(q.terms.len());
        let mut work = 0u64;
        for t in &q.terms {
            let mut blocks: Vec<(u64, &[u8])> = Vec::new();
            let mut df = 0u64;
            for row in self
                .s
                .blocks
                .prefix_iter(txn, &postings::prefix(t.as_bytes()))?
            {
                let (k, v) = row?;
                let first = match postings::split_key(k) {
                    Some((tok, first)) if tok == t.as_bytes() => first,
                    _ => continue,
                };
                if first > snapshot {
                    break;
                }
                df += postings::count_upto(first, v, snapshot)
                    .ok_or_else(|| corrupt_block(t.as_bytes(), first))?;
                blocks.push((first, v));
            }
            if df == 0 {
                return Ok((Ranked::default(), work));
            }
            terms.push((df, blocks, t.as_bytes()));
        }
        terms.sort_by_key(|t| t.0);
        // BM25 with its per-term and per-length parts computed once: the length is a byte,
        // and tf is small, so a table per term leaves no division in the loops.
        let norm: Vec<f64> = (0..=255u8).map(|dl| bm25_norm(dl, avgdl)).collect();
        let table = |idf: f64| -> Vec<f64> {
            (0..=TF_TABLE)
                .flat_map(|tf| {
                    let tf = tf as f64;
                    norm.iter().map(move |nl| idf * tf * (K1 + 1.0) / (tf + nl))
                })
                .collect()
        };
        let score = |t: &[f64], p: &Posting, idf: f64| match usize::from(p.tf) {
            tf @ 0..=TF_TABLE => t[tf * 256 + usize::from(p.len)],
            _ => {
                let tf = f64::from(p.tf);
                idf * tf * (K1 + 1.0) / (tf + norm[usize::from(p.len)])
            }
        };
        // The rarest term's postings are the candidates; each other term drops those it
        // lacks and adds its score to the survivors; the rarest term's own score comes last,
        // for the survivors only.
        let mut cands: Vec<(Posting, f64)> = Vec::new();
        let mut list: Vec<Posting> = Vec::new();
        for (i, (df, blocks, tok)) in terms.iter().enumerate() {
            if i == 0 {
                for &(first, v) in blocks {
                    postings::decode_into(first, v, &mut list)
                        .ok_or_else(|| corrupt_block(tok, first))?;
                }
                work += list.len() as u64;
                let keep = list.partition_point(|p| p.lev <= snapshot);
                cands = list[..keep].iter().map(|&p| (p, 0.0)).collect();
                continue;
            }
            let idf = bm25_idf(*df, n);
            let t = table(idf);
            // Block by block, decoding only blocks whose levId range holds a candidate, into
            // a buffer that stays in cache; survivors are compacted to the front.
            let (mut read, mut kept) = (0, 0);
            let mut tfs: Vec<u8> = Vec::new();
            for (b, &(first, v)) in blocks.iter().enumerate() {
                let end = blocks.get(b + 1).map_or(u64::MAX, |x| x.0);
                read += cands[read..].partition_point(|x| x.0.lev < first);
                let upto = read + cands[read..].partition_point(|x| x.0.lev < end);
                if read == upto {
                    continue;
                }
                list.clear();
                postings::decode_into(first, v, &mut list)
                    .ok_or_else(|| corrupt_block(tok, first))?;
                work += list.len() as u64;
                let span = list.last().map_or(0, |p| p.lev - first + 1);
                if span <= dense_span() {
                    // Each levId of the block's range gets its tf (0 = absent): a lookup per
                    // candidate, and no branch on whether it matched (both lists are about
                    // as dense in a two-common-word query, where a search spends its time).
                    tfs.clear();
                    tfs.resize(span as usize, 0);
                    for p in &list {
                        tfs[(p.lev - first) as usize] = p.tf;
                    }
                    for r in read..upto {
                        let (cand, s) = cands[r];
                        let tf = tfs.get((cand.lev - first) as usize).copied().unwrap_or(0);
                        // The length byte is the document's: the same in every term's posting.
                        let hit = Posting { tf, ..cand };
                        cands[kept] = (cand, s + score(&t, &hit, idf));
                        kept += usize::from(tf != 0);
                    }
                    read = upto;
                    continue;
                }
                // A sparse block: gallop through it for each candidate.
                let mut j = 0;
                for r in read..upto {
                    let (cand, s) = cands[r];
                    let mut step = 1;
                    while j + step < list.len() && list[j + step].lev < cand.lev {
                        j += step;
                        step *= 2;
                    }
                    let hi = (j + step + 1).min(list.len());
                    j += list[j..hi].partition_point(|p| p.lev < cand.lev);
                    if let Some(p) = list.get(j).filter(|p| p.lev == cand.lev) {
                        cands[kept] = (cand, s + score(&t, p, idf));
                        kept += 1;
                    }
                }
                read = upto;
            }
            cands.truncate(kept);
            if cands.is_empty() {
                break;
            }
        }
        let idf = terms.first().map_or(0.0, |t| bm25_idf(t.0, n));
        let t = table(idf);
        let boost = 0.1 / snapshot.max(1) as f64;
        let all: Vec<Scored> = cands
            .into_iter()
            .map(|(p, s)| {
                Scored(
                    (s + score(&t, &p, idf)) * (1.0 + boost * p.lev as f64),
                    p.lev,
                )
            })
            .collect();
        Ok((Ranked::new(all), work))
    }

    /// A token's postings, in levId order.
    fn posting_list(&self, txn: &RoTxn, token: &[u8]) -> Result<Vec<Posting>> {
        let mut list = Vec::new();
        let pre = postings::prefix(token);
        for row in self.s.blocks.prefix_iter(txn, &pre)? {
            let (k, v) = row?;
            let first = match postings::split_key(k) {
                Some((t, first)) if t == token => first,
                _ => continue,
            };
            postings::decode_into(first, v, &mut list)
                .ok_or_else(|| corrupt_block(token, first))?;
        }
        Ok(list)
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
        self.s.blocks.clear(txn)?;
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
                    for (tok, n) in t.iter() {
                        expected.insert((tok.to_string(), lev), (Terms::tf_byte(n), t.norm_byte()));
                    }
                }
                None => problems.push(format!("indexed levId {lev} has no stored event")),
            }
        }
        let mut seen = 0usize;
        let mut count = 0u64;
        let mut list = Vec::new();
        for row in self.s.blocks.iter(txn)? {
            let (k, v) = row?;
            let Some((tok, first)) = postings::split_key(k) else {
                problems.push(format!("block key {k:?} is not token ‖ 0xFF ‖ levId"));
                continue;
            };
            let tok = String::from_utf8_lossy(tok).into_owned();
            list.clear();
            if postings::decode_into(first, v, &mut list).is_none() {
                problems.push(format!("block {tok:?}@{first} is malformed"));
            }
            if list.first().map(|p| p.lev) != Some(first) {
                problems.push(format!("block {tok:?}@{first} does not start at its key"));
            }
            if list.windows(2).any(|w| w[0].lev >= w[1].lev) {
                problems.push(format!("block {tok:?}@{first} is not in levId order"));
            }
            for p in &list {
                count += 1;
                match expected.get(&(tok.clone(), p.lev)) {
                    Some(want) if *want == (p.tf, p.len) => seen += 1,
                    _ => problems.push(format!("stray posting {tok:?} → levId {}", p.lev)),
                }
            }
        }
        if seen != expected.len() {
            problems.push(format!(
                "{} postings missing",
                expected.len().saturating_sub(seen)
            ));
        }
        if count != self.search_postings(txn)? {
            problems.push(format!(
                "{count} postings stored, the count says {}",
                self.search_postings(txn)?
            ));
        }
        Ok(problems)
    }
}

/// `found` if it is one of `token`'s blocks: (first levId, value).
fn own_block(token: &[u8], found: Option<(&[u8], &[u8])>) -> Option<(u64, Vec<u8>)> {
    let (k, v) = found?;
    match postings::split_key(k) {
        Some((t, first)) if t == token => Some((first, v.to_vec())),
        _ => None,
    }
}

fn corrupt_block(token: &[u8], first: u64) -> StoreError {
    StoreError::Corrupt(format!(
        "search block {:?}@{first}",
        String::from_utf8_lossy(token)
    ))
}

/// Term frequencies up to this have a precomputed score per length byte.
const TF_TABLE: usize = 4;

/// A block whose postings span at most this many levIds is intersected through a table of
/// its tfs by levId (64 KiB at most); tests lower it to take the other path too.
fn dense_span() -> u64 {
    #[cfg(test)]
    if let Some(v) = tests::DENSE_SPAN.with(std::cell::Cell::get) {
        return v;
    }
    1 << 16
}

/// A search's candidates, best first ([`Store::search`]). A REQ takes the best `limit`
/// (at most a few hundred) of possibly hundreds of thousands of candidates, so they are
/// ordered a chunk at a time: the best [`RANK_CHUNK`] are selected (linear) and sorted, the
/// rest stay unordered until needed.
#[derive(Default)]
pub struct Ranked {
    /// Not yet ordered.
    rest: Vec<Scored>,
    /// The best of what is left, worst first (popped from the end).
    next: Vec<Scored>,
}

const RANK_CHUNK: usize = 512;

impl Ranked {
    fn new(rest: Vec<Scored>) -> Ranked {
        Ranked {
            rest,
            next: Vec::new(),
        }
    }

    pub fn pop(&mut self) -> Option<LevId> {
        if self.next.is_empty() {
            let k = self.rest.len().saturating_sub(RANK_CHUNK);
            if k > 0 {
                self.rest.select_nth_unstable(k);
            }
            self.next = self.rest.split_off(k);
            self.next.sort_unstable();
        }
        self.next.pop().map(|s| s.1)
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty() && self.next.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rest.len() + self.next.len()
    }
}

/// (score, levId): higher scores first, then newer events.
struct Scored(f64, LevId);

impl Ord for Scored {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Scored {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o).is_eq()
    }
}
impl Eq for Scored {}

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

    fn filter(f: &str) -> Filter {
        JsonParser::new()
            .parse(&mut f.as_bytes().to_vec(), |v| Filter::from_json(v, 3))
            .expect("json")
            .expect("filter")
    }

    fn search(store: &Store, f: &str, now: u64) -> Vec<[u8; 32]> {
        let filter = filter(f);
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

    /// `n` kind-1 notes by three authors, each containing "zebra".
    fn write_zebras(store: &Store, n: u64) {
        let evs: Vec<Event> = (0..n)
            .map(|i| {
                ev(
                    1 + (i % 3) as u8,
                    100 + i,
                    1,
                    &[],
                    &format!("zebra number {i}"),
                )
            })
            .collect();
        store.write_batch(&evs).expect("write");
    }

    /// A search filter pauses after each chunk of candidates (256); the next run must go on
    /// with the rest of its ranked list, not move on to the next filter.
    #[test]
    fn a_search_longer_than_one_chunk_resumes_where_it_paused() {
        let (_d, store) = temp_store();
        write_zebras(&store, 300);
        let found = search(&store, r#"{"search":"zebra","limit":500}"#, 1000);
        assert_eq!(found.len(), 300);
    }

    /// A paced query (the relay's, watching a socket's backlog) returns after any run that
    /// emitted `pace` events, search filters included.
    #[test]
    fn a_paced_search_returns_after_emitting_its_pace() {
        let (_d, store) = temp_store();
        write_zebras(&store, 300);
        let filter = filter(r#"{"search":"zebra","limit":500}"#);
        let txn = store.read_txn().expect("txn");
        let snap = store.latest_lev_id(&txn).expect("snap");
        let mut q = Query::new(vec![filter], u64::MAX, snap, 1000).pace(10);
        let mut runs = Vec::new();
        for _ in 0..10 {
            let mut out = Vec::new();
            let p = q.run(&store, &txn, u64::MAX, &mut out).expect("run");
            runs.push((p, out.len()));
            if p == Progress::Done {
                break;
            }
        }
        // A chunk of 256 candidates, the other 44 (past the pace: the caller looks at its
        // socket), then nothing left.
        assert_eq!(
            runs,
            [
                (Progress::Paused, 256),
                (Progress::Paused, 44),
                (Progress::Done, 0)
            ]
        );
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

    fn blocks_of(store: &Store, token: &str) -> usize {
        let txn = store.read_txn().expect("txn");
        let pre = postings::prefix(token.as_bytes());
        store
            .s
            .blocks
            .prefix_iter(&txn, &pre)
            .expect("iter")
            .count()
    }

    fn levs_of(store: &Store, token: &str) -> Vec<LevId> {
        let txn = store.read_txn().expect("txn");
        let list = store.postings(&txn, token).expect("postings");
        list.iter().map(|p| p.0).collect()
    }

    #[test]
    fn blocks_fill_split_shrink_and_take_older_events() {
        let (_d, store) = temp_store();
        // 900 postings of one token: several blocks, appended to batch by batch.
        let events: Vec<Event> = (0..900u64)
            .map(|i| {
                ev(
                    (i % 200) as u8 + 1,
                    1000 + i,
                    1,
                    &[],
                    &format!("common w{i}"),
                )
            })
            .collect();
        for chunk in events.chunks(128) {
            store.write_batch(chunk).expect("write");
        }
        consistent(&store);
        let mut levs = levs_of(&store, "common");
        assert_eq!(levs.len(), 900);
        let n = blocks_of(&store, "common");
        assert!(n >= 3, "{n} blocks for 900 postings");
        // Deleting from the middle of blocks, then every posting of the first block.
        let third: Vec<LevId> = levs.iter().copied().step_by(3).collect();
        store.delete_batch(&third).expect("delete");
        levs.retain(|l| !third.contains(l));
        consistent(&store);
        assert_eq!(levs_of(&store, "common"), levs);
        let head: Vec<LevId> = levs.drain(..400).collect();
        store.delete_batch(&head).expect("delete");
        consistent(&store);
        assert_eq!(levs_of(&store, "common"), levs);
        assert!(blocks_of(&store, "common") < n, "emptied blocks go");
        // One batch that removes (a replaced profile) and appends to the same token.
        let profile =
            |at: u64, about: &str| ev(250, at, 0, &[], &format!(r#"{{"about":"{about}"}}"#));
        store
            .write_batch(&[profile(5000, "common one")])
            .expect("write");
        let more: Vec<Event> = (0..400u64)
            .map(|i| ev(251, 6000 + i, 1, &[], "common again"))
            .chain([profile(7000, "common two")])
            .collect();
        store.write_batch(&more).expect("write");
        consistent(&store);
        assert_eq!(levs_of(&store, "common").len(), levs.len() + 401);
        assert!(levs_of(&store, "one").is_empty() && levs_of(&store, "two").len() == 1);

        // Indexing older events after newer ones (`wok search build`) puts their
        // postings in front of and between the stored ones.
        let (_d2, store) = temp_store();
        let kinds = store.search_kinds().expect("kinds");
        store.set_search_kinds(None);
        let old: Vec<Event> = (0..600u64)
            .map(|i| ev((i % 50) as u8 + 1, 10 + i, 1, &[], "older words"))
            .collect();
        store.write_batch(&old).expect("write");
        store.set_search_kinds(Some((*kinds).clone()));
        store
            .write_batch(&[ev(9, 5000, 1, &[], "older words newest")])
            .expect("write");
        let txn = store.read_txn().expect("txn");
        let all: Vec<LevId> = (0..=store.latest_lev_id(&txn).expect("snap")).collect();
        drop(txn);
        // Two halves, the later first, so the second lands between stored postings too.
        let later = store
            .search_index_stored(&all[300..], &kinds)
            .expect("build");
        let earlier = store
            .search_index_stored(&all[..300], &kinds)
            .expect("build");
        assert!(later > 0 && earlier > 0);
        assert_eq!(later + earlier, 600);
        consistent(&store);
        assert_eq!(levs_of(&store, "older").len(), 601);
    }

    #[test]
    fn an_index_in_the_first_layout_is_converted_on_open() {
        let dir = tempfile::tempdir().expect("dir");
        let mut cfg = crate::config::Config::default();
        cfg.search.enabled = true;
        let opts = crate::store::StoreOptions {
            map_size: 1 << 30,
            ..crate::store::StoreOptions::from_config(&cfg)
        };
        let events: Vec<Event> = (0..500u64)
            .map(|i| {
                ev(
                    (i % 30) as u8 + 1,
                    100 + i,
                    1,
                    &[],
                    &format!("gamma delta d{i}"),
                )
            })
            .collect();
        let want;
        {
            let store = Store::open(dir.path(), &opts).expect("open");
            store.write_batch(&events).expect("write");
            let rtxn = store.read_txn().expect("txn");
            want = ["gamma", "delta", "d7"].map(|t| store.postings(&rtxn, t).expect("p"));
            // Rewrite the index as the first layout had it: one DUPSORT row per posting.
            let mut rows = Vec::new();
            for row in store.s.blocks.iter(&rtxn).expect("iter") {
                let (k, v) = row.expect("row");
                let (tok, first) = postings::split_key(k).expect("key");
                let mut list = Vec::new();
                postings::decode_into(first, v, &mut list).expect("block");
                rows.extend(list.into_iter().map(|p| (tok.to_vec(), p)));
            }
            drop(rtxn);
            let env = store.env();
            let mut txn = store.write_txn().expect("txn");
            let old = env
                .database_options()
                .types::<Bytes, Bytes>()
                .name(OLD_POSTINGS)
                .flags(DatabaseFlags::DUP_SORT | DatabaseFlags::DUP_FIXED)
                .create(&mut txn)
                .expect("old table");
            for (tok, p) in &rows {
                let mut v = p.lev.to_be_bytes().to_vec();
                v.extend([p.tf, p.len]);
                old.put(&mut txn, tok, &v).expect("put");
            }
            store.s.blocks.clear(&mut txn).expect("clear");
            store.s.meta.delete(&mut txn, POSTINGS_KEY).expect("meta");
            txn.commit().expect("commit");
        }
        let store = Store::open(dir.path(), &opts).expect("reopen");
        consistent(&store);
        let txn = store.read_txn().expect("txn");
        for (t, w) in ["gamma", "delta", "d7"].iter().zip(&want) {
            assert_eq!(&store.postings(&txn, t).expect("p"), w, "{t}");
        }
        assert_eq!(store.search_stats(&txn).expect("stats").tokens, 500 * 3);
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
        /// Chunked selection pops exactly the order of a full sort (best score first, then
        /// newest), across chunk boundaries and with tied scores.
        #[test]
        fn ranked_pops_in_sorted_order(scores in proptest::collection::vec(0u8..20, 0..1500)) {
            let all: Vec<Scored> = scores
                .iter()
                .enumerate()
                .map(|(i, &s)| Scored(f64::from(s), i as u64))
                .collect();
            let mut want: Vec<(u8, u64)> =
                scores.iter().enumerate().map(|(i, &s)| (s, i as u64)).collect();
            want.sort_unstable_by(|a, b| b.cmp(a));
            let mut r = Ranked::new(all);
            proptest::prop_assert_eq!(r.len(), want.len());
            let mut got = Vec::new();
            while let Some(lev) = r.pop() {
                got.push(lev);
            }
            proptest::prop_assert!(r.is_empty());
            proptest::prop_assert_eq!(got, want.iter().map(|w| w.1).collect::<Vec<_>>());
        }
    }

    thread_local! {
        /// Overrides `dense_span()` on this test's thread.
        pub(super) static DENSE_SPAN: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
    }

    /// Intersections over lists of many blocks: only blocks that can hold a candidate are
    /// decoded, and the document frequency is counted from blocks; answers must still equal
    /// the plain set intersection, at the latest snapshot and at one in the middle.
    #[test]
    fn multi_block_intersections_equal_the_set_intersection() {
        let n = 3000usize;
        // The last events of "common"'s blocks (a first store holding only that
        // word cuts the same blocks: block sizes do not depend on the other words).
        let mut edges = std::collections::HashSet::new();
        {
            let (_d, store) = temp_store();
            let evs: Vec<Event> = (0..n)
                .map(|i| ev((i % 50) as u8 + 1, 10_000 + i as u64, 1, &[], "common"))
                .collect();
            store.write_batch(&evs).expect("write");
            let txn = store.read_txn().expect("txn");
            for row in store
                .s
                .blocks
                .prefix_iter(&txn, &postings::prefix(b"common"))
                .expect("iter")
            {
                let (k, v) = row.expect("row");
                let (_, first) = postings::split_key(k).expect("key");
                let mut list = Vec::new();
                postings::decode_into(first, v, &mut list).expect("block");
                if let Some(p) = list.last() {
                    let rec = store.record(&txn, p.lev).expect("r").expect("rec");
                    edges.insert((rec.created_at() - 10_000) as usize);
                }
            }
            assert!(edges.len() >= 3, "common spans several blocks: {edges:?}");
        }
        let (_d, store) = temp_store();
        let words = |i: usize| {
            let mut w = vec!["common"];
            if edges.contains(&i) {
                w.push("edge");
            }
            if i % 7 == 0 {
                w.push("seven");
            }
            if (1498..1505).contains(&i) || i == 2990 || i == 3 {
                w.push("rare");
            }
            if i % 500 == 499 {
                w.push("sparse");
            }
            if i % 2 == 0 {
                w.push("even");
            }
            w.join(" ")
        };
        let evs: Vec<Event> = (0..n)
            .map(|i| ev((i % 50) as u8 + 1, 10_000 + i as u64, 1, &[], &words(i)))
            .collect();
        store.write_batch(&evs).expect("write");
        let txn = store.read_txn().expect("txn");
        let levs = store.all_lev_ids(&txn).expect("levs");
        let latest = store.latest_lev_id(&txn).expect("latest");
        let mid = levs[levs.len() / 2];
        for query in [
            "common rare",
            "rare seven",
            "seven common",
            "sparse seven",
            "sparse rare",
            "common seven sparse",
            "even common",
            "even seven",
            "edge common",
            "edge even",
        ] {
            let q = crate::search::query::SearchQuery::parse(query, 100).expect("q");
            for (snap, span) in [
                (latest, None),
                (mid, None),
                (latest, Some(8)),
                (mid, Some(8)),
            ] {
                DENSE_SPAN.with(|c| c.set(span));
                let mut want: Vec<[u8; 32]> = Vec::new();
                for &lev in levs.iter().filter(|&&l| l <= snap) {
                    let rec = store.record(&txn, lev).expect("r").expect("rec");
                    let i = (rec.created_at() - 10_000) as usize;
                    let have = words(i);
                    if query.split(' ').all(|w| have.split(' ').any(|h| h == w)) {
                        want.push(*rec.id());
                    }
                }
                let (mut ranked, _) = store.search(&txn, &q, snap).expect("search");
                let mut got = Vec::new();
                while let Some(lev) = ranked.pop() {
                    got.push(*store.record(&txn, lev).expect("r").expect("rec").id());
                }
                got.sort_unstable();
                want.sort_unstable();
                assert!(!want.is_empty() || query.contains("sparse") || query == "edge even");
                assert_eq!(got, want, "{query} at {snap}, dense span {span:?}");
            }
        }
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
