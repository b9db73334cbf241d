// The live event feed shared by the chat widget and the console (docs/protocol.md "Events").
//
// One EventSource per page, authenticated with a single-use stream ticket: EventSource cannot send an
// Authorization header, and access tokens are never accepted in a URL. Because a ticket works once,
// EventSource's own automatic reconnect (which replays the same URL) can never succeed, so on any error
// we close it and open a new one with a fresh ticket and our last event id.
//
// Delivery is exactly-once and in order for the caller: the server replays everything after the id we
// resume from, and we drop any stored event whose id is not above the last one we handled.
//
// Silent stalls: a firewall or NAT that forgets an idle flow sends no FIN; the EventSource stays OPEN
// and nothing arrives. The server sends a `stream.heartbeat` event after every quiet interval (announced
// in `stream.open`), so 2 × the interval + slack without any event is a stall: we reconnect, asking for
// heartbeats twice as often (`?heartbeat=`, clamped by the server), and fall back to long-polling if it
// stalls again right away.
//
// Fallback: some networks (buffering proxies, antivirus engines) hold an event stream back. If the
// stream's first event (`stream.open`) does not arrive within `openTimeoutMs`, the stream stalls twice
// in a row, or the stream fails `errorsBeforePolling` times in a row while the API answers, we long-poll
// `GET /api/v1/events/poll` instead (same events, same ids) and try the stream again after `sseRetryMs`,
// or at once when the network comes back after an outage. A network that is down altogether (the API
// unreachable too) is no reason to poll: we keep reconnecting the stream with backoff.

import { NetworkError, backoff, sleep } from './api.js';
// The event catalogue, rendered by the server from helpline/events.py (GET /static/events.js).
import { EVENT_TYPES, EventType } from './events.js';

/** Every event type page code handles (the server's catalogue); EventSource only dispatches named events
 * to listeners by name. */
export { EVENT_TYPES };

const STALL_SLACK_MS = 3000; // beyond two heartbeat intervals, before a silence counts as a stall
const POLL_READ_SLACK_MS = 5000; // a long-poll's read timeout is its hold + this (docs/protocol.md)
const MIN_POLL_SECONDS = 5;

const noop = () => {};

export class LiveEvents {
  /**
   * @param {object} options
   * @param {object} options.api            a client from api.js, carrying the bearer token
   * @param {number|string|null} options.lastEventId  resume point (null: ask the server for its head)
   * @param {(event: object) => void} options.onEvent  every event but the stream's own control events
   * @param {(event: object) => void} options.onReset  `stream.reset`: re-fetch state through REST
   * @param {(status: string) => void} options.onStatus  connecting | live | polling | reconnecting | stopped
   * @param {(id: number) => void} options.onCursor  the last event id handled (persist it to resume)
   * @param {(error: Error) => void} options.onAuthError  the credential was refused (401)
   */
  constructor({
    api,
    lastEventId = null,
    onEvent = noop,
    onReset = noop,
    onStatus = noop,
    onCursor = noop,
    onAuthError = noop,
    openTimeoutMs = 5000,
    errorsBeforePolling = 3,
    sseRetryMs = 60000,
    pollTimeoutSeconds = 20,
  }) {
    this.api = api;
    this.handlers = { onEvent, onReset, onStatus, onCursor, onAuthError };
    this.options = { openTimeoutMs, errorsBeforePolling, sseRetryMs };
    this.pollSeconds = pollTimeoutSeconds; // halves after a poll that got no answer (not below 5 s)
    this.lastId = lastEventId === null || lastEventId === '' ? null : Number(lastEventId);
    this.status = 'stopped';
    this.mode = 'sse';
    this.generation = 0; // bumped on every (re)connect: callbacks of older connections are ignored
    this.failures = 0;
    this.streamFailures = 0; // stream failures while the API answered: these move us to polling
    this.source = null;
    this.timers = new Set();
    this.abort = null;
    this.lastActivity = 0;
    this.openedAt = 0;
    this.heartbeatMs = 5000; // until stream.open announces the stream's interval
    this.heartbeatMinMs = 0;
    this.heartbeatWanted = null; // seconds asked for on the next stream, after a stall
    this.stalls = 0;
    this.stallCount = 0; // every stall seen, for diagnostics and tests
    this.sseRetryDelay = sseRetryMs; // doubles while the stream keeps failing, back to sseRetryMs once it works
    this.onOnline = () => {
      // The network is back: whatever we were doing, the stream is worth trying now.
      if (this.status === 'reconnecting' || this.mode === 'poll') {
        this.mode = 'sse';
        this.reconnect(0);
      }
    };
  }

