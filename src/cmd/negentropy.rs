//! `wok negentropy list | add <filter> | build <treeId> | remove <treeId>`: the stored
//! negentropy trees (`wok::store::negtree`). As in strfry a new tree starts empty and `build`
//! fills it; unlike strfry an unbuilt tree is never used to answer a sync, and trees can be
//! removed.

use std::process::ExitCode;

use wok::nostr::hex;
use wok::store::negtree::{self, BuildStep};

use super::progress::{Progress, Total};
use super::util;
use super::Globals;

#[derive(Debug, clap::Subcommand)]
pub enum NegentropyCmd {
    /// Print every tree: id, filter, size and fingerprint
    List,
    /// Register a tree for a filter (no since, until or limit); fill it with `build`
    Add {
        /// A filter object
        filter: String,
    },
    /// Fill a tree with every stored event its filter matches
    Build {
        #[arg(value_name = "TREE_ID")]
        tree: u64,
    },
    /// Remove a tree
    Remove {
        #[arg(value_name = "TREE_ID")]
        tree: u64,
    },
}

pub fn run(cmd: &NegentropyCmd, g: &Globals) -> ExitCode {
    let Some((_cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    let fail = |msg: String| {
        eprintln!("error: negentropy: {msg}");
        ExitCode::FAILURE
    };
    match cmd {
        NegentropyCmd::List => {
            let txn = match store.read_txn() {
                Ok(t) => t,
                Err(e) => return fail(e.to_string()),
            };
            let trees = match store.trees(&txn) {
                Ok(t) => t,
                Err(e) => return fail(e.to_string()),
            };
            for (id, filter, _) in trees {
                println!("tree {id}");
                println!("  filter: {filter}");
                match store.tree_built(&txn, id) {
                    Ok(true) => match negtree::tree_summary(&store, &txn, id) {
                        Ok((size, fp)) => {
                            println!("  size: {size}");
                            println!("  fingerprint: {}", hex::encode(&fp));
                        }
                        Err(e) => return fail(e.to_string()),
                    },
                    Ok(false) => {
                        println!("  size: not built (run: wok negentropy build {id})");
                    }
                    Err(e) => return fail(e.to_string()),
                }
            }
            ExitCode::SUCCESS
        }
        NegentropyCmd::Add { filter } => {
            let mut filters = match util::parse_filters(filter) {
                Ok(f) => f,
                Err(e) => return fail(format!("bad filter: {e}")),
            };
            if filters.len() != 1 {
                return fail("a tree has one filter object".into());
            }
            match store.add_tree(&filters.remove(0)) {
                Ok(id) => {
                    println!("created tree {id}");
                    println!("to populate, run: wok negentropy build {id}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        NegentropyCmd::Build { tree } => {
            // A bar over the stored events read, then over the tree rows written.
            let p = Progress::start(g, "negentropy build", "events", false, Total::Unknown);
            let (mut scanned, mut phase) = (0, 0);
            let mut step = |s: BuildStep| match s {
                BuildStep::Scanned { done, total } => {
                    if phase == 0 {
                        phase = 1;
                        p.set_total(Total::Items(total));
                        p.message("reading events");
                    }
                    scanned = done;
                    p.set(done, 0);
                }
                BuildStep::Written { done, total } => {
                    if phase == 1 {
                        phase = 2;
                        p.restart(Total::Items(total));
                        p.message("writing the tree");
                    }
                    p.set(done, 0);
                }
                BuildStep::Committing => p.message("committing"),
            };
            match store.build_tree_with(*tree, &mut step) {
                Ok(n) => {
                    println!("built tree {tree}: {n} events");
                    p.set(n, 0);
                    p.finish_with(&format!(" of {scanned} read, into tree {tree}"));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    p.clear();
                    fail(e.to_string())
                }
            }
        }
        NegentropyCmd::Remove { tree } => match store.remove_tree(*tree) {
            Ok(true) => {
                println!("removed tree {tree}");
                ExitCode::SUCCESS
            }
            Ok(false) => fail(format!("no tree {tree}")),
            Err(e) => fail(e.to_string()),
        },
    }
}
