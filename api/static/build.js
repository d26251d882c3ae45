// A build's page: its phases as a progress bar, the log streaming live with its
// colours, the image and template, and its attempts.

import {
  AnsiState, ApiError, ago, api, copyButton, duration, el, errorBox, followLog, renderAnsi,
  secondsBetween, shownStatus, statusBadge, wireKeyForm,
} from './farm.js';

wireKeyForm();

const page = document.getElementById('build-page');
const NAME = page.dataset.name;
const PHASES = page.dataset.phases.split(' ');
const PATH = `/builds/${encodeURIComponent(NAME)}`;
const FINAL = new Set(['completed', 'failed', 'cancelled']);
// Lines kept on the page; older ones are dropped (the whole log stays in the API).
const MAX_LINES = 20000;

let record = null;
let template = null;
let templateRead = null; // the latest read of the template, while it is under way
let following = null; // the log shown: {buildId, controller}
let currentBuildId = null;

// -- phases ------------------------------------------------------------------

function phaseTimes(build, phase) {
  const times = (build.phases || {})[phase];
  return times && typeof times === 'object' ? times : {};
}

// pending, running, done, failed, cancelled, skipped (a cache hit skips phases)
// or not-run (a build that ended before it)
function phaseState(build, phase) {
  const times = phaseTimes(build, phase);
  if (build.status !== 'running' && build.status !== 'completed' && build.phase === phase) {
    return build.status === 'cancelled' ? 'cancelled' : 'failed';
  }
  if (times.end || (times.start && build.status === 'completed')) return 'done';
  if (times.start) return build.status === 'running' ? 'running' : 'failed';
  if (build.status === 'completed') return 'skipped';
  return FINAL.has(build.status) ? 'not-run' : 'pending';
}

function showPhases(build) {
  const list = document.getElementById('phases');
  list.replaceChildren(...PHASES.map(phase => {
    const state = phaseState(build, phase);
    const times = phaseTimes(build, phase);
    const seconds = times.start ? secondsBetween(times.start, times.end || build['end-time']) : null;
    const label = state === 'skipped' ? (build.cached ? 'cached' : 'skipped') : duration(seconds);
    return el('li', {class: state, 'data-phase': phase, 'data-state': state,
                     title: `${phase}: ${state.replace('-', ' ')}`},
      el('div', {class: 'bar'}),
      el('div', {class: 'label'}, el('span', {text: phase}), el('span', {class: 'time', text: label})));
  }));
}

// -- facts, error, actions -----------------------------------------------------

function fact(label, value, attributes = {}) {
  if (value === null || value === undefined || value === '') return [];
  const content = value instanceof Node ? value : document.createTextNode(String(value));
  return [el('dt', {text: label}), el('dd', {'data-fact': label, ...attributes}, content)];
}

function repositoryLink(url) {
  return /^https?:\/\//.test(url) ? el('a', {href: url, rel: 'noreferrer', text: url}) : url;
}

function showRecord(build) {
  document.getElementById('build-status').replaceChildren(statusBadge(build));
  const took = duration(secondsBetween(build['start-time'], build['end-time']));
  // A queued build whose cancel was asked (shown cancelling) still never ran.
  const tookLabel = FINAL.has(build.status) ? 'took'
    : build.phase === 'queued' ? 'waiting for' : 'running for';
  document.getElementById('build-facts').replaceChildren(
    ...fact('repository', repositoryLink(build.repository)),
    ...fact('ref', build.ref),
    ...fact('commit', build.commit, {class: 'mono'}),
    ...fact('config', build.config),
    ...fact('worker', build.worker),
    ...fact('started', ago(build['start-time']), {title: build['start-time']}),
    ...fact(tookLabel, took),
    ...fact('phase', build.phase),
    ...fact('cause', build.status === 'failed' ? build.cause : null),
    ...fact('cache', build.cached ? 'hit: the image was already built' : null),
    ...fact('attempt', build.attempt > 1 ? build.attempt : null));
  const errorArea = document.getElementById('build-error');
  if (build.error && build.status === 'cancelled') {
    // Someone asked for it (or a forced rebuild replaced it): a fact, not an error.
    errorArea.replaceChildren(el('p', {class: 'note', role: 'status', text: build.error}));
  } else if (build.error && build.status !== 'completed') {
    errorArea.replaceChildren(errorBox({message: build.error, suggestions: build.suggestions || []}));
  } else {
    errorArea.replaceChildren();
  }
  showPhases(build);
  document.getElementById('cancel').hidden = !['running', 'queued'].includes(shownStatus(build));
  document.getElementById('rebuild').hidden = build.status === 'running';
}

function actionFailed(error) {
  document.getElementById('build-error').replaceChildren(errorBox(error));
}

document.getElementById('cancel').addEventListener('click', async () => {
  try {
    showRecord(await api(PATH, {method: 'DELETE'}));
  } catch (error) {
    actionFailed(error);
  }
});

document.getElementById('rebuild').addEventListener('click', async () => {
  try {
    // The spec, not the repository: it names the ref, which is part of the build.
    await api('/builds/repo', {method: 'POST',
                               json: {repository: record.spec || record.repository, force: true}});
    template = null;
    await refresh();
  } catch (error) {
    actionFailed(error);
  }
});

// -- image and template ------------------------------------------------------------

function copyable(text) {
  return el('div', {class: 'copyable'}, el('code', {text}), copyButton(() => text));
}

