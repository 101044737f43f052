#!/usr/bin/env bash
# wsk against Node's ws library, both ways:
# - the ws client against `wsk serve --echo`, once per event-loop backend;
# - `wsk connect` against a ws server: piped lines, --binary, --subprotocol,
#   --header, and --echo (text and binary come back unchanged).
source "$(dirname "$0")/lib.sh"

if [[ ! -d $PEERS/node_modules/ws ]]; then
    fail "tests/peers/node_modules is missing: run scripts/deps.sh test (npm ci in tests/peers)"
    finish
fi

CASES=(text binary empty-text empty-binary big-binary big-text fragmented-text
    fragmented-binary ping many close)

for backend in epoll poll select io_uring; do
    echo "== node ws client -> wsk serve --echo --backend $backend"
    start_server --echo --backend "$backend" --max-message 4194304 || continue
    for c in "${CASES[@]}"; do
        check "$backend: $c" "$NODE" "$PEERS/node_client.mjs" "$WS_URL" "$c"
    done
    server_alive "$backend: server still running after all cases"
    stop_server
    check "$backend: server exits 0 on SIGTERM" test "$STOP_STATUS" -eq 0
done

echo "== wsk connect -> node ws server"
if start_listener "$NODE" "$PEERS/node_echo_server.mjs" --subprotocol chat.v2 --subprotocol superchat; then
    NODE_URL=ws://127.0.0.1:$LISTENER_PORT
    NODE_OUT=$LISTENER_OUT
    check "connect: piped lines come back" connect_expect 'a\nb\n' 'a\nb\n' "$NODE_URL/"
    check "connect: 1000 lines in, 1000 lines out, in order, before the close" \
        connect_expect "$(seq 1 1000 | sed 's/$/\\n/' | tr -d '\n')" \
        "$(seq 1 1000 | sed 's/$/\\n/' | tr -d '\n')" "$NODE_URL/"
    check "connect: lines are sent as text without their newline" \
        connect_expect 'héllo\nlast\n' 'text 6 héllo\ntext 4 last\n' "$NODE_URL/describe"
    check "connect --binary: lines go as binary frames" \
        connect_expect 'abc\n' 'binary 3 616263\n' --binary "$NODE_URL/describe"
    check "connect --subprotocol: the server's pick among those offered" \
        connect_expect '' 'chat.v2\n' --subprotocol chat.v2 "$NODE_URL/subprotocol"
    check "connect --header: the header reaches the server" \
        connect_expect '' 'from node test\n' --header 'X-Wsk-Test: from node test' \
        "$NODE_URL/header/X-Wsk-Test"
    check "connect --echo: exits 0 when the server closes" \
        "$WSK_BIN" connect --echo "$NODE_URL/burst" <<<'ignored stdin line'
    check "connect --echo: text and binary (incl. 64 KiB) came back unchanged, and nothing else" \
        wait_for_line "$NODE_OUT" '^burst: ok' 12
    grep '^burst' "$NODE_OUT" | sed 's/^/    server: /'
fi

finish
