// The rep and supervisor console: sign in, offers, the conversation list, one conversation's
// transcript with its customer card, replies (canned responses with `/`), internal notes, transfer and
// assign pickers, wrap-up on close, presence; supervisors' wallboard; canned responses and admin pages.
// Live updates come from stream.js; what the server refuses is shown with the problem's `detail`.
// People are shown by name, never by id.

import { AdminPages } from './admin.js';
import { ApiError, createApi, latestEntries, withRetry } from './api.js';
import { ConnectionNotice } from './connection-notice.js';
import { AttachmentTray, attachmentList } from './attachments.js';
import { CannedResponses, cannedPage } from './canned.js';
import { formatTime, h } from './dom.js';
import { EventType } from './events.js';
import { showPausedWebhooks } from './integrations.js';
import { Offers, askForNotifications } from './offers.js';
import { LiveEvents } from './stream.js';
import { Transcript } from './transcript.js';
import { Wallboard, duration } from './wallboard.js';

const $ = (id) => document.getElementById(id);
const STORAGE_KEY = 'helpline:console';
const TYPING_IDLE_MS = 4000;
const TYPING_SHOWN_MS = 8000;
const WEBHOOK_CHECK_MS = 60000; // how often an admin's console looks for paused webhooks
const STATUS_LABEL = { queued: 'Queued', assigned: 'Assigned', closed: 'Closed' };
const CONNECTION_LABEL = {
  connecting: 'Connecting…', live: 'Live', polling: 'Live (polling)', reconnecting: 'Reconnecting…', stopped: 'Offline',
};

const session = loadSession();
// The connection's state in words (a polite live region), shown only when something is wrong.
const connectionNotice = new ConnectionNotice($('connection-notice'));
const api = createApi({ getToken: () => session.token });
const state = {
  conversations: new Map(),
  unread: new Map(),
  offers: new Map(),
  justClosed: new Set(),
  selected: null,
  earlierCursor: null,
  refreshTimers: new Map(),
  typingSent: false,
};
let stream = null;
const token = () => session.token;
const transcript = new Transcript($('transcript'), {
  selfId: () => session.user?.id, perspective: 'staff', files: (list) => attachmentList(api, token, list),
  onEscalation: (entry) => pinEscalation(entry),
});
let webhookTimer = null;
// Files for the reply: the paperclip, drop on the conversation, paste into the reply (attachments.js).
const tray = new AttachmentTray({
  api, getToken: token, conversationId: async () => state.selected, dropTargets: [$('reply-form')], pasteTargets: [$('reply')],
});
$('reply-form').insertBefore(tray.control, $('reply').closest('.composer__box'));
$('reply-form').before(tray.list);
const offers = new Offers({
  api,
  section: $('offers'),
  list: $('offer-list'),
  onAnswered: (answer, offer) => {
    if (answer === 'accept' && offer.offer_conversation_id) {
      refreshSoon(offer.offer_conversation_id);
      select(offer.offer_conversation_id);
    }
  },
  onError: (error) => handleFailure(error, $('app-error')),
});
const canned = new CannedResponses({
  api,
  box: $('reply'),
  list: $('canned-suggestions'),
  context: () => {
    const conversation = state.conversations.get(state.selected);
    return { customerName: conversation?.customer?.display_name, repName: session.user?.display_name, queueId: conversation?.queue_id };
  },
});
const wallboard = new Wallboard({
  api, queuesBody: $('wallboard-queues'), repsBody: $('wallboard-reps'), updated: $('wallboard-updated'),
  onOpen: (id) => { showView('inbox'); select(id); },
});
const admin = new AdminPages({
  api,
  elements: {
    users: $('admin-users'), queues: $('admin-queues'), deployments: $('admin-deployments'),
    userForm: $('user-form'), newUsername: $('new-username'), newDisplayName: $('new-display-name'), newPassword: $('new-password'),
    queueForm: $('queue-form'), newQueue: $('new-queue'),
  },
  onError: (error) => showError($('admin-error'), error),
});
let cannedManager = null;
let queueNames = new Map(); // queue id → {name, waiting, dispositions}

