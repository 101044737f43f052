#!/usr/bin/env bash
# wsk serve --redis: two processes joined by their own redis-server. Rooms
# across processes (every message once per subscriber, in order per sender,
# none across rooms, binary included), POST /publish on one reaching the
# other, Redis killed and restarted mid-test (local delivery goes on, the
# misses are counted, delivery across processes resumes without restarting
# wsk), bad URLs, and SIGTERM draining both.
#
# Skipped when redis-server is missing, unless scripts/deps.sh ran here
# (WSK_DEPS_RAN=1, as CI sets it): then its absence is a failure.
source "$(dirname "$0")/lib.sh"

ROOMS=("$PY" "$PEERS/rooms_peer.py")

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    if [[ -n ${WSK_DEPS_RAN:-} ]]; then
        fail "redis-server is not installed, yet scripts/deps.sh test ran"
    else
        echo "SKIP: redis-server not installed (scripts/deps.sh test installs it)"
    fi
    finish
fi
if "$WSK_BIN" serve --echo --redis redis://127.0.0.1 2>&1 | grep -q 'built without hiredis'; then
    echo "SKIP: this wsk was built without hiredis (libhiredis-dev)"
    finish
fi

# numsub CHANNEL N: waits (10 s) until N clients subscribe to CHANNEL.
numsub()
{
    local i got
    for ((i = 0; i < 200; i++)); do
        got=$(redis-cli -p "$REDIS_PORT" PUBSUB NUMSUB "$1" 2>/dev/null | tail -1)
        [[ $got == "$2" ]] && return 0
        sleep 0.05
    done
    echo "PUBSUB NUMSUB $1: $got, want $2"
    return 1
}

# listener NAME URL N: prints the next N messages of URL to $TEST_TMP/NAME.out.
listener()
{
    start_bg "$TEST_TMP/$1.out" "${ROOMS[@]}" listen "$2" "$3"
    LISTEN_PID=$BG_PID
    wait_for_line "$TEST_TMP/$1.out" '^connected' 10
}

post()
{
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 -d "$2" "http://127.0.0.1:$1$3"
}

# got NAME N: the listener NAME exited 0 after its N messages (10 s).
got()
{
    wait_pid "$1" 10 && ((WAIT_STATUS == 0))
}

echo "== bad URLs"
for url in foo http://h:1 'redis://:@h' redis://h:0 redis://h:x 'redis://[::1' redis://h/x \
    'redis://h?a=1' rediss://h; do
    check "--redis '$url': a usage error (2)" \
        bash -c '"$1" serve --redis "$2" 2>&1; [[ $? == 2 ]]' _ "$WSK_BIN" "$url"
done
check "--redis with --echo: a usage error" \
    bash -c '"$1" serve --echo --redis redis://127.0.0.1 2>&1; [[ $? == 2 ]]' _ "$WSK_BIN"

echo "== two processes, one Redis"
if ! start_redis; then
    fail "start redis-server"
    finish
fi
start_server -v --redis "redis://127.0.0.1:$REDIS_PORT" || finish
A_PID=$SERVER_PID A_PORT=$PORT A_ERR=$SERVER_ERR
start_server -v --redis "redis://127.0.0.1:$REDIS_PORT/0" || finish
B_PID=$SERVER_PID B_PORT=$PORT B_ERR=$SERVER_ERR
A=ws://127.0.0.1:$A_PORT B=ws://127.0.0.1:$B_PORT

CHECK_VERBOSE=1 check "rooms across processes: once each, in order, no leaks, binary" \
    "$PY" "$PEERS/cluster_peer.py" mesh "$REDIS_PORT" "$A" "$B" 100

check "rooms with no client left are unsubscribed" numsub wsk:room:/r1 0

if listener pb "$B/team/a" 1 && check "B subscribed to /team/a" numsub wsk:room:/team/a 1; then
    check "POST /publish/team/a on A: 200" test "$(post "$A_PORT" 'from A' /publish/team/a)" = 200
    check "... reaches /team/a on B" got "$LISTEN_PID"
    check "... as sent" grep -qx 'text: from A' "$TEST_TMP/pb.out"
