//! Progress bars and summary lines, through the real binary. Every long command runs three
//! ways on its own copy of one DB: with stderr on a pseudo-terminal, the same with
//! `--quiet`, and with stderr on a pipe. The bar must be drawn only in the first case, the
//! one-line summary must be there in all three, and stdout must be the same in all three.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, OnceLock};

use common::{Running, RUN_LIMIT, WAIT};
use indicatif::HumanBytes;
use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;

/// Events generated into the shared DB. The bar is drawn as soon as a command starts, so a
/// small DB is enough to see it; this many also gives the import and dict steps real work.
const EVENTS: &str = "2000";

/// The frames of the spinner every bar starts with (indicatif's, set in
/// src/cmd/progress.rs), without its blank last frame.
const TICKS: &str = "⠁⠂⠄⡀⢀⠠⠐⠈";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode3 {
    /// stderr is a terminal: a bar.
    Tty,
    /// stderr is a terminal but `--quiet` was given: no bar.
    TtyQuiet,
    /// stderr is a pipe: no bar.
    Pipe,
}

const MODES: [Mode3; 3] = [Mode3::Tty, Mode3::TtyQuiet, Mode3::Pipe];

/// What a command gets on stdin.
enum Input {
    Bytes(Vec<u8>),
    File(PathBuf),
}

struct Ran {
    mode: Mode3,
    status: ExitStatus,
    stdout: Vec<u8>,
    /// Everything written to stderr, escape sequences and carriage returns included.
    stderr: String,
}

/// A DB directory with a config file pointing at it.
struct Db {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl Db {
    fn empty() -> Db {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("wok.conf");
        let db = dir.path().join("db");
        std::fs::write(&conf, format!("db = \"{}/\"\n", db.display())).expect("write conf");
        Db { dir, conf }
    }

    /// A fresh copy of the shared DB (its `data.mdb`; nothing has it open).
    fn copy() -> Db {
        let d = Db::empty();
        std::fs::create_dir(d.dir.path().join("db")).expect("mkdir db");
        std::fs::copy(
            template().dir.path().join("db/data.mdb"),
            d.dir.path().join("db/data.mdb"),
        )
        .expect("copy data.mdb");
        d
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wok"));
        c.arg("--config")
            .arg(&self.conf)
            .args(args)
            .env_remove("STRFRY_CONFIG")
            // indicatif draws nothing on a dumb (or unset) TERM; set in every mode, so the
            // terminal is the only difference between them.
            .env("TERM", "xterm-256color")
            .current_dir(self.dir.path());
        c
    }

