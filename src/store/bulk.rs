//! Bulk loads into an empty DB (`wok import`, a move from strfry): the scannable index rows
//! (created_at, pubkey, kind, pubkeyKind, tag, expiration) are left out while the events go
//! in and written at the end, sorted, with MDB_APPEND into the empty tables.
//!
//! Why: each batch's rows land all over those B-trees, so once the DB outgrows a few
//! batches nearly every index page is copied and written again by every batch; a 100k-event
//! import spent a third of its writer in those walks and copies, and for a large DB it is
//! most of the time. Built at the end, each page is written once and full.
//!
//! Kept safe by one Meta row, `unindexed-from` = the first levId without rows: every event
//! from there on has none, every one before has all of its own. Every write transaction
//! reads it (`Pending::new`), so a relay or another command writing meanwhile keeps the rule
//! too, and the build moves it forward in the same transactions that add the rows. The
//! events are stored and duplicates detected all along (the id, replace and deletion tables
//! stay live); REQs do not see them until the build.
//!
//! The negentropy trees are left to the end as well (`Store::unbuild_trees`), listed in the
//! Meta row `trees-deferred` until they are built.
//!
//! The load holds an exclusive `flock` on `wok-bulk.lock` in the DB directory until its
//! build ends. A process that opens the DB and finds either row with the lock free knows
//! the load died (kill -9, a crash, power loss) and builds the rows and trees itself
//! (`Store::open`).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use heed::RoTxn;

use super::keys::{self, LevId};
use super::negtree::TreeId;
use super::write::{IndexTable, IndexedFields};
use super::{Record, Result, Store, StoreError};

/// The Meta row: first levId whose events have no index rows, u64 BE.
pub(super) const UNINDEXED_KEY: &[u8] = b"unindexed-from";
/// The Meta row: the trees a bulk load left unbuilt for its end, u64 BE each.
const TREES_KEY: &[u8] = b"trees-deferred";
/// Held by the loading process (`flock`), next to `data.mdb`.
pub const LOCK_FILE: &str = "wok-bulk.lock";
/// Bytes of keys per build transaction: bounds the build's memory (these keys, and about as
/// much again in LMDB's dirty pages until the commit) whatever the DB's size: ~2M rows of
/// a typical mix, ~250k events. Later pieces put keys among earlier ones (no APPEND), each
/// page still written once a piece.
const BUILD_BYTES: usize = if cfg!(test) { 4 << 10 } else { 128 << 20 };
// Never an empty piece: each build transaction indexes an event and moves the marker on.
const _: () = assert!(BUILD_BYTES > 0);

/// A running bulk load: the lock that tells other processes it is alive.
pub struct BulkLoad {
    _lock: File,
    /// The first levId the load did not index.
    pub from: LevId,
    /// The trees left for its end (`Store::build_deferred_trees`).
    pub trees: Vec<TreeId>,
}

/// Takes the directory's bulk-load lock without waiting; None if another process holds it.
fn try_lock(dir: &Path) -> std::io::Result<Option<File>> {
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(LOCK_FILE))?;
    // SAFETY: flock on a descriptor this function owns; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(Some(f));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(None)
    } else {
        Err(e)
    }
}

impl Store {
    /// The first levId whose events have no index rows yet (a bulk load's), if any.
    pub fn unindexed_from(&self, txn: &RoTxn) -> Result<Option<LevId>> {
        Ok(self
            .t
            .meta
            .get(txn, UNINDEXED_KEY)?
            .and_then(keys::read_u64))
    }

    /// The trees a bulk load left for its end and has not built yet.
    pub fn deferred_trees(&self, txn: &RoTxn) -> Result<Vec<TreeId>> {
        Ok(self
            .t
            .meta
            .get(txn, TREES_KEY)?
            .map(|v| v.chunks_exact(8).filter_map(keys::read_u64).collect())
            .unwrap_or_default())
    }

