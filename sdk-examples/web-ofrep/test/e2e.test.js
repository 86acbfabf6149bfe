// End-to-end test: the OFREP web provider in headless Chromium against a live Ensign.
//
// Run by e2e.sh, which picks PAGE_PORT, starts
// `ensign serve --uri file:$FLAGS_FILE --cors-origin http://127.0.0.1:$PAGE_PORT -X region=eu-west`
// and sets OFREP_ENDPOINT. This file serves the page (index.html + main.js +
// node_modules) on PAGE_PORT, opens it in Chromium (playwright-core) and checks
//   1. the bulk evaluation the page shows (values, variants, reasons, errors);
//   2. ETag revalidation: a returning visit sends If-None-Match and gets a 304;
//   3. SSE: rewriting the flags file updates the open page within 1 s, no reload.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PAGE_PORT = Number(process.env.PAGE_PORT);
const OFREP_ENDPOINT = process.env.OFREP_ENDPOINT;
const FLAGS_FILE = process.env.FLAGS_FILE;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const PAGE_URL =
  `http://127.0.0.1:${PAGE_PORT}/index.html?` +
  new URLSearchParams({ ofrep: OFREP_ENDPOINT, targetingKey: 'bob', plan: 'enterprise' });

// What the page must show for {targetingKey: "bob", plan: "enterprise"}, the
// server running with -X region=eu-west: [value (JSON), variant, reason, error].
const EXPECTED = {
  'new-checkout': ['true', 'on', 'STATIC', ''],
  'welcome-message': ['"Hey there"', 'casual', 'STATIC', ''],
  'max-cart-items': ['50', 'large', 'STATIC', ''],
  'discount-rate': ['0.15', 'standard', 'STATIC', ''],
  theme: ['{"background":"#111111","foreground":"#eeeeee","rounded":true}', 'dark', 'STATIC', ''],
  'support-tier': ['"24/7 phone support"', 'priority', 'TARGETING_MATCH', ''],
  // Server-side fractional (Ensign's default generation, v3). "bob" is bucketed
  // treatment-a by the v3 reference core (PyPI openfeature-flagd-core 2.0.0; see
  // python-in-process/test_example.py, same flags) and treatment-b by v2.
  'checkout-experiment': ['"two-step"', 'treatment-a', 'TARGETING_MATCH', ''],
  'data-residency': ['"Frankfurt"', 'eu', 'TARGETING_MATCH', ''],
  // DISABLED: the code default (false), though the flag's defaultVariant is "on".
  'legacy-checkout': ['false', '', 'DISABLED', ''],
  // defaultVariant null: the code default.
  'beta-search': ['false', '', 'DEFAULT', ''],
  announcement: ['"Welcome to the shop"', 'v1', 'STATIC', ''],
  'no-such-flag': ['"code default"', '', 'ERROR', 'FLAG_NOT_FOUND'],
};

const CONTENT_TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json', '.map': 'application/json' };

/** A static file server for this folder: the page and its node_modules. */
function startPageServer() {
  const server = http.createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = path.join(HERE, pathname === '/' ? 'index.html' : pathname);
    if (req.method !== 'GET' || !file.startsWith(HERE + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(PAGE_PORT, '127.0.0.1', () => resolve(server)));
}

let reloadedAt = 0;
let server;
let browser;
let page;
const bulk = []; // every bulk evaluation: {status, etag, ifNoneMatch, exposed}
const streams = []; // every event-stream answer: {status, contentType, at}
const logs = []; // the page's console, shown when a test fails

before(async () => {
  assert.ok(PAGE_PORT && OFREP_ENDPOINT && FLAGS_FILE, 'PAGE_PORT, OFREP_ENDPOINT and FLAGS_FILE must be set (run e2e.sh)');
  server = await startPageServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage();
  page.on('console', (msg) => logs.push(`console.${msg.type()}: ${msg.text()}`));
  page.on('pageerror', (err) => logs.push(`pageerror: ${err.message}`));
  page.on('response', async (response) => {
    const request = response.request();
    if (new URL(response.url()).pathname === '/ofrep/v1/events') {
      streams.push({ status: response.status(), contentType: response.headers()['content-type'], at: Date.now() });
      return;
    }
    if (request.method() !== 'POST' || new URL(response.url()).pathname !== '/ofrep/v1/evaluate/flags') return;
    const headers = response.headers();
    bulk.push({
      status: response.status(),
      etag: headers.etag,
      ifNoneMatch: (await request.allHeaders())['if-none-match'],
      exposed: (headers['access-control-expose-headers'] ?? '').toLowerCase(),
    });
  });
});

after(async () => {
  // SCREENSHOT=/tmp/page.png keeps a picture of the page as the tests left it.
  if (process.env.SCREENSHOT && page) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve()));
});

