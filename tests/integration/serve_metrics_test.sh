#!/usr/bin/env bash
# wsk serve --metrics and /healthz: the Prometheus text (every family with
# HELP and TYPE, well-formed samples, a thread label per thread), figures
# that follow real traffic (Python websockets and wsk connect clients, curl),
# the metrics listener refusing WebSocket upgrades, /healthz on the main
# listener in every mode, and a clean SIGTERM with the per-thread snapshot
# timers running.
source "$(dirname "$0")/lib.sh"

check "--metrics x: a usage error (2)" bash -c '"$0" serve --metrics x:y 2>/dev/null; [[ $? == 2 ]]' \
    "$WSK_BIN"

# scrape PORT: the metrics text to $TEST_TMP/metrics.txt, headers to .head.
scrape()
{
    curl -s -D "$TEST_TMP/metrics.head" -o "$TEST_TMP/metrics.txt" --max-time 5 \
        "http://127.0.0.1:$1/metrics"
}

# total NAME [LABEL_FILTER]: the sum of NAME's samples over the threads.
total()
{
    grep -E "^$1(\{|\s)" "$TEST_TMP/metrics.txt" | grep -- "${2:-}" | awk '{ s += $NF } END { print s + 0 }'
}

# until_total PORT NAME WANT [FILTER]: scrapes until the sum is WANT (10 s).
until_total()
{
    local i got
    for ((i = 0; i < 100; i++)); do
        scrape "$1" && got=$(total "$2" "${4:-}") && [[ $got == "$3" ]] && return 0
        sleep 0.1
    done
    echo "$2${4:+ $4}: $got, want $3"
    return 1
}

for threads in 1 2; do
    echo "== --threads $threads"
    start_server -v --threads "$threads" --metrics 127.0.0.1:0 || continue
    wait_for_line "$SERVER_OUT" '^wsk serve: metrics at http://127\.0\.0\.1:[0-9]+/metrics$' 10
    MPORT=$(grep -Eo 'metrics at http://127\.0\.0\.1:[0-9]+' "$SERVER_OUT" | grep -Eo '[0-9]+$')
    check "the metrics line on stdout" test -n "$MPORT"
    check "GET /healthz on the WebSocket port: 200 ok" bash -c '
        [[ $(curl -s --max-time 5 "http://127.0.0.1:$0/healthz") == ok ]]' "$PORT"
    check "GET /healthz on the metrics port: 200 ok" bash -c '
        [[ $(curl -s --max-time 5 "http://127.0.0.1:$0/healthz") == ok ]]' "$MPORT"
    check "traffic: 3 messages through one room" connect_expect 'a\nbb\nccc\n' 'a\nbb\nccc\n' \
        --wait 0.3 "ws://127.0.0.1:$PORT/m"
    check "a missing page: 404" test "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
        "http://127.0.0.1:$PORT/no-such-page")" = 404
    check "messages received: 3" until_total "$MPORT" wsk_messages_received_total 3
    check "bytes received on the sockets: the request and 3 frames at least" bash -c '
        (($(grep -E "^wsk_received_bytes_total" "$0" | awk "{ s += \$NF } END { print s }") > 100))' \
        "$TEST_TMP/metrics.txt"
    check "messages sent (back to the sender in its room): 3" \
        until_total "$MPORT" wsk_messages_sent_total 3
    check "WebSocket upgrades: 1" until_total "$MPORT" wsk_websockets_total 1
    check "HTTP errors with code 404: 1" until_total "$MPORT" wsk_http_errors_total 1 'code="404"'
    check "none open now" until_total "$MPORT" wsk_websockets_open 0
    check "Content-Type: the Prometheus text format 0.0.4" \
        grep -qi '^Content-Type: text/plain; version=0.0.4' "$TEST_TMP/metrics.head"
    check "every family has HELP and TYPE; every sample is well formed" "$PY" - \
        "$TEST_TMP/metrics.txt" "$threads" <<'PYEOF'
import re, sys
text = open(sys.argv[1]).read().splitlines()
threads = int(sys.argv[2])
helps, types, samples = set(), {}, {}
sample = re.compile(r'^([a-z_]+)(\{([a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*)\})? (\d+(\.\d+)?)$')
for line in text:
    if line.startswith("# HELP "):
        helps.add(line.split()[2])
    elif line.startswith("# TYPE "):
        _, _, name, kind = line.split()
        assert kind in ("counter", "gauge"), line
        types[name] = kind
    else:
        m = sample.match(line)
        assert m, "bad sample: %r" % line
        samples.setdefault(m.group(1), []).append(m.group(3) or "")
assert helps == set(types), (helps ^ set(types))
assert set(samples) == set(types), set(samples) ^ set(types)
for name, labels in samples.items():
    if types[name] == "counter":
        assert name.endswith("_total"), name
    want = threads * (12 if name == "wsk_http_errors_total" else 1)
    assert len(labels) == want, (name, len(labels), want)
    if threads > 1:
        assert all('thread="' in l for l in labels), (name, labels)
print("ok: %d families, %d samples" % (len(types), sum(map(len, samples.values()))))
PYEOF
    check "the metrics port refuses WebSocket upgrades (404)" bash -c '
        "$0" connect "ws://127.0.0.1:$1/" </dev/null 2>&1 | grep -q "HTTP 404"' "$WSK_BIN" "$MPORT"
    stop_server
    check "SIGTERM: exits 0 (--threads $threads, snapshot timers running)" test "$STOP_STATUS" = 0
    check "... within 3 s" test "$STOP_MS" -lt 3000
