// Attachments in the widget and the console (issue 12): pick, drop or paste files into a composer; they
// upload at once and ride on the next message as `attachment_ids`. In the transcript, images show as
// the server's thumbnails (…/thumbnail, at most 320 px: the full file is fetched only when opened) and
// other files as download buttons. Files are fetched with the bearer token (never in a URL) and shown
// from blob: URLs, so a file's bytes never run as a page of ours.

import { ApiError, NetworkError } from './api.js';
import { h, icon } from './dom.js';

const CLIP_ICON = 'M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5H9v9a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v11.5a6 6 0 0 0 12 0v-10z';
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
export const ACCEPT = 'image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,.txt,.pdf';

/** "1.2 MB", "840 KB", "312 bytes". */
export function formatSize(bytes) {
  if (!(bytes >= 0)) return '';
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Plain words for what the server said about a file. */
function uploadProblem(error) {
  if (error instanceof NetworkError) return 'could not be sent (connection problem)';
  if (!(error instanceof ApiError)) return 'could not be sent';
  if (error.status === 413) return 'is too large';
  if (error.status === 415) return 'is a kind of file we cannot accept (images, PDF and text are fine)';
  if (error.status === 422) return 'does not look like what its name says';
  if (error.status === 409) return 'cannot be sent: the chat has ended';
  return `could not be sent: ${error.message}`;
}

async function authorizedFetch(api, getToken, method, path, body) {
  const headers = { Accept: 'application/json' };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(new URL(api.server + path, window.location.href), {
      method, headers, body, credentials: 'omit', cache: 'no-store',
    });
  } catch (error) {
    throw new NetworkError(error);
  }
  if (!response.ok) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      problem = null;
    }
    throw new ApiError(response.status, problem);
  }
  return response;
}

/**
 * The files waiting to go with the next message: a paperclip button, a list of chips, and drop and
 * paste on the given elements. `conversationId()` may be async (the widget creates its conversation
 * on first use).
 */
export class AttachmentTray {
  constructor({ api, getToken, conversationId, dropTargets = [], pasteTargets = [], onChange = () => {} }) {
    this.api = api;
    this.getToken = getToken;
    this.conversationId = conversationId;
    this.onChange = onChange;
    this.items = [];
    this.input = h('input', { type: 'file', multiple: true, accept: ACCEPT, className: 'visually-hidden', tabIndex: -1,
      attrs: { 'aria-hidden': 'true' }, on: { change: () => { this.addFiles([...this.input.files]); this.input.value = ''; } } });
    this.button = h('button', { type: 'button', className: 'attach', attrs: { 'aria-label': 'Attach a file' },
      on: { click: () => this.input.click() } }, icon(CLIP_ICON));
    this.control = h('span', { className: 'attach-control' }, this.input, this.button); // goes in the composer
    this.list = h('ul', { className: 'tray', attrs: { 'aria-label': 'Files to send', 'aria-live': 'polite' }, hidden: true });
    for (const target of dropTargets) this.acceptDrops(target);
    for (const target of pasteTargets) {
      target.addEventListener('paste', (event) => {
        const files = [...(event.clipboardData?.files || [])];
        if (!files.length) return;
        event.preventDefault();
        this.addFiles(files);
      });
    }
  }

  acceptDrops(target) {
    const over = (event) => {
      if (![...(event.dataTransfer?.types || [])].includes('Files')) return;
      event.preventDefault();
      target.classList.add('dropping');
    };
    target.addEventListener('dragenter', over);
    target.addEventListener('dragover', over);
    target.addEventListener('dragleave', () => target.classList.remove('dropping'));
    target.addEventListener('drop', (event) => {
      target.classList.remove('dropping');
      const files = [...(event.dataTransfer?.files || [])];
      if (!files.length) return;
      event.preventDefault();
      this.addFiles(files);
    });
  }

  addFiles(files) {
    for (const file of files) {
      const item = { file, id: null, state: 'uploading', node: null };
      item.node = h('li', { className: 'chip' });
      this.items.push(item);
      this.render(item, 'Uploading…');
      this.upload(item);
    }
    this.list.hidden = this.items.length === 0;
  }

