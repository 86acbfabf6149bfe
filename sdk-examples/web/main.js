// The page: shows every flag for the user in the form, and updates itself when
// the flags change on the server. The server is given in the page's address:
// index.html?host=localhost&port=8013&tls=false (the defaults, host being the
// page's own).

import { connect, evaluateAll, setUser } from './flags.js';

const params = new URLSearchParams(location.search);
const host = params.get('host') || location.hostname;
const port = Number(params.get('port') || 8013);
const tls = params.get('tls') === 'true';
const form = document.getElementById('user');
for (const name of ['targetingKey', 'email']) {
  if (params.has(name)) form.elements[name].value = params.get(name);
}

const status = document.getElementById('status');
const changes = [];
let client;

function currentUser() {
  return { targetingKey: form.elements.targetingKey.value, email: form.elements.email.value };
}

function render() {
  const rows = Object.entries(evaluateAll(client)).map(([key, r]) => {
    const tr = document.createElement('tr');
    tr.dataset.flag = key;
    for (const cell of [key, JSON.stringify(r.value), r.variant ?? '-', r.reason, r.errorCode ?? '']) {
      const td = document.createElement('td');
      td.textContent = cell;
      tr.append(td);
    }
    return tr;
  });
  document.getElementById('flags').replaceChildren(...rows);
}

function onChange(event) {
  changes.push({ at: Date.now(), flagsChanged: event?.flagsChanged ?? [] });
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()}: flags changed`;
  document.getElementById('changes').append(li);
  render();
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  await setUser(currentUser());
  render();
});

// For the end-to-end test (test/e2e.test.js).
window.example = {
  changes,
  snapshot: () => evaluateAll(client),
  setUser: async (context) => {
    form.elements.targetingKey.value = context.targetingKey;
    form.elements.email.value = context.email ?? '';
    await setUser(currentUser());
    render();
    return evaluateAll(client);
  },
  ready: connect({ host, port, tls, context: currentUser(), onChange }).then(
    (c) => {
      client = c;
      status.textContent = `connected to ${host}:${port}`;
      render();
    },
    (error) => {
      status.textContent = `cannot reach ${host}:${port}: ${error}`;
      status.className = 'error';
      throw error;
    },
  ),
};
