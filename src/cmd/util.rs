//! Pieces shared by the data commands: filter arguments, running the query engine to the
//! end, stdout that treats a closed pipe as a normal end, and the clock.

use std::io::{self, Write};

use wok::nostr::{Filter, JsonParser};
use wok::store::query::{Progress, Query};
use wok::store::{LevId, Store};

pub use wok::policy::now;

/// Parses a `--filter`/`<filter>` argument: one filter object or an array of them. No
/// `maxTagsPerFilter` cap (these are operator tools, like strfry's).
pub fn parse_filters(text: &str) -> Result<Vec<Filter>, String> {
    let mut bytes = text.as_bytes().to_vec();
    let mut parser = JsonParser::new();
    let parsed = parser.parse(&mut bytes, |v| {
        if v.is_object() {
            Filter::from_json(v, usize::MAX)
                .map(|f| vec![f])
                .map_err(|e| e.to_string())
        } else if let Some(items) = v.array() {
            items
                .map(|item| Filter::from_json(item, usize::MAX).map_err(|e| e.to_string()))
                .collect()
        } else {
            Err("filter must be a JSON object or an array of objects".to_string())
        }
    });
    match parsed {
        Ok(r) => r,
        Err(e) => Err(format!("filter is not valid JSON: {e}")),
    }
}

/// Runs `filters` through the query engine with no limit cap, in slices of `budget` work
/// units, each slice in a fresh read transaction (so pause/resume is exercised). `emit` is
/// called for each slice's new levIds while that slice's transaction is still open.
pub fn run_query<E>(
    store: &Store,
    filters: Vec<Filter>,
    budget: u64,
    mut emit: impl FnMut(&heed::RoTxn<'_, heed::WithoutTls>, &[LevId]) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<wok::store::StoreError>,
{
    let budget = budget.max(1);
    let txn = store.read_txn()?;
    let snapshot = store.latest_lev_id(&txn)?;
    let mut query = Query::new(filters, u64::MAX, snapshot, now());
    let mut txn = Some(txn);
    let mut out = Vec::new();
    loop {
        let t = match txn.take() {
            Some(t) => t,
            None => store.read_txn()?,
        };
        out.clear();
        let progress = query.run(store, &t, budget, &mut out)?;
        emit(&t, &out)?;
        drop(t);
        if progress == Progress::Done {
            return Ok(());
        }
    }
}

/// An error of a command that prints to stdout: a closed pipe ends it quietly.
#[derive(Debug)]
pub enum OutError {
    /// The reader went away (EPIPE): not an error for a command-line tool.
    Closed,
    Io(io::Error),
    Store(wok::store::StoreError),
}

impl From<io::Error> for OutError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            OutError::Closed
        } else {
            OutError::Io(e)
        }
    }
}

impl From<wok::store::StoreError> for OutError {
    fn from(e: wok::store::StoreError) -> Self {
        OutError::Store(e)
    }
}

impl OutError {
    /// Exit status for this error (messages printed here). Rust ignores SIGPIPE, so a closed
    /// pipe arrives as EPIPE; we exit 0 on it (strfry dies of SIGPIPE and exits 1), so
    /// `wok export | head` is not reported as a failure.
    pub fn exit(self, what: &str) -> std::process::ExitCode {
        match self {
            OutError::Closed => std::process::ExitCode::SUCCESS,
            OutError::Io(e) => {
                eprintln!("error: {what}: writing output: {e}");
                std::process::ExitCode::FAILURE
            }
            OutError::Store(e) => {
                eprintln!("error: {what}: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    }
}

/// A large buffered stdout for JSONL output.
pub fn stdout_writer() -> io::BufWriter<io::StdoutLock<'static>> {
    io::BufWriter::with_capacity(1 << 20, io::stdout().lock())
}

/// Writes one line (`bytes` + `\n`).
#[inline]
pub fn write_line(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(bytes)?;
    out.write_all(b"\n")
}

/// `--filter` with an optional `--range START-END` applied to every filter (strfry's
/// `sync`/`download`): a filter that already has since/until cannot take a range.
pub fn filters_with_range(text: &str, range: Option<&str>) -> Result<Vec<Filter>, String> {
    let mut filters = parse_filters(text).map_err(|e| format!("bad filter: {e}"))?;
    if let Some(range) = range {
        let (since, until) = wok::mesh::range::parse(range, now())?;
        for f in &mut filters {
            if f.since != 0 || f.until != u64::MAX {
                return Err("--range and a filter with since/until cannot be combined".into());
            }
            f.since = since;
            f.until = until;
        }
    }
    Ok(filters)
}

/// A flag SIGINT and SIGTERM set, for commands that run until told to stop.
pub fn stop_on_signals() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>, String> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("cannot handle signals: {e}"))?;
    }
    Ok(stop)
}
