// The flags list: search and filters kept in the URL, one server-side page at
// a time (never every flag), on/off per environment, last evaluation, stale
// and expired badges; and the "New flag" form.

import { h, button, badge, pageHeader, replace, timeAgo, notice, icon, debounce } from '../components/dom.js';
import { field, fieldGroup, showProblems, busy, uid } from '../components/form.js';
import { openDialog } from '../components/dialog.js';

const KINDS = ['release', 'experiment', 'operational', 'permission'];
const STAGES = ['new', 'active', 'released', 'permanent', 'stale', 'archived'];
const PAGE_SIZES = [25, 50, 100, 200];
const STALE_AFTER_MS = 30 * 24 * 3600 * 1000;
// The query parameters of GET /api/v1/flags the page keeps in the URL.
const FILTERS = ['q', 'flagSet', 'environment', 'state', 'stage', 'kind', 'tag', 'owner'];

/** Why a flag is stale, or null: its stage says so, or nothing evaluated it for 30 days. */
function staleReason(flag, now = Date.now()) {
  if (flag.stage === 'stale') return 'marked stale';
  if (flag.lastEvaluatedAt != null && now - flag.lastEvaluatedAt > STALE_AFTER_MS) return 'not evaluated for 30 days';
  return null;
}

/** Whether the flag's expiry date has passed. */
function expired(flag, now = Date.now()) {
  return flag.expiresAt != null && flag.expiresAt < now;
}

const capitalize = (text) => text.charAt(0).toUpperCase() + text.slice(1);

function stateCell(config) {
  if (!config) return h('span', { class: 'state state-none' }, '—');
  const on = config.state === 'ENABLED';
  return h('span', { class: `state ${on ? 'state-on' : 'state-off'}` }, on ? 'On' : 'Off');
}

