#!/usr/bin/env bash
# wsk serve --auth-token (who may join: Authorization: Bearer or ?token=,
# else 401, logged and counted) and --rate-limit N/s (a client that sends
# more is closed with 1008, logged and counted; a steady one is not).
# Peers: Python websockets (tests/peers/rooms_peer.py) and curl.
source "$(dirname "$0")/lib.sh"

ROOMS=("$PY" "$PEERS/rooms_peer.py")

# try_is WANT URL [AUTHORIZATION]: the connection attempt prints WANT.
try_is()
{
    local want=$1 got
    shift
    got=$(timeout 20 "${ROOMS[@]}" try "$@")
    echo "$* -> $got"
    [[ $got == "$want" ]]
}

echo "== --auth-token"
if start_server --auth-token 's3cr+t/x'; then
    U=ws://127.0.0.1:$PORT
    check "no token: 401" try_is "refused 401" "$U/"
    check "a wrong bearer token: 401" try_is "refused 401" "$U/" "Bearer s3cr+t/y"
    check "another scheme: 401" try_is "refused 401" "$U/" "Basic s3cr+t/x"
    check "Authorization: Bearer TOKEN: open" try_is open "$U/room" "Bearer s3cr+t/x"
    check "?token=TOKEN (percent-encoded): open" try_is open "$U/room?a=1&token=s3cr%2Bt%2Fx"
    check "?token= with a wrong value: 401" try_is "refused 401" "$U/room?token=s3cr%2Bt"
    check "?tokens=TOKEN is not the token: 401" try_is "refused 401" "$U/?tokens=s3cr%2Bt%2Fx"
    check "the page itself needs no token (200)" bash -c '
        [[ $(curl -s -o /dev/null -w "%{http_code}" --max-time 10 "http://127.0.0.1:$0/") == 200 ]]' \
        "$PORT"
    check "refusals are logged with the peer" \
        grep -qE '127\.0\.0\.1:[0-9]+: upgrade to /room refused \(401\): no valid token' "$SERVER_ERR"
    stop_server
    check "the exit counts the refusals" grep -q '5 upgrades refused without the --auth-token' \
        "$SERVER_ERR"
fi

echo "== --rate-limit"
if start_server --rate-limit 10/s; then
    U=ws://127.0.0.1:$PORT
    check "a client that sends 100 messages at once is closed with 1008" bash -c '
        out=$(timeout 30 "$@"); echo "$out"; [[ $out == "closed 1008 rate limit exceeded" ]]' \
        _ "${ROOMS[@]}" flood "$U/flood" 100
    check "a client sending 5 a second is not" bash -c '
        out=$(timeout 30 "$@"); echo "$out"; [[ $out == "steady: sent 12, got 12, open" ]]' \
        _ "${ROOMS[@]}" steady "$U/steady" 12 0.2
    check "the closing is logged" grep -qE 'over --rate-limit 10/s: closing with 1008 \(1 so far\)' \
        "$SERVER_ERR"
    stop_server
    check "the exit counts it" grep -q '1 connection closed over the --rate-limit' "$SERVER_ERR"
fi
if start_server --echo --rate-limit 5/s; then
    check "--echo: a flood is closed with 1008 too" bash -c '
        out=$(timeout 30 "$@"); echo "$out"; [[ $out == "closed 1008 rate limit exceeded" ]]' \
        _ "${ROOMS[@]}" flood "ws://127.0.0.1:$PORT/" 50
    stop_server
fi

echo "== options"
check "--rate-limit takes N/s" bash -c '
    "$0" serve --rate-limit 10/m >/dev/null 2>&1; a=$?
    "$0" serve --rate-limit 0 >/dev/null 2>&1; b=$?
    "$0" serve --exec cat --rate-limit 5/s >/dev/null 2>&1; c=$?
    echo "$a $b $c"; [[ $a == 2 && $b == 2 && $c == 2 ]]' "$WSK_BIN"
check "--help documents --auth-token and --rate-limit" bash -c '
    "$0" serve --help | grep -q -- "--auth-token TOKEN" && "$0" serve --help | grep -q -- "--rate-limit N/s"' \
    "$WSK_BIN"

finish
