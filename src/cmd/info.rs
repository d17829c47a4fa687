//! `wok info`: the DB version (strfry's only line), then the event count, the map size,
//! every table's entries and bytes, live data and free pages, the largest tables, and what
//! each retention rule would prune now.

use std::process::ExitCode;

use indicatif::HumanBytes;

use super::progress::{Progress, Total};
use super::Globals;

#[derive(Debug, clap::Args)]
pub struct InfoArgs {}

pub fn run(_args: &InfoArgs, g: &Globals) -> ExitCode {
    // Each figure is one LMDB lookup, but on a cold page cache over a slow disk opening and
    // reading a large DB still takes a while: a spinner says it is working.
    let progress = Progress::start(g, "info", "", false, Total::Unknown);
    let Some((cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    match info(&store, &cfg) {
        Ok((text, summary)) => {
            print!("{text}");
            progress.finish_brief(&summary);
            ExitCode::SUCCESS
        }
        Err(e) => {
            progress.clear();
            eprintln!("error: info: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The report for stdout, and the summary line's figures.
fn info(
    store: &wok::store::Store,
    cfg: &wok::config::Config,
) -> wok::store::Result<(String, String)> {
    use std::fmt::Write;
    let txn = store.read_txn()?;
    let meta = store.meta(&txn)?;
    let env = store.env().info();
    let file_bytes = std::fs::metadata(store.path().join("data.mdb"))
        .map(|m| m.len())
        .unwrap_or(0);
    let events = store.count(&txn)?;
    let mut s = String::new();
    let _ = writeln!(s, "DB version: {}", meta.db_version);
    let _ = writeln!(s, "Events: {events}");
    let _ = writeln!(s, "Next levId: {}", meta.next_lev_id);
    if let Some(from) = store.unindexed_from(&txn)? {
        // Only while an import into an empty DB runs (or after one died, until the next
        // open that can take its lock builds them).
        let _ = writeln!(
            s,
            "Not yet indexed: events from levId {from} (an import into an empty DB writes their index rows at its end)"
        );
    }
    let trees = store.deferred_trees(&txn)?;
    if !trees.is_empty() {
        let _ = writeln!(
            s,
            "Not yet built: negentropy trees {trees:?} (an import into an empty DB builds them at its end)"
        );
    }
    let _ = writeln!(s, "Map size: {} bytes", env.map_size);
    let _ = writeln!(s, "File size: {file_bytes} bytes");
    let tables = store.table_stats(&txn)?;
    for (name, entries, bytes) in &tables {
        let _ = writeln!(s, "Table {name}: {entries} entries, {bytes} bytes");
    }
    let search = store.search_stats(&txn)?;
    let payload = tables
        .iter()
        .find(|t| t.0 == "EventPayload")
        .map_or(0, |t| t.2);
    let _ = writeln!(
        s,
        "Search index: {} events, {} bytes ({:.1}% of payload bytes)",
        search.docs,
        search.bytes,
        100.0 * search.bytes as f64 / payload.max(1) as f64
    );
    let used: u64 = tables.iter().map(|t| t.2).sum();
    // Live data is what the size budget (retention.maxDbBytes) measures; the rest of the
    // pages the file has ever used are free and reused by later writes before it grows.
    let live = store.live_bytes()?;
    let (_, ever_used, _) = store.file_usage()?;
    let _ = writeln!(s, "Live data: {live} bytes ({})", HumanBytes(live));
    let _ = writeln!(
        s,
        "Free pages: {} bytes ({}, reused before the file grows)",
        ever_used.saturating_sub(live),
        HumanBytes(ever_used.saturating_sub(live))
    );
    let mut largest: Vec<&(&str, u64, u64)> = tables.iter().collect();
    largest.sort_by_key(|t| std::cmp::Reverse(t.2));
    let top: Vec<String> = largest
        .iter()
        .take(3)
        .map(|(n, _, b)| format!("{n} {}", HumanBytes(*b)))
        .collect();
    let _ = writeln!(s, "Largest tables: {}", top.join(", "));
    match cfg.retention_rules() {
        Ok(rules) => {
            let (per_rule, total) =
                wok::store::retention::would_prune(store, &rules, wok::policy::now())?;
            for (name, n) in &per_rule {
                let _ = writeln!(s, "Retention rule {name}: would prune {n} events now");
            }
            if cfg.retention.max_db_bytes > 0 {
                let _ = writeln!(
                    s,
                    "Retention maxDbBytes: {} of live data allowed{}",
                    cfg.retention.max_db_bytes,
                    if live > cfg.retention.max_db_bytes {
                        " (over: the oldest events of the rules' kinds are pruned next)"
                    } else {
                        ""
                    }
                );
            }
            if !per_rule.is_empty() {
                let _ = writeln!(s, "Retention total: would prune {total} events now");
            }
        }
        Err(e) => {
            let _ = writeln!(s, "Retention: retention.rules does not parse: {e}");
        }
    }
    let summary = format!(
        "{events} events, {} tables holding {}, file {}",
        tables.len(),
        HumanBytes(used),
        HumanBytes(file_bytes)
    );
    Ok((s, summary))
}
