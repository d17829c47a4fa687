//! The write rules, applied inside one RW transaction per batch, in (created_at, id) order:
//! duplicates, tombstones, replaceable/addressable versions, NIP-09 deletions (`e` and `a`
//! tags), NIP-59 gift-wrap deletions, the expiration index. Deletions take effect at once
//! (the levId counter lives in Meta, so deleting the newest row cannot cause reuse), which
//! makes a batch exactly equivalent to applying its events one by one.

use heed::{PutFlags, RwTxn};

use super::keys::{self, LevId};
use super::manage::{Blocked, WriteBans};
use super::negtree::{TreeFilters, TreeOp};
use super::{dict, payload, record, Meta, Record, Result, Store};
use crate::nostr::filter::EventView;
use crate::nostr::hex;
use crate::nostr::kinds::{self, KindClass};
use crate::nostr::Event;
use crate::search::doc::Terms;

/// What happened to one event of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written(LevId),
    /// Already stored (or earlier in the same batch).
    Duplicate,
    /// A newer version of this replaceable/addressable event is stored.
    Replaced,
    /// Its author deleted it (NIP-09 tombstone), or a gift-wrap recipient did.
    Deleted,
    /// Ephemeral kinds are delivered live, never stored.
    Ephemeral,
    /// Refused by the `Management` table: a banned event or pubkey, or a kind the kind
    /// lists refuse (checked in the write transaction, so for every writer).
    Blocked(Blocked),
}

impl Outcome {
    /// The `OK` reply: (accepted, message) with strfry's strings.
    pub fn ok_reply(&self) -> (bool, std::borrow::Cow<'static, str>) {
        let fixed = |ok, s: &'static str| (ok, std::borrow::Cow::Borrowed(s));
        match self {
            Outcome::Written(_) => fixed(true, ""),
            Outcome::Duplicate => fixed(true, "duplicate: have this event"),
            Outcome::Replaced => fixed(false, "replaced: have newer event"),
            Outcome::Deleted => fixed(false, "deleted: user requested deletion"),
            Outcome::Ephemeral => fixed(false, "invalid: ephemeral events are not stored"),
            Outcome::Blocked(b) => (false, b.reason().into()),
        }
    }
}

fn is_gift_wrap(kind: u64) -> bool {
    kind == kinds::KIND_GIFT_WRAP || kind == kinds::KIND_EPHEMERAL_GIFT_WRAP
}

/// The fields that make an event's index rows.
pub(super) struct IndexedFields<'a> {
    id: [u8; 32],
    pubkey: [u8; 32],
    created_at: u64,
    kind: u64,
    expiration: Option<u64>,
    /// Packed (`PackedTags`), from the new event or the stored record.
    tags: &'a [u8],
}

impl Store {
    /// Writes a batch in one transaction and commits it; outcomes are in input order.
    /// On error (e.g. map full) nothing of the batch is written.
    pub fn write_batch(&self, events: &[Event]) -> Result<Vec<Outcome>> {
        let mut txn = self.write_txn()?;
        let out = self.write_events(&mut txn, events)?;
        txn.commit()?;
        Ok(out)
    }

    /// Applies the write rules to `events` inside `txn` (the caller commits).
    pub fn write_events(&self, txn: &mut RwTxn, events: &[Event]) -> Result<Vec<Outcome>> {
        self.write_events_with(txn, events, &[])
    }

    /// `write_events` where `terms[i]`, if there, is event i's search terms made by the
    /// caller (the relay's ingesters tokenize off the writer's thread); the rest are
    /// tokenized here. Whether an event is indexed is decided here, by `search.kinds`.
    pub fn write_events_with(
        &self,
        txn: &mut RwTxn,
        events: &[Event],
        terms: &[Option<Terms>],
    ) -> Result<Vec<Outcome>> {
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by(|&a, &b| {
            (events[a].created_at, events[a].id).cmp(&(events[b].created_at, events[b].id))
        });
        let mut meta = self.meta(txn)?;
        let mut outcomes = vec![Outcome::Duplicate; events.len()];
        let mut pending = Pending::new(self, txn)?;
        // Read in this transaction: a ban committed by any process before it began applies.
        let bans = self.write_bans(txn)?;
        for i in order {
            let t = terms.get(i).and_then(Option::as_ref);
            outcomes[i] = self.write_one(txn, &events[i], t, &bans, &mut meta, &mut pending)?;
        }
        pending.apply(self, txn)?;
        self.write_meta(txn, &meta)?;
        Ok(outcomes)
    }

