// End-to-end test: the page (index.html) in headless Chromium, against a live
// `ensign serve`. Run it with ../e2e.sh, which starts Ensign and sets:
//   ENSIGN_PORT        Ensign's evaluation port (Connect protocol);
//   PAGE_PORT          the port to serve the page on (Ensign allows its origin, CORS);
//   ENSIGN_FLAGS_FILE  the served flags file, which the configuration-change test rewrites;
//   CHROMIUM           the browser (default /usr/bin/chromium).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { ENSIGN_PORT, PAGE_PORT, ENSIGN_FLAGS_FILE } = process.env;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
assert.ok(ENSIGN_PORT && PAGE_PORT && ENSIGN_FLAGS_FILE, 'run this test through e2e.sh');

let server;
let browser;
let page;
const pageErrors = [];

// A static server for the page and the ES modules in node_modules.
function serveStatic(port) {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.map': 'application/json' };
  const srv = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^\/+/, '') || 'index.html';
    const allowed = ['index.html', 'main.js', 'flags.js'].includes(path) || path.startsWith('node_modules/');
    try {
      if (!allowed || path.includes('..')) throw new Error('not served');
      const body = await readFile(join(ROOT, path));
      res.writeHead(200, { 'content-type': types[extname(path)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => srv.listen(port, '127.0.0.1', () => resolve(srv)));
}

async function openPage(user) {
  const query = new URLSearchParams({ host: '127.0.0.1', port: ENSIGN_PORT, ...user });
  await page.goto(`http://127.0.0.1:${PAGE_PORT}/index.html?${query}`);
  await page.evaluate(() => window.example.ready);
}

const snapshot = () => page.evaluate(() => window.example.snapshot());
const setUser = (context) => page.evaluate((c) => window.example.setUser(c), context);

before(async () => {
  server = await serveStatic(Number(PAGE_PORT));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  page = await browser.newPage();
  page.on('pageerror', (error) => pageErrors.push(String(error)));
  await openPage({ targetingKey: 'user-1', email: 'ada@example.com' });
});

after(async () => {
  await browser?.close();
  server?.close();
});

test('typed values, variants and reasons', async () => {
  const flags = await snapshot();
  assert.deepEqual(flags['show-welcome-banner'], { value: true, variant: 'on', reason: 'STATIC' });
  assert.deepEqual(flags['welcome-message'], { value: 'Hello from Ensign!', variant: 'hello', reason: 'STATIC' });
  assert.deepEqual(flags['max-cart-items'], { value: 250, variant: 'large', reason: 'STATIC' });
  assert.deepEqual(flags['discount-rate'], { value: 0.15, variant: 'spring-sale', reason: 'STATIC' });
  assert.deepEqual(flags.theme, {
    value: { background: '#1e1e1e', fontSize: 14, rounded: true },
    variant: 'dark',
    reason: 'STATIC',
  });
});

test('a missing flag gives the code default (FLAG_NOT_FOUND)', async () => {
  const flags = await snapshot();
  assert.deepEqual(flags['no-such-flag'], { value: false, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
});

test('a disabled flag gives the code default (reason DISABLED)', async () => {
  const flags = await snapshot();
  assert.deepEqual(flags['holiday-banner-text'], { value: 'no banner', reason: 'DISABLED' });
});

test('targeting: the context sent with ResolveAll selects the variant', async () => {
  const employee = await setUser({ targetingKey: 'user-1', email: 'ada@example.com' });
  assert.deepEqual(employee['premium-support'], { value: true, variant: 'yes', reason: 'TARGETING_MATCH' });
  // The rule returns null for everyone else: the flag's default variant.
  const customer = await setUser({ targetingKey: 'user-1', email: 'bob@example.org' });
  assert.deepEqual(customer['premium-support'], { value: false, variant: 'no', reason: 'DEFAULT' });
});

test('fractional rollout is sticky per targeting key', async () => {
  // Expected variants computed independently with PyPI openfeature-flagd-core
  // 2.0.0 (fractional v3, Ensign's default) on flags.json:
  //   core.resolve_string_value("checkout-flow", "x", EvaluationContext(targeting_key=KEY))
  const expected = {
    'user-1': 'classic',
    'user-2': 'one-page',
    'user-4': 'one-page',
    'user-7': 'express',
    alice: 'express',
    bob: 'classic',
  };
  for (const [targetingKey, variant] of Object.entries(expected)) {
    const flags = await setUser({ targetingKey, email: 'ada@example.com' });
    assert.deepEqual(
      flags['checkout-flow'],
      { value: variant, variant, reason: 'TARGETING_MATCH' },
      `targeting key ${targetingKey}`,
    );
  }
  await setUser({ targetingKey: 'user-1', email: 'ada@example.com' });
});

test('the page shows the flags', async () => {
  const cells = await page.locator('tr[data-flag="welcome-message"] td').allTextContents();
  assert.deepEqual(cells, ['welcome-message', '"Hello from Ensign!"', 'hello', 'STATIC', '']);
});

// Waits until the page shows `want` for welcome-message after a configuration
// change event; returns the time taken in ms.
async function waitForMessage(want, changesBefore) {
  const start = Date.now();
  await page.waitForFunction(
    ([w, n]) => window.example.changes.length > n && window.example.snapshot()['welcome-message'].value === w,
    [want, changesBefore],
    { timeout: 1000, polling: 10 },
  );
  return Date.now() - start;
}

test('a configuration change reaches the page within 1 s (EventStream)', async (t) => {
  const original = await readFile(ENSIGN_FLAGS_FILE, 'utf8');
  const changed = original.replace('"defaultVariant": "hello"', '"defaultVariant": "goodbye"');
  assert.notEqual(changed, original, 'flags.json has no welcome-message defaultVariant to change');
  const count = () => page.evaluate(() => window.example.changes.length);

  // Rewrite the file in place, as `cat > flags.json` would.
  let n = await count();
  await writeFile(ENSIGN_FLAGS_FILE, changed);
  let took = await waitForMessage('Goodbye from Ensign!', n);
  t.diagnostic(`in-place rewrite reached the page after ${took} ms`);

  // Replace it by renaming a new file over it, as editors and config tools do.
  n = await count();
  await writeFile(`${ENSIGN_FLAGS_FILE}.new`, original);
  await rename(`${ENSIGN_FLAGS_FILE}.new`, ENSIGN_FLAGS_FILE);
  took = await waitForMessage('Hello from Ensign!', n);
  t.diagnostic(`rename-over replacement reached the page after ${took} ms`);
});

test('the page raised no errors', () => {
  assert.deepEqual(pageErrors, []);
});
