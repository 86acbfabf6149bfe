// Administration: environments, flag sets, API tokens (a new token's secret
// is shown once) and user accounts.

import { h, button, badge, pageHeader, notice, timeAgo } from '../components/dom.js';
import { field, fieldGroup, showProblems, busy } from '../components/form.js';
import { openDialog } from '../components/dialog.js';

const ROLES = [['viewer', 'Viewer: reads everything but tokens'], ['editor', 'Editor: also changes flags, segments, flag sets'], ['admin', 'Admin: also environments, tokens and users']];

const SECTIONS = {
  environments: renderEnvironments,
  'flag-sets': renderFlagSets,
  tokens: renderTokens,
  users: renderUsers,
};

export async function render(root, params, ctx) {
  await SECTIONS[params.section](root, ctx);
}

/** A table with column headings and rows (or an empty message). */
function table(headings, rows, empty) {
  return h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, headings.map((text) => h('th', { scope: 'col' }, text)))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: headings.length, class: 'empty' }, empty)))));
}

/** A form in a dialog: `fields` then Cancel / `submitLabel`; `save(form)`
 * runs the request; a failure keeps the input and shows the problems. */
function formDialog(ctx, { title, fields, submitLabel, save, wide }) {
  const form = h('form', { novalidate: true }, fields,
    h('div', { class: 'form-actions' }, button('Cancel', { onclick: () => handle.close() }),
      h('button', { type: 'submit', class: 'btn btn-primary' }, submitLabel)));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    await busy(form, async () => {
      try {
        await save(form, handle);
      } catch (error) {
        if (error.status === 412) error.message = 'Someone else changed this meanwhile; nothing was saved. Close and reopen it to see their version.';
        showProblems(form, error);
      }
    });
  });
  const handle = openDialog({ title, content: form, wide });
  form.querySelector('input:not([readonly]), select, textarea')?.focus();
  return handle;
}

/** Reloads the current section after a change. */
const reload = (ctx) => ctx.navigate(window.location.hash);

