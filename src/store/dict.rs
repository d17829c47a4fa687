//! zstd dictionaries: the `CompressionDictionary` rows, a per-store cache of prepared
//! dictionaries, per-thread zstd contexts, training, and the batch rewrite behind
//! `dict compress` / `dict decompress`.
//!
//! A dictionary row is immutable once written (rows are only ever added), so a prepared
//! dictionary is cached by dictId for the life of the store and shared by every thread.
//! Contexts (DCtx, CCtx) are per thread: they hold scratch memory zstd would otherwise
//! allocate per call.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use flatbuffers::FlatBufferBuilder;
use heed::RoTxn;
use zstd::zstd_safe::{self, CCtx, CDict, DCtx, DDict};

use super::keys::{self, LevId};
use super::{fb, payload, Result, Store, StoreError};

/// dictIds are u32 in payloads (`0x01‖dictId(u32 LE)‖zstd`).
pub type DictId = u32;

/// The level new events are compressed at when `events.compression` is on (zstd's default,
/// and `dict compress`'s).
pub const DEFAULT_LEVEL: i32 = 3;

/// Largest JSON a frame may claim to hold: a corrupt frame header must not make us
/// allocate gigabytes (events are at most `events.maxEventSize`, 64 KiB by default).
const MAX_DECOMPRESSED: usize = 64 << 20;

/// A stored dictionary, prepared for decompression (and, on first use, for compression).
pub struct Dictionary {
    pub id: DictId,
    raw: Vec<u8>,
    ddict: DDict<'static>,
    /// Prepared once per level on first compression (the writer uses one level; `dict
    /// compress --level` another), since preparing costs far more than compressing an event.
    cdicts: RwLock<Vec<(i32, Arc<CDict<'static>>)>>,
}

impl Dictionary {
    fn new(id: DictId, raw: Vec<u8>) -> Result<Dictionary> {
        let ddict = DDict::try_create(&raw)
            .ok_or_else(|| StoreError::Corrupt(format!("zstd dictionary {id} cannot be loaded")))?;
        Ok(Dictionary {
            id,
            raw,
            ddict,
            cdicts: RwLock::default(),
        })
    }

    /// The dictionary as stored.
    pub fn bytes(&self) -> &[u8] {
        &self.raw
    }

    pub fn len(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Decompresses one frame made with this dictionary, in this thread's DCtx.
    pub fn decompress(&self, frame: &[u8]) -> Result<Vec<u8>> {
        let bad = |what: &str| {
            StoreError::Corrupt(format!("zstd payload (dictionary {}): {what}", self.id))
        };
        // Frames we (and strfry) write carry their size; otherwise grow until it fits.
        let (mut cap, known) = match zstd_safe::get_frame_content_size(frame) {
            Ok(Some(n)) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                if n > MAX_DECOMPRESSED {
                    return Err(bad("frame claims an oversized content"));
                }
                (n, true)
            }
            Ok(None) => (frame.len().saturating_mul(4).max(1024), false),
            Err(_) => return Err(bad("not a zstd frame")),
        };
        with_dctx(|dctx| loop {
            let mut out = Vec::with_capacity(cap);
            match dctx.decompress_using_ddict(&mut out, frame, &self.ddict) {
                Ok(_) => return Ok(out),
                Err(code) if !known && cap < MAX_DECOMPRESSED && is_dst_too_small(code) => {
                    cap = cap.saturating_mul(2).min(MAX_DECOMPRESSED);
                }
                Err(code) => return Err(bad(zstd_safe::get_error_name(code))),
            }
        })?
    }

