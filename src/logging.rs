//! stderr logging in strfry's shape (`date time (uptime) [thread] level| message`), so
//! operators' log parsing keeps working. Command output goes to stdout, never here.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    start: Instant,
}

static LOGGER: OnceLock<StderrLogger> = OnceLock::new();

/// The progress bar a command is drawing on stderr, if any: log lines are written through it
/// so they appear above the bar instead of being torn by its redraws.
static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);
/// Whether `BAR` is set: the relay, which never draws one, logs without taking the lock.
static BAR_SET: AtomicBool = AtomicBool::new(false);

/// Routes log lines around `bar` while it is drawn (`None` when it is gone).
pub fn set_progress_bar(bar: Option<indicatif::ProgressBar>) {
    let mut slot = BAR.lock().unwrap_or_else(|p| p.into_inner());
    BAR_SET.store(bar.is_some(), Ordering::Release);
    *slot = bar;
}

/// Parses `--verbosity`: strfry's (loguru's) `ERROR`, `WARN`, `INFO`, or a number
/// (`0` = INFO, `1`+ = debug, `-1` = WARN, `-2` = ERROR); names are case-insensitive.
pub fn parse_verbosity(s: &str) -> Result<LevelFilter, String> {
    let level = match s.to_ascii_uppercase().as_str() {
        "ERROR" | "-2" => LevelFilter::Error,
        "WARN" | "WARNING" | "-1" => LevelFilter::Warn,
        "INFO" | "0" => LevelFilter::Info,
        "DEBUG" | "1" => LevelFilter::Debug,
        "TRACE" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" => LevelFilter::Trace,
        _ => {
            return Err(format!(
                "unknown verbosity '{s}' (use ERROR, WARN, INFO or 1)"
            ))
        }
    };
    Ok(level)
}

/// Installs the logger once; later calls only change the level.
pub fn init(level: LevelFilter) {
    let logger = LOGGER.get_or_init(|| StderrLogger {
        start: Instant::now(),
    });
    // Fails only if another logger is installed (tests), which is fine.
    let _ = log::set_logger(logger);
    log::set_max_level(level);
}

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let (date, time) = civil(now.as_secs());
        let up = self.start.elapsed().as_secs_f64();
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("?");
        let level = match r.level() {
            Level::Error => "ERR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "1",
            Level::Trace => "2",
        };
        let line = format!(
            "{date} {time}.{ms:03} ({up:>8.3}s) [{name:<10.10}] {level:>4}| {msg}\n",
            ms = now.subsec_millis(),
            msg = r.args()
        );
        // One write per line so lines from different threads don't interleave.
        let write = || {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        };
        let bar = if BAR_SET.load(Ordering::Acquire) {
            BAR.lock().unwrap_or_else(|p| p.into_inner()).clone()
        } else {
            None
        };
        match bar {
            Some(b) => b.suspend(write),
            None => write(),
        }
    }

    fn flush(&self) {}
}

/// UTC `YYYY-MM-DD` and `HH:MM:SS` for a Unix time (days-from-civil, inverted).
pub(crate) fn civil(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem / 60 % 60, rem % 60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil(0), ("1970-01-01".into(), "00:00:00".into()));
        assert_eq!(
            civil(1_700_000_000),
            ("2023-11-14".into(), "22:13:20".into())
        );
        assert_eq!(civil(951_782_400), ("2000-02-29".into(), "00:00:00".into()));
    }

    #[test]
    fn verbosity_names() {
        assert_eq!(parse_verbosity("info"), Ok(LevelFilter::Info));
        assert_eq!(parse_verbosity("1"), Ok(LevelFilter::Debug));
        assert_eq!(parse_verbosity("WARN"), Ok(LevelFilter::Warn));
        assert!(parse_verbosity("loud").is_err());
    }
}