    /// Runs `args` in `mode`; stdout is always a pipe.
    fn run(&self, mode: Mode3, args: &[&str], input: &Input) -> Ran {
        let mut all: Vec<&str> = Vec::new();
        if mode == Mode3::TtyQuiet {
            all.push("--quiet");
        }
        all.extend_from_slice(args);
        let mut cmd = self.cmd(&all);
        cmd.stdout(Stdio::piped());
        let feed = match input {
            Input::Bytes(b) => {
                cmd.stdin(Stdio::piped());
                Some(b.clone())
            }
            Input::File(p) => {
                cmd.stdin(File::open(p).expect("open input"));
                None
            }
        };
        let pty_out = match mode {
            Mode3::Pipe => {
                cmd.stderr(Stdio::piped());
                None
            }
            Mode3::Tty | Mode3::TtyQuiet => {
                let (master, slave) = pty();
                cmd.stderr(slave);
                Some(master)
            }
        };
        let mut child = cmd.spawn().expect("spawn wok");
        // The Command still holds the terminal's slave end: drop it, so that the master
        // reads EOF (EIO) once the child has exited.
        cmd.stderr(Stdio::null());
        if let (Some(data), Some(mut stdin)) = (feed, child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
        }
        let pty_text = pty_out.map(read_all);
        let out = Running::new(child).output_within(RUN_LIMIT);
        let stderr = match pty_text {
            Some(rx) => String::from_utf8_lossy(
                &rx.recv_timeout(WAIT)
                    .expect("the terminal still open after the command ended"),
            )
            .into_owned(),
            None => String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        Ran {
            mode,
            status: out.status,
            stdout: out.stdout,
            stderr,
        }
    }
}

/// A pseudo-terminal: (master, slave). The slave is 200 columns wide, so a bar frame is one
/// line. Both ends are close-on-exec: a command other tests spawn meanwhile must not inherit
/// them (the master would never see EOF).
fn pty() -> (OwnedFd, File) {
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .expect("openpt");
    rustix::pty::grantpt(&master).expect("grantpt");
    rustix::pty::unlockpt(&master).expect("unlockpt");
    let name = rustix::pty::ptsname(&master, Vec::new()).expect("ptsname");
    rustix::termios::tcsetwinsize(
        &master,
        rustix::termios::Winsize {
            ws_row: 40,
            ws_col: 200,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .expect("set the terminal size");
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open the terminal");
    (master, File::from(slave))
}

/// Reads the terminal's master end on a thread until every slave end is closed (Linux then
/// reports EIO); the bytes arrive on the channel.
fn read_all(master: OwnedFd) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut f = File::from(master);
        let mut all = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = tx.send(all);
    });
    rx
}

/// The DB every check copies: `EVENTS` generated events and one trained dictionary.
fn template() -> &'static Db {
    static T: OnceLock<Db> = OnceLock::new();
    T.get_or_init(|| {
        let db = Db::empty();
        let gen = common::run(db.cmd(&["gen", "--count", EVENTS]).stderr(Stdio::piped()));
        assert!(gen.status.success());
        std::fs::write(db.path().join("events.jsonl"), &gen.stdout).expect("write events");
        let import = common::run_within(&mut db.cmd(&["import"]), &gen.stdout, RUN_LIMIT);
        assert!(import.status.success(), "{}", text(&import.stderr));
        let train =
            common::run(&mut db.cmd(&["dict", "train", "--limit", "300", "--dictSize", "4096"]));
        assert!(train.status.success(), "{}", text(&train.stderr));
        db
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// How many bar frames for `what` stderr holds: a spinner frame followed by the command.
fn frames(stderr: &str, what: &str) -> usize {
    TICKS
        .chars()
        .map(|t| stderr.matches(&format!("{t} {what} ")).count())
        .sum()
}

/// stderr as a reader sees it: escape sequences removed, each line as it stands after its
/// last carriage return (a bar frame overwritten by the next line is gone).
fn visible_lines(stderr: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = stderr.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            // Parameters, then one final byte in @..~.
            for f in chars.by_ref() {
                if ('@'..='~').contains(&f) {
                    break;
                }
            }
            continue;
        }
        plain.push(c);
    }
    plain
        .split('\n')
        .map(|l| {
            let l = l.trim_end_matches('\r');
            l.rsplit('\r').next().unwrap_or(l).to_owned()
        })
        .collect()
}

/// The one summary line for `what` (`what: …`); fails unless there is exactly one.
fn summary(r: &Ran, what: &str) -> String {
    let prefix = format!("{what}: ");
    let found: Vec<String> = visible_lines(&r.stderr)
        .into_iter()
        .filter(|l| l.starts_with(&prefix))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{:?}: one summary line {prefix:?} expected in:\n{:?}",
        r.mode,
        r.stderr
    );
    let line = found[0].clone();
    assert!(line.contains(" in ") && line.contains(" s"), "{line}");
    line
}

