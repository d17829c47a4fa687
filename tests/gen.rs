//! The event generator (`wok::gen`, `wok gen`): determinism, validity, and that the mix
//! really exercises replacement, deletion and expiry.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use wok::gen::{self, GenConfig};
use wok::nostr::{verify, Event, JsonParser, Limits};

fn jsonl(cfg: &GenConfig, threads: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let r: Result<(), ()> = gen::try_generate_into(cfg, threads, |ev| {
        out.extend_from_slice(ev.json());
        out.push(b'\n');
        Ok(())
    });
    assert!(r.is_ok());
    out
}

fn small(seed: u64) -> GenConfig {
    GenConfig {
        seed,
        count: 500,
        authors: 100,
        ..GenConfig::default()
    }
}

const BIG: GenConfig = GenConfig {
    seed: 7,
    count: 4000,
    authors: 1000,
    start: 1_700_000_000,
    span_secs: 365 * 24 * 3600,
};

/// One larger sample shared by the tests that look at the mix.
fn big() -> &'static [Event] {
    static EVENTS: OnceLock<Vec<Event>> = OnceLock::new();
    EVENTS.get_or_init(|| gen::generate(&BIG))
}

fn tag_values<'a>(ev: &'a Event, name: &str) -> Vec<&'a str> {
    ev.tags
        .iter()
        .filter(|t| t.name() == name)
        .filter_map(|t| t.value())
        .collect()
}

#[test]
fn same_seed_same_bytes_whatever_the_threads() {
    let cfg = small(3);
    let one = jsonl(&cfg, 1);
    assert_eq!(one, jsonl(&cfg, 2));
    assert_eq!(one, jsonl(&cfg, 5));
    let streamed: Vec<u8> = gen::generate(&cfg)
        .iter()
        .flat_map(|e| e.json().iter().copied().chain([b'\n']))
        .collect();
    assert_eq!(one, streamed);
    let other = jsonl(&small(4), 0);
    assert_ne!(one, other);
    assert_eq!(other, jsonl(&small(4), 1));
}

#[test]
fn every_event_parses_back_and_verifies() {
    let limits = Limits::default();
    let mut parser = JsonParser::new();
    for ev in big() {
        let mut buf = ev.json().to_vec();
        let back = Event::parse(&mut buf, &mut parser, &limits).expect("parses");
        assert_eq!(&back, ev);
        verify::check_event(ev).expect("valid id and signature");
        // Also plain JSON to an independent parser.
        let v: serde_json::Value = serde_json::from_slice(ev.json()).expect("serde_json");
        assert_eq!(v["id"].as_str(), Some(ev.id_hex()));
        match ev.kind {
            0 => {
                let meta: serde_json::Value =
                    serde_json::from_str(&ev.content).expect("kind 0 content is JSON");
                assert!(meta["name"].is_string() && meta["picture"].is_string());
            }
            6 => {
                let mut inner = ev.content.as_bytes().to_vec();
                let inner =
                    Event::parse(&mut inner, &mut parser, &limits).expect("repost embeds an event");
                verify::check_event(&inner).expect("embedded event verifies");
                assert_eq!(tag_values(ev, "e"), vec![inner.id_hex()]);
                assert_eq!(tag_values(ev, "p"), vec![inner.pubkey_hex()]);
            }
            _ => {}
        }
    }
}

#[test]
fn mix_has_every_kind_in_rough_proportion() {
    let evs = big();
    let mut by_kind: HashMap<u64, usize> = HashMap::new();
    for e in evs {
        *by_kind.entry(e.kind).or_default() += 1;
    }
    for k in [0, 1, 3, 5, 6, 7, 30023] {
        assert!(
            by_kind.get(&k).copied().unwrap_or(0) > 0,
            "no kind {k}: {by_kind:?}"
        );
    }
    let share = |k: u64| by_kind[&k] * 100 / evs.len();
    assert!((50..=70).contains(&share(1)), "{by_kind:?}");
    assert!((12..=28).contains(&share(7)), "{by_kind:?}");
    assert_eq!(by_kind.len(), 7, "{by_kind:?}");

    // Power-law authors: the busiest tenth of the authors seen write most events.
    let mut per_author: HashMap<[u8; 32], usize> = HashMap::new();
    for e in evs {
        *per_author.entry(e.pubkey).or_default() += 1;
    }
    let mut counts: Vec<usize> = per_author.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let top: usize = counts[..counts.len() / 10].iter().sum();
    assert!(
        top * 2 > evs.len(),
        "top tenth wrote {top} of {}",
        evs.len()
    );
    // Everyone is one of the known authors.
    let keys: HashSet<[u8; 32]> = gen::author_keys(BIG.seed, BIG.authors)
        .iter()
        .map(|k| k.pubkey)
        .collect();
    assert!(per_author.keys().all(|pk| keys.contains(pk)));
}