    /// Compresses `json` into a whole payload `0x01‖dictId‖zstd`, or `None` when that would
    /// not save more than the 4-byte dictId (strfry's rule: compressed + 4 < original).
    pub fn compress_payload(&self, json: &[u8], level: i32) -> Result<Option<Vec<u8>>> {
        let cdict = self.cdict(level)?;
        let cdict = &*cdict;
        with_cctx(|cctx, scratch| {
            scratch.clear();
            scratch.reserve(zstd_safe::compress_bound(json.len()));
            let n = cctx
                .compress_using_cdict(&mut *scratch, json, cdict)
                .map_err(|code| {
                    StoreError::Corrupt(format!(
                        "zstd compression failed: {}",
                        zstd_safe::get_error_name(code)
                    ))
                })?;
            if n + 4 >= json.len() {
                return Ok(None);
            }
            let mut out = Vec::with_capacity(5 + n);
            out.push(payload::ZSTD_DICT);
            out.extend_from_slice(&self.id.to_le_bytes());
            out.extend_from_slice(&scratch[..n]);
            Ok(Some(out))
        })?
    }
}

impl Dictionary {
    fn cdict(&self, level: i32) -> Result<Arc<CDict<'static>>> {
        let cached = |v: &Vec<(i32, Arc<CDict<'static>>)>| {
            v.iter().find(|(l, _)| *l == level).map(|(_, c)| c.clone())
        };
        let found = match self.cdicts.read() {
            Ok(v) => cached(&v),
            Err(p) => cached(&p.into_inner()),
        };
        if let Some(c) = found {
            return Ok(c);
        }
        let c = Arc::new(CDict::try_create(&self.raw, level).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "zstd dictionary {} cannot be prepared for compression",
                self.id
            ))
        })?);
        match self.cdicts.write() {
            Ok(mut v) => v.push((level, c.clone())),
            Err(p) => p.into_inner().push((level, c.clone())),
        }
        Ok(c)
    }
}

fn is_dst_too_small(code: usize) -> bool {
    // ZSTD_error_dstSize_tooSmall; compared by name so it does not depend on zstd-sys's
    // enum layout.
    zstd_safe::get_error_name(code).contains("Destination buffer is too small")
}

thread_local! {
    static DCTX: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
    static CCTX: RefCell<Option<(CCtx<'static>, Vec<u8>)>> = const { RefCell::new(None) };
}

fn with_dctx<T>(f: impl FnOnce(&mut DCtx<'static>) -> T) -> Result<T> {
    DCTX.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| StoreError::Corrupt("zstd context re-entered".into()))?;
        if slot.is_none() {
            *slot = DCtx::try_create();
        }
        let dctx = slot
            .as_mut()
            .ok_or_else(|| StoreError::Io("cannot allocate a zstd context".into()))?;
        Ok(f(dctx))
    })
}

fn with_cctx<T>(f: impl FnOnce(&mut CCtx<'static>, &mut Vec<u8>) -> T) -> Result<T> {
    CCTX.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| StoreError::Corrupt("zstd context re-entered".into()))?;
        if slot.is_none() {
            *slot = CCtx::try_create().map(|c| (c, Vec::new()));
        }
        let (cctx, scratch) = slot
            .as_mut()
            .ok_or_else(|| StoreError::Io("cannot allocate a zstd context".into()))?;
        Ok(f(cctx, scratch))
    })
}

/// Prepared dictionaries by dictId, shared by every thread of one store.
#[derive(Default)]
pub(crate) struct DictCache {
    map: RwLock<HashMap<DictId, Arc<Dictionary>>>,
}

impl DictCache {
    fn get(&self, id: DictId) -> Option<Arc<Dictionary>> {
        match self.map.read() {
            Ok(m) => m.get(&id).cloned(),
            Err(p) => p.into_inner().get(&id).cloned(),
        }
    }

    fn insert(&self, d: Arc<Dictionary>) {
        match self.map.write() {
            Ok(mut m) => m.insert(d.id, d),
            Err(p) => p.into_inner().insert(d.id, d),
        };
    }
}

/// Trains a dictionary of at most `max_size` bytes on `samples` (ZDICT).
pub fn train(samples: &[u8], sizes: &[usize], max_size: usize) -> Result<Vec<u8>> {
    if sizes.is_empty() {
        return Err(StoreError::Corrupt("no samples to train on".into()));
    }
    zstd::dict::from_continuous(samples, sizes, max_size)
        .map_err(|e| StoreError::Corrupt(format!("zstd training failed: {e}")))
}

