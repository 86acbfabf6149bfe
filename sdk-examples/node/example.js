// Evaluate feature flags served by Ensign (or flagd) with the OpenFeature Node server SDK.
//
// The flagd provider runs in RPC mode: every evaluation is a gRPC call to
// flagd.evaluation.v2.Service, and an EventStream tells the provider when flags change.
//
//   FLAGD_HOST=localhost FLAGD_PORT=8013 node example.js           # print once
//   FLAGD_HOST=localhost FLAGD_PORT=8013 node example.js --watch   # and follow changes
'use strict';

const { OpenFeature, ProviderEvents } = require('@openfeature/server-sdk');
const { FlagdProvider } = require('@openfeature/flagd-provider');

/** Register the flagd provider and wait until it is connected. */
async function connect() {
  const host = process.env.FLAGD_HOST || 'localhost';
  const port = Number(process.env.FLAGD_PORT || 8013);
  await OpenFeature.setProviderAndWait(new FlagdProvider({ host, port, resolverType: 'rpc' }));
  return OpenFeature.getClient('sdk-example');
}

function describe(details) {
  let line = `${details.flagKey.padEnd(20)} ${JSON.stringify(details.value)}  (variant=${details.variant}, reason=${details.reason}`;
  if (details.errorCode) line += `, error=${details.errorCode}`;
  return line + ')';
}

async function showFlags(client) {
  // One flag of each type. The second argument is the code default, used when the
  // flag cannot be evaluated (missing, disabled, wrong type, server down).
  // JavaScript has one number type: integers and floats both use getNumberDetails.
  console.log(describe(await client.getBooleanDetails('show-welcome-banner', false)));
  console.log(describe(await client.getStringDetails('greeting', 'Hello')));
  console.log(describe(await client.getNumberDetails('max-cart-items', 20)));
  console.log(describe(await client.getNumberDetails('discount-rate', 0)));
  console.log(describe(await client.getObjectDetails('theme', { background: '#ffffff' })));
  console.log(describe(await client.getStringDetails('announcement', '')));

  // A disabled flag and a flag that does not exist both give the code default.
  console.log(describe(await client.getBooleanDetails('legacy-checkout', false)));
  console.log(describe(await client.getBooleanDetails('no-such-flag', false)));

  // Targeting: the evaluation context carries the user's attributes.
  const enterprise = { targetingKey: 'user-1', plan: 'enterprise' };
  const free = { targetingKey: 'user-2', plan: 'free' };
  console.log(describe(await client.getStringDetails('support-tier', 'email support', enterprise)));
  console.log(describe(await client.getStringDetails('support-tier', 'email support', free)));

  // Fractional rollout: each targeting key lands in a stable bucket.
  for (const user of ['alice', 'bob', 'carol']) {
    const details = await client.getStringDetails('checkout-experiment', 'one-page', { targetingKey: user });
    console.log(`checkout-experiment for ${user}: ${details.variant} -> ${JSON.stringify(details.value)}`);
  }
}

async function main() {
  const client = await connect();
  await showFlags(client);
  if (process.argv.includes('--watch')) {
    OpenFeature.addHandler(ProviderEvents.ConfigurationChanged, async (event) => {
      console.log(`flags changed: ${(event.flagsChanged || []).join(', ')}`);
      await showFlags(client);
    });
    console.log('watching for flag changes, Ctrl-C to stop');
    process.once('SIGINT', () => OpenFeature.close());
  } else {
    await OpenFeature.close();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}

module.exports = { connect, showFlags };