  get lastEventId() {
    return this.lastId;
  }

  start() {
    if (this.status !== 'stopped') return;
    this.abort = new AbortController();
    window.addEventListener('online', this.onOnline);
    this.watchdog = setInterval(() => this.checkSilence(), 1000);
    this.connect();
  }

  stop() {
    this.generation += 1;
    this.closeSource();
    this.abort?.abort(new DOMException('stopped', 'AbortError'));
    clearInterval(this.watchdog);
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    window.removeEventListener('online', this.onOnline);
    this.setStatus('stopped');
  }

  // -- connecting -------------------------------------------------------------------------------
  async connect() {
    const generation = ++this.generation;
    this.closeSource();
    if (this.lastId === null && !(await this.learnHead(generation))) return;
    if (generation !== this.generation) return;
    if (this.mode === 'poll') {
      this.pollLoop(generation);
      return;
    }
    this.setStatus(this.failures ? 'reconnecting' : 'connecting');
    let ticket;
    try {
      ({ ticket } = await this.api.post('/api/v1/stream-tickets', undefined, { signal: this.abort.signal }));
    } catch (error) {
      if (generation === this.generation) this.connectionFailed(error);
      return;
    }
    if (generation !== this.generation) return;
    const url = new URL(`${this.api.server}/api/v1/events`, window.location.href);
    url.searchParams.set('ticket', ticket);
    url.searchParams.set('last_event_id', String(this.lastId));
    if (this.heartbeatWanted) url.searchParams.set('heartbeat', String(this.heartbeatWanted));
    const source = new EventSource(url);
    this.source = source;
    this.opened = false;
    this.lastActivity = Date.now();
    this.openedAt = this.lastActivity;
    const onMessage = (message) => this.onSseMessage(generation, message);
    for (const type of [EventType.STREAM_OPEN, 'message', ...EVENT_TYPES]) source.addEventListener(type, onMessage);
    source.addEventListener('error', () => {
      if (generation !== this.generation) return;
      this.closeSource(); // never let EventSource retry: its ticket is spent
      this.connectionFailed(null);
    });
    this.later(this.options.openTimeoutMs, () => {
      if (generation === this.generation && !this.opened) this.fallBackToPolling();
    });
  }

  /** A brand-new client has no id to resume from: ask where the log ends, so no reconnect has a gap. */
  async learnHead(generation) {
    try {
      const answer = await this.api.get('/api/v1/events/poll', { query: { timeout: 0 }, signal: this.abort.signal });
      if (generation !== this.generation) return false;
      this.advance(Number(answer.last_event_id));
      return true;
    } catch (error) {
      if (generation === this.generation) this.connectionFailed(error);
      return false;
    }
  }

