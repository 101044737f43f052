#!/usr/bin/env bash
# wsk connect through proxies: real ones (tinyproxy for HTTP CONNECT, with
# and without Basic credentials; microsocks for SOCKS5 with username and
# password), and tests/peers/proxy_peer.py for what they will not do on
# demand (log socks5 against socks5h, refuse, answer with bytes that pose as
# the server's, speak another protocol). The proxy settings of the
# environment as curl reads them. Every tunnel ends on 127.0.0.1: the peer
# maps made-up names there, so no name is looked up outside this machine.
source "$(dirname "$0")/lib.sh"

unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

# with_env NAME=VALUE... -- CMD...: CMD with those variables set.
with_env()
{
    local vars=()
    while [[ $1 != -- ]]; do
        vars+=("$1")
        shift
    done
    shift
    (export "${vars[@]}" && "$@")
}

start_server --echo || finish
ECHO_PORT=$PORT

# peer MODE: starts proxy_peer.py; sets PEER_PORT and PEER_OUT.
peer()
{
    start_listener "$PY" "$PEERS/proxy_peer.py" "$1" || return 1
    PEER_PORT=$LISTENER_PORT
    PEER_OUT=$LISTENER_OUT
}

# wait_port PORT: until something accepts TCP connections there (10 s).
wait_port()
{
    local i
    for ((i = 0; i < 200; i++)); do
        "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
            "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing accepts connections on port $1"
    return 1
}

# last_request FILE REGEX: the proxy's latest request line matches REGEX.
last_request()
{
    wait_for_line "$1" "$2" 5 || return 1
    local last
    last=$(grep -E '^(CONNECT|SOCKS5) ' "$1" | tail -1)
    [[ $last =~ $2 ]] || { echo "latest request: $last"; return 1; }
}

echo "== tinyproxy: HTTP CONNECT"
TINYPROXY=$(command -v tinyproxy || echo /usr/bin/tinyproxy)
# tinyproxy_start NAME [BasicAuth line]: on a port from the kernel (held,
# then released for it); sets TP_PORT.
tinyproxy_start()
{
    hold_dead_port || return 1
    TP_PORT=$DEAD_PORT
    stop_pid "$LISTENER_PID"
    cat >"$TEST_TMP/$1.conf" <<EOF
Port $TP_PORT
Listen 127.0.0.1
Timeout 30
MaxClients 20
LogFile "$TEST_TMP/$1.log"
LogLevel Connect
PidFile "$TEST_TMP/$1.pid"
Allow 127.0.0.1
${2:-}
EOF
    start_bg "$TEST_TMP/$1.out" "$TINYPROXY" -d -c "$TEST_TMP/$1.conf"
    wait_port "$TP_PORT" && return 0
    echo "tinyproxy did not start:"
    cat "$TEST_TMP/$1.out" "$TEST_TMP/$1.log" 2>/dev/null | tail -5
    return 1
}
if check "tinyproxy starts" tinyproxy_start open; then
    OPEN=$TP_PORT
    check "ws:// through tinyproxy: the message comes back" \
        connect_expect 'one\ntwo\n' 'one\ntwo\n' --proxy "http://127.0.0.1:$OPEN" \
        "ws://127.0.0.1:$ECHO_PORT/"
    check "... tinyproxy logged the CONNECT for the server" \
        wait_for_line "$TEST_TMP/open.log" "CONNECT 127.0.0.1:$ECHO_PORT HTTP/1.1" 5
    check "the scheme is optional (http://, as curl)" \
        connect_expect 'x\n' 'x\n' --proxy "127.0.0.1:$OPEN" "ws://127.0.0.1:$ECHO_PORT/"
fi
if check "tinyproxy with Basic credentials starts" tinyproxy_start auth "BasicAuth wsk s3cr3t"; then
    AUTH=$TP_PORT
    check "user and password from the proxy URL" \
        connect_expect 'hi\n' 'hi\n' --proxy "http://wsk:s3cr3t@127.0.0.1:$AUTH" \
        "ws://127.0.0.1:$ECHO_PORT/"
    check "none: one line with the 407 and what to add" \
        connect_fails 'did not open a tunnel: HTTP 407.*USER:PASSWORD@' \
        --proxy "http://127.0.0.1:$AUTH" "ws://127.0.0.1:$ECHO_PORT/"
    check "a wrong password: one line with the refusal" \
        connect_fails 'did not open a tunnel: HTTP 40[17].*wrong user or password' \
        --proxy "http://wsk:nope@127.0.0.1:$AUTH" "ws://127.0.0.1:$ECHO_PORT/"
fi

