#!/usr/bin/env bash
# wsk connect's exit status when the server ends a normal close handshake in
# ways a polite server would not: it closes before any stdin line could be
# sent, or it resets TCP right after the close frames were exchanged (as the
# Autobahn server does after every case). Both are normal ends: exit 0, no
# line on stderr. tests/peers/raw_server.py plays the server.
# (connect_cli_test.sh checks that a TCP drop without a close frame fails.)
source "$(dirname "$0")/lib.sh"

# connect_clean STDIN EXPECTED ARGS...: connect_expect_stdin (exit 0 and
# exactly EXPECTED on stdout) and nothing at all on stderr.
connect_clean()
{
    connect_expect_stdin "$@" || return 1
    if [[ -s $TEST_TMP/connect.err ]]; then
        echo "expected nothing on stderr; it has:"
        sed 's/^/  /' "$TEST_TMP/connect.err" | head -5
        return 1
    fi
}

start_listener "$PY" "$PEERS/raw_server.py" || {
    fail "start raw_server.py"
    finish
}
RAW_URL=ws://127.0.0.1:$LISTENER_PORT
RAW_OUT=$LISTENER_OUT
# raw_server.py logs one line per connection; each case waits for the Nth.
SEEN=0
server_saw()
{
    SEEN=$((SEEN + 1))
    local n=$SEEN deadline=$((SECONDS + 10))
    until (($(wc -l <"$RAW_OUT") >= n)); do
        if ((SECONDS >= deadline)); then
            echo "raw_server.py logged $(wc -l <"$RAW_OUT") connections, expected $n:"
            cat "$RAW_OUT"
            return 1
        fi
        sleep 0.05
    done
    sed -n "${n}p" "$RAW_OUT"
    sed -n "${n}p" "$RAW_OUT" | grep -Eq "^$1: ok"
}

echo "== the server closes (1000) at once, stdin still has lines to send"
printf 'one\ntwo\nthree\n' >"$TEST_TMP/lines"
check "stdin a file: exit 0, nothing on stdout or stderr" \
    connect_clean "$TEST_TMP/lines" '' "$RAW_URL/close-on-open"
check "the server got a close 1000 back" server_saw /close-on-open
# A pipe is watched by the loop rather than read on a timer: the other path.
mkfifo "$TEST_TMP/lines.fifo"
exec {hold_lines}<>"$TEST_TMP/lines.fifo"
printf 'one\ntwo\nthree\n' >&"$hold_lines"
check "stdin a pipe, held open: exit 0, nothing on stdout or stderr" \
    connect_clean "$TEST_TMP/lines.fifo" '' "$RAW_URL/close-on-open"
exec {hold_lines}>&-
check "the server got a close 1000 back" server_saw /close-on-open

echo "== the server resets TCP right after the close handshake"
check "--echo: exit 0, nothing on stderr" connect_clean /dev/null '' --echo "$RAW_URL/reset-after-close"
check "the server got its message back, then a close 1000" server_saw /reset-after-close
# stdin stays open (a fifo we hold), so only the server's close ends it.
mkfifo "$TEST_TMP/idle.fifo"
exec {hold_idle}<>"$TEST_TMP/idle.fifo"
check "pipe mode, stdin open: exit 0, nothing on stdout or stderr" \
    connect_clean "$TEST_TMP/idle.fifo" '' "$RAW_URL/close-then-reset"
exec {hold_idle}>&-
check "the server got a close 1000 back" server_saw /close-then-reset
check "-v reports a normal close 1000, not an error" bash -c '
    "$1" connect -v --echo "$2" </dev/null 2>&1 >/dev/null | grep -q "Connection closed: 1000"' \
    _ "$WSK_BIN" "$RAW_URL/reset-after-close"
check "the server got its message back, then a close 1000" server_saw /reset-after-close

finish
