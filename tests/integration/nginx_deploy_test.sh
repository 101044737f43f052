#!/usr/bin/env bash
# The deployment of docs/deploy/nginx-wsk.conf, as written there: nginx
# (nginx-light) in front of two wsk serve --threads 2 --redis processes and
# a redis-server of the test's own, every port from the kernel. Through
# nginx: the chat page; Python clients in several rooms spread over both
# processes (every message once per subscriber, in order per sender, none
# across rooms); two headless Chromium pages chatting, their WebSockets on
# different processes (least_conn); POST /publish from loopback. SIGTERM
# drains both processes.
#
# Skipped when nginx or redis-server is missing, unless scripts/deps.sh ran
# here (WSK_DEPS_RAN=1, as CI sets it): then their absence is a failure.
source "$(dirname "$0")/lib.sh"

for tool in nginx redis-server redis-cli; do
    if ! command -v "$tool" >/dev/null && ! [[ -x /usr/sbin/$tool ]]; then
        if [[ -n ${WSK_DEPS_RAN:-} ]]; then
            fail "$tool is not installed, yet scripts/deps.sh test ran"
        else
            echo "SKIP: $tool not installed (scripts/deps.sh test installs it)"
        fi
        finish
    fi
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if "$WSK_BIN" serve --echo --redis redis://127.0.0.1 2>&1 | grep -q 'built without hiredis'; then
    echo "SKIP: this wsk was built without hiredis (libhiredis-dev)"
    finish
fi
CONF=$WSK_SOURCE_DIR/docs/deploy/nginx-wsk.conf

start_redis || { fail "start redis-server"; finish; }
start_server -v --threads 2 --redis "redis://127.0.0.1:$REDIS_PORT" || finish
A_PID=$SERVER_PID A_PORT=$PORT A_ERR=$SERVER_ERR
start_server -v --threads 2 --redis "redis://127.0.0.1:$REDIS_PORT" || finish
B_PID=$SERVER_PID B_PORT=$PORT B_ERR=$SERVER_ERR

# nginx: the documented server block with the test's ports, in a main
# configuration that keeps everything in TEST_TMP.
hold_dead_port || finish
NGINX_PORT=$DEAD_PORT
stop_pid "$LISTENER_PID"
mkdir -p "$TEST_TMP/nginx"
chmod 777 "$TEST_TMP/nginx"
sed -e "s/^\(    \)listen 80;/\1listen 127.0.0.1:$NGINX_PORT;/" \
    -e "s/server 127\.0\.0\.1:8081;/server 127.0.0.1:$A_PORT;/" \
    -e "s/server 127\.0\.0\.1:8082;/server 127.0.0.1:$B_PORT;/" "$CONF" >"$TEST_TMP/wsk.conf"
check "the documented configuration names two backends and the port (all replaced)" bash -c '
    grep -q "listen 127.0.0.1:$1;" "$0" && grep -q "server 127.0.0.1:$2;" "$0" &&
    grep -q "server 127.0.0.1:$3;" "$0"' "$TEST_TMP/wsk.conf" "$NGINX_PORT" "$A_PORT" "$B_PORT"