#[test]
fn notes_carry_tricky_text_and_threads() {
    let notes: Vec<&Event> = big().iter().filter(|e| e.kind == 1).collect();
    for n in &notes {
        assert!(n.content.len() >= 50, "{:?}", n.content);
        assert!(n.content.len() <= 2200, "{}", n.content.len());
    }
    let any = |f: &dyn Fn(&str) -> bool| notes.iter().any(|n| f(&n.content));
    assert!(any(&|c| c.contains('\n')));
    assert!(any(&|c| c.contains('"')));
    assert!(any(&|c| c.contains('\\')));
    assert!(any(&|c| c.chars().any(|ch| ch as u32 >= 0x1f300)), "emoji");
    assert!(any(&|c| c
        .chars()
        .any(|ch| ch < ' ' && ch != '\n' && ch != '\t')));
    assert!(any(&|c| c.contains('\u{2028}') || c.contains('\u{2029}')));
    assert!(notes.iter().any(|n| !tag_values(n, "t").is_empty()));
    let marked = |m: &str| {
        notes.iter().any(|n| {
            n.tags
                .iter()
                .any(|t| t.name() == "e" && t.get(3) == Some(m))
        })
    };
    assert!(marked("root") && marked("reply"));
}

#[test]
fn references_point_backwards() {
    let evs = big();
    let mut seen: HashMap<[u8; 32], &Event> = HashMap::new();
    let authors: HashSet<String> = gen::author_keys(BIG.seed, BIG.authors)
        .iter()
        .map(|k| wok::nostr::hex::encode(&k.pubkey))
        .collect();
    for e in evs {
        for id in tag_values(e, "e") {
            let raw = wok::nostr::hex::decode_lower::<32>(id.as_bytes()).expect("hex");
            assert!(seen.contains_key(&raw), "kind {} names unseen {id}", e.kind);
        }
        for pk in tag_values(e, "p") {
            assert!(authors.contains(pk));
        }
        seen.insert(e.id, e);
    }
}

#[test]
fn replaceable_versions_with_ties() {
    let evs = big();
    let mut versions: HashMap<(u64, [u8; 32], String), Vec<&Event>> = HashMap::new();
    for e in evs.iter().filter(|e| matches!(e.kind, 0 | 3 | 30023)) {
        versions
            .entry((e.kind, e.pubkey, e.d_tag().to_string()))
            .or_default()
            .push(e);
    }
    let has_tie = |kinds: &[u64]| {
        versions.iter().any(|(k, v)| {
            kinds.contains(&k.0)
                && v.windows(2)
                    .any(|w| w[0].created_at == w[1].created_at && w[0].id != w[1].id)
        })
    };
    for kind in [0, 3, 30023] {
        let multi = versions
            .iter()
            .filter(|(k, v)| k.0 == kind && v.len() >= 2)
            .count();
        assert!(multi > 0, "kind {kind} has no author with several versions");
    }
    assert!(
        has_tie(&[0, 3]),
        "no created_at tie between replaceable versions"
    );
    assert!(
        has_tie(&[30023]),
        "no created_at tie between addressable versions"
    );
    let big_lists = evs
        .iter()
        .filter(|e| e.kind == 3 && e.tags.len() >= 500)
        .count();
    assert!(big_lists > 0, "no contact list with 500+ p tags");
    for e in evs.iter().filter(|e| e.kind == 30023) {
        for t in ["d", "title", "published_at"] {
            assert!(e.tags.find(t).is_some(), "article lacks {t}");
        }
        assert!(
            (1000..=6000).contains(&e.content.len()),
            "{}",
            e.content.len()
        );
    }
    // Exact-second collisions between different authors.
    assert!(evs
        .windows(2)
        .any(|w| w[0].created_at == w[1].created_at && w[0].pubkey != w[1].pubkey));
    let end = BIG.start + BIG.span_secs;
    let in_range = evs
        .iter()
        .filter(|e| (BIG.start..end).contains(&e.created_at))
        .count();
    assert!(in_range * 100 >= evs.len() * 99);
}

