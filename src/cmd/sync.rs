//! `wok sync <url>`: NIP-77 reconciliation with another relay, then the transfers
//! (`wok::mesh::sync`). The default direction is `down`, on purpose: strfry's code defaults
//! to `both` (its README says down), and a `both` nobody asked for uploads a whole local
//! database to someone else's relay. Uploading is something to ask for.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use wok::mesh::sync::{self, Dir, SyncOptions};
use wok::mesh::ws::WsClient;
use wok::nostr::hex;

use super::progress::{Progress, Total};
use super::util;
use super::Globals;

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// Relay URL (ws://)
    url: String,
    /// Which way events move
    #[arg(long, value_enum, default_value_t = Dir::Down)]
    dir: Dir,
    /// One filter object (or an array holding one) selecting the events to reconcile
    #[arg(long, value_name = "FILTER", default_value = "{}")]
    filter: String,
    /// Time range relative to now, START-END, e.g. 2M- or 1Y-3w (units s m h d w M Y)
    #[arg(long, value_name = "RANGE")]
    range: Option<String>,
    /// Print `have,<id>` and `need,<id>` lines instead of transferring (implies --dir none)
    #[arg(long)]
    print_missing: bool,
    /// Largest negentropy message to send, in bytes (0 = unlimited, else at least 4096)
    #[arg(long, value_name = "N", default_value_t = 60_000)]
    frame_size_limit: u64,
    /// Give up after this many seconds without a message from the relay (0 = never; strfry's
    /// default, which waits forever on a relay that goes silent)
    #[arg(long, value_name = "S", default_value_t = 60)]
    timeout: u64,
}

pub fn run(args: &SyncArgs, g: &Globals) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("error: sync: {msg}");
        ExitCode::FAILURE
    };
    if args.frame_size_limit != 0 && args.frame_size_limit < 4096 {
        return fail("--frame-size-limit must be 0 or at least 4096".into());
    }
    let mut filters = match util::filters_with_range(&args.filter, args.range.as_deref()) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    if filters.len() != 1 {
        return fail("negentropy reconciles one filter; give one object".into());
    }
    let filter = filters.remove(0);
    let Some((cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    let limits = cfg.event_limits();
    let max_message = to_usize(
        (args.frame_size_limit.max(500_000) * 2 + 1024).max(cfg.events.max_event_size * 4),
    );
    // How much there is to move is known only as the rounds go: a spinner. Items are the
    // events moved either way, bytes the WebSocket bytes both ways.
    let progress = Progress::start(g, "sync", "events", true, Total::Unknown);
    progress.message(format!("connecting to {}", args.url));
    let mut ws = match WsClient::connect(&args.url, max_message) {
        Ok(ws) => ws,
        Err(e) => {
            progress.clear();
            return fail(e);
        }
    };
    let opts = SyncOptions {
        dir: if args.print_missing {
            Dir::None
        } else {
            args.dir
        },
        filter,
        print_missing: args.print_missing,
        frame_size_limit: args.frame_size_limit,
        timeout: (args.timeout > 0).then(|| Duration::from_secs(args.timeout)),
        limits,
        plugin: cfg.relay.write_policy.plugin.clone(),
        plugin_timeout: Duration::from_secs(cfg.relay.write_policy.timeout_seconds.max(1)),
        source_type: "Sync",
        url: args.url.clone(),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = sync::run(
        &store,
        &mut ws,
        &opts,
        |s| {
            progress.set(s.downloaded + s.uploaded, s.bytes_up + s.bytes_down);
            progress.message(format!(
                "round {}: have {}, need {}, down {}, up {}",
                s.rounds, s.have, s.need, s.downloaded, s.uploaded
            ));
        },
        |what, id| {
            if args.print_missing {
                let _ = writeln!(out, "{what},{}", hex::encode(id));
            }
        },
    );
    let _ = out.flush();
    progress.clear();
    ws.close();
    match result {
        Ok(s) => {
            // `blocked` only when some were, so an unbanned DB's line is as before.
            let blocked = if s.down_blocked > 0 {
                format!(", blocked {}", s.down_blocked)
            } else {
                String::new()
            };
            eprintln!(
                "have {}, need {}, downloaded {}, uploaded {}{blocked}",
                s.have, s.need, s.downloaded, s.uploaded
            );
            if s.up_unreadable > 0 {
                eprintln!(
                    "warning: {} local events not uploaded: their payload could not be read \
                     (missing zstd dictionary or corrupt row; see the log)",
                    s.up_unreadable
                );
            }
            log::info!(
                "sync: {} rounds, {} bytes up, {} bytes down; {} downloads and {} uploads refused",
                s.rounds,
                s.bytes_up,
                s.bytes_down,
                s.down_rejected,
                s.up_rejected
            );
            progress.set(s.downloaded + s.uploaded, s.bytes_up + s.bytes_down);
            progress.finish();
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