echo "== microsocks: SOCKS5 with username and password"
MICROSOCKS=$(command -v microsocks || echo /usr/bin/microsocks)
microsocks_start()
{
    hold_dead_port || return 1
    MS_PORT=$DEAD_PORT
    stop_pid "$LISTENER_PID"
    start_bg "$TEST_TMP/microsocks.out" "$MICROSOCKS" -i 127.0.0.1 -p "$MS_PORT" -u wsk -P 'p@ss w'
    wait_port "$MS_PORT"
}
if check "microsocks starts" microsocks_start; then
    check "socks5h:// (the proxy resolves localhost), credentials with %XX escapes" \
        connect_expect 'hi\n' 'hi\n' --proxy "socks5h://wsk:p%40ss%20w@127.0.0.1:$MS_PORT" \
        "ws://localhost:$ECHO_PORT/"
    check "socks5:// (resolved here)" \
        connect_expect 'hi\n' 'hi\n' --proxy "socks5://wsk:p%40ss%20w@127.0.0.1:$MS_PORT" \
        "ws://localhost:$ECHO_PORT/"
    check "a wrong password: one line" \
        connect_fails 'SOCKS5 proxy refused the user and password' \
        --proxy "socks5://wsk:bad@127.0.0.1:$MS_PORT" "ws://127.0.0.1:$ECHO_PORT/"
    check "no credentials: one line asking for them" \
        connect_fails 'none of the methods offered \(does it want USER:PASSWORD@' \
        --proxy "socks5://127.0.0.1:$MS_PORT" "ws://127.0.0.1:$ECHO_PORT/"
fi

echo "== what the client asks a SOCKS5 proxy for"
if peer socks5; then
    S5=$PEER_PORT S5_OUT=$PEER_OUT
    check "socks5h:// sends the name" \
        connect_expect 'a\n' 'a\n' --proxy "socks5h://127.0.0.1:$S5" "ws://echo.wsk-test:$ECHO_PORT/"
    check "... the proxy was asked for echo.wsk-test" \
        last_request "$S5_OUT" "^SOCKS5 name echo.wsk-test:$ECHO_PORT\$"
    check "socks5:// sends the address" \
        connect_expect 'b\n' 'b\n' --proxy "socks5://127.0.0.1:$S5" "ws://127.0.0.1:$ECHO_PORT/"
    check "... the proxy was asked for 127.0.0.1" \
        last_request "$S5_OUT" "^SOCKS5 ipv4 127.0.0.1:$ECHO_PORT\$"
fi

echo "== wss:// inside the tunnel, the certificate checked against the server's name"
TLS_DIR=$TEST_TMP/tls
mkdir -p "$TLS_DIR"
if openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" -subj /CN=echo.wsk-test \
    -addext subjectAltName=DNS:echo.wsk-test,IP:127.0.0.1 >/dev/null 2>&1 &&
    start_server --echo --tls-cert "$TLS_DIR/cert.pem" --tls-key "$TLS_DIR/key.pem"; then
    TLS_PORT=$PORT
    check "wss:// through a socks5h proxy: TLS with echo.wsk-test, message back" \
        connect_expect 's\n' 's\n' --cacert "$TLS_DIR/cert.pem" --proxy "socks5h://127.0.0.1:$S5" \
        "wss://echo.wsk-test:$TLS_PORT/"
    if [[ -n ${OPEN:-} ]]; then
        check "wss:// through tinyproxy: CONNECT, then TLS with the server" \
            connect_expect 't\n' 't\n' --cacert "$TLS_DIR/cert.pem" \
            --proxy "http://127.0.0.1:$OPEN" "wss://127.0.0.1:$TLS_PORT/"
    fi
    check "the certificate is the server's, not the proxy's: a name mismatch still fails" \
        connect_fails 'certificate|hostname' --cacert "$TLS_DIR/cert.pem" \
        --proxy "socks5h://127.0.0.1:$S5" "wss://other.wsk-test:$TLS_PORT/"
fi

echo "== proxies that misbehave: one line each, exit 1"
if peer http-403; then
    check "CONNECT refused with 403" connect_fails 'did not open a tunnel: HTTP 403 Forbidden' \
        --proxy "127.0.0.1:$PEER_PORT" "ws://127.0.0.1:$ECHO_PORT/"
    stop_pid "$LISTENER_PID"
fi
if peer http-early; then
    check "bytes after the 200 that pose as the server's: refused" \
        connect_fails 'did not open a tunnel: sent [0-9]+ bytes past its answer' \
        --proxy "127.0.0.1:$PEER_PORT" "ws://127.0.0.1:$ECHO_PORT/"
    stop_pid "$LISTENER_PID"
fi
if peer socks5-refuse; then
    check "SOCKS5 reply 5" connect_fails 'SOCKS5: connection refused \(reply 5\)' \
        --proxy "socks5h://127.0.0.1:$PEER_PORT" "ws://127.0.0.1:$ECHO_PORT/"
    stop_pid "$LISTENER_PID"
