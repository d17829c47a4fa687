//! `wok delete`: remove the events matching a filter and/or older than an age. Like strfry,
//! no tombstones are written, so deleted events can be imported again.

use std::process::ExitCode;

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

    let mut levs = Vec::new();
    let collected = util::run_query(&store, filters, 1_000_000, |_, found| {
        levs.extend_from_slice(found);
        Ok::<(), wok::store::StoreError>(())
    });
    if let Err(e) = collected {
        eprintln!("error: delete: {e}");
        return ExitCode::FAILURE;
    }
    if args.dry_run {
        log::info!("Would delete {} events", levs.len());
        return ExitCode::SUCCESS;
    }
    let mut deleted = 0usize;
    for chunk in levs.chunks(DELETE_CHUNK) {
        match store.delete_batch(chunk) {
            Ok(n) => deleted += n,
            Err(e) => {
                eprintln!("error: delete: {e} (after {deleted} events were deleted)");
                return ExitCode::FAILURE;
            }
        }
    }
    log::info!("Deleted {deleted} events");
    ExitCode::SUCCESS
}
