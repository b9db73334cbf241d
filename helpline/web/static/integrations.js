// Admin pages for integrations (issue 14): webhook endpoints (with a banner when one is paused, its
// delivery log, a test event, redelivery, secret rotation), API keys, and the bot that fronts a queue.
// A secret or key is shown once, right after it is made, in a box the admin copies from.
// Everything is built with h() (no HTML parsing) and lives in the one root element it is given.

import { h } from './dom.js';
import { STORED_TYPES } from './events.js';

const EVENT_TYPES = STORED_TYPES; // what a webhook may subscribe to: the log's event types
const PERMISSIONS = ['chat_user', 'chat_rep', 'access_conversation_entries', 'supervisor', 'admin'];
const path = (...parts) => parts.map(encodeURIComponent).join('/');

/** A banner for admins whenever an endpoint is paused; `element` is any (hidden) block of the page. */
export async function showPausedWebhooks(api, element, onResume = () => {}) {
  let hooks = [];
  try {
    hooks = await api.get('/api/v1/admin/webhooks');
  } catch {
    return; // not an admin, or the server is away: no banner
  }
  const paused = hooks.filter((hook) => hook.paused && hook.enabled);
  element.hidden = paused.length === 0;
  element.replaceChildren(...paused.map((hook) => h('p', {},
    `Webhook ${hook.url} is paused after ${hook.consecutive_failures} failed deliveries in a row; `,
    `${hook.pending ?? 0} events wait for it. `,
    h('button', {
      type: 'button', className: 'secondary', textContent: 'Resume',
      attrs: { 'aria-label': `Resume webhook ${hook.url}` },
      on: { click: async () => { await api.request('PATCH', `/api/v1/admin/webhooks/${path(hook.id)}`, { body: { enabled: true } }); onResume(); } },
    }))));
}

export class IntegrationsAdmin {
  constructor({ api, root, onError }) {
    this.api = api;
    this.root = root;
    this.onError = onError;
    this.banner = h('div', { className: 'banner banner--warning', attrs: { role: 'alert' }, hidden: true });
    this.revealed = h('div', { className: 'revealed', attrs: { 'aria-live': 'polite' } });
    this.hooks = h('tbody');
    this.log = h('div', { className: 'delivery-log' });
    this.keys = h('tbody');
    this.bots = h('ul', { className: 'plain-list' });
    root.replaceChildren(
      h('h3', { id: 'integrations-title', textContent: 'Integrations' }),
      this.banner, this.revealed,
      h('h4', { textContent: 'Webhooks' }),
      h('table', { className: 'grid' },
        h('thead', {}, h('tr', {}, ...['URL', 'Events', 'State', 'Waiting', ''].map((text) => h('th', { scope: 'col', textContent: text })))),
        this.hooks),
      this.webhookForm(), this.log,
      h('h4', { textContent: 'API keys' }),
      h('table', { className: 'grid' },
        h('thead', {}, h('tr', {}, ...['Name', 'Permissions', 'Acts as', 'Last used', 'State', ''].map((text) => h('th', { scope: 'col', textContent: text })))),
        this.keys),
      this.keyForm(),
      h('h4', { textContent: 'Bots in front of queues' }),
      this.bots);
  }

  async load() {
    try {
      const [hooks, keys, queues, users] = await Promise.all([
        this.api.get('/api/v1/admin/webhooks'), this.api.get('/api/v1/admin/api-keys'),
        this.api.get('/api/v1/admin/queues'), this.api.get('/api/v1/admin/users'),
      ]);
      this.users = users;
      this.renderHooks(hooks);
      this.renderKeys(keys);
      this.renderBots(queues, users);
      this.userPicker.replaceChildren(h('option', { value: '', textContent: 'itself (no user)' }),
        ...users.map((user) => h('option', { value: user.id, textContent: user.username })));
      await showPausedWebhooks(this.api, this.banner, () => this.load());
      this.onError(null);
    } catch (error) {
      this.onError(error);
    }
  }

