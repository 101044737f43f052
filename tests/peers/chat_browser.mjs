// Two headless Chromium pages chat through `wsk serve`'s built-in page.
//
// usage: node chat_browser.mjs HTTP_URL WS_URL SCREENSHOT.png [EXTENSION_REGEX]
//
// Steps, each printed as "ok: ..." or "FAIL: ..." (exit 1 on the first
// failure):
//   1. pages A and B open HTTP_URL; #status reads "connected" on both;
//   2. a `ws` client on WS_URL listens to what goes over the wire;
//   3. A types a name and a message and clicks #send: the message shows up
//      in B's and A's #messages as a .msg with .name and .text, and the wire
//      carries {"type":"chat","name":..,"text":..,"ts":<number>};
//   4. B answers; A sees it, after A's own message;
//   5. a screenshot of page A goes to SCREENSHOT.png;
//   6. rooms: page C opens HTTP_URL?room=team/a and shows "# team/a"; page B
//      joins team/a through its #room field and #join; C's message reaches
//      B and not A, A's (in the lobby) reaches neither; a screenshot of C
//      goes next to SCREENSHOT.png as *-room.png;
//   7. with EXTENSION_REGEX: the Sec-WebSocket-Extensions header of the
//      handshake response each page's own WebSocket got (seen through the
//      DevTools protocol, as Chromium received it) matches the regex, e.g.
//      ^permessage-deflate; so the chat above went through Chromium's
//      built-in compression.
// Uses Debian's /usr/bin/chromium; playwright-core downloads nothing.

import { chromium } from 'playwright-core';
import WebSocket from 'ws';

const [httpUrl, wsUrl, screenshot, extensionRegex] = process.argv.slice(2);
const STEP_MS = 15000;

const watchdog = setTimeout(() => {
    console.log('FAIL: the whole run took over 50 s');
    process.exit(1);
}, 50000);

let browser;
let failed = false;

function ok(what) {
    console.log(`ok: ${what}`);
}

async function messages(page) {
    return page.$$eval('#messages .msg', (els) =>
        els.map((el) => ({
            name: el.querySelector('.name')?.textContent.trim() ?? null,
            text: el.querySelector('.text')?.textContent.trim() ?? null,
        })));
}

async function waitForMessage(page, label, name, text) {
    try {
        await page.waitForFunction(
            ([n, t]) => [...document.querySelectorAll('#messages .msg')].some(
                (el) => el.querySelector('.name')?.textContent.trim() === n &&
                    el.querySelector('.text')?.textContent.trim() === t),
            [name, text],
            { timeout: STEP_MS },
        );
    } catch {
        throw new Error(`page ${label} shows no .msg with .name "${name}" and .text "${text}" ` +
            `within ${STEP_MS} ms; its messages: ${JSON.stringify(await messages(page))}`);
    }
    ok(`page ${label} shows ${name}: ${text}`);
}

async function send(page, label, name, text) {
    await page.fill('#name', name);
    await page.fill('#message', text);
    await page.click('#send');
    ok(`page ${label}: typed "${name}" / "${text}" and clicked #send`);
}

