//! `wok router <config>`: strfry's router — many stream links in one process, from a
//! taoCONFIG file that is re-read when it changes (`wok::mesh::router`). Runs until SIGINT
//! or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use wok::mesh::router::{self, RouterSettings};

use super::Globals;

#[derive(Debug, clap::Args)]
pub struct RouterArgs {
    /// Router config (taoCONFIG): connectionTimeout, verbose, streams { group { dir, urls,
    /// filter, pluginDown, pluginUp } }
    // Not named `config`: that would shadow the global `--config` (clap shares the id).
    #[arg(value_name = "ROUTER_CONFIG")]
    router_config: PathBuf,
}

pub fn run(args: &RouterArgs, g: &Globals) -> ExitCode {
    // A bad router config is reported before the DB is opened.
    let loaded = match router::load(&args.router_config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: router: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some((cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    let stop = match super::util::stop_on_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: router: {e}");
            return ExitCode::FAILURE;
        }
    };
    let settings = RouterSettings {
        limits: cfg.event_limits(),
        plugin_timeout: Duration::from_secs(cfg.relay.write_policy.timeout_seconds.max(1)),
    };
    if let Err(e) = router::run(&store, &args.router_config, loaded, &settings, &stop) {
        eprintln!("error: router: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("router stopped");
    ExitCode::SUCCESS
}
