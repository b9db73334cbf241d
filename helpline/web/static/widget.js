// The customer chat widget. Embed it on any page of an allowed origin:
//
//   <script type="module" src="https://help.example.com/static/widget.js"
//           data-deployment="shop" data-server="https://help.example.com"></script>
//
// A signed-in customer is verified by a JWT the company signs with the deployment's identity key: put it
// in `data-identity-token`, or call `Helpline.identify(token)` once the page knows who is signed in. A
// verified customer sees the same conversation on every device, and is not asked what the token says.
//
// It lives in a shadow root, so the host page's CSS cannot break it and its CSS cannot leak out.
// The session (token, its expiry, conversation, last event id) is kept in localStorage: every tab of
// the site shows the same conversation, and a visit days later resumes it until the session expires.
// The tabs share one event stream (shared-stream.js): one leader tab holds the connection and relays.
// A page opened from an offline-reply email carries `?helpline_resume=<token>`: the widget exchanges it
// for a session of that customer (any browser, even one that never saw the chat), opens the
// conversation, and takes the token out of the address bar and the history.

import { ApiError, createApi, withRetry } from './api.js';
import { AttachmentTray, attachmentList } from './attachments.js';
import { ConnectionNotice } from './connection-notice.js';
import { h, icon } from './dom.js';
import { EventType } from './events.js';
import { contactForm, ratingForm, transcriptForm } from './followup.js';
import { PreChatForm } from './prechat.js';
import {
  MAX_MESSAGE_CHARS, canRetry, counterText, explainStartFailure, isIdentityRefusal, sayProblem, unmaskOrigin,
} from './problems.js';
import { SharedLiveEvents } from './shared-stream.js';
import { Transcript } from './transcript.js';

const CHAT_ICON = 'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H8l-4 4V6a2 2 0 0 1 2-2z';
const TYPING_IDLE_MS = 4000; // send "stopped" after this long without a keystroke
const TYPING_SHOWN_MS = 8000; // hide the rep's indicator if "stopped" never arrives
const RESUME_PARAMETER = 'helpline_resume'; // domain/outbox.py puts it in the email's link

/** The resume token of the page's address, removed from it (and so from the history) at once. */
function takeResumeToken() {
  let url;
  try {
    url = new URL(window.location.href);
  } catch {
    return null;
  }
  const token = url.searchParams.get(RESUME_PARAMETER);
  if (token === null) return null;
  url.searchParams.delete(RESUME_PARAMETER);
  try {
    window.history.replaceState(window.history.state, '', url.href);
  } catch {
    // a sandboxed page may refuse; the token still works once and expires
  }
  return token || null;
}

/** Why an email's link did not open the chat, in words. */
function resumeRefused(error) {
  if (error instanceof ApiError && error.status === 401) {
    if (error.problem?.reason === 'expired') return 'This link has expired. You can start a new chat here.';
    return 'This link no longer opens a chat. You can start a new chat here.';
  }
  return `We could not open your chat from the link. ${sayProblem(error)}`;
}

function findConfig() {
  const scripts = [...document.querySelectorAll('script[src]')];
  const script = scripts.find((s) => s.src === import.meta.url) || document.querySelector('script[data-deployment]');
  const data = script?.dataset || {};
  return {
    deployment: data.deployment || 'demo',
    server: (data.server || new URL(import.meta.url).origin).replace(/\/+$/, ''),
    title: data.title || 'Chat with us',
    identityToken: data.identityToken || null,
  };
}

/** A digest of the identity token, stored to tell whether the saved session is this signed-in person's. */
async function identityDigest(token) {
  if (!token) return null;
  const bytes = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token));
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** The session, shared by the site's tabs (localStorage); `onChange` hears other tabs' changes. */
class Store {
  constructor(key, storage = localStorage) {
    this.key = key;
    this.storage = storage;
    this.state = this.read();
    this.onChange = () => {};
    window.addEventListener('storage', (event) => {
      if (event.key !== this.key || event.storageArea !== this.storage) return;
      const before = this.state;
      this.state = this.read();
      this.onChange(before, this.state);
    });
  }

  read() {
    try {
      return JSON.parse(this.storage.getItem(this.key) || '{}') || {};
    } catch {
      return {};
    }
  }

  get(name) {
    return this.state[name] ?? null;
  }

  set(changes) {
    // Another tab may have written since we last read: merge into the freshest state.
    this.state = { ...this.read(), ...changes };
    try {
      this.storage.setItem(this.key, JSON.stringify(this.state));
    } catch {
      // storage disabled or full: the chat still works, it just will not survive a reload
    }
  }
}

