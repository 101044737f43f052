#!/usr/bin/env bash
# Figures for the bridges and raw sockets of `wsk serve` (issue 10):
#
#   1. bulk bytes through --proxy (WebSocket -> TCP) against a plain TCP relay
#      of the same bytes (`wsk serve --listen tcp:// --proxy`) and against no
#      bridge at all, to one TCP echo backend: MB/s each way, and MB per CPU
#      second of the bridge process (the client and the backend are the same
#      in every case);
#   2. programs started per second by --exec (`echo hi`, a shell builtin),
#      against the same client on `wsk serve --echo` and against the shell
#      loop that only starts the program;
#   3. TCP echo of 16-byte messages (wsk bench --mode raw-echo, 100
#      connections) and UDP echo of 64-byte datagrams (stream_bench, 64 in
#      flight) against rawecho_bench, the no-framing ceiling.
#
#   bench/bridges.sh [BUILD_DIR]     (default build/gcc, a Release build)
#
# Everything runs on 127.0.0.1 with ports from the kernel, each step bounded
# in time; every process started is stopped on exit. Run it on a quiet
# machine: the figures are CPU-bound.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/gcc}
wsk=$build/wsk
for bin in "$wsk" "$build/stream_bench" "$build/rawecho_bench"; do
    [[ -x $bin ]] || { echo "missing $bin: cmake --build $build" >&2; exit 2; }
done
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

# start NAME CMD...: runs CMD with stdout to $tmp/NAME.out and waits (10 s at
# most) for its first line. Sets PID.
start() {
    local name=$1
    shift
    "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    PID=$!
    pids+=("$PID")
    for _ in $(seq 200); do
        [[ -s $tmp/$name.out ]] && return 0
        sleep 0.05
    done
    echo "$name did not start: $(cat "$tmp/$name.err")" >&2
    exit 1
}

# cpu PID: user+system clock ticks so far.
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# median of the arguments.
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "== 1. bulk bytes: 512 MiB each way, 64 KiB chunks, 3 runs each (median)"
start backend "$wsk" serve -q --echo --listen tcp://127.0.0.1:0 --listen udp://127.0.0.1:0 --max-queue 4M
backend_tcp=$(grep -o 'tcp://[0-9.:]*' "$tmp/backend.out")
sleep 0.2
backend_udp=$(grep -o 'udp://[0-9.:]*' "$tmp/backend.out")
start proxy "$wsk" serve -q --listen 127.0.0.1:0 --proxy "$backend_tcp" --max-queue 4M --no-deflate
proxy_pid=$PID
proxy_url=$(grep -o 'ws://[0-9.:]*/' "$tmp/proxy.out")
start relay "$wsk" serve -q --listen tcp://127.0.0.1:0 --proxy "$backend_tcp" --max-queue 4M
relay_pid=$PID
relay_url=$(grep -o 'tcp://[0-9.:]*' "$tmp/relay.out")

# run_stream URL PID: prints "MBPS MB_PER_CPU_S" for one run (PID: the bridge,
# or 0 for none).
run_stream() {
    local url=$1 pid=$2 c0=0 c1=0 out mbps
    ((pid)) && c0=$(cpu "$pid")
    out=$(timeout 120 "$build/stream_bench" "$url" 512)
    ((pid)) && c1=$(cpu "$pid")
    mbps=$(awk '{ print $2 }' <<<"$out")
    if ((pid)); then
        awk -v mb="$mbps" -v b=536870912 -v t=$((c1 - c0)) -v hz="$hz" \
            'BEGIN { printf "%s %.0f\n", mb, (b / 1e6) / (t / hz) }'
    else
        echo "$mbps -"
    fi
}
declare -A mbps per_cpu
for what in proxy relay direct; do
    m=() c=()
    for _ in 1 2 3; do
        case $what in
        proxy) r=$(run_stream "$proxy_url" "$proxy_pid") ;;
        relay) r=$(run_stream "$relay_url" "$relay_pid") ;;
        direct) r=$(run_stream "$backend_tcp" 0) ;;
        esac
        m+=("${r% *}")
        c+=("${r#* }")
    done
    mbps[$what]=$(median "${m[@]}")
    per_cpu[$what]=$(median "${c[@]}")
    printf '  %-38s %8s MB/s   runs: %s   bridge: %s MB per CPU-s\n' \
        "$what$([[ $what == proxy ]] && echo ' (wsk serve --proxy, WebSocket)')$([[ $what == relay ]] && echo ' (plain TCP relay)')$([[ $what == direct ]] && echo ' (no bridge)')" \
        "${mbps[$what]}" "${m[*]}" "${per_cpu[$what]}"
