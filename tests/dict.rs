//! zstd-dictionary payloads end to end: `wok dict` through the real binary on temp DBs, and
//! every reader (export, scan, REQ and live delivery on a running relay, `wok sync` uploads)
//! on compressed, uncompressed and mixed databases.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{keys, now, sign, TestRelay, WAIT};
use wok::gen::GenConfig;
use wok::nostr::Event;
use wok::store::dict::{self, DictId};
// `heed` is wok's own LMDB binding, used here only to damage a DB on purpose.
use wok::store::payload::{self, Payload};
use wok::store::{Store, StoreError, StoreOptions};

fn opts() -> StoreOptions {
    StoreOptions {
        map_size: 1 << 30,
        ..StoreOptions::default()
    }
}

/// Realistic events (`wok gen`'s generator), fixed seed, from the last 40 days (so a relay
/// accepts them).
fn generated(count: usize) -> Vec<Event> {
    wok::gen::generate(&GenConfig {
        seed: 7,
        count,
        authors: 200,
        start: now() - 40 * 86_400,
        span_secs: 30 * 86_400,
    })
}

/// Kind-1 notes with varied text and no expiration, ending a minute ago.
fn notes(n: u64) -> Vec<Event> {
    let ks: Vec<_> = (20..26).map(keys).collect();
    let t = now() - 60;
    (0..n)
        .map(|i| {
            let body = format!(
                "note {i}: {} #nostr",
                [
                    "gm friends",
                    "what a day for a relay",
                    "zaps are great",
                    "coffee first"
                ][(i % 4) as usize]
                    .repeat(1 + (i % 5) as usize)
            );
            sign(
                &ks[(i % 6) as usize],
                t - i,
                1,
                &[vec!["t", "nostr"]],
                &body,
            )
        })
        .collect()
}

/// A DB directory holding `evs`.
fn db_with(evs: &[Event]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Store::open(&db_path(dir.path()), &opts()).expect("store");
    s.write_batch(evs).expect("write");
    s.close();
    dir
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join("db")
}

