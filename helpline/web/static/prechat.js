// The pre-chat form: built from the deployment's fields (the session answer's `pre_chat_fields`), shown
// above the message box until the conversation starts, checked here as the server checks it
// (helpline/domain/prechat.py), and sent as `pre_chat` when the conversation is created.
//
// Fields: {name, label, type: text | email | select, required, options: [{value, label}]}.

import { h } from './dom.js';

const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;

export class PreChatForm {
  /** @param {string} idPrefix  keeps ids unique inside the widget's shadow root */
  constructor(idPrefix = 'hl-pre') {
    this.idPrefix = idPrefix;
    this.fields = [];
    this.inputs = new Map(); // field name → {field, input, error}
    this.element = h('fieldset', { className: 'prechat', hidden: true },
      h('legend', { textContent: 'Before we start' }));
  }

  /** Show these fields (an empty list hides the form). Answers typed so far are kept. */
  setFields(fields) {
    const previous = this.values();
    this.fields = Array.isArray(fields) ? fields : [];
    this.inputs.clear();
    this.element.replaceChildren(this.element.firstChild);
    for (const field of this.fields) this.element.append(this.row(field, previous[field.name] ?? ''));
    this.element.hidden = this.fields.length === 0;
  }

  row(field, value) {
    const id = `${this.idPrefix}-${field.name}`;
    const errorId = `${id}-error`;
    const label = h('label', { htmlFor: id, textContent: field.required ? `${field.label} (required)` : field.label });
    let input;
    if (field.type === 'select') {
      input = h('select', { id },
        h('option', { value: '', textContent: field.required ? 'Choose…' : 'Choose… (optional)' }),
        ...(field.options || []).map((option) => h('option', { value: option.value, textContent: option.label })));
    } else {
      input = h('input', {
        id,
        type: field.type === 'email' ? 'email' : 'text',
        maxLength: 2000,
        attrs: { autocomplete: field.type === 'email' ? 'email' : 'off' },
      });
    }
    input.value = value;
    input.required = Boolean(field.required);
    input.setAttribute('aria-describedby', errorId);
    input.addEventListener('input', () => this.setError(field.name, ''));
    const error = h('p', { id: errorId, className: 'prechat__error', hidden: true });
    this.inputs.set(field.name, { field, input, error });
    return h('div', { className: 'prechat__field' }, label, input, error);
  }

  get visible() {
    return !this.element.hidden;
  }

  show(visible) {
    this.element.hidden = !visible || this.fields.length === 0;
  }

  values() {
    const values = {};
    for (const [name, { input }] of this.inputs) values[name] = input.value.trim();
    return values;
  }

  /** The answers to send, or null after marking what is wrong (and focusing the first problem). */
  answers() {
    const answers = {};
    let first = null;
    for (const [name, { field, input }] of this.inputs) {
      const value = input.value.trim();
      let problem = '';
      if (!value) {
        if (field.required) problem = `Please fill in "${field.label}".`;
      } else if (field.type === 'email' && !EMAIL.test(value)) {
        problem = 'Please enter an email address, like name@example.com.';
      } else if (field.type === 'select' && !(field.options || []).some((o) => o.value === value)) {
        problem = 'Please choose one of the options.';
      }
      this.setError(name, problem);
      if (problem && !first) first = input;
      if (value && !problem) answers[name] = value;
    }
    if (first) {
      first.focus();
      return null;
    }
    return answers;
  }

  /** The server refused some answers (a 422 whose errors name `pre_chat` fields): show why. */
  showServerErrors(problem) {
    let shown = false;
    for (const error of problem?.errors || []) {
      const [where, what, name] = error.loc || [];
      if (where !== 'body' || what !== 'pre_chat' || !this.inputs.has(name)) continue;
      this.setError(name, SERVER_WORDS[error.type] || 'Please check this answer.');
      if (!shown) this.inputs.get(name).input.focus();
      shown = true;
    }
    return shown;
  }

  setError(name, text) {
    const entry = this.inputs.get(name);
    if (!entry) return;
    entry.error.textContent = text;
    entry.error.hidden = !text;
    entry.input.setAttribute('aria-invalid', text ? 'true' : 'false');
  }
}

const SERVER_WORDS = {
  missing: 'Please fill this in.',
  value_error: 'Please enter an email address, like name@example.com.',
  literal_error: 'Please choose one of the options.',
  string_too_long: 'This answer is too long.',
  extra_forbidden: 'This question is no longer asked; please reload the page.',
};
