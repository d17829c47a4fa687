//! `wok gen`: deterministic, validly signed, realistic events as canonical JSONL on stdout,
//! for tests, benchmarks and `wok import` (see [`wok::gen`]).

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Args;
use wok::gen::{self, GenConfig};

#[derive(Debug, Args)]
pub struct GenArgs {
    /// PRNG seed: the same arguments always print the same bytes
    #[arg(long, default_value_t = gen::DEFAULT_SEED)]
    pub seed: u64,
    /// Number of events
    #[arg(long, default_value_t = gen::DEFAULT_COUNT)]
    pub count: usize,
    /// Number of distinct authors (activity follows a power law)
    #[arg(long, default_value_t = gen::DEFAULT_AUTHORS)]
    pub authors: usize,
    /// Earliest created_at (unix seconds)
    #[arg(long, default_value_t = gen::DEFAULT_START, value_name = "UNIX_SECS")]
    pub start: u64,
    /// Width of the created_at range, in seconds
    #[arg(long, default_value_t = gen::DEFAULT_SPAN_SECS, value_name = "SECS")]
    pub span: u64,
    /// Signing threads (0: all cores); does not change the output
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

pub fn run(args: &GenArgs) -> ExitCode {
    let cfg = GenConfig {
        seed: args.seed,
        count: args.count,
        authors: args.authors,
        start: args.start,
        span_secs: args.span,
    };
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let r = gen::try_generate_into(&cfg, args.threads, |ev| {
        out.write_all(ev.json())?;
        out.write_all(b"\n")
    })
    .and_then(|()| out.flush());
    match r {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`wok gen | head`): not an error.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing events: {e}");
            ExitCode::FAILURE
        }
    }
}
