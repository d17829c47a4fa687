//! The event store: one LMDB environment (heed) with strfry's table set. No sockets; the
//! relay stages and the CLI commands drive it.
//!
//! Tables (all keys big-endian; layouts in `keys.rs` and ARCHITECTURE.md):
//! `Event` levId → packed record, `EventPayload` levId → `0x00‖json` or
//! `0x01‖dictId‖zstd` (`payload.rs`, `dict.rs`), the scannable indexes
//! `created_at pubkey kind pubkeyKind tag` (keys ending in the 24-byte suffix), the lookup
//! indexes `id deletion expiration replace replaceDeletion`, and `Meta`,
//! `CompressionDictionary`, `NegentropyFilter`, `NegentropyTree`, and `Management`
//! (access control and NIP-86 state, `manage.rs`).

pub mod archive;
pub mod bulk;
pub mod check;
pub mod dict;
pub mod keys;
pub mod manage;
pub mod negtree;
pub mod payload;
pub mod query;
pub mod record;
pub mod retention;
pub mod search;
pub mod write;

#[rustfmt::skip]
#[allow(clippy::all, clippy::pedantic, unsafe_op_in_unsafe_fn, mismatched_lifetime_syntaxes)]
mod records_generated;

use std::fmt;
use std::path::{Path, PathBuf};

use flatbuffers::FlatBufferBuilder;
use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};

pub use keys::LevId;
pub use record::Record;
pub(crate) use records_generated::wok::store::fb;

/// On-disk format version (wok's own; strfry's DBs are moved with export/import).
pub const DB_VERSION: u64 = 1;

