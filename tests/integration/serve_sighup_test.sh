#!/usr/bin/env bash
# SIGHUP never kills wsk serve. Without TLS there is nothing to reload: the
# server logs that and carries on, and a connection opened before the signal
# still gets its messages back, in broadcast (the default) and echo mode.
# (With TLS, tls_test.sh checks the reload itself.)
source "$(dirname "$0")/lib.sh"

for mode in broadcast echo; do
    echo "== wsk serve --$mode, no TLS: SIGHUP"
    start_server "--$mode" || continue
    HOLD_OUT=$TEST_TMP/hold.$mode.out
    GO=$TEST_TMP/go.$mode
    # A round trip, "waiting", then another round trip on the same
    # connection once $GO exists.
    start_bg "$HOLD_OUT" "$PY" "$PEERS/py_client.py" --wait-file "$GO" "$WS_URL" wait
    HOLDER=$BG_PID
    check "a client is connected and has had its first message back" \
        wait_for_line "$HOLD_OUT" '^waiting' 20
    kill -HUP "$SERVER_PID"
    check "SIGHUP is logged: 'SIGHUP: nothing to reload (no TLS)'" \
        wait_for_line "$SERVER_ERR" '^wsk serve: SIGHUP: nothing to reload \(no TLS\)$' 10
    server_alive "the server is still running after SIGHUP"
    touch "$GO"
    held_on()
    {
        wait_pid "$HOLDER" 30 || return 1
        cat "$HOLD_OUT"
        ((WAIT_STATUS == 0)) && grep -q "echoed text of .*'after waiting" "$HOLD_OUT"
    }
    check "the connection opened before SIGHUP still gets its message back" held_on
    check "a new connection works after SIGHUP" "$PY" "$PEERS/py_client.py" "$WS_URL" text
    check "a second SIGHUP is handled the same way" bash -c '
        kill -HUP "$1" && for _ in $(seq 200); do
            (($(grep -c "SIGHUP: nothing to reload" "$2") >= 2)) && exit 0
            sleep 0.05
        done; exit 1' _ "$SERVER_PID" "$SERVER_ERR"
    server_alive "the server is still running after a second SIGHUP"
    stop_server
    check "then SIGTERM: the server exits 0" test "$STOP_STATUS" -eq 0
done

check "wsk serve --help says SIGHUP without TLS is logged and ignored" \
    bash -c '"$1" serve --help | tr "\n" " " | grep -q "Without TLS there is nothing to reload: SIGHUP is logged and ignored"' _ "$WSK_BIN"

finish
