// Kill switches: bindings from Alertmanager alerts (matched by their labels)
// to the flags they turn off, set to a variant, or take a variant out of a
// rollout; and, for admins, the Alertmanager receivers with webhook secrets
// of their own (a new receiver's secret is shown once).

import { h, button, badge, pageHeader, notice, timeAgo, table, icon, replace, formatDuration } from '../components/dom.js';
import { field, fieldGroup } from '../components/form.js';
import { formDialog, secretDialog } from '../components/dialog.js';

const ACTIONS = [['disable', 'Disable'], ['variant', 'Serve one variant'], ['zero-weight', 'Zero-weight a variant']];
const ON_RESOLVED = [['keep', 'Keep: a person restores it'], ['restore', 'Restore after the cool-down']];
const WEBHOOK = '/api/v1/integrations/alertmanager';

/** Reloads the page after a change. */
const reload = (ctx) => ctx.navigate(window.location.hash);

/** Escapes a JSON Pointer segment (`~` and `/`). */
const pointerSegment = (text) => text.replace(/~/g, '~0').replace(/\//g, '~1');

/** An action for people: `disable`, `variant "off"`, `zero weight "on"`. */
function describeAction(action) {
  const [kind, variant] = action.split(/:(.*)/s);
  if (kind === 'variant') return `serve variant “${variant}”`;
  if (kind === 'zero-weight') return `zero weight for “${variant}”`;
  return action;
}

export async function render(root, params, ctx) {
  const { api, session } = ctx;
  const admin = session.role === 'admin';
  const canEdit = session.role !== 'viewer';
  const [bindings, flagSets, environments, receivers] = await Promise.all([
    api.get('/kill-switches'), api.get('/flag-sets'), api.get('/environments'),
    admin ? api.get('/integrations/alertmanager/receivers') : null,
  ]);
  const choices = { flagSets, environments, flags: new Map() };
  root.append(pageHeader('Kill switches', 'Alerts from Alertmanager that turn flags off by themselves: an alert whose labels match every matcher of a binding acts on each of its targets.',
    canEdit ? button('New binding', { kind: 'primary', icon: 'plus', disabled: !flagSets.length, onclick: () => bindingDialog(ctx, choices) }) : null));
  if (!flagSets.length) root.append(notice('There are no flag sets yet; a binding acts on flags. Create a flag set and a flag first.'));

  root.append(h('section', { class: 'card kill-table', 'aria-labelledby': 'bindings-title' },
    h('div', { class: 'card-head' }, h('h2', { id: 'bindings-title' }, 'Bindings'), badge(String(bindings.length), 'accent')),
    table(['Binding', 'Alerts with', 'Targets', 'When resolved', ''],
      bindings.map((binding) => h('tr', {},
        h('td', {},
          h('div', { class: 'kill-name' }, h('span', { class: 'key' }, binding.name), binding.dryRun ? badge('Dry run', 'warn', 'Records what it would do; changes nothing') : null),
          binding.description ? h('div', { class: 'sub', title: binding.description }, binding.description) : null),
        h('td', {}, h('div', { class: 'chips' }, Object.entries(binding.matchers).map(([label, value]) => h('code', { class: 'chip' }, `${label}="${value}"`)))),
        h('td', {}, h('ul', { class: 'inline-list kill-targets' }, binding.targets.map((target) => h('li', {},
          h('a', { class: 'key', href: `#/flags/${encodeURIComponent(target.flagSet)}/${encodeURIComponent(target.flag)}` }, `${target.flagSet}/${target.flag}`),
          ' ', badge(target.environment, 'accent'), ' ', h('span', {}, describeAction(target.action)))))),
        h('td', {}, binding.onResolved === 'restore'
          ? h('span', {}, `restore after ${formatDuration(binding.cooldownSeconds)}`)
          : h('span', { class: 'muted' }, 'keep until restored')),
        h('td', { class: 'num' }, canEdit ? h('div', { class: 'row-actions' },
          button('Edit', { class: 'btn btn-small', 'aria-label': `Edit ${binding.name}`, onclick: () => bindingDialog(ctx, choices, binding) }),
          button('Delete', { class: 'btn btn-small', 'aria-label': `Delete ${binding.name}`, onclick: () => deleteBinding(ctx, binding) })) : null))),
      'No bindings yet. Create one to let an alert turn a flag off.')));

  if (admin) root.append(receiverSection(ctx, receivers));
}

async function deleteBinding(ctx, binding) {
  const sure = await ctx.confirm({ title: `Delete binding ${binding.name}?`, danger: true, confirmLabel: 'Delete',
    message: 'Alerts no longer act through it. What it already did stays in the flags’ kill-switch history, and open kills stay until restored.' });
  if (!sure) return;
  try {
    await ctx.api.delete(ctx.api.path`/kill-switches/${binding.name}`, { etag: `"${binding.version}"` });
    ctx.toast(`Binding ${binding.name} deleted.`);
    reload(ctx);
  } catch (error) {
    ctx.toast(error.status === 412 ? 'Someone else changed this binding meanwhile; reload and try again.' : error.message, 'error');
  }
}

/** The flags of a flag set (the first 500), read once per page. */
function flagsOf(ctx, choices, flagSet) {
  if (!choices.flags.has(flagSet)) {
    choices.flags.set(flagSet, ctx.api.get('/flags', { flagSet, limit: 500 })
      .then((page) => page.items)
      .catch(() => []));
  }
  return choices.flags.get(flagSet);
}

/** Key/value rows for the matchers; each row's pointer follows its label. */
function matcherEditor(matchers) {
  const rows = h('div', { class: 'rows' });
  const group = fieldGroup({ legend: 'Alerts with these labels', pointer: '/matchers',
    hint: 'Every label must be on the alert with exactly this value, e.g. slo = checkout-availability, severity = page.' },
  rows, button('Add label', { icon: 'plus', class: 'btn btn-small', onclick: () => addRow('', '', true) }));
  function addRow(label, value, focus = false) {
    const n = rows.children.length + 1;
    const labelInput = h('input', { type: 'text', value: label, 'aria-label': `Label ${n} name`, placeholder: 'label', autocomplete: 'off', class: 'mono' });
    const valueInput = h('input', { type: 'text', value, 'aria-label': `Label ${n} value`, placeholder: 'value', autocomplete: 'off', class: 'mono' });
    const row = h('div', { class: 'row' }, labelInput, valueInput,
      h('button', { type: 'button', class: 'btn btn-ghost btn-icon', 'aria-label': `Remove label ${n}`, onclick: () => row.remove() }, icon('close')),
      h('p', { class: 'field-error row-error', hidden: true }));
    const point = () => { row.dataset.pointer = `/matchers/${pointerSegment(labelInput.value.trim())}`; };
    labelInput.addEventListener('input', point);
    point();
    row.control = labelInput;
    row.values = () => [labelInput.value.trim(), valueInput.value];
    rows.append(row);
    if (focus) labelInput.focus();
  }
  const entries = Object.entries(matchers ?? {});
  for (const [label, value] of entries.length ? entries : [['slo', ''], ['severity', 'page']]) addRow(label, value);
  group.value = () => {
    const pairs = [...rows.children].map((row) => row.values()).filter(([label, value]) => label || value);
    const seen = new Set();
    const problems = [];
    for (const [label] of pairs) {
      if (!label) problems.push({ path: '/matchers', message: 'every label needs a name' });
      else if (seen.has(label)) problems.push({ path: `/matchers/${pointerSegment(label)}`, message: 'this label is given twice' });
      seen.add(label);
    }
    return { matchers: Object.fromEntries(pairs), problems };
  };
  return group;
}

/** Rows of targets: flag set, flag, environment, action (and its variant). */
function targetEditor(ctx, choices, targets) {
  const rows = h('div', { class: 'rows' });
  const group = fieldGroup({ legend: 'Targets', pointer: '/targets', hint: 'What the alert does to which flag in which environment.' },
    rows, button('Add target', { icon: 'plus', class: 'btn btn-small', onclick: () => addRow(null, true) }));
  const setOptions = choices.flagSets.map((set) => [set.key, set.name || set.key]);
  const envOptions = choices.environments.map((env) => [env.key, env.name || env.key]);

  function renumber() {
    [...rows.children].forEach((row, i) => row.renumber(i));
  }
  function addRow(target, focus = false) {
    const [kind, variantName = ''] = (target?.action ?? 'disable').split(/:(.*)/s);
    const flagSet = field({ label: 'Flag set', control: 'select', options: setOptions, value: target?.flagSet ?? setOptions[0]?.[0] });
    const flag = field({ label: 'Flag', control: 'select', options: [] });
    const environment = field({ label: 'Environment', control: 'select', options: envOptions,
      value: target?.environment ?? (envOptions.some(([key]) => key === 'production') ? 'production' : envOptions[0]?.[0]) });
    const action = field({ label: 'Action', control: 'select', options: ACTIONS, value: kind });
    const variant = field({ label: 'Variant', control: 'select', options: [] });
    const remove = h('button', { type: 'button', class: 'btn btn-ghost btn-icon', onclick: () => { row.remove(); renumber(); } }, icon('close'));
    const row = h('div', { class: 'target-row' }, flagSet, flag, environment, remove, action, variant,
      h('p', { class: 'field-error row-error', hidden: true }));
    let flags = [];
    const variantsOf = () => {
      const chosen = flags.find((f) => f.key === flag.control.value);
      const config = chosen?.environments?.[environment.control.value] ?? Object.values(chosen?.environments ?? {})[0];
      return Object.keys(config?.variants ?? {});
    };
    const syncVariants = () => {
      const current = variant.control.value || variantName;
      const names = variantsOf();
      if (current && !names.includes(current)) names.push(current);
      replace(variant.control, names.map((name) => h('option', { value: name }, name)));
      if (current) variant.control.value = current;
      variant.hidden = action.control.value === 'disable';
    };
    const loadFlags = async (wanted) => {
      flags = await flagsOf(ctx, choices, flagSet.control.value);
      const keys = flags.map((f) => f.key);
      if (wanted && !keys.includes(wanted)) keys.push(wanted);
      replace(flag.control, keys.length ? keys.map((key) => h('option', { value: key }, key)) : h('option', { value: '' }, 'No flags in this set'));
      if (wanted) flag.control.value = wanted;
      syncVariants();
    };
    flagSet.control.addEventListener('change', () => loadFlags(null));
    flag.control.addEventListener('change', syncVariants);
    environment.control.addEventListener('change', syncVariants);
    action.control.addEventListener('change', syncVariants);
    row.renumber = (i) => {
      row.dataset.pointer = `/targets/${i}`;
      for (const [part, name] of [[flagSet, 'flagSet'], [flag, 'flag'], [environment, 'environment'], [action, 'action']]) {
        part.dataset.pointer = `/targets/${i}/${name}`;
      }
      remove.setAttribute('aria-label', `Remove target ${i + 1}`);
    };
    row.value = () => ({
      flagSet: flagSet.control.value,
      flag: flag.control.value,
      environment: environment.control.value,
      action: action.control.value === 'disable' ? 'disable' : `${action.control.value}:${variant.control.value}`,
    });
    row.ready = loadFlags(target?.flag ?? null);
    rows.append(row);
    renumber();
    if (focus) flagSet.control.focus();
  }
  for (const target of targets?.length ? targets : [null]) addRow(target);
  group.value = () => [...rows.children].map((row) => row.value());
  return group;
}

/** Creates (no `existing`) or edits a binding. */
function bindingDialog(ctx, choices, existing) {
  const name = field({ label: 'Name', name: 'name', required: true, value: existing?.name, readonly: !!existing, autocomplete: 'off',
    hint: existing ? 'A binding keeps its name.' : 'Letters, digits, -, _ and ., e.g. checkout-availability-page.' });
  const description = field({ label: 'Description', name: 'description', value: existing?.description, autocomplete: 'off',
    placeholder: 'Turn off the new checkout when its availability SLO pages' });
  const matchers = matcherEditor(existing?.matchers);
  const targets = targetEditor(ctx, choices, existing?.targets);
  const onResolved = field({ label: 'When the alert resolves', name: 'onResolved', control: 'select', options: ON_RESOLVED, value: existing?.onResolved ?? 'keep' });
  const cooldown = field({ label: 'Cool-down (seconds)', name: 'cooldownSeconds', type: 'number', value: existing?.cooldownSeconds ?? 300,
    attrs: { min: 0, step: 1, inputmode: 'numeric' }, hint: 'How long after the resolution a restore waits.' });
  const dryRunInput = h('input', { type: 'checkbox', name: 'dryRun', checked: existing?.dryRun ?? false });
  const dryRun = h('div', { class: 'field', dataset: { pointer: '/dryRun' } },
    h('label', { class: 'check' }, dryRunInput, 'Dry run: record what it would do, change no flag'),
    h('p', { class: 'field-error', hidden: true }));
  dryRun.control = dryRunInput;
  const comment = field({ label: 'Comment for the audit log', name: 'comment', autocomplete: 'off' });
  const syncCooldown = () => { cooldown.control.disabled = onResolved.control.value !== 'restore'; };
  onResolved.control.addEventListener('change', syncCooldown);
  syncCooldown();
  formDialog(ctx, {
    title: existing ? `Edit binding ${existing.name}` : 'New kill-switch binding',
    wide: true,
    fields: [h('div', { class: 'form-grid' }, name, description), matchers, targets,
      h('div', { class: 'form-grid' }, onResolved, cooldown), dryRun, comment],
    submitLabel: existing ? 'Save binding' : 'Create binding',
    save: async (form, handle) => {
      const { matchers: labels, problems } = matchers.value();
      const seconds = cooldown.control.value.trim() === '' ? 300 : Number(cooldown.control.value);
      if (!Number.isInteger(seconds)) problems.push({ path: '/cooldownSeconds', message: 'a whole number of seconds' });
      if (problems.length) throw { message: 'Fix the highlighted fields; nothing was saved.', problems };
      const body = {
        description: description.control.value.trim(),
        matchers: labels,
        targets: targets.value(),
        onResolved: onResolved.control.value,
        cooldownSeconds: seconds,
        dryRun: dryRunInput.checked,
        comment: comment.control.value.trim() || null,
      };
      if (existing) {
        await ctx.api.put(ctx.api.path`/kill-switches/${existing.name}`, body, { etag: `"${existing.version}"` });
      } else {
        await ctx.api.post('/kill-switches', { name: name.control.value.trim(), ...body });
      }
      handle.close();
      ctx.toast(existing ? `Binding ${existing.name} saved.` : 'Binding created.');
      reload(ctx);
    },
  });
}

// Alertmanager receivers.

function receiverSection(ctx, receivers) {
  const url = `${window.location.origin}${WEBHOOK}`;
  return h('section', { class: 'card', 'aria-labelledby': 'receivers-title' },
    h('div', { class: 'card-head' }, h('h2', { id: 'receivers-title' }, 'Alertmanager receivers'),
      button('New receiver', { class: 'btn btn-small', icon: 'plus', onclick: () => receiverDialog(ctx) })),
    h('div', { class: 'card-pad stack' },
      h('p', { class: 'muted' }, 'Point an Alertmanager webhook receiver at ', h('code', {}, url),
        ' with ', h('code', {}, 'Authorization: Bearer <secret>'), ' (or Basic auth with the receiver’s name as user). Each receiver has a secret of its own, so one can be revoked alone.')),
    table(['Name', 'Created', ''],
      receivers.map((receiver) => h('tr', {},
        h('td', {}, h('span', { class: 'key' }, receiver.name)),
        h('td', {}, timeAgo(receiver.createdAt)),
        h('td', { class: 'num' }, button('Delete', {
          class: 'btn btn-small', 'aria-label': `Delete receiver ${receiver.name}`,
          onclick: async () => {
            const sure = await ctx.confirm({ title: `Delete receiver ${receiver.name}?`, danger: true, confirmLabel: 'Delete',
              message: 'Webhooks with its secret are refused from now on. This cannot be undone.' });
            if (!sure) return;
            try {
              await ctx.api.delete(ctx.api.path`/integrations/alertmanager/receivers/${receiver.name}`);
              ctx.toast(`Receiver ${receiver.name} deleted.`);
              reload(ctx);
            } catch (error) {
              ctx.toast(error.message, 'error');
            }
          },
        })))),
      'No receivers yet. Alertmanager can also use the server’s --alertmanager-token.'));
}

function receiverDialog(ctx) {
  const name = field({ label: 'Name', name: 'name', required: true, autocomplete: 'off',
    hint: 'The Alertmanager receiver, e.g. ensign-prod (the Basic auth user name; no “:”).' });
  const comment = field({ label: 'Comment for the audit log', name: 'comment', autocomplete: 'off' });
  formDialog(ctx, {
    title: 'New Alertmanager receiver',
    fields: [name, comment],
    submitLabel: 'Create receiver',
    save: async (form, handle) => {
      const created = await ctx.api.post('/integrations/alertmanager/receivers',
        { name: name.control.value.trim(), comment: comment.control.value.trim() || null });
      handle.close();
      secretDialog({ title: `Receiver ${created.receiver.name} created`, secret: created.secret, id: 'receiver-secret',
        toast: ctx.toast, onClose: () => reload(ctx) });
    },
  });
}
