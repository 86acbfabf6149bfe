// Modal dialogs on the native <dialog> element: focus stays inside, Escape
// closes, focus returns to where it was.

import { h, button, icon, notice } from './dom.js';
import { uid, showProblems, busy } from './form.js';

/** Opens a modal with `title` and `content` (nodes). Returns
 * `{dialog, body, close}`; `onClose` runs once when it closes. */
export function openDialog({ title, content, wide = false, onClose }) {
  const titleId = uid('dialog-title');
  const opener = document.activeElement;
  const body = h('div', { class: 'dialog-body' }, content);
  const dialog = h('dialog', { class: `dialog ${wide ? 'dialog-wide' : ''}`.trim(), 'aria-labelledby': titleId },
    h('div', { class: 'dialog-head' },
      h('h2', { id: titleId }, title),
      h('button', { type: 'button', class: 'btn btn-ghost btn-icon', 'aria-label': 'Close', onclick: () => dialog.close() }, icon('close'))),
    body);
  dialog.addEventListener('close', () => {
    dialog.remove();
    onClose?.(dialog.returnValue);
    if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, body, close: (value = '') => dialog.close(value) };
}

/** Asks to confirm something; resolves `true` only on the confirm button. */
export function confirmDialog({ title, message, confirmLabel = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    let confirmed = false;
    const cancel = button('Cancel', { onclick: () => handle.close() });
    const confirm = button(confirmLabel, {
      kind: danger ? 'danger' : 'primary',
      onclick: () => { confirmed = true; handle.close('confirm'); },
    });
    const handle = openDialog({
      title,
      content: [h('p', {}, message), h('div', { class: 'dialog-actions' }, cancel, confirm)],
      onClose: () => resolve(confirmed),
    });
    cancel.focus();
  });
}

/** Shows a new secret once (`id` for the element showing it), with a copy
 * button; `toast` reports the copy; `onClose` runs when it closes. */
export function secretDialog({ title, secret, id, toast, onClose }) {
  const shown = h('code', { id }, secret);
  const copy = button('Copy', { icon: 'copy', onclick: async () => {
    try {
      await navigator.clipboard.writeText(secret);
      toast('Secret copied to the clipboard.');
    } catch {
      const range = document.createRange();
      range.selectNodeContents(shown);
      window.getSelection().removeAllRanges();
      window.getSelection().addRange(range);
      toast('Select-all done; press Ctrl+C to copy.', 'info');
    }
  } });
  const done = button('Done', { kind: 'primary', onclick: () => handle.close() });
  const handle = openDialog({
    title,
    content: [
      notice('Copy the secret now: it is shown only this once. Only its hash is kept.', 'warn'),
      h('div', { class: 'secret' }, shown, copy),
      h('div', { class: 'dialog-actions' }, done),
    ],
    onClose,
  });
  copy.focus();
  return handle;
}

/** A form in a dialog: `fields` then Cancel / `submitLabel`; `save(form)`
 * runs the request; a failure keeps the input and shows the problems. */
export function formDialog(ctx, { title, fields, submitLabel, save, wide }) {
  const form = h('form', { novalidate: true }, fields,
    h('div', { class: 'form-actions' }, button('Cancel', { onclick: () => handle.close() }),
      h('button', { type: 'submit', class: 'btn btn-primary' }, submitLabel)));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    await busy(form, async () => {
      try {
        await save(form, handle);
      } catch (error) {
        if (error.status === 412) error.message = 'Someone else changed this meanwhile; nothing was saved. Close and reopen it to see their version.';
        showProblems(form, error);
      }
    });
  });
  const handle = openDialog({ title, content: form, wide });
  form.querySelector('input:not([readonly]), select, textarea')?.focus();
  return handle;
}
