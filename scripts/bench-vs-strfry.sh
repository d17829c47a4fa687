#!/usr/bin/env bash
# wok beside strfry, with the same client (`wok bench`) on the same machine.
#
#   cargo build --release
#   STRFRY_BIN=/path/to/strfry scripts/bench-vs-strfry.sh     # both relays
#   scripts/bench-vs-strfry.sh                                # wok alone
#
# Each relay gets the same minimal config (defaults for every limit, loopback, its own port)
# and, every round, a fresh copy of the same preloaded DB (`wok gen --count $COUNT --seed 1`
# imported through the relay's own CLI). Per round and relay, in this order: conns (on an
# empty DB), then on the preloaded DB query (with relay CPU per REQ and its idle share), on a
# freshly started relay NIP-77 reconciles from a DB 1% apart (`wok sync --print-missing`:
# `{}` as an unauthenticated reader, then `{"kinds":[1]}`, a set no tree holds; time, relay
# CPU, peak RSS and its growth during the sync, exactness), fanout and ingest, and
# import/export through the relay's CLI. Relays alternate A,B,A,B over $ROUNDS rounds (at
# least 3); the table shows medians and the ratio wok/strfry, and every sample goes to $OUT
# (JSON lines, with relay CPU/RSS every 100 ms of each bench scenario), drawn by
# `wok bench plot` into ${OUT%.jsonl}.svg. Loopback only; this script never builds or
# downloads strfry.
set -euo pipefail
cd "$(dirname "$0")/.."
WOK=${WOK:-$PWD/target/release/wok}
STRFRY=${STRFRY_BIN:-}
ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-100000}
OUT=${OUT:-$PWD/bench-results.jsonl}
[ -x "$WOK" ] || { echo "build wok first: cargo build --release" >&2; exit 1; }
[ "$ROUNDS" -ge 3 ] || { echo "ROUNDS must be at least 3" >&2; exit 1; }
T=$(mktemp -d)
relay_pid=""
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
: >"$OUT"

relays=(wok)
[ -n "$STRFRY" ] && relays+=(strfry)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms() { date +%s%N | cut -c1-13; }
# A process's CPU time (user + system, all its threads) so far, in µs: the kernel's
# per-process CPU clock (`/proc/<pid>/stat` counts 10 ms ticks, too coarse for a 30 ms
# reconcile), or those ticks where the clock cannot be read.
cpu_us() {
  python3 -c 'import sys, time; p = int(sys.argv[1]); print(time.clock_gettime_ns(((~p) << 3) | 2) // 1000)' "$1" 2>/dev/null ||
    awk '{ sub(/.*\) /, ""); print ($12 + $13) * 10000 }' "/proc/$1/stat"
}
# A process's peak resident set since it started (or since reset_peak), in KiB.
peak_rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# RSS split: anonymous memory (the relay's own) and mapped file pages (the DB's clean page
# cache, shared and reclaimable), which the peak above lumps together.
rss_anon_kb() { awk '/^RssAnon:/ { print $2 }' "/proc/$1/status"; }
rss_file_kb() { awk '/^RssFile:/ { print $2 }' "/proc/$1/status"; }
# Starts the peak over from the current RSS (Linux >= 4.0; ignored where refused).
reset_peak() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

conf() { # relay dbdir port -> config path
  local c="$T/$1-$3.conf"
  cat >"$c" <<EOF
db = "$2/"
dbParams { mapsize = 10995116277760 }
relay {
  bind = "127.0.0.1"
  port = $3
  nofiles = 0
  info { name = "bench" }
}
EOF
  echo "$c"
}

cli() { # relay config args...
  local r=$1 c=$2; shift 2
  if [ "$r" = wok ]; then "$WOK" --config "$c" "$@"; else "$STRFRY" --config "$c" "$@"; fi
}

# The shared data, and each relay's preloaded DB (through its own import).
"$WOK" gen --count "$COUNT" --seed 1 >"$T/data.jsonl"
awk 'NR % 100 != 50' "$T/data.jsonl" | "$WOK" --set db="$T/local" import 2>/dev/null
for r in "${relays[@]}"; do
  mkdir -p "$T/pre-$r"
  c=$(conf "$r" "$T/pre-$r" 1)
  cli "$r" "$c" import <"$T/data.jsonl" >/dev/null 2>&1
done