/** What belongs to one tab only (whether its panel is open). */
function tabStore(key) {
  try {
    return new Store(key, sessionStorage);
  } catch {
    return { get: () => null, set: () => {} };
  }
}

class ChatWidget {
  constructor(config) {
    this.config = config;
    this.store = new Store(`helpline:${config.server}:${config.deployment}`);
    this.store.onChange = (before, after) => this.onOtherTab(before, after);
    this.tab = tabStore(`helpline-tab:${config.server}:${config.deployment}`);
    this.api = createApi({ server: config.server, getToken: () => this.store.get('token') });
    this.stream = null;
    this.started = null;
    this.heldEvents = null; // events streamed while the conversation is being created (ensureConversation)
    this.typingTimer = null;
    this.typingSent = false;
    this.repTypingTimer = null;
    this.build();
    const token = () => this.store.get('token');
    this.transcript = new Transcript(this.log, {
      selfId: () => this.store.get('customerId'),
      perspective: 'customer',
      files: (list) => attachmentList(this.api, token, list),
      onUnseen: (node) => { if (node.dataset.incoming === 'true') this.newMessages.hidden = false; },
    });
    this.renewTimer = null;
    this.identity = config.identityToken;
    this.identityKey = null; // its digest, once computed
    // A link from an email comes first: its session replaces whatever this browser had. Otherwise (or
    // when the link is refused) the saved session must be the signed-in person's, and it is renewed by
    // use: a returning guest whose token has lived half its life (or expired) gets a fresh one, and the
    // session's lifetime starts again, before anything else asks for it.
    const resumeToken = takeResumeToken();
    const resumed = resumeToken ? this.resumeFromLink(resumeToken) : Promise.resolve(false);
    this.renewing = resumed.then((done) => done || this.reconcileIdentity()
      .catch(() => {}) // a refused identity is explained when the chat starts (startOnce asks again)
      .then(() => (this.sessionRenewable() && this.tokenAgeing() ? this.renewSession().catch(() => false) : false)));
    this.renewing.then(() => {
      if (this.sessionValid()) this.scheduleRenewal();
      this.resume();
      if (this.linkRefused) { // the panel says why the link did not open the chat
        if (this.panel.hidden) this.openPanel(false);
        this.showNotice(this.linkRefused);
      }
    });
  }

  /**
   * Exchange an email link's token for a session of its customer, stored like any session, with the
   * link's conversation open (docs/widget.md "Coming back from an email"). False when refused: the
   * panel opens with the reason, and the browser's own session (if any) carries on.
   */
  async resumeFromLink(token) {
    let session;
    try {
      session = await withRetry(() => this.api.post('/api/v1/sessions/resume', { token }));
    } catch (error) {
      this.linkRefused = resumeRefused(error);
      return false;
    }
    this.identityKey = await identityDigest(this.identity).catch(() => null);
    this.store.set({
      token: session.access_token,
      customerId: session.customer_id,
      expiresAt: Date.now() + session.expires_in * 1000,
      tokenSeconds: session.expires_in,
      sessionUntil: Date.now() + session.session_expires_in * 1000,
      lastEventId: session.last_event_id,
      conversationId: session.conversation_id,
      conversationKey: null, // the conversation exists: no retry key to keep
      identity: this.identityKey, // kept under the page's current sign-in, as a session started here is
      readUpTo: 0,
      preChatFields: session.pre_chat_fields || [],
    });
    this.tab.set({ open: true }); // resume() opens the panel on the conversation
    this.scheduleRenewal();
    return true;
  }

  /**
   * The saved session must be the signed-in person's. Signed in as someone else (or newly signed in): a
   * verified session, which finds that customer's open conversation on any device. Signed out of the
   * site: the saved chat is forgotten here, so the next person at this browser never sees it.
   */
  async reconcileIdentity() {
    this.identityKey = await identityDigest(this.identity);
    const saved = this.store.get('identity');
    if (saved === this.identityKey && (this.identityKey === null || this.sessionRenewable())) return;
    if (this.identityKey === null) {
      this.store.set({ token: null, customerId: null, identity: null, conversationId: null, conversationKey: null, lastEventId: null, sessionUntil: 0 });
      return;
    }
    await this.newSession();
  }