/** The table the page shows: {flag: [value, variant, reason, error]}. */
function shownFlags() {
  return page.$$eval('#flags tr', (rows) =>
    Object.fromEntries(
      rows.map((tr) => [
        tr.dataset.flag,
        ['value', 'variant', 'reason', 'error'].map((f) => tr.querySelector(`[data-field="${f}"]`).textContent),
      ]),
    ),
  );
}

async function openPage(load) {
  await load();
  try {
    await page.waitForSelector('#status[data-status="ready"]', { timeout: 10_000 });
  } catch (err) {
    throw new Error(`page not ready: ${await page.textContent('#status')}\n${logs.join('\n')}`, { cause: err });
  }
}

async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${logs.join('\n')}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('the page shows the bulk evaluation for its user', async () => {
  await openPage(() => page.goto(PAGE_URL));
  assert.deepEqual(await shownFlags(), EXPECTED);
});

test('the first bulk answer is a 200 with an ETag the page can read', async () => {
  assert.equal(bulk.length, 1, JSON.stringify(bulk));
  const [first] = bulk;
  assert.equal(first.status, 200);
  assert.match(first.etag ?? '', /^(W\/)?".+"$/);
  assert.equal(first.ifNoneMatch, undefined);
  // Cross-origin: the script sees the ETag only if CORS exposes it.
  assert.ok(first.exposed.split(',').map((h) => h.trim()).includes('etag'), `expose-headers: ${first.exposed}`);
  // ...and the provider did see it: it keeps it with its cached flags.
  const stored = await page.evaluate(() => Object.values(localStorage).join('\n'));
  assert.ok(stored.includes(JSON.stringify(first.etag).slice(1, -1)), 'ETag not in the provider cache');
});

test('a returning visit revalidates with If-None-Match and gets a 304', async () => {
  const before = bulk.length;
  reloadedAt = Date.now();
  await openPage(() => page.reload());
  await waitFor(() => bulk.length > before, 5000, 'the revalidation request');
  const revalidation = bulk[before];
  assert.equal(revalidation.ifNoneMatch, bulk[0].etag);
  assert.equal(revalidation.status, 304);
  // Same values (served from the provider's cache, confirmed by the 304).
  const shown = await shownFlags();
  for (const [key, [value, variant]] of Object.entries(EXPECTED)) {
    assert.deepEqual(shown[key].slice(0, 2), [value, variant], key);
  }
});

test('a change to the flags file reaches the open page within 1 s, without a reload', async () => {
  // The provider (re)opened the SSE stream Ensign advertises in `eventStreams`.
  await waitFor(() => streams.some((s) => s.at >= reloadedAt), 5000, 'the event stream');
  const stream = streams.at(-1);
  assert.equal(stream.status, 200);
  assert.match(stream.contentType ?? '', /^text\/event-stream/);
  await page.waitForTimeout(200); // the answer's headers are out; let the server subscribe
  await page.evaluate(() => (window.__sameDocument = true));
  const before = bulk.length;

  const doc = JSON.parse(fs.readFileSync(FLAGS_FILE, 'utf8'));
  doc.flags.announcement.defaultVariant = 'v2';
  const started = Date.now();
  fs.writeFileSync(FLAGS_FILE, JSON.stringify(doc, null, 2));
  try {
    await page.waitForFunction(
      () => document.querySelector('tr[data-flag="announcement"] [data-field="value"]')?.textContent === '"Summer sale is on"',
      null,
      { timeout: 1000, polling: 10 },
    );
  } catch (err) {
    throw new Error(`page did not update within 1 s; bulk requests: ${JSON.stringify(bulk.slice(before))}\n${logs.join('\n')}`, { cause: err });
  }
  const elapsed = Date.now() - started;
  console.log(`# page updated ${elapsed} ms after the file was written`);

  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was reloaded');
  const shown = await shownFlags();
  assert.deepEqual(shown.announcement, ['"Summer sale is on"', 'v2', 'STATIC', '']);
  const changes = await page.$$eval('#changes li', (lis) => lis.map((li) => JSON.parse(li.dataset.flags)));
  assert.ok(changes.some((flags) => flags.includes('announcement')), JSON.stringify(changes));
  // The refetch sent the old ETag and, the answer having changed, got a 200 with a new one.
  const refetch = bulk.slice(before).find((b) => b.status === 200);
  assert.ok(refetch, JSON.stringify(bulk.slice(before)));
  assert.equal(refetch.ifNoneMatch, bulk[0].etag);
  assert.notEqual(refetch.etag, bulk[0].etag);
});
