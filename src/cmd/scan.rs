//! `wok scan`: run a filter through the real query engine (no maxFilterLimit cap) and print
//! the matching events in engine order, or their number.

use std::io::Write;
use std::process::ExitCode;

use super::progress::{Progress, Total};
use super::util::{self, OutError};
use super::Globals;

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Print only the number of matching events
    #[arg(long)]
    count: bool,
    /// Work budget per query slice: the query pauses after this many units (keys read,
    /// records loaded) and resumes in a fresh read transaction. strfry's is microseconds;
    /// small values exercise pause/resume
    #[arg(long, value_name = "N", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pause: u64,
    /// A filter object, or an array of filter objects
    filter: String,
}

pub fn run(args: &ScanArgs, g: &Globals) -> ExitCode {
    let filters = match util::parse_filters(&args.filter) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: bad filter: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some((_cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    // A query's result size is not known until it has run: a spinner. --count reads no
    // payloads, so it has no bytes to count.
    let what = if args.count { "scan --count" } else { "scan" };
    let progress = Progress::start(g, what, "events", !args.count, Total::Unknown);
    let mut out = util::stdout_writer();
    let res = util::run_query(&store, filters, args.pause, |txn, levs| {
        if args.count {
            progress.add(levs.len() as u64, 0);
            return Ok(());
        }
        for &lev in levs {
            // Deleted between slices: the engine skips those it sees; this covers the rest.
            if let Some(json) = store.payload(txn, lev)? {
                util::write_line(&mut out, &json)?;
                progress.add(1, json.len() as u64 + 1);
            }
        }
        Ok::<(), OutError>(())
    });
    let res = res.and_then(|()| {
        if args.count {
            writeln!(out, "{}", progress.items())?;
        }
        out.flush()?;
        Ok(())
    });
    match res {
        Ok(()) => {
            progress.finish();
            ExitCode::SUCCESS
        }
        Err(e) => {
            progress.clear();
            e.exit("scan")
        }
    }
}
