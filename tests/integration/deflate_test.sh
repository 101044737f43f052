#!/usr/bin/env bash
# permessage-deflate (RFC 7692) against real peers, both ways:
# - Python websockets and Node ws clients against `wsk serve --echo` (deflate
#   on by default, 12-bit windows): the negotiated Sec-WebSocket-Extensions
#   as the client sees it, and byte-exact echoes of 0 B to 16 MiB, text and
#   binary, compressible and random, for each client offer (defaults, no
#   context takeover either way, 10-bit windows, none); --no-deflate and
#   --deflate-window;
# - broadcast to a mix of compressing and plain clients;
# - `wsk connect` against Python websockets and Node ws servers, with and
#   without --no-deflate;
# - a compression bomb (16 KiB that inflate to 16 MiB) gets 1009 at once and
#   leaves the server's memory alone;
# - Chromium's own permessage-deflate on the built-in chat page.
source "$(dirname "$0")/lib.sh"

HAS_NODE=1
if [[ ! -d $PEERS/node_modules/ws ]]; then
    fail "tests/peers/node_modules is missing: run scripts/deps.sh test (npm ci in tests/peers)"
    HAS_NODE=0
fi

# What wsk serve answers python's and ws's default offer
# ("permessage-deflate; client_max_window_bits") with, by default.
DEFAULT_EXT='permessage-deflate; server_max_window_bits=12; client_max_window_bits=12'

# Whole runs of up to 16 MiB messages take a few seconds each, more under
# sanitizers on a loaded machine.
export CHECK_TIMEOUT=200

echo "== python websockets and node ws clients -> wsk serve --echo --max-message 32M"
if start_server --echo --max-message 32M; then
    check "python, default offer: answered '$DEFAULT_EXT'; 0 B..16 MiB echoed byte-exact" \
        "$PY" "$PEERS/py_deflate.py" client "$WS_URL" --expect-ext "$DEFAULT_EXT"
    check "python, client_no_context_takeover: granted; 0 B..1 MiB byte-exact" \
        "$PY" "$PEERS/py_deflate.py" client "$WS_URL" --variant client-no-ctx --sizes small \
        --expect-ext "permessage-deflate; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12"
    check "python, server_no_context_takeover: granted; 0 B..1 MiB byte-exact" \
        "$PY" "$PEERS/py_deflate.py" client "$WS_URL" --variant server-no-ctx --sizes small \
        --expect-ext "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12"
    check "python, both windows 10 bits: granted; 0 B..1 MiB byte-exact" \
        "$PY" "$PEERS/py_deflate.py" client "$WS_URL" --variant window-10 --sizes small \
        --expect-ext "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"
    check "python, no offer: no extension, nothing compressed" \
        "$PY" "$PEERS/py_deflate.py" client "$WS_URL" --variant off --sizes small --expect-ext none
    if ((HAS_NODE)); then
        check "node ws, perMessageDeflate: true: answered '$DEFAULT_EXT'; 0 B..16 MiB byte-exact" \
            "$NODE" "$PEERS/node_deflate.mjs" "$WS_URL" default "$DEFAULT_EXT" all
        check "node ws, no context takeover both ways, 10-bit windows, threshold 0: granted" \
            "$NODE" "$PEERS/node_deflate.mjs" "$WS_URL" options \
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=10" small
        check "node ws, perMessageDeflate: false: no extension" \
            "$NODE" "$PEERS/node_deflate.mjs" "$WS_URL" off none small
    fi
    server_alive "server still running"
    stop_server
    check "server exits 0 on SIGTERM" test "$STOP_STATUS" -eq 0
fi

echo "== wsk serve --echo --no-deflate"
if start_server --echo --no-deflate; then
    check "python offers deflate: declined, echoes uncompressed" \
        "$PY" "$PEERS/py_deflate.py" client "$WS_URL" --sizes small --expect-ext none
    if ((HAS_NODE)); then
        check "node ws offers deflate: declined" \
            "$NODE" "$PEERS/node_deflate.mjs" "$WS_URL" default none small
    fi
    stop_server
fi