fi
if peer garbage; then
    check "not a SOCKS5 proxy" connect_fails 'not a SOCKS5 proxy' \
        --proxy "socks5://127.0.0.1:$PEER_PORT" "ws://127.0.0.1:$ECHO_PORT/"
    check "not an HTTP proxy (it closes without an answer)" \
        connect_fails 'did not open a tunnel: closed the connection before opening the tunnel' \
        --proxy "http://127.0.0.1:$PEER_PORT" "ws://127.0.0.1:$ECHO_PORT/"
    stop_pid "$LISTENER_PID"
fi
hold_dead_port || finish
check "nothing listening at the proxy: one line saying so" \
    connect_fails "Connection refused \(connecting to the proxy; --proxy '' for none\)" \
    --proxy "127.0.0.1:$DEAD_PORT" "ws://127.0.0.1:$ECHO_PORT/"
check "a bad --proxy: usage error, one line" bash -c '
    "$0" connect --proxy "https://p:1" "$1" </dev/null >/dev/null 2>"$2"; rv=$?
    cat "$2"; [[ $rv == 2 ]] && grep -q "unsupported proxy scheme" "$2"' \
    "$WSK_BIN" "ws://127.0.0.1:$ECHO_PORT/" "$TEST_TMP/bad.err"
check "the password is never shown (-v)" bash -c '
    echo x | "$0" connect -v --proxy "http://u:SECRET@127.0.0.1:$1" "$2" >/dev/null 2>"$3"
    cat "$3"; grep -q "through the proxy http://\*\*\*@127.0.0.1" "$3" && ! grep -q SECRET "$3"' \
    "$WSK_BIN" "$DEAD_PORT" "ws://127.0.0.1:$ECHO_PORT/" "$TEST_TMP/v.err"
check "--proxy is for WebSocket URLs" bash -c '
    "$0" connect --proxy "127.0.0.1:1" "tcp://127.0.0.1:$1" </dev/null 2>&1 | grep -q "not tcp://"' \
    "$WSK_BIN" "$ECHO_PORT"

echo "== the environment, as curl reads it"
if peer socks5; then
    E5=$PEER_PORT E5_OUT=$PEER_OUT
    check "all_proxy for ws://" with_env "all_proxy=socks5h://127.0.0.1:$E5" -- \
        connect_expect 'e\n' 'e\n' "ws://env.wsk-test:$ECHO_PORT/"
    check "... went through it" last_request "$E5_OUT" "^SOCKS5 name env.wsk-test:$ECHO_PORT\$"
    check "http_proxy for ws://, before all_proxy" \
        with_env "http_proxy=socks5h://127.0.0.1:$E5" "all_proxy=127.0.0.1:$DEAD_PORT" -- \
        connect_expect 'h\n' 'h\n' "ws://http.wsk-test:$ECHO_PORT/"
    check "... went through it" last_request "$E5_OUT" "^SOCKS5 name http.wsk-test:$ECHO_PORT\$"
    if [[ -n ${TLS_PORT:-} ]]; then
        check "https_proxy for wss://" \
            with_env "https_proxy=socks5h://127.0.0.1:$E5" "http_proxy=127.0.0.1:$DEAD_PORT" -- \
            connect_expect 'w\n' 'w\n' --cacert "$TLS_DIR/cert.pem" "wss://echo.wsk-test:$TLS_PORT/"
        check "... went through it" last_request "$E5_OUT" "^SOCKS5 name echo.wsk-test:$TLS_PORT\$"
    fi
    check "--proxy wins over the environment" \
        with_env "all_proxy=127.0.0.1:$DEAD_PORT" -- \
        connect_expect 'p\n' 'p\n' --proxy "socks5h://127.0.0.1:$E5" "ws://opt.wsk-test:$ECHO_PORT/"
    check "loopback is never proxied from the environment (the proxy there is dead)" \
        with_env "all_proxy=127.0.0.1:$DEAD_PORT" "http_proxy=127.0.0.1:$DEAD_PORT" -- \
        connect_expect 'l\n' 'l\n' "ws://127.0.0.1:$ECHO_PORT/"
    check "--proxy '' connects directly whatever the environment says" \
        with_env "all_proxy=socks5h://127.0.0.1:$DEAD_PORT" -- \
        connect_expect 'd\n' 'd\n' --proxy '' "ws://localhost:$ECHO_PORT/"
    check "a bad proxy in the environment: one line naming it, exit 1" with_env \
        "all_proxy=gopher://x" -- connect_fails 'proxy from the environment.*unknown proxy scheme' \
        "ws://env.wsk-test:$ECHO_PORT/"
fi

finish
