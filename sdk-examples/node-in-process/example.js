// Evaluate feature flags in-process, with the flag definitions synced from Ensign.
//
// The flagd provider in in-process mode opens one long-lived gRPC stream to
// Ensign's sync port (`flagd.sync.v1.FlagSyncService/SyncFlags`, 8015 by
// default), keeps the latest flag definitions in memory and evaluates every flag
// locally with @openfeature/flagd-core: no network call per evaluation. A change
// to the flags on the server arrives as a new snapshot on that stream and raises
// the ConfigurationChanged event.
//
//   node example.js                    # localhost:8015
//   FLAGD_HOST=flags.internal FLAGD_SYNC_PORT=8015 node example.js
//   node example.js --watch            # also print every change until Ctrl-C
//
// Note: this provider computes `fractional` with flagd-core 4.x, i.e. the v2
// bucketing of flagd 0.15/0.16, whatever generation the server is set to.

'use strict';

const { OpenFeature, ProviderEvents } = require('@openfeature/server-sdk');
const { FlagdProvider } = require('@openfeature/flagd-provider');

/** An in-process flagd provider reading from Ensign's sync port. */
function makeProvider({ host, port } = {}) {
  return new FlagdProvider({
    // Only 'rpc' and 'in-process' exist; anything else silently means rpc.
    resolverType: 'in-process',
    host: host ?? process.env.FLAGD_HOST ?? 'localhost',
    port: port ?? Number(process.env.FLAGD_SYNC_PORT ?? 8015),
    // How long setProviderAndWait may wait for the first snapshot.
    deadlineMs: 2000,
  });
}

/** Prints a few flags of each type for one user. */
async function show(client, user) {
  const evaluations = [
    await client.getBooleanDetails('new-checkout', false, user),
    await client.getStringDetails('welcome-message', 'Hello', user),
    await client.getNumberDetails('max-cart-items', 5, user),
    await client.getNumberDetails('discount-rate', 0, user),
    await client.getObjectDetails('theme', {}, user),
    await client.getStringDetails('support-tier', 'email support', user),
    await client.getStringDetails('checkout-experiment', 'one-page', user),
    // Targets the server's static context (`ensign serve -X region=...`),
    // which reaches this process through the sync stream.
    await client.getStringDetails('data-residency', 'nearest', user),
    await client.getBooleanDetails('legacy-checkout', false, user), // DISABLED
  ];
  for (const d of evaluations) {
    console.log(`${d.flagKey.padEnd(20)} ${JSON.stringify(d.value).padEnd(50)} variant=${d.variant} reason=${d.reason}`);
  }
}

async function main() {
  await OpenFeature.setProviderAndWait(makeProvider());
  const client = OpenFeature.getClient();
  const user = { targetingKey: 'user-42', plan: 'enterprise' };
  await show(client, user);

  if (process.argv.includes('--watch')) {
    client.addHandler(ProviderEvents.ConfigurationChanged, async (details) => {
      console.log(`\nflags changed: ${JSON.stringify(details?.flagsChanged ?? [])}`);
      await show(client, user);
    });
    process.once('SIGINT', () => OpenFeature.close());
    return;
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
