#!/usr/bin/env bash
# wsk danmaku against tests/peers/danmaku_mock.py, a mock Douyu barrage
# server that checks every client packet strictly (both lengths, type 689,
# the zero bytes, the NUL, loginreq -> joingroup -> mrkl, gid -9999) and
# prints a VIOLATION line for anything wrong. Every scenario runs over raw
# TCP and over binary WebSocket messages; each asserts the client's exact
# stdout lines, its stderr where it matters, and what the mock saw. The real
# servers are not reachable from the test machines: the mock is all this
# tests against.
source "$(dirname "$0")/lib.sh"

ROOM=9999
CLIENT_SEQ=0

# start_mock MODE SCENARIO [ARGS...]: the mock over MODE (tcp or ws), expecting
# room ROOM. Sets MOCK_PID, MOCK_URL and MOCK_OUT (its lines after the first).
start_mock()
{
    local mode=$1 scenario=$2
    shift 2
    if ! start_listener "$PY" "$PEERS/danmaku_mock.py" "--$mode" --scenario "$scenario" \
        --room "$ROOM" "$@"; then
        fail "start danmaku_mock.py --$mode --scenario $scenario"
        return 1
    fi
    MOCK_PID=$LISTENER_PID
    MOCK_URL=$LISTENER_URL
    MOCK_OUT=$LISTENER_OUT
}

# start_client ARGS...: `wsk danmaku ROOM --server MOCK_URL ARGS...` in the
# background. Sets CLIENT_PID, CLIENT_OUT, CLIENT_ERR.
start_client()
{
    CLIENT_SEQ=$((CLIENT_SEQ + 1))
    CLIENT_OUT=$TEST_TMP/client.$CLIENT_SEQ.out
    CLIENT_ERR=$TEST_TMP/client.$CLIENT_SEQ.err
    # Default SIGINT, as at a terminal: bash makes background jobs ignore it.
    env --default-signal=INT "$WSK_BIN" danmaku "$ROOM" --server "$MOCK_URL" "$@" \
        >"$CLIENT_OUT" 2>"$CLIENT_ERR" &
    CLIENT_PID=$!
    track_pid "$CLIENT_PID"
}

# wait_lines FILE N [SECONDS]: waits (default 10 s) until FILE has N lines.
wait_lines()
{
    local deadline=$((SECONDS + ${3:-10}))
    until (($(wc -l <"$1") >= $2)); do
        if ((SECONDS >= deadline)); then
            echo "$1 has $(wc -l <"$1") lines, expected $2 within ${3:-10}s:"
            head -c 2000 "$1" | sed 's/^/  /'
            return 1
        fi
        sleep 0.05
    done
}

# client_prints EXPECTED: waits for as many stdout lines as EXPECTED has
# (printf %b), then compares them byte for byte.
client_prints()
{
    printf '%b' "$1" >"$TEST_TMP/want"
    wait_lines "$CLIENT_OUT" "$(wc -l <"$TEST_TMP/want")" || return 1
    sleep 0.1 # anything more would show up now
    if ! cmp -s "$CLIENT_OUT" "$TEST_TMP/want"; then
        echo "--- expected"
        cat "$TEST_TMP/want"
        echo "--- got"
        head -c 2000 "$CLIENT_OUT"
        echo "--- stderr"
        head -5 "$CLIENT_ERR"
        return 1
    fi
}

# client_exits SIGNAL: sends SIGNAL and checks that the client exits 0
# within 10 s.
client_exits()
{
    kill -"$1" "$CLIENT_PID" 2>/dev/null
    wait_pid "$CLIENT_PID" 10 || return 1
    echo "exit status $WAIT_STATUS"
    ((WAIT_STATUS == 0))
}

mock_saw()
{
    wait_for_line "$MOCK_OUT" "$1" "${2:-10}"
}

no_violation()
{
    if grep VIOLATION "$MOCK_OUT"; then
        return 1
    fi
    cat "$MOCK_OUT"
}

# count_lines FILE REGEX N: exactly N lines of FILE match REGEX.
count_lines()
{
    local n
    n=$(grep -Ec -- "$2" "$1")
    echo "$n lines match /$2/"
    sed 's/^/  /' "$1" | head -10
    ((n == $3))
}

BASIC='alice: hello\na@b/c: x/y@z\n小明: 你好，世界\n* bob entered\n* carol sent gift 824 x 1 (combo 3)\ndave: bye\n'

