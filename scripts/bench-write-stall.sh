#!/usr/bin/env bash
# The relay's heap after a writer stall: LMDB keeps every page a write transaction dirtied
# for the next one and never frees it, so the heap holds the largest batch's pages for good,
# and the batch after a stall is the largest. Each round, for each binary:
#
#   cargo build --release
#   scripts/bench-write-stall.sh                            # this wok alone
#   WOK_BASE=/path/to/older/wok scripts/bench-write-stall.sh   # an older wok beside it
#
# a fresh relay (loopback, rate limits off) takes `wok bench ingest` of 100,000 events at full
# speed; then its writer thread is starved for $STALL s (SCHED_IDLE, beside two busy loops)
# while 40,000 more events come over 64 connections with 250 in flight each; then it runs
# again. The live heap (`wok_heap_in_use_bytes`) is read after each burst, at rest. Needs
# chrt (util-linux) and curl; loopback only; nothing is built or downloaded; every process it
# started is stopped on exit. ROUNDS (default 2) alternate the binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
WOK=${WOK:-$PWD/target/release/wok}
BASE=${WOK_BASE:-}
ROUNDS=${ROUNDS:-2}
STALL=${STALL:-4}
for t in chrt curl; do
  command -v $t >/dev/null || { echo "bench-write-stall: needs $t" >&2; exit 2; }
done
[ -x "$WOK" ] || { echo "bench-write-stall: $WOK not found; build it first: cargo build --release" >&2; exit 2; }
T=$(mktemp -d /tmp/wok-stall.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT INT TERM

one() { # BIN TAG -> one line: heap after the first burst, after the stalled one, batches
  local bin=$1 tag=$2 d=$T/$2 rp port wt y1 y2 bp h1 h2 b
  rm -rf "$d"; mkdir -p "$d"
  printf 'db = "%s/db"\nrelay { port = 0\n limits { enabled = false } }\n' "$d" >"$d/c.conf"
  "$bin" --config "$d/c.conf" relay >"$d/log" 2>&1 &
  rp=$!; PIDS+=("$rp")
  for _ in $(seq 100); do grep -q "relay listening" "$d/log" && break; sleep 0.1; done
  port=$(grep -o "listening on 127.0.0.1:[0-9]*" "$d/log" | head -1 | cut -d: -f2)
  [ -n "$port" ] || { echo "bench-write-stall: $tag did not start" >&2; tail -3 "$d/log" >&2; exit 1; }
  heap() { curl -s "127.0.0.1:$port/metrics" | awk '/^wok_heap_in_use_bytes / {printf "%.1f", $2 / 1048576}'; }
  "$WOK" -q bench ingest "ws://127.0.0.1:$port" --events 100000 --seed 3 >/dev/null
  h1=$(heap)
  wt=$(grep -lx "Writer" /proc/"$rp"/task/*/comm | head -1 | cut -d/ -f5)
  chrt -i -p 0 "$wt"
  yes >/dev/null & y1=$!; yes >/dev/null & y2=$!; PIDS+=("$y1" "$y2")
  "$WOK" -q bench ingest "ws://127.0.0.1:$port" --events 40000 --conns 64 --inflight 250 --seed 11 >/dev/null &
  bp=$!
  sleep "$STALL" # the stall's length, not a wait for state
  kill "$y1" "$y2"; chrt -o -p 0 "$wt"
  wait "$bp"
  h2=$(heap)
  b=$(curl -s "127.0.0.1:$port/metrics" | awk '/^wok_write_batches_total / {print $2}')
  kill "$rp"; wait "$rp" 2>/dev/null || true
  printf '%-6s heap after 100k events %6s MiB, after the stalled 40k %6s MiB (%s write batches)\n' "$tag" "$h1" "$h2" "$b"
}

for r in $(seq "$ROUNDS"); do
  one "$WOK" wok
  [ -z "$BASE" ] || one "$BASE" base
done