try {
    browser = await chromium.launch({
        executablePath: '/usr/bin/chromium',
        headless: true,
        timeout: 30000,
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const pageErrors = [];
    const handshakes = {}; // label -> [{offered, answered}] of the page's WebSockets
    const header = (headers, name) =>
        Object.entries(headers ?? {}).find(([k]) => k.toLowerCase() === name)?.[1];
    const open = async (label, url = httpUrl) => {
        const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
        const page = await context.newPage();
        // Before the page loads, so that its WebSocket's handshake is seen.
        const cdp = await context.newCDPSession(page);
        const requests = new Map();
        handshakes[label] = [];
        cdp.on('Network.webSocketWillSendHandshakeRequest', (e) => {
            requests.set(e.requestId, header(e.request.headers, 'sec-websocket-extensions'));
        });
        cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
            handshakes[label].push({
                offered: requests.get(e.requestId) ?? null,
                answered: header(e.response.headers, 'sec-websocket-extensions') ?? null,
            });
        });
        await cdp.send('Network.enable');
        page.setDefaultTimeout(STEP_MS);
        page.on('pageerror', (e) => pageErrors.push(`page ${label}: ${e.message}`));
        const response = await page.goto(url, { timeout: STEP_MS });
        if (!response || response.status() !== 200) {
            throw new Error(`page ${label}: GET ${url} answered ${response?.status()}`);
        }
        const type = response.headers()['content-type'] ?? '';
        if (!type.startsWith('text/html')) throw new Error(`page ${label}: Content-Type "${type}"`);
        ok(`page ${label} loaded ${url} (200, ${type})`);
        return page;
    };
    const waitConnected = async (page, label) => {
        try {
            await page.waitForFunction(
                () => document.querySelector('#status')?.textContent.trim() === 'connected',
                null, { timeout: STEP_MS });
        } catch {
            const status = await page.$eval('#status', (el) => el.textContent).catch(() => '<no #status>');
            throw new Error(`page ${label}: #status is "${status}", not "connected", after ${STEP_MS} ms`);
        }
        ok(`page ${label}: #status reads "connected"`);
    };
    const expectRoom = async (page, label, shown) => {
        try {
            await page.waitForFunction(
                (want) => document.querySelector('#room-name')?.textContent.trim() === want,
                shown, { timeout: STEP_MS });
        } catch {
            const name = await page.$eval('#room-name', (el) => el.textContent).catch(() => '<no #room-name>');
            throw new Error(`page ${label}: #room-name is "${name}", not "${shown}"`);
        }
        ok(`page ${label}: #room-name reads "${shown}"`);
    };
    const a = await open('A');
    const b = await open('B');
    for (const [label, page] of [['A', a], ['B', b]]) {
        await waitConnected(page, label);
        await expectRoom(page, label, 'lobby');
    }

    const wire = [];
    const tap = new WebSocket(wsUrl);
    tap.on('message', (data, isBinary) => wire.push({ data: data.toString(), isBinary }));
    await new Promise((resolve, reject) => {
        tap.once('open', resolve);
        tap.once('error', reject);
    });
    ok(`a ws client listens on ${wsUrl}`);

    await send(a, 'A', 'Alice', 'Hello from A ✓');
    await waitForMessage(b, 'B', 'Alice', 'Hello from A ✓');
    await waitForMessage(a, 'A', 'Alice', 'Hello from A ✓');

    const deadline = Date.now() + STEP_MS;
    while (!wire.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (!wire.length) throw new Error('the ws client got nothing on the wire');
    const first = wire[0];
    let msg;
    try {
        msg = JSON.parse(first.data);
    } catch {
        throw new Error(`the wire carried non-JSON: ${first.data}`);
    }
    if (first.isBinary || msg.type !== 'chat' || msg.name !== 'Alice' ||
        msg.text !== 'Hello from A ✓' || typeof msg.ts !== 'number') {
        throw new Error(`the wire carried ${first.isBinary ? 'binary ' : ''}${first.data}; expected ` +
            'text {"type":"chat","name":"Alice","text":"Hello from A ✓","ts":<number>}');
    }
    ok(`the wire carried ${first.data}`);
    tap.close();

    await send(b, 'B', 'Bob', 'Hi Alice, B here');
    await waitForMessage(a, 'A', 'Bob', 'Hi Alice, B here');
    const onA = await messages(a);
    const iAlice = onA.findIndex((m) => m.name === 'Alice');
    const iBob = onA.findIndex((m) => m.name === 'Bob');
    if (iAlice < 0 || iBob < iAlice) throw new Error(`page A's messages out of order: ${JSON.stringify(onA)}`);
    const copies = onA.filter((m) => m.name === 'Alice' && m.text === 'Hello from A ✓').length;
    if (copies !== 1) throw new Error(`page A shows its own message ${copies} times: ${JSON.stringify(onA)}`);
    ok(`page A lists Alice's message once, before Bob's: ${JSON.stringify(onA)}`);

    // A third message makes the screenshot show a conversation.
    await send(a, 'A', 'Alice', 'Great, the chat works.');
    await waitForMessage(b, 'B', 'Alice', 'Great, the chat works.');
    await waitForMessage(a, 'A', 'Alice', 'Great, the chat works.');

    await a.screenshot({ path: screenshot, fullPage: true });
    ok(`screenshot of page A saved to ${screenshot}`);

    // Rooms: the WebSocket path is the room.
    const c = await open('C', new URL('?room=team/a', httpUrl).href);
    await waitConnected(c, 'C');
    await expectRoom(c, 'C', '# team/a');
    await b.fill('#room', 'team/a');
    await b.click('#join');
    await expectRoom(b, 'B', '# team/a');
    await waitConnected(b, 'B');
    const bUrl = b.url();
    if (!bUrl.endsWith('?room=team/a')) throw new Error(`page B's address after joining is ${bUrl}`);
    ok(`page B's address is now ${bUrl}`);
    await send(c, 'C', 'Carol', 'Hello team a');
    await waitForMessage(b, 'B', 'Carol', 'Hello team a');
    await waitForMessage(c, 'C', 'Carol', 'Hello team a');
    await send(a, 'A', 'Alice', 'Lobby only');
    await waitForMessage(a, 'A', 'Alice', 'Lobby only');
    // Long enough for a message that should not arrive to show up.
    await new Promise((r) => setTimeout(r, 1000));
    const leakedToA = (await messages(a)).filter((m) => m.text === 'Hello team a');
    if (leakedToA.length) throw new Error('page A (lobby) shows the message of room team/a');
    for (const [label, page] of [['B', b], ['C', c]]) {
        if ((await messages(page)).some((m) => m.text === 'Lobby only')) {
            throw new Error(`page ${label} (team/a) shows the lobby's message`);
        }
    }
    ok('team/a and the lobby see only their own messages');
    const roomShot = screenshot.replace(/\.png$/, '') + '-room.png';
    await c.screenshot({ path: roomShot, fullPage: true });
    ok(`screenshot of page C saved to ${roomShot}`);

    if (extensionRegex) {
        const re = new RegExp(extensionRegex);
        for (const label of ['A', 'B', 'C']) {
            const hs = handshakes[label];
            if (!hs.length) throw new Error(`page ${label}: no WebSocket handshake seen`);
            for (const h of hs) {
                if (!re.test(h.answered ?? '')) {
                    throw new Error(`page ${label}: offered ${JSON.stringify(h.offered)}, the server ` +
                        `answered Sec-WebSocket-Extensions ${JSON.stringify(h.answered)}, not /${extensionRegex}/`);
                }
            }
            ok(`page ${label}: offered ${JSON.stringify(hs[0].offered)}, server answered ` +
                `${JSON.stringify(hs[0].answered)}`);
        }
    }
    if (pageErrors.length) throw new Error(`JavaScript errors on the page: ${pageErrors.join('; ')}`);
    ok('no JavaScript errors on either page');
} catch (e) {
    failed = true;
    console.log(`FAIL: ${e.message}`);
} finally {
    if (browser) await browser.close().catch(() => {});
    clearTimeout(watchdog);
}
process.exit(failed ? 1 : 0);
