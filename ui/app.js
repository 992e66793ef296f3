// The status page (SPEC section 17): asks who the caller is (GET /whoami; a 401 brings up the key
// prompt), loads the catalog through the query API with the filter box's filter and the latest health
// report, follows the change feed from the query's X-Catalog-Revision, and routes between the catalog
// (#/) and one registry's page (#/registry/<id>).

import { api, ApiError, keyStore, queryAll } from './api.js';
import { h, refreshTimes } from './dom.js';
import { followChanges } from './feed.js';
import { matches, renderList, toFilter } from './list.js';
import { isMirrored, PEERS_REFRESH_MS } from './peers.js';
import { renderRegistry } from './registry.js';

const main = document.getElementById('main');
const notice = document.getElementById('notice');
const liveEl = document.getElementById('live');
const whoEl = document.getElementById('who');
const forget = document.getElementById('forget');

const state = {
  session: null,
  entries: new Map(),
  report: new Map(),
  filter: { name: '', tags: [], status: '' },
  sort: { key: 'status', dir: 1 },
  more: false,
  loading: true,
  revision: null,
  reportAt: null,
  peers: [],
};
let view = null; // what is on screen: { kind: 'list'|'registry', ... }
let feed = null;
let loadSeq = 0;

// ------------------------------------------------------------------------------------------------
// Notices and errors

function say(kind, ...content) {
  notice.hidden = false;
  notice.className = `notice notice-${kind}`;
  notice.replaceChildren(...content);
}

function clearNotice() {
  notice.hidden = true;
  notice.replaceChildren();
}

/** Explains an API failure on the page; 401 brings up the key prompt. */
function explain(e) {
  if (e instanceof ApiError && e.status === 401) return askForKey(keyStore.get() ? 'The API key was not accepted (401). Enter a valid key.' : null);
  if (e instanceof ApiError && e.status === 403) {
    return say('error', h('strong', {}, 'Not allowed (403). '), e.message, ' ', keyStore.get() ? 'A key with a higher role is needed for this.' : '');
  }
  if (e instanceof ApiError) return say('error', h('strong', {}, `${e.problem?.title ?? 'Request failed'} (${e.status}). `), e.message);
  return say('error', h('strong', {}, 'The service cannot be reached. '), String(e?.message ?? e));
}

// ------------------------------------------------------------------------------------------------
// Who is calling

function showWho() {
  const s = state.session;
  whoEl.textContent = s.protected_mode ? 'local (protected mode)' : `role: ${s.role}`;
  forget.hidden = !keyStore.get();
}

forget.addEventListener('click', () => {
  keyStore.clear();
  feed?.stop();
  feed = null;
  state.session = null;
  whoEl.textContent = '';
  forget.hidden = true;
  askForKey('The key was forgotten; this tab no longer sends it.');
});

function askForKey(message) {
  feed?.stop();
  feed = null;
  setLive('off', 'Live updates: off');
  view = { kind: 'key' };
  const input = h('input', { id: 'api-key', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, 'aria-describedby': 'key-help' });
  const form = h(
    'form',
    {
      class: 'key-form',
      onsubmit: (ev) => {
        ev.preventDefault();
        const key = input.value.trim();
        if (!key) return;
        keyStore.set(key);
        clearNotice();
        start();
      },
    },
    h('label', { for: 'api-key' }, 'API key'),
    h('div', { class: 'key-row' }, input, h('button', { type: 'submit', class: 'primary' }, 'Use this key')),
  );
  main.replaceChildren(
    h(
      'section',
      { class: 'card key-prompt', 'aria-labelledby': 'key-title' },
      h('h1', { id: 'key-title', tabindex: '-1' }, 'API key needed'),
      message ? h('p', { class: 'key-error', role: 'alert' }, message) : null,
      h(
        'p',
        { id: 'key-help' },
        'This service runs with API keys (401 without one). Enter a key of any role: readers see the catalog, writers can also run checks. ',
        'The key stays in this browser tab only (sessionStorage) and is sent as an Authorization: Bearer header; it is never put in a URL or a cookie.',
      ),
      form,
    ),
  );
  input.focus();
}

// ------------------------------------------------------------------------------------------------
// The catalog and the change feed

async function loadCatalog() {
  const seq = ++loadSeq;
  state.loading = true;
  view?.list?.refresh();
  const [q, report] = await Promise.all([queryAll(toFilter(state.filter)), api('/health_report').catch((e) => (e instanceof ApiError && e.status === 403 ? null : Promise.reject(e)))]);
  if (seq !== loadSeq) return false; // a newer filter won
  state.entries = new Map(q.entries.map((e) => [e.container_registry_id, e]));
  state.more = q.more;
  setReport(report?.data);
  state.loading = false;
  if (!feed) startFeed(q.revision);
  return true;
}

/** GET /peers into state.peers (none when the service follows no peer or the role may not read it). */
async function loadPeers() {
  try {
    const { data } = await api('/peers');
    state.peers = Array.isArray(data) ? data : (data.peers ?? []);
  } catch {
    state.peers = [];
  }
  view?.list?.drawPeers();
}

let peersSoon = null;
/** A mirrored entry changed (a peer's entry, or its stale mark): the panel is read again shortly. */
function peersChanged() {
  clearTimeout(peersSoon);
  peersSoon = setTimeout(loadPeers, 500);
}

setInterval(() => {
  if (state.session && !document.hidden && state.peers.length > 0) loadPeers();
}, PEERS_REFRESH_MS);