  async act(method, url, body) {
    try {
      const answer = await this.api.request(method, url, { body });
      await this.load();
      return answer;
    } catch (error) {
      this.onError(error);
      return null;
    }
  }

  reveal(label, secret) {
    const box = h('input', { type: 'text', readOnly: true, value: secret, className: 'secret', attrs: { 'aria-label': label } });
    this.revealed.replaceChildren(h('p', {}, `${label} — shown only now; copy it somewhere safe:`), box);
    box.focus();
    box.select();
  }

  // -- webhooks -----------------------------------------------------------------------------------
  webhookForm() {
    const url = h('input', { type: 'url', required: true, placeholder: 'https://crm.example/helpline', id: 'webhook-url' });
    const all = h('input', { type: 'checkbox', checked: true, id: 'webhook-all' });
    const boxes = EVENT_TYPES.map((type) => h('label', { className: 'check' },
      h('input', { type: 'checkbox', attrs: { 'data-event': type } }), ` ${type}`));
    const form = h('form', { className: 'inline-form', on: { submit: async (event) => {
      event.preventDefault();
      const events = all.checked ? ['*'] : boxes.map((b) => b.firstChild).filter((b) => b.checked).map((b) => b.dataset.event);
      const created = await this.act('POST', '/api/v1/admin/webhooks', { url: url.value.trim(), events });
      if (created) {
        form.reset();
        this.reveal(`Signing secret of ${created.url}`, created.secret);
      }
    } } },
    h('label', { htmlFor: 'webhook-url', textContent: 'Endpoint URL' }), url,
    h('label', { className: 'check' }, all, ' every event type'), h('fieldset', {}, h('legend', { textContent: 'or only' }), ...boxes),
    h('button', { type: 'submit', textContent: 'Add webhook' }));
    return form;
  }

  renderHooks(hooks) {
    this.hooks.replaceChildren(...hooks.map((hook) => {
      const state = hook.paused ? 'Paused' : hook.enabled ? 'Enabled' : 'Disabled';
      const button = (text, click) => h('button', {
        type: 'button', className: 'link', textContent: text, attrs: { 'aria-label': `${text}: ${hook.url}` }, on: { click },
      });
      const base = `/api/v1/admin/webhooks/${path(hook.id)}`;
      return h('tr', { attrs: { 'data-webhook': hook.id } },
        h('th', { scope: 'row', textContent: hook.url }),
        h('td', { textContent: hook.events.join(', ') }),
        h('td', { textContent: state }),
        h('td', { textContent: String(hook.pending ?? 0) }),
        h('td', {},
          hook.paused || !hook.enabled
            ? button('Resume', () => this.act('PATCH', base, { enabled: true }))
            : button('Disable', () => this.act('PATCH', base, { enabled: false })),
          button('Send test', () => this.act('POST', `${base}/test`).then(() => this.showLog(hook))),
          button('Deliveries', () => this.showLog(hook)),
          button('Rotate secret', async () => {
            const rotated = await this.act('POST', `${base}/rotate-secret`);
            if (rotated) this.reveal(`New signing secret of ${hook.url}`, rotated.secret);
          }),
          button('Delete', () => this.act('DELETE', base))));
    }));
  }

  async showLog(hook) {
    try {
      const page = await this.api.get(`/api/v1/admin/webhooks/${path(hook.id)}/deliveries`, { query: { limit: 50 } });
      const rows = page.deliveries.map((d) => h('tr', {},
        h('td', { textContent: String(d.event_id ?? '') }), h('td', { textContent: d.event_type }),
        h('td', { textContent: d.status }), h('td', { textContent: String(d.attempts) }),
        h('td', { textContent: d.last_status ? String(d.last_status) : '' }),
        h('td', { textContent: d.duration_ms === null ? '' : `${d.duration_ms} ms` }),
        h('td', { textContent: d.last_error || '' }),
        h('td', {}, d.status === 'pending' ? '' : h('button', {
          type: 'button', className: 'link', textContent: 'Redeliver', attrs: { 'aria-label': `Redeliver event ${d.event_id}` },
          on: { click: () => this.act('POST', `/api/v1/admin/webhooks/${path(hook.id)}/deliveries/${d.id}/redeliver`).then(() => this.showLog(hook)) },
        }))));
      this.log.replaceChildren(h('h5', { textContent: `Deliveries to ${hook.url}` }), h('table', { className: 'grid' },
        h('thead', {}, h('tr', {}, ...['Event', 'Type', 'Status', 'Attempts', 'HTTP', 'Duration', 'Last error', ''].map((text) => h('th', { scope: 'col', textContent: text })))),
        h('tbody', {}, ...rows)));
    } catch (error) {
      this.onError(error);
    }
  }

