// End-to-end test: the Node flagd provider in in-process mode against a live Ensign.
//
// Run by e2e.sh, which starts `ensign serve --uri file:$FLAGS_FILE -X region=$STATIC_REGION`
// and sets FLAGD_HOST / FLAGD_SYNC_PORT. The provider syncs the flags from the
// sync port and evaluates them locally with @openfeature/flagd-core 4.x, so these
// tests check that Ensign's snapshots (and their sync_context) give the results a
// flagd user expects, and that a change to the file reaches the process quickly.

'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { OpenFeature, ProviderEvents, StandardResolutionReasons, ErrorCode } = require('@openfeature/server-sdk');
const { FlagdCore } = require('@openfeature/flagd-core');
const { makeProvider } = require('./example');

const HOST = process.env.FLAGD_HOST ?? '127.0.0.1';
const SYNC_PORT = Number(process.env.FLAGD_SYNC_PORT);
const FLAGS_FILE = process.env.FLAGS_FILE;
const STATIC_REGION = process.env.STATIC_REGION ?? 'eu-west';
// data-residency's variant for each region it knows.
const REGION_VARIANT = { 'eu-west': 'eu', 'us-east': 'us' };
const { STATIC, DEFAULT, DISABLED, ERROR, TARGETING_MATCH } = StandardResolutionReasons;

let client;

before(async () => {
  assert.ok(SYNC_PORT, 'FLAGD_SYNC_PORT must be set (run e2e.sh)');
  assert.ok(FLAGS_FILE, 'FLAGS_FILE must be set (run e2e.sh)');
  await OpenFeature.setProviderAndWait(makeProvider({ host: HOST, port: SYNC_PORT }));
  client = OpenFeature.getClient();
});

after(async () => {
  await OpenFeature.close();
});

// --- values, variants and reasons --------------------------------------------------

const staticFlags = [
  ['getBooleanDetails', 'new-checkout', false, true, 'on'],
  ['getStringDetails', 'welcome-message', 'Hello', 'Hey there', 'casual'],
  ['getNumberDetails', 'max-cart-items', 5, 50, 'large'],
  ['getNumberDetails', 'discount-rate', 0, 0.15, 'standard'],
  ['getObjectDetails', 'theme', {}, { background: '#111111', foreground: '#eeeeee', rounded: true }, 'dark'],
];
for (const [method, key, fallback, value, variant] of staticFlags) {
  test(`static flag ${key}: ${JSON.stringify(value)} (${variant}, STATIC)`, async () => {
    const d = await client[method](key, fallback, {});
    assert.equal(d.errorCode, undefined, d.errorMessage);
    assert.deepEqual(d.value, value);
    assert.equal(typeof d.value, typeof value);
    assert.equal(d.variant, variant);
    assert.equal(d.reason, STATIC);
  });
}

test('integer flag stays an integer', async () => {
  const d = await client.getNumberDetails('max-cart-items', 5, {});
  assert.ok(Number.isInteger(d.value));
});

test('missing flag gives the code default with FLAG_NOT_FOUND', async () => {
  const d = await client.getStringDetails('no-such-flag', 'code default', {});
  assert.equal(d.value, 'code default');
  assert.equal(d.reason, ERROR);
  assert.equal(d.errorCode, ErrorCode.FLAG_NOT_FOUND);
});

test('disabled flag gives the code default with reason DISABLED', async () => {
  // The flag's defaultVariant is "on" (true); a disabled flag must not serve it.
  const d = await client.getBooleanDetails('legacy-checkout', false, {});
  assert.equal(d.value, false);
  assert.equal(d.reason, DISABLED);
  assert.equal(d.errorCode, undefined);
  assert.equal(d.variant, undefined);
});

test('flag without a default variant gives the code default', async () => {
  // defaultVariant null: Ensign sends "" in the snapshot, like flagd.
  for (const fallback of [false, true]) {
    const d = await client.getBooleanDetails('beta-search', fallback, {});
    assert.equal(d.value, fallback);
    assert.equal(d.reason, DEFAULT);
    assert.equal(d.errorCode, undefined);
  }
});

const targetingCases = [
  [{ plan: 'enterprise' }, '24/7 phone support', 'priority', TARGETING_MATCH],
  [{ plan: 'free' }, 'email support', 'standard', DEFAULT],
  [{}, 'email support', 'standard', DEFAULT],
];
for (const [attributes, value, variant, reason] of targetingCases) {
  test(`targeting rule with ${JSON.stringify(attributes)} → ${variant} (${reason})`, async () => {
    const d = await client.getStringDetails('support-tier', 'fallback', { targetingKey: 'user-1', ...attributes });
    assert.deepEqual([d.value, d.variant, d.reason], [value, variant, reason]);
  });
}