/// Runs `args` in the three modes, each on a DB from `db`, and checks the rules every long
/// command follows: success, a bar on the terminal only, one summary line always, the same
/// stdout. Returns the runs (terminal, quiet, pipe) and their summary lines.
fn check(
    db: impl Fn() -> Db,
    args: &[&str],
    input: impl Fn(&Db) -> Input,
    what: &str,
) -> Vec<(Ran, String)> {
    let runs: Vec<(Ran, String)> = MODES
        .iter()
        .map(|&mode| {
            let d = db();
            let r = d.run(mode, args, &input(&d));
            assert!(
                r.status.success(),
                "{mode:?}: wok {args:?} failed:\n{}",
                r.stderr
            );
            let n = frames(&r.stderr, what);
            match mode {
                Mode3::Tty => assert!(n > 0, "{mode:?}: no bar for {what:?} in:\n{:?}", r.stderr),
                Mode3::TtyQuiet | Mode3::Pipe => {
                    assert_eq!(n, 0, "{mode:?}: a bar for {what:?} in:\n{:?}", r.stderr);
                    // Nothing a terminal would interpret: no cursor moves, no line clearing.
                    assert!(
                        !r.stderr.contains('\x1b'),
                        "{mode:?}: escape codes in:\n{:?}",
                        r.stderr
                    );
                }
            }
            let s = summary(&r, what);
            (r, s)
        })
        .collect();
    for (r, _) in &runs[1..] {
        assert!(
            r.stdout == runs[0].0.stdout,
            "{:?}: stdout differs from the terminal run's",
            r.mode
        );
    }
    runs
}

fn no_input(_: &Db) -> Input {
    Input::Bytes(Vec::new())
}

/// The number of JSON lines in `out`, each checked to be an event object.
fn jsonl_events(out: &[u8]) -> usize {
    let t = std::str::from_utf8(out).expect("stdout is UTF-8");
    t.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            assert!(v["id"].is_string(), "not an event: {l}");
        })
        .count()
}

#[test]
fn export_draws_on_stderr_only_and_stdout_is_exactly_the_jsonl() {
    let runs = check(Db::copy, &["export"], no_input, "export");
    let (tty, line) = &runs[0];
    let n = jsonl_events(&tty.stdout);
    assert!(n > 1000, "{n} events exported");
    // No byte of the bar or the summary in the stream: it is the JSONL and nothing else.
    let out = text(&tty.stdout);
    assert!(!out.contains('\x1b') && !out.contains('\r') && !out.contains("export"));
    assert!(TICKS.chars().all(|t| !out.contains(t)));
    assert!(out.ends_with("}\n"));
    let bytes = HumanBytes(tty.stdout.len() as u64).to_string();
    for (r, s) in &runs {
        assert!(
            s.starts_with(&format!("export: {n} events, {bytes} in ")),
            "{:?}: {s}",
            r.mode
        );
        assert!(s.contains("events/s"), "{s}");
    }
    // The bar counts against the DB's event count.
    assert!(
        tty.stderr.contains(&format!("/{n} events")),
        "{line}: {:?}",
        tty.stderr
    );
}

#[test]
fn export_of_a_time_range_has_a_spinner() {
    let runs = check(Db::copy, &["export", "--since", "1"], no_input, "export");
    let n = jsonl_events(&runs[0].0.stdout);
    assert!(runs[0].1.starts_with(&format!("export: {n} events, ")));
}

