// The common recipe wsk serve --redis replaces: a Node `ws` server whose
// rooms span processes through Redis pub/sub (node-redis), as chat tutorials
// and the ws + Redis answers write it. For bench/fanout.sh only.
//
//   node bench/node_ws_redis.mjs REDIS_PORT
//
// Listens on 127.0.0.1, a port from the kernel, and prints "listening on
// PORT". The request's path is the room, as in wsk serve. A message from a
// client is PUBLISHed to "room:PATH" (one byte for text or binary, then the
// bytes), and every message of a room's channel goes to that room's clients
// here, the sender's own process included: Redis is the one path, which is
// the recipe's simplicity and its cost. SUBSCRIBE when a room gets its first
// client here, UNSUBSCRIBE when it loses its last. Ends on SIGTERM.
//
// ws and redis come from tests/peers/node_modules (scripts/deps.sh test).

import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/peers/package.json', import.meta.url));
const { WebSocketServer } = require('ws');
const { createClient } = require('redis');

const redisPort = Number(process.argv[2]);
if (!redisPort) {
    console.error('usage: node node_ws_redis.mjs REDIS_PORT');
    process.exit(2);
}

const pub = createClient({ url: `redis://127.0.0.1:${redisPort}` });
const sub = pub.duplicate();
pub.on('error', (e) => console.error(`redis: ${e.message}`));
sub.on('error', (e) => console.error(`redis: ${e.message}`));
await pub.connect();
await sub.connect();

const rooms = new Map(); // path -> Set of sockets

function deliver(room, buf) {
    const clients = rooms.get(room);
    if (!clients) return;
    const isBinary = buf[0] === 1;
    const data = buf.subarray(1);
    for (const ws of clients) {
        if (ws.readyState === 1) ws.send(data, { binary: isBinary });
    }
}

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('connection', (ws, req) => {
    const room = (req.url || '/').split('?')[0];
    let clients = rooms.get(room);
    if (!clients) {
        clients = new Set();
        rooms.set(room, clients);
        sub.subscribe(`room:${room}`, (buf) => deliver(room, buf), true);
    }
    clients.add(ws);
    ws.on('message', (data, isBinary) => {
        pub.publish(`room:${room}`, Buffer.concat([Buffer.from([isBinary ? 1 : 0]), data]));
    });
    ws.on('close', () => {
        clients.delete(ws);
        if (clients.size === 0 && rooms.get(room) === clients) {
            rooms.delete(room);
            sub.unsubscribe(`room:${room}`);
        }
    });
});
wss.on('listening', () => console.log(`listening on ${wss.address().port}`));

process.on('SIGTERM', async () => {
    wss.close();
    for (const ws of wss.clients) ws.terminate();
    await Promise.allSettled([pub.quit(), sub.quit()]);
    process.exit(0);
});
