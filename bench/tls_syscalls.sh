#!/usr/bin/env bash
# System calls a wss:// echo server makes per large message, counted by
# strace -c (repeatable whatever else the machine is doing, unlike time).
#
#   bash bench/tls_syscalls.sh [WSK_BIN] [COUNT] [SIZE]
#
# Defaults: build/gcc/wsk, 300 round trips of 65536 random bytes from one
# Python websockets client (Debian's python3-websockets, compression off),
# each echo checked byte for byte. Prints the server's recvfrom, sendto and
# epoll_wait calls, in total and per message. Loopback only; the server is a
# self-signed wsk serve on port 0, stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/gcc/wsk}
count=${2:-300}
size=${3:-65536}
command -v strace >/dev/null || { echo "tls_syscalls.sh: strace is missing" >&2; exit 1; }
tmp=$(mktemp -d)
pid=
trap '[[ -n $pid ]] && pkill -INT -P "$pid"; rm -rf "$tmp"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -keyout "$tmp/k.pem" -out "$tmp/c.pem" -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
strace -c -f -o "$tmp/strace" -e trace=recvfrom,sendto,epoll_wait \
    "$bin" serve --echo --listen 127.0.0.1:0 --tls-cert "$tmp/c.pem" --tls-key "$tmp/k.pem" \
    --max-message 16M >"$tmp/out" 2>"$tmp/err" &
pid=$!
for ((i = 0; i < 200; i++)); do grep -q listening "$tmp/out" && break; sleep 0.05; done
port=$(grep -o '127\.0\.0\.1:[0-9]*' "$tmp/out" | head -1 | cut -d: -f2)
[[ -n $port ]] || { echo "the server did not start:" >&2; cat "$tmp/err" >&2; exit 1; }
/usr/bin/python3 - "wss://127.0.0.1:$port/" "$count" "$size" "$tmp/c.pem" <<'PY'
import asyncio, os, ssl, sys, websockets
async def main(url, n, size, ca):
    ctx = ssl.create_default_context(cafile=ca)
    msg = os.urandom(size)
    async with websockets.connect(url, ssl=ctx, max_size=None, compression=None) as ws:
        for _ in range(n):
            await ws.send(msg)
            assert await ws.recv() == msg
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
PY
# SIGINT to the server itself: strace would detach and leave it running.
kill -INT $(pgrep -P "$pid") 2>/dev/null || true
wait "$pid" 2>/dev/null || true
pid=
echo "$bin: $count x $size B wss echo"
awk -v n="$count" '$NF ~ /^(recvfrom|sendto|epoll_wait)$/ {
    calls = $4; printf "  %-10s %6d calls, %5.2f per message\n", $NF, calls, calls / n }' \
    "$tmp/strace"
