//! `wok import`: JSONL events from stdin into the store.
//!
//! Pipeline: one reader thread cuts stdin into chunks of whole lines (big reads, no
//! per-line syscalls); `available_parallelism()` workers parse, validate and verify (id and
//! signature) the lines of a chunk; the calling thread is the single writer. It puts the
//! chunks back in input order and commits whatever is ready, up to `--write-batch` events
//! per transaction (group commit: it never waits for a batch to fill). The channels are
//! bounded, so memory stays bounded however large the input is.
//!
//! As in strfry there is no created_at window (imports are history). Differences, on
//! purpose: an oversize line is reported and skipped (strfry aborts), the last line counts
//! without a trailing newline (strfry drops it), `--fried` lines are imported by stripping
//! the `fried` member and parsing the JSON (wok does not read strfry's PackedEvent),
//! `--debounce-millis` is ignored (group commit instead), and an event already stored is a
//! duplicate before its signature is checked (strfry verifies first).

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use heed::{RoTxn, WithoutTls};
use wok::nostr::jsonl::{self, Line};
use wok::nostr::kinds::KindClass;
use wok::nostr::{verify, Event, Invalid, JsonParser, Limits};
use wok::search::doc::Terms;
use wok::store::bulk::BulkLoad;
use wok::store::write::Outcome;
use wok::store::Store;

use super::progress::{Progress, Total};
use super::Globals;

/// Bytes of input per chunk handed to a worker (whole lines; a chunk holds one very long
/// line whole when a line is longer than this).
const CHUNK_BYTES: usize = 256 << 10;
/// Smallest read when filling a chunk.
const MIN_READ: usize = 64 << 10;
/// Checked chunks that may wait for the writer (~16 MiB of input). While the writer commits,
/// this is where the next batch accumulates: a deeper queue means fewer, larger commits.
const DONE_QUEUE: usize = 64;
/// How often the summary is logged while importing without a progress bar.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Log every rejected event with its reason
    #[arg(long)]
    show_rejected: bool,
    /// Skip the id and signature checks (the JSON and the event structure are still checked)
    #[arg(long)]
    no_verify: bool,
    /// Most events written per transaction
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    write_batch: u64,
    /// Input lines are strfry `export --fried` output: the `fried` member is stripped and
    /// the JSON imported normally
    #[arg(long)]
    fried: bool,
    /// Accepted for strfry compatibility and ignored: wok commits whatever is ready
    #[arg(long, value_name = "MS")]
    debounce_millis: Option<u64>,
    /// Read this file instead of stdin. Either may be zstd-compressed (retention archives,
    /// `.jsonl.zst`): recognised by the zstd magic number
    #[arg(value_name = "FILE")]
    file: Option<std::path::PathBuf>,
}

/// The zstd frame magic number (little-endian 0xFD2FB528).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Counts the bytes read from the input itself (compressed ones for a `.zst`) for the bar.
struct Counted {
    inner: File,
    progress: Progress,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.add(0, n as u64);
        Ok(n)
    }
}

/// The input as lines: decompressed when it starts with the zstd magic (every frame of a
/// file of concatenated frames, as the archives are), else as it is. The flag is set when
/// a zstd input ends inside a frame (see [`TornEnd`]).
fn open_input(mut raw: Counted) -> io::Result<(Box<dyn Read + Send>, Arc<AtomicBool>)> {
    let mut head = Vec::with_capacity(4);
    (&mut raw).take(4).read_to_end(&mut head)?;
    let zst = head == ZSTD_MAGIC;
    let whole = io::Cursor::new(head).chain(raw);
    let torn = Arc::new(AtomicBool::new(false));
    let input: Box<dyn Read + Send> = if zst {
        Box::new(TornEnd {
            inner: zstd::stream::read::Decoder::new(whole)?,
            torn: Arc::clone(&torn),
        })
    } else {
        Box::new(whole)
    };
    Ok((input, torn))
}

/// A zstd stream that ends inside a frame reads as ending there, with `torn` set. A
/// retention archive ends so when its writer was killed mid-append (that frame's events
/// were never pruned: the delete commits only after the frame is synced); a truncated copy
/// too. Every complete line before the tear is imported, and the import then fails saying
/// so; before, the decoder's error lost the whole chunk it was in.
struct TornEnd<R> {
    inner: R,
    torn: Arc<AtomicBool>,
}

