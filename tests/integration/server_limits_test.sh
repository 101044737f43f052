#!/usr/bin/env bash
# wsk serve under load and at its limits: 1000 concurrent clients, a client
# that stops reading, SIGTERM/SIGINT with clients connected, the handshake
# timeout, and --max-connections.
source "$(dirname "$0")/lib.sh"

# Room for 1000 connections in both the server and the client process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null

echo "== 1000 concurrent clients, 10 messages each (--echo)"
if start_server --echo --max-connections 2000; then
    CHECK_TIMEOUT=90 CHECK_VERBOSE=1 check "1000 clients each get exactly their own 10 echoes" \
        "$PY" "$PEERS/py_limits.py" many "$WS_URL" 1000 10
    server_alive "server still running after 1000 clients"
    check "a new client is served after the crowd left" "$PY" "$PEERS/py_client.py" "$WS_URL" text
    stop_server
    check "server exits 0 on SIGTERM" test "$STOP_STATUS" -eq 0
fi

echo "== a client that stops reading (broadcast mode)"
# 200 broadcasts of 256 KiB are 50 MiB: without a per-connection queue limit
# the server would hold all of it for the slow client.
RSS_LIMIT_MIB=40
if is_sanitized; then
    # ASan's quarantine keeps freed memory; bound it and allow for its shadow.
    export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8
    RSS_LIMIT_MIB=48
    echo "(sanitizer build: memory limit ${RSS_LIMIT_MIB} MiB, ASAN_OPTIONS=$ASAN_OPTIONS)"
fi
# slow_reader WINDOW WHAT: one server, one client that never reads, and two
# that do; the sender keeps at most WINDOW broadcasts in flight (0: no limit).
slow_reader()
{
    start_server --max-message 1048576 || return
    CHECK_VERBOSE=1 check "$2: others get all 200 x 256 KiB broadcasts; slow one closed (1008) or capped; memory < $RSS_LIMIT_MIB MiB" \
        "$PY" "$PEERS/py_limits.py" slow-reader "$WS_URL" "$SERVER_PID" 200 262144 "$RSS_LIMIT_MIB" "$1"
    server_alive "$2: server still running after the slow reader"
    stop_server
    check "$2: server exits 0 on SIGTERM" test "$STOP_STATUS" -eq 0
}
slow_reader 2 "paced sender (2 in flight)"
# A burst: the sender writes as fast as the server reads. Clients that keep
# reading must still not be taken for slow ones.
slow_reader 0 "bursting sender"

# shutdown_with SIGNAL CLIENTS: connected clients see 1001, the server exits 0
# within 5 s.
shutdown_with()
{
    local sig=$1 n=$2 out=$TEST_TMP/hold.$1.out
    echo "== SIG$sig with $n clients connected"
    start_server || return
    start_bg "$out" "$PY" "$PEERS/py_limits.py" hold "$WS_URL" "$n"
    local holder=$BG_PID
    if ! check "$n clients connected" wait_for_line "$out" '^ready' 20; then
        return
    fi
    local t0 rv
    t0=$(date +%s%N)
    kill -"$sig" "$SERVER_PID"
    if _wait_gone "$SERVER_PID" 5; then
        wait "$SERVER_PID"
        rv=$?
        untrack_pid "$SERVER_PID"
        pass "SIG$sig: server exited after $((($(date +%s%N) - t0) / 1000000)) ms (limit 5 s)"
        check "SIG$sig: exit status is 0" test "$rv" -eq 0 || echo "    exit status $rv"
    else
        fail "SIG$sig: server still running 5 s later"
        stop_server
    fi
    wait_pid "$holder" 10
    echo "    clients report: $(grep -v '^ready' "$out" | tr '\n' ' ')"
    check "SIG$sig: every client got close code 1001" \
        grep -qx "codes$(printf ' 1001%.0s' $(seq "$n"))" "$out"
}
shutdown_with TERM 3
shutdown_with INT 1

echo "== --handshake-timeout 1"
if start_server --echo --handshake-timeout 1; then
    check "a client that sends nothing is dropped after 1-3 s" \
        "$PY" "$PEERS/raw_client.py" idle "$WS_URL" 0.8 3.5
    check "a client that trickles its header (1 byte/200 ms) is dropped after 1-3 s" \
        "$PY" "$PEERS/raw_client.py" trickle "$WS_URL" 0.8 3.5
    check "an upgraded client idle for 2 s is not dropped" \
        "$PY" "$PEERS/py_client.py" "$WS_URL" linger
    stop_server
fi

echo "== --reuse-port: two servers share one port"
if start_server --echo --reuse-port -v; then
    first_pid=$SERVER_PID first_err=$SERVER_ERR
    if start_server --echo --reuse-port -v --listen "127.0.0.1:$PORT"; then
        second_pid=$SERVER_PID second_err=$SERVER_ERR
        check "200 connections through the shared port all open and answer" \
            "$WSK_BIN" bench "$WS_URL" --mode idle -c 200 -d 1 -q
        check "the kernel gave connections to the first server" grep -q ": open /" "$first_err"
        check "and to the second" grep -q ": open /" "$second_err"
        check "a server without --reuse-port cannot take the port" \
            bash -c 'out=$(timeout 10 "$1" serve --echo --listen "127.0.0.1:$2" 2>&1)
                     [[ $? -eq 1 && $out == *"Address already in use"* ]]' _ "$WSK_BIN" "$PORT"
        stop_server "$second_pid"
    fi
    stop_server "$first_pid"
fi

echo "== --max-connections 2"
if start_server --echo --max-connections 2; then
    CHECK_VERBOSE=1 check "third upgrade gets HTTP 503; a slot frees when a client leaves" \
        "$PY" "$PEERS/py_limits.py" max-conn "$WS_URL"
    server_alive "server still running"
    stop_server
fi

finish