  // -- API keys -----------------------------------------------------------------------------------
  keyForm() {
    const name = h('input', { type: 'text', required: true, pattern: '[A-Za-z0-9_.\\-]{1,64}', id: 'key-name' });
    const boxes = PERMISSIONS.map((permission) => h('label', { className: 'check' },
      h('input', { type: 'checkbox', attrs: { 'data-permission': permission } }), ` ${permission}`));
    this.userPicker = h('select', { id: 'key-user' });
    const form = h('form', { className: 'inline-form', on: { submit: async (event) => {
      event.preventDefault();
      const permissions = boxes.map((b) => b.firstChild).filter((b) => b.checked).map((b) => b.dataset.permission);
      const body = { name: name.value.trim(), permissions };
      if (this.userPicker.value) body.user_id = this.userPicker.value;
      const created = await this.act('POST', '/api/v1/admin/api-keys', body);
      if (created) {
        form.reset();
        this.reveal(`API key ${created.name}`, created.key);
      }
    } } },
    h('label', { htmlFor: 'key-name', textContent: 'Key name' }), name,
    h('fieldset', {}, h('legend', { textContent: 'Permissions' }), ...boxes),
    h('label', { htmlFor: 'key-user', textContent: 'Acts as' }), this.userPicker,
    h('button', { type: 'submit', textContent: 'Create key' }));
    return form;
  }

  renderKeys(keys) {
    const names = new Map((this.users || []).map((user) => [user.id, user.username]));
    this.keys.replaceChildren(...keys.map((key) => h('tr', { attrs: { 'data-key': key.name } },
      h('th', { scope: 'row', textContent: `${key.name} (${key.prefix}…)` }),
      h('td', { textContent: key.permissions.join(', ') }),
      h('td', { textContent: key.user_id ? names.get(key.user_id) || key.user_id : '—' }),
      h('td', { textContent: key.last_used_at ? new Date(key.last_used_at).toLocaleString() : 'never' }),
      h('td', { textContent: key.revoked_at ? 'Revoked' : 'Active' }),
      h('td', {}, key.revoked_at ? '' : h('button', {
        type: 'button', className: 'link', textContent: 'Revoke', attrs: { 'aria-label': `Revoke API key ${key.name}` },
        on: { click: () => this.act('DELETE', `/api/v1/admin/api-keys/${path(key.id)}`) },
      })))));
  }

  // -- bots ---------------------------------------------------------------------------------------
  renderBots(queues, users) {
    const candidates = users.filter((u) => !u.disabled && u.permissions.includes('chat_user') && u.permissions.includes('access_conversation_entries'));
    this.bots.replaceChildren(...queues.map((queue) => {
      const picker = h('select', { attrs: { 'aria-label': `Bot in front of ${queue.name}` } },
        h('option', { value: '', textContent: 'no bot: people answer first' }),
        ...candidates.map((user) => h('option', { value: user.id, textContent: user.username, selected: user.id === queue.bot_user_id })));
      return h('li', {}, `${queue.name}: `, picker, h('button', {
        type: 'button', className: 'secondary', textContent: 'Save', attrs: { 'aria-label': `Save the bot of ${queue.name}` },
        on: { click: () => this.act('PUT', `/api/v1/admin/queues/${path(queue.id)}/bot`, { user_id: picker.value || null }) },
      }));
    }));
  }
}