done

echo "== docs/deploy/wsk.service's command line"
# Its ExecStart, on this build and on free ports: it starts and drains.
unit=$WSK_SOURCE_DIR/docs/deploy/wsk.service
args=$(sed -n '/^ExecStart=/,/[^\\]$/p' "$unit" | tr -d '\\\n' | sed 's/^ExecStart=[^ ]* serve//')
args=${args//0.0.0.0:8080/127.0.0.1:0}
args=${args//127.0.0.1:9100/127.0.0.1:0}
check "the unit's ExecStart holds wsk serve options ($args)" test -n "$args"
# shellcheck disable=SC2086
if start_server $args; then
    check "... it starts with them and prints its metrics line" \
        wait_for_line "$SERVER_OUT" '^wsk serve: metrics at' 10
    stop_server
    check "... and SIGTERM (systemctl stop) exits 0" test "$STOP_STATUS" = 0
fi
if command -v systemd-analyze >/dev/null; then
    sed "s|/usr/local/bin/wsk|$WSK_BIN|; /^Documentation=/d" "$unit" >"$TEST_TMP/wsk.service"
    check "systemd-analyze verify accepts the unit" bash -c '
        out=$(systemd-analyze verify "$0" 2>&1); [[ -z $out ]] || { echo "$out"; exit 1; }' \
        "$TEST_TMP/wsk.service"
fi

echo "== access log (-v) and --log-format json"
check "--log-format xml: a usage error (2)" bash -c '
    "$0" serve --log-format xml 2>/dev/null; [[ $? == 2 ]]' "$WSK_BIN"
if start_server -v --auth-token sekrit --origin http://good.example; then
    curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/healthz"
    curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/no%22where"
    "$WSK_BIN" connect "ws://127.0.0.1:$PORT/room" </dev/null >/dev/null 2>&1
    "$WSK_BIN" connect --header 'Authorization: Bearer nope' "ws://127.0.0.1:$PORT/bad" \
        </dev/null >/dev/null 2>&1
    "$WSK_BIN" connect --origin http://evil.example "ws://127.0.0.1:$PORT/evil" </dev/null \
        >/dev/null 2>&1
    curl -s -o /dev/null --max-time 5 -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
        -H 'Sec-WebSocket-Version: 13' "http://127.0.0.1:$PORT/noupgrade"
    curl -s -o /dev/null --max-time 5 -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
        -H 'Sec-WebSocket-Version: 13' -H 'Sec-WebSocket-Key: short' "http://127.0.0.1:$PORT/badkey"
    "$WSK_BIN" connect "ws://127.0.0.1:$PORT/room?token=sekrit" </dev/null >/dev/null 2>&1
    check "an access line for GET /healthz: time, peer, request, 200, bytes" wait_for_line \
        "$SERVER_ERR" '^wsk serve: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z 127\.0\.0\.1:[0-9]+ "GET /healthz" 200 3$' 10
    check "... for a missing page: 404, the quote escaped" wait_for_line "$SERVER_ERR" \
        '"GET /no%22where" 404 ' 10
    check "... for a refused upgrade: 401 and the reason" wait_for_line "$SERVER_ERR" \
        '"GET /room" 401 0 "no token"$' 10
    check "... a wrong token" wait_for_line "$SERVER_ERR" '"GET /bad" 401 0 "wrong token"$' 10
    check "... a foreign Origin" wait_for_line "$SERVER_ERR" \
        '"GET /evil" 403 0 "Origin not allowed"$' 10
    check "... WebSocket headers without Upgrade: 426 and why" wait_for_line "$SERVER_ERR" \
        '"GET /noupgrade" 426 [0-9]+ "WebSocket headers without Upgrade: websocket"$' 10
    check "... a bad key: 400 and why" wait_for_line "$SERVER_ERR" \
        '"GET /badkey" 400 0 "Sec-WebSocket-Key not base64 of 16 bytes"$' 10
    check "... for an accepted one: 101" wait_for_line "$SERVER_ERR" '"GET /room" 101 0$' 10
    stop_server
fi
if start_server -v --log-format json --threads 2; then
    curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$PORT/nope"
    wait_for_line "$SERVER_ERR" '"type":"access"' 10
    stop_server
    check "--log-format json: every stderr line is a JSON object with time, prog, thread" \
        "$PY" -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
objs = [json.loads(l) for l in lines]
assert objs, "no lines"
for o in objs:
    assert o["time"].endswith("Z") and o["prog"] == "wsk serve" and o.get("thread", 1) in (1, 2), o
acc = [o for o in objs if o.get("type") == "access"]
assert acc and acc[0]["thread"] in (1, 2) and acc[0]["method"] == "GET" and acc[0]["path"] == "/nope" and acc[0]["status"] == 404, acc
assert any(o.get("msg", "").startswith("shutting down") for o in objs), objs
print("ok: %d lines, %d access" % (len(objs), len(acc)))' "$SERVER_ERR"
fi

echo "== /healthz in every mode"
for mode in --echo "--proxy tcp://127.0.0.1:9"; do
    # shellcheck disable=SC2086
    if start_server $mode; then
        check "/healthz with $mode: 200 ok" bash -c '
            [[ $(curl -s --max-time 5 "http://127.0.0.1:$0/healthz") == ok ]]' "$PORT"
        stop_server
    fi
done

finish
