#!/usr/bin/python3
"""permessage-deflate (RFC 7692) with Python's websockets, both ways, and a
compression bomb from a plain socket.

usage:
  py_deflate.py client URL [--variant V] [--expect-ext VALUE] [--sizes S]
      Connects to an echo server offering permessage-deflate as variant V
      and checks the server's Sec-WebSocket-Extensions answer against VALUE
      (the same parameters in any order; "none": no extension). Then every
      payload of the set S is echoed byte-exact, each on the same
      connection. With an extension, the server's echoes of 1 KiB and more
      must arrive compressed (RSV1), and compressible ones of 64 KiB and
      more at under a quarter of their size; without, nothing may.
  py_deflate.py server [--variant V]
      Listens on 127.0.0.1 port 0, prints
        py_deflate: listening on ws://127.0.0.1:PORT/
      and accepts permessage-deflate as variant V. On /roundtrip (set
      "all") or /roundtrip-small ("small") it sends every payload of the set,
      expects each back unchanged (wsk connect --echo), prints
        roundtrip: ok extensions=VALUE compressed=N/M
      (N of the M echoes had RSV1) or "roundtrip: FAIL ...", and closes
      with 1000. It exits on SIGTERM or SIGINT.
  py_deflate.py broadcast URL
      Three clients of a broadcast server (wsk serve without --echo): A and
      C with permessage-deflate (C with client_no_context_takeover), B
      without. Each sends 8 messages (text and binary, 10 bytes to 200 KB);
      every client must get all 24, byte-exact and in each sender's order,
      A and C some of them compressed, B none.
  py_deflate.py bomb URL PID MAX_GROWTH_MIB [--kind K]
      A raw client negotiates permessage-deflate and sends one message of
      about 16 KiB that inflates to 16 MiB of zeros (kind "binary", "text",
      or "fragmented": four frames). The server (process PID, run with
      --max-message 1M) must answer with close 1009 within 5 s and close
      TCP, and its peak RSS (VmHWM) may grow by at most MAX_GROWTH_MIB.

Variants (what the client offers, or what the server accepts):
  default          websockets' defaults (client: client_max_window_bits;
                   server: 12-bit windows, memLevel 5)
  client-no-ctx    client_no_context_takeover
  server-no-ctx    server_no_context_takeover
  window-10        server_max_window_bits=10 and client_max_window_bits=10
  off              no compression (client: no offer; server: decline)

Payload sets: "all" is sizes 0, 1, 100, 64 KiB, 1 MiB and 16 MiB, each as
text and binary, compressible and random (24 messages); "small" stops at
1 MiB. Every wait is bounded. Run with Debian's /usr/bin/python3.
"""

import argparse
import asyncio
import base64
import hashlib
import os
import signal
import socket
import struct
import sys
import time
import urllib.parse
import zlib

import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

KIB = 1 << 10
MIB = 1 << 20
SIZES = {"all": [0, 1, 100, 64 * KIB, MIB, 16 * MIB], "small": [0, 1, 100, 64 * KIB, MIB]}
WAIT = 60  # seconds for one round trip (16 MiB on a loaded machine)
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_BINARY, OP_CONT = 1, 2, 0


class Failure(Exception):
    pass


# ---- payloads ----------------------------------------------------------------

# Random bytes mapped onto printable ASCII at C speed (bytes.translate).
PRINTABLE = bytes(0x21 + (i % 94) for i in range(256))


def random_text(n):
    """n bytes of UTF-8 that deflate cannot shrink much, with multi-byte
    characters: substitutions keep the byte length."""
    prefix = "é€😀" if n >= 9 else ""  # 9 bytes
    s = os.urandom(n - len(prefix.encode())).translate(PRINTABLE).decode()
    s = prefix + s.replace("~~", "é").replace("|||", "€").replace("{{{{", "😀")
    assert len(s.encode()) == n
    return s


def compressible_text(n):
    lines, total, i = [], 0, 0
    while total < n:
        line = f'{{"type":"chat","name":"user{i % 7}","text":"message {i} ✓ hello","ts":{1700000000000 + i}}}\n'
        lines.append(line)
        total += len(line.encode())
        i += 1
    b = "".join(lines).encode()[:n]
    # Cut at a character boundary, then pad back to n bytes with ASCII.
    s = b.decode(errors="ignore")
    s += "x" * (n - len(s.encode()))
    assert len(s.encode()) == n
    return s


