//! One file per subcommand. Each takes the global options and returns the process exit
//! code; errors are printed here, never panicked.

pub mod admin;
pub mod bench;
pub mod compact;
pub mod config;
pub mod delete;
pub mod dict;
pub mod export;
pub mod gen;
pub mod import;
pub mod info;
pub mod negentropy;
pub mod progress;
pub mod prune;
pub mod relay;
pub mod router;
pub mod scan;
pub mod search;
pub mod stream;
pub mod sync;
pub mod transfer;
mod util;

use std::path::PathBuf;

/// The global flags every command shares (strfry's `--config`, `--set`; wok's `--quiet`).
#[derive(Debug, Clone, Default)]
pub struct Globals {
    pub config: Option<PathBuf>,
    pub set: Vec<String>,
    /// No progress bars, even on a terminal (summary lines are still printed).
    pub quiet: bool,
}

impl Globals {
    /// Loads the config as strfry would, logging its warnings.
    pub fn load_config(&self) -> Result<wok::config::Loaded, wok::config::ConfigError> {
        let loaded = wok::config::load(&wok::config::LoadOptions {
            config_path: self.config.clone(),
            overrides: self.set.clone(),
        })?;
        for w in &loaded.warnings {
            log::warn!("{w}");
        }
        Ok(loaded)
    }

    /// Loads the config and opens the store at its `db` directory; errors are printed.
    pub fn open_store(&self) -> Option<(wok::config::Config, wok::store::Store)> {
        let cfg = match self.load_config() {
            Ok(l) => l.config,
            Err(e) => {
                eprintln!("error: {e}");
                return None;
            }
        };
        let store = open_store_for(&cfg)?;
        Some((cfg, store))
    }
}

/// Opens the store at `cfg.db`; errors are printed.
pub fn open_store_for(cfg: &wok::config::Config) -> Option<wok::store::Store> {
    let opts = wok::store::StoreOptions::from_config(cfg);
    match wok::store::Store::open(std::path::Path::new(&cfg.db), &opts) {
        Ok(store) => Some(store),
        Err(e) => {
            eprintln!("error: cannot open database {}: {e}", cfg.db);
            None
        }
    }
}