function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(STORAGE_KEY) || '{}') || {};
  } catch {
    return {};
  }
}

function saveSession() {
  try {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify({ token: session.token, user: session.user }));
  } catch {
    // no storage: signing in again after a reload is the only cost
  }
}

const can = (permission) => Boolean(session.user?.permissions.includes(permission));

function showError(element, error) {
  element.textContent = error ? (error instanceof Error ? error.message : String(error)) : '';
  element.hidden = !error;
}

function handleFailure(error, element = $('conversation-error')) {
  if (error instanceof ApiError && error.status === 401) {
    signOut('Your session has expired; please sign in again.');
    return;
  }
  showError(element, error);
}

// -- signing in and out ---------------------------------------------------------------------------
$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  showError($('login-error'), null);
  const button = event.submitter;
  if (button) button.disabled = true;
  try {
    const answer = await api.post('/api/v1/auth/login', { username: $('username').value.trim(), password: $('password').value });
    session.token = answer.access_token;
    session.user = answer.user;
    saveSession();
    $('password').value = '';
    enterWorkspace();
  } catch (error) {
    showError($('login-error'), error);
  } finally {
    if (button) button.disabled = false;
  }
});

$('logout').addEventListener('click', () => signOut());

function signOut(message) {
  stream?.stop();
  stream = null;
  session.token = null;
  session.user = null;
  saveSession();
  state.conversations.clear();
  state.selected = null;
  offers.clear();
  for (const id of ['wallboard-view', 'canned-view', 'admin-view', 'no-work', 'webhooks-paused', 'integrations-link']) $(id).hidden = true;
  clearInterval(webhookTimer);
  $('workspace').hidden = true;
  $('session').hidden = true;
  $('login-view').hidden = false;
  showError($('login-error'), message || null);
  $('username').focus();
}

function enterWorkspace() {
  const user = session.user;
  $('login-view').hidden = true;
  $('workspace').hidden = false;
  $('session').hidden = false;
  $('whoami').textContent = user.display_name;
  $('presence-field').hidden = !can('chat_rep');
  $('supervisor-note').hidden = !can('supervisor');
  // A rep who cannot read entries is never routed work (issue 11): say why, instead of an empty list.
  $('no-work').hidden = !(can('chat_rep') && !can('access_conversation_entries'));
  const managesShared = can('supervisor') || can('admin');
  tab('wallboard').hidden = !can('supervisor');
  tab('canned').hidden = !(can('chat_rep') || managesShared);
  tab('admin').hidden = !can('admin');
  $('integrations-link').hidden = !can('admin');
  if (can('admin')) { // issue 14: a paused webhook is announced in the console too, checked now and every minute
    const checkWebhooks = () => showPausedWebhooks(api, $('webhooks-paused'), checkWebhooks);
    checkWebhooks();
    clearInterval(webhookTimer);
    webhookTimer = setInterval(checkWebhooks, WEBHOOK_CHECK_MS);
  }
  $('note-mode').closest('label').hidden = !can('access_conversation_entries');
  cannedManager = cannedPage({
    api,
    userId: user.id,
    managesShared,
    onChange: (items) => { canned.items = items; },
    elements: {
      list: $('canned-list'), form: $('canned-form'), shortcut: $('canned-shortcut'), title: $('canned-title-input'),
      text: $('canned-text'), personal: $('canned-personal'), personalField: $('canned-personal-field'),
      error: $('canned-error'), heading: $('canned-form-title'),
    },
  });
  stream = new LiveEvents({
    api,
    onEvent,
    onReset: () => reloadAll(),
    onStatus: (status) => {
      $('connection').dataset.state = status;
      $('connection').textContent = CONNECTION_LABEL[status] || status;
      connectionNotice.update(status);
    },
    onAuthError: () => signOut('Your session has expired; please sign in again.'),
  });
  stream.start();
  showView('inbox');
  reloadAll();
  if (can('chat_rep')) canned.load();
}

// -- pages ---------------------------------------------------------------------------------------
function tab(view) {
  return document.querySelector(`.view-tab[data-view="${view}"]`);
}

