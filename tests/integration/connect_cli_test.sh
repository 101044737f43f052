#!/usr/bin/env bash
# wsk connect as a command: piped lines against wsk serve --echo, the close
# at stdin EOF, --echo, and failures (refused, DNS, handshake rejected,
# protocol error, abnormal close) that print one stderr line and exit non-zero.
source "$(dirname "$0")/lib.sh"

echo "== wsk connect -> wsk serve --echo"
if start_server --echo --max-message 1048576; then
    check "printf 'a\\nb\\n' | wsk connect: prints exactly a, b" connect_expect 'a\nb\n' 'a\nb\n' "$WS_URL"
    check "5000 lines: all printed, in order, before the close" \
        connect_expect "$(printf '%s\\n' $(seq 1 5000))" "$(printf '%s\\n' $(seq 1 5000))" "$WS_URL"
    LONG=$(head -c 30000 /dev/zero | tr '\0' 'w')
    check "a 30000-character line comes back whole" connect_expect "$LONG\n" "$LONG\n" "$WS_URL"
    check "UTF-8 passes through" connect_expect 'grüße ✓ 😀\n' 'grüße ✓ 😀\n' "$WS_URL"
    check "empty stdin: connects, closes, exits 0, prints nothing" connect_expect '' '' "$WS_URL"
    check "-q: still prints the messages" connect_expect 'quiet\n' 'quiet\n' -q "$WS_URL"
    server_alive "server still running"
    stop_server
fi

echo "== IPv6 loopback"
if "$PY" -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    if start_server --listen '[::1]:0' --echo; then
        check "the listening line has [::1]" grep -qF "ws://[::1]:$PORT/" <<<"$SERVER_LINE"
        check "wsk connect ws://[::1]:PORT/ round trip" connect_expect 'six\n' 'six\n' "ws://[::1]:$PORT/"
        check "python client over ::1" "$PY" "$PEERS/py_client.py" "ws://[::1]:$PORT/" text
        stop_server
    fi
else
    echo "(no ::1 on this machine: IPv6 checks skipped)"
fi

echo "== wsk serve --path /chat --origin http://good.example"
if start_server --echo --path /chat --origin http://good.example; then
    check "the listening line names the path" grep -q "ws://127.0.0.1:$PORT/chat" <<<"$SERVER_LINE"
    check "allowed Origin: echo works" \
        connect_expect 'hi\n' 'hi\n' --header 'Origin: http://good.example' "ws://127.0.0.1:$PORT/chat"
    check "foreign Origin: rejected, non-zero exit, one stderr line mentioning 403" \
        connect_fails '403' --header 'Origin: http://evil.example' "ws://127.0.0.1:$PORT/chat"
    check "wrong path: rejected, non-zero exit, one stderr line" \
        connect_fails '40[0-9]' --header 'Origin: http://good.example' "ws://127.0.0.1:$PORT/other"
    stop_server
fi

echo "== failures"
if hold_dead_port; then
    check "nothing listening: non-zero, one stderr line mentioning refused" \
        connect_fails 'refused' "ws://127.0.0.1:$DEAD_PORT/"
fi
check "unresolvable host: non-zero, one stderr line about the name" \
    connect_fails 'resolv|name|dns|not known|getaddrinfo|host' "ws://nonexistent.invalid/"
check "a malformed URL: non-zero, one stderr line" connect_fails '.' "not a url"
check "a URL with userinfo: the line says what is wrong" connect_fails 'userinfo' 'ws://user@127.0.0.1/'
check "an ftp:// URL: the line says the scheme is unknown" \
    connect_fails 'unknown scheme' 'ftp://127.0.0.1/'
