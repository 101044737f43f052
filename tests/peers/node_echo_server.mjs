// A Node `ws` server for testing `wsk connect`; the counterpart of
// py_echo_server.py with the same paths.
//
// usage: node node_echo_server.mjs [--subprotocol P]... [--deflate]
//
// Listens on 127.0.0.1 port 0 and prints, as its first stdout line,
//   node_echo_server: listening on ws://127.0.0.1:PORT/
// then one line per notable event. By path:
//   /              echoes every message unchanged (text as text, binary as binary)
//   /header/NAME   first sends the value of request header NAME (or
//                  "<missing NAME>"), then echoes
//   /subprotocol   first sends the negotiated subprotocol (or "<none>"), then echoes
//   /extensions    first sends the Sec-WebSocket-Extensions value of its
//                  handshake response (or "<none>"), then echoes
//   /describe      answers each message with "text N PAYLOAD" or "binary N HEX"
//   /burst         sends text "one", binary 00 01 ff 80, text "three ✓" and a
//                  64 KiB binary; expects exactly those back unchanged within
//                  10 s, prints "burst: ok" or "burst: FAIL ...", closes with 1000
// --deflate accepts permessage-deflate with ws's defaults (every message
// compressed: threshold 0); without it ws declines. It exits on SIGTERM or
// SIGINT.

import { WebSocketServer } from 'ws';

const subprotocols = [];
let perMessageDeflate = false;
for (let i = 2; i < process.argv.length; i++) {
    if (process.argv[i] === '--subprotocol') subprotocols.push(process.argv[++i]);
    else if (process.argv[i] === '--deflate') perMessageDeflate = { threshold: 0 };
}

const BURST = [
    { data: Buffer.from('one'), isBinary: false },
    { data: Buffer.from([0x00, 0x01, 0xff, 0x80]), isBinary: true },
    { data: Buffer.from('three ✓'), isBinary: false },
    { data: Buffer.alloc(65536, 0xa5), isBinary: true },
];

const render = (data, isBinary) =>
    isBinary ? `binary ${data.length} ${data.toString('hex')}` : `text ${data.length} ${data.toString()}`;

const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    maxPayload: 64 << 20,
    handleProtocols: (offered) => subprotocols.find((p) => offered.has(p)) ?? false,
    perMessageDeflate,
});

// The response's extension header, as sent, for /extensions.
const answered = new WeakMap();
wss.on('headers', (headers, req) => {
    const line = headers.find((h) => /^sec-websocket-extensions:/i.test(h));
    answered.set(req, line ? line.replace(/^[^:]*:\s*/, '') : '<none>');
});

wss.on('listening', () => {
    console.log(`node_echo_server: listening on ws://127.0.0.1:${wss.address().port}/`);
});

wss.on('connection', (ws, req) => {
    const path = req.url;
    console.log(`connection: ${path} subprotocol=${ws.protocol || '<none>'}`);
    ws.on('error', (e) => console.log(`socket error: ${e.message}`));
    if (path.startsWith('/header/')) {
        const name = path.slice('/header/'.length).toLowerCase();
        ws.send(req.headers[name] ?? `<missing ${name}>`);
    } else if (path === '/subprotocol') {
        ws.send(ws.protocol || '<none>');
    } else if (path === '/extensions') {
        ws.send(answered.get(req) ?? '<none>');
    } else if (path === '/describe') {
        ws.on('message', (data, isBinary) => {
            console.log(`received ${render(data, isBinary)}`);
            ws.send(render(data, isBinary));
        });
        return;
    } else if (path === '/burst') {
        const got = [];
        let timer;
        let decided = false;
        const verdict = (line) => {
            if (decided) return;
            decided = true;
            clearTimeout(timer);
            console.log(line);
            ws.close(1000, 'done');
        };
        ws.on('message', (data, isBinary) => {
            got.push({ data: Buffer.from(data), isBinary });
            if (got.length > BURST.length) {
                verdict(`burst: FAIL unexpected extra message ${render(data, isBinary)}`);
            } else if (got.length === BURST.length) {
                const same = BURST.every((b, i) => b.isBinary === got[i].isBinary && b.data.equals(got[i].data));
                if (!same) {
                    verdict(`burst: FAIL got ${got.map((m) => render(m.data, m.isBinary).slice(0, 40)).join(' | ')}`);
                    return;
                }
                // Nothing else may follow: wsk connect --echo ignores stdin.
                clearTimeout(timer);
                timer = setTimeout(() => verdict('burst: ok'), 500);
            }
        });
        timer = setTimeout(() => verdict(`burst: FAIL only ${got.length} echoes within 10 s`), 10000);
        for (const b of BURST) ws.send(b.data, { binary: b.isBinary });
        return;
    }
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});

for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => process.exit(0));
    });
}