function showView(view) {
  $('workspace').hidden = view !== 'inbox';
  $('wallboard-view').hidden = view !== 'wallboard';
  $('canned-view').hidden = view !== 'canned';
  $('admin-view').hidden = view !== 'admin';
  for (const button of document.querySelectorAll('.view-tab')) {
    button.setAttribute('aria-current', button.dataset.view === view ? 'page' : 'false');
  }
  if (view === 'wallboard') wallboard.load().catch((error) => handleFailure(error, $('app-error')));
  if (view === 'canned') cannedManager?.refresh().catch((error) => handleFailure(error, $('app-error')));
  if (view === 'admin') admin.load();
}

for (const button of document.querySelectorAll('.view-tab')) {
  button.addEventListener('click', () => showView(button.dataset.view));
}

// -- the conversation list ------------------------------------------------------------------------
async function reloadAll() {
  try {
    const filter = $('status-filter').value;
    const status = filter === 'open' ? '' : filter;
    const [answer, queues] = await Promise.all([
      withRetry(() => api.get('/api/v1/conversations', { query: { status, limit: 100 } })),
      api.get('/api/v1/queues'),
    ]);
    queueNames = new Map(queues.map((q) => [q.id, q]));
    state.justClosed.clear();
    state.conversations = new Map(answer.conversations.map((c) => [c.id, c]));
    renderList();
    // What the server holds, not what we last saw: pending offers with their time left, our presence,
    // and (supervisors) the wallboard's figures, right after sign-in, a reload or a stream reset.
    if (can('chat_rep')) {
      offers.load().catch(() => {});
      api.get('/api/v1/me/presence').then((p) => ($('presence').value = p.status)).catch(() => {});
    }
    if (can('supervisor')) wallboard.load().catch(() => {});
    if (state.selected) await select(state.selected, { keepScroll: true });
  } catch (error) {
    handleFailure(error, $('app-error'));
  }
}

$('status-filter').addEventListener('change', () => reloadAll());

function renderList() {
  const list = $('conversation-list');
  const filter = $('status-filter').value;
  const conversations = [...state.conversations.values()]
    // "Open" keeps a chat closed just now in view (marked Closed) until the list is reloaded.
    .filter((c) => !filter || (filter === 'open' ? c.status !== 'closed' || state.justClosed.has(c.id) : c.status === filter))
    .sort((a, b) => (b.updated_at || '').localeCompare(a.updated_at || ''));
  // Rebuilding the list must not steal keyboard focus from the item being used.
  const focused = document.activeElement?.dataset?.conversation;
  list.replaceChildren(...conversations.map(listItem));
  if (focused) list.querySelector(`[data-conversation="${CSS.escape(focused)}"]`)?.focus();
  $('list-empty').hidden = conversations.length > 0;
}

function customerName(conversation) {
  return conversation.customer?.display_name || 'Customer';
}

function listItem(conversation) {
  const unread = conversation.status === 'closed' ? 0 : state.unread.get(conversation.id) || 0;
  const topic = conversation.pre_chat?.topic;
  const waiting = conversation.waiting_since ? (Date.now() - Date.parse(conversation.waiting_since)) / 1000 : null;
  const meta = [topic, waiting !== null ? `waiting ${duration(waiting)}` : formatTime(conversation.updated_at)].filter(Boolean).join(' · ');
  const button = h('button', {
    type: 'button', className: 'conv',
    attrs: { 'aria-current': conversation.id === state.selected ? 'true' : null, 'data-conversation': conversation.id },
    on: { click: () => select(conversation.id) },
  },
  h('span', { className: 'conv__title', textContent: customerName(conversation) }),
  h('span', { className: `badge badge--${conversation.status}`, textContent: STATUS_LABEL[conversation.status] || conversation.status }),
  h('span', { className: `conv__meta${waiting !== null ? ' conv__meta--waiting' : ''}`, textContent: meta }),
  unread ? h('span', { className: 'unread', textContent: String(unread), attrs: { 'aria-label': `${unread} unread` } }) : null);
  return h('li', {}, button);
}