for mode in tcp ws; do
    echo "== $mode: basic (chat with escaped and non-ASCII names, uenter, dgb)"
    if start_mock "$mode" basic; then
        start_client
        check "$mode basic: the exact lines" client_prints "$BASIC"
        check "$mode basic: nothing on stderr" test ! -s "$CLIENT_ERR"
        check "$mode basic: SIGTERM exits 0" client_exits TERM
        check "$mode basic: logged in, joined, logged out" mock_saw "client 1 logout"
        check "$mode basic: no violation" no_violation
        stop_pid "$MOCK_PID"
    fi

    echo "== $mode: split (loginres byte by byte, packets coalesced and cut anywhere)"
    if start_mock "$mode" split; then
        start_client
        check "$mode split: the exact lines" client_prints "$BASIC"
        check "$mode split: SIGINT exits 0" client_exits INT
        check "$mode split: no violation" no_violation
        stop_pid "$MOCK_PID"
    fi

    echo "== $mode: big (a 60,000-byte text)"
    if start_mock "$mode" big; then
        start_client
        check "$mode big: the big line whole, then the next" \
            client_prints "big: $(head -c 60000 /dev/zero | tr '\0' x)\nsmall: after\n"
        check "$mode big: SIGTERM exits 0" client_exits TERM
        check "$mode big: no violation" no_violation
        stop_pid "$MOCK_PID"
        # Over the limit: a protocol error on every link, reported and retried.
        start_mock "$mode" big &&
            start_client --max-packet 32k &&
            check "$mode big, --max-packet 32k: refused, reported, retried" \
                wait_for_line "$CLIENT_ERR" "^wsk danmaku: protocol error: (packet|a WebSocket message) larger than the limit; reconnecting in 1 s$" &&
            check "$mode big, --max-packet 32k: logs in again" mock_saw "client 2 loginreq" 5 &&
            check "$mode big, --max-packet 32k: nothing printed" client_prints ''
        check "$mode big, --max-packet 32k: SIGTERM exits 0" client_exits TERM
        stop_pid "$MOCK_PID"
    fi

    echo "== $mode: drop (the link is cut twice; each time a new login)"
    if start_mock "$mode" drop; then
        start_client
        check "$mode drop: every link's lines" \
            client_prints 'alice: one\nalice: two\nalice: again\nalice: stay\n'
        check "$mode drop: three logins" mock_saw "client 3 joingroup rid=$ROOM gid=-9999"
        # Each drop came after a successful login: the delay is back to 1 s.
        check "$mode drop: two losses, each retried after 1 s" \
            count_lines "$CLIENT_ERR" "reconnecting in 1 s$" 2
        check "$mode drop: SIGTERM exits 0" client_exits TERM
        check "$mode drop: no violation" no_violation
        stop_pid "$MOCK_PID"
    fi

    echo "== $mode: bad (a packet whose two lengths differ)"
    if start_mock "$mode" bad; then
        start_client
        check "$mode bad: the good line, then the next link's" \
            client_prints 'alice: good\nalice: recovered\n'
        check "$mode bad: one line on stderr says why" \
            count_lines "$CLIENT_ERR" "^wsk danmaku: protocol error: the two lengths differ; reconnecting in 1 s$" 1
        check "$mode bad: SIGTERM exits 0" client_exits TERM
        check "$mode bad: no violation" no_violation
        stop_pid "$MOCK_PID"
    fi

    echo "== $mode: silent (loginreq never answered)"
    if start_mock "$mode" silent; then
        start_client --login-timeout 0.3
        check "$mode silent: gives up on the login, retries after 1 s" \
            wait_for_line "$CLIENT_ERR" "no loginres from the server within 0.3 s; reconnecting in 1 s$"
        check "$mode silent: then after 2 s (the delay doubles)" \
            wait_for_line "$CLIENT_ERR" "no loginres from the server within 0.3 s; reconnecting in 2 s$"
        check "$mode silent: the mock saw a new loginreq each time" mock_saw "client 2 loginreq roomid=$ROOM"
        check "$mode silent: SIGINT exits 0" client_exits INT
        check "$mode silent: no violation" no_violation
        check "$mode silent: nothing on stdout" test ! -s "$CLIENT_OUT"
        stop_pid "$MOCK_PID"
    fi

    echo "== $mode: heartbeats (--heartbeat 0.2; the mock drops a client silent for 1 s)"
    if start_mock "$mode" basic --max-silence 1; then
        start_client --heartbeat 0.2 -v
        check "$mode heartbeat: five mrkl within 5 s" mock_saw "client 1 mrkl 5" 5
        check "$mode heartbeat: -v logs them" wait_for_line "$CLIENT_ERR" "heartbeat 5$"
        sleep 1.2 # longer than --max-silence: still there
        check "$mode heartbeat: not dropped for silence" no_violation
        check "$mode heartbeat: one link only" count_lines "$MOCK_OUT" "connected$" 1
        check "$mode heartbeat: SIGTERM exits 0" client_exits TERM
        stop_pid "$MOCK_PID"
    fi

    echo "== $mode: --json"
    if start_mock "$mode" basic; then
        start_client --json
        check "$mode json: seven lines" wait_lines "$CLIENT_OUT" 7
        check "$mode json: each line one JSON object, the fields decoded" "$PY" -c '
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
assert all(isinstance(r, dict) for r in rows), rows
types = [r["type"] for r in rows]
assert types == ["loginres", "chatmsg", "chatmsg", "chatmsg", "uenter", "dgb", "chatmsg"], types
assert rows[2]["nn"] == "a@b/c" and rows[2]["txt"] == "x/y@z", rows[2]
assert rows[3]["nn"] == "小明" and rows[3]["txt"] == "你好，世界", rows[3]
assert rows[5]["gfid"] == "824" and rows[5]["hits"] == "3", rows[5]
print(len(rows), "objects")' "$CLIENT_OUT"
        check "$mode json: SIGTERM exits 0" client_exits TERM
        check "$mode json: no violation" no_violation
        stop_pid "$MOCK_PID"
    fi