    /// Starts a bulk load if the DB holds no event and no other process loads it: from
    /// here on new events get no index rows until [`Store::build_deferred_indexes`], and
    /// the built trees are emptied until [`Store::build_deferred_trees`]. None (a plain
    /// import, rows and trees written with each batch) otherwise.
    pub fn begin_bulk_load(&self) -> Result<Option<BulkLoad>> {
        // A DB holding events needs no lock file (checked again under the write lock).
        let txn = self.read_txn()?;
        if self.count(&txn)? > 0 {
            return Ok(None);
        }
        drop(txn);
        let lock = match try_lock(&self.path) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(e) => {
                log::warn!(
                    "{}: cannot take {LOCK_FILE} ({e}); indexing as events go in",
                    self.path.display()
                );
                return Ok(None);
            }
        };
        let mut txn = self.write_txn()?;
        if self.t.event.len(&txn)? > 0 || self.unindexed_from(&txn)?.is_some() {
            return Ok(None);
        }
        let from = self.meta(&txn)?.next_lev_id;
        self.t
            .meta
            .put(&mut txn, UNINDEXED_KEY, &keys::lev_key(from))?;
        let trees = self.unbuild_trees(&mut txn)?;
        if !trees.is_empty() {
            let ids: Vec<u8> = trees.iter().flat_map(|t| t.to_be_bytes()).collect();
            self.t.meta.put(&mut txn, TREES_KEY, &ids)?;
        }
        txn.commit()?;
        Ok(Some(BulkLoad {
            _lock: lock,
            from,
            trees,
        }))
    }

    /// Writes the index rows of every event from `unindexed-from` on, a bounded piece per
    /// transaction, and removes the row with the last piece; returns how many events were
    /// indexed. `progress` gets the running count after each piece.
    pub fn build_deferred_indexes(&self, progress: &mut dyn FnMut(u64)) -> Result<u64> {
        let mut indexed = 0u64;
        loop {
            let mut txn = self.write_txn()?;
            let Some(from) = self.unindexed_from(&txn)? else {
                return Ok(indexed);
            };
            let started = std::time::Instant::now();
            let mut piece = Keys::default();
            let mut next = None;
            let start = keys::lev_key(from);
            for row in self.t.event.range(
                &txn,
                &(
                    std::ops::Bound::Included(&start[..]),
                    std::ops::Bound::Unbounded,
                ),
            )? {
                let (k, v) = row?;
                let lev = keys::read_u64(k)
                    .ok_or_else(|| StoreError::Corrupt("Event key of the wrong size".into()))?;
                if piece.bytes >= BUILD_BYTES {
                    next = Some(lev);
                    break;
                }
                IndexedFields::of_stored(&Record::read(v)?)
                    .rows(lev, |table, parts| piece.push(table, parts));
                indexed += 1;
            }
            let generated = started.elapsed();
            piece.write(self, &mut txn)?;
            let written = started.elapsed();
            match next {
                Some(lev) => self
                    .t
                    .meta
                    .put(&mut txn, UNINDEXED_KEY, &keys::lev_key(lev))?,
                None => {
                    self.t.meta.delete(&mut txn, UNINDEXED_KEY)?;
                }
            }
            txn.commit()?;
            log::debug!(
                "index piece up to {indexed} events: keys {} ms, sorted and put {} ms, commit {} ms",
                generated.as_millis(),
                (written - generated).as_millis(),
                (started.elapsed() - written).as_millis()
            );
            progress(indexed);
            if next.is_none() {
                return Ok(indexed);
            }
        }
    }

    /// Builds the trees a bulk load left for its end (those still registered), all in one
    /// transaction that also removes their Meta row; returns each with its size. Only once
    /// the load's index rows are written: a tree is built from the created_at index.
    pub fn build_deferred_trees(&self) -> Result<Vec<(TreeId, u64)>> {
        let mut txn = self.write_txn()?;
        let deferred = self.deferred_trees(&txn)?;
        if deferred.is_empty() {
            return Ok(Vec::new());
        }
        let registered: Vec<TreeId> = self.trees(&txn)?.iter().map(|t| t.0).collect();
        let mut built = Vec::with_capacity(deferred.len());
        for tree in deferred {
            // Removed meanwhile, or built by hand (`wok negentropy build`) and kept exact
            // by the writes since.
            if registered.contains(&tree) && !self.tree_built(&txn, tree)? {
                built.push((tree, self.build_tree_in(&mut txn, tree, &mut |_| {})?));
            }
        }
        self.t.meta.delete(&mut txn, TREES_KEY)?;
        txn.commit()?;
        Ok(built)
    }

    /// At open: a bulk load that left events unindexed or trees unbuilt and no longer holds
    /// its lock died before its end; finish it now, so queries see every stored event and
    /// NEG-OPENs get the trees. While the load still runs, it does so itself.
    pub(super) fn finish_interrupted_bulk_load(&self) -> Result<()> {
        let (from, trees) = {
            let txn = self.read_txn()?;
            (self.unindexed_from(&txn)?, self.deferred_trees(&txn)?)
        };
        if from.is_none() && trees.is_empty() {
            return Ok(());
        }
        let dir = self.path.display();
        let _lock = match try_lock(&self.path) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                log::info!(
                    "{dir}: an import is loading this DB; its events are answered once it \
                     has indexed them"
                );
                return Ok(());
            }
            Err(e) => {
                log::error!(
                    "{dir}: an import stopped early (events from levId {from:?} not indexed, \
                     trees {trees:?} not built) and {LOCK_FILE} cannot be taken ({e}); \
                     queries miss those events until a `wok` command that can write this \
                     directory opens the DB"
                );
                return Ok(());
            }
        };
        // Neither step is fatal: the DB stays usable (a full map or disk is what fails here,
        // as it failed the import), and the next open tries again.
        if let Some(from) = from {
            log::warn!(
                "{dir}: a bulk import stopped before indexing its events (from levId \
                 {from}); indexing them now"
            );
            let started = std::time::Instant::now();
            match self.build_deferred_indexes(&mut |_| {}) {
                Ok(n) => log::warn!(
                    "{dir}: indexed {n} events in {} ms",
                    started.elapsed().as_millis()
                ),
                Err(e) => {
                    log::error!(
                        "{dir}: indexing the interrupted import's events failed: {e}; \
                         queries miss them until a later open succeeds"
                    );
                    return Ok(());
                }
            }
        }
        if !trees.is_empty() {
            let started = std::time::Instant::now();
            match self.build_deferred_trees() {
                Ok(built) => log::warn!(
                    "{dir}: built the negentropy trees an interrupted import left, {built:?} \
                     (tree, events), in {} ms",
                    started.elapsed().as_millis()
                ),
                Err(e) => log::error!(
                    "{dir}: building the trees {trees:?} an interrupted import left failed: \
                     {e}; NEG-OPENs are answered without them until a later open succeeds"
                ),
            }
        }
        Ok(())
    }
}

