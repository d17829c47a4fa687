//! `wok search build | rebuild | drop | inspect`: the NIP-50 index of an existing DB
//! (`wok::store::search`). The relay keeps the index exact for new events by itself; these
//! are for a DB imported before indexing, a changed `search.kinds`, or a tokenizer upgrade.

use std::process::ExitCode;

use indicatif::HumanBytes;
use wok::store::search::KindSet;
use wok::store::Store;

use super::progress::{Progress, Total};
use super::Globals;

#[derive(Debug, clap::Subcommand)]
pub enum SearchCmd {
    /// Index the stored events of the indexed kinds that are not indexed yet
    Build(KindsArg),
    /// Drop the index and build it again (after a tokenizer upgrade)
    Rebuild(KindsArg),
    /// Drop the index (the relay still indexes new events of search.kinds)
    Drop,
    /// Print the index's size and counts; --check compares it with the stored events
    Inspect {
        /// Re-tokenize every indexed event and compare with the postings
        #[arg(long)]
        check: bool,
        /// Also print how many events contain each of these words
        #[arg(long = "word", value_name = "WORD")]
        words: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct KindsArg {
    /// Kinds to index instead of the config's search.kinds (e.g. "0, 1, 30000-39999")
    #[arg(long)]
    kinds: Option<String>,
}

/// Events per write transaction while building.
const BATCH: usize = 5_000;

pub fn run(cmd: &SearchCmd, g: &Globals) -> ExitCode {
    let Some((cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    let fail = |msg: String| {
        eprintln!("error: search: {msg}");
        ExitCode::FAILURE
    };
    let kinds_of = |a: &KindsArg| KindSet::parse(a.kinds.as_deref().unwrap_or(&cfg.search.kinds));
    match cmd {
        SearchCmd::Drop => match drop_index(&store) {
            Ok(()) => {
                println!("search index dropped");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e.to_string()),
        },
        SearchCmd::Build(a) | SearchCmd::Rebuild(a) => {
            let kinds = match kinds_of(a) {
                Ok(k) => k,
                Err(e) => return fail(format!("bad kinds: {e}")),
            };
            if matches!(cmd, SearchCmd::Rebuild(_)) {
                if let Err(e) = drop_index(&store) {
                    return fail(e.to_string());
                }
            }
            match build(g, &store, &kinds) {
                Ok(n) => {
                    println!("indexed {n} events");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e.to_string()),
            }
        }
        SearchCmd::Inspect { check, words } => match inspect(&store, *check, words) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                fail("the index differs from the stored events (run: wok search rebuild)".into())
            }
            Err(e) => fail(e.to_string()),
        },
    }
}

fn drop_index(store: &Store) -> wok::store::Result<()> {
    let mut txn = store.write_txn()?;
    store.search_clear(&mut txn)?;
    txn.commit()?;
    Ok(())
}

fn build(g: &Globals, store: &Store, kinds: &KindSet) -> wok::store::Result<u64> {
    let levs = {
        let txn = store.read_txn()?;
        store.all_lev_ids(&txn)?
    };
    let p = Progress::start(
        g,
        "search build",
        "events",
        false,
        Total::Items(levs.len() as u64),
    );
    let mut added = 0u64;
    for chunk in levs.chunks(BATCH) {
        match store.search_index_stored(chunk, kinds) {
            Ok(n) => added += n as u64,
            Err(e) => {
                p.clear();
                return Err(e);
            }
        }
        p.add(chunk.len() as u64, 0);
    }
    p.finish_with(&format!(", {added} indexed"));
    Ok(added)
}

fn inspect(store: &Store, check: bool, words: &[String]) -> wok::store::Result<bool> {
    let txn = store.read_txn()?;
    let s = store.search_stats(&txn)?;
    let payload_bytes = store
        .table_stats(&txn)?
        .iter()
        .find(|t| t.0 == "EventPayload")
        .map_or(0, |t| t.2);
    println!("Indexed events: {}", s.docs);
    println!("Postings: {}", s.tokens);
    println!(
        "Index bytes: {} ({}, {:.1}% of all payload bytes)",
        s.bytes,
        HumanBytes(s.bytes),
        100.0 * s.bytes as f64 / payload_bytes.max(1) as f64
    );
    println!(
        "Average tokens per event: {:.1}",
        s.total_len as f64 / s.docs.max(1) as f64
    );
    match s.version {
        Some(v) if v == wok::search::tokenize::VERSION => println!("Tokenizer version: {v}"),
        Some(v) => println!(
            "Tokenizer version: {v} (this wok tokenizes with version {}: run wok search rebuild)",
            wok::search::tokenize::VERSION
        ),
        None => println!("Tokenizer version: unknown"),
    }
    for w in words {
        for t in wok::search::tokenize::tokens(w) {
            println!("Word {t:?}: {} events", store.postings(&txn, &t)?.len());
        }
    }
    if check {
        let problems = store.search_check(&txn)?;
        for p in problems.iter().take(20) {
            println!("problem: {p}");
        }
        println!("Check: {} problems", problems.len());
        return Ok(problems.is_empty());
    }
    Ok(true)
}
