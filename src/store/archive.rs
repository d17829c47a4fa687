//! Archive before delete: a rule with `archive = "/dir"` appends the events it prunes, as
//! canonical JSON lines, to `/dir/RULE-YYYY-MM-DD-NNNN.jsonl.zst` (UTC day of the pruning).
//! Each slice is one complete zstd frame (concatenated frames are one valid zstd stream), so
//! a file is readable after every slice; the file is fsynced before the slice's delete
//! commits. A new file starts with each day, past [`MAX_FILE_BYTES`], and with each process
//! (the number after the date is the first unused one), so a tail torn by a power cut or a
//! kill mid-append only ever ends a file no one appends to again. `wok import
//! FILE.jsonl.zst` reads them back (a torn file up to the tear, then it fails saying so).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file is closed once this many compressed bytes are in it.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// zstd level for archives: fast, and JSON compresses ~4x at it.
const LEVEL: i32 = 3;

struct Current {
    path: PathBuf,
    day: String,
    bytes: u64,
}

/// Open archive files by (dir, rule).
#[derive(Default)]
pub struct Archives {
    current: HashMap<(String, String), Current>,
}

impl Archives {
    /// Appends `lines` (JSONL) as one zstd frame and fsyncs; on an error nothing of it is
    /// left in the file.
    pub fn append(
        &mut self,
        dir: &str,
        rule: &str,
        now: u64,
        lines: &[u8],
    ) -> std::io::Result<PathBuf> {
        let day = crate::logging::civil(now).0;
        let key = (dir.to_string(), rule.to_string());
        let stale = self
            .current
            .get(&key)
            .is_none_or(|c| c.day != day || c.bytes >= MAX_FILE_BYTES);
        let mut created = false;
        if stale {
            std::fs::create_dir_all(dir)?;
            let path = first_unused(Path::new(dir), rule, &day)?;
            created = true;
            self.current.insert(
                key.clone(),
                Current {
                    path,
                    day,
                    bytes: 0,
                },
            );
        }
        let Some(cur) = self.current.get_mut(&key) else {
            return Err(std::io::Error::other("archive state lost"));
        };
        let frame = zstd::bulk::compress(lines, LEVEL)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cur.path)?;
        let len = f.metadata()?.len();
        let written = f.write_all(&frame).and_then(|()| f.sync_data());
        if let Err(e) = written {
            // Leave the file as it was (whole frames only); the delete will not happen.
            let _ = f.set_len(len);
            return Err(e);
        }
        if created {
            // The new name must survive a crash too.
            std::fs::File::open(dir)?.sync_all()?;
        }
        cur.bytes = len + frame.len() as u64;
        Ok(cur.path.clone())
    }
}

fn first_unused(dir: &Path, rule: &str, day: &str) -> std::io::Result<PathBuf> {
    for n in 1..=99_999u32 {
        let p = dir.join(format!("{rule}-{day}-{n:04}.jsonl.zst"));
        if !p.exists() {
            return Ok(p);
        }
    }
    Err(std::io::Error::other(format!(
        "{}: 99999 archive files for {rule} on {day}",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_concatenate_and_files_rotate_by_day() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf8");
        let mut a = Archives::default();
        let p1 = a.append(d, "r", 0, b"{\"a\":1}\n").expect("append");
        let p2 = a.append(d, "r", 10, b"{\"a\":2}\n").expect("append");
        assert_eq!(p1, p2);
        let p3 = a.append(d, "r", 86_400, b"{\"a\":3}\n").expect("append");
        assert_ne!(p1, p3);
        let all = zstd::stream::decode_all(std::fs::File::open(&p1).expect("open")).expect("zstd");
        assert_eq!(all, b"{\"a\":1}\n{\"a\":2}\n");
        // A new process starts a new file.
        let p4 = Archives::default()
            .append(d, "r", 0, b"x\n")
            .expect("append");
        assert!(
            p4.to_string_lossy()
                .ends_with("r-1970-01-01-0002.jsonl.zst"),
            "{p4:?}"
        );
    }
}