/** Re-read one conversation after an event about it (coalesced); a 404 means we may no longer see it. */
function refreshSoon(id) {
  clearTimeout(state.refreshTimers.get(id));
  state.refreshTimers.set(id, setTimeout(async () => {
    state.refreshTimers.delete(id);
    try {
      const conversation = await api.get(`/api/v1/conversations/${encodeURIComponent(id)}`);
      state.conversations.set(id, conversation);
      if (id === state.selected) showConversation(conversation);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) return handleFailure(error, $('app-error'));
      state.conversations.delete(id);
      if (id === state.selected) {
        showError($('conversation-error'), 'This conversation is no longer assigned to you.');
        setComposerVisible(false);
      }
    }
    renderList();
  }, 150));
}

// -- one conversation -----------------------------------------------------------------------------
async function select(id, { keepScroll = false } = {}) {
  const changed = id !== state.selected;
  state.selected = id;
  state.unread.delete(id);
  if (changed) {
    stopTyping();
    transcript.clear();
    $('escalation-summary').replaceChildren();
    $('escalation-summary').hidden = true;
    tray.clear();
    $('typing').textContent = '';
    showError($('conversation-error'), null);
  }
  $('no-selection').hidden = true;
  $('conversation-view').hidden = false;
  renderList();
  const known = state.conversations.get(id);
  if (known) showConversation(known);
  try {
    const conversation = await api.get(`/api/v1/conversations/${encodeURIComponent(id)}`);
    if (state.selected !== id) return;
    state.conversations.set(id, conversation);
    showConversation(conversation);
    const page = await latestEntries(api, id);
    if (state.selected !== id) return;
    for (const entry of page.entries) transcript.apply(entry);
    if (changed || !keepScroll) state.earlierCursor = page.next_cursor;
    $('load-earlier').hidden = !state.earlierCursor;
    if (changed) $('transcript').scrollTop = $('transcript').scrollHeight;
    sendRead();
  } catch (error) {
    if (state.selected === id) handleFailure(error);
  }
}

$('load-earlier').addEventListener('click', async () => {
  const id = state.selected;
  try {
    const page = await latestEntries(api, id, { before: state.earlierCursor });
    if (state.selected !== id) return;
    for (const entry of page.entries) transcript.apply(entry);
    state.earlierCursor = page.next_cursor;
    $('load-earlier').hidden = !state.earlierCursor;
  } catch (error) {
    handleFailure(error);
  }
});

function isMine(conversation) {
  return conversation.assignee_id === session.user.id;
}

/** A bot's hand-off summary (issue 14) goes on top of the conversation, above the transcript, too. */
function pinEscalation(entry) {
  const box = $('escalation-summary');
  box.replaceChildren(h('div', { className: 'note-entry note-entry--escalation' },
    h('p', { className: 'note-entry__label', textContent: `Escalation summary · ${entry.author?.display_name || 'bot'}` }),
    h('p', { className: 'note-entry__text', textContent: entry.text ?? '' })));
  box.hidden = false;
}

function showConversation(conversation) {
  const open = conversation.status !== 'closed';
  const mine = isMine(conversation);
  const supervisor = can('supervisor');
  $('conversation-title').textContent = conversation.pre_chat?.topic || customerName(conversation);
  const assignee = conversation.assignee_id ? (mine ? 'you' : conversation.assignee?.display_name || 'another rep') : 'nobody';
  const queue = queueNames.get(conversation.queue_id);
  $('conversation-meta').textContent = `${STATUS_LABEL[conversation.status] || conversation.status} · assigned to ${assignee}`
    + (queue ? ` · queue ${queue.name}` : '');
  $('conversation-ids').textContent = conversation.pre_chat?.topic ? customerName(conversation) : '';
  renderCustomerCard(conversation);
  // Supervisors monitoring may still whisper: the composer opens in note mode for them.
  setComposerVisible(open && mine && can('access_conversation_entries'));
  // Supervisors monitoring read-only may still whisper to the rep: an internal note, never the customer.
  $('whisper-form').hidden = !(open && supervisor && !mine);
  updateComposer();
  $('monitor-note').hidden = !(supervisor && !mine);
  $('close-form').hidden = !(open && (mine || supervisor));
  const dispositions = queue?.dispositions || [];
  $('disposition').replaceChildren(h('option', { value: '', textContent: 'No wrap-up code' }),
    ...dispositions.map((d) => h('option', { value: d, textContent: d })));
  $('disposition').hidden = $('disposition-label').hidden = dispositions.length === 0;
  const transfers = open && can('access_conversation_entries') && (mine || supervisor);
  const assigns = open && (supervisor || can('admin'));
  $('transfer-form').hidden = !transfers;
  $('assign-form').hidden = !assigns;
  if (transfers || assigns) loadPickers();
}