#[derive(Debug)]
pub enum StoreError {
    /// The map is full: the batch was rolled back; the DB is intact.
    MapFull,
    /// The disk is full or another I/O error: the batch was rolled back.
    Io(String),
    /// A stored value could not be read.
    Corrupt(String),
    /// The DB was made by an incompatible version or machine.
    Version(String),
    /// A payload is compressed with a zstd dictionary that is not in the DB.
    MissingDictionary(u32),
    /// Events from this levId have no index rows yet (`bulk.rs`): what is derived from the
    /// indexes (a negentropy tree build) must wait.
    Unindexed(LevId),
    Lmdb(heed::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::MapFull => write!(
                f,
                "database map is full (dbParams.mapsize): the write was rolled back; raise mapsize and restart"
            ),
            StoreError::Io(e) => write!(f, "database I/O error (disk full?): {e}"),
            StoreError::Corrupt(e) => write!(f, "corrupt database value: {e}"),
            StoreError::Version(e) => write!(f, "{e}"),
            StoreError::Unindexed(from) => write!(
                f,
                "events from levId {from} are not indexed yet (an import into an empty DB writes their index rows at its end); try again once it has ended"
            ),
            StoreError::MissingDictionary(id) => write!(
                f,
                "an event is compressed with zstd dictionary {id}, which is not in the database (was the CompressionDictionary table lost?)"
            ),
            StoreError::Lmdb(e) => write!(f, "LMDB error: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<heed::Error> for StoreError {
    fn from(e: heed::Error) -> Self {
        match e {
            heed::Error::Mdb(heed::MdbError::MapFull) => StoreError::MapFull,
            heed::Error::Io(io) => StoreError::Io(io.to_string()),
            other => StoreError::Lmdb(other),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Environment settings (`db`, `dbParams.*`).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub map_size: u64,
    pub max_readers: u32,
    pub no_read_ahead: bool,
    /// `events.compression`: store new events compressed with the newest dictionary.
    pub compress_new_events: bool,
    /// The restricted read kinds: a new DB gets, beside tree 1 (`{}`), a public tree that
    /// leaves them out, so unauthenticated `{}` syncs need not collect the whole DB.
    pub restricted_kinds: Vec<u64>,
    /// `search.kinds`: kinds of new events added to the search index (`None`: none).
    pub search_kinds: Option<search::KindSet>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            map_size: 10_995_116_277_760,
            max_readers: 256,
            no_read_ahead: false,
            compress_new_events: false,
            restricted_kinds: Vec::new(),
            // The config's default, so every writer (tests, tools) indexes alike.
            search_kinds: search_kinds_of(&crate::config::Config::default()),
        }
    }
}

impl StoreOptions {
    pub fn from_config(cfg: &crate::config::Config) -> StoreOptions {
        StoreOptions {
            map_size: cfg.db_params.mapsize,
            max_readers: u32::try_from(cfg.db_params.maxreaders).unwrap_or(u32::MAX),
            no_read_ahead: cfg.db_params.no_read_ahead,
            compress_new_events: cfg.events.compression,
            restricted_kinds: crate::relay::auth::restricted_kinds(cfg),
            search_kinds: search_kinds_of(cfg),
        }
    }
}

/// `search.kinds` as a set (an unparsable list indexes nothing; `config check` reports it).
pub fn search_kinds_of(cfg: &crate::config::Config) -> Option<search::KindSet> {
    if !cfg.search.enabled {
        return None;
    }
    search::KindSet::parse(&cfg.search.kinds)
        .ok()
        .filter(|k| !k.0.is_empty())
}

type Table = Database<Bytes, Bytes>;
/// The tables keyed by levId alone (`Event`, `EventPayload`).
type LevTable = Database<Bytes, Bytes, LevKeyOrder>;

/// levId keys (8 bytes, big-endian) compared as integers: exactly the order of LMDB's
/// default byte comparison, so existing files, other processes and tools agree, without a
/// `memcmp` call per comparison. Every query reads a record (and a sent event its payload)
/// by levId, and the B-tree search was most of that: a COUNT over 10k reactions spent a
/// quarter of its time in `memcmp` (`cargo bench --bench search`, perf).
pub enum LevKeyOrder {}

impl heed::Comparator for LevKeyOrder {
    fn compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
        match (<[u8; 8]>::try_from(a), <[u8; 8]>::try_from(b)) {
            (Ok(x), Ok(y)) => u64::from_be_bytes(x).cmp(&u64::from_be_bytes(y)),
            _ => a.cmp(b),
        }
    }
}
type KeyValue<'t> = (&'t [u8], &'t [u8]);

/// Every table of the environment.
#[derive(Clone, Copy)]
pub(crate) struct Tables {
    pub event: LevTable,
    pub payload: LevTable,
    pub created_at: Table,
    pub id: Table,
    pub pubkey: Table,
    pub kind: Table,
    pub pubkey_kind: Table,
    pub tag: Table,
    pub deletion: Table,
    pub expiration: Table,
    pub replace: Table,
    pub replace_deletion: Table,
    pub meta: Table,
    pub dictionary: Table,
    pub negentropy_filter: Table,
    pub negentropy_tree: Table,
    pub management: Table,
}

const TABLE_NAMES: [&str; 17] = [
    "Event",
    "EventPayload",
    "Event__created_at",
    "Event__id",
    "Event__pubkey",
    "Event__kind",
    "Event__pubkeyKind",
    "Event__tag",
    "Event__deletion",
    "Event__expiration",
    "Event__replace",
    "Event__replaceDeletion",
    "Meta",
    "CompressionDictionary",
    "NegentropyFilter",
    "NegentropyTree",
    "Management",
];

/// The open store. Cheap to share by reference across threads (LMDB is MVCC: readers
/// never block and never see a half-written batch).
pub struct Store {
    env: Env<WithoutTls>,
    pub(crate) t: Tables,
    /// The NIP-50 search index tables (`search.rs`).
    pub(crate) s: search::SearchTables,
    /// `search.kinds` (live).
    search_kinds: std::sync::RwLock<Option<std::sync::Arc<search::KindSet>>>,
    path: PathBuf,
    /// `negtree::Store::tree_filters`: (modification counter, parsed tree filters).
    tree_cache: std::sync::Mutex<Option<(u64, negtree::TreeFilters)>>,
    /// Prepared zstd dictionaries by dictId (rows never change once written).
    dicts: dict::DictCache,
    /// `events.compression` (live).
    compress_new: std::sync::atomic::AtomicBool,
    /// `manage::Store::write_bans`: the write-side bans at the last generation read.
    ban_cache: std::sync::Mutex<Option<std::sync::Arc<manage::WriteBans>>>,
}

/// Durable facts about the DB, kept in the `Meta` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub db_version: u64,
    pub next_lev_id: LevId,
    pub negentropy_modification_counter: u64,
}

