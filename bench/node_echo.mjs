// A Node `ws` echo (or broadcast) server for bench/run.sh.
//
// usage: node bench/node_echo.mjs PORT [--broadcast]
//
// Listens on 127.0.0.1:PORT (0: any free port), prints "listening on PORT"
// and runs until SIGTERM or SIGINT. Echo mode sends each message back to its
// sender, text as text and binary as binary; broadcast mode sends it to every
// open client, the sender included (like `wsk serve --broadcast`). `ws` comes
// from tests/peers/node_modules (scripts/deps.sh bench installs it).

import { WebSocketServer, WebSocket } from '../tests/peers/node_modules/ws/wrapper.mjs';

const args = process.argv.slice(2);
const port = Number(args[0] ?? 'x');
const isBroadcast = args[1] === '--broadcast';
if (!Number.isInteger(port) || port < 0 || port > 65535 || args.length > 2 ||
    (args.length === 2 && !isBroadcast)) {
    console.error('usage: node node_echo.mjs PORT [--broadcast]');
    process.exit(2);
}

const wss = new WebSocketServer({ host: '127.0.0.1', port, maxPayload: 64 << 20 });

wss.on('listening', () => console.log(`listening on ${wss.address().port}`));

wss.on('connection', (ws) => {
    ws.on('error', () => {});
    if (isBroadcast) {
        ws.on('message', (data, isBinary) => {
            for (const c of wss.clients) {
                if (c.readyState === WebSocket.OPEN) c.send(data, { binary: isBinary });
            }
        });
    } else {
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    }
});

for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => process.exit(0));
    });
}
