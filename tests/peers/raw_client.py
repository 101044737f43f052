#!/usr/bin/python3
"""Hand-made WebSocket and HTTP traffic over plain sockets, for what a real
client library would refuse to send.

usage:
  raw_client.py edge URL CASE    send one malformed (or one valid) thing on an
                                 upgraded connection, check the code in the
                                 server's close frame and that the server then
                                 closes TCP; meanwhile a second, well-behaved
                                 connection must keep echoing
  raw_client.py edge-list        print the CASE names, one a line
  raw_client.py echo URL SIZE    a SIZE-byte text message is echoed, and a
                                 close 1000 is answered with 1000
  raw_client.py idle URL MIN MAX connect, send nothing; the server must drop
                                 the connection between MIN and MAX seconds
  raw_client.py trickle URL MIN MAX
                                 send an upgrade request one byte per 200 ms;
                                 the server must drop the connection between
                                 MIN and MAX seconds after connecting
  raw_client.py tls-stall URL MIN MAX
                                 send the first half of a TLS ClientHello and
                                 nothing more; the server must drop the
                                 connection between MIN and MAX seconds
  raw_client.py plain-to-tls URL send a plain-text upgrade request to a TLS
                                 port: the server must close the connection
                                 within 10 s without any HTTP answer
  raw_client.py upgrade-status URL
                                 print the status line of the answer to an
                                 upgrade request, then close
  raw_client.py http URL METHOD PATH
                                 send one HTTP/1.1 request with Connection:
                                 close, print the raw answer (head and body)
                                 as latin-1
  raw_client.py hold-port        bind 127.0.0.1:0 without listening, print
                                 "hold-port: ws://127.0.0.1:PORT/", then wait
                                 to be killed: a port that refuses connections

All waits are bounded. Exit status 0 means the expectation held.
"""

import base64
import hashlib
import os
import socket
import ssl
import struct
import sys
import time
import urllib.parse

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WAIT = 10  # seconds any single read may take


class Failure(Exception):
    pass


def parse_url(url):
    u = urllib.parse.urlsplit(url)
    default_port = 443 if u.scheme in ("wss", "https") else 80
    return u.hostname, u.port or default_port, (u.path or "/") + (f"?{u.query}" if u.query else "")


