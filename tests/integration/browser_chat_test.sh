#!/usr/bin/env bash
# The built-in chat page in a real browser: two headless Chromium pages on
# default `wsk serve` (broadcast mode) see each other's messages in the
# lobby; then a third opens ?room=team/a, the second joins team/a with the
# page's room field, and the two rooms see only their own messages. Leaves
# screenshots in $WSK_BUILD_DIR/artifacts/chat.png and chat-room.png.
source "$(dirname "$0")/lib.sh"

if [[ ! -d $PEERS/node_modules/playwright-core ]]; then
    fail "tests/peers/node_modules is missing: run scripts/deps.sh test (npm ci in tests/peers)"
    finish
fi
if [[ ! -x /usr/bin/chromium ]]; then
    fail "/usr/bin/chromium is missing: run scripts/deps.sh test"
    finish
fi

ARTIFACTS=$WSK_BUILD_DIR/artifacts
mkdir -p "$ARTIFACTS"
rm -f "$ARTIFACTS/chat.png"

if start_server; then
    check "the listening line says broadcast mode" grep -q broadcast <<<"$SERVER_LINE"
    # Chromium keeps its profile in HOME; give it a scratch one.
    CHECK_TIMEOUT=80 CHECK_VERBOSE=1 check "two Chromium pages chat through the built-in page" \
        env HOME="$TEST_TMP" "$NODE" "$PEERS/chat_browser.mjs" \
        "http://127.0.0.1:$PORT/" "$WS_URL" "$ARTIFACTS/chat.png"
    check "screenshot saved ($ARTIFACTS/chat.png)" test -s "$ARTIFACTS/chat.png"
    server_alive "server still running after the browsers left"
    stop_server
    check "server exits 0 on SIGTERM" test "$STOP_STATUS" -eq 0
fi

echo "== two tabs of one browser; plain text; the gap after a lost connection; --path"
if start_server; then
    CHECK_TIMEOUT=80 CHECK_VERBOSE=1 check "two tabs: own names, 'mine' by tab, plain text, favicon" \
        env HOME="$TEST_TMP" "$NODE" "$PEERS/chat_tabs.mjs" tabs "http://127.0.0.1:$PORT/" \
        "$WS_URL" "$ARTIFACTS/chat-tabs.png"
    GAP_PORT=$PORT
    start_bg "$TEST_TMP/gap.out" env HOME="$TEST_TMP" "$NODE" "$PEERS/chat_tabs.mjs" gap \
        "http://127.0.0.1:$PORT/"
    GAP_PID=$BG_PID
    if wait_for_line "$TEST_TMP/gap.out" '^ready$' 40; then
        stop_server
        # The page retries after 1 s, then 2 s: restart on its port.
        if start_server --listen "127.0.0.1:$GAP_PORT"; then
            check "the page shows the gap and carries on" bash -c '
                for ((i = 0; i < 600; i++)); do kill -0 "$0" 2>/dev/null || break; sleep 0.1; done
                cat "$1"; grep -q "^ok: back, with the gap shown" "$1"' "$GAP_PID" "$TEST_TMP/gap.out"
            stop_server
        fi
    else
        fail "the gap page did not connect: $(cat "$TEST_TMP/gap.out")"
        stop_server
    fi
fi
if start_server --path /ws; then
    CHECK_TIMEOUT=60 CHECK_VERBOSE=1 check "--path /ws: the page uses it" \
        env HOME="$TEST_TMP" "$NODE" "$PEERS/chat_tabs.mjs" path "http://127.0.0.1:$PORT/" /ws
    stop_server
fi

finish
