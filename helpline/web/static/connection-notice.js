// The connection's state in words, for the widget and the console (both fed by stream.js's onStatus).
// A coloured dot is not enough: a person (and a screen reader) needs a sentence when something is
// wrong, and nothing at all when the connection is healthy.

/** The sentence for a stream status; '' when there is nothing to say. */
export function connectionMessage(status, online = navigator.onLine) {
  if (!online) return "Offline — we'll reconnect and catch up when you're back";
  if (status === 'reconnecting') return 'Reconnecting…';
  if (status === 'polling') return 'Connection is slow — still delivering';
  return ''; // connecting (briefly, at start), live, stopped: nothing a person needs to act on
}

/**
 * Keeps `element` (a polite live region) saying connectionMessage(...) for the latest status, and
 * follows the browser's online/offline events. Hidden, and empty, while the connection is healthy.
 */
export class ConnectionNotice {
  constructor(element) {
    this.element = element;
    this.element.setAttribute('role', 'status');
    this.element.setAttribute('aria-live', 'polite');
    this.status = 'connecting';
    const refresh = () => this.render();
    window.addEventListener('online', refresh);
    window.addEventListener('offline', refresh);
    this.render();
  }

  update(status) {
    this.status = status;
    this.render();
  }

  render() {
    const text = connectionMessage(this.status);
    if (this.element.textContent !== text) this.element.textContent = text;
    this.element.hidden = !text;
    this.element.dataset.state = navigator.onLine ? this.status : 'offline';
  }
}
