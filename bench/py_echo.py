#!/usr/bin/python3
"""A Python `websockets` echo (or broadcast) server for bench/run.sh.

usage: /usr/bin/python3 bench/py_echo.py PORT [--broadcast]

Listens on 127.0.0.1:PORT (0: any free port), prints "listening on PORT" and
runs until SIGTERM or SIGINT. Echo mode sends each message back to its sender,
text as text and binary as binary; broadcast mode sends it to every open
client, the sender included (like `wsk serve --broadcast`), with
websockets.broadcast(). Uses Debian's python3-websockets (10.x), as the
integration tests do; the library's defaults are kept except the message size
limit, raised to 64 MiB.
"""

import asyncio
import signal
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
    if not 1 <= len(args) <= 2 or not args[0].isdigit() or (len(args) == 2 and args[1] != "--broadcast"):
        print("usage: py_echo.py PORT [--broadcast]", file=sys.stderr)
        sys.exit(2)
    handler = broadcast if len(args) == 2 else echo
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set_result, None)
    async with websockets.serve(handler, "127.0.0.1", int(args[0]), max_size=64 << 20) as server:
        print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
