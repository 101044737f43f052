#!/usr/bin/python3
"""Raw TCP and UDP peers for wsk serve --listen tcp:// and udp:// tests.

Each scenario prints "ok: WHAT" for every check that holds and exits 0, or
prints "FAIL: WHAT (details)" and exits 1. Every wait has a timeout.

  raw_peer.py room WS_URL TCP_PORT UDP_PORT   one room across WS, TCP and UDP
  raw_peer.py echo TCP_PORT UDP_PORT          echo, incl. a client that reads late
  raw_peer.py longline TCP_PORT MAX           a line over MAX closes the sender
  raw_peer.py udp-expiry UDP_PORT SECONDS     silent peers leave the room
  raw_peer.py idle TCP_PORT SECONDS           an idle connection is closed
  raw_peer.py hold TCP_PORT                   connect, say "connected", wait for EOF
  raw_peer.py reply TCP_PORT WHEN LINE        connect, say "connected", send LINE
                                              after a line WHEN arrives
  raw_peer.py ws-reply WS_URL WHEN LINE       the same as a WebSocket client
  raw_peer.py eof-reply                       a TCP server (port 0, prints
                                              "listening on tcp://127.0.0.1:PORT (...)"):
                                              per client, reads to EOF, then
                                              sends "got N bytes\nbye\n"
  raw_peer.py greet-close                     a TCP server that sends "hello\n"
                                              to each client and closes
  raw_peer.py flood-server                    a TCP server that writes to
                                              each client as fast as it reads,
                                              for up to 60 s
"""
import asyncio
import socket
import sys
import time

import websockets

T = 5.0  # seconds any single wait may take
HOST = "127.0.0.1"
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


class Udp(asyncio.DatagramProtocol):
    def __init__(self):
        self.queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.queue.put_nowait(data)


async def udp_peer(port):
    loop = asyncio.get_running_loop()
    tr, pr = await loop.create_datagram_endpoint(Udp, remote_addr=(HOST, port))
    return tr, pr


async def recv_udp(pr, timeout=T):
    try:
        return await asyncio.wait_for(pr.queue.get(), timeout)
    except asyncio.TimeoutError:
        return None


async def read_line(reader, timeout=T):
    try:
        return await asyncio.wait_for(reader.readline(), timeout)
    except asyncio.TimeoutError:
        return None


async def nothing_more(reader, timeout=0.3):
    """True when no byte arrives within timeout."""
    try:
        await asyncio.wait_for(reader.read(1), timeout)
        return False
    except asyncio.TimeoutError:
        return True


async def room(ws_url, tcp_port, udp_port):
    r1, w1 = await asyncio.open_connection(HOST, tcp_port)
    r2, w2 = await asyncio.open_connection(HOST, tcp_port)
    ws = await websockets.connect(ws_url, max_size=None)
    ut, up = await udp_peer(udp_port)
    ut2, up2 = await udp_peer(udp_port)

    # A UDP peer joins the room by speaking.
    ut2.sendto(b"second peer joins")
    check(await read_line(r1) == b"second peer joins\n", "a UDP peer joins by speaking")
    await read_line(r2)
    await asyncio.wait_for(ws.recv(), T)
    ut.sendto(b"udp hello")
    check(await read_line(r1) == b"udp hello\n", "a UDP datagram reaches a TCP client as a line")
    check(await read_line(r2) == b"udp hello\n", "... and every TCP client")
    m = await asyncio.wait_for(ws.recv(), T)
    check(m == "udp hello", "... and a WebSocket client as a text message", repr(m))
    check(await recv_udp(up2) == b"udp hello", "... and the other UDP peer")
    check(await recv_udp(up, 0.3) is None, "the UDP sender does not get its own datagram")
    ut2.sendto(b"second peer")
    check(await recv_udp(up) == b"second peer", "the second UDP peer is heard by the first")
    for r in (r1, r2):
        await read_line(r)
    await asyncio.wait_for(ws.recv(), T)

    # A TCP line, split across writes, with a CRLF ending.
    w1.write(b"tcp li")
    await w1.drain()
    await asyncio.sleep(0.05)
    w1.write(b"ne\r\nnext")
    await w1.drain()
    check(await read_line(r2) == b"tcp line\n", "a TCP line split across writes reaches the other TCP client, CR dropped")
    m = await asyncio.wait_for(ws.recv(), T)
    check(m == "tcp line", "... and the WebSocket client as text", repr(m))
    check(await recv_udp(up) == b"tcp line", "... and the UDP peers as one datagram")
    check(await recv_udp(up2) == b"tcp line", "... every UDP peer")
    check(await nothing_more(r1), "the TCP sender does not get its own line")
    w1.write(b" line\n")
    await w1.drain()
    check(await read_line(r2) == b"next line\n", "the rest of a line after a newline is kept for the next one")
    await asyncio.wait_for(ws.recv(), T)
    await recv_udp(up)
    await recv_udp(up2)

    # Not UTF-8: binary to WebSocket clients, bytes untouched elsewhere.
    w2.write(b"\xff\xfe\x00bin\n")
    await w2.drain()
    m = await asyncio.wait_for(ws.recv(), T)
    check(m == b"\xff\xfe\x00bin", "a line that is not UTF-8 reaches WebSocket clients as binary", repr(m))
    check(await read_line(r1) == b"\xff\xfe\x00bin\n", "... and TCP clients byte for byte")
    check(await recv_udp(up) == b"\xff\xfe\x00bin", "... and UDP peers byte for byte")
    await recv_udp(up2)

    # A WebSocket message: everyone, the WebSocket sender included.
    await ws.send("from the browser")
    m = await asyncio.wait_for(ws.recv(), T)
    check(m == "from the browser", "a WebSocket message comes back to its sender (chat page)", repr(m))
    check(await read_line(r1) == b"from the browser\n", "a WebSocket message reaches TCP clients as a line")
    check(await read_line(r2) == b"from the browser\n", "... every TCP client")
    check(await recv_udp(up) == b"from the browser", "... and UDP peers as a datagram")
    check(await recv_udp(up2) == b"from the browser", "... every UDP peer")

    # EOF after a last line without a newline: it still counts.
    w1.write(b"last words")
    w1.write_eof()
    check(await read_line(r2) == b"last words\n", "a last line without a newline is delivered at EOF")
    check(await read_line(r1) == b"", "the server closes a TCP connection after the client's EOF")
    m = await asyncio.wait_for(ws.recv(), T)
    check(m == "last words", "... to WebSocket clients too", repr(m))

    w2.close()
    await ws.close()
    ut.close()
    ut2.close()


