#!/usr/bin/python3
"""Load and limit scenarios against `wsk serve`, driven by Python websockets.

usage:
  py_limits.py many URL CLIENTS MESSAGES
      CLIENTS connections open at once (handshakes at most 100 in flight); when
      all are open each sends MESSAGES messages and must receive exactly its
      own echoes, in order, and nothing else. Needs `wsk serve --echo`.
  py_limits.py slow-reader URL SERVER_PID COUNT SIZE RSS_LIMIT_MIB [WINDOW]
      Broadcast mode. A raw client upgrades and then never reads; a sender
      sends COUNT binary messages of SIZE bytes, at most WINDOW (default 2;
      0 for no limit) ahead of what it and a reader client have received; both
      must get all COUNT promptly. Prints what became of the slow client and the server's
      VmRSS/VmHWM, failing if VmRSS or the growth of VmHWM exceeds the limit.
  py_limits.py hold URL N
      Opens N connections, prints "ready" when all are open, then waits (up to
      60 s) for the server to close them and prints each close code on one line:
      "codes 1001 1001 1001".
  py_limits.py max-conn URL
      For `wsk serve --max-connections 2`: two clients open; a third upgrade is
      answered with HTTP 503; after one client leaves, a new one gets in.

Run with Debian's /usr/bin/python3.
"""

import asyncio
import base64
import os
import resource
import socket
import sys
import time
import urllib.parse

import websockets

# raw_client is a sibling; leave no __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import raw_client  # noqa: E402


class Failure(Exception):
    pass


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def connect(url, **kw):
    kw.setdefault("open_timeout", 20)
    kw.setdefault("close_timeout", 10)
    kw.setdefault("ping_interval", None)
    kw.setdefault("max_size", None)
    kw.setdefault("compression", None)
    return websockets.connect(url, **kw)


async def many(url, clients, messages):
    nofile = raise_nofile()
    if nofile < clients + 50:
        raise Failure(f"RLIMIT_NOFILE is {nofile}, need {clients + 50}")
    gate = asyncio.Semaphore(100)
    t0 = time.monotonic()

    async def open_one(i):
        async with gate:
            return await connect(url)

    conns = await asyncio.gather(*(open_one(i) for i in range(clients)))
    print(f"{clients} connections open after {time.monotonic() - t0:.1f}s", flush=True)
    t1 = time.monotonic()

    async def talk(i, ws):
        want = [f"client {i} message {j}" for j in range(messages)]
        for m in want:
            await ws.send(m)
        for j, m in enumerate(want):
            got = await asyncio.wait_for(ws.recv(), 30)
            if got != m:
                raise Failure(f"client {i}: echo {j} is {got!r}, expected {m!r}")
        await ws.close(1000)
        if ws.close_code != 1000:
            raise Failure(f"client {i}: server answered close with {ws.close_code}")

    await asyncio.gather(*(talk(i, ws) for i, ws in enumerate(conns)))
    print(f"{clients} x {messages} echoes received, each client exactly its own, "
          f"in {time.monotonic() - t1:.1f}s; all closed with 1000")


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024  # MiB
    return out


