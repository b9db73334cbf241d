// Building the DOM without ever parsing data as HTML: every string becomes a text node, so whatever a
// customer or rep types is shown literally (a "<script>" in a message is the eight characters, not a tag).

/**
 * Create an element. `props` sets properties (className, type, disabled, ...), `attrs` sets attributes
 * (aria-*, data-*, for); children are nodes or strings (strings become text nodes). No innerHTML.
 */
export function h(tag, options = {}, ...children) {
  const { attrs = {}, on = {}, ...props } = options;
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === 'innerHTML' || name === 'outerHTML') throw new Error('h(): refusing to set HTML');
    if (value !== undefined && value !== null) node[name] = value;
  }
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === undefined || value === null) continue;
    if (/^on/i.test(name)) throw new Error('h(): refusing an inline handler attribute');
    node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const [event, handler] of Object.entries(on)) node.addEventListener(event, handler);
  append(node, children);
  return node;
}

/** Append children: nodes as they are, strings and numbers as text, null/false skipped. */
export function append(parent, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replace every child of `parent`. */
export function replaceChildren(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** A small inline SVG icon from path data we ship (never from server data). */
export function icon(pathData, label) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', '24');
  svg.setAttribute('height', '24');
  svg.setAttribute('focusable', 'false');
  if (label) {
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
  } else {
    svg.setAttribute('aria-hidden', 'true');
  }
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', pathData);
  path.setAttribute('fill', 'currentColor');
  svg.append(path);
  return svg;
}

/** "14:05" in the reader's locale, or '' for a missing/invalid timestamp. */
export function formatTime(iso) {
  const moment = iso ? new Date(iso) : null;
  if (!moment || Number.isNaN(moment.getTime())) return '';
  return moment.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** Whether the reader is at (or within a line of) the end of a scrollable log. */
export function isNearEnd(container, slack = 80) {
  return container.scrollHeight - container.scrollTop - container.clientHeight < slack;
}

/** Keep a scrollable log pinned to the bottom if the reader was already there (measure before adding). */
export function scrollToEnd(container, force = false) {
  if (force || isNearEnd(container)) container.scrollTop = container.scrollHeight;
}
