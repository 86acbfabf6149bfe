// Sign-in: with an API token or a user's name and password. The server sets
// an HTTP-only session cookie; the answer's CSRF token goes with every write.

import { h, icon, replace } from '../components/dom.js';
import { field, showProblems, busy, uid } from '../components/form.js';

export async function render(root, params, ctx) {
  const next = params.query.get('next');
  const group = uid('method');
  const choice = (value, label, checked) => h('label', {},
    h('input', { type: 'radio', name: group, value, checked }), label);
  const methods = h('fieldset', { class: 'segmented' },
    h('legend', {}, 'Sign in with'),
    choice('token', 'Token', true),
    choice('password', 'User account', false));
  const token = field({ label: 'API token', name: 'token', type: 'password', autocomplete: 'off', required: true,
    hint: 'An admin, editor or viewer token, e.g. the bootstrap token from ENSIGN_ADMIN_TOKEN.' });
  const username = field({ label: 'Username', name: 'username', autocomplete: 'username', required: true });
  const password = field({ label: 'Password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const fields = h('div', { class: 'stack' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');

  const method = () => methods.querySelector('input:checked').value;
  const show = () => {
    const byToken = method() === 'token';
    replace(fields, byToken ? token : [username, password]);
  };
  methods.addEventListener('change', () => { show(); fields.querySelector('input')?.focus(); });
  show();

  const form = h('form', { class: 'card login-card', novalidate: true, 'aria-labelledby': 'login-title' },
    h('div', { class: 'login-brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, icon('flag')), 'Ensign'),
    h('div', {}, h('h1', { id: 'login-title', tabindex: '-1' }, 'Sign in'),
      h('p', { class: 'muted' }, 'Manage feature flags, segments and tokens.')),
    methods, fields, submit);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = method() === 'token'
      ? { token: token.control.value.trim() }
      : { username: username.control.value.trim(), password: password.control.value };
    const missing = Object.entries(body).filter(([, value]) => !value)
      .map(([name]) => ({ path: `/${name}`, message: 'required' }));
    if (missing.length) {
      showProblems(form, { message: 'Fill in the highlighted fields.', problems: missing });
      return;
    }
    await busy(form, async () => {
      try {
        const session = await ctx.api.post('/session', body);
        ctx.setSession(session);
        ctx.navigate(next && next.startsWith('#/') && !next.startsWith('#/login') ? next : '#/flags');
      } catch (error) {
        const message = error.status === 401
          ? (method() === 'token' ? 'That token is unknown or revoked.' : 'Wrong username or password.')
          : error.message;
        showProblems(form, { message, problems: error.problems });
      }
    });
  });
  root.classList.add('login');
  root.append(form);
}
