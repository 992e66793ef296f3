// Formatting for people: sizes, durations, shares, times.

const IEC = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 → "1.5 KiB". */
export function bytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '—';
  let i = 0;
  let v = n;
  while (v >= 1024 && i < IEC.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v)} ${IEC[i]}`;
}

/** Operator-set sizes are in MB; -1 means unlimited or unknown. */
export function megabytes(mb) {
  if (mb === -1) return 'unlimited / unknown';
  return typeof mb === 'number' ? bytes(mb * 1024 * 1024) : '—';
}

export function ms(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  return n >= 1000 ? `${(n / 1000).toFixed(n >= 10000 ? 0 : 1)} s` : `${Math.round(n)} ms`;
}

export function percent(share) {
  if (typeof share !== 'number') return '—';
  const p = share * 100;
  return `${p === 100 || p === 0 ? p : p.toFixed(p >= 99 ? 2 : 1)} %`;
}

const UNITS = [
  ['year', 365 * 86400],
  ['month', 30 * 86400],
  ['day', 86400],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
];
const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

/** "3 minutes ago", "in 2 days". */
export function relative(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '—';
  const s = (t - now) / 1000;
  for (const [unit, size] of UNITS) {
    if (Math.abs(s) >= size || unit === 'second') return rtf.format(Math.round(s / size), unit);
  }
  return '—';
}

const dtf = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

export function absolute(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '—' : dtf.format(new Date(t));
}

export function count(n) {
  return typeof n === 'number' ? n.toLocaleString() : '—';
}

/** "1 probe", "3 probes", "— probes". */
export function plural(n, word) {
  return `${count(n)} ${n === 1 ? word : `${word}s`}`;
}
