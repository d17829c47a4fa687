//! `wok router <config>`: strfry's router — many stream links in one process, from a
//! taoCONFIG file that is re-read when it changes (`wok::mesh::router`). Runs until SIGINT
//! or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
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
    if let Err(e) = std::fs::read_to_string(&args.router_config)
        .map_err(|e| {
            format!(
                "cannot read router config {}: {e}",
                args.router_config.display()
            )
        })
        .and_then(|t| router::parse_config(&t, &args.router_config.display().to_string()))
    {
        eprintln!("error: router: {e}");
        return ExitCode::FAILURE;
    }
    let Some((cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("error: router: cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    }
    let settings = RouterSettings {
        limits: cfg.event_limits(),
        plugin_timeout: Duration::from_secs(cfg.relay.write_policy.timeout_seconds.max(1)),
    };
    match router::run(&store, &args.router_config, &settings, &stop) {
        Ok(()) => {
            eprintln!("router stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: router: {e}");
            ExitCode::FAILURE
        }
    }
}
