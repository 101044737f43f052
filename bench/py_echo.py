#!/usr/bin/python3
"""A Python `websockets` echo (or broadcast) server for bench/run.sh.

usage: /usr/bin/python3 bench/py_echo.py PORT [--broadcast] [--tls CERT KEY]

Listens on 127.0.0.1:PORT (0: any free port), prints "listening on PORT" and
runs until SIGTERM or SIGINT. Echo mode sends each message back to its sender,
text as text and binary as binary; broadcast mode sends it to every open
client, the sender included (like `wsk serve --broadcast`), with
websockets.broadcast(). --tls serves wss:// only, with the PEM files CERT and
KEY. Uses Debian's python3-websockets (10.x), as the integration tests do; the
library's defaults are kept (permessage-deflate accepted, 12-bit windows)
except the message size limit, raised to 64 MiB.
"""

import asyncio
import signal
import ssl
import sys

import websockets

CLIENTS = set()


async def echo(ws, path):
    async for message in ws:
        await ws.send(message)


async def broadcast(ws, path):
    CLIENTS.add(ws)
    try:
        async for message in ws:
            websockets.broadcast(CLIENTS, message)
    finally:
        CLIENTS.discard(ws)


async def main():
    args = sys.argv[1:]
    usage = "usage: py_echo.py PORT [--broadcast] [--tls CERT KEY]"
    if not args or not args[0].isdigit():
        print(usage, file=sys.stderr)
        sys.exit(2)
    handler, tls, i = echo, None, 1
    while i < len(args):
        if args[i] == "--broadcast":
            handler = broadcast
            i += 1
        elif args[i] == "--tls" and i + 2 < len(args):
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(args[i + 1], args[i + 2])
            i += 3
        else:
            print(usage, file=sys.stderr)
            sys.exit(2)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    async with websockets.serve(handler, "127.0.0.1", int(args[0]), max_size=64 << 20, ssl=tls) as server:
        print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
