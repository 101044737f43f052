#!/usr/bin/env bash
# examples/session_echo.c, a poll() server built on the I/O-free session
# alone, against Python's websockets client (which offers
# permessage-deflate, so compressed messages go both ways) and Node's ws
# (which does not by default): text, binary, empty and 1 MiB messages,
# fragmented messages, ping/pong, many messages, and the close handshake.
source "$(dirname "$0")/lib.sh"

EXAMPLE=$WSK_BUILD_DIR/session_echo
if [[ ! -x $EXAMPLE ]]; then
    fail "no $EXAMPLE: build the examples"
    finish
fi

CASES=(text binary empty-text empty-binary big-binary big-text fragmented-text
    fragmented-binary ping many close)

echo "== python websockets client -> session_echo"
if start_listener "$EXAMPLE" 0; then
    for c in "${CASES[@]}"; do
        check "python: $c" "$PY" "$PEERS/py_client.py" "$LISTENER_URL" "$c"
    done
    check "python: the extension was negotiated" \
        "$PY" -c 'import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        assert "permessage-deflate" in (ws.response_headers.get("Sec-WebSocket-Extensions") or ""), ws.response_headers
        await ws.send("x" * 5000)
        assert await ws.recv() == "x" * 5000
asyncio.run(main())' "$LISTENER_URL"
    check "an upgrade without a key gets 400" bash -c \
        "curl -s -o /dev/null -w '%{http_code}' -H 'Upgrade: websocket' -H 'Connection: Upgrade' -H 'Sec-WebSocket-Version: 13' \
         '${LISTENER_URL/ws:/http:}' | grep -qx 400"
    check "session_echo still running" kill -0 "$LISTENER_PID"
    stop_pid "$LISTENER_PID"
fi

echo "== node ws client -> session_echo"
if start_listener "$EXAMPLE" 0; then
    check "node: echo and close" "$NODE" -e '
const WebSocket = require(process.argv[1] + "/node_modules/ws");
const ws = new WebSocket(process.argv[2]);
const big = Buffer.alloc(1 << 20, 7);
let got = 0;
ws.on("open", () => { ws.send("hello"); ws.send(big); });
ws.on("message", (d, isBinary) => {
  got++;
  if (got === 1 && (isBinary || d.toString() !== "hello")) process.exit(1);
  if (got === 2) { if (!isBinary || !big.equals(d)) process.exit(1); ws.close(1000, "done"); }
});
ws.on("close", (code) => process.exit(code === 1000 && got === 2 ? 0 : 1));
setTimeout(() => process.exit(2), 10000);' "$PEERS" "$LISTENER_URL"
    stop_pid "$LISTENER_PID"
fi

finish
