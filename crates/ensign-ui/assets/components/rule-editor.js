// The rule editor (a raw JsonLogic text area for now; the structured editor
// replaces it behind the same interface):
// ruleEditor(container, {mode, value, variants, segments, validate, onChange})
//   → {getValue(), setValue(v)}. getValue() throws an Error whose `problems`
// name the rule when the text is not JSON.

import { h } from './dom.js';
import { uid } from './form.js';

export function ruleEditor(container, { mode = 'targeting', value = null, onChange } = {}) {
  const id = uid('rule');
  const area = h('textarea', { id, rows: 10, spellcheck: 'false', class: 'rule-raw' });
  const label = mode === 'condition' ? 'Rule (JsonLogic condition)' : 'Targeting (JsonLogic)';
  container.append(h('div', { class: 'field' }, h('label', { for: id }, label), area));
  const setValue = (next) => { area.value = next == null ? '' : JSON.stringify(next, null, 2); };
  setValue(value);
  area.addEventListener('input', () => onChange?.());
  return {
    getValue() {
      if (!area.value.trim()) return null;
      try {
        return JSON.parse(area.value);
      } catch (error) {
        const invalid = new Error(`The rule is not JSON: ${error.message}`);
        invalid.problems = [{ path: '', message: invalid.message }];
        throw invalid;
      }
    },
    setValue,
  };
}
