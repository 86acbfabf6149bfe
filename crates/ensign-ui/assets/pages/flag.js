// The flag page (#/flags/{set}/{key}): one flag's configuration per
// environment (on/off, typed variants, default variant, targeting), a panel
// to test it, its kill-switch status, lifecycle actions, copy to another
// environment, and its audit history with readable diffs.
//
// Every write carries If-Match with the version the page shows: when someone
// else saved first the server answers 412 and the page says so and keeps the
// input; a 422 puts each problem next to the field its JSON Pointer names.

import { h, badge, button, formatTime, timeAgo, notice, pageHeader } from '../components/dom.js';
import { confirmDialog } from '../components/dialog.js';
import { showProblems, clearProblems } from '../components/form.js';
import { ruleEditor } from '../components/rule-editor.js';
import { renderDiff, escapeSegment } from '../components/diff.js';

/** Variant value types. */
const TYPES = ['boolean', 'string', 'number', 'object'];
/** Audit entries per page. */
const AUDIT_PAGE = 20;
/** Largest evaluation context the test panel sends (characters). */
const MAX_CONTEXT_CHARS = 32 * 1024;
/** What the lifecycle buttons set, in the order shown. */
const STAGES = [
  ['released', 'Release', 'Mark it fully rolled out: its code path can be cleaned up.'],
  ['permanent', 'Mark permanent', 'Mark it as meant to stay: it is not reported as stale.'],
  ['stale', 'Mark stale', 'Mark it as no longer needed: it should be removed from code.'],
];
/** How a closed kill ended, for people. */
const RESTORE_OUTCOMES = {
  restored: 'restored',
  skipped: 'not restored (someone changed the flag since)',
  superseded: 'superseded by another kill',
  dry_run: 'dry run ended',
};
const STAGE_TONES = { new: 'accent', active: 'ok', released: 'ok', permanent: '', stale: 'warn', archived: 'danger' };

/** `h` with a `text` prop for the element's text. */
const el = (tag, { text, ...props } = {}, ...children) => h(tag, props, text, ...children);

/** The value type of a configuration's variants. */
function typeOfVariants(variants) {
  const values = Object.values(variants || {});
  if (!values.length) return 'boolean';
  const v = values[0];
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'string') return 'string';
  return 'object';
}

function blankValue(type) {
  return { boolean: false, string: '', number: 0, object: {} }[type];
}