record() { # relay round scenario-json-lines on stdin
  python3 -c '
import json, sys
relay, rnd = sys.argv[1], int(sys.argv[2])
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        d = json.loads(line); d["relay"] = relay; d["round"] = rnd
        print(json.dumps(d))
' "$1" "$2" >>"$OUT"
}
one() { # relay round scenario name value unit
  printf '{"scenario":"%s","name":"%s","value":%s,"unit":"%s"}\n' "$3" "$4" "$5" "$6" | record "$1" "$2"
}

start_relay() { # relay dbdir; sets relay_pid and url
  local port c
  port=$(free_port)
  c=$(conf "$1" "$2" "$port")
  # Started directly (not through a shell function) so $! is the relay itself: its pid
  # is what the bench samples and what cleanup stops.
  if [ "$1" = wok ]; then
    # strfry has no rate limits, and one load client on loopback is far past wok's per-IP
    # defaults (64 ingest connections, 2000 in conns): compared like for like, without them.
    "$WOK" --config "$c" --set relay.limits.enabled=false relay >"$T/relay.log" 2>&1 &
  else
    "$STRFRY" --config "$c" relay >"$T/relay.log" 2>&1 &
  fi
  relay_pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  # Let start-up work (expiry purge, caches) finish before measuring.
  sleep 1
  url="ws://127.0.0.1:$port"
}
stop_relay() {
  kill "$relay_pid"; wait "$relay_pid" 2>/dev/null || true; relay_pid=""
}