const META_KEY: &[u8] = b"meta";
/// Meta row: the number of events ever removed ([`Store::deletions`]), u64 BE.
const DELETIONS_KEY: &[u8] = b"deletions";
/// Meta rows of mesh links' positions: this prefix, then the link's identity.
const LINK_PREFIX: &[u8] = b"link\0";

impl Store {
    /// Opens (creating if needed) the environment in directory `dir`.
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("{}: {e}", dir.display())))?;
        let mut eo = EnvOpenOptions::new().read_txn_without_tls();
        eo.map_size(usize::try_from(opts.map_size).unwrap_or(usize::MAX))
            .max_readers(opts.max_readers)
            .max_dbs((TABLE_NAMES.len() + search::TABLE_NAMES.len()) as u32 + 8);
        if opts.no_read_ahead {
            // SAFETY: NO_READAHEAD only changes the kernel's read-ahead advice.
            unsafe {
                eo.flags(EnvFlags::NO_READ_AHEAD);
            }
        }
        // SAFETY: heed requires that the same file is not opened twice in one process with
        // different options and that no one truncates it under us; wok opens each DB once.
        let env = unsafe { eo.open(dir) }?;
        let mut wtxn = env.write_txn()?;
        let mut dbs = Vec::with_capacity(TABLE_NAMES.len());
        for name in TABLE_NAMES {
            dbs.push(env.create_database::<Bytes, Bytes>(&mut wtxn, Some(name))?);
        }
        let by_lev = |name: &str, wtxn: &mut RwTxn| {
            env.database_options()
                .types::<Bytes, Bytes>()
                .key_comparator::<LevKeyOrder>()
                .name(name)
                .create(wtxn)
        };
        let t = Tables {
            event: by_lev(TABLE_NAMES[0], &mut wtxn)?,
            payload: by_lev(TABLE_NAMES[1], &mut wtxn)?,
            created_at: dbs[2],
            id: dbs[3],
            pubkey: dbs[4],
            kind: dbs[5],
            pubkey_kind: dbs[6],
            tag: dbs[7],
            deletion: dbs[8],
            expiration: dbs[9],
            replace: dbs[10],
            replace_deletion: dbs[11],
            meta: dbs[12],
            dictionary: dbs[13],
            negentropy_filter: dbs[14],
            negentropy_tree: dbs[15],
            management: dbs[16],
        };
        let s = search::SearchTables::create(&env, &mut wtxn)?;
        let store = Store {
            env: env.clone(),
            t,
            s,
            search_kinds: std::sync::RwLock::new(
                opts.search_kinds.clone().map(std::sync::Arc::new),
            ),
            path: dir.to_path_buf(),
            tree_cache: std::sync::Mutex::new(None),
            dicts: dict::DictCache::default(),
            compress_new: std::sync::atomic::AtomicBool::new(opts.compress_new_events),
            ban_cache: std::sync::Mutex::new(None),
        };
        match store.read_meta(&wtxn)? {
            None => {
                store.write_meta(
                    &mut wtxn,
                    &Meta {
                        db_version: DB_VERSION,
                        next_lev_id: 1,
                        negentropy_modification_counter: 1,
                    },
                )?;
                // Tree 1 = `{}` on a new DB, as strfry; empty, so already complete.
                store.t.negentropy_filter.put(
                    &mut wtxn,
                    &keys::lev_key(1),
                    &record::encode_negentropy_filter("{}"),
                )?;
                store
                    .t
                    .negentropy_tree
                    .put(&mut wtxn, &negtree::built_key(1), &[])?;
                // Tree 2: what a reader without AUTH may see, when some kinds are restricted.
                if !opts.restricted_kinds.is_empty() {
                    store.t.negentropy_filter.put(
                        &mut wtxn,
                        &keys::lev_key(2),
                        &record::encode_negentropy_filter(&negtree::tree_text(
                            "{}",
                            &opts.restricted_kinds,
                        )),
                    )?;
                    store
                        .t
                        .negentropy_tree
                        .put(&mut wtxn, &negtree::built_key(2), &[])?;
                }
            }
            Some(m) if m.db_version != DB_VERSION => {
                return Err(StoreError::Version(format!(
                    "{}: database version {} but this wok reads version {DB_VERSION}; move the data with export and import",
                    dir.display(),
                    m.db_version
                )));
            }
            Some(_) => {}
        }
        wtxn.commit()?;
        store.finish_interrupted_bulk_load()?;
        Ok(store)
    }

    /// Closes the environment and waits until LMDB has released it, so the same directory
    /// can be opened again in this process.
    pub fn close(self) {
        let Store { env, .. } = self;
        env.prepare_for_closing().wait();
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn env(&self) -> &Env<WithoutTls> {
        &self.env
    }

    pub fn read_txn(&self) -> Result<RoTxn<'_, WithoutTls>> {
        Ok(self.env.read_txn()?)
    }

    pub fn write_txn(&self) -> Result<RwTxn<'_>> {
        Ok(self.env.write_txn()?)
    }

    /// From here on this process's commits sync their data pages but not the meta page
    /// that points at them (LMDB's `MDB_NOMETASYNC`): a crash may undo the last commits,
    /// never leave a torn one, and each commit waits for one sync instead of two. For a
    /// bulk load that calls [`Store::sync`] before it reports success (`wok import`).
    /// Call it before other threads use the store (LMDB's rule for changing flags).
    pub fn defer_meta_sync(&self) -> Result<()> {
        // SAFETY: NOMETASYNC keeps every commit atomic and consistent (it only delays
        // durability); the caller sets it before any other thread uses the environment.
        unsafe {
            self.env
                .set_flags(heed::EnvFlags::NO_META_SYNC, heed::FlagSetMode::Enable)?;
        }
        Ok(())
    }

    /// Makes every commit so far durable (`mdb_env_sync`, forced).
    pub fn sync(&self) -> Result<()> {
        Ok(self.env.force_sync()?)
    }

    pub fn read_meta(&self, txn: &RoTxn) -> Result<Option<Meta>> {
        let Some(buf) = self.t.meta.get(txn, META_KEY)? else {
            return Ok(None);
        };
        let m = flatbuffers::root::<fb::Meta>(buf)
            .map_err(|e| StoreError::Corrupt(format!("meta: {e}")))?;
        if m.endianness() != 1 {
            return Err(StoreError::Version(
                "database was written on a machine of another byte order".into(),
            ));
        }
        Ok(Some(Meta {
            db_version: m.db_version(),
            next_lev_id: m.next_lev_id(),
            negentropy_modification_counter: m.negentropy_modification_counter(),
        }))
    }

    pub(crate) fn write_meta(&self, txn: &mut RwTxn, m: &Meta) -> Result<()> {
        let mut b = FlatBufferBuilder::with_capacity(64);
        let row = fb::Meta::create(
            &mut b,
            &fb::MetaArgs {
                db_version: m.db_version,
                endianness: u64::from(cfg!(target_endian = "little")),
                next_lev_id: m.next_lev_id,
                negentropy_modification_counter: m.negentropy_modification_counter,
            },
        );
        b.finish(row, None);
        self.t.meta.put(txn, META_KEY, b.finished_data())?;
        Ok(())
    }

    /// A mesh link's saved position (`mesh::stream`): when it was last known to receive
    /// everything live, and the levId up to which its sent events were acknowledged.
    pub fn link_position(&self, txn: &RoTxn, link: &str) -> Result<Option<(u64, LevId)>> {
        let key = [LINK_PREFIX, link.as_bytes()].concat();
        Ok(self
            .t
            .meta
            .get(txn, &key)?
            .and_then(|v| Some((keys::read_u64(v.get(..8)?)?, keys::read_u64(v.get(8..16)?)?))))
    }

    /// Saves a mesh link's position, in a transaction of its own (the link's process is
    /// the DB's writer for the events it downloads, too).
    pub fn save_link_position(&self, link: &str, alive_at: u64, acked: LevId) -> Result<()> {
        let key = [LINK_PREFIX, link.as_bytes()].concat();
        let mut val = [0u8; 16];
        val[..8].copy_from_slice(&alive_at.to_be_bytes());
        val[8..].copy_from_slice(&acked.to_be_bytes());
        let mut txn = self.write_txn()?;
        self.t.meta.put(&mut txn, &key, &val)?;
        txn.commit()?;
        Ok(())
    }

    pub fn meta(&self, txn: &RoTxn) -> Result<Meta> {
        self.read_meta(txn)?
            .ok_or_else(|| StoreError::Corrupt("missing Meta row".into()))
    }

    /// How many events have ever been removed from this DB (replaced, deleted, expired,
    /// pruned, banned), counted in the transaction that removes them: two snapshots with
    /// the same count hold the same events up to the older one's last levId, so an answer
    /// computed for the older (a cached COUNT) can be extended by the newer events alone.
    pub fn deletions(&self, txn: &RoTxn) -> Result<u64> {
        Ok(self
            .t
            .meta
            .get(txn, DELETIONS_KEY)?
            .and_then(keys::read_u64)
            .unwrap_or(0))
    }

    pub(crate) fn add_deletions(&self, txn: &mut RwTxn, n: u64) -> Result<()> {
        let total = self.deletions(txn)?.saturating_add(n);
        self.t.meta.put(txn, DELETIONS_KEY, &total.to_be_bytes())?;
        Ok(())
    }

    /// The highest levId assigned so far (0 when empty): a REQ's snapshot bound.
    pub fn latest_lev_id(&self, txn: &RoTxn) -> Result<LevId> {
        Ok(self.meta(txn)?.next_lev_id.saturating_sub(1))
    }

    /// [`Store::latest_lev_id`] in a read transaction of its own: the snapshot a new query
    /// or live subscription starts from.
    pub fn snapshot(&self) -> Result<LevId> {
        let txn = self.read_txn()?;
        self.latest_lev_id(&txn)
    }

    /// The packed record of `lev`, if it exists.
    pub fn record<'t>(&self, txn: &'t RoTxn, lev: LevId) -> Result<Option<Record<'t>>> {
        match self.t.event.get(txn, &keys::lev_key(lev))? {
            Some(buf) => Record::read(buf).map(Some),
            None => Ok(None),
        }
    }

    /// The event JSON of `lev`, decompressed if it is stored compressed (borrowed from the
    /// map otherwise). Every reader goes through here; a payload whose dictionary is gone is
    /// `StoreError::MissingDictionary`.
    pub fn payload<'t>(
        &self,
        txn: &'t RoTxn,
        lev: LevId,
    ) -> Result<Option<std::borrow::Cow<'t, [u8]>>> {
        match self.t.payload.get(txn, &keys::lev_key(lev))? {
            Some(buf) => self.decode_payload(txn, buf).map(Some),
            None => Ok(None),
        }
    }

    /// levId of a stored event by id.
    pub fn lookup_id(&self, txn: &RoTxn, id: &[u8; 32]) -> Result<Option<LevId>> {
        Ok(self.t.id.get(txn, id)?.and_then(keys::read_u64))
    }

    /// Has `pubkey` deleted the event `id` (a NIP-09 tombstone)? Such an event is refused
    /// if it comes again.
    pub fn is_deleted(&self, txn: &RoTxn, id: &[u8; 32], pubkey: &[u8; 32]) -> Result<bool> {
        Ok(self
            .t
            .deletion
            .get(txn, &keys::deletion_key(id, pubkey))?
            .is_some())
    }

    /// Number of stored events.
    pub fn count(&self, txn: &RoTxn) -> Result<u64> {
        Ok(self.t.event.len(txn)?)
    }

    /// Per-table entry counts and bytes (`wok info`).
    pub fn table_stats(&self, txn: &RoTxn) -> Result<Vec<(&'static str, u64, u64)>> {
        let mut out = Vec::with_capacity(TABLE_NAMES.len() + 3);
        let size = |s: heed::DatabaseStat| {
            let pages = (s.branch_pages + s.leaf_pages + s.overflow_pages) as u64;
            (s.entries as u64, pages * u64::from(s.page_size))
        };
        for (name, db) in TABLE_NAMES.iter().zip([self.t.event, self.t.payload]) {
            let (n, bytes) = size(db.stat(txn)?);
            out.push((*name, n, bytes));
        }
        let all = [
            self.t.created_at,
            self.t.id,
            self.t.pubkey,
            self.t.kind,
            self.t.pubkey_kind,
            self.t.tag,
            self.t.deletion,
            self.t.expiration,
            self.t.replace,
            self.t.replace_deletion,
            self.t.meta,
            self.t.dictionary,
            self.t.negentropy_filter,
            self.t.negentropy_tree,
            self.t.management,
        ];
        let search = [self.s.blocks, self.s.docs, self.s.meta];
        for (name, db) in TABLE_NAMES[2..]
            .iter()
            .zip(all)
            .chain(search::TABLE_NAMES.iter().zip(search))
        {
            let (n, bytes) = size(db.stat(txn)?);
            out.push((*name, n, bytes));
        }
        Ok(out)
    }
}