  /** `Helpline.identify(token)`: the page has learnt who is signed in (or, with null, that nobody is). */
  async identify(token) {
    const before = this.store.get('customerId');
    this.identity = token || null;
    try {
      await this.reconcileIdentity();
    } catch (error) {
      this.showNotice(explainStartFailure(error));
      throw error;
    }
    if (this.store.get('customerId') === before) return;
    this.dropCustomer();
    this.resume();
  }

  /** The session now belongs to another customer: this tab's stream and transcript were the old one's. */
  dropCustomer() {
    this.stream?.stop();
    this.stream = null;
    this.started = null;
    this.transcript.clear();
  }

  resume() {
    if (this.tab.get('open') && this.sessionValid()) this.openPanel(false);
    // A chat under way: this tab joins the browser's one stream at once (unread replies show on the
    // launcher, and the tab is ready to take over the stream if the leading tab closes).
    else if (this.sessionValid() && this.store.get('conversationId')) this.start().catch(() => {});
  }

  // -- DOM ----------------------------------------------------------------------------------------
  build() {
    const host = h('div', { id: 'helpline-chat' });
    this.host = host;
    const root = host.attachShadow({ mode: 'open' });
    const stylesheet = h('link', { rel: 'stylesheet', href: new URL('./widget.css', import.meta.url).href });
    const extras = h('link', { rel: 'stylesheet', href: new URL('./attachments.css', import.meta.url).href });
    // Shown once styled, so the page never flashes an unstyled widget.
    host.hidden = true;
    for (const event of ['load', 'error']) stylesheet.addEventListener(event, () => (host.hidden = false));
    this.launcher = h('button', {
      type: 'button', className: 'launcher', attrs: { 'aria-expanded': 'false', 'aria-controls': 'hl-panel' },
      on: { click: () => (this.panel.hidden ? this.openPanel(true) : this.minimize()) },
    }, icon(CHAT_ICON), h('span', { textContent: this.config.title }));
    this.unread = 0;
    this.badge = h('span', { className: 'badge', hidden: true });
    this.launcher.append(this.badge);
    this.statusLine = h('p', { className: 'status', attrs: { 'aria-live': 'polite' }, textContent: 'We usually reply within minutes' });
    this.connection = h('span', { className: 'connection', attrs: { 'data-state': 'idle', 'aria-hidden': 'true' } });
    // The dot's meaning in words, announced politely; empty and hidden while the connection is healthy.
    this.connectionNotice = new ConnectionNotice(h('p', { className: 'connection-line', hidden: true }));
    this.endButton = h('button', { type: 'button', className: 'end', textContent: 'End chat', hidden: true, on: { click: () => this.endChat() } });
    // While a bot answers (issue 14), the customer can always ask for a person.
    this.personButton = h('button', { type: 'button', className: 'person', textContent: 'Talk to a person', hidden: true, on: { click: () => this.askForPerson() } });
    this.notice = h('p', { className: 'notice', attrs: { role: 'alert' }, hidden: true });
    this.log = h('div', { className: 'log', tabIndex: 0, attrs: { role: 'log', 'aria-label': 'Messages', 'aria-live': 'polite' } });
    this.typing = h('p', { className: 'typing', attrs: { 'aria-live': 'polite' } });
    // Shown when a reply arrives while the reader has scrolled up to read older messages.
    this.newMessages = h('button', {
      type: 'button', className: 'new-messages', hidden: true, textContent: 'New messages ↓',
      on: { click: () => { this.log.scrollTop = this.log.scrollHeight; this.newMessages.hidden = true; this.input.focus(); } },
    });
    this.log.addEventListener('scroll', () => {
      if (this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 80) this.newMessages.hidden = true;
    });
    this.input = h('textarea', {
      // No maxLength: it would cut a long paste silently; the counter says what is too long instead.
      id: 'hl-message', rows: 2, placeholder: 'Type your message…',
      attrs: { autocomplete: 'off', 'aria-describedby': 'hl-counter' },
      on: { input: () => { this.onTyping(); this.updateCounter(); }, keydown: (event) => this.onKey(event) },
    });
    this.counter = h('p', { id: 'hl-counter', className: 'counter', attrs: { 'aria-live': 'polite' } });
    this.prechat = new PreChatForm('hl-pre');
    // noValidate: the form's answers are checked by prechat.js, in words, not by the browser's bubbles.
    this.composer = h('form', { className: 'composer', noValidate: true, on: { submit: (event) => this.onSubmit(event) } },
      this.prechat.element,
      h('label', { htmlFor: 'hl-message', className: 'visually-hidden', textContent: 'Message' }),
      this.input,
      h('button', { type: 'submit', className: 'send', textContent: 'Send' }),
      this.counter);
    this.ended = h('div', { className: 'ended', hidden: true },
      h('p', { textContent: 'This chat has ended. Thank you for contacting us.' }),
      h('button', { type: 'button', textContent: 'Start a new chat', on: { click: () => this.newChat() } }));
    this.panel = h('section', {
      id: 'hl-panel', className: 'panel', hidden: true,
      attrs: { role: 'dialog', 'aria-labelledby': 'hl-title' },
      on: { keydown: (event) => event.key === 'Escape' && this.minimize() },
    },
    h('header', {},
      h('div', { className: 'heading' },
        h('h2', { id: 'hl-title' }, this.connection, 'Customer support'),
        this.statusLine),
      this.personButton,
      this.endButton,
      h('button', { type: 'button', className: 'minimize', attrs: { 'aria-label': 'Minimize chat' }, textContent: '–', on: { click: () => this.minimize() } })),
    this.connectionNotice.element, this.notice, this.log, this.newMessages, this.typing, this.composer, this.ended,
    // The network doctor (GET /diagnostics) runs in the customer's own browser, through their network.
    h('p', { className: 'help' }, h('a', {
      href: `${this.config.server}/diagnostics`, textContent: 'Connection problems?', attrs: { target: '_blank', rel: 'noopener' },
    })));
    this.buildCustomerSide();
    root.append(stylesheet, extras, this.panel, this.launcher);
    document.body.append(host);
  }

