#!/usr/bin/python3
"""WebSocket peers for wsk serve's rooms (broadcast mode: the path is the room).

Each scenario prints "ok: WHAT" for every check that holds and exits 0, or
prints "FAIL: WHAT (details)" and exits 1. Every wait has a timeout.

  rooms_peer.py isolate BASE                 clients of /team/a (one with a
                                             query), /team/b and / each get
                                             exactly their room's messages
  rooms_peer.py escapes BASE                 rooms are raw paths: /caf%C3%A9,
                                             /caf%c3%a9, /a%2Fb, /a/b, /%00%FF
                                             are five rooms
  rooms_peer.py tcp-lobby BASE TCP_PORT      a raw TCP client is in the lobby:
                                             it gets what clients of / send, not
                                             what clients of /other send, and
                                             its lines reach / only
  rooms_peer.py closed URL CODE              the server closes the connection
                                             with CODE right after the handshake
  rooms_peer.py try URL [AUTHORIZATION]      prints "open" or "refused STATUS"
  rooms_peer.py flood URL N                  sends N messages at once, prints
                                             "closed CODE REASON" (or "open")
  rooms_peer.py steady URL N SECONDS         sends N messages SECONDS apart and
                                             reads what comes back: prints
                                             "steady: sent N, got M, open"
  rooms_peer.py listen URL N                 prints "connected", then each
                                             message as "text: ..." or
                                             "binary: HEX", exits 0 after N
                                             (1 on timeout)

BASE is ws://HOST:PORT with no path.
"""
import asyncio
import sys

import websockets

T = 5.0  # seconds any single wait may take
QUIET = 0.7  # how long "nothing more arrives" is watched
failed = False


def ok(what):
    print("ok: " + what, flush=True)


def fail(what):
    global failed
    failed = True
    print("FAIL: " + what, flush=True)


def check(cond, what, details=""):
    if cond:
        ok(what)
    else:
        fail(what + (" (" + details + ")" if details else ""))


