#!/usr/bin/env bash
# wsk bench over wss:// (--cacert, --insecure) and with permessage-deflate
# (--deflate) and chat payloads (--payload chat):
# - against wsk serve with a certificate made here: echo, connect, idle and
#   fanout over wss://, every byte checked by the generator itself; an
#   untrusted certificate fails the run with the reason;
# - --deflate against wsk serve, a Python websockets server (its 12-bit
#   windows) and a Node ws server: every message compressed both ways and
#   checked after inflating; chat messages take well under their size on the
#   wire; a server that declines the offer fails the run;
# - the command line: contradictions and bad values exit 2.
# Each load run is short (0.5-1 s) and bounded by a timeout.
source "$(dirname "$0")/lib.sh"

if ! command -v openssl >/dev/null; then
    fail "openssl is missing (scripts/deps.sh test installs it)"
    finish
fi

PKI=$TEST_TMP/pki
mkdir -p "$PKI"
check "a self-signed certificate for localhost and 127.0.0.1" \
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$PKI/key.pem" -out "$PKI/cert.pem" || finish

# bench_ok NAME JQ_CONDITION ARGS...: `wsk bench --json -q ARGS` exits 0 with
# "ok":true, and the Python expression COND on the parsed result j is true.
bench_ok()
{
    local cond=$1 out
    shift
    out=$(timeout -k 5 60 "$WSK_BIN" bench --json -q "$@")
    local rv=$?
    echo "wsk bench $* -> exit $rv"
    echo "$out"
    ((rv == 0)) || return 1
    "$PY" -c 'import json, sys
j = json.loads(sys.argv[1])
ok = j["ok"] and bool(eval(sys.argv[2]))
sys.exit(0 if ok else 1)' "$out" "$cond" || { echo "condition failed: $cond"; return 1; }
}

# bench_fails STATUS PATTERN ARGS...: `wsk bench ARGS` exits STATUS and its
# output (stdout and stderr) matches PATTERN.
bench_fails()
{
    local want=$1 pattern=$2 out rv
    shift 2
    out=$(timeout -k 5 60 "$WSK_BIN" bench -q "$@" 2>&1)
    rv=$?
    echo "wsk bench $* -> exit $rv"
    echo "$out" | head -20
    ((rv == want)) || { echo "expected exit status $want"; return 1; }
    grep -Eqi -- "$pattern" <<<"$out" || { echo "output does not match /$pattern/"; return 1; }
}

echo "== the command line"
check "--cacert with --insecure: exit 2" \
    bench_fails 2 "contradict" wss://127.0.0.1:1/ --cacert "$PKI/cert.pem" --insecure
check "--payload bogus: exit 2" bench_fails 2 "expected pattern or chat" ws://127.0.0.1:1/ --payload bogus
check "--payload chat with --size 8: exit 2" \
    bench_fails 2 "at least 16" ws://127.0.0.1:1/ --payload chat -s 8
check "raw-echo with --deflate: exit 2" \
    bench_fails 2 "not with raw-echo" tcp://127.0.0.1:1 --mode raw-echo --deflate
check "raw-echo to a wss:// URL: exit 1, no TLS there" \
    bench_fails 1 "raw-echo has no TLS" wss://127.0.0.1:1/ --mode raw-echo
check "an unreadable --cacert: exit 1 naming the file" \
    bench_fails 1 "cannot load the CA certificates of .*nope\.pem" wss://127.0.0.1:1/ \
    --cacert "$PKI/nope.pem"

echo "== wss:// against wsk serve --tls-cert"
if start_server --echo --tls-cert "$PKI/cert.pem" --tls-key "$PKI/key.pem"; then
    WSS=wss://127.0.0.1:$PORT/
    check "echo, 20 connections, 16 B, 4 in flight, verified with --cacert" \
        bench_ok 'j["tls"] and j["messages"] > 100 and j["opened"] == 20' \
        "$WSS" -c 20 -w 4 -d 1 --cacert "$PKI/cert.pem"
    check "echo by name (wss://localhost), 64 KiB binary, 2 in flight" \
        bench_ok 'j["messages"] > 10 and j["binary"]' \
        "wss://localhost:$PORT/" -c 4 -w 2 -s 64k --binary -d 1 --cacert "$PKI/cert.pem"
    check "connect: full TLS and WebSocket handshakes in a loop" \
        bench_ok 'j["handshakes"] > 10 and j["errors"]["total"] == 0' \
        "$WSS" --mode connect -c 10 -d 1 --cacert "$PKI/cert.pem"
    check "idle: 300 wss:// connections held, each answers a ping" \
        bench_ok 'j["answered"] == 300' "$WSS" --mode idle -c 300 -d 0.5 --insecure
    check "the system's CA store does not trust it: exit 1, certificate verify failed" \
        bench_fails 1 "certificate verify failed" "$WSS" -c 2 -d 0.5
    check "ws:// to the TLS port: exit 1" bench_fails 1 "error" "ws://127.0.0.1:$PORT/" -c 1 -d 0.5
    server_alive "the TLS server survived every run"
    stop_server
fi

check "a certificate for other.example only" \
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3 \
    -subj /CN=other.example -addext subjectAltName=DNS:other.example \
    -keyout "$PKI/other.key" -out "$PKI/other.pem"