  /** Attachments in the composer; rating and transcript after the end; an address while no one is there. */
  buildCustomerSide() {
    this.tray = new AttachmentTray({
      api: this.api,
      getToken: () => this.store.get('token'),
      conversationId: async () => { await this.start(); return this.ensureConversation(); },
      dropTargets: [this.panel],
      pasteTargets: [this.input],
    });
    this.composer.insertBefore(this.tray.control, this.input);
    this.composer.before(this.tray.list);
    this.contactSlot = h('div', { className: 'contact' });
    this.composer.before(this.contactSlot);
    this.followup = h('div', { className: 'followups' });
    this.ended.append(this.followup);
  }

  offerContact() {
    if (this.contactSlot.childElementCount || !this.composer.isConnected) return;
    this.contactSlot.append(contactForm(this.api, () => this.start()));
  }

  showFollowups() {
    const id = () => this.store.get('conversationId');
    this.ratingSlot = h('div', {}, this.rated ? null : ratingForm(this.api, id));
    this.followup.replaceChildren(this.ratingSlot, transcriptForm(this.api, id));
  }

  openPanel(focus) {
    this.panel.hidden = false;
    this.host.dataset.open = ''; // phones: full screen (widget.css)
    this.setUnread(0);
    this.launcher.setAttribute('aria-expanded', 'true');
    this.tab.set({ open: true });
    if (focus) this.input.focus();
    this.start().then(() => this.sendRead(), () => {});
  }

  minimize() {
    this.panel.hidden = true;
    delete this.host.dataset.open;
    this.launcher.setAttribute('aria-expanded', 'false');
    this.tab.set({ open: false });
    this.launcher.focus();
  }

  showNotice(text) {
    this.notice.textContent = text || '';
    this.notice.hidden = !text;
  }

  setStatus(text) {
    this.statusLine.textContent = text;
  }

  // -- session and conversation ---------------------------------------------------------------------
  sessionValid() {
    return Boolean(this.store.get('token')) && (this.store.get('expiresAt') || 0) > Date.now() + 60000;
  }

  /**
   * Once per page: a session (new or resumed), the live stream, and the history of a resumed chat.
   * A start still running is joined, never raced: two sessions started at once (opening the widget and
   * sending at once) left the conversation with one customer and the page with the other's token, so
   * the first message failed with "no such conversation". Only a finished start whose session has since
   * expired starts again.
   */
  start() {
    if (this.started && this.startFinished && !this.sessionValid()) this.started = null;
    if (!this.started) {
      const started = this.startOnce();
      this.started = started;
      this.startFinished = false;
      started.then(
        () => { if (this.started === started) this.startFinished = true; },
        (error) => {
          if (this.started !== started) return;
          this.started = null;
          this.showNotice(explainStartFailure(error));
        },
      );
    }
    return this.started;
  }

