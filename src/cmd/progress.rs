//! Progress and summaries for the commands that can run long (import, export, scan, delete,
//! compact, dict, negentropy build, info, sync, upload, download).
//!
//! While a command runs, a bar (or a spinner when the total is unknown) is drawn on stderr,
//! only when stderr is a terminal and `--quiet` was not given: pipes, files and cron logs get
//! none of it. At the end one summary line (counts, bytes, time, rates) goes to stderr in
//! every case, so a log still says what was done. Nothing here ever writes to stdout.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::Globals;

/// The spinner's frames (indicatif's default, spelled out because tests look for them).
const TICKS: &str = "⠁⠂⠄⡀⢀⠠⠐⠈ ";

/// What the bar's length counts, when it is known in advance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// This many items (events, lines): a bar with an ETA.
    Items(u64),
    /// This many bytes (a file being read or written): a bar with an ETA.
    Bytes(u64),
    /// Not known: a spinner.
    Unknown,
}

/// A command's progress: counters of items and bytes, the bar drawn from them (if any), and
/// the summary line. Cheap to clone; clones share the counters (import counts bytes on its
/// reader thread and lines on its writer).
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    what: String,
    /// Plural noun for the items ("events", "lines"); empty when only bytes are counted.
    unit: &'static str,
    /// Whether bytes are counted (some commands have nothing meaningful to count in bytes).
    with_bytes: bool,
    started: Instant,
    items: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    bar: Option<ProgressBar>,
    /// What the bar's position follows (items unless the total is in bytes).
    by_bytes: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // An early return (an error) must not leave a half-drawn bar or a logger routed
        // through it.
        if let Some(b) = &self.bar {
            b.finish_and_clear();
            wok::logging::set_progress_bar(None);
        }
    }
}

impl Progress {
    /// Starts counting for `what` (the summary's first word: "export", "dict compress").
    /// `unit` names the items; `""` counts bytes only. `with_bytes` says whether bytes are
    /// counted at all.
    pub fn start(
        g: &Globals,
        what: impl Into<String>,
        unit: &'static str,
        with_bytes: bool,
        total: Total,
    ) -> Progress {
        let what = what.into();
        let items = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let bar = (!g.quiet && std::io::stderr().is_terminal()).then(|| {
            // Hidden until styled, so indicatif's default style is never drawn.
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
            b.set_prefix(what.clone());
            b
        });
        let p = Progress {
            inner: Arc::new(Inner {
                what,
                unit,
                with_bytes,
                started: Instant::now(),
                items,
                bytes,
                bar,
                by_bytes: AtomicBool::new(false),
            }),
        };
        if let Some(b) = &p.inner.bar {
            p.set_total(total);
            b.set_draw_target(ProgressDrawTarget::stderr());
            // The first frame is drawn here: the ticker thread's could come only after a
            // short command has finished.
            b.force_draw();
            b.enable_steady_tick(Duration::from_millis(200));
            wok::logging::set_progress_bar(Some(b.clone()));
        }
        p
    }

    /// Changes what the bar measures (a command's second phase: matching, then deleting).
    pub fn set_total(&self, total: Total) {
        let Some(b) = &self.inner.bar else {
            return;
        };
        let by_bytes = matches!(total, Total::Bytes(_));
        self.inner.by_bytes.store(by_bytes, Ordering::Relaxed);
        match total {
            Total::Items(n) | Total::Bytes(n) => b.set_length(n),
            Total::Unknown => b.unset_length(),
        }
        b.set_style(self.style(total));
        b.set_position(if by_bytes { self.bytes() } else { self.items() });
    }

