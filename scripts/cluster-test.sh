#!/usr/bin/env bash
# Three wok relays meshed by `wok router`, each in its own network namespace with its own DB,
# through faults; after each one the three DBs must converge. Needs root, `ip` and `tc`
# (iproute2), and `iptables` where the kernel has no netem. Everything stays on this
# machine: the namespaces and links it makes (named wokc<pid>-*) are deleted on exit, on
# Ctrl-C and on SIGTERM, with every process it started in them.
#
#   wokc<pid>-net  bridge br0 (10.231.0.254, where the clients run), ports pa pb pc
#   wokc<pid>-a    relay A on 10.231.0.1:7777 + `wok router` on A's DB, dir "both" to B and C
#   wokc<pid>-b    relay B on 10.231.0.2:7777 + router to A and C
#   wokc<pid>-c    relay C on 10.231.0.3:7777 + router to A and B
#
# Clients write distinct signed events (`wok gen`, made consistent by one import + export)
# to all three relays with `wok upload`, in chunks: a chunk is acknowledged when its upload
# ends with every event `OK true`; a failed upload is retried, as a client would. Phases:
#   baseline  writes to all three
#   a1        A's link down (its bridge port) while clients write to A (from A's side of
#             the cut) and to B and C; then up
#   a2        30% loss + 200 ms delay both ways on A's link while writing; then removed
#             (tc netem; on a kernel without netem, iptables queues A's packets to a
#             small NFQUEUE helper that drops 30% and holds the rest 200 ms)
#   b         relay B killed with kill -9 during an upload to B, restarted
#   c         router C killed with kill -9 while writing, restarted
# After each: the time from the heal / restart (or the last acknowledged write, if later)
# until the three `wok export`s are identical, the events/s relayed, and a NIP-77 reconcile
# (`wok sync --print-missing`) between each pair, which must list nothing. The last line:
#   cluster: 3 relays converged after 4 faults, <N> events, lost 0
# where lost counts acknowledged events missing from any DB at the end (non-zero: exit 1).
#
# Usage: sudo scripts/cluster-test.sh [--events N] [--big] [--keep]
#   --events N   events written in all (default 6000: a CI-sized run, about 30 s on 2 cores)
#   --big        60000 events, longer faults (about 2 minutes)
#   --keep       keep the temp dir (DBs, logs) and print its path (kept anyway on failure)
# WOK=path picks the binary (default target/release/wok); TIMEOUT (default 120) bounds each
# convergence wait, MAX_SECONDS (default 900) the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${WOK:-$PWD/target/release/wok}
EVENTS=6000
CHUNK=100
CUT_SECONDS=5      # a1: how long A stays cut off (at least; writes may take longer)
IMPAIR_SECONDS=8   # a2: how long the loss + delay stay on
DOWN_SECONDS=2     # b, c: how long the killed process stays dead
KEEP=${KEEP:-}
while [ $# -gt 0 ]; do
  case $1 in
    --events) EVENTS=${2:?--events needs a number}; shift ;;
    --big) EVENTS=60000; CHUNK=500; CUT_SECONDS=15; IMPAIR_SECONDS=20; DOWN_SECONDS=5 ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
TIMEOUT=${TIMEOUT:-120}
MAX_SECONDS=${MAX_SECONDS:-900}

# ---- what it needs -------------------------------------------------------------------
missing=()
[ "$(id -u)" = 0 ] || missing+=("root (network namespaces): run it with sudo")
command -v ip >/dev/null || missing+=("ip: apt-get install iproute2")
command -v tc >/dev/null || missing+=("tc: apt-get install iproute2")
for c in curl sha256sum split python3; do
  command -v "$c" >/dev/null || missing+=("$c")
