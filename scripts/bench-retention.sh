#!/usr/bin/env bash
# Ingest latency under a steady load with and without retention pruning (issue 17).
# The same copy of SOURCE_DB is served twice per round: without rules, and with a rule that
# prunes every kind 1/6/7 event older than a day (all of a `wok gen` DB, whose events are
# from 2023) while `wok bench ingest --rate` sends new events. The rule is switched on by a
# live reload once the first events are written: `bench ingest` first spends a while making
# its events, and a rule present from the start would prune at the idle rate until then.
# Reported: what was pruned under the load (pruned_under_load) and in all.
# usage: scripts/bench-retention.sh SOURCE_DB [ROUNDS]   (env: WOK, RATE, EVENTS, PORT)
# Rate limits are off: the load comes from one address, 50 connections.
set -euo pipefail
W=${WOK:-target/release/wok}
SRC=$1
ROUNDS=${2:-2}
RATE=${RATE:-5000}
EVENTS=${EVENTS:-100000}
PORT=${PORT:-17790}
tmp=$(mktemp -d)
trap 'kill "${pid:-}" "${bench:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
# The config, rewritten whole (the relay reloads it when its mtime changes).
conf() {
    printf 'db = "%s"\nrelay { port = %s limits { enabled = false } }\nretention { %s }\n' "$tmp/db" "$PORT" "$1" >"$tmp/conf.new"
    mv "$tmp/conf.new" "$tmp/conf"
}
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
for round in $(seq 1 "$ROUNDS"); do
    for mode in off on; do
        rm -rf "$tmp/db"
        cp -r "$SRC" "$tmp/db"
        conf ""
        "$W" --config "$tmp/conf" relay 2>"$tmp/relay.log" &
        pid=$!
        for _ in $(seq 1 100); do
            grep -q "relay listening" "$tmp/relay.log" && break
            sleep 0.1
        done
        seed=$((round * 10 + ${#mode}))
        "$W" --quiet bench ingest "ws://127.0.0.1:$PORT" --rate "$RATE" --events "$EVENTS" \
            --conns 50 --inflight 8 --seed "$seed" --json >"$tmp/out" &
        bench=$!
        if [ "$mode" = on ]; then
            # Bounded: the bench makes its events for well under 10 minutes.
            for _ in $(seq 1 6000); do
                [ "$(metric wok_write_batches_total)" -gt 0 ] 2>/dev/null && break
                sleep 0.1
            done
            conf 'rules { notes { kinds = "1, 6, 7" maxAgeSeconds = 86400 } }'
        fi
        wait "$bench"
        out=$(cat "$tmp/out")
        pruned=$(metric wok_retention_pruned_total)
        kill "$pid"
        wait "$pid" || true
        val() { echo "$out" | grep "\"name\":\"$1\"" | sed 's/.*"value":\([0-9.e+-]*\).*/\1/'; }
        echo "round $round pruning=$mode events/s=$(val events_per_s) p50_ms=$(val ok_p50_ms) p99_ms=$(val ok_p99_ms) pruned_under_load=$pruned"
    done
done
