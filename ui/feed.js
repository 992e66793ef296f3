// The change-feed client (SPEC section 12): `GET /container_registries/changes?since=R` with
// `Accept: text/event-stream`, read through fetch() and a stream reader, because EventSource cannot send
// an Authorization header. Parses Server-Sent Events itself, resumes after a drop with `Last-Event-ID`
// (and `since`) set to the last revision seen, and backs off between attempts (1 s doubling to 30 s, with
// jitter). A stream silent for longer than three bookmark periods is treated as dead and reopened.

import { ApiError, authHeaders } from './api.js';

/** Incremental parser of the text/event-stream format (WHATWG HTML, "Server-sent events"). */
export class SseParser {
  constructor() {
    this.buffer = '';
    this.afterCr = false;
    this.reset();
    this.lastEventId = '';
  }

  reset() {
    this.data = [];
    this.event = '';
    this.hasData = false;
  }

  /** Feeds decoded text; returns the events completed by it: { type, data, id }. */
  push(text) {
    // A CR that ended the previous chunk may have been the first half of a CRLF.
    if (this.afterCr && text.startsWith('\n')) text = text.slice(1);
    this.afterCr = false;
    this.buffer += text;
    const out = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      if (!m) break;
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      if (m[0] === '\r' && this.buffer === '') this.afterCr = true;
      const ev = this.line(line);
      if (ev) out.push(ev);
    }
    return out;
  }

  line(line) {
    if (line === '') {
      if (!this.hasData) {
        this.reset();
        return null;
      }
      const ev = { type: this.event || 'message', data: this.data.join('\n'), id: this.lastEventId };
      this.reset();
      return ev;
    }
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      this.data.push(value);
      this.hasData = true;
    } else if (field === 'event') {
      this.event = value;
    } else if (field === 'id') {
      if (!value.includes('\0')) this.lastEventId = value;
    }
    // `retry` and unknown fields: ignored (the client has its own backoff).
    return null;
  }
}

const BOOKMARK_PERIOD_MS = 15_000;

/**
 * Follows the feed from revision `since`. Callbacks: onChange(change) for upsert/delete events (data
 * parsed), onRevision(revision) after every event (bookmarks included), onState(state, detail) with state
 * one of connecting, live, retrying, unavailable, expired, denied. Returns { stop() }.
 * `filter` (a query filter object) is passed as the feed's `filter` parameter.
 */
export function followChanges({ since, filter, onChange, onRevision = () => {}, onState = () => {}, idleMs = 3 * BOOKMARK_PERIOD_MS }) {
  let lastId = String(since);
  let stopped = false;
  let controller = null;
  let attempt = 0;
  let timer = null;

  const url = () => {
    const q = new URLSearchParams({ since: lastId });
    if (filter && Object.keys(filter).length > 0) q.set('filter', JSON.stringify(filter));
    return `/container_registries/changes?${q}`;
  };

  const sleep = (ms) =>
    new Promise((resolve) => {
      timer = setTimeout(resolve, ms);
    });

  async function once() {
    controller = new AbortController();
    const headers = authHeaders({ Accept: 'text/event-stream', 'Last-Event-ID': lastId });
    const res = await fetch(url(), { headers, signal: controller.signal, credentials: 'omit', cache: 'no-store' });
    if (!res.ok) {
      let problem = null;
      try {
        problem = await res.json();
      } catch {
        problem = null;
      }
      throw new ApiError(res.status, problem, '/container_registries/changes');
    }
    if (!(res.headers.get('Content-Type') || '').startsWith('text/event-stream')) {
      throw new ApiError(406, { detail: 'the change feed did not answer with text/event-stream' });
    }
    onState('live');
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    parser.lastEventId = lastId;
    let idle = null;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => controller.abort(), idleMs);
    };
    arm();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        arm();
        for (const ev of parser.push(value)) {
          attempt = 0;
          if (ev.id) lastId = ev.id;
          if (ev.type === 'upsert' || ev.type === 'delete') onChange(JSON.parse(ev.data));
          onRevision(Number(lastId));
        }
      }
    } finally {
      clearTimeout(idle);
    }
  }

  (async () => {
    onState('connecting');
    while (!stopped) {
      try {
        await once();
      } catch (e) {
        if (stopped) return;
        if (e instanceof ApiError) {
          if (e.status === 404 || e.status === 405 || e.status === 406) return onState('unavailable', e);
          if (e.status === 410) return onState('expired', e);
          if (e.status === 401 || e.status === 403) return onState('denied', e);
        }
      }
      if (stopped) return;
      attempt++;
      const base = Math.min(30_000, 1000 * 2 ** Math.min(attempt - 1, 5));
      onState('retrying');
      await sleep(base / 2 + Math.random() * (base / 2));
    }
  })();

  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      controller?.abort();
    },
  };
}
