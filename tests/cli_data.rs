//! The data commands through the real binary: import, export, scan, delete, compact, info.
//! Every test works in its own temporary directory with its own config file.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use wok::nostr::sign::Keys;
use wok::nostr::tags::Tags;
use wok::nostr::{Event, Limits};

/// A temporary DB with a config file pointing at it.
struct Db {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().expect("tempdir");
        Db::in_dir(dir)
    }

    fn in_dir(dir: tempfile::TempDir) -> Db {
        let conf = dir.path().join("wok.conf");
        let db = dir.path().join("db");
        std::fs::write(&conf, format!("db = \"{}/\"\n", db.display())).expect("write conf");
        Db { dir, conf }
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
            .current_dir(self.dir.path());
        c
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        common::run_within(&mut self.cmd(args), stdin, common::RUN_LIMIT)
    }

    /// Runs and asserts success; returns (stdout, stderr).
    fn ok(&self, args: &[&str], stdin: &[u8]) -> (String, String) {
        let out = self.run(args, stdin);
        let (o, e) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "wok {args:?} failed: {e}");
        (o, e)
    }

    /// Runs and asserts failure; returns stderr.
    fn fails(&self, args: &[&str], stdin: &[u8]) -> String {
        let out = self.run(args, stdin);
        assert!(
            !out.status.success(),
            "wok {args:?} should fail: {}",
            text(&out.stdout)
        );
        text(&out.stderr)
    }

    fn import(&self, extra: &[&str], lines: &[u8]) -> String {
        let mut args = vec!["import"];
        args.extend_from_slice(extra);
        self.ok(&args, lines).1
    }

    fn export(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["export"];
        args.extend_from_slice(extra);
        lines(&self.ok(&args, b"").0)
    }

    fn scan(&self, extra: &[&str]) -> Vec<String> {
        let mut args = vec!["scan"];
        args.extend_from_slice(extra);
        lines(&self.ok(&args, b"").0)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(str::to_owned).collect()
}

fn keys(n: u8) -> Keys {
    Keys::from_secret([n; 32]).expect("key")
}

fn sign(n: u8, created_at: u64, kind: u64, tags: &[Vec<&str>], content: &str) -> Event {
    keys(n)
        .sign(
            created_at,
            kind,
            Tags::from_vecs(tags),
            content,
            &Limits::default(),
        )
        .expect("sign")
}

fn json(ev: &Event) -> String {
    text(ev.json())
}

/// A varied set: several authors and kinds, created_at ties, tags.
fn sample(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let author = (i % 5) as u8 + 1;
            let kind = [1, 1, 7, 30023, 1][i % 5];
            let d = format!("d{i}");
            let t = format!("topic{}", i % 3);
            let tags = if kind == 30023 {
                vec![vec!["d", d.as_str()], vec!["t", t.as_str()]]
            } else {
                vec![vec!["t", t.as_str()]]
            };
            sign(
                author,
                1_700_000_000 + (i as u64 / 3),
                kind,
                &tags,
                &format!("event {i} \"quoted\"\n"),
            )
        })
        .collect()
}

/// Export order: created_at ascending, then id ascending.
fn export_order(evs: &[Event]) -> Vec<String> {
    let mut v: Vec<&Event> = evs.iter().collect();
    v.sort_by_key(|e| (e.created_at, e.id));
    v.into_iter().map(json).collect()
}

/// Engine order for one filter: created_at descending, then id ascending.
fn engine_order<'a>(evs: impl Iterator<Item = &'a Event>) -> Vec<String> {
    let mut v: Vec<&Event> = evs.collect();
    v.sort_by_key(|e| (std::cmp::Reverse(e.created_at), e.id));
    v.into_iter().map(json).collect()
}

fn summary_has(stderr: &str, added: u64, rejected: u64, dups: u64) -> bool {
    stderr.contains(&format!(
        "{added} added, {rejected} rejected, {dups} duplicates"
    ))
}