#[test]
fn deletions_hit_own_earlier_events() {
    let evs = big();
    let mut by_id: HashMap<[u8; 32], &Event> = HashMap::new();
    let mut addrs: HashMap<String, u64> = HashMap::new(); // address -> newest created_at
    let (mut by_e, mut by_a30023, mut by_a0) = (0, 0, 0);
    for e in evs {
        if e.kind == 5 {
            for id in tag_values(e, "e") {
                let raw = wok::nostr::hex::decode_lower::<32>(id.as_bytes()).expect("hex");
                let target = by_id.get(&raw).expect("deletion target exists earlier");
                assert_eq!(target.pubkey, e.pubkey, "deletes only own events");
                assert!(target.created_at <= e.created_at);
                by_e += 1;
            }
            for (a, text) in e.deleted_addresses().zip(tag_values(e, "a")) {
                assert_eq!(a.pubkey, e.pubkey);
                let newest = addrs.get(text).expect("deleted address exists earlier");
                assert!(*newest <= e.created_at, "deletion older than its target");
                match a.kind {
                    0 => by_a0 += 1,
                    30023 => by_a30023 += 1,
                    k => panic!("unexpected a-deletion of kind {k}"),
                }
            }
        }
        match e.kind {
            0 | 3 => {
                let k = format!("{}:{}:", e.kind, e.pubkey_hex());
                let t = addrs.entry(k).or_default();
                *t = (*t).max(e.created_at);
            }
            30023 => {
                let k = format!("30023:{}:{}", e.pubkey_hex(), e.d_tag());
                let t = addrs.entry(k).or_default();
                *t = (*t).max(e.created_at);
            }
            _ => {}
        }
        by_id.insert(e.id, e);
    }
    assert!(
        by_e > 0 && by_a30023 > 0 && by_a0 > 0,
        "{by_e} {by_a30023} {by_a0}"
    );
}

#[test]
fn some_events_expire() {
    let evs = big();
    let end = BIG.start + BIG.span_secs;
    let exp: Vec<u64> = evs.iter().filter_map(|e| e.expiration).collect();
    let pct = exp.len() * 1000 / evs.len();
    assert!((10..=35).contains(&pct), "{pct}‰ carry an expiration");
    assert!(
        exp.iter().any(|&t| t < end),
        "none already expired at the end"
    );
    assert!(exp.iter().any(|&t| t > end), "none still live at the end");
    for e in evs.iter().filter(|e| e.expiration.is_some()) {
        assert!(e.expiration.unwrap_or(0) > e.created_at);
    }
}

fn wok_gen(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wok"));
    c.arg("gen").args(args).env_remove("STRFRY_CONFIG");
    c
}

#[test]
fn binary_prints_jsonl() {
    let out = common::run(&mut wok_gen(&["--count", "200", "--seed", "1"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
    let lines: Vec<&[u8]> = out.stdout.split(|&b| b == b'\n').collect();
    assert_eq!(lines.len(), 201, "200 lines and a final newline");
    assert!(lines[200].is_empty());
    let cfg = GenConfig {
        seed: 1,
        count: 200,
        ..GenConfig::default()
    };
    assert_eq!(out.stdout, jsonl(&cfg, 1));
}

#[test]
fn binary_exits_quietly_on_closed_pipe() {
    // ~1.4 MB of output, far over a pipe's buffer: the child is still writing when the
    // read end closes.
    let mut child = wok_gen(&["--count", "1000", "--seed", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wok gen");
    let stdout = child.stdout.take().expect("stdout");
    let child = common::Running::new(child);
    let first = common::first_line(stdout, common::RUN_LIMIT); // the read end closes here
    assert!(first.starts_with("{\"id\":\""));
    let out = child.output_within(common::RUN_LIMIT);
    assert!(out.status.success(), "exit {:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
