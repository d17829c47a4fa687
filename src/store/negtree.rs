//! Stored negentropy trees: for each registered filter (`NegentropyFilter` row), the
//! (created_at, id) of every stored event it matches, kept exact by the write path in the
//! same transaction as the insert or delete, plus aggregates that answer NIP-77's positional
//! questions (how many items sort before a bound, the id sum of a range) without a scan.
//!
//! Layout, in the `NegentropyTree` table (keys start with `treeId(8)`):
//! - item chunks `treeId ‖ 0x00 ‖ created_at(8) ‖ id(32)` → up to `CHUNK` items packed as
//!   `created_at(8 BE) ‖ id(32)`, sorted, the last being the key's own, so the chunk that
//!   holds or would hold an item is the first at or after it (one seek); a chunk of one
//!   item has an empty value (the row shape of wok before chunks: older DBs read as they
//!   are). Chunks do not overlap: every item of a chunk sorts after the previous chunk's key;
//! - aggregate rows `treeId ‖ level(1..=5) ‖ bucket(8)` → `count(8 LE) ‖ idSum(32 LE)`, where a
//!   level-l bucket holds the items with `created_at >> SHIFT[l]` equal to it (16 s buckets at
//!   level 1, each level 64 times wider than the one below); below the top level, only under
//!   a parent bucket holding more than `SPARSE` items (no search reads the others);
//! - `treeId ‖ 0xFF` → present once the tree holds every matching event (`build` sets it; a
//!   new DB's tree 1 starts built). A tree that is not built is never served.
//!
//! strfry keeps a B-tree of nodes with accumulated fingerprints. Fixed time buckets need no
//! splits or merges (an insert adds to five rows, a delete subtracts), a live relay's new
//! events all land in the newest buckets (few dirty pages per batch), and a position is
//! found by walking at most 64 rows per level plus the items of one 16-second bucket — or,
//! on sparse data, the items of the first bucket on the way down that holds at most
//! `SPARSE` of them, so the finer levels' rows are not read at all.
//!
//! Items are packed in chunks because a NIP-77 sync over a big difference reads every item
//! of the range, and with one LMDB row per item (49-byte key, 8-byte node header, pages
//! split half-full) an item cost ~140 bytes of mapped file; packed, ~50.
//!
//! Range fingerprints are still computed by iterating the tree's items (no event records):
//! the crate's storage trait cannot return a fingerprint built from the aggregate sums,
//! because its `Fingerprint` type is not nameable outside the crate. The sums are kept (and
//! used for whole-tree fingerprints) for when it is.

use std::cell::Cell;
use std::sync::Arc;

use heed::RoTxn;
use negentropy::{Bound, Error as NegError, Id, Item, NegentropyStorageBase};
use std::ops::Bound as KeyBound;

use super::{Result, Store};
use crate::nostr::Filter;

pub type TreeId = u64;
/// A registered tree: its id, text (see `tree_text`), parsed filter and left-out kinds.
pub type TreeRow = (TreeId, String, Filter, Vec<u64>);
/// The trees, their parsed filters and the kinds they leave out.
pub type TreeFilters = Arc<Vec<(TreeId, Filter, Vec<u64>)>>;

/// A tree's text is its canonical filter, then for a public tree this marker and the kinds
/// it leaves out (`{} except kinds 4,1059`): the events an unauthenticated reader may see
/// when those are the restricted read kinds. Kept in the filter text rather than a new
/// schema field so that an older wok, which cannot honour the exclusion, refuses the tree
/// (unreadable filter) instead of filling it with restricted events.
const EXCEPT: &str = " except kinds ";

/// The stored text of a tree for `filter_text` leaving out `except` (sorted, deduplicated).
pub fn tree_text(filter_text: &str, except: &[u64]) -> String {
    let mut kinds = except.to_vec();
    kinds.sort_unstable();
    kinds.dedup();
    if kinds.is_empty() {
        return filter_text.to_owned();
    }
    let list: Vec<String> = kinds.iter().map(u64::to_string).collect();
    format!("{filter_text}{EXCEPT}{}", list.join(","))
}

/// A tree's text split into its filter text and the kinds it leaves out; `None` if the
/// kind list is malformed.
fn split_tree_text(text: &str) -> Option<(&str, Vec<u64>)> {
    match text.split_once(EXCEPT) {
        None => Some((text, Vec::new())),
        Some((f, kinds)) => {
            let k: Option<Vec<u64>> = kinds.split(',').map(|x| x.parse().ok()).collect();
            Some((f, k?))
        }
    }
}

/// Does a tree for `filter` leaving out `except` hold `ev`?
pub fn tree_holds<E: crate::nostr::filter::EventView + ?Sized>(
    filter: &Filter,
    except: &[u64],
    ev: &E,
) -> bool {
    filter.matches(ev) && !except.contains(&ev.kind())
}

const ITEM: u8 = 0;
const BUILT: u8 = 0xFF;
/// `created_at >> SHIFT[l - 1]` is the level-l bucket.
const SHIFT: [u32; 5] = [4, 10, 16, 22, 28];
const FANOUT_BITS: u32 = 6;
/// A bucket holding at most this many items is read item by item rather than through the
/// finer levels' aggregate rows: on sparse data (an event every few minutes, one per
/// 16-second bucket) those rows are as many as the items, and reading them added a third
/// to the pages a NIP-77 sync maps (`{}` over 100k events a year apart: 160 → 116 MB).
const SPARSE: u64 = 16;
/// Items in one chunk row at most: 32 × 40 bytes plus key and node header is a third of a
/// 4 KiB page, so full chunks fill pages; more would leave a page's tail unused.
const CHUNK: usize = 32;
/// A full chunk that an item joins this close to its end splits there, not in halves.
const NEAR_END: usize = 4;
/// An item as stored in a chunk: `created_at(8 BE) ‖ id(32)`, so byte order is item order.
const ITEM_LEN: usize = 40;

pub fn item_key(tree: TreeId, ts: u64, id: &[u8; 32]) -> [u8; 49] {
    let mut k = [0u8; 49];
    k[..8].copy_from_slice(&tree.to_be_bytes());
    k[8] = ITEM;
    k[9..17].copy_from_slice(&ts.to_be_bytes());
    k[17..].copy_from_slice(id);
    k
}

fn agg_key(tree: TreeId, level: u8, bucket: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[..8].copy_from_slice(&tree.to_be_bytes());
    k[8] = level;
    k[9..].copy_from_slice(&bucket.to_be_bytes());
    k
}

/// The canonical text a tree for `f` is registered under: `f` without since/until.
pub fn tree_filter_text(f: &Filter) -> String {
    Filter {
        since: 0,
        until: u64::MAX,
        ..f.clone()
    }
    .to_json()
}

/// (created_at, id) of a stored item (`ITEM_LEN` bytes); `None` for another length.
fn read_item(it: &[u8]) -> Option<(u64, [u8; 32])> {
    if it.len() != ITEM_LEN {
        return None;
    }
    let ts = u64::from_be_bytes(it.get(..8)?.try_into().ok()?);
    Some((ts, it.get(8..)?.try_into().ok()?))
}

/// Is `k` a key of one of `tree`'s item chunks?
fn is_chunk_key(tree: TreeId, k: &[u8]) -> bool {
    k.len() == 49 && k[..8] == tree.to_be_bytes() && k[8] == ITEM
}

/// The packed items of the chunk row `k → v`: the value, or for a one-item chunk (empty
/// value) the item in its key. `None` if the row has the wrong shape.
fn chunk_items<'a>(k: &'a [u8], v: &'a [u8]) -> Option<&'a [u8]> {
    let items = if v.is_empty() { k.get(9..)? } else { v };
    (!items.is_empty() && items.len() % ITEM_LEN == 0).then_some(items)
}

/// Where `item` is (Ok) or would go (Err) among the sorted packed `items`.
fn chunk_search(items: &[u8], item: &[u8]) -> std::result::Result<usize, usize> {
    let n = items.len() / ITEM_LEN;
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match items[mid * ITEM_LEN..(mid + 1) * ITEM_LEN].cmp(item) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Ok(mid),
        }
    }
    Err(lo)
}