#[test]
fn import_export_round_trip_and_reimport_duplicates() {
    let db = Db::new();
    let evs = sample(60);
    // Import in a scrambled order: export must still be by (created_at, id).
    let mut shuffled = evs.clone();
    shuffled.reverse();
    shuffled.swap(3, 40);
    let err = db.import(&[], &common::jsonl(&shuffled));
    assert!(summary_has(&err, 60, 0, 0), "{err}");
    assert!(err.contains("Processed 60 lines"), "{err}");
    assert_eq!(db.export(&[]), export_order(&evs));

    // A stored event is a duplicate even with another (here broken) signature: workers look
    // ids up before checking signatures.
    let mut again = common::jsonl(&evs);
    again.extend_from_slice(forge_sig(&evs[5]).as_bytes());
    let err = db.import(&["--write-batch", "7"], &again);
    assert!(summary_has(&err, 0, 0, 61), "{err}");
    assert_eq!(db.export(&[]), export_order(&evs));
}

/// An import stores no event that has already expired (NIP-40), as the relay refuses one, and
/// into an empty DB builds the negentropy trees once, at its end; they come out equal, size
/// and fingerprint, to trees kept event by event (an import into a DB that already held an
/// event).
#[test]
fn import_into_an_empty_db_builds_its_trees_at_the_end() {
    let mut evs: Vec<Event> = (0..300u64)
        .map(|i| {
            sign(
                (i % 3) as u8 + 1,
                1_700_000_000 + i * 7919 % 50_000,
                1,
                &[],
                &format!("{i}"),
            )
        })
        .collect();
    let gone = sign(1, 1_700_000_500, 1, &[vec!["expiration", "1000"]], "gone");
    evs.insert(150, gone.clone());
    let fresh = Db::new();
    let err = fresh.import(&[], &common::jsonl(&evs));
    assert!(
        err.contains("300 added, 0 rejected, 0 duplicates, 1 expired (not stored)"),
        "{err}"
    );
    assert!(
        err.contains("Built negentropy tree 1 (300 events)"),
        "{err}"
    );
    let exported = fresh.export(&[]);
    assert_eq!(exported.len(), 300);
    assert!(!exported.iter().any(|l| l.contains(gone.id_hex())));
    let (trees, _) = fresh.ok(&["negentropy", "list"], b"");
    assert!(trees.contains("size: 300"), "{trees}");

    let kept = Db::new();
    kept.import(&[], &common::jsonl(&evs[..1]));
    let err = kept.import(&["--write-batch", "50"], &common::jsonl(&evs[1..]));
    assert!(!err.contains("Built negentropy tree"), "{err}");
    assert_eq!(kept.ok(&["negentropy", "list"], b"").0, trees);

    // An expired newer version replaces nothing, as it would not on the relay.
    let old = sign(2, 1_700_000_000, 0, &[], "old profile");
    let newer = sign(2, 1_700_000_100, 0, &[vec!["expiration", "1000"]], "newer");
    let db = Db::new();
    let err = db.import(&[], &common::jsonl(&[old.clone(), newer]));
    assert!(summary_has(&err, 1, 0, 0), "{err}");
    assert_eq!(db.export(&[]), vec![json(&old)]);
}