// --- fractional ----------------------------------------------------------------------

// Expected variants of checkout-experiment, worked out with the reference evaluator
// (npm @openfeature/flagd-core 4.0.1, fractional v2 — what this provider runs) from
// flags.json, not taken from Ensign. The in-process provider buckets locally, so
// Ensign's own --fractional setting plays no part here.
const FRACTIONAL_V2 = {
  alice: 'control',
  bob: 'treatment-b',
  carol: 'treatment-a',
  dave: 'treatment-b',
  erin: 'control',
};
const FRACTIONAL_VALUES = { control: 'one-page', 'treatment-a': 'two-step', 'treatment-b': 'wizard' };

test('fractional golden table matches the reference core', () => {
  const version = require('@openfeature/flagd-core/package.json').version;
  assert.match(version, /^4\./, 'need the v2 evaluator');
  const core = new FlagdCore();
  core.setConfigurations(fs.readFileSync(path.join(__dirname, 'flags.json'), 'utf8'));
  for (const [key, variant] of Object.entries(FRACTIONAL_V2)) {
    assert.equal(core.resolveStringEvaluation('checkout-experiment', 'x', { targetingKey: key }).variant, variant, key);
  }
});

for (const [targetingKey, variant] of Object.entries(FRACTIONAL_V2)) {
  test(`fractional split: ${targetingKey} → ${variant}`, async () => {
    const d = await client.getStringDetails('checkout-experiment', 'fallback', { targetingKey });
    assert.equal(d.variant, variant);
    assert.equal(d.value, FRACTIONAL_VALUES[variant]);
    assert.equal(d.reason, TARGETING_MATCH);
  });
}

// --- static context (-X) through sync_context ---------------------------------------------

test('static context reaches in-process rules via sync_context', async () => {
  // The caller says nothing about the region; the server's -X region=... does.
  // This provider reads it only from SyncFlagsResponse.sync_context (it never
  // calls the deprecated GetMetadata).
  const d = await client.getStringDetails('data-residency', 'fallback', { targetingKey: 'u' });
  assert.equal(d.variant, REGION_VARIANT[STATIC_REGION]);
  assert.equal(d.reason, TARGETING_MATCH);
});

// --- live updates ------------------------------------------------------------------------

function rewriteAnnouncement(defaultVariant, atomic) {
  const doc = JSON.parse(fs.readFileSync(FLAGS_FILE, 'utf8'));
  doc.flags.announcement.defaultVariant = defaultVariant;
  const text = JSON.stringify(doc, null, 2);
  if (atomic) {
    // write a sibling and rename it over the file, as deploy tools do
    fs.writeFileSync(`${FLAGS_FILE}.tmp`, text);
    fs.renameSync(`${FLAGS_FILE}.tmp`, FLAGS_FILE);
  } else {
    // overwrite in place, as an editor does
    fs.writeFileSync(FLAGS_FILE, text);
  }
}

function nextChangeOf(flagKey, timeoutMs) {
  return new Promise((resolve, reject) => {
    const handler = (details) => {
      if (details?.flagsChanged?.includes(flagKey)) {
        clearTimeout(timer);
        client.removeHandler(ProviderEvents.ConfigurationChanged, handler);
        resolve(details);
      }
    };
    const timer = setTimeout(() => {
      client.removeHandler(ProviderEvents.ConfigurationChanged, handler);
      reject(new Error(`no ConfigurationChanged for ${flagKey} within ${timeoutMs} ms`));
    }, timeoutMs);
    client.addHandler(ProviderEvents.ConfigurationChanged, handler);
  });
}

const changes = [
  ['in-place write', 'v2', 'Summer sale is on', false],
  ['atomic rename', 'v1', 'Welcome to the shop', true],
];
for (const [name, variant, value, atomic] of changes) {
  test(`file change (${name}) reaches the process within 1 s`, async () => {
    const started = performance.now();
    const changed = nextChangeOf('announcement', 1000);
    rewriteAnnouncement(variant, atomic);
    const details = await changed;
    const elapsed = performance.now() - started;
    assert.deepEqual(details.flagsChanged, ['announcement']);
    const d = await client.getStringDetails('announcement', 'fallback', {});
    assert.deepEqual([d.value, d.variant], [value, variant]);
    console.log(`# change seen after ${elapsed.toFixed(0)} ms`);
  });
}

test('flags file is back to the original', () => {
  const original = JSON.parse(fs.readFileSync(path.join(__dirname, 'flags.json'), 'utf8'));
  assert.deepEqual(JSON.parse(fs.readFileSync(FLAGS_FILE, 'utf8')), original);
});
