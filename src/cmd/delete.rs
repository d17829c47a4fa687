//! `wok delete`: remove the events matching a filter and/or older than an age. Like strfry,
//! no tombstones are written, so deleted events can be imported again.

use std::process::ExitCode;

use super::progress::{Progress, Total};
use super::util;
use super::Globals;

/// levIds deleted per write transaction.
const DELETE_CHUNK: usize = 10_000;

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// Delete events older than this many seconds (sets until = now - AGE)
    #[arg(long, value_name = "SECONDS")]
    age: Option<u64>,
    /// Delete events matching this filter (an object or an array of objects)
    #[arg(long, value_name = "FILTER")]
    filter: Option<String>,
    /// Only report how many events would be deleted
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: &DeleteArgs, g: &Globals) -> ExitCode {
    if args.age.is_none() && args.filter.is_none() {
        eprintln!("error: delete needs --age or --filter (or both)");
        return ExitCode::FAILURE;
    }
    let mut filters = match &args.filter {
        Some(text) => match util::parse_filters(text) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: bad filter: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => vec![wok::nostr::Filter::all()],
    };
    if let Some(age) = args.age {
        if filters.iter().any(|f| f.until != u64::MAX) {
            eprintln!("error: --age is not compatible with a filter containing 'until'");
            return ExitCode::FAILURE;
        }
        let until = util::now().saturating_sub(age);
        for f in &mut filters {
            f.until = until;
            f.never |= f.since > f.until;
        }
    }
    let Some((_cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };

    // Matching first (a spinner: the count is not known until the query ends), then the
    // deletion, a bar over the matched events. Bytes are the stored payload sizes.
    let what = if args.dry_run {
        "delete --dry-run"
    } else {
        "delete"
    };
    let progress = Progress::start(g, what, "events", true, Total::Unknown);
    progress.message("matching");
    let mut levs = Vec::new();
    let mut sizes = Vec::new();
    let collected = util::run_query(&store, filters, 1_000_000, |txn, found| {
        let mut bytes = 0;
        for &lev in found {
            let size = store.raw_payload(txn, lev)?.map_or(0, |p| p.len() as u64);
            levs.push(lev);
            sizes.push(size);
            bytes += size;
        }
        progress.add(found.len() as u64, bytes);
        Ok::<(), wok::store::StoreError>(())
    });
    if let Err(e) = collected {
        progress.clear();
        eprintln!("error: delete: {e}");
        return ExitCode::FAILURE;
    }
    if args.dry_run {
        log::info!("Would delete {} events", levs.len());
        progress.finish();
        return ExitCode::SUCCESS;
    }
    progress.restart(Total::Items(levs.len() as u64));
    progress.message("deleting");
    for (chunk, chunk_sizes) in levs.chunks(DELETE_CHUNK).zip(sizes.chunks(DELETE_CHUNK)) {
        match store.delete_batch(chunk) {
            Ok(n) => {
                // Events another writer removed meanwhile are not deleted here; which ones
                // is not reported, so their bytes are scaled out.
                let bytes: u64 = chunk_sizes.iter().sum();
                let bytes = bytes * n as u64 / chunk.len().max(1) as u64;
                progress.add(n as u64, bytes);
            }
            Err(e) => {
                progress.clear();
                eprintln!(
                    "error: delete: {e} (after {} events were deleted)",
                    progress.items()
                );
                return ExitCode::FAILURE;
            }
        }
    }
    log::info!("Deleted {} events", progress.items());
    progress.finish();
    ExitCode::SUCCESS
}
