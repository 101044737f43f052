#!/usr/bin/python3
"""WebSocket clients spread over several wsk serve --redis processes.

  cluster_peer.py mesh REDIS_PORT BASE_A BASE_B [K [LOG_A LOG_B]]

Opens clients in several rooms on both processes (two on each side of
/r1 and /r2, one on each side of /bin, one on /only-a on A only), waits until
Redis shows every process subscribed (PUBSUB NUMSUB through redis-cli), then
every client sends K messages (text; random bytes, NUL included, in /bin)
at once. Each client must get every message sent in its room, on either
process and its own included, exactly once, each sender's in order, and
nothing from another room. Prints "ok: WHAT" or "FAIL: WHAT (details)";
exits 0 when all holds. Every wait has a timeout.

With wsk serve --threads, each thread with clients in a room subscribes on
its own: give the processes' -v logs (LOG_A LOG_B), whose "[thread N]: PEER:
open ROOM" lines say which threads have clients where. A REDIS_PORT of "-"
waits for no Redis: the threads of one process (BASE_A = BASE_B).

  cluster_peer.py listen URL N SECONDS

Prints "connected", then N messages ("text: ..." or "binary: HEX"), each
within SECONDS, and exits 0 (1 on timeout).
"""
import asyncio
import os
import re
import subprocess
import sys
import time

import websockets

T = 10.0


def numsub(port, channels):
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "PUBSUB", "NUMSUB", *channels],
        capture_output=True, text=True, timeout=5).stdout.split()
    return {out[i]: int(out[i + 1]) for i in range(0, len(out) - 1, 2)}


async def wait_subscribed(port, want):
    deadline = time.monotonic() + T
    while True:
        got = numsub(port, list(want))
        if got == want:
            return True
        if time.monotonic() > deadline:
            print("FAIL: subscriptions: want %r, got %r" % (want, got), flush=True)
            return False
        await asyncio.sleep(0.05)


def payload(room, who, i):
    if room == "/bin":
        return bytes([0, 255, i % 256]) + who.encode() + os.urandom(8) + bytes([i // 256])
    return "%s|%s|%d" % (room, who, i)


def sender_of(msg):
    if isinstance(msg, bytes):
        return ("/bin", msg[3:-9].decode(), msg[2] + 256 * msg[-1])
    room, who, i = msg.split("|")
    return (room, who, int(i))


OPEN_LINE = re.compile(r"^wsk serve(?: \[thread (\d+)\])?: [^ ]+: open ([^ ,]+)")


def subscribers_from_logs(logs, rooms):
    """Channel -> how many (process, thread) pairs have clients in it."""
    seen = set()
    for n, path in enumerate(logs):
        with open(path, errors="replace") as f:
            for line in f:
                m = OPEN_LINE.match(line)
                if m and m.group(2) in rooms:
                    seen.add((n, m.group(1) or "0", m.group(2)))
    want = {}
    for _, _, room in seen:
        want["wsk:room:" + room] = want.get("wsk:room:" + room, 0) + 1
    return want


async def mesh(port, base_a, base_b, k, logs=None):
    plan = [("/r1", "A", 2), ("/r1", "B", 2), ("/r2", "A", 2), ("/r2", "B", 2),
            ("/bin", "A", 1), ("/bin", "B", 1), ("/only-a", "A", 1)]
    clients = []
    for room, side, n in plan:
        for j in range(n):
            base = base_a if side == "A" else base_b
            ws = await asyncio.wait_for(websockets.connect(base + room, max_size=None), T)
            clients.append((room, "%s%d" % (side, j), ws))
    want = {"wsk:room:/r1": 2, "wsk:room:/r2": 2, "wsk:room:/bin": 2, "wsk:room:/only-a": 1}
    if logs:
        want = subscribers_from_logs(logs, {room for room, _, _ in plan})
    if port != "-" and not await wait_subscribed(port, want):
        return False
    sent = {}
    for room, who, ws in clients:
        msgs = [payload(room, who, i) for i in range(k)]
        sent[(room, who)] = msgs

    async def send_all(room, who, ws):
        for m in sent[(room, who)]:
            await ws.send(m)

    async def recv_all(room, who, ws):
        expect = sum(len(v) for (r, _), v in sent.items() if r == room)
        got = []
        try:
            while len(got) < expect:
                got.append(await asyncio.wait_for(ws.recv(), T))
            # Nothing more may come: no duplicates.
            got.append(await asyncio.wait_for(ws.recv(), 0.7))
        except asyncio.TimeoutError:
            pass
        return got

    results = await asyncio.gather(*(send_all(*c) for c in clients),
                                   *(recv_all(*c) for c in clients))
    got_all = results[len(clients):]
    ok = True
    for (room, who, ws), got in zip(clients, got_all):
        per_sender = {}
        for m in got:
            r, s, i = sender_of(m)
            if r != room:
                print("FAIL: %s on %s got a message of %s" % (who, room, r), flush=True)
                ok = False
                break
            per_sender.setdefault(s, []).append(m)
        for (r, s), msgs in sent.items():
            if r == room and per_sender.get(s) != msgs:
                print("FAIL: %s on %s: from %s got %d of %d, in order: %s" %
                      (who, room, s, len(per_sender.get(s, [])), len(msgs),
                       per_sender.get(s) == msgs[:len(per_sender.get(s, []))]), flush=True)
                ok = False
        if len(got) != sum(len(v) for (r, _), v in sent.items() if r == room):
            print("FAIL: %s on %s: %d messages" % (who, room, len(got)), flush=True)
            ok = False
    for _, _, ws in clients:
        await ws.close()
    if ok:
        print("ok: %d clients in 4 rooms on 2 servers, %d messages each: every one "
              "received once, in order per sender, none across rooms" % (len(clients), k),
              flush=True)
    return ok


async def listen(url, n, seconds):
    """Like rooms_peer.py listen, with a deadline for the whole: "connected",
    then each message as "text: ..." or "binary: HEX"; 0 after N."""
    async with websockets.connect(url) as ws:
        print("connected", flush=True)
        for _ in range(n):
            m = await asyncio.wait_for(ws.recv(), seconds)
            print("text: " + m if isinstance(m, str) else "binary: " + m.hex(), flush=True)
    return 0


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "listen":
        return asyncio.run(listen(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    if len(sys.argv) < 5 or sys.argv[1] != "mesh":
        print(__doc__)
        return 2
    k = int(sys.argv[5]) if len(sys.argv) > 5 else 50
    logs = sys.argv[6:8] if len(sys.argv) > 7 else None
    return 0 if asyncio.run(mesh(sys.argv[2], sys.argv[3], sys.argv[4], k, logs)) else 1


if __name__ == "__main__":
    sys.exit(main())
