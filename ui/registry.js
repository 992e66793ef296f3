// The page of one registry (#/registry/<id>): its health, uptime and latency figures, a chart of latency
// and status over the history window, recent errors, observed storage in readable units, for a mirror the
// tags whose digest differs from the registry it mirrors (drift), and a "check now" button for callers whose
// role may probe (writers and admins).

import { api } from './api.js';
import { historyChart } from './chart.js';
import { badge, h, timeAgo } from './dom.js';
import { absolute, bytes, count, megabytes, ms, percent, plural } from './format.js';

const HISTORY_LIMIT = 5000;

function dl(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '—')]));
}

const yesNo = (b) => (b === true ? 'yes' : b === false ? 'no' : '—');

function healthFacts(health) {
  const auth = health.auth;
  const tls = health.tls;
  return dl([
    ['Status', badge(health.status)],
    ['Last checked', timeAgo(health.checked_at)],
    ['Latency', ms(health.latency_ms)],
    ['HTTP status', health.http_status ?? '—'],
    ['API version', health.api_version ?? '—'],
    ['Authentication', auth?.required ? `${auth.scheme ?? 'required'}${auth.realm ? ` (realm ${auth.realm})` : ''}` : health.auth_required ? 'required' : 'none'],
    tls ? ['TLS', `${tls.protocol ?? '?'}${tls.cert_expires_at ? `, certificate expires ${absolute(tls.cert_expires_at)}` : ''}`] : null,
    ['Consecutive failures', count(health.consecutive_failures ?? 0)],
    ['Last healthy', timeAgo(health.last_healthy_at)],
    ['Last status change', timeAgo(health.last_status_change_at)],
    health.error ? ['Error', [h('code', {}, health.error), health.detail ? h('span', { class: 'detail' }, ' ', health.detail) : null]] : null,
  ]);
}

function uptimeFacts(report) {
  if (!report) return h('p', { class: 'muted' }, 'Not in the latest health report yet (reports are made after each sweep).');
  return dl([
    ['Uptime 24 h', `${percent(report.uptime_24h)} of ${plural(report.probes_24h, 'probe')}`],
    ['Uptime 7 d', `${percent(report.uptime_7d)} of ${plural(report.probes_7d, 'probe')}`],
    ['Latency p50 (24 h)', ms(report.latency_p50_ms)],
    ['Latency p95 (24 h)', ms(report.latency_p95_ms)],
  ]);
}

function storageFacts(info) {
  const o = info?.observed;
  const configured = dl([
    ['Storage type', info?.storage_type ?? '—'],
    ['Storage size', info?.storage_size === undefined ? '—' : megabytes(info.storage_size)],
    ['Memory size', info?.memory_size === undefined ? '—' : megabytes(info.memory_size)],
    ['Registry type', info?.registry_type ?? '—'],
  ]);
  const observed = !o
    ? h('p', { class: 'muted' }, 'Not observed yet (the storage refresh runs on STORAGE_CRON).')
    : o.catalog_supported === false
      ? h('p', { class: 'muted' }, 'The registry does not list its catalog (/v2/_catalog), so its storage cannot be observed.')
      : dl([
          ['Used', h('span', { class: 'big', dataset: { bytes: String(o.used_bytes ?? '') } }, bytes(o.used_bytes))],
          ['Repositories', count(o.repository_count)],
          ['Tags', count(o.tag_count)],
          ['Complete', o.truncated ? 'no: bounds were hit (STORAGE_MAX_*)' : 'yes'],
          ['Refreshed', o.refreshed_at ? timeAgo(o.refreshed_at) : '—'],
          ['Took', ms(o.duration_ms)],
          o.error ? ['Error', [h('code', {}, o.error), ' ', o.detail ?? '']] : null,
        ]);
  return [h('h3', {}, 'Observed'), observed, h('h3', {}, 'Configured'), configured];
}

/** A digest cut to its first 12 hex digits, the whole one in the title. */
function shortDigest(d) {
  const colon = d.indexOf(':');
  return h('code', { title: d }, colon >= 0 ? `${d.slice(0, colon + 13)}…` : d);
}