impl Store {
    /// levIds by created_at within `[since, until]`, oldest first (newest first when
    /// `reverse`); events of the same second come in id order (ascending, or descending when
    /// `reverse`). For `export`; the read transaction stays open for the whole walk.
    pub fn by_created_at<'t>(
        &self,
        txn: &'t RoTxn,
        since: u64,
        until: u64,
        reverse: bool,
    ) -> Result<impl Iterator<Item = Result<LevId>> + 't> {
        let (lo, hi) = keys::suffix_bounds(since, until);
        let range = (
            std::ops::Bound::Included(&lo[..]),
            std::ops::Bound::Included(&hi[..]),
        );
        let walk: Box<dyn Iterator<Item = heed::Result<KeyValue<'t>>> + 't> = if reverse {
            Box::new(self.t.created_at.rev_range(txn, &range)?)
        } else {
            Box::new(self.t.created_at.range(txn, &range)?)
        };
        let mut walk = walk
            .map(|row| {
                let (k, _) = row?;
                keys::parse_suffix(k)
                    .ok_or_else(|| StoreError::Corrupt("created_at index key".into()))
            })
            .peekable();
        // Keys hold the id prefix complemented (keys.rs), so either walk meets each second's
        // ids in the opposite of the order we want: collect each second and pop it backwards.
        let mut group: Vec<LevId> = Vec::new();
        Ok(std::iter::from_fn(move || {
            if let Some(lev) = group.pop() {
                return Some(Ok(lev));
            }
            let (ca, lev) = match walk.next()? {
                Ok(x) => x,
                Err(e) => return Some(Err(e)),
            };
            group.push(lev);
            while let Some(Ok((next_ca, next_lev))) = walk.peek() {
                if *next_ca != ca {
                    break;
                }
                group.push(*next_lev);
                walk.next();
            }
            group.pop().map(Ok)
        }))
    }

    /// Deletes the given events (and their index rows) in one transaction, without
    /// tombstones (`wok delete`: they can be imported again). Returns how many existed.
    pub fn delete_batch(&self, levs: &[LevId]) -> Result<usize> {
        let mut txn = self.write_txn()?;
        let n = self.delete_levs(&mut txn, levs)?;
        txn.commit()?;
        Ok(n)
    }

    /// Deletes stored events by levId inside `txn` (one already gone is skipped), every
    /// index, negentropy tree and search posting with it; returns how many were deleted.
    pub fn delete_levs(&self, txn: &mut RwTxn, levs: &[LevId]) -> Result<usize> {
        let mut n = 0;
        let mut pending = write::Pending::new(self, txn)?;
        for &lev in levs {
            n += usize::from(self.delete_lev(txn, lev, &mut pending)?);
        }
        pending.apply(self, txn)?;
        Ok(n)
    }

    /// Like `delete_levs`, in a transaction nested in `parent`: a failure (a full map,
    /// say) undoes only these deletions and leaves `parent`'s writes to commit.
    pub fn delete_levs_nested(&self, parent: &mut RwTxn, levs: &[LevId]) -> Result<usize> {
        let mut child = self.env.nested_write_txn(parent)?;
        let n = self.delete_levs(&mut child, levs)?;
        child.commit()?;
        Ok(n)
    }

    /// Every stored levId, ascending (tests and brute-force checks; not a hot path).
    pub fn all_lev_ids(&self, txn: &RoTxn) -> Result<Vec<LevId>> {
        let mut out = Vec::new();
        for row in self.t.event.iter(txn)? {
            let (k, _) = row?;
            if let Some(lev) = keys::read_u64(k) {
                out.push(lev);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests;
