// Small DOM helpers shared by every page: element building, icons, page
// headers, time formatting. No framework: pages build elements and replace
// them when their data changes.

/** Builds an element: `h('a', {href, class, onclick}, child, ...)`.
 * Props: `class`, `dataset`, `on<event>` listeners, `value`/`checked`
 * (set as properties, after children), anything else as an attribute
 * (`true` → empty attribute, `null`/`false`/`undefined` → left out). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  const late = {};
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value == null || value === false) continue;
    if (name === 'class') el.className = value;
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'value' || name === 'checked') late[name] = value;
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  Object.assign(el, late);
  return el;
}

/** Appends children: nodes, strings, numbers, arrays of those; skips null/false. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

const ICONS = {
  flag: 'M5 21V4 M5 4h13l-3 4.5 3 4.5H5',
  segment: 'M12 3a9 9 0 1 0 9 9h-9z M15 3.5A9 9 0 0 1 20.5 9H15z',
  env: 'M4 5h16v5H4z M4 14h16v5H4z M8 7.5h.01 M8 16.5h.01',
  sets: 'M12 3l9 5-9 5-9-5z M3 13l9 5 9-5',
  key: 'M14 10a4 4 0 1 1-1.2-2.8L21 15v3h-3v-2h-2v-2h-2z',
  user: 'M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8z M4 21a8 8 0 0 1 16 0',
  sun: 'M12 17a5 5 0 1 0 0-10 5 5 0 0 0 0 10z M12 1v2 M12 21v2 M4.2 4.2l1.4 1.4 M18.4 18.4l1.4 1.4 M1 12h2 M21 12h2 M4.2 19.8l1.4-1.4 M18.4 5.6l1.4-1.4',
  moon: 'M21 12.8A9 9 0 1 1 11.2 3a7 7 0 0 0 9.8 9.8z',
  out: 'M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4 M16 17l5-5-5-5 M21 12H9',
  plus: 'M12 5v14 M5 12h14',
  search: 'M11 18a7 7 0 1 0 0-14 7 7 0 0 0 0 14z M21 21l-5-5',
  copy: 'M9 9h11v11H9z M5 15H4V4h11v1',
  close: 'M6 6l12 12 M18 6L6 18',
  left: 'M15 18l-6-6 6-6',
  right: 'M9 18l6-6-6-6',
};

/** An inline SVG icon (decorative: hidden from assistive technology). */
export function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', 'icon');
  for (const d of (ICONS[name] ?? '').split(' M')) {
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', d.startsWith('M') ? d : `M${d}`);
    svg.append(path);
  }
  return svg;
}

/** A page's heading row: title, optional lead text, actions on the right.
 * The heading takes focus after navigation (tabindex -1). */
export function pageHeader(title, lead, ...actions) {
  return h('header', { class: 'page-head' },
    h('div', {},
      h('h1', { tabindex: '-1' }, title),
      lead ? h('p', { class: 'lead' }, lead) : null),
    actions.length ? h('div', { class: 'actions' }, actions) : null);
}

/** A button; `kind` is '', 'primary', 'danger' or 'ghost'. */
export function button(label, { kind = '', icon: iconName, onclick, type = 'button', ...rest } = {}) {
  return h('button', { type, class: `btn ${kind ? `btn-${kind}` : ''}`.trim(), onclick, ...rest },
    iconName ? icon(iconName) : null, h('span', {}, label));
}

/** A small badge; `tone` is '', 'ok', 'warn', 'danger' or 'accent'. */
export function badge(text, tone = '', title) {
  return h('span', { class: `badge ${tone ? `badge-${tone}` : ''}`.trim(), title }, text);
}

const units = [
  ['year', 365 * 24 * 3600e3], ['month', 30 * 24 * 3600e3], ['week', 7 * 24 * 3600e3],
  ['day', 24 * 3600e3], ['hour', 3600e3], ['minute', 60e3], ['second', 1e3],
];
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** "3 days ago" for unix milliseconds. */
function relativeTime(ms, now = Date.now()) {
  const delta = ms - now;
  for (const [unit, size] of units) {
    if (Math.abs(delta) >= size || unit === 'second') {
      return relative.format(Math.round(delta / size), unit);
    }
  }
  return '';
}

/** A `<time>` showing relative time, the exact time as its title; `empty` when absent. */
export function timeAgo(ms, empty = 'never') {
  if (ms == null) return h('span', { class: 'muted' }, empty);
  const date = new Date(ms);
  return h('time', { datetime: date.toISOString(), title: absolute.format(date) }, relativeTime(ms));
}

/** The exact date and time of unix milliseconds. */
export function formatTime(ms) {
  return ms == null ? '' : absolute.format(new Date(ms));
}

/** A box saying something went wrong (or that a list is empty). */
export function notice(message, tone = '') {
  return h('div', { class: `notice ${tone ? `notice-${tone}` : ''}`.trim(), role: tone === 'danger' ? 'alert' : null }, message);
}

/** Returns `fn` delayed until `wait` ms passed without another call. */
export function debounce(fn, wait) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}
