#!/usr/bin/env python3
"""The verdict of a soak run (scripts/soak.sh), from its soak.jsonl (Python 3 standard library only).

  python3 scripts/soak-report.py DIR/soak.jsonl [--round SECS] [--wok PATH]

Writes, next to soak.jsonl, report.md (the per-round table, each check's numbers, the verdict)
and four SVG line charts over time: rss.svg (VmRSS, RssAnon and the live heap), fds.svg (open fds and threads),
cpu.svg (relay CPU, cores) and latency.svg (p99 of each operation, log scale). Prints the checks
and the verdict; exits 1 when a check fails.

Warm-up: the first ceil(20%) of the rounds (at least one). Each round's /proc sample is taken at
its end, after a quiet part with no load, so every client is gone and fds are exact. Checks:

  rss      the live heap (`wok_heap_in_use_bytes`, the allocator's bytes in use: what a leak
           grows; soak.sh runs the relay with glibc's per-thread caches off, whose parked
           chunks would count as in use and fill as rarer sizes come) at the end (median of the last two samples) at most 5% or 2 MiB above the
           first post-warm-up sample, whichever is more. The heap holds high-water marks that
           fill over the first minutes and then stop (LMDB keeps the page buffers of its
           largest write transaction for reuse; connection maps, per-thread buffers, bounded
           caches): +1.3 MiB over a 5-minute run, +0.06 MiB in its last minute. A relay whose
           DB it had to purge at start began the soak with those buffers already grown (heap
           ~24 MiB); after an import, which purges, it starts at ~11 MiB, where 5% alone is
           less than that fill. RssAnon is reported beside it but judged only when the relay has
           no heap metric: glibc keeps freed memory after a peak, so RssAnon creeps up as rarer,
           higher peaks come and levels off (a 10-minute run: +7, +4, +2, then ~1 MiB a minute),
           which is not a leak; VmRSS also counts the LMDB pages mapped as the DB grows.
  fds      open fds at the end at most the first post-warm-up count + 4; threads likewise + 2.
  errors   none: a generator exiting non-zero, a lost fanout delivery, a malformed message
           unanswered or wrongly answered or the connection then unusable, a failed connect, an
           ERROR or panic line in the relay's log, the relay dying or not stopping cleanly.
  p99      for each operation, over the post-warm-up rounds (at least 3): fails only when all
           three hold: the Theil-Sen slope (median of pairwise slopes, so one noisy round cannot
           make a trend) would raise p99 by more than 100% of its median over the run (it
           doubles), by more than 5 ms, and the median of the last half of the rounds is more
           than 50% above the first half's. On the shared 2-core VM a round's p99 swings by up to
           2-3x with no trend (other builds take the cores; a p99 over ~40 messages is their
           maximum), and a millisecond p99 doubles on one scheduling delay; a queue or an index
           that leaks grows steadily and passes all three within minutes. A short run can still
           end on two slow rounds (CI: ingest p99 35 ms for three rounds, ~150 ms for the last
           two, on a build whose other runs were flat, as earlier builds had done once too), so
           when a p99 rises in the planned rounds soak.sh runs half as many again (at least 3)
           and this judges all of them: a leak keeps rising, a slow stretch of a shared host
           passes (`--trend-only` is that first look; `--planned` keeps the warm-up where it was).
"""

import argparse
import json
import math
import os
import statistics
import sys
from collections import defaultdict

OPS = [  # (key, label, scenario)
    ("ingest", "EVENT→OK (ingest)", "ingest"),
    ("query", "REQ→EOSE (REQ mix, worst type)", "query"),
    ("fanout", "fanout (OK→delivery)", "fanout"),
    ("conns", "open 200 conns + subs", "conns"),
    ("neg", "NEG sync (whole DB)", "neg"),
    ("malformed", "malformed → answer", "malformed"),
]


