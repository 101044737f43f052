#!/usr/bin/env bash
# System calls the server makes per message (per delivery in fan-out), counted
# by the kernel's raw_syscalls:sys_enter tracepoint over a whole `wsk bench`
# run (perf stat -p), for wsk on epoll, wsk on io_uring and, when one was
# built there, bench/uws/uws_echo (this script never builds it).
#
#   bash bench/syscalls.sh [BUILD_DIR]     (default build/gcc)
#
# Scenarios as in bench/run.sh: (a) echo, 100 connections, 16 B, 1 in
# flight; (b) the same with 32 in flight; (f) fan-out, 1 sender at 100 msg/s
# to 1,000 receivers. 3 seconds each, server on CPU 0, load on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/gcc}
wsk=$build/wsk
[[ -x $wsk ]] || { echo "syscalls.sh: no $wsk (build it first)" >&2; exit 2; }
command -v perf >/dev/null || { echo "syscalls.sh: perf is missing (linux-perf)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
ulimit -n 4096 2>/dev/null || true
pin0=() pin1=()
if (($(nproc) >= 2)); then pin0=(taskset -c 0) pin1=(taskset -c 1); fi

# measure SERVER SCENARIO: prints one table row
measure() {
    local server=$1 sc=$2 mode=echo cmd=() args=() key=messages
    case $sc in
    a) args=(-c 100 -w 1 -s 16) ;;
    b) args=(-c 100 -w 32 -s 16) ;;
    f) mode=broadcast args=(--mode fanout -c 1000 --rate 100) key=deliveries ;;
    esac
    case $server in
    wsk) cmd=("$wsk" serve "--$mode" --backend epoll --listen 127.0.0.1:0) ;;
    wsku) cmd=("$wsk" serve "--$mode" --backend io_uring --listen 127.0.0.1:0) ;;
    uws)
        [[ -x bench/uws/uws_echo ]] || return 0
        cmd=(bench/uws/uws_echo 0)
        [[ $mode == broadcast ]] && cmd+=(--broadcast) ;;
    esac
    "${pin0[@]}" "${cmd[@]}" >"$tmp/out" 2>&1 &
    local pid=$! i port=
    for ((i = 0; i < 100; i++)); do
        port=$(sed -n 's/.*listening on \(https\{0,1\}:\/\/[^ ]*:\)\{0,1\}\([0-9][0-9]*\).*/\2/p' \
            "$tmp/out" | head -1)
        [[ -n $port ]] && break
        sleep 0.1
    done
    [[ -n $port ]] || { echo "syscalls.sh: $server did not start" >&2; kill "$pid"; return 0; }
    perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -o "$tmp/perf" &
    local perf_pid=$!
    sleep 0.2
    "${pin1[@]}" timeout 60 "$wsk" bench "ws://127.0.0.1:$port/" "${args[@]}" -d 3 -q --json \
        >"$tmp/json" || true
    kill -INT "$perf_pid"
    wait "$perf_pid" 2>/dev/null || true
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local calls count
    calls=$(awk -F, '/raw_syscalls:sys_enter/ {print $1}' "$tmp/perf")
    count=$(sed -n "s/.*\"$key\":\([0-9]*\).*/\1/p" "$tmp/json")
    awk -v s="$sc" -v n="$server" -v c="$calls" -v m="$count" \
        'BEGIN { printf "| %s | %s | %d | %d | %.3f |\n", s, n, c, m, m ? c / m : 0 }'
}

echo "| scenario | server | system calls | messages or deliveries | per message |"
echo "|---|---|---:|---:|---:|"
for sc in a b f; do
    for server in wsk wsku uws; do
        measure "$server" "$sc"
    done
done
