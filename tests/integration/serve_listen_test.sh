#!/usr/bin/env bash
# wsk serve --listen: host names (looked up at start, IPv4 first; localhost
# is 127.0.0.1), and one clear line for what cannot be listened on or parsed:
# an unknown name, an address not on this machine, a port in use (exit 1),
# malformed values (exit 2, with the usual hint to run --help).
source "$(dirname "$0")/lib.sh"

# serve_fails STATUS STDERR ARGS...: `wsk serve ARGS...` exits with STATUS
# within 10 s, prints nothing on stdout and exactly STDERR (through printf
# %b) on stderr.
serve_fails()
{
    local want_status=$1 want_err=$2 rv
    shift 2
    local out=$TEST_TMP/serve.out err=$TEST_TMP/serve.err
    printf '%b\n' "$want_err" >"$TEST_TMP/serve.want"
    timeout -k 5 10 "$WSK_BIN" serve "$@" </dev/null >"$out" 2>"$err"
    rv=$?
    echo "wsk serve $* exited $rv; stderr:"
    sed 's/^/  /' "$err" | head -5
    if ((rv != want_status)); then
        echo "expected exit status $want_status"
        return 1
    fi
    if [[ -s $out ]]; then
        echo "expected nothing on stdout; it has: $(head -c 300 "$out")"
        return 1
    fi
    if ! cmp -s "$err" "$TEST_TMP/serve.want"; then
        echo "expected stderr:"
        sed 's/^/  /' "$TEST_TMP/serve.want"
        return 1
    fi
}

# bad_listen VALUE REASON: --listen VALUE is a usage error saying REASON.
bad_listen()
{
    check "--listen '$1': $2" serve_fails 2 \
        "wsk serve: --listen '$1': $2 (expected [tcp://|udp://]HOST:PORT, [IPV6]:PORT or PORT)\nTry 'wsk serve --help' for more information." \
        --listen "$1"
}

# can_bind HOST: a TCP socket can be bound to HOST (a name or an IPv4
# address) here.
can_bind()
{
    "$PY" -c 'import socket, sys; socket.socket().bind((sys.argv[1], 0))' "$1" 2>/dev/null
}

# resolves NAME: NAME has an address through the system's resolver, which is
# what wsk serve uses (getaddrinfo); prints the addresses.
resolves()
{
    getent ahosts "$1" | awk '{print $1}' | sort -u | tr '\n' ' '
    getent ahosts "$1" >/dev/null
}

echo "== localhost"
if start_server --echo --listen localhost:0; then
    check "the listening line says localhost" grep -qF "ws://localhost:$PORT/" <<<"$SERVER_LINE"
    check "it listens on 127.0.0.1" connect_expect 'via 127\n' 'via 127\n' "ws://127.0.0.1:$PORT/"
    check "ws://localhost:PORT/ works" connect_expect 'by name\n' 'by name\n' "ws://localhost:$PORT/"
    check "localhost:PORT again while it is taken: one line, exit 1" serve_fails 1 \
        "wsk serve: cannot listen on localhost:$PORT: Address already in use" --listen "localhost:$PORT"
    stop_server
fi

HOST=$(hostname)
echo "== this machine's name ($HOST)"
if ! addrs=$(resolves "$HOST"); then
    echo "SKIP: '$HOST' does not resolve on this machine (not in /etc/hosts or DNS)"
elif ! can_bind "$HOST"; then
    echo "SKIP: '$HOST' resolves to $addrs, which cannot be bound here"
else
    echo "($HOST resolves to: $addrs)"
    if start_server --echo --listen "$HOST:0"; then
        check "the listening line names $HOST" grep -qF "ws://$HOST:$PORT/" <<<"$SERVER_LINE"
        check "ws://$HOST:PORT/ works" connect_expect 'host\n' 'host\n' "ws://$HOST:$PORT/"
        stop_server
    fi
fi

echo "== ip6-localhost"
if ! "$PY" -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    echo "SKIP: no IPv6 loopback (::1) on this machine"
elif ! addrs=$(resolves ip6-localhost) || [[ $addrs != *::1* ]]; then
    echo "SKIP: ip6-localhost does not resolve to ::1 here (not in /etc/hosts)"
elif start_server --echo --listen ip6-localhost:0; then
    check "the listening line says ip6-localhost" grep -qF "ws://ip6-localhost:$PORT/" <<<"$SERVER_LINE"
    check "it listens on ::1" connect_expect 'six\n' 'six\n' "ws://[::1]:$PORT/"
    stop_server
fi

echo "== what cannot be listened on: one line, exit 1"
check "an unknown name (.invalid never resolves, RFC 6761)" serve_fails 1 \
    "wsk serve: cannot listen on nosuchhost.invalid:8080: host name could not be resolved" \
    --listen nosuchhost.invalid:8080
if can_bind 192.0.2.1; then
    echo "SKIP: this machine binds 192.0.2.1 (net.ipv4.ip_nonlocal_bind?)"
else
    check "an address that is not this machine's (192.0.2.1, TEST-NET-1)" serve_fails 1 \
        "wsk serve: cannot listen on 192.0.2.1:8080: Cannot assign requested address (not an address of this machine)" \
        --listen 192.0.2.1:8080
fi

echo "== malformed --listen values: one line and the --help hint, exit 2"
bad_listen ':99999' "the port is not from 0 to 65535"
bad_listen '65536' "the port is not from 0 to 65535"
bad_listen '127.0.0.1:http' "the port is not a number"
bad_listen '1.2.3.4:' "no port after ':'"
bad_listen '1.2.3.4' "no ':PORT'"
bad_listen 'example.com' "no ':PORT'"
bad_listen ':8080' "no host before ':'"
bad_listen 'host:port:junk' "more than one ':'"
bad_listen '::1:8080' "more than one ':'"
bad_listen '[::1' "no ']' after the IPv6 address"
bad_listen '[::1]' "no ':PORT' after ']'"
bad_listen '[]:8080' "no IPv6 address between the brackets"
bad_listen '[localhost]:8080' "brackets are for IPv6 addresses only"
bad_listen '' "empty"

finish