def pct(v, q):
    v = sorted(v)
    if not v:
        return None
    return v[min(len(v) - 1, int(q * len(v)))]


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def load(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    sys.exit(f"soak-report: {path}:{n}: not JSON")
    return rows


def per_round(rows):
    """round -> {figure: value}, and round -> [error descriptions]."""
    by = defaultdict(lambda: defaultdict(list))  # round -> (scenario, name) -> values
    t_of = defaultdict(float)
    for d in rows:
        if d.get("value") is None:
            continue
        r = d.get("round", 0)
        by[r][(d["scenario"], d["name"])].append(d["value"])
        if d["scenario"] == "relay":
            t_of[r] = max(t_of[r], d.get("t", 0))
    out, errs = {}, defaultdict(list)
    prev_log = 0
    for r in sorted(by):
        g = by[r]
        f = {"t": t_of[r]}
        one = lambda s, n: g[(s, n)][-1] if g.get((s, n)) else None  # noqa: E731
        for n in ("rss_kb", "rss_anon_kb", "heap_kb", "fds", "threads", "cpu_s", "db_kb"):
            f[n] = one("relay", n)
        # ingest: one run a round
        f["ingest_p50"], f["ingest_p99"] = one("ingest", "ok_p50_ms"), one("ingest", "ok_p99_ms")
        f["ingest_eps"], f["ingest_refused"] = one("ingest", "events_per_s"), one("ingest", "refused")
        # query: several runs; a run's p50 is the median of its REQ types', its p99 the worst
        types = sorted({n[: -len("_p99_ms")] for (s, n) in g if s == "query" and n.endswith("_p99_ms")})
        runs50, runs99 = [], []
        if types:
            nruns = min(len(g[("query", t + "_p99_ms")]) for t in types)
            for i in range(nruns):
                runs50.append(statistics.median(g[("query", t + "_p50_ms")][i] for t in types))
                runs99.append(max(g[("query", t + "_p99_ms")][i] for t in types))
        f["query_p50"], f["query_p99"], f["query_runs"] = med(runs50), med(runs99), len(runs99)
        f["fanout_p50"], f["fanout_p99"] = one("fanout", "after_ok_p50_ms"), one("fanout", "after_ok_p99_ms")
        conn_ms = [200 / v * 1000 for v in g.get(("conns", "connect_per_s"), []) if v > 0]
        f["conns_p50"], f["conns_p99"], f["conns_runs"] = med(conn_ms), pct(conn_ms, 0.99), len(conn_ms)
        neg = g.get(("neg", "sync_ms"), [])
        f["neg_p50"], f["neg_p99"], f["neg_runs"] = med(neg), pct(neg, 0.99), len(neg)
        f["malformed_p50"], f["malformed_p99"] = one("malformed", "answer_p50_ms"), one("malformed", "answer_p99_ms")
        f["malformed_sent"] = one("malformed", "sent")
        f["slow_read"], f["slow_closed"] = one("slow", "bytes_read"), one("slow", "closed_by_relay")
        # errors
        for (s, n), v in g.items():
            if n == "exit_status":
                errs[r].append(f"{s} exited {int(v[0])}" + (f" ({len(v)} times)" if len(v) > 1 else ""))
        if (one("fanout", "lost") or 0) > 0:
            errs[r].append(f"fanout lost {int(one('fanout', 'lost'))} deliveries")
        for n in ("unanswered", "wrong_answer", "closed", "bad_after", "connect_failed"):
            if (one("malformed", n) or 0) > 0:
                errs[r].append(f"malformed: {n} {int(one('malformed', n))}")
        if (one("slow", "connect_failed") or 0) > 0:
            errs[r].append(f"slow reader: {int(one('slow', 'connect_failed'))} connects failed")
        le = one("relay", "log_errors")
        if le is not None:
            if le > prev_log:
                errs[r].append(f"relay log: {int(le - prev_log)} ERROR/panic lines")
            prev_log = le
        if one("relay", "died"):
            errs[r].append("the relay died")
        st = one("relay", "stop_status")
        if st is not None and st != 0:
            errs[r].append(f"the relay's stop: exit status {int(st)}")
        f["errors"] = len(errs[r])
        out[r] = f
    # CPU between samples
    rs = sorted(out)
    for a, b in zip(rs, rs[1:]):
        fa, fb = out[a], out[b]
        if fa["cpu_s"] is not None and fb["cpu_s"] is not None and fb["t"] > fa["t"]:
            fb["cores"] = (fb["cpu_s"] - fa["cpu_s"]) / (fb["t"] - fa["t"])
    return out, errs


def theil_sen(pts):
    sl = [(y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(pts) for (x2, y2) in pts[i + 1 :] if x2 > x1]
    return statistics.median(sl) if sl else 0.0


def p99_trends(f, post):
    """(no op trends up, a line per op) over the post-warm-up rounds `post`."""
    trend_lines = []
    trend_ok = True
    for key, label, _ in OPS:
        # The malformed trickle gets ~40 answers a round: their p99 is that round's single
        # slowest answer (a 12 -> 24 ms "trend" from one scheduling hiccup failed a clean
        # CI run); the trend of their median says whether answers slow down.
        stat = "_p50" if key == "malformed" else "_p99"
        pts = [(f[r]["t"], f[r][key + stat]) for r in post if f[r].get(key + stat) is not None]
        if len(pts) < 3:
            trend_lines.append(f"{key}: {len(pts)} post-warm-up rounds, too few for a trend (skipped)")
            continue
        ys = [y for _, y in pts]
        m = statistics.median(ys)
        span = pts[-1][0] - pts[0][0]
        rise = theil_sen(pts) * span
        h = len(pts) // 2
        first, second = statistics.median(ys[:h]), statistics.median(ys[-h:])
        bad = rise > 1.0 * m and rise > 5.0 and second > 1.5 * first
        trend_ok &= not bad
        trend_lines.append(
            f"{key}: {stat[1:]} median {m:.2f} ms, trend {rise:+.2f} ms over {span / 60:.1f} min ({rise / m * 100:+.0f}%), "
            f"halves {first:.2f} → {second:.2f} ms" + ("  ← TRENDS UP" if bad else ""))
    return trend_ok, trend_lines


# ---------------------------------------------------------------- SVG

COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]


def nice_ticks(lo, hi, n=5):
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    x = start
    while x <= hi + step * 0.5 and len(ticks) < 20:
        ticks.append(round(x, 10))
        x += step
    return ticks


def fmt(v):
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.3g}"
    return f"{v:.2g}"


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg(path, title, ylabel, series, warm_t=None, log=False, ymin0=True):
    """series: [(label, [(minutes, y)])]; one line each, dots at the samples."""
    W, H, L, R, T, B = 720, 300, 64, 200, 34, 40
    pw, ph = W - L - R, H - T - B
    pts = [p for _, s in series for p in s if p[1] is not None and (not log or p[1] > 0)]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{L}" y="20" font-size="13" font-weight="bold">{esc(title)}</text>',
    ]
    if not pts:
        parts.append(f'<text x="{L}" y="{T + 20}">no data</text></svg>')
        open(path, "w").write("\n".join(parts) + "\n")
        return
    xmax = max(p[0] for p in pts) or 1
    xt = nice_ticks(0, xmax)
    x1 = max(xt[-1], xmax)
    ys = [p[1] for p in pts]
    if log:
        lo, hi = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
        if hi == lo:
            hi += 1
        yt = [10.0**e for e in range(lo, hi + 1)]
        fy = lambda v: T + ph - (math.log10(v) - lo) / (hi - lo) * ph  # noqa: E731
    else:
        lo = 0 if ymin0 else min(ys)
        yt = nice_ticks(lo, max(ys))
        y0, y1 = yt[0], yt[-1]
        fy = lambda v: T + ph - (v - y0) / ((y1 - y0) or 1) * ph  # noqa: E731
    fx = lambda v: L + v / x1 * pw  # noqa: E731
    for v in yt:
        y = fy(v)
        parts.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{L - 4}" y="{y + 4:.1f}" text-anchor="end">{fmt(v)}</text>')
    for v in xt:
        x = fx(v)
        parts.append(f'<line x1="{x:.1f}" y1="{T + ph}" x2="{x:.1f}" y2="{T + ph + 4}" stroke="#333"/>')
        parts.append(f'<text x="{x:.1f}" y="{T + ph + 16}" text-anchor="middle">{fmt(v)}</text>')
    parts.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    parts.append(f'<text x="{L + pw / 2}" y="{H - 6}" text-anchor="middle">minutes</text>')
    parts.append(
        f'<text x="14" y="{T + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {T + ph / 2})">{esc(ylabel)}</text>'
    )
    if warm_t is not None:
        x = fx(warm_t)
        parts.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{T + ph}" stroke="#999" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x + 3:.1f}" y="{T + 11}" fill="#777">warm-up ends</text>')
    for i, (label, s) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        s = [(x, y) for x, y in s if y is not None and (not log or y > 0)]
        if s:
            d = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in s)
            parts.append(f'<polyline points="{d}" fill="none" stroke="{c}" stroke-width="1.8"/>')
            for x, y in s:
                parts.append(f'<circle cx="{fx(x):.1f}" cy="{fy(y):.1f}" r="2.2" fill="{c}"/>')
        ly = T + 8 + i * 16
        parts.append(f'<line x1="{L + pw + 10}" y1="{ly}" x2="{L + pw + 26}" y2="{ly}" stroke="{c}" stroke-width="2"/>')
        parts.append(f'<text x="{L + pw + 30}" y="{ly + 4}">{esc(label)}</text>')
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jsonl")
    ap.add_argument("--round", type=float, default=60, help="round length in seconds (for the report)")
    ap.add_argument("--wok", default="", help="the relay binary (for the report)")
    ap.add_argument("--planned", type=int, default=0,
                    help="rounds planned before any added to confirm a trend (sets the warm-up; default: all)")
    ap.add_argument("--trend-only", action="store_true",
                    help="judge only the p99 trends, write nothing, exit 1 when one rises (soak.sh then runs more rounds)")
    a = ap.parse_args()
    outdir = os.path.dirname(os.path.abspath(a.jsonl))
    f, errs = per_round(load(a.jsonl))
    rounds = sorted(r for r in f if r > 0)
    if not rounds:
        sys.exit("soak-report: no rounds in " + a.jsonl)
    n = len(rounds)
    warm = max(1, math.ceil(0.2 * (a.planned or n)))
    post = [r for r in rounds if r > warm]
    if a.trend_only:
        trend_ok, trend_lines = p99_trends(f, post)
        for line in trend_lines:
            if "TRENDS UP" in line:
                print(f"soak: {line}")
        return 0 if trend_ok else 1
    base = f.get(warm, {})
    checks = []  # (name, ok, text)

    # Memory: the live heap when the relay reports it (a leak grows it), else RssAnon. RssAnon
    # also holds what the allocator keeps after a peak and creeps up as rarer, higher peaks
    # come, so it is reported beside the verdict, not judged, when the heap is known.
    key = "heap_kb" if base.get("heap_kb") else "rss_anon_kb"
    label = "live heap" if key == "heap_kb" else "RssAnon"
    last = [f[r][key] for r in rounds[-2:] if f[r].get(key) is not None]
    b = base.get(key)
    if b and last and len(rounds) > warm:
        end = statistics.median(last)
        drift = (end / b - 1) * 100
        # 5% or 2 MiB, whichever is more (see the module doc: high-water marks, not leaks).
        limit = max(5.0, 2048 / b * 100)
        vm_b, vm_e = base.get("rss_kb"), med([f[r]["rss_kb"] for r in rounds[-2:]])
        an_b, an_e = base.get("rss_anon_kb"), med([f[r]["rss_anon_kb"] for r in rounds[-2:]])
        checks.append(("rss", drift <= limit,
                       f"{label} {b / 1024:.1f} MiB after warm-up (round {warm}) → {end / 1024:.1f} MiB at the end "
                       f"({drift:+.1f}%, limit +{limit:.1f}%: 5% or 2 MiB); RssAnon {an_b / 1024:.1f} → {an_e / 1024:.1f} MiB; "
                       f"VmRSS {vm_b / 1024:.1f} → {vm_e / 1024:.1f} MiB (with the LMDB pages, "
                       f"DB {base.get('db_kb', 0) / 1024:.0f} → {f[rounds[-1]].get('db_kb', 0) / 1024:.0f} MiB)"))
    else:
        checks.append(("rss", False, "no memory sample after warm-up"))
    # fds, threads
    fb, fe = base.get("fds"), f[rounds[-1]]["fds"]
    tb, te = base.get("threads"), f[rounds[-1]]["threads"]
    if fb is not None and fe is not None:
        checks.append(("fds", fe <= fb + 4, f"open fds {fb:.0f} after warm-up → {fe:.0f} at the end (limit +4)"))
        checks.append(("threads", te <= tb + 2, f"threads {tb:.0f} after warm-up → {te:.0f} at the end (limit +2)"))
    else:
        checks.append(("fds", False, "no fd sample after warm-up"))
    # errors
    allerr = [(r, e) for r in sorted(errs) for e in errs[r]]
    checks.append(("errors", not allerr,
                   "none" if not allerr else "; ".join(f"round {r}: {e}" for r, e in allerr[:12])
                   + (f" … ({len(allerr)} in all)" if len(allerr) > 12 else "")))
    # p99 trends
    trend_ok, trend_lines = p99_trends(f, post)
    checks.append(("p99", trend_ok, "; ".join(trend_lines)))

    ok = all(c[1] for c in checks)
    # ---- plots
    mins = lambda r: f[r]["t"] / 60  # noqa: E731
    allr = sorted(f)
    warm_t = f[warm]["t"] / 60 if warm in f else None
    svg(os.path.join(outdir, "rss.svg"), "relay memory (sampled after each round's quiet part)", "MiB",
        [("VmRSS (with LMDB pages)", [(mins(r), f[r]["rss_kb"] / 1024) for r in allr if f[r]["rss_kb"]]),
         ("RssAnon", [(mins(r), f[r]["rss_anon_kb"] / 1024) for r in allr if f[r]["rss_anon_kb"]]),
         ("live heap (checked)", [(mins(r), f[r]["heap_kb"] / 1024) for r in allr if f[r].get("heap_kb")])],
        warm_t)
    svg(os.path.join(outdir, "fds.svg"), "relay open fds and threads (after each round's quiet part)", "count",
        [("open fds", [(mins(r), f[r]["fds"]) for r in allr]), ("threads", [(mins(r), f[r]["threads"]) for r in allr])],
        warm_t)
    svg(os.path.join(outdir, "cpu.svg"), "relay CPU, cores (each round's average)", "cores",
        [("relay CPU", [(mins(r), f[r].get("cores")) for r in rounds])], warm_t)
    svg(os.path.join(outdir, "latency.svg"), "p99 latency of each operation, per round", "ms (log)",
        [(label, [(mins(r), f[r].get(key + "_p99")) for r in rounds]) for key, label, _ in OPS], warm_t, log=True)

    # ---- report
    cols = [("round", lambda r, x: f"{r}"), ("min", lambda r, x: f"{x['t'] / 60:.1f}"),
            ("RSS MiB", lambda r, x: f"{x['rss_kb'] / 1024:.1f}" if x["rss_kb"] else "-"),
            ("anon MiB", lambda r, x: f"{x['rss_anon_kb'] / 1024:.1f}" if x["rss_anon_kb"] else "-"),
            ("heap MiB", lambda r, x: f"{x['heap_kb'] / 1024:.1f}" if x.get("heap_kb") else "-"),
            ("fds", lambda r, x: f"{x['fds']:.0f}" if x["fds"] is not None else "-"),
            ("thr", lambda r, x: f"{x['threads']:.0f}" if x["threads"] is not None else "-"),
            ("cores", lambda r, x: f"{x['cores']:.2f}" if x.get("cores") is not None else "-")]
    for key, _, _ in OPS:
        cols.append((f"{key} p50/p99 ms", lambda r, x, k=key: "-" if x.get(k + "_p99") is None
                     else f"{x[k + '_p50']:.2f} / {x[k + '_p99']:.2f}"))
    cols.append(("errors", lambda r, x: f"{x['errors']}"))
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in allr:
        lines.append("| " + " | ".join(fn(r, f[r]) for _, fn in cols) + " |")
    table = "\n".join(lines)
    verdict = "PASS" if ok else "FAIL: " + ", ".join(c[0] for c in checks if not c[1])
    last_r = f[rounds[-1]]
    extra = (f"ingest {statistics.median([f[r]['ingest_eps'] for r in rounds if f[r]['ingest_eps']] or [0]):.0f} events/s "
             f"(refused by the relay, mostly gen's expired/deleted/older-replaceable events: "
             f"{sum(f[r]['ingest_refused'] or 0 for r in rounds):.0f} in all); "
             f"slow reader: {sum(f[r]['slow_read'] or 0 for r in rounds) / 1e6:.1f} MB read, "
             f"closed by the relay {sum(f[r]['slow_closed'] or 0 for r in rounds):.0f} times; "
             f"malformed messages sent {sum(f[r]['malformed_sent'] or 0 for r in rounds):.0f}; "
             f"DB {last_r.get('db_kb', 0) / 1024:.0f} MiB at the end")
    md = [f"# Soak: {verdict}", "",
          f"{a.wok or 'wok'}, {n} rounds of {a.round:.0f} s ({f[rounds[-1]]['t'] / 60:.1f} min), warm-up {warm} round(s)"
          + (f"; {n - a.planned} of them added to see whether a p99 that rose kept rising." if a.planned and n > a.planned else "."),
          "", "## Checks", ""]
    md += [f"- **{name}** {'ok' if good else 'FAIL'}: {text}" for name, good, text in checks]
    md += ["", extra, "", "![rss](rss.svg)", "![fds](fds.svg)", "![latency](latency.svg)", "![cpu](cpu.svg)",
           "", "## Per round", "", "Round 0 is the sample before any load; the others are taken after each round's quiet part. "
           "p50/p99 per operation: ingest and fanout one run a round; the REQ mix the median over its runs "
           "(a run's p99 is its worst REQ type's); conns and NEG sync over the round's runs.", "", table, ""]
    with open(os.path.join(outdir, "report.md"), "w") as fo:
        fo.write("\n".join(md))
    for name, good, text in checks:
        print(f"soak: {name:7s} {'ok  ' if good else 'FAIL'} {text}")
    print("soak: " + extra)
    print(f"soak: verdict {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
