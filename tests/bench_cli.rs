//! `wok bench` runs each scenario to completion against a real relay (tiny sizes: these are
//! not measurements, they prove the tool works and that its bookkeeping adds up).

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::TestRelay;
use wok::gen::GenConfig;

/// Runs `wok bench --json <args>` and returns figure name → value.
fn bench(args: &[&str]) -> HashMap<String, f64> {
    let out = Command::new(env!("CARGO_BIN_EXE_wok"))
        .args(["bench", "--json"])
        .args(args)
        .output()
        .expect("run wok bench");
    assert!(
        out.status.success(),
        "wok bench {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            (
                format!(
                    "{}.{}",
                    v["scenario"].as_str().unwrap_or(""),
                    v["name"].as_str().unwrap_or("")
                ),
                v["value"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

fn preloaded() -> TestRelay {
    let events = wok::gen::generate(&GenConfig {
        seed: 1,
        count: 300,
        ..GenConfig::default()
    });
    TestRelay::with_store(
        |c| c.relay.max_subs_per_connection = 100,
        |s| {
            s.write_batch(&events).expect("write");
        },
    )
}

#[test]
fn query_counts_agree_between_relays_with_the_same_data() {
    let (a, b) = (preloaded(), preloaded());
    let args = [
        "--count",
        "300",
        "--seed",
        "1",
        "--clients",
        "2",
        "--queries",
        "21",
    ];
    let ra = bench(&[&["query", a.url.as_str()][..], &args[..]].concat());
    let rb = bench(&[&["query", b.url.as_str()][..], &args[..]].concat());
    let counts = |r: &HashMap<String, f64>| {
        let mut v: Vec<(String, f64)> = r
            .iter()
            .filter(|(k, _)| k.ends_with("_events"))
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    // Nine query types: seven index shapes and NIP-50 search with one and two words.
    assert_eq!(counts(&ra).len(), 9, "{ra:?}");
    assert_eq!(counts(&ra), counts(&rb));
    assert!(ra["query.global_events"] > 0.0);
    assert!(ra["query.reqs_per_s"] > 0.0);
}

#[test]
fn fanout_ingest_and_conns_complete() {
    let r = TestRelay::start();
    let f = bench(&[
        "fanout", &r.url, "--subs", "20", "--events", "10", "--rate", "200",
    ]);
    // 10 broad subscribers get 10 events each; 10 narrow ones get their tenth.
    assert_eq!(f["fanout.deliveries"], 110.0, "{f:?}");
    assert_eq!(f["fanout.lost"], 0.0);
    let ingest = |url: &str, conns: &str| {
        bench(&[
            "ingest",
            url,
            "--conns",
            conns,
            "--inflight",
            "8",
            "--events",
            "200",
            "--seed",
            "9",
        ])
    };
    // One connection sends the generated events in order, and the generator only refers
    // back (deletions and new versions follow what they replace), and none of these 200
    // expires within minutes: nothing is refused.
    // (Over several connections refusals depend on how they interleave: a deletion that
    // overtakes its target leaves a tombstone that refuses it.)
    let i = ingest(&r.url, "1");
    assert!(i["ingest.events_per_s"] > 0.0);
    assert_eq!(i["ingest.refused"], 0.0, "{i:?}");
    // Every event is minutes old and this relay takes only the last 5 seconds: all 200
    // are refused, whichever connection carries them.
    let strict = TestRelay::with(|c| c.events.reject_events_older_than_seconds = 5);
    let i = ingest(&strict.url, "4");
    assert_eq!(i["ingest.refused"], 200.0, "{i:?}");
    let c = bench(&["conns", &r.url, "--conns", "30"]);
    assert!(c["conns.connect_per_s"] > 0.0);
}

/// The malformed flood runs to completion: every flood message is answered (a NOTICE or
/// OK false, counted as answered but never as served), and the polite client is measured.
#[test]
fn fairness_with_a_malformed_flood_completes() {
    let r = TestRelay::with(|c| c.relay.limits.enabled = false);
    let f = bench(&[
        "fairness",
        &r.url,
        "--malformed",
        "--fresh",
        "--flooders",
        "2",
        "--flood-events",
        "50",
        "--polite",
        "40",
        // A window of ~1 s, not the ~40 ms of 20 unpaced rounds: on a loaded machine the
        // flooders may get no core for that long and answer nothing within it.
        "--polite-every-ms",
        "25",
        "--warmup",
        "0.3",
    ]);
    assert!(f["fairness.flood_req_p99_ms"] > 0.0, "{f:?}");
    assert!(f["fairness.flood_answered_per_s"] > 0.0, "{f:?}");
    assert_eq!(f["fairness.flood_served_per_s"], 0.0, "{f:?}");
}