function renderCustomerCard(conversation) {
  const customer = conversation.customer || {};
  const answers = Object.entries(conversation.pre_chat || {}).filter(([key]) => key !== 'page');
  const page = conversation.pre_chat?.page || conversation.page_url;
  const earlier = conversation.earlier_conversations || [];
  $('customer-card').replaceChildren(...[
    h('p', { className: 'customer-card__name' },
      h('strong', { textContent: customer.display_name || 'Customer' }), ' ',
      h('span', { className: `badge${customer.verified ? ' badge--assigned' : ''}`, textContent: customer.verified ? 'verified' : 'guest' }),
      customer.email ? h('span', { className: 'customer-card__email', textContent: ` ${customer.email}` }) : null),
    answers.length ? h('dl', { className: 'customer-card__answers' }, ...answers.flatMap(([k, v]) => [h('dt', { textContent: k }), h('dd', { textContent: String(v) })])) : null,
    page ? h('p', { className: 'hint', textContent: `Came from ${page}` }) : null,
    earlier.length ? h('details', {}, h('summary', { textContent: `${earlier.length} earlier conversation(s)` }),
      h('ul', {}, ...earlier.map((c) => h('li', { textContent: `${new Date(c.created_at).toLocaleDateString()} · ${STATUS_LABEL[c.status] || c.status}${c.pre_chat?.topic ? ` · ${c.pre_chat.topic}` : ''}` })))) : null,
  ].filter(Boolean)); // replaceChildren would show a null as the text "null"
}

/** The pickers: online reps with room (name, load) and queues by name (with waiting counts). */
async function loadPickers() {
  const id = state.selected;
  try {
    const [reps, queues, stats] = await Promise.all([
      can('access_conversation_entries') ? api.get('/api/v1/reps/available') : [],
      api.get('/api/v1/queues'),
      can('supervisor') ? api.get('/api/v1/queues/stats') : [],
    ]);
    if (state.selected !== id) return;
    queueNames = new Map(queues.map((q) => [q.id, q]));
    const chosen = { transfer: $('transfer-target').value, assign: $('assign-user').value };
    const repOptions = reps.map((r) => h('option', { value: `user:${r.id}`, textContent: `${r.display_name} (${r.load}/${r.capacity})` }));
    const queueOptions = queues.map((q) => h('option', { value: `queue:${q.id}`, textContent: `${q.name} queue (${q.waiting} waiting)` }));
    $('transfer-target').replaceChildren(...[
      h('option', { value: '', textContent: reps.length ? 'Choose a rep or a queue…' : 'Choose a queue (no rep has room)…' }),
      reps.length ? h('optgroup', { label: 'Reps online with room' }, ...repOptions) : null,
      h('optgroup', { label: 'Queues' }, ...queueOptions),
    ].filter(Boolean));
    // Supervisors assign past presence and capacity, to anyone who can answer (routable reps).
    const everyone = new Map();
    for (const queue of stats) for (const rep of queue.reps || []) if (rep.routable !== false) everyone.set(rep.id, rep);
    $('assign-user').replaceChildren(h('option', { value: '', textContent: everyone.size ? 'Choose a rep…' : 'No rep can take conversations' }),
      ...[...everyone.values()].map((r) => h('option', { value: r.id, textContent: `${r.display_name} · ${r.presence} · ${r.active}/${r.capacity}` })));
    // A refresh (any event about the conversation) must not undo what the rep is picking.
    for (const [select, value] of [[$('transfer-target'), chosen.transfer], [$('assign-user'), chosen.assign]]) {
      if (value && [...select.options].some((option) => option.value === value)) select.value = value;
    }
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 403)) handleFailure(error);
  }
}