if start_server --echo --tls-cert "$PKI/other.pem" --tls-key "$PKI/other.key"; then
    check "an address the certificate does not carry: exit 1, certificate verify failed" \
        bench_fails 1 "certificate verify failed" "wss://127.0.0.1:$PORT/" -c 1 -d 0.5 \
        --cacert "$PKI/other.pem"
    stop_server
fi

if start_server --broadcast --tls-cert "$PKI/cert.pem" --tls-key "$PKI/key.pem"; then
    check "fanout over wss://: 50 receivers, nothing missing" \
        bench_ok 'j["deliveries"] > 1000 and j["missing"] == 0 and j["duplicates"] == 0' \
        "wss://127.0.0.1:$PORT/" --mode fanout -c 50 --rate 200 -d 1 --cacert "$PKI/cert.pem"
    stop_server
fi

if start_server --broadcast; then
    # More receivers than one flush round takes (4,096): the rest of every
    # publish goes out in the next loop iterations, nothing lost.
    check "fanout to 5,000 receivers: flushed in rounds, nothing missing or duplicated" \
        bench_ok 'j["opened"] == 5001 and j["deliveries"] > 20000 and j["missing"] == 0 and j["duplicates"] == 0' \
        "$WS_URL" --mode fanout -c 5000 --rate 20 -d 1
    server_alive "the broadcast server survived 5,000 receivers"
    stop_server
fi

echo "== --deflate and --payload chat"
if start_server --echo --deflate --tls-cert "$PKI/cert.pem" --tls-key "$PKI/key.pem"; then
    check "wss:// + deflate, chat messages: under 60% of their bytes on the wire" \
        bench_ok 'j["deflate"] and j["payload"] == "chat" and j["size"] == 282 and j["messages"] > 100 and 0 < j["wire_bytes"] < 0.6 * j["messages"] * 282' \
        "wss://127.0.0.1:$PORT/" --deflate --payload chat -c 10 -w 2 -d 1 --cacert "$PKI/cert.pem"
    check "deflate, 100 KiB binary messages of the pattern (several inflate pieces)" \
        bench_ok 'j["messages"] > 5 and j["wire_bytes"] < j["messages"] * 102400 / 10' \
        "wss://127.0.0.1:$PORT/" --deflate -s 100k --binary -c 2 -d 1 --cacert "$PKI/cert.pem"
    stop_server
fi
if start_server --echo; then
    check "chat payloads without compression: 1,000 B, every byte checked" \
        bench_ok 'j["messages"] > 100 and j["size"] == 1000' \
        "$WS_URL" --payload chat -s 1000 -c 5 -d 0.5
    stop_server
fi
if start_server --echo --deflate-shared; then
    check "--deflate-shared: chat echoes intact, compressed alone (50-90% on the wire)" \
        bench_ok 'j["messages"] > 100 and 0.5 * j["messages"] * 282 < j["wire_bytes"] < 0.9 * j["messages"] * 282' \
        "$WS_URL" --deflate --payload chat -c 20 -d 1
    check "--deflate-shared: Python websockets is granted no context takeover both ways" \
        "$PY" -c 'import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        ext = ws.response_headers.get("Sec-WebSocket-Extensions", "")
        print(ext)
        assert "server_no_context_takeover" in ext and "client_no_context_takeover" in ext
        for i in range(50):
            await ws.send("hello hello hello hello %d" % i * 5)
            assert await ws.recv() == "hello hello hello hello %d" % i * 5
asyncio.run(main())' "$WS_URL"
    server_alive "the --deflate-shared server survived"
    stop_server
fi
if start_server --echo --no-deflate; then
    check "--deflate against a server that declines: exit 1, says so" \
        bench_fails 1 "did not accept permessage-deflate" "$WS_URL" --deflate -c 2 -d 0.5
    stop_server
fi
if start_listener "$PY" "$PEERS/py_echo_server.py" --tls-cert "$PKI/cert.pem" \
    --tls-key "$PKI/key.pem"; then
    check "Python websockets over wss:// with its 12-bit deflate windows: chat echoes intact" \
        bench_ok 'j["messages"] > 20 and j["wire_bytes"] < j["messages"] * 282' \
        "$LISTENER_URL" --deflate --payload chat -c 4 -d 1 --cacert "$PKI/cert.pem"
    stop_pid "$LISTENER_PID"
else
    fail "start py_echo_server.py with TLS"
fi
if [[ -f $PEERS/node_modules/ws/package.json ]] &&
    start_listener "$NODE" "$PEERS/node_echo_server.mjs" --deflate; then
    check "Node ws with permessage-deflate: chat and 64 KiB echoes intact" \
        bench_ok 'j["messages"] > 20' "$LISTENER_URL" --deflate --payload chat -c 4 -d 1
    check "Node ws with permessage-deflate: 64 KiB binary" \
        bench_ok 'j["messages"] > 5' "$LISTENER_URL" --deflate -s 64k --binary -c 2 -d 1
    stop_pid "$LISTENER_PID"
else
    fail "start node_echo_server.mjs --deflate (tests/peers/node_modules: scripts/deps.sh test)"
fi

finish