async def collect(ws, want, got):
    """Receives into the set got until it holds every message of want, then
    for QUIET seconds more, so that a message that should not come is seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + T
    while not want.issubset(got):
        left = deadline - loop.time()
        if left <= 0:
            return
        try:
            got.add(await asyncio.wait_for(ws.recv(), left))
        except asyncio.TimeoutError:
            return
    while True:
        try:
            got.add(await asyncio.wait_for(ws.recv(), QUIET))
        except asyncio.TimeoutError:
            return


async def rooms(base, paths, expected):
    """paths: {name: path}; each client sends "from-NAME"; expected: {name:
    set of names whose messages it must get, and nothing else}."""
    conns = {}
    for name, path in paths.items():
        conns[name] = await asyncio.wait_for(websockets.connect(base + path, compression=None), T)
    ok("connected: " + ", ".join(f"{n} to {p}" for n, p in paths.items()))
    for name, ws in conns.items():
        await ws.send("from-" + name)
    got = {name: set() for name in paths}
    await asyncio.gather(*(collect(conns[n], {"from-" + m for m in expected[n]}, got[n])
                           for n in paths))
    for name in paths:
        want = {"from-" + m for m in expected[name]}
        check(got[name] == want, f"{name} ({paths[name]}) got exactly {sorted(want)}",
              f"got {sorted(got[name])}")
    for ws in conns.values():
        await ws.close()


async def isolate(base):
    paths = {"a1": "/team/a", "a2": "/team/a", "q1": "/team/a?x=1", "b1": "/team/b",
             "l1": "/", "l2": "/?room=team/a"}
    a = {"a1", "a2", "q1"}
    await rooms(base, paths, {"a1": a, "a2": a, "q1": a, "b1": {"b1"}, "l1": {"l1", "l2"},
                              "l2": {"l1", "l2"}})


async def escapes(base):
    paths = {"e1": "/caf%C3%A9", "e2": "/caf%c3%a9", "s1": "/a%2Fb", "s2": "/a/b", "z": "/%00%FF",
             "e1b": "/caf%C3%A9"}
    await rooms(base, paths, {"e1": {"e1", "e1b"}, "e1b": {"e1", "e1b"}, "e2": {"e2"},
                              "s1": {"s1"}, "s2": {"s2"}, "z": {"z"}})


async def tcp_lobby(base, tcp_port):
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", tcp_port), T)
    lobby = await asyncio.wait_for(websockets.connect(base + "/", compression=None), T)
    other = await asyncio.wait_for(websockets.connect(base + "/other", compression=None), T)
    ok("a TCP client and WebSocket clients of / and /other are connected")
    await other.send("secret from /other")
    await lobby.send("public from /")
    line = await asyncio.wait_for(reader.readline(), T)
    check(line == b"public from /\n", "the TCP client gets the lobby's message",
          f"first line {line!r}")
    try:
        extra = await asyncio.wait_for(reader.readline(), QUIET)
    except asyncio.TimeoutError:
        extra = b""
    check(extra == b"", "the TCP client does not get /other's message", f"got {extra!r}")
    writer.write(b"hello from tcp\n")
    await writer.drain()
    got_lobby = set()
    await collect(lobby, {"public from /", "hello from tcp"}, got_lobby)
    check(got_lobby == {"public from /", "hello from tcp"},
          "the client of / gets its own message and the TCP line", f"got {sorted(got_lobby)}")
    got_other = set()
    await collect(other, {"secret from /other"}, got_other)
    check(got_other == {"secret from /other"}, "the client of /other gets only its own message",
          f"got {sorted(got_other)}")
    writer.close()
    await lobby.close()
    await other.close()


async def closed(url, code):
    async with websockets.connect(url, compression=None) as ws:
        try:
            m = await asyncio.wait_for(ws.recv(), T)
            fail(f"closed with {code}: got a message {m!r}")
        except websockets.ConnectionClosed as e:
            check(e.code == code, f"closed with {code}", f"closed with {e.code} {e.reason!r}")
        except asyncio.TimeoutError:
            fail(f"closed with {code}: still open after {T} s")


async def try_connect(url, authorization):
    headers = {"Authorization": authorization} if authorization else None
    try:
        ws = await asyncio.wait_for(websockets.connect(url, extra_headers=headers), T)
    except websockets.InvalidStatusCode as e:
        print(f"refused {e.status_code}", flush=True)
        return
    print("open", flush=True)
    await ws.close()


async def flood(url, n):
    async with websockets.connect(url, compression=None) as ws:
        for i in range(n):
            try:
                await ws.send(f"flood {i}")
            except websockets.ConnectionClosed:
                break
        try:
            while True:
                await asyncio.wait_for(ws.recv(), T)
        except websockets.ConnectionClosed as e:
            print(f"closed {e.code} {e.reason}", flush=True)
        except asyncio.TimeoutError:
            print("open", flush=True)


async def steady(url, n, interval):
    got = 0
    async with websockets.connect(url, compression=None) as ws:
        async def reader():
            nonlocal got
            while True:
                await ws.recv()
                got += 1
        task = asyncio.ensure_future(reader())
        for i in range(n):
            await ws.send(f"steady {i}")
            await asyncio.sleep(interval)
        await asyncio.sleep(QUIET)
        state = "closed" if task.done() else "open"
        task.cancel()
        print(f"steady: sent {n}, got {got}, {state}", flush=True)


async def listen(url, n):
    async with websockets.connect(url, compression=None) as ws:
        print("connected", flush=True)
        for _ in range(n):
            try:
                m = await asyncio.wait_for(ws.recv(), 3 * T)
            except asyncio.TimeoutError:
                print("timeout", flush=True)
                return 1
            if isinstance(m, str):
                print("text: " + m, flush=True)
            else:
                print("binary: " + m.hex(), flush=True)
    return 0


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "isolate":
        asyncio.run(isolate(sys.argv[2]))
    elif cmd == "escapes":
        asyncio.run(escapes(sys.argv[2]))
    elif cmd == "tcp-lobby":
        asyncio.run(tcp_lobby(sys.argv[2], int(sys.argv[3])))
    elif cmd == "closed":
        asyncio.run(closed(sys.argv[2], int(sys.argv[3])))
    elif cmd == "try":
        asyncio.run(try_connect(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
    elif cmd == "flood":
        asyncio.run(flood(sys.argv[2], int(sys.argv[3])))
    elif cmd == "steady":
        asyncio.run(steady(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    elif cmd == "listen":
        sys.exit(asyncio.run(listen(sys.argv[2], int(sys.argv[3]))))
    else:
        print(__doc__)
        sys.exit(2)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
