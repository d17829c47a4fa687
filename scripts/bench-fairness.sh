#!/usr/bin/env bash
# Fair share (issue 20): a polite client's REQ→EOSE and EVENT→OK times, unloaded and while
# F connections flood EVENTs and REQs without waiting (`wok bench fairness`), plus the
# flooders' answered messages per second. Compares relays run the same way:
#
#   cargo build --release
#   scripts/bench-fairness.sh                                   # this wok alone
#   WOK_BASE=/path/to/older/wok scripts/bench-fairness.sh       # an older wok beside it
#   STRFRY_BIN=/path/to/strfry scripts/bench-fairness.sh        # and/or strfry
#
# Every relay gets the same minimal config (defaults for every limit, loopback, its own
# port) and, every round, a fresh copy of the same preloaded DB (`wok gen --count $COUNT
# --seed 1`). Relays alternate A,B,A,B over $ROUNDS rounds (at least 3); the table shows
# medians and every sample goes to $OUT (JSON lines). WOK_SET="key=value ..." is passed to
# the wok relays as --set options (e.g. relay.maxMessagesInFlightPerConnection=0);
# BENCH_ARGS is added to the bench's (e.g. "--fresh --flooders 4"; for rate limits, "--flood-from
# 127.0.0.2 --polite-from 127.0.0.3 --polite 1000 --polite-every-ms 12": two addresses, a paced
# polite client with enough samples for a p99; add "--flood-nice 19" so the generator's
# flood, like one from other machines, takes only cores the relays leave idle).
# FLOOR=1 adds a control, "floor": the polite client talks to this wok as usual but the flood
# goes to a second wok run wholly at SCHED_IDLE (`chrt -i 0`), so the polite figures show what
# the load generator and a flooded relay's kernel work cost on this machine when the polite
# relay itself does none of the flood's work: the lowest the wok column could reach here.
# $WOK is always the bench client. Loopback only; nothing is built or downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
WOK=${WOK:-$PWD/target/release/wok}
BASE=${WOK_BASE:-}
STRFRY=${STRFRY_BIN:-}
ROUNDS=${ROUNDS:-3}
COUNT=${COUNT:-100000}
OUT=${OUT:-$PWD/bench-fairness.jsonl}
ARGS=${BENCH_ARGS:-}
[ -x "$WOK" ] || { echo "build wok first: cargo build --release" >&2; exit 1; }
[ "$ROUNDS" -ge 3 ] || { echo "ROUNDS must be at least 3" >&2; exit 1; }
T=$(mktemp -d)
relay_pid=""
sink_pid=""
cleanup() {
  [ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null || true
  [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
: >"$OUT"

relays=(wok)
[ -n "$BASE" ] && relays+=(base)
[ -n "$STRFRY" ] && relays+=(strfry)
if [ "${FLOOR:-0}" = 1 ]; then
  command -v chrt >/dev/null || { echo "FLOOR=1 needs chrt (util-linux)" >&2; exit 1; }
  relays+=(floor)
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

conf() { # dbdir port -> config path
  local c="$T/relay-$2.conf"
  cat >"$c" <<EOF
db = "$1/"
dbParams { mapsize = 10995116277760 }
relay {
  bind = "127.0.0.1"
  port = $2
  nofiles = 0
  info { name = "bench" }
}
EOF
  echo "$c"
}

wait_port() { # until something listens on 127.0.0.1:$1 (10 s at most)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
}

bin() { case $1 in wok | floor) echo "$WOK" ;; base) echo "$BASE" ;; strfry) echo "$STRFRY" ;; esac; }
sets() { # wok relays only
  [ "$1" = strfry ] && return 0
  for kv in ${WOK_SET:-}; do printf -- '--set\n%s\n' "$kv"; done
}

"$WOK" gen --count "$COUNT" --seed 1 >"$T/data.jsonl"
for r in "${relays[@]}"; do
  [ "$r" = floor ] && continue # uses wok's
  mkdir -p "$T/pre-$r"
  "$(bin "$r")" --config "$(conf "$T/pre-$r" 1)" import <"$T/data.jsonl" >/dev/null 2>&1
done

for ((round = 1; round <= ROUNDS; round++)); do
  for r in "${relays[@]}"; do
    pre=$T/pre-$r
    [ "$r" = floor ] && pre=$T/pre-wok
    rm -rf "$T/run" "$T/sink" && cp -r "$pre" "$T/run"
    flood_to=()
    if [ "$r" = floor ]; then
      cp -r "$pre" "$T/sink"
      sink_port=$(free_port)
      mapfile -t extra < <(sets wok)
      chrt -i 0 "$WOK" --config "$(conf "$T/sink" "$sink_port")" "${extra[@]}" relay >"$T/sink.log" 2>&1 &
      sink_pid=$!
      wait_port "$sink_port"
      flood_to=(--flood-url "ws://127.0.0.1:$sink_port")
    fi
    sync # the copy's writeback must not land on the relay's fsyncs mid-run
    port=$(free_port)
    c=$(conf "$T/run" "$port")
    mapfile -t extra < <(sets "$r")
    "$(bin "$r")" --config "$c" "${extra[@]}" relay >"$T/relay.log" 2>&1 &
    relay_pid=$!
    wait_port "$port"
    # shellcheck disable=SC2086
    "$WOK" bench fairness "ws://127.0.0.1:$port" --pid "$relay_pid" --seed $((100 + round)) \
      --count "$COUNT" --data-seed 1 --json "${flood_to[@]}" $ARGS | python3 -c '
import json, sys
relay, rnd = sys.argv[1], int(sys.argv[2])
for line in sys.stdin:
    if line.startswith("{"):
        d = json.loads(line); d["relay"] = relay; d["round"] = rnd
        print(json.dumps(d))
' "$r" "$round" >>"$OUT" || echo "round $round $r: bench failed" >&2
    kill "$relay_pid" 2>/dev/null || true
    wait "$relay_pid" 2>/dev/null || true
    relay_pid=""
    if [ -n "$sink_pid" ]; then
      kill "$sink_pid" 2>/dev/null || true
      wait "$sink_pid" 2>/dev/null || true
      sink_pid=""
    fi
  done
done

python3 - "$OUT" "${relays[@]}" <<'EOF'
import json, statistics, sys
path, relays = sys.argv[1], sys.argv[2:]
vals = {}
for line in open(path):
    d = json.loads(line)
    vals.setdefault((d["name"], d["relay"]), []).append(d["value"])
names = []
for (n, _) in vals:
    if n not in names:
        names.append(n)
print("%-26s" % "median of rounds" + "".join("%14s" % r for r in relays))
for n in names:
    row = "%-26s" % n
    for r in relays:
        v = vals.get((n, r))
        row += "%14.2f" % statistics.median(v) if v else "%14s" % "-"
    print(row)
EOF