echo "== wsk serve --echo --deflate-window 15"
if start_server --echo --deflate-window 15; then
    check "python default offer: accepted without window limits" \
        "$PY" "$PEERS/py_deflate.py" client "$WS_URL" --sizes small --expect-ext "permessage-deflate"
    check "python asks for 10-bit windows: granted" \
        "$PY" "$PEERS/py_deflate.py" client "$WS_URL" --variant window-10 --sizes small \
        --expect-ext "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"
    stop_server
fi
check "--deflate-window 8: usage error (zlib peers cannot compress with 8)" \
    bash -c "'$WSK_BIN' serve --deflate-window 8 </dev/null >/dev/null 2>&1; test \$? -eq 2"
check "--deflate-window with --no-deflate: usage error" \
    bash -c "'$WSK_BIN' serve --no-deflate --deflate-window 10 </dev/null >/dev/null 2>&1; test \$? -eq 2"

echo "== broadcast to compressing and plain clients"
if start_server; then
    check "3 python clients (deflate, none, deflate without client context takeover): all get all 24 messages" \
        "$PY" "$PEERS/py_deflate.py" broadcast "$WS_URL"
    stop_server
fi

echo "== wsk connect -> python websockets servers"
# connect_roundtrip VARIANT EXPECTED_EXTENSION PATH [CONNECT ARGS...]: a
# py_deflate.py server of VARIANT sends its payloads to `wsk connect --echo`
# and gets them back; it must report success with EXPECTED_EXTENSION.
connect_roundtrip()
{
    local variant=$1 expected=$2 path=$3
    shift 3
    start_listener "$PY" "$PEERS/py_deflate.py" server --variant "$variant" || return 1
    local url=ws://127.0.0.1:$LISTENER_PORT$path pid=$LISTENER_PID out=$LISTENER_OUT
    local rv=0
    timeout -k 5 150 "$WSK_BIN" connect --echo --max-message 32M "$@" "$url" </dev/null || rv=$?
    echo "wsk connect --echo $* $url exited $rv"
    wait_for_line "$out" '^roundtrip: ' 10 || rv=1
    cat "$out"
    stop_pid "$pid"
    ((rv == 0)) || return 1
    local line n
    line=$(grep '^roundtrip: ' "$out" | head -1)
    [[ $line == "roundtrip: ok extensions=$expected compressed="* ]] ||
        { echo "expected 'roundtrip: ok extensions=$expected ...'"; return 1; }
    # How many of wsk's echoes were compressed: some, or none without the extension.
    n=${line##*compressed=}
    n=${n%/*}
    if [[ $expected == '<none>' ]]; then ((n == 0)); else ((n > 0)); fi
}
check "server with websockets' defaults: 0 B..16 MiB sent and echoed back compressed, byte-exact" \
    connect_roundtrip default "$DEFAULT_EXT" /roundtrip
check "server requires client_no_context_takeover: 0 B..1 MiB, byte-exact" \
    connect_roundtrip client-no-ctx "permessage-deflate; client_no_context_takeover" /roundtrip-small
check "server uses server_no_context_takeover: 0 B..1 MiB, byte-exact" \
    connect_roundtrip server-no-ctx "permessage-deflate; server_no_context_takeover" /roundtrip-small
check "server limits both windows to 10 bits: 0 B..1 MiB, byte-exact" \
    connect_roundtrip window-10 "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10" /roundtrip-small
check "server declines compression: 0 B..1 MiB, nothing compressed" \
    connect_roundtrip off "<none>" /roundtrip-small
check "--no-deflate: no offer, nothing compressed" \
    connect_roundtrip default "<none>" /roundtrip-small --no-deflate

if start_listener "$PY" "$PEERS/py_echo_server.py"; then
    PY_URL=ws://127.0.0.1:$LISTENER_PORT
    check "wsk connect offers 'permessage-deflate; client_max_window_bits'" \
        connect_expect '' 'permessage-deflate; client_max_window_bits\n' "$PY_URL/header/Sec-WebSocket-Extensions"
    check "wsk connect: the python server answered with permessage-deflate" \
        connect_expect 'x\n' "$DEFAULT_EXT\nx\n" "$PY_URL/extensions"
    check "wsk connect --no-deflate: no offer" \
        connect_expect '' '<missing Sec-WebSocket-Extensions>\n' --no-deflate "$PY_URL/header/Sec-WebSocket-Extensions"
    connect_verbose()
    {
        printf 'hi\n' | timeout -k 5 20 "$WSK_BIN" connect -v "$PY_URL/" 2>"$TEST_TMP/v.err" >/dev/null
        cat "$TEST_TMP/v.err"
        grep -qF "connected to $PY_URL/ (extensions $DEFAULT_EXT)" "$TEST_TMP/v.err"
    }
    check "wsk connect -v names the negotiated extension" connect_verbose
fi

if ((HAS_NODE)) && start_listener "$NODE" "$PEERS/node_echo_server.mjs" --deflate; then
    NODE_URL=ws://127.0.0.1:$LISTENER_PORT
    echo "== wsk connect -> node ws server (perMessageDeflate, threshold 0)"
    check "wsk connect: the node server answered with permessage-deflate" \
        connect_expect 'y\n' 'permessage-deflate\ny\n' "$NODE_URL/extensions"
    BIG=$(head -c 200000 /dev/zero | tr '\0' 'z')
    check "a 200 KB line goes and comes back compressed, whole" connect_expect "$BIG\nend\n" "$BIG\nend\n" "$NODE_URL/"
    check "--echo: text and binary (64 KiB) come back unchanged" \
        "$WSK_BIN" connect --echo "$NODE_URL/burst" </dev/null
    check "--echo: the node server confirms" wait_for_line "$LISTENER_OUT" '^burst: ok' 12
    check "wsk connect --no-deflate: the node server answered without it" \
        connect_expect '' '<none>\n' --no-deflate "$NODE_URL/extensions"
fi

echo "== wsk connect -> wsk serve, both with their defaults"
if start_server --echo -v; then
    wsk_pair()
    {
        printf 'hello hello hello hello hello hello hello hello hello hello hello hello\n' |
            timeout -k 5 20 "$WSK_BIN" connect -v "$WS_URL" >"$TEST_TMP/pair.out" 2>"$TEST_TMP/pair.err" ||
            return 1
        cat "$TEST_TMP/pair.out" "$TEST_TMP/pair.err"
        grep -qF "(extensions $DEFAULT_EXT)" "$TEST_TMP/pair.err" &&
            grep -q '^hello hello' "$TEST_TMP/pair.out" &&
            wait_for_line "$SERVER_ERR" "open /, extensions $DEFAULT_EXT" 5
    }
    check "negotiated '$DEFAULT_EXT', logged on both sides (-v); the echo is right" wsk_pair
    stop_server
fi

echo "== compression bomb: wsk serve --echo --max-message 1M"
BOMB_MIB=8
is_sanitized && BOMB_MIB=24
if start_server --echo --max-message 1M; then
    for kind in binary text fragmented; do
        check "$kind: 16 KiB inflating to 16 MiB -> close 1009 within 5 s, peak RSS grows < $BOMB_MIB MiB" \
            "$PY" "$PEERS/py_deflate.py" bomb "$WS_URL" "$SERVER_PID" "$BOMB_MIB" --kind "$kind"
    done
    server_alive "server still running after the bombs"
    check "a normal client is served afterwards" "$PY" "$PEERS/py_client.py" "$WS_URL" text big-text
    stop_server
fi

echo "== Chromium's permessage-deflate on the chat page"
if [[ -d $PEERS/node_modules/playwright-core && -x /usr/bin/chromium ]]; then
    if start_server -v; then
        CHECK_TIMEOUT=80 CHECK_VERBOSE=1 check "two Chromium pages chat; each page's WebSocket got '$DEFAULT_EXT'" \
            env HOME="$TEST_TMP" "$NODE" "$PEERS/chat_browser.mjs" \
            "http://127.0.0.1:$PORT/" "$WS_URL" "$TEST_TMP/chat.png" "^${DEFAULT_EXT}\$"
        check "the server logged the extension for every connection (-v)" \
            bash -c "n=\$(grep -c 'open /' '$SERVER_ERR'); m=\$(grep -cE 'open /[^ ,]*, extensions permessage-deflate' '$SERVER_ERR');
                echo \"\$m of \$n connections\"; ((n > 0 && n == m))"
        stop_server
    fi
else
    fail "Chromium or playwright-core is missing: run scripts/deps.sh test"
fi

finish
