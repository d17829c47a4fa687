//! `wok prune [--dry-run]`: the relay's retention rules (`retention { … }`) applied offline,
//! in the same bounded slices (`store::retention::Pruner`), with counts per rule on stdout,
//! a bar over the events to prune and the summary line.

use std::process::ExitCode;

use super::progress::{Progress, Total};
use super::Globals;
use wok::store::archive::Archives;
use wok::store::retention::{self, Pruner, SliceLimits};

/// Offline slices are large: nothing waits behind them but this command.
const SLICE: SliceLimits = SliceLimits {
    max_events: 100_000,
    max_rows: 1_000_000,
};

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Only count what each rule would prune
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: &PruneArgs, g: &Globals) -> ExitCode {
    let Some((cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    let rules = match cfg.retention_rules() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: retention.rules: {e}");
            return ExitCode::FAILURE;
        }
    };
    let budget = cfg.retention.max_db_bytes;
    if rules.is_empty() {
        eprintln!("prune: no retention rules (retention.rules is empty): nothing to prune");
        return ExitCode::SUCCESS;
    }
    let now = wok::policy::now();
    let what = if args.dry_run {
        "prune --dry-run"
    } else {
        "prune"
    };
    let progress = Progress::start(g, what, "events", false, Total::Unknown);
    progress.message("counting");
    let (per_rule, total) = match retention::would_prune(&store, &rules, now) {
        Ok(x) => x,
        Err(e) => {
            progress.clear();
            eprintln!("error: prune: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.dry_run {
        progress.clear();
        for (name, n) in &per_rule {
            println!("{name}: {n}");
        }
        if budget > 0 {
            match store.live_bytes() {
                Ok(live) => println!(
                    "{}: live data {live} bytes of {budget}{}",
                    retention::BUDGET,
                    if live > budget {
                        " (over: the oldest events of the rules' kinds would go next)"
                    } else {
                        ""
                    }
                ),
                Err(e) => {
                    eprintln!("error: prune: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        println!("total: {total}");
        progress.set(total, 0);
        progress.finish();
        return ExitCode::SUCCESS;
    }
    progress.restart(Total::Items(total));
    progress.message("pruning");
    let mut pruner = Pruner::default();
    let mut archives = Archives::default();
    let mut counts: Vec<(String, u64)> = Vec::new();
    loop {
        let r = match pruner.slice(&store, &rules, budget, now, SLICE, &mut archives) {
            Ok(r) => r,
            Err(e) => {
                progress.clear();
                eprintln!(
                    "error: prune: {e} (after {} events were pruned; the database is intact)",
                    progress.items()
                );
                return ExitCode::FAILURE;
            }
        };
        for (name, n) in r.per_rule {
            match counts.iter_mut().find(|(c, _)| *c == name) {
                Some(c) => c.1 += n,
                None => counts.push((name, n)),
            }
        }
        progress.add(r.deleted, 0);
        if !r.more {
            break;
        }
    }
    progress.clear();
    for (name, n) in &counts {
        println!("{name}: {n}");
    }
    println!("total: {}", progress.items());
    progress.finish();
    ExitCode::SUCCESS
}
