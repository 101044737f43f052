#!/usr/bin/python3
"""A tunnelling proxy on plain sockets, for what the real ones (tinyproxy,
microsocks) will not do on demand: say what the client asked for, answer
wrongly, or resolve made-up names to this machine.

usage: proxy_peer.py MODE

MODE:
  http          HTTP CONNECT proxy that forwards
  http-403      answers every CONNECT with 403 Forbidden
  http-early    answers 200, then at once sends bytes that pose as the
                server's ("HTTP/1.1 101 ..."), as a hostile proxy might
  socks5        SOCKS5 proxy (no authentication) that forwards
  socks5-refuse answers every SOCKS5 CONNECT with reply 5 (refused)
  socks5-auth   demands username/password (method 2) and accepts only
                user "u" with password "p@ss"
  garbage       answers anything with "SSH-2.0-OpenSSH_9.2\\r\\n"

A name the client asks for is never resolved: every tunnel goes to
127.0.0.1 on the port asked, so tests can use names without DNS traffic.

Listens on 127.0.0.1 port 0 and prints "proxy_peer: tcp://127.0.0.1:PORT
(MODE)" as its first stdout line; then one line per request:
"CONNECT HOST:PORT" (HTTP, with " auth=BASE64" when a Proxy-Authorization
header came) or "SOCKS5 name HOST:PORT" / "SOCKS5 ipv4 ADDR:PORT" /
"SOCKS5 ipv6 ADDR:PORT" (with " user=U" after authentication). Runs until
killed; every read is bounded in size and time.
"""

import ipaddress
import socket
import struct
import sys
import threading

WAIT = 10  # seconds any single read may take
OUT_LOCK = threading.Lock()


def say(line):
    with OUT_LOCK:
        print(line, flush=True)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def forward(client, port):
    server = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    server.settimeout(None)
    client.settimeout(None)
    t = threading.Thread(target=pipe, args=(server, client), daemon=True)
    t.start()
    pipe(client, server)
    t.join(60)
    server.close()


def http(client, mode):
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = client.recv(4096)
        if not chunk or len(head) > 16384:
            return
        head += chunk
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].decode().split(" ", 2)
    auth = ""
    for line in lines[1:]:
        if line.lower().startswith(b"proxy-authorization: basic "):
            auth = " auth=" + line.split(b" ", 2)[2].decode()
    say(f"{method} {target}{auth}")
    if mode == "http-403":
        client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        return
    if mode == "http-early":
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n"
                       b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        client.recv(4096)
        return
    port = int(target.rsplit(":", 1)[1])
    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    forward(client, port)


def socks5(client, mode):
    ver, n = recv_exact(client, 2)
    methods = recv_exact(client, n)
    user = ""
    if mode == "socks5-auth":
        if ver != 5 or 2 not in methods:
            client.sendall(b"\x05\xff")
            say("SOCKS5 no acceptable method")
            return
        client.sendall(b"\x05\x02")
        _, ulen = recv_exact(client, 2)
        u = recv_exact(client, ulen)
        (plen,) = recv_exact(client, 1)
        p = recv_exact(client, plen)
        ok = u == b"u" and p == b"p@ss"
        client.sendall(b"\x01\x00" if ok else b"\x01\x01")
        if not ok:
            say(f"SOCKS5 bad credentials user={u.decode(errors='replace')}")
            return
        user = f" user={u.decode()}"
    else:
        if ver != 5 or 0 not in methods:
            client.sendall(b"\x05\xff")
            return
        client.sendall(b"\x05\x00")
    ver, cmd, _, atyp = recv_exact(client, 4)
    if atyp == 1:
        host, kind = str(ipaddress.IPv4Address(recv_exact(client, 4))), "ipv4"
    elif atyp == 4:
        host, kind = str(ipaddress.IPv6Address(recv_exact(client, 16))), "ipv6"
    elif atyp == 3:
        (n,) = recv_exact(client, 1)
        host, kind = recv_exact(client, n).decode(), "name"
    else:
        return
    (port,) = struct.unpack("!H", recv_exact(client, 2))
    say(f"SOCKS5 {kind} {host}:{port}{user}")
    if mode == "socks5-refuse" or cmd != 1:
        client.sendall(b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00")
        return
    client.sendall(b"\x05\x00\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", 1080))
    forward(client, port)


def serve(client, mode):
    client.settimeout(WAIT)
    try:
        if mode == "garbage":
            client.recv(4096)
            client.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        elif mode.startswith("http"):
            http(client, mode)
        else:
            socks5(client, mode)
    except (OSError, EOFError, ValueError, IndexError):
        pass
    finally:
        client.close()


def main():
    modes = ("http", "http-403", "http-early", "socks5", "socks5-refuse", "socks5-auth",
             "garbage")
    if len(sys.argv) != 2 or sys.argv[1] not in modes:
        sys.exit("usage: proxy_peer.py " + "|".join(modes))
    mode = sys.argv[1]
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    say(f"proxy_peer: tcp://127.0.0.1:{ls.getsockname()[1]} ({mode})")
    while True:
        client, _ = ls.accept()
        threading.Thread(target=serve, args=(client, mode), daemon=True).start()


if __name__ == "__main__":
    main()