function setComposerVisible(visible) {
  $('reply-form').hidden = !visible;
}

/** Tell the customer the rep has seen their newest message (only the assigned rep is a party). */
function sendRead() {
  const conversation = state.conversations.get(state.selected);
  if (!conversation || !isMine(conversation) || document.visibilityState !== 'visible') return;
  const last = transcript.lastIncomingMessageId();
  if (!last || last <= (conversation.readSent || 0)) return;
  conversation.readSent = last;
  api.post(`/api/v1/conversations/${encodeURIComponent(conversation.id)}/receipts`, { type: 'read', entry_id: last }).catch(() => {});
}

document.addEventListener('visibilitychange', () => sendRead());

// -- live events ----------------------------------------------------------------------------------
let typingTimer = null;

function onEvent(event) {
  switch (event.type) {
    case EventType.PRESENCE_CHANGED:
      if (event.user_id === session.user?.id) $('presence').value = event.status;
      return;
    case EventType.OFFER_CREATED:
    case EventType.OFFER_REVOKED:
      if (can('chat_rep') && (!event.rep_id || event.rep_id === session.user?.id)) offers.onEvent(event);
      return;
    case EventType.QUEUE_STATS:
      $('queue-stats').textContent = queueStatsText(event);
      wallboard.apply(event.queues);
      return;
    default:
      break;
  }
  const id = event.conversation_id;
  if (!id) return;
  const selected = id === state.selected;
  const fromOther = event.by?.id !== session.user.id;
  if (event.type === EventType.CONVERSATION_TYPING_STARTED || event.type === EventType.CONVERSATION_TYPING_STOPPED) {
    if (!selected || !fromOther) return;
    clearTimeout(typingTimer);
    $('typing').textContent = event.type === EventType.CONVERSATION_TYPING_STARTED ? `${event.by?.display_name || 'The customer'} is typing…` : '';
    if ($('typing').textContent) typingTimer = setTimeout(() => ($('typing').textContent = ''), TYPING_SHOWN_MS);
    return;
  }
  if (selected) {
    // Without access_conversation_entries the transcript stays closed, whatever the stream carries.
    if (can('access_conversation_entries')) transcript.apply(event);
    if (event.type === EventType.CONVERSATION_MESSAGE && event.author?.id !== session.user.id) {
      $('typing').textContent = '';
      sendRead();
    }
  } else if (event.type === EventType.CONVERSATION_MESSAGE && event.author?.id !== session.user.id) {
    state.unread.set(id, (state.unread.get(id) || 0) + 1);
  } else if (event.type === EventType.CONVERSATION_CLOSED) {
    state.unread.delete(id); // a closed chat keeps no badge
  }
  if (event.type === EventType.CONVERSATION_CLOSED && state.conversations.has(id)) state.justClosed.add(id);
  refreshSoon(id);
}

function queueStatsText(event) {
  const minutes = (seconds) => (seconds >= 60 ? `${Math.round(seconds / 60)} min` : `${seconds} s`);
  return (event.queues || []).map((queue) => {
    const waiting = `${queue.name || queue.queue_id}: ${queue.length} waiting`;
    const longest = queue.length ? `, longest ${minutes(queue.longest_wait_seconds || 0)}` : '';
    const rating = queue.ratings ? `, rating ${queue.rating_average} of 5 (${queue.ratings})` : '';
    return `${waiting}${longest}, ${queue.reps_online ?? 0} rep(s) online${rating}`;
  }).join(' · ');
}

// -- acting on the selected conversation ----------------------------------------------------------
$('reply').addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $('reply-form').requestSubmit();
  }
});

$('reply').addEventListener('input', () => {
  const id = state.selected;
  if (!id || !$('reply').value) return;
  if (!state.typingSent) {
    state.typingSent = true;
    postTyping(id, 'started');
  }
  clearTimeout(state.typingIdle);
  state.typingIdle = setTimeout(stopTyping, TYPING_IDLE_MS);
});

function stopTyping() {
  clearTimeout(state.typingIdle);
  if (state.typingSent && state.selected) postTyping(state.selected, 'stopped');
  state.typingSent = false;
}

