// End-to-end test: the Node OFREP server provider against a live Ensign.
//
// Run by e2e.sh, which starts `ensign serve --uri file:$FLAGS_FILE --ofrep-auth-token $OFREP_TOKEN
// -X region=eu-west` and sets OFREP_ENDPOINT / OFREP_TOKEN. Every evaluation here
// is one `POST /ofrep/v1/evaluate/flags/{key}`: Ensign evaluates, the provider
// only maps the JSON answer onto OpenFeature's details.

'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { OpenFeature, StandardResolutionReasons, ErrorCode } = require('@openfeature/server-sdk');
const { OFREPProvider } = require('@openfeature/ofrep-provider');
const { makeProvider } = require('./example');

const ENDPOINT = process.env.OFREP_ENDPOINT;
const TOKEN = process.env.OFREP_TOKEN;
const { STATIC, DEFAULT, DISABLED, ERROR, TARGETING_MATCH } = StandardResolutionReasons;
const ANONYMOUS = { targetingKey: 'anonymous' };

let client;

before(async () => {
  assert.ok(ENDPOINT && TOKEN, 'OFREP_ENDPOINT and OFREP_TOKEN must be set (run e2e.sh)');
  await OpenFeature.setProviderAndWait('ofrep', makeProvider({ endpoint: ENDPOINT, token: TOKEN }));
  client = OpenFeature.getClient('ofrep');
});

after(async () => {
  await OpenFeature.close();
});

/** The same request the provider sends, to check the wire format itself. */
async function rawEvaluate(key, context, headers = { Authorization: `Bearer ${TOKEN}` }) {
  const response = await fetch(`${ENDPOINT}/ofrep/v1/evaluate/flags/${key}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify({ context }),
  });
  return { status: response.status, body: await response.json() };
}

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
    const d = await client[method](key, fallback, ANONYMOUS);
    assert.equal(d.errorCode, undefined, d.errorMessage);
    assert.deepEqual(d.value, value);
    assert.equal(d.variant, variant);
    assert.equal(d.reason, STATIC);
  });
}

test('integer flag stays an integer', async () => {
  const d = await client.getNumberDetails('max-cart-items', 5, ANONYMOUS);
  assert.ok(Number.isInteger(d.value));
});

test('wrong type is a TYPE_MISMATCH with the code default', async () => {
  const d = await client.getStringDetails('max-cart-items', 'fallback', ANONYMOUS);
  assert.equal(d.value, 'fallback');
  assert.equal(d.errorCode, ErrorCode.TYPE_MISMATCH);
});

test('missing flag gives the code default with FLAG_NOT_FOUND', async () => {
  const d = await client.getStringDetails('no-such-flag', 'code default', ANONYMOUS);
  assert.equal(d.value, 'code default');
  assert.equal(d.reason, ERROR);
  assert.equal(d.errorCode, ErrorCode.FLAG_NOT_FOUND);
});

test('missing flag on the wire: 404 FLAG_NOT_FOUND', async () => {
  const { status, body } = await rawEvaluate('no-such-flag', ANONYMOUS);
  assert.equal(status, 404);
  assert.equal(body.key, 'no-such-flag');
  assert.equal(body.errorCode, 'FLAG_NOT_FOUND');
});

test('disabled flag on the wire: reason DISABLED, no value', async () => {
  // OFREP: no `value` means "use the code default"; the flag's defaultVariant is "on".
  const { status, body } = await rawEvaluate('legacy-checkout', ANONYMOUS);
  assert.equal(status, 200);
  assert.equal(body.key, 'legacy-checkout');
  assert.equal(body.reason, 'DISABLED');
  assert.equal('value' in body, false);
  assert.equal('variant' in body, false);
});

test('disabled flag gives the code default', async () => {
  assert.equal((await client.getBooleanDetails('legacy-checkout', false, ANONYMOUS)).value, false);
  assert.equal((await client.getBooleanDetails('legacy-checkout', true, ANONYMOUS)).value, true);
});

test(
  'disabled flag has reason DISABLED through the provider',
  {
    todo:
      '@openfeature/ofrep-provider 0.1.3 pins @openfeature/ofrep-core 0.1.4, which treats a 200 ' +
      'answer without `value` as malformed ("does not match the expected format") and reports ' +
      'ERROR/GENERAL. Current OFREP (and flagd) omit `value` for DISABLED. Client limitation; ' +
      'the wire answer above is correct.',
  },
  async () => {
    const d = await client.getBooleanDetails('legacy-checkout', false, ANONYMOUS);
    assert.equal(d.reason, DISABLED);
    assert.equal(d.errorCode, undefined);
  },
);

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

test("server's static context (-X region=eu-west) applies", async () => {
  const d = await client.getStringDetails('data-residency', 'fallback', ANONYMOUS);
  assert.deepEqual([d.value, d.variant, d.reason], ['Frankfurt', 'eu', TARGETING_MATCH]);
});

// --- auth token ------------------------------------------------------------------------

/** A provider with the given headers that records the HTTP status of every answer. */
function recordingProvider(headers) {
  const statuses = [];
  const provider = new OFREPProvider({
    baseUrl: ENDPOINT,
    headers,
    fetchImplementation: async (request) => {
      const response = await fetch(request);
      statuses.push(response.status);
      return response;
    },
  });
  return { provider, statuses };
}

const tokenCases = [
  ['no token', [], 401],
  ['a wrong bearer token', [['Authorization', 'Bearer wrong']], 401],
  ['the bearer token', [['Authorization', `Bearer ${TOKEN}`]], 200],
  ['the token as X-API-Key', [['X-API-Key', TOKEN]], 200],
];
for (const [name, headers, status] of tokenCases) {
  test(`with ${name}: HTTP ${status}`, async () => {
    const domain = `token-${name}`;
    const { provider, statuses } = recordingProvider(headers);
    await OpenFeature.setProviderAndWait(domain, provider);
    const d = await OpenFeature.getClient(domain).getBooleanDetails('new-checkout', false, ANONYMOUS);
    assert.deepEqual(statuses, [status]);
    if (status === 200) {
      assert.deepEqual([d.value, d.reason, d.errorCode], [true, STATIC, undefined]);
    } else {
      assert.deepEqual([d.value, d.reason, d.errorCode], [false, ERROR, ErrorCode.GENERAL]);
    }
  });
}
