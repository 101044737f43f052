#!/usr/bin/python3
"""WebSocket clients for wsk serve --exec tests.

  exec_peer.py talk URL LINE...    send each LINE, print every message received
                                   as "text: ..." or "binary: <hex>" until the
                                   server closes, then "close: CODE REASON"
  exec_peer.py once URL TEXT       send TEXT, print the first message back
                                   (as talk does), close
  exec_peer.py quiet URL           send nothing; print messages and the close
  exec_peer.py bytes URL N         send N random bytes as binary messages of
                                   up to 64 KiB, collect binary messages until
                                   N bytes are back; ok if identical
  exec_peer.py seq URL N           N connections one after the other: each
                                   gets its first message, then closes (1000)
  exec_peer.py hold URL N          N connections at once; print each one's
                                   close code (or "open"), then close them
  exec_peer.py noread URL SECONDS  upgrade by hand and read nothing for
                                   SECONDS, then print "done"
  exec_peer.py flood URL MIB       upgrade by hand, send up to MIB MiB of
                                   binary messages without reading, until a
                                   send blocks for 2 s; print how much went

Every wait has a timeout; exit status 0 when the scenario held.
"""
import asyncio
import os
import socket
import sys
import time

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import raw_client  # noqa: E402

T = 10


def show(m):
    if isinstance(m, bytes):
        print("binary: " + m.hex(), flush=True)
    else:
        print("text: " + m, flush=True)


async def talk(url, lines):
    async with websockets.connect(url, user_agent_header="exec-peer/1",
                                  extra_headers={"Proxy": "http://evil.example:1"}) as ws:
        for line in lines:
            await ws.send(line)
        try:
            while True:
                show(await asyncio.wait_for(ws.recv(), T))
        except websockets.ConnectionClosed:
            pass
        print("close: %s %s" % (ws.close_code, ws.close_reason), flush=True)


async def once(url, text):
    async with websockets.connect(url) as ws:
        await ws.send(text)
        show(await asyncio.wait_for(ws.recv(), T))


async def quiet(url):
    await talk(url, [])


async def bytes_round_trip(url, n):
    data = os.urandom(n)
    got = bytearray()
    async with websockets.connect(url, max_size=None) as ws:
        async def sender():
            for i in range(0, n, 65536):
                await ws.send(data[i:i + 65536])

        task = asyncio.ensure_future(sender())
        while len(got) < n:
            m = await asyncio.wait_for(ws.recv(), T)
            if not isinstance(m, bytes):
                print("FAIL: a text message came back: %r" % m[:50])
                return 1
            got += m
        await task
    if bytes(got) != data:
        print("FAIL: %d bytes came back different" % len(got))
        return 1
    print("ok: %d random bytes came back identical" % n)
    return 0


async def seq(url, n):
    t0 = time.monotonic()
    for i in range(n):
        async with websockets.connect(url) as ws:
            await asyncio.wait_for(ws.recv(), T)
    print("ok: %d connections in sequence in %.1fs" % (n, time.monotonic() - t0))
    return 0


async def hold(url, n):
    conns = [await websockets.connect(url) for _ in range(n)]
    await asyncio.sleep(0.5)
    for ws in conns:
        print("close %s" % ws.close_code if ws.closed else "open", flush=True)
    for ws in conns:
        await ws.close()
    return 0


def noread(url, seconds):
    c = raw_client.Conn(url)
    print("connected", flush=True)
    time.sleep(seconds)
    print("done", flush=True)
    c.sock.close()
    return 0


def flood(url, mib):
    c = raw_client.Conn(url)
    c.sock.settimeout(2)
    block = raw_client.frame(2, b"x" * 65536)
    sent = 0
    try:
        while sent < mib << 20:
            c.sock.sendall(block)
            sent += 65536
    except socket.timeout:
        pass
    print("sent %d MiB without reading; then sends blocked" % (sent >> 20), flush=True)
    print("done", flush=True)
    time.sleep(1)
    c.sock.close()
    return 0


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "talk":
        return asyncio.run(talk(args[0], args[1:])) or 0
    if cmd == "once":
        return asyncio.run(once(args[0], args[1])) or 0
    if cmd == "quiet":
        return asyncio.run(quiet(args[0])) or 0
    if cmd == "bytes":
        return asyncio.run(bytes_round_trip(args[0], int(args[1])))
    if cmd == "seq":
        return asyncio.run(seq(args[0], int(args[1])))
    if cmd == "hold":
        return asyncio.run(hold(args[0], int(args[1])))
    if cmd == "flood":
        return flood(args[0], int(args[1]))
    if cmd == "noread":
        return noread(args[0], float(args[1]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