cat >"$TEST_TMP/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $TEST_TMP/nginx/nginx.pid;
error_log $TEST_TMP/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log $TEST_TMP/nginx/access.log;
    client_body_temp_path $TEST_TMP/nginx/body;
    proxy_temp_path $TEST_TMP/nginx/proxy;
    include $TEST_TMP/wsk.conf;
}
EOF
check "nginx -t accepts it" "$NGINX" -t -q -c "$TEST_TMP/nginx.conf" -e "$TEST_TMP/nginx/error.log"
"$NGINX" -c "$TEST_TMP/nginx.conf" -e "$TEST_TMP/nginx/error.log" >"$TEST_TMP/nginx.out" 2>&1 &
NGINX_PID=$!
track_pid "$NGINX_PID"
ready=0
for ((i = 0; i < 200; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$NGINX_PORT/") == 200 ]] &&
        { ready=1; break; }
    sleep 0.05
done
check "nginx serves the chat page from the backends" test "$ready" = 1
((ready)) || { cat "$TEST_TMP/nginx/error.log"; finish; }
N=ws://127.0.0.1:$NGINX_PORT

echo "== Python clients through nginx"
CHECK_VERBOSE=1 check "rooms through nginx over 2 processes x 2 threads: once each, in order" \
    "$PY" "$PEERS/cluster_peer.py" mesh "$REDIS_PORT" "$N" "$N" 50 "$A_ERR" "$B_ERR"
check "... both processes had clients" bash -c '
    grep -q "open /r" "$0" && grep -q "open /r" "$1"' "$A_ERR" "$B_ERR"

echo "== two browsers through nginx"
# Clients of / and /team/a on both processes (straight, not through nginx)
# keep those rooms subscribed, so that no message races a SUBSCRIBE.
for url in "ws://127.0.0.1:$A_PORT" "ws://127.0.0.1:$B_PORT"; do
    for room in / /team/a; do
        start_bg "$TEST_TMP/hold.$RANDOM.out" "$PY" "$PEERS/cluster_peer.py" listen "$url$room" \
            100000 120
    done
done
check "both processes subscribed to / and /team/a" bash -c '
    for ((i = 0; i < 200; i++)); do
        out=$(redis-cli -p "$0" PUBSUB NUMSUB wsk:room:/ wsk:room:/team/a | tr "\n" " ")
        # At least one subscription per process and room (a thread each).
        set -- $out
        (($2 >= 2 && $4 >= 2)) && exit 0
        sleep 0.05
    done
    echo "NUMSUB: $out"; exit 1' "$REDIS_PORT"
a_before=$(grep -cE 'open /(,|$)' "$A_ERR" || true)
b_before=$(grep -cE 'open /(,|$)' "$B_ERR" || true)
if [[ ! -d $PEERS/node_modules/playwright-core || ! -x /usr/bin/chromium ]]; then
    fail "Chromium or tests/peers/node_modules is missing: run scripts/deps.sh test"
else
    ARTIFACTS=$WSK_BUILD_DIR/artifacts
    mkdir -p "$ARTIFACTS"
    CHECK_TIMEOUT=80 CHECK_VERBOSE=1 check "two Chromium pages chat through nginx" \
        env HOME="$TEST_TMP" "$NODE" "$PEERS/chat_browser.mjs" "http://127.0.0.1:$NGINX_PORT/" \
        "$N/" "$ARTIFACTS/chat-nginx.png"
    # Pages A and B and the wire watcher opened /: least_conn put the first
    # two on different processes.
    check "... with WebSockets of / on both processes" bash -c '
        (($(grep -cE "open /(,|\$)" "$0") > $2 && $(grep -cE "open /(,|\$)" "$1") > $3))' \
        "$A_ERR" "$B_ERR" "$a_before" "$b_before"
fi

echo "== POST /publish through nginx"
start_bg "$TEST_TMP/pub.out" "$PY" "$PEERS/cluster_peer.py" listen "ws://127.0.0.1:$B_PORT/news" 1 20
PUB_PID=$BG_PID
wait_for_line "$TEST_TMP/pub.out" '^connected' 10
check "POST /publish/news from loopback through nginx: 200" test "$(curl -s -o /dev/null \
    -w '%{http_code}' --max-time 10 -d 'via nginx' "http://127.0.0.1:$NGINX_PORT/publish/news")" = 200
wait_pid "$PUB_PID" 20
check "... reaches a client of /news on the second process, whichever took the POST" bash -c '
    (($0 == 0)) && grep -qx "text: via nginx" "$1"' "$WAIT_STATUS" "$TEST_TMP/pub.out"

echo "== SIGTERM"
stop_pid "$NGINX_PID" 5
stop_pid "$A_PID" 10
check "the first wsk serve drains and exits 0" test "$STOP_STATUS" = 0
stop_pid "$B_PID" 10
check "the second drains and exits 0" test "$STOP_STATUS" = 0

finish
