// The network doctor in the visitor's browser (GET /diagnostics). It measures what this browser's network
// path does to live updates, using the credential-free diagnostics endpoints, and asks the server for the
// verdict (POST /api/v1/diagnostics/verdict): the same judge and verdict names as `helpline doctor`.
//
// Query options (for support and tests): ?quiet=S sets how long the quiet-connection tests stay silent
// (default 20 s, 0 skips them).

import { EventType } from './events.js';

const API = '/api/v1/diagnostics';
const params = new URLSearchParams(location.search);
const quiet = Math.min(45, Math.max(0, Number(params.get('quiet') ?? 20) || 0));
const started = performance.now();
const now = () => (performance.now() - started) / 1000;

const progress = document.getElementById('progress');
const steps = document.getElementById('steps');

function step(label) {
  const item = document.createElement('li');
  item.textContent = `${label}: running…`;
  steps.append(item);
  return (outcome) => { item.textContent = `${label}: ${outcome}`; };
}

function eventSourceTest({ count, interval, quietSeconds, heartbeat, label }) {
  const finish = step(label);
  const result = { opened_after: null, first_event_after: null, probes: [], heartbeats: 0, completed: false, cut: false };
  const begin = now();
  const query = new URLSearchParams({ count, interval, quiet: quietSeconds, heartbeat });
  const last = quietSeconds > 0 ? 'after_quiet' : 'timed';
  return new Promise((resolve) => {
    const source = new EventSource(`${API}/stream?${query}`);
    const done = (outcome) => {
      source.close();
      clearTimeout(timer);
      finish(outcome);
      resolve(result);
    };
    const timer = setTimeout(() => { result.timed_out = true; done('no answer in time'); },
      (count * interval + quietSeconds + 25) * 1000);
    source.onopen = () => { result.opened_after ??= now() - begin; };
    source.addEventListener(EventType.DIAGNOSTICS_PROBE, (event) => {
      const probe = JSON.parse(event.data);
      result.first_event_after ??= now() - begin;
      result.probes.push({ n: probe.n, phase: probe.phase, sent: probe.server_time, received: now() });
      if (probe.phase === last && (last === 'after_quiet' || probe.n === count)) {
        result.completed = true;
        done(`${result.probes.length} events arrived`);
      }
    });
    source.addEventListener(EventType.DIAGNOSTICS_HEARTBEAT, () => { result.heartbeats += 1; });
    source.onerror = () => {
      if (result.completed) return;
      result.cut = true;
      done(`cut after ${(now() - begin).toFixed(1)} s with ${result.probes.length} events`);
    };
  });
}

async function fetchTest({ count, interval }) {
  const finish = step('Streaming download');
  const result = { status: 0, content_encoding: null, diagnostics_header: false, first_byte_after: null,
    probes: [], chunks: 0, completed: false };
  const begin = now();
  try {
    const response = await fetch(`${API}/stream?count=${count}&interval=${interval}`, { cache: 'no-store' });
    result.status = response.status;
    result.content_encoding = response.headers.get('content-encoding');
    result.diagnostics_header = response.headers.has('x-helpline-diagnostics');
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      result.chunks += 1;
      result.first_byte_after ??= now() - begin;
      buffer += decoder.decode(value, { stream: true });
      const blocks = buffer.split(/\r?\n\r?\n/);
      buffer = blocks.pop();
      for (const block of blocks) {
        const data = block.split(/\r?\n/).find((line) => line.startsWith('data:'));
        if (!data) continue;
        const probe = JSON.parse(data.slice(5));
        if (probe.type === EventType.DIAGNOSTICS_PROBE) {
          result.probes.push({ n: probe.n, phase: probe.phase, sent: probe.server_time, received: now() });
        }
      }
    }
    result.completed = true;
    finish(`${result.probes.length} events in ${result.chunks} pieces` +
      (result.content_encoding ? `, compressed (${result.content_encoding})` : ''));
  } catch (error) {
    result.error = String(error);
    finish(`failed (${error})`);
  }
  return result;
}

async function pollTest(hold) {
  const finish = step('Polling mode');
  const begin = now();
  const result = { ok: false, status: 0, hold_seconds: hold, took: null };
  try {
    const response = await fetch(`${API}/poll?hold=${hold}`, { cache: 'no-store' });
    result.status = response.status;
    await response.json();
    result.took = now() - begin;
    result.ok = response.ok && result.took < hold + 15;
    finish(result.ok ? `answered in ${result.took.toFixed(1)} s` : `answered ${response.status}`);
  } catch (error) {
    result.error = String(error);
    finish(`failed (${error})`);
  }
  return result;
}

async function reachable() {
  try {
    return (await fetch('/healthz', { cache: 'no-store' })).ok;
  } catch {
    return false;
  }
}

async function run() {
  progress.textContent = 'Testing your connection…';
  const observation = {
    reachable: await reachable(),
    browser: navigator.userAgent,
    page: location.origin,
    started_at: new Date().toISOString(),
    quiet_seconds: quiet,
  };
  if (observation.reachable) {
    const [eventsource, streamed, idle, heartbeat, poll] = await Promise.all([
      eventSourceTest({ count: 4, interval: 1, quietSeconds: 0, heartbeat: 0, label: 'Live stream (EventSource)' }),
      fetchTest({ count: 4, interval: 1 }),
      quiet > 0 ? eventSourceTest({ count: 1, interval: 0.1, quietSeconds: quiet, heartbeat: 0, label: `Quiet for ${quiet} s` }) : null,
      quiet > 0 ? eventSourceTest({ count: 1, interval: 0.1, quietSeconds: quiet, heartbeat: Math.max(1, Math.min(5, quiet / 3)), label: `Quiet for ${quiet} s with heartbeats` }) : null,
      pollTest(2),
    ]);
    Object.assign(observation, { eventsource, fetch: streamed, poll });
    if (idle) observation.idle = { quiet_seconds: quiet, survived: idle.completed, cut: idle.cut, probes: idle.probes };
    if (heartbeat) observation.heartbeat = { quiet_seconds: quiet, survived: heartbeat.completed, heartbeats: heartbeat.heartbeats };
  }
  let verdict = { name: 'unreachable', severity: 'fail', title: 'The chat server cannot be reached from here.', advice: '' };
  try {
    const answer = await fetch(`${API}/verdict`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(observation),
    });
    if (answer.ok) verdict = await answer.json();
  } catch {
    // unreachable: the default above
  }
  show(verdict, observation);
}

function show(verdict, observation) {
  const element = document.getElementById('verdict');
  element.textContent = verdict.title;
  element.dataset.verdict = verdict.name;
  element.dataset.severity = verdict.severity;
  document.getElementById('advice').textContent = verdict.advice;
  const report = document.getElementById('report');
  report.value = JSON.stringify({ verdict: verdict.name, ...observation }, null, 2);
  document.getElementById('result').hidden = false;
  progress.textContent = 'Done.';
  document.getElementById('copy').addEventListener('click', async () => {
    const copied = document.getElementById('copied');
    try {
      await navigator.clipboard.writeText(report.value);
      copied.textContent = 'Copied.';
    } catch {
      report.select();
      copied.textContent = 'Selected: press Ctrl+C (or ⌘C) to copy.';
    }
  });
}

run();
