#!/usr/bin/env bash
# wsk serve --listen tcp:// and udp:// (article 003's TCP and UDP servers):
# the lobby shared by WebSocket clients of "/", TCP and UDP clients; echo
# with back-pressure; line and datagram limits; --idle-timeout;
# --udp-peer-timeout; SIGTERM; the listening lines; options refused without
# a WebSocket listener. The peers are Python sockets and websockets
# (tests/peers/raw_peer.py, rooms_peer.py).
source "$(dirname "$0")/lib.sh"

RAW=("$PY" "$PEERS/raw_peer.py")

# port_of SCHEME: the port of the SCHEME:// listening line in SERVER_LINE or
# SERVER_OUT (the lines after the first).
port_of()
{
    local scheme=$1 line
    for line in "$SERVER_LINE" $(cat "$SERVER_OUT" 2>/dev/null); do
        if [[ $line =~ $scheme://127\.0\.0\.1:([0-9]+) ]]; then
            echo "${BASH_REMATCH[1]}"
            return 0
        fi
    done
    return 1
}

# wait_ports N: waits until N listening lines are out.
wait_ports()
{
    local want=$1 deadline=$((SECONDS + 10))
    until (($(grep -c '^wsk serve: listening on' "$SERVER_OUT" 2>/dev/null) + 1 >= want)); do
        ((SECONDS >= deadline)) && { echo "only $(cat "$SERVER_OUT") after 10 s"; return 1; }
        sleep 0.05
    done
}

echo "== one room, the lobby: WebSocket clients of /, TCP and UDP"
if start_server --listen 127.0.0.1:0 --listen tcp://127.0.0.1:0 --listen udp://127.0.0.1:0; then
    wait_ports 3
    check "three listening lines, in order: http/ws, tcp, udp" bash -c '
        [[ $0 =~ ^wsk\ serve:\ listening\ on\ http://127\.0\.0\.1:[0-9]+/\ \(WebSocket\ ws://.*,\ broadcast\)$ ]] &&
        grep -Eq "^wsk serve: listening on tcp://127\.0\.0\.1:[0-9]+ \(broadcast\)$" "$1" &&
        grep -Eq "^wsk serve: listening on udp://127\.0\.0\.1:[0-9]+ \(broadcast\)$" "$1"' \
        "$SERVER_LINE" "$SERVER_OUT"
    TCP_PORT=$(port_of tcp)
    UDP_PORT=$(port_of udp)
    CHECK_VERBOSE=1 check "room across WebSocket, TCP and UDP" \
        "${RAW[@]}" room "$WS_URL" "$TCP_PORT" "$UDP_PORT"
    # The raw listeners are in the lobby, "/": a client of /other is not.
    CHECK_VERBOSE=1 check "TCP is in the lobby only: a client of /other is not seen by TCP" \
        "$PY" "$PEERS/rooms_peer.py" tcp-lobby "ws://127.0.0.1:$PORT" "$TCP_PORT"
    # The project's own client in the same room: the TCP client answers once
    # it has seen wsk connect's first line.
    start_bg "$TEST_TMP/reply.out" "${RAW[@]}" reply "$TCP_PORT" ready "hi from tcp"
    check "a TCP client is connected" wait_for_line "$TEST_TMP/reply.out" '^connected' 20
    check "wsk connect (WebSocket) and a TCP client see each other's lines" bash -c '
        { echo ready; sleep 4; } | timeout 20 "$0" connect "$1" | grep -m1 -qx "hi from tcp"' \
        "$WSK_BIN" "$WS_URL"
    stop_server
    check "SIGTERM: the server exits 0" test "$STOP_STATUS" -eq 0
fi

echo "== echo over TCP and UDP"
if start_server --echo --listen tcp://127.0.0.1:0 --listen udp://127.0.0.1:0 --max-queue 64k; then
    check "the first line is the TCP listener's: tcp://HOST:PORT (echo)" bash -c '
        [[ $0 =~ ^wsk\ serve:\ listening\ on\ tcp://127\.0\.0\.1:[0-9]+\ \(echo\)$ ]]' "$SERVER_LINE"
    wait_ports 2
    CHECK_VERBOSE=1 check "TCP and UDP echo" "${RAW[@]}" echo "$(port_of tcp)" "$(port_of udp)"
    check "a TCP echo client that never reads costs a bounded amount (RSS < 64 MiB)" bash -c '
        rss=$(awk "/VmRSS/ {print \$2}" /proc/$0/status); echo "server RSS ${rss} kB"; ((rss < 65536))' \
        "$SERVER_PID"
    stop_server
    check "SIGTERM: exit 0" test "$STOP_STATUS" -eq 0
fi

echo "== line and datagram limits, UDP peer expiry"
if start_server --listen tcp://127.0.0.1:0 --listen udp://127.0.0.1:0 --max-message 1000 \
    --udp-peer-timeout 1.5; then
    wait_ports 2
    CHECK_VERBOSE=1 check "a TCP line over --max-message closes the connection" \
        "${RAW[@]}" longline "$(port_of tcp)" 1000
    CHECK_VERBOSE=1 check "UDP peers leave the room after --udp-peer-timeout" \
        "${RAW[@]}" udp-expiry "$(port_of udp)" 1.5
    server_alive "the server is still running"
    stop_server
fi

echo "== --idle-timeout, SIGTERM with a TCP client connected"
if start_server --listen tcp://127.0.0.1:0 --idle-timeout 0.5; then
    CHECK_VERBOSE=1 check "an idle TCP connection is closed" "${RAW[@]}" idle "$PORT" 0.5
    stop_server
fi
if start_server --listen tcp://127.0.0.1:0; then
    start_bg "$TEST_TMP/hold.out" "${RAW[@]}" hold "$PORT"
    HOLDER=$BG_PID
    check "a TCP client is connected" wait_for_line "$TEST_TMP/hold.out" '^connected' 20
    stop_server
    check "SIGTERM with a TCP client connected: exit 0 within the drain" test "$STOP_STATUS" -eq 0
    check "the client saw the connection end" bash -c '
        for _ in $(seq 200); do grep -q "^ok: the server ends" "$0" && exit 0; sleep 0.05; done
        cat "$0"; exit 1' "$TEST_TMP/hold.out"
fi

echo "== options"
check "--static without a WebSocket listener is refused (exit 2)" bash -c '
    err=$("$0" serve --listen tcp://127.0.0.1:0 --static /tmp 2>&1 >/dev/null); rv=$?
    echo "exit $rv: $err"; ((rv == 2)) && [[ $err == *"applies to WebSocket listeners"* ]]' "$WSK_BIN"
check "an unknown scheme is refused with the ones it knows" bash -c '
    "$0" serve --listen sctp://127.0.0.1:0 2>&1 | grep -q "expected ws://, tcp:// or udp://"' "$WSK_BIN"
check "more than 8 listeners are refused" bash -c '
    args=(); for i in $(seq 9); do args+=(--listen "tcp://127.0.0.1:0"); done
    "$0" serve "${args[@]}" 2>&1 | grep -q "at most 8"' "$WSK_BIN"
check "--help documents tcp:// and udp:// listeners" bash -c '
    "$0" serve --help | grep -q "tcp (raw TCP, lines) or udp (datagrams)" &&
    "$0" serve --help | grep -q -- "--udp-peer-timeout"' "$WSK_BIN"

finish
