// Admin pages in the console: users (permissions, capacity, queues, disable), queues (wrap-up
// dispositions), deployments (allowed origins, pre-chat fields, business hours, greeting) and the
// snippet a company pastes into its site. Everything is picked by name; no id is typed by hand.

import { h } from './dom.js';

const PERMISSIONS = [
  ['chat_user', 'Chat user'],
  ['chat_rep', 'Chat rep'],
  ['access_conversation_entries', 'Access Conversation Entries'],
  ['supervisor', 'Supervisor'],
  ['admin', 'Admin'],
];

const lines = (value) => value.split('\n').map((line) => line.trim()).filter(Boolean);

export function embedSnippet(deploymentKey, origin = window.location.origin) {
  return `<script type="module" src="${origin}/static/widget.js" data-deployment="${deploymentKey}" data-server="${origin}"></script>`;
}

export class AdminPages {
  constructor({ api, elements, onError }) {
    this.api = api;
    this.el = elements;
    this.onError = onError;
    this.queues = [];
    elements.userForm.addEventListener('submit', (event) => this.createUser(event));
    elements.queueForm.addEventListener('submit', (event) => this.createQueue(event));
  }

  async load() {
    try {
      const [users, queues, deployments] = await Promise.all([
        this.api.get('/api/v1/admin/users'),
        this.api.get('/api/v1/admin/queues'),
        this.api.get('/api/v1/admin/deployments'),
      ]);
      this.queues = queues;
      this.renderUsers(users);
      this.renderQueues(queues);
      this.renderDeployments(deployments);
      this.onError(null);
    } catch (error) {
      this.onError(error);
    }
  }

  /** Save, then re-read only what changed: other sections keep what the admin is typing there. */
  async save(method, path, body, section) {
    try {
      await this.api.request(method, path, { body });
      if (section === 'users') this.renderUsers(await this.api.get('/api/v1/admin/users'));
      else if (section === 'deployments') this.renderDeployments(await this.api.get('/api/v1/admin/deployments'));
      else if (section === 'queues') this.renderQueues(this.queues = await this.api.get('/api/v1/admin/queues'));
      else await this.load();
      this.onError(null);
      return true;
    } catch (error) {
      this.onError(error);
      return false;
    }
  }

  // -- users --------------------------------------------------------------------------------------
  renderUsers(users) {
    this.el.users.replaceChildren(...users.map((user) => {
      const label = `${user.display_name} (${user.username})`;
      const boxes = PERMISSIONS.map(([name, text]) => h('label', { className: 'check' },
        h('input', { type: 'checkbox', checked: user.permissions.includes(name), attrs: { 'data-permission': name } }), ` ${text}`));
      const queues = this.queues.map((queue) => h('label', { className: 'check' },
        h('input', { type: 'checkbox', checked: user.queue_ids.includes(queue.id), attrs: { 'data-queue': queue.id } }), ` ${queue.name}`));
      const capacity = h('input', { type: 'number', min: 0, max: 100, value: String(user.max_concurrent), className: 'narrow', attrs: { 'aria-label': `Capacity of ${label}` } });
      const row = h('tr', { attrs: { 'data-user': user.username } },
        h('th', { scope: 'row', textContent: label }),
        h('td', {}, ...boxes),
        h('td', {}, capacity),
        h('td', {}, ...queues),
        h('td', { textContent: user.disabled ? 'Disabled' : 'Active' }),
        h('td', {},
          h('button', { type: 'button', className: 'secondary', textContent: 'Save', attrs: { 'aria-label': `Save ${label}` }, on: { click: () => this.saveUser(user, row, capacity) } }),
          h('button', {
            type: 'button', className: 'link', textContent: user.disabled ? 'Enable' : 'Disable',
            attrs: { 'aria-label': `${user.disabled ? 'Enable' : 'Disable'} ${label}` },
            on: { click: () => this.save('PATCH', `/api/v1/admin/users/${encodeURIComponent(user.id)}`, { disabled: !user.disabled }, 'users') },
          })));
      return row;
    }));
  }

  saveUser(user, row, capacity) {
    const permissions = [...row.querySelectorAll('[data-permission]')].filter((box) => box.checked).map((box) => box.dataset.permission);
    const queueIds = [...row.querySelectorAll('[data-queue]')].filter((box) => box.checked).map((box) => box.dataset.queue);
    return this.save('PATCH', `/api/v1/admin/users/${encodeURIComponent(user.id)}`, {
      permissions, queue_ids: queueIds, max_concurrent: Number(capacity.value),
    }, 'users');
  }

