// A Node `ws` echo (or broadcast) server for bench/run.sh.
//
// usage: node bench/node_echo.mjs PORT [--broadcast] [--tls CERT KEY] [--deflate]
//
// Listens on 127.0.0.1:PORT (0: any free port), prints "listening on PORT"
// and runs until SIGTERM or SIGINT. Echo mode sends each message back to its
// sender, text as text and binary as binary; broadcast mode sends it to every
// open client, the sender included (like `wsk serve --broadcast`). --tls
// serves wss:// only (Node's https server with the PEM files CERT and KEY);
// --deflate accepts permessage-deflate with ws's defaults except the
// threshold, 64 bytes as wsk's (ws's own, 1 KiB, would leave a 282-byte chat
// message uncompressed). `ws` comes from tests/peers/node_modules
// (scripts/deps.sh bench installs it).

import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { WebSocketServer, WebSocket } from '../tests/peers/node_modules/ws/wrapper.mjs';

const usage = 'usage: node node_echo.mjs PORT [--broadcast] [--tls CERT KEY] [--deflate]';
const args = process.argv.slice(2);
const port = Number(args[0] ?? 'x');
let isBroadcast = false;
let tls = null;
let perMessageDeflate = false;
for (let i = 1; i < args.length; i++) {
    if (args[i] === '--broadcast') isBroadcast = true;
    else if (args[i] === '--deflate') perMessageDeflate = { threshold: 64 };
    else if (args[i] === '--tls' && i + 2 < args.length) {
        tls = { cert: readFileSync(args[i + 1]), key: readFileSync(args[i + 2]) };
        i += 2;
    } else {
        console.error(usage);
        process.exit(2);
    }
}
if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(usage);
    process.exit(2);
}

let wss;
const options = { maxPayload: 64 << 20, perMessageDeflate };
if (tls) {
    const server = createServer(tls);
    wss = new WebSocketServer({ server, ...options });
    server.listen(port, '127.0.0.1', () => console.log(`listening on ${server.address().port}`));
} else {
    wss = new WebSocketServer({ host: '127.0.0.1', port, ...options });
    wss.on('listening', () => console.log(`listening on ${wss.address().port}`));
}

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
