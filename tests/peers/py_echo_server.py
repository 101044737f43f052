#!/usr/bin/python3
"""A Python `websockets` server for testing `wsk connect`.

usage: py_echo_server.py [--subprotocol P]... [--tls-cert FILE --tls-key FILE]
                         [--client-ca FILE]

Listens on 127.0.0.1 port 0 and prints, as its first stdout line,
  py_echo_server: listening on ws://127.0.0.1:PORT/
(wss:// with --tls-cert and --tls-key, which serve TLS only) then one line per
notable event. It accepts permessage-deflate as websockets does by default
(12-bit windows). What a connection gets depends on its path:

  /                 echoes every message unchanged (text as text, binary as
                    binary)
  /header/NAME      first sends the value of request header NAME (or
                    "<missing NAME>") as a text message, then echoes
  /subprotocol      first sends the negotiated subprotocol (or "<none>"), then
                    echoes
  /extensions       first sends the Sec-WebSocket-Extensions value of its
                    handshake response (or "<none>"), then echoes
  /describe         answers each message with "text N PAYLOAD" or
                    "binary N HEX", N being the payload length
  /burst            sends text "one", binary 00 01 ff 80, text "three ✓",
                    expects exactly those back unchanged within 10 s, prints
                    "burst: ok" or "burst: FAIL ...", then closes with 1000
  /close-after      sends "bye", then closes with 1000 at once
  /reject           refuses the upgrade with HTTP 403
  /abort            sends "partial" then drops the TCP connection without a
                    close frame
  /badframe         sends a masked frame, which a server must never send
  /slow/MS          answers each message with the same message MS milliseconds
                    later: a request/response server that takes its time
  /close-with/CODE  after the first message, closes with CODE and reason
                    "test"
  /whoami           first sends the CN of the client's certificate (or
                    "<none>"), then echoes

--client-ca FILE makes the TLS server require a client certificate signed
by a CA of FILE.
"""

import argparse
import asyncio
import http
import signal
import ssl
import sys

import websockets

BURST = ["one", b"\x00\x01\xff\x80", "three ✓"]


def say(line):
    print(line, flush=True)


async def process_request(path, headers):
    if path == "/reject":
        return http.HTTPStatus.FORBIDDEN, [("Content-Type", "text/plain")], b"forbidden\n"
    return None


def render(message):
    if isinstance(message, str):
        return f"text {len(message.encode())} {message}"
    return f"binary {len(message)} {message.hex()}"


class EchoProtocol(websockets.WebSocketServerProtocol):
    """Answers each message as soon as it is read, before the next frame.

    A handler that echoes after recv() races with the peer's close: once the
    close frame is read, websockets answers it and refuses further sends, so
    echoes of the last messages before a close would be lost. Answering
    inline keeps the order the peer expects: every echo precedes the close.
    """

    async def read_message(self):
        message = await super().read_message()
        if message is not None:
            if self.path == "/describe":
                say(f"received {render(message)}")
                await self.send(render(message))
            elif self.path in ("/", "") or self.path.startswith(
                ("/header/", "/subprotocol", "/extensions", "/whoami")
            ):
                await self.send(message)
        return message


async def handler(ws, path):
    say(f"connection: {path} subprotocol={ws.subprotocol}")
    if path.startswith("/header/"):
        name = path[len("/header/"):]
        await ws.send(ws.request_headers.get(name, f"<missing {name}>"))
    elif path == "/subprotocol":
        await ws.send(ws.subprotocol or "<none>")
    elif path == "/whoami":
        cert = ws.transport.get_extra_info("peercert") or {}
        cn = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
        await ws.send(cn[0] if cn else "<none>")
    elif path == "/extensions":
        await ws.send(ws.response_headers.get("Sec-WebSocket-Extensions", "<none>"))
    elif path == "/burst":
        for m in BURST:
            await ws.send(m)
        got = []
        try:
            while len(got) < len(BURST):
                got.append(await asyncio.wait_for(ws.recv(), 10))
        except Exception as e:  # noqa: BLE001 - any failure is reported
            say(f"burst: FAIL after {len(got)} echoes: {type(e).__name__} {e}")
            return
        if got != BURST or [type(g) for g in got] != [type(b) for b in BURST]:
            say(f"burst: FAIL sent {BURST!r} got {got!r}")
        else:
            # Nothing else may follow: wsk connect --echo ignores stdin.
            try:
                extra = await asyncio.wait_for(ws.recv(), 0.5)
                say(f"burst: FAIL unexpected extra message {extra!r}")
                return
            except asyncio.TimeoutError:
                say("burst: ok")
        await ws.close(1000, "done")
        return
    elif path == "/close-after":
        await ws.send("bye")
        await ws.close(1000, "done")
        return
    elif path == "/abort":
        await ws.send("partial")
        ws.transport.abort()
        return
    elif path.startswith("/slow/"):
        delay = int(path[len("/slow/"):]) / 1000
        try:
            async for m in ws:
                await asyncio.sleep(delay)
                await ws.send(m)
        except websockets.ConnectionClosed:
            pass
        return
    elif path.startswith("/close-with/"):
        try:
            await ws.recv()
            await ws.close(int(path[len("/close-with/"):]), "test")
        except websockets.ConnectionClosed:
            pass
        return
    elif path == "/badframe":
        # FIN + text, MASK bit set, mask key 0, payload "x".
        ws.transport.write(b"\x81\x81\x00\x00\x00\x00x")
        await asyncio.sleep(5)
        return
    # Echoes and descriptions go out from EchoProtocol.read_message.
    try:
        async for _ in ws:
            pass
    except websockets.ConnectionClosed:
        pass


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--subprotocol", action="append", default=[])
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--client-ca")
    args = parser.parse_args()
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            tls.verify_mode = ssl.CERT_REQUIRED
            tls.load_verify_locations(args.client_ca)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with websockets.serve(
        handler,
        "127.0.0.1",
        0,
        process_request=process_request,
        create_protocol=EchoProtocol,
        subprotocols=args.subprotocol or None,
        max_size=None,
        ping_interval=None,
        ssl=tls,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        say(f"py_echo_server: listening on ws{'s' if tls else ''}://127.0.0.1:{port}/")
        await stop


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
