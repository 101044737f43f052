// The built-in chat page as one person with two tabs of one browser would
// use it (one browser context, two pages).
//
// usage: node chat_tabs.mjs tabs HTTP_URL WS_URL SCREENSHOT.png
//   1. tabs A and B get different names (kept per tab, not shared);
//   2. with the SAME name typed in both, a message is "mine" only in the tab
//      that sent it;
//   3. a plain-text line from a `ws` client shows as a chat line from
//      "(plain text)";
//   4. the page has a favicon; a screenshot of A goes to SCREENSHOT.png;
//   5. presence: both tabs count 2 online and A says B joined; when B is
//      closed, A says B (by its latest name) left and counts 1.
//
// usage: node chat_tabs.mjs gap HTTP_URL
//   opens a page, prints "ready" once connected, then waits (60 s at most)
//   while the test restarts the server: the page must say "reconnecting",
//   come back, and show the gap ("Connection lost at ..., back at ...").
//
// usage: node chat_tabs.mjs path HTTP_URL PATH
//   wsk serve --path PATH: the page connects to PATH and hides its rooms.
//
// Each check prints "ok: ..." or "FAIL: ..." (exit 1 at the first failure).
// Uses Debian's /usr/bin/chromium; playwright-core downloads nothing.

import { chromium } from 'playwright-core';
import WebSocket from 'ws';

const [mode, httpUrl, third, fourth] = process.argv.slice(2);
const STEP_MS = 15000;
const watchdog = setTimeout(() => {
    console.log('FAIL: the whole run took over 80 s');
    process.exit(1);
}, 80000);

function ok(what) {
    console.log(`ok: ${what}`);
}

function fail(what) {
    throw new Error(what);
}

async function connected(page, label) {
    await page.waitForFunction(() => document.querySelector('#status')?.textContent === 'connected',
        null, { timeout: STEP_MS }).catch(() => fail(`tab ${label} never connected`));
}

// The .msg elements whose text is text: [{name, mine}].
async function find(page, text) {
    return page.$$eval('#messages .msg', (els, t) => els
        .filter((el) => el.querySelector('.text')?.textContent.trim() === t)
        .map((el) => ({ name: el.querySelector('.name')?.textContent.trim(),
            mine: el.classList.contains('mine') })), text);
}

async function waitFor(page, label, text) {
    await page.waitForFunction((t) => [...document.querySelectorAll('#messages .msg .text')]
        .some((el) => el.textContent.trim() === t), text, { timeout: STEP_MS })
        .catch(() => fail(`tab ${label} never showed "${text}"`));
    return find(page, text);
}

async function send(page, name, text) {
    await page.fill('#name', name);
    await page.dispatchEvent('#name', 'change');
    await page.fill('#message', text);
    await page.click('#send');
}

