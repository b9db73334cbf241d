// A conversation's transcript, shared by the widget and the console: messages and system lines in
// entry-id order, messages being sent at the end, read receipts on one's own messages.
//
// Everything is built with textContent (dom.js), so message text is shown exactly as typed.

import { formatTime, h, isNearEnd, scrollToEnd } from './dom.js';
import { EventType } from './events.js';

const SYSTEM_TYPES = new Set([EventType.CONVERSATION_PARTICIPANT_CHANGED, EventType.CONVERSATION_ROUTING, EventType.CONVERSATION_CLOSED, EventType.CONVERSATION_RATED]);

export class Transcript {
  /**
   * @param {HTMLElement} log  the scrolling container (role="log")
   * @param {object} options
   * @param {() => string|null} options.selfId  the viewer's principal id
   * @param {'customer'|'staff'} options.perspective  wording of system lines
   * @param {(attachments: object[]) => Node} [options.files]  renders a message's attachments (attachments.js)
   */
  constructor(log, { selfId, perspective, files = null, onUnseen = () => {}, onEscalation = () => {} }) {
    this.log = log;
    this.onEscalation = onEscalation; // a bot's hand-off summary arrived (the console pins it on top)
    this.onUnseen = onUnseen; // an entry arrived below the fold while the reader had scrolled up
    this.selfId = selfId;
    this.perspective = perspective;
    this.files = files;
    this.byId = new Map(); // entry id → node
    this.pending = new Map(); // client message id → node, until the server confirms it
    this.readUpTo = 0;
  }

  clear() {
    this.log.replaceChildren();
    this.byId.clear();
    this.pending.clear();
    this.readUpTo = 0;
  }

  has(entryId) {
    return this.byId.has(entryId);
  }

  get size() {
    return this.byId.size + this.pending.size;
  }

  /** The newest message id written by someone other than the viewer (for read receipts). */
  lastIncomingMessageId() {
    let last = 0;
    for (const [id, node] of this.byId) if (node.dataset.incoming === 'true' && id > last) last = id;
    return last;
  }

  /** Show a message the viewer is sending, before the server has stored it. */
  addPending(clientId, text, attachments = []) {
    const node = this.messageNode({ text, own: true, authorName: 'You', at: new Date().toISOString(), attachments });
    node.dataset.clientId = clientId;
    node.dataset.incoming = 'false';
    this.setState(node, 'Sending…', 'sending');
    this.pending.set(clientId, node);
    this.log.append(node);
    scrollToEnd(this.log, true);
    return node;
  }

  /** `retry` null: the message can never be accepted as it is, so no Retry is offered. */
  markFailed(clientId, detail, retry) {
    const node = this.pending.get(clientId);
    if (!node) return;
    if (!retry) {
      this.setState(node, `Not sent: ${detail}`, 'failed');
      return;
    }
    const button = h('button', { type: 'button', className: 'msg__retry', textContent: 'Retry' });
    button.addEventListener('click', () => retry(), { once: true });
    this.setState(node, `Not sent: ${detail} `, 'failed', button);
  }

  markSending(clientId) {
    const node = this.pending.get(clientId);
    if (node) this.setState(node, 'Sending…', 'sending');
  }

  /**
   * Apply one stored entry (from the stream or from REST); returns the node it added, or null for
   * an entry already shown or one with nothing to show. Ephemeral events are not handled here.
   */
  apply(entry) {
    if (typeof entry.id !== 'number' || this.byId.has(entry.id)) return null;
    if (entry.type === EventType.CONVERSATION_MESSAGE) return this.applyMessage(entry);
    if (entry.type === EventType.CONVERSATION_NOTE) return this.applyNote(entry);
    if (entry.type === EventType.CONVERSATION_READ) {
      if (entry.by?.id !== this.selfId()) this.markRead(entry.entry_id);
      return null;
    }
    if (!SYSTEM_TYPES.has(entry.type)) return null;
    const text = this.systemText(entry);
    if (!text) return null;
    const node = h('div', { className: 'sys', attrs: { 'data-id': entry.id } },
      h('p', {}, text, ' ', h('time', { dateTime: entry.at || '', textContent: formatTime(entry.at) })));
    this.place(entry.id, node);
    return node;
  }

  applyMessage(entry) {
    const pending = entry.message_id ? this.pending.get(entry.message_id) : null;
    if (pending) {
      // Our own message, confirmed: it takes its place in id order.
      this.pending.delete(entry.message_id);
      pending.remove();
      this.place(entry.id, pending);
      this.setState(pending, entry.id <= this.readUpTo ? 'Read' : 'Sent', 'sent');
      return pending;
    }
    if (entry.author?.kind === 'system') {
      // Automatic messages (greeting, business hours, inactivity warning) read as notices, not as a person.
      const notice = h('div', { className: 'sys sys--notice' },
        h('p', {}, entry.text ?? '', ' ', h('time', { dateTime: entry.at || '', textContent: formatTime(entry.at) })));
      this.place(entry.id, notice);
      return notice;
    }
    const own = entry.author?.id === this.selfId();
    const node = this.messageNode({
      text: entry.text, own, authorName: entry.author?.display_name, at: entry.at, attachments: entry.attachments,
    });
    node.dataset.incoming = String(!own);
    if (own) this.setState(node, entry.id <= this.readUpTo ? 'Read' : 'Sent', 'sent');
    this.place(entry.id, node);
    return node;
  }

