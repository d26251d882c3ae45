// What both pages share: the API key (kept for this browser session only),
// calls to the farm's API, a followed log, terminal colours, times, and
// small DOM helpers. Plain ES module: no build step, nothing from a CDN.

const KEY_ITEM = 'binder-build-key';

export function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) || '';
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
  document.dispatchEvent(new CustomEvent('keychange'));
}

// An answer that is not a success, as the farm explained it.
export class ApiError extends Error {
  constructor(status, body) {
    const explained = body && typeof body.error === 'string';
    super(explained ? body.error : `The farm answered HTTP ${status}.`);
    this.status = status;
    this.type = explained ? body.type : 'httpError';
    this.suggestions = explained && Array.isArray(body.suggestions) ? body.suggestions : [];
    // The build an answer is about (alreadyBuilding names the running one).
    this.buildName = explained && typeof body.name === 'string' ? body.name : null;
  }

  get needsKey() {
    return this.status === 401 || this.status === 403;
  }
}

function headers(extra) {
  const result = {...(extra || {})};
  const key = apiKey();
  if (key) result.Authorization = key;
  return result;
}

// Call the API; resolves to the decoded JSON, rejects with ApiError.
export async function api(path, {method = 'GET', json, signal} = {}) {
  const options = {method, headers: headers(), signal, cache: 'no-store'};
  if (json !== undefined) {
    options.headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, {error: 'The farm did not answer.', type: 'unreachable',
                           suggestions: ['Check that the API is running.']});
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// A build's log, followed live: calls onLine(text, id) for each line and
// resolves with the build's final status when the log ends. It reads the
// Server-Sent Events with fetch (so the key can go along) and resumes after
// the last line when the connection drops.
export async function followLog(name, {onLine, signal, buildId} = {}) {
  let after = 0;
  let failures = 0;
  const query = new URLSearchParams({follow: '1'});
  if (buildId) query.set('build-id', buildId);
  const url = `/builds/${encodeURIComponent(name)}/logs?${query}`;
  while (!signal || !signal.aborted) {
    try {
      const extra = after ? {'Last-Event-ID': String(after)} : {};
      const response = await fetch(url, {headers: headers(extra), signal, cache: 'no-store'});
      if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
      for await (const event of serverEvents(response.body)) {
        if (event.type === 'message') {
          if (event.id) after = Number(event.id);
          failures = 0;
          onLine(event.data, event.id);
        } else if (event.type === 'end') {
          return event.data;
        } else if (event.type === 'error') {
          throw new ApiError(500, {error: event.data});
        }
      }
    } catch (error) {
      if (error.name === 'AbortError' || error instanceof ApiError) throw error;
    }
    failures += 1;
    if (failures > 5) throw new ApiError(0, {error: 'The log stream keeps dropping.'});
    await new Promise(resolve => setTimeout(resolve, 1000 * failures));
  }
  return null;
}

async function* serverEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = {type: 'message', data: [], id: null};
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
      if (line === '') {
        if (event.data.length) yield {...event, data: event.data.join('\n')};
        event = {type: 'message', data: [], id: null};
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'data') event.data.push(text);
        else if (field === 'event') event.type = text;
        else if (field === 'id') event.id = text;
      }
    }
  }
}

// -- terminal colours --------------------------------------------------------

