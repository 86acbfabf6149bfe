// The flag page: a flag's configuration per environment (being built).

import { api } from '../api.js';
import { h, pageHeader } from '../components/dom.js';

export async function render(root, params) {
  const flag = await api.get(api.path`/flags/${params.set}/${params.key}`);
  root.append(
    pageHeader(flag.key, flag.description || `In flag set ${flag.flagSet}`),
    h('pre', { class: 'card card-pad' }, JSON.stringify(flag, null, 2)),
  );
}
