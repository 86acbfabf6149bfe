// The application shell: hash router, navigation, session, theme, toasts.
// Each route is a page module exporting `render(root, params, ctx)` with
// ctx = {api, session, navigate(hash), toast(message, kind), confirm({title,
// message, confirmLabel, danger}) → Promise<boolean>, setSession(session),
// setQuery(URLSearchParams): the page's filters into the URL, no reload}.

import { api } from './api.js';
import { h, icon, replace, notice, pageHeader } from './components/dom.js';
import { confirmDialog } from './components/dialog.js';

const app = document.getElementById('app');
const toasts = document.getElementById('toasts');

// Routes: pattern over the hash path, the page module, the names of the captured parts.
const ROUTES = [
  [/^\/login$/, './pages/login.js', [], { public: true }],
  [/^\/flags$/, './pages/flags.js', []],
  [/^\/flags\/([^/]+)\/([^/]+)$/, './pages/flag.js', ['set', 'key']],
  [/^\/segments$/, './pages/segments.js', []],
  [/^\/segments\/([^/]+)\/([^/]+)$/, './pages/segments.js', ['set', 'key']],
  [/^\/admin\/(environments|flag-sets|tokens|users)$/, './pages/admin.js', ['section']],
];

const NAV = [
  { hash: '#/flags', label: 'Flags', icon: 'flag' },
  { hash: '#/segments', label: 'Segments', icon: 'segment' },
  { heading: 'Administration' },
  { hash: '#/admin/environments', label: 'Environments', icon: 'env' },
  { hash: '#/admin/flag-sets', label: 'Flag sets', icon: 'sets' },
  { hash: '#/admin/tokens', label: 'API tokens', icon: 'key', role: 'admin' },
  { hash: '#/admin/users', label: 'Users', icon: 'user', role: 'admin' },
];

let session = null;
let shell = null;
let navigation = 0;

// Theme: an explicit choice in localStorage wins over the system preference.
const THEME_KEY = 'ensign-theme';
const systemDark = window.matchMedia('(prefers-color-scheme: dark)');

function currentTheme() {
  return localStorage.getItem(THEME_KEY) ?? (systemDark.matches ? 'dark' : 'light');
}

function applyTheme() {
  const stored = localStorage.getItem(THEME_KEY);
  if (stored) document.documentElement.dataset.theme = stored;
  else delete document.documentElement.dataset.theme;
  const toggle = document.getElementById('theme-toggle');
  if (toggle) {
    const next = currentTheme() === 'dark' ? 'light' : 'dark';
    toggle.setAttribute('aria-label', `Switch to ${next} theme`);
    toggle.title = `Switch to ${next} theme`;
    toggle.replaceChildren(icon(next === 'dark' ? 'moon' : 'sun'));
  }
}

function toggleTheme() {
  localStorage.setItem(THEME_KEY, currentTheme() === 'dark' ? 'light' : 'dark');
  applyTheme();
}

systemDark.addEventListener('change', applyTheme);

/** Shows a short message; `kind` is 'ok' (default), 'error' or 'info'. */
export function toast(message, kind = 'ok') {
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : null },
    h('span', {}, message),
    h('button', { type: 'button', class: 'btn btn-ghost btn-icon', 'aria-label': 'Dismiss', onclick: () => item.remove() }, icon('close')));
  toasts.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 10000 : 5000);
}