async def echo(tcp_port, udp_port):
    r, w = await asyncio.open_connection(HOST, tcp_port)
    w.write(b"no newline needed")
    await w.drain()
    got = b""
    deadline = time.monotonic() + T
    while len(got) < 17 and time.monotonic() < deadline:
        got += await asyncio.wait_for(r.read(100), T)
    check(got == b"no newline needed", "TCP echo returns bytes as they come", repr(got))

    # A client that writes 16 MiB before reading a byte: the server stops
    # reading once its queue is full (TCP pushes back), then catches up.
    size = 16 << 20
    block = bytes(range(256)) * 256
    payload = block * (size // len(block))

    async def writer():
        w.write(payload)
        await w.drain()

    task = asyncio.ensure_future(writer())
    await asyncio.sleep(1.0)
    got = bytearray()
    deadline = time.monotonic() + 60
    while len(got) < size and time.monotonic() < deadline:
        chunk = await asyncio.wait_for(r.read(1 << 20), 30)
        if not chunk:
            break
        got += chunk
    await asyncio.wait_for(task, 30)
    check(bytes(got) == payload, "16 MiB written before reading comes back intact (back-pressure)", "%d bytes" % len(got))
    w.close()

    ut, up = await udp_peer(udp_port)
    for i in range(3):
        ut.sendto(b"dgram %d" % i)
        check(await recv_udp(up) == b"dgram %d" % i, "UDP echo returns datagram %d to its sender" % i)
    # asyncio does not send empty datagrams (Python 3.11): a plain socket.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(T)
    s.sendto(b"", (HOST, udp_port))
    try:
        data = s.recv(100)
    except socket.timeout:
        data = None
    s.close()
    check(data == b"", "an empty datagram is echoed as one", repr(data))
    big = b"x" * 60000
    ut.sendto(big)
    check(await recv_udp(up) == big, "a 60,000-byte datagram is echoed whole")
    ut.close()


async def longline(tcp_port, max_len):
    r, w = await asyncio.open_connection(HOST, tcp_port)
    r2, w2 = await asyncio.open_connection(HOST, tcp_port)
    w.write(b"a" * max_len + b"\n")
    await w.drain()
    check(await read_line(r2) == b"a" * max_len + b"\n", "a line of exactly --max-message bytes passes")
    w.write(b"b" * (max_len + 1))
    await w.drain()
    try:
        data = await asyncio.wait_for(r.read(100), T)
    except (ConnectionResetError, asyncio.TimeoutError) as e:
        data = repr(e)
    check(data == b"", "a line over --max-message closes its sender's connection", repr(data))
    check(await nothing_more(r2), "... and is not relayed")
    w2.write(b"still here\n")
    await w2.drain()
    w2.close()
    w.close()


async def udp_expiry(udp_port, seconds):
    ut, up = await udp_peer(udp_port)
    ut2, up2 = await udp_peer(udp_port)
    ut.sendto(b"a joins")
    check(await recv_udp(up2, 0.5) is None, "a peer that never spoke gets nothing")
    ut2.sendto(b"b joins")
    check(await recv_udp(up) == b"b joins", "a peer that spoke gets the room's datagrams")
    await asyncio.sleep(seconds * 2.5)
    ut2.sendto(b"after a while")
    check(await recv_udp(up, 0.5) is None, "a peer silent for longer than --udp-peer-timeout gets nothing")
    ut.sendto(b"a again")
    check(await recv_udp(up2) == b"a again", "... until it speaks again")
    ut2.sendto(b"welcome back")
    check(await recv_udp(up) == b"welcome back", "... and then gets them again")
    big = b"y" * 2000
    ut.sendto(big)
    check(await recv_udp(up2, 0.5) is None, "a datagram over --max-message is dropped")
    ut.close()
    ut2.close()


async def idle(tcp_port, seconds):
    r, w = await asyncio.open_connection(HOST, tcp_port)
    t0 = time.monotonic()
    w.write(b"hi\n")
    await w.drain()
    try:
        data = await asyncio.wait_for(r.read(100), seconds + T)
        while data:
            data = await asyncio.wait_for(r.read(100), seconds + T)
    except ConnectionResetError:
        data = b""
    dt = time.monotonic() - t0
    check(data == b"" and dt >= seconds * 0.9, "an idle TCP connection is closed after --idle-timeout", "%.2fs" % dt)
    w.close()


async def hold(tcp_port):
    r, w = await asyncio.open_connection(HOST, tcp_port)
    w.write(b"queued before shutdown\n")
    await w.drain()
    print("connected", flush=True)
    try:
        data = await asyncio.wait_for(r.read(), 30)
    except ConnectionResetError:
        data = None
    check(data is not None, "the server ends a TCP connection with FIN at shutdown", repr(data))
    w.close()


async def reply(tcp_port, when, line):
    r, w = await asyncio.open_connection(HOST, tcp_port)
    print("connected", flush=True)
    while True:
        got = await read_line(r, 30)
        if not got:
            fail("no line %r arrived" % when)
            return
        if got.rstrip(b"\n") == when.encode():
            break
    w.write(line.encode() + b"\n")
    await w.drain()
    ok("sent %r after %r" % (line, when))
    w.close()


async def ws_reply(url, when, line):
    async with websockets.connect(url) as ws:
        print("connected", flush=True)
        while True:
            m = await asyncio.wait_for(ws.recv(), 30)
            if m == when:
                break
        await ws.send(line)
        ok("sent %r after %r" % (line, when))


async def eof_reply():
    async def serve(r, w):
        data = await asyncio.wait_for(r.read(), 30)
        w.write(b"got %d bytes\nbye\n" % len(data))
        await w.drain()
        w.close()

    srv = await asyncio.start_server(serve, HOST, 0)
    port = srv.sockets[0].getsockname()[1]
    print("listening on tcp://%s:%d (eof-reply)" % (HOST, port), flush=True)
    await asyncio.sleep(110)


async def greet_close():
    async def serve(r, w):
        w.write(b"hello\n")
        await w.drain()
        w.close()

    srv = await asyncio.start_server(serve, HOST, 0)
    print("listening on tcp://%s:%d (greet-close)" % (HOST, srv.sockets[0].getsockname()[1]),
          flush=True)
    await asyncio.sleep(110)


async def flood_server():
    async def serve(r, w):
        block = b"f" * 65536
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                w.write(block)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        w.close()

    srv = await asyncio.start_server(serve, HOST, 0)
    print("listening on tcp://%s:%d (flood)" % (HOST, srv.sockets[0].getsockname()[1]),
          flush=True)
    await asyncio.sleep(110)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "room":
        coro = room(args[0], int(args[1]), int(args[2]))
    elif cmd == "echo":
        coro = echo(int(args[0]), int(args[1]))
    elif cmd == "longline":
        coro = longline(int(args[0]), int(args[1]))
    elif cmd == "udp-expiry":
        coro = udp_expiry(int(args[0]), float(args[1]))
    elif cmd == "idle":
        coro = idle(int(args[0]), float(args[1]))
    elif cmd == "reply":
        coro = reply(int(args[0]), args[1], args[2])
    elif cmd == "ws-reply":
        coro = ws_reply(args[0], args[1], args[2])
    elif cmd == "eof-reply":
        coro = eof_reply()
    elif cmd == "greet-close":
        coro = greet_close()
    elif cmd == "flood-server":
        coro = flood_server()
    elif cmd == "hold":
        coro = hold(int(args[0]))
    else:
        print(__doc__)
        sys.exit(2)
    try:
        asyncio.run(asyncio.wait_for(coro, 120))
    except Exception as e:  # a timeout or a lost connection is a failure too
        fail("%s: %r" % (cmd, e))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