def connect(url):
    host, port, _ = parse_url(url)
    s = socket.create_connection((host, port), timeout=WAIT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise Failure(f"connection closed during the HTTP answer; got {buf!r}")
        buf += chunk
        if len(buf) > 65536:
            raise Failure("HTTP answer head over 64 KiB")
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def headers(head):
    out = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        out[name.strip().lower()] = value.strip()
    return out


def upgrade_request(url, key, extra=""):
    host, port, path = parse_url(url)
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode()


class Conn:
    """An upgraded connection that sends masked frames and parses the server's."""

    def __init__(self, url):
        self.sock = connect(url)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(upgrade_request(url, key))
        head, self.buf = read_head(self.sock)
        status = head.split("\r\n", 1)[0]
        if " 101 " not in status + " ":
            raise Failure(f"upgrade refused: {status!r}")
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        if headers(head).get("sec-websocket-accept") != accept:
            raise Failure(f"bad or missing Sec-WebSocket-Accept in {head!r}")

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, opcode, payload=b"", fin=True, rsv=0, masked=True, length=None):
        self.sock.sendall(frame(opcode, payload, fin, rsv, masked, length))

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"TCP closed by server with {len(self.buf)} bytes of a frame")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        b0, b1 = self._need(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._need(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._need(8))
        mask = self._need(4) if b1 & 0x80 else None
        payload = self._need(n)
        if mask:
            payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        return {
            "fin": bool(b0 & 0x80),
            "rsv": (b0 >> 4) & 7,
            "opcode": b0 & 0x0F,
            "masked": mask is not None,
            "payload": payload,
        }

    def read_close(self):
        """Reads frames until a close frame and returns (code, reason, frame)."""
        while True:
            f = self.read_frame()
            if f["opcode"] == 8:
                p = f["payload"]
                code = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else None
                return code, p[2:], f

    def expect_eof(self, within=WAIT):
        """After the close handshake the server must close TCP."""
        self.sock.settimeout(within)
        try:
            while True:
                if not self.sock.recv(65536):
                    return
        except ConnectionResetError:
            return
        except socket.timeout:
            raise Failure(f"server kept TCP open {within}s after the close handshake")

    def echo(self, payload):
        self.send(0x1, payload)
        f = self.read_frame()
        if f["opcode"] != 0x1 or f["payload"] != payload:
            raise Failure(f"echo of {payload!r}: got opcode {f['opcode']} {f['payload'][:40]!r}")

    def close(self):
        self.sock.close()


def frame(opcode, payload=b"", fin=True, rsv=0, masked=True, length=None):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mbit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if masked:
        key = os.urandom(4)
        head += key
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    return head + payload


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


# name -> (the bytes it sends, the close codes the server may answer with).
# Everything a case sends goes out in one write, so the server sees it whole
# before it can react and close.
EDGES = {
    "unmasked-frame": (frame(0x1, b"hi", masked=False), {1002}),
    "reserved-opcode-3": (frame(0x3, b"x"), {1002}),
    "reserved-opcode-b": (frame(0xB, b"x"), {1002}),
    "rsv1-without-extension": (frame(0x1, b"hi", rsv=4), {1002}),
    "rsv3": (frame(0x1, b"hi", rsv=1), {1002}),
    "fragmented-ping": (frame(0x9, b"p", fin=False), {1002}),
    "ping-126-bytes": (frame(0x9, b"p" * 126), {1002}),
    "continuation-without-start": (frame(0x0, b"orphan"), {1002}),
    "text-inside-fragmented-text": (frame(0x1, b"start", fin=False) + frame(0x1, b"again"), {1002}),
    "invalid-utf8-text": (frame(0x1, b"ok \xc3\x28 bad"), {1007}),
    "invalid-utf8-across-fragments": (
        frame(0x1, b"ok \xe2\x82", fin=False) + frame(0x0, b"\x28"),
        {1007},
    ),
    "utf8-surrogate": (frame(0x1, b"\xed\xa0\x80"), {1007}),
    "close-code-1005": (frame(0x8, close_payload(1005)), {1002}),
    "close-code-1006": (frame(0x8, close_payload(1006)), {1002}),
    "close-code-999": (frame(0x8, close_payload(999)), {1002}),
    "close-code-5000": (frame(0x8, close_payload(5000)), {1002}),
    "close-1-byte-payload": (frame(0x8, b"\x03"), {1002}),
    "close-invalid-utf8-reason": (frame(0x8, close_payload(1000, b"\xff\xfe")), {1007}),
    # These two need the server's --max-message to be 1024.
    "over-max-message": (frame(0x1, b"x" * 2000), {1009}),
    "over-max-message-fragmented": (
        b"".join(frame(0x2 if i == 0 else 0x0, b"y" * 300, fin=(i == 9)) for i in range(10)),
        {1009},
    ),
    # Valid closes: the server answers with the code it got (RFC 6455 5.5.1
    # says "typically"; for 4000 an answer of 1000 is accepted too).
    "close-1000": (frame(0x8, close_payload(1000, b"bye")), {1000}),
    "close-4000": (frame(0x8, close_payload(4000)), {4000, 1000}),
}


def run_edge(url, case):
    data, expected = EDGES[case]
    good = Conn(url)
    good.echo(b"before")
    bad = Conn(url)
    bad.echo(b"warm-up")
    bad.send_raw(data)
    try:
        code, reason, f = bad.read_close()
    except EOFError as e:
        raise Failure(f"no close frame from the server, TCP closed: {e}")
    except socket.timeout:
        raise Failure(f"no close frame from the server within {WAIT}s")
    print(f"server's close frame: code {code} reason {reason!r}")
    if f["masked"]:
        raise Failure("the server's close frame is masked")
    if code not in expected:
        raise Failure(f"close code {code}, expected {' or '.join(map(str, sorted(expected)))}")
    if data[0] & 0x0F != 0x8:
        # The server started the close: we answer (it may already have closed
        # TCP, as failing the connection allows), and then it must close TCP.
        try:
            bad.send(0x8, close_payload(1000))
        except (BrokenPipeError, ConnectionResetError):
            pass
    bad.expect_eof()
    print("server closed TCP after the close handshake")
    good.echo(b"after")
    print("the other connection still echoes")
    good.send(0x8, close_payload(1000))
    code, _, _ = good.read_close()
    if code != 1000:
        raise Failure(f"well-behaved close answered with {code}")
    good.expect_eof()
    bad.close()
    good.close()


def run_echo(url, size):
    c = Conn(url)
    payload = b"z" * size
    c.echo(payload)
    print(f"a {size}-byte text message was echoed")
    c.send(0x8, close_payload(1000))
    code, _, _ = c.read_close()
    if code != 1000:
        raise Failure(f"close answered with {code}")
    c.expect_eof()
    c.close()


def client_hello():
    """The first flight of a real TLS client, as bytes."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def run_idle(url, lo, hi, trickle, prefix=b""):
    host, port, path = parse_url(url)
    req = upgrade_request(url, base64.b64encode(os.urandom(16)).decode())
    s = connect(url)
    t0 = time.monotonic()
    if prefix:
        s.sendall(prefix)
        print(f"sent {len(prefix)} bytes, then nothing")
    sent = 0
    s.settimeout(0.2 if trickle else hi + 2)
    while True:
        try:
            data = s.recv(4096)
            if not data:
                break
            print(f"server sent {data[:80]!r}")
            if b"101" in data.split(b"\r\n", 1)[0]:
                raise Failure("the server upgraded a trickled request that took too long")
            continue
        except ConnectionResetError:
            break
        except socket.timeout:
            pass
        elapsed = time.monotonic() - t0
        if elapsed > hi + 2:
            raise Failure(f"still connected after {elapsed:.1f}s (sent {sent} bytes)")
        if trickle and sent < len(req):
            try:
                s.sendall(req[sent:sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
    elapsed = time.monotonic() - t0
    print(f"server closed the connection after {elapsed:.2f}s ({sent} request bytes sent)")
    if not lo <= elapsed <= hi:
        raise Failure(f"closed after {elapsed:.2f}s, expected between {lo} and {hi}s")


def run_plain_to_tls(url):
    s = connect(url)
    s.sendall(upgrade_request(url, base64.b64encode(os.urandom(16)).decode()))
    t0 = time.monotonic()
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise Failure(f"the server kept the connection open {WAIT}s; it sent {data[:40]!r}")
    elapsed = time.monotonic() - t0
    print(f"server closed the connection after {elapsed:.2f}s; it sent {data[:40]!r}")
    # Like nginx: a readable 400 and a close, never an upgrade.
    if not data.startswith(b"HTTP/1.1 400 "):
        raise Failure(f"expected a plain 400 answer, got {data[:40]!r}")
    if b" 101 " in data:
        raise Failure("the TLS port upgraded a plain connection")


def run_upgrade_status(url):
    s = connect(url)
    s.sendall(upgrade_request(url, base64.b64encode(os.urandom(16)).decode()))
    head, _ = read_head(s)
    print(head.split("\r\n", 1)[0])
    s.close()


def run_http(url, method, path):
    host, port, _ = parse_url(url)
    s = connect(url)
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    sys.stdout.write(data.decode("latin-1"))


def run_hold_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(f"hold-port: ws://127.0.0.1:{s.getsockname()[1]}/", flush=True)
    time.sleep(600)


def main(argv):
    if not argv:
        sys.exit(__doc__)
    cmd, args = argv[0], argv[1:]
    try:
        if cmd == "edge":
            run_edge(args[0], args[1])
        elif cmd == "echo":
            run_echo(args[0], int(args[1]))
        elif cmd == "edge-list":
            print("\n".join(EDGES))
        elif cmd in ("idle", "trickle"):
            run_idle(args[0], float(args[1]), float(args[2]), cmd == "trickle")
        elif cmd == "tls-stall":
            hello = client_hello()
            run_idle(args[0], float(args[1]), float(args[2]), False, hello[: len(hello) // 2])
        elif cmd == "plain-to-tls":
            run_plain_to_tls(args[0])
        elif cmd == "upgrade-status":
            run_upgrade_status(args[0])
        elif cmd == "http":
            run_http(*args)
        elif cmd == "hold-port":
            run_hold_port()
        else:
            sys.exit(__doc__)
    except Failure as e:
        print(f"FAIL: {e}")
        return 1
    except (OSError, EOFError) as e:
        print(f"FAIL: {type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