    /// The bar's template for `total`, kept near 80 columns: what, how far, the rate of
    /// what the bar counts, the ETA; a spinner with the elapsed time when there is no total.
    fn style(&self, total: Total) -> ProgressStyle {
        let i = &self.inner;
        let mut t = String::from("{spinner} {prefix} ");
        let mut parts: Vec<String> = Vec::new();
        match total {
            Total::Items(_) => {
                t.push_str("[{bar:16}] ");
                parts.push(format!("{{pos}}/{{len}} {}", i.unit));
                if i.with_bytes {
                    parts.push("{bytes_done}".into());
                }
                parts.push("{item_rate}".into());
            }
            Total::Bytes(_) => {
                t.push_str("[{bar:16}] ");
                parts.push("{bytes}/{total_bytes}".into());
                if !i.unit.is_empty() {
                    parts.push(format!("{{items_done}} {}", i.unit));
                }
                parts.push("{binary_bytes_per_sec}".into());
            }
            Total::Unknown => {
                t.push_str("{elapsed} ");
                if !i.unit.is_empty() {
                    parts.push(format!("{{items_done}} {}", i.unit));
                }
                if i.with_bytes {
                    parts.push("{bytes_done}".into());
                }
                if !i.unit.is_empty() {
                    parts.push("{item_rate}".into());
                } else if i.with_bytes {
                    parts.push("{byte_rate}".into());
                }
            }
        }
        if total != Total::Unknown {
            parts.push("eta {eta}".into());
        }
        t.push_str(&parts.join(", "));
        t.push_str(" {wide_msg}");
        let (items, bytes, unit) = (Arc::clone(&i.items), Arc::clone(&i.bytes), i.unit);
        let items_done = {
            let items = Arc::clone(&items);
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", items.load(Ordering::Relaxed));
            }
        };
        let bytes_done = {
            let bytes = Arc::clone(&bytes);
            move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}", HumanBytes(bytes.load(Ordering::Relaxed)));
            }
        };
        // Average rates since the start: steadier to read than indicatif's recent-rate
        // estimate, and the figures the summary ends with.
        let item_rate = move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let n = items.load(Ordering::Relaxed);
            let _ = w.write_str(&rates(n, unit, None, s.elapsed().as_secs_f64()));
        };
        let byte_rate = move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let n = bytes.load(Ordering::Relaxed);
            let _ = w.write_str(&rates(0, "", Some(n), s.elapsed().as_secs_f64()));
        };
        ProgressStyle::with_template(&t)
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .with_key("items_done", items_done)
            .with_key("bytes_done", bytes_done)
            .with_key("item_rate", item_rate)
            .with_key("byte_rate", byte_rate)
            .tick_chars(TICKS)
            .progress_chars("=> ")
    }

    /// Starts a command's next phase (matching done, now deleting): counters back to zero,
    /// the bar measuring `total`. The summary's time still counts from the start.
    pub fn restart(&self, total: Total) {
        self.inner.items.store(0, Ordering::Relaxed);
        self.inner.bytes.store(0, Ordering::Relaxed);
        self.set_total(total);
    }

    /// Adds `items` and `bytes` done.
    pub fn add(&self, items: u64, bytes: u64) {
        let i = &self.inner;
        let items = i.items.fetch_add(items, Ordering::Relaxed) + items;
        let bytes = i.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.position(items, bytes);
    }

    /// Sets the counts done (for commands told their totals by a callback).
    pub fn set(&self, items: u64, bytes: u64) {
        let i = &self.inner;
        i.items.store(items, Ordering::Relaxed);
        i.bytes.store(bytes, Ordering::Relaxed);
        self.position(items, bytes);
    }

    fn position(&self, items: u64, bytes: u64) {
        if let Some(b) = &self.inner.bar {
            if self.inner.by_bytes.load(Ordering::Relaxed) {
                b.set_position(bytes);
            } else {
                b.set_position(items);
            }
        }
    }

    /// A note after the figures (a phase, a command's own counters).
    pub fn message(&self, msg: impl Into<Cow<'static, str>>) {
        if let Some(b) = &self.inner.bar {
            b.set_message(msg);
        }
    }

    /// Whether a bar is being drawn (a terminal, no `--quiet`).
    pub fn drawn(&self) -> bool {
        self.inner.bar.is_some()
    }

    pub fn items(&self) -> u64 {
        self.inner.items.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    pub fn elapsed(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Clears the bar (if any) and prints the summary line:
    /// `export: 18094 events, 24.10 MiB in 0.52 s (34796 events/s, 46.35 MiB/s)`.
    pub fn finish(&self) {
        self.finish_with("");
    }

    /// `finish`, with `extra` (e.g. ", 17000 stored compressed") after the counts.
    pub fn finish_with(&self, extra: &str) {
        let i = &self.inner;
        let secs = self.elapsed().as_secs_f64();
        let mut line = format!("{}: ", i.what);
        let mut counts = Vec::new();
        if !i.unit.is_empty() {
            counts.push(format!("{} {}", self.items(), i.unit));
        }
        if i.with_bytes {
            counts.push(HumanBytes(self.bytes()).to_string());
        }
        line.push_str(&counts.join(", "));
        line.push_str(extra);
        let _ = write!(
            line,
            " in {secs:.2} s ({})",
            rates(
                self.items(),
                i.unit,
                i.with_bytes.then(|| self.bytes()),
                secs
            )
        );
        self.clear();
        eprintln!("{line}");
    }

    /// Clears the bar and prints `{what}: {text} in 0.01 s`, for a command whose counts have
    /// no meaningful rate (`info`).
    pub fn finish_brief(&self, text: &str) {
        let line = format!(
            "{}: {text} in {:.2} s",
            self.inner.what,
            self.elapsed().as_secs_f64()
        );
        self.clear();
        eprintln!("{line}");
    }

    /// Clears the bar without a summary (the command prints its own, or failed).
    pub fn clear(&self) {
        if let Some(b) = &self.inner.bar {
            b.finish_and_clear();
            wok::logging::set_progress_bar(None);
        }
    }
}

/// `"34796 events/s, 46.35 MiB/s"` (either part may be absent). A zero duration counts as
/// a millisecond so a very short run has a figure, not infinity.
fn rates(items: u64, unit: &str, bytes: Option<u64>, secs: f64) -> String {
    let secs = secs.max(0.001);
    let mut parts = Vec::new();
    if !unit.is_empty() {
        parts.push(format!("{:.0} {unit}/s", items as f64 / secs));
    }
    if let Some(b) = bytes {
        parts.push(format!("{}/s", HumanBytes((b as f64 / secs) as u64)));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_name_their_units() {
        assert_eq!(
            rates(1000, "events", Some(2 << 20), 2.0),
            "500 events/s, 1.00 MiB/s"
        );
        assert_eq!(rates(10, "events", None, 0.0), "10000 events/s");
        assert_eq!(rates(0, "", Some(1024), 1.0), "1.00 KiB/s");
    }

    #[test]
    fn hidden_without_a_terminal_or_when_quiet() {
        let quiet = Globals {
            quiet: true,
            ..Globals::default()
        };
        let p = Progress::start(&quiet, "test", "events", true, Total::Items(10));
        assert!(p.inner.bar.is_none());
        p.add(3, 100);
        p.add(2, 50);
        assert_eq!((p.items(), p.bytes()), (5, 150));
    }
}
