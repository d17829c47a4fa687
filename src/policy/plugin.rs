//! strfry's write-policy plugin protocol, so existing plugins run unchanged: the command runs
//! as `/bin/sh -c <cmd>`, gets one JSON line per event on stdin and answers one line
//! `{"id","action":"accept"|"reject"|"shadowReject","msg"}` on stdout. The process is
//! restarted when the command changes or, for a command that is a path, when the file's
//! mtime changes.
//!
//! A plugin that dies, answers late (`timeoutSeconds`), names another event, prints a line
//! that is not a verdict, or a line over 8 KiB is killed and restarted, and the event is
//! refused with `error: internal error`. (strfry skips lines it cannot parse and waits on;
//! a plugin printing garbage is broken, so wok restarts it rather than trust its next line.)
//! Pipes are served by two small threads per process, so a plugin that stops reading can
//! never block the caller past the timeout.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

/// Longest verdict line read (strfry's limit).
const MAX_LINE: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept(String),
    Reject(String),
    ShadowReject(String),
}

/// One request: the event and where it came from.
pub struct Request<'a> {
    pub event_json: &'a [u8],
    pub id_hex: &'a str,
    pub received_at: u64,
    /// `IP4`, `IP6`, `Import`, `Stream`, `Sync` or `Stored`.
    pub source_type: &'a str,
    pub source_info: &'a str,
    pub authed: Option<&'a str>,
}

enum Line {
    Text(String),
    TooLong,
    Closed,
}

struct Proc {
    child: Child,
    to: Sender<Vec<u8>>,
    from: Receiver<Line>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The plugin runs in its own process group, so a pipeline or anything else `sh`
        // started goes too, not only `sh`.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on a process group we created; no memory is involved.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A write-policy plugin process, started on first use.
#[derive(Default)]
pub struct Plugin {
    cmd: String,
    mtime: Option<SystemTime>,
    proc: Option<Proc>,
    /// Failures since the last good verdict, and when the last one happened: a plugin
    /// that keeps dying is not respawned for every event.
    failures: u32,
    failed_at: Option<Instant>,
}

const INTERNAL: &str = "error: internal error";

impl Plugin {
    pub fn new() -> Plugin {
        Plugin::default()
    }

    /// Stops the plugin process, if one runs (the plugin was switched off).
    pub fn stop(&mut self) {
        self.proc = None;
    }

    /// Asks plugin `cmd` about one event (an empty `cmd` accepts everything).
    pub fn judge(&mut self, cmd: &str, timeout: Duration, req: &Request) -> Verdict {
        if cmd.trim().is_empty() {
            self.proc = None;
            return Verdict::Accept(String::new());
        }
        // Restart on a new command, or on a new mtime of a command that is a path.
        let mtime = (!cmd.contains(' '))
            .then(|| std::fs::metadata(cmd).and_then(|m| m.modified()).ok())
            .flatten();
        if cmd != self.cmd || mtime != self.mtime {
            if self.proc.is_some() {
                log::info!("write policy plugin changed, restarting: {cmd}");
            }
            self.proc = None;
            self.cmd = cmd.to_owned();
            self.mtime = mtime;
        }
        if self.proc.is_none() {
            if let Some(at) = self.failed_at {
                if at.elapsed() < respawn_delay(self.failures) {
                    return Verdict::Reject(INTERNAL.into());
                }
            }
            match spawn(cmd) {
                Ok(p) => self.proc = Some(p),
                Err(e) => {
                    log::error!("cannot start write policy plugin {cmd}: {e}");
                    self.failed();
                    return Verdict::Reject(INTERNAL.into());
                }
            }
        }
        match self.ask(timeout, req) {
            Ok(v) => {
                self.failures = 0;
                self.failed_at = None;
                v
            }
            Err(why) => {
                log::error!("write policy plugin {cmd}: {why}; restarting it");
                self.proc = None;
                self.failed();
                Verdict::Reject(INTERNAL.into())
            }
        }
    }

    fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
        self.failed_at = Some(Instant::now());
    }