/** Checkboxes for environments (none checked: every environment). */
function environmentChecks(environments, pointer) {
  const group = fieldGroup({ legend: 'Environments it may change', pointer, hint: 'None checked: every environment.' },
    h('div', { class: 'checks' }, environments.map((env) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', name: 'environments', value: env.key }), env.name || env.key))));
  group.selected = () => {
    const keys = [...group.querySelectorAll('input:checked')].map((input) => input.value);
    return keys.length ? keys : null;
  };
  return group;
}

// Environments.

async function renderEnvironments(root, ctx) {
  const environments = await ctx.api.get('/environments');
  const admin = ctx.session.role === 'admin';
  root.append(pageHeader('Environments', 'Where flags are served; each `ensign serve --environment` serves one.',
    admin ? button('New environment', { kind: 'primary', icon: 'plus', onclick: () => environmentDialog(ctx) }) : null));
  root.append(h('section', { class: 'card', 'aria-label': 'Environments' }, table(
    ['Key', 'Name', 'Version', ''],
    environments.map((env) => h('tr', {},
      h('td', {}, h('span', { class: 'key' }, env.key)),
      h('td', {}, env.name),
      h('td', { class: 'muted' }, env.version),
      h('td', { class: 'num' }, admin ? button('Rename', { class: 'btn btn-small', 'aria-label': `Rename ${env.key}`, onclick: () => environmentDialog(ctx, env) }) : null))),
    'No environments.')));
}

function environmentDialog(ctx, existing) {
  const key = field({ label: 'Key', name: 'key', required: true, value: existing?.key, readonly: !!existing, autocomplete: 'off',
    hint: existing ? null : 'Lowercase letters, digits, - and _. Every flag starts off in it.' });
  const name = field({ label: 'Name', name: 'name', value: existing?.name, autocomplete: 'off', required: !!existing });
  formDialog(ctx, {
    title: existing ? `Rename ${existing.key}` : 'New environment',
    fields: [key, name],
    submitLabel: existing ? 'Save' : 'Create environment',
    save: async (form, handle) => {
      if (existing) {
        await ctx.api.patch(ctx.api.path`/environments/${existing.key}`, { name: name.control.value.trim() }, { etag: `"${existing.version}"` });
      } else {
        await ctx.api.post('/environments', { key: key.control.value.trim(), name: name.control.value.trim() || null });
      }
      handle.close();
      ctx.toast(existing ? 'Environment renamed.' : 'Environment created.');
      reload(ctx);
    },
  });
}

// Flag sets.

async function renderFlagSets(root, ctx) {
  const flagSets = await ctx.api.get('/flag-sets');
  const editor = ctx.session.role !== 'viewer' && !ctx.session.environments;
  root.append(pageHeader('Flag sets', 'Groups of flags served together; SDKs select one with flagSetId.',
    editor ? button('New flag set', { kind: 'primary', icon: 'plus', onclick: () => flagSetDialog(ctx) }) : null));
  root.append(h('section', { class: 'card', 'aria-label': 'Flag sets' }, table(
    ['Key', 'Name', 'Metadata', ''],
    flagSets.map((set) => h('tr', {},
      h('td', {}, h('a', { class: 'key', href: `#/flags?flagSet=${encodeURIComponent(set.key)}` }, set.key)),
      h('td', {}, set.name),
      h('td', {}, Object.keys(set.metadata).length
        ? h('div', { class: 'tags' }, Object.entries(set.metadata).map(([k, v]) => badge(`${k}: ${v}`)))
        : h('span', { class: 'muted' }, '—')),
      h('td', { class: 'num' }, editor ? button('Edit', { class: 'btn btn-small', 'aria-label': `Edit ${set.key}`, onclick: () => flagSetDialog(ctx, set) }) : null))),
    'No flag sets yet. Flags and segments belong to one; create it first.')));
}

function flagSetDialog(ctx, existing) {
  const key = field({ label: 'Key', name: 'key', required: true, value: existing?.key, readonly: !!existing, autocomplete: 'off',
    hint: existing ? null : 'The flagSetId SDKs select: letters, digits, -, _ and .' });
  const name = field({ label: 'Name', name: 'name', value: existing?.name, autocomplete: 'off' });
  const metadata = field({ label: 'Metadata (JSON object)', name: 'metadata', control: 'textarea', rows: 4,
    value: JSON.stringify(existing?.metadata ?? {}, null, 2), hint: 'Served with every flag of the set: strings, numbers, booleans.' });
  formDialog(ctx, {
    title: existing ? `Edit ${existing.key}` : 'New flag set',
    fields: [key, name, metadata],
    submitLabel: existing ? 'Save' : 'Create flag set',
    save: async (form, handle) => {
      let parsed;
      try {
        parsed = JSON.parse(metadata.control.value || '{}');
      } catch (error) {
        throw { message: 'Fix the highlighted field.', problems: [{ path: '/metadata', message: `not JSON: ${error.message}` }] };
      }
      const body = { name: name.control.value.trim() || (existing ? existing.key : null), metadata: parsed };
      if (existing) await ctx.api.put(ctx.api.path`/flag-sets/${existing.key}`, body, { etag: `"${existing.version}"` });
      else await ctx.api.post('/flag-sets', { key: key.control.value.trim(), ...body });
      handle.close();
      ctx.toast(existing ? 'Flag set saved.' : 'Flag set created.');
      reload(ctx);
    },
  });
}

// Tokens.

async function renderTokens(root, ctx) {
  if (ctx.session.role !== 'admin') {
    root.append(pageHeader('API tokens'), notice('Only admins manage tokens.'));
    return;
  }
  const [tokens, environments] = await Promise.all([ctx.api.get('/tokens'), ctx.api.get('/environments')]);
  root.append(pageHeader('API tokens', 'For CI, scripts and the ensign CLI: Authorization: Bearer <secret>.',
    button('New token', { kind: 'primary', icon: 'plus', onclick: () => tokenDialog(ctx, environments) })));
  const active = tokens.filter((t) => t.revokedAt == null);
  const revoked = tokens.filter((t) => t.revokedAt != null);
  root.append(h('section', { class: 'card', 'aria-label': 'Tokens' }, table(
    ['Name', 'Role', 'Environments', 'Created', 'Status', ''],
    [...active, ...revoked].map((token) => h('tr', {},
      h('td', {}, h('span', { class: 'key' }, token.name)),
      h('td', {}, badge(token.role, token.role === 'admin' ? 'accent' : '')),
      h('td', {}, token.environments ? token.environments.join(', ') : h('span', { class: 'muted' }, 'all')),
      h('td', {}, timeAgo(token.createdAt)),
      h('td', {}, token.revokedAt == null ? badge('Active', 'ok') : h('span', {}, badge('Revoked', 'danger'), ' ', timeAgo(token.revokedAt))),
      h('td', { class: 'num' }, token.revokedAt == null ? button('Revoke', {
        class: 'btn btn-small', 'aria-label': `Revoke ${token.name}`,
        onclick: async () => {
          const sure = await ctx.confirm({ title: `Revoke token ${token.name}?`, danger: true, confirmLabel: 'Revoke',
            message: 'Every request with this token is refused from now on. This cannot be undone.' });
          if (!sure) return;
          try {
            await ctx.api.delete(ctx.api.path`/tokens/${token.name}`);
            ctx.toast(`Token ${token.name} revoked.`);
            reload(ctx);
          } catch (error) {
            ctx.toast(error.message, 'error');
          }
        },
      }) : null))),
    'No tokens yet.')));
}

function tokenDialog(ctx, environments) {
  const name = field({ label: 'Name', name: 'name', required: true, autocomplete: 'off', hint: 'Its writes are audited as token:<name>, e.g. ci-deploy.' });
  const role = field({ label: 'Role', name: 'role', control: 'select', value: 'editor', options: ROLES });
  const scope = environmentChecks(environments, '/environments');
  formDialog(ctx, {
    title: 'New API token',
    fields: [name, role, scope],
    submitLabel: 'Create token',
    save: async (form, handle) => {
      const created = await ctx.api.post('/tokens', { name: name.control.value.trim(), role: role.control.value, environments: scope.selected() });
      handle.close();
      showSecret(ctx, created);
    },
  });
}

/** Shows a new token's secret once, with a copy button. */
function showSecret(ctx, created) {
  const secret = h('code', { id: 'token-secret' }, created.secret);
  const copy = button('Copy', { icon: 'copy', onclick: async () => {
    try {
      await navigator.clipboard.writeText(created.secret);
      ctx.toast('Secret copied to the clipboard.');
    } catch {
      const range = document.createRange();
      range.selectNodeContents(secret);
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      ctx.toast('Select-all done; press Ctrl+C to copy.', 'info');
    }
  } });
  const done = button('Done', { kind: 'primary', onclick: () => handle.close() });
  const handle = openDialog({
    title: `Token ${created.token.name} created`,
    content: [
      notice('Copy the secret now: it is shown only this once. Only its hash is kept.', 'warn'),
      h('div', { class: 'secret' }, secret, copy),
      h('div', { class: 'dialog-actions' }, done),
    ],
    onClose: () => reload(ctx),
  });
  copy.focus();
}

// Users.

async function renderUsers(root, ctx) {
  if (ctx.session.role !== 'admin') {
    root.append(pageHeader('Users'), notice('Only admins manage users.'));
    return;
  }
  let users;
  try {
    users = await ctx.api.get('/users');
  } catch (error) {
    if (error.status !== 404) throw error;
    root.append(pageHeader('Users'), notice('This server has no user accounts; sign in with API tokens.'));
    return;
  }
  const environments = await ctx.api.get('/environments');
  root.append(pageHeader('Users', 'People who sign in with a name and password.',
    button('New user', { kind: 'primary', icon: 'plus', onclick: () => userDialog(ctx, environments) })));
  root.append(h('section', { class: 'card', 'aria-label': 'Users' }, table(
    ['Name', 'Role', 'Environments', 'Created', ''],
    users.map((user) => h('tr', {},
      h('td', {}, h('span', { class: 'key' }, user.name)),
      h('td', {}, badge(user.role, user.role === 'admin' ? 'accent' : '')),
      h('td', {}, user.environments ? user.environments.join(', ') : h('span', { class: 'muted' }, 'all')),
      h('td', {}, user.createdAt != null ? timeAgo(user.createdAt) : ''),
      h('td', { class: 'num' }, `user:${user.name}` === ctx.session.actor ? h('span', { class: 'muted' }, 'you') : button('Delete', {
        class: 'btn btn-small', 'aria-label': `Delete ${user.name}`,
        onclick: async () => {
          const sure = await ctx.confirm({ title: `Delete user ${user.name}?`, danger: true, confirmLabel: 'Delete',
            message: 'Their sessions end and they can no longer sign in.' });
          if (!sure) return;
          try {
            await ctx.api.delete(ctx.api.path`/users/${user.name}`);
            ctx.toast(`User ${user.name} deleted.`);
            reload(ctx);
          } catch (error) {
            ctx.toast(error.message, 'error');
          }
        },
      })))),
    'No users yet.')));
}

function userDialog(ctx, environments) {
  const name = field({ label: 'Name', name: 'name', required: true, autocomplete: 'off' });
  const password = field({ label: 'Password', name: 'password', type: 'password', required: true, autocomplete: 'new-password' });
  const role = field({ label: 'Role', name: 'role', control: 'select', value: 'editor', options: ROLES });
  const scope = environmentChecks(environments, '/environments');
  formDialog(ctx, {
    title: 'New user',
    fields: [name, password, role, scope],
    submitLabel: 'Create user',
    save: async (form, handle) => {
      await ctx.api.post('/users', { name: name.control.value.trim(), password: password.control.value, role: role.control.value, environments: scope.selected() });
      handle.close();
      ctx.toast('User created.');
      reload(ctx);
    },
  });
}