for round in $(seq "$ROUNDS"); do
  for r in "${relays[@]}"; do
    echo "round $round: $r" >&2
    # conns on an empty DB (nothing else touching memory), the rest on the preloaded one.
    rm -rf "$T/empty"; mkdir -p "$T/empty"
    start_relay "$r" "$T/empty"
    "$WOK" bench --json --pid "$relay_pid" conns "$url" --conns 2000 | record "$r" "$round"
    stop_relay
    # A relay that dies under the query load (strfry aborted once in 10 rounds here) is
    # reported, counted and given one more try on a fresh copy; a second death ends the run.
    for try in 1 2; do
      rm -rf "$T/db"; cp -r "$T/pre-$r" "$T/db"
      start_relay "$r" "$T/db"
      if "$WOK" bench --json --pid "$relay_pid" query "$url" --count "$COUNT" --seed 1 >"$T/query.jsonl"; then
        record "$r" "$round" <"$T/query.jsonl"
        break
      fi
      kill "$relay_pid" 2>/dev/null || true
      code=0; wait "$relay_pid" 2>/dev/null || code=$?; relay_pid=""
      echo "query against $r failed (relay exit status $code): $(tail -2 "$T/relay.log" | tr '\n' ' ')" >&2
      one "$r" "$round" query relay_deaths 1 deaths
      [ "$try" = 2 ] && exit 1
    done
    # NIP-77 on a relay fresh from start, so its peak RSS is what the sync made it hold.
    # Before fanout and ingest add events: the sets differ by 1% each way.
    stop_relay
    start_relay "$r" "$T/db"
    # Start-up work settles first (wok purges the data's expired events, which maps much of
    # the file: its peak RSS from start says little about a sync; relay_rss_growth_kb does).
    sleep 1
    # `{}` from an unauthenticated client (default config: wok answers from its public
    # tree), then `{"kinds":[1]}`, which no tree holds: a set collected from the index.
    for case in "negentropy {}" 'neg_collected {"kinds":[1]}'; do
      scen=${case%% *}; filter=${case#* }
      rss0=$(rss_kb "$relay_pid"); reset_peak "$relay_pid"
      anon0=$(rss_anon_kb "$relay_pid"); file0=$(rss_file_kb "$relay_pid")
      c0=$(cpu_us "$relay_pid"); t0=$(ms)
      if ! "$WOK" --set db="$T/local" sync "$url" --filter "$filter" --print-missing --timeout 30 \
          >"$T/missing" 2>"$T/sync.log"; then
        echo "NIP-77 sync ($filter) against $r failed: $(tail -1 "$T/sync.log")" >&2
        exit 1
      fi
      t1=$(ms); c1=$(cpu_us "$relay_pid")
      one "$r" "$round" "$scen" reconcile_ms $((t1 - t0)) ms
      one "$r" "$round" "$scen" relay_cpu_ms $(( (c1 - c0 + 500) / 1000 )) ms
      one "$r" "$round" "$scen" relay_peak_rss_kb "$(peak_rss_kb "$relay_pid")" KiB
      # What the sync itself made the relay hold: its peak over the RSS just before it.
      one "$r" "$round" "$scen" relay_rss_growth_kb $(( $(peak_rss_kb "$relay_pid") - rss0 )) KiB
      # The same growth split, read after the sync: anonymous memory vs mapped file pages.
      one "$r" "$round" "$scen" relay_rss_anon_growth_kb $(( $(rss_anon_kb "$relay_pid") - anon0 )) KiB
      one "$r" "$round" "$scen" relay_rss_file_growth_kb $(( $(rss_file_kb "$relay_pid") - file0 )) KiB
      one "$r" "$round" "$scen" differences "$(wc -l <"$T/missing")" ids
      read -r rounds up down < <(grep -o '[0-9]* rounds, [0-9]* bytes up, [0-9]* bytes down' "$T/sync.log" |
        awk '{print $1, $3, $6}') || true
      one "$r" "$round" "$scen" round_trips "${rounds:-0}" rounds
      one "$r" "$round" "$scen" bytes "$(( ${up:-0} + ${down:-0} ))" bytes
      # The reported difference must be exactly the set difference of the two databases
      # under the filter (each side's own export, read beside the running relay; expired
      # events are already purged on the local side by the sync).
      cli "$r" "$(conf "$r" "$T/db" 1)" export 2>/dev/null >"$T/relay-ids.jsonl"
      "$WOK" --set db="$T/local" export 2>/dev/null >"$T/local-ids.jsonl"
      exact=$(python3 - "$T/relay-ids.jsonl" "$T/local-ids.jsonl" "$T/missing" "$filter" <<'PY'
import json, sys
flt = json.loads(sys.argv[4])
def ids(p):
    out = set()
    for l in open(p):
        if l.strip():
            e = json.loads(l)
            # Restricted kinds (4, 1059 by default) are never offered to an unauthenticated
            # reader; the generated data holds none, so every event counts.
            if "kinds" not in flt or e["kind"] in flt["kinds"]:
                out.add(e["id"])
    return out
relay, local = ids(sys.argv[1]), ids(sys.argv[2])
got = {tuple(l.strip().split(",")) for l in open(sys.argv[3]) if l.strip()}
want = {("have", i) for i in local - relay} | {("need", i) for i in relay - local}
print(1 if got == want else 0)
PY
)
      one "$r" "$round" "$scen" exact "$exact" bool
    done
    "$WOK" bench --json --pid "$relay_pid" fanout "$url" | record "$r" "$round"
    "$WOK" bench --json --pid "$relay_pid" ingest "$url" --seed $((100 + round)) | record "$r" "$round"
    stop_relay

    rm -rf "$T/imp"; mkdir -p "$T/imp"
    ci=$(conf "$r" "$T/imp" 1)
    t0=$(ms); cli "$r" "$ci" import <"$T/data.jsonl" >/dev/null 2>&1; t1=$(ms)
    one "$r" "$round" cli import_events_per_s $((COUNT * 1000 / (t1 - t0 + 1))) events/s
    t0=$(ms); cli "$r" "$ci" export >"$T/export.jsonl" 2>/dev/null; t1=$(ms)
    n=$(wc -l <"$T/export.jsonl")
    one "$r" "$round" cli export_events_per_s $((n * 1000 / (t1 - t0 + 1))) events/s
  done
done

python3 - "$OUT" <<'PY'
import json, statistics, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
med = collections.defaultdict(list)
for d in rows:
    if "t" in d:  # CPU/RSS samples over time: for the plot, not the table
        continue
    med[(d["scenario"], d["name"], d["unit"], d["relay"])].append(d["value"])
keys = sorted({(s, n, u) for (s, n, u, _) in med})
relays = sorted({d["relay"] for d in rows}, key=lambda r: r != "wok")
print(f'{"scenario":10} {"figure":24} ' + " ".join(f'{r:>14}' for r in relays) + ("   wok/strfry" if len(relays) > 1 else ""))
for s, n, u in keys:
    vals = [statistics.median(med[(s, n, u, r)]) if med.get((s, n, u, r)) else float("nan") for r in relays]
    line = f'{s:10} {n + " (" + u + ")":24} ' + " ".join(f'{v:14.3f}' for v in vals)
    if len(relays) > 1 and vals[1] not in (0, 0.0) and vals[1] == vals[1]:
        line += f'   {vals[0] / vals[1]:8.2f}'
    print(line)
PY
echo "samples: $OUT" >&2
# The same samples drawn: latency, throughput, relay CPU and RSS over time, per relay.
"$WOK" bench plot "$OUT" --out "${OUT%.jsonl}.svg"