done
[ -x "$W" ] || missing+=("$W: build it first: cargo build --release (or set WOK=path)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "cluster-test: missing:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi
W=$(cd "$(dirname "$W")" && pwd)/$(basename "$W")

# ---- state and cleanup ---------------------------------------------------------------
R=wokc$$
NET=$R-net
NODES=(a b c)
declare -A IP=([a]=10.231.0.1 [b]=10.231.0.2 [c]=10.231.0.3)
declare -A UP=([a]=A [b]=B [c]=C)
declare -A RELAY ROUTER
T=$(mktemp -d /tmp/wok-cluster.XXXXXX)
made_ns=()
bg=() # background shell jobs (writers, the NFQUEUE helper)
watchdog=

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  exec 3>&2 2>/dev/null # no "Killed" job notices from here on
  kill -TERM "$watchdog" 2>/dev/null
  for p in "${bg[@]}" "${RELAY[@]}" "${ROUTER[@]}"; do kill -9 "$p"; done
  for ns in "${made_ns[@]}"; do
    for p in $(ip netns pids "$ns"); do kill -9 "$p"; done
  done
  wait
  for ns in "${made_ns[@]}"; do ip netns del "$ns" 2>/dev/null; done
  if [ -n "$KEEP" ] || [ "$rc" = 1 ]; then echo "cluster-test: logs and DBs kept in $T" >&3; else rm -rf "$T"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "cluster-test: interrupted" >&2; exit 130' INT
trap 'echo "cluster-test: terminated" >&2; exit 143' TERM
# The watchdog: its sleep goes when it is stopped (TERM), so nothing outlives the run.
( trap 'kill "$s" 2>/dev/null; exit 0' TERM; sleep "$MAX_SECONDS" & s=$!; wait "$s"
  echo "cluster-test: over MAX_SECONDS=$MAX_SECONDS, stopping" >&2; kill -TERM $$ ) &
watchdog=$!

cnt() { local n; n=$(grep -c -- "$1" "$2" 2>/dev/null) || true; echo "${n:-0}"; } # pattern file
ms() { date +%s%N | cut -c1-13; }
secs() { awk -v d="$1" 'BEGIN {printf "%.1f", d/1000}'; }
rate() { awk -v n="$1" -v d="$2" 'BEGIN {printf "%.0f", (d > 0 ? n*1000/d : 0)}'; }
die() { echo "cluster-test: $*" >&2; exit 1; }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# ---- the network -------------------------------------------------------------------
ip netns add "$NET"; made_ns+=("$NET")
ip -n "$NET" link set lo up
ip -n "$NET" link add br0 type bridge
ip -n "$NET" addr add 10.231.0.254/24 dev br0
ip -n "$NET" link set br0 up
for x in "${NODES[@]}"; do
  ip netns add "$R-$x"; made_ns+=("$R-$x")
  ip -n "$R-$x" link set lo up
  ip -n "$NET" link add "p$x" type veth peer name eth0 netns "$R-$x"
  ip -n "$NET" link set "p$x" master br0 up
  ip -n "$R-$x" addr add "${IP[$x]}/24" dev eth0
  ip -n "$R-$x" link set eth0 up
done

# How a2 impairs the link: netem if this kernel has it, else iptables' NFQUEUE target
# feeding the helper below.
IMPAIR=none
IPT=
if tc -n "$R-a" qdisc add dev eth0 root netem delay 1ms 2>/dev/null; then
  tc -n "$R-a" qdisc del dev eth0 root
  IMPAIR=netem
else
  for c in iptables iptables-legacy; do
    if command -v "$c" >/dev/null && ip netns exec "$R-a" "$c" -A OUTPUT -o eth0 -j NFQUEUE --queue-num 7 --queue-bypass 2>/dev/null; then
      ip netns exec "$R-a" "$c" -F OUTPUT
      IPT=$c; IMPAIR=nfqueue; break
    fi
  done
  if [ "$IMPAIR" = none ]; then
    echo "cluster-test: this kernel has no netem (CONFIG_NET_SCH_NETEM) and iptables' NFQUEUE target is not usable (apt-get install iptables): the loss + delay fault is skipped" >&2
  fi
fi
cat > "$T/nfq-impair.py" <<'EOF'
# NFQUEUE over raw netlink: drop a share of the queued packets, hold the rest for a delay.
import collections, random, select, socket, struct, sys, time
qnum, loss, delay = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)  # NETLINK_NETFILTER
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind((0, 0))
seq = 0
def attr(t, p):
    n = 4 + len(p)
    return struct.pack("=HH", n, t) + p + b"\0" * (-n % 4)
def send(kind, family, attrs):
    global seq
    seq += 1
    body = struct.pack("!BBH", family, 0, qnum) + b"".join(attrs)
    s.send(struct.pack("=IHHII", 16 + len(body), (3 << 8) | kind, 1, seq, 0) + body)
