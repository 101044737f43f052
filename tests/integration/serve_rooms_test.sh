#!/usr/bin/env bash
# wsk serve's rooms (broadcast mode: the upgrade request's path is the room)
# and POST /publish/ROOM. Peers: Python websockets (tests/peers/rooms_peer.py)
# and curl.
#
# What is decided and tested here: the room is the path as sent, without the
# query (percent-escapes are not decoded: /caf%C3%A9 and /caf%c3%a9 are two
# rooms); without --publish-token only loopback clients may publish; with it
# every request needs "Authorization: Bearer TOKEN", loopback included.
source "$(dirname "$0")/lib.sh"

ROOMS=("$PY" "$PEERS/rooms_peer.py")
BASE=

# post EXPECTED_STATUS URL_PATH CURL_ARGS...: POSTs (unless the args say
# otherwise) and checks the status; the body goes to $TEST_TMP/post.body.
post()
{
    local want=$1 path=$2 got
    shift 2
    got=$(curl -s -o "$TEST_TMP/post.body" -w '%{http_code}' --max-time 10 --path-as-is \
        "$@" "http://127.0.0.1:$PORT$path")
    echo "curl $* $path: $got, body: $(head -c 200 "$TEST_TMP/post.body")"
    [[ $got == "$want" ]]
}

# post_count N PATH CURL_ARGS...: 200 and the body says N receivers.
post_count()
{
    local n=$1
    shift
    post 200 "$@" && [[ $(cat "$TEST_TMP/post.body") == "$n" ]]
}

# listener NAME ROOM_PATH N: a WebSocket client of ROOM_PATH that prints the
# next N messages to $TEST_TMP/NAME.out; waits until it is connected.
listener()
{
    start_bg "$TEST_TMP/$1.out" "${ROOMS[@]}" listen "$BASE$2" "$3"
    wait_for_line "$TEST_TMP/$1.out" '^connected' 10
}

# lines NAME: the messages a listener printed, one per line.
lines()
{
    grep -v '^connected' "$TEST_TMP/$1.out"
}

echo "== rooms"
if start_server; then
    BASE=ws://127.0.0.1:$PORT
    CHECK_VERBOSE=1 check "rooms isolate; the query is not part of the room; / is the lobby" \
        "${ROOMS[@]}" isolate "$BASE"
    CHECK_VERBOSE=1 check "rooms are raw paths: percent-escapes are bytes of the name" \
        "${ROOMS[@]}" escapes "$BASE"
    check "a room name over 256 bytes: closed with 1008" \
        "${ROOMS[@]}" closed "$BASE/$(printf 'r%.0s' $(seq 300))" 1008
    server_alive "the server is still running"
    stop_server
fi

