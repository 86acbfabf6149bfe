// The rule editor: a structured view for the rules people reach for and a raw
// JsonLogic view, kept in sync.
//
//   ruleEditor(container, {mode: 'targeting' | 'condition', value, variants,
//                          segments, validate, onChange, readOnly})
//     → {getValue, setValue, ...}
//
// In 'targeting' mode the value is a flag's targeting: an ordered list of
// "if <condition> serve <variant | split>" rules and what to serve otherwise
// (the default variant, one variant, or a `fractional` split such as a 25 %
// rollout). In 'condition' mode (segments) it is one condition. A condition
// is one clause or an AND / OR of clauses on attributes (equals, one of,
// starts with, ends with, semver and number comparisons) and segments
// (`$ref`).
//
// `validate(value)` (optional) is called, debounced, after each change and
// resolves to the server's problems (`[{pointer, message, severity}]`, or
// `{problems}`), or null when it cannot tell; they are shown under the rule.
// `onChange(value)` sees every change.
//
// The structured view only takes a rule it can write back exactly: a rule is
// parsed into the model, written back, and compared with the original; when
// they differ, the structured view says the rule is edited as JsonLogic
// instead of rewriting it.

import { jsonEqual, formatJson } from './diff.js';
import { h, debounce } from './dom.js';

/** Operators offered for attribute clauses, with how they are written. */
const OPERATORS = [
  { id: '==', label: 'equals', kind: 'scalar' },
  { id: '!=', label: 'does not equal', kind: 'scalar' },
  { id: 'in', label: 'is one of', kind: 'list' },
  { id: 'starts_with', label: 'starts with', kind: 'string' },
  { id: 'ends_with', label: 'ends with', kind: 'string' },
  { id: 'sem_ver:=', label: 'version =', kind: 'version' },
  { id: 'sem_ver:!=', label: 'version ≠', kind: 'version' },
  { id: 'sem_ver:<', label: 'version <', kind: 'version' },
  { id: 'sem_ver:<=', label: 'version ≤', kind: 'version' },
  { id: 'sem_ver:>', label: 'version >', kind: 'version' },
  { id: 'sem_ver:>=', label: 'version ≥', kind: 'version' },
  { id: 'sem_ver:^', label: 'version same major (^)', kind: 'version' },
  { id: 'sem_ver:~', label: 'version same minor (~)', kind: 'version' },
  { id: '<', label: 'number <', kind: 'number' },
  { id: '<=', label: 'number ≤', kind: 'number' },
  { id: '>', label: 'number >', kind: 'number' },
  { id: '>=', label: 'number ≥', kind: 'number' },
];
const OPERATOR = Object.fromEntries(OPERATORS.map((o) => [o.id, o]));
const SEMVER_OPS = new Set(['=', '!=', '<', '<=', '>', '>=', '^', '~']);

/** The JsonLogic view grows with its text between these heights (lines). */
const MIN_ROWS = 6;
const MAX_ROWS = 28;

/** How long typing pauses before the rule is validated by the server. */
const VALIDATE_DELAY_MS = 400;

let editorCount = 0;

// ---------------------------------------------------------------------------
// Model ⇄ JsonLogic

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The single `[operator, args]` of a JsonLogic operation, or null. */
function operation(rule) {
  if (!isPlainObject(rule)) return null;
  const keys = Object.keys(rule);
  return keys.length === 1 ? [keys[0], rule[keys[0]]] : null;
}

/** The attribute name of `{"var": "name"}`, or null. */
function attributeOf(rule) {
  const op = operation(rule);
  return op && op[0] === 'var' && typeof op[1] === 'string' ? op[1] : null;
}

function isScalar(value) {
  return ['string', 'number', 'boolean'].includes(typeof value);
}

function typeOf(value) {
  return typeof value === 'number' ? 'number' : typeof value === 'boolean' ? 'boolean' : 'text';
}

