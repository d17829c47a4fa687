//! `wok bench plot`: draws a `bench-results.jsonl` (what `wok bench --json` prints, with the
//! `relay` and `round` that scripts/bench-vs-strfry.sh adds) as one SVG of four panels:
//! latency figures (ms), throughput figures (…/s), relay CPU cores over time and relay RSS
//! over time, one line per relay so wok and strfry sit side by side. Point figures are the
//! median over rounds; time series are the scenarios of the first round laid end to end.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

/// One line of a results file.
#[derive(Debug, Clone)]
pub struct Sample {
    pub relay: String,
    pub round: i64,
    pub scenario: String,
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub t: Option<f64>,
}

/// Parses a results file; a line that is not a JSON object with `scenario`, `name` and a
/// numeric `value` is an error naming its line number. `relay` defaults to "wok" (a plain
/// `wok bench --json` run), `round` to 0.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}", i + 1);
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(&format!("not JSON: {e}")))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let value = v.get("value").and_then(|x| x.as_f64());
        // A NaN figure (an empty percentile) is written by serde_json as null: skip it.
        if v.get("value").is_some_and(|x| x.is_null()) {
            continue;
        }
        out.push(Sample {
            relay: s("relay").unwrap_or_else(|| "wok".into()),
            round: v.get("round").and_then(|x| x.as_i64()).unwrap_or(0),
            scenario: s("scenario").ok_or_else(|| bad("no \"scenario\""))?,
            name: s("name").ok_or_else(|| bad("no \"name\""))?,
            value: value.ok_or_else(|| bad("no numeric \"value\""))?,
            unit: s("unit").unwrap_or_default(),
            t: v.get("t").and_then(|x| x.as_f64()),
        });
    }
    Ok(out)
}

/// relay → figure label → median over rounds, for point figures whose unit passes `keep`.
fn medians(samples: &[Sample], keep: impl Fn(&str) -> bool) -> Vec<(String, Vec<(String, f64)>)> {
    let mut by: BTreeMap<&str, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.t.is_none() && keep(&s.unit)) {
        if s.value.is_finite() && s.value > 0.0 {
            by.entry(&s.relay)
                .or_default()
                .entry(format!("{}.{}", s.scenario, s.name))
                .or_default()
                .push(s.value);
        }
    }
    by.into_iter()
        .map(|(relay, figs)| {
            let figs = figs
                .into_iter()
                .map(|(k, mut v)| (k, super::pct(&mut v, 0.5)))
                .collect();
            (relay.to_string(), figs)
        })
        .collect()
}

/// relay → (t, value) for the time series `name`, the first round's scenarios end to end.
fn series(samples: &[Sample], name: &str) -> Vec<(String, Vec<(f64, f64)>)> {
    let mut first_round: BTreeMap<&str, i64> = BTreeMap::new();
    for s in samples {
        let r = first_round.entry(&s.relay).or_insert(s.round);
        *r = (*r).min(s.round);
    }
    let mut out: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (relay, round) in first_round {
        let mut pts = Vec::new();
        let (mut offset, mut last_end, mut scenario) = (0.0, 0.0, "");
        for s in samples
            .iter()
            .filter(|s| s.relay == relay && s.round == round && s.name == name)
        {
            let Some(t) = s.t else { continue };
            if s.scenario != scenario {
                offset = last_end;
                scenario = &s.scenario;
            }
            last_end = offset + t;
            if s.value.is_finite() {
                pts.push((offset + t, s.value));
            }
        }
        if !pts.is_empty() {
            out.push((relay.to_string(), pts));
        }
    }
    out
}

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 4] = [
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0x94, 0x67, 0xbd),
    ];
    C[i % C.len()]
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// A panel of point figures: x is the figure (labelled), y (log scale) its median.
fn figures_panel(
    area: &Area,
    title: &str,
    data: &[(String, Vec<(String, f64)>)],
) -> Result<(), String> {
    let mut labels: Vec<String> = data
        .iter()
        .flat_map(|(_, f)| f.iter().map(|(k, _)| k.clone()))
        .collect();
    labels.sort();
    labels.dedup();
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for (_, f) in data {
        for (_, v) in f {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    if labels.is_empty() {
        lo = 1.0;
        hi = 10.0;
    }
    let n = labels.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(90)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo / 2.0..hi * 2.0).log_scale())
        .map_err(|e| e.to_string())?;
    let lbl = labels.clone();
    chart
        .configure_mesh()
        .x_labels(n)
        .x_label_formatter(&move |x| {
            let i = x.round();
            if (x - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            lbl.get(i as usize).cloned().unwrap_or_default()
        })
        .x_label_style(
            ("sans-serif", 10)
                .into_font()
                .transform(FontTransform::Rotate90),
        )
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (relay, figs)) in data.iter().enumerate() {
        let c = color(i);
        let pts: Vec<(f64, f64)> = figs
            .iter()
            .filter_map(|(k, v)| Some((labels.iter().position(|l| l == k)? as f64, *v)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(relay.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    legend(&mut chart)
}

/// A panel of time series: x seconds, y the value.
fn series_panel(
    area: &Area,
    title: &str,
    data: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let tmax = data
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.0))
        .fold(1.0f64, f64::max);
    let ymax = data
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let ymax = if ymax > 0.0 { ymax * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..tmax, 0.0..ymax)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("seconds (scenarios of the first round, end to end)")
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (relay, pts)) in data.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(relay.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    legend(&mut chart)
}

fn legend<'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())
}

/// Draws `samples` into the SVG at `out`.
pub fn draw(samples: &[Sample], out: &Path) -> Result<(), String> {
    if samples.is_empty() {
        return Err("no figures to plot".into());
    }
    let root = SVGBackend::new(out, (1400, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((2, 2));
    figures_panel(
        &panels[0],
        "latency, ms (median over rounds, log scale)",
        &medians(samples, |u| u == "ms"),
    )?;
    figures_panel(
        &panels[1],
        "throughput, per second (median over rounds, log scale)",
        &medians(samples, |u| u.ends_with("/s")),
    )?;
    series_panel(
        &panels[2],
        "relay CPU, cores over time",
        &series(samples, "relay_cores"),
    )?;
    series_panel(
        &panels[3],
        "relay RSS, KiB over time",
        &series(samples, "relay_rss_kb"),
    )?;
    root.present()
        .map_err(|e| format!("cannot write {}: {e}", out.display()))
}

/// Reads `input` (JSON lines) and writes the SVG to `out`.
pub fn plot_file(input: &Path, out: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(input)
        .map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let samples = parse(&text).map_err(|e| format!("{}: {e}", input.display()))?;
    draw(&samples, out)
}