function postTyping(id, typingState) {
  api.post(`/api/v1/conversations/${encodeURIComponent(id)}/typing`, { state: typingState }).catch(() => {});
}

function updateComposer() {
  const note = $('note-mode').checked;
  $('reply-form').classList.toggle('composer--note', note);
  $('send-button').textContent = note ? 'Add note' : 'Send';
  $('reply').placeholder = note
    ? 'Internal note: only staff see it, never the customer'
    : 'Write a reply (Enter sends, Shift+Enter adds a line, / for canned responses)';
}

$('note-mode').addEventListener('change', updateComposer);

$('reply-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('reply').value.trim();
  if ($('note-mode').checked) { // a note is text for staff: files stay in the tray for the next reply
    if (!text || !state.selected) return;
    $('reply').value = '';
    addNote(state.selected, crypto.randomUUID(), text);
    return;
  }
  if (tray.busy) {
    showError($('conversation-error'), 'Please wait until the files have uploaded.');
    return;
  }
  const files = tray.take();
  if ((!text && !files.length) || !state.selected) return;
  $('reply').value = '';
  stopTyping();
  const clientId = crypto.randomUUID();
  transcript.addPending(clientId, text, files);
  sendReply(state.selected, clientId, text, files.map((file) => file.id));
});

async function sendReply(conversationId, clientId, text, attachmentIds = []) {
  transcript.markSending(clientId);
  try {
    // The same client id on every attempt, so a retry after a lost answer never duplicates the message.
    const entry = await withRetry(() => api.post(
      `/api/v1/conversations/${encodeURIComponent(conversationId)}/messages`,
      { id: clientId, text, attachment_ids: attachmentIds.length ? attachmentIds : undefined },
    ));
    if (state.selected === conversationId) transcript.apply(entry);
    showError($('conversation-error'), null);
  } catch (error) {
    transcript.markFailed(clientId, error.message, () => sendReply(conversationId, clientId, text, attachmentIds));
    handleFailure(error);
  }
}

async function addNote(conversationId, noteId, text, box = $('reply')) {
  try {
    const entry = await withRetry(() => api.post(`/api/v1/conversations/${encodeURIComponent(conversationId)}/notes`, { id: noteId, text }));
    if (state.selected === conversationId) transcript.apply(entry);
    showError($('conversation-error'), null);
  } catch (error) {
    box.value = text; // nothing lost: the note is back in the box to retry
    handleFailure(error);
  }
}

$('whisper-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('whisper').value.trim();
  if (!text || !state.selected) return;
  $('whisper').value = '';
  addNote(state.selected, crypto.randomUUID(), text, $('whisper'));
});

$('close-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const disposition = $('disposition').value;
  act('close', disposition ? { disposition } : {});
});

$('transfer-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const [kind, id] = $('transfer-target').value.split(':');
  if (!id) return;
  act('transfer', kind === 'queue' ? { to_queue_id: id } : { to_user_id: id });
});

$('assign-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const userId = $('assign-user').value;
  if (userId) act('assign', { user_id: userId });
});

async function act(action, body) {
  const id = state.selected;
  showError($('conversation-error'), null);
  try {
    const conversation = await api.post(`/api/v1/conversations/${encodeURIComponent(id)}/${action}`, body);
    if (conversation?.id) {
      state.conversations.set(conversation.id, conversation);
      if (state.selected === id) showConversation(conversation);
    }
    refreshSoon(id);
    return true;
  } catch (error) {
    handleFailure(error);
    return false;
  }
}

$('presence').addEventListener('change', async () => {
  const status = $('presence').value;
  if (!status) return;
  if (status === 'online') askForNotifications(); // once, from this gesture: desktop cues for offers
  try {
    await api.put('/api/v1/me/presence', { status });
    showError($('app-error'), null);
  } catch (error) {
    handleFailure(error, $('app-error'));
  }
});

// Waiting times in the list move on their own.
setInterval(() => { if (session.user && !$('workspace').hidden) renderList(); }, 15000);

// -- start ----------------------------------------------------------------------------------------
if (session.token && session.user) enterWorkspace();
else $('username').focus();
