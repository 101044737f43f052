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

finish