/** A clause of the model from a JsonLogic rule, or null. */
function parseClause(rule) {
  const op = operation(rule);
  if (!op) return null;
  const [name, args] = op;
  if (name === '$ref') return typeof args === 'string' ? { type: 'segment', segment: args } : null;
  if (!Array.isArray(args)) return null;
  const attr = attributeOf(args[0]);
  if (attr === null) return null;
  if ((name === '==' || name === '!=') && args.length === 2 && isScalar(args[1])) {
    return { type: 'attr', attr, op: name, value: args[1], valueType: typeOf(args[1]) };
  }
  if (name === 'in' && args.length === 2 && Array.isArray(args[1]) && args[1].every(isScalar)) {
    const valueType = args[1].length ? typeOf(args[1][0]) : 'text';
    if (!args[1].every((v) => typeOf(v) === valueType)) return null;
    return { type: 'attr', attr, op: 'in', value: args[1], valueType };
  }
  if ((name === 'starts_with' || name === 'ends_with') && args.length === 2
      && typeof args[1] === 'string') {
    return { type: 'attr', attr, op: name, value: args[1], valueType: 'text' };
  }
  if (name === 'sem_ver' && args.length === 3 && SEMVER_OPS.has(args[1])
      && typeof args[2] === 'string') {
    return { type: 'attr', attr, op: `sem_ver:${args[1]}`, value: args[2], valueType: 'text' };
  }
  if (['<', '<=', '>', '>='].includes(name) && args.length === 2 && typeof args[1] === 'number') {
    return { type: 'attr', attr, op: name, value: args[1], valueType: 'number' };
  }
  return null;
}

/** The JsonLogic of a clause. */
function writeClause(clause) {
  if (clause.type === 'segment') return { $ref: clause.segment };
  const attr = { var: clause.attr };
  if (clause.op.startsWith('sem_ver:')) {
    return { sem_ver: [attr, clause.op.slice('sem_ver:'.length), clause.value] };
  }
  return { [clause.op]: [attr, clause.value] };
}

/** A condition of the model (`{join, clauses}`) from a JsonLogic rule, or null. */
function parseCondition(rule) {
  const op = operation(rule);
  if (op && (op[0] === 'and' || op[0] === 'or') && Array.isArray(op[1]) && op[1].length > 1) {
    const clauses = op[1].map(parseClause);
    return clauses.every(Boolean) ? { join: op[0], clauses } : null;
  }
  const clause = parseClause(rule);
  return clause ? { join: 'and', clauses: [clause] } : null;
}

/** The JsonLogic of a condition (null when it has no clause). */
function writeCondition(condition) {
  const clauses = condition.clauses.map(writeClause);
  if (!clauses.length) return null;
  return clauses.length === 1 ? clauses[0] : { [condition.join]: clauses };
}

/** What a rule serves: the default variant, one variant, or a split. */
function parseServe(rule) {
  if (rule === null || rule === undefined) return { type: 'default' };
  if (typeof rule === 'string') return { type: 'variant', variant: rule };
  const op = operation(rule);
  if (!op || op[0] !== 'fractional' || !Array.isArray(op[1]) || !op[1].length) return null;
  let entries = op[1];
  let bucketBy = '';
  if (!Array.isArray(entries[0])) {
    bucketBy = attributeOf(entries[0]);
    if (bucketBy === null) return null;
    entries = entries.slice(1);
  }
  const buckets = entries.map((entry) => (Array.isArray(entry) && entry.length === 2
    && typeof entry[0] === 'string' && Number.isInteger(entry[1]) && entry[1] >= 0
    ? { variant: entry[0], weight: entry[1] } : null));
  if (!buckets.length || !buckets.every(Boolean)) return null;
  return { type: 'split', bucketBy, buckets };
}

function writeServe(serve) {
  if (serve.type === 'default') return null;
  if (serve.type === 'variant') return serve.variant;
  const entries = serve.buckets.map((b) => [b.variant, b.weight]);
  return { fractional: serve.bucketBy ? [{ var: serve.bucketBy }, ...entries] : entries };
}

