//! Retention rules (`retention { rules { … } maxDbBytes }`): pruned by the running relay in
//! slices, and offline by `wok prune`; archives before delete.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{keys, now, sign, TestRelay, WAIT};
use wok::nostr::filter::EventView;
use wok::nostr::Event;
use wok::store::{Store, StoreOptions};

const RULES: &str = r#"oldnotes { kinds = "1" maxAgeSeconds = 3600 }
    broad { kinds = "0-9999" maxAgeSeconds = 3600 }
    reactions { kinds = "7" maxEventsPerPubkey = 5 }"#;

/// The fixture: author 1 has 10 old and 20 recent notes and an old profile and follow list
/// (replaceable: only a rule naming them may prune them); author 2 has 15 reactions.
fn fixture(t: u64) -> Vec<Event> {
    let (a, b) = (keys(1), keys(2));
    let mut evs = Vec::new();
    for i in 0..10 {
        evs.push(sign(&a, t - 10_000 + i, 1, &[], &format!("old {i}")));
    }
    for i in 0..20 {
        evs.push(sign(&a, t - 100 + i, 1, &[], &format!("new {i}")));
    }
    evs.push(sign(&a, t - 10_000, 0, &[], "{}"));
    evs.push(sign(&a, t - 10_000, 3, &[], ""));
    for i in 0..15 {
        evs.push(sign(&b, t - 1000 + i, 7, &[], "+"));
    }
    evs
}

/// What must be left of the fixture (plus `extra`) once the rules ran: ids.
fn expected_left(evs: &[Event], t: u64) -> BTreeSet<String> {
    let mut reactions: Vec<&Event> = evs.iter().filter(|e| e.kind == 7).collect();
    reactions.sort_by_key(|e| std::cmp::Reverse(e.created_at));
    evs.iter()
        .filter(|e| match e.kind {
            1 => e.created_at >= t - 3600,
            7 => reactions[..5].iter().any(|r| r.id == e.id),
            _ => true,
        })
        .map(|e| e.id_hex().to_string())
        .collect()
}

fn stored_ids(store: &Store) -> BTreeSet<String> {
    let txn = store.read_txn().expect("txn");
    store
        .all_lev_ids(&txn)
        .expect("levs")
        .into_iter()
        .filter_map(|l| store.record(&txn, l).expect("record"))
        .map(|r| wok::nostr::hex::encode(r.id()))
        .collect()
}

