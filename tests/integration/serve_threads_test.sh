#!/usr/bin/env bash
# wsk serve --threads: N loops in one process sharing the ports and the
# rooms. Connections land on both threads; every message reaches every
# client of its room once, in order per sender, none across rooms (Python
# websockets clients, tests/peers/cluster_peer.py); POST /publish on
# whichever thread takes it reaches the room on both; the lobby joins
# WebSocket, TCP and UDP peers across threads; SIGTERM closes every thread's
# clients with 1001 and exits 0; bad values are usage errors.
source "$(dirname "$0")/lib.sh"

echo "== options"
for bad in 0 -1 x 257 ''; do
    check "--threads '$bad': a usage error (2)" \
        bash -c '"$1" serve --threads "$2" 2>&1; [[ $? == 2 ]]' _ "$WSK_BIN" "$bad"
done
check "--threads 2 with --exec: a usage error naming both" bash -c '
    out=$("$1" serve --threads 2 --exec cat 2>&1); [[ $? == 2 && $out == *--threads*--exec* ]]' \
    _ "$WSK_BIN"
check "--help documents --threads" bash -c '"$1" serve --help | grep -q -- "--threads N|auto"' \
    _ "$WSK_BIN"
if start_server --threads auto --echo; then
    n=$(nproc)
    if ((n > 1)); then
        check "--threads auto: one per CPU ($n), said in the listening line" \
            grep -q "echo, $n threads)" <<<"$SERVER_LINE"
    else
        check "--threads auto on one CPU: one thread" grep -q '(echo)$' <<<"$SERVER_LINE"
    fi
    stop_server
    check "--threads auto: SIGTERM exits 0" test "$STOP_STATUS" = 0
fi

echo "== two threads: rooms, POST /publish, the lobby"
start_server -v --threads 2 --listen 127.0.0.1:0 --listen tcp://127.0.0.1:0 \
    --listen udp://127.0.0.1:0 || finish
check "the listening line says 2 threads" grep -q 'broadcast, 2 threads)' <<<"$SERVER_LINE"
wait_for_line "$SERVER_OUT" '^wsk serve: listening on udp://' 10
TCP_PORT=$(grep -o 'tcp://127.0.0.1:[0-9]*' "$SERVER_OUT" | grep -o '[0-9]*$')
UDP_PORT=$(grep -o 'udp://127.0.0.1:[0-9]*' "$SERVER_OUT" | grep -o '[0-9]*$')
BASE=ws://127.0.0.1:$PORT

# Connections go where the kernel's hash sends them: open some until both
# threads have had one (each try misses with probability 1/2).
check "connections reach both threads" "$PY" - "$BASE" "$SERVER_ERR" <<'EOF'
import asyncio, re, sys, websockets
async def main():
    for i in range(60):
        async with websockets.connect(sys.argv[1] + "/spread") as ws:
            pass
        log = open(sys.argv[2]).read()
        if re.search(r"\[thread 1\]: \S+: open /spread", log) and \
                re.search(r"\[thread 2\]: \S+: open /spread", log):
            print("both threads after %d connections" % (i + 1))
            return 0
    print("one thread only after 60 connections")
    return 1
sys.exit(asyncio.run(main()))
EOF

CHECK_VERBOSE=1 check "rooms across threads: once each, in order per sender, none across rooms" \
    "$PY" "$PEERS/cluster_peer.py" mesh - "$BASE" "$BASE" 100

# Listeners of /news: enough that both threads have some (checked in the log).
for i in 1 2 3 4 5 6 7 8; do
    start_bg "$TEST_TMP/news$i.out" "$PY" "$PEERS/cluster_peer.py" listen "$BASE/news" 1 20
    eval "NEWS$i=\$BG_PID"
    wait_for_line "$TEST_TMP/news$i.out" '^connected' 10
done
both=$(grep -Eo '\[thread [12]\]: [^ ]+: open /news' "$SERVER_ERR" | cut -d' ' -f2 | sort -u | wc -l)
status=$(curl -s -o "$TEST_TMP/post.out" -w '%{http_code}' --max-time 10 -d 'extra, extra' \
    "http://127.0.0.1:$PORT/publish/news")
check "POST /publish/news: 200, queued to this thread's clients" test "$status" = 200
ok=1
for i in 1 2 3 4 5 6 7 8; do
    pid=NEWS$i
    wait_pid "${!pid}" 20 && ((WAIT_STATUS == 0)) && grep -qx 'text: extra, extra' \
        "$TEST_TMP/news$i.out" || { ok=0; echo "listener $i: $(cat "$TEST_TMP/news$i.out")"; }
done
check "... reaches all 8 listeners of /news, on $both thread(s)" test "$ok" = 1

CHECK_VERBOSE=1 check "the lobby across threads: WebSocket, TCP and UDP peers" \
    "$PY" "$PEERS/raw_peer.py" room "$WS_URL" "$TCP_PORT" "$UDP_PORT"

echo "== SIGHUP"
kill -HUP "$SERVER_PID"
check "SIGHUP without TLS: said once, for every thread" \
    wait_for_line "$SERVER_ERR" 'SIGHUP: nothing to reload' 10
server_alive "... and every thread goes on"
check "... the lobby still spans the threads" \
    "$PY" "$PEERS/raw_peer.py" room "$BASE" "$TCP_PORT" "$UDP_PORT"
check "... one line only" test "$(grep -c 'SIGHUP' "$SERVER_ERR")" = 1

echo "== SIGTERM drains every thread"
for i in 1 2 3 4 5 6; do
    start_bg "$TEST_TMP/hold$i.out" "$PY" "$PEERS/rooms_peer.py" closed "$BASE/hold" 1001
    eval "HOLD$i=\$BG_PID"
done
for ((t = 0; t < 200; t++)); do
    (($(grep -c 'open /hold' "$SERVER_ERR") >= 6)) && break
    sleep 0.05
done
threads=$(grep -Eo '\[thread [12]\]: [^ ]+: open /hold' "$SERVER_ERR" | cut -d' ' -f2 | sort -u |
    wc -l)
stop_server
check "SIGTERM: exits 0" test "$STOP_STATUS" = 0
ok=1
for i in 1 2 3 4 5 6; do
    pid=HOLD$i
    wait_pid "${!pid}" 10 && ((WAIT_STATUS == 0)) || { ok=0; cat "$TEST_TMP/hold$i.out"; }
done
check "... after closing all 6 clients (on $threads thread(s)) with 1001" test "$ok" = 1
check "... and says it stopped" grep -q 'stopped' "$SERVER_ERR"

finish