function navigate(hash) {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

function setSession(next) {
  session = next;
  api.setCsrfToken(next?.csrfToken);
  shell = null;
}

async function signOut() {
  try {
    await api.delete('/session');
  } catch (error) {
    if (error.status !== 401) toast(`Signing out failed: ${error.message}`, 'error');
  }
  setSession(null);
  navigate('#/login');
}

function parseHash() {
  const raw = window.location.hash.replace(/^#/, '') || '/flags';
  const [pathPart, queryPart = ''] = raw.split('?');
  return { path: pathPart, query: new URLSearchParams(queryPart) };
}

function buildShell() {
  const main = h('main', { id: 'main', class: 'main' });
  const nav = h('nav', { class: 'nav', 'aria-label': 'Main' },
    NAV.filter((item) => !item.role || session.role === item.role).map((item) => item.heading
      ? h('p', { class: 'nav-heading' }, item.heading)
      : h('a', { href: item.hash, class: 'nav-link', dataset: { hash: item.hash } }, icon(item.icon), h('span', {}, item.label))));
  const environments = session.environments ? ` · ${session.environments.join(', ')}` : '';
  const sidebar = h('aside', { class: 'sidebar' },
    h('a', { href: '#/flags', class: 'brand', 'aria-label': 'Ensign home' },
      h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, icon('flag')), h('span', {}, 'Ensign')),
    nav,
    h('div', { class: 'sidebar-foot' },
      h('div', { class: 'who' },
        h('span', { class: 'who-name' }, session.actor),
        h('span', { class: 'who-role' }, `${session.role}${environments}`)),
      h('div', { class: 'sidebar-actions' },
        h('button', { type: 'button', id: 'theme-toggle', class: 'btn btn-ghost btn-icon', onclick: toggleTheme }),
        h('button', { type: 'button', class: 'btn btn-ghost', onclick: signOut }, icon('out'), h('span', {}, 'Sign out')))));
  replace(app, h('div', { class: 'shell' }, sidebar, main));
  applyTheme();
  return { main, nav };
}

function markCurrent(nav, path) {
  for (const link of nav.querySelectorAll('a')) {
    const target = link.dataset.hash.slice(1);
    const current = path === target || path.startsWith(`${target}/`);
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

async function loadSession() {
  try {
    setSession(await api.get('/session'));
  } catch (error) {
    if (error.status !== 401) throw error;
    setSession(null);
  }
}

async function route() {
  const ticket = ++navigation;
  // A dialog belongs to the page it was opened on.
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
  const { path, query } = parseHash();
  if (!window.location.hash.startsWith('#/')) {
    window.history.replaceState(null, '', '#/flags');
  }
  const match = ROUTES.map(([pattern, module, names, options]) => ({ found: pattern.exec(path), module, names, options }))
    .find((candidate) => candidate.found);
  if (!match) {
    navigate('#/flags');
    return;
  }
  if (!match.options?.public && !session) {
    await loadSession();
    if (ticket !== navigation) return;
    if (!session) {
      const next = path === '/flags' ? '' : `?next=${encodeURIComponent(window.location.hash)}`;
      navigate(`#/login${next}`);
      return;
    }
  }
  const params = { query };
  match.names.forEach((name, i) => { params[name] = decodeURIComponent(match.found[i + 1]); });
  const root = h('div', { class: 'page' });
  let container;
  if (match.options?.public) {
    shell = null;
    container = app;
  } else {
    shell ??= buildShell();
    markCurrent(shell.nav, path);
    container = shell.main;
  }
  container.setAttribute('aria-busy', 'true');
  try {
    const page = await import(match.module);
    // Pages keep their filters in the URL without a new navigation, while they are current.
    const setQuery = (search) => {
      if (ticket !== navigation) return;
      const hash = `#${path}${search.size ? `?${search}` : ''}`;
      if (window.location.hash !== hash) window.history.replaceState(null, '', hash);
    };
    await page.render(root, params, { api, session, navigate, toast, confirm: confirmDialog, setSession, setQuery });
  } catch (error) {
    replace(root, pageHeader('Something went wrong'), notice(error.message ?? String(error), 'danger'));
  }
  if (ticket !== navigation) return;
  replace(container, root);
  container.removeAttribute('aria-busy');
  app.classList.remove('boot');
  app.removeAttribute('aria-busy');
  applyTheme();
  root.querySelector('h1')?.focus({ preventScroll: true });
  document.title = `${root.querySelector('h1')?.textContent ?? 'Ensign'} · Ensign`;
}

api.onUnauthorized(() => {
  if (!session) return;
  setSession(null);
  toast('Your session ended; sign in again.', 'info');
  navigate(`#/login?next=${encodeURIComponent(window.location.hash)}`);
});

window.addEventListener('hashchange', route);
applyTheme();
route();