/// A piece's index keys, grouped into runs of equal length (each fixed-layout table; the
/// tag table per tag name and value length, which is also its key order) and stored inline,
/// zero-padded to a size class: the sort then moves keys through memory in order. Sorted
/// as positions into one arena, each comparison and each put read its key at random, ~180
/// ns a key in a 60 MB arena, and the build took as long as the batches it replaced.
#[derive(Default)]
struct Keys {
    fixed: [Option<Run>; 6],
    tags: std::collections::BTreeMap<(u8, u8), Run>,
    bytes: usize,
}

impl Keys {
    fn push(&mut self, table: IndexTable, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let run = match table {
            // The tag layout starts `name ‖ len`.
            IndexTable::Tag => {
                let head = parts.first().copied().unwrap_or_default();
                let (name, vlen) = (head.first().copied(), head.get(1).copied());
                self.tags
                    .entry((name.unwrap_or(0), vlen.unwrap_or(0)))
                    .or_insert_with(|| Run::new(len))
            }
            t => self.fixed[t as usize].get_or_insert_with(|| Run::new(len)),
        };
        self.bytes += run.push(parts);
    }

    /// Sorts each run and writes it in key order, with MDB_APPEND past the table's last key.
    /// The tag runs (most of the keys) are sorted on a second thread meanwhile: the import's
    /// verifiers have ended, so a core is free.
    fn write(self, store: &Store, txn: &mut heed::RwTxn) -> Result<()> {
        let Keys {
            mut fixed,
            mut tags,
            ..
        } = self;
        std::thread::scope(|s| {
            let sorter = s.spawn(|| {
                tags.values_mut().for_each(Run::sort);
                tags
            });
            for run in fixed.iter_mut().flatten() {
                run.sort();
            }
            let mut sorter = Some(sorter);
            let mut tags = None;
            for table in IndexTable::ALL {
                let runs: Vec<&Run> = match table {
                    IndexTable::Tag => {
                        if let Some(h) = sorter.take() {
                            tags = Some(h.join().map_err(|_| {
                                StoreError::Corrupt("the index sort panicked".into())
                            })?);
                        }
                        tags.iter().flat_map(|t| t.values()).collect()
                    }
                    t => fixed[t as usize].iter().collect(),
                };
                write_runs(store, txn, table, &runs)?;
            }
            Ok(())
        })
    }
}