  /** An internal note (staff only; the server never sends one to a customer): set apart, labelled.
   * A bot's hand-off summary (`escalation: true`, issue 14) is labelled as such. */
  applyNote(entry) {
    const label = entry.escalation ? 'Escalation summary' : 'Internal note';
    const className = entry.escalation ? 'note-entry note-entry--escalation' : 'note-entry';
    const node = h('div', { className, attrs: { role: 'note' } },
      h('p', { className: 'note-entry__label', textContent: `${label} · ${entry.author?.display_name || 'staff'}` }),
      h('p', { className: 'note-entry__text', textContent: entry.text ?? '' }),
      h('p', { className: 'msg__meta' }, h('time', { dateTime: entry.at || '', textContent: formatTime(entry.at) })));
    this.place(entry.id, node);
    if (entry.escalation) this.onEscalation(entry);
    return node;
  }

  markRead(entryId) {
    if (!(entryId > this.readUpTo)) return;
    this.readUpTo = entryId;
    for (const [id, node] of this.byId) {
      if (id <= entryId && node.dataset.incoming === 'false') this.setState(node, 'Read', 'read');
    }
  }

  systemText(entry) {
    const self = this.selfId();
    const name = (who, start = true) => {
      if (who?.id === self) return start ? 'You' : 'you';
      return who?.display_name || (start ? 'Someone' : 'someone');
    };
    switch (entry.type) {
      case EventType.CONVERSATION_PARTICIPANT_CHANGED: {
        const who = entry.participant;
        if (entry.action === 'joined') return `${name(who)} joined the chat`;
        if (entry.action === 'left') return `${name(who)} left the chat`;
        return null;
      }
      case EventType.CONVERSATION_ROUTING:
        if (entry.state === 'transferred' && !entry.assignee) {
          return this.perspective === 'customer' ? 'You are being transferred; please wait' : 'Transferred to a queue';
        }
        if (entry.state === 'failed') return 'No one could be reached right now';
        // A bot handed the conversation to people (the customer reads the automatic message instead).
        if (entry.state === 'escalated' && this.perspective === 'staff') return 'Escalated to a person';
        if (entry.state === 'assigned' && this.perspective === 'staff' && entry.by) {
          return `Assigned to ${name(entry.assignee, false)} by ${name(entry.by, false)}`;
        }
        return null;
      case EventType.CONVERSATION_CLOSED:
        return entry.closed_by?.id === self ? 'You ended the chat' : `${name(entry.closed_by)} ended the chat`;
      case EventType.CONVERSATION_RATED: {
        const comment = entry.comment ? `: “${entry.comment}”` : '';
        return `${name(entry.by)} rated this chat ${entry.score} of 5${comment}`;
      }
      default:
        return null;
    }
  }

  // -- nodes ------------------------------------------------------------------------------------
  messageNode({ text, own, authorName, at, attachments = [] }) {
    return h('div', { className: `msg ${own ? 'msg--own' : 'msg--other'}` },
      h('p', { className: own ? 'msg__author visually-hidden' : 'msg__author', textContent: own ? 'You' : authorName || '' }),
      text ? h('p', { className: 'msg__text', textContent: text }) : null,
      attachments?.length && this.files ? this.files(attachments) : null,
      h('p', { className: 'msg__meta' },
        h('time', { dateTime: at || '', textContent: formatTime(at) }),
        h('span', { className: 'msg__state' })));
  }

  setState(node, text, state, ...extra) {
    const slot = node.querySelector('.msg__state');
    if (!slot) return;
    slot.replaceChildren(text, ...extra);
    node.dataset.state = state;
  }

  /**
   * Insert in entry-id order; unconfirmed messages always stay last. Whether to follow is decided
   * before inserting (after, a tall message would itself push the reader "away from the end").
   */
  place(id, node) {
    const follow = isNearEnd(this.log);
    node.dataset.id = String(id);
    this.byId.set(id, node);
    let before = null;
    for (const child of this.log.children) {
      const childId = child.dataset.id ? Number(child.dataset.id) : Infinity;
      if (childId > id) {
        before = child;
        break;
      }
    }
    this.log.insertBefore(node, before);
    if (follow) scrollToEnd(this.log, true);
    else this.onUnseen(node);
  }
}