    fn write_one(
        &self,
        txn: &mut RwTxn,
        ev: &Event,
        terms: Option<&Terms>,
        bans: &WriteBans,
        meta: &mut Meta,
        p: &mut Pending,
    ) -> Result<Outcome> {
        // Before the duplicate check, as the relay's ingester does: a banned author's
        // stored events are refused again, not counted as duplicates.
        if let Some(b) = bans.check(&ev.id, &ev.pubkey, ev.kind) {
            return Ok(Outcome::Blocked(b));
        }
        let class = ev.class();
        if class == KindClass::Ephemeral {
            return Ok(Outcome::Ephemeral);
        }
        // The id row is claimed first, in one B-tree walk that is both the duplicate check
        // (also within the batch: a written copy's row is already there) and the insert; the
        // rare event rejected below gives it back.
        let lev = meta.next_lev_id;
        let lk = keys::lev_key(lev);
        if self.t.id.get_or_put(txn, &ev.id, &lk)?.is_some() {
            return Ok(Outcome::Duplicate);
        }
        let outcome = self.write_new(txn, ev, terms, class, meta, p)?;
        if !matches!(outcome, Outcome::Written(_)) {
            self.t.id.delete(txn, &ev.id)?;
        }
        Ok(outcome)
    }

    /// `write_one` for an event that is not a duplicate and whose id row is already in.
    fn write_new(
        &self,
        txn: &mut RwTxn,
        ev: &Event,
        terms: Option<&Terms>,
        class: KindClass,
        meta: &mut Meta,
        p: &mut Pending,
    ) -> Result<Outcome> {
        if self.is_deleted(txn, &ev.id, &ev.pubkey)? {
            return Ok(Outcome::Deleted);
        }
        if is_gift_wrap(ev.kind) {
            for (name, value) in ev.packed_tags() {
                let Ok(p) = <&[u8; 32]>::try_from(value) else {
                    continue;
                };
                if name == b'p' && self.is_deleted(txn, &ev.id, p)? {
                    return Ok(Outcome::Deleted);
                }
            }
        }

        let address = matches!(class, KindClass::Replaceable | KindClass::Addressable)
            .then(|| keys::address_key(&ev.pubkey, ev.kind, ev.d_tag()));
        let mut superseded = None;
        if let Some(key) = &address {
            if let Some(deleted_until) = self
                .t
                .replace_deletion
                .get(txn, key)?
                .and_then(keys::read_u64)
            {
                if ev.created_at <= deleted_until {
                    return Ok(Outcome::Deleted);
                }
            }
            if let Some(old_lev) = self.t.replace.get(txn, key)?.and_then(keys::read_u64) {
                if let Some(old) = self.record(txn, old_lev)? {
                    // Newest created_at wins; on a tie the lowest id stays.
                    if (old.created_at(), std::cmp::Reverse(*old.id()))
                        > (ev.created_at, std::cmp::Reverse(ev.id))
                    {
                        return Ok(Outcome::Replaced);
                    }
                    superseded = Some(old_lev);
                }
            }
        }

        let lev = meta.next_lev_id;
        meta.next_lev_id += 1;
        self.insert(txn, ev, terms, lev, p)?;
        if let Some(old) = superseded {
            self.delete_lev(txn, old, p)?;
        }
        if let Some(key) = &address {
            self.t.replace.put(txn, key, &keys::lev_key(lev))?;
        }
        if ev.kind == kinds::KIND_DELETION {
            self.apply_deletion(txn, ev, lev, p)?;
        }
        Ok(Outcome::Written(lev))
    }

