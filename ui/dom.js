// Small DOM helpers: elements are built with textContent only (entry data never becomes markup), and no
// inline style is ever set (the Content-Security-Policy forbids it; classes carry the looks).

import { absolute, relative } from './format.js';

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export const STATUSES = ['healthy', 'degraded', 'unhealthy', 'unknown'];

export function badge(status) {
  const s = STATUSES.includes(status) ? status : 'unknown';
  return h('span', { class: `badge badge-${s}`, dataset: { status: s } }, s);
}


/** A <time> showing "3 minutes ago", the exact time in its title; refreshed by refreshTimes(). */
export function timeAgo(iso) {
  if (!iso) return h('span', { class: 'muted' }, 'never');
  return h('time', { datetime: iso, title: absolute(iso), dataset: { rel: '1' } }, relative(iso));
}

export function refreshTimes(root = document) {
  for (const t of root.querySelectorAll('time[data-rel]')) t.textContent = relative(t.getAttribute('datetime'));
}
