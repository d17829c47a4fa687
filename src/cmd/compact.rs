//! `wok compact`: a compacted copy of the LMDB file (free pages dropped), to a new file or
//! to stdout. The copy is a raw `data.mdb`: put it in a directory of its own to open it.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use heed::CompactionOption;

use super::Globals;

#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    /// Output file (must not exist yet), or `-` for stdout
    #[arg(value_name = "OUTPUT_FILE")]
    output: PathBuf,
}

pub fn run(args: &CompactArgs, g: &Globals) -> ExitCode {
    let to_stdout = args.output.as_os_str() == "-";
    if to_stdout && io::stdout().is_terminal() {
        eprintln!("error: compact -: refusing to write a database to a terminal; redirect stdout");
        return ExitCode::FAILURE;
    }
    if !to_stdout && args.output.exists() {
        eprintln!(
            "error: compact: {} already exists; refusing to overwrite",
            args.output.display()
        );
        return ExitCode::FAILURE;
    }
    let Some((_cfg, store)) = g.open_store() else {
        return ExitCode::FAILURE;
    };
    let mut file = if to_stdout {
        match io::stdout().as_fd().try_clone_to_owned() {
            Ok(fd) => File::from(fd),
            Err(e) => {
                eprintln!("error: compact: stdout: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&args.output)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                eprintln!(
                    "error: compact: {} already exists; refusing to overwrite",
                    args.output.display()
                );
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("error: compact: {}: {e}", args.output.display());
                return ExitCode::FAILURE;
            }
        }
    };
    let res = store
        .env()
        .copy_to_file(&mut file, CompactionOption::Enabled)
        .and_then(|()| {
            if to_stdout {
                Ok(())
            } else {
                Ok(file.sync_all()?)
            }
        });
    match res {
        Ok(()) => {
            if !to_stdout {
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                log::info!("Compacted into {} ({size} bytes)", args.output.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: compact: {e}");
            if !to_stdout {
                drop(file);
                let _ = std::fs::remove_file(&args.output);
            }
            ExitCode::FAILURE
        }
    }
}