    fn insert(
        &self,
        txn: &mut RwTxn,
        ev: &Event,
        terms: Option<&Terms>,
        lev: LevId,
        p: &mut Pending,
    ) -> Result<()> {
        let lk = keys::lev_key(lev);
        // levIds only grow, so these rows always go at the end: APPEND skips the tree search
        // and fills pages completely instead of splitting them in half.
        self.t
            .event
            .put_with_flags(txn, PutFlags::APPEND, &lk, &record::encode(ev))?;
        // `events.compression`: the batch's dictionary, kept only when it saves space.
        let compressed = match &p.dict {
            Some(d) => d.compress_payload(ev.json(), dict::DEFAULT_LEVEL)?,
            None => None,
        };
        let value = match compressed {
            Some(c) => c,
            None => payload::encode_raw(ev.json()),
        };
        self.t
            .payload
            .put_with_flags(txn, PutFlags::APPEND, &lk, &value)?;
        self.index(p, &IndexedFields::of_event(ev), lev, true);
        p.tree_change(ev, true);
        self.search_insert(&mut p.search, p.search_kinds.as_deref(), ev, terms, lev);
        Ok(())
    }

    /// Records the adding (`add`) or removal of every scannable and expiration index row of
    /// one event; `Pending::apply` writes them, sorted, at the end of the batch. Nothing for
    /// an event a bulk load has not indexed yet (`bulk.rs`): it has no rows to remove, and
    /// the load's build adds them.
    pub(super) fn index(&self, p: &mut Pending, e: &IndexedFields<'_>, lev: LevId, add: bool) {
        if p.unindexed_from.is_some_and(|from| lev >= from) {
            return;
        }
        e.rows(lev, |table, parts| p.record(table, add, parts));
    }

    /// Removes one stored event and all its index rows; false if it was not there.
    pub(crate) fn delete_lev(&self, txn: &mut RwTxn, lev: LevId, p: &mut Pending) -> Result<bool> {
        let lk = keys::lev_key(lev);
        // A copy: the rows below are deleted while its fields are still in use.
        let Some(stored) = self.t.event.get(txn, &lk)?.map(<[u8]>::to_vec) else {
            return Ok(false);
        };
        let rec = Record::read(&stored)?;
        p.tree_change(&rec, false);
        let e = IndexedFields::of_stored(&rec);
        self.index(p, &e, lev, false);
        if self.t.id.get(txn, &e.id)?.and_then(keys::read_u64) == Some(lev) {
            self.t.id.delete(txn, &e.id)?;
        }
        if matches!(
            kinds::classify(e.kind),
            KindClass::Replaceable | KindClass::Addressable
        ) {
            let d = match kinds::classify(e.kind) {
                KindClass::Addressable => crate::nostr::tags::PackedTags(e.tags)
                    .find(|(n, _)| *n == b'd')
                    .and_then(|(_, v)| std::str::from_utf8(v).ok())
                    .unwrap_or(""),
                _ => "",
            };
            let key = keys::address_key(&e.pubkey, e.kind, d);
            if self.t.replace.get(txn, &key)?.and_then(keys::read_u64) == Some(lev) {
                self.t.replace.delete(txn, &key)?;
            }
        }
        // Before the payload goes: removal re-tokenizes it.
        self.search_remove(txn, &mut p.search, lev)?;
        self.t.payload.delete(txn, &lk)?;
        self.t.event.delete(txn, &lk)?;
        p.deleted += 1;
        Ok(true)
    }

