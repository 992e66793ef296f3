// Federation on the status page (SPEC 15): the peer catalogs this one follows, from GET /peers (state,
// revision, lag, last error, entries), and how a mirrored entry shows its origin. The panel is refreshed
// when the change feed brings a change of a mirrored entry (a peer's entries change, or go stale) and every
// PEERS_REFRESH_MS while the page is visible; it is hidden when the catalog follows no peer.

import { h, timeAgo } from './dom.js';
import { count } from './format.js';

export const PEERS_REFRESH_MS = 10_000;

/** A peer's state in one word: stale, failing (its last attempt failed) or following. */
export function peerState(p) {
  if (p.stale) return 'stale';
  if (p.last_error) return 'failing';
  return p.revision === null ? 'listing' : 'following';
}

/** Under a mirrored entry's name: the peer it comes from (stale ones marked); nothing for local entries. */
export function originLabel(entry) {
  const o = entry.container_registry_origin;
  if (!o) return null;
  return h('span', { class: `origin${o.stale ? ' origin-stale' : ''}`, title: `mirrored from ${o.url}, synced ${o.synced_at}` }, `from ${o.peer}${o.stale ? ' (stale)' : ''}`);
}

/** True for a change of an entry mirrored from a peer (ids `<peer>:<id>`; local ids are UUIDs). */
export function isMirrored(change) {
  return change.entry?.container_registry_origin !== undefined || String(change.container_registry_id).includes(':');
}

/** The panel: a section with one row per peer; `draw(peers)` redraws it (hidden for none). */
export function peersPanel() {
  const body = h('tbody');
  const section = h(
    'section',
    { class: 'card peers', 'aria-labelledby': 'peers-title', hidden: true },
    h('h2', { id: 'peers-title' }, 'Peer catalogs'),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'peers' },
        h('thead', {}, h('tr', {}, ['Peer', 'State', 'Entries', 'Revision', 'Last answer', 'Last error'].map((c) => h('th', { scope: 'col' }, c)))),
        body,
      ),
    ),
  );
  const draw = (peers) => {
    section.hidden = peers.length === 0;
    body.replaceChildren(
      ...peers.map((p) => {
        const state = peerState(p);
        return h(
          'tr',
          { dataset: { peer: p.name, state } },
          h('th', { scope: 'row' }, h('span', { class: 'peer-name' }, p.name), h('span', { class: 'url muted' }, ' ', p.url)),
          h('td', { 'data-label': 'State' }, h('span', { class: `peer-state peer-${state}` }, state)),
          h('td', { 'data-label': 'Entries', class: 'num' }, count(p.entries)),
          h('td', { 'data-label': 'Revision', class: 'num' }, p.revision === null ? '—' : count(p.revision)),
          h('td', { 'data-label': 'Last answer' }, timeAgo(p.last_success_at)),
          h('td', { 'data-label': 'Last error', class: p.last_error ? 'error' : 'error none' }, p.last_error ? [h('code', {}, p.last_error), ' ', timeAgo(p.last_error_at)] : '—'),
        );
      }),
    );
  };
  return { section, draw };
}
