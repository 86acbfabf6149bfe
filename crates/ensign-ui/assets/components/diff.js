// A small structural JSON diff for audit entries: objects are compared member
// by member, arrays of the same length item by item, anything else as a
// whole; the result is rendered as the changed JSON Pointers, "old → new".
// Also JSON equality and JSON text for people (short values on one line),
// which the rule editor shares.

import { h } from './dom.js';

/** Escapes one JSON Pointer segment (RFC 6901). */
export function escapeSegment(key) {
  return String(key).replace(/~/g, '~0').replace(/\//g, '~1');
}

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** True when two JSON values are equal. */
export function jsonEqual(a, b) {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  }
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length
      && keys.every((k) => Object.prototype.hasOwnProperty.call(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

/**
 * The changes between `before` and `after`: `[{path, before, after}]`, where
 * an absent `before` means added and an absent `after` removed.
 */
export function diffJson(before, after, path = '', changes = []) {
  if (jsonEqual(before, after)) return changes;
  if (Array.isArray(before) && Array.isArray(after) && before.length === after.length) {
    before.forEach((item, index) => diffJson(item, after[index], `${path}/${index}`, changes));
    return changes;
  }
  if (!isObject(before) || !isObject(after)) {
    const change = { path };
    if (before !== undefined) change.before = before;
    if (after !== undefined) change.after = after;
    changes.push(change);
    return changes;
  }
  for (const key of Object.keys(before)) {
    diffJson(before[key], after[key], `${path}/${escapeSegment(key)}`, changes);
  }
  for (const key of Object.keys(after)) {
    if (!Object.prototype.hasOwnProperty.call(before, key)) {
      diffJson(undefined, after[key], `${path}/${escapeSegment(key)}`, changes);
    }
  }
  return changes;
}

/** The longest JSON kept on one line by formatJson. */
const JSON_LINE = 72;

/** JSON on one line with a space after each comma and colon. */
function oneLine(value) {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(oneLine).join(', ')}]`;
  return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${oneLine(v)}`).join(', ')}}`;
}

/** JSON text for people: a value whose one-line form is short stays on one line. */
export function formatJson(value, indent = '') {
  const line = oneLine(value);
  if (value === null || typeof value !== 'object' || line.length <= JSON_LINE - indent.length) return line;
  const inner = `${indent}  `;
  const items = Array.isArray(value)
    ? value.map((item) => inner + formatJson(item, inner))
    : Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${formatJson(v, inner)}`);
  const [open, close] = Array.isArray(value) ? ['[', ']'] : ['{', '}'];
  return `${open}\n${items.join(',\n')}\n${indent}${close}`;
}

/** Paths that only carry bookkeeping and would make every diff noisy. */
const QUIET_PATHS = /(^|\/)version$/;

function show(value) {
  const text = oneLine(value);
  return text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

function el(tag, className, text) {
  return h(tag, { class: className }, text);
}

/**
 * What changed between `before` and `after` (or the precomputed `changes` of
 * an audit entry): a `<dl>` with one row per JSON Pointer, "old → new". A
 * creation or deletion shows the whole snapshot, folded.
 */
export function renderDiff({ before, after, changes } = {}) {
  const absent = (value) => value === undefined || value === null;
  if (absent(before) !== absent(after)) {
    const created = absent(before);
    return h('details', { class: 'diff-snapshot' },
      h('summary', {}, created ? 'Created with these settings' : 'Deleted; it had these settings'),
      h('pre', {}, formatJson(created ? after : before)));
  }
  // The finer client-side diff when both snapshots are there.
  const list = absent(before) ? changes || [] : diffJson(before, after);
  const shown = list.filter((c) => !QUIET_PATHS.test(c.path));
  const root = el('dl', 'diff');
  if (!shown.length) {
    root.append(el('dt', 'diff-path', 'no visible change'));
    return root;
  }
  for (const change of shown) {
    root.append(el('dt', 'diff-path', change.path || '(whole)'));
    const values = el('dd', 'diff-values');
    const hasBefore = change.before !== undefined;
    const hasAfter = change.after !== undefined;
    if (hasBefore) values.append(el('del', 'diff-old', show(change.before)));
    else values.append(el('span', 'diff-note', 'added'));
    values.append(el('span', 'diff-arrow', ' → '));
    if (hasAfter) values.append(el('ins', 'diff-new', show(change.after)));
    else values.append(el('span', 'diff-note', 'removed'));
    root.append(values);
  }
  return root;
}
