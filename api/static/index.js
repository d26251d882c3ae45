// The farm's front page: start a build, the builds updating live, the farm's state.

import {
  ApiError, ago, api, duration, el, errorBox, every, secondsBetween, statusBadge, wireKeyForm,
} from './farm.js';

wireKeyForm();

// -- builds ------------------------------------------------------------------

const tbody = document.querySelector('#builds tbody');
const note = document.getElementById('builds-note');
const filter = document.getElementById('status-filter');
const live = document.getElementById('builds-live');
const count = document.getElementById('builds-count');
const LIMIT = 50;

export function buildPath(name) {
  return `/build/${encodeURIComponent(name)}`;
}

function buildRow(build) {
  const took = duration(secondsBetween(build['start-time'], build['end-time']));
  return el('tr', {'data-name': build.name, 'data-status': build.status},
    el('td', {class: 'name'}, el('a', {href: buildPath(build.name), text: build.name})),
    el('td', {class: 'status'}, statusBadge(build)),
    el('td', {'data-label': 'phase', class: 'phase', text: build.phase}),
    el('td', {class: 'repo', text: build.repository}),
    el('td', {'data-label': 'started', title: build['start-time'], text: ago(build['start-time'])}),
    el('td', {'data-label': 'took', class: 'duration', text: took}),
    el('td', {class: build.cached ? 'cache-hit' : '', text: build.cached ? 'cache hit' : ''}));
}

async function refreshBuilds() {
  const query = new URLSearchParams({limit: String(LIMIT)});
  if (filter.value) query.set('status', filter.value);
  try {
    const builds = await api(`/builds/?${query}`);
    tbody.replaceChildren(...builds.map(buildRow));
    live.hidden = false;
    count.textContent = builds.length === LIMIT ? `newest ${LIMIT}` : `${builds.length} shown`;
    const empty = filter.value ? `No ${filter.value} builds.` : 'No builds yet: start one above.';
    note.replaceChildren(builds.length ? '' : el('p', {class: 'note', text: empty}));
  } catch (error) {
    live.hidden = true;
    count.textContent = '';
    tbody.replaceChildren();
    note.replaceChildren(error instanceof ApiError && error.needsKey
      ? el('p', {class: 'note needs-key', text: 'The list of builds needs the API key: type it at the top.'})
      : errorBox(error));
  }
}

const refreshNow = every(2, refreshBuilds);
filter.addEventListener('change', refreshNow);

// -- start form ----------------------------------------------------------------

const form = document.getElementById('start-form');
const result = form.querySelector('.form-result');

form.addEventListener('submit', async event => {
  event.preventDefault();
  const data = new FormData(form);
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  result.replaceChildren(el('span', {class: 'muted', text: 'Starting…'}));
  try {
    // The API spells the ref as the repository's provider does (/tree/REF, @REF, ...).
    const body = {repository: String(data.get('repository')).trim(),
                  force: data.get('force') === 'on'};
    const ref = String(data.get('ref')).trim();
    if (ref) body.ref = ref;
    const build = await api('/builds/repo', {method: 'POST', json: body});
    result.replaceChildren(el('span', {class: 'success'}, 'Started ',
                              el('a', {href: buildPath(build.name), text: build.name})));
    refreshNow();
    window.location.assign(buildPath(build.name));
  } catch (error) {
    result.replaceChildren(error.type === 'alreadyBuilding' && error.buildName
      ? alreadyBuilding(error) : errorBox(error));
    if (error.needsKey) document.getElementById('key-input').focus();
  } finally {
    button.disabled = false;
  }
});

// The build is running: what to do here (the farm's suggestions speak of the
// HTTP API's force field).
function alreadyBuilding(error) {
  const box = errorBox({message: error.message});
  box.append(el('p', {}, el('a', {href: buildPath(error.buildName), text: 'Watch it'}),
                ', or tick “build again even if an image exists, or restart a running build” '
                + 'and start it again to restart it.'));
  return box;
}

// -- the farm --------------------------------------------------------------------

const healthList = document.getElementById('health');
const queueFacts = document.getElementById('queue');
const workersBox = document.getElementById('workers');

async function health() {
  // 503 still carries every component: read the body whatever the status.
  const response = await fetch('/health/', {cache: 'no-store'});
  const body = await response.json().catch(() => null);
  if (!Array.isArray(body)) throw new ApiError(response.status, body);
  return body;
}

function showHealth(components) {
  healthList.replaceChildren(...components.map(component => el('li', {'data-component': component.name},
    el('span', {class: `dot ${component.status === 'ok' ? 'ok' : 'failing'}`}),
    el('strong', {text: component.name}), ' ',
    el('span', {class: 'muted', text: component.status === 'ok' ? 'ok' : (component.error || 'failing')}))));
}

function showQueue(queue) {
  const facts = [['waiting builds', queue.waiting], ['running builds', queue.running]];
  for (const item of queue.queues || []) facts.push([`queue ${item.name}`, item.messages]);
  queueFacts.replaceChildren(...facts.flatMap(([label, value]) => [
    el('dt', {text: label}), el('dd', {'data-fact': label, text: value ?? '?'})]));
}

function showWorkers(hosts) {
  if (!hosts.length) {
    workersBox.replaceChildren(el('p', {class: 'note', text: 'No worker has reported yet.'}));
    return;
  }
  workersBox.replaceChildren(...hosts.map(host => {
    // Worker processes that died stay on record for a day: counted apart, not listed.
    const live = host.workers.filter(worker => worker.state !== 'lost');
    const lost = host.workers.length - live.length;
    const counts = `${live.length} worker${live.length === 1 ? '' : 's'}${lost ? ` (${lost} lost)` : ''}`;
    return el('div', {class: 'host', 'data-host': host.host},
      el('span', {class: `dot ${host.state === 'up' ? 'ok' : host.state === 'lost' ? 'failing' : 'unknown'}`}),
      el('strong', {text: host.host}), ' ',
      el('span', {class: 'muted', text: `${host.state} · ${counts} · seen ${ago(host['last-seen'])}`}),
      el('div', {class: 'workers'}, ...live.map(worker => el('div', {},
        `${worker.name} (${worker.state})`,
        worker.builds.length ? ` building ${worker.builds.join(', ')}` : ''))));
  }));
}

function failed(box, error) {
  box.replaceChildren(error.needsKey
    ? el('p', {class: 'note needs-key', text: 'Needs the API key.'})
    : errorBox(error));
}

async function refreshFarm() {
  const [components, queue, hosts] = await Promise.allSettled(
    [health(), api('/queue/'), api('/workers/')]);
  if (components.status === 'fulfilled') showHealth(components.value);
  else failed(healthList, components.reason);
  if (queue.status === 'fulfilled') showQueue(queue.value);
  else failed(queueFacts, queue.reason);
  if (hosts.status === 'fulfilled') showWorkers(hosts.value);
  else failed(workersBox, hosts.reason);
}

every(5, refreshFarm);
