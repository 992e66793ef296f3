// The catalog view: totals per status, the filter box (name, tags, status; run by the query API), and
// the table of registries, sortable by clicking (or pressing Enter/Space on) a column header.

import { badge, h, STATUSES, timeAgo } from './dom.js';
import { ms, percent } from './format.js';
import { originLabel, peersPanel } from './peers.js';

/** The query filter (SPEC section 5) for the filter box's values. */
export function toFilter({ name, tags, status }) {
  const and = [];
  if (name) and.push({ container_registry_name: { $regex: name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), $options: 'i' } });
  if (tags.length > 0) and.push({ container_registry_tags: { $all: tags } });
  if (status) and.push({ 'container_registry_health.status': status });
  return and.length === 0 ? {} : and.length === 1 ? and[0] : { $and: and };
}

/** The same filter evaluated here, for entries arriving on the change feed. */
export function matches(entry, { name, tags, status }) {
  if (name && !entry.container_registry_name.toLowerCase().includes(name.toLowerCase())) return false;
  const have = entry.container_registry_tags ?? [];
  if (tags.some((t) => !have.includes(t))) return false;
  return !status || (entry.container_registry_health?.status ?? 'unknown') === status;
}

export function parseTags(text) {
  return [...new Set(text.split(/[\s,]+/).map((t) => t.trim()).filter(Boolean))];
}

const SEVERITY = { unhealthy: 0, degraded: 1, unknown: 2, healthy: 3 };

/** Current or last recorded error of a row: { code, detail, at, current }. */
function lastError(entry, report) {
  const health = entry.container_registry_health ?? {};
  if (health.error) return { code: health.error, detail: health.detail, at: health.checked_at, current: true };
  if (report?.last_error) return { code: report.last_error.error, detail: report.last_error.detail, at: report.last_error.at, current: false };
  return null;
}

export const COLUMNS = [
  { key: 'name', label: 'Name', get: (e) => e.container_registry_name.toLowerCase() },
  { key: 'url', label: 'URL', get: (e) => e.container_registry_public_url },
  { key: 'status', label: 'Status', get: (e) => SEVERITY[e.container_registry_health?.status ?? 'unknown'] },
  { key: 'uptime24', label: 'Uptime 24 h', get: (_e, r) => r?.uptime_24h ?? null, num: true },
  { key: 'uptime7', label: 'Uptime 7 d', get: (_e, r) => r?.uptime_7d ?? null, num: true },
  { key: 'p95', label: 'p95 latency', get: (_e, r) => r?.latency_p95_ms ?? null, num: true },
  { key: 'checked', label: 'Last checked', get: (e) => e.container_registry_health?.checked_at ?? null },
  { key: 'error', label: 'Last error', get: (e, r) => lastError(e, r)?.code ?? null },
  { key: 'tags', label: 'Tags', get: (e) => (e.container_registry_tags ?? []).join(',') || null },
];

function compare(col, dir, report) {
  return (a, b) => {
    const x = col.get(a, report.get(a.container_registry_id));
    const y = col.get(b, report.get(b.container_registry_id));
    // Empty values go last in both directions.
    if (x === null && y === null) return a.container_registry_name.localeCompare(b.container_registry_name);
    if (x === null) return 1;
    if (y === null) return -1;
    const c = x < y ? -1 : x > y ? 1 : 0;
    return c !== 0 ? c * dir : a.container_registry_name.localeCompare(b.container_registry_name);
  };
}

export function row(entry, report) {
  const health = entry.container_registry_health ?? { status: 'unknown' };
  const err = lastError(entry, report);
  const id = entry.container_registry_id;
  const cell = (label, cls, ...content) => h('td', { 'data-label': label, class: cls }, ...content);
  return h(
    'tr',
    { dataset: { id } },
    h('th', { scope: 'row', 'data-label': 'Name', class: 'name' }, h('a', { href: `#/registry/${encodeURIComponent(id)}` }, entry.container_registry_name), originLabel(entry)),
    cell('URL', 'url', entry.container_registry_public_url),
    cell('Status', 'status', badge(health.status)),
    cell('Uptime 24 h', 'num', percent(report?.uptime_24h)),
    cell('Uptime 7 d', 'num', percent(report?.uptime_7d)),
    cell('p95 latency', 'num', ms(report?.latency_p95_ms)),
    cell('Last checked', 'checked', timeAgo(health.checked_at)),
    cell(
      'Last error',
      err ? (err.current ? 'error' : 'error past') : 'error none',
      err ? [h('code', {}, err.code), err.detail ? h('span', { class: 'detail' }, err.detail) : null, err.current ? null : h('span', { class: 'muted' }, ' (', timeAgo(err.at), ')')] : '—',
    ),
    cell('Tags', 'tags', h('ul', { class: 'tags' }, (entry.container_registry_tags ?? []).map((t) => h('li', {}, t)))),
  );
}

function totals(entries) {
  const t = { healthy: 0, degraded: 0, unhealthy: 0, unknown: 0 };
  for (const e of entries) t[e.container_registry_health?.status ?? 'unknown']++;
  return t;
}

/**
 * Renders the view into `main`. `state`: { entries: Map, report: Map, peers: [], filter, sort: {key, dir}, more, loading }.
 * `actions`: { setFilter(filter), setSort(sort) }. The form is drawn once (typing never loses focus); the
 * returned refresh() redraws totals, headers and rows, updateRow/removeRow apply one live change, and
 * drawPeers() redraws the peers panel from state.peers.
 */