/** A deep copy of JSON data. */
function clone(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

/** The ETag of a version, as the API sends it. */
function etagOf(version) {
  return `"${version}"`;
}

/** A field-error slot as form.js's showProblems fills it. */
function errorSlot() {
  return el('p', { class: 'field-error', hidden: true });
}

/**
 * Renders the page of flag `params.set`/`params.key` into `root`.
 */
export async function render(root, params, ctx) {
  const { api, session } = ctx;
  const { set, key } = params;
  const flagPath = api.path`/flags/${set}/${key}`;
  const canEdit = !!session && session.role !== 'viewer';
  const mayChange = (env) => canEdit && (!session.environments || session.environments.includes(env));
  // Lifecycle changes reach every environment: not for environment-bound sessions.
  const mayChangeAll = canEdit && !session.environments;

  let flag;
  let environmentList;
  try {
    [flag, environmentList] = await Promise.all([api.get(flagPath), api.get('/environments')]);
  } catch (error) {
    root.replaceChildren(pageHeader(key),
      notice(error.status === 404 ? `There is no flag “${set}/${key}”.` : `The flag could not be loaded: ${error.message}`, 'danger'),
      el('p', {}, el('a', { href: '#/flags', text: '← All flags' })));
    return;
  }
  let segments = [];
  try {
    segments = (await api.get(api.path`/flag-sets/${set}/segments`)).map((s) => s.key);
  } catch {
    segments = [];
  }
  const environments = environmentList
    .map((e) => e.key)
    .filter((e) => flag.environments[e]);
  for (const e of Object.keys(flag.environments)) if (!environments.includes(e)) environments.push(e);

  const remembered = sessionStorage.getItem(`ensign.flag-env.${set}/${key}`);
  const asked = params.query?.get('env');
  let env = [asked, remembered, 'production', environments[0]].find((e) => e && environments.includes(e));
  let draft = null;
  let dirty = false;
  let editor = null;

  // -- layout ----------------------------------------------------------------

  const header = el('div', { class: 'flag-head' });
  const envTabs = el('div', { class: 'env-tabs', role: 'tablist', 'aria-label': 'Environment' });
  const configPanel = el('section', { class: 'card flag-config', role: 'tabpanel', id: 'flag-config' });
  const testPanel = el('section', { class: 'card card-pad flag-test', 'aria-labelledby': 'flag-test-title' });
  const killPanel = el('section', { class: 'card card-pad flag-kill', 'aria-labelledby': 'flag-kill-title' });
  const auditPanel = el('section', { class: 'card flag-audit', 'aria-labelledby': 'flag-audit-title' });
  root.classList.add('flag-page');
  root.replaceChildren(header, envTabs, configPanel,
    el('div', { class: 'flag-panels' }, testPanel, killPanel),
    auditPanel);

  // -- header and lifecycle ---------------------------------------------------

  /** Runs a lifecycle write after confirmation and shows its result. */
  async function lifecycle(label, message, write, { danger = false, done } = {}) {
    const ok = await confirmDialog({ title: `${label}: ${key}?`, message, confirmLabel: label, danger });
    if (!ok) return;
    try {
      replaceFlag(await write());
      ctx.toast(done, 'ok');
    } catch (error) {
      ctx.toast(error.status === 412
        ? 'Someone else changed this flag meanwhile; nothing was changed. The page now shows their version.'
        : `Nothing was changed: ${error.message}`, 'error');
      if (error.status === 412) reload();
    }
  }

  function renderHeader() {
    const actions = [];
    const etag = etagOf(flag.version);
    if (flag.stage === 'archived') {
      actions.push(button('Restore', {
        disabled: !mayChangeAll,
        onclick: () => lifecycle('Restore', 'It is served again, in the stage it had before it was archived.',
          () => api.post(`${flagPath}/restore`, undefined, { etag }), { done: 'The flag is restored.' }),
      }));
    } else {
      for (const [stage, label, message] of STAGES) {
        if (flag.stage === stage) continue;
        actions.push(button(label, {
          disabled: !mayChangeAll,
          onclick: () => lifecycle(label, message,
            async () => (await api.patch(flagPath, { stage }, { etag })).data, { done: `The flag is ${stage} now.` }),
        }));
      }
      actions.push(button('Archive', {
        kind: 'danger', disabled: !mayChangeAll,
        onclick: () => lifecycle('Archive', 'It stops being served in every environment (clients get their code default). It can be restored.',
          () => api.post(`${flagPath}/archive`, undefined, { etag }), { danger: true, done: 'The flag is archived.' }),
      }));
    }
    const expired = flag.expiresAt && flag.expiresAt < Date.now();
    header.replaceChildren(
      el('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
        el('a', { href: '#/flags', text: 'Flags' }), ' / ',
        el('a', { href: `#/flags?flagSet=${encodeURIComponent(set)}`, text: set }), ' / ',
        el('span', { 'aria-current': 'page', text: key })),
      el('header', { class: 'page-head' },
        el('div', {},
          el('div', { class: 'flag-title' },
            el('h1', { tabindex: '-1', class: 'flag-key', text: key }),
            badge(flag.kind),
            badge(flag.stage, STAGE_TONES[flag.stage] ?? ''),
            expired ? badge('expired', 'danger') : null),
          flag.description ? el('p', { class: 'lead', text: flag.description }) : null),
        el('div', { class: 'actions', role: 'group', 'aria-label': 'Lifecycle' }, actions)),
      el('dl', { class: 'facts' },
        el('div', {}, el('dt', { text: 'Owner' }), el('dd', { text: flag.owner || '—' })),
        el('div', {}, el('dt', { text: 'Tags' }), el('dd', { text: flag.tags.length ? flag.tags.join(', ') : '—' })),
        el('div', {}, el('dt', { text: 'Expires' }), el('dd', {}, flag.expiresAt ? formatTime(flag.expiresAt) : '—')),
        el('div', {}, el('dt', { text: 'Last evaluated' }), el('dd', {}, timeAgo(flag.lastEvaluatedAt))),
        el('div', {}, el('dt', { text: 'Version' }), el('dd', { text: String(flag.version) }))));
  }

  // -- environment tabs -------------------------------------------------------

  function renderTabs() {
    envTabs.replaceChildren(...environments.map((e) => {
      const on = flag.environments[e].state === 'ENABLED';
      return el('button', {
        type: 'button', role: 'tab', id: `env-tab-${e}`, class: 'env-tab',
        'aria-selected': String(e === env), 'aria-controls': 'flag-config', tabindex: e === env ? '0' : '-1',
        onclick: () => selectEnvironment(e),
      }, el('span', { class: 'env-name', text: e }), el('span', { class: `state ${on ? 'state-on' : 'state-off'}`, text: on ? 'on' : 'off' }));
    }));
    configPanel.setAttribute('aria-labelledby', `env-tab-${env}`);
  }
  envTabs.addEventListener('keydown', (event) => {
    const moves = { ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const step = moves[event.key];
    const index = Number.isFinite(step)
      ? (environments.indexOf(env) + step + environments.length) % environments.length
      : (step < 0 ? 0 : environments.length - 1);
    selectEnvironment(environments[index]).then(() => document.getElementById(`env-tab-${env}`)?.focus());
  });

  async function selectEnvironment(next) {
    if (next === env) return;
    if (dirty && !(await confirmDialog({
      title: 'Discard unsaved changes?', message: `Your changes to ${env} are not saved.`, confirmLabel: 'Discard', danger: true,
    }))) return;
    env = next;
    sessionStorage.setItem(`ensign.flag-env.${set}/${key}`, env);
    resetDraft();
    renderTabs();
    renderConfig();
    testResult.replaceChildren();
  }

  // -- configuration editor ---------------------------------------------------

  function resetDraft() {
    const config = flag.environments[env];
    draft = {
      state: config.state,
      type: typeOfVariants(config.variants),
      variants: Object.entries(config.variants).map(([name, value]) => ({ name, value: clone(value), text: null })),
      defaultVariant: config.defaultVariant,
      targeting: clone(config.targeting),
    };
    dirty = false;
  }

  const configStatus = el('div', { class: 'config-status', 'aria-live': 'polite' });
  const saveButton = button('Save changes', { kind: 'primary', type: 'submit' });
  const discardButton = button('Discard changes', { onclick: () => { resetDraft(); renderConfig(); } });
  const commentInput = el('input', { type: 'text', id: 'config-comment', maxlength: '500', placeholder: 'Why? (recorded in the history)' });
  let form = null;

  function markDirty() {
    dirty = true;
    saveButton.disabled = !mayChange(env);
    discardButton.disabled = false;
  }

  function variantNames() {
    return draft.variants.map((v) => v.name).filter((n) => n !== '');
  }

  function renderConfig() {
    const config = flag.environments[env];
    const editable = mayChange(env);
    const on = config.state === 'ENABLED';

    const toggle = el('button', {
      type: 'button', role: 'switch', class: `toggle ${on ? 'is-on' : ''}`, id: 'flag-toggle',
      'aria-checked': String(on), disabled: !editable,
      onclick: () => toggleFlag(!on),
    }, el('span', { class: 'toggle-track', 'aria-hidden': 'true' }, el('span', { class: 'toggle-thumb' })),
    el('span', { class: 'toggle-text', text: `Serving in ${env}` }));

    // Variants.
    const variantRows = el('div', { class: 'rows' });
    const typeSelect = el('select', {
      id: 'variant-type', disabled: !editable, class: 'compact',
      onchange: (event) => {
        draft.type = event.target.value;
        for (const v of draft.variants) { v.value = blankValue(draft.type); v.text = null; }
        renderVariants();
        markDirty();
      },
    }, ...TYPES.map((t) => el('option', { value: t, text: t })));
    typeSelect.value = draft.type;
    const defaultSelect = el('select', {
      id: 'default-variant', disabled: !editable, class: 'compact',
      onchange: (event) => { draft.defaultVariant = event.target.value || null; markDirty(); },
    });

    function renderDefaultOptions() {
      const names = variantNames();
      defaultSelect.replaceChildren(el('option', { value: '', text: '(none: the code default)' }),
        ...names.map((n) => el('option', { value: n, text: n })));
      defaultSelect.value = draft.defaultVariant && names.includes(draft.defaultVariant) ? draft.defaultVariant : '';
    }

    function valueInput(variant, index) {
      const label = `Value of variant ${variant.name || index + 1}`;
      if (draft.type === 'boolean') {
        const s = el('select', {
          'aria-label': label, disabled: !editable,
          onchange: (event) => { variant.value = event.target.value === 'true'; markDirty(); },
        }, el('option', { value: 'true', text: 'true' }), el('option', { value: 'false', text: 'false' }));
        s.value = String(variant.value === true);
        return s;
      }
      if (draft.type === 'object') {
        return el('textarea', {
          'aria-label': label, rows: '3', disabled: !editable, spellcheck: 'false',
          value: variant.text ?? JSON.stringify(variant.value, null, 2),
          oninput: (event) => { variant.text = event.target.value; markDirty(); },
        });
      }
      return el('input', {
        type: draft.type === 'number' ? 'number' : 'text', step: 'any', 'aria-label': label, disabled: !editable,
        value: String(variant.value),
        oninput: (event) => {
          variant.value = draft.type === 'number' ? Number(event.target.value) : event.target.value;
          markDirty();
        },
      });
    }

    function renderVariants() {
      variantRows.replaceChildren(...draft.variants.map((variant, index) => {
        const row = el('div', { class: 'row variant-row', dataset: { pointer: `/variants/${escapeSegment(variant.name)}` } },
          el('input', {
            type: 'text', value: variant.name, 'aria-label': `Name of variant ${index + 1}`, class: 'mono variant-name',
            disabled: !editable, maxlength: '256',
            oninput: (event) => {
              variant.name = event.target.value.trim();
              row.dataset.pointer = `/variants/${escapeSegment(variant.name)}`;
              renderDefaultOptions();
              editor.setVariants(variantNames());
              markDirty();
            },
          }),
          valueInput(variant, index),
          el('button', {
            type: 'button', class: 'btn btn-ghost btn-icon', text: '✕', disabled: !editable,
            'aria-label': `Remove variant ${variant.name || index + 1}`,
            onclick: () => {
              draft.variants.splice(index, 1);
              renderVariants();
              markDirty();
            },
          }),
          el('p', { class: 'field-error row-error', hidden: true }));
        return row;
      }));
      typeSelect.disabled = !editable || draft.variants.length > 0;
      renderDefaultOptions();
      if (editor) editor.setVariants(variantNames());
    }

    const addVariant = button('Add variant', {
      icon: 'plus', disabled: !editable, class: 'btn btn-small',
      onclick: () => {
        const taken = new Set(variantNames());
        let n = draft.variants.length + 1;
        while (taken.has(`variant-${n}`)) n += 1;
        draft.variants.push({ name: `variant-${n}`, value: blankValue(draft.type), text: null });
        renderVariants();
        markDirty();
        variantRows.querySelector('.variant-row:last-child .variant-name')?.focus();
      },
    });

    const targetingBox = el('div', { class: 'targeting-box' });
    saveButton.disabled = !editable || !dirty;
    discardButton.disabled = !dirty;
    commentInput.disabled = !editable;

    const others = environments.filter((e) => e !== env && mayChange(e));
    const copyTarget = el('select', { id: 'copy-target', disabled: !others.length, class: 'compact' },
      ...others.map((e) => el('option', { value: e, text: e })));
    const copyButton = button('Copy', {
      icon: 'copy', disabled: !others.length,
      onclick: () => copyTo(copyTarget.value),
    });

    form = el('form', { class: 'config-form', novalidate: true, onsubmit: (event) => { event.preventDefault(); save(); } },
      el('div', { class: 'config-toggle', dataset: { pointer: '/state' } }, toggle,
        el('span', { class: 'hint', text: on ? 'Clients get the variants below.' : 'Clients get their code default (reason DISABLED).' }),
        errorSlot()),
      el('fieldset', { class: 'field-group', dataset: { pointer: '/variants' } },
        el('legend', { text: 'Variants' }),
        el('div', { class: 'inline-field' },
          el('label', { for: 'variant-type', text: 'Type' }), typeSelect,
          el('span', { class: 'hint', text: 'All variants of a flag share one type; remove them to change it.' })),
        variantRows, el('div', {}, addVariant), errorSlot()),
      el('div', { class: 'inline-field', dataset: { pointer: '/defaultVariant' } },
        el('label', { for: 'default-variant', text: 'Default variant' }), defaultSelect,
        el('span', { class: 'hint', text: 'Served when targeting matches nobody.' }),
        errorSlot()),
      el('fieldset', { class: 'field-group config-targeting' },
        el('legend', { text: 'Targeting' }),
        targetingBox),
      el('div', { class: 'config-save' },
        el('label', { for: 'config-comment', class: 'visually-hidden', text: 'Comment for the history' }), commentInput,
        discardButton, saveButton),
      configStatus);

    configPanel.replaceChildren(
      el('div', { class: 'card-head' },
        el('h2', { text: `Configuration in ${env}` }),
        el('span', { class: 'muted', text: `configuration version ${config.version}` })),
      el('div', { class: 'card-pad' }, form),
      el('div', { class: 'config-copy' },
        el('label', { for: 'copy-target', text: `Copy ${env}'s saved configuration to` }), copyTarget, copyButton));

    editor = ruleEditor(targetingBox, {
      mode: 'targeting',
      value: draft.targeting,
      variants: variantNames(),
      segments,
      readOnly: !editable,
      validate: (targeting) => validateTargeting(targeting),
      onChange: (targeting) => { draft.targeting = targeting; markDirty(); },
    });
    renderVariants();
    configStatus.replaceChildren();
  }

  /** The PUT body from the draft; throws an error with `problems` for local mistakes. */
  function configBody() {
    const problems = [];
    const variants = {};
    draft.variants.forEach((variant, index) => {
      const pointer = `/variants/${escapeSegment(variant.name)}`;
      if (!variant.name) problems.push({ path: '/variants', message: `variant ${index + 1} needs a name` });
      else if (Object.hasOwn(variants, variant.name)) problems.push({ path: '/variants', message: `“${variant.name}” is used twice` });
      let value = variant.value;
      if (draft.type === 'object' && variant.text !== null) {
        try {
          value = JSON.parse(variant.text);
        } catch (error) {
          problems.push({ path: pointer, message: `not valid JSON: ${error.message}` });
        }
      }
      if (draft.type === 'number' && !Number.isFinite(value)) problems.push({ path: pointer, message: 'must be a number' });
      variants[variant.name] = value;
    });
    let targeting = null;
    try {
      targeting = editor.getValue();
    } catch (error) {
      problems.push({ path: '/targeting', message: error.message });
    }
    if (problems.length) {
      const error = new Error('the configuration has problems');
      error.problems = problems;
      throw error;
    }
    return { state: draft.state, variants, defaultVariant: draft.defaultVariant || null, targeting };
  }

  /** Live validation of the targeting with the rest of the draft (null: not available). */
  async function validateTargeting(targeting) {
    let body;
    try {
      body = { ...configBody(), targeting };
    } catch {
      return null;
    }
    try {
      const answer = await api.post(`${flagPath}/environments/${encodeURIComponent(env)}/validate`, body);
      return (answer.problems || []).filter((p) => (p.pointer ?? p.path ?? '').startsWith('/targeting'));
    } catch {
      return null; // A server without live validation: saving still validates.
    }
  }

  /** Shows a failed save's problems: the rule's in the rule editor, the others by their fields. */
  function showConfigProblems(error) {
    const problems = error.problems || [];
    const inRule = (p) => (p.path ?? p.pointer ?? '').startsWith('/targeting');
    editor.setProblems(problems.filter(inRule));
    showProblems(form, { message: `Nothing was saved: ${error.message}`, problems: problems.filter((p) => !inRule(p)) });
  }

  async function save() {
    clearProblems(form);
    editor.setProblems([]);
    configStatus.replaceChildren();
    let body;
    try {
      body = configBody();
    } catch (error) {
      showConfigProblems(error);
      return;
    }
    const comment = commentInput.value.trim();
    if (comment) body.comment = comment;
    saveButton.disabled = true;
    try {
      const { data } = await api.put(`${flagPath}/environments/${encodeURIComponent(env)}`, body, { etag: etagOf(flag.version) });
      commentInput.value = '';
      replaceFlag(data);
      ctx.toast(`Saved ${key} in ${env}.`, 'ok');
    } catch (error) {
      saveButton.disabled = false;
      reportWriteError(error);
    }
  }

  /** Shows why a configuration write failed; the input stays as it is. */
  function reportWriteError(error) {
    if (error.status === 412) {
      const reloadButton = button('Reload the flag (discards your edits)', { kind: 'primary', onclick: () => reload() });
      configStatus.replaceChildren(el('div', { class: 'notice notice-warn conflict', role: 'alert' },
        el('strong', { text: 'Someone else changed this flag after you opened it.' }),
        el('p', { text: 'Nothing was saved and your edits are still here. Reload to see their version, then apply your change again.' }),
        el('div', { class: 'actions' }, reloadButton)));
      reloadButton.focus();
      return;
    }
    if (error.status === 422) {
      showConfigProblems(error);
      return;
    }
    configStatus.replaceChildren(notice(`Nothing was saved: ${error.message}`, 'danger'));
  }

  async function reload() {
    try {
      replaceFlag(await api.get(flagPath));
    } catch (error) {
      ctx.toast(`The flag could not be reloaded: ${error.message}`, 'error');
    }
  }

  /** Shows a new version of the flag (after a write or a reload). */
  function replaceFlag(updated) {
    flag = updated;
    resetDraft();
    renderHeader();
    renderTabs();
    renderConfig();
    loadAudit(true);
    loadKillSwitch();
  }

  async function toggleFlag(enable) {
    const verb = enable ? 'on' : 'off';
    const ok = await confirmDialog({
      title: `Turn ${key} ${verb} in ${env}?`,
      message: enable
        ? `Clients in ${env} get the configured variants within seconds.`
        : `Clients in ${env} get their code default within seconds (reason DISABLED).`,
      confirmLabel: `Turn ${verb}`,
      danger: !enable,
    });
    if (!ok) return;
    const pending = dirty ? clone(draft) : null;
    try {
      const updated = await api.post(`${flagPath}/environments/${encodeURIComponent(env)}/toggle`, { enabled: enable }, { etag: etagOf(flag.version) });
      replaceFlag(updated);
      if (pending) {
        // The toggle was this page's own write: the unsaved edits stay.
        draft = { ...pending, state: updated.environments[env].state };
        renderConfig();
        markDirty();
      }
      ctx.toast(`${key} is ${verb} in ${env}.`, 'ok');
    } catch (error) {
      reportWriteError(error);
    }
  }

  async function copyTo(target) {
    if (!target) return;
    const ok = await confirmDialog({
      title: `Copy to ${target}?`,
      message: `${target}'s state, variants, default variant and targeting are replaced by ${env}'s saved configuration.`,
      confirmLabel: `Copy to ${target}`,
      danger: true,
    });
    if (!ok) return;
    try {
      replaceFlag(await api.post(`${flagPath}/copy`, { from: env, to: target }, { etag: etagOf(flag.version) }));
      ctx.toast(`Copied ${env} to ${target}.`, 'ok');
    } catch (error) {
      reportWriteError(error);
    }
  }

  // -- test panel -------------------------------------------------------------

  const contextInput = el('textarea', {
    id: 'test-context', rows: '6', spellcheck: 'false', 'aria-describedby': 'test-context-hint',
    value: JSON.stringify({ targetingKey: 'user-1', email: 'user@example.com' }, null, 2),
  });
  const testResult = el('div', { class: 'test-result stack', 'aria-live': 'polite' });
  testPanel.append(
    el('h2', { id: 'flag-test-title', text: 'Test this flag' }),
    el('div', { class: 'field' },
      el('label', { for: 'test-context', text: 'Evaluation context (JSON)' }),
      contextInput,
      el('p', { class: 'hint', id: 'test-context-hint', text: 'targetingKey and attributes, evaluated against the saved configuration of the selected environment.' })),
    el('div', {}, button('Evaluate', { kind: 'primary', onclick: () => evaluate() })),
    testResult);

  async function evaluate() {
    let context;
    const text = contextInput.value;
    try {
      if (text.length > MAX_CONTEXT_CHARS) throw new Error(`is too long (at most ${MAX_CONTEXT_CHARS} characters)`);
      context = JSON.parse(text);
      if (context === null || typeof context !== 'object' || Array.isArray(context)) throw new Error('must be a JSON object');
    } catch (error) {
      contextInput.setAttribute('aria-invalid', 'true');
      testResult.replaceChildren(el('p', { class: 'field-error', text: `The context ${error.message}` }));
      return;
    }
    contextInput.removeAttribute('aria-invalid');
    try {
      const result = await api.post(`${flagPath}/environments/${encodeURIComponent(env)}/evaluate`, { context });
      testResult.replaceChildren(
        dirty ? notice('Your unsaved changes are not part of this test: it evaluates the saved configuration.', 'warn') : '',
        evaluation(result));
    } catch (error) {
      testResult.replaceChildren(el('p', { class: 'field-error', text: error.status === 404 ? 'This server cannot test flags.' : `The test failed: ${error.message}` }));
    }
  }

  function evaluation(result) {
    const rows = [
      ['Value', result.value === undefined || result.value === null ? '(code default)' : JSON.stringify(result.value)],
      ['Variant', result.variant ?? '—'],
      ['Reason', result.reason ?? '—'],
    ];
    if (result.errorCode) rows.push(['Error', `${result.errorCode}${result.errorMessage ? `: ${result.errorMessage}` : ''}`]);
    const steps = (result.explanation || []).map((step) => {
      if (typeof step === 'string') return el('li', { text: step });
      if (step && step.kind === 'fractional') return el('li', {}, bucketExplanation(step));
      return el('li', { class: 'mono', text: JSON.stringify(step) });
    });
    return el('div', { class: 'stack' },
      el('dl', { class: 'result-list' }, ...rows.map(([k, v]) => el('div', {}, el('dt', { text: k }), el('dd', { class: 'mono', text: v })))),
      steps.length ? el('h3', { text: 'How it was decided' }) : null,
      steps.length ? el('ol', { class: 'explanation' }, ...steps) : null);
  }

  function bucketExplanation(step) {
    const total = step.totalWeight || 1;
    const bar = el('div', { class: 'bucket-bar', role: 'img', 'aria-label': `Bucket ${step.bucket} of ${total}, which serves ${step.variant}` },
      ...(step.buckets || []).map((b) => {
        const part = el('span', { class: `bucket-part ${b.variant === step.variant ? 'is-chosen' : ''}`, text: b.variant ?? '' });
        part.style.flexGrow = String(Math.max(b.weight, 0));
        return part;
      }));
    const marker = el('span', { class: 'bucket-marker' });
    marker.style.left = `${Math.min(100, (step.bucket / total) * 100)}%`;
    bar.append(marker);
    return el('div', { class: 'stack' },
      el('p', {}, 'Split by ', el('code', { text: step.bucketBy }), `: bucket ${step.bucket} of ${total}, which serves `, el('strong', { text: step.variant }), '.'),
      bar,
      el('ul', { class: 'bucket-ranges' }, ...(step.buckets || []).map((b) => el('li', {
        text: `${b.variant ?? '(no variant)'}: weight ${b.weight}, ${b.to > b.from ? `buckets ${b.from}–${b.to - 1}` : 'no buckets'}`,
      }))));
  }

  // -- kill switch -------------------------------------------------------------

  function labels(map) {
    return Object.entries(map || {}).map(([k, v]) => `${k}=${v}`).join(', ');
  }

  async function loadKillSwitch() {
    const body = el('div', { class: 'stack' });
    killPanel.replaceChildren(el('h2', { id: 'flag-kill-title', text: 'Kill switch' }), body);
    let status;
    try {
      status = await api.get(`${flagPath}/kill-switch`);
    } catch (error) {
      body.append(el('p', { class: 'muted', text: error.status === 404 || error.status === 405 ? 'No kill switches.' : `The kill-switch status could not be read: ${error.message}` }));
      return;
    }
    const bindings = status.bindings || [];
    const active = status.active || [];
    const history = status.history || [];
    if (!bindings.length && !active.length && !history.length) {
      body.append(el('p', { class: 'muted', text: 'No kill switches. An alert can flip this flag once a kill-switch binding names it.' }));
      return;
    }
    if (active.length) {
      body.append(el('h3', { text: 'Active' }), el('ul', { class: 'inline-list kill-list' }, ...active.map((kill) => el('li', { class: 'notice notice-danger' },
        el('p', {}, el('strong', { text: `${kill.environment}: ${kill.action}` }), kill.dryRun ? ' (dry run: nothing was changed)' : ''),
        el('p', { text: killCause(kill) }),
        el('p', { text: [
          `since ${formatTime(kill.at)}`,
          kill.resolvedAt ? `alert resolved ${formatTime(kill.resolvedAt)}` : 'alert still firing',
          kill.restoreDueAt ? `automatic restore ${formatTime(kill.restoreDueAt)}` : null,
        ].filter(Boolean).join(' · ') }),
        el('div', {}, button(`Restore ${kill.environment}`, { class: 'btn btn-small', disabled: !mayChange(kill.environment), onclick: () => restoreKill(kill.environment) }))))));
    }
    if (bindings.length) {
      body.append(el('h3', { text: 'Alerts that can flip it' }), el('ul', { class: 'inline-list kill-list' }, ...bindings.map((b) => el('li', {},
        el('p', {}, el('strong', { text: b.name }), b.dryRun ? ' (dry run)' : ''),
        b.description ? el('p', { class: 'hint', text: b.description }) : null,
        el('p', { class: 'mono hint', text: `alerts with ${labels(b.matchers)}` }),
        el('p', { class: 'hint', text: [
          ...(b.targets || []).filter((t) => t.flagSet === set && t.flag === key).map((t) => `${t.environment}: ${t.action}`),
          b.onResolved === 'restore' ? `restores ${Math.round(b.cooldownSeconds / 60)} min after the alert resolves` : 'stays until restored by hand',
        ].join(' · ') })))));
    }
    if (history.length) {
      body.append(el('h3', { text: 'History' }), el('ul', { class: 'inline-list kill-list' }, ...history.map((entry) => el('li', {},
        el('p', { text: `${entry.environment}: ${entry.action}, ${formatTime(entry.at)}${entry.dryRun ? ' (dry run)' : ''}` }),
        el('p', { class: 'hint', text: killCause(entry) }),
        el('p', { class: 'hint', text: entry.restoredAt
          ? `${RESTORE_OUTCOMES[entry.restoreOutcome] ?? 'closed'} ${formatTime(entry.restoredAt)} by ${entry.restoredBy || 'automation'}`
          : 'not restored' })))));
    }
  }

  /** Which binding and alert caused a kill. */
  function killCause(kill) {
    const { alertname, ...rest } = kill.alert?.labels ?? {};
    const alert = kill.alert ? `alert ${alertname ?? kill.alert.fingerprint}${Object.keys(rest).length ? ` (${labels(rest)})` : ''}` : null;
    return [kill.binding ? `binding ${kill.binding}` : 'the alert\'s own labels', alert].filter(Boolean).join(', ');
  }

  async function restoreKill(environment) {
    const ok = await confirmDialog({
      title: `Restore ${key} in ${environment}?`,
      message: 'The configuration from before the kill switch fired is served again.',
      confirmLabel: 'Restore',
    });
    if (!ok) return;
    try {
      await api.post(`${flagPath}/environments/${encodeURIComponent(environment)}/kill-switch/restore`, {});
      ctx.toast(`Restored ${key} in ${environment}.`, 'ok');
      await reload();
    } catch (error) {
      ctx.toast(`Nothing was restored: ${error.message}`, 'error');
    }
  }

  // -- audit -------------------------------------------------------------------

  const auditList = el('ol', { class: 'audit-list' });
  const auditMore = button('Older entries', { hidden: true, onclick: () => loadAudit(false) });
  let auditBefore = null;
  auditPanel.append(el('div', { class: 'card-head' }, el('h2', { id: 'flag-audit-title', text: 'History' })),
    auditList, el('div', { class: 'card-pad audit-more' }, auditMore));

  async function loadAudit(fresh) {
    if (fresh) auditBefore = null;
    const query = { resourceType: 'flag', resourceKey: `${set}/${key}`, limit: String(AUDIT_PAGE) };
    if (auditBefore !== null) query.before = String(auditBefore);
    let page;
    try {
      page = await api.get('/audit', query);
    } catch (error) {
      auditList.replaceChildren(el('li', { class: 'field-error', text: `The history could not be read: ${error.message}` }));
      return;
    }
    const items = page.items.map((entry) => el('li', { class: 'audit-entry' },
      el('div', { class: 'audit-meta' },
        el('strong', { class: 'mono', text: entry.action }),
        entry.environment ? badge(entry.environment, 'accent') : null,
        el('span', { class: 'muted', text: `by ${entry.actor}` }),
        timeAgo(entry.at)),
      entry.comment ? el('p', { class: 'audit-comment', text: `“${entry.comment}”` }) : null,
      renderDiff({ before: entry.before, after: entry.after, changes: entry.changes })));
    if (fresh) auditList.replaceChildren(...items);
    else auditList.append(...items);
    if (fresh && !items.length) auditList.append(el('li', { class: 'muted audit-entry', text: 'No changes recorded.' }));
    auditBefore = page.nextBefore ?? null;
    auditMore.hidden = auditBefore === null;
  }

  resetDraft();
  renderHeader();
  renderTabs();
  renderConfig();
  loadAudit(true);
  loadKillSwitch();
}
