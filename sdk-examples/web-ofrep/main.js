// Feature flags in the browser from Ensign's OFREP port.
//
// The OFREP web provider evaluates every flag for this user in one request
// (`POST /ofrep/v1/evaluate/flags`) and answers the SDK's calls from that
// result, synchronously. It keeps the answer and its ETag in localStorage, so a
// returning visitor sees flags at once and the provider only revalidates them
// (`If-None-Match` → 304 when nothing changed). Ensign also advertises an SSE
// stream (`GET /ofrep/v1/events`); when the flags change on the server the
// provider re-fetches and ConfigurationChanged fires, without a page reload.
//
// Page parameters: ?ofrep=http://host:8016&targetingKey=user-42&plan=enterprise
// Ensign must allow this page's origin: `ensign serve --cors-origin http://this-page-origin`.

import { OpenFeature, ProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

// The flags this page shows: key, type, code default.
const FLAGS = [
  ['new-checkout', 'boolean', false],
  ['welcome-message', 'string', 'Hello'],
  ['max-cart-items', 'number', 5],
  ['discount-rate', 'number', 0],
  ['theme', 'object', {}],
  ['support-tier', 'string', 'email support'],
  ['checkout-experiment', 'string', 'one-page'],
  ['data-residency', 'string', 'nearest'],
  ['legacy-checkout', 'boolean', false],
  ['beta-search', 'boolean', false],
  ['announcement', 'string', '(none)'],
  ['no-such-flag', 'string', 'code default'],
];

const params = new URLSearchParams(location.search);
const baseUrl = params.get('ofrep') ?? `${location.protocol}//${location.hostname}:8016`;
const user = { targetingKey: params.get('targetingKey') ?? 'user-42' };
if (params.has('plan')) user.plan = params.get('plan');

const client = OpenFeature.getClient();
const statusEl = document.getElementById('status');

function setStatus(status, text) {
  statusEl.dataset.status = status;
  statusEl.textContent = text;
}

function details(key, type, fallback) {
  switch (type) {
    case 'boolean': return client.getBooleanDetails(key, fallback);
    case 'number': return client.getNumberDetails(key, fallback);
    case 'object': return client.getObjectDetails(key, fallback);
    default: return client.getStringDetails(key, fallback);
  }
}

function render() {
  const rows = FLAGS.map(([key, type, fallback]) => {
    const d = details(key, type, fallback);
    const tr = document.createElement('tr');
    tr.dataset.flag = key;
    const cells = { key, value: JSON.stringify(d.value), variant: d.variant ?? '', reason: d.reason ?? '', error: d.errorCode ?? '' };
    for (const [field, text] of Object.entries(cells)) {
      const td = document.createElement('td');
      td.dataset.field = field;
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  });
  document.getElementById('flags').replaceChildren(...rows);
}

client.addHandler(ProviderEvents.ConfigurationChanged, (event) => {
  const li = document.createElement('li');
  li.textContent = `${new Date().toISOString()} changed: ${(event?.flagsChanged ?? []).join(', ')}`;
  li.dataset.flags = JSON.stringify(event?.flagsChanged ?? []);
  document.getElementById('changes').append(li);
  render();
});
client.addHandler(ProviderEvents.Ready, () => setStatus('ready', 'ready'));
client.addHandler(ProviderEvents.Error, (event) => setStatus('error', `error: ${event?.message ?? ''}`));
client.addHandler(ProviderEvents.Stale, (event) => setStatus('stale', `stale: ${event?.message ?? ''}`));

document.getElementById('user').textContent = JSON.stringify(user);
try {
  await OpenFeature.setContext(user);
  await OpenFeature.setProviderAndWait(new OFREPWebProvider({ baseUrl }));
} catch (err) {
  setStatus('error', `error: ${err?.message ?? err}`);
}
render();
