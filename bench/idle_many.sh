#!/usr/bin/env bash
# Holds many idle WebSocket connections on one machine, more than one process
# may open: `wsk serve --reuse-port` processes share one port, and as many
# `wsk bench --mode idle` processes, each from its own source addresses, open
# the connections, hold them, then ping every one.
#
#   bash bench/idle_many.sh [--connections N] [--processes K] [--duration S]
#                           [--wsk PATH]
#
# Prints the connections opened and answered, the servers' peak RSS over
# their RSS before the load, and that per connection. Every process it starts
# is stopped on exit; the load stops by itself (duration, then an outer
# timeout). Traffic stays on 127.0.0.0/8.
#
# Why several processes: the open-file limit is per process. On a machine
# whose hard limit is 20,000 (and that refuses to raise it), 100,000
# connections need at least 6 server processes; the default K is the
# smallest that fits, with 10% headroom for SO_REUSEPORT's uneven spread.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONNS=100000
PROCS=0
DUR=20
WSK=$ROOT/build-bench/wsk

while (($#)); do
    case $1 in
    --connections) CONNS=${2:?}; shift ;;
    --processes) PROCS=${2:?}; shift ;;
    --duration) DUR=${2:?}; shift ;;
    --wsk) WSK=${2:?}; shift ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "idle_many.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done
if [[ ! -x $WSK ]]; then
    cmake -S "$ROOT" -B "$(dirname "$WSK")" -G Ninja -DCMAKE_BUILD_TYPE=Release -DWSK_WERROR=ON \
        >/dev/null
    cmake --build "$(dirname "$WSK")" --target wsk >/dev/null
fi

limit=$(ulimit -Hn)
[[ $limit == unlimited ]] && limit=1048576
ulimit -n "$limit"
per_proc_max=$((limit - 200))
if ((PROCS == 0)); then
    PROCS=$(((CONNS * 11 / 10 + per_proc_max - 1) / per_proc_max))
    ((PROCS < 1)) && PROCS=1
fi
per_bench=$(((CONNS + PROCS - 1) / PROCS))
sources_per_bench=$(((per_bench + 9999) / 10000))

TMP=$(mktemp -d)
PIDS=()
cleanup()
{
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

# wait_port FILE: the port from a "listening on" line, within 10 s.
wait_port()
{
    local i port
    for ((i = 0; i < 200; i++)); do
        port=$(grep -oE 'listening on http://[^ ]*:[0-9]+/' "$1" 2>/dev/null | grep -oE '[0-9]+/$' |
            tr -d /) || true
        [[ -n $port ]] && { echo "$port"; return 0; }
        sleep 0.05
    done
    echo "idle_many.sh: a server did not start: $(cat "$1")" >&2
    return 1
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

SERVE=(serve --echo --no-deflate --reuse-port -q --max-connections "$per_proc_max")
PIN_SERVER=()
PIN_LOAD=()
if command -v taskset >/dev/null && (($(nproc) >= 2)); then
    PIN_SERVER=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
fi

"${PIN_SERVER[@]}" "$WSK" "${SERVE[@]}" --listen 127.0.0.1:0 >"$TMP/s0" 2>&1 &
SERVERS=($!)
PIDS+=($!)
PORT=$(wait_port "$TMP/s0")
for ((i = 1; i < PROCS; i++)); do
    "${PIN_SERVER[@]}" "$WSK" "${SERVE[@]}" --listen "127.0.0.1:$PORT" >"$TMP/s$i" 2>&1 &
    SERVERS+=($!)
    PIDS+=($!)
    wait_port "$TMP/s$i" >/dev/null
done

rss_before=0
for p in "${SERVERS[@]}"; do rss_before=$((rss_before + $(rss_kb "$p"))); done

echo "idle_many: $CONNS connections, $PROCS server and $PROCS load processes" \
    "(open-file limit $limit each), port $PORT, held ${DUR} s" >&2
BENCHES=()
for ((i = 0; i < PROCS; i++)); do
    n=$per_bench
    ((i == PROCS - 1)) && n=$((CONNS - per_bench * (PROCS - 1)))
    timeout -k 5 $((DUR + 120)) "${PIN_LOAD[@]}" "$WSK" bench "ws://127.0.0.1:$PORT/" \
        --mode idle -c "$n" -d "$DUR" --source-base $((i * sources_per_bench)) --json -q \
        >"$TMP/b$i" 2>"$TMP/b$i.err" &
    BENCHES+=($!)
    PIDS+=($!)
done

# Sample while the load runs: peak RSS and connections (open fds) per server.
rss_max=0
conns_max=0
while :; do
    running=0
    for p in "${BENCHES[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
    rss=0
    held=0
    for p in "${SERVERS[@]}"; do
        rss=$((rss + $(rss_kb "$p")))
        held=$((held + $(fds "$p")))
    done
    ((rss > rss_max)) && rss_max=$rss
    ((held > conns_max)) && conns_max=$held
    ((running)) || break
    sleep 1
done
status=0
for p in "${BENCHES[@]}"; do wait "$p" || status=1; done

/usr/bin/python3 - "$TMP" "$PROCS" "$CONNS" "$rss_before" "$rss_max" "$conns_max" "$status" <<'PY'
import json, sys
tmp, procs, conns, rss0, rss1, fds, status = sys.argv[1], *map(int, sys.argv[2:])
opened = answered = 0
for i in range(procs):
    try:
        r = json.load(open(f"{tmp}/b{i}"))
    except (OSError, ValueError):
        print(f"load process {i} printed no result: {open(f'{tmp}/b{i}.err').read().strip()}")
        continue
    opened += r.get("opened", 0)
    answered += r.get("answered", 0)
    if not r.get("ok"):
        print(f"load process {i}: opened {r.get('opened', 0):,}, failed {r.get('open_failed', 0):,},"
              f" errors {r.get('errors')}, first: {r.get('first_error')}")
per = (rss1 - rss0) * 1024 / opened if opened else 0
print(f"connections asked {conns:,}, opened {opened:,}, answered a ping after the hold {answered:,}")
print(f"server processes {procs}: peak open fds {fds:,}, RSS {rss0/1024:.1f} MiB before,"
      f" {rss1/1024:.1f} MiB at peak: {per:.0f} B per connection")
print("ok" if status == 0 and answered == conns else "FAILED")
sys.exit(0 if status == 0 and answered == conns else 1)
PY