  async upload(item) {
    try {
      const id = await this.conversationId();
      const form = new FormData();
      form.append('file', item.file, item.file.name);
      const response = await authorizedFetch(this.api, this.getToken, 'POST',
        `/api/v1/conversations/${encodeURIComponent(id)}/attachments`, form);
      item.id = (await response.json()).id;
      item.state = 'ready';
      this.render(item, formatSize(item.file.size));
    } catch (error) {
      item.state = 'failed';
      this.render(item, `This file ${uploadProblem(error)}.`);
    }
    this.onChange();
  }

  render(item, status) {
    const remove = h('button', { type: 'button', className: 'chip__remove', textContent: '×',
      attrs: { 'aria-label': `Remove ${item.file.name}` }, on: { click: () => this.remove(item) } });
    item.node.dataset.state = item.state;
    item.node.replaceChildren(h('span', { className: 'chip__name', textContent: item.file.name }), ' ',
      h('span', { className: 'chip__status', textContent: status }), remove);
    if (!item.node.isConnected) this.list.append(item.node);
  }

  remove(item) {
    this.items = this.items.filter((other) => other !== item);
    item.node.remove();
    this.list.hidden = this.items.length === 0;
    this.onChange();
  }

  get busy() {
    return this.items.some((item) => item.state === 'uploading');
  }

  /** The uploaded files for the message being sent; the tray empties. */
  take() {
    const ready = this.items.filter((item) => item.state === 'ready');
    for (const item of ready) this.remove(item);
    return ready.map((item) => ({ id: item.id, name: item.file.name, content_type: item.file.type, size: item.file.size }));
  }

  clear() {
    for (const item of [...this.items]) this.remove(item);
  }
}

/**
 * The files a message carries, for the transcript: image thumbnails (click to open full size) and
 * download buttons for everything else.
 */
export function attachmentList(api, getToken, attachments) {
  return h('ul', { className: 'files' }, ...attachments.map((attachment) => {
    const label = `${attachment.name} (${formatSize(attachment.size)})`;
    if (IMAGE_TYPES.has(attachment.content_type)) {
      const image = h('img', { className: 'thumb', alt: attachment.name, attrs: { 'data-attachment': attachment.id } });
      const open = h('a', { className: 'file file--image', href: '#', attrs: { 'aria-label': `Open ${label}` },
        on: { click: (event) => openFull(event, api, getToken, attachment, open) } }, image);
      // An image stored before thumbnails existed has none (404): the file itself stands in.
      loadBlob(api, getToken, attachment, 'thumbnail').catch(() => loadBlob(api, getToken, attachment)).then((url) => {
        image.src = url;
      }, () => image.replaceWith(h('span', { className: 'file__error', textContent: `${attachment.name} could not be loaded` })));
      return h('li', {}, open);
    }
    const button = h('button', { type: 'button', className: 'file', attrs: { 'data-attachment': attachment.id },
      on: { click: () => download(api, getToken, attachment, button) } }, `⤓ ${label}`);
    return h('li', {}, button);
  }));
}

const blobs = new Map(); // "id" or "id/thumbnail" → object URL (files never change)

async function loadBlob(api, getToken, attachment, part = '') {
  const key = part ? `${attachment.id}/${part}` : attachment.id;
  if (!blobs.has(key)) {
    const path = `/api/v1/attachments/${encodeURIComponent(attachment.id)}${part ? `/${part}` : ''}`;
    const response = await authorizedFetch(api, getToken, 'GET', path);
    blobs.set(key, URL.createObjectURL(await response.blob()));
  }
  return blobs.get(key);
}

/** The full image in a new tab: fetched on the first click, a plain link after that. */
async function openFull(event, api, getToken, attachment, link) {
  if (link.href.startsWith('blob:')) return;
  event.preventDefault();
  try {
    const url = await loadBlob(api, getToken, attachment);
    link.href = url;
    link.target = '_blank';
    link.rel = 'noopener';
    window.open(url, '_blank', 'noopener');
  } catch (error) {
    link.title = `The image could not be opened: ${error.message}`;
  }
}

async function download(api, getToken, attachment, button) {
  button.disabled = true;
  try {
    const url = await loadBlob(api, getToken, attachment);
    const link = h('a', { href: url, download: attachment.name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) {
    button.title = `Download failed: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}