fn await_metric(url: &str, name: &str, want: u64) {
    let end = Instant::now() + WAIT;
    loop {
        let v = common::metric(url, name);
        if v >= want {
            assert_eq!(v, want, "{name}");
            return;
        }
        assert!(Instant::now() < end, "{name} is {v}, waiting for {want}");
        // Polling an HTTP counter: the relay has no event to wait on from outside.
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_running_relay_prunes_by_age_and_by_count_per_author() {
    let t = now();
    let mut evs = fixture(t);
    let fill = evs.clone();
    let r = TestRelay::with_store(
        |c| {
            c.retention.rules = wok::config::retention::Rules::parse_text(RULES)
                .expect("rules")
                .canonical()
        },
        |s| {
            s.write_batch(&fill).expect("fill");
        },
    );
    // 10 old notes, 10 surplus reactions.
    await_metric(&r.url, "wok_retention_pruned_total", 20);
    // Published while it runs: an old note and one more reaction.
    let mut c = r.client();
    let late_old = sign(&keys(1), t - 7200, 1, &[], "late old");
    let late_reaction = sign(&keys(2), t, 7, &[], "+");
    for e in [&late_old, &late_reaction] {
        assert_eq!(c.publish(e)[2], true);
        evs.push(e.clone());
    }
    await_metric(&r.url, "wok_retention_pruned_total", 22);
    // A whole pass more finds nothing else (and the count did not move past 22 above).
    let slices = common::metric(&r.url, "wok_retention_slices_total");
    assert!(
        common::eventually(WAIT, || common::metric(
            &r.url,
            "wok_retention_slices_total"
        ) >= slices + 2),
        "no more slices"
    );
    assert_eq!(common::metric(&r.url, "wok_retention_pruned_total"), 22);
    let got: BTreeSet<String> = c
        .req("all", "{}")
        .iter()
        .map(|e| e["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(got, expected_left(&evs, t));

    // NIP-11 lists the rules with a time or a count.
    let doc = common::nip11_of(&r.url);
    assert_eq!(
        doc["retention"],
        serde_json::json!([
            {"kinds": [[0, 9999]], "time": 3600},
            {"kinds": [1], "time": 3600},
            {"kinds": [7], "count": 5},
        ])
    );

    // Every index and tree row went with its event.
    let mut r = r;
    if let Some(relay) = r.relay.take() {
        relay.stop();
    }
    let store = Store::open(r.dir.path(), &StoreOptions::default()).expect("reopen");
    common::assert_consistent(&store);
}

/// Slices run inside the write batches while clients publish: the batch's events and the
/// slice's deletions commit together, so nothing published is lost, every old note goes,
/// and every index and tree row stays exact (a reaction rule prunes the publisher's own
/// reactions as they arrive, in the same transactions that store newer ones).
#[test]
fn pruning_inside_busy_write_batches_keeps_every_published_event_and_the_indexes_exact() {
    let t = now();
    let old: Vec<Event> = (0..1500)
        .map(|i| sign(&keys(3), t - 100_000 + i, 1, &[], &format!("old {i}")))
        .collect();
    let fill = old.clone();
    let r = TestRelay::with_store(
        |c| {
            c.retention.rules = wok::config::retention::Rules::parse_text(
                r#"oldnotes { kinds = "1" maxAgeSeconds = 3600 }
                   reactions { kinds = "7" maxEventsPerPubkey = 50 }"#,
            )
            .expect("rules")
            .canonical()
        },
        |s| {
            s.write_batch(&fill).expect("fill");
        },
    );
    let mut c = r.client();
    let (k, mut published, mut reactions) = (keys(4), Vec::new(), Vec::new());
    // Publishing keeps the writer busy (never idle for a quiet slice) until the old notes
    // are gone; bounded by the count as well as by the clock.
    let end = Instant::now() + WAIT;
    let mut i = 0u64;
    while common::metric(&r.url, "wok_retention_pruned_total") < 1500 {
        assert!(
            Instant::now() < end && i < 100_000,
            "pruned too little while publishing"
        );
        for _ in 0..16 {
            let note = sign(&k, t - 10 + i % 10, 1, &[], &format!("new {i}"));
            let reaction = sign(&k, t - 3000 + i, 7, &[], "+");
            c.send_event(&note);
            c.send_event(&reaction);
            published.push(note.id_hex().to_string());
            reactions.push(reaction.id_hex().to_string());
            i += 1;
        }
        for _ in 0..32 {
            let ok = c.until(|m| m[0] == "OK").1;
            assert_eq!(ok[2], true, "{ok}");
        }
    }
    let mut r = r;
    if let Some(relay) = r.relay.take() {
        relay.stop();
    }
    let store = Store::open(r.dir.path(), &StoreOptions::default()).expect("reopen");
    let stored = stored_ids(&store);
    for id in &published {
        assert!(stored.contains(id), "published note {id} lost");
    }
    for e in &old {
        assert!(!stored.contains(e.id_hex()), "old note left");
    }
    // The newest 50 reactions are never pruned.
    for id in reactions.iter().rev().take(50) {
        assert!(stored.contains(id), "a kept reaction was pruned");
    }
    common::assert_consistent(&store);
}

fn wok(conf: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wok"));
    c.arg("--config").arg(conf).arg("--quiet");
    c
}

/// A DB holding the fixture and a config with `rules`, in `dir`.
fn offline_setup(dir: &std::path::Path, rules: &str, evs: &[Event]) -> std::path::PathBuf {
    let db = dir.join("db");
    let store = Store::open(&db, &StoreOptions::default()).expect("store");
    store.write_batch(evs).expect("fill");
    store.close();
    let conf = dir.join("wok.conf");
    std::fs::write(
        &conf,
        format!(
            "db = {:?}\nretention {{\n  rules {{\n    {rules}\n  }}\n  maxDbBytes = 0\n}}\n",
            db.display().to_string()
        ),
    )
    .expect("conf");
    conf
}

#[test]
fn wok_prune_counts_per_rule_and_prunes_the_same_events() {
    let dir = tempfile::tempdir().expect("tmp");
    let t = now();
    let evs = fixture(t);
    let conf = offline_setup(dir.path(), RULES, &evs);
    let out = common::run(wok(&conf).args(["prune", "--dry-run"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // broad covers the old notes too (not the profile or follow list); each event counts once
    // in the total.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "broad: 10\noldnotes: 10\nreactions: 10\ntotal: 20\n"
    );
    let store = Store::open(&dir.path().join("db"), &StoreOptions::default()).expect("open");
    assert_eq!(
        stored_ids(&store).len(),
        evs.len(),
        "a dry run deletes nothing"
    );
    store.close();

    let out = common::run(wok(&conf).arg("prune"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "broad: 10\noldnotes: 0\nreactions: 10\ntotal: 20\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("prune: 20 events in "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(&dir.path().join("db"), &StoreOptions::default()).expect("open");
    assert_eq!(stored_ids(&store), expected_left(&evs, t));
    common::assert_consistent(&store);
}

#[test]
fn bad_rules_are_refused_with_their_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let conf = offline_setup(dir.path(), r#"x { kinds = "1-" maxAgeSeconds = 5 }"#, &[]);
    let out = common::run(wok(&conf).arg("prune"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rules.x.kinds"), "{err}");
}

/// Every line of every `.jsonl.zst` file in `dir` (frames concatenated, files in name order).
/// A file may end inside a frame when its writer was killed mid-append (`wok import` reads
/// such a file up to the cut): the whole lines before the cut count, the cut one does not.
fn archived_lines(dir: &std::path::Path) -> Vec<String> {
    use std::io::Read;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        assert!(f.to_string_lossy().ends_with(".jsonl.zst"), "{f:?}");
        let mut bytes = Vec::new();
        let mut dec =
            zstd::stream::read::Decoder::new(std::fs::File::open(&f).expect("open")).expect("zstd");
        if let Err(e) = dec.read_to_end(&mut bytes) {
            // Only a cut end is allowed; what was decoded before it stays in `bytes`.
            assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{f:?}: {e}");
            let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            bytes.truncate(whole);
        }
        out.extend(
            String::from_utf8(bytes)
                .expect("utf8")
                .lines()
                .map(str::to_string),
        );
    }
    out
}

#[test]
fn archives_hold_exactly_the_pruned_events_and_import_back_byte_identical() {
    let dir = tempfile::tempdir().expect("tmp");
    let arch = dir.path().join("arch");
    let t = now();
    let evs = fixture(t);
    let rules = format!(
        r#"oldnotes {{ kinds = "1" maxAgeSeconds = 3600 archive = {:?} }}
           reactions {{ kinds = "7" maxEventsPerPubkey = 5 archive = {:?} }}"#,
        arch.display().to_string(),
        arch.display().to_string()
    );
    let conf = offline_setup(dir.path(), &rules, &evs);
    let out = common::run(wok(&conf).arg("prune"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = expected_left(&evs, t);
    let mut pruned: Vec<String> = evs
        .iter()
        .filter(|e| !left.contains(e.id_hex()))
        .map(|e| String::from_utf8_lossy(e.json()).into_owned())
        .collect();
    pruned.sort();
    let mut lines = archived_lines(&arch);
    lines.sort();
    assert_eq!(lines, pruned);

    // `wok import FILE.jsonl.zst` reads them directly; export gives back the same bytes.
    let db2 = dir.path().join("db2");
    let mut export_all = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&arch)
        .expect("arch")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for f in &files {
        let out = common::run(
            wok(&conf)
                .arg("--set")
                .arg(format!("db={}", db2.display()))
                .arg("import")
                .arg(f),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = common::run(
        wok(&conf)
            .arg("--set")
            .arg(format!("db={}", db2.display()))
            .arg("export"),
    );
    assert!(out.status.success());
    export_all.extend(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string),
    );
    export_all.sort();
    assert_eq!(export_all, pruned);
}

#[test]
fn kill_9_while_the_relay_prunes_loses_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let arch = dir.path().join("arch");
    let db = dir.path().join("db");
    let t = now();
    let k = keys(9);
    // Enough old notes for dozens of slices.
    let old: Vec<Event> = (0..6000)
        .map(|i| sign(&k, t - 100_000 + i, 1, &[], &format!("old {i}")))
        .collect();
    let keep: Vec<Event> = (0..100)
        .map(|i| sign(&k, t - 100 + i, 1, &[], &format!("keep {i}")))
        .collect();
    {
        let store = Store::open(&db, &StoreOptions::default()).expect("store");
        store.write_batch(&old).expect("fill");
        store.write_batch(&keep).expect("fill");
        store.close();
    }
    let conf = dir.path().join("wok.conf");
    std::fs::write(
        &conf,
        format!(
            "db = {:?}\nrelay {{ port = 0 }}\nretention {{ rules {{ old {{ kinds = \"1\" maxAgeSeconds = 3600 archive = {:?} }} }} }}\n",
            db.display().to_string(),
            arch.display().to_string()
        ),
    )
    .expect("conf");
    let mut relay = common::Running::spawn(
        Command::new(env!("CARGO_BIN_EXE_wok"))
            .args(["--config", conf.to_str().expect("utf8"), "relay"])
            .env_remove("STRFRY_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    );
    let port = relay.await_port(WAIT);
    let url = format!("ws://127.0.0.1:{port}");
    let end = Instant::now() + WAIT;
    while common::metric(&url, "wok_retention_pruned_total") == 0 {
        assert!(Instant::now() < end, "nothing pruned");
    }
    relay.signal("-KILL");
    relay.wait_within(WAIT);

    let store = Store::open(&db, &StoreOptions::default()).expect("reopen");
    let stored = stored_ids(&store);
    common::assert_consistent(&store);
    for e in &keep {
        assert!(stored.contains(e.id_hex()), "a kept event is gone");
    }
    let archived: BTreeSet<String> = archived_lines(&arch)
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["id"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    for e in &old {
        assert!(
            stored.contains(e.id_hex()) || archived.contains(e.id_hex()),
            "an event is neither stored nor archived"
        );
    }
    assert!(
        stored.len() > keep.len(),
        "the kill came after pruning ended ({} stored): the test proves nothing",
        stored.len()
    );
}

#[test]
fn past_the_size_budget_the_oldest_events_of_the_rules_kinds_go_first() {
    let t = now();
    let k = keys(5);
    let pad = "x".repeat(1000);
    let notes: Vec<Event> = (0..3000)
        // Two kinds, interleaved in time: "oldest first" must hold across the rule's kinds.
        .map(|i| {
            sign(
                &k,
                t - 50_000 + i,
                1 + 6 * (i % 2),
                &[],
                &format!("{i} {pad}"),
            )
        })
        .collect();
    // Older than every note, but of a kind no rule names.
    let other: Vec<Event> = (0..50)
        .map(|i| sign(&keys(6), t - 90_000 + i, 1111, &[], &format!("{i} {pad}")))
        .collect();
    let (fill_a, fill_b) = (notes.clone(), other.clone());
    // The budget: half of what the filled DB holds (measured on an identical store).
    let budget = {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(dir.path(), &StoreOptions::default()).expect("store");
        s.write_batch(&notes).expect("fill");
        s.write_batch(&other).expect("fill");
        let live = s.live_bytes().expect("live");
        s.close();
        live / 2
    };
    let r = TestRelay::with_store(
        |c| {
            c.retention.rules = r#"notes { kinds = "1, 7" }"#.into();
            c.retention.max_db_bytes = budget;
        },
        |s| {
            s.write_batch(&fill_a).expect("fill");
            s.write_batch(&fill_b).expect("fill");
        },
    );
    // Pruning ends when the budget is met: then a pass (1 s apart) prunes nothing more.
    let end = Instant::now() + Duration::from_secs(60);
    let mut last = (u64::MAX, 0);
    loop {
        let pruned = common::metric(&r.url, "wok_retention_pruned_total");
        let slices = common::metric(&r.url, "wok_retention_slices_total");
        if pruned > 0 && pruned == last.0 && slices >= last.1 + 2 {
            break;
        }
        if pruned != last.0 {
            last = (pruned, slices);
        }
        assert!(
            Instant::now() < end,
            "pruning did not settle ({pruned} pruned)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut r = r;
    if let Some(relay) = r.relay.take() {
        relay.stop();
    }
    let store = Store::open(r.dir.path(), &StoreOptions::default()).expect("reopen");
    assert!(store.live_bytes().expect("live") <= budget);
    let stored = stored_ids(&store);
    // The kind no rule names is all there; the notes left are the newest ones.
    assert!(other.iter().all(|e| stored.contains(e.id_hex())));
    let left: Vec<bool> = notes.iter().map(|e| stored.contains(e.id_hex())).collect();
    let first_kept = left.iter().position(|&b| b).expect("some notes kept");
    assert!(
        left[first_kept..].iter().all(|&b| b),
        "a newer note went before an older one"
    );
    assert!(
        first_kept > 0 && first_kept < notes.len() / 2 + 600,
        "{first_kept} pruned"
    );
}

#[test]
fn wok_info_shows_live_data_free_pages_and_what_retention_would_prune() {
    let dir = tempfile::tempdir().expect("tmp");
    let t = now();
    let conf = offline_setup(dir.path(), RULES, &fixture(t));
    let field = |out: &str, name: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    let out = common::run(wok(&conf).arg("info"));
    assert!(out.status.success());
    let before = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in [
        "Retention rule broad: would prune 10 events now",
        "Retention rule oldnotes: would prune 10 events now",
        "Retention rule reactions: would prune 10 events now",
        "Retention total: would prune 20 events now",
        "Largest tables: ",
    ] {
        assert!(before.contains(line), "{line} not in {before}");
    }
    let live_before = field(&before, "Live data: ");
    assert!(live_before > 0);
    assert!(common::run(wok(&conf).arg("prune")).status.success());
    let out = common::run(wok(&conf).arg("info"));
    let after = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        after.contains("Retention total: would prune 0 events now"),
        "{after}"
    );
    // What the pruned events held is free now, and reused before the file grows.
    assert!(
        field(&after, "Free pages: ") > field(&before, "Free pages: "),
        "{after}"
    );
}

/// An archive cut inside a frame (its writer killed mid-append) imports up to the cut: the
/// whole frames' events are stored, and the import fails saying where its input ended.
#[test]
fn an_archive_cut_inside_a_frame_imports_its_whole_frames_and_fails_saying_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = keys(11);
    let t = now();
    let frame = |from: u64| -> (Vec<Event>, Vec<u8>) {
        let evs: Vec<Event> = (from..from + 50)
            .map(|i| sign(&k, t - 1000 + i, 1, &[], &format!("archived {i}")))
            .collect();
        let frame = zstd::bulk::compress(&common::jsonl(&evs), 3).expect("zstd");
        (evs, frame)
    };
    let (whole, a) = frame(0);
    let (cut, b) = frame(50);
    let file = dir.path().join("old-2026-12-06-0001.jsonl.zst");
    let mut bytes = a.clone();
    bytes.extend_from_slice(&b[..b.len() / 2]);
    std::fs::write(&file, &bytes).expect("write");
    let conf = offline_setup(dir.path(), "", &[]);
    let out = common::run(wok(&conf).arg("import").arg(&file));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("ends inside a zstd frame"), "{err}");
    let store = Store::open(&dir.path().join("db"), &StoreOptions::default()).expect("open");
    let stored = stored_ids(&store);
    for e in &whole {
        assert!(
            stored.contains(e.id_hex()),
            "a whole frame's event is missing: {err}"
        );
    }
    let known: BTreeSet<&str> = whole.iter().chain(&cut).map(|e| e.id_hex()).collect();
    assert!(stored.iter().all(|id| known.contains(id.as_str())));

    // The same two frames whole import cleanly.
    std::fs::write(&file, [a, b].concat()).expect("write");
    let out = common::run(wok(&conf).arg("import").arg(&file));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
