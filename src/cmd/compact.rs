//! `wok compact`: a compacted copy of the LMDB file (free pages dropped), to a new file or
//! to stdout. The copy is a raw `data.mdb`: put it in a directory of its own to open it.
//!
//! LMDB writes the copy in one call, so it runs on a thread of its own while this one
//! measures it: the output file's size, or, for stdout, the bytes passed on through a pipe
//! (a pipe's writer cannot see how much has gone through it).

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::{AsFd, FromRawFd};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use heed::CompactionOption;
use wok::store::Store;

use super::progress::{Progress, Total};
use super::Globals;

/// How often the output file's size is read for the bar.
const POLL: Duration = Duration::from_millis(200);

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
    let file = if to_stdout {
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
    let progress = Progress::start(g, "compact", "", true, Total::Bytes(estimate(&store)));
    let res = if to_stdout {
        copy_through_pipe(&store, &file, &progress)
    } else {
        copy_to_file(&store, &file, &progress)
    };
    match res {
        Ok(()) => {
            if !to_stdout {
                log::info!(
                    "Compacted into {} ({} bytes)",
                    args.output.display(),
                    progress.bytes()
                );
            }
            progress.finish();
            ExitCode::SUCCESS
        }
        Err(e) => {
            progress.clear();
            eprintln!("error: compact: {e}");
            if !to_stdout {
                drop(file);
                let _ = std::fs::remove_file(&args.output);
            }
            ExitCode::FAILURE
        }
    }
}

/// The copy's expected size: every table's pages (the copy holds those and little else).
/// Only the bar's length; the bar stretches if the copy turns out larger.
fn estimate(store: &Store) -> u64 {
    store
        .read_txn()
        .and_then(|txn| store.table_stats(&txn))
        .map_or(0, |t| t.iter().map(|(_, _, bytes)| bytes).sum())
}

/// Copies into `file` on a thread while this one reads the file's size for the bar; the
/// file is synced before returning.
fn copy_to_file(store: &Store, file: &File, progress: &Progress) -> io::Result<()> {
    let mut dest = file.try_clone()?;
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    std::thread::scope(|s| {
        s.spawn(move || {
            let r = store
                .env()
                .copy_to_file(&mut dest, CompactionOption::Enabled);
            let _ = done_tx.send(r);
        });
        let res = loop {
            // The wait for the copy is also the bar's clock.
            match done_rx.recv_timeout(POLL) {
                Ok(r) => break r.map_err(io::Error::other),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    progress.set(0, file.metadata().map_or(0, |m| m.len()));
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    break Err(io::Error::other("the copy thread stopped"));
                }
            }
        };
        res?;
        file.sync_all()?;
        progress.set(0, file.metadata()?.len());
        Ok(())
    })
}

/// Copies into a pipe on a thread and passes what comes out on to `out` (stdout), counting
/// the bytes.
fn copy_through_pipe(store: &Store, out: &File, progress: &Progress) -> io::Result<()> {
    let mut out = out;
    let (mut from, to) = pipe()?;
    std::thread::scope(|s| {
        let copier = s.spawn(move || {
            let mut to = to;
            // `to` is closed when this returns, which ends the reading below.
            store.env().copy_to_file(&mut to, CompactionOption::Enabled)
        });
        let mut buf = vec![0u8; 1 << 20];
        let passed = loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            };
            if let Err(e) = out.write_all(&buf[..n]) {
                break Err(e);
            }
            progress.add(0, n as u64);
        };
        // Closing our end makes a copy still writing fail (EPIPE) instead of blocking.
        drop(from);
        let copied = copier.join().unwrap_or_else(|_| {
            Err(heed::Error::Io(io::Error::other(
                "the copy thread panicked",
            )))
        });
        passed?;
        copied.map_err(io::Error::other)
    })
}

/// A pipe: (read end, write end).
fn pipe() -> io::Result<(File, File)> {
    let mut fds: [libc::c_int; 2] = [0; 2];
    // SAFETY: pipe(2) writes two new descriptors into `fds`; nothing else refers to them.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}
