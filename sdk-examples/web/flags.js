// Feature flags in the browser with the OpenFeature web SDK and the flagd web
// provider, served by Ensign (or flagd).
//
// The provider speaks the Connect protocol to flagd.evaluation.v1: one
// ResolveAll call fetches every flag for the current evaluation context, and an
// EventStream tells it when flags change, so it fetches them again. Reading a
// flag is then synchronous and local.

import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { FlagdWebProvider } from '@openfeature/flagd-web-provider';

// The flags this page reads, each with the value the code falls back to.
export const FLAGS = [
  { key: 'show-welcome-banner', type: 'boolean', codeDefault: false },
  { key: 'welcome-message', type: 'string', codeDefault: 'Hi!' },
  { key: 'max-cart-items', type: 'number', codeDefault: 20 },
  { key: 'discount-rate', type: 'number', codeDefault: 0 },
  { key: 'theme', type: 'object', codeDefault: { background: '#ffffff', fontSize: 16, rounded: false } },
  { key: 'holiday-banner-text', type: 'string', codeDefault: 'no banner' },
  { key: 'premium-support', type: 'boolean', codeDefault: false },
  { key: 'checkout-flow', type: 'string', codeDefault: 'classic' },
  { key: 'no-such-flag', type: 'boolean', codeDefault: false },
];

/**
 * Sets the evaluation context, connects to the flag server and waits until the
 * flags are loaded. `onChange` is called after every configuration change.
 */
export async function connect({ host, port, tls = false, context, onChange }) {
  // The provider sends this context with ResolveAll; set it first.
  await OpenFeature.setContext(context);
  if (onChange) {
    OpenFeature.addHandler(ProviderEvents.ConfigurationChanged, onChange);
  }
  await OpenFeature.setProviderAndWait(new FlagdWebProvider({ host, port, tls, maxRetries: 3 }));
  return OpenFeature.getClient();
}

/** Changes who the flags are evaluated for; resolves once they are fetched again. */
export async function setUser(context) {
  await OpenFeature.setContext(context);
}

const DETAILS = {
  boolean: 'getBooleanDetails',
  string: 'getStringDetails',
  number: 'getNumberDetails',
  object: 'getObjectDetails',
};

/**
 * Evaluates one flag: `{ value, variant, reason, errorCode }`, where `variant`
 * is left out when the code default is used and `errorCode` when there is none.
 */
export function evaluate(client, { key, type, codeDefault }) {
  const details = client[DETAILS[type]](key, codeDefault);
  const result = { value: details.value, reason: details.reason };
  if (details.variant) {
    result.variant = details.variant;
  } else if (details.reason === 'DISABLED' || details.reason === 'DEFAULT') {
    // flagd's evaluation.v1 API answers a disabled flag with reason DISABLED,
    // an empty variant and a zero value ("", false, 0): that means "use your
    // code default". The web SDK passes it on as it is, so the page decides.
    result.value = codeDefault;
  }
  if (details.errorCode) result.errorCode = details.errorCode;
  return result;
}

/** Evaluates every flag of FLAGS: `{ [key]: { value, variant, reason, errorCode } }`. */
export function evaluateAll(client) {
  return Object.fromEntries(FLAGS.map((flag) => [flag.key, evaluate(client, flag)]));
}
