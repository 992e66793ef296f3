/**
 * Reading one registry's probe history (GET /container_registry/:id/health_history, the status page's
 * chart): the probes recorded in a window, oldest first, at most `limit` of them (the newest ones when the
 * window holds more). The window parser is pure and throws InputError naming the query parameter.
 */
import type { Collection, Db } from 'mongodb';
import { InputError } from '../errors';
import { integer, single } from '../lib/query-params';
import type { ContainerRegistryHealthHistory } from '../generated';
import { HISTORY, type HistoryRow } from './writer';

export const HISTORY_DEFAULT_LIMIT = 1000;
export const HISTORY_MAX_LIMIT = 5000;

const DAY = 86_400_000;
const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i;

export interface HistoryWindow {
  since: Date;
  limit: number;
}

/**
 * `since` (ISO-8601 date-time; default: `historyDays` before `now`, the whole kept history) and `limit`
 * (1–HISTORY_MAX_LIMIT, default HISTORY_DEFAULT_LIMIT) from the query string.
 */
export function parseHistoryWindow(query: Record<string, unknown>, now: Date, historyDays: number): HistoryWindow {
  const rawSince = single(query, 'since');
  let since = new Date(now.getTime() - historyDays * DAY);
  if (rawSince !== undefined) {
    const t = ISO_DATE_TIME.test(rawSince) ? Date.parse(rawSince) : NaN;
    if (Number.isNaN(t)) {
      throw new InputError('since must be an ISO-8601 date-time such as 2026-12-01T00:00:00Z.', [{ path: 'since', message: 'must be an ISO-8601 date-time with a time zone' }]);
    }
    since = new Date(t);
  }
  return { since, limit: integer(query, 'limit', 1, HISTORY_MAX_LIMIT, HISTORY_DEFAULT_LIMIT) };
}

export class HealthHistoryReader {
  private readonly history: Collection<HistoryRow>;

  constructor(db: Db, private readonly opts: { queryTimeoutMs: number; historyDays: number }) {
    this.history = db.collection<HistoryRow>(HISTORY);
  }

  /** The window a request asks for (query string `since`, `limit`); the default is the whole kept history. */
  window(query: Record<string, unknown>, now: Date = new Date()): HistoryWindow {
    return parseHistoryWindow(query, now, this.opts.historyDays);
  }

  /** The probes of registry `id` from `since` to now, oldest first; the newest `limit` when there are more. */
  async list(id: string, window: HistoryWindow, now: Date = new Date()): Promise<ContainerRegistryHealthHistory> {
    const rows = await this.history
      .find(
        { registry_id: id, checked_at: { $gte: window.since } },
        {
          projection: { _id: 0, checked_at: 1, status: 1, latency_ms: 1, http_status: 1, error: 1, detail: 1, sweep_id: 1 },
          sort: { checked_at: -1 },
          limit: window.limit + 1,
          maxTimeMS: this.opts.queryTimeoutMs,
        },
      )
      .toArray();
    const truncated = rows.length > window.limit;
    const kept = rows.slice(0, window.limit).reverse();
    return {
      container_registry_id: id,
      since: window.since.toISOString(),
      until: now.toISOString(),
      limit: window.limit,
      truncated,
      items: kept.map((r) => ({
        checked_at: r.checked_at.toISOString(),
        status: r.status,
        latency_ms: r.latency_ms,
        http_status: r.http_status,
        error: r.error,
        detail: r.detail,
        sweep_id: r.sweep_id,
      })),
    };
  }
}
