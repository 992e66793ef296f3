/**
 * GET /container_registry/:id/inventory (SPEC 19): the inventory of one registry a page at a time, read from
 * the repository (so a page reflects a refresh committed on any replica at once), key-set paginated on
 * (repository, tag) like queries: the opaque cursor carries the last key of the previous page, and the next
 * page starts after it, in whatever generation is current by then (a refresh between two pages moves no row
 * twice and skips none that both generations hold).
 *
 * `repository=R` reads R's rows only (the chunk index finds their first chunk); `tag=T` alone scans the
 * inventory in key order, at most MAX_CHUNKS_PER_PAGE chunks per page: a page may then hold fewer rows than
 * `limit` and still have a next one. Query parsing is pure and throws InputError naming the parameter.
 */
import { InputError } from '../errors';
import { integer, single } from '../lib/query-params';
import type { InventoryRow } from '../probe/types';
import { isRepositoryPath, isTag } from '../resolve';
import { compareKeys, InventoryChanged, type InventoryRepository, type InventoryState, type RowKey } from './repository';

export const DEFAULT_PAGE = 100;
export const MAX_PAGE = 1000;
const MAX_CHUNKS_PER_PAGE = 8;
const PARAMS = new Set(['repository', 'tag', 'limit', 'cursor']);

export interface PageQuery {
  repository?: string;
  tag?: string;
  limit: number;
  /** The last key of the previous page. */
  after?: RowKey;
}

export interface InventoryPage {
  /** null: the registry has no inventory (never refreshed, catalog refused, or mirrored from a peer). */
  state: InventoryState | null;
  items: InventoryRow[];
  /** Where the next page starts after, or null on the last page. */
  next: RowKey | null;
}

export function encodeInventoryCursor(key: RowKey): string {
  return Buffer.from(JSON.stringify([key[0], key[1]])).toString('base64url');
}

function decodeCursor(raw: string): RowKey {
  const bad = () => new InputError('The cursor is invalid: not a cursor issued by this service.', [{ path: 'cursor', message: 'not a cursor issued by this service' }]);
  if (raw.length > 1024 || !/^[A-Za-z0-9_-]+$/.test(raw)) throw bad();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || typeof v[1] !== 'string' || v[0].length > 255 || v[1].length > 128) throw bad();
  return [v[0], v[1]];
}

export function parseInventoryQuery(query: Record<string, unknown>): PageQuery {
  const unknown = Object.keys(query).filter((k) => !PARAMS.has(k));
  if (unknown.length > 0) {
    throw new InputError(`Unknown query parameters: ${unknown.join(', ')}.`, unknown.map((p) => ({ path: p, message: 'unknown query parameter; use repository, tag, limit or cursor' })));
  }
  const repository = single(query, 'repository');
  const tag = single(query, 'tag');
  const errors = [];
  if (repository !== undefined && !isRepositoryPath(repository)) errors.push({ path: 'repository', message: 'must be a repository name as the registry lists it (lowercase path components such as team/app, at most 255 characters)' });
  if (tag !== undefined && !isTag(tag)) errors.push({ path: 'tag', message: 'must be a tag ([A-Za-z0-9_] then [A-Za-z0-9_.-], at most 128 characters)' });
  if (errors.length > 0) throw new InputError(`The query is invalid: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}.`, errors);
  const limit = integer(query, 'limit', 1, MAX_PAGE, DEFAULT_PAGE);
  const cursor = single(query, 'cursor');
  const q: PageQuery = { limit };
  if (repository !== undefined) q.repository = repository;
  if (tag !== undefined) q.tag = tag;
  if (cursor !== undefined) q.after = decodeCursor(cursor);
  return q;
}

/** The page of registry `id`'s inventory that `q` asks for. */
export async function readPage(repo: InventoryRepository, id: string, q: PageQuery): Promise<InventoryPage> {
  for (let attempt = 0; ; attempt++) {
    const state = await repo.state(id);
    if (!state || state.generation === 0) return { state: null, items: [], next: null };
    try {
      return { state, ...(await pageOf(repo, state, q)) };
    } catch (e) {
      // A refresh replaced the generation while it was read: read the new one.
      if (!(e instanceof InventoryChanged) || attempt >= 2) throw e;
    }
  }
}

/** The last chunk whose first key is at or before `key` (0 when none is). */
function chunkOf(state: InventoryState, key: RowKey): number {
  let lo = 0;
  let hi = state.index.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(state.index[mid]!, key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return Math.max(0, lo - 1);
}

async function pageOf(repo: InventoryRepository, state: InventoryState, q: PageQuery): Promise<Omit<InventoryPage, 'state'>> {
  // Rows before `from` are not on this page; with a cursor, neither is `from` itself.
  const start: RowKey = q.repository !== undefined ? [q.repository, q.tag ?? ''] : ['', ''];
  const from = q.after && compareKeys(q.after, start) > 0 ? q.after : start;
  const inclusive = from !== q.after;
  const items: InventoryRow[] = [];
  let last: RowKey = from;
  for (let seq = chunkOf(state, from), read = 0; seq < state.chunks; seq++, read++) {
    if (read === MAX_CHUNKS_PER_PAGE) return { items, next: last };
    const rows = await repo.chunk(state, seq);
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      const key: RowKey = [row.repository, row.tag];
      const c = compareKeys(key, from);
      if (c < 0 || (c === 0 && !inclusive)) continue;
      if (q.repository !== undefined && row.repository !== q.repository) return { items, next: null };
      last = key;
      if (q.tag !== undefined && row.tag !== q.tag) continue;
      items.push(row);
      if (items.length === q.limit) return { items, next: i < rows.length - 1 || seq < state.chunks - 1 ? key : null };
    }
  }
  return { items, next: null };
}