send(2, 0, [attr(1, struct.pack("!BxH", 1, 0))])                  # CFG_CMD_BIND
send(2, 0, [attr(2, struct.pack("!IB", 0, 1)),                    # COPY_META
            attr(3, struct.pack("!I", 100000))])                  # QUEUE_MAXLEN
held = collections.deque()
def verdict(pid, v):
    send(1, 0, [attr(2, struct.pack("!II", v, pid))])
print("nfq-impair: queue %d, loss %.0f%%, delay %.0f ms" % (qnum, loss * 100, delay * 1000), flush=True)
while True:
    wait = max(0.0, held[0][0] - time.monotonic()) if held else 1.0
    if select.select([s], [], [], wait)[0]:
        try:
            buf = s.recv(1 << 20)
        except OSError:  # ENOBUFS: the kernel dropped some; they count as lost
            continue
        off = 0
        while off + 16 <= len(buf):
            ln, typ = struct.unpack_from("=IH", buf, off)
            if ln < 16:
                break
            if typ == (3 << 8):  # NFQNL_MSG_PACKET
                a = off + 20
                while a + 4 <= off + ln:
                    alen, atyp = struct.unpack_from("=HH", buf, a)
                    if alen < 4:
                        break
                    if atyp & 0x7FFF == 1:  # NFQA_PACKET_HDR
                        pid = struct.unpack_from("!I", buf, a + 4)[0]
                        if random.random() < loss:
                            verdict(pid, 0)  # NF_DROP
                        else:
                            held.append((time.monotonic() + delay, pid))
                        break
                    a += (alen + 3) & ~3
            elif typ == 2:  # NLMSG_ERROR
                err = struct.unpack_from("=i", buf, off + 16)[0]
                if err:
                    print("nfq-impair: netlink error %d" % err, file=sys.stderr, flush=True)
            off += (ln + 3) & ~3
    now = time.monotonic()
    while held and held[0][0] <= now:
        verdict(held.popleft()[1], 1)  # NF_ACCEPT
EOF

# ---- relays and routers ------------------------------------------------------------
for x in "${NODES[@]}"; do
  cat > "$T/$x.conf" <<EOF
db = "$T/$x-db"
dbParams {
  mapsize = 4294967296
}
relay {
  bind = "${IP[$x]}"
  port = 7777
  limits {
    # the mesh and the test clients are peers, not strangers
    exemptCidrs = "10.231.0.0/24"
  }
}
EOF
  others=()
  for y in "${NODES[@]}"; do [ "$y" = "$x" ] || others+=("\"ws://${IP[$y]}:7777\""); done
  cat > "$T/$x-router.conf" <<EOF
connectionTimeout = 5
streams {
  mesh {
    dir = "both"
    urls = [ ${others[0]}, ${others[1]} ]
  }
}
EOF
done

start_relay() { # node
  local x=$1
  ip netns exec "$R-$x" "$W" --config "$T/$x.conf" relay >>"$T/$x-relay.log" 2>&1 &
  RELAY[$x]=$!
  for _ in $(seq 1 100); do
    nsx "$R-$x" curl -s -o /dev/null "http://${IP[$x]}:7777/" 2>/dev/null && return 0
    kill -0 "${RELAY[$x]}" 2>/dev/null || { tail -5 "$T/$x-relay.log" >&2; die "relay ${UP[$x]} exited"; }
    sleep 0.1
  done
  die "relay ${UP[$x]} did not answer on ${IP[$x]}:7777 within 10 s"
}
start_router() { # node
  local x=$1
  ip netns exec "$R-$x" "$W" --config "$T/$x.conf" router "$T/$x-router.conf" >>"$T/$x-router.log" 2>&1 &
  ROUTER[$x]=$!
}
db() { "$W" --config "$T/$1.conf" "${@:2}"; }
count() { db "$1" scan --count '{}' 2>/dev/null || echo -1; }
digest() { db "$1" export -q 2>/dev/null | sort | sha256sum | cut -c1-16; }

# ---- events --------------------------------------------------------------------------
# Distinct, consistent events: no expiring ones (a relay refuses expired events), and the
# replaced or deleted ones dropped by one import + export, so every line must stay stored.
"$W" gen --count $(( EVENTS + EVENTS / 5 + 100 )) --seed 18 --start $(( $(date +%s) - 86400 )) --span 86000 2>/dev/null \
  | grep -v '"expiration"' | "$W" --set "db=$T/scratch" --set dbParams.mapsize=4294967296 import 2>/dev/null
