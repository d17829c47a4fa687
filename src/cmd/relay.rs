//! `wok relay`: run the server. SIGINT/SIGTERM stop it cleanly (every acknowledged event is
//! already committed; queued ones are written before exit); SIGUSR1 drains it like strfry
//! (no new connections, exit when the last client leaves). The config file is watched and
//! reloaded when it changes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use wok::config::ConfigSource;

use super::Globals;

pub fn run(g: &Globals) -> ExitCode {
    let loaded = match g.load_config() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(store) = super::open_store_for(&loaded.config) else {
        return ExitCode::FAILURE;
    };
    warn_unbuilt_trees(&store);
    let cfg = loaded.config.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let drain = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGINT, &stop),
        (signal_hook::consts::SIGTERM, &stop),
        (signal_hook::consts::SIGUSR1, &drain),
    ] {
        if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
            eprintln!("error: cannot install signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let relay = match wok::relay::Relay::start(cfg, store) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start relay: {e}");
            return ExitCode::FAILURE;
        }
    };
    let watched: Option<PathBuf> = match &loaded.source {
        ConfigSource::File(p) => Some(p.clone()),
        ConfigSource::Embedded => None,
    };
    let mtime = |p: &PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut last: Option<SystemTime> = loaded.stamp;
    let mut draining = false;
    let mut trimmed = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if trimmed.elapsed() >= TRIM_EVERY {
            trimmed = std::time::Instant::now();
            trim_heap();
        }
        if stop.load(Ordering::Relaxed) {
            log::info!("stopping");
            relay.stop();
            return ExitCode::SUCCESS;
        }
        if drain.load(Ordering::Relaxed) && !draining {
            draining = true;
            relay.drain();
        }
        if draining && relay.is_finished() {
            relay.stop();
            return ExitCode::SUCCESS;
        }
        if let Some(p) = &watched {
            let now = mtime(p);
            if now != last {
                // A failed parse is not retried until the file changes again.
                last = now;
                match wok::config::load_source(&ConfigSource::File(p.clone()), &g.set) {
                    Ok(l) => {
                        // The stamp read before the text: an edit racing the read is
                        // seen on the next check.
                        last = l.stamp;
                        for w in &l.warnings {
                            log::warn!("{w}");
                        }
                        relay.reload(l.config);
                    }
                    Err(e) => log::error!(
                        "Error parsing config file, continuing with previous config: {e}"
                    ),
                }
            }
        }
    }
}

/// How often freed heap memory is handed back to the OS.
const TRIM_EVERY: Duration = Duration::from_secs(30);

/// glibc keeps memory freed after a peak in its arenas (one per busy thread), so the relay's
/// RSS creeps up as rarer, higher peaks come while its live heap stays flat (a 2-minute soak:
/// live heap 34.9 -> 35.3 MiB, RssAnon 51 -> 84 MiB). `malloc_trim(0)` returns the free pages
/// of every arena; it holds each arena's lock for a moment, every TRIM_EVERY.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory the allocator owns.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// An unbuilt tree answers nothing, and an interrupted import leaves its trees so: said once
/// at start, with the command that builds them.
fn warn_unbuilt_trees(store: &wok::store::Store) {
    let Ok(txn) = store.read_txn() else { return };
    let Ok(trees) = store.trees(&txn) else { return };
    for (id, text, ..) in trees {
        if let Ok(false) = store.tree_built(&txn, id) {
            log::warn!(
                "negentropy tree {id} ({text}) is not built: NEG-OPENs for its filter collect \
                 their sets until `wok negentropy build {id}`"
            );
        }
    }
}