    /// NIP-09: `e` tags delete the author's own events (and gift wraps addressed to the
    /// author) and leave tombstones; `a` tags delete every version up to the deletion's
    /// created_at of replaceable and addressable events and block older ones arriving later.
    fn apply_deletion(
        &self,
        txn: &mut RwTxn,
        ev: &Event,
        deletion_lev: LevId,
        p: &mut Pending,
    ) -> Result<()> {
        let dl = keys::lev_key(deletion_lev);
        for tag in ev.tags.iter().filter(|t| t.name() == "e") {
            let Some(target) = tag
                .value()
                .and_then(|v| hex::decode_any::<32>(v.as_bytes()))
            else {
                continue;
            };
            let mut tombstone = true;
            if let Some(lev) = self.lookup_id(txn, &target)? {
                if let Some(rec) = self.record(txn, lev)? {
                    let (kind, author) = (rec.kind(), *rec.pubkey());
                    let addressed = is_gift_wrap(kind)
                        && rec.packed_tags().any(|(n, v)| n == b'p' && v == ev.pubkey);
                    // A deletion of a deletion has no effect (NIP-09).
                    tombstone = kind != kinds::KIND_DELETION;
                    if tombstone && (author == ev.pubkey || addressed) {
                        self.delete_lev(txn, lev, p)?;
                    }
                }
            }
            if tombstone {
                self.t
                    .deletion
                    .put(txn, &keys::deletion_key(&target, &ev.pubkey), &dl)?;
            }
        }
        for addr in ev.deleted_addresses() {
            let d = match kinds::classify(addr.kind) {
                KindClass::Addressable => addr.d,
                KindClass::Replaceable => "",
                _ => continue,
            };
            let key = keys::address_key(&addr.pubkey, addr.kind, d);
            let prev = self
                .t
                .replace_deletion
                .get(txn, &key)?
                .and_then(keys::read_u64);
            if prev.is_none_or(|p| p < ev.created_at) {
                self.t
                    .replace_deletion
                    .put(txn, &key, &ev.created_at.to_be_bytes())?;
            }
            if let Some(lev) = self.t.replace.get(txn, &key)?.and_then(keys::read_u64) {
                if self
                    .record(txn, lev)?
                    .is_some_and(|r| r.created_at() <= ev.created_at)
                {
                    self.delete_lev(txn, lev, p)?;
                }
            }
        }
        Ok(())
    }

    /// Deletes every event whose NIP-40 expiration is ≤ `now`, `batch` to a transaction (so
    /// other writers get turns between them); returns how many.
    pub fn purge_all_expired(&self, now: u64, batch: usize) -> Result<usize> {
        // A batch of 0 would purge nothing and never end.
        let batch = batch.max(1);
        let mut total = 0;
        loop {
            let n = self.purge_expired(now, batch)?;
            total += n;
            if n < batch {
                return Ok(total);
            }
        }
    }

    /// Deletes up to `max` events whose NIP-40 expiration is ≤ `now`, in one transaction;
    /// returns how many. Call repeatedly until it returns less than `max`.
    pub fn purge_expired(&self, now: u64, max: usize) -> Result<usize> {
        let mut txn = self.write_txn()?;
        let mut due = Vec::new();
        for row in self.t.expiration.iter(&txn)? {
            let (k, _) = row?;
            match (keys::read_u64(k), k.get(8..).and_then(keys::read_u64)) {
                (Some(exp), Some(lev)) if exp <= now && due.len() < max => due.push((exp, lev)),
                _ => break,
            }
        }
        if due.is_empty() {
            // Nothing expired: the transaction ends unwritten (a commit would still write
            // Meta's page and fsync, every 9 s).
            return Ok(0);
        }
        let mut n = 0;
        let mut pending = Pending::new(self, &txn)?;
        for (exp, lev) in due {
            if self.delete_lev(&mut txn, lev, &mut pending)? {
                n += 1;
            } else {
                // A row whose event is gone would be found first by every later purge and
                // hold back the events that really expired behind it.
                self.t
                    .expiration
                    .delete(&mut txn, &keys::expiration_key(exp, lev))?;
            }
        }
        pending.apply(self, &mut txn)?;
        txn.commit()?;
        Ok(n)
    }
}

