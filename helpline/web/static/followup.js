// What the widget offers around a chat (issue 12): after it ends, a 1-5 rating with a comment and the
// transcript by email; while no one is available, an address to get the reply by email.
// Every form has labels, answers in a live region, and shows the server's refusal in plain words.

import { ApiError } from './api.js';
import { h } from './dom.js';

const SCORES = [
  [1, 'Very poor'], [2, 'Poor'], [3, 'OK'], [4, 'Good'], [5, 'Excellent'],
];

function problemText(error, fallback) {
  if (error instanceof ApiError) {
    if (error.status === 409 && error.code === 'conflict') return error.message.includes('email') ? 'Email is not available here.' : 'That was done already.';
    if (error.status === 429) return 'That was sent often enough already.';
    if (error.status === 422) return 'Please check the email address.';
  }
  return fallback;
}

function field(id, labelText, input) {
  return h('div', { className: 'field' }, h('label', { htmlFor: id, textContent: labelText }), input);
}

/** The rating form; `conversationId()` names the ended chat. Replaced by a thank-you once sent. */
export function ratingForm(api, conversationId) {
  const status = h('p', { className: 'followup__status', attrs: { role: 'status' } });
  const choices = h('div', { className: 'stars' }, ...SCORES.map(([score, label]) => h('label', { className: 'star' },
    h('input', { type: 'radio', name: 'hl-score', value: String(score), required: true }),
    h('span', { textContent: String(score), attrs: { 'aria-hidden': 'true' } }),
    h('span', { className: 'visually-hidden', textContent: `${score}: ${label}` }))));
  const comment = h('textarea', { id: 'hl-rating-comment', rows: 2, maxLength: 2000 });
  const form = h('form', { className: 'followup rating' },
    h('fieldset', {}, h('legend', { textContent: 'How was this chat?' }), choices),
    field('hl-rating-comment', 'Anything to add? (optional)', comment),
    h('button', { type: 'submit', textContent: 'Send rating' }),
    status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const score = Number(new FormData(form).get('hl-score'));
    if (!score) return;
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const id = conversationId();
      await api.post(`/api/v1/conversations/${encodeURIComponent(id)}/rating`, { score, comment: comment.value.trim() || undefined });
      form.replaceChildren(h('p', { className: 'followup__status', attrs: { role: 'status' }, textContent: 'Thank you for your rating!' }));
    } catch (error) {
      status.textContent = problemText(error, 'Your rating could not be sent; please try again.');
      button.disabled = false;
    }
  });
  return form;
}

/** "Email me the transcript" after the chat ends. */
export function transcriptForm(api, conversationId) {
  return emailForm({
    id: 'hl-transcript-email',
    label: 'Email me a copy of this chat',
    button: 'Send transcript',
    done: (email) => `We are sending the transcript to ${email}.`,
    submit: (email) => api.post(`/api/v1/conversations/${encodeURIComponent(conversationId())}/transcript`, { email }),
  });
}

/** While no one is available: leave an address and the reply comes by email. */
export function contactForm(api, beforeSubmit = async () => {}) {
  return emailForm({
    id: 'hl-contact-email',
    label: 'No one is available right now. Leave your email and we will send the reply there.',
    button: 'Save email',
    done: (email) => `Thank you. If you have left by then, the reply goes to ${email}.`,
    submit: async (email) => {
      await beforeSubmit();
      return api.put('/api/v1/me/contact', { email });
    },
  });
}

function emailForm({ id, label, button, done, submit }) {
  const input = h('input', { id, type: 'email', required: true, maxLength: 254, attrs: { autocomplete: 'email' } });
  const status = h('p', { className: 'followup__status', attrs: { role: 'status' } });
  const send = h('button', { type: 'submit', textContent: button });
  const form = h('form', { className: 'followup email' }, field(id, label, input), send, status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const email = input.value.trim();
    if (!email) return;
    send.disabled = true;
    try {
      await submit(email);
      form.replaceChildren(h('p', { className: 'followup__status', attrs: { role: 'status' }, textContent: done(email) }));
    } catch (error) {
      status.textContent = problemText(error, 'That did not work; please try again.');
      send.disabled = false;
    }
  });
  return form;
}