  async startOnce() {
    if (!this.sessionValid() && !(await this.renewSession())) await this.newSession();
    else this.showPreChat();
    this.stream = new SharedLiveEvents({
      key: `${this.config.server}|${this.config.deployment}|${this.store.get('customerId')}`,
      api: this.api,
      lastEventId: this.store.get('lastEventId'),
      onEvent: (event) => this.onEvent(event),
      onReset: () => this.reload(),
      onCursor: (id) => this.store.set({ lastEventId: id }),
      onStatus: (status) => {
        this.connection.dataset.state = status;
        this.connectionNotice.update(status);
      },
      onAuthError: () => this.sessionExpired(),
      onRole: (role) => (this.host.dataset.streamRole = role), // leader | follower | solo (for diagnosis)
    });
    this.stream.start();
    if (this.store.get('conversationId')) await this.reload();
  }

  /**
   * Another tab changed the shared session: it started the conversation (show it here too), began a
   * new chat, or replaced an expired session (this tab's stream belongs to the old customer).
   */
  onOtherTab(before, after) {
    if (before.customerId !== after.customerId) {
      this.dropCustomer();
      if (!this.panel.hidden && after.token) this.start().catch(() => {});
      return;
    }
    if (before.conversationId !== after.conversationId) {
      this.transcript.clear();
      this.ended.hidden = true;
      this.composer.hidden = false;
      if (after.conversationId) this.reload();
      else this.newChat({ focus: false });
    }
  }

  /** Whether the stored session can still be renewed (its token, even expired, is within the lifetime). */
  sessionRenewable() {
    const until = this.store.get('sessionUntil'); // null for a session stored before renewal existed: ask
    return Boolean(this.store.get('token')) && (until === null || until > Date.now() + 60000);
  }

  /** Whether the stored token has lived more than half its life (so a visit now renews it). */
  tokenAgeing() {
    const lifeMs = (this.store.get('tokenSeconds') || 0) * 1000;
    const left = (this.store.get('expiresAt') || 0) - Date.now();
    return !lifeMs || left < lifeMs / 2;
  }