function setReport(report) {
  state.reportAt = report?.generated_at ?? null;
  state.report = new Map((report?.registries ?? []).map((r) => [r.container_registry_id, r]));
}

// Uptime and latency figures come from the health report, made after each sweep: look for a new one every minute.
setInterval(async () => {
  if (!state.session || document.hidden || state.loading) return;
  try {
    const { data } = await api('/health_report');
    if (data.generated_at === state.reportAt) return;
    setReport(data);
    view?.list?.refresh();
    view?.page?.refresh();
  } catch {
    // The next load or action explains what is wrong.
  }
}, 60_000);

function setLive(kind, text) {
  liveEl.dataset.state = kind;
  liveEl.textContent = text;
}

// A 410 that follows a fresh list means the server (or a proxy before it) keeps answering 410: the list is
// taken again only after a pause that doubles, 1 s to 30 s with jitter, so an open page never loops on it.
let expiredInARow = 0;

function afterExpiry() {
  expiredInARow++;
  if (expiredInARow === 1) return reload();
  const base = Math.min(30_000, 1000 * 2 ** Math.min(expiredInARow - 2, 5));
  const wait = base / 2 + Math.random() * (base / 2);
  setLive('wait', `Live updates: the server no longer holds this page's place; listing again in ${Math.ceil(wait / 1000)} s`);
  setTimeout(reload, wait);
}

function startFeed(revision) {
  if (revision === null || revision === undefined || revision === '') {
    // Without X-Catalog-Revision there is no feed to follow from a known point.
    setLive('off', 'Live updates: not available on this server');
    return;
  }
  state.revision = Number(revision);
  feed = followChanges({
    since: state.revision,
    onChange: applyChange,
    onRevision: (r) => {
      state.revision = r;
    },
    onState: (s, e) => {
      if (s === 'live') {
        expiredInARow = 0;
        setLive('on', 'Live');
      }
      else if (s === 'connecting') setLive('wait', 'Live updates: connecting');
      else if (s === 'retrying') setLive('wait', 'Live updates: reconnecting');
      else if (s === 'unavailable') setLive('off', 'Live updates: not available on this server');
      else if (s === 'denied') {
        setLive('off', 'Live updates: not allowed');
        feed = null;
        explain(e);
      } else if (s === 'expired') {
        // The feed no longer holds our revision (410): list again and follow from there.
        feed = null;
        afterExpiry();
      }
    },
  });
}

function applyChange(change) {
  const id = change.container_registry_id;
  if (isMirrored(change)) peersChanged();
  const known = state.entries.get(id);
  // An older state than the one shown (a change replayed after a newer list) is skipped.
  if (known && typeof known.revision === 'number' && change.revision <= known.revision) return;
  if (change.type === 'delete' || !matches(change.entry, state.filter)) {
    if (known) {
      state.entries.delete(id);
      view?.list?.removeRow(id);
    }
  } else {
    state.entries.set(id, change.entry);
    view?.list?.updateRow(change.entry);
  }
  if (view?.kind === 'registry' && view.id === id) view.page?.apply(change);
}

async function reload() {
  try {
    if (await loadCatalog()) view?.list?.refresh();
  } catch (e) {
    explain(e);
  }
}

// ------------------------------------------------------------------------------------------------
// Routes

function showList() {
  view?.page?.destroy();
  const list = renderList(main, state, {
    setFilter: (filter) => {
      state.filter = filter;
      reload();
    },
    setSort: (sort) => {
      state.sort = sort;
      list.refresh();
    },
  });
  view = { kind: 'list', list };
}

async function showRegistry(id) {
  view?.page?.destroy();
  const mine = { kind: 'registry', id, page: null };
  view = mine;
  try {
    const page = await renderRegistry(main, id, {
      session: state.session,
      report: (rid) => state.report.get(rid),
      onEntry: (entry) => {
        if (state.entries.has(entry.container_registry_id)) state.entries.set(entry.container_registry_id, entry);
      },
      onError: explain,
    });
    if (view === mine) mine.page = page;
    else page.destroy();
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      main.replaceChildren(h('h1', { tabindex: '-1' }, 'No such registry'), h('p', {}, `The catalog holds no registry with id ${id}. `, h('a', { href: '#/' }, 'All registries')));
    } else explain(e);
  }
}

function route() {
  if (!state.session) return;
  clearNotice();
  const m = /^#\/registry\/([^/?#]+)$/.exec(location.hash);
  if (m) showRegistry(decodeURIComponent(m[1]));
  else {
    showList();
    main.querySelector('h1')?.focus();
  }
}

window.addEventListener('hashchange', route);
setInterval(() => refreshTimes(main), 30_000);

// ------------------------------------------------------------------------------------------------
// Start

async function start() {
  main.replaceChildren(h('p', { class: 'loading' }, 'Loading…'));
  try {
    const { data } = await api('/whoami');
    state.session = data;
    showWho();
    route();
    await Promise.all([loadCatalog(), loadPeers()]);
    view?.list?.refresh();
    view?.page?.refresh();
  } catch (e) {
    if (e instanceof ApiError && e.status === 403 && !state.session) {
      main.replaceChildren(
        h(
          'section',
          { class: 'card key-prompt' },
          h('h1', { tabindex: '-1' }, 'Not served to this client (403)'),
          h('p', {}, e.message),
          keyStore.get() ? h('p', {}, 'The key in this tab is valid but its role cannot read the catalog.') : null,
        ),
      );
      setLive('off', 'Live updates: off');
      return;
    }
    explain(e);
  }
}

start();