impl<R: Read> Read for TornEnd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.torn.load(Ordering::Relaxed) {
            return Ok(0);
        }
        match self.inner.read(buf) {
            // zstd's decoder says `UnexpectedEof` only when its input ends mid-frame.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.torn.store(true, Ordering::Relaxed);
                Ok(0)
            }
            r => r,
        }
    }
}

/// Whole lines of input, or one line too long to keep.
struct Chunk {
    seq: u64,
    first_line: u64,
    data: Vec<u8>,
    /// Set when this chunk stands for a single oversize line of this many bytes (dropped by
    /// the reader so memory stays bounded); `data` is empty then.
    oversize: Option<usize>,
}

// Events are the common case; boxing them would add an allocation per event.
#[allow(clippy::large_enum_variant)]
enum Item {
    /// With its search terms when its kind is indexed (tokenized by the worker, so the
    /// single writer thread does not).
    Event(Event, Option<Terms>),
    /// Already stored (found by a worker, which then skips the signature check).
    Duplicate,
    /// Expired (NIP-40) when read: not stored, as the relay refuses it (`event expired`);
    /// stored, it would be purged at the end and its writes undone, page by page.
    Expired,
    Reject(Rejection),
}

struct Rejection {
    line: u64,
    id: Option<String>,
    reason: String,
    /// Malformed and oversize lines are always reported; valid JSON that fails as an event
    /// only with `--show-rejected`.
    always: bool,
}

/// A worker's result for one chunk.
struct Done {
    seq: u64,
    lines: u64,
    items: Vec<Item>,
}

#[derive(Clone, Copy)]
struct WorkerOpts {
    limits: Limits,
    max_line: usize,
    verify: bool,
    fried: bool,
}

#[derive(Default)]
struct Stats {
    lines: u64,
    added: u64,
    rejected: u64,
    dups: u64,
    /// Refused by the DB's bans or kind lists (`wok admin banpubkey`, …): policy, so the
    /// import still exits 0.
    blocked: u64,
    expired: u64,
}

impl Stats {
    fn summary(&self) -> String {
        format!(
            "Processed {} lines. {}{}",
            self.lines,
            self.counts(),
            self.blocked_part()
        )
    }

    fn counts(&self) -> String {
        format!(
            "{} added, {} rejected, {} duplicates",
            self.added, self.rejected, self.dups
        )
    }

    /// Said only when something was blocked or expired, so a plain import's summary is
    /// as before.
    fn blocked_part(&self) -> String {
        let mut s = String::new();
        if self.blocked > 0 {
            s.push_str(&format!(", {} blocked", self.blocked));
        }
        if self.expired > 0 {
            s.push_str(&format!(", {} expired (not stored)", self.expired));
        }
        s
    }
}

