#!/usr/bin/env bash
# wsk connect tcp:// and udp:// (article 003's TCP and UDP clients): pipe
# mode lines both ways, --binary bytes untouched, the half-close that keeps
# reading replies after the end of stdin, UDP's --wait, clear errors (refused,
# nothing listening, WebSocket-only options, paths), and a TCP client in the
# same room as a WebSocket client.
source "$(dirname "$0")/lib.sh"

RAW=("$PY" "$PEERS/raw_peer.py")

echo "== against wsk serve --echo over TCP and UDP"
if start_server --echo --listen tcp://127.0.0.1:0 --listen udp://127.0.0.1:0; then
    TCP_URL=$LISTENER_URL
    check "the UDP listener's line is out" wait_for_line "$SERVER_OUT" 'listening on udp://' 10
    UDP_URL=$(grep -o 'udp://127\.0\.0\.1:[0-9]*' "$SERVER_OUT")
    check "tcp://: three lines echoed, the last one without a newline gets one, exit 0" \
        connect_expect 'one\ntwo\nthree' 'one\ntwo\nthree\n' "$TCP_URL"
    check "tcp:// --binary: 300,000 random bytes come back identical" bash -c '
        head -c 300000 /dev/urandom >"$2/rnd" &&
        timeout 20 "$0" connect --binary "$1" <"$2/rnd" >"$2/rnd.out" && cmp "$2/rnd" "$2/rnd.out"' \
        "$WSK_BIN" "$TCP_URL" "$TEST_TMP"
    check "udp://: each line a datagram, each reply a line, exit 0" \
        connect_expect 'ping\n\xc3\xa9t\xc3\xa9\nlast' 'ping\n\xc3\xa9t\xc3\xa9\nlast\n' "$UDP_URL"
    check "udp:// --wait 0.2: exits soon after stdin ends" bash -c '
        t0=$(date +%s%N); printf "x\n" | timeout 10 "$0" connect --wait 0.2 "$1" >/dev/null || exit 1
        ms=$((($(date +%s%N) - t0) / 1000000)); echo "took ${ms} ms"; ((ms < 3000))' \
        "$WSK_BIN" "$UDP_URL"
    stop_server
fi

echo "== the half-close: replies after the end of stdin still arrive"
if start_listener "${RAW[@]}" eof-reply; then
    check "tcp://: the server's answer to our EOF is printed, exit 0" \
        connect_expect 'a\nbb\n' 'got 5 bytes\nbye\n' "$LISTENER_URL"
fi

echo "== a TCP client and a WebSocket client in one room"
if start_server --listen 127.0.0.1:0 --listen tcp://127.0.0.1:0; then
    check "the TCP listener's line is out" wait_for_line "$SERVER_OUT" 'listening on tcp://' 10
    TCP_URL=$(grep -o 'tcp://127\.0\.0\.1:[0-9]*' "$SERVER_OUT")
    start_bg "$TEST_TMP/wsr.out" "${RAW[@]}" ws-reply "$WS_URL" "hello from tcp" "hello from ws"
    check "a WebSocket client is connected" wait_for_line "$TEST_TMP/wsr.out" '^connected' 20
    check "wsk connect tcp:// gets the WebSocket client's answer" bash -c '
        { echo "hello from tcp"; sleep 3; } | timeout 20 "$0" connect "$1" | grep -m1 -qx "hello from ws"' \
        "$WSK_BIN" "$TCP_URL"
    stop_server
fi

echo "== errors"
hold_dead_port
check "tcp:// to a port nobody listens on: one line, exit 1" \
    connect_fails "cannot connect to tcp://127\.0\.0\.1:$DEAD_PORT: Connection refused" \
    "tcp://127.0.0.1:$DEAD_PORT"
check "udp:// to a port nobody listens on: one line, exit 1" bash -c '
    err=$(echo hi | timeout 10 "$0" connect "udp://127.0.0.1:$1" 2>&1 >/dev/null); rv=$?
    echo "exit $rv: $err"; ((rv == 1)) && [[ $err == *"nothing listens there"* ]]' \
    "$WSK_BIN" "$DEAD_PORT"
for opt in "--header=A: b" "--subprotocol=chat" "--origin=http://x" "--no-deflate" "--insecure"; do
    check "${opt%%=*} with tcp:// is refused (exit 2)" bash -c '
        err=$("$0" connect "$1" tcp://127.0.0.1:9 </dev/null 2>&1); rv=$?
        echo "exit $rv: $err"; ((rv == 2)) && [[ $err == *"is for ws:// and wss:// URLs"* ]]' \
        "$WSK_BIN" "$opt"
done
check "a tcp:// URL with a path is refused (exit 2)" bash -c '
    err=$("$0" connect tcp://127.0.0.1:9/x </dev/null 2>&1); rv=$?
    echo "exit $rv: $err"; ((rv == 2)) && [[ $err == *"has no path"* ]]' "$WSK_BIN"
check "a tcp:// URL without a port is refused (exit 2)" bash -c '
    err=$("$0" connect tcp://127.0.0.1 </dev/null 2>&1); rv=$?
    echo "exit $rv: $err"; ((rv == 2))' "$WSK_BIN"
check "--help documents tcp://, udp:// and --wait" bash -c '
    "$0" connect --help | grep -q "tcp://HOST:PORT or udp://HOST:PORT" &&
    "$0" connect --help | grep -q -- "--wait SECONDS"' "$WSK_BIN"

finish