done
awk -v p="${mbps[proxy]}" -v r="${mbps[relay]}" -v d="${mbps[direct]}" -v pc="${per_cpu[proxy]}" -v rc="${per_cpu[relay]}" \
    'BEGIN { printf "  --proxy / plain relay: %.2fx MB/s, %.2fx MB per CPU-s; --proxy / no bridge: %.2fx MB/s\n", p / r, pc / rc, p / d }'

echo "== 2. --exec: programs started per second (300 connections in sequence)"
start exec "$wsk" serve -q --listen 127.0.0.1:0 --exec 'echo hi'
exec_url=$(grep -o 'ws://[0-9.:]*/' "$tmp/exec.out")
start echo "$wsk" serve -q --listen 127.0.0.1:0 --echo
echo_url=$(grep -o 'ws://[0-9.:]*/' "$tmp/echo.out")
seq_rate() {
    local t0 t1
    t0=$(date +%s%N)
    timeout 120 "$py" tests/peers/exec_peer.py seq "$1" 300 >/dev/null
    t1=$(date +%s%N)
    awk -v n=300 -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f", n / (ns / 1e9) }'
}
exec_rate=$(seq_rate "$exec_url")
# The same client against an echo server: it sends nothing, so give it a
# first message with a server that speaks first: --exec is the only one; the
# echo server's rate is measured with a one-message round trip instead.
echo_rate=$(
    "$py" - "$echo_url" <<'EOF'
import asyncio, sys, time, websockets
async def main(url):
    t0 = time.monotonic()
    for _ in range(300):
        async with websockets.connect(url) as ws:
            await ws.send("hi")
            await asyncio.wait_for(ws.recv(), 10)
    print("%.0f" % (300 / (time.monotonic() - t0)))
asyncio.run(main(sys.argv[1]))
EOF
)
t0=$(date +%s%N)
for _ in $(seq 300); do /bin/sh -c 'echo hi' >/dev/null; done
t1=$(date +%s%N)
shell_rate=$(awk -v n=300 -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f", n / (ns / 1e9) }')
printf '  %-38s %8s connections/s\n' "--exec 'echo hi' (a program each)" "$exec_rate"
printf '  %-38s %8s connections/s\n' "--echo, same client (no program)" "$echo_rate"
printf '  %-38s %8s programs/s\n' "shell loop: /bin/sh -c 'echo hi'" "$shell_rate"

echo "== 3. raw echo against rawecho_bench"
start rawecho "$build/rawecho_bench" 0
raw_port=$(grep -o '[0-9]*$' "$tmp/rawecho.out")
raw_pid=$PID
backend_pid=$(pgrep -f -- "--listen tcp://127.0.0.1:0 --listen udp://127.0.0.1:0 --max-queue 4M" | head -1)
tcp_echo() {
    local url=$1 pid=$2 c0 c1 out rate
    c0=$(cpu "$pid")
    out=$(timeout 60 "$wsk" bench --mode raw-echo -q -c 100 -d 5 -s 16 --json "$url")
    c1=$(cpu "$pid")
    rate=$("$py" -c 'import json,sys; print("%.0f" % json.loads(sys.stdin.read())["msg_per_s"])' <<<"$out")
    awk -v r="$rate" -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN { printf "%s %.0f\n", r, r * 5 / (t / hz) }'
}
w=$(tcp_echo "$backend_tcp" "$backend_pid")
r=$(tcp_echo "tcp://127.0.0.1:$raw_port" "$raw_pid")
printf '  %-38s %8s msgs/s   %s msgs per server CPU-s\n' "TCP: wsk serve --echo tcp://" ${w% *} ${w#* }
printf '  %-38s %8s msgs/s   %s msgs per server CPU-s\n' "TCP: rawecho_bench" ${r% *} ${r#* }
udp_rate() { timeout 60 "$build/stream_bench" "$1" 200000 | awk '{ print $2 }'; }
wu=$(udp_rate "$backend_udp")
ru=$(udp_rate "udp://127.0.0.1:$raw_port")
printf '  %-38s %8s datagrams/s\n' "UDP: wsk serve --echo udp://" "$wu"
printf '  %-38s %8s datagrams/s\n' "UDP: rawecho_bench" "$ru"
awk -v a="${w% *}" -v b="${r% *}" -v c="$wu" -v d="$ru" \
    'BEGIN { printf "  wsk / rawecho: TCP %.2fx, UDP %.2fx\n", a / b, c / d }'