check "a bad port: the line gives the range" connect_fails 'above 65535' 'ws://127.0.0.1:70000/'
check "a mistyped option: exit 2, the nearest one suggested (connect, serve)" bash -c '
    a=$("$0" connect --no-clse ws://127.0.0.1:1/ 2>&1); ra=$?
    b=$("$0" serve --treads=2 2>&1); rb=$?
    c=$("$0" serve --xyzzy 2>&1); rc=$?
    [[ $ra == 2 && $a == *"did you mean --no-close?"* && $rb == 2 &&
       $b == *"did you mean --threads?"* && $rc == 2 && $c != *"did you mean"* ]]' "$WSK_BIN"

if start_listener "$PY" "$PEERS/py_echo_server.py"; then
    PY_URL=ws://127.0.0.1:$LISTENER_PORT
    PY_OUT=$LISTENER_OUT
    check "handshake rejected with 403: non-zero, one stderr line mentioning 403" \
        connect_fails '403' "$PY_URL/reject"
    check "server sends a masked frame: non-zero, one stderr line" \
        connect_fails 'protocol|mask|1002' "$PY_URL/badframe"
    check "server drops TCP without a close frame: non-zero, one stderr line" \
        connect_fails 'clos|1006|abnormal|reset|eof' "$PY_URL/abort"
    check "--echo: the server sends 3 messages and closes: exit 0" \
        "$WSK_BIN" connect --echo "$PY_URL/burst" </dev/null
    check "--echo: the server got its 3 messages back unchanged" wait_for_line "$PY_OUT" '^burst: ok' 10
    # stdin stays open (a fifo we hold), so only the server's close ends it.
    mkfifo "$TEST_TMP/stdin.fifo"
    exec {hold_stdin}<>"$TEST_TMP/stdin.fifo"
    check "the server closes (1000) while stdin is open: prints what came, exits 0" \
        connect_expect_stdin "$TEST_TMP/stdin.fifo" 'bye\n' "$PY_URL/close-after"
    exec {hold_stdin}>&-

    echo "== pipe mode never loses a reply"
    check "two lines to a request/response server: both replies, exit 0" \
        connect_expect 'a\nb\n' 'a\nb\n' "$PY_URL"
    check "replies 300 ms late still arrive (each restarts the 1 s --wait)" \
        connect_expect 'a\nb\nc\n' 'a\nb\nc\n' "$PY_URL/slow/300"
    check "--wait 0.05 closes before a 300 ms reply: nothing printed, exit 0" \
        connect_expect 'a\n' '' --wait 0.05 "$PY_URL/slow/300"
    check "--no-close: waits for the server's close however long (until killed here)" bash -c '
        out=$( (printf "x\n"; sleep 0.2) | timeout 1.5 "$0" connect --no-close --wait 0.01 "$1")
        [[ $? == 124 && $out == x ]]' "$WSK_BIN" "$PY_URL"
    check "an http:// URL is taken as ws://, the same server" connect_expect 'hi\n' 'hi\n' \
        "http://127.0.0.1:$LISTENER_PORT/"
    check "--base64: 'text BASE64' per message" connect_expect 'x\n' 'text eA==\n' --base64 \
        "$PY_URL"
    check "--base64 --binary: 'binary BASE64', empty message included" \
        connect_expect 'ab\n\n' 'binary YWI=\nbinary \n' --base64 --binary "$PY_URL"
    check "User-Agent: wsk/VERSION by default" bash -c '
        printf "\n" | "$0" connect "$1/header/User-Agent" | head -1 | grep -Eq "^wsk/[0-9]+\.[0-9]+"' \
        "$WSK_BIN" "$PY_URL"
    check "--user-agent sets it; a --header User-Agent wins" bash -c '
        a=$(printf "\n" | "$0" connect --user-agent "probe/1" "$1/header/User-Agent" | head -1)
        b=$(printf "\n" | "$0" connect --user-agent x --header "User-Agent: mine" \
            "$1/header/User-Agent" | head -1)
        [[ $a == probe/1 && $b == mine ]]' "$WSK_BIN" "$PY_URL"

    echo "== exit statuses"
    for code in 1011 4000 1002; do
        check "the server closes with $code: exit 3, one line naming $code" bash -c '
            "$0" connect "$1/close-with/$2" <<<"go" >/dev/null 2>"$3"; rv=$?
            [[ $rv == 3 ]] && [[ $(wc -l <"$3") == 1 ]] && grep -q "closed by the server: $2 test" "$3"' \
            "$WSK_BIN" "$PY_URL" "$code" "$TEST_TMP/close.err"
    done
    check "the server closes with 1001: exit 0" connect_expect 'go\n' '' "$PY_URL/close-with/1001"
    check "the server closes with 1000: exit 0" connect_expect 'go\n' '' "$PY_URL/close-with/1000"
fi

echo "== hints"
if start_listener "$PY" "$PEERS/http_server.py" --root "$TEST_TMP"; then
    check "HTTP 200 from a web server: one line saying it is not a WebSocket endpoint" \
        connect_fails 'HTTP 200: not a WebSocket endpoint' "ws://127.0.0.1:$LISTENER_PORT/status/200"
    check "HTTP 404: one line asking whether the path is right" \
        connect_fails 'HTTP 404 \(no WebSocket at this path' "ws://127.0.0.1:$LISTENER_PORT/status/404"
    stop_pid "$LISTENER_PID"
fi
TLS_DIR=$TEST_TMP/tls
mkdir -p "$TLS_DIR"
if openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" \
    -days 1 -subj /CN=localhost >/dev/null 2>&1 &&
    start_listener "$PY" "$PEERS/py_echo_server.py" --tls-cert "$TLS_DIR/cert.pem" \
        --tls-key "$TLS_DIR/key.pem"; then
    check "ws:// to a TLS port: one line suggesting wss://" \
        connect_fails 'try wss://' "ws://127.0.0.1:$LISTENER_PORT/"
    check "an untrusted certificate: one line naming --cacert and --insecure" \
        connect_fails 'cacert.*insecure' "wss://127.0.0.1:$LISTENER_PORT/"
    stop_pid "$LISTENER_PID"
fi

echo "== the interactive client on a terminal; pings"
if start_server -v --echo --ping-interval 0.3; then
    CHECK_VERBOSE=1 check "a session on a pseudo-terminal: history, /ping, //, /help, /close" \
        "$PY" "$PEERS/term_driver.py" "$WSK_BIN" "$WS_URL"
    check "... the server saw /close's code and reason" wait_for_line "$SERVER_ERR" 'closed /: 4000 bye' 10
    check "--show-ping: the server's keepalive pings are printed on stderr" bash -c '
        (printf "x\n"; sleep 1) | "$0" connect --show-ping --wait 1 "$1" 2>"$2" >/dev/null
        grep -q "^< ping" "$2"' "$WSK_BIN" "$WS_URL" "$TEST_TMP/ping.err"
    check "--ping-interval 0.2 --show-ping: our keepalive pings are answered" bash -c '
        (printf "x\n"; sleep 1) | "$0" connect --show-ping --ping-interval 0.2 --wait 1 "$1" \
            2>"$2" >/dev/null
        grep -q "^< pong .*(keepalive)" "$2"' "$WSK_BIN" "$WS_URL" "$TEST_TMP/pong.err"
    check "--ping-interval x: a usage error" bash -c '"$0" connect --ping-interval x "$1" \
        </dev/null 2>/dev/null; [[ $? == 2 ]]' "$WSK_BIN" "$WS_URL"
    stop_server
fi

echo "== --reconnect"
if start_server --echo; then
    RPORT=$PORT
    rm -f "$TEST_TMP/rc.fifo"
    mkfifo "$TEST_TMP/rc.fifo"
    start_bg "$TEST_TMP/rc.out" bash -c '"$0" connect --reconnect "$1" <"$2"; echo "exit $?"' \
        "$WSK_BIN" "$WS_URL" "$TEST_TMP/rc.fifo"
    RC_PID=$BG_PID
    exec {rc_w}>"$TEST_TMP/rc.fifo"
    echo one >&"$rc_w"
    check "a line before the server goes away is echoed" wait_for_line "$TEST_TMP/rc.out" '^one$' 10
    stop_server
    check "the server goes: the client says it will reconnect" \
        wait_for_line "$TEST_TMP/rc.out" 'reconnecting in 0.5 s' 10
    # The same port again; the server must not inherit the fifo's write end.
    if start_server --echo --listen "127.0.0.1:$RPORT" {rc_w}>&-; then
        check "... and reconnects to the new server" wait_for_line "$TEST_TMP/rc.out" 'reconnected to' 15
        echo two >&"$rc_w"
        check "a line after the reconnection is echoed" wait_for_line "$TEST_TMP/rc.out" '^two$' 10
        exec {rc_w}>&-
        check "the end of stdin still ends it, exit 0" bash -c '
            for ((i = 0; i < 100; i++)); do grep -qx "exit 0" "$0" && exit 0; sleep 0.1; done
            cat "$0"; exit 1' "$TEST_TMP/rc.out"
        stop_server
    fi
    exec {rc_w}>&- 2>/dev/null
fi
if start_listener "$PY" "$PEERS/http_server.py" --root "$TEST_TMP"; then
    check "--reconnect with a 404: no retry, exit 1" bash -c '
        out=$(timeout 10 "$0" connect --reconnect "ws://127.0.0.1:$1/status/404" </dev/null 2>&1)
        rv=$?; [[ $rv == 1 && $out != *reconnecting* ]]' "$WSK_BIN" "$LISTENER_PORT"
    stop_pid "$LISTENER_PID"
fi
check "--reconnect with tcp://: a usage error" bash -c '
    "$0" connect --reconnect tcp://127.0.0.1:1 </dev/null >/dev/null 2>&1; [[ $? == 2 ]]' "$WSK_BIN"

finish