"$W" --set "db=$T/scratch" --set dbParams.mapsize=4294967296 export 2>/dev/null | head -n "$EVENTS" > "$T/events.jsonl"
rm -rf "$T/scratch"
EVENTS=$(wc -l < "$T/events.jsonl")
PHASES=(baseline a1 a2 b c)
per=$(( (EVENTS + ${#PHASES[@]} * 3 - 1) / (${#PHASES[@]} * 3) ))
mkdir -p "$T/w"
split -l "$per" -d -a 2 "$T/events.jsonl" "$T/w/part-"
i=0
for p in "${PHASES[@]}"; do
  for x in "${NODES[@]}"; do
    mkdir -p "$T/w/$p-$x"
    f=$(printf '%s/w/part-%02d' "$T" "$i")
    [ -f "$f" ] && split -l "$CHUNK" -d -a 4 "$f" "$T/w/$p-$x/chunk-"
    i=$(( i + 1 ))
  done
done
: > "$T/acked"

for x in "${NODES[@]}"; do start_relay "$x"; done
for x in "${NODES[@]}"; do start_router "$x"; done
for x in "${NODES[@]}"; do
  for _ in $(seq 1 100); do
    [ "$(grep -c ': connected' "$T/$x-router.log" 2>/dev/null)" -ge 2 ] && break
    sleep 0.1
  done
  [ "$(grep -c ': connected' "$T/$x-router.log")" -ge 2 ] || die "router ${UP[$x]} did not connect to both peers"
done
sleep 0.5 # each link's live REQ in place before the first event
echo "cluster: 3 relays and 3 routers in namespaces $R-{a,b,c}, $EVENTS events in chunks of $CHUNK, loss+delay by $IMPAIR, $(nproc) cores"

# ---- writers -------------------------------------------------------------------------
# One writer per relay: uploads its chunks in order from namespace NS; a chunk whose
# upload reports every line accepted goes to $T/acked. A failed upload (the relay is
# down, the connection dropped) is retried for up to 60 s, then given up.
writer() { # ns url dir
  local ns=$1 url=$2 dir=$3 f n out acc ref t0
  for f in "$dir"/chunk-*; do
    [ -f "$f" ] || continue
    n=$(wc -l < "$f")
    t0=$(ms)
    while :; do
      if out=$(ip netns exec "$ns" timeout 90 "$W" upload -q "$url" < "$f" 2>&1 >/dev/null); then
        acc=$(grep -o '([0-9]* accepted' <<<"$out" | tr -dc 0-9)
        ref=$(grep -o '[0-9]* refused' <<<"$out" | tr -dc 0-9)
        if [ "${acc:-0}" = "$n" ] && [ "${ref:-1}" = 0 ]; then
          echo "$f" >> "$T/acked"
        else
          echo "$f: not all accepted: $out" >> "$T/refused"
        fi
        break
      fi
      echo "$(date +%T.%N | cut -c1-12) $f: upload failed, retrying: $(tail -1 <<<"$out")" >> "$T/upload-retries"
      [ $(( $(ms) - t0 )) -gt 60000 ] && { echo "$f: gave up" >> "$T/refused"; break; }
      sleep 0.3
    done
  done
}
WPIDS=()
start_writers() { # phase [ns for A's writer]
  local p=$1 nsa=${2:-$NET}
  WPIDS=()
  for x in "${NODES[@]}"; do
    local ns=$NET
    [ "$x" = a ] && ns=$nsa
    writer "$ns" "ws://${IP[$x]}:7777" "$T/w/$p-$x" &
    WPIDS+=($!); bg+=($!)
  done
}
wait_writers() { for p in "${WPIDS[@]}"; do wait "$p" || true; done; }
acked_in() { cnt "/w/$1-$2/" "$T/acked"; }
wait_acked() { # phase node n: until that writer has n chunks acknowledged (bounded)
  for _ in $(seq 1 300); do
    [ "$(acked_in "$1" "$2")" -ge "$3" ] && return 0
    sleep 0.05
  done
}
written() { # phase: events acknowledged in that phase
  local n=0 f
  while read -r f; do n=$(( n + $(wc -l < "$f") )); done < <(grep "/w/$1-" "$T/acked" || true)
  echo "$n"
}

# ---- convergence ---------------------------------------------------------------------
# Waits (bounded) until the three exports are identical; prints the time from $1 (ms) and
# how many events each DB still lacked then. Then a NIP-77 reconcile between each pair.
CONV_MS=0
converge() { # from_ms label
  local from=$1 label=$2 ca cb cc behind da db_ dc t
  ca=$(count a); cb=$(count b); cc=$(count c)
  # Counts are cheap and exports are not: the clock stops at the poll whose counts were
  # equal, once the exports confirm it. The writers are done, so a DB can only grow towards
  # the union: equal counts then already meant equal contents.
  local seen
  while :; do
    local na nb nc
    seen=$(ms)
    na=$(count a); nb=$(count b); nc=$(count c)
    if [ "$na" = "$nb" ] && [ "$nb" = "$nc" ] && [ "$na" -ge 0 ]; then
      da=$(digest a); db_=$(digest b); dc=$(digest c)
      [ "$da" = "$db_" ] && [ "$db_" = "$dc" ] && break
    fi
    t=$(( $(ms) - from ))
    if [ "$t" -gt $(( TIMEOUT * 1000 )) ]; then
      echo "$label: NOT converged after $TIMEOUT s: A $na, B $nb, C $nc events" >&2
      for x in "${NODES[@]}"; do echo "--- router ${UP[$x]}" >&2; tail -8 "$T/$x-router.log" >&2; done
      report 1
    fi
    sleep 0.1
  done
  CONV_MS=$(( seen - from ))
  behind=$(( 3 * na - ca - cb - cc ))
  BEHIND=$behind
  local pair x y out n
  for pair in ab ac bc; do
    x=${pair:0:1}; y=${pair:1:1}
    if ! out=$(nsx "$R-$x" "$W" --config "$T/$x.conf" sync -q --print-missing "ws://${IP[$y]}:7777" 2>"$T/sync.err"); then
      cat "$T/sync.err" >&2; die "$label: NIP-77 reconcile ${UP[$x]}-${UP[$y]} failed"
    fi
    n=$(grep -c . <<<"$out" || true)
    [ "$n" = 0 ] || { echo "$label: NIP-77 ${UP[$x]}-${UP[$y]}: $n differences" >&2; head -5 <<<"$out" >&2; report 1; }
  done
}

lost() { # acknowledged events missing from at least one DB
  local f
  while read -r f; do cat "$f"; done < "$T/acked" | cut -c8-71 | sort -u > "$T/acked-ids"
  for x in "${NODES[@]}"; do db "$x" export -q 2>/dev/null | cut -c8-71 | sort -u > "$T/$x-ids"; done
  comm -12 "$T/a-ids" "$T/b-ids" | comm -12 - "$T/c-ids" > "$T/everywhere"
  comm -23 "$T/acked-ids" "$T/everywhere" | wc -l
}

FAULTS=0
report() { # status: the summary and the last line
  local l acked
  l=$(lost); acked=$(wc -l < "$T/acked-ids")
  if [ -s "$T/refused" ]; then echo "not acknowledged:" >&2; cat "$T/refused" >&2; fi
  echo "cluster: $(cnt . "$T/upload-retries") uploads retried after a failure; DBs hold $(count a) / $(count b) / $(count c) events"
  if [ "$1" = 0 ] && [ "$l" = 0 ]; then
    echo "cluster: 3 relays converged after $FAULTS faults, $acked events, lost 0"
    exit 0
  fi
  echo "cluster: 3 relays NOT converged after $FAULTS faults, $acked events, lost $l"
  exit 1
}

line() { # label events_in_phase phase_ms conv_ms behind extra
  local caught="nothing was missing any more"
  [ "$5" -gt 0 ] && caught="$5 copies were still missing then"
  [ "$5" -ge 100 ] && caught="$caught ($(rate "$5" "$4") events/s caught up)"
  echo "$1: $2 events acknowledged in $(secs "$3") s$6; converged $(secs "$4") s after the heal; $caught; NIP-77 A-B A-C B-C: no difference"
}

# ---- baseline ------------------------------------------------------------------------
t0=$(ms)
start_writers baseline
wait_writers
t1=$(ms)
converge "$t1" baseline
n=$(written baseline)
echo "baseline: $n events acknowledged in $(secs $(( t1 - t0 ))) s, every copy in place $(secs $(( t1 - t0 + CONV_MS ))) s after the first write: $(rate $(( 2 * n )) $(( t1 - t0 + CONV_MS ))) events/s relayed ($(( 2 * n )) copies); converged $(secs "$CONV_MS") s after the last write; NIP-77 A-B A-C B-C: no difference"

# ---- a1: A cut off -------------------------------------------------------------------
t0=$(ms)
ip -n "$NET" link set pa down
start_writers a1 "$R-a"
wait_writers
while [ $(( $(ms) - t0 )) -lt $(( CUT_SECONDS * 1000 )) ]; do sleep 0.1; done
t1=$(ms)
ip -n "$NET" link set pa up
converge "$t1" a1
FAULTS=$(( FAULTS + 1 ))
line "a1 link down" "$(written a1)" $(( t1 - t0 )) "$CONV_MS" "$BEHIND" " with A cut off for $(secs $(( t1 - t0 ))) s"

# ---- a2: loss + delay on A's link ----------------------------------------------------
if [ "$IMPAIR" != none ]; then
  t0=$(ms)
  if [ "$IMPAIR" = netem ]; then
    tc -n "$R-a" qdisc add dev eth0 root netem loss 30% delay 200ms
    tc -n "$NET" qdisc add dev pa root netem loss 30% delay 200ms
  else
    ip netns exec "$R-a" python3 "$T/nfq-impair.py" 7 0.30 0.200 > "$T/nfq.log" 2>&1 &
    nfq=$!; bg+=($nfq)
    sleep 0.3
    kill -0 "$nfq" 2>/dev/null || { cat "$T/nfq.log" >&2; die "the NFQUEUE helper did not start"; }
    nsx "$R-a" "$IPT" -A INPUT -i eth0 -j NFQUEUE --queue-num 7 --queue-bypass
    nsx "$R-a" "$IPT" -A OUTPUT -o eth0 -j NFQUEUE --queue-num 7 --queue-bypass
  fi
  start_writers a2 "$R-a"
  wait_writers
  while [ $(( $(ms) - t0 )) -lt $(( IMPAIR_SECONDS * 1000 )) ]; do sleep 0.1; done
  t1=$(ms)
  if [ "$IMPAIR" = netem ]; then
    tc -n "$R-a" qdisc del dev eth0 root
    tc -n "$NET" qdisc del dev pa root
  else
    nsx "$R-a" "$IPT" -F INPUT
    nsx "$R-a" "$IPT" -F OUTPUT
    kill "$nfq" 2>/dev/null || true
  fi
  converge "$t1" a2
  FAULTS=$(( FAULTS + 1 ))
  line "a2 30% loss + 200 ms ($IMPAIR)" "$(written a2)" $(( t1 - t0 )) "$CONV_MS" "$BEHIND" " with A's link impaired for $(secs $(( t1 - t0 ))) s"
else
  echo "a2 loss + delay: skipped (no netem, no iptables NFQUEUE)"
fi

# ---- b, c: a relay, then a router, killed mid-write --------------------------------
# kill_and_restart PHASE NODE PIDS START-FUNCTION LABEL: kill -9 the process (from the
# associative array PIDS) while writers upload to NODE, keep it down for DOWN_SECONDS,
# start it again, converge.
kill_and_restart() {
  local phase=$1 node=$2 starter=$4 label=$5 t0 tk tr t1 extra pid
  local -n pids=$3
  t0=$(ms)
  start_writers "$node"
  wait_acked "$node" "$node" 1
  pid=${pids[$node]}
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  tk=$(ms)
  sleep "$DOWN_SECONDS"
  "$starter" "$node"
  tr=$(ms)
  wait_writers
  t1=$(ms)
  converge "$t1" "$phase"
  FAULTS=$(( FAULTS + 1 ))
  extra=" ($label killed after $(secs $(( tk - t0 ))) s, back $(secs $(( tr - tk ))) s later"
  [ "$phase" = b ] && extra+=", $(cnt /w/b-b/ "$T/upload-retries") uploads to B retried"
  line "$phase $label kill -9" "$(written "$phase")" $(( t1 - t0 )) "$CONV_MS" "$BEHIND" "$extra)"
}
kill_and_restart b b RELAY start_relay "relay B"
kill_and_restart c c ROUTER start_router "router C"

report 0
