// Modal dialogs on the native <dialog> element: focus stays inside, Escape
// closes, focus returns to where it was.

import { h, button, icon } from './dom.js';
import { uid } from './form.js';

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