impl<'a> IndexedFields<'a> {
    fn of_event(ev: &'a Event) -> Self {
        IndexedFields {
            id: ev.id,
            pubkey: ev.pubkey,
            created_at: ev.created_at,
            kind: ev.kind,
            expiration: ev.expiration,
            tags: ev.packed_tags().0,
        }
    }

    /// Every scannable and expiration index row of this event stored at `lev`: its table
    /// and its key as parts to concatenate (the layouts of `keys.rs`).
    pub(super) fn rows(&self, lev: LevId, mut row: impl FnMut(IndexTable, &[&[u8]])) {
        let s = keys::suffix(self.created_at, &self.id, lev);
        let kind = self.kind.to_be_bytes();
        row(IndexTable::CreatedAt, &[&s]);
        row(IndexTable::Pubkey, &[&self.pubkey, &s]);
        row(IndexTable::Kind, &[&kind, &s]);
        row(IndexTable::PubkeyKind, &[&self.pubkey, &kind, &s]);
        for (name, value) in crate::nostr::tags::PackedTags(self.tags) {
            // The layout of `keys::tag_prefix`; longer values are never indexed.
            if let Ok(len) = u8::try_from(value.len()) {
                row(IndexTable::Tag, &[&[name, len], value, &s]);
            }
        }
        if let Some(exp) = self.expiration {
            row(IndexTable::Expiration, &[&keys::expiration_key(exp, lev)]);
        }
    }

    /// A stored event's fields, borrowing its tags from the record.
    pub(super) fn of_stored(r: &Record<'a>) -> IndexedFields<'a> {
        IndexedFields {
            id: *r.id(),
            pubkey: *r.pubkey(),
            created_at: r.created_at(),
            kind: r.kind(),
            expiration: r.expiration(),
            tags: r.tags_bytes(),
        }
    }
}

/// The scannable and expiration index tables, whose rows the write rules never read back,
/// so a batch can buffer them and write them once, sorted.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum IndexTable {
    CreatedAt,
    Pubkey,
    Kind,
    PubkeyKind,
    Tag,
    Expiration,
}

impl IndexTable {
    pub(super) const ALL: [IndexTable; 6] = [
        IndexTable::CreatedAt,
        IndexTable::Pubkey,
        IndexTable::Kind,
        IndexTable::PubkeyKind,
        IndexTable::Tag,
        IndexTable::Expiration,
    ];

    pub(super) fn db(self, store: &Store) -> super::Table {
        match self {
            IndexTable::CreatedAt => store.t.created_at,
            IndexTable::Pubkey => store.t.pubkey,
            IndexTable::Kind => store.t.kind,
            IndexTable::PubkeyKind => store.t.pubkey_kind,
            IndexTable::Tag => store.t.tag,
            IndexTable::Expiration => store.t.expiration,
        }
    }
}

/// Index rows to add or remove at the end of a batch. A row added and removed in the same
/// batch (an event superseded or deleted by a later one) cancels out and never reaches
/// LMDB; the rest are written in key order, which keeps each B-tree walk on pages that are
/// already hot. Keys live in one arena (no allocation per row) and are sorted once.
#[derive(Default)]
pub(crate) struct Pending {
    arena: Vec<u8>,
    rows: Vec<Row>,
    /// The stored negentropy trees and their filters, and the changes this batch makes to
    /// them (applied in order at the end, like the index rows).
    trees: TreeFilters,
    tree_ops: Vec<TreeOp>,
    /// The dictionary new events are compressed with (`events.compression`), looked up
    /// once per batch.
    dict: Option<std::sync::Arc<dict::Dictionary>>,
    /// The batch's search postings, and `search.kinds` read once per batch.
    search: super::search::SearchPending,
    search_kinds: Option<std::sync::Arc<super::search::KindSet>>,
    /// Events this batch removed: the DB's deletion count grows by as many
    /// ([`Store::deletions`]).
    deleted: u64,
    /// A bulk load's first levId not yet indexed (`Store::unindexed_from`): events from
    /// there on get no index rows in this batch.
    unindexed_from: Option<LevId>,
}

