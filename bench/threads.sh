#!/usr/bin/env bash
# How `wsk serve --threads N` scales on this machine (issue 11):
#
#   1. echo: 100 connections, 16 B text, 32 in flight (bench/run.sh's (b));
#   2. connect: TCP connect + handshake + close, 50 at a time ((d));
#   3. fanout: one sender to 1,000 and to 10,000 receivers of one room at
#      RATE messages/s (default 200), every delivery checked;
#   4. how SO_REUSEPORT spread 2,000 connections over the threads.
#
# for N = 1 and 2 (or the thread counts given), each run 5 s, median of 3.
# Prints messages (handshakes, deliveries) per second and per second of the
# server's CPU time, and the ratio of N threads to 1.
#
#   bench/threads.sh [BUILD_DIR [THREADS...]]   (default build/gcc, 1 2)
#
# RATE=N sets the fanout rate; ONLY=echo,connect,fanout,spread a subset.
#
# On 127.0.0.1 with ports from the kernel; the load generator (wsk bench,
# one thread) shares the machine's cores with the server, so on a 2-core
# machine 2 server threads compete with it: read "per server CPU-s" for the
# cost, msgs/s for what this machine delivers. Run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/gcc}
shift || true
threads=("$@")
((${#threads[@]})) || threads=(1 2)
wsk=$build/wsk
[[ -x $wsk ]] || { echo "missing $wsk: cmake --build $build" >&2; exit 2; }
rate=${RATE:-200}
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

cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# serve N ARGS...: starts wsk serve --threads N; sets PID and URL.
serve() {
    local n=$1
    shift
    "$wsk" serve --threads "$n" --listen 127.0.0.1:0 --max-connections 30000 "$@" \
        >"$tmp/serve.out" 2>"$tmp/serve.err" &
    PID=$!
    pids+=("$PID")
    for _ in $(seq 200); do
        URL=$(grep -o 'ws://[0-9.:]*/' "$tmp/serve.out" 2>/dev/null || true)
        [[ -n $URL ]] && return 0
        sleep 0.05
    done
    echo "wsk serve did not start: $(cat "$tmp/serve.err")" >&2
    exit 1
}

stop() {
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
}

# measure KEY BENCH_ARGS...: one run against $URL/$PID; prints "RATE PER_CPU_S".
measure() {
    local key=$1 c0 c1 out r
    shift
    c0=$(cpu "$PID")
    out=$(timeout 120 "$wsk" bench -q --json "$@" "$URL")
    c1=$(cpu "$PID")
    r=$("$py" -c 'import json,sys; print("%.0f" % json.loads(sys.stdin.read())[sys.argv[1]])' \
        "$key" <<<"$out")
    awk -v r="$r" -v t=$((c1 - c0)) -v hz="$hz" -v d=5 \
        'BEGIN { printf "%s %.0f\n", r, t ? r * d / (t / hz) : 0 }'
}

declare -A result
# scenario NAME KEY SERVE_ARGS -- BENCH_ARGS: 3 runs per thread count.
scenario() {
    local name=$1 key=$2 sargs=() bargs=() n i rates cpus r
    shift 2
    while (($#)) && [[ $1 != -- ]]; do sargs+=("$1"); shift; done
    shift
    bargs=("$@")
    for n in "${threads[@]}"; do
        rates=() cpus=()
        for i in 1 2 3; do
            serve "$n" "${sargs[@]}"
            r=$(measure "$key" "${bargs[@]}")
            stop
            rates+=("${r% *}") cpus+=("${r#* }")
        done
        result[$name,$n]="$(median "${rates[@]}") $(median "${cpus[@]}")"
        printf '  %-44s %2s thread(s): %10s /s   %10s per server CPU-s   runs: %s\n' \
            "$name" "$n" ${result[$name,$n]} "${rates[*]}"
    done
    local base=${result[$name,${threads[0]}]}
    for n in "${threads[@]:1}"; do
        awk -v a="${result[$name,$n]% *}" -v b="${base% *}" -v c="${result[$name,$n]#* }" \
            -v d="${base#* }" -v n="$n" -v m="${threads[0]}" -v s="$name" \
            'BEGIN { printf "  %-44s %s vs %s thread(s): %.2fx /s, %.2fx per server CPU-s\n",
                     s, n, m, a / b, c / d }'
    done
}

echo "== wsk serve --threads: ${threads[*]} ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
only=${ONLY:-echo,connect,fanout,spread}
has() { [[ ,$only, == *,$1,* ]]; }
has echo && scenario "echo 100 conn, 16 B, 32 in flight" msg_per_s --echo -- \
    --mode echo -c 100 -s 16 -w 32 -d 5
has connect && scenario "connect + handshake + close, 50 at a time" handshakes_per_s --echo -- \
    --mode connect -c 50 -d 5
has fanout && scenario "fanout 1 -> 1,000 at $rate msg/s" deliveries_per_s --no-deflate -- \
    --mode fanout -c 1000 --rate "$rate" -d 5
has fanout && scenario "fanout 1 -> 10,000 at $rate msg/s" deliveries_per_s --no-deflate -- \
    --mode fanout -c 10000 --rate "$rate" -d 5

has spread && echo "== how SO_REUSEPORT spreads 2,000 connections"
has spread && for n in "${threads[@]:1}"; do
    serve "$n" -v --echo
    timeout 60 "$wsk" bench -q --mode idle -c 2000 -d 1 "$URL" >/dev/null
    stop
    printf '  %s threads: %s\n' "$n" "$(grep -Eo '\[thread [0-9]+\]: [^ ]+: open' "$tmp/serve.err" |
        grep -Eo '[0-9]+\]' | tr -d ']' | sort -n | uniq -c |
        awk '{ printf "thread %s: %s connections  ", $2, $1 }')"
done
