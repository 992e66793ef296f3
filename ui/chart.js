// The registry page's chart: probe latency (left axis, ms; probes without an HTTP answer leave a gap)
// and status (right axis, a stepped line: healthy, degraded, unhealthy) over the history window, drawn
// with uPlot. Colours come from the stylesheet's custom properties, so the chart follows the theme.

import uPlot from './uPlot.esm.js';

const LEVEL = { healthy: 3, degraded: 2, unhealthy: 1 };
const LABEL = { 3: 'healthy', 2: 'degraded', 1: 'unhealthy' };

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** uPlot's columns from history rows (oldest first). */
export function columns(items) {
  const t = [];
  const latency = [];
  const status = [];
  for (const row of items) {
    t.push(Date.parse(row.checked_at) / 1000);
    latency.push(row.http_status === null ? null : row.latency_ms);
    status.push(LEVEL[row.status] ?? null);
  }
  return [t, latency, status];
}

/**
 * Draws the chart into `el` (emptied first) over the history window: from `since` (ms) to now, whatever
 * the probes span (one probe alone once stretched the axis over years). Returns { update(items), destroy() }.
 */
export function historyChart(el, items, since) {
  let plot = null;
  let data = columns(items);
  const windowOf = () => {
    const to = Math.max(Date.now() / 1000, ...data[0]);
    return [Math.min(since / 1000, ...data[0]), to];
  };

  const build = () => {
    plot?.destroy();
    el.replaceChildren();
    const axis = cssVar('--text-muted');
    const grid = cssVar('--grid');
    const width = Math.max(280, el.clientWidth);
    const opts = {
      width,
      height: width < 500 ? 220 : 280,
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      scales: { x: { time: true, range: () => windowOf() }, ms: { auto: true, range: (_u, _min, max) => [0, Math.max(10, (max ?? 0) * 1.1)] }, st: { range: [0.5, 3.5] } },
      series: [
        {},
        {
          label: 'latency',
          scale: 'ms',
          stroke: cssVar('--chart-latency'),
          width: 2,
          points: { show: true, size: 5, fill: cssVar('--chart-latency') },
          value: (_u, v) => (v === null ? '—' : `${Math.round(v)} ms`),
          spanGaps: false,
        },
        {
          label: 'status',
          scale: 'st',
          stroke: cssVar('--chart-status'),
          width: 2,
          dash: [6, 4],
          paths: uPlot.paths.stepped({ align: 1 }),
          points: { show: false },
          value: (_u, v) => (v === null ? '—' : LABEL[v]),
        },
      ],
      axes: [
        { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
        { scale: 'ms', stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, values: (_u, vals) => vals.map((v) => `${v} ms`), size: width < 500 ? 50 : 64 },
        { scale: 'st', side: 1, stroke: axis, grid: { show: false }, ticks: { stroke: grid }, splits: () => [1, 2, 3], values: (_u, vals) => vals.map((v) => LABEL[v] ?? ''), size: width < 500 ? 70 : 80 },
      ],
      // The x range drawn, for the tests (uPlot draws on a canvas).
      hooks: { draw: [(u) => Object.assign(el.dataset, { xMin: String(u.scales.x.min), xMax: String(u.scales.x.max) })] },
    };
    plot = new uPlot(opts, data, el);
    el.dataset.points = String(data[0].length);
  };

  build();
  const resize = new ResizeObserver(() => {
    if (plot && Math.abs(plot.width - el.clientWidth) > 8) build();
  });
  resize.observe(el);
  const scheme = matchMedia('(prefers-color-scheme: dark)');
  const onScheme = () => build();
  scheme.addEventListener('change', onScheme);

  return {
    update(next) {
      data = columns(next);
      plot.setData(data);
      el.dataset.points = String(data[0].length);
    },
    destroy() {
      resize.disconnect();
      scheme.removeEventListener('change', onScheme);
      plot?.destroy();
    },
  };
}
