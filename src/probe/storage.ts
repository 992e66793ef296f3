/**
 * Storage refresh (SPEC sections 7 and 11): page through /v2/_catalog (`n`, `Link`), list every repository's
 * tags (OCI pagination with `Link`; distribution 2.8 sends all tags unsorted in one page), read the manifests
 * (indexes followed) and add up manifests, configs and layers with each digest counted once across the whole
 * registry, foreign layers with `urls` left out. Bounded in repositories, tags, manifests and time; a bound hit
 * gives `truncated: true` with what was counted so far. A refused catalog gives `catalog_supported: false`.
 * Like the prober, the crawler never throws: a failure is a result with `error` and `detail`.
 */
import { createHash } from 'node:crypto';
import type { Config } from '../config';
import type { ContainerRegistryObserved } from '../generated';
import { createHttpClient, header, type HttpClient, type HttpResponse } from './client';
import { startDeadline } from './deadline';
import { classifyError, ProbeError } from './errors';
import { nextLink } from './link';
import { isDigest, MANIFEST_ACCEPT, parseManifest } from './manifests';
import { createSession, type RegistrySession } from './session';
import type { ProbeTarget, StorageCrawler } from './types';

export type ClosableStorageCrawler = StorageCrawler & { close(): Promise<void> };

export interface CrawlerOptions {
  client?: HttpClient;
  /** `n` asked of the catalog and of tag lists (the registry's maximum is 1000 by default). */
  pageSize?: number;
}

const CATALOG_SCOPE = 'registry:catalog:*';
const MAX_PAGE_SIZE = 1000;
const MAX_LIST_BYTES = 16 * 1024 * 1024;
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** An index inside an index is allowed; deeper nesting is not followed. */
const MAX_INDEX_DEPTH = 2;
const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^\w[\w.-]{0,127}$/;

interface Bounds {
  repositories: number;
  tags: number;
  manifests: number;
}

/** Everything one crawl has counted so far. */
class Crawl {
  readonly repositories: string[] = [];
  tagCount = 0;
  manifestsRead = 0;
  /** digest → size, for manifests, configs and layers alike: each digest counted once. */
  readonly sizes = new Map<string, number>();
  /** Manifests already read (their children need no second visit). */
  readonly manifests = new Set<string>();
  truncated = false;
  /** A bound was hit: no new work is started. */
  stopped = false;
  unreadable = 0;

  constructor(readonly bounds: Bounds) {}

  hitBound(): void {
    this.truncated = true;
    this.stopped = true;
  }

  usedBytes(): number {
    let total = 0;
    for (const size of this.sizes.values()) total += size;
    return total;
  }
}

export function createStorageCrawler(config: Config, options: CrawlerOptions = {}): ClosableStorageCrawler {
  const client = options.client ?? createHttpClient(config);
  const pageSize = Math.min(Math.max(options.pageSize ?? MAX_PAGE_SIZE, 1), MAX_PAGE_SIZE);
  const bounds: Bounds = { repositories: config.STORAGE_MAX_REPOSITORIES, tags: config.STORAGE_MAX_TAGS, manifests: config.STORAGE_MAX_MANIFESTS };

  const crawler = async (target: ProbeTarget, signal?: AbortSignal): Promise<ContainerRegistryObserved> => {
    const started = performance.now();
    const deadline = startDeadline(config.STORAGE_TIMEOUT_MS, signal);
    const crawl = new Crawl(bounds);
    const finish = (observed: ContainerRegistryObserved): ContainerRegistryObserved => ({
      ...observed,
      refreshed_at: new Date().toISOString(),
      duration_ms: Math.round(performance.now() - started),
    });
    try {
      const session = createSession(client, target, deadline.signal);
      if (!(await listRepositories(session, crawl, pageSize))) return finish({ catalog_supported: false, error: null, detail: 'the registry refuses /v2/_catalog' });
      await forEachLimit(crawl.repositories, config.STORAGE_CONCURRENCY, (repo) => crawlRepository(session, crawl, repo, pageSize));
      return finish(counted(crawl));
    } catch (err) {
      if (deadline.timedOut() && crawl.repositories.length > 0) {
        crawl.truncated = true;
        return finish({ ...counted(crawl), detail: `time limit of ${config.STORAGE_TIMEOUT_MS} ms reached` });
      }
      const { code, detail } = classifyError(err, deadline);
      return finish({ error: code, detail });
    } finally {
      deadline.dispose();
    }
  };
  return Object.assign(crawler, { close: () => client.close() });
}

function counted(crawl: Crawl): ContainerRegistryObserved {
  return {
    catalog_supported: true,
    repository_count: crawl.repositories.length,
    tag_count: crawl.tagCount,
    used_bytes: crawl.usedBytes(),
    truncated: crawl.truncated,
    error: null,
    detail: crawl.unreadable > 0 ? `${crawl.unreadable} tag lists or manifests could not be read` : null,
  };
}