    fn ask(&mut self, timeout: Duration, req: &Request) -> Result<Verdict, String> {
        let Some(p) = &self.proc else {
            return Err("not running".into());
        };
        let mut line = Vec::with_capacity(req.event_json.len() + 160);
        line.extend_from_slice(b"{\"type\":\"new\",\"event\":");
        line.extend_from_slice(req.event_json);
        line.extend_from_slice(
            format!(",\"receivedAt\":{},\"sourceType\":", req.received_at).as_bytes(),
        );
        crate::nostr::json::write_str(&mut line, req.source_type);
        line.extend_from_slice(b",\"sourceInfo\":");
        crate::nostr::json::write_str(&mut line, req.source_info);
        if let Some(pk) = req.authed {
            line.extend_from_slice(b",\"authed\":");
            crate::nostr::json::write_str(&mut line, pk);
        }
        line.extend_from_slice(b"}\n");
        let deadline = Instant::now() + timeout;
        p.to.send_timeout(line, timeout)
            .map_err(|_| "it stopped reading".to_string())?;
        let left = deadline.saturating_duration_since(Instant::now());
        let text = match p.from.recv_timeout(left) {
            Ok(Line::Text(t)) => t,
            Ok(Line::TooLong) => return Err(format!("a line over {MAX_LINE} bytes")),
            Ok(Line::Closed) | Err(RecvTimeoutError::Disconnected) => {
                return Err("it exited".into())
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!("no verdict within {} s", timeout.as_secs_f64()))
            }
        };
        let v: serde_json::Value = serde_json::from_str(text.trim()).map_err(|_| {
            format!(
                "it printed something that is not a verdict: {}",
                clip(&text)
            )
        })?;
        if v.get("id").and_then(|i| i.as_str()) != Some(req.id_hex) {
            return Err(format!("its verdict names another event: {}", clip(&text)));
        }
        let msg = v
            .get("msg")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_owned();
        match v.get("action").and_then(|a| a.as_str()) {
            Some("accept") => Ok(Verdict::Accept(msg)),
            Some("reject") => Ok(Verdict::Reject(msg)),
            Some("shadowReject") => Ok(Verdict::ShadowReject(msg)),
            _ => Err(format!("unknown action: {}", clip(&text))),
        }
    }
}

/// How long events are refused before respawning a plugin that failed `failures` times in
/// a row: at once for the first two (a crash on one bad event costs that event only), then
/// 100 ms doubling up to 10 s.
fn respawn_delay(failures: u32) -> Duration {
    match failures {
        0..=2 => Duration::ZERO,
        n => Duration::from_millis(100u64 << (n - 3).min(7)).min(Duration::from_secs(10)),
    }
}

fn clip(s: &str) -> String {
    s.trim().chars().take(200).collect()
}

fn spawn(cmd: &str) -> std::io::Result<Proc> {
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let (mut stdin, stdout) = match (child.stdin.take(), child.stdout.take()) {
        (Some(i), Some(o)) => (i, o),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("no pipes"));
        }
    };
    let (to, requests) = bounded::<Vec<u8>>(1);
    let (lines, from) = bounded::<Line>(16);
    std::thread::Builder::new()
        .name("PluginIn".into())
        .spawn(move || {
            for line in requests {
                if stdin.write_all(&line).and_then(|()| stdin.flush()).is_err() {
                    return;
                }
            }
        })?;
    std::thread::Builder::new()
        .name("PluginOut".into())
        .spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut buf = Vec::new();
                // One byte past the limit tells a long line from one exactly at it.
                // A read error ends the plugin's output like EOF does.
                let n = (&mut r)
                    .take(MAX_LINE as u64 + 1)
                    .read_until(b'\n', &mut buf)
                    .unwrap_or_default();
                let msg = if n == 0 {
                    Line::Closed
                } else if !buf.ends_with(b"\n") && buf.len() > MAX_LINE {
                    Line::TooLong
                } else {
                    Line::Text(String::from_utf8_lossy(&buf).into_owned())
                };
                let stop = !matches!(msg, Line::Text(_));
                if lines.send(msg).is_err() || stop {
                    return;
                }
            }
        })?;
    Ok(Proc { child, to, from })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn respawns_at_once_twice_then_backs_off() {
        assert_eq!(respawn_delay(1), Duration::ZERO);
        assert_eq!(respawn_delay(2), Duration::ZERO);
        assert_eq!(respawn_delay(3), Duration::from_millis(100));
        assert_eq!(respawn_delay(4), Duration::from_millis(200));
        assert_eq!(respawn_delay(50), Duration::from_secs(10));
    }

    fn alive(pid: &str) -> bool {
        // A zombie waiting for its reaper is dead for this purpose.
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    }

    #[test]
    fn a_killed_plugin_takes_its_children_along() {
        let dir = tempfile::tempdir().expect("tmp");
        let pidfile = dir.path().join("pid");
        // Never answers; leaves a background child behind `sh`.
        let cmd = format!(
            "sleep 300 & echo $! > {}; exec sleep 300",
            pidfile.display()
        );
        let mut p = Plugin::new();
        let v = p.judge(
            &cmd,
            Duration::from_millis(300),
            &Request {
                event_json: b"{}",
                id_hex: "00",
                received_at: 0,
                source_type: "IP4",
                source_info: "127.0.0.1",
                authed: None,
            },
        );
        assert_eq!(v, Verdict::Reject(INTERNAL.into()));
        let pid = std::fs::read_to_string(&pidfile).expect("pid written");
        let pid = pid.trim();
        let end = Instant::now() + Duration::from_secs(10);
        while alive(pid) {
            assert!(Instant::now() < end, "the plugin's child {pid} survived");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