/** The targeting model (`{rules: [{condition, serve}], otherwise}`), or null. */
function parseTargeting(rule) {
  if (rule === null || rule === undefined
      || (isPlainObject(rule) && !Object.keys(rule).length)) {
    return { rules: [], otherwise: { type: 'default' } };
  }
  const op = operation(rule);
  if (op && op[0] === 'if' && Array.isArray(op[1]) && op[1].length >= 2) {
    const args = op[1];
    const rules = [];
    for (let i = 0; i + 1 < args.length; i += 2) {
      const condition = parseCondition(args[i]);
      const serve = parseServe(args[i + 1]);
      if (!condition || !serve) return null;
      rules.push({ condition, serve });
    }
    const otherwise = args.length % 2 ? parseServe(args[args.length - 1]) : { type: 'default' };
    return otherwise ? { rules, otherwise } : null;
  }
  const otherwise = parseServe(rule);
  return otherwise ? { rules: [], otherwise } : null;
}

function writeTargeting(model) {
  if (!model.rules.length) return writeServe(model.otherwise);
  const args = [];
  for (const rule of model.rules) args.push(writeCondition(rule.condition), writeServe(rule.serve));
  if (model.otherwise.type !== 'default') args.push(writeServe(model.otherwise));
  return { if: args };
}

/** The model of `value` when it is written back exactly; otherwise null. */
export function toModel(mode, value) {
  const empty = value === null || value === undefined
    || (isPlainObject(value) && !Object.keys(value).length);
  const model = mode === 'condition'
    ? (empty ? { join: 'and', clauses: [] } : parseCondition(value))
    : parseTargeting(value);
  if (!model) return null;
  const written = fromModel(mode, model);
  return (empty ? written === null : jsonEqual(written, value)) ? model : null;
}

/** The JsonLogic of a model. */
export function fromModel(mode, model) {
  return mode === 'condition' ? writeCondition(model) : writeTargeting(model);
}

// ---------------------------------------------------------------------------
// DOM helpers

/** `h` with a `text` prop for the element's text. */
const el = (tag, { text, ...props } = {}, ...children) => h(tag, props, text, ...children);

function select(options, current, attrs) {
  const node = el('select', attrs);
  for (const option of options) {
    const [value, label] = Array.isArray(option) ? option : [option, option];
    node.append(el('option', { value, text: label }));
  }
  node.value = current;
  return node;
}

/** Turns the text of a value field into the clause's type. */
function parseTyped(text, valueType) {
  if (valueType === 'number') {
    const n = Number(text);
    return text.trim() !== '' && Number.isFinite(n) ? n : text;
  }
  if (valueType === 'boolean') return text === 'true';
  return text;
}

function names(list) {
  if (!list) return [];
  if (Array.isArray(list)) return list.map((x) => (typeof x === 'string' ? x : x.key));
  return Object.keys(list);
}

// ---------------------------------------------------------------------------
// The editor

/**
 * Mounts a rule editor in `container`. Returns `{getValue, setValue,
 * setVariants, setProblems}`. `getValue()` throws an Error
 * (with `problems`: the rule's pointer and why) while the JsonLogic text is
 * not valid JSON.
 */
