#!/usr/bin/env bash
# RFC 6455 error handling of wsk serve, with hand-made frames from a plain
# socket: each malformed input gets a close frame with the right code (1002
# protocol error, 1007 invalid UTF-8, 1009 too big), the server then closes
# TCP, and another connection on the same server keeps echoing. A valid close
# is answered with the same code.
source "$(dirname "$0")/lib.sh"

mapfile -t EDGES < <("$PY" "$PEERS/raw_client.py" edge-list)
((${#EDGES[@]} > 10)) || fail "raw_client.py edge-list listed only ${#EDGES[@]} cases"

for backend in epoll poll select io_uring; do
    echo "== wsk serve --echo --max-message 1024 --backend $backend"
    start_server --echo --max-message 1024 --backend "$backend" || continue
    for edge in "${EDGES[@]}"; do
        check "$backend: $edge" "$PY" "$PEERS/raw_client.py" edge "$WS_URL" "$edge"
    done
    check "$backend: a 1024-byte message (at the limit) is still echoed" \
        "$PY" "$PEERS/raw_client.py" echo "$WS_URL" 1024
    server_alive "$backend: server still running after all edge cases"
    stop_server
    check "$backend: server exits 0 on SIGTERM" test "$STOP_STATUS" -eq 0
done

finish
