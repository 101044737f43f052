#!/usr/bin/python3
"""A mock Douyu barrage ("danmaku") server for testing `wsk danmaku`.

usage: danmaku_mock.py (--tcp | --ws) [--port PORT] [--scenario NAME]
                       [--room ROOM] [--max-silence SECONDS]

Listens on 127.0.0.1 (port 0 by default) and prints, as its first stdout line,
  listening on tcp://127.0.0.1:PORT (danmaku mock)
or, with --ws, ws://127.0.0.1:PORT/ : the same packets then travel as binary
WebSocket messages, as Douyu's web client sends them. Then one line per event,
each starting with "client N" (N counts connections from 1):

  client N connected / closed
  client N loginreq roomid=ROOM
  client N joingroup rid=ROOM gid=-9999
  client N mrkl COUNT           every heartbeat, COUNT from 1 on each link
  client N logout
  client N sent SCENARIO        after the scenario's messages went out
  VIOLATION client N: WHAT      and the client is dropped

Every packet from the client is checked strictly: both lengths equal and at
least 9, type 689, encryption and reserved bytes 0, a NUL at the end and
nowhere else, a body that is valid STT with a type; in that order: loginreq
(with digits in roomid, equal to --room when given), then joingroup only
after our loginres (rid the same room, gid -9999), then mrkl heartbeats (or
logout). A client that sends nothing for --max-silence seconds (default 45, as
Douyu's servers) after its joingroup is a violation too. With --ws, a text
message is a violation.

Scenarios (what the server sends after the client's joingroup):
  basic   chatmsg alice "hello"; chatmsg from "a@b/c" (escaped) "x/y@z";
          chatmsg 小明 "你好，世界"; uenter bob; dgb carol gift 824 x1
          (hits 3); chatmsg dave "bye"
  split   the same, with loginres sent one byte per write and the scenario's
          packets coalesced and cut at odd places across writes
  big     chatmsg big with a 60,000-byte text of 'x', then chatmsg small "after"
  drop    first link: chatmsg alice "one", chatmsg alice "two", then the link
          is cut (TCP closed; --ws: no close frame). Second link: a new
          loginreq is expected and served: chatmsg alice "again", and the
          link is cut again. Later links: chatmsg alice "stay"
  bad     first link: chatmsg alice "good", then a packet whose two lengths
          differ. Later links: chatmsg alice "recovered"
  silent  loginreq is never answered
Runs until killed; every write is bounded by the peer's reading.
"""

import argparse
import asyncio
import re
import struct
import sys

TYPE_CLIENT = 689
TYPE_SERVER = 690


def say(line):
    print(line, flush=True)


class Violation(Exception):
    pass


def escape(s):
    return s.replace("@", "@A").replace("/", "@S")


def stt(pairs):
    return "".join(f"{escape(k)}@={escape(v)}/" for k, v in pairs)


def packet(body, type_=TYPE_SERVER):
    data = body.encode() + b"\0"
    length = 8 + len(data)
    return struct.pack("<IIHBB", length, length, type_, 0, 0) + data


def unescape(s):
    if re.search(r"@(?![AS])", s):
        raise Violation(f"bad escape in {s!r}")
    return s.replace("@S", "/").replace("@A", "@")


def parse_stt(body):
    """A top-level STT map, strictly: every item key@=value/, the last '/'
    present."""
    if not body.endswith("/"):
        raise Violation(f"STT body does not end with '/': {body!r}")
    fields = {}
    for item in body[:-1].split("/"):
        if "@=" not in item:
            raise Violation(f"STT item without '@=': {item!r}")
        key, value = item.split("@=", 1)
        fields[unescape(key)] = unescape(value)
    if "type" not in fields:
        raise Violation(f"STT body without a type: {body!r}")
    return fields