/// What a payload rewrite did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recoded {
    /// Events rewritten (those that vanished meanwhile are not counted).
    pub events: u64,
    /// Of which stored compressed.
    pub compressed: u64,
    /// JSON bytes of the rewritten events.
    pub json_bytes: u64,
    /// Stored payload bytes after the rewrite (without the type byte of raw rows, as strfry
    /// counts them).
    pub stored_bytes: u64,
}

impl Store {
    /// The prepared dictionary `id` (cached; rows never change once written).
    pub fn dictionary(&self, txn: &RoTxn, id: DictId) -> Result<Arc<Dictionary>> {
        if let Some(d) = self.dicts.get(id) {
            return Ok(d);
        }
        let Some(row) = self.t.dictionary.get(txn, &keys::lev_key(u64::from(id)))? else {
            return Err(StoreError::MissingDictionary(id));
        };
        let fbd = flatbuffers::root::<fb::CompressionDictionary>(row)
            .map_err(|e| StoreError::Corrupt(format!("dictionary {id}: {e}")))?;
        let d = Arc::new(Dictionary::new(id, fbd.dict().bytes().to_vec())?);
        self.dicts.insert(d.clone());
        Ok(d)
    }

    /// Every stored dictId with its size in bytes, ascending.
    pub fn dictionaries(&self, txn: &RoTxn) -> Result<Vec<(DictId, usize)>> {
        let mut out = Vec::new();
        for row in self.t.dictionary.iter(txn)? {
            let (k, v) = row?;
            let id = keys::read_u64(k)
                .and_then(|id| DictId::try_from(id).ok())
                .ok_or_else(|| StoreError::Corrupt("dictionary key".into()))?;
            let len = flatbuffers::root::<fb::CompressionDictionary>(v)
                .map_err(|e| StoreError::Corrupt(format!("dictionary {id}: {e}")))?
                .dict()
                .len();
            out.push((id, len));
        }
        Ok(out)
    }

