// A Node `ws` client that checks one echo behaviour of a server.
//
// usage: node node_client.mjs [--ca CA.pem] URL CASE [CASE...]
//
// The same cases as py_client.py, each over a fresh connection: text, binary,
// empty-text, empty-binary, big-binary, big-text (1 MiB, byte-exact),
// fragmented-text, fragmented-binary (ws sends one frame per send() with
// {fin: false} until {fin: true}), ping (the pong arrives), close (the
// server's close frame carries 1000), many (100 in a row, in order).
// Exits 1 on the first mismatch. Every wait is bounded. A wss:// server's
// certificate is verified against --ca when given (else Node's CA store). ws
// offers permessage-deflate by default.

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

const MIB = 1 << 20;
const WAIT_MS = 20000;

function describe(data, isBinary) {
    const kind = isBinary ? 'binary' : 'text';
    return `${kind} of ${data.length} bytes ${JSON.stringify(data.subarray(0, 16).toString('latin1'))}...`;
}

function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A connection whose incoming messages queue up for next().
class Client {
    static async open(url) {
        const c = new Client();
        c.ws = new WebSocket(url, { maxPayload: 0, handshakeTimeout: 10000, ...tlsOptions });
        c.queue = [];
        c.waiters = [];
        c.closed = new Promise((resolve) => {
            c.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
        });
        c.ws.on('message', (data, isBinary) => {
            const m = { data: Buffer.from(data), isBinary };
            const w = c.waiters.shift();
            if (w) w(m);
            else c.queue.push(m);
        });
        await withTimeout(
            new Promise((resolve, reject) => {
                c.ws.once('open', resolve);
                c.ws.once('error', reject);
            }),
            WAIT_MS,
            'the handshake',
        );
        c.ws.on('error', (e) => console.log(`  socket error: ${e.message}`));
        return c;
    }

    next() {
        const m = this.queue.shift();
        if (m) return Promise.resolve(m);
        return withTimeout(new Promise((resolve) => this.waiters.push(resolve)), WAIT_MS, 'a message');
    }

    send(data, opts) {
        return new Promise((resolve, reject) =>
            this.ws.send(data, opts, (err) => (err ? reject(err) : resolve())));
    }

    async roundtrip(expected, isBinary, sendAll) {
        if (sendAll) await sendAll();
        else await this.send(expected, { binary: isBinary });
        const m = await this.next();
        const want = Buffer.from(expected);
        if (m.isBinary !== isBinary || !m.data.equals(want)) {
            throw new Error(`sent ${describe(want, isBinary)}, got back ${describe(m.data, m.isBinary)}`);
        }
        console.log(`  echoed ${describe(want, isBinary)}`);
    }
}

function bigText() {
    // 1 MiB of UTF-8 mixing 1-, 2-, 3- and 4-byte characters.
    const unit = 'aé€😀'; // 10 bytes
    let text = unit.repeat(Math.floor(MIB / 10));
    text += 'x'.repeat(MIB - Buffer.byteLength(text));
    return text;
}

async function runCase(url, name) {
    const c = await Client.open(url);
    switch (name) {
    case 'text': await c.roundtrip('hello, wsk ✓', false); break;
    case 'binary': await c.roundtrip(Buffer.from([...Array(256).keys()]), true); break;
    case 'empty-text': await c.roundtrip('', false); break;
    case 'empty-binary': await c.roundtrip(Buffer.alloc(0), true); break;
    case 'big-binary': await c.roundtrip(randomBytes(MIB), true); break;
    case 'big-text': await c.roundtrip(bigText(), false); break;
    case 'fragmented-text':
        await c.roundtrip('fragmented ✓', false, async () => {
            await c.send('frag', { fin: false });
            await c.send('ment', { fin: false });
            await c.send('ed ✓', { fin: true });
        });
        break;
    case 'fragmented-binary': {
        const tail = Buffer.alloc(70000, 0xff);
        await c.roundtrip(Buffer.concat([Buffer.from([0, 1]), tail]), true, async () => {
            await c.send(Buffer.from([0, 1]), { binary: true, fin: false });
            await c.send(Buffer.alloc(0), { binary: true, fin: false });
            await c.send(tail, { binary: true, fin: true });
        });
        break;
    }
    case 'ping': {
        const pong = new Promise((resolve) => c.ws.once('pong', resolve));
        c.ws.ping(Buffer.from('wsk-ping'));
        const data = await withTimeout(pong, WAIT_MS, 'the pong');
        if (data.toString() !== 'wsk-ping') throw new Error(`pong carried ${JSON.stringify(data.toString())}`);
        console.log("  pong received for ping 'wsk-ping'");
        await c.roundtrip('after ping', false);
        break;
    }
    case 'many':
        for (let i = 0; i < 100; i++) c.ws.send(`message ${i}`);
        for (let i = 0; i < 100; i++) {
            const m = await c.next();
            if (m.data.toString() !== `message ${i}`) throw new Error(`message ${i}: got ${m.data}`);
        }
        console.log('  100 messages echoed in order');
        break;
    case 'close': await c.roundtrip('before close', false); break;
    default: throw new Error(`unknown case ${name}`);
    }
    c.ws.close(1000, 'bye');
    const { code } = await withTimeout(c.closed, WAIT_MS, 'the close handshake');
    if (code !== 1000) throw new Error(`server's close frame had code ${code}, expected 1000`);
    console.log(`  closed: server answered close with ${code}`);
}

const args = process.argv.slice(2);
const tlsOptions = {};
if (args[0] === '--ca') {
    tlsOptions.ca = readFileSync(args[1]);
    args.splice(0, 2);
}
const [url, ...cases] = args;
const watchdog = setTimeout(() => {
    console.log('  TIMEOUT: the whole run took over 45 s');
    process.exit(1);
}, 45000);
try {
    for (const name of cases) {
        console.log(`${name}:`);
        await runCase(url, name);
    }
} catch (e) {
    console.log(`  MISMATCH: ${e.message}`);
    process.exit(1);
}
clearTimeout(watchdog);
process.exit(0);