pub fn run(args: &ImportArgs, g: &Globals) -> ExitCode {
    let Some((cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    let store = Arc::new(store);
    // Into an empty DB the index rows and the negentropy trees are written once, sorted,
    // at the end (`store::bulk`); the lock it holds tells other processes this import is
    // alive until `finish`.
    let bulk = match store.begin_bulk_load() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: import: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The batches' commits wait for one sync each, not two; `finish` syncs once at the end.
    if let Err(e) = store.defer_meta_sync() {
        log::warn!("import: every commit will sync twice: {e}");
    }
    let limits = cfg.event_limits();
    let opts = WorkerOpts {
        limits,
        // A fried line also carries the hex PackedEvent (smaller than the JSON it encodes);
        // the event itself is still held to maxEventSize once parsed.
        max_line: if args.fried {
            limits.max_event_size.saturating_mul(3)
        } else {
            limits.max_event_size
        },
        verify: !args.no_verify,
        fried: args.fried,
    };
    let input = match &args.file {
        Some(path) => File::open(path).map_err(|e| format!("{}: {e}", path.display())),
        None => io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map(File::from)
            .map_err(|e| format!("stdin: {e}")),
    };
    let input = match input {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: import: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Bytes out of the input's size when stdin is a file, else a spinner.
    let total = input
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map_or(Total::Unknown, |m| Total::Bytes(m.len()));
    let progress = Progress::start(g, "import", "lines", true, total);
    let (input, torn) = match open_input(Counted {
        inner: input,
        progress: progress.clone(),
    }) {
        Ok(r) => r,
        Err(e) => {
            progress.clear();
            eprintln!("error: import: reading the input: {e}");
            return ExitCode::FAILURE;
        }
    };
    let workers = thread::available_parallelism().map_or(2, |n| n.get());

    let (chunk_tx, chunk_rx) = bounded::<Chunk>(workers * 2);
    let (done_tx, done_rx) = bounded::<Done>(DONE_QUEUE);
    let reader = thread::Builder::new().name("Reader".into()).spawn({
        let torn = Arc::clone(&torn);
        move || read_chunks(input, &chunk_tx, opts.max_line, &torn)
    });
    let reader = match reader {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: import: cannot start the reader thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut verifiers = Vec::with_capacity(workers);
    let finished_workers = Arc::new(AtomicUsize::new(0));
    for i in 0..workers {
        let (rx, tx, store) = (chunk_rx.clone(), done_tx.clone(), Arc::clone(&store));
        let finished = Arc::clone(&finished_workers);
        let spawned = thread::Builder::new()
            .name(format!("Verifier {i}"))
            .spawn(move || {
                work(&rx, &tx, opts, &store);
                // After its last result is queued (a panic never counts).
                finished.fetch_add(1, Ordering::Release);
            });
        match spawned {
            Ok(h) => verifiers.push(h),
            Err(e) => {
                eprintln!("error: import: cannot start a worker thread: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    drop((chunk_rx, done_tx));

    let mut w = Writer {
        store: &store,
        show_rejected: args.show_rejected,
        progress: &progress,
        stats: Stats::default(),
        last_log: Instant::now(),
        pin: Pin::new(
            bulk.as_ref().is_some_and(|b| !b.trees.is_empty()),
            &finished_workers,
            workers,
        ),
    };
    let batch = usize::try_from(args.write_batch).unwrap_or(usize::MAX);
    let written = match w.run(&done_rx, batch) {
        Ok(n) => n,
        Err(e) => {
            progress.clear();
            // The reader may be blocked on stdin; exiting the process ends it.
            log::error!("import: {e}. {}", w.stats.summary());
            finish(&store, bulk, &progress, w.pin.txn.take());
            return ExitCode::FAILURE;
        }
    };
    drop(done_rx);
    // Every worker has ended (the results channel closed); one that panicked may have
    // taken a chunk with it, so the counts are checked as well as the joins.
    let panicked = verifiers
        .into_iter()
        .map(thread::JoinHandle::join)
        .filter(Result::is_err)
        .count();
    let read = reader
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the reader thread panicked")));
    log::info!("Done. {}", w.stats.summary());
    let finished = finish(&store, bulk, &progress, w.pin.txn.take());
    match read
        .map_err(|e| format!("reading the input: {e}"))
        .and_then(|sent| complete(sent, written, panicked))
        .and_then(|()| {
            if torn.load(Ordering::Relaxed) {
                Err(TORN.to_string())
            } else {
                Ok(())
            }
        }) {
        Ok(()) if finished => {
            progress.finish();
            ExitCode::SUCCESS
        }
        Ok(()) => ExitCode::FAILURE,
        Err(e) => {
            log::error!("import: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The import's last steps; false, with the command that finishes the job, if one failed.
/// A bulk load's index rows are written (`store::bulk`); events that expired while the
/// import ran are purged (NIP-40), as the relay would at its next start, so it does not
/// rewrite the trees just built and scatter their pages; then the trees the import left to
/// its end are built (`Store::build_deferred_trees`), and everything is synced.
fn finish<'s>(
    store: &'s Store,
    bulk: Option<BulkLoad>,
    progress: &Progress,
    pinned: Option<RoTxn<'s, WithoutTls>>,
) -> bool {
    // A reader held until the trees are built keeps the pages the last batches freed (most
    // of the index pages, all over the file) out of reach: LMDB reuses a page only when no
    // reader can still see it, so the trees' pages go together, at the end of the file
    // (`Pin`), instead of into those holes, between event pages a sync would then map by
    // fault-around. The writer took it when the input ended; else (a failed import) now.
    let trees = bulk.as_ref().map_or(&[][..], |b| &b.trees[..]);
    let pin = pinned.or_else(|| (!trees.is_empty()).then(|| store.read_txn().ok()).flatten());
    // `bulk` (its lock) lives to the end: until then another process leaves the rows and
    // trees to this one.
    if let Some(bulk) = &bulk {
        progress.message("indexing".to_string());
        let started = Instant::now();
        match store
            .build_deferred_indexes(&mut |n| progress.message(format!("indexing: {n} events")))
        {
            Ok(n) => log::info!(
                "Indexed {n} events (from levId {}) in {} ms",
                bulk.from,
                started.elapsed().as_millis()
            ),
            Err(e) => {
                // The lock goes with this process: the next to open the DB builds them.
                // Neither the purge nor the trees can be right without the rows; what the
                // batches committed is still made durable.
                log::error!(
                    "import: writing the index rows failed: {e}; the events are stored, and \
                     the next wok command to open the DB indexes them"
                );
                if let Err(e) = store.sync() {
                    log::error!("import: syncing the database to disk failed: {e}");
                }
                return false;
            }
        }
    }
    match store.purge_all_expired(wok::policy::now(), 10_000) {
        Ok(0) => {}
        Ok(n) => log::info!("Purged {n} expired events"),
        // Not fatal: the relay purges them when it starts.
        Err(e) => log::warn!("import: purging expired events failed: {e}"),
    }
    let built = if trees.is_empty() {
        true
    } else {
        progress.message("building negentropy trees".to_string());
        let started = Instant::now();
        // One transaction for all: one commit and sync.
        match store.build_deferred_trees() {
            Ok(built) => {
                let ms = started.elapsed().as_millis();
                for (tree, n) in &built {
                    log::info!("Built negentropy tree {tree} ({n} events)");
                }
                log::info!("Built {} negentropy trees in {ms} ms", built.len());
                true
            }
            Err(e) => {
                // Their Meta row stays: the next wok command to open the DB builds them.
                log::error!(
                    "import: building negentropy trees {trees:?} failed: {e}; the next wok \
                     command to open the DB builds them (until then NEG-OPENs are answered \
                     without them)"
                );
                false
            }
        }
    };
    drop(pin);
    drop(bulk);
    // The batches' commits left their meta page unsynced (`defer_meta_sync`).
    if let Err(e) = store.sync() {
        log::error!("import: syncing the database to disk failed: {e}");
        return false;
    }
    built
}

/// Whether every chunk the reader sent was written: an import that lost lines must not
/// exit 0.
fn complete(sent: u64, written: u64, panicked: usize) -> Result<(), String> {
    if panicked > 0 {
        return Err(format!(
            "internal error: {panicked} worker thread(s) panicked; {} of {sent} chunks written",
            written.min(sent)
        ));
    }
    if written != sent {
        return Err(format!(
            "internal error: {written} of {sent} chunks written"
        ));
    }
    Ok(())
}

/// Why an import whose zstd input ended inside a frame fails, after importing what was whole.
const TORN: &str = "the input ends inside a zstd frame, cut short (a retention archive \
    whose writer was killed while appending, or a truncated copy); every whole line before \
    that point was imported. An archive's cut frame holds events whose deletion never \
    committed, so they are still in the database it came from";

/// Reader thread: cuts the input into chunks of whole lines. A line longer than
/// `max_line` is not kept: its bytes are counted and dropped, and it goes on as an
/// `oversize` chunk of its own.
/// Returns how many chunks it sent, so the caller can check that every one was written.
fn read_chunks(
    mut input: Box<dyn Read + Send>,
    tx: &Sender<Chunk>,
    max_line: usize,
    torn: &AtomicBool,
) -> io::Result<u64> {
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES + MIN_READ);
    let mut scratch = vec![0u8; MIN_READ];
    let seq = std::cell::Cell::new(0u64);
    let mut next_line = 1u64;
    // Bytes so far of an oversize line being skipped.
    let mut skipping: Option<usize> = None;
    let send = |first_line: u64, data: Vec<u8>, oversize: Option<usize>| {
        let ok = tx
            .send(Chunk {
                seq: seq.get(),
                first_line,
                data,
                oversize,
            })
            .is_ok();
        if ok {
            seq.set(seq.get() + 1);
        }
        ok
    };
    loop {
        let want = CHUNK_BYTES.saturating_sub(buf.len()).max(MIN_READ);
        let n = read_some(&mut input, &mut buf, &mut scratch, want)?;
        let eof = n == 0;

        if let Some(skipped) = skipping {
            match buf.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    if !send(next_line, Vec::new(), Some(skipped + p)) {
                        return Ok(seq.get());
                    }
                    next_line += 1;
                    skipping = None;
                    buf.drain(..=p);
                }
                None => {
                    skipping = Some(skipped + buf.len());
                    buf.clear();
                    if eof {
                        send(next_line, Vec::new(), skipping);
                        return Ok(seq.get());
                    }
                    continue;
                }
            }
        }

        if eof {
            // The last line counts even without a trailing newline, unless the input was
            // cut: then it is the cut line's first part.
            if !buf.is_empty() && !torn.load(Ordering::Relaxed) {
                send(next_line, buf, None);
            }
            return Ok(seq.get());
        }
        if let Some(p) = buf.iter().rposition(|&b| b == b'\n') {
            let mut rest = Vec::with_capacity(CHUNK_BYTES + MIN_READ);
            rest.extend_from_slice(&buf[p + 1..]);
            buf.truncate(p + 1);
            let lines = buf.iter().filter(|&&b| b == b'\n').count() as u64;
            if !send(next_line, std::mem::replace(&mut buf, rest), None) {
                return Ok(seq.get());
            }
            next_line += lines;
        }
        // The unfinished line is already too long (+1 for a possible `\r`): drop it.
        if buf.len() > max_line.saturating_add(1) {
            skipping = Some(buf.len());
            buf.clear();
        }
    }
}

/// Reads into `buf` until `want` more bytes are in, the input ends, or a read returns less
/// than it asked for: a pipe whose writer paused (a live stream piped in) has its lines
/// handed on now, not once a chunk's worth has come. Returns the bytes read, 0 at the end.
/// Read through `scratch`: one copy of the input, and nothing zeroed per read.
fn read_some(
    input: &mut dyn Read,
    buf: &mut Vec<u8>,
    scratch: &mut [u8],
    want: usize,
) -> io::Result<usize> {
    let mut got = 0;
    while got < want {
        let ask = (want - got).min(scratch.len());
        let n = match input.read(&mut scratch[..ask]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&scratch[..n]);
        got += n;
        if n < ask {
            break;
        }
    }
    Ok(got)
}

/// Worker thread: parses and checks every line of each chunk it gets. When verifying, it
/// first looks the id up in a read snapshot: an event already stored is a duplicate
/// whatever its signature, so re-importing a dump costs hashing, not signature checks.
fn work(rx: &Receiver<Chunk>, tx: &Sender<Done>, o: WorkerOpts, store: &Store) {
    let mut parser = JsonParser::new();
    for mut chunk in rx {
        // A failed snapshot only loses the shortcut: the writer finds duplicates anyway.
        let txn = if o.verify {
            store.read_txn().ok()
        } else {
            None
        };
        let known = |id: &[u8; 32]| {
            txn.as_ref()
                .is_some_and(|t| matches!(store.lookup_id(t, id), Ok(Some(_))))
        };
        let kinds = store.search_kinds();
        let now = wok::policy::now();
        let mut items = Vec::new();
        let mut lines = 0u64;
        if let Some(len) = chunk.oversize {
            lines = 1;
            items.push(Item::Reject(oversize(chunk.first_line, len, o.max_line)));
        } else {
            let mut data = &mut chunk.data[..];
            if let [rest @ .., b'\n'] = data {
                data = rest;
            }
            for (i, raw) in data.split_mut(|&b| b == b'\n').enumerate() {
                lines += 1;
                let line_no = chunk.first_line + i as u64;
                match check_line(raw, line_no, &mut parser, &o, now, &known) {
                    Some(Item::Event(ev, _)) => {
                        let terms = kinds
                            .as_ref()
                            .filter(|k| k.contains(ev.kind) && ev.class() != KindClass::Ephemeral)
                            .map(|_| wok::search::doc::event_terms(&ev));
                        items.push(Item::Event(ev, terms));
                    }
                    Some(item) => items.push(item),
                    None => {}
                }
            }
        }
        if tx
            .send(Done {
                seq: chunk.seq,
                lines,
                items,
            })
            .is_err()
        {
            return; // the writer stopped
        }
    }
}

fn oversize(line: u64, len: usize, max: usize) -> Rejection {
    Rejection {
        line,
        id: None,
        reason: format!("line too long ({len} > {max} bytes, see events.maxEventSize)"),
        always: true,
    }
}

/// One line → an event to write, a rejection, or nothing (a blank line).
fn check_line(
    line: &mut [u8],
    line_no: u64,
    parser: &mut JsonParser,
    o: &WorkerOpts,
    now: u64,
    known: &dyn Fn(&[u8; 32]) -> bool,
) -> Option<Item> {
    let reject = |id: Option<String>, reason: String, always: bool| {
        Some(Item::Reject(Rejection {
            line: line_no,
            id,
            reason,
            always,
        }))
    };
    match jsonl::parse_line(line, parser, &o.limits, o.max_line, o.fried) {
        Line::Blank => None,
        Line::Oversize(len) => Some(Item::Reject(oversize(line_no, len, o.max_line))),
        Line::Malformed(reason) => reject(None, reason, true),
        Line::Invalid { id, reason } => reject(id, reason, false),
        Line::Event(ev) => {
            // Before the signature check: an expired event costs no verify either.
            if ev.is_expired(now) {
                return Some(Item::Expired);
            }
            if o.verify {
                // verify::check_event's checks, with the duplicate test between them.
                if let Err(invalid) = ev.check_id() {
                    return reject(Some(ev.id_hex().to_owned()), invalid.to_string(), false);
                }
                if known(&ev.id) {
                    return Some(Item::Duplicate);
                }
                if !verify::verify_schnorr(&ev.id, &ev.pubkey, &ev.sig) {
                    let invalid = Invalid("bad signature".into());
                    return reject(Some(ev.id_hex().to_owned()), invalid.to_string(), false);
                }
            }
            Some(Item::Event(ev, None))
        }
    }
}

/// The writer: puts worker results back in input order and commits them in batches.
struct Writer<'s> {
    store: &'s Store,
    show_rejected: bool,
    progress: &'s Progress,
    stats: Stats,
    last_log: Instant,
    pin: Pin<'s>,
}

/// The reader `finish` holds while it builds the trees (see there), taken once every
/// verifier has finished, before the batches that write what they left queued: LMDB gives a
/// transaction free pages first, and an import ends with tens of MB of them all over the
/// file (each big batch copies most index pages). Batches after the pin still use the free
/// pages freed before it, and the pages they free stay out of reach while it is held; with
/// the pin taken only after the last batch, what that batch had not used was left for the
/// trees, which then landed in ~1,000 separate runs in 4 of 6 imports (170–300 distinct
/// 256 KB windows of the file: a `{}` sync's peak RSS 53 MB instead of 19). Taken here:
/// 9 of 9 imports put a tree in ≤ 27 windows. The file grows by ~10 MB more.
struct Pin<'s> {
    wanted: bool,
    finished_workers: &'s AtomicUsize,
    workers: usize,
    txn: Option<RoTxn<'s, WithoutTls>>,
}

impl<'s> Pin<'s> {
    /// Wanted only when trees wait for the end of the import; due once `finished`
    /// reaches `workers`.
    fn new(wanted: bool, finished: &'s AtomicUsize, workers: usize) -> Pin<'s> {
        Pin {
            wanted,
            finished_workers: finished,
            workers,
            txn: None,
        }
    }

    fn take_if_due(&mut self, store: &'s Store) {
        if self.wanted
            && self.txn.is_none()
            && self.finished_workers.load(Ordering::Acquire) == self.workers
        {
            self.txn = store.read_txn().ok();
        }
    }
}

impl Writer<'_> {
    /// Returns how many chunks were written.
    fn run(&mut self, rx: &Receiver<Done>, batch_max: usize) -> Result<u64, String> {
        let mut reorder: BTreeMap<u64, Done> = BTreeMap::new();
        let mut next_seq = 0u64;
        let mut pending: VecDeque<Item> = VecDeque::new();
        let mut events: Vec<Event> = Vec::new();
        let mut terms: Vec<Option<Terms>> = Vec::new();
        loop {
            let mut closed = false;
            while events.len() < batch_max {
                if let Some(item) = pending.pop_front() {
                    match item {
                        Item::Event(ev, t) => {
                            events.push(ev);
                            terms.push(t);
                        }
                        Item::Duplicate => self.stats.dups += 1,
                        Item::Expired => self.stats.expired += 1,
                        Item::Reject(r) => self.rejected(&r),
                    }
                    continue;
                }
                if let Some(done) = reorder.remove(&next_seq) {
                    next_seq += 1;
                    self.stats.lines += done.lines;
                    self.progress.add(done.lines, 0);
                    pending.extend(done.items);
                    continue;
                }
                // Nothing ready in order: wait only if there is nothing to commit.
                let got = if events.is_empty() {
                    rx.recv().ok()
                } else {
                    match rx.try_recv() {
                        Ok(d) => Some(d),
                        Err(_) => break,
                    }
                };
                match got {
                    Some(d) => {
                        reorder.insert(d.seq, d);
                    }
                    None => {
                        closed = true;
                        break;
                    }
                }
            }
            if !events.is_empty() {
                self.pin.take_if_due(self.store);
                self.commit(&mut events, &mut terms)?;
            }
            if closed {
                if !reorder.is_empty() {
                    return Err("internal error: a worker thread stopped early".into());
                }
                return Ok(next_seq);
            }
        }
    }

    fn commit(
        &mut self,
        events: &mut Vec<Event>,
        terms: &mut Vec<Option<Terms>>,
    ) -> Result<(), String> {
        let started = Instant::now();
        let write = || -> wok::store::Result<Vec<Outcome>> {
            let mut txn = self.store.write_txn()?;
            let out = self.store.write_events_with(&mut txn, events, terms)?;
            txn.commit()?;
            Ok(out)
        };
        let outcomes = write().map_err(|e| format!("writing to the database failed: {e}"))?;
        for (o, ev) in outcomes.iter().zip(events.iter()) {
            match o {
                Outcome::Written(_) => self.stats.added += 1,
                Outcome::Duplicate => self.stats.dups += 1,
                _ => {
                    if matches!(o, Outcome::Blocked(_)) {
                        self.stats.blocked += 1;
                    } else {
                        self.stats.rejected += 1;
                    }
                    if self.show_rejected {
                        let msg = format!("Rejected event {}: {}", ev.id_hex(), o.ok_reply().1);
                        log::info!("{msg}");
                    }
                }
            }
        }
        log::debug!(
            "Committed {} in {} ms. {}",
            events.len(),
            started.elapsed().as_millis(),
            self.stats.summary()
        );
        events.clear();
        terms.clear();
        if self.progress.drawn() {
            self.progress.message(format!(
                "{}{}",
                self.stats.counts(),
                self.stats.blocked_part()
            ));
        } else if self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            log::info!("{}", self.stats.summary());
        }
        Ok(())
    }

    fn rejected(&mut self, r: &Rejection) {
        self.stats.rejected += 1;
        if r.always {
            let msg = format!("line {}: {}", r.line, r.reason);
            log::warn!("{msg}");
        } else if self.show_rejected {
            let msg = match &r.id {
                Some(id) => format!("Rejected event {id}: {}", r.reason),
                None => format!("Rejected event on line {}: {}", r.line, r.reason),
            };
            log::info!("{msg}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trees' reader is taken once every verifier has finished (before the batches that
    /// drain their queue), and only for an import that defers trees.
    #[test]
    fn the_pin_waits_for_every_verifier() {
        let dir = tempfile::tempdir().expect("dir");
        let opts = wok::store::StoreOptions {
            map_size: 1 << 26,
            ..Default::default()
        };
        let store = Store::open(dir.path(), &opts).expect("open");
        let finished = AtomicUsize::new(1);
        let mut pin = Pin::new(true, &finished, 2);
        pin.take_if_due(&store);
        assert!(pin.txn.is_none(), "one verifier still runs");
        finished.store(2, Ordering::Release);
        pin.take_if_due(&store);
        assert!(pin.txn.is_some());
        let mut unwanted = Pin::new(false, &finished, 2);
        unwanted.take_if_due(&store);
        assert!(unwanted.txn.is_none(), "no tree to build");
    }

    #[test]
    fn a_lost_chunk_or_a_panicked_worker_fails_the_import() {
        assert_eq!(complete(3, 3, 0), Ok(()));
        assert_eq!(complete(0, 0, 0), Ok(()));
        assert!(complete(3, 2, 0).is_err(), "the last chunk was dropped");
        assert!(complete(3, 3, 1).is_err(), "a worker panicked");
    }

    #[test]
    fn the_reader_counts_the_chunks_it_sent() {
        let (tx, rx) = bounded::<Chunk>(64);
        let input: Box<dyn Read + Send> = Box::new(io::Cursor::new(b"a\nb\nc".to_vec()));
        let sent = read_chunks(input, &tx, 16, &AtomicBool::new(false)).expect("read");
        drop(tx);
        assert_eq!(sent, rx.iter().count() as u64);
        assert!(sent > 0);
    }
}
