// Offers in the rep's console: what the customer asked, who they are, a live countdown, and cues that
// reach a rep who is looking elsewhere (a sound, the tab title, a desktop notification when the page is
// hidden). Pending offers are fetched again after a reload (GET /api/v1/offers), so none is lost.

import { h } from './dom.js';
import { EventType } from './events.js';

const TITLE = document.title;

/** A short two-tone chime, synthesised (no file to fetch, nothing to license). */
function chime() {
  try {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    const audio = chime.context || (chime.context = new Context());
    const now = audio.currentTime;
    for (const [offset, frequency] of [[0, 880], [0.18, 1320]]) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = frequency;
      gain.gain.setValueAtTime(0.0001, now + offset);
      gain.gain.exponentialRampToValueAtTime(0.2, now + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.25);
      tone.connect(gain).connect(audio.destination);
      tone.start(now + offset);
      tone.stop(now + offset + 0.3);
    }
  } catch {
    // no audio (autoplay policy before any gesture): the title and the notification still tell
  }
}

/** Ask for desktop notifications once, from a user gesture (browsers ignore it otherwise). */
export function askForNotifications() {
  if (!('Notification' in window) || Notification.permission !== 'default') return;
  try {
    Notification.requestPermission().catch(() => {});
  } catch {
    // old callback-only API: not worth supporting
  }
}

function secondsLeft(offer) {
  return Math.max(0, Math.round((Date.parse(offer.expires_at) - Date.now()) / 1000));
}

export class Offers {
  constructor({ api, section, list, onAnswered, onError }) {
    this.api = api;
    this.section = section;
    this.list = list;
    this.onAnswered = onAnswered;
    this.onError = onError;
    this.offers = new Map();
    this.timer = null;
    document.addEventListener('keydown', (event) => {
      if (event.altKey && (event.key === 'a' || event.key === 'A') && this.offers.size) {
        event.preventDefault();
        this.answer([...this.offers.keys()][0], 'accept');
      }
    });
    document.addEventListener('visibilitychange', () => this.updateTitle());
  }

  /** After sign-in, a reload or a stream reset: the server's list replaces ours. */
  async load() {
    const pending = await this.api.get('/api/v1/offers');
    this.offers = new Map(pending.map((offer) => [offer.offer_id, offer]));
    this.render();
  }

  clear() {
    this.offers.clear();
    this.render();
  }

  onEvent(event) {
    if (!event.offer_id) return;
    if (event.type === EventType.OFFER_REVOKED) {
      this.offers.delete(event.offer_id);
    } else if (!this.offers.has(event.offer_id)) {
      this.offers.set(event.offer_id, event);
      this.cue(event);
    }
    this.render();
  }

  cue(offer) {
    chime();
    if (document.visibilityState === 'hidden' && 'Notification' in window && Notification.permission === 'granted') {
      const name = offer.customer?.display_name || 'A customer';
      const note = new Notification(`New chat: ${name}`, { body: offer.preview || 'is waiting for an answer', tag: offer.offer_id });
      note.onclick = () => {
        window.focus();
        note.close();
      };
    }
  }

  updateTitle() {
    document.title = this.offers.size ? `(${this.offers.size}) New chat · ${TITLE}` : TITLE;
  }

  render() {
    const items = [...this.offers.values()].map((offer) => this.item(offer));
    const focused = document.activeElement?.dataset?.offer;
    this.list.replaceChildren(...items);
    if (focused) this.list.querySelector(`[data-offer="${CSS.escape(focused)}"]`)?.focus();
    this.section.hidden = items.length === 0;
    this.updateTitle();
    clearInterval(this.timer);
    if (this.offers.size) this.timer = setInterval(() => this.tick(), 1000);
  }

  tick() {
    for (const [id, offer] of this.offers) {
      const left = secondsLeft(offer);
      const node = this.list.querySelector(`[data-countdown="${CSS.escape(id)}"]`);
      if (node) node.textContent = `${left} s left`;
      if (left <= 0) this.offers.delete(id); // the router revokes it; do not offer a dead button
    }
    if (![...this.list.children].every((li) => this.offers.has(li.dataset.id))) this.render();
  }

  item(offer) {
    const conversation = offer.conversation || {};
    const name = offer.customer?.display_name || 'Customer';
    const answers = Object.entries(conversation.pre_chat || {});
    return h('li', { className: 'offer', attrs: { 'data-id': offer.offer_id } },
      h('p', { className: 'offer__who' },
        h('strong', { textContent: name }),
        offer.customer?.verified ? h('span', { className: 'badge', textContent: 'verified' }) : null,
        h('span', { className: 'offer__left', textContent: `${secondsLeft(offer)} s left`, attrs: { 'data-countdown': offer.offer_id } })),
      answers.length
        ? h('dl', { className: 'offer__answers' }, ...answers.flatMap(([key, value]) => [h('dt', { textContent: key }), h('dd', { textContent: value })]))
        : null,
      h('p', { className: 'offer__preview', textContent: offer.preview ? `“${offer.preview}”` : 'No message yet' }),
      h('div', { className: 'offer__actions' },
        h('button', { type: 'button', textContent: 'Accept', attrs: { 'data-offer': offer.offer_id, 'aria-label': `Accept chat with ${name}` }, on: { click: () => this.answer(offer.offer_id, 'accept') } }),
        h('button', { type: 'button', className: 'secondary', textContent: 'Decline', attrs: { 'aria-label': `Decline chat with ${name}` }, on: { click: () => this.answer(offer.offer_id, 'decline') } })));
  }

  async answer(id, answer) {
    const offer = this.offers.get(id);
    if (!offer) return;
    try {
      const result = await this.api.post(`/api/v1/offers/${encodeURIComponent(id)}/${answer}`, {});
      this.offers.delete(id);
      this.render();
      this.onAnswered(answer, offer, result);
    } catch (error) {
      this.offers.delete(id); // revoked, expired or taken meanwhile: the server's word stands
      this.render();
      this.onError(error);
    }
  }
}