export async function render(root, params, ctx) {
  const { api } = ctx;
  const [environments, flagSets] = await Promise.all([api.get('/environments'), api.get('/flag-sets')]);
  const query = Object.fromEntries(FILTERS.map((name) => [name, params.query.get(name) ?? '']));
  let offset = Math.max(0, Number(params.query.get('offset')) || 0);
  let limit = PAGE_SIZES.includes(Number(params.query.get('limit'))) ? Number(params.query.get('limit')) : 50;

  const canEdit = ctx.session.role !== 'viewer' && !ctx.session.environments;
  root.append(pageHeader('Flags', 'Every flag, its state per environment and where it is in its life.',
    canEdit && flagSets.length ? button('New flag', { kind: 'primary', icon: 'plus', onclick: () => newFlagDialog(ctx, flagSets, query.flagSet) }) : null));

  // Filters.
  const filterSelect = (name, label, options) => {
    const id = uid(name);
    const select = h('select', { id, name },
      h('option', { value: '' }, 'Any'),
      options.map(([value, text]) => h('option', { value }, text)));
    select.value = query[name];
    return h('div', { class: 'filter' }, h('label', { for: id }, label), select);
  };
  const filterText = (name, label, placeholder) => {
    const id = uid(name);
    return h('div', { class: 'filter' }, h('label', { for: id }, label),
      h('input', { id, name, type: 'text', value: query[name], placeholder, autocomplete: 'off' }));
  };
  const searchId = uid('q');
  const toolbar = h('form', { class: 'toolbar filters', role: 'search', 'aria-label': 'Filter flags' },
    h('div', { class: 'filter filter-search span-all' },
      h('label', { for: searchId }, 'Search'),
      icon('search'),
      h('input', { id: searchId, name: 'q', type: 'search', value: query.q, placeholder: 'Key or description (press /)', autocomplete: 'off', 'aria-keyshortcuts': '/' })),
    filterSelect('flagSet', 'Flag set', flagSets.map((set) => [set.key, set.name || set.key])),
    filterSelect('environment', 'Environment', environments.map((env) => [env.key, env.name || env.key])),
    filterSelect('state', 'State', [['ENABLED', 'On'], ['DISABLED', 'Off']]),
    filterSelect('stage', 'Stage', STAGES.map((stage) => [stage, capitalize(stage)])),
    filterSelect('kind', 'Kind', KINDS.map((kind) => [kind, capitalize(kind)])),
    filterText('tag', 'Tag', 'any tag'),
    filterText('owner', 'Owner', 'any owner'));
  toolbar.addEventListener('submit', (event) => event.preventDefault());
  // Without an environment, the state filter is about production (as the API reads it).
  const stateLabels = () => {
    const where = toolbar.elements.environment.value ? '' : ' in production';
    const [, on, off] = toolbar.elements.state.options;
    on.textContent = `On${where}`;
    off.textContent = `Off${where}`;
  };
  stateLabels();
  toolbar.elements.environment.addEventListener('change', stateLabels);

  const summary = h('p', { class: 'muted', 'aria-live': 'polite' });
  const table = h('table', { class: 'flags-table' });
  const pager = h('div', { class: 'pager' });
  const results = h('div', { class: 'table-wrap' }, table);
  if (!flagSets.length) {
    root.append(notice(h('span', {}, 'Flags belong to a flag set, and there is none yet. ',
      h('a', { href: '#/admin/flag-sets' }, 'Create a flag set'), ' to start.')));
  }
  root.append(h('section', { class: 'card', 'aria-label': 'Flags' }, toolbar, results, pager));

  let sequence = 0;
  async function load() {
    const ticket = ++sequence;
    table.classList.add('table-busy');
    table.setAttribute('aria-busy', 'true');
    const url = new URLSearchParams(Object.entries(query).filter(([, value]) => value));
    if (offset) url.set('offset', offset);
    if (limit !== 50) url.set('limit', limit);
    ctx.setQuery(url);
    try {
      const page = await api.get('/flags', { ...query, limit, offset });
      if (ticket !== sequence) return;
      if (page.items.length === 0 && offset > 0 && page.total > 0) {
        offset = Math.max(0, Math.floor((page.total - 1) / limit) * limit);
        load();
        return;
      }
      drawTable(page);
      drawPager(page);
    } catch (error) {
      if (ticket !== sequence) return;
      replace(table);
      replace(pager, notice(error.message, 'danger'));
    } finally {
      if (ticket === sequence) {
        table.classList.remove('table-busy');
        table.removeAttribute('aria-busy');
      }
    }
  }

  function drawTable(page) {
    const shown = query.environment ? environments.filter((env) => env.key === query.environment) : environments;
    const now = Date.now();
    const head = h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Flag'),
      h('th', { scope: 'col' }, 'Stage'),
      shown.map((env) => h('th', { scope: 'col', class: 'center env' }, env.name || env.key)),
      h('th', { scope: 'col' }, 'Owner'),
      h('th', { scope: 'col' }, 'Last evaluated')));
    const rows = page.items.map((flag) => {
      // A flag marked stale shows it as its stage; one stale for want of evaluations gets a badge.
      const unused = flag.stage === 'stale' ? null : staleReason(flag, now);
      const isExpired = expired(flag, now);
      return h('tr', {},
        h('td', {},
          h('div', { class: 'flag-name' },
            h('a', { class: 'key', href: `#/flags/${encodeURIComponent(flag.flagSet)}/${encodeURIComponent(flag.key)}` }, flag.key),
            flag.tags.map((tag) => badge(tag))),
          h('div', { class: 'sub', title: flag.description || null }, h('span', {}, flag.flagSet), flag.description ? ` · ${flag.description}` : '')),
        h('td', {},
          h('div', {}, flag.stage === 'stale' ? badge('Stale', 'warn', 'Stale: marked stale') : capitalize(flag.stage)),
          h('div', { class: 'sub' }, capitalize(flag.kind)),
          unused || isExpired ? h('div', { class: 'badges' },
            unused ? badge('Stale', 'warn', `Stale: ${unused}`) : null,
            isExpired ? badge('Expired', 'danger', `Expired ${new Date(flag.expiresAt).toLocaleDateString()}`) : null) : null),
        shown.map((env) => h('td', { class: 'center' }, stateCell(flag.environments[env.key]))),
        h('td', { class: 'nowrap' }, flag.owner || h('span', { class: 'muted' }, '—')),
        h('td', { class: 'nowrap' }, timeAgo(flag.lastEvaluatedAt)));
    });
    const filtered = FILTERS.some((name) => query[name]);
    const body = rows.length ? h('tbody', {}, rows) : h('tbody', {}, h('tr', {}, h('td', { colspan: 4 + shown.length, class: 'empty' },
      filtered ? 'No flag matches these filters.' : 'No flags yet. Create one with "New flag".')));
    replace(table, h('caption', { class: 'visually-hidden' }, 'Flags'), head, body);
  }

  function drawPager(page) {
    const first = page.total ? page.offset + 1 : 0;
    const last = page.offset + page.items.length;
    summary.textContent = page.total
      ? `${first.toLocaleString()}–${last.toLocaleString()} of ${page.total.toLocaleString()} flags`
      : 'No flags';
    const sizeId = uid('page-size');
    const size = h('select', { id: sizeId }, PAGE_SIZES.map((n) => h('option', { value: n }, `${n}`)));
    size.value = String(limit);
    size.addEventListener('change', () => { limit = Number(size.value); offset = 0; load(); });
    const previous = button('Previous', { icon: 'left', class: 'btn btn-small', disabled: page.offset === 0,
      onclick: () => { offset = Math.max(0, offset - limit); load(); } });
    const next = button('Next', { icon: 'right', class: 'btn btn-small', disabled: last >= page.total,
      onclick: () => { offset += limit; load(); } });
    replace(pager, summary,
      h('div', { class: 'pager-controls' }, h('label', { for: sizeId, class: 'muted' }, 'Per page'), size, previous, next));
  }

  const refilter = () => {
    for (const name of FILTERS) query[name] = toolbar.elements[name].value.trim();
    offset = 0;
    load();
  };
  // "/" jumps to the search box (while this page is shown and no field has focus).
  const slash = (event) => {
    if (!root.isConnected) {
      document.removeEventListener('keydown', slash);
      return;
    }
    if (event.key !== '/' || event.target.closest?.('input, select, textarea, dialog')) return;
    event.preventDefault();
    toolbar.elements.q.focus();
  };
  document.addEventListener('keydown', slash);
  const typed = debounce(refilter, 250);
  toolbar.addEventListener('input', (event) => (event.target.tagName === 'SELECT' ? refilter() : typed()));
  await load();
}