/// Writes a chunk row for the packed `items` (at least one) under its last item's key.
fn put_chunk(
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
    txn: &mut heed::RwTxn,
    tree: TreeId,
    items: &[u8],
) -> Result<()> {
    put_chunk_with(db, txn, tree, items, heed::PutFlags::empty())
}

/// `put_chunk` with LMDB put flags (`APPEND` when building).
fn put_chunk_with(
    db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
    txn: &mut heed::RwTxn,
    tree: TreeId,
    items: &[u8],
    flags: heed::PutFlags,
) -> Result<()> {
    let mut k = [0u8; 49];
    k[..8].copy_from_slice(&tree.to_be_bytes());
    k[8] = ITEM;
    k[9..].copy_from_slice(&items[items.len() - ITEM_LEN..]);
    // One item: the key says it all (and the row is the shape older DBs have).
    let v = if items.len() == ITEM_LEN {
        &[][..]
    } else {
        items
    };
    db.put_with_flags(txn, flags, &k, v)?;
    Ok(())
}

fn corrupt(tree: TreeId) -> super::StoreError {
    super::StoreError::Corrupt(format!("negentropy tree {tree}: a row of the wrong shape"))
}

pub fn built_key(tree: TreeId) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[..8].copy_from_slice(&tree.to_be_bytes());
    k[8] = BUILT;
    k
}

/// A 256-bit little-endian sum of ids (negentropy's accumulator), with subtraction.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Sum(pub [u8; 32]);

impl Sum {
    pub fn add(&mut self, x: &[u8; 32]) {
        let mut carry = 0u64;
        for i in 0..4 {
            let r = i * 8..i * 8 + 8;
            let a = u64::from_le_bytes(self.0[r.clone()].try_into().unwrap_or_default());
            let b = u64::from_le_bytes(x[r.clone()].try_into().unwrap_or_default());
            let (s, c1) = a.overflowing_add(b);
            let (s, c2) = s.overflowing_add(carry);
            self.0[r].copy_from_slice(&s.to_le_bytes());
            carry = u64::from(c1 | c2);
        }
    }