  /**
   * Exchange the stored token for a fresh one for the same customer (docs/widget.md "Sessions"): on
   * load, and before the token expires, so a guest who comes back within the session lifetime keeps
   * their conversation. True when renewed; a refused renewal (401) leaves no session behind.
   */
  async renewSession() {
    if (!this.sessionRenewable()) return false;
    const path = `/api/v1/deployments/${encodeURIComponent(this.config.deployment)}/sessions`;
    let session;
    try {
      session = await this.api.post(path, {}); // the stored token travels in Authorization
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) this.store.set({ token: null, sessionUntil: 0 });
      return false;
    }
    if (session.customer_id !== this.store.get('customerId')) return false; // never another customer's chat
    this.store.set({
      token: session.access_token,
      expiresAt: Date.now() + session.expires_in * 1000,
      tokenSeconds: session.expires_in,
      sessionUntil: Date.now() + session.session_expires_in * 1000,
    });
    this.scheduleRenewal();
    return true;
  }

  /** Renew ten minutes (or a tenth of the token's life) before the token expires. */
  scheduleRenewal() {
    clearTimeout(this.renewTimer);
    const left = (this.store.get('expiresAt') || 0) - Date.now();
    if (left <= 0) return;
    const delay = Math.max(1000, left - Math.min(10 * 60 * 1000, left / 10));
    this.renewTimer = setTimeout(() => this.renewSession().catch(() => {}), Math.min(delay, 2 ** 31 - 1));
  }

  /** A guest session, or with an identity token the verified customer's (the same one on every device). */
  async newSession() {
    const path = `/api/v1/deployments/${encodeURIComponent(this.config.deployment)}/sessions`;
    if (this.store.get('token')) this.store.set({ token: null }); // a new session, not a renewal
    const body = this.identity ? { identity_token: this.identity } : {};
    // A refused origin looks like a network failure; unmasked, it is not retried (it never works).
    const session = await withRetry(() => this.api.post(path, body).catch(async (error) => {
      throw await unmaskOrigin(error, this.config.server);
    }));
    const sameCustomer = session.customer_id === this.store.get('customerId');
    this.store.set({
      token: session.access_token,
      customerId: session.customer_id,
      identity: this.identity ? this.identityKey : null,
      expiresAt: Date.now() + session.expires_in * 1000,
      tokenSeconds: session.expires_in,
      sessionUntil: Date.now() + session.session_expires_in * 1000,
      preChatFields: session.pre_chat_fields || [],
      // The same verified customer again (a fresh token from the page): the chat and its cursor stay.
      ...(sameCustomer ? {} : { lastEventId: session.last_event_id, conversationId: null, conversationKey: null, readUpTo: 0 }),
    });
    if (session.verified && !this.store.get('conversationId')) await this.findOpenConversation();
    this.scheduleRenewal();
    this.showPreChat();
  }

  /** A verified customer on a new device: their newest conversation still open, begun anywhere. */
  async findOpenConversation() {
    const page = await withRetry(() => this.api.get('/api/v1/conversations', { query: { limit: 20 } }));
    const open = page.conversations.find((conversation) => conversation.status !== 'closed');
    if (open) this.store.set({ conversationId: open.id });
  }

  sessionExpired() {
    this.stream?.stop();
    this.started = null;
    this.store.set({ token: null, conversationId: null, conversationKey: null, lastEventId: null });
    this.showNotice('Your chat session has expired. Send a message to start a new chat.');
    this.ended.hidden = true;
    this.composer.hidden = false;
  }

  /** The pre-chat form, while no conversation has started (fields from the session answer). */
  showPreChat() {
    this.prechat.setFields(this.store.get('preChatFields') || []);
    this.prechat.show(!this.store.get('conversationId'));
  }

  /**
   * Create the conversation once, with the pre-chat answers. Its retry key is chosen here and stored
   * first, so a retry never duplicates it; the conversation's own id is the server's answer.
   */
  async ensureConversation(preChat) {
    const known = this.store.get('conversationId');
    if (known) return known;
    let key = this.store.get('conversationKey');
    if (!key) {
      key = crypto.randomUUID();
      this.store.set({ conversationKey: key });
    }
    const body = preChat && Object.keys(preChat).length ? { id: key, pre_chat: preChat } : { id: key };
    // Its first events (created, routing: "no one is online") may stream in before the answer names it:
    // they are held until then, since the stream's cursor has already moved past them.
    this.heldEvents = [];
    let conversation;
    try {
      conversation = await withRetry(() => this.api.post('/api/v1/conversations', body));
    } catch (error) {
      this.heldEvents = null; // not created (a refused answer, say): the form stays, and the key for next time
      throw error;
    }
    this.store.set({ conversationId: conversation.id });
    this.showConversation(conversation);
    const held = this.heldEvents;
    this.heldEvents = null;
    for (const [event, replay] of held) this.onEvent(event, { replay });
    return conversation.id;
  }

  /** State from REST: after a reload, a `stream.reset`, or a new chat. Entries already shown are skipped. */
  async reload() {
    const id = this.store.get('conversationId');
    if (!id) return;
    try {
      const conversation = await withRetry(() => this.api.get(`/api/v1/conversations/${encodeURIComponent(id)}`));
      this.showConversation(conversation);
      const page = await withRetry(() => this.api.get(`/api/v1/conversations/${encodeURIComponent(id)}/entries`, {
        query: { before: '9223372036854775807', limit: 100 },
      }));
      for (const entry of page.entries) this.onEvent(entry, { replay: true });
      this.sendRead();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) this.sessionExpired();
      else this.showNotice(`We could not load your conversation. ${sayProblem(error)}`);
    }
  }

  showConversation(conversation) {
    this.prechat.show(false);
    this.endButton.hidden = conversation.status === 'closed';
    this.personButton.hidden = !(conversation.status === 'assigned' && conversation.bot_id
      && conversation.assignee_id === conversation.bot_id && !conversation.escalated_at);
    if (conversation.status === 'closed') this.showEnded();
    // The queue line comes from conversation.routing alone; a REST answer never overwrites it.
    else if (conversation.status === 'queued' && !this.queueLine) this.setStatus('Waiting in queue for the next available agent');
  }

  // -- events -------------------------------------------------------------------------------------
  onEvent(event, { replay = false } = {}) {
    if (this.heldEvents && !this.store.get('conversationId')) {
      this.heldEvents.push([event, replay]); // a conversation being created: perhaps its own (above)
      return;
    }
    if (event.conversation_id !== this.store.get('conversationId')) return;
    const me = this.store.get('customerId');
    switch (event.type) {
      case EventType.CONVERSATION_TYPING_STARTED:
        if (event.by?.id !== me) this.showRepTyping(event.by?.display_name);
        return;
      case EventType.CONVERSATION_TYPING_STOPPED:
        if (event.by?.id !== me) this.hideRepTyping();
        return;
      case EventType.CONVERSATION_ROUTING:
        this.onRouting(event);
        break;
      case EventType.CONVERSATION_CLOSED:
        this.showEnded();
        break;
      case EventType.CONVERSATION_RATED:
        this.rated = true;
        this.ratingSlot?.replaceChildren(h('p', { className: 'followup__status', textContent: 'Thank you for your rating!' }));
        break;
      case EventType.CONVERSATION_READ:
        if (event.by?.id === me) this.store.set({ readUpTo: Math.max(this.store.get('readUpTo') || 0, event.entry_id) });
        break;
      case EventType.CONVERSATION_MESSAGE:
        if (event.author?.id !== me) this.hideRepTyping();
        if (event.automatic === 'outside-hours') this.offerContact();
        break;
      default:
        break;
    }
    const node = this.transcript.apply(event);
    if (node && !replay && event.type === EventType.CONVERSATION_MESSAGE && event.author?.id !== me) {
      if (this.panel.hidden) this.setUnread(this.unread + 1);
      this.sendRead();
    }
  }

  /** New replies while the chat is minimized show on the launcher. */
  setUnread(count) {
    this.unread = count;
    this.badge.hidden = count === 0;
    this.badge.textContent = String(count);
    this.launcher.setAttribute('aria-label', count ? `${this.config.title} (${count} new)` : this.config.title);
  }

  /**
   * The queue line, from `conversation.routing` only: the position, and a wait estimate only when the
   * server gives one (it gives none while no rep is online). It stays until someone is assigned.
   */
  onRouting(event) {
    this.personButton.hidden = !(event.state === 'assigned' && event.bot);
    if (event.state === 'escalated') {
      this.setStatus('Connecting you with a person');
      return;
    }
    if (event.state === 'queued' || (event.state === 'transferred' && !event.assignee)) {
      let text = 'Waiting in queue for the next available agent';
      if (Number.isFinite(event.position)) text = `Waiting in queue: you are number ${event.position} in line`;
      if (Number.isFinite(event.estimated_wait_seconds)) {
        text += ` (about ${Math.max(1, Math.round(event.estimated_wait_seconds / 60))} min)`;
      } else if (event.reps_online === 0) {
        text += '. No one is available right now: your message is kept, and we will answer as soon as someone is back.';
      }
      this.queueLine = text;
      this.setStatus(text);
      // No rep online (the queue event says so): offer to continue by email.
      if (event.reps_online === 0 || event.available === false) this.offerContact();
    } else if (event.assignee) {
      this.queueLine = null;
      this.setStatus(`${event.assignee.display_name} joined`);
    } else if (event.state === 'failed') {
      this.queueLine = null;
      this.offerContact();
      this.setStatus('No one is available right now; we will reply as soon as we can');
    }
  }

  showRepTyping(name) {
    this.typing.textContent = `${name || 'The agent'} is typing…`;
    clearTimeout(this.repTypingTimer);
    this.repTypingTimer = setTimeout(() => this.hideRepTyping(), TYPING_SHOWN_MS);
  }

  hideRepTyping() {
    clearTimeout(this.repTypingTimer);
    this.typing.textContent = '';
  }

  showEnded() {
    if (this.ended.hidden) this.showFollowups();
    this.contactSlot.replaceChildren();
    this.setStatus('Chat ended');
    this.endButton.hidden = true;
    this.personButton.hidden = true;
    this.composer.hidden = true;
    this.ended.hidden = false;
    this.hideRepTyping();
  }

  /** Tell the rep we have seen their newest message (only while the chat is visible). */
  sendRead() {
    const id = this.store.get('conversationId');
    const last = this.transcript.lastIncomingMessageId();
    if (!id || !last || this.panel.hidden || document.visibilityState !== 'visible') return;
    if (last <= (this.store.get('readUpTo') || 0)) return;
    this.store.set({ readUpTo: last });
    this.api.post(`/api/v1/conversations/${encodeURIComponent(id)}/receipts`, { type: 'read', entry_id: last }).catch(() => {});
  }

  // -- sending ------------------------------------------------------------------------------------
  onKey(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.composer.requestSubmit();
    }
  }

  onSubmit(event) {
    event.preventDefault();
    const text = this.input.value.trim();
    if (this.tray.busy) {
      this.showNotice('Please wait until your files have uploaded.');
      return;
    }
    if (text.length > MAX_MESSAGE_CHARS) {
      this.updateCounter();
      this.input.focus();
      return; // the counter says by how much; nothing is cut
    }
    if (!text && !this.tray.items.some((item) => item.state === 'ready')) return;
    // The form's answers go with the first message; a required one missing keeps the message here.
    const preChat = this.prechat.visible ? this.prechat.answers() : {};
    if (preChat === null) return;
    const files = this.tray.take();
    if (!text && !files.length) return;
    this.input.value = '';
    this.updateCounter();
    this.stopTyping();
    const clientId = crypto.randomUUID();
    this.transcript.addPending(clientId, text, files);
    this.send(clientId, text, files.map((file) => file.id), preChat);
  }

  async send(clientId, text, attachmentIds = [], preChat = {}) {
    this.transcript.markSending(clientId);
    try {
      await this.start();
      const conversationId = await this.ensureConversation(preChat);
      this.endButton.hidden = false;
      this.showNotice('');
      // The same client id on every attempt: the server stores the message once, however often we retry.
      const entry = await withRetry(
        () => this.api.post(`/api/v1/conversations/${encodeURIComponent(conversationId)}/messages`, {
          id: clientId, text, attachment_ids: attachmentIds.length ? attachmentIds : undefined,
        }),
        { onRetry: () => this.showNotice('Connection problem; retrying…') },
      );
      this.showNotice('');
      this.onEvent(entry);
    } catch (error) {
      if (isIdentityRefusal(error)) { // not an expired session: the sign-in itself was refused
        this.showNotice(explainStartFailure(error));
        this.transcript.markFailed(clientId, 'we could not confirm that you are signed in.', null);
        return;
      }
      if (error instanceof ApiError && error.status === 401) this.sessionExpired();
      if (error instanceof ApiError && error.status === 422 && this.prechat.showServerErrors(error.problem)) {
        this.transcript.markFailed(clientId, 'please check the questions above.', () => {
          const answers = this.prechat.answers();
          if (answers !== null) this.send(clientId, text, attachmentIds, answers);
        });
        return;
      }
      // A Retry only where trying again can work: never for a message the server will always refuse.
      const retry = canRetry(error) ? () => this.send(clientId, text, attachmentIds, preChat) : null;
      this.transcript.markFailed(clientId, sayProblem(error), retry);
    }
  }

  updateCounter() {
    const text = counterText(this.input.value.length);
    if (this.counter.textContent !== text) this.counter.textContent = text;
    this.counter.dataset.over = String(this.input.value.length > MAX_MESSAGE_CHARS);
    this.input.setAttribute('aria-invalid', this.input.value.length > MAX_MESSAGE_CHARS ? 'true' : 'false');
  }

  onTyping() {
    const id = this.store.get('conversationId');
    if (!id || !this.input.value) return;
    if (!this.typingSent) {
      this.typingSent = true;
      this.postTyping(id, 'started');
    }
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  stopTyping() {
    clearTimeout(this.typingTimer);
    const id = this.store.get('conversationId');
    if (this.typingSent && id) this.postTyping(id, 'stopped');
    this.typingSent = false;
  }

  postTyping(id, state) {
    // Ephemeral and best-effort: a lost indicator is not worth a retry.
    this.api.post(`/api/v1/conversations/${encodeURIComponent(id)}/typing`, { state }).catch(() => {});
  }

  async endChat() {
    const id = this.store.get('conversationId');
    if (!id) return;
    this.stopTyping();
    try {
      await withRetry(() => this.api.post(`/api/v1/conversations/${encodeURIComponent(id)}/close`, {}));
      this.showEnded();
    } catch (error) {
      this.showNotice(`We could not end the chat. ${sayProblem(error)}`);
    }
  }

  /** The "talk to a person" button: the bot hands the conversation to the queue's people at once. */
  async askForPerson() {
    const id = this.store.get('conversationId');
    if (!id) return;
    this.personButton.hidden = true;
    try {
      await withRetry(() => this.api.post(`/api/v1/conversations/${encodeURIComponent(id)}/escalate`, {}));
      this.setStatus('Connecting you with a person');
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 409)) this.showNotice(`We could not reach a person: ${error.message}`);
    }
  }

  newChat({ focus = true } = {}) {
    if (this.store.get('conversationId')) this.store.set({ conversationId: null, conversationKey: null, readUpTo: 0 });
    this.transcript.clear();
    this.tray.clear();
    this.rated = false;
    this.contactSlot.replaceChildren();
    this.ended.hidden = true;
    this.composer.hidden = false;
    this.endButton.hidden = true;
    this.queueLine = null;
    this.personButton.hidden = true;
    this.setStatus('We usually reply within minutes');
    this.showPreChat();
    if (focus) this.input.focus();
  }
}

const widget = new ChatWidget(findConfig());
// The page's handle: `Helpline.identify(token)` once it knows who is signed in (null when signed out).
window.Helpline = Object.freeze({ identify: (token) => widget.identify(token) });
