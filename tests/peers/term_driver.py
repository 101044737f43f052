#!/usr/bin/python3
"""Drives `wsk connect` on a pseudo-terminal, as a person at a keyboard would.

  term_driver.py WSK URL

URL is an echo server (wsk serve --echo). Checks, each printed as "ok: ..."
or "FAIL: ..." (exit 1 on the first failure): the prompt; a typed line comes
back as "< LINE"; /ping DATA shows its pong with a round-trip time; Up twice
recalls the line before last and Enter sends it again; //x sends "/x"; an
unknown command is named, not sent; /help lists the commands; /close 4000 bye
ends the session with exit status 0. Every wait has a timeout.
"""
import os
import pty
import select
import sys
import time

T = 10.0


def main():
    wsk, url = sys.argv[1], sys.argv[2]
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm"
        os.execv(wsk, [wsk, "connect", url])
    seen = b""

    def expect(what, pattern):
        nonlocal seen
        deadline = time.monotonic() + T
        while pattern not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                print("FAIL: %s: %r not seen in %r" % (what, pattern, seen[-400:]), flush=True)
                os.kill(pid, 9)
                sys.exit(1)
            r, _, _ = select.select([fd], [], [], left)
            if r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    continue
                seen += data
        print("ok: " + what, flush=True)
        seen = seen[seen.index(pattern) + len(pattern):]

    def type_keys(keys):
        os.write(fd, keys)

    expect("the prompt", b"> ")
    type_keys(b"hello\r")
    expect("a typed line comes back", b"< hello")
    type_keys(b"/ping abc\r")
    expect("/ping abc: its pong with the round-trip time", b"< pong 'abc' in ")
    type_keys(b"\x1b[A\x1b[A\r")
    expect("Up twice recalls 'hello'; Enter sends it again", b"< hello")
    type_keys(b"//x\r")
    expect("//x sends /x", b"< /x")
    type_keys(b"/nope\r")
    expect("an unknown command is named", b"unknown command /nope")
    type_keys(b"/help\r")
    expect("/help lists the commands", b"/close [CODE [REASON]]")
    type_keys(b"/close 4000 bye\r")
    deadline = time.monotonic() + T
    status = None
    while time.monotonic() < deadline:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                os.read(fd, 4096)
            except OSError:
                pass
    if status != 0:
        print("FAIL: /close 4000 bye: exit status %r" % status, flush=True)
        if status is None:
            os.kill(pid, 9)
        sys.exit(1)
    print("ok: /close 4000 bye ends the session, exit 0", flush=True)


if __name__ == "__main__":
    main()