    pub fn sub(&mut self, x: &[u8; 32]) {
        let mut borrow = 0u64;
        for i in 0..4 {
            let r = i * 8..i * 8 + 8;
            let a = u64::from_le_bytes(self.0[r.clone()].try_into().unwrap_or_default());
            let b = u64::from_le_bytes(x[r.clone()].try_into().unwrap_or_default());
            let (s, b1) = a.overflowing_sub(b);
            let (s, b2) = s.overflowing_sub(borrow);
            self.0[r].copy_from_slice(&s.to_le_bytes());
            borrow = u64::from(b1 | b2);
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Agg {
    count: u64,
    sum: Sum,
}

fn read_agg(v: &[u8]) -> Agg {
    let mut a = Agg::default();
    if v.len() == 40 {
        a.count = u64::from_le_bytes(v[..8].try_into().unwrap_or_default());
        a.sum.0.copy_from_slice(&v[8..]);
    }
    a
}

fn write_agg(a: &Agg) -> [u8; 40] {
    let mut v = [0u8; 40];
    v[..8].copy_from_slice(&a.count.to_le_bytes());
    v[8..].copy_from_slice(&a.sum.0);
    v
}

/// How far `Store::build_tree_with` has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildStep {
    /// Stored events read (and their items written), of the DB's count.
    Scanned { done: u64, total: u64 },
    /// Committing the write transaction.
    Committing,
}

/// One change to a tree, recorded during a write batch and applied at its end.
#[derive(Clone, Copy)]
pub(crate) struct TreeOp {
    pub tree: TreeId,
    pub created_at: u64,
    pub id: [u8; 32],
    pub add: bool,
}

impl Store {
    /// Every registered tree: its text (see `tree_text`), parsed filter and left-out kinds.
    pub fn trees(&self, txn: &RoTxn) -> Result<Vec<TreeRow>> {
        let mut out = Vec::new();
        for (tree, text) in self.tree_texts(txn)? {
            let parsed = split_tree_text(&text).and_then(|(f, except)| {
                let mut bytes = f.as_bytes().to_vec();
                match crate::nostr::JsonParser::new()
                    .parse(&mut bytes, |j| Filter::from_json(j, usize::MAX))
                {
                    Ok(Ok(f)) => Some((f, except)),
                    _ => None,
                }
            });
            match parsed {
                Some((f, except)) => out.push((tree, text, f, except)),
                None => {
                    return Err(super::StoreError::Corrupt(format!(
                        "negentropy tree {tree} has an unreadable filter: {text}"
                    )))
                }
            }
        }
        Ok(out)
    }

    /// Every registered tree and its canonical filter text, unparsed.
    fn tree_texts(&self, txn: &RoTxn) -> Result<Vec<(TreeId, String)>> {
        let mut out = Vec::new();
        for row in self.t.negentropy_filter.iter(txn)? {
            let (k, v) = row?;
            if let Some(tree) = super::keys::read_u64(k) {
                out.push((tree, super::record::negentropy_filter_text(v)?));
            }
        }
        Ok(out)
    }

    /// The trees and parsed filters the write path keeps exact: the built ones (an unbuilt
    /// tree answers nothing, and building fills it from scratch). Parsed once per change of
    /// the tree set (Meta's modification counter, read in `txn`, so another process adding
    /// or building a tree is seen by the next batch) instead of once per batch.
    pub(crate) fn tree_filters(&self, txn: &RoTxn) -> Result<TreeFilters> {
        let counter = self.meta(txn)?.negentropy_modification_counter;
        if let Ok(cache) = self.tree_cache.lock() {
            if let Some((c, trees)) = cache.as_ref() {
                if *c == counter {
                    return Ok(trees.clone());
                }
            }
        }
        let mut built = Vec::new();
        for (id, _, f, except) in self.trees(txn)? {
            if self.tree_built(txn, id)? {
                built.push((id, f, except));
            }
        }
        let trees: TreeFilters = Arc::new(built);
        if let Ok(mut cache) = self.tree_cache.lock() {
            *cache = Some((counter, trees.clone()));
        }
        Ok(trees)
    }

    /// The canonical filter of `tree` if it still exists and is built: a session opened on
    /// it checks this on every message, so a tree removed (or removed and re-added under
    /// the same id for another filter) is never served to it.
    pub fn tree_serving(&self, txn: &RoTxn, tree: TreeId) -> Result<Option<String>> {
        if !self.tree_built(txn, tree)? {
            return Ok(None);
        }
        Ok(self
            .tree_texts(txn)?
            .into_iter()
            .find(|(id, _)| *id == tree)
            .map(|(_, text)| text))
    }

    /// Is `tree` complete (built), so it may answer NEG-OPENs?
    pub fn tree_built(&self, txn: &RoTxn, tree: TreeId) -> Result<bool> {
        Ok(self.t.negentropy_tree.get(txn, &built_key(tree))?.is_some())
    }

    /// Applies tree changes: items, then the aggregate rows, each read and written once.
    ///
    /// A level's aggregate rows exist only under a parent bucket holding more than
    /// `SPARSE` items: position searches stop at a bucket that holds fewer and read its
    /// items, so rows below it would only be written, never read (on sparse data, one
    /// row per item at the finest level). Rows are applied coarsest first, so each
    /// bucket's parent is settled before it; a bucket that crosses `SPARSE` gets the rows
    /// below it rebuilt from its items (growing) or removed (shrinking).
    pub(crate) fn apply_tree_ops(&self, txn: &mut heed::RwTxn, ops: &[TreeOp]) -> Result<()> {
        use std::collections::{BTreeMap, HashMap};
        let db = self.t.negentropy_tree;
        let top = SHIFT.len() as u8;
        // By (tree, depth below the top level, bucket): coarsest first in key order.
        let mut deltas: BTreeMap<(TreeId, u8, u64), (i64, Sum, Sum)> = BTreeMap::new();
        // Each tree's items in key order: its chunk pages are dirtied, and so placed in the
        // file, together rather than interleaved with the other trees' (a NIP-77 sync then
        // maps fewer foreign pages with each fault). Stable, so an item added and removed in
        // one batch keeps that order.
        let mut sorted = ops.to_vec();
        sorted.sort_by_key(|o| (o.tree, o.created_at, o.id));
        for op in &sorted {
            let k = item_key(op.tree, op.created_at, &op.id);
            let changed = if op.add {
                self.chunk_insert(txn, op.tree, &k)?
            } else {
                self.chunk_remove(txn, op.tree, &k)?
            };
            if !changed {
                continue;
            }
            for (l, shift) in SHIFT.iter().enumerate() {
                let depth = top - (l as u8 + 1);
                let e = deltas
                    .entry((op.tree, depth, op.created_at >> shift))
                    .or_default();
                if op.add {
                    e.0 += 1;
                    e.1.add(&op.id);
                } else {
                    e.0 -= 1;
                    e.2.add(&op.id);
                }
            }
        }
        // Whether the rows below a bucket take their deltas: false when it holds too few
        // items for rows below it, or when they were just rebuilt from the items.
        let mut below: HashMap<(TreeId, u8, u64), bool> = HashMap::new();
        for ((tree, depth, bucket), (n, plus, minus)) in deltas {
            if depth > 0 && below.get(&(tree, depth - 1, bucket >> FANOUT_BITS)) != Some(&true) {
                below.insert((tree, depth, bucket), false);
                continue;
            }
            let level = top - depth;
            let k = agg_key(tree, level, bucket);
            let old = db.get(txn, &k)?.map(read_agg).unwrap_or_default();
            let mut a = old;
            a.count = a.count.saturating_add_signed(n);
            a.sum.add(&plus.0);
            a.sum.sub(&minus.0);
            if a.count == 0 {
                db.delete(txn, &k)?;
            } else {
                db.put(txn, &k, &write_agg(&a))?;
            }
            let (was, is) = (old.count > SPARSE, a.count > SPARSE);
            if level > 1 && was != is {
                self.rebuild_below(txn, tree, level, bucket, is)?;
            }
            below.insert((tree, depth, bucket), was && is);
        }
        Ok(())
    }

    /// Clears the aggregate rows below the level-`level` `bucket` of `tree` and, if
    /// `fill`, writes them again from its items: each row whose parent holds more than
    /// `SPARSE` items. Rows left there by a DB written before this rule are cleared too.
    fn rebuild_below(
        &self,
        txn: &mut heed::RwTxn,
        tree: TreeId,
        level: u8,
        bucket: u64,
        fill: bool,
    ) -> Result<()> {
        use std::collections::BTreeMap;
        let db = self.t.negentropy_tree;
        let shift = SHIFT[usize::from(level) - 1];
        let lo = bucket << shift;
        let hi = lo | ((1u64 << shift) - 1);
        for m in 1..level {
            let s = SHIFT[usize::from(m) - 1];
            let (a, b) = (agg_key(tree, m, lo >> s), agg_key(tree, m, hi >> s));
            db.delete_range(
                txn,
                &(
                    std::ops::Bound::Included(&a[..]),
                    std::ops::Bound::Included(&b[..]),
                ),
            )?;
        }
        if !fill {
            return Ok(());
        }
        // The bucket just grew past SPARSE in one batch: its items are few enough to hold.
        let mut rows: BTreeMap<(u8, u64), Agg> = BTreeMap::new();
        for it in Items::from(db, txn, tree, lo, &[0; 32])? {
            let (ts, id) = read_item(it?).ok_or_else(|| corrupt(tree))?;
            if ts > hi {
                break;
            }
            for m in 1..level {
                let a = rows
                    .entry((m, ts >> SHIFT[usize::from(m) - 1]))
                    .or_default();
                a.count += 1;
                a.sum.add(&id);
            }
        }
        for (&(m, b), a) in &rows {
            let parent = if m + 1 == level {
                u64::MAX
            } else {
                rows.get(&(m + 1, b >> FANOUT_BITS)).map_or(0, |p| p.count)
            };
            if parent > SPARSE {
                db.put(txn, &agg_key(tree, m, b), &write_agg(a))?;
            }
        }
        Ok(())
    }

    /// `tree`'s first chunk at or after `k` (`after`: the one that holds or would hold its
    /// item), or its last chunk before it, as (key, packed items) copied out for rewriting.
    fn chunk_near(
        &self,
        txn: &heed::RwTxn,
        tree: TreeId,
        k: &[u8; 49],
        after: bool,
    ) -> Result<Option<([u8; 49], Vec<u8>)>> {
        let db = self.t.negentropy_tree;
        let row = if after {
            db.get_greater_than_or_equal_to(txn, k)?
        } else {
            db.get_lower_than(txn, k)?
        };
        match row {
            Some((ck, cv)) if is_chunk_key(tree, ck) => {
                let items = chunk_items(ck, cv).ok_or_else(|| corrupt(tree))?;
                let mut key = [0u8; 49];
                key.copy_from_slice(ck);
                Ok(Some((key, items.to_vec())))
            }
            _ => Ok(None),
        }
    }

    /// Adds the item of key `k` to `tree`'s chunks; false if it was there.
    fn chunk_insert(&self, txn: &mut heed::RwTxn, tree: TreeId, k: &[u8; 49]) -> Result<bool> {
        let db = self.t.negentropy_tree;
        let item = &k[9..];
        let Some((_, mut items)) = self.chunk_near(txn, tree, k, true)? else {
            // After every chunk (how a live relay's new events arrive): onto the last one
            // while it has room, else a new one, so appended chunks end up full.
            match self.chunk_near(txn, tree, k, false)? {
                Some((pk, mut prev)) if prev.len() < CHUNK * ITEM_LEN => {
                    db.delete(txn, &pk)?;
                    prev.extend_from_slice(item);
                    put_chunk(db, txn, tree, &prev)?;
                }
                _ => put_chunk(db, txn, tree, item)?,
            }
            return Ok(true);
        };
        let Err(pos) = chunk_search(&items, item) else {
            return Ok(false);
        };
        // Before the chunk's last item, so its key stays.
        items.splice(pos * ITEM_LEN..pos * ITEM_LEN, item.iter().copied());
        if items.len() <= CHUNK * ITEM_LEN {
            put_chunk(db, txn, tree, &items)?;
        } else {
            // In halves; but an item near the end (a live relay's new events, in no id
            // order within a second) splits off there, leaving the rest full.
            let at = if pos + NEAR_END >= CHUNK {
                pos
            } else {
                items.len() / ITEM_LEN / 2
            };
            put_chunk(db, txn, tree, &items[..at * ITEM_LEN])?;
            put_chunk(db, txn, tree, &items[at * ITEM_LEN..])?;
        }
        Ok(true)
    }

    /// Removes the item of key `k` from `tree`'s chunks; false if it was not there.
    fn chunk_remove(&self, txn: &mut heed::RwTxn, tree: TreeId, k: &[u8; 49]) -> Result<bool> {
        let db = self.t.negentropy_tree;
        let Some((ck, mut items)) = self.chunk_near(txn, tree, k, true)? else {
            return Ok(false);
        };
        let Ok(pos) = chunk_search(&items, &k[9..]) else {
            return Ok(false);
        };
        items.drain(pos * ITEM_LEN..(pos + 1) * ITEM_LEN);
        if items.len() == pos * ITEM_LEN {
            // It was the last item, the chunk's key: the chunk moves to its new last.
            db.delete(txn, &ck)?;
        }
        if !items.is_empty() {
            put_chunk(db, txn, tree, &items)?;
        }
        Ok(true)
    }

    /// The built tree whose filter is `f` without since/until, if any: NEG-OPENs and syncs
    /// for `f` can be answered from it (a filter with a limit never is).
    pub fn tree_for(&self, txn: &RoTxn, f: &Filter) -> Result<Option<TreeId>> {
        self.tree_for_except(txn, f, &[])
    }

    /// The built tree for `f` (since/until aside) leaving out exactly the kinds `except`: a
    /// reader who may see no event of those kinds, and every other event, is answered from
    /// it exactly.
    pub fn tree_for_except(
        &self,
        txn: &RoTxn,
        f: &Filter,
        except: &[u64],
    ) -> Result<Option<TreeId>> {
        if f.limit.is_some() {
            return Ok(None);
        }
        let bare = tree_text(&tree_filter_text(f), except);
        for (tree, text) in self.tree_texts(txn)? {
            if text == bare && self.tree_built(txn, tree)? {
                return Ok(Some(tree));
            }
        }
        Ok(None)
    }

    /// Registers a tree for `filter` (canonicalised); it starts empty and unbuilt, and the
    /// write path keeps it up to date from now on.
    pub fn add_tree(&self, filter: &Filter) -> std::result::Result<TreeId, String> {
        self.add_tree_except(filter, &[])
    }

    /// `add_tree` for a tree that leaves out the events of `except` kinds (a public tree:
    /// `except` is the restricted read kinds).
    pub fn add_tree_except(
        &self,
        filter: &Filter,
        except: &[u64],
    ) -> std::result::Result<TreeId, String> {
        if filter.since != 0 || filter.until != u64::MAX || filter.limit.is_some() {
            return Err("a tree filter cannot have since, until or limit".into());
        }
        if filter.never {
            return Err("this filter can never match anything".into());
        }
        let text = tree_text(&filter.to_json(), except);
        let fail = |e: super::StoreError| e.to_string();
        let mut txn = self.write_txn().map_err(fail)?;
        let trees = self.trees(&txn).map_err(fail)?;
        if let Some((id, ..)) = trees.iter().find(|(_, t, ..)| *t == text) {
            return Err(format!("tree {id} already has filter {text}"));
        }
        let id = trees.iter().map(|(id, ..)| *id).max().unwrap_or(0) + 1;
        self.t
            .negentropy_filter
            .put(
                &mut txn,
                &super::keys::lev_key(id),
                &super::record::encode_negentropy_filter(&text),
            )
            .map_err(|e| fail(e.into()))?;
        self.bump_tree_counter(&mut txn).map_err(fail)?;
        txn.commit().map_err(|e| fail(e.into()))?;
        Ok(id)
    }

    /// Fills `tree` with every stored event its filter matches, in one write transaction
    /// (so it is exact when it commits), and marks it built. Returns its size.
    pub fn build_tree(&self, tree: TreeId) -> Result<u64> {
        self.build_tree_with(tree, &mut |_| {})
    }

    /// `build_tree`, telling `progress` how far it has got (every few thousand events, for
    /// `wok negentropy build`'s bar).
    pub fn build_tree_with(
        &self,
        tree: TreeId,
        progress: &mut dyn FnMut(BuildStep),
    ) -> Result<u64> {
        let mut txn = self.write_txn()?;
        let n = self.build_tree_in(&mut txn, tree, progress)?;
        progress(BuildStep::Committing);
        txn.commit()?;
        Ok(n)
    }

    /// `build_tree` in the caller's transaction (a later tree of the same transaction is
    /// written at the table's end only if no later tree has rows: see the flags below).
    pub(super) fn build_tree_in(
        &self,
        txn: &mut heed::RwTxn,
        tree: TreeId,
        progress: &mut dyn FnMut(BuildStep),
    ) -> Result<u64> {
        /// Events read between two `progress` calls (a few under test, so pieces and the
        /// items carried between them are exercised).
        const STEP: usize = if cfg!(test) { 40 } else { 4096 };
        // Built from the created_at index, a tree would leave a bulk load's events out for
        // good (the load's build writes index rows, not tree items).
        if let Some(from) = self.unindexed_from(txn)? {
            return Err(super::StoreError::Unindexed(from));
        }
        let db = self.t.negentropy_tree;
        let Some((_, _, filter, except)) =
            self.trees(txn)?.into_iter().find(|(id, ..)| *id == tree)
        else {
            return Err(super::StoreError::Corrupt(format!("no tree {tree}")));
        };
        self.clear_tree(txn, tree)?;
        // Every row is written in key order. If no later tree has rows, that is at the end
        // of the table, where MDB_APPEND leaves each page it fills full (a plain put moves
        // the page's last row to the new page with the new one: pages two thirds full).
        let flags = match db.last(txn)? {
            Some((k, _)) if k > &tree.to_be_bytes()[..] => heed::PutFlags::empty(),
            _ => heed::PutFlags::APPEND,
        };
        let total = self.t.event.len(txn)?;
        // Items, read a piece at a time from the created_at index, so memory stays at one
        // piece whatever the DB's size. A piece ends between two seconds, so sorted it
        // follows the one before: chunks are written full, each once, in order (inserted
        // one by one in levId order they were about half full, and so were their pages).
        let mut items: Vec<[u8; ITEM_LEN]> = Vec::with_capacity(STEP + CHUNK);
        let (mut scanned, mut n) = (0u64, 0u64);
        let mut after: Option<Vec<u8>> = None;
        loop {
            let mut read = 0;
            let mut done = true;
            {
                let rows = match &after {
                    None => self
                        .t
                        .created_at
                        .range(txn, &(KeyBound::Unbounded, KeyBound::Unbounded))?,
                    Some(k) => self.t.created_at.range(
                        txn,
                        &(KeyBound::Excluded(k.as_slice()), KeyBound::Unbounded),
                    )?,
                };
                let mut last_ts = None;
                for row in rows {
                    let (k, _) = row?;
                    let (ts, lev) = super::keys::parse_suffix(k).ok_or_else(|| corrupt(tree))?;
                    if read >= STEP && last_ts != Some(ts) {
                        done = false;
                        break;
                    }
                    last_ts = Some(ts);
                    read += 1;
                    after = Some(k.to_vec());
                    let Some(rec) = self.record(txn, lev)? else {
                        return Err(super::StoreError::Corrupt(format!(
                            "the created_at index names event {lev}, which is not stored"
                        )));
                    };
                    if tree_holds(&filter, &except, &rec) {
                        use crate::nostr::filter::EventView;
                        let mut it = [0u8; ITEM_LEN];
                        it[..8].copy_from_slice(&rec.created_at().to_be_bytes());
                        it[8..].copy_from_slice(rec.id());
                        items.push(it);
                    }
                }
            }
            // The cursor is closed: the tree's rows can be written. Items short of a full
            // chunk wait for the next piece's, all later.
            items.sort_unstable();
            let upto = if done {
                items.len()
            } else {
                items.len() / CHUNK * CHUNK
            };
            for chunk in items[..upto].chunks(CHUNK) {
                put_chunk_with(db, txn, tree, &chunk.concat(), flags)?;
            }
            items.drain(..upto);
            n += upto as u64;
            scanned += read as u64;
            progress(BuildStep::Scanned {
                done: scanned,
                total,
            });
            if done {
                break;
            }
        }
        self.fill_aggregates(txn, tree, flags)?;
        db.put_with_flags(txn, flags, &built_key(tree), &[])?;
        // Writes keep it from now on (`tree_filters`).
        self.bump_tree_counter(txn)?;
        Ok(n)
    }

    /// Writes the aggregate rows of `tree`, which has its items and no aggregate rows yet (a
    /// build), level by level in key order: each level reads the items once, a piece at a
    /// time, and writes a row only under a parent bucket holding more than `SPARSE` items
    /// (every top-level row), as `apply_tree_ops` keeps them.
    fn fill_aggregates(
        &self,
        txn: &mut heed::RwTxn,
        tree: TreeId,
        flags: heed::PutFlags,
    ) -> Result<()> {
        /// Rows held between two writes (a few under test, so pieces are exercised).
        const PIECE: usize = if cfg!(test) { 8 } else { 4096 };
        let db = self.t.negentropy_tree;
        let top = SHIFT.len() as u8;
        for level in 1..=top {
            let shift = SHIFT[usize::from(level) - 1];
            // The bucket a row's parent is: the next level's, or at the top the row's own.
            let pshift = SHIFT.get(usize::from(level)).copied().unwrap_or(shift);
            let mut from = 0u64;
            loop {
                let mut rows: Vec<([u8; 17], [u8; 40])> = Vec::new();
                let mut next = None;
                {
                    // The current parent bucket: its item count and its children's rows.
                    let mut parent = None;
                    let mut count = 0u64;
                    let mut kids: Vec<(u64, Agg)> = Vec::new();
                    let flush = |rows: &mut Vec<_>, kids: &mut Vec<(u64, Agg)>, count: u64| {
                        if level == top || count > SPARSE {
                            rows.extend(
                                kids.iter()
                                    .map(|(b, a)| (agg_key(tree, level, *b), write_agg(a))),
                            );
                        }
                        kids.clear();
                    };
                    for it in Items::from(db, txn, tree, from, &[0; 32])? {
                        let (ts, id) = read_item(it?).ok_or_else(|| corrupt(tree))?;
                        let p = ts >> pshift;
                        if parent != Some(p) {
                            flush(&mut rows, &mut kids, count);
                            // A piece ends before a new parent: it starts at or after
                            // `p << pshift`, every earlier item's parent before it.
                            if rows.len() >= PIECE {
                                next = Some(p << pshift);
                                break;
                            }
                            count = 0;
                            parent = Some(p);
                        }
                        count += 1;
                        let b = ts >> shift;
                        match kids.last_mut() {
                            Some((kb, a)) if *kb == b => {
                                a.count += 1;
                                a.sum.add(&id);
                            }
                            _ => {
                                let mut a = Agg {
                                    count: 1,
                                    ..Agg::default()
                                };
                                a.sum.add(&id);
                                kids.push((b, a));
                            }
                        }
                    }
                    if next.is_none() {
                        flush(&mut rows, &mut kids, count);
                    }
                }
                for (k, v) in &rows {
                    db.put_with_flags(txn, flags, k, v)?;
                }
                match next {
                    Some(f) => from = f,
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Marks every built tree unbuilt, in the caller's transaction, and returns them: a bulk
    /// load into an empty DB (`Store::begin_bulk_load`) then fills each once, at its end, in
    /// key order and in one transaction, so a tree's pages are packed and together in the
    /// file (kept event by event, its rows were split all over and its pages shared with
    /// events': a `{}` sync mapped 37 MB of pages for 4 MB of items). Meanwhile writes skip
    /// them and NEG-OPENs answer from collected sets, exactly, as for any unbuilt tree.
    pub(super) fn unbuild_trees(&self, txn: &mut heed::RwTxn) -> Result<Vec<TreeId>> {
        let mut unbuilt = Vec::new();
        for (id, ..) in self.trees(txn)? {
            if self.tree_built(txn, id)? {
                self.clear_tree(txn, id)?;
                unbuilt.push(id);
            }
        }
        if !unbuilt.is_empty() {
            self.bump_tree_counter(txn)?;
        }
        Ok(unbuilt)
    }

    /// Forgets `tree` and its rows; false if there was no such tree.
    pub fn remove_tree(&self, tree: TreeId) -> Result<bool> {
        let mut txn = self.write_txn()?;
        if !self
            .t
            .negentropy_filter
            .delete(&mut txn, &super::keys::lev_key(tree))?
        {
            return Ok(false);
        }
        self.clear_tree(&mut txn, tree)?;
        self.bump_tree_counter(&mut txn)?;
        txn.commit()?;
        Ok(true)
    }

    fn bump_tree_counter(&self, txn: &mut heed::RwTxn) -> Result<()> {
        let mut m = self.meta(txn)?;
        m.negentropy_modification_counter += 1;
        self.write_meta(txn, &m)
    }

    /// Removes every row of `tree` (items, aggregates, built mark).
    pub(crate) fn clear_tree(&self, txn: &mut heed::RwTxn, tree: TreeId) -> Result<()> {
        // Every key of the tree starts with its id; a range delete holds none in memory.
        let lo = tree.to_be_bytes();
        let range = match tree.checked_add(1) {
            Some(next) => (
                std::ops::Bound::Included(&lo[..]),
                std::ops::Bound::Excluded(&next.to_be_bytes()[..]),
            ),
            None => (
                std::ops::Bound::Included(&lo[..]),
                std::ops::Bound::Unbounded,
            ),
        };
        self.t.negentropy_tree.delete_range(txn, &range)?;
        Ok(())
    }
}

/// A read view of one tree, optionally narrowed to created_at in `[since, until]`, that the
/// `negentropy` crate reconciles against. Built per message on a fresh read transaction.
pub struct TreeView<'t> {
    store: &'t Store,
    txn: &'t RoTxn<'t, heed::WithoutTls>,
    tree: TreeId,
    lo: u64,
    hi: u64,
    failed: Cell<bool>,
}

impl<'t> TreeView<'t> {
    pub fn new(
        store: &'t Store,
        txn: &'t RoTxn<'t, heed::WithoutTls>,
        tree: TreeId,
        since: u64,
        until: u64,
    ) -> Result<TreeView<'t>> {
        let mut v = TreeView {
            store,
            txn,
            tree,
            lo: 0,
            hi: 0,
            failed: Cell::new(false),
        };
        v.lo = v.rank(since, &[0; 32])?.0;
        v.hi = match until.checked_add(1) {
            Some(u) => v.rank(u, &[0; 32])?.0,
            None => v.total()?,
        };
        v.hi = v.hi.max(v.lo);
        Ok(v)
    }

    /// Items in the view.
    pub fn len(&self) -> u64 {
        self.hi - self.lo
    }

    pub fn is_empty(&self) -> bool {
        self.hi == self.lo
    }

    /// Set when an LMDB read failed inside a negentropy callback (which can only report
    /// a protocol error): the caller then reports a storage error instead.
    pub fn failed(&self) -> bool {
        self.failed.get()
    }

    fn db(&self) -> heed::Database<heed::types::Bytes, heed::types::Bytes> {
        self.store.t.negentropy_tree
    }

    /// Aggregate rows of `level` with buckets in `[from, to)`, in order.
    fn aggs(&self, level: u8, from: u64, to: u64) -> Result<Vec<(u64, Agg)>> {
        let (a, b) = (
            agg_key(self.tree, level, from),
            agg_key(self.tree, level, to),
        );
        let range = (
            std::ops::Bound::Included(&a[..]),
            std::ops::Bound::Excluded(&b[..]),
        );
        let mut out = Vec::new();
        for row in self.db().range(self.txn, &range)? {
            let (k, v) = row?;
            let bucket = k
                .get(9..17)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| corrupt(self.tree))?;
            out.push((bucket, read_agg(v)));
        }
        Ok(out)
    }

    /// Every item in the tree.
    fn total(&self) -> Result<u64> {
        Ok(self
            .aggs(SHIFT.len() as u8, 0, u64::MAX)?
            .iter()
            .map(|(_, a)| a.count)
            .sum())
    }

    /// (count, id sum) of the items that sort before `(ts, id)`.
    fn rank(&self, ts: u64, id: &[u8; 32]) -> Result<(u64, Sum)> {
        let mut count = 0;
        let mut sum = Sum::default();
        let top = SHIFT.len();
        // The start of the bucket whose items are read one by one: the finest, or the
        // first on the way down that holds few enough items.
        let mut items_from = 0;
        for level in (1..=top).rev() {
            let shift = SHIFT[level - 1];
            let bucket = ts >> shift;
            // Buckets of this level inside the parent bucket that holds `ts`, up to it.
            let from = if level == top {
                0
            } else {
                (ts >> SHIFT[level]) << FANOUT_BITS
            };
            let mut inside = 0;
            for (b, a) in self.aggs(level as u8, from, bucket.saturating_add(1))? {
                if b < bucket {
                    count += a.count;
                    sum.add(&a.sum.0);
                } else {
                    inside = a.count;
                }
            }
            items_from = bucket << shift;
            if inside <= SPARSE {
                break;
            }
        }
        // Items of that bucket before (ts, id).
        let end = item_key(self.tree, ts, id);
        for it in self.items_from(items_from, &[0; 32])? {
            let it = it?;
            if it >= &end[9..] {
                break;
            }
            let (_, id) = read_item(it).ok_or_else(|| corrupt(self.tree))?;
            count += 1;
            sum.add(&id);
        }
        Ok((count, sum))
    }

    /// The id sum of the first `pos` items and the item at `pos` (if any).
    fn select(&self, pos: u64) -> Result<(Sum, Option<Item>)> {
        let mut left = pos;
        let mut sum = Sum::default();
        let top = SHIFT.len();
        // Descend: at each level find the bucket holding position `pos`, until the finest
        // level or a bucket with few enough items to read one by one.
        let (mut from, mut to) = (0u64, u64::MAX);
        let mut region = None;
        for level in (1..=top).rev() {
            let mut inside = None;
            for (bucket, a) in self.aggs(level as u8, from, to)? {
                if a.count <= left {
                    left -= a.count;
                    sum.add(&a.sum.0);
                } else {
                    inside = Some((bucket, a.count));
                    break;
                }
            }
            let Some((b, n)) = inside else {
                return Ok((sum, None));
            };
            if level == 1 || n <= SPARSE {
                let shift = SHIFT[level - 1];
                region = Some((b << shift, (b << shift) | ((1 << shift) - 1)));
                break;
            }
            from = b << FANOUT_BITS;
            to = (b + 1) << FANOUT_BITS;
        }
        let Some((ts_lo, ts_hi)) = region else {
            return Ok((sum, None));
        };
        for it in self.items_from(ts_lo, &[0; 32])? {
            let (ts, id) = read_item(it?).ok_or_else(|| corrupt(self.tree))?;
            if ts > ts_hi {
                break;
            }
            if left == 0 {
                return Ok((
                    sum,
                    Some(Item::with_timestamp_and_id(ts, Id::from_byte_array(id))),
                ));
            }
            left -= 1;
            sum.add(&id);
        }
        Ok((sum, None))
    }

    /// The tree's items from `(ts, id)` on, in order, each as its stored `ITEM_LEN` bytes.
    fn items_from(&self, ts: u64, id: &[u8; 32]) -> Result<Items<'t>> {
        Items::from(self.db(), self.txn, self.tree, ts, id)
    }

    fn fail<T>(&self, r: Result<T>) -> std::result::Result<T, NegError> {
        r.map_err(|e| {
            log::error!("negentropy tree {} read failed: {e}", self.tree);
            self.failed.set(true);
            NegError::BadRange
        })
    }
}

/// Items of a tree in order, read chunk by chunk (see `TreeView::items_from`).
struct Items<'t> {
    tree: TreeId,
    rows: heed::RoRange<'t, heed::types::Bytes, heed::types::Bytes>,
    /// The current chunk's items not yet handed out.
    chunk: &'t [u8],
    /// Items before this are skipped (only the first chunk can hold any).
    min: Option<[u8; ITEM_LEN]>,
}

impl<'t> Items<'t> {
    /// `tree`'s items from `(ts, id)` on.
    fn from(
        db: heed::Database<heed::types::Bytes, heed::types::Bytes>,
        txn: &'t RoTxn<'_>,
        tree: TreeId,
        ts: u64,
        id: &[u8; 32],
    ) -> Result<Items<'t>> {
        let k = item_key(tree, ts, id);
        // From the chunk that would hold (ts, id): its items before it are skipped.
        let hi = item_key(tree, u64::MAX, &[0xff; 32]);
        let range = (
            std::ops::Bound::Included(&k[..]),
            std::ops::Bound::Included(&hi[..]),
        );
        let mut min = [0u8; ITEM_LEN];
        min.copy_from_slice(&k[9..]);
        Ok(Items {
            tree,
            rows: db.range(txn, &range)?,
            chunk: &[],
            min: Some(min),
        })
    }
}

