#!/usr/bin/env bash
# Events/s relayed by `wok router` between two local relays, on this machine, with the
# release build. Two relays A and B on loopback, fresh DBs each round; EVENTS generated
# events (created_at within the last day) are imported into A's DB by `wok import` while a
# router moves them:
#   up:   router on A's DB, group dir "up" to B   (A's DB -> router -> B's WebSocket)
#   down: router on B's DB, group dir "down" from A (A's live subscription -> router -> B's DB)
# The clock runs from the start of the import until B's DB holds every event. Prints per
# round: seconds, events/s, the router's CPU seconds, and the import's own time (the
# ceiling it could not beat); then medians.
#
# Usage: cargo build --release && scripts/bench-router.sh   (EVENTS=50000 ROUNDS=3)
# Loopback only; every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${WOK:-$PWD/target/release/wok}
EVENTS=${EVENTS:-50000}
ROUNDS=${ROUNDS:-3}
T=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms() { date +%s%N | cut -c1-13; }
cpu_s() { awk '{printf "%.2f", ($14+$15)/100}' "/proc/$1/stat"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
db() { echo --set "db=$1" --set dbParams.mapsize=4294967296; }

# What a relay keeps of them: no expiring events (a relay refuses expired ones), and
# replaced or deleted ones dropped by one import + export, so B must end with every line.
"$W" gen --count "$EVENTS" --seed 11 --start $(( $(date +%s) - 86400 )) --span 86000 \
  | grep -v '"expiration"' | "$W" $(db "$T/scratch") import 2>/dev/null
"$W" $(db "$T/scratch") export 2>/dev/null > "$T/events.jsonl"
EVENTS=$(wc -l < "$T/events.jsonl")

start_relay() { # db port
  # shellcheck disable=SC2046
  "$W" $(db "$1") --set relay.port="$2" --set relay.bind=127.0.0.1 relay >"$T/relay-$2.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    curl -s "http://127.0.0.1:$2/" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "relay on $2 did not start" >&2; exit 1
}

count() { "$W" $(db "$1") scan --count '{}' 2>/dev/null || echo 0; }

one() { # dir round
  local dir=$1 r=$2 a="$T/a-$1-$2" b="$T/b-$1-$2" pa pb routed_db url conf
  pa=$(free_port); pb=$(free_port)
  start_relay "$a" "$pa"; start_relay "$b" "$pb"
  if [ "$dir" = up ]; then routed_db=$a; url="ws://127.0.0.1:$pb"; else routed_db=$b; url="ws://127.0.0.1:$pa"; fi
  conf="$T/router-$dir-$r.conf"
  printf 'connectionTimeout = 5\nverbose = %s\nstreams {\n  g {\n    dir = "%s"\n    urls = [ "%s" ]\n  }\n}\n' "${VERBOSE:-false}" "$dir" "$url" > "$conf"
  # shellcheck disable=SC2046
  "$W" $(db "$routed_db") router "$conf" >"$T/router-$dir-$r.log" 2>&1 &
  local rp=$!; pids+=($rp)
  for _ in $(seq 1 100); do grep -qs "connected" "$T/router-$dir-$r.log" && break; sleep 0.1; done
  sleep 0.5 # the down link's REQ must be in place before the first event (it asks for live ones)
  local c0 t0 ti t1 n=0
  c0=$(cpu_s "$rp"); t0=$(ms)
  # shellcheck disable=SC2046
  "$W" $(db "$a") import < "$T/events.jsonl" 2>/dev/null
  ti=$(ms)
  while [ "$n" -lt "$EVENTS" ]; do
    n=$(count "$b")
    [ $(( $(ms) - t0 )) -gt 300000 ] && { echo "timed out at $n events" >&2; exit 1; }
    [ "$n" -lt "$EVENTS" ] && sleep 0.1
  done
  t1=$(ms)
  local cpu secs
  cpu=$(awk -v a="$c0" -v b="$(cpu_s "$rp")" 'BEGIN {printf "%.2f", b-a}')
  secs=$(awk -v d=$(( t1 - t0 )) 'BEGIN {printf "%.2f", d/1000}')
  echo "$dir round $r: $secs s, $(awk -v s="$secs" -v n="$EVENTS" 'BEGIN {printf "%.0f", n/s}') events/s, router CPU $cpu s, import alone $(awk -v d=$(( ti - t0 )) 'BEGIN {printf "%.2f", d/1000}') s"
  echo "$dir $secs $cpu" >> "$T/results"
  kill "$rp" 2>/dev/null || true
  wait "$rp" 2>/dev/null || true
}

for r in $(seq 1 "$ROUNDS"); do
  one up "$r"
  one down "$r"
done
for dir in up down; do
  s=$(awk -v d=$dir '$1==d {print $2}' "$T/results" | median)
  c=$(awk -v d=$dir '$1==d {print $3}' "$T/results" | median)
  echo "median $dir: $s s = $(awk -v s="$s" -v n="$EVENTS" 'BEGIN {printf "%.0f", n/s}') events/s relayed, router CPU $c s ($EVENTS events, $ROUNDS rounds, $(nproc) cores)"
done
