#!/usr/bin/python3
"""A WebSocket server on plain sockets, for endings a real server library
would not produce on demand. The request path picks the behaviour:

  /close-on-open      answer the upgrade and send a close frame (1000) in the
                      same write, before any message; read the client's close
                      frame, wait for its EOF, then close TCP normally
  /reset-after-close  answer the upgrade, send the text message "hello" and
                      read the client's message; then send a close frame
                      (1000), read the client's close frame and reset the
                      connection (SO_LINGER {1, 0}), as the Autobahn test
                      suite's server does after every case
  /close-then-reset   answer the upgrade, then send a close frame (1000) in a
                      second write; read the client's close frame and reset
                      the connection

usage: raw_server.py

Listens on 127.0.0.1 port 0 and prints "raw_server: ws://127.0.0.1:PORT/" as
its first stdout line; then, per connection, one line saying what the client
did ("PATH: ok ..." or "PATH: FAIL ..."). Runs until killed; every read is
bounded.
"""

import base64
import hashlib
import socket
import struct
import sys
import threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WAIT = 10  # seconds any single read may take
OUT_LOCK = threading.Lock()


class Failure(Exception):
    pass


def say(line):
    with OUT_LOCK:
        print(line, flush=True)


def recv_exact(s, buf, n):
    """Returns (n bytes, rest), reading more from s as needed."""
    while len(buf) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise Failure(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return buf[:n], buf[n:]


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise Failure("EOF in the request head")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def read_frame(s, buf):
    """Reads one client frame. Returns (opcode, payload, rest)."""
    hdr, buf = recv_exact(s, buf, 2)
    opcode, length = hdr[0] & 0x0F, hdr[1] & 0x7F
    if not hdr[1] & 0x80:
        raise Failure("unmasked client frame")
    if length == 126:
        ext, buf = recv_exact(s, buf, 2)
        length = struct.unpack("!H", ext)[0]
    elif length == 127:
        ext, buf = recv_exact(s, buf, 8)
        length = struct.unpack("!Q", ext)[0]
    key, buf = recv_exact(s, buf, 4)
    data, buf = recv_exact(s, buf, length)
    return opcode, bytes(b ^ key[i % 4] for i, b in enumerate(data)), buf


def frame(opcode, payload=b""):
    assert len(payload) < 126
    return bytes([0x80 | opcode, len(payload)]) + payload


def expect_close(s, buf):
    """Reads up to the client's close frame. Data frames before it are
    skipped: a client may send before it has read the server's close."""
    opcode, payload, buf = read_frame(s, buf)
    while opcode in (0x0, 0x1, 0x2):
        opcode, payload, buf = read_frame(s, buf)
    if opcode != 0x8:
        raise Failure(f"expected a close frame, got opcode {opcode} {payload!r}")
    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    return code, buf


def handle(s):
    path = "?"
    try:
        serve(s)
    except (Failure, OSError) as e:
        say(f"{path}: FAIL {e}")
    finally:
        s.close()


def serve(s):
    s.settimeout(WAIT)
    head, buf = read_head(s)
    path = head.split(" ", 2)[1]
    key = ""
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    answer = (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode()
    close_1000 = frame(0x8, struct.pack("!H", 1000))
    try:
        if path == "/close-on-open":
            s.sendall(answer + close_1000)
            code, buf = expect_close(s, buf)
            while s.recv(65536):  # the client's EOF ends it
                pass
            say(f"{path}: ok, the client answered the close with {code}")
        elif path == "/reset-after-close":
            s.sendall(answer + frame(0x1, b"hello"))
            opcode, payload, buf = read_frame(s, buf)
            if (opcode, payload) != (0x1, b"hello"):
                raise Failure(f"expected the echo of 'hello', got opcode {opcode} {payload!r}")
            s.sendall(close_1000)
            code, buf = expect_close(s, buf)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            say(f"{path}: ok, echo received, the client answered the close with {code}; resetting")
        elif path == "/close-then-reset":
            s.sendall(answer)
            s.sendall(close_1000)
            code, buf = expect_close(s, buf)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            say(f"{path}: ok, the client answered the close with {code}; resetting")
        else:
            s.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            say(f"{path}: FAIL unknown path")
    except (Failure, OSError) as e:
        say(f"{path}: FAIL {e}")


def main():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    say(f"raw_server: ws://127.0.0.1:{srv.getsockname()[1]}/")
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
