//! `wok bench plot` draws a results file as an SVG: a real `wok bench --json --pid` run
//! (its CPU/RSS time series included), recorded as two relays the way
//! scripts/bench-vs-strfry.sh does, must give a well-formed SVG with the four panels and a
//! labelled line per relay in each.

mod common;

use std::process::Command;

use common::TestRelay;

fn wok() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wok"))
}

/// Texts of the SVG's <text> elements, and the stroke colours of its thick (series) lines.
fn svg_parts(svg: &str) -> (Vec<String>, Vec<String>) {
    let doc = roxmltree::Document::parse(svg).expect("the plot is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let texts = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect();
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
        .filter(|n| n.attribute("points").is_some_and(|p| !p.trim().is_empty()))
        .filter_map(|n| n.attribute("stroke").map(str::to_string))
        .collect();
    (texts, lines)
}

#[test]
fn a_real_run_of_two_relays_plots_every_metric_for_each() {
    let relay = TestRelay::start();
    // The relay runs inside this test process: its pid is ours.
    let pid = std::process::id().to_string();
    let out = common::run(wok().args([
        "bench",
        "--json",
        "--pid",
        &pid,
        "ingest",
        relay.url.as_str(),
        "--conns",
        "2",
        "--inflight",
        "4",
        "--events",
        "300",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    for series in ["relay_cores", "relay_rss_kb"] {
        assert!(
            lines
                .iter()
                .any(|v| v["name"] == series && v["t"].as_f64().is_some()),
            "no {series} samples over time in {lines:?}"
        );
    }
    // What bench-vs-strfry.sh records: each line tagged with relay and round.
    let dir = tempfile::tempdir().expect("tempdir");
    let results = dir.path().join("bench-results.jsonl");
    let mut text = String::new();
    for (relay, round) in [("wok", 1), ("strfry", 1), ("wok", 2), ("strfry", 2)] {
        for v in &lines {
            let mut v = v.clone();
            v["relay"] = relay.into();
            v["round"] = round.into();
            text.push_str(&format!("{v}\n"));
        }
    }
    std::fs::write(&results, text).expect("write results");
    let out = common::run(wok().args(["bench", "plot"]).arg(&results));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg =
        std::fs::read_to_string(dir.path().join("bench-results.svg")).expect("svg next to it");
    let (texts, strokes) = svg_parts(&svg);
    for title in ["latency, ms", "throughput", "relay CPU", "relay RSS"] {
        assert!(
            texts.iter().any(|t| t.starts_with(title)),
            "no panel {title:?} in {texts:?}"
        );
    }
    for label in [
        "ingest.ok_p50_ms",
        "ingest.ok_p99_ms",
        "ingest.events_per_s",
    ] {
        assert!(texts.iter().any(|t| t == label), "no {label} in {texts:?}");
    }
    // One legend entry per relay in each of the four panels, and a drawn line for each.
    for relay in ["wok", "strfry"] {
        assert_eq!(texts.iter().filter(|t| *t == relay).count(), 4, "{texts:?}");
    }
    let mut colours = strokes.clone();
    colours.sort();
    colours.dedup();
    assert_eq!(colours.len(), 2, "{strokes:?}");
    for c in &colours {
        // Four series lines plus four legend swatches per relay.
        assert_eq!(strokes.iter().filter(|s| *s == c).count(), 8, "{strokes:?}");
    }
}

#[test]
fn a_bad_results_file_is_refused_with_its_line_number() {
    let dir = tempfile::tempdir().expect("tempdir");
    let results = dir.path().join("r.jsonl");
    std::fs::write(
        &results,
        "{\"scenario\":\"ingest\",\"name\":\"ok_p50_ms\",\"value\":1,\"unit\":\"ms\"}\nnot json\n",
    )
    .expect("write");
    let out = common::run(wok().args(["bench", "plot"]).arg(&results));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert!(!dir.path().join("r.svg").exists());
    let out = common::run(
        wok()
            .args(["bench", "plot"])
            .arg(dir.path().join("missing.jsonl")),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}