  onSseMessage(generation, message) {
    if (generation !== this.generation) return;
    this.lastActivity = Date.now();
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return; // not ours to interpret; the server only sends JSON
    }
    const type = data.type || message.type;
    if (type === EventType.STREAM_OPEN) {
      // Its id is where this stream starts: a reconnect from there misses nothing.
      if (message.lastEventId) this.advance(Number(message.lastEventId));
      this.opened = true;
      this.failures = 0;
      this.streamFailures = 0;
      this.sseRetryDelay = this.options.sseRetryMs;
      if (data.heartbeat_seconds > 0) this.heartbeatMs = data.heartbeat_seconds * 1000;
      if (data.heartbeat_min_seconds > 0) this.heartbeatMinMs = data.heartbeat_min_seconds * 1000;
      this.setStatus('live');
      return;
    }
    if (type === EventType.STREAM_HEARTBEAT) return; // its arrival is all it says
    if (type === EventType.STREAM_RECONNECT) {
      // The server ends streams after a bounded lifetime or on shutdown: come back with our last id.
      this.closeSource();
      this.reconnect(250 + Math.random() * 750);
      return;
    }
    this.deliver({ ...data, type });
  }

  connectionFailed(error) {
    if (error && error.status === 401) {
      this.stop();
      this.handlers.onAuthError(error);
      return;
    }
    this.failures += 1;
    // The API itself is unreachable (offline, server down): polling would fail the same way, so only
    // failures of the stream while the API answers count towards falling back.
    const networkDown = error instanceof NetworkError;
    if (!networkDown) this.streamFailures = (this.streamFailures || 0) + 1;
    if (this.mode === 'sse' && !networkDown && this.streamFailures >= this.options.errorsBeforePolling) {
      this.fallBackToPolling();
      return;
    }
    this.setStatus('reconnecting');
    this.reconnect(backoff(this.failures - 1));
  }

  reconnect(delayMs) {
    const generation = ++this.generation;
    this.closeSource();
    this.later(delayMs, () => {
      if (generation === this.generation) this.connect();
    });
  }

  /** How long a silence may last before it counts as a stall: two heartbeat intervals and a slack. */
  get stallAfterMs() {
    return 2 * this.heartbeatMs + Math.min(STALL_SLACK_MS, this.heartbeatMs);
  }

  /** Every idle interval brings a stream.heartbeat event: a longer silence is a dropped flow. */
  checkSilence() {
    if (this.mode !== 'sse' || !this.source || !this.opened) return;
    const now = Date.now();
    if (now - this.lastActivity > this.stallAfterMs) this.stalled(now);
  }

  stalled(now) {
    this.closeSource();
    this.stallCount += 1;
    // A stall after a good while of healthy streaming is a new problem, not a repeat of the last one.
    if (now - this.openedAt > 4 * this.stallAfterMs) this.stalls = 0;
    this.stalls += 1;
    // Heartbeats twice as often keep a flow alive through a firewall with a shorter idle timer.
    this.heartbeatWanted = Math.max(this.heartbeatMinMs, this.heartbeatMs / 2) / 1000;
    if (this.stalls >= 2) {
      this.stalls = 0;
      this.fallBackToPolling();
      return;
    }
    this.setStatus('reconnecting');
    this.reconnect(0);
  }

  // -- long-polling fallback --------------------------------------------------------------------
  fallBackToPolling() {
    this.closeSource();
    this.mode = 'poll';
    this.failures = 0;
    this.streamFailures = 0;
    this.connect();
  }

  async pollLoop(generation) {
    let retrySseAt = Date.now() + this.sseRetryDelay;
    this.setStatus('polling');
    let failures = 0;
    while (generation === this.generation) {
      if (Date.now() >= retrySseAt) {
        this.mode = 'sse';
        this.sseRetryDelay = Math.min(this.sseRetryDelay * 2, 10 * 60 * 1000);
        this.connect();
        return;
      }
      try {
        const timeout = this.pollSeconds;
        const answer = await this.api.get('/api/v1/events/poll', {
          query: { after: this.lastId, timeout },
          timeoutMs: timeout * 1000 + POLL_READ_SLACK_MS,
          signal: this.abort.signal,
        });
        if (generation !== this.generation) return;
        // Back after an outage: the outage may be all that broke the stream, so try it again now.
        if (failures >= 2) retrySseAt = Date.now();
        failures = 0;
        this.setStatus('polling');
        for (const data of answer.events) this.deliver(data);
        const last = Number(answer.last_event_id);
        if (Number.isFinite(last) && (this.lastId === null || last > this.lastId)) this.advance(last);
      } catch (error) {
        if (generation !== this.generation) return;
        if (error.status === 401) {
          this.connectionFailed(error);
          return;
        }
        failures += 1;
        // No answer within hold + 5 s: something on the way drops held requests; hold for less.
        if (error instanceof NetworkError) this.pollSeconds = Math.max(MIN_POLL_SECONDS, Math.floor(this.pollSeconds / 2));
        this.setStatus('reconnecting');
        try {
          await sleep(error.retryAfter ? error.retryAfter * 1000 : backoff(failures - 1), this.abort.signal);
        } catch {
          return; // stopped
        }
      }
    }
  }

  // -- delivery ---------------------------------------------------------------------------------
  deliver(data) {
    if (data.type === EventType.STREAM_RESET) {
      // The resume point could not be honoured (too old, unknown): continue from the server's head and
      // let the page re-fetch its state, rather than pretend nothing was missed.
      if (typeof data.id === 'number') this.advance(data.id, true);
      this.handlers.onReset(data);
      return;
    }
    if (typeof data.id === 'number') {
      if (this.lastId !== null && data.id <= this.lastId) return; // already handled: a replay overlap
      this.advance(data.id);
    }
    try {
      this.handlers.onEvent(data);
    } catch (error) {
      console.error('helpline: an event handler failed', error);
    }
  }

  advance(id, force = false) {
    if (!Number.isFinite(id)) return;
    if (force || this.lastId === null || id > this.lastId) {
      this.lastId = id;
      this.handlers.onCursor(id);
    }
  }

  // -- housekeeping -----------------------------------------------------------------------------
  closeSource() {
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  }

  later(ms, callback) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      callback();
    }, ms);
    this.timers.add(timer);
  }

  setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.handlers.onStatus(status);
  }
}