/** Parses a variant value typed as text for a flag of `type`. */
function parseVariant(type, text) {
  if (type === 'boolean') return text === 'true';
  if (type === 'number') {
    const number = Number(text);
    if (text.trim() === '' || !Number.isFinite(number)) throw new Error('must be a number');
    return number;
  }
  if (type === 'object') {
    let value;
    try { value = JSON.parse(text); } catch { throw new Error('must be a JSON object'); }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('must be a JSON object');
    return value;
  }
  return text;
}

const EXAMPLES = {
  boolean: [['on', 'true'], ['off', 'false']],
  string: [['control', 'control'], ['treatment', 'treatment']],
  number: [['low', '0'], ['high', '1']],
  object: [['default', '{}']],
};

/** The "New flag" dialog; on success opens the new flag. */
function newFlagDialog(ctx, flagSets, preferredSet) {
  const key = field({ label: 'Key', name: 'key', required: true, hint: 'What code asks for, e.g. new-checkout.', autocomplete: 'off' });
  const flagSet = field({ label: 'Flag set', name: 'flagSet', control: 'select', required: true,
    value: preferredSet || flagSets[0].key, options: flagSets.map((set) => [set.key, set.name || set.key]) });
  const kind = field({ label: 'Kind', name: 'kind', control: 'select', options: KINDS.map((k) => [k, capitalize(k)]) });
  const type = field({ label: 'Type', name: 'type', control: 'select',
    options: [['boolean', 'Boolean'], ['string', 'String'], ['number', 'Number'], ['object', 'Object (JSON)']] });
  const defaultVariant = field({ label: 'Default variant', name: 'defaultVariant', control: 'select', options: [] });
  const owner = field({ label: 'Owner', name: 'owner', placeholder: 'team-payments', autocomplete: 'off' });
  const tags = field({ label: 'Tags', name: 'tags', placeholder: 'web, checkout', hint: 'Comma-separated.', autocomplete: 'off' });
  const description = field({ label: 'Description', name: 'description', placeholder: 'What it changes for users', autocomplete: 'off' });

  const rows = h('div', { class: 'rows' });
  const variants = fieldGroup({ legend: 'Variants', pointer: '/variants', hint: 'Every environment starts off, serving the default variant.' },
    rows, button('Add variant', { icon: 'plus', class: 'btn btn-small', onclick: () => addRow('', '') }));

  function valueControl(value) {
    if (type.control.value === 'boolean') {
      const select = h('select', {}, h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'));
      select.value = value;
      return select;
    }
    return h('input', { type: 'text', value, autocomplete: 'off', class: type.control.value === 'object' ? 'mono' : null });
  }
  function addRow(name, value) {
    const n = rows.children.length + 1;
    const nameInput = h('input', { type: 'text', value: name, 'aria-label': `Variant ${n} name`, autocomplete: 'off' });
    const valueInput = valueControl(value);
    valueInput.setAttribute('aria-label', `Variant ${n} value`);
    const error = h('p', { class: 'field-error row-error', hidden: true });
    const row = h('div', { class: 'row' }, nameInput, valueInput,
      h('button', { type: 'button', class: 'btn btn-ghost btn-icon', 'aria-label': `Remove variant ${n}`,
        onclick: () => { row.remove(); syncDefault(); } }, icon('close')), error);
    row.nameInput = nameInput;
    row.valueInput = valueInput;
    row.error = error;
    nameInput.addEventListener('input', syncDefault);
    rows.append(row);
    syncDefault();
    if (!name) nameInput.focus();
  }
  function syncDefault() {
    const current = defaultVariant.control.value;
    const names = [...rows.children].map((row) => row.nameInput.value.trim()).filter(Boolean);
    replace(defaultVariant.control, h('option', { value: '' }, 'None (the code default)'), names.map((name) => h('option', { value: name }, name)));
    defaultVariant.control.value = names.includes(current) ? current : (names[0] ?? '');
  }
  function resetVariants() {
    replace(rows);
    for (const [name, value] of EXAMPLES[type.control.value]) addRow(name, value);
    const names = EXAMPLES[type.control.value].map(([name]) => name);
    defaultVariant.control.value = names.includes('off') ? 'off' : names[0];
  }
  type.control.addEventListener('change', resetVariants);
  resetVariants();

  const form = h('form', { novalidate: true },
    h('div', { class: 'form-grid' }, key, flagSet, kind, type, h('div', { class: 'span-2' }, variants),
      defaultVariant, owner, tags, description),
    h('div', { class: 'form-actions' },
      button('Cancel', { onclick: () => handle.close() }),
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create flag')));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const problems = [];
    const variantMap = {};
    for (const row of rows.children) {
      row.error.hidden = true;
      const name = row.nameInput.value.trim();
      try {
        if (!name) throw new Error('a variant needs a name');
        if (name in variantMap) throw new Error('is named twice');
        variantMap[name] = parseVariant(type.control.value, row.valueInput.value);
      } catch (error) {
        problems.push({ path: `/variants/${name || '(unnamed)'}`, message: error.message });
      }
    }
    if (!key.control.value.trim()) problems.push({ path: '/key', message: 'A flag needs a key.' });
    if (problems.length) {
      showProblems(form, { message: 'Fix the highlighted fields.', problems });
      return;
    }
    const body = {
      key: key.control.value.trim(),
      flagSet: flagSet.control.value,
      kind: kind.control.value,
      variants: variantMap,
      defaultVariant: defaultVariant.control.value || null,
      owner: owner.control.value.trim(),
      description: description.control.value.trim(),
      tags: tags.control.value.split(',').map((tag) => tag.trim()).filter(Boolean),
    };
    await busy(form, async () => {
      try {
        const flag = await ctx.api.post('/flags', body);
        handle.close();
        ctx.toast(`Flag ${flag.key} created; it is off in every environment.`);
        ctx.navigate(`#/flags/${encodeURIComponent(flag.flagSet)}/${encodeURIComponent(flag.key)}`);
      } catch (error) {
        showProblems(form, error);
      }
    });
  });

  const handle = openDialog({ title: 'New flag', content: form, wide: true });
  key.control.focus();
}
