// Segments: reusable audiences of a flag set (flagd `$evaluators`), listed
// per flag set; one segment's page edits its rule with the rule editor in
// condition mode and shows which flags use it.

import { h, button, pageHeader, replace, notice, badge } from '../components/dom.js';
import { field, showProblems, clearProblems, busy, uid } from '../components/form.js';
import { openDialog } from '../components/dialog.js';
import { ruleEditor } from '../components/rule-editor.js';

const segmentHash = (set, key) => `#/segments/${encodeURIComponent(set)}/${encodeURIComponent(key)}`;
// The flag set the list showed last, for coming back to it.
const LAST_SET_KEY = 'ensign-segments-flag-set';
const canEdit = (session) => session.role !== 'viewer' && !session.environments;

export async function render(root, params, ctx) {
  if (params.key) return renderSegment(root, params, ctx);
  return renderList(root, params, ctx);
}

/** A one-line JsonLogic summary for the list. */
function summary(rule) {
  const text = JSON.stringify(rule);
  return text.length > 90 ? `${text.slice(0, 89)}…` : text;
}

async function renderList(root, params, ctx) {
  const flagSets = await ctx.api.get('/flag-sets');
  const header = pageHeader('Segments', 'Named audiences that flags of the same flag set target with {"$ref": key}.',
    canEdit(ctx.session) && flagSets.length
      ? button('New segment', { kind: 'primary', icon: 'plus', onclick: () => newSegmentDialog(ctx, flagSets, select.value) })
      : null);
  root.append(header);
  if (!flagSets.length) {
    root.append(notice('There are no flag sets yet; segments belong to one. Create a flag set under Administration → Flag sets.'));
    return;
  }
  const selectId = uid('segment-set');
  const select = h('select', { id: selectId }, flagSets.map((set) => h('option', { value: set.key }, set.name || set.key)));
  const wanted = params.query.get('flagSet') ?? sessionStorage.getItem(LAST_SET_KEY);
  select.value = flagSets.some((set) => set.key === wanted) ? wanted : flagSets[0].key;
  const table = h('table', {});
  root.append(h('section', { class: 'card', 'aria-label': 'Segments' },
    h('div', { class: 'toolbar' }, h('div', { class: 'filter' }, h('label', { for: selectId }, 'Flag set'), select)),
    h('div', { class: 'table-wrap' }, table)));

  async function load() {
    const set = select.value;
    sessionStorage.setItem(LAST_SET_KEY, set);
    ctx.setQuery(new URLSearchParams({ flagSet: set }));
    table.setAttribute('aria-busy', 'true');
    try {
      const segments = await ctx.api.get(ctx.api.path`/flag-sets/${set}/segments`);
      replace(table,
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Segment'), h('th', { scope: 'col' }, 'Description'), h('th', { scope: 'col' }, 'Rule'))),
        h('tbody', {}, segments.length
          ? segments.map((segment) => h('tr', {},
            h('td', {}, h('a', { class: 'key', href: segmentHash(set, segment.key) }, segment.key)),
            h('td', {}, segment.description || h('span', { class: 'muted' }, '—')),
            h('td', {}, h('code', {}, summary(segment.rule)))))
          : h('tr', {}, h('td', { colspan: 3, class: 'empty' }, 'No segments in this flag set yet.'))));
    } catch (error) {
      replace(table, h('tbody', {}, h('tr', {}, h('td', {}, notice(error.message, 'danger')))));
    } finally {
      table.removeAttribute('aria-busy');
    }
  }
  select.addEventListener('change', load);
  await load();
}

function newSegmentDialog(ctx, flagSets, currentSet) {
  const flagSet = field({ label: 'Flag set', name: 'flagSet', control: 'select', value: currentSet,
    options: flagSets.map((set) => [set.key, set.name || set.key]) });
  const key = field({ label: 'Key', name: 'key', required: true, autocomplete: 'off',
    hint: 'Flags refer to it as {"$ref": "<key>"}, e.g. beta-testers.' });
  const form = h('form', { novalidate: true }, flagSet, key,
    h('div', { class: 'form-actions' }, button('Cancel', { onclick: () => handle.close() }),
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Continue')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = key.control.value.trim();
    if (!value) {
      showProblems(form, { message: 'A segment needs a key.', problems: [{ path: '/key', message: 'required' }] });
      return;
    }
    handle.close();
    ctx.navigate(`${segmentHash(flagSet.control.value, value)}?new=1`);
  });
  const handle = openDialog({ title: 'New segment', content: form });
  key.control.focus();
}

