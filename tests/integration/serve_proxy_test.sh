#!/usr/bin/env bash
# wsk serve --proxy tcp://HOST:PORT (websockify's job): bytes both ways as
# binary messages, the backend's close and failures as close codes,
# back-pressure both ways (a client that floods without reading, a backend
# that floods a client that does not read), options.
source "$(dirname "$0")/lib.sh"

EX=("$PY" "$PEERS/exec_peer.py")
RAW=("$PY" "$PEERS/raw_peer.py")

# rss_below PID MIB: the process's resident memory is under MIB MiB.
rss_below()
{
    local rss
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$1/status")
    echo "RSS ${rss} kB (limit $2 MiB)"
    ((rss < $2 * 1024))
}

echo "== through a TCP echo server"
if start_server --echo --listen tcp://127.0.0.1:0; then
    BACKEND_PID=$SERVER_PID
    BACKEND=$LISTENER_URL
    if start_server --proxy "$BACKEND"; then
        check "a text message comes back as the same bytes, binary" bash -c '
            out=$("$0" "$1" once "$2" "héllo"); echo "$out"
            [[ $out == "binary: $(printf "héllo" | od -An -tx1 | tr -d " \n")" ]]' \
            "${EX[0]}" "${EX[1]}" "$WS_URL"
        check "1 MiB of random bytes come back identical" "${EX[@]}" bytes "$WS_URL" 1048576
        check "the listening line says proxy" bash -c '[[ $0 == *", proxy)" ]]' "$SERVER_LINE"
        stop_server
        check "SIGTERM: exit 0" test "$STOP_STATUS" -eq 0
    fi
    if start_server --listen tcp://127.0.0.1:0 --proxy "$BACKEND"; then
        check "a tcp:// listener relays plain TCP: 2 MB of random bytes come back identical" bash -c '
            head -c 2000000 /dev/urandom >"$2/r" &&
            timeout 20 "$0" connect --binary "$1" <"$2/r" >"$2/r.out" && cmp "$2/r" "$2/r.out"' \
            "$WSK_BIN" "$LISTENER_URL" "$TEST_TMP"
        stop_server
    fi
    stop_server "$BACKEND_PID"
fi

echo "== the backend's end"
if start_listener "${RAW[@]}" greet-close; then
    if start_server --proxy "$LISTENER_URL"; then
        check "the backend's bytes, then its close: 1000" bash -c '
            out=$("$0" "$1" quiet "$2"); echo "$out"
            [[ $out == $(printf "binary: %s\nclose: 1000 " "$(printf "hello\n" | od -An -tx1 | tr -d " \n")") ]]' \
            "${EX[0]}" "${EX[1]}" "$WS_URL"
        stop_server
    fi
fi
hold_dead_port
if start_server --proxy "tcp://127.0.0.1:$DEAD_PORT"; then
    check "a backend nobody listens on: 1011 with the reason" bash -c '
        out=$("$0" "$1" quiet "$2"); echo "$out"
        [[ $out == "close: 1011 backend unreachable: Connection refused" ]]' \
        "${EX[0]}" "${EX[1]}" "$WS_URL"
    server_alive "the server is still running"
    stop_server
fi

echo "== back-pressure"
if start_server --echo --listen tcp://127.0.0.1:0 --max-queue 256k; then
    BACKEND_PID=$SERVER_PID
    if start_server --proxy "$LISTENER_URL" --max-queue 256k; then
        check "a client that sends 64 MiB without reading is pushed back; memory stays bounded" bash -c '
            "$0" "$1" flood "$2" 64 | tee /dev/stderr | grep -q "then sends blocked"' \
            "${EX[0]}" "${EX[1]}" "$WS_URL"
        check "proxy RSS < 64 MiB" rss_below "$SERVER_PID" 64
        check "backend RSS < 64 MiB" rss_below "$BACKEND_PID" 64
        stop_server
    fi
    stop_server "$BACKEND_PID"
fi
if start_listener "${RAW[@]}" flood-server; then
    if start_server --proxy "$LISTENER_URL" --max-queue 256k; then
        start_bg "$TEST_TMP/noread.out" "${EX[@]}" noread "$WS_URL" 3
        check "a client that does not read a flooding backend is connected" \
            wait_for_line "$TEST_TMP/noread.out" '^connected' 20
        check "after 3 s the proxy holds a bounded amount (RSS < 64 MiB)" bash -c '
            for _ in $(seq 100); do grep -q done "$1" && break; sleep 0.05; done
            rss=$(awk "/VmRSS/ {print \$2}" /proc/$0/status); echo "RSS ${rss} kB"; ((rss < 65536))' \
            "$SERVER_PID" "$TEST_TMP/noread.out"
        stop_server
        check "SIGTERM: exit 0" test "$STOP_STATUS" -eq 0
    fi
fi

echo "== options"
check "--proxy needs a tcp:// URL" bash -c '
    err=$("$0" serve --proxy ws://127.0.0.1:1 2>&1); rv=$?; echo "$rv: $err"; ((rv == 2)) && [[ $err == *"expected tcp://HOST:PORT"* ]]' "$WSK_BIN"
check "--proxy with a udp:// listener is refused" bash -c '
    err=$("$0" serve --proxy tcp://127.0.0.1:1 --listen udp://127.0.0.1:0 2>&1); rv=$?; echo "$rv: $err"; ((rv == 2))' "$WSK_BIN"
check "--proxy with --exec is refused" bash -c '
    err=$("$0" serve --proxy tcp://127.0.0.1:1 --exec cat 2>&1); rv=$?; echo "$rv: $err"; ((rv == 2))' "$WSK_BIN"
check "--help documents --proxy" bash -c '"$0" serve --help | grep -q -- "--proxy tcp://HOST:PORT"' "$WSK_BIN"

finish