  async createUser(event) {
    event.preventDefault();
    const body = {
      username: this.el.newUsername.value.trim(),
      password: this.el.newPassword.value,
      permissions: ['chat_user', 'chat_rep', 'access_conversation_entries'],
    };
    const displayName = this.el.newDisplayName.value.trim();
    if (displayName) body.display_name = displayName;
    if (this.queues.length) body.queue_ids = [this.queues[0].id];
    if (await this.save('POST', '/api/v1/admin/users', body, 'users')) event.target.reset();
  }

  // -- queues -------------------------------------------------------------------------------------
  renderQueues(queues) {
    this.el.queues.replaceChildren(...queues.map((queue) => {
      const input = h('input', { value: (queue.dispositions || []).join(', '), className: 'wide', attrs: { 'aria-label': `Wrap-up dispositions of ${queue.name} (comma separated)` } });
      return h('li', { attrs: { 'data-queue-name': queue.name } },
        h('strong', { textContent: queue.name }), ' ',
        h('label', {}, 'Wrap-up dispositions ', input), ' ',
        h('button', {
          type: 'button', className: 'secondary', textContent: 'Save', attrs: { 'aria-label': `Save queue ${queue.name}` },
          on: { click: () => this.save('PATCH', `/api/v1/admin/queues/${encodeURIComponent(queue.id)}`, { dispositions: input.value.split(',').map((d) => d.trim()).filter(Boolean) }, 'queues') },
        }));
    }));
  }

  async createQueue(event) {
    event.preventDefault();
    if (await this.save('POST', '/api/v1/admin/queues', { name: this.el.newQueue.value.trim() })) event.target.reset();
  }

  // -- deployments --------------------------------------------------------------------------------
  renderDeployments(deployments) {
    const queueName = (id) => this.queues.find((q) => q.id === id)?.name || '';
    this.el.deployments.replaceChildren(...deployments.map((deployment) => {
      const key = deployment.key;
      const origins = h('textarea', { rows: 3, value: deployment.allowed_origins.join('\n'), attrs: { 'aria-label': `Allowed origins of ${key} (one per line)` } });
      const fields = h('textarea', {
        rows: 3,
        value: deployment.pre_chat_fields.map((f) => `${f.name} | ${f.label}${f.required ? ' | required' : ''}`).join('\n'),
        attrs: { 'aria-label': `Pre-chat fields of ${key} (name | label | required, one per line)` },
      });
      const greeting = h('input', { value: deployment.greeting || '', className: 'wide', attrs: { 'aria-label': `Greeting of ${key}` } });
      const hours = h('textarea', {
        rows: 3, value: deployment.business_hours ? JSON.stringify(deployment.business_hours, null, 1) : '',
        attrs: { 'aria-label': `Business hours of ${key} (JSON; empty for always open)` },
      });
      const snippet = embedSnippet(key);
      const copy = h('button', { type: 'button', className: 'secondary', textContent: 'Copy snippet', on: { click: () => navigator.clipboard?.writeText(snippet).catch(() => {}) } });
      return h('article', { className: 'deployment', attrs: { 'data-deployment': key } },
        h('h4', { textContent: `${key} → queue ${queueName(deployment.queue_id)}` }),
        h('label', {}, 'Allowed origins (one per line)', origins),
        h('label', {}, 'Pre-chat fields (name | label | required)', fields),
        h('label', {}, 'Greeting ({rep} becomes the rep’s name)', greeting),
        h('label', {}, 'Business hours (JSON, empty: always open)', hours),
        h('button', {
          type: 'button', textContent: 'Save deployment', attrs: { 'aria-label': `Save deployment ${key}` },
          on: { click: () => this.saveDeployment(deployment, { origins, fields, greeting, hours }) },
        }),
        h('p', { className: 'hint', textContent: 'Paste into your site’s pages:' }),
        h('pre', { className: 'snippet' }, h('code', { textContent: snippet })),
        copy);
    }));
  }

  saveDeployment(deployment, { origins, fields, greeting, hours }) {
    let businessHours = null;
    try {
      businessHours = hours.value.trim() ? JSON.parse(hours.value) : null;
    } catch {
      this.onError(new Error('Business hours must be JSON, e.g. {"timezone": "Europe/Berlin", "weekly": {"mon": [["09:00", "17:00"]]}}'));
      return null;
    }
    const preChat = lines(fields.value).map((line) => {
      const [name, label, required] = line.split('|').map((part) => part.trim());
      return { name, label: label || name, required: required === 'required' };
    });
    const body = { allowed_origins: lines(origins.value), pre_chat_fields: preChat, greeting: greeting.value.trim() };
    if (businessHours) body.business_hours = businessHours;
    return this.save('PATCH', `/api/v1/admin/deployments/${encodeURIComponent(deployment.id)}`, body, 'deployments');
  }
}
