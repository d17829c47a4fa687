//! `wok info`: the DB version (strfry's only line), then the event count, the map size and
//! every table's entries and bytes.

use std::process::ExitCode;

use super::Globals;

#[derive(Debug, clap::Args)]
pub struct InfoArgs {}

pub fn run(_args: &InfoArgs, g: &Globals) -> ExitCode {
    let Some((_cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    match info(&store) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: info: {e}");
            ExitCode::FAILURE
        }
    }
}

fn info(store: &wok::store::Store) -> wok::store::Result<String> {
    use std::fmt::Write;
    let txn = store.read_txn()?;
    let meta = store.meta(&txn)?;
    let env = store.env().info();
    let file_bytes = std::fs::metadata(store.path().join("data.mdb"))
        .map(|m| m.len())
        .unwrap_or(0);
    let mut s = String::new();
    let _ = writeln!(s, "DB version: {}", meta.db_version);
    let _ = writeln!(s, "Events: {}", store.count(&txn)?);
    let _ = writeln!(s, "Next levId: {}", meta.next_lev_id);
    let _ = writeln!(s, "Map size: {} bytes", env.map_size);
    let _ = writeln!(s, "File size: {file_bytes} bytes");
    for (name, entries, bytes) in store.table_stats(&txn)? {
        let _ = writeln!(s, "Table {name}: {entries} entries, {bytes} bytes");
    }
    Ok(s)
}