echo "== POST /publish/ROOM from loopback"
if start_server -v; then
    BASE=ws://127.0.0.1:$PORT
    check "a client of /team/a is connected" listener a /team/a 3
    check "a client of /team/b is connected" listener b /team/b 1
    check "a client of the lobby is connected" listener lobby / 2
    check "a client of /caf%C3%A9 is connected" listener cafe /caf%C3%A9 1
    check "POST /publish/team/a: 200, 1 receiver" post_count 1 /publish/team/a -d 'hello team a'
    printf 'bin\377\000ary' >"$TEST_TMP/binary"
    check "a body that is not UTF-8 goes out binary" \
        post_count 1 /publish/team/a --data-binary @"$TEST_TMP/binary"
    check "an empty body is an empty message" post_count 1 /publish/team/a -X POST
    check "POST /publish/team/b reaches /team/b only" post_count 1 /publish/team/b -d 'for b'
    check "POST /publish reaches the lobby" post_count 1 /publish -d 'lobby 1'
    check "POST /publish/ reaches the lobby" post_count 1 /publish/ -d 'lobby 2'
    check "POST /publish/caf%C3%A9 reaches the room of that raw path" \
        post_count 1 /publish/caf%C3%A9 -d 'café'
    check "POST /publish/caf%c3%a9 is another room: 0 receivers" \
        post_count 0 /publish/caf%c3%a9 -d 'nobody'
    check "POST /publish/nobody: 200, 0 receivers" post_count 0 /publish/nobody -d 'x'
    check "a room name over 256 bytes: 414" \
        post 414 "/publish/$(printf 'r%.0s' $(seq 300))" -d x
    check "each listener got exactly its room's messages, in order" bash -c '
        for _ in $(seq 100); do
            [[ $(grep -c "^text\|^binary" "$0/a.out") -ge 3 && $(grep -c "^text" "$0/lobby.out") -ge 2 ]] && break
            sleep 0.05
        done
        cat "$0/a.out" "$0/b.out" "$0/lobby.out" "$0/cafe.out"
        diff <(grep -v ^connected "$0/a.out") <(printf "text: hello team a\nbinary: 62696eff00617279\ntext: \n") &&
        diff <(grep -v ^connected "$0/b.out") <(printf "text: for b\n") &&
        diff <(grep -v ^connected "$0/lobby.out") <(printf "text: lobby 1\ntext: lobby 2\n") &&
        diff <(grep -v ^connected "$0/cafe.out") <(printf "text: café\n")' "$TEST_TMP"
    check "GET /publish/team/a: 405 with Allow: POST" bash -c '
        h=$(curl -s -i --max-time 10 "http://127.0.0.1:$0/publish/team/a"); echo "$h" | head -3
        [[ $h == "HTTP/1.1 405 "* && $h == *"Allow: POST"* ]]' "$PORT"
    check "PUT /publish/team/a: 405" post 405 /publish/team/a -X PUT -d x
    check "a body over --max-message (16M): 413" bash -c '
        head -c $((16 * 1024 * 1024 + 1)) /dev/zero >"$1/big"
        code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 20 --data-binary @"$1/big" \
            "http://127.0.0.1:$0/publish/team/a"); echo "status $code"; [[ $code == 413 ]]' \
        "$PORT" "$TEST_TMP"
    check "other paths are still the chat page and 404s" bash -c '
        [[ $(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$0/") == 200 &&
           $(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$0/publisher") == 404 &&
           $(curl -s -o /dev/null -w "%{http_code}" -d x "http://127.0.0.1:$0/other") == 405 ]]' \
        "$PORT"
    check "-v logs each publish" grep -q 'POST /publish/team/a: 12 bytes to 1 clients of /team/a' \
        "$SERVER_ERR"
    stop_server
fi

echo "== limits and who may publish"
if start_server --max-message 1k; then
    check "a body of --max-message bytes is taken" bash -c '
        head -c 1024 /dev/zero | tr "\0" a >"$1/1k"
        [[ $(curl -s --max-time 10 --data-binary @"$1/1k" "http://127.0.0.1:$0/publish/x") == 0 ]]' \
        "$PORT" "$TEST_TMP"
    check "one byte more: 413" bash -c '
        head -c 1025 /dev/zero | tr "\0" a >"$1/1k1"
        [[ $(curl -s -o /dev/null -w "%{http_code}" --max-time 10 --data-binary @"$1/1k1" \
            "http://127.0.0.1:$0/publish/x") == 413 ]]' "$PORT" "$TEST_TMP"
    stop_server
fi
NON_LOOPBACK=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9.]+$' | grep -v '^127\.' | head -1)
if [[ -n $NON_LOOPBACK ]] && start_server --listen 0.0.0.0:0; then
    check "from $NON_LOOPBACK (not loopback), no token: 403" bash -c '
        code=$(curl -s -o /dev/null -w "%{http_code}" --max-time 10 -d x "http://$1:$0/publish/x")
        echo "status $code"; [[ $code == 403 ]]' "$PORT" "$NON_LOOPBACK"
    check "the refusal is logged" grep -q 'refused (403): not from loopback' "$SERVER_ERR"
    check "from loopback on the same server: 200" post_count 0 /publish/x -d x
    stop_server
else
    echo "(no non-loopback IPv4 address here: the non-loopback check is skipped)"
fi
if start_server --publish-token s3cret; then
    BASE=ws://127.0.0.1:$PORT
    check "a client of /t is connected" listener t /t 1
    check "--publish-token: no Authorization from loopback: 403" post 403 /publish/t -d no
    check "a wrong token: 403" post 403 /publish/t -d no -H 'Authorization: Bearer s3cre'
    check "another scheme: 403" post 403 /publish/t -d no -H 'Authorization: Basic s3cret'
    check "the right token: 200, 1 receiver" post_count 1 /publish/t -d yes \
        -H 'Authorization: Bearer s3cret'
    check "the client got only the authorised message" bash -c '
        for _ in $(seq 100); do grep -q "^text" "$0" && break; sleep 0.05; done
        sleep 0.3; diff <(grep -v ^connected "$0") <(echo "text: yes")' "$TEST_TMP/t.out"
    check "refusals are logged" grep -q 'refused (403): no valid Authorization: Bearer token' \
        "$SERVER_ERR"
    stop_server
fi

echo "== options"
check "--publish-token is for --broadcast (exit 2)" bash -c '
    "$0" serve --echo --publish-token x >/dev/null 2>&1; [[ $? == 2 ]]' "$WSK_BIN"
check "--help documents rooms and --publish-token" bash -c '
    "$0" serve --help | grep -q "the sender.s room" && "$0" serve --help | grep -q -- "--publish-token"' \
    "$WSK_BIN"

finish