/// `kill -9` while importing into an empty DB, whose index rows and negentropy trees are
/// written only at the import's end: while it lives, other commands leave them to it;
/// after, the next command to open the DB finds its lock gone and indexes what was stored,
/// so a scan (which reads the indexes) finds every event, and builds the trees.
#[test]
fn a_killed_bulk_import_is_finished_by_the_next_command() {
    let db = Db::new();
    let evs = sample(120);
    let mut cmd = db.cmd(&["--verbosity", "DEBUG", "import", "--write-batch", "25"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn import");
    let mut stdin = child.stdin.take().expect("stdin");
    let import = common::Running::new(child);
    stdin.write_all(&common::jsonl(&evs)).expect("feed");
    stdin.flush().expect("flush");
    // Every event committed, the input still open (~50 KB, less than a chunk: what a
    // paused producer wrote is handed on at once): the import waits for more.
    import.await_stderr(". 120 added,", Duration::from_secs(30));
    // The import is alive: another command leaves the rows to it, and says so.
    let (out, err) = db.ok(&["info"], b"");
    assert!(
        out.contains("Not yet indexed: events from levId 1 "),
        "{out}"
    );
    assert!(out.contains("Not yet built: negentropy trees [1"), "{out}");
    assert!(err.contains("an import is loading this DB"), "{err}");
    assert!(db.scan(&["{}"]).is_empty());
    // An export would leave them out: it refuses, saying why.
    let out = common::run(&mut db.cmd(&["export"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("are not indexed yet"), "{err}");
    import.signal("-KILL");
    let mut import = import;
    assert!(!import.wait_within(Duration::from_secs(10)).success());
    drop(stdin);

    let (out, err) = db.ok(&["scan", "{}"], b"");
    assert!(err.contains("indexing them now"), "{err}");
    assert!(err.contains("built the negentropy trees"), "{err}");
    assert_eq!(lines(&out).len(), 120, "{err}");
    let (trees, err) = db.ok(&["negentropy", "list"], b"");
    assert!(
        !err.contains("indexing") && !err.contains("built"),
        "once: {err}"
    );
    assert!(trees.contains("size: 120"), "{trees}");
    assert_eq!(
        db.scan(&[r#"{"kinds":[30023]}"#]),
        engine_order(evs.iter().filter(|e| e.kind == 30023))
    );
}

#[test]
fn import_reads_last_line_without_newline_and_skips_blank_lines() {
    let db = Db::new();
    let evs = sample(3);
    let input = format!(
        "\n{}\r\n   \n{}\n\n{}",
        json(&evs[0]),
        json(&evs[1]),
        json(&evs[2])
    );
    let err = db.import(&[], input.as_bytes());
    assert!(summary_has(&err, 3, 0, 0), "{err}");
    assert_eq!(db.export(&[]), export_order(&evs));
}

#[test]
fn import_skips_lines_longer_than_a_chunk() {
    let db = Db::new();
    let evs = sample(2);
    let huge = "y".repeat(300_000);
    let input = format!("{}\n{huge}\n{}\n{huge}", json(&evs[0]), json(&evs[1]));
    let err = db.import(&[], input.as_bytes());
    for line in [2, 4] {
        let needle =
            format!("line {line}: line too long (300000 > 65536 bytes, see events.maxEventSize)");
        assert!(err.contains(&needle), "{err}");
    }
    assert!(summary_has(&err, 2, 2, 0), "{err}");
    assert!(err.contains("Processed 4 lines"), "{err}");
    // A bigger maxEventSize lets the same line through to the JSON parser.
    let err = db.import(
        &["--set", "events.maxEventSize=400000"],
        format!("{huge}\n").as_bytes(),
    );
    assert!(err.contains("line 1: unparseable JSON"), "{err}");
}

#[test]
fn import_reports_every_rejection_reason() {
    let db = Db::new();
    let good = sign(1, 1_700_000_000, 1, &[], "fine");
    let mut bad_id = json(&sign(1, 1_700_000_001, 1, &[], "bad id"));
    let id_at = bad_id.find("\"id\":\"").expect("id") + 6;
    let flipped = if &bad_id[id_at..id_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    bad_id.replace_range(id_at..id_at + 1, flipped);
    let bad_sig_ev = sign(1, 1_700_000_002, 1, &[], "bad sig");
    let bad_sig = forge_sig(&bad_sig_ev);
    let oversize = "x".repeat(70_000);
    let newer_meta = sign(2, 1_700_000_100, 0, &[], "{\"name\":\"new\"}");
    let older_meta = sign(2, 1_700_000_050, 0, &[], "{\"name\":\"old\"}");
    let victim = sign(3, 1_700_000_000, 1, &[], "to be deleted");
    let victim_id = victim.id_hex().to_owned();
    let deletion = sign(3, 1_700_000_010, 5, &[vec!["e", victim_id.as_str()]], "");
    let ephemeral = sign(4, 1_700_000_000, 20_001, &[], "gone");

    let input = [
        json(&good),                     // 1 added
        "{not json".to_string(),         // 2 bad JSON
        bad_id.clone(),                  // 3 bad id
        bad_sig.clone(),                 // 4 bad signature
        oversize,                        // 5 oversize
        json(&newer_meta),               // 6 added
        json(&older_meta),               // 7 replaced
        json(&deletion),                 // 8 added
        json(&victim),                   // 9 deleted
        json(&good),                     // 10 duplicate
        json(&ephemeral),                // 11 ephemeral
        "[\"not\",\"an event\"]".into(), // 12 not an object
    ]
    .join("\n");
    // One event per transaction, so later lines meet the earlier ones in the DB.
    let err = db.import(&["--show-rejected", "--write-batch", "1"], input.as_bytes());
    for needle in [
        "line 2: unparseable JSON",
        &format!(
            "Rejected event {}: invalid: bad event id",
            &bad_id[id_at..id_at + 64]
        ),
        &format!(
            "Rejected event {}: invalid: bad signature",
            bad_sig_ev.id_hex()
        ),
        "line 5: line too long (70000 > 65536 bytes, see events.maxEventSize)",
        &format!(
            "Rejected event {}: replaced: have newer event",
            older_meta.id_hex()
        ),
        &format!(
            "Rejected event {}: deleted: user requested deletion",
            victim.id_hex()
        ),
        &format!(
            "Rejected event {}: invalid: ephemeral events are not stored",
            ephemeral.id_hex()
        ),
        "Rejected event on line 12: invalid: event is not an object",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(summary_has(&err, 3, 8, 1), "{err}");
    assert!(err.contains("Processed 12 lines"), "{err}");

    // Without --show-rejected only the malformed lines are reported.
    let db2 = Db::new();
    let err = db2.import(&[], input.as_bytes());
    assert!(err.contains("line 2: unparseable JSON"), "{err}");
    assert!(err.contains("line 5: line too long"), "{err}");
    assert!(!err.contains("Rejected event"), "{err}");
}

fn forge_sig(ev: &Event) -> String {
    let j = json(ev);
    let at = j.find("\"sig\":\"").expect("sig") + 7;
    let mut s = j.into_bytes();
    s[at] = if s[at] == b'0' { b'1' } else { b'0' };
    text(&s)
}

#[test]
fn no_verify_accepts_a_bad_signature_but_not_bad_structure() {
    let db = Db::new();
    let ev = sign(1, 1_700_000_000, 1, &[], "unsigned really");
    let input = format!(
        "{}\n{}\n",
        forge_sig(&ev),
        r#"{"id":"zz","pubkey":"","created_at":1,"kind":1,"tags":[],"content":"","sig":""}"#
    );
    let err = db.import(&["--no-verify"], input.as_bytes());
    assert!(summary_has(&err, 1, 1, 0), "{err}");
    let err = Db::new().import(&[], input.as_bytes());
    assert!(summary_has(&err, 0, 2, 0), "{err}");
}

#[test]
fn import_fried_lines() {
    let db = Db::new();
    let evs = sample(10);
    let mut input = String::new();
    for e in &evs {
        let j = json(e);
        input.push_str(&j[..j.len() - 1]);
        input.push_str(",\"fried\":\"00ff3a9b\"}\n");
    }
    input.push_str(&json(&sign(9, 5, 1, &[], "plain line")));
    let err = db.import(&["--fried"], input.as_bytes());
    assert!(summary_has(&err, 10, 1, 0), "{err}");
    assert!(err.contains("line 11: --fried"), "{err}");
    assert_eq!(db.export(&[]), export_order(&evs));
}

#[test]
fn export_since_until_reverse_and_fried_refused() {
    let db = Db::new();
    let evs: Vec<Event> = (0..12u8)
        .map(|i| sign(i % 3 + 1, 100 + u64::from(i / 2), 1, &[], &format!("e{i}")))
        .collect();
    db.import(&[], &common::jsonl(&evs));
    let all = export_order(&evs);
    assert_eq!(db.export(&[]), all);
    let window: Vec<String> = export_order(
        &evs.iter()
            .filter(|e| (102..=104).contains(&e.created_at))
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(window.len(), 6);
    assert_eq!(db.export(&["--since", "102", "--until", "104"]), window);
    let mut rev = all.clone();
    rev.reverse();
    assert_eq!(db.export(&["--reverse"]), rev);
    let mut rev_window = window.clone();
    rev_window.reverse();
    assert_eq!(
        db.export(&["--since", "102", "--until", "104", "--reverse"]),
        rev_window
    );
    assert!(db.export(&["--since", "200"]).is_empty());
    let err = db.fails(&["export", "--fried"], b"");
    assert!(err.contains("--fried is not supported"), "{err}");
    let err = db.fails(&["export", "--since", "yesterday"], b"");
    assert!(err.contains("yesterday"), "{err}");
}

#[test]
fn export_into_a_closed_pipe_exits_zero() {
    let db = Db::new();
    // ~2.5 MB of output: more than the pipe buffer and the 1 MiB output buffer.
    let content = "z".repeat(10_000);
    let evs: Vec<Event> = (0..250u64)
        .map(|i| sign(1, 1_000 + i, 1, &[], &content))
        .collect();
    db.import(&[], &common::jsonl(&evs));
    let mut child = db
        .cmd(&["export"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let child = common::Running::new(child);
    let first = common::first_line(stdout, common::RUN_LIMIT); // the read end closes here
    assert_eq!(first.trim_end(), json(&evs[0]));
    let out = child.output_within(common::RUN_LIMIT);
    let (status, err) = (out.status, text(&out.stderr));
    assert!(status.success(), "{status:?}: {err}");
    assert!(!err.contains("error"), "{err}");
}

#[test]
fn scan_filters_count_and_pause() {
    let db = Db::new();
    let evs = sample(40);
    db.import(&[], &common::jsonl(&evs));

    let kind1 = engine_order(evs.iter().filter(|e| e.kind == 1));
    assert!(kind1.len() > 10);
    assert_eq!(db.scan(&[r#"{"kinds":[1]}"#]), kind1);
    assert_eq!(db.scan(&["--pause", "1", r#"{"kinds":[1]}"#]), kind1);
    assert_eq!(
        db.scan(&["--count", r#"{"kinds":[1]}"#]),
        vec![kind1.len().to_string()]
    );
    // A limit is honoured; no maxFilterLimit cap otherwise.
    assert_eq!(
        db.scan(&[r#"{"kinds":[1],"limit":3}"#]),
        kind1[..3].to_vec()
    );
    assert_eq!(db.scan(&["{}"]).len(), 40);

    // An array: filters one after another, each newest first, no event twice.
    let author = keys(2).pubkey;
    let author_hex: String = author.iter().map(|b| format!("{b:02x}")).collect();
    let arr = format!(r#"[{{"authors":["{author_hex}"]}},{{"kinds":[7,1]}}]"#);
    let mut expected = engine_order(evs.iter().filter(|e| e.pubkey == author));
    for j in engine_order(evs.iter().filter(|e| e.kind == 7 || e.kind == 1)) {
        if !expected.contains(&j) {
            expected.push(j);
        }
    }
    assert_eq!(db.scan(&[&arr]), expected);
    for pause in ["1", "2", "7"] {
        assert_eq!(
            db.scan(&["--pause", pause, &arr]),
            expected,
            "pause {pause}"
        );
    }
    assert_eq!(
        db.scan(&["--count", "--pause", "3", &arr]),
        vec![expected.len().to_string()]
    );
    let tagged = engine_order(evs.iter().filter(|e| {
        e.tags
            .iter()
            .any(|t| t.name() == "t" && t.value() == Some("topic1"))
    }));
    assert_eq!(db.scan(&[r##"{"#t":["topic1"]}"##]), tagged);

    for (bad, why) in [
        (r#"{"kinds":["x"]}"#, "error parsing kinds"),
        (r#"{"nope":1}"#, "unrecognised filter item: nope"),
        ("[1]", "filter is not an object"),
        ("{", "not valid JSON"),
        ("42", "object or an array"),
    ] {
        let err = db.fails(&["scan", bad], b"");
        assert!(err.contains(why), "{bad}: {err}");
    }
    assert!(!db
        .run(&["scan", "--pause", "0", "{}"], b"")
        .status
        .success());
}

#[test]
fn delete_dry_run_real_and_errors() {
    let db = Db::new();
    let evs = sample(30);
    let old: Vec<Event> = (0..4u64)
        .map(|i| sign(6, 1_000 + i, 1, &[], "ancient"))
        .collect();
    db.import(&[], &common::jsonl(&evs));
    db.import(&[], &common::jsonl(&old));
    let kind1 = evs.iter().chain(&old).filter(|e| e.kind == 1).count();

    let (_, err) = db.ok(
        &["delete", "--filter", r#"{"kinds":[1]}"#, "--dry-run"],
        b"",
    );
    assert!(
        err.contains(&format!("Would delete {kind1} events")),
        "{err}"
    );
    assert_eq!(db.export(&[]).len(), 34);

    // --age alone: only the events from before 1_600_000_000.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let age = (now - 1_600_000_000).to_string();
    let (_, err) = db.ok(&["delete", "--age", &age], b"");
    assert!(err.contains("Deleted 4 events"), "{err}");
    assert_eq!(db.export(&[]), export_order(&evs));

    let (_, err) = db.ok(
        &["delete", "--filter", r#"[{"kinds":[7]},{"kinds":[1]}]"#],
        b"",
    );
    let gone = evs.iter().filter(|e| e.kind == 1 || e.kind == 7).count();
    assert!(err.contains(&format!("Deleted {gone} events")), "{err}");
    let rest: Vec<Event> = evs
        .iter()
        .filter(|e| e.kind != 1 && e.kind != 7)
        .cloned()
        .collect();
    assert_eq!(db.export(&[]), export_order(&rest));

    // No tombstones: deleted events import again.
    let err = db.import(&[], &common::jsonl(&evs));
    assert!(
        summary_has(&err, gone as u64, 0, (30 - gone) as u64),
        "{err}"
    );

    // --age with a filter: both conditions.
    let (_, err) = db.ok(
        &[
            "delete",
            "--age",
            "1",
            "--filter",
            r#"{"kinds":[30023]}"#,
            "--dry-run",
        ],
        b"",
    );
    let n = evs.iter().filter(|e| e.kind == 30023).count();
    assert!(err.contains(&format!("Would delete {n} events")), "{err}");

    let err = db.fails(&["delete"], b"");
    assert!(err.contains("--age or --filter"), "{err}");
    let err = db.fails(
        &["delete", "--age", "10", "--filter", r#"{"until":5}"#],
        b"",
    );
    assert!(err.contains("not compatible"), "{err}");
    let err = db.fails(&["delete", "--filter", r#"{"bad":1}"#], b"");
    assert!(err.contains("unrecognised filter item"), "{err}");
    assert_eq!(db.export(&[]).len(), 30);
}

#[test]
fn compact_to_file_and_stdout_then_info() {
    let db = Db::new();
    let evs = sample(25);
    db.import(&[], &common::jsonl(&evs));
    db.ok(&["delete", "--filter", r#"{"kinds":[7]}"#], b"");
    let left = evs.iter().filter(|e| e.kind != 7).count();

    let copy = db.path().join("copy.mdb");
    let copy_s = copy.to_str().expect("utf8 path");
    db.ok(&["compact", copy_s], b"");
    let err = db.fails(&["compact", copy_s], b"");
    assert!(err.contains("refusing to overwrite"), "{err}");

    let check = |mdb: &[u8]| {
        let other = Db::new();
        std::fs::create_dir_all(other.path().join("db")).expect("mkdir");
        std::fs::write(other.path().join("db/data.mdb"), mdb).expect("copy");
        let (out, _) = other.ok(&["info"], b"");
        let first = out.lines().next().unwrap_or_default().to_owned();
        assert_eq!(first, "DB version: 1", "{out}");
        assert!(out.contains(&format!("\nEvents: {left}\n")), "{out}");
        assert_eq!(other.export(&[]).len(), left);
    };
    let bytes = std::fs::read(&copy).expect("read copy");
    check(&bytes);

    let out = db.run(&["compact", "-"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.len() > 4096);
    check(&out.stdout);
}

#[test]
fn info_lists_version_count_and_tables() {
    let db = Db::new();
    let (out, _) = db.ok(&["info"], b"");
    let l = lines(&out);
    assert_eq!(l[0], "DB version: 1");
    assert!(l.contains(&"Events: 0".to_string()), "{out}");
    db.import(&[], &common::jsonl(&sample(8)));
    let (out, _) = db.ok(&["info"], b"");
    assert!(out.contains("\nEvents: 8\n"), "{out}");
    assert!(out.contains("Map size: "), "{out}");
    assert!(out.contains("Table Event: 8 entries, "), "{out}");
    assert!(out.contains("Table Event__id: 8 entries, "), "{out}");
    assert!(
        out.contains("Table Event__created_at: 8 entries, "),
        "{out}"
    );
}

// ---- Benchmark helpers (ignored; run with --release --ignored --nocapture) -----------------

/// Writes `$WOK_BENCH_COUNT` (default 100000) signed, varied kind-1 events to
/// `$WOK_BENCH_OUT`: 500 authors, e/p/t tags, 20–400 bytes of content.
#[test]
#[ignore = "benchmark helper: needs WOK_BENCH_OUT"]
fn bench_gen_events() {
    let Ok(path) = std::env::var("WOK_BENCH_OUT") else {
        panic!("WOK_BENCH_OUT is not set: nothing to write the events to");
    };
    let count: usize = std::env::var("WOK_BENCH_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let authors: Vec<Keys> = (0..500u32)
        .map(|i| {
            let mut s = [7u8; 32];
            s[..4].copy_from_slice(&i.to_be_bytes());
            Keys::from_secret(s).expect("key")
        })
        .collect();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let words = [
        "nostr", "relay", "wok", "hello", "zap", "✨", "bitcoin", "the", "a",
    ];
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    for i in 0..count {
        let k = &authors[(next() % 500) as usize];
        let n_words = 3 + next() % 60;
        let content: Vec<&str> = (0..n_words)
            .map(|_| words[(next() % words.len() as u64) as usize])
            .collect();
        let e_ref = format!("{:016x}", next()).repeat(4);
        let p_ref = format!("{:016x}", next()).repeat(4);
        let topic = words[(next() % 5) as usize];
        let mut tags = vec![vec!["t", topic]];
        if i % 3 == 0 {
            tags.push(vec!["e", e_ref.as_str()]);
        }
        if i % 4 == 0 {
            tags.push(vec!["p", p_ref.as_str()]);
        }
        let ev = k
            .sign(
                1_690_000_000 + next() % 10_000_000,
                1,
                Tags::from_vecs(&tags),
                &content.join(" "),
                &Limits::default(),
            )
            .expect("sign");
        out.write_all(ev.json()).expect("write");
        out.write_all(b"\n").expect("write");
    }
    out.flush().expect("flush");
}

/// Single-thread baseline for import: parse + id + signature of every line of
/// `$WOK_BENCH_IN`, as one import worker does; prints events/s.
#[test]
#[ignore = "benchmark helper: needs WOK_BENCH_IN"]
fn bench_verify_loop() {
    use wok::nostr::{verify, JsonParser};
    let Ok(path) = std::env::var("WOK_BENCH_IN") else {
        panic!("WOK_BENCH_IN is not set: nothing to verify");
    };
    let data = std::fs::read(path).expect("read");
    let mut parser = JsonParser::new();
    let limits = Limits::default();
    let mut lines: Vec<Vec<u8>> = data
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let start = std::time::Instant::now();
    let mut events = Vec::with_capacity(lines.len());
    for line in &mut lines {
        let ev = Event::parse(line, &mut parser, &limits).expect("parse");
        assert!(verify::check_event(&ev).is_ok());
        events.push(ev);
    }
    let secs = start.elapsed().as_secs_f64();
    let n = lines.len() as f64;
    println!(
        "parse+verify loop: {} events in {secs:.3} s = {:.0} events/s",
        lines.len(),
        n / secs
    );
    let start = std::time::Instant::now();
    let ok = events
        .iter()
        .filter(|e| verify::check_event(e).is_ok())
        .count();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(ok, events.len());
    println!(
        "verify-only loop (pre-parsed): {secs:.3} s = {:.0} events/s",
        n / secs
    );
}