/** Mirror drift (observed.mirror_drift): how many tags differ from the registry it mirrors, and the first ones. */
function driftFacts(entry) {
  const d = entry.container_registry_storage_info?.observed?.mirror_drift;
  if (!d) return h('p', { class: 'muted', id: 'drift-none' }, 'No drift: every tag this mirror and the registry it mirrors both hold has the same digest (as of their last storage refreshes).');
  const rows = d.items.map((i) => h('tr', {}, h('td', {}, h('code', {}, `${i.repository}:${i.tag}`)), h('td', {}, shortDigest(i.mirror_digest)), h('td', {}, shortDigest(i.origin_digest))));
  return [
    dl([
      ['Drifting tags', h('span', { class: 'big', id: 'drift-count' }, count(d.tags))],
      ['Observed', timeAgo(d.observed_at)],
    ]),
    h(
      'table',
      { class: 'peers drift', id: 'drift-table' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Tag'), h('th', { scope: 'col' }, 'Mirror digest'), h('th', { scope: 'col' }, 'Origin digest'))),
      h('tbody', {}, rows),
    ),
    d.truncated ? h('p', { class: 'muted' }, `The first ${d.items.length} of ${count(d.tags)} are listed.`) : null,
  ];
}

const isMirror = (entry) => Array.isArray(entry.container_registry_config?.mirror_of) && entry.container_registry_config.mirror_of.length > 0;

function errorList(items) {
  const errors = items.filter((r) => r.error !== null).slice(-20).reverse();
  if (errors.length === 0) return h('p', { class: 'muted' }, 'No errors in the window.');
  return h(
    'ol',
    { class: 'errors' },
    errors.map((r) => h('li', {}, timeAgo(r.checked_at), ' ', badge(r.status), ' ', h('code', {}, r.error), r.detail ? h('span', { class: 'detail' }, r.detail) : null)),
  );
}

/**
 * Renders registry `id` into `main`. ctx: { session, report(id), onEntry(entry), onError(e) }.
 * Returns { apply(change), destroy() } so that live changes of this entry update the page.
 */
export async function renderRegistry(main, id, ctx) {
  main.replaceChildren(h('p', { class: 'loading' }, 'Loading…'));
  const path = `/container_registry/${encodeURIComponent(id)}`;
  const [{ data: entry }, { data: history }] = await Promise.all([api(path), api(`${path}/health_history?limit=${HISTORY_LIMIT}`)]);
  let current = entry;
  let items = history.items;
  let chart = null;

  const title = h('h1', { tabindex: '-1' });
  const status = h('span', { class: 'head-badge' });
  const healthBox = h('div');
  const uptimeBox = h('div');
  const storageBox = h('div');
  const driftBox = h('div');
  const driftCard = h('section', { class: 'card wide', id: 'drift', 'aria-labelledby': 'c-drift', hidden: true }, h('h2', { id: 'c-drift' }, 'Mirror drift'), driftBox);
  const errorsBox = h('div');
  const chartBox = h('div', { class: 'chart', role: 'img', 'aria-label': 'Latency and status over time' });
  const chartNote = h('p', { class: 'muted chart-note' });
  const checkResult = h('p', { class: 'check-result', role: 'status', 'aria-live': 'polite' });
  const canProbe = ctx.session.permissions?.probe === true;

  const check = h('button', { type: 'button', id: 'check-now', class: 'primary' }, 'Check now');
  check.addEventListener('click', async () => {
    check.disabled = true;
    check.textContent = 'Checking…';
    checkResult.textContent = '';
    try {
      const { data: health } = await api(`/check_container_health/${encodeURIComponent(id)}`);
      checkResult.textContent = `Checked: ${health.status}${health.error ? ` (${health.error})` : ''} in ${ms(health.latency_ms)}.`;
      const [{ data: fresh }, { data: h2 }] = await Promise.all([api(path), api(`${path}/health_history?limit=${HISTORY_LIMIT}`)]);
      items = h2.items;
      update(fresh);
      ctx.onEntry(fresh);
    } catch (e) {
      checkResult.textContent = '';
      ctx.onError(e);
    } finally {
      check.disabled = false;
      check.textContent = 'Check now';
    }
  });

  function update(next) {
    current = next;
    const health = current.container_registry_health ?? { status: 'unknown' };
    title.textContent = current.container_registry_name;
    status.replaceChildren(badge(health.status));
    healthBox.replaceChildren(healthFacts(health));
    uptimeBox.replaceChildren(uptimeFacts(ctx.report(id)));
    storageBox.replaceChildren(...storageFacts(current.container_registry_storage_info));
    driftCard.hidden = !isMirror(current) && !current.container_registry_storage_info?.observed?.mirror_drift;
    driftBox.replaceChildren(...[driftFacts(current)].flat());
    errorsBox.replaceChildren(errorList(items));
    const since = history.since;
    chartNote.textContent = `${plural(items.length, 'probe')} since ${absolute(since)}${history.truncated ? ' (the newest ones only)' : ''}.`;
    if (items.length === 0) {
      chart?.destroy();
      chart = null;
      chartBox.replaceChildren(h('p', { class: 'muted' }, 'No probes recorded yet.'));
      chartBox.dataset.points = '0';
    } else if (chart) chart.update(items);
    else chart = historyChart(chartBox, items, Date.parse(since));
  }

  const tags = current.container_registry_tags ?? [];
  main.replaceChildren(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/' }, '← All registries')),
    h(
      'header',
      { class: 'reg-head' },
      h('div', { class: 'reg-title' }, title, status),
      h('p', { class: 'url' }, current.container_registry_public_url),
      tags.length > 0 ? h('ul', { class: 'tags' }, tags.map((t) => h('li', {}, t))) : null,
      canProbe ? h('div', { class: 'reg-actions' }, check, checkResult) : h('p', { class: 'muted' }, 'A writer key can run a check now.'),
    ),
    h(
      'div',
      { class: 'cards' },
      h('section', { class: 'card wide', 'aria-labelledby': 'c-chart' }, h('h2', { id: 'c-chart' }, 'Latency and status'), chartNote, chartBox),
      h('section', { class: 'card', 'aria-labelledby': 'c-health' }, h('h2', { id: 'c-health' }, 'Health'), healthBox),
      h('section', { class: 'card', 'aria-labelledby': 'c-uptime' }, h('h2', { id: 'c-uptime' }, 'Uptime and latency'), uptimeBox),
      h('section', { class: 'card', 'aria-labelledby': 'c-errors' }, h('h2', { id: 'c-errors' }, 'Recent errors'), errorsBox),
      h('section', { class: 'card', 'aria-labelledby': 'c-storage' }, h('h2', { id: 'c-storage' }, 'Storage'), storageBox),
      driftCard,
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'c-entry' },
        h('h2', { id: 'c-entry' }, 'Entry'),
        dl([
          ['ID', h('code', {}, current.container_registry_id)],
          ['Image prefix', h('code', {}, current.container_registry_image_prefix ?? '—')],
          ['Created', timeAgo(current.created_at)],
          ['Updated', timeAgo(current.updated_at)],
          ['Version', count(current.version)],
          current.container_registry_origin ? ['Origin', `peer ${current.container_registry_origin.peer}${current.container_registry_origin.stale ? ' (stale)' : ''}`] : null,
        ]),
      ),
    ),
  );
  update(current);
  title.focus();

  return {
    /** A change of this entry from the feed: the page follows it; a new probe result adds a point. */
    apply(change) {
      if (change.type === 'delete') {
        main.replaceChildren(h('p', { class: 'notice' }, 'This registry was deleted. ', h('a', { href: '#/' }, 'Back to all registries')));
        return;
      }
      const next = change.entry;
      const health = next.container_registry_health;
      const last = items[items.length - 1];
      if (health?.checked_at && health.status !== 'unknown' && (!last || Date.parse(health.checked_at) > Date.parse(last.checked_at))) {
        items = [...items, { checked_at: health.checked_at, status: health.status, latency_ms: health.latency_ms, http_status: health.http_status ?? null, error: health.error ?? null, detail: health.detail ?? null, sweep_id: null }];
      }
      update(next);
    },
    /** Redraws with the latest health report (uptime and latency figures). */
    refresh() {
      uptimeBox.replaceChildren(uptimeFacts(ctx.report(id)));
    },
    destroy() {
      chart?.destroy();
    },
  };
}
