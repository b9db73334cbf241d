// The supervisor's wallboard: per queue waiting, longest wait, assigned, last-hour averages and service
// level; per rep presence, time in status, load and current conversations. Fetched at once (so it is
// right just after sign-in), then kept live from `queue.stats`; waits and times tick every second. With
// issue 12 and 14: the satisfaction average, and today's bot conversations contained vs escalated.

import { h } from './dom.js';

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

const PRESENCE = { online: 'Online', busy: 'Busy', away: 'Away', offline: 'Offline' };

export class Wallboard {
  constructor({ api, queuesBody, repsBody, updated, onOpen }) {
    this.api = api;
    this.queuesBody = queuesBody;
    this.repsBody = repsBody;
    this.updated = updated;
    this.onOpen = onOpen;
    this.queues = [];
    this.receivedAt = Date.now();
    setInterval(() => this.render(), 1000);
  }

  async load() {
    this.apply(await this.api.get('/api/v1/queues/stats'));
  }

  apply(queues) {
    this.queues = queues || [];
    this.receivedAt = Date.now();
    this.render();
  }

  render() {
    const drift = (Date.now() - this.receivedAt) / 1000;
    this.queuesBody.replaceChildren(...this.queues.map((q) => h('tr', { attrs: { 'data-queue': q.name } },
      h('th', { scope: 'row', textContent: q.name }),
      h('td', { className: 'num', textContent: String(q.waiting ?? q.length), attrs: { 'data-field': 'waiting' } }),
      h('td', { className: 'num', textContent: q.length ? duration(q.longest_wait_seconds + drift) : '—', attrs: { 'data-field': 'longest' } }),
      h('td', { className: 'num', textContent: String(q.assigned ?? 0), attrs: { 'data-field': 'assigned' } }),
      h('td', { className: 'num', textContent: duration(q.avg_wait_seconds) }),
      h('td', { className: 'num', textContent: duration(q.avg_handle_seconds) }),
      h('td', {
        className: 'num',
        textContent: q.service_level === null || q.service_level === undefined ? '—'
          : `${Math.round(q.service_level * 100)} % in ${q.service_level_target_seconds} s`,
      }),
      h('td', { className: 'num', textContent: String(q.reps_online ?? 0), attrs: { 'data-field': 'online' } }),
      h('td', {
        className: 'num', attrs: { 'data-field': 'rating' },
        textContent: q.rating_average === null || q.rating_average === undefined ? '—'
          : `${q.rating_average.toFixed(1)} / 5 (${q.ratings} rating${q.ratings === 1 ? '' : 's'})`,
      }),
      h('td', {
        className: 'num', attrs: { 'data-field': 'bot' },
        textContent: q.bot_user_id || q.bot_contained_today || q.bot_escalated_today
          ? `${q.bot_contained_today ?? 0} / ${q.bot_escalated_today ?? 0}` : '—',
      }))));
    const reps = new Map();
    for (const queue of this.queues) for (const rep of queue.reps || []) reps.set(rep.id, rep);
    this.repsBody.replaceChildren(...[...reps.values()].map((rep) => {
      const since = rep.presence_since ? (Date.now() - Date.parse(rep.presence_since)) / 1000 : null;
      return h('tr', { attrs: { 'data-rep': rep.display_name } },
        h('th', { scope: 'row' }, rep.display_name, rep.routable === false ? h('span', { className: 'hint', textContent: ' (not routable)' }) : null),
        h('td', {}, h('span', { className: `presence-dot presence-dot--${rep.presence}` }), PRESENCE[rep.presence] || rep.presence),
        h('td', { className: 'num', textContent: since === null ? '—' : duration(since) }),
        h('td', { className: 'num', textContent: `${rep.active}/${rep.capacity}`, attrs: { 'data-field': 'load' } }),
        h('td', {}, ...(rep.conversations || []).map((c) => h('button', {
          type: 'button', className: 'link', textContent: c.customer,
          attrs: { 'aria-label': `Monitor the chat with ${c.customer}` },
          on: { click: () => this.onOpen(c.id) },
        }))));
    }));
    this.updated.textContent = `Updated ${Math.round(drift)} s ago`;
  }
}