let browser;
try {
    browser = await chromium.launch({
        executablePath: '/usr/bin/chromium',
        headless: true,
        timeout: 30000,
        args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const context = await browser.newContext({ viewport: { width: 800, height: 600 } });
    if (mode === 'tabs') {
        const [wsUrl, screenshot] = [third, fourth];
        const a = await context.newPage();
        await a.goto(httpUrl);
        await connected(a, 'A');
        const b = await context.newPage();
        await b.goto(httpUrl);
        await connected(b, 'B');
        const nameA = await a.inputValue('#name');
        const nameB = await b.inputValue('#name');
        if (!nameA || !nameB || nameA === nameB)
            fail(`tabs of one browser share a name: "${nameA}" and "${nameB}"`);
        ok(`two tabs, two names: "${nameA}" and "${nameB}"`);
        const favicon = await a.$eval('link[rel="icon"]', (el) => el.href).catch(() => '');
        if (!favicon.startsWith('data:image/svg+xml'))
            fail(`no favicon link (got "${favicon}")`);
        ok('the page has a favicon');

        await send(a, 'Sam', 'from tab A');
        let inA = await waitFor(a, 'A', 'from tab A');
        let inB = await waitFor(b, 'B', 'from tab A');
        await send(b, 'Sam', 'from tab B');
        const bInB = await waitFor(b, 'B', 'from tab B');
        const bInA = await waitFor(a, 'A', 'from tab B');
        inA = await find(a, 'from tab A');
        inB = await find(b, 'from tab A');
        if (!(inA[0].mine && !inB[0].mine && bInB[0].mine && !bInA[0].mine))
            fail(`"mine" follows the name: A's message mine in A ${inA[0].mine}, in B ` +
                `${inB[0].mine}; B's in B ${bInB[0].mine}, in A ${bInA[0].mine}`);
        ok('both named "Sam": each message is "mine" only in the tab that sent it');

        const plain = new WebSocket(wsUrl);
        await new Promise((resolve, reject) => {
            plain.on('open', resolve);
            plain.on('error', reject);
        });
        plain.send('plain hello from a terminal');
        const line = await waitFor(a, 'A', 'plain hello from a terminal');
        if (line[0].name !== '(plain text)' || line[0].mine)
            fail(`a plain-text line shows as ${JSON.stringify(line[0])}`);
        ok('a plain-text line (wsk connect) shows as a chat line from "(plain text)"');
        plain.close();

        const count = (page, label, n) => page.waitForFunction((want) =>
            document.querySelector('#online')?.textContent === `${want} online`, n,
        { timeout: STEP_MS }).catch(() => fail(`tab ${label} does not count ${n} online`));
        await count(a, 'A', 2);
        await count(b, 'B', 2);
        await waitFor(a, 'A', `${nameB} joined.`);
        ok(`presence: both tabs count 2 online; A says "${nameB} joined."`);
        await a.screenshot({ path: screenshot });
        ok(`screenshot of tab A saved to ${screenshot}`);
        await b.close({ runBeforeUnload: true });
        await count(a, 'A', 1);
        await waitFor(a, 'A', 'Sam left.'); /* B's name by then */
        ok('tab B closed: A says "Sam left." and counts 1 online');
    } else if (mode === 'gap') {
        const a = await context.newPage();
        await a.goto(httpUrl);
        await connected(a, 'A');
        console.log('ready');
        await a.waitForFunction(() => document.querySelector('#status')?.textContent ===
            'reconnecting', null, { timeout: 30000 })
            .catch(() => fail('the page never said "reconnecting"'));
        ok('the server went: the page says "reconnecting"');
        await a.waitForFunction(() => document.querySelector('#status')?.textContent ===
            'connected', null, { timeout: 30000 })
            .catch(() => fail('the page did not come back'));
        const gap = await a.$$eval('#messages .msg.system .text', (els) =>
            els.map((el) => el.textContent).filter((t) => t.startsWith('Connection lost at')));
        if (gap.length !== 1)
            fail(`no gap notice after the reconnection (${JSON.stringify(gap)})`);
        ok(`back, with the gap shown: "${gap[0]}"`);
    } else if (mode === 'path') {
        const path = third;
        const a = await context.newPage();
        const sockets = [];
        a.on('websocket', (ws) => sockets.push(ws.url()));
        await a.goto(httpUrl);
        await connected(a, 'A');
        if (!sockets.length || !sockets.every((u) => new URL(u).pathname === path))
            fail(`the page's WebSocket went to ${JSON.stringify(sockets)}, not ${path}`);
        ok(`--path ${path}: the page connects there`);
        if (!(await a.$eval('#room-form', (el) => el.hidden)))
            fail('the room form is shown though the server has one path');
        ok('... and hides the room form');
    } else {
        fail(`unknown mode ${mode}`);
    }
} catch (e) {
    console.log(`FAIL: ${e.message}`);
    await browser?.close().catch(() => {});
    clearTimeout(watchdog);
    process.exit(1);
}
await browser.close();
clearTimeout(watchdog);