/// Writes sorted runs, which follow each other in key order, into `table`.
fn write_runs(
    store: &Store,
    txn: &mut heed::RwTxn,
    table: IndexTable,
    runs: &[&Run],
) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let db = table.db(store);
    let last = db.last(txn)?.map(|(k, _)| k.to_vec());
    let mut cursor = db.iter_mut(txn)?;
    for run in runs {
        let mut err = None;
        run.each(|key| {
            if err.is_some() {
                return;
            }
            let flags = match &last {
                Some(l) if key <= l.as_slice() => heed::PutFlags::empty(),
                _ => heed::PutFlags::APPEND,
            };
            // SAFETY: nothing borrowed from the database is held across the put.
            if let Err(e) =
                unsafe { cursor.put_current_with_options::<heed::types::Bytes>(flags, key, &[]) }
            {
                err = Some(e);
            }
        });
        if let Some(e) = err {
            return Err(e.into());
        }
    }
    Ok(())
}

/// Keys of one length, inline in the smallest size class that holds them.
enum Run {
    K16(usize, Vec<[u8; 16]>),
    K32(usize, Vec<[u8; 32]>),
    K64(usize, Vec<[u8; 64]>),
    K128(usize, Vec<[u8; 128]>),
    K288(usize, Vec<[u8; 288]>),
}

/// Byte order, compared 8 bytes at a time as big-endian numbers, inline: the arrays' own
/// `Ord` is a `memcmp` call per comparison, and keys sharing a 32-byte pubkey or tag value
/// make those long (they were two fifths of the build's sort-and-put time).
fn by_words<const N: usize>(a: &[u8; N], b: &[u8; N]) -> std::cmp::Ordering {
    let word = |k: &[u8; N], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&k[i..i + 8]);
        u64::from_be_bytes(w)
    };
    (0..N / 8)
        .map(|i| word(a, i * 8).cmp(&word(b, i * 8)))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// Zero padding keeps the order of equal-length keys.
fn padded<const N: usize>(parts: &[&[u8]]) -> [u8; N] {
    let mut k = [0u8; N];
    let mut at = 0;
    for p in parts {
        let end = (at + p.len()).min(N);
        k[at..end].copy_from_slice(&p[..end - at]);
        at = end;
    }
    k
}

impl Run {
    fn new(len: usize) -> Run {
        match len {
            0..=16 => Run::K16(len, Vec::new()),
            17..=32 => Run::K32(len, Vec::new()),
            33..=64 => Run::K64(len, Vec::new()),
            65..=128 => Run::K128(len, Vec::new()),
            _ => Run::K288(len, Vec::new()),
        }
    }

    /// Adds a key of the run's length; returns the bytes it holds.
    fn push(&mut self, parts: &[&[u8]]) -> usize {
        match self {
            Run::K16(_, v) => v.push(padded(parts)),
            Run::K32(_, v) => v.push(padded(parts)),
            Run::K64(_, v) => v.push(padded(parts)),
            Run::K128(_, v) => v.push(padded(parts)),
            Run::K288(_, v) => v.push(padded(parts)),
        }
        self.class()
    }

    fn class(&self) -> usize {
        match self {
            Run::K16(..) => 16,
            Run::K32(..) => 32,
            Run::K64(..) => 64,
            Run::K128(..) => 128,
            Run::K288(..) => 288,
        }
    }

    fn sort(&mut self) {
        match self {
            Run::K16(_, v) => v.sort_unstable_by(by_words),
            Run::K32(_, v) => v.sort_unstable_by(by_words),
            Run::K64(_, v) => v.sort_unstable_by(by_words),
            Run::K128(_, v) => v.sort_unstable_by(by_words),
            Run::K288(_, v) => v.sort_unstable_by(by_words),
        }
    }