    /// The highest dictId (the newest dictionary), if any.
    pub fn newest_dictionary(&self, txn: &RoTxn) -> Result<Option<DictId>> {
        match self.t.dictionary.last(txn)? {
            Some((k, _)) => keys::read_u64(k)
                .and_then(|id| DictId::try_from(id).ok())
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt("dictionary key".into())),
            None => Ok(None),
        }
    }

    /// Stores a new dictionary in its own transaction; returns its dictId (1, 2, …).
    pub fn add_dictionary(&self, dict: &[u8]) -> Result<DictId> {
        // Refuse what zstd cannot load now rather than when the first event needs it.
        DDict::try_create(dict)
            .ok_or_else(|| StoreError::Corrupt("the trained dictionary cannot be loaded".into()))?;
        let mut txn = self.write_txn()?;
        let id = self.newest_dictionary(&txn)?.unwrap_or(0);
        let id = id
            .checked_add(1)
            .ok_or_else(|| StoreError::Corrupt("no dictIds left".into()))?;
        let mut b = FlatBufferBuilder::with_capacity(dict.len() + 64);
        let v = b.create_vector(dict);
        let row = fb::CompressionDictionary::create(
            &mut b,
            &fb::CompressionDictionaryArgs { dict: Some(v) },
        );
        b.finish(row, None);
        self.t
            .dictionary
            .put(&mut txn, &keys::lev_key(u64::from(id)), b.finished_data())?;
        txn.commit()?;
        Ok(id)
    }

    /// The stored payload of `lev` as it is on disk (no decompression).
    pub fn raw_payload<'t>(&self, txn: &'t RoTxn, lev: LevId) -> Result<Option<&'t [u8]>> {
        Ok(self.t.payload.get(txn, &keys::lev_key(lev))?)
    }

    /// Rewrites the payloads of `levs` in one write transaction: compressed with `to`
    /// (dictionary, level) where that saves space, else (and when `to` is `None`) raw.
    /// Events deleted meanwhile are skipped. Each JSON is byte-identical afterwards.
    pub fn recode_payloads(
        &self,
        levs: &[LevId],
        to: Option<(&Dictionary, i32)>,
    ) -> Result<Recoded> {
        let mut txn = self.write_txn()?;
        let mut r = Recoded::default();
        for &lev in levs {
            let lk = keys::lev_key(lev);
            let Some(old) = self.t.payload.get(&txn, &lk)? else {
                continue;
            };
            let json = self.decode_payload(&txn, old)?.into_owned();
            let new = match to {
                Some((dict, level)) => dict.compress_payload(&json, level)?,
                None => None,
            };
            r.events += 1;
            r.json_bytes += json.len() as u64;
            let new = match new {
                Some(c) => {
                    r.compressed += 1;
                    r.stored_bytes += (c.len() - 1) as u64;
                    c
                }
                None => {
                    r.stored_bytes += json.len() as u64;
                    payload::encode_raw(&json)
                }
            };
            self.t.payload.put(&mut txn, &lk, &new)?;
        }
        txn.commit()?;
        Ok(r)
    }

    /// Decodes a stored payload, loading its dictionary if it is compressed.
    pub(crate) fn decode_payload<'a>(
        &self,
        txn: &RoTxn,
        buf: &'a [u8],
    ) -> Result<std::borrow::Cow<'a, [u8]>> {
        payload::decode(buf, |id| self.dictionary(txn, id))
    }

    /// Whether new events are stored compressed with the newest dictionary
    /// (`events.compression`).
    pub fn compress_new_events(&self) -> bool {
        self.compress_new.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Turns `events.compression` on or off (live: the next write batch follows it).
    pub fn set_compress_new_events(&self, on: bool) {
        self.compress_new
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The dictionary a write batch compresses new events with, if compression is on and a
    /// dictionary exists.
    pub(crate) fn batch_dictionary(&self, txn: &RoTxn) -> Result<Option<Arc<Dictionary>>> {
        if !self.compress_new_events() {
            return Ok(None);
        }
        match self.newest_dictionary(txn)? {
            Some(id) => self.dictionary(txn, id).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> (Vec<u8>, Vec<usize>) {
        let mut data = Vec::new();
        let mut sizes = Vec::new();
        for i in 0..2000u32 {
            let s = format!(
                r#"{{"id":"{:064x}","pubkey":"{:064x}","created_at":{},"kind":1,"tags":[["p","{:064x}"]],"content":"hello number {} from the dictionary test","sig":"{:0128x}"}}"#,
                u64::from(i) * 7919,
                i % 17,
                1_700_000_000 + i,
                i % 5,
                i,
                i
            );
            sizes.push(s.len());
            data.extend_from_slice(s.as_bytes());
        }
        (data, sizes)
    }

    #[test]
    fn train_compress_decompress_round_trip() {
        let (data, sizes) = samples();
        let raw = train(&data, &sizes, 16_384).expect("train");
        let d = Dictionary::new(7, raw).expect("load");
        let json = &data[..sizes[0]];
        let p = d
            .compress_payload(json, DEFAULT_LEVEL)
            .expect("compress")
            .expect("smaller");
        assert_eq!(p[0], payload::ZSTD_DICT);
        assert_eq!(&p[1..5], &7u32.to_le_bytes());
        assert!(p.len() < json.len() / 2, "{} vs {}", p.len(), json.len());
        let back = payload::decode(&p, |id| {
            assert_eq!(id, 7);
            Ok(Arc::new(Dictionary::new(7, d.raw.clone())?))
        })
        .expect("decode");
        assert_eq!(&back[..], json);
        // Another level than the cached CDict's works too.
        let p19 = d.compress_payload(json, 19).expect("c").expect("smaller");
        assert_eq!(d.decompress(&p19[5..]).expect("d"), json);
    }

    #[test]
    fn tiny_json_stays_raw_and_garbage_is_an_error() {
        let (data, sizes) = samples();
        let d = Dictionary::new(1, train(&data, &sizes, 8192).expect("train")).expect("load");
        assert_eq!(d.compress_payload(b"{}", DEFAULT_LEVEL).expect("c"), None);
        assert!(d.decompress(b"not zstd at all").is_err());
        // A frame cut short is an error, not a panic.
        let p = d
            .compress_payload(&data[..sizes[0]], DEFAULT_LEVEL)
            .expect("c")
            .expect("smaller");
        assert!(d.decompress(&p[5..p.len() - 3]).is_err());
        assert!(train(&[], &[], 1000).is_err());
    }
}