export function renderList(main, state, actions) {
  const totalsEl = h('ul', { class: 'totals', 'aria-label': 'Registries per status' });
  const summary = h('p', { class: 'summary', role: 'status' });
  const drawTotals = () => {
    const t = totals(state.entries.values());
    totalsEl.replaceChildren(
      h('li', { class: 'total total-all' }, h('span', { class: 'n' }, String(state.entries.size)), h('span', { class: 'what' }, state.entries.size === 1 ? 'registry' : 'registries')),
      ...STATUSES.map((s) =>
        h(
          'li',
          { class: `total total-${s}` },
          h(
            'button',
            { type: 'button', class: 'total-button', 'aria-pressed': String(state.filter.status === s), title: `Show only ${s} registries`, dataset: { status: s }, onclick: () => actions.setFilter({ ...state.filter, status: state.filter.status === s ? '' : s }) },
            h('span', { class: 'n' }, String(t[s])),
            h('span', { class: 'what' }, s),
          ),
        ),
      ),
    );
    const filtered = state.filter.name || state.filter.tags.length > 0 || state.filter.status;
    const n = state.entries.size;
    summary.textContent = state.loading
      ? 'Loading…'
      : `${n} ${n === 1 ? 'registry' : 'registries'}${filtered ? (n === 1 ? ' matches the filter' : ' match the filter') : ''}${state.more ? ' (the first ones only: narrow the filter to see the others)' : ''}.`;
  };

  // The filter box: changes are applied as one types (debounced), and on submit.
  const name = h('input', { id: 'f-name', type: 'search', name: 'name', autocomplete: 'off', placeholder: 'part of a name', value: state.filter.name });
  const tags = h('input', { id: 'f-tags', type: 'text', name: 'tags', autocomplete: 'off', placeholder: 'e.g. ai, internal', value: state.filter.tags.join(', ') });
  const status = h('select', { id: 'f-status', name: 'status' }, h('option', { value: '' }, 'any status'), STATUSES.map((s) => h('option', { value: s, selected: state.filter.status === s }, s)));
  const read = () => ({ name: name.value.trim(), tags: parseTags(tags.value), status: status.value });
  let debounce = null;
  const apply = () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => actions.setFilter(read()), 250);
  };
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter registries', onsubmit: (ev) => { ev.preventDefault(); clearTimeout(debounce); actions.setFilter(read()); } },
    h('div', { class: 'field' }, h('label', { for: 'f-name' }, 'Name'), name),
    h('div', { class: 'field' }, h('label', { for: 'f-tags' }, 'Tags (all of)'), tags),
    h('div', { class: 'field' }, h('label', { for: 'f-status' }, 'Status'), status),
    h(
      'div',
      { class: 'field actions' },
      h('button', { type: 'submit' }, 'Filter'),
      h('button', { type: 'button', class: 'secondary', onclick: () => { name.value = ''; tags.value = ''; status.value = ''; actions.setFilter(read()); } }, 'Clear'),
    ),
  );
  name.addEventListener('input', apply);
  tags.addEventListener('input', apply);
  status.addEventListener('change', () => actions.setFilter(read()));

  const headRow = h('tr');
  const body = h('tbody');
  const empty = h('p', { class: 'empty', hidden: true }, 'No registry matches.');
  const table = h('table', { class: 'registries' }, h('caption', { class: 'sr-only' }, 'Registries; select a column header to sort'), h('thead', {}, headRow), body);

  const drawHead = () => {
    headRow.replaceChildren(
      ...COLUMNS.map((c) => {
        const sorted = c.key === state.sort.key;
        return h(
          'th',
          { scope: 'col', class: c.num ? 'num' : undefined, 'aria-sort': sorted ? (state.sort.dir === 1 ? 'ascending' : 'descending') : 'none' },
          h(
            'button',
            { type: 'button', class: 'sort', dataset: { key: c.key }, onclick: () => actions.setSort({ key: c.key, dir: sorted ? -state.sort.dir : 1 }) },
            c.label,
            h('span', { class: 'arrow', 'aria-hidden': 'true' }, sorted ? (state.sort.dir === 1 ? '▲' : '▼') : '↕'),
          ),
        );
      }),
    );
  };

  const refresh = () => {
    const entries = [...state.entries.values()];
    const col = COLUMNS.find((c) => c.key === state.sort.key) ?? COLUMNS[0];
    entries.sort(compare(col, state.sort.dir, state.report));
    // Keep the focused header button focused across the redraw (keyboard sorting).
    const focusedKey = document.activeElement?.closest?.('th')?.querySelector('button.sort')?.dataset.key;
    drawHead();
    if (focusedKey) headRow.querySelector(`button.sort[data-key="${focusedKey}"]`)?.focus();
    body.replaceChildren(...entries.map((e) => row(e, state.report.get(e.container_registry_id))));
    status.value = state.filter.status;
    empty.hidden = entries.length > 0 || state.loading;
    drawTotals();
  };

  const peers = peersPanel();
  const drawPeers = () => peers.draw(state.peers);
  main.replaceChildren(h('h1', { class: 'sr-only', tabindex: '-1' }, 'Registries'), totalsEl, form, summary, h('div', { class: 'table-wrap' }, table), empty, peers.section);
  refresh();
  drawPeers();

  return {
    refresh,
    drawPeers,
    /** A live change of one entry: its row is replaced where it stands (rows do not jump under the reader). */
    updateRow(entry) {
      const id = entry.container_registry_id;
      const fresh = row(entry, state.report.get(id));
      const old = body.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
      if (old) old.replaceWith(fresh);
      else body.append(fresh);
      empty.hidden = true;
      drawTotals();
    },
    removeRow(id) {
      body.querySelector(`tr[data-id="${CSS.escape(id)}"]`)?.remove();
      empty.hidden = state.entries.size > 0;
      drawTotals();
    },
  };
}