/// Runs the real binary on the DB in `dir`.
fn wok(dir: &Path, args: &[&str]) -> Output {
    common::run(
        Command::new(env!("CARGO_BIN_EXE_wok"))
            .arg("--set")
            .arg(format!("db={}", db_path(dir).display()))
            .args(["--set", "dbParams.mapsize=1073741824"])
            .args(args)
            .env_remove("STRFRY_CONFIG")
            .current_dir(dir),
    )
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "wok failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn failed(o: &Output) -> String {
    assert!(!o.status.success(), "wok should have failed");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// (compressed, total) payload rows and the set of dictIds used, read straight off the DB.
fn payload_kinds(dir: &Path) -> (usize, usize, BTreeSet<DictId>) {
    let s = Store::open(&db_path(dir), &opts()).expect("store");
    let txn = s.read_txn().expect("txn");
    let mut compressed = 0;
    let mut dicts = BTreeSet::new();
    let levs = s.all_lev_ids(&txn).expect("levs");
    for &lev in &levs {
        let raw = s.raw_payload(&txn, lev).expect("read").expect("payload");
        if let Payload::Zstd { dict, .. } = payload::parse(raw).expect("parse") {
            compressed += 1;
            dicts.insert(dict);
        }
    }
    drop(txn);
    s.close();
    (compressed, levs.len(), dicts)
}

#[test]
fn train_compress_stats_decompress_round_trip_through_the_cli() {
    let dir = db_with(&generated(3000));
    let export_before = ok(&wok(dir.path(), &["export"]));
    let scan_filter = r#"[{"kinds":[1],"limit":200},{"kinds":[0,3,7]}]"#;
    let scan_before = ok(&wok(dir.path(), &["scan", scan_filter]));
    let n = export_before.lines().count();
    assert!(n > 2000, "{n}");
    assert!(scan_before.lines().count() > 200);

    // dict works on what `{}` matches, which leaves out expired events (export has them).
    let m: usize = ok(&wok(dir.path(), &["scan", "--count", "{}"]))
        .trim()
        .parse()
        .expect("count");
    assert!(m < n && m > n * 9 / 10, "{m} of {n}");
    let stats = ok(&wok(dir.path(), &["dict", "stats"]));
    assert!(
        stats.starts_with(&format!("Num compressed: 0 / {m}\n")),
        "{stats}"
    );
    assert!(stats.ends_with("dictId : events\n"), "{stats}");

    let out = ok(&wok(
        dir.path(),
        &["dict", "train", "--limit", "2000", "--dictSize", "30000"],
    ));
    assert_eq!(out, "Saved new dictionary, dictId = 1\n");
    let out = ok(&wok(dir.path(), &["dict", "compress", "--dictId", "1"]));
    assert_eq!(out, "");
    let (compressed, total, dicts) = payload_kinds(dir.path());
    assert_eq!(total, n);
    // Nearly all matching ones are compressed (a tiny event may not shrink by more than the
    // 4-byte id).
    assert!(
        compressed <= m && compressed * 100 >= m * 95,
        "{compressed} of {m}"
    );
    assert_eq!(dicts, BTreeSet::from([1]));

    let stats = ok(&wok(dir.path(), &["dict", "stats"]));
    let lines: Vec<&str> = stats.lines().collect();
    assert_eq!(lines[0], format!("Num compressed: {compressed} / {m}"));
    assert!(lines[1].starts_with("Uncompressed size: "), "{stats}");
    assert!(lines[2].starts_with("Compressed size:   "), "{stats}");
    // The saving is printed as a percentage; realistic events save well over a third.
    let pct: f64 = lines[2]
        .rsplit_once('(')
        .and_then(|(_, p)| p.strip_suffix("%)"))
        .and_then(|p| p.parse().ok())
        .expect("percentage");
    assert!(pct > 35.0, "{stats}");
    assert_eq!(
        &lines[3..],
        ["", "dictId : events", &format!("  1 : {compressed}")]
    );

    // Readers see byte-identical JSON.
    assert_eq!(ok(&wok(dir.path(), &["export"])), export_before);
    assert_eq!(ok(&wok(dir.path(), &["scan", scan_filter])), scan_before);

    // A second dictionary on kind 1 only, and decompressing kind 7: a mixed DB.
    let out = ok(&wok(
        dir.path(),
        &[
            "dict",
            "train",
            "--filter",
            r#"{"kinds":[1]}"#,
            "--dictSize",
            "20000",
        ],
    ));
    assert_eq!(out, "Saved new dictionary, dictId = 2\n");
    ok(&wok(
        dir.path(),
        &[
            "dict",
            "compress",
            "--dictId",
            "2",
            "--level",
            "9",
            "--filter",
            r#"{"kinds":[1]}"#,
        ],
    ));
    ok(&wok(
        dir.path(),
        &["dict", "decompress", "--filter", r#"{"kinds":[7]}"#],
    ));
    let (mixed, _, dicts) = payload_kinds(dir.path());
    assert!(mixed < compressed, "{mixed} vs {compressed}");
    assert_eq!(dicts, BTreeSet::from([1, 2]));
    let stats = ok(&wok(dir.path(), &["dict", "stats"]));
    assert!(stats.contains("\n  1 : "), "{stats}");
    assert!(stats.contains("\n  2 : "), "{stats}");
    assert_eq!(ok(&wok(dir.path(), &["export"])), export_before);
    assert_eq!(ok(&wok(dir.path(), &["scan", scan_filter])), scan_before);
    assert_eq!(
        ok(&wok(dir.path(), &["export", "--reverse"]))
            .lines()
            .count(),
        n
    );

    // Decompressing everything leaves exactly `0x00‖json` rows again.
    ok(&wok(dir.path(), &["dict", "decompress"]));
    assert_eq!(payload_kinds(dir.path()).0, 0);
    assert_eq!(ok(&wok(dir.path(), &["export"])), export_before);
    let s = Store::open(&db_path(dir.path()), &opts()).expect("store");
    let txn = s.read_txn().expect("txn");
    let mut raw_json = Vec::new();
    for lev in s.by_created_at(&txn, 0, u64::MAX, false).expect("walk") {
        let raw = s
            .raw_payload(&txn, lev.expect("lev"))
            .expect("r")
            .expect("p");
        assert_eq!(raw[0], payload::RAW);
        raw_json.extend_from_slice(&raw[1..]);
        raw_json.push(b'\n');
    }
    assert_eq!(String::from_utf8(raw_json).expect("utf8"), export_before);
    // Both dictionaries stay: rows are never removed.
    assert_eq!(
        s.dictionaries(&txn)
            .expect("dicts")
            .iter()
            .map(|d| d.0)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    drop(txn);
    s.close();
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = db_with(&generated(300));
    let e = failed(&wok(dir.path(), &["dict", "compress"]));
    assert!(e.contains("specify --dictId"), "{e}");
    let e = failed(&wok(dir.path(), &["dict", "compress", "--dictId", "3"]));
    assert!(e.contains("couldn't find dictId 3"), "{e}");
    let e = failed(&wok(dir.path(), &["dict", "stats", "--filter", "{nope"]));
    assert!(e.contains("bad filter"), "{e}");
    let e = failed(&wok(
        dir.path(),
        &["dict", "train", "--filter", r#"{"kinds":[55555]}"#],
    ));
    assert!(e.contains("nothing to train on"), "{e}");
    let e = failed(&wok(dir.path(), &["dict", "train", "--dictSize", "10"]));
    assert!(e.contains("dictSize"), "{e}");
    // Nothing was written by any of them.
    assert_eq!(payload_kinds(dir.path()).0, 0);
    let stats = ok(&wok(dir.path(), &["dict", "stats"]));
    assert!(stats.ends_with("dictId : events\n"), "{stats}");
}

/// Compresses every payload of the DB in `dir` with a freshly trained dictionary.
fn compress_all(s: &Store) -> DictId {
    let txn = s.read_txn().expect("txn");
    let levs = s.all_lev_ids(&txn).expect("levs");
    let mut data = Vec::new();
    let mut sizes = Vec::new();
    for &lev in &levs {
        let j = s.payload(&txn, lev).expect("p").expect("json");
        data.extend_from_slice(&j);
        sizes.push(j.len());
    }
    drop(txn);
    let id = s
        .add_dictionary(&dict::train(&data, &sizes, 20_000).expect("train"))
        .expect("add");
    let txn = s.read_txn().expect("txn");
    let d = s.dictionary(&txn, id).expect("dict");
    drop(txn);
    let r = s
        .recode_payloads(&levs, Some((&d, dict::DEFAULT_LEVEL)))
        .expect("recode");
    assert!(r.compressed > 0);
    id
}

/// Deletes dictionary `id` behind the store's back (what a lost table would look like).
fn drop_dictionary(db: &Path, id: DictId) {
    // SAFETY: no Store has this environment open in this process any more.
    let env = unsafe {
        heed::EnvOpenOptions::new()
            .read_txn_without_tls()
            .map_size(1 << 30)
            .max_dbs(32)
            .open(db)
    }
    .expect("env");
    let mut wtxn = env.write_txn().expect("wtxn");
    let table: heed::Database<heed::types::Bytes, heed::types::Bytes> = env
        .open_database(&wtxn, Some("CompressionDictionary"))
        .expect("open")
        .expect("table");
    assert!(table
        .delete(&mut wtxn, &u64::from(id).to_be_bytes())
        .expect("delete"));
    wtxn.commit().expect("commit");
    assert!(
        env.prepare_for_closing().wait_timeout(WAIT),
        "the LMDB environment is still open elsewhere"
    );
}

#[test]
fn a_missing_dictionary_is_an_error_not_a_panic() {
    let dir = db_with(&generated(400));
    let s = Store::open(&db_path(dir.path()), &opts()).expect("store");
    let id = compress_all(&s);
    s.close();
    drop_dictionary(&db_path(dir.path()), id);

    let s = Store::open(&db_path(dir.path()), &opts()).expect("store");
    let txn = s.read_txn().expect("txn");
    let lev = s.all_lev_ids(&txn).expect("levs")[0];
    match s.payload(&txn, lev) {
        Err(e @ StoreError::MissingDictionary(_)) => {
            assert!(
                e.to_string().contains(&format!("zstd dictionary {id}")),
                "{e}"
            );
        }
        other => panic!("expected MissingDictionary, got {other:?}"),
    }
    drop(txn);
    s.close();

    for args in [&["export"][..], &["scan", "{}"], &["dict", "stats"]] {
        let e = failed(&wok(dir.path(), args));
        assert!(
            e.contains(&format!(
                "zstd dictionary {id}, which is not in the database"
            )),
            "{args:?}: {e}"
        );
    }
}

#[test]
fn a_relay_skips_unreadable_events_and_keeps_serving() {
    let k = keys(3);
    let t = now() - 100;
    let evs: Vec<Event> = (0..300)
        .map(|i| {
            sign(
                &k,
                t - i,
                1,
                &[vec!["t", "dict"]],
                &format!("a repeated note body {i}"),
            )
        })
        .collect();
    let dir = db_with(&evs);
    let s = Store::open(&db_path(dir.path()), &opts()).expect("store");
    let id = compress_all(&s);
    s.close();
    drop_dictionary(&db_path(dir.path()), id);

    let store = Store::open(&db_path(dir.path()), &opts()).expect("store");
    let mut cfg = wok::config::Config::default();
    cfg.relay.port = 0;
    let ours = wok::relay::Relay::start(cfg, store).expect("start");
    let url = format!("ws://{}", ours.addr);
    let mut c = common::Client::connect(&url);
    // Every stored event is unreadable: the REQ ends with EOSE and no events.
    assert!(c.req("a", r#"{"kinds":[1]}"#).is_empty());
    // The threads are alive: a new event is stored and served, stored and live.
    let mut live = common::Client::connect(&url);
    live.send(r#"["REQ","live",{"kinds":[1],"limit":0}]"#);
    live.until(|m| m[0] == "EOSE");
    let fresh = sign(&k, now(), 1, &[], "after the loss");
    assert_eq!(c.publish(&fresh)[2], true);
    let got = live.until(|m| m[0] == "EVENT").1;
    assert_eq!(got[2]["content"], "after the loss");
    let again = c.req("b", r#"{"kinds":[1]}"#);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["content"], "after the loss");
    ours.stop();
}

#[test]
fn sync_skips_and_reports_unreadable_events() {
    let dir = db_with(&generated(200));
    let s = Store::open(&db_path(dir.path()), &opts()).expect("store");
    let id = compress_all(&s);
    s.close();
    drop_dictionary(&db_path(dir.path()), id);
    // One readable event beside the 200 that lost their dictionary.
    let fresh = sign(&keys(4), now(), 1, &[], "still readable");
    let s = Store::open(&db_path(dir.path()), &opts()).expect("store");
    s.write_batch(std::slice::from_ref(&fresh)).expect("write");
    s.close();

    let peer = TestRelay::start();
    let out = wok(dir.path(), &["sync", &peer.url, "--dir", "up"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("uploaded 1"), "{err}");
    // Every event the relay lacked but the fresh one lost its dictionary.
    let have: u64 = err
        .split("have ")
        .nth(1)
        .and_then(|w| w.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("the summary");
    let skipped: u64 = err
        .split("warning: ")
        .nth(1)
        .and_then(|w| w.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a warning with the count");
    assert!(have > 100, "{err}");
    assert_eq!(skipped, have - 1, "{err}");
    assert!(
        err.contains("local events not uploaded: their payload could not be read"),
        "{err}"
    );
    let mut c = peer.client();
    let got = c.req("s", "{}");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["content"], "still readable");
}

/// The raw text of every EVENT up to EOSE for `sub`.
fn req_texts(c: &mut common::Client, sub: &str, filter: &str) -> Vec<String> {
    c.send(&format!("[\"REQ\",\"{sub}\",{filter}]"));
    let mut out = Vec::new();
    let end = std::time::Instant::now() + common::UNTIL_LIMIT;
    while std::time::Instant::now() < end {
        let t = c.recv_text_within(WAIT).expect("a message");
        if t.starts_with(&format!("[\"EOSE\",\"{sub}\"")) {
            return out;
        }
        if let Some(ev) = t
            .strip_prefix(&format!("[\"EVENT\",\"{sub}\","))
            .and_then(|r| r.strip_suffix(']'))
        {
            out.push(ev.to_owned());
        }
    }
    panic!("no EOSE for {sub} within {:?}", common::UNTIL_LIMIT);
}

#[test]
fn relay_serves_mixed_payloads_and_compresses_new_events_when_asked() {
    let evs = generated(1500);
    let mut half_levs = Vec::new();
    let relay = TestRelay::with_store(
        |c| {
            c.events.compression = true;
            c.relay.max_filter_limit = 100_000;
        },
        |s| {
            s.write_batch(&evs).expect("write");
            // Train on everything, compress only every other event: a mixed DB.
            let id = compress_all(s);
            let txn = s.read_txn().expect("txn");
            let levs = s.all_lev_ids(&txn).expect("levs");
            drop(txn);
            half_levs = levs.iter().copied().step_by(2).collect();
            s.recode_payloads(&half_levs, None)
                .expect("decompress half");
            assert_eq!(id, 1);
        },
    );
    let store = relay.relay.as_ref().expect("relay").store();
    // What the store holds, decoded, is what a REQ must send byte for byte.
    let expected: BTreeSet<String> = {
        let txn = store.read_txn().expect("txn");
        let t = now();
        store
            .all_lev_ids(&txn)
            .expect("levs")
            .into_iter()
            .filter(|&l| {
                !store
                    .record(&txn, l)
                    .expect("r")
                    .expect("rec")
                    .is_expired(t)
            })
            .map(|l| {
                String::from_utf8(store.payload(&txn, l).expect("p").expect("j").into_owned())
                    .expect("utf8")
            })
            .collect()
    };
    assert!(expected.len() > 1000, "{}", expected.len());
    let mut c = relay.client();
    let got: Vec<String> = req_texts(&mut c, "all", "{}");
    assert_eq!(got.len(), expected.len());
    let got: BTreeSet<String> = got.into_iter().collect();
    let missing: Vec<_> = expected.difference(&got).take(3).collect();
    assert!(missing.is_empty(), "not served: {missing:?}");

    // Live: a new event is delivered to a subscriber and stored compressed (dictId 1).
    let mut sub = relay.client();
    sub.send(r##"["REQ","live",{"#t":["dictlive"],"limit":0}]"##);
    sub.until(|m| m[0] == "EOSE");
    let k = keys(9);
    let body = "a live note that is long enough to be worth compressing with a dictionary, \
                like most notes people write on nostr today"
        .to_string();
    let fresh = sign(&k, now(), 1, &[vec!["t", "dictlive"]], &body);
    assert_eq!(c.publish(&fresh)[2], true);
    let live = sub.recv_text_within(WAIT).expect("live event");
    assert_eq!(
        live,
        format!(
            "[\"EVENT\",\"live\",{}]",
            String::from_utf8_lossy(fresh.json())
        )
    );
    let txn = store.read_txn().expect("txn");
    let lev = store
        .lookup_id(&txn, &fresh.id)
        .expect("lookup")
        .expect("stored");
    let raw = store.raw_payload(&txn, lev).expect("r").expect("p");
    assert!(
        matches!(
            payload::parse(raw).expect("parse"),
            Payload::Zstd { dict: 1, .. }
        ),
        "{:?}",
        &raw[..1]
    );
    assert!(raw.len() < fresh.json().len());
    drop(txn);
    // And a REQ reads it back exactly.
    let back = req_texts(&mut c, "again", r##"{"#t":["dictlive"]}"##);
    assert_eq!(back, [String::from_utf8_lossy(fresh.json()).into_owned()]);
}

#[test]
fn compression_off_stores_new_events_raw_even_with_a_dictionary() {
    let relay = TestRelay::with_store(
        |_| {},
        |s| {
            s.write_batch(&generated(300)).expect("write");
            compress_all(s);
        },
    );
    let mut c = relay.client();
    let fresh = sign(
        &keys(4),
        now(),
        1,
        &[],
        &"plain text, stored plainly ".repeat(8),
    );
    assert_eq!(c.publish(&fresh)[2], true);
    let store = relay.relay.as_ref().expect("relay").store();
    let txn = store.read_txn().expect("txn");
    let lev = store
        .lookup_id(&txn, &fresh.id)
        .expect("l")
        .expect("stored");
    let raw = store.raw_payload(&txn, lev).expect("r").expect("p");
    assert_eq!(raw[0], payload::RAW);
}

#[test]
fn sync_uploads_compressed_events_intact() {
    let evs = notes(600);
    let dir = db_with(&evs);
    let s = Store::open(&db_path(dir.path()), &opts()).expect("store");
    compress_all(&s);
    s.close();
    let local = ok(&wok(dir.path(), &["export"]));
    let relay = TestRelay::start();
    let o = wok(dir.path(), &["sync", &relay.url, "--dir", "up"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The relay now holds exactly the local export's JSON.
    let store = relay.relay.as_ref().expect("relay").store();
    let txn = store.read_txn().expect("txn");
    let mut remote = BTreeSet::new();
    for lev in store.by_created_at(&txn, 0, u64::MAX, false).expect("walk") {
        let j = store
            .payload(&txn, lev.expect("lev"))
            .expect("p")
            .expect("j");
        remote.insert(String::from_utf8(j.into_owned()).expect("utf8"));
    }
    let local: BTreeSet<String> = local.lines().map(str::to_owned).collect();
    assert_eq!(remote, local);
}
