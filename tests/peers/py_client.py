#!/usr/bin/python3
"""A Python `websockets` client that checks one echo behaviour of a server.

usage: py_client.py [--cafile CA.pem] [--wait-file FILE] URL CASE [CASE...]

Each CASE talks to an echo server over one fresh connection, prints what it
sent and got, and exits 1 on the first mismatch. Cases:
  text, binary, empty-text, empty-binary, big-binary, big-text (1 MiB each,
  byte-exact), fragmented-text, fragmented-binary (send() of an iterable makes
  websockets send one frame per item), ping (await the pong), close (the
  server's close frame carries 1000), many (100 messages in a row, in order),
  linger (a round trip, 2 s idle, another round trip), wait (a round trip,
  then "waiting" on stdout, then another round trip on the same connection
  once --wait-file exists, within 30 s).

A wss:// URL is verified against --cafile (and the URL's host) when given,
else against the system's CA store. The client offers permessage-deflate, as
websockets does by default.

Every network wait is bounded; the whole run is also bounded by --timeout.
Run with Debian's /usr/bin/python3, which has python3-websockets.
"""

import argparse
import asyncio
import os
import ssl
import sys

import websockets

MIB = 1 << 20


def describe(data):
    kind = "text" if isinstance(data, str) else "binary"
    head = data[:16]
    return f"{kind} of {len(data)} {'chars' if kind == 'text' else 'bytes'} {head!r}..."


class Mismatch(Exception):
    pass


async def roundtrip(ws, message, expected=None):
    expected = message if expected is None else expected
    await ws.send(message)
    got = await asyncio.wait_for(ws.recv(), 20)
    if type(got) is not type(expected) or got != expected:
        raise Mismatch(f"sent {describe(expected)}, got back {describe(got)}")
    print(f"  echoed {describe(expected)}")


def big_text():
    # Multi-byte characters exercise UTF-8 validation across frame and read
    # boundaries: 1 MiB of bytes, made of 1-, 2-, 3- and 4-byte characters.
    unit = "aé€😀"  # 1 + 2 + 3 + 4 = 10 bytes
    text = unit * (MIB // 10)
    text += "x" * (MIB - len(text.encode()))
    assert len(text.encode()) == MIB
    return text


async def wait_for_file(path, timeout):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not os.path.exists(path):
        if loop.time() > deadline:
            raise Mismatch(f"{path} did not appear within {timeout}s")
        await asyncio.sleep(0.05)


async def run_case(url, case, args):
    tls = {}
    if url.startswith("wss:"):
        tls["ssl"] = ssl.create_default_context(cafile=args.cafile)
    async with websockets.connect(
        url, max_size=None, open_timeout=10, close_timeout=5, ping_interval=None, **tls
    ) as ws:
        if case == "text":
            await roundtrip(ws, "hello, wsk ✓")
        elif case == "binary":
            await roundtrip(ws, bytes(range(256)))
        elif case == "empty-text":
            await roundtrip(ws, "")
        elif case == "empty-binary":
            await roundtrip(ws, b"")
        elif case == "big-binary":
            await roundtrip(ws, os.urandom(MIB))
        elif case == "big-text":
            await roundtrip(ws, big_text())
        elif case == "fragmented-text":
            await roundtrip(ws, ["frag", "ment", "ed ✓", ""], "fragmented ✓")
        elif case == "fragmented-binary":
            await roundtrip(ws, [b"\x00\x01", b"", b"\xff" * 70000], b"\x00\x01" + b"\xff" * 70000)
        elif case == "ping":
            waiter = await ws.ping(b"wsk-ping")
            await asyncio.wait_for(waiter, 10)
            print("  pong received for ping 'wsk-ping'")
            await roundtrip(ws, "after ping")
        elif case == "many":
            for i in range(100):
                await ws.send(f"message {i}")
            for i in range(100):
                got = await asyncio.wait_for(ws.recv(), 20)
                if got != f"message {i}":
                    raise Mismatch(f"message {i}: got {got!r}")
            print("  100 messages echoed in order")
        elif case == "linger":
            # An open connection outlives any handshake timeout (2 s idle).
            await roundtrip(ws, "before idling")
            await asyncio.sleep(2)
            await roundtrip(ws, "after idling 2 s")
        elif case == "wait":
            await roundtrip(ws, "before waiting")
            print("waiting", flush=True)
            await wait_for_file(args.wait_file, 30)
            await roundtrip(ws, "after waiting ✓")
        elif case == "close":
            await roundtrip(ws, "before close")
        else:
            raise SystemExit(f"unknown case {case}")
        await asyncio.wait_for(ws.close(1000, "bye"), 10)
        if ws.close_code != 1000:
            raise Mismatch(f"server's close frame had code {ws.close_code}, expected 1000")
        print(f"  closed: server answered close with {ws.close_code}")


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--timeout", type=float, default=45)
    parser.add_argument("--cafile")
    parser.add_argument("--wait-file")
    args = parser.parse_args()
    for case in args.cases:
        print(f"{case}:")
        try:
            await asyncio.wait_for(run_case(args.url, case, args), args.timeout)
        except Mismatch as e:
            print(f"  MISMATCH: {e}")
            return 1
        except asyncio.TimeoutError:
            print(f"  TIMEOUT after {args.timeout}s")
            return 1
        except (OSError, ssl.SSLError, websockets.WebSocketException) as e:
            print(f"  ERROR: {type(e).__name__}: {e}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