async function renderSegment(root, params, ctx) {
  const { api } = ctx;
  const { set, key } = params;
  const url = api.path`/flag-sets/${set}/segments/${key}`;
  let segment = null;
  let etag = null;
  try {
    ({ data: segment, etag } = await api.fetch(url));
  } catch (error) {
    if (error.status !== 404) throw error;
  }
  const creating = segment === null;
  if (creating && !params.query.has('new')) {
    root.append(pageHeader('Segment not found'), notice(`There is no segment ${key} in flag set ${set}.`),
      h('p', {}, h('a', { href: `#/segments?flagSet=${encodeURIComponent(set)}` }, 'Back to the segments')));
    return;
  }
  const siblings = (await api.get(api.path`/flag-sets/${set}/segments`)).map((s) => s.key).filter((k) => k !== key);
  const editable = canEdit(ctx.session);

  root.append(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: `#/segments?flagSet=${encodeURIComponent(set)}` }, 'Segments'), ' / ', h('span', {}, set)),
    pageHeader(key, creating ? `A new segment of flag set ${set}.` : `A segment of flag set ${set}.`));

  const description = field({ label: 'Description', name: 'description', control: 'textarea', rows: 2,
    value: segment?.description ?? '', hint: 'Who is in this audience, for the people choosing it.' });
  description.control.classList.add('prose');
  // The editor shows the rule's own problems (syntax, and the API's under /rule).
  const editorSlot = h('div', {});
  const ruleSlot = h('div', { class: 'field' }, h('h2', { class: 'field-title' }, 'Who is in the segment'), editorSlot);
  const editor = ruleEditor(editorSlot, {
    mode: 'condition',
    value: segment?.rule ?? { in: [{ var: 'email' }, []] },
    segments: siblings,
  });
  const comment = field({ label: 'Comment for the audit log', name: 'comment', autocomplete: 'off' });
  const save = h('button', { type: 'submit', class: 'btn btn-primary', disabled: !editable }, creating ? 'Create segment' : 'Save segment');
  const form = h('form', { novalidate: true, 'aria-label': 'Segment' },
    description, ruleSlot, comment, h('div', { class: 'form-actions' }, save));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearProblems(form);
    editor.setProblems([]);
    let rule;
    try {
      rule = editor.getValue();
    } catch {
      showProblems(form, { message: 'The rule is not valid JSON; nothing was saved.' });
      return;
    }
    const body = { description: description.control.value.trim(), rule, comment: comment.control.value.trim() || null };
    await busy(form, async () => {
      try {
        const answer = await api.put(url, body, { etag: creating ? null : etag });
        ctx.toast(creating ? `Segment ${key} created.` : `Segment ${key} saved.`);
        if (creating) ctx.navigate(segmentHash(set, key));
        else {
          etag = answer.etag;
          comment.control.value = '';
        }
      } catch (error) {
        if (error.status === 412) error.message = 'Someone else changed this segment meanwhile; nothing was saved. Reload to see their version (copy your rule first).';
        if (error.status === 409 && creating) error.message = `A segment ${key} exists already in ${set}.`;
        const isRule = (problem) => (problem.path ?? '').startsWith('/rule');
        editor.setProblems(error.problems.filter(isRule));
        showProblems(form, { message: error.message, problems: error.problems.filter((problem) => !isRule(problem)) });
      }
    });
  });

  const usedBy = segment?.usedBy ?? [];
  const side = h('aside', { class: 'stack' },
    h('section', { class: 'card', 'aria-labelledby': 'used-by' },
      h('div', { class: 'card-head' }, h('h2', { id: 'used-by' }, 'Used by'), badge(String(usedBy.length), 'accent')),
      h('div', { class: 'card-pad' }, usedBy.length
        ? h('ul', { class: 'inline-list' }, usedBy.map((flag) => h('li', {},
          h('a', { class: 'key', href: `#/flags/${encodeURIComponent(set)}/${encodeURIComponent(flag)}` }, flag))))
        : h('p', { class: 'muted' }, creating ? 'Flags can use it once it is created.' : 'No flag targets this segment.'))),
    !creating && editable ? h('section', { class: 'card card-pad stack', 'aria-labelledby': 'danger-zone' },
      h('h2', { id: 'danger-zone' }, 'Delete'),
      h('p', { class: 'muted' }, usedBy.length ? 'A segment can be deleted once no flag uses it.' : 'Flags can no longer refer to it.'),
      button('Delete segment', {
        kind: 'danger', disabled: usedBy.length > 0,
        onclick: async () => {
          if (!await ctx.confirm({ title: `Delete segment ${key}?`, message: 'The deletion is recorded in the audit log; it cannot be undone.', confirmLabel: 'Delete', danger: true })) return;
          try {
            await api.delete(url, { etag });
            ctx.toast(`Segment ${key} deleted.`);
            ctx.navigate(`#/segments?flagSet=${encodeURIComponent(set)}`);
          } catch (error) {
            ctx.toast(error.message, 'error');
          }
        },
      })) : null);

  root.append(h('div', { class: 'split' }, h('section', { class: 'card card-pad' }, form), side));
}
