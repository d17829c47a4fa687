#!/usr/bin/env bash
# NIP-77 reconcile figures, on this machine, with the release build:
#   a relay holding ~N generated events and a local DB that differ by 1% on each side
#   (every 100th line is missing from the relay, every 100th line shifted by 50 from the
#   local DB); `wok sync --print-missing` against the relay answering
#     - from its stored tree (tree 1, `{}`), and
#     - from a set collected by the query engine (the same data with the tree removed),
#   alternately, ROUNDS times. Prints the median wall time, the rounds and the bytes of each,
#   and then the time of `wok sync --dir down` of the whole relay into an empty DB.
#
# Usage: cargo build --release && scripts/bench-negentropy.sh   (LINES=116000 ROUNDS=3)
# Loopback only; every process it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${WOK:-$PWD/target/release/wok}
LINES=${LINES:-116000}
ROUNDS=${ROUNDS:-3}
T=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms() { date +%s%N | cut -c1-13; }

"$W" gen --count "$LINES" --seed 3 > "$T/all.jsonl"
awk 'NR % 100 != 0' "$T/all.jsonl" | "$W" --set db="$T/tree" import 2>/dev/null
awk 'NR % 100 != 50' "$T/all.jsonl" | "$W" --set db="$T/local" import 2>/dev/null
cp -r "$T/tree" "$T/vector"
"$W" --set db="$T/vector" negentropy remove 1 >/dev/null 2>&1
echo "relay: $("$W" --set db="$T/tree" scan --count '{}' 2>/dev/null) events; local: $("$W" --set db="$T/local" scan --count '{}' 2>/dev/null) events"

start() { # db port
  "$W" --set db="$1" --set relay.port="$2" --set relay.bind=127.0.0.1 \
    --set 'relay.auth.restrictedReadKinds=' --set relay.negentropy.maxSyncEvents=10000000 \
    relay >"$T/relay-$2.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "relay on $2 did not start" >&2
  exit 1
}
pt=$(free_port); start "$T/tree" "$pt"
pv=$(free_port); start "$T/vector" "$pv"

declare -A times info
for r in $(seq "$ROUNDS"); do
  for kind in tree vector; do
    port=$pt; [ "$kind" = vector ] && port=$pv
    t0=$(ms)
    "$W" --set db="$T/local" sync "ws://127.0.0.1:$port" --print-missing >"$T/missing" 2>"$T/sync.log"
    t1=$(ms)
    times[$kind]+="$((t1 - t0)) "
    info[$kind]="$(grep -o 'have [0-9]*, need [0-9]*' "$T/sync.log"); $(grep -o '[0-9]* rounds, [0-9]* bytes up, [0-9]* bytes down' "$T/sync.log")"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for kind in tree vector; do
  echo "reconcile from a stored $kind: median $(echo "${times[$kind]}" | median) ms (runs: ${times[$kind]}); ${info[$kind]}"
done

"$W" --set db="$T/empty" info >/dev/null 2>&1 || true
t0=$(ms)
"$W" --set db="$T/empty" sync "ws://127.0.0.1:$pt" --dir down 2>"$T/down.log" >/dev/null
t1=$(ms)
got=$(grep -o 'downloaded [0-9]*' "$T/down.log" | grep -o '[0-9]*')
echo "sync --dir down into an empty DB: $got events in $((t1 - t0)) ms = $((got * 1000 / (t1 - t0 + 1))) events/s"