fi

echo "== two processes x two threads, one Redis"
start_server -v --threads 2 --redis "redis://127.0.0.1:$REDIS_PORT" || finish
C_PID=$SERVER_PID C_ERR=$SERVER_ERR C=ws://127.0.0.1:$PORT
start_server -v --threads 2 --redis "redis://127.0.0.1:$REDIS_PORT" || finish
D_PID=$SERVER_PID D_ERR=$SERVER_ERR D=ws://127.0.0.1:$PORT
# Each thread with clients in a room subscribes to it: the peer reads the
# logs to know how many subscriptions to wait for.
CHECK_VERBOSE=1 check "rooms across 2 processes x 2 threads: once each, in order, no leaks" \
    "$PY" "$PEERS/cluster_peer.py" mesh "$REDIS_PORT" "$C" "$D" 100 "$C_ERR" "$D_ERR"
# (serve_threads_test checks that connections reach both threads; here the
# kernel's hash may, rarely, put them all on one.)
echo "clients per thread: $(grep -Eho '\[thread [12]\]: [^ ]+: open /' "$C_ERR" "$D_ERR" |
    cut -d' ' -f2 | sort | uniq -c | tr -s ' \n' ' ')"
stop_pid "$C_PID" 5
check "SIGTERM: the first 2-thread process exits 0" test "$STOP_STATUS" = 0
stop_pid "$D_PID" 5
check "SIGTERM: the second exits 0" test "$STOP_STATUS" = 0

echo "== Redis killed and restarted"
listener oa "$A/o" 2 && A_O=$LISTEN_PID
# Across the outage: a deadline longer than the outage lasts.
start_bg "$TEST_TMP/ob.out" "$PY" "$PEERS/cluster_peer.py" listen "$B/o" 1 60
B_O=$BG_PID
wait_for_line "$TEST_TMP/ob.out" '^connected' 10
check "both processes subscribed to /o" numsub wsk:room:/o 2
kill -KILL "$REDIS_PID"
wait "$REDIS_PID" 2>/dev/null
untrack_pid "$REDIS_PID"
check "A says Redis is lost" wait_for_line "$A_ERR" 'redis: lost 127.0.0.1' 10
check "POST on A during the outage: 200" test "$(post "$A_PORT" 'outage 1' /publish/o)" = 200
check "POST on A during the outage: 200 (2)" test "$(post "$A_PORT" 'outage 2' /publish/o)" = 200
check "... delivered locally on A" got "$A_O"
sleep 1 # retries while down must not log again
check "one line per outage" test "$(grep -c 'redis: lost' "$A_ERR")" = 1
start_redis "$REDIS_PORT" || fail "restart redis-server"
check "A heals without restart" wait_for_line "$A_ERR" 'redis: .* is back after' 10
check "B heals without restart" wait_for_line "$B_ERR" 'redis: .* is back after' 10
check "A counted the outage's messages as not sent" \
    grep -q '2 messages did not reach other processes' "$A_ERR"
# A's client of /o is gone (it had its two messages); B's is still there.
check "B resubscribed to /o" numsub wsk:room:/o 1
check "POST on A after the restart: 200" test "$(post "$A_PORT" 'after' /publish/o)" = 200
check "... reaches /o on B" wait_pid "$B_O" 20
check "... and only what came after the outage" grep -qx 'text: after' "$TEST_TMP/ob.out"

echo "== Redis down at start, a wrong password, a Redis that stops answering"
hold_dead_port || finish
LATE_PORT=$DEAD_PORT
stop_pid "$LISTENER_PID"
start_server -v --redis "redis://127.0.0.1:$LATE_PORT" || finish
L_PID=$SERVER_PID L_PORT=$PORT L_ERR=$SERVER_ERR
check "Redis down at start: one clear line, and wsk serve runs on" \
    wait_for_line "$L_ERR" "redis: cannot reach 127.0.0.1:$LATE_PORT: Connection refused" 10
