//! `wok bench <scenario> <url>`: load scenarios against any relay (`wok::bench`). Prints
//! one line per figure, or JSON lines with `--json` (what scripts/bench-vs-strfry.sh reads).

use std::process::ExitCode;

use wok::bench::{self, Report};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
    /// The relay's process id: its CPU time and RSS are sampled from /proc around the run
    #[arg(long, global = true)]
    pid: Option<u32>,
    /// Print JSON lines: {"scenario","name","value","unit"}
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Scenario {
    /// C connections with W EVENTs in flight each: events/s and send→OK latency
    Ingest {
        url: String,
        #[arg(long, default_value_t = 64)]
        conns: usize,
        #[arg(long, default_value_t = 32)]
        inflight: usize,
        #[arg(long, default_value_t = 60_000)]
        events: usize,
        /// Seed of the generated events (use a new one per run: duplicates are not ingest)
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Send at this many events/s in all (a steady load, for latency), not as fast as
        /// the relay answers (0)
        #[arg(long, default_value_t = 0)]
        rate: u64,
    },
    /// A REQ mix from C clients on a relay preloaded with `wok gen --count N --seed S`
    Query {
        url: String,
        #[arg(long, default_value_t = 16)]
        clients: usize,
        /// REQs per client
        #[arg(long, default_value_t = 500)]
        queries: usize,
        /// The --count the relay's data was generated with
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        /// The --seed the relay's data was generated with
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// S subscribers (broad and narrow filters), one publisher at a fixed rate
    Fanout {
        url: String,
        #[arg(long, default_value_t = 1000)]
        subs: usize,
        #[arg(long, default_value_t = 200)]
        events: usize,
        /// Published events per second
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
    },
    /// F connections flooding EVENTs and REQs without waiting; a polite client's REQ→EOSE
    /// and EVENT→OK times, unloaded and under the flood
    Fairness {
        url: String,
        /// Send the flood to this relay instead of URL (a control: the polite figures then
        /// show what the load generator's own work on this machine costs them)
        #[arg(long)]
        flood_url: Option<String>,
        #[arg(long, default_value_t = 8)]
        flooders: usize,
        /// Events per flooder (sent again once used up)
        #[arg(long, default_value_t = 5_000)]
        flood_events: usize,
        /// The --count the relay's data was generated with (the flood's EVENTs)
        #[arg(long, default_value_t = 100_000)]
        count: usize,
        /// The --seed the relay's data was generated with
        #[arg(long, default_value_t = 1)]
        data_seed: u64,
        /// Flood with never-seen events (the writer and live fanout then carry it too)
        #[arg(long)]
        fresh: bool,
        /// Polite REQs (and EVENTs) per phase
        #[arg(long, default_value_t = 200)]
        polite: usize,
        /// Milliseconds from the start of one polite round (a REQ and an EVENT) to the next;
        /// 0 sends the next as soon as the last is answered. Pacing keeps a long run under the
        /// default per-IP REQ rate (100/s) and is closer to a real app
        #[arg(long, default_value_t = 0.0)]
        polite_every_ms: f64,
        /// Seconds of flood before the polite client measures
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Seed of the polite client's (and --fresh) events: a new one per run
        #[arg(long, default_value_t = 11)]
        seed: u64,
        /// Source address of the flooders (e.g. 127.0.0.2), so per-IP limits see them apart
        #[arg(long)]
        flood_from: Option<std::net::IpAddr>,
        /// Source address of the polite client (e.g. 127.0.0.3)
        #[arg(long)]
        polite_from: Option<std::net::IpAddr>,
        /// Flood with malformed messages (bad JSON, unknown verbs, broken events, short
        /// arrays), each answered with a NOTICE or OK false, instead of EVENTs and REQs
        #[arg(long)]
        malformed: bool,
        /// Nice value of the flooding threads (0-19; 20 = SCHED_IDLE, below every nice value,
        /// as a relay's busy lane runs at 19): stands in for a flood that comes from other
        /// machines, whose generator does not take this machine's cores from the relay
        #[arg(long, default_value_t = 0)]
        flood_nice: i32,
    },
    /// K idle connections holding one subscription each
    Conns {
        url: String,
        #[arg(long, default_value_t = 2000)]
        conns: usize,
    },
    /// Draw a results file (JSON lines from --json, or bench-results.jsonl) as an SVG:
    /// latency, throughput, relay CPU and RSS over time, one line per relay
    Plot {
        results: std::path::PathBuf,
        /// Where to write the SVG (default: the results file with the extension .svg)
        #[arg(long, short)]
        out: Option<std::path::PathBuf>,
    },
}

pub fn run(args: &BenchArgs) -> ExitCode {
    let mut r = Report::default();
    let pid = args.pid;
    let result = match &args.scenario {
        Scenario::Ingest {
            url,
            conns,
            inflight,
            events,
            seed,
            rate,
        } => bench::ingest::run(
            &bench::ingest::IngestOptions {
                url: url.clone(),
                conns: *conns,
                inflight: *inflight,
                events: *events,
                seed: *seed,
                rate: *rate,
                pid,
            },
            &mut r,
        ),
        Scenario::Query {
            url,
            clients,
            queries,
            count,
            seed,
        } => bench::query::run(
            &bench::query::QueryOptions {
                url: url.clone(),
                clients: *clients,
                queries: *queries,
                count: *count,
                seed: *seed,
                pid,
            },
            &mut r,
        ),
        Scenario::Fanout {
            url,
            subs,
            events,
            rate,
        } => bench::fanout::run(
            &bench::fanout::FanoutOptions {
                url: url.clone(),
                subs: *subs,
                events: *events,
                rate: *rate,
                pid,
            },
            &mut r,
        ),
        Scenario::Fairness {
            url,
            flood_url,
            flooders,
            flood_events,
            count,
            data_seed,
            fresh,
            polite,
            polite_every_ms,
            warmup,
            seed,
            flood_from,
            polite_from,
            malformed,
            flood_nice,
        } => bench::fairness::run(
            &bench::fairness::FairnessOptions {
                url: url.clone(),
                flood_url: flood_url.clone(),
                flooders: *flooders,
                flood_events: *flood_events,
                count: *count,
                data_seed: *data_seed,
                fresh: *fresh,
                polite: *polite,
                polite_every: std::time::Duration::from_secs_f64(
                    polite_every_ms.clamp(0.0, 60_000.0) / 1e3,
                ),
                warmup: std::time::Duration::from_secs_f64(warmup.clamp(0.0, 600.0)),
                seed: *seed,
                pid,
                flood_from: *flood_from,
                polite_from: *polite_from,
                malformed: *malformed,
                flood_nice: (*flood_nice).clamp(0, 20),
            },
            &mut r,
        ),
        Scenario::Plot { results, out } => {
            let out = out.clone().unwrap_or_else(|| results.with_extension("svg"));
            return match bench::plot::plot_file(results, &out) {
                Ok(()) => {
                    eprintln!("plot: {}", out.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: bench plot: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Scenario::Conns { url, conns } => bench::conns::run(
            &bench::conns::ConnsOptions {
                url: url.clone(),
                conns: *conns,
                pid,
            },
            &mut r,
        ),
    };
    for f in &r.figures {
        if args.json {
            let mut j = serde_json::json!({"scenario": f.scenario, "name": f.name, "value": f.value, "unit": f.unit});
            if let Some(t) = f.t {
                j["t"] = t.into();
            }
            println!("{j}");
        } else if f.t.is_none() {
            // Time-series samples are for `wok bench plot`; the text output stays one line
            // per figure.
            println!("{} {}: {:.3} {}", f.scenario, f.name, f.value, f.unit);
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: bench: {e}");
            ExitCode::FAILURE
        }
    }
}
