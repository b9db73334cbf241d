// Problems in words for the person at the keyboard: one plain sentence per problem code of the API
// (docs/protocol.md "Errors"), and whether trying again could ever help. The server's `detail` is for
// developers ("body.text: String should have at most 10000 characters"); customers get these instead.

import { ApiError, NetworkError } from './api.js';

export const MAX_MESSAGE_CHARS = 10000;

const SENTENCES = {
  bad_request: 'Something in this message could not be read. Please rewrite it and send it again.',
  validation_error: 'This message cannot be sent as it is.',
  not_authenticated: 'Your chat session has expired. Send your message again to start a new chat.',
  permission_denied: 'You are not allowed to do this here.',
  not_found: 'This conversation no longer exists. Start a new chat to reach us.',
  conflict: 'This conversation has changed in the meantime. Please reload the page.',
  payload_too_large: `This message is too long. Messages can be at most ${MAX_MESSAGE_CHARS.toLocaleString()} characters.`,
  unsupported_media_type: 'This kind of content cannot be sent.',
  request_header_too_large: 'Your browser sent more data than we accept. Clearing this site’s cookies may help.',
  rate_limited: 'You are sending messages very quickly. Please wait a moment; we will send it then.',
  unavailable: 'The chat service is busy right now. We will try again in a moment.',
};

/** Whether sending the same thing again may work (connection trouble, overload): else no Retry. */
export function canRetry(error) {
  if (error instanceof NetworkError) return true;
  return error instanceof ApiError && (error.status === 429 || error.status >= 500);
}

/** One sentence saying what went wrong, in words a customer understands. */
export function sayProblem(error) {
  if (error instanceof NetworkError) return 'We could not reach the chat service. Check your connection; we keep trying.';
  if (error instanceof OriginNotAllowed) return originNotAllowed();
  if (!(error instanceof ApiError)) return 'Something went wrong on this page. Please reload it.';
  if (error.status === 403 && /origin/i.test(error.detail || '')) return originNotAllowed();
  if (error.code === 'validation_error' && /text/.test(error.detail || '') && /10000|characters/.test(error.detail || '')) {
    return SENTENCES.payload_too_large;
  }
  return SENTENCES[error.code] || (error.status >= 500 ? SENTENCES.unavailable : 'This did not work. Please try again later.');
}

/** The server answered, but the browser withheld the answer: this site's origin is not allowed. */
export class OriginNotAllowed extends Error {
  constructor() {
    super('this website is not allowed to use the chat');
    this.name = 'OriginNotAllowed';
  }
}

/**
 * A browser hides the answer to a cross-origin request the server does not allow (no CORS headers for
 * an origin no deployment lists): it looks exactly like a network failure, and retrying cannot help.
 * If the server answers a request that needs no CORS (a `no-cors` probe of /healthz), the network is
 * fine: return OriginNotAllowed instead of `error`.
 */
export async function unmaskOrigin(error, server) {
  if (!(error instanceof NetworkError)) return error;
  const reachable = await fetch(`${server}/healthz`, { mode: 'no-cors', cache: 'no-store', credentials: 'omit' })
    .then(() => true, () => false);
  return reachable ? new OriginNotAllowed() : error;
}

/** Why the chat could not start, in words. */
/**
 * The page vouched for a signed-in customer with a token the server could not accept (wrong key,
 * expired, another deployment's): no chat starts, since one as a guest would mix two people's chats.
 */
export function isIdentityRefusal(error) {
  return error instanceof ApiError && error.status === 401 && /identity token/i.test(error.detail || '');
}

export function explainStartFailure(error) {
  if (error instanceof OriginNotAllowed) return originNotAllowed();
  if (isIdentityRefusal(error)) {
    return 'We could not confirm that you are signed in, so the chat cannot start. Please sign in again, then reload this page.';
  }
  if (error instanceof ApiError && error.status === 403 && /origin/i.test(error.detail || '')) return originNotAllowed();
  return `We could not start the chat. ${sayProblem(error)}${canRetry(error) ? ' Please try again in a moment.' : ''}`;
}

function originNotAllowed() {
  return `Chat is not switched on for this website (${window.location.origin}). If this is your site, add it to the chat deployment's allowed origins.`;
}

/** The live counter under the message box: quiet until the last 10 % before the limit. */
export function counterText(length) {
  if (length > MAX_MESSAGE_CHARS) {
    const over = length - MAX_MESSAGE_CHARS;
    return `Too long by ${over.toLocaleString()} character${over === 1 ? '' : 's'}: shorten it to send.`;
  }
  if (length >= MAX_MESSAGE_CHARS * 0.9) return `${length.toLocaleString()} of ${MAX_MESSAGE_CHARS.toLocaleString()} characters`;
  return '';
}