listener la "ws://127.0.0.1:$L_PORT/late" 1 && L_LISTEN=$LISTEN_PID
check "... POST meanwhile: 200" test "$(post "$L_PORT" 'local only' /publish/late)" = 200
check "... delivered locally" got "$L_LISTEN"
SAVED_PORT=$REDIS_PORT SAVED_PID=$REDIS_PID
start_redis "$LATE_PORT" || fail "start the late redis-server"
check "... Redis started later: the process joins without restart" \
    wait_for_line "$L_ERR" 'redis: .* is back after' 15
stop_pid "$L_PID" 5
check "... and exits 0 on SIGTERM" test "$STOP_STATUS" = 0
stop_pid "$REDIS_PID" 5

hold_dead_port || finish
AUTH_PORT=$DEAD_PORT
stop_pid "$LISTENER_PID"
redis-server --port "$AUTH_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --requirepass 's3cret' >"$TEST_TMP/redis-auth.log" 2>&1 &
AUTH_PID=$!
track_pid "$AUTH_PID"
for ((i = 0; i < 200; i++)); do
    redis-cli -p "$AUTH_PORT" -a s3cret --no-auth-warning PING 2>/dev/null | grep -q PONG && break
    sleep 0.05
done
start_server -v --redis "redis://:wrong@127.0.0.1:$AUTH_PORT" || finish
W_PID=$SERVER_PID W_ERR=$SERVER_ERR
check "a wrong password: one clear line naming Redis's refusal" \
    wait_for_line "$W_ERR" "redis: cannot reach 127.0.0.1:$AUTH_PORT: WRONGPASS" 10
sleep 0.5 # retries while refused must not log again
check "... once (each retry's reason only with -v)" test "$(grep -c 'cannot reach' "$W_ERR")" = 1
server_alive "... and wsk serve runs on"
stop_pid "$W_PID" 5
start_server -v --redis "redis://:s3cret@127.0.0.1:$AUTH_PORT" || finish
R_PID=$SERVER_PID R_PORT=$PORT R_ERR=$SERVER_ERR
listener ra "ws://127.0.0.1:$R_PORT/auth" 1000 && R_LISTEN=$LISTEN_PID
check "the right password: subscribed" bash -c '
    for ((i = 0; i < 200; i++)); do
        [[ $(redis-cli -p "$0" -a s3cret --no-auth-warning PUBSUB NUMSUB wsk:room:/auth |
            tail -1) == 1 ]] && exit 0
        sleep 0.05
    done; exit 1' "$AUTH_PORT"
# A Redis that stops answering (SIGSTOP): PUBLISHes wait unanswered up to
# --redis-max-queue; past it messages stay here, counted; local delivery
# goes on; when Redis answers again nothing is lost that was queued.
stop_pid "$R_PID" 5
start_server -v --redis "redis://:s3cret@127.0.0.1:$AUTH_PORT" --redis-max-queue 8k || finish
R_PID=$SERVER_PID R_PORT=$PORT R_ERR=$SERVER_ERR
listener rb "ws://127.0.0.1:$R_PORT/slow" 40 && R_LISTEN=$LISTEN_PID
kill -STOP "$AUTH_PID"
body=$(head -c 1000 /dev/zero | tr '\0' x)
codes=$(for i in $(seq 40); do post "$R_PORT" "$body" /publish/slow; echo; done | sort | uniq -c |
    tr -s ' \n' ' ')
kill -CONT "$AUTH_PID"
check "Redis stopped: 40 POSTs of 1,000 bytes all answered 200 ($codes)" \
    test "$(echo $codes)" = "40 200"
check "... and all 40 delivered locally" got "$R_LISTEN"
stop_pid "$R_PID" 5
check "... the ones past --redis-max-queue 8k counted at exit" \
    grep -Eq '[0-9]+ messages? not sent to other processes' "$R_ERR"
REDIS_PORT=$SAVED_PORT REDIS_PID=$SAVED_PID

echo "== SIGTERM"
stop_pid "$A_PID" 5
check "A drains and exits 0 on SIGTERM" test "$STOP_STATUS" = 0
check "A prints the counter at exit" grep -q 'messages not sent to other processes' "$A_ERR"
stop_pid "$B_PID" 5
check "B drains and exits 0 on SIGTERM" test "$STOP_STATUS" = 0

finish