impl<'t> Iterator for Items<'t> {
    type Item = Result<&'t [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((it, rest)) = self.chunk.split_at_checked(ITEM_LEN) {
                self.chunk = rest;
                match self.min {
                    Some(min) if it < &min[..] => continue,
                    _ => self.min = None,
                }
                return Some(Ok(it));
            }
            let (k, v) = match self.rows.next()? {
                Ok(row) => row,
                Err(e) => return Some(Err(e.into())),
            };
            match chunk_items(k, v) {
                Some(items) => self.chunk = items,
                None => return Some(Err(corrupt(self.tree))),
            }
        }
    }
}

/// One item whose id is a precomputed sum: lets the crate's own fingerprint code (the hash
/// of sum ‖ count; its types are not nameable outside the crate) hash a sum computed from
/// aggregate rows.
struct SumAsItem(Sum);

/// `(items, fingerprint)` of a whole tree, from its aggregate rows alone.
pub fn tree_summary(
    store: &Store,
    txn: &RoTxn<'_, heed::WithoutTls>,
    tree: TreeId,
) -> Result<(u64, [u8; 16])> {
    let v = TreeView::new(store, txn, tree, 0, u64::MAX)?;
    let mut sum = Sum::default();
    for (_, a) in v.aggs(SHIFT.len() as u8, 0, u64::MAX)? {
        sum.add(&a.sum.0);
    }
    let n = v.len();
    let fp = SumAsItem(sum)
        .fingerprint(0, n as usize)
        .map_err(|e| super::StoreError::Corrupt(format!("fingerprint: {e}")))?;
    Ok((n, fp.to_bytes()))
}

