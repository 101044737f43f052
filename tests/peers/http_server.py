#!/usr/bin/python3
"""An HTTP/1.1 server (Python stdlib only) for testing `wsk http`.

usage: http_server.py --root DIR [--tls-cert FILE --tls-key FILE]

Listens on 127.0.0.1 port 0 and prints, as its first stdout line,
  http_server: ws://127.0.0.1:PORT/ (plain HTTP; the ws:// URL is for lib.sh)
("HTTPS" instead with --tls-cert and --tls-key, which serve TLS only), then
"METHOD PATH" for every request. Every method is answered the same way; the
path picks the answer:

  /file/NAME        DIR/NAME with Content-Length (404 when missing)
  /chunked          a fixed text, chunked, with chunk extensions and a trailer
  /chunked-file/NAME  DIR/NAME chunked, in chunks of 1 to 40000 bytes
  /eof              a fixed text without Content-Length, ended by closing
  /echo             the request body as it came; X-Echo-Method: METHOD and
                    X-Echo-Length: N (of the body) in the head
  /headers          the request's header lines, as received, as the body
  /status/N         status N with the body "status N\\n"
  /chain/K          K > 0: 302 to the relative Location "K-1"; K = 0: 200
                    "end of chain\\n"
  /loop/a, /loop/b  302 to each other ("/loop/b", then "../loop/a")
  /see-other        303 to /echo
  /moved            302 to /echo
  /temporary        307 to /echo
  /to?URL           302 to URL (the whole query, as it is)
  /truncated        Content-Length 1000, then 100 bytes and a close
  /truncated-chunked  one chunk of a chunked body, then a close
  /slow             the head and "first bytes\\n", then nothing for 30 s
  /interim          100 Continue and 103 Early Hints, then 200 "final\n"
  /garbage          a reply that is not HTTP
  /conflict         both Content-Length and Transfer-Encoding
  /big-head         a head of over 64 KiB in 64 lines

Each connection serves one request (Connection: close). Every read and
write is bounded by a 30-second timeout; the server runs until killed.
"""

import argparse
import os
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNKED_PARTS = [b"Hello, ", b"chunked ", b"world", b"!\n"]
EOF_BODY = b"read until the server closes\nline two\n"
OUT_LOCK = threading.Lock()


def say(line):
    with OUT_LOCK:
        print(line, flush=True)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    root = "."

    def log_message(self, format, *args):
        pass

    def handle_any(self):
        say(f"{self.command} {self.path}")
        self.close_connection = True
        path, _, query = self.path.partition("?")
        parts = path.strip("/").split("/")
        name = "route_" + parts[0].replace("-", "_")
        route = getattr(self, name, None)
        if route is None:
            return self.simple(404, b"no such route\n")
        route(parts[1:], query)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any

    # ---- helpers ----------------------------------------------------------

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def simple(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def redirect(self, status, location):
        self.body()
        self.simple(status, b"moved\n", [("Location", location)])

    def raw(self, data):
        self.body()
        self.wfile.write(data)
        self.wfile.flush()

    # ---- routes -----------------------------------------------------------

    def route_file(self, rest, query):
        try:
            with open(os.path.join(self.root, os.path.basename(rest[0])), "rb") as f:
                data = f.read()
        except (OSError, IndexError):
            return self.simple(404, b"not found\n")
        self.simple(200, data, [("Content-Type", "application/octet-stream")])

    def route_chunked(self, rest, query):
        out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        for i, part in enumerate(CHUNKED_PARTS):
            ext = b';n=%d;q="a b"' % i if i % 2 else b""
            out += b"%x%s\r\n%s\r\n" % (len(part), ext, part)
        out += b"0\r\nX-Trailer: done\r\n\r\n"
        self.raw(out)

    def route_chunked_file(self, rest, query):
        with open(os.path.join(self.root, os.path.basename(rest[0])), "rb") as f:
            data = f.read()
        self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                         b"Connection: close\r\n\r\n")
        pos, size = 0, 1
        while pos < len(data):
            piece = data[pos:pos + size]
            self.wfile.write(b"%X\r\n%s\r\n" % (len(piece), piece))
            pos += len(piece)
            size = (size * 7 + 13) % 40000 + 1
        self.wfile.write(b"0\r\n\r\n")

    def route_eof(self, rest, query):
        self.raw(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + EOF_BODY)

    def route_echo(self, rest, query):
        data = self.body()
        self.simple(200, data, [("X-Echo-Method", self.command),
                                ("X-Echo-Length", str(len(data)))])

    def route_headers(self, rest, query):
        self.body()
        self.simple(200, "".join(f"{k}: {v}\n" for k, v in self.headers.items()).encode())

    def route_status(self, rest, query):
        self.body()
        code = int(rest[0])
        self.simple(code, b"status %d\n" % code)

    def route_chain(self, rest, query):
        k = int(rest[0])
        if k > 0:
            return self.redirect(302, str(k - 1))
        self.body()
        self.simple(200, b"end of chain\n")

    def route_loop(self, rest, query):
        self.redirect(302, "/loop/b" if rest[0] == "a" else "../loop/a")

    def route_see_other(self, rest, query):
        self.redirect(303, "/echo")

    def route_moved(self, rest, query):
        self.redirect(302, "/echo")

    def route_temporary(self, rest, query):
        self.redirect(307, "/echo")

    def route_to(self, rest, query):
        self.redirect(302, query)

    def route_truncated(self, rest, query):
        self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
                 + b"x" * 100)

    def route_truncated_chunked(self, rest, query):
        self.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                 b"5\r\nhello\r\n")

    def route_slow(self, rest, query):
        self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nfirst bytes\n")
        time.sleep(30)

    def route_interim(self, rest, query):
        self.raw(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                 b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nfinal\n")

    def route_garbage(self, rest, query):
        self.raw(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

    def route_conflict(self, rest, query):
        self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n0\r\n\r\n")

    def route_big_head(self, rest, query):
        head = b"HTTP/1.1 200 OK\r\n" + b"".join(
            b"X-Filler-%d: %s\r\n" % (i, b"f" * 1100) for i in range(63))
        self.raw(head + b"Content-Length: 0\r\n\r\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    Handler.root = args.root
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    kind = "plain HTTP"
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        # The handshake happens in the handler's thread, at its first read, so
        # a client that fails verification or stalls never blocks accepting.
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
        kind = "HTTPS"
    port = server.server_address[1]
    say(f"http_server: ws://127.0.0.1:{port}/ ({kind}; the ws:// URL is for lib.sh)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
