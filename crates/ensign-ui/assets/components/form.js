// Labelled form fields and the placing of an API's 422 problems next to the
// field each JSON Pointer names. A failed save never clears the form.

import { h } from './dom.js';

let counter = 0;
/** A unique element id with `prefix`. */
export function uid(prefix = 'f') {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A labelled field bound to the JSON Pointer `pointer` of the request body.
 * `control` is 'input' (default), 'select' (with `options`: [value, label]
 * pairs or strings), or 'textarea'. Returns the wrapper; the control is
 * `wrapper.control`. */
export function field({ label, name, pointer, control = 'input', type = 'text', value, options,
  hint, required, placeholder, autocomplete, readonly, rows, attrs = {} }) {
  const id = uid(name ?? 'field');
  const hintId = hint ? `${id}-hint` : null;
  const errorId = `${id}-error`;
  const describedBy = [hintId, errorId].filter(Boolean).join(' ');
  let input;
  if (control === 'select') {
    input = h('select', { id, name, required, 'aria-describedby': describedBy, ...attrs },
      (options ?? []).map((option) => {
        const [optionValue, optionLabel] = Array.isArray(option) ? option : [option, option];
        return h('option', { value: optionValue }, optionLabel);
      }));
    if (value != null) input.value = value;
  } else if (control === 'textarea') {
    input = h('textarea', { id, name, required, placeholder, readonly, rows: rows ?? 4, spellcheck: 'false', 'aria-describedby': describedBy, ...attrs });
    input.value = value ?? '';
  } else {
    input = h('input', { id, name, type, required, placeholder, autocomplete, readonly, 'aria-describedby': describedBy, ...attrs });
    if (value != null) input.value = value;
  }
  const wrapper = h('div', { class: 'field', dataset: { pointer: pointer ?? (name ? `/${name}` : '') } },
    h('label', { for: id }, label, required ? h('span', { class: 'required', 'aria-hidden': 'true' }, ' *') : null),
    input,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId, hidden: true}));
  wrapper.control = input;
  return wrapper;
}

/** A group of fields with one legend and one error slot (for lists like variants). */
export function fieldGroup({ legend, pointer, hint }, ...children) {
  const errorId = uid('group-error');
  const group = h('fieldset', { class: 'field-group', dataset: { pointer }, 'aria-describedby': errorId },
    h('legend', {}, legend),
    hint ? h('p', { class: 'hint' }, hint) : null,
    children,
    h('p', { class: 'field-error', id: errorId, hidden: true}));
  return group;
}

/** Removes the errors `showProblems` placed in `form` (and only those). */
export function clearProblems(form) {
  for (const error of form.querySelectorAll('[data-pointer] > .field-error')) {
    error.hidden = true;
    error.textContent = '';
  }
  for (const invalid of form.querySelectorAll('[data-marked-invalid]')) {
    invalid.removeAttribute('aria-invalid');
    invalid.removeAttribute('data-marked-invalid');
  }
  form.querySelector('.form-error')?.remove();
}

/** The field of `form` whose pointer is the longest prefix of `path`. */
function fieldFor(form, path) {
  let best = null;
  for (const candidate of form.querySelectorAll('[data-pointer]')) {
    const pointer = candidate.dataset.pointer;
    if (!pointer) continue;
    const matches = path === pointer || path.startsWith(`${pointer}/`);
    if (matches && (!best || pointer.length > best.dataset.pointer.length)) best = candidate;
  }
  return best;
}

/** Shows `error` (an ApiError or Error) in `form`: each problem next to its
 * field, the rest (and the message) at the top; focuses the first field in
 * error. The inputs are left as they are. */
export function showProblems(form, error) {
  clearProblems(form);
  const problems = error?.problems ?? [];
  const unplaced = [];
  let first = null;
  for (const problem of problems) {
    const target = fieldFor(form, problem.path ?? problem.pointer ?? '');
    if (!target) {
      unplaced.push(problem);
      continue;
    }
    const slot = target.querySelector(':scope > .field-error');
    if (!slot) {
      unplaced.push(problem);
      continue;
    }
    const detail = (problem.path ?? '').slice(target.dataset.pointer.length);
    const text = detail ? `${detail.slice(1)}: ${problem.message}` : problem.message;
    slot.textContent = slot.textContent ? `${slot.textContent} ${text}` : text;
    slot.hidden = false;
    const control = target.control ?? target;
    control.setAttribute('aria-invalid', 'true');
    control.setAttribute('data-marked-invalid', '');
    first ??= target.control ?? target.querySelector('input, select, textarea, button');
  }
  if (unplaced.length || !problems.length) {
    const summary = h('div', { class: 'form-error notice notice-danger', role: 'alert' },
      h('strong', {}, error?.message ?? 'The request failed.'),
      unplaced.length ? h('ul', {}, unplaced.map((p) => h('li', {}, p.path ? `${p.path}: ${p.message}` : p.message))) : null);
    form.prepend(summary);
  }
  first?.focus();
}

/** Disables a form's submit button while `work` runs, then re-enables it. */
export async function busy(form, work) {
  const submit = form.querySelector('[type=submit]');
  submit?.setAttribute('disabled', '');
  form.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    submit?.removeAttribute('disabled');
    form.removeAttribute('aria-busy');
  }
}
