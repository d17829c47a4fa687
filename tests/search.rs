//! NIP-50 search and NIP-45 HLL over a real relay: relevance order, AND, Unicode,
//! consistency with deletions and replacements, live search subscriptions, COUNT, errors,
//! NIP-11.

mod common;

use common::*;
use wok::search::hll::{self, Hll};

fn ids(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_string())
        .collect()
}

fn closed_reason(c: &mut Client, sub: &str, filter: &str) -> String {
    c.send(&format!(r#"["REQ","{sub}",{filter}]"#));
    let (_, m) = c.until(|m| m[1] == sub && (m[0] == "CLOSED" || m[0] == "EOSE"));
    assert_eq!(m[0], "CLOSED", "{m}");
    m[2].as_str().expect("reason").to_string()
}

#[test]
fn relevance_and_semantics() {
    let r = TestRelay::with(|c| c.search.enabled = true);
    let mut c = r.client();
    let t = now();
    let best = sign(&keys(1), t - 30, 1, &[], "Rust rust RUST relay");
    let mid = sign(
        &keys(2),
        t - 20,
        1,
        &[],
        "a long note that mentions rust once among many other words here",
    );
    let both = sign(&keys(3), t - 10, 1, &[vec!["t", "nostr"]], "rust on #nostr");
    let cafe = sign(&keys(4), t - 5, 1, &[], "Le Café crème 🎉");
    let cjk = sign(&keys(5), t - 4, 1, &[], "私は東京に住んでいます");
    let article = sign(
        &keys(6),
        t - 3,
        30023,
        &[vec!["d", "x"], vec!["title", "Über Wörter"]],
        "body",
    );
    let unindexed = sign(&keys(7), t - 2, 7, &[], "rust");
    for e in [&best, &mid, &both, &cafe, &cjk, &article, &unindexed] {
        assert_eq!(c.publish(e)[2], true);
    }
    // Best match first (BM25), not newest first; only indexed kinds.
    let got = ids(&c.req("s1", r#"{"search":"rust"}"#));
    assert_eq!(got[0], best.id_hex());
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(!got.contains(&unindexed.id_hex().to_string()));
    // AND: every word must occur (a tag counts as text).
    assert_eq!(
        ids(&c.req("s2", r#"{"search":"rust nostr"}"#)),
        [both.id_hex()]
    );
    assert_eq!(
        ids(&c.req("s3", r#"{"search":"\"rust relay\""}"#)),
        [best.id_hex()]
    );
    // Combined with other fields, and limit after ranking.
    let pk = mid.pubkey_hex();
    assert_eq!(
        ids(&c.req("s4", &format!(r#"{{"search":"rust","authors":["{pk}"]}}"#))),
        [mid.id_hex()]
    );
    assert_eq!(
        ids(&c.req("s5", r#"{"search":"rust","limit":1}"#)),
        [best.id_hex()]
    );
    assert_eq!(
        ids(&c.req("s6", &format!(r#"{{"search":"rust","since":{}}}"#, t - 15))),
        [both.id_hex()]
    );
    // Unicode: accents fold, CJK words of two characters, emoji are harmless.
    assert_eq!(ids(&c.req("u1", r#"{"search":"CAFE"}"#)), [cafe.id_hex()]);
    assert_eq!(
        ids(&c.req("u2", r#"{"search":"东京"}"#)),
        Vec::<String>::new()
    );
    assert_eq!(ids(&c.req("u3", r#"{"search":"東京"}"#)), [cjk.id_hex()]);
    assert_eq!(
        ids(&c.req("u4", r#"{"search":"uber worter"}"#)),
        [article.id_hex()]
    );
    assert_eq!(
        ids(&c.req("u5", r#"{"search":"crème 🎉 include:spam foo:bar"}"#)),
        [cafe.id_hex()]
    );
    // COUNT with search.
    c.send(r#"["COUNT","c1",{"search":"rust"}]"#);
    let (_, m) = c.until(|m| m[0] == "COUNT" && m[1] == "c1");
    assert_eq!(m[2]["count"], 3);
    // Clear refusals.
    assert_eq!(
        closed_reason(&mut c, "e1", r#"{"search":""}"#),
        "invalid: empty search"
    );
    assert!(closed_reason(&mut c, "e2", r#"{"search":"!!! 🎉 ..."}"#)
        .starts_with("invalid: search has no words"));
    let long = "word ".repeat(200);
    assert!(
        closed_reason(&mut c, "e3", &format!(r#"{{"search":"{long}"}}"#)).contains("longer than")
    );
    assert!(closed_reason(&mut c, "e4", r#"{"search":5}"#).starts_with("invalid:"));
}

#[test]
fn deleted_and_replaced_events_are_never_found() {
    let r = TestRelay::with(|c| c.search.enabled = true);
    let mut c = r.client();
    let t = now();
    let k = keys(9);
    let note = sign(&k, t - 10, 1, &[], "ephemeral thoughts about walruses");
    assert_eq!(c.publish(&note)[2], true);
    // Searchable as soon as OK true arrived.
    assert_eq!(
        ids(&c.req("a", r#"{"search":"walruses"}"#)),
        [note.id_hex()]
    );
    let del = sign(&k, t - 5, 5, &[vec!["e", note.id_hex()]], "");
    assert_eq!(c.publish(&del)[2], true);
    assert!(c.req("b", r#"{"search":"walruses"}"#).is_empty());
    let p1 = sign(
        &k,
        t - 10,
        0,
        &[],
        r#"{"name":"Walter","about":"sea lover"}"#,
    );
    let p2 = sign(&k, t - 5, 0, &[], r#"{"name":"Wally","about":"sea lover"}"#);
    assert_eq!(c.publish(&p1)[2], true);
    assert_eq!(c.publish(&p2)[2], true);
    assert!(c.req("c", r#"{"search":"walter"}"#).is_empty());
    assert_eq!(ids(&c.req("d", r#"{"search":"sea lover"}"#)), [p2.id_hex()]);
    let txn = r
        .relay
        .as_ref()
        .expect("relay")
        .store()
        .read_txn()
        .expect("txn");
    let problems = r
        .relay
        .as_ref()
        .expect("relay")
        .store()
        .search_check(&txn)
        .expect("check");
    assert!(problems.is_empty(), "{problems:?}");
}

/// A restricted kind an operator chose to index is still only found by readers who may
/// read it: an unauthenticated search sees the public note, not the DM with the same word.
#[test]
fn restricted_kinds_are_not_found_by_other_readers() {
    let r = TestRelay::with(|c| {
        c.search.enabled = true;
        c.search.kinds = "1, 4".into();
    });
    let mut c = r.client();
    let t = now();
    let (alice, bob) = (keys(21), keys(22));
    let bob_pk = sign(&bob, t, 1, &[], "").pubkey_hex().to_string();
    let dm = sign(&alice, t - 5, 4, &[vec!["p", &bob_pk]], "walrus secret");
    let note = sign(&alice, t - 4, 1, &[], "walrus public");
    assert_eq!(c.publish(&dm)[2], true);
    assert_eq!(c.publish(&note)[2], true);
    assert_eq!(ids(&c.req("s", r#"{"search":"walrus"}"#)), [note.id_hex()]);
    // Asking for the restricted kind alone is refused outright (strfry's rule).
    let reason = closed_reason(&mut c, "k", r#"{"search":"walrus","kinds":[4]}"#);
    assert!(reason.starts_with("auth-required:"), "{reason}");
}

#[test]
fn live_search_subscription() {
    let r = TestRelay::with(|c| c.search.enabled = true);
    let mut sub = r.client();
    let mut pubr = r.client();
    sub.send(r#"["REQ","live",{"search":"penguin","kinds":[1]}]"#);
    sub.until(|m| m[0] == "EOSE" && m[1] == "live");
    let miss = note(&keys(11), "a seal, not the bird");
    let miss_kind = sign(
        &keys(11),
        now(),
        30023,
        &[vec!["d", "p"]],
        "penguin article",
    );
    let hit = note(&keys(12), "A PENGUIN waddles");
    for e in [&miss, &miss_kind, &hit] {
        assert_eq!(pubr.publish(e)[2], true);
    }
    // The first event delivered is the match: the others came before it and were skipped.
    let (before, m) = sub.until(|m| m[0] == "EVENT");
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(m[2]["id"], hit.id_hex());
}

#[test]
fn hll_matches_a_hand_computation() {
    let r = TestRelay::with(|c| c.search.enabled = true);
    let mut c = r.client();
    let target = note(&keys(20), "react to me");
    assert_eq!(c.publish(&target)[2], true);
    let id = target.id_hex().to_string();
    let mut want = Hll::new(hll::offset(&id));
    assert_eq!(
        want.offset,
        u8::from_str_radix(&id[32..33], 16).expect("hex") + 8
    );
    for n in 30..60u8 {
        let k = keys(n);
        let reaction = sign(&k, now(), 7, &[vec!["e", &id]], "+");
        assert_eq!(c.publish(&reaction)[2], true);
        want.add(&reaction.pubkey);
    }
    // One other reaction to another event, which must not count.
    let other = sign(&keys(61), now(), 7, &[vec!["e", &"ab".repeat(32)]], "+");
    assert_eq!(c.publish(&other)[2], true);
    c.send(&format!(r##"["COUNT","h",{{"#e":["{id}"],"kinds":[7]}}]"##));
    let (_, m) = c.until(|m| m[0] == "COUNT" && m[1] == "h");
    assert_eq!(m[2]["count"], 30);
    assert_eq!(m[2]["hll"], want.to_hex());
    // A filter whose first tag has two values gets no registers (NIP-45 defines none).
    c.send(&format!(
        r##"["COUNT","h2",{{"#e":["{id}","{}"],"kinds":[7]}}]"##,
        "ab".repeat(32)
    ));
    let (_, m) = c.until(|m| m[0] == "COUNT" && m[1] == "h2");
    assert_eq!(m[2]["count"], 31);
    assert!(m[2].get("hll").is_none(), "{m}");
}

#[test]
fn hll_answers_are_cached_and_stay_exact() {
    let r = TestRelay::with(|c| c.search.enabled = true);
    let mut c = r.client();
    let target = note(&keys(20), "count my reactions");
    assert_eq!(c.publish(&target)[2], true);
    let id = target.id_hex().to_string();
    let mut want = Hll::new(hll::offset(&id));
    let react = |c: &mut Client, n: u8, want: &mut Hll| {
        let reaction = sign(&keys(n), now(), 7, &[vec!["e", &id]], "+");
        assert_eq!(c.publish(&reaction)[2], true);
        want.add(&reaction.pubkey);
        reaction
    };
    let count = |c: &mut Client, sub: &str| {
        c.send(&format!(
            r##"["COUNT","{sub}",{{"#e":["{id}"],"kinds":[7]}}]"##
        ));
        let (_, m) = c.until(|m| m[0] == "COUNT" && m[1] == sub);
        (
            m[2]["count"].as_u64().expect("count"),
            m[2]["hll"].as_str().expect("hll").to_string(),
        )
    };
    for n in 30..40u8 {
        react(&mut c, n, &mut want);
    }
    assert_eq!(count(&mut c, "a"), (10, want.to_hex()));
    let hits = |r: &TestRelay| metric(&r.url, "wok_hll_cache_hits_total");
    assert_eq!(hits(&r), 0);
    // New reactions: the cached answer is extended by them alone.
    let last = (40..45u8)
        .map(|n| react(&mut c, n, &mut want))
        .last()
        .expect("one");
    assert_eq!(count(&mut c, "b"), (15, want.to_hex()));
    assert_eq!(hits(&r), 1);
    // A reaction deleted by its author (NIP-09): the cache must not count it any more.
    let del = sign(&keys(44), now(), 5, &[vec!["e", last.id_hex()]], "");
    assert_eq!(c.publish(&del)[2], true);
    let mut fresh = Hll::new(hll::offset(&id));
    for n in 30..44u8 {
        fresh.add(&keys(n).pubkey);
    }
    assert_eq!(count(&mut c, "c"), (14, fresh.to_hex()));
    assert_eq!(
        hits(&r),
        1,
        "a deletion since the cached answer makes it a miss"
    );
    assert_eq!(count(&mut c, "d"), (14, fresh.to_hex()));
    assert_eq!(hits(&r), 2);
}

fn nip11_nips(r: &TestRelay) -> Vec<u64> {
    let doc = common::nip11_of(&r.url);
    doc["supported_nips"]
        .as_array()
        .expect("nips")
        .iter()
        .filter_map(|n| n.as_u64())
        .collect()
}

#[test]
fn disabled_search_is_refused_and_not_advertised() {
    let on = TestRelay::with(|c| c.search.enabled = true);
    assert!(nip11_nips(&on).contains(&50));
    let off = TestRelay::with(|c| c.search.enabled = false);
    assert!(!nip11_nips(&off).contains(&50));
    let mut c = off.client();
    assert!(closed_reason(&mut c, "x", r#"{"search":"anything"}"#).contains("not enabled"));
}

#[test]
fn cli_build_inspect_drop() {
    let dir = tempfile::tempdir().expect("tmp");
    let conf = dir.path().join("wok.conf");
    std::fs::write(&conf, format!("db = \"{}/db/\"\n", dir.path().display())).expect("conf");
    let wok = |args: &[&str], stdin: &[u8]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_wok"));
        c.arg("--config")
            .arg(&conf)
            .args(args)
            .env_remove("STRFRY_CONFIG");
        let out = run_within(&mut c, stdin, RUN_LIMIT);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.success(),
            text,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let start = (now() - 100_000).to_string();
    let (ok, events, _) = wok(
        &[
            "gen", "--count", "300", "--start", &start, "--span", "50000",
        ],
        b"",
    );
    assert!(ok);
    // Imported with indexing off: nothing is searchable until `search build`.
    let (ok, _, err) = wok(&["--set", "search.kinds=", "import"], events.as_bytes());
    assert!(ok, "{err}");
    let (_, out, _) = wok(&["search", "inspect"], b"");
    assert!(out.contains("Indexed events: 0"), "{out}");
    // A word of the first kind-1 event.
    let first: serde_json::Value = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .find(|e| {
            e["kind"] == 1
                && !wok::search::tokenize::tokens(e["content"].as_str().unwrap_or("")).is_empty()
        })
        .expect("a kind-1 note with words");
    let word = wok::search::tokenize::tokens(first["content"].as_str().unwrap_or(""))
        .into_iter()
        .next()
        .expect("word");
    let filter = format!(r#"{{"search":"{word}"}}"#);
    let (_, out, _) = wok(&["scan", "--count", &filter], b"");
    assert_eq!(out.trim(), "0");
    let (ok, out, err) = wok(&["search", "build"], b"");
    assert!(ok && out.contains("indexed"), "{out}{err}");
    let (ok, out, _) = wok(&["search", "inspect", "--check", "--word", &word], b"");
    assert!(ok && out.contains("Check: 0 problems"), "{out}");
    let (_, out, _) = wok(&["scan", "--count", &filter], b"");
    assert!(out.trim().parse::<u64>().expect("count") >= 1, "{out}");
    let (_, info, _) = wok(&["info"], b"");
    assert!(
        info.contains("Search index: ") && info.contains("Table Search__blocks"),
        "{info}"
    );
    let (ok, _, _) = wok(&["search", "drop"], b"");
    assert!(ok);
    let (_, out, _) = wok(&["scan", "--count", &filter], b"");
    assert_eq!(out.trim(), "0");
    let (ok, _, err) = wok(&["search", "build", "--kinds", "x-1"], b"");
    assert!(!ok && err.contains("bad kinds"), "{err}");
}
