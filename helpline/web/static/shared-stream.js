// One event stream per browser, shared by every tab of one customer (or one staff user).
//
// Tabs elect a leader with the Web Locks API: the tab holding the lock `helpline-stream:<key>` runs the
// real connection (LiveEvents: EventSource, or long-polling) and relays every event, status change and
// cursor to the other tabs over a BroadcastChannel. The others wait for the lock; when the leader's tab
// closes, the browser releases its lock and the next tab takes over.
//
// Takeover loses nothing and repeats nothing: every tab remembers the id of the last stored event it
// handled. The leader relays an event in the same task in which it handles it, so a follower has seen
// everything the leader handled; the new leader resumes its stream after its own last id (the server
// replays the gap), and every tab drops a stored event whose id is not above its last one. Ephemeral
// events (typing) that fall in the gap are lost, as they would be on any reconnect.
//
// Without Web Locks or BroadcastChannel (old browsers, some private modes) each tab streams on its own.

import { LiveEvents } from './stream.js';

const noop = () => {};

export class SharedLiveEvents {
  /**
   * @param {object} options  those of LiveEvents, plus:
   * @param {string} options.key  what the tabs share (server, deployment, principal)
   */
  constructor({ key, lastEventId = null, onEvent = noop, onReset = noop, onStatus = noop, onCursor = noop, onRole = noop, ...rest }) {
    this.key = key;
    this.handlers = { onEvent, onReset, onStatus, onCursor, onRole };
    this.liveOptions = rest;
    this.lastId = lastEventId === null || lastEventId === '' ? null : Number(lastEventId);
    this.status = 'stopped';
    this.role = 'none'; // leader | follower | solo
    this.live = null;
    this.channel = null;
    this.release = null;
    this.stopped = true;
  }

  get lastEventId() {
    return this.lastId;
  }

  get supported() {
    return typeof BroadcastChannel === 'function' && Boolean(globalThis.navigator?.locks?.request);
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    if (!this.supported) {
      this.setRole('solo');
      this.lead();
      return;
    }
    this.channel = new BroadcastChannel(`helpline-stream:${this.key}`);
    this.channel.onmessage = (message) => this.onRelay(message.data);
    this.setRole('follower');
    this.channel.postMessage({ kind: 'hello' }); // the leader answers with its status
    const held = new Promise((resolve) => {
      this.release = resolve;
    });
    navigator.locks
      .request(`helpline-stream:${this.key}`, () => {
        if (this.stopped) return undefined;
        this.setRole('leader');
        this.lead();
        return held; // held until this tab stops or closes
      })
      .catch(noop);
  }

  stop() {
    if (this.stopped) return;
    this.stopped = true;
    this.live?.stop();
    this.live = null;
    this.release?.();
    this.release = null;
    this.channel?.close();
    this.channel = null;
    this.setStatus('stopped');
  }

  /** This tab holds the connection: run LiveEvents from the last id this tab has handled. */
  lead() {
    this.live = new LiveEvents({
      ...this.liveOptions,
      lastEventId: this.lastId,
      // LiveEvents has already dropped repeats and moved the cursor (onCursor comes first).
      onEvent: (event) => {
        this.relay({ kind: 'event', event });
        this.handlers.onEvent(event);
      },
      onReset: (event) => {
        if (typeof event?.id === 'number') this.advance(event.id, true);
        this.relay({ kind: 'reset', event });
        this.handlers.onReset(event);
      },
      onCursor: (id) => this.advance(id, false),
      onStatus: (status) => {
        this.relay({ kind: 'status', status });
        this.setStatus(status);
      },
    });
    this.live.start();
  }

  relay(message) {
    try {
      this.channel?.postMessage(message);
    } catch (error) {
      console.error('helpline: could not relay an event to the other tabs', error);
    }
  }

  onRelay(message) {
    if (!message || this.stopped) return;
    if (message.kind === 'hello') {
      if (this.role === 'leader') this.relay({ kind: 'status', status: this.status });
      return;
    }
    if (this.role === 'leader') return; // only one tab leads; anything else is stale
    switch (message.kind) {
      case 'event':
        if (this.accept(message.event)) this.handlers.onEvent(message.event);
        break;
      case 'reset':
        if (typeof message.event?.id === 'number') this.advance(message.event.id, true);
        this.handlers.onReset(message.event);
        break;
      case 'status':
        this.setStatus(message.status);
        break;
      default:
        break;
    }
  }

  /** Stored events pass once, in id order; ephemeral ones (no id) always pass. */
  accept(event) {
    if (typeof event?.id !== 'number') return true;
    if (this.lastId !== null && event.id <= this.lastId) return false;
    this.advance(event.id, false);
    return true;
  }

  advance(id, force) {
    if (!Number.isFinite(id)) return;
    if (force || this.lastId === null || id > this.lastId) {
      this.lastId = id;
      this.handlers.onCursor(id);
    }
  }

  setRole(role) {
    this.role = role;
    this.handlers.onRole(role);
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.handlers.onStatus(status);
  }
}