    fn each(&self, mut f: impl FnMut(&[u8])) {
        match self {
            Run::K16(n, v) => v.iter().for_each(|k| f(&k[..*n])),
            Run::K32(n, v) => v.iter().for_each(|k| f(&k[..*n])),
            Run::K64(n, v) => v.iter().for_each(|k| f(&k[..*n])),
            Run::K128(n, v) => v.iter().for_each(|k| f(&k[..*n])),
            Run::K288(n, v) => v.iter().for_each(|k| f(&k[..*n])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nostr::Event;
    use crate::store::tests::{ev, key, temp_store};
    use crate::store::StoreOptions;

    /// Notes with tags of every size class, replaceable and addressable versions that
    /// supersede earlier batches' ones, deletions of earlier batches' events and future
    /// expirations, in input order.
    fn mix(n: u64) -> Vec<Event> {
        let long = "r".repeat(100);
        let longer = "u".repeat(200);
        let mut out: Vec<Event> = Vec::new();
        for i in 0..n {
            let k = key((i % 4) as u8 + 1);
            let at = 1_700_000_000 + (i * 7919) % 5_000;
            let e = match i % 10 {
                0 => ev(&k, at, 0, &[], &format!("profile {i}")),
                1 => ev(
                    &k,
                    at,
                    30023,
                    &[vec!["d", &format!("a{}", i % 3)]],
                    "article",
                ),
                2 if i > 40 => {
                    // One of this author's notes from an earlier batch.
                    let target = out
                        .iter()
                        .rev()
                        .skip(30)
                        .find(|e| e.kind == 1 && e.pubkey == k.pubkey)
                        .map(|e| e.id_hex())
                        .unwrap_or_default();
                    ev(&k, at + 10_000, 5, &[vec!["e", &target]], "")
                }
                3 => ev(&k, at, 1, &[vec!["expiration", "4000000000"]], "later"),
                4 => ev(&k, at, 1, &[vec!["r", &long], vec!["u", &longer]], "links"),
                _ => {
                    let p = crate::nostr::hex::encode(&key((i % 7) as u8 + 1).pubkey);
                    ev(
                        &k,
                        at,
                        1,
                        &[vec!["p", &p], vec!["t", "nostr"]],
                        &format!("{i}"),
                    )
                }
            };
            out.push(e);
        }
        out
    }

    fn rows(s: &Store) -> Vec<Vec<Vec<u8>>> {
        let txn = s.read_txn().expect("txn");
        IndexTable::ALL
            .iter()
            .map(|t| {
                t.db(s)
                    .iter(&txn)
                    .expect("iter")
                    .map(|r| r.expect("row").0.to_vec())
                    .collect()
            })
            .collect()
    }

    fn write_all(s: &Store, evs: &[Event]) {
        for chunk in evs.chunks(50) {
            s.write_batch(chunk).expect("write");
        }
    }

    fn consistent(s: &Store) {
        let txn = s.read_txn().expect("txn");
        assert_eq!(
            s.check_consistency(&txn).expect("check"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_bulk_load_ends_with_the_rows_its_batches_would_have_written() {
        let evs = mix(600);
        let (_a, plain) = temp_store();
        write_all(&plain, &evs);
        let (_b, s) = temp_store();
        let load = s.begin_bulk_load().expect("defer").expect("empty DB");
        write_all(&s, &evs);
        // Stored (and deletions, replacements applied) but without a row yet.
        assert!(rows(&s).iter().all(Vec::is_empty));
        assert_eq!(
            s.count(&s.read_txn().expect("txn")).expect("count"),
            plain.count(&plain.read_txn().expect("txn")).expect("count")
        );
        consistent(&s);
        let mut pieces = 0;
        let n = s
            .build_deferred_indexes(&mut |_| pieces += 1)
            .expect("build");
        // Several pieces: the later ones put keys below a table's last one.
        assert!(pieces > 3, "{pieces} pieces");
        assert_eq!(n, s.count(&s.read_txn().expect("txn")).expect("count"));
        let (want, got) = (rows(&plain), rows(&s));
        assert!(want[4].iter().any(|k| k.len() > 128), "long tag keys");
        assert!(want.iter().all(|t| !t.is_empty()));
        assert_eq!(got, want);
        assert_eq!(
            s.unindexed_from(&s.read_txn().expect("txn")).expect("row"),
            None
        );
        consistent(&s);
        // The rows of later batches go in as usual.
        let more = [ev(&key(9), 1_700_000_001, 1, &[], "after")];
        plain.write_batch(&more).expect("write");
        s.write_batch(&more).expect("write");
        assert_eq!(rows(&s), rows(&plain));
        drop(load);
    }

    #[test]
    fn keys_compare_as_bytes() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        assert_eq!(by_words(&a, &b), std::cmp::Ordering::Equal);
        for (i, x) in [(15, 1u8), (8, 0x80), (7, 1), (0, 0xff)] {
            b[i] = x;
            assert_eq!(by_words(&a, &b), a.cmp(&b), "{a:?} {b:?}");
            a[i] = x.wrapping_add(1);
            assert_eq!(by_words(&a, &b), a.cmp(&b), "{a:?} {b:?}");
            assert_eq!(by_words(&b, &a), b.cmp(&a));
        }
    }

    #[test]
    fn no_tree_is_built_from_an_unfinished_load() {
        let (_d, s) = temp_store();
        let load = s.begin_bulk_load().expect("defer").expect("empty");
        write_all(&s, &mix(30));
        let err = s.build_tree(1).expect_err("refused");
        assert!(
            matches!(err, StoreError::Unindexed(f) if f == load.from),
            "{err}"
        );
        s.build_deferred_indexes(&mut |_| {}).expect("build");
        let n = s.build_tree(1).expect("built");
        assert_eq!(n, s.count(&s.read_txn().expect("txn")).expect("count"));
    }

    #[test]
    fn only_an_empty_db_and_one_process_at_a_time_defer() {
        let (_d, s) = temp_store();
        let load = s.begin_bulk_load().expect("defer").expect("empty");
        assert!(s.begin_bulk_load().expect("defer").is_none());
        drop(load);
        let (e, full) = temp_store();
        full.write_batch(&mix(1)).expect("write");
        assert!(full.begin_bulk_load().expect("defer").is_none());
        // A plain import leaves no lock file in the DB's directory.
        assert!(!e.path().join(LOCK_FILE).exists());
    }

    #[test]
    fn the_next_open_indexes_what_a_dead_load_left() {
        let evs = mix(200);
        let (dir, s) = temp_store();
        let load = s.begin_bulk_load().expect("defer").expect("empty");
        write_all(&s, &evs);
        // The load is alive (its lock is held): an open leaves the rows to it.
        s.finish_interrupted_bulk_load().expect("open check");
        assert_eq!(
            s.unindexed_from(&s.read_txn().expect("txn")).expect("row"),
            Some(load.from)
        );
        assert!(load.trees.contains(&1), "{:?}", load.trees);
        // The load dies without building; the next open builds the rows and the trees, as
        // batches would have kept them.
        drop(load);
        let s = reopen(s, &dir);
        let txn = s.read_txn().expect("txn");
        assert_eq!(s.unindexed_from(&txn).expect("row"), None);
        assert_eq!(
            s.t.created_at.len(&txn).expect("len"),
            s.count(&txn).expect("count")
        );
        drop(txn);
        consistent(&s);
        same_tree_as_batches(&s, &evs);
    }

    /// Killed after its rows but before its trees: the next open builds the trees.
    #[test]
    fn the_next_open_builds_the_trees_a_dead_load_left() {
        let evs = mix(200);
        let (dir, s) = temp_store();
        let load = s.begin_bulk_load().expect("defer").expect("empty");
        write_all(&s, &evs);
        s.build_deferred_indexes(&mut |_| {}).expect("rows");
        drop(load);
        let txn = s.read_txn().expect("txn");
        assert_eq!(
            s.tree_for(&txn, &crate::nostr::Filter::all())
                .expect("tree"),
            None
        );
        drop(txn);
        let s = reopen(s, &dir);
        let txn = s.read_txn().expect("txn");
        assert_eq!(s.deferred_trees(&txn).expect("row"), Vec::<TreeId>::new());
        drop(txn);
        same_tree_as_batches(&s, &evs);
    }

    fn reopen(s: Store, dir: &tempfile::TempDir) -> Store {
        let opts = StoreOptions {
            map_size: 1 << 30,
            ..StoreOptions::from_config(&crate::config::Config::default())
        };
        s.close();
        Store::open(dir.path(), &opts).expect("reopen")
    }

    /// Tree 1 (`{}`) is built, and holds what it would after writing `evs` batch by batch.
    fn same_tree_as_batches(s: &Store, evs: &[Event]) {
        let (_d, plain) = temp_store();
        write_all(&plain, evs);
        let summary = |s: &Store| {
            let txn = s.read_txn().expect("txn");
            assert_eq!(
                s.tree_for(&txn, &crate::nostr::Filter::all())
                    .expect("tree"),
                Some(1)
            );
            crate::store::negtree::tree_summary(s, &txn, 1).expect("summary")
        };
        assert_eq!(summary(s), summary(&plain));
    }
}
