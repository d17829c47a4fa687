//! `wok info`: the DB version (strfry's only line), then the event count, the map size and
//! every table's entries and bytes.

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
    let Some((_cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    match info(&store) {
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
fn info(store: &wok::store::Store) -> wok::store::Result<(String, String)> {
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
    let summary = format!(
        "{events} events, {} tables holding {}, file {}",
        tables.len(),
        HumanBytes(used),
        HumanBytes(file_bytes)
    );
    Ok((s, summary))
}