const BASIC = ['black', 'red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'white'];

function colour256(n) {
  if (n < 16) return null;
  if (n >= 232) {
    const level = 8 + (n - 232) * 10;
    return `rgb(${level},${level},${level})`;
  }
  const steps = [0, 95, 135, 175, 215, 255];
  const index = n - 16;
  return `rgb(${steps[Math.floor(index / 36)]},${steps[Math.floor(index / 6) % 6]},${steps[index % 6]})`;
}

// Terminal state carried from one line to the next (colours may span lines).
export class AnsiState {
  constructor() {
    this.reset();
  }

  reset() {
    this.classes = new Set();
    this.fg = null;
    this.bg = null;
  }

  apply(codes) {
    for (let i = 0; i < codes.length; i++) {
      const code = codes[i];
      if (code === 0) this.reset();
      else if (code === 1) this.classes.add('ansi-bold');
      else if (code === 2) this.classes.add('ansi-dim');
      else if (code === 3) this.classes.add('ansi-italic');
      else if (code === 4) this.classes.add('ansi-underline');
      else if (code === 22) { this.classes.delete('ansi-bold'); this.classes.delete('ansi-dim'); }
      else if (code === 23) this.classes.delete('ansi-italic');
      else if (code === 24) this.classes.delete('ansi-underline');
      else if (code >= 30 && code <= 37) this.fg = `ansi-${BASIC[code - 30]}`;
      else if (code >= 90 && code <= 97) this.fg = `ansi-bright-${BASIC[code - 90]}`;
      else if (code === 39) this.fg = null;
      else if (code >= 40 && code <= 47) this.bg = `ansi-bg-${BASIC[code - 40]}`;
      else if (code >= 100 && code <= 107) this.bg = `ansi-bg-${BASIC[code - 100]}`;
      else if (code === 49) this.bg = null;
      else if ((code === 38 || code === 48) && codes[i + 1] === 5) {
        const n = codes[i + 2];
        const colour = n < 8 ? `ansi-${BASIC[n]}` : n < 16 ? `ansi-bright-${BASIC[n - 8]}`
          : {rgb: colour256(n)};
        if (code === 38) this.fg = colour; else this.bg = colour;
        i += 2;
      } else if ((code === 38 || code === 48) && codes[i + 1] === 2) {
        const colour = {rgb: `rgb(${codes[i + 2] | 0},${codes[i + 3] | 0},${codes[i + 4] | 0})`};
        if (code === 38) this.fg = colour; else this.bg = colour;
        i += 4;
      }
    }
  }

  span(text) {
    if (!this.classes.size && !this.fg && !this.bg) return document.createTextNode(text);
    const span = document.createElement('span');
    span.className = [...this.classes].join(' ');
    for (const [colour, property] of [[this.fg, 'color'], [this.bg, 'backgroundColor']]) {
      if (typeof colour === 'string') span.classList.add(colour);
      else if (colour) span.style[property] = colour.rgb;
    }
    span.textContent = text;
    return span;
  }
}

// One log line as DOM nodes, its colours rendered; other escapes dropped.
// (A line that redraws itself arrives as its last redraw: the API sends
// each followed line as a terminal shows it.)
export function renderAnsi(shown, state = new AnsiState()) {
  const fragment = document.createDocumentFragment();
  const pattern = /\x1b\[([0-9;]*)m|\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]/g;
  let last = 0;
  for (const match of shown.matchAll(pattern)) {
    if (match.index > last) fragment.append(state.span(shown.slice(last, match.index)));
    if (match[1] !== undefined) {
      state.apply(match[1] === '' ? [0] : match[1].split(';').map(Number));
    }
    last = match.index + match[0].length;
  }
  if (last < shown.length) fragment.append(state.span(shown.slice(last)));
  return fragment;
}

// -- times -----------------------------------------------------------------

// An API timestamp as a Date (the API's times without an offset are UTC).
export function parseTime(value) {
  if (!value) return null;
  const text = /[zZ]|[+-]\d\d:?\d\d$/.test(value) ? value : `${value}Z`;
  const time = new Date(text);
  return Number.isNaN(time.getTime()) ? null : time;
}

export function secondsBetween(start, end) {
  const begun = parseTime(start);
  if (!begun) return null;
  const ended = parseTime(end) || new Date();
  return Math.max(0, (ended - begun) / 1000);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '';
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${String(Math.floor(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`;
}

export function ago(value) {
  const time = parseTime(value);
  if (!time) return '';
  const seconds = Math.max(0, (Date.now() - time) / 1000);
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60]]) {
    if (seconds >= size) return `${Math.floor(seconds / size)}${unit} ago`;
  }
  return `${Math.floor(seconds)}s ago`;
}

// -- DOM -------------------------------------------------------------------

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  node.append(...children.filter(child => child !== null && child !== undefined));
  return node;
}

// The status a person reads. The API says running for a build no worker has
// taken yet (phase queued: shown queued) and for one whose cancel was asked
// and whose worker has yet to stop it (shown cancelling). The rule is
// common/models.py's shown_status, which the CLI uses: change both together.
export function shownStatus(build) {
  if (build.status !== 'running') return build.status;
  if (build['cancel-requested']) return 'cancelling';
  return build.phase === 'queued' ? 'queued' : 'running';
}

export function statusBadge(build) {
  const status = shownStatus(build);
  return el('span', {class: `badge status-${status}`, text: status || ''});
}

// An error as the farm explained it: its sentence and suggestions.
export function errorBox(error) {
  const box = el('div', {class: 'error', role: 'alert'}, el('strong', {text: error.message}));
  if (error.suggestions && error.suggestions.length) {
    box.append(el('ul', {}, ...error.suggestions.map(text => el('li', {text}))));
  }
  return box;
}

// Copy text to the clipboard; falls back to a selection where the page is
// not a secure context (a farm on plain http that is not localhost).
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = el('textarea', {readonly: true, class: 'offscreen'});
  area.value = text;
  document.body.append(area);
  area.select();
  document.execCommand('copy');
  area.remove();
}

export function copyButton(getText, label = 'Copy') {
  const button = el('button', {type: 'button', class: 'copy', text: label});
  button.addEventListener('click', async () => {
    try {
      await copyText(getText());
      button.textContent = 'Copied';
    } catch {
      button.textContent = 'Select and copy';
    }
    setTimeout(() => { button.textContent = label; }, 1500);
  });
  return button;
}

// The key form in the header: save for this session, or forget.
export function wireKeyForm() {
  const form = document.getElementById('key-form');
  if (!form) return;
  const input = form.querySelector('input[name=key]');
  const state = form.querySelector('.key-state');
  const forget = form.querySelector('button[name=forget]');
  const show = () => {
    const has = Boolean(apiKey());
    state.textContent = has ? 'key set for this session' : 'no key';
    state.className = `key-state ${has ? 'has-key' : 'no-key'}`;
    forget.hidden = !has;
    input.value = '';
  };
  form.addEventListener('submit', event => {
    event.preventDefault();
    setApiKey(input.value.trim());
  });
  forget.addEventListener('click', () => setApiKey(''));
  document.addEventListener('keychange', show);
  show();
}

// Call fn now and every `seconds` while the page is visible.
export function every(seconds, fn) {
  let timer = null;
  const run = async () => {
    clearTimeout(timer);
    try { await fn(); } finally {
      if (!document.hidden) timer = setTimeout(run, seconds * 1000);
    }
  };
  document.addEventListener('visibilitychange', () => { if (!document.hidden) run(); });
  document.addEventListener('keychange', run);
  run();
  return run;
}
