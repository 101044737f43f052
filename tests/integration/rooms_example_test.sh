#!/usr/bin/env bash
# examples/rooms_auth.c, the on_upgrade example: no credentials get 401, a
# session cookie or a bearer token gets in, the offered "chat.v2" is
# chosen, the path is the room, and a thread without a loop publishes the
# time into /clock. Peer: Python websockets.
source "$(dirname "$0")/lib.sh"

EXAMPLE=$WSK_BUILD_DIR/rooms_auth
if [[ ! -x $EXAMPLE ]]; then
    fail "no $EXAMPLE: build the examples"
    finish
fi

if start_listener "$EXAMPLE" 0 s3cret; then
    CHECK_VERBOSE=1 check "401 without credentials; cookie or bearer token in; rooms; the clock" \
        "$PY" -c '
import asyncio, sys, websockets
async def main(base):
    try:
        await asyncio.wait_for(websockets.connect(base + "/clock"), 5)
        sys.exit("no credentials: not refused")
    except websockets.InvalidStatusCode as e:
        assert e.status_code == 401, e.status_code
        print("ok: no credentials: 401")
    async with websockets.connect(base + "/clock", subprotocols=["x", "chat.v2"],
                                  extra_headers={"Cookie": "a=1; session=s3cret"}) as ws:
        assert ws.subprotocol == "chat.v2", ws.subprotocol
        tick = await asyncio.wait_for(ws.recv(), 5)
        assert len(tick) == 8 and tick[2] == ":", tick
        print("ok: a session cookie gets in, with chat.v2; the clock says", tick)
    bearer = {"Authorization": "Bearer s3cret"}
    async with websockets.connect(base + "/r", extra_headers=bearer) as a, \
            websockets.connect(base + "/r", extra_headers=bearer) as b, \
            websockets.connect(base + "/other", extra_headers=bearer) as c:
        assert a.subprotocol is None
        await a.send("hi room")
        assert await asyncio.wait_for(b.recv(), 5) == "hi room"
        assert await asyncio.wait_for(a.recv(), 5) == "hi room"
        try:
            m = await asyncio.wait_for(c.recv(), 0.7)
            sys.exit("another room got " + repr(m))
        except asyncio.TimeoutError:
            pass
        print("ok: a bearer token gets in; a room hears its own, another does not")
asyncio.run(main(sys.argv[1]))' "ws://127.0.0.1:$LISTENER_PORT"
    stop_pid "$LISTENER_PID" 10
    check "SIGTERM: exits 0" test "$STOP_STATUS" -eq 0
fi

finish
