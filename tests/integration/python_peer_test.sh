#!/usr/bin/env bash
# wsk against Python's websockets library, both ways:
# - the websockets client against `wsk serve --echo`, once per event-loop
#   backend: text, binary, empty messages, 1 MiB messages byte-exact,
#   fragmented messages, ping/pong, and the close handshake (1000);
# - `wsk connect` against a websockets server: piped lines come back, --binary
#   sends binary frames, --subprotocol is negotiated, --header reaches the
#   server, --echo sends back what the server sends.
source "$(dirname "$0")/lib.sh"

CASES=(text binary empty-text empty-binary big-binary big-text fragmented-text
    fragmented-binary ping many close)

for backend in epoll poll select io_uring; do
    echo "== python websockets client -> wsk serve --echo --backend $backend"
    start_server --echo --backend "$backend" --max-message 4194304 || continue
    for c in "${CASES[@]}"; do
        check "$backend: $c" "$PY" "$PEERS/py_client.py" "$WS_URL" "$c"
    done
    server_alive "$backend: server still running after all cases"
    stop_server
    check "$backend: server exits 0 on SIGTERM" test "$STOP_STATUS" -eq 0
done

echo "== wsk connect -> python websockets server"
if start_listener "$PY" "$PEERS/py_echo_server.py" --subprotocol chat.v2 --subprotocol superchat; then
    PY_URL=ws://127.0.0.1:$LISTENER_PORT
    PY_OUT=$LISTENER_OUT
    check "connect: piped lines come back" connect_expect 'a\nb\n' 'a\nb\n' "$PY_URL/"
    check "connect: lines are sent as text without their newline" \
        connect_expect 'héllo\n\nlast\n' 'text 6 héllo\ntext 0 \ntext 4 last\n' "$PY_URL/describe"
    check "connect: a last line without newline is sent too" \
        connect_expect 'one\ntwo' 'one\ntwo\n' "$PY_URL/"
    check "connect --binary: lines go as binary frames" \
        connect_expect 'abc\nxyz\n' 'binary 3 616263\nbinary 3 78797a\n' --binary "$PY_URL/describe"
    check "connect --binary: binary echoes are printed as lines" \
        connect_expect 'abc\n' 'abc\n' --binary "$PY_URL/"
    check "connect --subprotocol: the server's pick among those offered" \
        connect_expect '' 'superchat\n' --subprotocol nope --subprotocol superchat "$PY_URL/subprotocol"
    check "connect without --subprotocol offers none" \
        connect_expect '' '<none>\n' "$PY_URL/subprotocol"
    check "connect --header: the header reaches the server" \
        connect_expect '' 'hello there\n' --header 'X-Wsk-Test: hello there' "$PY_URL/header/X-Wsk-Test"
    check "connect --header: two headers both arrive" \
        connect_expect '' 'second\n' --header 'X-One: first' --header 'X-Two: second' "$PY_URL/header/X-Two"
    # stdin has a line that --echo must not send.
    check "connect --echo: exits 0 when the server closes" \
        "$WSK_BIN" connect --echo "$PY_URL/burst" <<<'ignored stdin line'
    check "connect --echo: the server got its 3 messages back unchanged, and nothing else" \
        wait_for_line "$PY_OUT" '^burst: ok' 10
    grep '^burst' "$PY_OUT" | sed 's/^/    server: /'
fi

finish
