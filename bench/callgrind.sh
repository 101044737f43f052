#!/usr/bin/env bash
# User-space instructions per echoed message and per handshake on the server,
# counted by callgrind (repeatable whatever else the machine is doing).
#
#   bash bench/callgrind.sh [BUILD_DIR]      (default build/gcc, a Release build)
#   WSK_BACKEND=io_uring bash bench/callgrind.sh   the server on another backend
#
# Each figure is a difference of two runs of different lengths, so the
# server's start-up, the connection set-up and the exit cancel out:
#   per message   = (Ir(long) - Ir(short)) / (messages(long) - messages(short))
# Workloads: (a) echo, 100 connections, 16 B text, 1 in flight;
#            (b) echo, 100 connections, 16 B text, 32 in flight;
#            (d) connect + handshake + close, 50 concurrent;
#            (f) fanout: 1 sender at 100 msg/s, 1,000 receivers (per delivery).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/gcc}
wsk=$build/wsk
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is missing" >&2; exit 2; }
[[ -x $wsk ]] || { echo "callgrind.sh: no $wsk (build it first)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

# run NAME MODE DURATION BENCH_ARGS...: prints "<Ir> <count>"
run() {
    local name=$1 mode=$2 dur=$3
    shift 3
    local portfile=$tmp/$name.port out=$tmp/$name.cg
    valgrind --tool=callgrind --callgrind-out-file="$out" -q \
        "$wsk" serve "--${serve:-echo}" --no-deflate --backend "${WSK_BACKEND:-epoll}" \
        --listen 127.0.0.1:0 -q >"$portfile" 2>/dev/null &
    local pid=$!
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q 'listening on' "$portfile" 2>/dev/null && break
        sleep 0.1
    done
    local port
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$portfile" | head -1)
    local json
    json=$(timeout 120 "$wsk" bench "ws://127.0.0.1:$port/" --mode "$mode" -d "$dur" -q --json "$@")
    kill -TERM "$pid"
    wait "$pid" || true
    local ir count
    ir=$(grep -m1 '^summary:' "$out" | awk '{print $2}')
    case $mode in
    echo) count=$(sed -n 's/.*"messages":\([0-9]*\).*/\1/p' <<<"$json") ;;
    connect) count=$(sed -n 's/.*"handshakes":\([0-9]*\).*/\1/p' <<<"$json") ;;
    fanout) count=$(sed -n 's/.*"deliveries":\([0-9]*\).*/\1/p' <<<"$json") ;;
    esac
    echo "$ir $count"
}

per() { # SHORT LONG -> per-unit figure
    read -r ir1 n1 <<<"$1"
    read -r ir2 n2 <<<"$2"
    awk -v a="$ir1" -v b="$ir2" -v x="$n1" -v y="$n2" \
        'BEGIN { if (y - x <= 0) print "?"; else printf "%.0f (%d units)\n", (b - a) / (y - x), y - x }'
}

echo "server backend: ${WSK_BACKEND:-epoll}"
a1=$(run a1 echo 2 -c 100 -w 1 -s 16)
a2=$(run a2 echo 6 -c 100 -w 1 -s 16)
echo "(a) instructions per echoed 16 B message, 1 in flight: $(per "$a1" "$a2")"
b1=$(run b1 echo 2 -c 100 -w 32 -s 16)
b2=$(run b2 echo 6 -c 100 -w 32 -s 16)
echo "(b) instructions per echoed 16 B message: $(per "$b1" "$b2")"
d1=$(run d1 connect 2 -c 50)
d2=$(run d2 connect 6 -c 50)
echo "(d) instructions per handshake: $(per "$d1" "$d2")"
ulimit -n 4096 2>/dev/null || true
f1=$(serve=broadcast run f1 fanout 2 -c 1000 --rate 100)
f2=$(serve=broadcast run f2 fanout 6 -c 1000 --rate 100)
echo "(f) instructions per fanout delivery, 1,000 receivers: $(per "$f1" "$f2")"
