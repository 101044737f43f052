#!/usr/bin/env bash
# Fanout across threads and processes (issue 11), side by side in one run:
#
#   wsk 1x1      wsk serve, one thread
#   wsk 1x2      wsk serve --threads 2
#   wsk 2x1      two wsk serve --redis, one thread each, joined by Redis
#   node 2x1     the recipe wsk replaces: two Node `ws` servers joined by
#                Redis pub/sub (node-redis), bench/node_ws_redis.mjs
#
# each with 1,000 and 10,000 receivers in one room and one sender at RATE
# messages/s (default 100), 16-byte messages, `wsk bench --mode fanout`
# (the receivers spread over the processes in turn; every delivery checked
# for loss, duplicates and order). Prints deliveries/s, p50/p99 latency from
# send to delivery, the messages missing, and the CPU seconds of the servers
# and of redis-server.
#
#   bench/fanout.sh [BUILD_DIR]      (default build/gcc; RATE=N, DURATION=S)
#
# Needs redis-server and tests/peers/node_modules (scripts/deps.sh test).
# Everything on 127.0.0.1 with ports from the kernel, each run bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/gcc}
wsk=$build/wsk
rate=${RATE:-100}
duration=${DURATION:-5}
[[ -x $wsk ]] || { echo "missing $wsk: cmake --build $build" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "redis-server is missing (scripts/deps.sh test)" >&2; exit 2; }
[[ -d tests/peers/node_modules/redis ]] || { echo "tests/peers/node_modules/redis is missing (scripts/deps.sh test)" >&2; exit 2; }
py=/usr/bin/python3
tmp=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
hz=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# start NAME CMD...: runs CMD, waits (10 s) for a port on its stdout; sets PID, PORT.
start() {
    local name=$1
    shift
    "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    PID=$!
    pids+=("$PID")
    for _ in $(seq 200); do
        PORT=$(grep -Eo '(127\.0\.0\.1:|listening on )[0-9]+' "$tmp/$name.out" 2>/dev/null |
            head -1 | grep -Eo '[0-9]+$' || true)
        [[ -n $PORT ]] && return 0
        sleep 0.05
    done
    echo "$name did not start: $(cat "$tmp/$name.err")" >&2
    exit 1
}

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$tmp/redis.log" 2>&1 &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 200); do
    [[ $(redis-cli -p "$redis_port" PING 2>/dev/null) == PONG ]] && break
    sleep 0.05
done

# run LABEL N SERVER_PIDS URLS: one wsk bench fanout; prints one line.
run() {
    local label=$1 n=$2 spids=$3 urls=$4 c0=0 r0 c1=0 r1 p out
    for p in $spids; do c0=$((c0 + $(cpu "$p"))); done
    r0=$(cpu "$redis_pid")
    # shellcheck disable=SC2086
    out=$(timeout 180 "$wsk" bench -q --json --mode fanout -c "$n" --rate "$rate" \
        -d "$duration" $urls || true)
    for p in $spids; do c1=$((c1 + $(cpu "$p"))); done
    r1=$(cpu "$redis_pid")
    "$py" - "$label" "$n" "$out" $(((c1 - c0))) $(((r1 - r0))) "$hz" <<'EOF'
import json, sys
label, n, out, cs, cr, hz = sys.argv[1:7]
try:
    j = json.loads(out)
except ValueError:
    print("  %-10s %6s receivers: no result (%s)" % (label, n, out.strip()[:200]))
    sys.exit(0)
lat = j.get("latency_us") or {}
print("  %-10s %6s receivers: %10.0f deliveries/s  p50 %8.1f ms  p99 %8.1f ms  missing %d"
      "  servers %5.2f CPU-s  redis %5.2f CPU-s  %s"
      % (label, n, j.get("deliveries_per_s", 0), lat.get("p50", 0) / 1000,
         lat.get("p99", 0) / 1000, j.get("missing", 0), int(cs) / int(hz), int(cr) / int(hz),
         "ok" if j.get("ok") else "FAILED: %s" % (j.get("reason") or j.get("first_error"))))
EOF
}

stop_all() {
    local p
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}

echo "== fanout: 1 sender at $rate msg/s, 16 B, ${duration} s ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
for n in 1000 10000; do
    start a "$wsk" serve -q --listen 127.0.0.1:0 --no-deflate --max-connections 30000
    run "wsk 1x1" "$n" "$PID" "ws://127.0.0.1:$PORT/"
    stop_all "$PID"

    start a "$wsk" serve -q --threads 2 --listen 127.0.0.1:0 --no-deflate --max-connections 30000
    run "wsk 1x2" "$n" "$PID" "ws://127.0.0.1:$PORT/"
    stop_all "$PID"

    start a "$wsk" serve -q --listen 127.0.0.1:0 --no-deflate --max-connections 30000 \
        --redis "redis://127.0.0.1:$redis_port"
    a_pid=$PID a_port=$PORT
    start b "$wsk" serve -q --listen 127.0.0.1:0 --no-deflate --max-connections 30000 \
        --redis "redis://127.0.0.1:$redis_port"
    run "wsk 2x1" "$n" "$a_pid $PID" "ws://127.0.0.1:$a_port/ ws://127.0.0.1:$PORT/"
    stop_all "$a_pid" "$PID"

    start a node bench/node_ws_redis.mjs "$redis_port"
    a_pid=$PID a_port=$PORT
    start b node bench/node_ws_redis.mjs "$redis_port"
    run "node 2x1" "$n" "$a_pid $PID" "ws://127.0.0.1:$a_port/ ws://127.0.0.1:$PORT/"
    stop_all "$a_pid" "$PID"
done
