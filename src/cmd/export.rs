//! `wok export`: every stored event as canonical JSONL on stdout, by created_at. Progress
//! and the summary go to stderr only: stdout is exactly the JSONL.

use std::io::Write;
use std::process::ExitCode;

use super::progress::{Progress, Total};
use super::util::{self, OutError};
use super::Globals;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Only events with created_at >= this (inclusive)
    #[arg(long, value_name = "SINCE", default_value_t = 0)]
    since: u64,
    /// Only events with created_at <= this (inclusive)
    #[arg(long, value_name = "UNTIL", default_value_t = u64::MAX)]
    until: u64,
    /// Newest first
    #[arg(long)]
    reverse: bool,
    /// Not supported: wok does not write strfry's PackedEvent ("fried") format
    #[arg(long)]
    fried: bool,
}

pub fn run(args: &ExportArgs, g: &Globals) -> ExitCode {
    if args.fried {
        eprintln!(
            "error: export --fried is not supported: wok does not write strfry's PackedEvent \
             format; a plain export imports just as well (wok import reads both)"
        );
        return ExitCode::FAILURE;
    }
    let Some((_cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    // Export walks the created_at index: events a bulk import stored but has not indexed
    // (it runs, or it died and indexing them at open failed, e.g. on a full disk) would be
    // left out without a word.
    let unindexed = store.read_txn().and_then(|txn| store.unindexed_from(&txn));
    if let Ok(Some(from)) = unindexed {
        eprintln!(
            "error: export: events from levId {from} are not indexed yet (an import into an \
             empty DB is running, or stopped and indexing them failed: see above); once it \
             ends, or there is room for their index rows, any wok command indexes them"
        );
        return ExitCode::FAILURE;
    }
    match export(&store, args, g) {
        Ok(p) => {
            p.finish();
            ExitCode::SUCCESS
        }
        Err(e) => e.exit("export"),
    }
}

fn export(store: &wok::store::Store, args: &ExportArgs, g: &Globals) -> Result<Progress, OutError> {
    let txn = store.read_txn()?;
    // The DB's event count is the total only for a whole export; a time range has no
    // count short of walking it.
    let total = if args.since == 0 && args.until == u64::MAX {
        Total::Items(store.count(&txn)?)
    } else {
        Total::Unknown
    };
    let progress = Progress::start(g, "export", "events", true, total);
    let mut out = util::stdout_writer();
    for lev in store.by_created_at(&txn, args.since, args.until, args.reverse)? {
        let lev = lev?;
        // An index row without its payload would be corruption; skip rather than abort
        // a backup halfway.
        let Some(json) = store.payload(&txn, lev)? else {
            log::warn!("levId {lev}: indexed but has no payload; skipped");
            continue;
        };
        util::write_line(&mut out, &json)?;
        progress.add(1, json.len() as u64 + 1);
    }
    out.flush()?;
    Ok(progress)
}
