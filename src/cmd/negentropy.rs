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
        /// Leave out the restricted read kinds (relay.auth.restrictedReadKinds): a public
        /// tree, which answers readers without AUTH
        #[arg(long)]
        except_restricted: bool,
    },
    /// Fill a tree with every stored event its filter matches; without a TREE_ID, first
    /// register the public `{}` tree if the config restricts some kinds and it is missing,
    /// then build every tree that is not built
    Build {
        #[arg(value_name = "TREE_ID")]
        tree: Option<u64>,
    },
    /// Remove a tree
    Remove {
        #[arg(value_name = "TREE_ID")]
        tree: u64,
    },
}

pub fn run(cmd: &NegentropyCmd, g: &Globals) -> ExitCode {
    let Some((cfg, store)) = g.open_store() else {
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
            for (id, filter, ..) in trees {
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
        NegentropyCmd::Add {
            filter,
            except_restricted,
        } => {
            let mut filters = match util::parse_filters(filter) {
                Ok(f) => f,
                Err(e) => return fail(format!("bad filter: {e}")),
            };
            if filters.len() != 1 {
                return fail("a tree has one filter object".into());
            }
            let except = if *except_restricted {
                wok::relay::auth::restricted_kinds(&cfg)
            } else {
                Vec::new()
            };
            match store.add_tree_except(&filters.remove(0), &except) {
                Ok(id) => {
                    println!("created tree {id}");
                    println!("to populate, run: wok negentropy build {id}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        NegentropyCmd::Build { tree: None } => {
            let trees = match default_trees(&cfg, &store) {
                Ok(t) => t,
                Err(e) => return fail(e),
            };
            if trees.is_empty() {
                println!("every tree is built");
            }
            for tree in trees {
                let code = build(g, &store, tree);
                if code != ExitCode::SUCCESS {
                    return code;
                }
            }
            ExitCode::SUCCESS
        }
        NegentropyCmd::Build { tree: Some(tree) } => build(g, &store, *tree),
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

/// The public `{}` tree registered if the config restricts some kinds and it is missing
/// (an existing DB gets it this way), then every tree not yet built.
fn default_trees(cfg: &wok::config::Config, store: &wok::store::Store) -> Result<Vec<u64>, String> {
    let restricted = wok::relay::auth::restricted_kinds(cfg);
    let has_public = {
        let txn = store.read_txn().map_err(|e| e.to_string())?;
        let want = negtree::tree_text("{}", &restricted);
        store
            .trees(&txn)
            .map_err(|e| e.to_string())?
            .iter()
            .any(|(_, text, ..)| *text == want)
    };
    if !restricted.is_empty() && !has_public {
        let id = store.add_tree_except(&wok::nostr::Filter::all(), &restricted)?;
        println!("created tree {id} (public: every event but kinds {restricted:?})");
    }
    let txn = store.read_txn().map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (id, ..) in store.trees(&txn).map_err(|e| e.to_string())? {
        if !store.tree_built(&txn, id).map_err(|e| e.to_string())? {
            out.push(id);
        }
    }
    Ok(out)
}

/// `wok negentropy build TREE_ID`, with its bar and summary.
fn build(g: &Globals, store: &wok::store::Store, tree: u64) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("error: negentropy: {msg}");
        ExitCode::FAILURE
    };
    // A bar over the stored events read (each piece's tree rows are written as it goes).
    let p = Progress::start(g, "negentropy build", "events", false, Total::Unknown);
    let (mut scanned, mut started) = (0, false);
    let mut step = |s: BuildStep| match s {
        BuildStep::Scanned { done, total } => {
            if !started {
                started = true;
                p.set_total(Total::Items(total));
                p.message("reading events, writing the tree");
            }
            scanned = done;
            p.set(done, 0);
        }
        BuildStep::Committing => p.message("committing"),
    };
    match store.build_tree_with(tree, &mut step) {
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
