// Evaluate feature flags on Ensign over OFREP (the OpenFeature Remote Evaluation Protocol).
//
// Each evaluation is one HTTP call, `POST /ofrep/v1/evaluate/flags/{key}` on
// Ensign's OFREP port (8016 by default), carrying the evaluation context as
// JSON. The server evaluates; nothing is cached here. When Ensign runs with
// `--ofrep-auth-token T`, every request must carry `Authorization: Bearer T`
// (or `X-API-Key: T`).
//
//   node example.js                                   # http://localhost:8016
//   OFREP_ENDPOINT=http://flags.internal:8016 OFREP_TOKEN=s3cret node example.js

'use strict';

const { OpenFeature } = require('@openfeature/server-sdk');
const { OFREPProvider } = require('@openfeature/ofrep-provider');

/** An OFREP provider for Ensign's OFREP port, sending the token if there is one. */
function makeProvider({ endpoint, token } = {}) {
  endpoint = endpoint ?? process.env.OFREP_ENDPOINT ?? 'http://localhost:8016';
  token = token ?? process.env.OFREP_TOKEN;
  return new OFREPProvider({
    baseUrl: endpoint,
    // headersFactory runs before every request, so a rotating token works too.
    headersFactory: async () => (token ? [['Authorization', `Bearer ${token}`]] : []),
  });
}

async function main() {
  await OpenFeature.setProviderAndWait(makeProvider());
  const client = OpenFeature.getClient();
  const user = { targetingKey: 'user-42', plan: 'enterprise' };
  const evaluations = [
    await client.getBooleanDetails('new-checkout', false, user),
    await client.getStringDetails('welcome-message', 'Hello', user),
    await client.getNumberDetails('max-cart-items', 5, user),
    await client.getNumberDetails('discount-rate', 0, user),
    await client.getObjectDetails('theme', {}, user),
    await client.getStringDetails('support-tier', 'email support', user),
    await client.getStringDetails('checkout-experiment', 'one-page', user),
    await client.getStringDetails('no-such-flag', 'code default', user),
  ];
  for (const d of evaluations) {
    const outcome = d.errorCode ? `error=${d.errorCode}: ${d.errorMessage}` : `reason=${d.reason}`;
    console.log(`${d.flagKey.padEnd(20)} ${JSON.stringify(d.value).padEnd(50)} variant=${d.variant} ${outcome}`);
  }
  await OpenFeature.close();
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}

module.exports = { makeProvider };