def compressible_binary(n):
    # A period of 64 bytes: compressible with any window, even 9 bits.
    unit = bytes(range(32)) + bytes(32)
    return (unit * (n // len(unit) + 1))[:n]


def payloads(sizes):
    """(name, message) pairs in a fixed order."""
    for n in SIZES[sizes]:
        yield f"text {n} compressible", compressible_text(n)
        yield f"text {n} random", random_text(n)
        yield f"binary {n} compressible", compressible_binary(n)
        yield f"binary {n} random", os.urandom(n)


def describe(m):
    kind = "text" if isinstance(m, str) else "binary"
    size = len(m.encode()) if isinstance(m, str) else len(m)
    return f"{kind} of {size} bytes"


# ---- frame accounting ----------------------------------------------------------


class WireStats:
    """Counts, through the negotiated extension's decode(), which incoming
    data messages had RSV1 and how long their first frame was."""

    def __init__(self, ws):
        self.rsv1 = False
        self.wire_len = 0
        self.num_rsv1 = 0
        for ext in ws.extensions:
            orig = ext.decode

            def decode(frame, *, max_size=None, _orig=orig):
                if frame.opcode in (OP_TEXT, OP_BINARY):
                    self.rsv1 = frame.rsv1
                    self.wire_len = len(frame.data)
                    self.num_rsv1 += frame.rsv1
                return _orig(frame, max_size=max_size)

            ext.decode = decode

    def reset(self):
        self.rsv1 = False
        self.wire_len = 0


# ---- variants -----------------------------------------------------------------


def client_options(variant):
    if variant == "default":
        return {"compression": "deflate"}
    if variant == "off":
        return {"compression": None}
    kw = {
        "client-no-ctx": {"client_no_context_takeover": True},
        "server-no-ctx": {"server_no_context_takeover": True},
        "window-10": {"server_max_window_bits": 10, "client_max_window_bits": 10},
    }[variant]
    return {
        "compression": None,
        "extensions": [ClientPerMessageDeflateFactory(compress_settings={"memLevel": 5}, **kw)],
    }


def server_options(variant):
    if variant == "default":
        return {"compression": "deflate"}
    if variant == "off":
        return {"compression": None}
    kw = {
        "client-no-ctx": {"client_no_context_takeover": True},
        "server-no-ctx": {"server_no_context_takeover": True},
        "window-10": {"server_max_window_bits": 10, "client_max_window_bits": 10},
    }[variant]
    return {
        "compression": None,
        "extensions": [ServerPerMessageDeflateFactory(compress_settings={"memLevel": 5}, **kw)],
    }


def ext_params(value):
    """'permessage-deflate; a=1; b' -> ('permessage-deflate', {'a=1', 'b'})."""
    if not value or value == "none":
        return None
    parts = [p.strip() for p in value.split(";")]
    return parts[0], frozenset(p.replace(" ", "") for p in parts[1:])


# ---- client -------------------------------------------------------------------


async def run_client(args):
    async with websockets.connect(
        args.url,
        max_size=None,
        open_timeout=10,
        close_timeout=10,
        ping_interval=None,
        **client_options(args.variant),
    ) as ws:
        got = ws.response_headers.get("Sec-WebSocket-Extensions")
        print(f"offered {ws.request_headers.get('Sec-WebSocket-Extensions')!r}, server answered {got!r}")
        if args.expect_ext is not None and ext_params(got) != ext_params(args.expect_ext):
            raise Failure(f"expected Sec-WebSocket-Extensions {args.expect_ext!r}, got {got!r}")
        stats = WireStats(ws)
        compressed = 0
        for name, message in payloads(args.sizes):
            stats.reset()
            t0 = time.monotonic()
            await ws.send(message)
            echo = await asyncio.wait_for(ws.recv(), WAIT)
            if type(echo) is not type(message) or echo != message:
                raise Failure(f"{name}: sent {describe(message)}, got back {describe(echo)}")
            size = len(message.encode()) if isinstance(message, str) else len(message)
            note = f"compressed to {stats.wire_len} bytes" if stats.rsv1 else "uncompressed"
            print(f"  {name}: echoed byte-exact in {time.monotonic() - t0:.2f}s, {note}")
            compressed += stats.rsv1
            if got is None and stats.rsv1:
                raise Failure(f"{name}: RSV1 set without a negotiated extension")
            if got is not None and size >= KIB and not stats.rsv1:
                raise Failure(f"{name}: the server's echo of {size} bytes was not compressed")
            if got is not None and "compressible" in name and size >= 64 * KIB and (
                stats.wire_len * 4 > size
            ):
                raise Failure(f"{name}: compressed only to {stats.wire_len} bytes")
        await asyncio.wait_for(ws.close(1000, "bye"), 10)
        if ws.close_code != 1000:
            raise Failure(f"the server answered the close with {ws.close_code}")
        print(f"ok: {compressed} echoes arrived compressed; closed with 1000")


# ---- broadcast ----------------------------------------------------------------


def broadcast_messages(tag):
    out = []
    for i, n in enumerate([10, 100, 5000, 200000]):
        out.append(f"{tag}:{i}:" + compressible_text(n))
        out.append(tag.encode() + bytes([i]) + os.urandom(n))
    return out


def sender_of(m):
    return m.split(":", 1)[0] if isinstance(m, str) else chr(m[0])


async def run_broadcast(args):
    variants = {"A": "default", "B": "off", "C": "client-no-ctx"}
    conns, stats, sent = {}, {}, {}
    try:
        for tag, variant in variants.items():
            conns[tag] = await websockets.connect(
                args.url, max_size=None, open_timeout=10, close_timeout=10, ping_interval=None,
                **client_options(variant),
            )
            stats[tag] = WireStats(conns[tag])
            print(f"{tag} ({variant}): extensions "
                  f"{conns[tag].response_headers.get('Sec-WebSocket-Extensions')!r}")
        for tag in variants:
            sent[tag] = broadcast_messages(tag)

        async def send_all(tag):
            for m in sent[tag]:
                await conns[tag].send(m)

        async def receive_all(tag):
            got = {t: [] for t in variants}
            for _ in range(sum(len(v) for v in sent.values())):
                m = await asyncio.wait_for(conns[tag].recv(), WAIT)
                got[sender_of(m)].append(m)
            return got

        receivers = [asyncio.ensure_future(receive_all(t)) for t in variants]
        await asyncio.gather(*(send_all(t) for t in variants))
        results = await asyncio.gather(*receivers)
        for tag, got in zip(variants, results):
            for sender in variants:
                if got[sender] != sent[sender]:
                    raise Failure(f"{tag} got {len(got[sender])} messages from {sender}, not "
                                  f"the {len(sent[sender])} sent, or not byte-exact/in order")
            n = stats[tag].num_rsv1
            print(f"{tag}: all 24 messages byte-exact and in order; {n} arrived compressed")
            if (variants[tag] == "off") != (n == 0):
                raise Failure(f"{tag} ({variants[tag]}): {n} compressed messages")
    finally:
        for ws in conns.values():
            await ws.close()


# ---- server -------------------------------------------------------------------


def say(line):
    print(line, flush=True)


async def roundtrip_handler(ws, path):
    ext = ws.response_headers.get("Sec-WebSocket-Extensions")
    say(f"connection: {path} offered={ws.request_headers.get('Sec-WebSocket-Extensions')!r} "
        f"answered={ext!r}")
    if path not in ("/roundtrip", "/roundtrip-small"):
        async for message in ws:
            await ws.send(message)
        return
    stats = WireStats(ws)
    compressed = total = 0
    try:
        for name, message in payloads("all" if path == "/roundtrip" else "small"):
            stats.reset()
            await ws.send(message)
            echo = await asyncio.wait_for(ws.recv(), WAIT)
            if type(echo) is not type(message) or echo != message:
                raise Failure(f"{name}: sent {describe(message)}, got back {describe(echo)}")
            size = len(message.encode()) if isinstance(message, str) else len(message)
            if ext is None and stats.rsv1:
                raise Failure(f"{name}: RSV1 set without a negotiated extension")
            if ext is not None and size >= KIB and not stats.rsv1:
                raise Failure(f"{name}: the client's echo of {size} bytes was not compressed")
            compressed += stats.rsv1
            total += 1
    except Exception as e:  # noqa: BLE001 - any failure is the verdict
        say(f"roundtrip: FAIL {type(e).__name__}: {e}")
        await ws.close(1011, "failed")
        return
    say(f"roundtrip: ok extensions={ext or '<none>'} compressed={compressed}/{total}")
    await ws.close(1000, "done")


async def run_server(args):
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with websockets.serve(
        roundtrip_handler,
        "127.0.0.1",
        0,
        max_size=None,
        ping_interval=None,
        **server_options(args.variant),
    ) as server:
        port = server.sockets[0].getsockname()[1]
        say(f"py_deflate: listening on ws://127.0.0.1:{port}/ (variant {args.variant})")
        await stop


# ---- bomb ---------------------------------------------------------------------


def vm_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise Failure(f"no {field} in /proc/{pid}/status")


def frame(opcode, payload, fin=True, rsv1=False):
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def read_exact(s, n, buf):
    while len(buf) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise Failure(f"TCP closed with {len(buf)} of {n} bytes read")
        buf += chunk
    return buf[:n], buf[n:]


def run_bomb(args):
    u = urllib.parse.urlsplit(args.url)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET {u.path or '/'} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        ).encode()
    )
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise Failure(f"TCP closed during the handshake answer: {buf!r}")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    head = head.decode("latin-1")
    if " 101 " not in head.split("\r\n", 1)[0] + " ":
        raise Failure(f"upgrade refused: {head!r}")
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    headers = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("sec-websocket-accept") != accept:
        raise Failure("bad Sec-WebSocket-Accept")
    ext = headers.get("sec-websocket-extensions", "")
    print(f"negotiated: {ext!r}")
    if not ext.startswith("permessage-deflate"):
        raise Failure("the server did not accept permessage-deflate")
    bits = 15
    for p in ext.split(";"):
        name, _, value = p.strip().partition("=")
        if name == "client_max_window_bits" and value:
            bits = int(value)
    z = zlib.compressobj(9, zlib.DEFLATED, -max(bits, 9), 9)
    data = z.compress(bytes(16 * MIB)) + z.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    data = data[:-4]
    if args.kind == "fragmented":
        q = len(data) // 4
        pieces = [data[:q], data[q : 2 * q], data[2 * q : 3 * q], data[3 * q :]]
        wire = b"".join(
            frame(OP_BINARY if i == 0 else OP_CONT, p, fin=(i == 3), rsv1=(i == 0))
            for i, p in enumerate(pieces)
        )
    else:
        wire = frame(OP_TEXT if args.kind == "text" else OP_BINARY, data, rsv1=True)
    hwm0 = vm_kib(args.pid, "VmHWM")
    print(f"server VmHWM before: {hwm0 / 1024:.1f} MiB; sending {len(data)} compressed bytes "
          f"that inflate to {16 * MIB} ({args.kind})")
    t0 = time.monotonic()
    s.sendall(wire)
    s.settimeout(5)
    try:
        while True:
            hdr, buf = read_exact(s, 2, buf)
            n = hdr[1] & 0x7F
            if n == 126:
                ext_len, buf = read_exact(s, 2, buf)
                n = struct.unpack("!H", ext_len)[0]
            elif n == 127:
                ext_len, buf = read_exact(s, 8, buf)
                n = struct.unpack("!Q", ext_len)[0]
            payload, buf = read_exact(s, n, buf)
            if hdr[0] & 0x0F == 8:
                break
    except socket.timeout:
        raise Failure("no close frame within 5 s")
    elapsed = time.monotonic() - t0
    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
    print(f"close frame after {elapsed:.2f}s: code {code} reason {payload[2:]!r}")
    if code != 1009:
        raise Failure(f"close code {code}, expected 1009")
    try:
        s.sendall(frame(8, struct.pack("!H", 1009)))
    except OSError:
        pass
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise Failure("the server kept TCP open 5 s after the close")
    hwm1 = vm_kib(args.pid, "VmHWM")
    growth = (hwm1 - hwm0) / 1024
    print(f"server VmHWM after: {hwm1 / 1024:.1f} MiB (grew {growth:.1f} MiB, "
          f"limit {args.max_growth})")
    if growth > args.max_growth:
        raise Failure(f"server peak RSS grew by {growth:.1f} MiB")


# ---- main ---------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("client")
    c.add_argument("url")
    c.add_argument("--variant", default="default")
    c.add_argument("--expect-ext")
    c.add_argument("--sizes", default="all", choices=SIZES)
    sv = sub.add_parser("server")
    sv.add_argument("--variant", default="default")
    bc = sub.add_parser("broadcast")
    bc.add_argument("url")
    b = sub.add_parser("bomb")
    b.add_argument("url")
    b.add_argument("pid", type=int)
    b.add_argument("max_growth", type=float)
    b.add_argument("--kind", default="binary", choices=["binary", "text", "fragmented"])
    args = parser.parse_args()
    try:
        if args.cmd == "client":
            asyncio.run(asyncio.wait_for(run_client(args), 180))
        elif args.cmd == "server":
            asyncio.run(run_server(args))
        elif args.cmd == "broadcast":
            asyncio.run(asyncio.wait_for(run_broadcast(args), 120))
        else:
            run_bomb(args)
    except Failure as e:
        print(f"FAIL: {e}")
        return 1
    except asyncio.TimeoutError:
        print("FAIL: timed out")
        return 1
    except (OSError, websockets.WebSocketException) as e:
        print(f"FAIL: {type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