impl NegentropyStorageBase for SumAsItem {
    fn size(&self) -> std::result::Result<usize, NegError> {
        Ok(1)
    }
    fn get_item(&self, _: usize) -> std::result::Result<Option<Item>, NegError> {
        Ok(None)
    }
    fn iterate(
        &self,
        _: usize,
        _: usize,
        cb: &mut dyn FnMut(Item, usize) -> std::result::Result<bool, NegError>,
    ) -> std::result::Result<(), NegError> {
        cb(
            Item::with_timestamp_and_id(0, Id::from_byte_array(self.0 .0)),
            0,
        )?;
        Ok(())
    }
    fn find_lower_bound(&self, first: usize, _: usize, _: &Bound) -> usize {
        first
    }
}

impl NegentropyStorageBase for TreeView<'_> {
    fn size(&self) -> std::result::Result<usize, NegError> {
        Ok(self.len() as usize)
    }

    fn get_item(&self, i: usize) -> std::result::Result<Option<Item>, NegError> {
        if i as u64 >= self.len() {
            return Ok(None);
        }
        Ok(self.fail(self.select(self.lo + i as u64))?.1)
    }

    fn iterate(
        &self,
        begin: usize,
        end: usize,
        cb: &mut dyn FnMut(Item, usize) -> std::result::Result<bool, NegError>,
    ) -> std::result::Result<(), NegError> {
        if begin > end || end as u64 > self.len() {
            return Err(NegError::BadRange);
        }
        if begin == end {
            return Ok(());
        }
        let Some(first) = self.fail(self.select(self.lo + begin as u64))?.1 else {
            return Err(NegError::BadRange);
        };
        let iter = self.fail(self.items_from(first.timestamp, first.id.as_bytes()))?;
        for (i, it) in (begin..end).zip(iter) {
            let it = self.fail(it)?;
            let (ts, id) = self.fail(read_item(it).ok_or_else(|| corrupt(self.tree)))?;
            if !cb(Item::with_timestamp_and_id(ts, Id::from_byte_array(id)), i)? {
                break;
            }
        }
        Ok(())
    }

    fn find_lower_bound(&self, first: usize, last: usize, value: &Bound) -> usize {
        let at = match self.rank(value.item.timestamp, value.item.id.as_bytes()) {
            Ok((n, _)) => n.saturating_sub(self.lo) as usize,
            Err(e) => {
                log::error!("negentropy tree {} read failed: {e}", self.tree);
                self.failed.set(true);
                first
            }
        };
        at.clamp(first, last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use negentropy::NegentropyStorageVector;

    fn op(tree: TreeId, (ts, id): (u64, [u8; 32]), add: bool) -> TreeOp {
        TreeOp {
            tree,
            created_at: ts,
            id,
            add,
        }
    }

    /// A distinct item for `i`, seconds colliding in threes.
    fn item(i: u64) -> (u64, [u8; 32]) {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
        (1_700_000_000 + i / 3, id)
    }

    /// Rows of the tree table from `lo` to `hi`, both included.
    fn rows_between(store: &Store, lo: &[u8], hi: &[u8]) -> usize {
        let txn = store.read_txn().expect("txn");
        let range = (std::ops::Bound::Included(lo), std::ops::Bound::Included(hi));
        store
            .t
            .negentropy_tree
            .range(&txn, &range)
            .expect("range")
            .count()
    }

    fn chunk_rows(store: &Store, tree: TreeId) -> usize {
        let (lo, hi) = (
            item_key(tree, 0, &[0; 32]),
            item_key(tree, u64::MAX, &[0xff; 32]),
        );
        rows_between(store, &lo, &hi)
    }

    /// The tree's items and positional answers equal the crate's vector over `want`.
    fn check(store: &Store, tree: TreeId, want: &[(u64, [u8; 32])]) {
        let mut want = want.to_vec();
        want.sort();
        let txn = store.read_txn().expect("txn");
        let view = TreeView::new(store, &txn, tree, 0, u64::MAX).expect("view");
        let mut vec = NegentropyStorageVector::new();
        for (ts, id) in &want {
            vec.insert(*ts, Id::from_byte_array(*id)).expect("insert");
        }
        vec.seal().expect("seal");
        let n = want.len();
        assert_eq!(view.size().expect("size"), n);
        let mut got = Vec::new();
        view.iterate(0, n, &mut |it, _| {
            got.push((it.timestamp, *it.id.as_bytes()));
            Ok(true)
        })
        .expect("iterate");
        assert_eq!(got, want);
        for i in (0..n).step_by(7) {
            assert_eq!(
                view.get_item(i).expect("item"),
                vec.get_item(i).expect("item")
            );
            for j in [i, i + 1, i + 33, n] {
                let j = j.min(n);
                assert_eq!(
                    view.fingerprint(i, j).expect("fp").to_bytes(),
                    vec.fingerprint(i, j).expect("fp").to_bytes()
                );
            }
            let b = Bound::with_timestamp_and_id(want[i].0, want[i].1).expect("bound");
            assert_eq!(
                view.find_lower_bound(0, n, &b),
                vec.find_lower_bound(0, n, &b)
            );
        }
        assert!(!view.failed());
    }

    /// New events arrive in time order (ids in any order within a second): each nearly
    /// fills the last chunk before another starts.
    #[test]
    fn appended_items_fill_their_chunks() {
        let (_dir, store) = super::super::tests::temp_store();
        let items: Vec<_> = (0..1000).map(item).collect();
        for batch in items.chunks(10) {
            let ops: Vec<_> = batch.iter().map(|&it| op(5, it, true)).collect();
            let mut txn = store.write_txn().expect("txn");
            store.apply_tree_ops(&mut txn, &ops).expect("apply");
            txn.commit().expect("commit");
        }
        assert!(chunk_rows(&store, 5) <= 1000 / (CHUNK - NEAR_END) + 1);
        check(&store, 5, &items);
    }

    /// Items in no particular order, then half of them removed: chunks split in halves
    /// (never below half full while nothing is removed), and the answers stay exact.
    #[test]
    fn chunks_split_and_shrink_exactly() {
        let (_dir, store) = super::super::tests::temp_store();
        let mut items: Vec<_> = (0..1500).map(item).collect();
        // A fixed shuffle: by the id's bytes, not by time.
        items.sort_by_key(|(_, id)| *id);
        let mut txn = store.write_txn().expect("txn");
        let ops: Vec<_> = items.iter().map(|&it| op(3, it, true)).collect();
        store.apply_tree_ops(&mut txn, &ops).expect("apply");
        // Adding one twice changes nothing.
        store.apply_tree_ops(&mut txn, &ops[..50]).expect("apply");
        txn.commit().expect("commit");
        assert!(chunk_rows(&store, 3) <= 1500 / (CHUNK / 2) + 1);
        check(&store, 3, &items);
        let (gone, kept): (Vec<_>, Vec<_>) =
            items.iter().enumerate().partition(|(i, _)| i % 2 == 0);
        let ops: Vec<_> = gone.iter().map(|(_, &it)| op(3, it, false)).collect();
        let mut txn = store.write_txn().expect("txn");
        store.apply_tree_ops(&mut txn, &ops).expect("apply");
        // Removing one that is not there changes nothing.
        store.apply_tree_ops(&mut txn, &ops[..50]).expect("apply");
        txn.commit().expect("commit");
        let kept: Vec<_> = kept.into_iter().map(|(_, &it)| it).collect();
        check(&store, 3, &kept);
    }

    fn agg_rows(store: &Store, tree: TreeId, level: u8) -> usize {
        let (lo, hi) = (agg_key(tree, level, 0), agg_key(tree, level, u64::MAX));
        rows_between(store, &lo, &hi)
    }

    /// Events minutes apart (each alone in its 16-second and 1024-second buckets) leave no
    /// rows at the finest level: no search would read them. Grown dense, a bucket gets
    /// them; thinned out again, it loses them, and the answers stay exact throughout.
    #[test]
    fn rows_exist_only_under_buckets_dense_enough_to_read_them() {
        let (_dir, store) = super::super::tests::temp_store();
        let sparse: Vec<_> = (0..400u64)
            .map(|i| (1_700_000_000 + i * 2000, item(i).1))
            .collect();
        let apply = |ops: &[TreeOp]| {
            let mut txn = store.write_txn().expect("txn");
            store.apply_tree_ops(&mut txn, ops).expect("apply");
            txn.commit().expect("commit");
        };
        apply(&sparse.iter().map(|&it| op(4, it, true)).collect::<Vec<_>>());
        assert_eq!(agg_rows(&store, 4, 1), 0);
        assert!(agg_rows(&store, 4, 2) > 0);
        check(&store, 4, &sparse);
        // 40 more inside one 1024-second bucket, a few per 16-second bucket.
        let base = sparse[100].0 & !1023;
        let dense: Vec<_> = (0..40u64)
            .map(|i| (base + i * 20, item(1000 + i).1))
            .collect();
        apply(&dense.iter().map(|&it| op(4, it, true)).collect::<Vec<_>>());
        assert!(agg_rows(&store, 4, 1) > 0);
        let mut all = sparse.clone();
        all.extend_from_slice(&dense);
        check(&store, 4, &all);
        apply(
            &dense[..30]
                .iter()
                .map(|&it| op(4, it, false))
                .collect::<Vec<_>>(),
        );
        assert_eq!(agg_rows(&store, 4, 1), 0);
        let mut all = sparse.clone();
        all.extend_from_slice(&dense[30..]);
        check(&store, 4, &all);
    }

    /// A tree's items, and its aggregate rows as (level ‖ bucket, value), without its id.
    type Rows = (Vec<(u64, [u8; 32])>, Vec<(Vec<u8>, Vec<u8>)>);
    fn tree_rows(store: &Store, tree: TreeId) -> Rows {
        let txn = store.read_txn().expect("txn");
        let db = store.t.negentropy_tree;
        let items = Items::from(db, &txn, tree, 0, &[0; 32])
            .expect("items")
            .map(|it| read_item(it.expect("item")).expect("shape"))
            .collect();
        let (lo, hi) = (agg_key(tree, 1, 0), agg_key(tree, u8::MAX, u64::MAX));
        let range = (
            std::ops::Bound::Included(&lo[..]),
            std::ops::Bound::Included(&hi[..]),
        );
        let aggs = db
            .range(&txn, &range)
            .expect("range")
            .map(|r| r.expect("row"))
            .filter(|(k, _)| k.len() == 17)
            .map(|(k, v)| (k[8..].to_vec(), v.to_vec()))
            .collect();
        (items, aggs)
    }

    /// A build writes its tree in key order: every chunk full but the last, and exactly the
    /// aggregate rows the write path keeps (those under buckets dense enough to be read),
    /// whether it puts at the table's end (MDB_APPEND) or before a later tree's rows; and
    /// writes keep a built tree from then on.
    #[test]
    fn a_build_packs_its_chunks_and_writes_the_rows_writes_keep() {
        use super::super::tests::{ev, key};
        let (_dir, store) = super::super::tests::temp_store();
        let k = key(1);
        // Sparse (minutes apart) and dense (several a second) stretches, in no time order.
        let mut evs: Vec<crate::nostr::Event> = (0..700u64)
            .map(|i| {
                let ts = if i % 2 == 0 {
                    1_700_000_000 + i * 997
                } else {
                    1_710_000_000 + i / 7
                };
                ev(&k, ts, 1, &[], &format!("{i}"))
            })
            .collect();
        evs.sort_by_key(|e| e.id);
        for batch in evs.chunks(50) {
            store.write_batch(batch).expect("write");
        }
        // The same events (none of kind 999), built after them: the last tree in the table.
        // A write between registering and building it sees it unbuilt (and skips it).
        let t = store.add_tree_except(&Filter::all(), &[999]).expect("add");
        evs.push(ev(&k, 1_710_000_001, 1, &[], "between"));
        store.write_batch(&evs[700..]).expect("write");
        // Tree 1 (`{}`, built on the new DB) was kept event by event.
        let kept = tree_rows(&store, 1);
        assert_eq!(kept.0.len(), 701);
        assert!(
            kept.1.iter().any(|(k, _)| k[0] == 1),
            "no finest-level rows"
        );
        store.build_tree(t).expect("build");
        assert_eq!(tree_rows(&store, t), kept);
        assert_eq!(chunk_rows(&store, t), 701usize.div_ceil(CHUNK));
        // Tree 1 rebuilt, before tree t's rows.
        store.build_tree(1).expect("build");
        assert_eq!(tree_rows(&store, 1), kept);
        assert_eq!(chunk_rows(&store, 1), 701usize.div_ceil(CHUNK));
        let more: Vec<_> = (0..40u64)
            .map(|i| ev(&k, 1_710_000_050 + i % 9, 1, &[], &format!("more {i}")))
            .collect();
        store.write_batch(&more).expect("write");
        let rows = tree_rows(&store, t);
        assert_eq!(rows.0.len(), 741);
        assert_eq!(tree_rows(&store, 1), rows);
        check(&store, t, &rows.0);
    }

    /// An empty DB's trees are left to the end of a bulk load: unbuilt (not served),
    /// skipped by writes, then built. A DB holding events keeps its trees as they are.
    #[test]
    fn an_empty_dbs_trees_wait_for_their_build() {
        use super::super::tests::{ev, key};
        let (_dir, store) = super::super::tests::temp_store();
        let other = store.add_tree_except(&Filter::all(), &[999]).expect("add");
        store.build_tree(other).expect("build");
        let counter = |s: &Store| {
            let txn = s.read_txn().expect("txn");
            s.meta(&txn).expect("meta").negentropy_modification_counter
        };
        let before = counter(&store);
        let load = store.begin_bulk_load().expect("begin").expect("empty");
        assert!(load.trees.contains(&1), "{:?}", load.trees);
        assert!(load.trees.contains(&other), "{:?}", load.trees);
        // A relay holding the tree set sees it changed.
        assert!(counter(&store) > before);
        // One removed before the build is skipped.
        assert!(store.remove_tree(other).expect("remove"));
        let k = key(2);
        let evs: Vec<_> = (0..100u64)
            .map(|i| ev(&k, 1_700_000_000 + i * 13, 1, &[], &format!("{i}")))
            .collect();
        store.write_batch(&evs).expect("write");
        let txn = store.read_txn().expect("txn");
        assert_eq!(store.tree_for(&txn, &Filter::all()).expect("tree"), None);
        assert_eq!(store.deferred_trees(&txn).expect("row"), load.trees);
        drop(txn);
        let load_trees: Vec<TreeId> = load.trees.iter().copied().filter(|&t| t != other).collect();
        for &t in &load_trees {
            assert_eq!(
                chunk_rows(&store, t),
                0,
                "tree {t} was written before its build"
            );
        }
        store.build_deferred_indexes(&mut |_| {}).expect("rows");
        let built = store.build_deferred_trees().expect("build");
        assert_eq!(built.iter().map(|b| b.0).collect::<Vec<_>>(), load_trees);
        assert!(built.contains(&(1, 100)), "{built:?}");
        let txn = store.read_txn().expect("txn");
        assert_eq!(store.tree_for(&txn, &Filter::all()).expect("tree"), Some(1));
        assert_eq!(
            store.deferred_trees(&txn).expect("row"),
            Vec::<TreeId>::new()
        );
        drop(txn);
        let want: Vec<_> = evs.iter().map(|e| (e.created_at, e.id)).collect();
        check(&store, 1, &want);
        drop(load);
        assert!(store.begin_bulk_load().expect("begin").is_none());
        let txn = store.read_txn().expect("txn");
        assert_eq!(store.tree_for(&txn, &Filter::all()).expect("tree"), Some(1));
    }

    /// An item added and removed in one batch (a replaceable event and its successor, an
    /// event and its deletion) ends as the last of its operations says.
    #[test]
    fn one_batch_applies_an_items_operations_in_order() {
        let (_dir, store) = super::super::tests::temp_store();
        let mut ops = Vec::new();
        for i in 0..300 {
            // Added then removed: gone. Removed (absent) then added: there.
            let it = item(i);
            if i % 2 == 0 {
                ops.extend([op(6, it, true), op(6, it, false)]);
            } else {
                ops.extend([op(6, it, false), op(6, it, true)]);
            }
        }
        let mut txn = store.write_txn().expect("txn");
        store.apply_tree_ops(&mut txn, &ops).expect("apply");
        txn.commit().expect("commit");
        let want: Vec<_> = (0..300).filter(|i| i % 2 == 1).map(item).collect();
        check(&store, 6, &want);
    }

    /// A tree in the shape wok wrote before chunks (a row per item, empty value) reads as
    /// it is, and inserts and removes on it keep it exact.
    #[test]
    fn rows_of_the_older_shape_read_and_change_as_chunks() {
        let (_dir, store) = super::super::tests::temp_store();
        let items: Vec<_> = (0..300).map(item).collect();
        let ops: Vec<_> = items.iter().map(|&it| op(9, it, true)).collect();
        let mut txn = store.write_txn().expect("txn");
        store.apply_tree_ops(&mut txn, &ops).expect("apply");
        // Rewrite the chunks as one row per item; the aggregate rows stay as they are.
        let lo = item_key(9, 0, &[0; 32]);
        let hi = item_key(9, u64::MAX, &[0xff; 32]);
        let range = (
            std::ops::Bound::Included(&lo[..]),
            std::ops::Bound::Included(&hi[..]),
        );
        store
            .t
            .negentropy_tree
            .delete_range(&mut txn, &range)
            .expect("delete");
        for (ts, id) in &items {
            store
                .t
                .negentropy_tree
                .put(&mut txn, &item_key(9, *ts, id), &[])
                .expect("put");
        }
        txn.commit().expect("commit");
        assert_eq!(chunk_rows(&store, 9), 300);
        check(&store, 9, &items);
        // Some removed, new ones before, among and after the old rows.
        let mut want: Vec<_> = items
            .iter()
            .copied()
            .filter(|it| it.1[0] % 3 != 0)
            .collect();
        let mut ops: Vec<_> = items
            .iter()
            .filter(|it| it.1[0] % 3 == 0)
            .map(|&it| op(9, it, false))
            .collect();
        for i in (300..700).chain([10_000, 20_000]) {
            let mut it = item(i);
            it.0 = 1_700_000_000 + (i * 7919) % 120;
            want.push(it);
            ops.push(op(9, it, true));
        }
        let mut txn = store.write_txn().expect("txn");
        store.apply_tree_ops(&mut txn, &ops).expect("apply");
        txn.commit().expect("commit");
        check(&store, 9, &want);
        assert!(chunk_rows(&store, 9) < 300);
    }
}