done

echo "== nobody listening"
if hold_dead_port; then
    MOCK_URL=tcp://127.0.0.1:$DEAD_PORT
    start_client
    check "refused: one line per attempt, the delay doubling" \
        wait_for_line "$CLIENT_ERR" "cannot connect to tcp://127.0.0.1:$DEAD_PORT: .*; reconnecting in 2 s$"
    check "refused: SIGTERM exits 0 while waiting" client_exits TERM
fi

# usage_error PATTERN ARGS...: `wsk danmaku ARGS...` exits 2 with a first
# stderr line matching PATTERN and nothing on stdout.
usage_error()
{
    local pattern=$1 rv
    shift
    timeout -k 5 10 "$WSK_BIN" danmaku "$@" >"$TEST_TMP/u.out" 2>"$TEST_TMP/u.err"
    rv=$?
    echo "exit $rv; stderr:"
    sed 's/^/  /' "$TEST_TMP/u.err"
    ((rv == 2)) && [[ ! -s $TEST_TMP/u.out ]] && head -1 "$TEST_TMP/u.err" | grep -Eq -- "$pattern"
}

echo "== bad command lines"
check "no room" usage_error "missing the room id" --json
check "room not digits" usage_error "room id 'abc': expected digits" abc
check "room with a sign" usage_error "room id '-1'" -- -1
check "room too long" usage_error "room id" 123456789012345678901
check "http:// server" usage_error "expected tcp://HOST:PORT" 1 --server http://127.0.0.1:1/
check "tcp:// without a port" usage_error "--server 'tcp://h'" 1 --server tcp://h
check "tcp:// with a path" usage_error "only HOST:PORT" 1 --server tcp://h:1/x
check "not a URL" usage_error "--server 'nonsense'" 1 --server nonsense
check "heartbeat 0" usage_error "--heartbeat '0': expected positive seconds" 1 --heartbeat 0
check "heartbeat not a number" usage_error "--heartbeat 'soon'" 1 --heartbeat soon
check "max-packet too small" usage_error "--max-packet '10'" 1 --max-packet 10
check "max-packet too big" usage_error "--max-packet '1G'" 1 --max-packet 1G
check "unknown option" usage_error "unknown option '--nope'" 1 --nope
check "--insecure with tcp://" usage_error "for ws:// and wss://" 1 --server tcp://h:1 --insecure
check "--help explains every option, with an example" bash -c '
    "$1" danmaku --help >"$2" || exit 1
    for o in --server --json --heartbeat --login-timeout --connect-timeout --max-packet \
        --origin --cacert --insecure --verbose --quiet --help "wsk danmaku 9999"; do
        grep -q -- "$o" "$2" || { echo "no $o"; exit 1; }
    done' _ "$WSK_BIN" "$TEST_TMP/help"
check "wsk --help lists danmaku" bash -c '"$1" --help | grep -q "danmaku ROOM"' _ "$WSK_BIN"

finish
