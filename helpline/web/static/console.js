// The rep and supervisor console: sign in, the conversation list, one conversation's transcript,
// replies, transfer, close, presence, and (supervisors) assignment. Live updates come from stream.js;
// what the server refuses is shown with the problem's `detail`.

import { ApiError, createApi, latestEntries, withRetry } from './api.js';
import { AttachmentTray, attachmentList } from './attachments.js';
import { formatTime, h } from './dom.js';
import { EventType } from './events.js';
import { LiveEvents } from './stream.js';
import { Transcript } from './transcript.js';

const $ = (id) => document.getElementById(id);
const STORAGE_KEY = 'helpline:console';
const TYPING_IDLE_MS = 4000;
const TYPING_SHOWN_MS = 8000;
const STATUS_LABEL = { queued: 'Queued', assigned: 'Assigned', closed: 'Closed' };
const CONNECTION_LABEL = {
  connecting: 'Connecting…', live: 'Live', polling: 'Live (polling)', reconnecting: 'Reconnecting…', stopped: 'Offline',
};

const session = loadSession();
const api = createApi({ getToken: () => session.token });
const state = {
  conversations: new Map(),
  unread: new Map(),
  offers: new Map(),
  selected: null,
  earlierCursor: null,
  refreshTimers: new Map(),
  typingSent: false,
};
let stream = null;
const token = () => session.token;
const transcript = new Transcript($('transcript'), {
  selfId: () => session.user?.id, perspective: 'staff', files: (list) => attachmentList(api, token, list),
});
// Files for the reply: the paperclip, drop on the conversation, paste into the reply (attachments.js).
const tray = new AttachmentTray({
  api, getToken: token, conversationId: async () => state.selected, dropTargets: [$('reply-form')], pasteTargets: [$('reply')],
});
$('reply-form').insertBefore(tray.control, $('reply'));
$('reply-form').before(tray.list);

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
  $('whoami').textContent = `${user.display_name} · id ${user.id}`;
  $('presence-field').hidden = !can('chat_rep');
  $('supervisor-note').hidden = !can('supervisor');
  stream = new LiveEvents({
    api,
    onEvent,
    onReset: () => reloadAll(),
    onStatus: (status) => {
      $('connection').dataset.state = status;
      $('connection').textContent = CONNECTION_LABEL[status] || status;
    },
    onAuthError: () => signOut('Your session has expired; please sign in again.'),
  });
  stream.start();
  reloadAll();
}