class PacketReader:
    """Takes the client's bytes as they come; yields whole packets' bodies."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        bodies = []
        while len(self.buf) >= 4:
            (length,) = struct.unpack_from("<I", self.buf)
            if length < 9:
                raise Violation(f"length {length} below 9")
            if length > 65536:
                raise Violation(f"length {length}: a client packet that big is wrong")
            if len(self.buf) < 4 + length:
                break
            length2, type_, enc, reserved = struct.unpack_from("<IHBB", self.buf, 4)
            if length2 != length:
                raise Violation(f"the two lengths differ: {length} and {length2}")
            if type_ != TYPE_CLIENT:
                raise Violation(f"type {type_}, not 689")
            if enc or reserved:
                raise Violation(f"encryption byte {enc}, reserved byte {reserved}: not 0")
            body = self.buf[12 : 4 + length]
            self.buf = self.buf[4 + length :]
            if body[-1:] != b"\0":
                raise Violation("no NUL at the end of the body")
            if b"\0" in body[:-1]:
                raise Violation("a NUL inside the body")
            try:
                bodies.append(body[:-1].decode())
            except UnicodeDecodeError:
                raise Violation("the body is not UTF-8") from None
        return bodies


def chat(nn, txt, room):
    return stt(
        [("type", "chatmsg"), ("rid", room), ("uid", "1001"), ("nn", nn), ("txt", txt),
         ("cid", "c0ffee"), ("level", "12")]
    )


def scenario_bodies(name, room, link_no):
    if name in ("basic", "split"):
        return [
            chat("alice", "hello", room),
            chat("a@b/c", "x/y@z", room),
            chat("小明", "你好，世界", room),
            stt([("type", "uenter"), ("rid", room), ("uid", "1002"), ("nn", "bob"),
                 ("level", "3")]),
            stt([("type", "dgb"), ("rid", room), ("gfid", "824"), ("gfcnt", "1"),
                 ("hits", "3"), ("uid", "1003"), ("nn", "carol")]),
            chat("dave", "bye", room),
        ]
    if name == "big":
        return [chat("big", "x" * 60000, room), chat("small", "after", room)]
    if name == "drop":
        if link_no == 1:
            return [chat("alice", "one", room), chat("alice", "two", room)]
        if link_no == 2:
            return [chat("alice", "again", room)]
        return [chat("alice", "stay", room)]
    if name == "bad":
        if link_no == 1:
            return [chat("alice", "good", room)]
        return [chat("alice", "recovered", room)]
    return []


class Link:
    """One client connection over TCP or WebSocket."""

    def __init__(self, n, reader=None, writer=None, ws=None):
        self.n = n
        self.reader, self.writer, self.ws = reader, writer, ws

    async def recv(self):
        """The next bytes from the client; b"" at the end."""
        if self.ws is None:
            return await self.reader.read(65536)
        try:
            message = await self.ws.recv()
        except Exception:
            return b""
        if isinstance(message, str):
            raise Violation("a text WebSocket message (packets are binary)")
        return message

    async def send(self, data):
        if self.ws is None:
            self.writer.write(data)
            await self.writer.drain()
        else:
            await self.ws.send(data)

    async def cut(self):
        """Ends the link without ceremony: TCP closed, or no close frame."""
        if self.ws is None:
            self.writer.close()
        else:
            self.ws.transport.abort()

    async def close(self):
        if self.ws is None:
            self.writer.close()
        else:
            await self.ws.close()


class Server:
    def __init__(self, args):
        self.args = args
        self.count = 0

    async def send_split(self, link, data, sizes):
        """Sends data in pieces of the given sizes (cycled), one write each."""
        off, i = 0, 0
        while off < len(data):
            n = sizes[i % len(sizes)]
            i += 1
            await link.send(data[off : off + n])
            off += n
            # Separate writes, separate TCP segments: let the loop flush.
            await asyncio.sleep(0.001)

    async def serve_scenario(self, link, room):
        name = self.args.scenario
        bodies = scenario_bodies(name, room, link.n)
        data = [packet(b) for b in bodies]
        if name == "split":
            # Several packets per write, cut at odd places.
            await self.send_split(link, b"".join(data), [3, 1, 70, 2, 200, 5, 1, 400])
        elif name == "bad" and link.n == 1:
            await link.send(data[0])
            bad = bytearray(packet(stt([("type", "chatmsg"), ("nn", "x"), ("txt", "lost")])))
            bad[4] ^= 1
            await link.send(bytes(bad))
        else:
            # Two packets per write where there are two: coalesced.
            for i in range(0, len(data), 2):
                await link.send(b"".join(data[i : i + 2]))
        say(f"client {link.n} sent {name}")
        if name == "drop" and link.n <= 2:
            await asyncio.sleep(0.2)
            await link.cut()
            raise ConnectionResetError("cut by the scenario")

    async def handle(self, link):
        say(f"client {link.n} connected")
        args = self.args
        packets = PacketReader()
        state = "start"
        room = None
        beats = 0
        scenario_task = None
        try:
            while True:
                timeout = args.max_silence if state == "joined" else 30
                try:
                    data = await asyncio.wait_for(link.recv(), timeout)
                except asyncio.TimeoutError:
                    raise Violation(f"silent for {timeout:g} s in state {state}") from None
                if not data:
                    break
                for body in packets.feed(data):
                    fields = parse_stt(body)
                    kind = fields["type"]
                    if state == "start":
                        if kind != "loginreq":
                            raise Violation(f"first packet is {kind}, not loginreq")
                        room = fields.get("roomid", "")
                        if not re.fullmatch(r"[0-9]+", room):
                            raise Violation(f"loginreq roomid {room!r} is not digits")
                        if args.room and room != args.room:
                            raise Violation(f"loginreq roomid {room}, expected {args.room}")
                        say(f"client {link.n} loginreq roomid={room}")
                        state = "login"
                        if args.scenario == "silent":
                            continue
                        res = packet(stt([("type", "loginres"), ("userid", "0"),
                                          ("roomgroup", "0"), ("pg", "0"),
                                          ("sessionid", "0"), ("live_stat", "0")]))
                        if args.scenario == "split":
                            await self.send_split(link, res, [1])
                        else:
                            await link.send(res)
                        state = "loginres"
                    elif state == "logout":
                        raise Violation(f"{kind} after logout")
                    elif state == "login":
                        raise Violation(f"{kind} before loginres")
                    elif state == "loginres":
                        if kind != "joingroup":
                            raise Violation(f"{kind} after loginres, not joingroup")
                        if fields.get("rid") != room or fields.get("gid") != "-9999":
                            raise Violation(f"joingroup {fields}, expected rid={room} gid=-9999")
                        say(f"client {link.n} joingroup rid={room} gid=-9999")
                        state = "joined"
                        scenario_task = asyncio.ensure_future(self.serve_scenario(link, room))
                    elif kind == "mrkl":
                        beats += 1
                        say(f"client {link.n} mrkl {beats}")
                    elif kind == "logout":
                        say(f"client {link.n} logout")
                        state = "logout"
                    else:
                        raise Violation(f"{kind} after joingroup (expected mrkl or logout)")
                if scenario_task and scenario_task.done() and scenario_task.exception():
                    break
        except Violation as e:
            say(f"VIOLATION client {link.n}: {e}")
        except (ConnectionError, OSError):
            pass
        finally:
            if scenario_task and not scenario_task.done():
                scenario_task.cancel()
            try:
                await link.close()
            except Exception:
                pass
            say(f"client {link.n} closed")

    async def on_tcp(self, reader, writer):
        self.count += 1
        await self.handle(Link(self.count, reader=reader, writer=writer))

    async def on_ws(self, ws, path=None):
        self.count += 1
        await self.handle(Link(self.count, ws=ws))


async def main():
    p = argparse.ArgumentParser(description="mock Douyu barrage server")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--tcp", action="store_true")
    mode.add_argument("--ws", action="store_true")
    p.add_argument("--port", type=int, default=0)
    p.add_argument(
        "--scenario", default="basic", choices=["basic", "split", "big", "drop", "bad", "silent"]
    )
    p.add_argument("--room", default=None)
    p.add_argument("--max-silence", type=float, default=45.0)
    args = p.parse_args()
    server = Server(args)
    if args.tcp:
        srv = await asyncio.start_server(server.on_tcp, "127.0.0.1", args.port)
        port = srv.sockets[0].getsockname()[1]
        say(f"listening on tcp://127.0.0.1:{port} (danmaku mock)")
        async with srv:
            await srv.serve_forever()
    else:
        import websockets

        async with websockets.serve(server.on_ws, "127.0.0.1", args.port) as srv:
            port = srv.sockets[0].getsockname()[1]
            say(f"listening on ws://127.0.0.1:{port}/ (danmaku mock)")
            await asyncio.Future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
