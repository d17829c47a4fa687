//! `wok`: the relay and its toolbox, with strfry's global flags.

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use log::LevelFilter;
use wok::logging;

#[derive(Debug, Parser)]
#[command(
    name = "wok",
    version = wok::LONG_VERSION,
    about = "A Nostr relay and toolbox, drop-in compatible with strfry",
    arg_required_else_help = true
)]
struct Cli {
    /// Config file [default: $STRFRY_CONFIG, else /etc/strfry.conf, else ./strfry.conf,
    /// else the built-in strfry-compat.conf]
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Override a config key, e.g. --set relay.port=7778 (or relay__port=7778); repeatable
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,

    /// Log level: ERROR, WARN, INFO or 1 (debug)
    #[arg(long, global = true, value_name = "LEVEL", default_value = "INFO", value_parser = logging::parse_verbosity)]
    verbosity: LevelFilter,

    /// No progress bars on stderr (they are drawn only when stderr is a terminal); the
    /// one-line summary at the end is still printed
    #[arg(long, short = 'q', global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a config file or print the effective configuration
    #[command(subcommand)]
    Config(cmd::config::ConfigCmd),
    /// Run the relay (WebSocket and HTTP on relay.bind:relay.port)
    Relay,
    /// Import JSONL events from stdin
    Import(cmd::import::ImportArgs),
    /// Export events as JSONL to stdout, by created_at
    Export(cmd::export::ExportArgs),
    /// Run a filter through the query engine and print the matching events
    Scan(cmd::scan::ScanArgs),
    /// Delete events by age and/or filter
    Delete(cmd::delete::DeleteArgs),
    /// Apply the retention rules (retention { rules { … } }) now, offline
    Prune(cmd::prune::PruneArgs),
    /// zstd dictionaries for stored events: stats, train, compress, decompress
    #[command(subcommand)]
    Dict(cmd::dict::DictCmd),
    /// Write a compacted copy of the database to a file or stdout
    Compact(cmd::compact::CompactArgs),
    /// Print the database version, event count and table sizes
    Info(cmd::info::InfoArgs),
    /// Print deterministic, validly signed test events as JSONL
    Gen(cmd::gen::GenArgs),
    /// Reconcile with another relay over NIP-77 (negentropy) and transfer the difference
    Sync(cmd::sync::SyncArgs),
    /// A live link to another relay: store its new events, send ours, or both
    Stream(cmd::stream::StreamArgs),
    /// Many stream links from a router config file (reloaded when it changes)
    Router(cmd::router::RouterArgs),
    /// Send JSONL events from stdin to a relay, a window in flight; exits once all are answered
    Upload(cmd::transfer::UploadArgs),
    /// Print a relay's events for a filter as JSONL, until EOSE
    Download(cmd::transfer::DownloadArgs),
    /// Load scenarios against any relay URL: ingest, query, fanout, conns
    Bench(cmd::bench::BenchArgs),
    /// Manage stored negentropy trees: list, add <filter>, build <id>, remove <id>
    #[command(subcommand)]
    Negentropy(cmd::negentropy::NegentropyCmd),
    /// NIP-86 relay management: bans, allowlists, kinds, blocked IPs, relay info, on the DB
    /// or (--url) on a running relay
    Admin(cmd::admin::AdminArgs),
    /// The NIP-50 search index: build, rebuild, drop, inspect [--check] [--word W]
    #[command(subcommand)]
    Search(cmd::search::SearchCmd),
}

/// Every `--set` of the command line, in order. clap keeps only the occurrences after the
/// subcommand when `--set` appears both before and after it (`wok --set db=x sync URL --set
/// k=v` would lose `db=x`), so the values are read off the arguments themselves; `parsed`
/// (what clap kept) is the fallback if none can be read.
fn all_sets(parsed: &[String]) -> Vec<String> {
    // args_os: a non-UTF-8 argument must not panic here (clap has already judged them).
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut out = Vec::new();
    let mut i = 1;
    while i < args.len() {
        if args[i] == "--" {
            break;
        }
        if args[i] == "--set" {
            if let Some(v) = args.get(i + 1) {
                out.push(v.clone());
            }
            i += 2;
            continue;
        }
        if let Some(v) = args[i].strip_prefix("--set=") {
            out.push(v.to_owned());
        }
        i += 1;
    }
    if out.len() < parsed.len() {
        return parsed.to_vec();
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbosity);
    let globals = cmd::Globals {
        config: cli.config,
        set: all_sets(&cli.set),
        quiet: cli.quiet,
    };
    match &cli.command {
        Command::Config(c) => cmd::config::run(c, &globals),
        Command::Gen(a) => cmd::gen::run(a),
        Command::Relay => cmd::relay::run(&globals),
        Command::Import(a) => cmd::import::run(a, &globals),
        Command::Export(a) => cmd::export::run(a, &globals),
        Command::Scan(a) => cmd::scan::run(a, &globals),
        Command::Delete(a) => cmd::delete::run(a, &globals),
        Command::Prune(a) => cmd::prune::run(a, &globals),
        Command::Dict(c) => cmd::dict::run(c, &globals),
        Command::Compact(a) => cmd::compact::run(a, &globals),
        Command::Info(a) => cmd::info::run(a, &globals),
        Command::Sync(a) => cmd::sync::run(a, &globals),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Upload(a) => cmd::transfer::upload(a, &globals),
        Command::Stream(a) => cmd::stream::run(a, &globals),
        Command::Router(a) => cmd::router::run(a, &globals),
        Command::Download(a) => cmd::transfer::download(a, &globals),
        Command::Negentropy(c) => cmd::negentropy::run(c, &globals),
        Command::Admin(a) => cmd::admin::run(a, &globals),
        Command::Search(c) => cmd::search::run(c, &globals),
    }
}