// -- the conversation list ------------------------------------------------------------------------
async function reloadAll() {
  try {
    const answer = await withRetry(() => api.get('/api/v1/conversations', { query: { status: $('status-filter').value, limit: 100 } }));
    state.conversations = new Map(answer.conversations.map((c) => [c.id, c]));
    renderList();
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
    .filter((c) => !filter || c.status === filter)
    .sort((a, b) => (b.updated_at || '').localeCompare(a.updated_at || ''));
  // Rebuilding the list must not steal keyboard focus from the item being used.
  const focused = document.activeElement?.dataset?.conversation;
  list.replaceChildren(...conversations.map(listItem));
  if (focused) list.querySelector(`[data-conversation="${CSS.escape(focused)}"]`)?.focus();
  $('list-empty').hidden = conversations.length > 0;
}

function listItem(conversation) {
  const unread = state.unread.get(conversation.id) || 0;
  const topic = conversation.pre_chat?.topic;
  const button = h('button', {
    type: 'button', className: 'conv',
    attrs: { 'aria-current': conversation.id === state.selected ? 'true' : null, 'data-conversation': conversation.id },
    on: { click: () => select(conversation.id) },
  },
  h('span', { className: 'conv__title', textContent: topic || `Customer ${conversation.customer_id.slice(-6)}` }),
  h('span', { className: `badge badge--${conversation.status}`, textContent: STATUS_LABEL[conversation.status] || conversation.status }),
  h('span', { className: 'conv__meta', textContent: `${conversation.id.slice(0, 8)} · ${formatTime(conversation.updated_at)}` }),
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

function showConversation(conversation) {
  const open = conversation.status !== 'closed';
  const mine = isMine(conversation);
  const supervisor = can('supervisor');
  $('conversation-title').textContent = conversation.pre_chat?.topic || `Conversation ${conversation.id.slice(0, 8)}`;
  const assignee = conversation.assignee_id ? (mine ? 'you' : conversation.assignee_id) : 'nobody';
  $('conversation-meta').textContent = `${STATUS_LABEL[conversation.status] || conversation.status} · assigned to ${assignee}`;
  $('conversation-ids').textContent = `conversation ${conversation.id} · queue ${conversation.queue_id}`
    + ` · customer ${conversation.customer_id}`;
  setComposerVisible(open && mine && can('access_conversation_entries'));
  $('monitor-note').hidden = !(supervisor && !mine);
  $('close-conversation').hidden = !(open && (mine || supervisor));
  $('transfer-form').hidden = !(open && can('access_conversation_entries') && (mine || supervisor));
  $('assign-form').hidden = !(open && (supervisor || can('admin')));
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
      onOffer(event);
      return;
    case EventType.QUEUE_STATS:
      $('queue-stats').textContent = queueStatsText(event);
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
  } else if (event.type === EventType.CONVERSATION_MESSAGE) {
    state.unread.set(id, (state.unread.get(id) || 0) + 1);
  }
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

/** Offers from the router: accept or decline before they expire (offer.revoked withdraws one). */
function onOffer(event) {
  const offerId = event.offer_id;
  if (!offerId) return;
  if (event.type === EventType.OFFER_REVOKED) state.offers.delete(offerId);
  else state.offers.set(offerId, event);
  const items = [...state.offers.entries()].map(([id, offer]) => {
    const conversation = offer.conversation || {};
    const label = conversation.pre_chat?.topic || `Conversation ${(offer.offer_conversation_id || '').slice(0, 8)}`;
    const expires = offer.expires_at ? ` · until ${formatTime(offer.expires_at)}` : '';
    return h('li', { className: 'offer' },
      h('span', { textContent: `${label}${expires}` }),
      h('button', { type: 'button', textContent: 'Accept', on: { click: () => answerOffer(id, 'accept') } }),
      h('button', { type: 'button', className: 'secondary', textContent: 'Decline', on: { click: () => answerOffer(id, 'decline') } }));
  });
  $('offer-list').replaceChildren(...items);
  $('offers').hidden = items.length === 0;
}

async function answerOffer(id, answer) {
  try {
    const offer = state.offers.get(id);
    await api.post(`/api/v1/offers/${encodeURIComponent(id)}/${answer}`, {});
    onOffer({ type: EventType.OFFER_REVOKED, offer_id: id });
    if (answer === 'accept' && offer?.offer_conversation_id) {
      refreshSoon(offer.offer_conversation_id);
      select(offer.offer_conversation_id);
    }
  } catch (error) {
    handleFailure(error, $('app-error'));
  }
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

$('reply-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('reply').value.trim();
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

$('close-conversation').addEventListener('click', () => act('close', {}));

$('transfer-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const target = new FormData(event.target).get('target');
  const value = $('transfer-id').value.trim();
  act('transfer', target === 'queue' ? { to_queue_id: value } : { to_user_id: value }).then((ok) => ok && ($('transfer-id').value = ''));
});

$('assign-form').addEventListener('submit', (event) => {
  event.preventDefault();
  act('assign', { user_id: $('assign-user').value.trim() }).then((ok) => ok && ($('assign-user').value = ''));
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
  try {
    await api.put('/api/v1/me/presence', { status });
    showError($('app-error'), null);
  } catch (error) {
    handleFailure(error, $('app-error'));
  }
});

// -- start ----------------------------------------------------------------------------------------
if (session.token && session.user) enterWorkspace();
else $('username').focus();