/** Pages through the catalog into crawl.repositories; false when the registry refuses the catalog. */
async function listRepositories(session: RegistrySession, crawl: Crawl, pageSize: number): Promise<boolean> {
  let next: URL | null = new URL(`_catalog?n=${pageSize}`, session.base);
  const seen = new Set<string>();
  let first = true;
  while (next) {
    const res = await session.get(next, CATALOG_SCOPE, 'application/json', MAX_LIST_BYTES);
    if (first && (res.status === 401 || res.status === 403 || res.status === 404)) return false;
    first = false;
    const names = listField(expectOk(res, 'catalog'), 'repositories');
    let added = 0;
    for (const name of names) {
      if (seen.has(name) || !REPOSITORY.test(name)) continue;
      if (crawl.repositories.length >= crawl.bounds.repositories) {
        crawl.truncated = true; // the repositories listed so far are still crawled
        return true;
      }
      seen.add(name);
      crawl.repositories.push(name);
      added++;
    }
    next = nextLink(res.headers.link, session.base, res.url);
    // A full page without a Link: ask for the page after the last name (stops once a page adds nothing).
    if (!next && names.length >= pageSize && added > 0) {
      next = new URL(`_catalog?n=${pageSize}&last=${encodeURIComponent(names[names.length - 1]!)}`, session.base);
    }
  }
  return true;
}

async function crawlRepository(session: RegistrySession, crawl: Crawl, repo: string, pageSize: number): Promise<void> {
  if (crawl.stopped) return;
  const scope = `repository:${repo}:pull`;
  const tags = await listTags(session, crawl, repo, scope, pageSize);
  const room = crawl.bounds.tags - crawl.tagCount;
  if (tags.length > room) {
    tags.length = Math.max(room, 0);
    crawl.hitBound();
  }
  crawl.tagCount += tags.length;
  for (const tag of tags) {
    if (crawl.stopped && crawl.manifestsRead >= crawl.bounds.manifests) return;
    await readManifest(session, crawl, repo, scope, tag, 0);
  }
}

async function listTags(session: RegistrySession, crawl: Crawl, repo: string, scope: string, pageSize: number): Promise<string[]> {
  const tags = new Set<string>();
  let next: URL | null = new URL(`${repo}/tags/list?n=${pageSize}`, session.base);
  while (next) {
    const res = await session.get(next, scope, 'application/json', MAX_LIST_BYTES);
    if (res.status === 404) break; // a repository whose tags are all gone
    if (res.status !== 200 && res.status !== 429) {
      crawl.unreadable++;
      break;
    }
    const before = tags.size;
    for (const tag of listField(expectOk(res, `tags of ${repo}`), 'tags')) if (TAG.test(tag)) tags.add(tag);
    next = tags.size > before ? nextLink(res.headers.link, session.base, res.url) : null;
  }
  return [...tags];
}

async function readManifest(session: RegistrySession, crawl: Crawl, repo: string, scope: string, reference: string, depth: number): Promise<void> {
  if (crawl.manifestsRead >= crawl.bounds.manifests) return crawl.hitBound();
  crawl.manifestsRead++;
  const res = await session.get(`${repo}/manifests/${reference}`, scope, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES);
  if (res.status === 429) expectOk(res, `manifest ${repo}:${reference}`);
  if (res.status !== 200 || res.bodyTruncated) {
    if (res.status !== 404) crawl.unreadable++; // 404: deleted since the tag list was read
    return;
  }
  const stated = header(res.headers, 'docker-content-digest');
  const digest = stated && isDigest(stated) ? stated : `sha256:${createHash('sha256').update(res.body).digest('hex')}`;
  if (crawl.manifests.has(digest)) return;
  crawl.manifests.add(digest);
  crawl.sizes.set(digest, res.body.length);
  const manifest = parseManifest(res.body);
  if (!manifest) {
    crawl.unreadable++;
    return;
  }
  for (const blob of manifest.blobs) if (!crawl.sizes.has(blob.digest)) crawl.sizes.set(blob.digest, blob.size);
  if (depth >= MAX_INDEX_DEPTH) return;
  for (const child of manifest.children) {
    if (crawl.manifests.has(child.digest)) continue;
    await readManifest(session, crawl, repo, scope, child.digest, depth + 1);
  }
}

function expectOk(res: HttpResponse, what: string): HttpResponse {
  if (res.status === 429) throw new ProbeError('rate_limited', `${what}: 429 Too Many Requests`);
  if (res.status !== 200) throw new ProbeError('http_error', `${what}: HTTP ${res.status}`);
  if (res.bodyTruncated) throw new ProbeError('probe_error', `${what}: answer larger than ${MAX_LIST_BYTES} bytes`);
  return res;
}

/** `{"repositories": [...]}` / `{"tags": [...]}`; null or missing counts as empty. */
function listField(res: HttpResponse, field: 'repositories' | 'tags'): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(res.body.toString('utf8'));
  } catch {
    throw new ProbeError('not_a_registry', `${res.url.pathname} did not answer JSON`);
  }
  const list = (doc as Record<string, unknown> | null)?.[field];
  if (list === null || list === undefined) return [];
  if (!Array.isArray(list)) throw new ProbeError('not_a_registry', `${res.url.pathname}: "${field}" is not a list`);
  return list.filter((v): v is string => typeof v === 'string');
}

/** Runs `fn` over `items` with at most `limit` at once; waits for all, then rethrows the first failure. */
async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown = null;
  const worker = async (): Promise<void> => {
    while (next < items.length && failure === null) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw failure;
}
