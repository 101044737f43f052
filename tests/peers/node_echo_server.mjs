// A Node `ws` server for testing `wsk connect`; the counterpart of
// py_echo_server.py with the same paths.
//
// usage: node node_echo_server.mjs [--subprotocol P]...
//
// Listens on 127.0.0.1 port 0 and prints, as its first stdout line,
//   node_echo_server: listening on ws://127.0.0.1:PORT/
// then one line per notable event. By path:
//   /              echoes every message unchanged (text as text, binary as binary)
//   /header/NAME   first sends the value of request header NAME (or
//                  "<missing NAME>"), then echoes
//   /subprotocol   first sends the negotiated subprotocol (or "<none>"), then echoes
//   /describe      answers each message with "text N PAYLOAD" or "binary N HEX"
//   /burst         sends text "one", binary 00 01 ff 80, text "three ✓" and a
//                  64 KiB binary; expects exactly those back unchanged within
//                  10 s, prints "burst: ok" or "burst: FAIL ...", closes with 1000
// It exits on SIGTERM or SIGINT.

import { WebSocketServer } from 'ws';

const subprotocols = [];
for (let i = 2; i < process.argv.length; i++) {
    if (process.argv[i] === '--subprotocol') subprotocols.push(process.argv[++i]);
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