#[test]
fn scan_and_scan_count() {
    let runs = check(Db::copy, &["scan", r#"{"kinds":[1]}"#], no_input, "scan");
    let n = jsonl_events(&runs[0].0.stdout);
    assert!(n > 0);
    for (_, s) in &runs {
        assert!(s.starts_with(&format!("scan: {n} events, ")), "{s}");
    }
    let runs = check(
        Db::copy,
        &["scan", "--count", r#"{"kinds":[1]}"#],
        no_input,
        "scan --count",
    );
    assert_eq!(text(&runs[0].0.stdout), format!("{n}\n"));
    for (_, s) in &runs {
        assert!(
            s.starts_with(&format!("scan --count: {n} events in ")),
            "{s}"
        );
    }
}

#[test]
fn delete_and_dry_run() {
    let filter = r#"{"kinds":[1]}"#;
    let count = |d: &Db| {
        let o = common::run(&mut d.cmd(&["scan", "--count", filter]));
        text(&o.stdout).trim().to_owned()
    };
    let n = count(&Db::copy());
    let runs = check(
        Db::copy,
        &["delete", "--dry-run", "--filter", filter],
        no_input,
        "delete --dry-run",
    );
    for (_, s) in &runs {
        assert!(
            s.starts_with(&format!("delete --dry-run: {n} events, ")),
            "{s}"
        );
    }
    let runs = check(
        Db::copy,
        &["delete", "--filter", filter],
        no_input,
        "delete",
    );
    for (r, s) in &runs {
        assert!(
            s.starts_with(&format!("delete: {n} events, ")),
            "{:?}: {s}",
            r.mode
        );
        // strfry's log line is still there, on a line of its own: the bar is cleared
        // before a log line and drawn again below it, never torn by it.
        let logged = format!("Deleted {n} events");
        assert!(
            visible_lines(&r.stderr)
                .iter()
                .any(|l| l.ends_with(&logged) && l.starts_with(|c: char| c.is_ascii_digit())),
            "{:?}: {:?}",
            r.mode,
            r.stderr
        );
    }
}

#[test]
fn compact_to_a_file_and_to_stdout() {
    let runs = check(Db::copy, &["compact", "copy.mdb"], no_input, "compact");
    assert!(runs[0].0.stdout.is_empty());
    let runs_out = check(Db::copy, &["compact", "-"], no_input, "compact");
    let size = runs_out[0].0.stdout.len() as u64;
    assert!(size > 1 << 20, "{size} bytes");
    for (_, s) in runs.iter().chain(&runs_out) {
        assert!(
            s.starts_with(&format!("compact: {} in ", HumanBytes(size))),
            "{s}"
        );
    }
}

#[test]
fn info() {
    let runs = check(Db::copy, &["info"], no_input, "info");
    let out = text(&runs[0].0.stdout);
    let events = out
        .lines()
        .find_map(|l| l.strip_prefix("Events: "))
        .expect("Events line");
    for (_, s) in &runs {
        assert!(
            s.starts_with(&format!("info: {events} events, 20 tables holding ")),
            "{s}"
        );
    }
}

#[test]
fn dict_commands_keep_strfrys_lines_and_add_the_summary() {
    let runs = check(Db::copy, &["dict", "stats"], no_input, "dict stats");
    assert!(text(&runs[0].0.stdout).starts_with("Num compressed: 0 / "));
    let runs = check(
        Db::copy,
        &["dict", "train", "--limit", "300", "--dictSize", "4096"],
        no_input,
        "dict train",
    );
    for (r, s) in &runs {
        // Each run trains on its own copy, which already has dictionary 1.
        assert_eq!(text(&r.stdout), "Saved new dictionary, dictId = 2\n");
        assert!(s.starts_with("dict train: 300 events, "), "{s}");
        assert!(s.contains(", dictionary 2 of 4.00 KiB in "), "{s}");
    }
    let runs = check(
        Db::copy,
        &["dict", "compress", "--dictId", "1"],
        no_input,
        "dict compress",
    );
    for (r, s) in &runs {
        assert!(s.contains(" stored compressed, now "), "{s}");
        assert!(
            r.stderr.contains("events stored compressed"),
            "strfry's line: {:?}",
            r.stderr
        );
    }
    check(
        Db::copy,
        &["dict", "decompress"],
        no_input,
        "dict decompress",
    );
}

#[test]
fn negentropy_build() {
    let runs = check(
        Db::copy,
        &["negentropy", "build", "1"],
        no_input,
        "negentropy build",
    );
    let out = text(&runs[0].0.stdout);
    let n = out
        .trim()
        .strip_prefix("built tree 1: ")
        .and_then(|s| s.strip_suffix(" events"))
        .expect("strfry-style line");
    for (_, s) in &runs {
        assert!(
            s.starts_with(&format!("negentropy build: {n} events of ")),
            "{s}"
        );
        assert!(s.contains(" read, into tree 1 in "), "{s}");
    }
}

#[test]
fn import_from_a_file_and_from_a_pipe() {
    let events = template().path().join("events.jsonl");
    let lines = std::fs::read(&events).expect("events");
    let n = lines.iter().filter(|&&b| b == b'\n').count();
    let size = HumanBytes(lines.len() as u64).to_string();
    // A file on stdin: a bar over its bytes.
    let runs = check(
        Db::empty,
        &["import"],
        |_| Input::File(events.clone()),
        "import",
    );
    assert!(
        runs[0].0.stderr.contains(&format!("/{size}")),
        "{:?}",
        runs[0].0.stderr
    );
    // A pipe: a spinner.
    let piped = check(
        Db::empty,
        &["import"],
        |_| Input::Bytes(lines.clone()),
        "import",
    );
    for (r, s) in runs.iter().chain(&piped) {
        assert!(
            s.starts_with(&format!("import: {n} lines, {size} in ")),
            "{s}"
        );
        assert!(
            r.stderr.contains("Done. Processed"),
            "strfry's line: {:?}",
            r.stderr
        );
    }
}

#[test]
fn sync() {
    let relay = common::TestRelay::start();
    let runs = check(Db::copy, &["sync", &relay.url], no_input, "sync");
    for (r, s) in &runs {
        assert!(s.starts_with("sync: 0 events, "), "{s}");
        assert!(
            r.stderr.contains("have "),
            "the have/need line: {:?}",
            r.stderr
        );
    }
}

#[test]
fn upload_and_download() {
    let events = template().path().join("events.jsonl");
    let lines = std::fs::read(&events).expect("events");
    let n = lines.iter().filter(|&&b| b == b'\n').count();
    // Each mode uploads to a relay of its own, so every run stores all n.
    let up: Vec<(Ran, String)> = MODES
        .iter()
        .map(|_| common::TestRelay::start())
        .collect::<Vec<_>>()
        .iter()
        .zip(MODES)
        .map(|(relay, mode)| {
            let d = Db::empty();
            let r = d.run(mode, &["upload", &relay.url], &Input::File(events.clone()));
            assert!(r.status.success(), "{mode:?}: {}", r.stderr);
            let bar = frames(&r.stderr, "upload");
            assert_eq!(bar > 0, mode == Mode3::Tty, "{mode:?}: {:?}", r.stderr);
            let s = summary(&r, "upload");
            (r, s)
        })
        .collect();
    for (_, s) in &up {
        // Some generated events are refused by design (deletions of others' events, older
        // replaceables); every line is answered one way or the other.
        assert!(s.starts_with(&format!("upload: {n} events, ")), "{s}");
        assert!(s.contains(" refused, 0 lines skipped) in "), "{s}");
    }
    // Download from a relay holding them: stdout is the JSONL only, the same in every mode.
    let relay = common::TestRelay::start();
    let d = Db::empty();
    let r = d.run(Mode3::Pipe, &["upload", &relay.url], &Input::File(events));
    assert!(r.status.success(), "{}", r.stderr);
    let runs = check(Db::empty, &["download", &relay.url], no_input, "download");
    let got = jsonl_events(&runs[0].0.stdout);
    // As many as one REQ returns (the relay caps a filter's limit, strfry's maxFilterLimit).
    assert!(got > 0, "{got} of {n} downloaded");
    let bytes = HumanBytes(runs[0].0.stdout.len() as u64).to_string();
    for (_, s) in &runs {
        assert!(
            s.starts_with(&format!("download: {got} events, {bytes} in ")),
            "{s}"
        );
    }
}
