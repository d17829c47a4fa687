//! `wok stream <url> [--dir down|up|both]`: a live link to another relay (`wok::mesh::stream`),
//! until SIGINT or SIGTERM. strfry's default direction (`down`) is kept.

use std::process::ExitCode;
use std::time::Duration;

use wok::mesh::stream::{self, StreamOptions};
use wok::mesh::sync::Dir;

use super::Globals;

#[derive(Debug, clap::Args)]
pub struct StreamArgs {
    /// Relay URL (ws:// or wss://)
    url: String,
    /// down: store the relay's new events; up: send local new events; both
    #[arg(long, value_enum, default_value_t = Dir::Down)]
    dir: Dir,
}

pub fn run(args: &StreamArgs, g: &Globals) -> ExitCode {
    if args.dir == Dir::None {
        eprintln!("error: stream: --dir must be down, up or both");
        return ExitCode::FAILURE;
    }
    let Some((cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    let stop = match super::util::stop_on_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: stream: {e}");
            return ExitCode::FAILURE;
        }
    };
    // strfry's stream consults the relay's write policy for what it downloads.
    let mut opts = StreamOptions::new(&args.url, args.dir, cfg.event_limits());
    opts.plugin_down = cfg.relay.write_policy.plugin.clone();
    opts.plugin_timeout = Duration::from_secs(cfg.relay.write_policy.timeout_seconds.max(1));
    match stream::run(&store, &opts, &stop) {
        Ok(s) => {
            eprintln!(
                "stream ended: {} events down{}, {} up ({} refused), {} reconnects",
                s.down,
                s.blocked_note(),
                s.up,
                s.up_rejected,
                s.reconnects
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: stream: {e}");
            ExitCode::FAILURE
        }
    }
}
