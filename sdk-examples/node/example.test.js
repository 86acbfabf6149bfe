// End-to-end test of example.js against a running Ensign (or flagd).
//
// Needs FLAGD_HOST / FLAGD_PORT (the server) and FLAGS_FILE: the file that server
// watches, which the last test rewrites. e2e.sh sets all three up.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { promisify } = require('node:util');
const { OpenFeature, ProviderEvents } = require('@openfeature/server-sdk');

const { connect } = require('./example');

const FLAGS = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'flags.json'), 'utf8'));
// Computed with the reference evaluator (PyPI openfeature-flagd-core 2.0.0, fractional v3),
// which the Python e2e test re-runs to keep this table honest.
const EXPECTED_FRACTIONAL = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', 'fractional-expected.json'), 'utf8'),
);

let client;
before(async () => {
  client = await connect();
});
after(async () => {
  await OpenFeature.close();
});

test('the example program runs', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [path.join(__dirname, 'example.js')], {
    timeout: 30000,
  });
  assert.match(stdout, /^greeting {13}"Hey there" {2}\(variant=casual, reason=STATIC\)$/m);
  assert.match(stdout, /^support-tier {9}"24\/7 phone support" {2}\(variant=priority, reason=TARGETING_MATCH\)$/m);
  assert.match(stdout, /^no-such-flag {9}false {2}\(variant=undefined, reason=ERROR, error=FLAG_NOT_FOUND\)$/m);
});

const staticFlags = [
  { type: 'boolean', key: 'show-welcome-banner', get: 'getBooleanDetails', fallback: false, value: true, variant: 'on' },
  { type: 'string', key: 'greeting', get: 'getStringDetails', fallback: 'Hello', value: 'Hey there', variant: 'casual' },
  { type: 'integer', key: 'max-cart-items', get: 'getNumberDetails', fallback: 20, value: 50, variant: 'large' },
  { type: 'float', key: 'discount-rate', get: 'getNumberDetails', fallback: 0, value: 0.15, variant: 'standard' },
  {
    type: 'object',
    key: 'theme',
    get: 'getObjectDetails',
    fallback: {},
    value: { background: '#111111', foreground: '#eeeeee', rounded: true },
    variant: 'dark',
  },
];

for (const flag of staticFlags) {
  test(`static ${flag.type} flag ${flag.key}`, async () => {
    const details = await client[flag.get](flag.key, flag.fallback);
    assert.equal(details.errorCode, undefined, details.errorMessage);
    assert.deepEqual(details.value, flag.value);
    if (flag.type === 'integer') assert.ok(Number.isInteger(details.value));
    if (flag.type === 'object') assert.equal(Object.getPrototypeOf(details.value), Object.prototype);
    else assert.equal(typeof details.value, flag.type === 'integer' || flag.type === 'float' ? 'number' : flag.type);
    assert.equal(details.variant, flag.variant);
    assert.equal(details.reason, 'STATIC');
  });
}

test('a missing flag returns the code default with FLAG_NOT_FOUND', async () => {
  const details = await client.getStringDetails('no-such-flag', 'code default');
  assert.equal(details.value, 'code default');
  assert.equal(details.errorCode, 'FLAG_NOT_FOUND');
  assert.equal(details.reason, 'ERROR');
});

test('a disabled flag returns the code default with reason DISABLED', async () => {
  // flags.json has defaultVariant "on" (true): a disabled flag must not serve it.
  const details = await client.getBooleanDetails('legacy-checkout', false);
  assert.equal(details.value, false);
  assert.equal(details.reason, 'DISABLED');
  assert.ok(!details.variant, `variant should be absent, got ${JSON.stringify(details.variant)}`);
  assert.equal(details.errorCode, undefined);
});

test('targeting: a matching context', async () => {
  const details = await client.getStringDetails('support-tier', 'none', { targetingKey: 'user-1', plan: 'enterprise' });
  assert.deepEqual(
    [details.value, details.variant, details.reason],
    ['24/7 phone support', 'priority', 'TARGETING_MATCH'],
  );
});

test('targeting: a non-matching context gets the default variant', async () => {
  // The rule returns null for other plans, so the flag's defaultVariant is served.
  const details = await client.getStringDetails('support-tier', 'none', { targetingKey: 'user-2', plan: 'free' });
  assert.deepEqual([details.value, details.variant, details.reason], ['email support', 'standard', 'DEFAULT']);
});

for (const [targetingKey, variant] of Object.entries(EXPECTED_FRACTIONAL.variants)) {
  test(`fractional: ${targetingKey} gets ${variant}`, async () => {
    const flagKey = EXPECTED_FRACTIONAL.flag;
    const details = await client.getStringDetails(flagKey, 'none', { targetingKey });
    assert.equal(details.variant, variant);
    assert.equal(details.value, FLAGS.flags[flagKey].variants[variant]);
    assert.equal(details.reason, 'TARGETING_MATCH');
  });
}

test('a configuration change arrives within 1 s of rewriting the flag file', async (t) => {
  const flagsFile = process.env.FLAGS_FILE;
  assert.ok(flagsFile, 'FLAGS_FILE must name the file the server watches');

  const beforeChange = await client.getStringDetails('announcement', '');
  assert.deepEqual([beforeChange.value, beforeChange.variant], ['Welcome to the shop', 'v1']);

  let onChange;
  const changed = new Promise((resolve) => {
    onChange = (event) => {
      if ((event?.flagsChanged || []).includes('announcement')) {
        resolve({ at: performance.now(), flagsChanged: event.flagsChanged });
      }
    };
  });
  OpenFeature.addHandler(ProviderEvents.ConfigurationChanged, onChange);
  let timer;
  let event;
  try {
    // Note: JSON.stringify writes discount-rate's 0.0 as 0, the same JSON number,
    // so that flag has not changed and must not be reported.
    const config = JSON.parse(fs.readFileSync(flagsFile, 'utf8'));
    config.flags.announcement.defaultVariant = 'v2';
    const writtenAt = performance.now();
    fs.writeFileSync(flagsFile, JSON.stringify(config, null, 2));

    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve(null), 5000);
    });
    event = await Promise.race([changed, timeout]);
    assert.ok(event, 'no ConfigurationChanged event within 5 s');
    const delayMs = event.at - writtenAt;
    t.diagnostic(`ConfigurationChanged arrived ${delayMs.toFixed(1)} ms after the write`);
    assert.ok(delayMs < 1000, `event arrived ${delayMs.toFixed(0)} ms after the write`);
  } finally {
    clearTimeout(timer);
    OpenFeature.removeHandler(ProviderEvents.ConfigurationChanged, onChange);
  }

  const afterChange = await client.getStringDetails('announcement', '');
  assert.deepEqual(
    [afterChange.value, afterChange.variant, afterChange.reason],
    ['Summer sale is on', 'v2', 'STATIC'],
  );
  // Only the rewritten flag changed, so only it is reported.
  assert.deepEqual(event.flagsChanged, ['announcement']);
});