async function showImage(build) {
  const panel = document.getElementById('image-panel');
  const facts = document.getElementById('template');
  if (!build['image-name'] || build.status !== 'completed') {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  if (!template) {
    // Only the latest read counts: one sent before the key was typed may answer
    // (needs the key) after the one sent with it.
    const read = api(`/templates/${encodeURIComponent(NAME)}`).catch(error => error);
    templateRead = read;
    const answer = await read;
    if (read !== templateRead) return;
    template = answer;
  }
  const rows = [...fact('image', copyable(build['image-name']), {class: 'image'})];
  if (template instanceof ApiError) {
    const text = template.needsKey
      ? 'The template (port, command, limits and a docker run line) needs the API key.'
      : `The template could not be read: ${template.message}`;
    rows.push(...fact('template', el('span', {class: 'muted needs-key', text})));
  } else {
    const limits = Object.entries(template.limits || {}).map(([k, v]) => `${k} ${v}`).join(', ');
    const hardware = Object.entries(template.hardware || {}).map(([k, v]) => `${k} ${v}`).join(', ');
    const services = (template.services || []).map(service => service.name).join(', ');
    rows.push(...fact('template', template.name),
              ...fact('port', template.port),
              ...fact('command', template.command, {class: 'mono'}),
              ...fact('limits', limits),
              ...fact('hardware', hardware),
              ...fact('services', services),
              ...fact('run', copyable(template['run-command']), {class: 'run-command'}));
  }
  facts.replaceChildren(...rows);
}

// -- the log ---------------------------------------------------------------------

const logBox = document.getElementById('log');
const logState = document.getElementById('log-state');
const autoscroll = document.getElementById('autoscroll');

function appendLine(text, state) {
  const line = el('span', {class: 'line'});
  line.append(renderAnsi(text, state));
  logBox.append(line);
  while (logBox.childElementCount > MAX_LINES) logBox.firstElementChild.remove();
  if (autoscroll.checked) logBox.scrollTop = logBox.scrollHeight;
}

async function showLog(buildId, isCurrent) {
  if (following && following.buildId === buildId) return;
  if (following) following.controller.abort();
  const controller = new AbortController();
  following = {buildId, controller};
  delete logBox.dataset.ended;
  logBox.replaceChildren();
  const state = new AnsiState();
  logState.textContent = isCurrent ? 'streaming…' : `attempt ${buildId.slice(0, 8)}`;
  try {
    const ended = await followLog(NAME, {buildId, signal: controller.signal,
                                         onLine: text => appendLine(text, state)});
    logState.textContent = `${isCurrent ? '' : `attempt ${buildId.slice(0, 8)} `}ended ${ended || ''}`;
    logBox.dataset.ended = ended || '';
  } catch (error) {
    if (error.name === 'AbortError') return;
    logState.textContent = error.needsKey ? 'the log needs the API key' : error.message;
  }
}

// -- attempts ----------------------------------------------------------------------

// The history is read again when an attempt starts or ends; in between, the
// current attempt's row follows the record polled every second (its phase and
// time), changed in place so that its button stays under the pointer.
async function showAttempts() {
  const body = document.querySelector('#attempts tbody');
  let attempts;
  try {
    attempts = await api(`${PATH}/history`);
  } catch (error) {
    body.replaceChildren(el('tr', {}, el('td', {colspan: 6, class: 'wide'}, errorBox(error))));
    return;
  }
  body.replaceChildren(...attempts.map(attempt => el('tr', {'data-build-id': attempt['build-id']},
    el('td', {title: attempt['start-time'], text: ago(attempt['start-time'])}),
    el('td', {class: 'status'}),
    el('td', {'data-label': 'phase'}),
    el('td', {'data-label': 'took'}),
    el('td', {class: 'wide'}),
    el('td', {}, el('button', {type: 'button', text: 'show log',
                               onclick: () => showLog(attempt['build-id'],
                                                      attempt['build-id'] === record['build-id'])})))));
  for (const attempt of attempts) showAttempt(attempt);
  if (record) showAttempt(record);
}

function showAttempt(attempt) {
  const row = [...document.querySelectorAll('#attempts tbody tr')]
    .find(found => found.dataset.buildId === attempt['build-id']);
  if (!row) return;
  row.querySelector('.status').replaceChildren(statusBadge(attempt));
  row.querySelector('[data-label=phase]').textContent = attempt.phase || '';
  row.querySelector('[data-label=took]').textContent =
    duration(secondsBetween(attempt['start-time'], attempt['end-time']));
  row.querySelector('.wide').textContent = attempt.error || '';
}

// -- refresh -----------------------------------------------------------------------

// No such build: the farm's sentence, and what to do on these pages (its
// suggestions speak of the HTTP API).
function notFound(error) {
  const box = errorBox({message: error.message});
  box.append(el('p', {}, 'Is the name spelled correctly? ',
                el('a', {href: '/', text: 'The list of builds'}),
                ' shows every build, and starts new ones.'));
  return box;
}

let lastAttempts = null;

async function refresh() {
  try {
    record = await api(PATH);
  } catch (error) {
    document.getElementById('build-error').replaceChildren(
      error.status === 404 ? notFound(error) : errorBox(error));
    return false;
  }
  showRecord(record);
  const buildId = record['build-id'];
  if (buildId !== currentBuildId) { // the first read, or a rebuild started a new attempt
    currentBuildId = buildId;
    template = null;
    showLog(buildId, true);
  }
  if (lastAttempts !== `${buildId}:${record.status}`) {
    lastAttempts = `${buildId}:${record.status}`;
    showAttempts();
  } else {
    showAttempt(record);
  }
  await showImage(record);
  return true;
}

async function poll() {
  await refresh();
  const running = record && !FINAL.has(record.status);
  setTimeout(poll, running ? 1000 : 5000);
}

document.addEventListener('keychange', () => { template = null; refresh(); });
poll();