#[derive(Clone, Copy)]
struct Row {
    table: IndexTable,
    add: bool,
    start: usize,
    len: u16,
}

impl Pending {
    /// A batch's buffer, knowing the trees it must keep exact.
    pub(crate) fn new(store: &Store, txn: &heed::RoTxn) -> Result<Pending> {
        Ok(Pending {
            trees: store.tree_filters(txn)?,
            dict: store.batch_dictionary(txn)?,
            search_kinds: store.search_kinds(),
            unindexed_from: store.unindexed_from(txn)?,
            ..Pending::default()
        })
    }

    fn tree_change<E: EventView + ?Sized>(&mut self, ev: &E, add: bool) {
        for (tree, filter, except) in self.trees.iter() {
            if super::negtree::tree_holds(filter, except, ev) {
                self.tree_ops.push(TreeOp {
                    tree: *tree,
                    created_at: ev.created_at(),
                    id: *ev.id(),
                    add,
                });
            }
        }
    }

    /// Records one row whose key is the concatenation of `parts`.
    fn record(&mut self, table: IndexTable, add: bool, parts: &[&[u8]]) {
        let start = self.arena.len();
        for part in parts {
            self.arena.extend_from_slice(part);
        }
        self.rows.push(Row {
            table,
            add,
            start,
            // Keys are at most 2 + 255 + SUFFIX_LEN bytes.
            len: (self.arena.len() - start) as u16,
        });
    }

    fn key(&self, r: &Row) -> &[u8] {
        &self.arena[r.start..r.start + r.len as usize]
    }

    pub(crate) fn apply(mut self, store: &Store, txn: &mut RwTxn) -> Result<()> {
        let mut rows = std::mem::take(&mut self.rows);
        // For one key the addition sorts before its removal.
        rows.sort_unstable_by(|a, b| {
            a.table
                .cmp(&b.table)
                .then_with(|| self.key(a).cmp(self.key(b)))
                .then_with(|| b.add.cmp(&a.add))
        });
        // Keys end in a unique levId and an event is added at most once, so a removal
        // either cancels this batch's addition or removes a row already in the DB.
        let mut kept: Vec<Row> = Vec::with_capacity(rows.len());
        let mut i = 0;
        while i < rows.len() {
            let r = rows[i];
            if let Some(next) = rows.get(i + 1) {
                if r.add && !next.add && next.table == r.table && self.key(next) == self.key(&r) {
                    i += 2;
                    continue;
                }
            }
            kept.push(r);
            i += 1;
        }
        if self.deleted > 0 {
            store.add_deletions(txn, self.deleted)?;
        }
        store.apply_tree_ops(txn, &self.tree_ops)?;
        store.search_apply(txn, std::mem::take(&mut self.search))?;
        for table in kept.chunk_by(|a, b| a.table == b.table) {
            let db = table[0].table.db(store);
            for r in table.iter().filter(|r| !r.add) {
                db.delete(txn, self.key(r))?;
            }
            // The additions past the table's last key go in with MDB_APPEND: no tree walk,
            // and each page is filled before the next is started (a plain put at the end
            // splits the last page in half). Keys ending in created_at mostly land there,
            // and a bulk load's build (`bulk.rs`) writes every row so into empty tables.
            let last = db.last(txn)?.map(|(k, _)| k.to_vec());
            // One cursor for all of a table's additions, in key order: LMDB skips the walk
            // from the root when the next key still falls on the cursor's leaf page.
            let mut cursor = db.iter_mut(txn)?;
            for r in table.iter().filter(|r| r.add) {
                let key = self.key(r);
                let flags = match &last {
                    Some(l) if key <= l.as_slice() => PutFlags::empty(),
                    _ => PutFlags::APPEND,
                };
                // SAFETY: nothing borrowed from the database is held across the put; key
                // and value come from the arena and a constant.
                unsafe { cursor.put_current_with_options::<heed::types::Bytes>(flags, key, &[])? };
            }
        }
        Ok(())
    }
}