async def slow_reader(url, pid, count, size, rss_limit, window):
    before = proc_status(pid)
    print(f"server before: VmRSS {before['VmRSS']:.1f} MiB, VmHWM {before['VmHWM']:.1f} MiB")
    # Its kernel buffers take a few hundred KiB; the rest must queue in the
    # server. (A tiny SO_RCVBUF would also make the final drain crawl.)
    slow = raw_client.Conn(url)
    async with connect(url) as reader, connect(url) as sender:
        got = {"reader": 0, "sender": 0}
        progress = asyncio.Condition()
        lost = []

        async def drain(name, ws):
            try:
                while got[name] < count:
                    m = await ws.recv()
                    if isinstance(m, bytes) and len(m) == size:
                        got[name] += 1
                        async with progress:
                            progress.notify_all()
            except websockets.ConnectionClosed:
                lost.append(f"the server closed the {name} (a client that keeps reading) with "
                            f"code {ws.close_code} after {got[name]}/{count} broadcasts")
                async with progress:
                    progress.notify_all()

        # The sender keeps at most WINDOW broadcasts ahead of what both
        # well-behaved clients have read, so neither ever lags by more than
        # WINDOW * SIZE bytes (with 2, well under the default 1 MiB
        # --max-queue), while the slow client falls behind without bound.
        # WINDOW 0 sends as fast as the server takes it: a burst.
        window = window or count
        t0 = time.monotonic()
        tasks = [asyncio.create_task(drain("reader", reader)),
                 asyncio.create_task(drain("sender", sender))]
        payload = os.urandom(size)

        async def caught_up(n):
            async with progress:
                await progress.wait_for(lambda: lost or min(got.values()) >= n)
            if lost:
                raise Failure("; ".join(lost))

        try:
            for i in range(count):
                await asyncio.wait_for(caught_up(i - window + 1), 30)
                try:
                    await sender.send(payload)
                except websockets.ConnectionClosed:
                    await asyncio.sleep(0)  # let the drain tasks record why
                    raise Failure("; ".join(lost) or
                                  f"the server closed the sender with code {sender.close_code} "
                                  f"while it sent broadcast {i + 1}/{count}")
            await asyncio.wait_for(caught_up(count), 30)
        except asyncio.TimeoutError:
            raise Failure(f"stuck: after 30s without progress the reader has {got['reader']}/{count} "
                          f"and the sender {got['sender']}/{count} broadcasts")
        finally:
            for t in tasks:
                t.cancel()
        elapsed = time.monotonic() - t0
        print(f"reader and sender each got all {count} x {size} B broadcasts in {elapsed:.1f}s")
        after = proc_status(pid)
        print(f"server after: VmRSS {after['VmRSS']:.1f} MiB, VmHWM {after['VmHWM']:.1f} MiB "
              f"({count * size / 1048576:.1f} MiB were broadcast)")
        growth = after["VmHWM"] - before["VmRSS"]
        if after["VmRSS"] > rss_limit or growth > rss_limit:
            raise Failure(f"server memory: VmRSS {after['VmRSS']:.1f} MiB, peak growth "
                          f"{growth:.1f} MiB; limit {rss_limit} MiB")
        # What became of the slow client: read what the server left for it,
        # for at most 10 s.
        slow.sock.settimeout(3)
        deadline = time.monotonic() + 10
        frames = 0
        try:
            while True:
                if time.monotonic() > deadline:
                    fate = f"still receiving after 10 s of reading ({frames} messages)"
                    break
                f = slow.read_frame()
                if f["opcode"] == 8:
                    p = f["payload"]
                    code = int.from_bytes(p[:2], "big") if len(p) >= 2 else None
                    fate = f"closed by the server with code {code} after {frames} messages"
                    if code != 1008:
                        raise Failure(f"slow client {fate}; expected 1008")
                    break
                frames += 1
        except EOFError:
            fate = f"TCP closed by the server without a close frame after {frames} messages"
        except ConnectionResetError:
            fate = f"TCP reset by the server after {frames} messages"
        except socket.timeout:
            fate = f"still open after {frames} messages, nothing more within 3 s (queue capped)"
        print(f"slow client: {fate}")
        if frames >= count:
            raise Failure(f"the slow client got all {count} messages: it was not held back, "
                          "so the test did not reach the limit")
        # The server still works for the others.
        await sender.send(b"still here")
        for ws in (reader, sender):
            while True:
                m = await asyncio.wait_for(ws.recv(), 10)
                if m == b"still here":
                    break
        print("broadcast after the slow client: delivered to both")
    slow.close()


async def hold(url, n):
    conns = [await connect(url) for _ in range(n)]
    print("ready", flush=True)

    async def wait_closed(ws):
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed:
            pass
        return ws.close_code

    codes = await asyncio.wait_for(asyncio.gather(*(wait_closed(ws) for ws in conns)), 60)
    print("codes " + " ".join(str(c) for c in codes), flush=True)


async def max_conn(url):
    a = await connect(url)
    b = await connect(url)
    print("two clients connected")
    status = await asyncio.to_thread(status_line, url)
    print(f"third upgrade answered: {status}")
    if " 503 " not in status + " ":
        raise Failure(f"third upgrade got {status!r}, expected HTTP 503")
    for ws in (a, b):
        await ws.send("still served")
        if await asyncio.wait_for(ws.recv(), 10) != "still served":
            raise Failure("a client admitted before the limit stopped echoing")
    await a.close()
    # The server frees the slot when it notices the close; allow it a moment.
    deadline = time.monotonic() + 10
    while True:
        status = await asyncio.to_thread(status_line, url)
        if " 101 " in status + " ":
            break
        if time.monotonic() > deadline:
            raise Failure(f"10s after a client left, a new upgrade still gets {status!r}")
        await asyncio.sleep(0.1)
    print(f"after one client left, a new upgrade got: {status}")
    await b.close()


def status_line(url):
    s = raw_client.connect(url)
    try:
        s.sendall(raw_client.upgrade_request(url, base64.b64encode(os.urandom(16)).decode()))
        head, _ = raw_client.read_head(s)
        return head.split("\r\n", 1)[0]
    finally:
        s.close()


async def main(argv):
    if not argv:
        sys.exit(__doc__)
    cmd, args = argv[0], argv[1:]
    try:
        if cmd == "many":
            await asyncio.wait_for(many(args[0], int(args[1]), int(args[2])), 120)
        elif cmd == "slow-reader":
            await asyncio.wait_for(
                slow_reader(args[0], int(args[1]), int(args[2]), int(args[3]), float(args[4]),
                            int(args[5]) if len(args) > 5 else 2), 90)
        elif cmd == "hold":
            await hold(args[0], int(args[1]))
        elif cmd == "max-conn":
            await asyncio.wait_for(max_conn(args[0]), 60)
        else:
            sys.exit(__doc__)
    except (Failure, raw_client.Failure) as e:
        print(f"FAIL: {e}")
        return 1
    except asyncio.TimeoutError:
        print("FAIL: timed out")
        return 1
    except (OSError, EOFError, websockets.WebSocketException) as e:
        print(f"FAIL: {type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
