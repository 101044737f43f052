#!/usr/bin/python3
"""SUBSCRIBE per room against one PSUBSCRIBE pattern, as wsk serve --redis
would use them (docs/ARCHITECTURE.md, "Rooms across processes").

  bench/redis_rooms.py [ROOMS [MESSAGES]]     (default 1000 rooms, 200000)

Starts its own redis-server on a free port. Two subscriber connections
stand for two wsk processes, each with clients in half of the ROOMS rooms
(process A the first half, B the second). Mode "channels": each SUBSCRIBEs
to wsk:room:R for its own rooms only (what wsk does); mode "pattern": each
PSUBSCRIBEs wsk:room:*. redis-benchmark then PUBLISHes MESSAGES messages of
64 bytes to rooms picked at random. Prints per mode: redis-server's CPU
seconds, the messages each subscriber received, and the share of them its
process had clients for.

Only 127.0.0.1; every wait bounded; redis-server is stopped at the end.
"""
import os
import socket
import subprocess
import sys
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Subscriber:
    """Reads pushed messages and counts them (by their "message"/"pmessage" kind)."""

    def __init__(self, port, commands, mine):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.sendall(b"".join(commands))
        self.mine = mine  # the room numbers this process has clients in
        self.received = 0
        self.wanted = 0
        self.buf = b""
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            if not data:
                return
            self.buf += data
            # A push: "message", the channel (a pmessage: "pmessage", the
            # pattern, the channel), the payload. Count the channels.
            while True:
                i = self.buf.find(b"message\r\n")
                if i < 0:
                    self.buf = self.buf[-16:]
                    break
                k = self.buf.find(b"wsk:room:", i)
                while k >= 0 and self.buf[k + 9:k + 10] == b"*":
                    k = self.buf.find(b"wsk:room:", k + 10)
                j = self.buf.find(b"\r\n", k) if k >= 0 else -1
                if j < 0:
                    self.buf = self.buf[i:]
                    break
                name = self.buf[k + 9:j]
                self.buf = self.buf[j:]
                self.received += 1
                if name.isdigit() and int(name) in self.mine:
                    self.wanted += 1

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def main():
    rooms = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    messages = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
    half = rooms // 2
    sides = {"A": set(range(0, half)), "B": set(range(half, rooms))}
    print("== %d rooms, 2 processes with clients in half each, %d PUBLISHes of 64 B"
          % (rooms, messages))
    for mode in ("channels", "pattern"):
        port = free_port()
        srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            subs = {}
            for side, mine in sides.items():
                if mode == "channels":
                    # redis-benchmark's __rand_int__ is 12 digits, zero-padded.
                    cmds = [resp("SUBSCRIBE", *["wsk:room:%012d" % r for r in sorted(mine)])]
                else:
                    cmds = [resp("PSUBSCRIBE", "wsk:room:*")]
                subs[side] = Subscriber(port, cmds, mine)
            time.sleep(0.5)  # the subscriptions are in (a local server answers in ms)
            c0 = cpu_ticks(srv.pid)
            t0 = time.monotonic()
            subprocess.run(["redis-benchmark", "-p", str(port), "-q", "-n", str(messages),
                            "-r", str(rooms), "-d", "64", "PUBLISH", "wsk:room:__rand_int__",
                            "x" * 64], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=300, check=True)
            # Let the subscribers drain.
            last = -1
            for _ in range(100):
                total = sum(s.received for s in subs.values())
                if total == last:
                    break
                last = total
                time.sleep(0.1)
            wall = time.monotonic() - t0
            c1 = cpu_ticks(srv.pid)
            hz = os.sysconf("SC_CLK_TCK")
            line = "  %-9s redis-server %.2f CPU-s (%.1f s)" % (mode, (c1 - c0) / hz, wall)
            for side, s in subs.items():
                line += ";  %s received %d, %d%% of them for its rooms" % (
                    side, s.received, 100 * s.wanted // max(s.received, 1))
            print(line, flush=True)
            for s in subs.values():
                s.close()
        finally:
            srv.terminate()
            srv.wait(10)


if __name__ == "__main__":
    main()