export function ruleEditor(container, options = {}) {
  const mode = options.mode === 'condition' ? 'condition' : 'targeting';
  const id = `rule-editor-${++editorCount}`;
  let variants = names(options.variants);
  const segments = names(options.segments);
  let value = options.value ?? null;
  let model = toModel(mode, value);
  let syntaxError = null;
  let view = 'structured';
  let validateRun = 0;

  const structuredTab = el('button', {
    type: 'button', role: 'tab', id: `${id}-tab-structured`, 'aria-controls': `${id}-structured`,
    class: 'rule-tab', text: 'Rules', onclick: () => show('structured'),
  });
  const rawTab = el('button', {
    type: 'button', role: 'tab', id: `${id}-tab-raw`, 'aria-controls': `${id}-raw`,
    class: 'rule-tab', text: 'JsonLogic', onclick: () => show('raw'),
  });
  const tabs = el('div', { role: 'tablist', class: 'rule-tabs', 'aria-label': 'Rule view' },
    structuredTab, rawTab);
  tabs.addEventListener('keydown', (event) => {
    if (event.key !== 'ArrowLeft' && event.key !== 'ArrowRight') return;
    event.preventDefault();
    show(view === 'structured' ? 'raw' : 'structured');
    (view === 'structured' ? structuredTab : rawTab).focus();
  });

  const structured = el('div', {
    role: 'tabpanel', id: `${id}-structured`, 'aria-labelledby': structuredTab.id,
    class: 'rule-structured',
  });
  const textarea = el('textarea', {
    id: `${id}-json`, class: 'rule-json', spellcheck: 'false',
    'aria-describedby': `${id}-json-status`, autocomplete: 'off',
  });
  const status = el('div', { id: `${id}-json-status`, class: 'rule-status', 'aria-live': 'polite' });
  const raw = el('div', {
    role: 'tabpanel', id: `${id}-raw`, 'aria-labelledby': rawTab.id, class: 'rule-raw',
  },
  el('label', { for: textarea.id, text: mode === 'condition' ? 'Condition (JsonLogic)' : 'Targeting (JsonLogic)' }),
  textarea);
  const root = el('div', { class: 'rule-editor', dataset: { mode } }, tabs, structured, raw, status);
  container.replaceChildren(root);

  let serverProblems = [];

  function show(next) {
    view = next;
    structuredTab.setAttribute('aria-selected', String(view === 'structured'));
    rawTab.setAttribute('aria-selected', String(view === 'raw'));
    structuredTab.tabIndex = view === 'structured' ? 0 : -1;
    rawTab.tabIndex = view === 'raw' ? 0 : -1;
    structured.hidden = view !== 'structured';
    raw.hidden = view !== 'raw';
  }

  function writeText() {
    textarea.value = value === null ? '' : formatJson(value);
    fitText();
  }

  function fitText() {
    const lines = textarea.value.split('\n').length + 1;
    textarea.rows = Math.min(MAX_ROWS, Math.max(MIN_ROWS, lines));
  }

  /** Where in the rule a problem is (its pointer without the rule's own). */
  function where(problem) {
    return (problem.pointer ?? problem.path ?? '').replace(/^\/(targeting|rule)(?=\/|$)/, '');
  }

  function renderStatus() {
    const items = [];
    if (syntaxError) items.push({ message: syntaxError, severity: 'error' });
    for (const p of serverProblems) if (p.message !== syntaxError) items.push(p);
    textarea.setAttribute('aria-invalid', String(items.some((p) => p.severity !== 'warning')));
    status.replaceChildren(...items.map((p) => el('p', {
      class: p.severity === 'warning' ? 'field-warning' : 'field-error',
      text: `${where(p) ? `${where(p)}: ` : ''}${p.message}`,
    })));
  }

  /** The model changed: write the JsonLogic, tell the owner, validate. */
  function commit({ rerender = false, focus = null } = {}) {
    value = fromModel(mode, model);
    syntaxError = null;
    writeText();
    if (rerender) renderStructured(focus);
    changed();
  }

  function changed() {
    renderStatus();
    if (options.onChange) options.onChange(value);
    scheduleValidation();
  }

  const validateSoon = debounce(async () => {
    const run = ++validateRun;
    let problems = null;
    try {
      const answer = await options.validate(value);
      problems = Array.isArray(answer) ? answer : answer && answer.problems;
    } catch {
      problems = null;
    }
    if (run !== validateRun || problems === null || problems === undefined) return;
    serverProblems = problems;
    renderStatus();
  }, VALIDATE_DELAY_MS);

  function scheduleValidation() {
    if (options.validate && !syntaxError) validateSoon();
  }

  textarea.addEventListener('input', () => {
    fitText();
    const text = textarea.value.trim();
    if (text === '') {
      value = null;
      syntaxError = null;
    } else {
      try {
        value = JSON.parse(text);
        syntaxError = null;
      } catch (error) {
        syntaxError = `Not valid JSON: ${error.message}`;
        serverProblems = [];
        renderStatus();
        return;
      }
    }
    model = toModel(mode, value);
    renderStructured();
    changed();
  });

  // -- structured view ------------------------------------------------------

  function focusKey() {
    const active = document.activeElement;
    return active && structured.contains(active) ? active.dataset.focus : null;
  }

  /** Redraws the structured view; focus goes to `focus` (a data-focus key) or stays. */
  function renderStructured(focus = null) {
    const key = focus ?? focusKey();
    if (!model) {
      structured.replaceChildren(el('div', { class: 'notice rule-notice', role: 'note' },
        el('p', { text: 'This rule is edited as JsonLogic: it uses operators or a shape the structured editor cannot show without changing it.' }),
        el('div', { class: 'actions' },
          el('button', {
            type: 'button', class: 'btn', text: 'Open the JsonLogic editor', onclick: () => { show('raw'); textarea.focus(); },
          }),
          el('button', {
            type: 'button', class: 'btn btn-ghost', text: 'Start over with an empty rule',
            dataset: { focus: 'reset' },
            onclick: () => {
              model = mode === 'condition' ? { join: 'and', clauses: [] } : { rules: [], otherwise: { type: 'default' } };
              commit({ rerender: true });
            },
          }))));
    } else if (mode === 'condition') {
      structured.replaceChildren(conditionEditor(model, 'c', 'Audience'));
    } else {
      structured.replaceChildren(targetingEditor());
    }
    if (key) {
      const target = structured.querySelector(`[data-focus="${CSS.escape(key)}"]`);
      if (target) target.focus();
    }
    if (options.readOnly) {
      for (const control of structured.querySelectorAll('input, select, textarea, button')) control.disabled = true;
    }
  }

  function targetingEditor() {
    const list = el('ol', { class: 'rule-list' });
    model.rules.forEach((rule, index) => {
      const prefix = `r${index}`;
      const header = el('div', { class: 'rule-header' },
        el('h4', { text: `Rule ${index + 1}` }),
        el('div', { class: 'rule-actions' },
          el('button', {
            type: 'button', class: 'btn btn-small', text: 'Up', disabled: index === 0,
            'aria-label': `Move rule ${index + 1} up`, dataset: { focus: `${prefix}-up` },
            onclick: () => { swap(index, index - 1); },
          }),
          el('button', {
            type: 'button', class: 'btn btn-small', text: 'Down',
            disabled: index === model.rules.length - 1,
            'aria-label': `Move rule ${index + 1} down`, dataset: { focus: `${prefix}-down` },
            onclick: () => { swap(index, index + 1); },
          }),
          el('button', {
            type: 'button', class: 'btn btn-small btn-danger', text: 'Remove',
            'aria-label': `Remove rule ${index + 1}`, dataset: { focus: `${prefix}-remove` },
            onclick: () => { model.rules.splice(index, 1); commit({ rerender: true, focus: 'add-rule' }); },
          })));
      list.append(el('li', { class: 'rule-card' }, header,
        conditionEditor(rule.condition, prefix, `Rule ${index + 1}`),
        serveEditor(rule.serve, prefix, `Rule ${index + 1}: serve`)));
    });
    const addRule = el('button', {
      type: 'button', class: 'btn', text: '+ Add rule', dataset: { focus: 'add-rule' },
      onclick: () => {
        model.rules.push({
          condition: { join: 'and', clauses: [{ type: 'attr', attr: '', op: '==', value: '', valueType: 'text' }] },
          serve: variants.length ? { type: 'variant', variant: variants[0] } : { type: 'default' },
        });
        commit({ rerender: true, focus: `r${model.rules.length - 1}-c0-attr` });
      },
    });
    const otherwise = el('div', { class: 'rule-card rule-otherwise' },
      el('h4', { text: model.rules.length ? 'Everyone else' : 'Everyone' }),
      serveEditor(model.otherwise, 'o', model.rules.length ? 'Everyone else: serve' : 'Everyone: serve'));
    return el('div', { class: 'rule-targeting' },
      model.rules.length ? el('p', { class: 'hint', text: 'Rules are checked in order; the first that matches decides.' }) : null,
      list, addRule, otherwise);
  }

  function swap(a, b) {
    [model.rules[a], model.rules[b]] = [model.rules[b], model.rules[a]];
    commit({ rerender: true });
  }

  function conditionEditor(condition, prefix, label) {
    const box = el('fieldset', { class: 'rule-condition' });
    box.append(el('legend', { class: 'visually-hidden', text: `${label}: condition` }));
    if (condition.clauses.length > 1) {
      box.append(el('div', { class: 'rule-join' },
        el('label', { for: `${id}-${prefix}-join`, text: 'Match' }),
        select([['and', 'all of (AND)'], ['or', 'any of (OR)']], condition.join, {
          id: `${id}-${prefix}-join`, dataset: { focus: `${prefix}-join` },
          onchange: (event) => { condition.join = event.target.value; commit(); },
        })));
    } else {
      box.append(el('p', { class: 'rule-if', text: 'If' }));
    }
    condition.clauses.forEach((clause, index) => {
      box.append(clauseEditor(condition, clause, index, prefix, label));
    });
    box.append(el('div', { class: 'rule-add' },
      el('button', {
        type: 'button', class: 'btn btn-small', text: '+ Attribute condition',
        dataset: { focus: `${prefix}-add-attr` },
        onclick: () => {
          condition.clauses.push({ type: 'attr', attr: '', op: '==', value: '', valueType: 'text' });
          commit({ rerender: true, focus: `${prefix}-c${condition.clauses.length - 1}-attr` });
        },
      }),
      el('button', {
        type: 'button', class: 'btn btn-small', text: '+ Segment',
        dataset: { focus: `${prefix}-add-segment` },
        onclick: () => {
          condition.clauses.push({ type: 'segment', segment: segments[0] || '' });
          commit({ rerender: true, focus: `${prefix}-c${condition.clauses.length - 1}-segment` });
        },
      })));
    return box;
  }

  function clauseEditor(condition, clause, index, condPrefix, label) {
    const prefix = `${condPrefix}-c${index}`;
    const name = `${label}, condition ${index + 1}`;
    const row = el('div', { class: 'rule-clause' });
    const remove = el('button', {
      type: 'button', class: 'btn btn-small btn-ghost', text: '✕',
      'aria-label': `Remove ${name}`, title: 'Remove this condition', dataset: { focus: `${prefix}-remove` },
      onclick: () => { condition.clauses.splice(index, 1); commit({ rerender: true, focus: `${condPrefix}-add-attr` }); },
    });
    if (clause.type === 'segment') {
      const options = segments.includes(clause.segment) || !clause.segment
        ? segments : [clause.segment, ...segments];
      const control = options.length
        ? select(options, clause.segment, {
          'aria-label': `${name}: segment`, dataset: { focus: `${prefix}-segment` },
          onchange: (event) => { clause.segment = event.target.value; commit(); },
        })
        : el('input', {
          type: 'text', value: clause.segment, placeholder: 'segment key',
          'aria-label': `${name}: segment`, dataset: { focus: `${prefix}-segment` },
          oninput: (event) => { clause.segment = event.target.value; commit(); },
        });
      row.append(el('span', { class: 'rule-word', text: 'in segment' }), control, remove);
      return row;
    }
    const operator = OPERATOR[clause.op];
    const attr = el('input', {
      type: 'text', value: clause.attr, placeholder: 'attribute, e.g. email',
      'aria-label': `${name}: attribute`, dataset: { focus: `${prefix}-attr` }, class: 'rule-attr',
      oninput: (event) => { clause.attr = event.target.value; commit(); },
    });
    const op = select(OPERATORS.map((o) => [o.id, o.label]), clause.op, {
      'aria-label': `${name}: operator`, dataset: { focus: `${prefix}-op` },
      onchange: (event) => {
        const next = OPERATOR[event.target.value];
        clause.op = next.id;
        clause.value = convertValue(clause.value, operator.kind, next.kind, clause.valueType);
        if (next.kind === 'number') clause.valueType = 'number';
        else if (next.kind === 'string' || next.kind === 'version') clause.valueType = 'text';
        commit({ rerender: true });
      },
    });
    row.append(attr, op, valueEditor(clause, operator, prefix, name), remove);
    return row;
  }

  function convertValue(current, fromKind, toKind, valueType) {
    const first = Array.isArray(current) ? current[0] : current;
    if (toKind === 'list') return Array.isArray(current) ? current : (first === '' ? [] : [first]);
    if (toKind === 'number') return typeof first === 'number' ? first : 0;
    if (toKind === 'string' || toKind === 'version') return first === undefined ? '' : String(first);
    return first === undefined ? parseTyped('', valueType) : first;
  }

  function valueEditor(clause, operator, prefix, name) {
    const typed = operator.kind === 'scalar' || operator.kind === 'list';
    const type = typed ? select([['text', 'text'], ['number', 'number'], ['boolean', 'true/false']], clause.valueType, {
      'aria-label': `${name}: value type`, dataset: { focus: `${prefix}-type` },
      onchange: (event) => {
        clause.valueType = event.target.value;
        const convert = (v) => parseTyped(String(v), clause.valueType);
        clause.value = Array.isArray(clause.value) ? clause.value.map(convert) : convert(clause.value);
        commit({ rerender: true });
      },
    }) : null;
    let input;
    if (operator.kind === 'scalar' && clause.valueType === 'boolean') {
      input = select(['true', 'false'], String(clause.value === true), {
        'aria-label': `${name}: value`, dataset: { focus: `${prefix}-value` },
        onchange: (event) => { clause.value = event.target.value === 'true'; commit(); },
      });
    } else if (operator.kind === 'list') {
      input = el('input', {
        type: 'text', value: clause.value.join(', '), placeholder: 'a, b, c',
        'aria-label': `${name}: values, separated by commas`, dataset: { focus: `${prefix}-value` },
        class: 'rule-value',
        oninput: (event) => {
          clause.value = event.target.value.split(',').map((s) => s.trim()).filter((s) => s !== '')
            .map((s) => parseTyped(s, clause.valueType));
          commit();
        },
      });
    } else {
      const placeholder = operator.kind === 'version' ? '1.2.3' : operator.kind === 'number' ? '0' : 'value';
      input = el('input', {
        type: operator.kind === 'number' || clause.valueType === 'number' ? 'number' : 'text',
        step: 'any', value: String(clause.value), placeholder,
        'aria-label': `${name}: value`, dataset: { focus: `${prefix}-value` }, class: 'rule-value',
        oninput: (event) => {
          clause.value = parseTyped(event.target.value, operator.kind === 'number' ? 'number' : clause.valueType);
          commit();
        },
      });
    }
    return el('span', { class: 'rule-value-group' }, input, type);
  }

  function serveEditor(serve, prefix, label) {
    const box = el('div', { class: 'rule-serve' });
    const kind = select([
      ['default', 'the default variant'],
      ['variant', 'one variant'],
      ['split', 'a percentage split'],
    ], serve.type, {
      'aria-label': `${label}: what`, dataset: { focus: `${prefix}-serve-type` },
      onchange: (event) => {
        const type = event.target.value;
        for (const k of Object.keys(serve)) delete serve[k];
        serve.type = type;
        if (type === 'variant') serve.variant = variants[0] || '';
        if (type === 'split') {
          serve.bucketBy = '';
          // Every variant, 100 shared out evenly (an A/B/n split; two variants: a rollout).
          const names = variants.length ? variants : [''];
          serve.buckets = names.map((variant, i) => ({
            variant,
            weight: Math.floor(100 / names.length) + (i < 100 % names.length ? 1 : 0),
          }));
        }
        commit({ rerender: true });
      },
    });
    box.append(el('span', { class: 'rule-word', text: 'Serve' }), kind);
    if (serve.type === 'variant') {
      box.append(variantSelect(serve.variant, `${label}: variant`, `${prefix}-serve-variant`, (v) => {
        serve.variant = v;
        commit();
      }));
    }
    if (serve.type === 'split') box.append(splitEditor(serve, prefix, label));
    return box;
  }

  function variantSelect(current, label, focus, onPick) {
    const options = variants.includes(current) || current === '' ? variants : [current, ...variants];
    return select(options, current, {
      'aria-label': label, dataset: { focus },
      onchange: (event) => onPick(event.target.value),
    });
  }

  function splitEditor(serve, prefix, label) {
    const box = el('div', { class: 'rule-split' });
    const total = () => serve.buckets.reduce((sum, b) => sum + b.weight, 0);
    const percent = (weight) => {
      const t = total();
      return t ? Math.round((weight / t) * 1000) / 10 : 0;
    };
    const shares = el('p', { class: 'rule-shares', 'aria-live': 'polite' });
    const writeShares = () => {
      shares.textContent = serve.buckets.map((b) => `${percent(b.weight)}% ${b.variant}`).join(' / ');
    };
    if (serve.buckets.length === 2) {
      const [a, b] = serve.buckets;
      const sliderId = `${id}-${prefix}-slider`;
      const slider = el('input', {
        type: 'range', id: sliderId, min: '0', max: '100', step: '1',
        value: String(Math.round(percent(a.weight))), class: 'rule-slider',
        dataset: { focus: `${prefix}-slider` },
        'aria-valuetext': `${percent(a.weight)}% ${a.variant}`,
        oninput: (event) => {
          a.weight = Number(event.target.value);
          b.weight = 100 - a.weight;
          writeShares();
          slider.setAttribute('aria-valuetext', `${a.weight}% ${a.variant}`);
          box.querySelectorAll('input.rule-weight').forEach((input, i) => {
            input.value = String(serve.buckets[i].weight);
          });
          commit();
        },
      });
      box.append(el('div', { class: 'rule-rollout' },
        el('label', { for: sliderId, text: `Rollout: share served “${a.variant}”` }), slider));
    }
    const table = el('div', { class: 'rule-buckets' });
    serve.buckets.forEach((bucket, index) => {
      const name = `${label}, bucket ${index + 1}`;
      table.append(el('div', { class: 'rule-bucket' },
        variantSelect(bucket.variant, `${name}: variant`, `${prefix}-b${index}-variant`, (v) => {
          bucket.variant = v;
          commit({ rerender: true });
        }),
        el('input', {
          type: 'number', min: '0', step: '1', value: String(bucket.weight), class: 'rule-weight',
          'aria-label': `${name}: weight`, dataset: { focus: `${prefix}-b${index}-weight` },
          oninput: (event) => {
            const n = Number(event.target.value);
            bucket.weight = Number.isInteger(n) && n >= 0 ? n : 0;
            writeShares();
            commit();
          },
          onchange: () => renderStructured(),
        }),
        serve.buckets.length > 1 ? el('button', {
          type: 'button', class: 'btn btn-small btn-ghost', text: '✕',
          'aria-label': `Remove ${name}`, dataset: { focus: `${prefix}-b${index}-remove` },
          onclick: () => { serve.buckets.splice(index, 1); commit({ rerender: true, focus: `${prefix}-add-bucket` }); },
        }) : null));
    });
    const unused = variants.find((v) => !serve.buckets.some((b) => b.variant === v));
    const bucketById = `${id}-${prefix}-bucket-by`;
    box.append(shares, table,
      el('div', { class: 'rule-add' },
        el('button', {
          type: 'button', class: 'btn btn-small', text: '+ Variant in split',
          dataset: { focus: `${prefix}-add-bucket` },
          onclick: () => {
            serve.buckets.push({ variant: unused || variants[0] || '', weight: 0 });
            commit({ rerender: true, focus: `${prefix}-b${serve.buckets.length - 1}-weight` });
          },
        })),
      el('div', { class: 'rule-bucket-by' },
        el('label', { for: bucketById, text: 'Bucket by attribute' }),
        el('input', {
          type: 'text', id: bucketById, value: serve.bucketBy, placeholder: 'targetingKey (default)',
          dataset: { focus: `${prefix}-bucket-by` },
          oninput: (event) => { serve.bucketBy = event.target.value.trim(); commit(); },
        })));
    writeShares();
    return box;
  }

  // -- public interface -----------------------------------------------------

  textarea.readOnly = !!options.readOnly;
  writeText();
  renderStructured();
  show(model ? 'structured' : 'raw');
  renderStatus();

  return {
    /** The current rule; throws while the JsonLogic text is not JSON. */
    getValue() {
      if (syntaxError) {
        const error = new Error(syntaxError);
        error.problems = [{ path: mode === 'condition' ? '/rule' : '/targeting', message: syntaxError }];
        throw error;
      }
      return value;
    },
    /** Replaces the rule (e.g. after a reload). */
    setValue(next) {
      value = next ?? null;
      syntaxError = null;
      serverProblems = [];
      model = toModel(mode, value);
      writeText();
      renderStructured();
      if (!model) show('raw');
      renderStatus();
    },
    /** The variant names offered in the structured view. */
    setVariants(next) {
      variants = names(next);
      renderStructured();
    },
    /** Shows problems (`[{pointer|path, message, severity}]`) next to the rule. */
    setProblems(problems) {
      serverProblems = problems || [];
      renderStatus();
    },
  };
}
