// Canned responses: `/` + shortcut in the reply box suggests saved replies (arrow keys, Enter or Tab to
// insert), with {customer.name} and {rep.name} filled in; and the page where they are managed.

import { h } from './dom.js';

export function fillVariables(text, { customerName, repName }) {
  return text.replaceAll('{customer.name}', customerName || 'there').replaceAll('{rep.name}', repName || '');
}

export class CannedResponses {
  constructor({ api, box, list, context }) {
    this.api = api;
    this.box = box;
    this.list = list;
    this.context = context; // () => ({customerName, repName, queueId})
    this.items = [];
    this.matches = [];
    this.active = 0;
    box.addEventListener('input', () => this.suggest());
    box.addEventListener('keydown', (event) => this.onKey(event), true);
    box.addEventListener('blur', () => setTimeout(() => this.close(), 150));
  }

  async load() {
    try {
      this.items = await this.api.get('/api/v1/canned-responses');
    } catch {
      this.items = [];
    }
    return this.items;
  }

  /** The `/word` being typed at the caret, if any. */
  token() {
    const before = this.box.value.slice(0, this.box.selectionStart);
    const match = /(^|\s)\/([A-Za-z0-9_-]*)$/.exec(before);
    return match ? { query: match[2].toLowerCase(), start: before.length - match[2].length - 1 } : null;
  }

  suggest() {
    const token = this.token();
    const queueId = this.context().queueId;
    this.matches = token
      ? this.items.filter((c) => c.shortcut.startsWith(token.query) && (!c.queue_id || c.queue_id === queueId)).slice(0, 8)
      : [];
    this.active = 0;
    this.render();
  }

  render() {
    this.list.replaceChildren(...this.matches.map((item, n) => h('li', {
      id: `canned-option-${n}`,
      className: 'suggestion',
      attrs: { role: 'option', 'aria-selected': String(n === this.active) },
      on: { mousedown: (event) => { event.preventDefault(); this.insert(item); } },
    }, h('strong', { textContent: `/${item.shortcut}` }), ' ', h('span', { textContent: item.title }))));
    this.list.hidden = this.matches.length === 0;
    this.box.setAttribute('aria-expanded', String(!this.list.hidden));
    if (!this.list.hidden) this.box.setAttribute('aria-activedescendant', `canned-option-${this.active}`);
    else this.box.removeAttribute('aria-activedescendant');
  }

  close() {
    this.matches = [];
    this.render();
  }

  onKey(event) {
    if (this.list.hidden) return;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      const step = event.key === 'ArrowDown' ? 1 : -1;
      this.active = (this.active + step + this.matches.length) % this.matches.length;
      this.render();
    } else if (event.key === 'Enter' || event.key === 'Tab') {
      event.preventDefault();
      event.stopImmediatePropagation(); // Enter inserts here; it does not send
      this.insert(this.matches[this.active]);
    } else if (event.key === 'Escape') {
      event.preventDefault();
      this.close();
    }
  }

  insert(item) {
    const token = this.token();
    if (!item || !token) return;
    const text = fillVariables(item.text, this.context());
    const value = this.box.value;
    const caret = this.box.selectionStart;
    this.box.value = value.slice(0, token.start) + text + value.slice(caret);
    const end = token.start + text.length;
    this.box.setSelectionRange(end, end);
    this.close();
    this.box.dispatchEvent(new Event('input'));
    this.box.focus();
  }
}

/** The management page: list, create, edit, delete (shared ones only for supervisors and admins). */
export function cannedPage({ api, elements, managesShared, userId, onChange }) {
  const { list, form, shortcut, title, text, personal, personalField, error, heading } = elements;
  let editing = null;
  personal.checked = !managesShared;
  personal.disabled = !managesShared;
  personalField.hidden = !managesShared;

  const show = (problem) => {
    error.textContent = problem ? problem.message : '';
    error.hidden = !problem;
  };

  async function refresh() {
    const items = await api.get('/api/v1/canned-responses');
    list.replaceChildren(...items.map((item) => {
      const mine = item.owner_id === userId;
      const editable = mine || (!item.owner_id && managesShared);
      return h('li', { className: 'canned-item' },
        h('strong', { textContent: `/${item.shortcut}` }), ' ',
        h('span', { textContent: item.title }), ' ',
        h('span', { className: 'badge', textContent: item.owner_id ? 'personal' : 'shared' }),
        h('p', { className: 'canned-item__text', textContent: item.text }),
        editable ? h('button', { type: 'button', className: 'link', textContent: 'Edit', attrs: { 'aria-label': `Edit /${item.shortcut}` }, on: { click: () => edit(item) } }) : null,
        editable ? h('button', { type: 'button', className: 'link', textContent: 'Delete', attrs: { 'aria-label': `Delete /${item.shortcut}` }, on: { click: () => remove(item) } }) : null);
    }));
    onChange(items);
  }

  function edit(item) {
    editing = item;
    heading.textContent = `Edit /${item.shortcut}`;
    shortcut.value = item.shortcut;
    title.value = item.title;
    text.value = item.text;
    personal.checked = Boolean(item.owner_id);
    personal.disabled = true;
    shortcut.focus();
  }

  async function remove(item) {
    try {
      await api.request('DELETE', `/api/v1/canned-responses/${encodeURIComponent(item.id)}`);
      await refresh();
    } catch (problem) {
      show(problem);
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    show(null);
    const body = { shortcut: shortcut.value.trim(), title: title.value.trim(), text: text.value };
    try {
      if (editing) {
        await api.request('PATCH', `/api/v1/canned-responses/${encodeURIComponent(editing.id)}`, { body });
      } else {
        await api.post('/api/v1/canned-responses', { ...body, personal: personal.checked });
      }
      editing = null;
      heading.textContent = 'New canned response';
      form.reset();
      personal.checked = !managesShared;
      personal.disabled = !managesShared;
      await refresh();
    } catch (problem) {
      show(problem);
    }
  });

  return { refresh };
}
