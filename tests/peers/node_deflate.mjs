// permessage-deflate with Node's ws client against an echo server.
//
// usage: node node_deflate.mjs URL VARIANT EXPECTED_EXTENSION SIZES
//
// VARIANT is what the client offers:
//   default   perMessageDeflate: true (ws's defaults: client_max_window_bits,
//             messages under 1 KiB sent uncompressed)
//   options   no context takeover both ways, both windows 10 bits,
//             threshold 0 (every message compressed), memLevel 5
//   off       perMessageDeflate: false
// EXPECTED_EXTENSION is the Sec-WebSocket-Extensions value the server must
// answer with (from the 'upgrade' response), compared parameter by parameter
// in any order, "none" when there must be none; ws.extensions, which names
// the extensions in use, must agree. Then each payload
// of SIZES ("all": 0, 1, 100, 64 KiB, 1 MiB, 16 MiB; "small": up to 1 MiB),
// as text and binary, compressible and random, is echoed byte-exact on the
// same connection, and the close handshake ends with 1000. Exits 1 on the
// first mismatch. Every wait is bounded.

import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

const KIB = 1024;
const MIB = 1024 * 1024;
const SIZES = { all: [0, 1, 100, 64 * KIB, MIB, 16 * MIB], small: [0, 1, 100, 64 * KIB, MIB] };
const WAIT_MS = 60000;

const VARIANTS = {
    default: true,
    options: {
        serverNoContextTakeover: true,
        clientNoContextTakeover: true,
        serverMaxWindowBits: 10,
        clientMaxWindowBits: 10,
        threshold: 0,
        zlibDeflateOptions: { memLevel: 5 },
    },
    off: false,
};

const [url, variant, expected, sizes] = process.argv.slice(2);

const watchdog = setTimeout(() => {
    console.log('FAIL: the whole run took over 200 s');
    process.exit(1);
}, 200000);

function params(value) {
    if (!value || value === 'none') return null;
    const [name, ...rest] = value.split(';').map((p) => p.trim());
    return `${name} | ${rest.map((p) => p.replace(/\s+/g, '')).sort().join(';')}`;
}

// Random bytes mapped onto printable ASCII, then a few same-length swaps for
// multi-byte characters: n bytes of UTF-8 that hardly compress.
function randomText(n) {
    const prefix = n >= 9 ? 'é€😀' : ''; // 9 bytes
    const b = randomBytes(n - Buffer.byteLength(prefix));
    for (let i = 0; i < b.length; i++) b[i] = 0x21 + (b[i] % 94);
    const s = prefix + b.toString('latin1').replaceAll('~~', 'é').replaceAll('|||', '€').replaceAll('{{{{', '😀');
    if (Buffer.byteLength(s) !== n) throw new Error(`randomText(${n}) made ${Buffer.byteLength(s)} bytes`);
    return s;
}

function compressibleText(n) {
    const parts = [];
    let total = 0;
    for (let i = 0; total < n; i++) {
        const line = `{"type":"chat","name":"user${i % 7}","text":"message ${i} ✓ hello","ts":${1700000000000 + i}}\n`;
        parts.push(line);
        total += Buffer.byteLength(line);
    }
    // Cut to n bytes at a character boundary, then pad with ASCII.
    let s = Buffer.from(parts.join('')).subarray(0, n).toString();
    s = s.replace(/\uFFFD+$/, '');
    return s + 'x'.repeat(n - Buffer.byteLength(s));
}

function compressibleBinary(n) {
    const b = Buffer.alloc(n);
    // A period of 64 bytes: compressible with any window, even 9 bits.
    for (let i = 0; i < n; i++) b[i] = i % 64 < 32 ? i % 64 : 0;
    return b;
}

function* payloads() {
    for (const n of SIZES[sizes]) {
        yield [`text ${n} compressible`, compressibleText(n), false];
        yield [`text ${n} random`, randomText(n), false];
        yield [`binary ${n} compressible`, compressibleBinary(n), true];
        yield [`binary ${n} random`, randomBytes(n), true];
    }
}

function withTimeout(promise, ms, what) {
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

try {
    if (!(variant in VARIANTS)) throw new Error(`unknown variant ${variant}`);
    const ws = new WebSocket(url, { maxPayload: 0, handshakeTimeout: 10000, perMessageDeflate: VARIANTS[variant] });
    const queue = [];
    const waiters = [];
    ws.on('message', (data, isBinary) => {
        const m = { data: Buffer.from(data), isBinary };
        const w = waiters.shift();
        if (w) w(m);
        else queue.push(m);
    });
    const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
    let answered;
    ws.once('upgrade', (res) => { answered = res.headers['sec-websocket-extensions']; });
    await withTimeout(new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
    }), WAIT_MS, 'the handshake');
    ws.on('error', (e) => console.log(`  socket error: ${e.message}`));
    console.log(`server answered Sec-WebSocket-Extensions: ${JSON.stringify(answered)}; ` +
        `ws.extensions: ${JSON.stringify(ws.extensions)}`);
    if (params(answered) !== params(expected)) {
        throw new Error(`expected ${JSON.stringify(expected)}, got ${JSON.stringify(answered)}`);
    }
    if (ws.extensions !== (params(expected) ? 'permessage-deflate' : '')) {
        throw new Error(`ws.extensions is ${JSON.stringify(ws.extensions)}`);
    }
    const next = () => (queue.length ? Promise.resolve(queue.shift())
        : withTimeout(new Promise((resolve) => waiters.push(resolve)), WAIT_MS, 'an echo'));
    for (const [name, message, isBinary] of payloads()) {
        const t0 = Date.now();
        await new Promise((resolve, reject) =>
            ws.send(message, { binary: isBinary }, (err) => (err ? reject(err) : resolve())));
        const m = await next();
        const want = Buffer.from(message);
        if (m.isBinary !== isBinary || !m.data.equals(want)) {
            throw new Error(`${name}: got back ${m.isBinary ? 'binary' : 'text'} of ${m.data.length} bytes`);
        }
        console.log(`  ${name}: echoed byte-exact in ${Date.now() - t0} ms`);
    }
    ws.close(1000, 'bye');
    const code = await withTimeout(closed, WAIT_MS, 'the close handshake');
    if (code !== 1000) throw new Error(`close handshake ended with ${code}`);
    console.log('ok: closed with 1000');
} catch (e) {
    console.log(`FAIL: ${e.message}`);
    process.exit(1);
}
clearTimeout(watchdog);
process.exit(0);
