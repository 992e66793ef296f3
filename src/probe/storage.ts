/**
 * Storage refresh (SPEC sections 7 and 11): page through /v2/_catalog (`n`, `Link`), list every repository's
 * tags (OCI pagination with `Link`; distribution 2.8 sends all tags unsorted in one page), read the manifests
 * (indexes followed) and add up manifests, configs and layers with each digest counted once across the whole
 * registry, foreign layers with `urls` left out. Bounded in repositories, tags, manifests, distinct blobs and time,
 * each bound applied as the pages and manifests arrive (never after collecting); a bound hit gives
 * `truncated: true` with what was counted so far. Digests are kept in a DigestSet (about 40 bytes each, outside
 * the heap), all crawls of the process drawing on one memory budget (STORAGE_DIGEST_MEMORY_MB): a crawl that
 * finds it spent stops there, truncated. A list whose next page brings nothing new, or whose `Link` repeats a page already read, ends.
 * A refused catalog gives `catalog_supported: false`.
 * With an InventorySink (SPEC 19), every tag listed is also handed over with its manifest's digest, media type
 * and (an index) platforms, in (repository, tag) order (ordered-rows.ts): repositories and tags are crawled
 * sorted. A tag whose manifest was not read (a bound hit first, or the registry refused it) has digest null; a
 * tag whose manifest is gone (404) is left out.
 * Like the prober, the crawler never throws: a failure is a result with `error` and `detail`.
 */
import { webcrypto } from 'node:crypto';
import type { Config } from '../config';
import type { ContainerRegistryObserved } from '../generated';
import { createHttpClient, header, type HttpClient, type HttpResponse } from './client';
import { startDeadline } from './deadline';
import { DigestMemoryExhausted, DigestSet, MemoryBudget } from './digest-set';
import { classifyError, ProbeError } from './errors';
import { nextLink } from './link';
import { isDigest, MANIFEST_ACCEPT, mayBeIndex, mediaTypeOf, parseManifest, platformsOf } from './manifests';
import { OrderedRows } from './ordered-rows';
import { createSession, type RegistrySession } from './session';
import type { InventoryRow, InventorySink, ProbeTarget, StorageCrawler } from './types';

export type ClosableStorageCrawler = StorageCrawler & { close(): Promise<void>; digestMemory: MemoryBudget };

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
/** Rows handed to an inventory sink at once, and most rows of later repositories held back (ordered-rows.ts). */
const SINK_BATCH = 1000;
const SINK_MAX_HELD = 20_000;
/** Descriptors or list entries handled between two turns of the event loop. */
const YIELD_EVERY = 2000;
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Bounds {
  repositories: number;
  tags: number;
  manifests: number;
  blobs: number;
}

/** Everything one crawl has counted so far. */
class Crawl {
  readonly repositories: string[] = [];
  /** Tags listed so far, every repository together (taken page by page, never above bounds.tags). */
  tagCount = 0;
  manifestsRead = 0;
  /** Manifests, configs and layers counted (each digest once) and the sum of their sizes. */
  readonly counted: DigestSet;
  usedBytes = 0;
  /** Manifests already read (their children need no second visit). */
  readonly manifests: DigestSet;
  truncated = false;
  /** Set when the process-wide digest memory stopped the crawl. */
  memoryShort?: string;
  /** A bound was hit: no further list pages are read. */
  stopped = false;
  /** The manifest or blob bound was hit: no further manifests are read either. */
  full = false;
  unreadable = 0;

  constructor(
    readonly bounds: Bounds,
    memory: MemoryBudget,
    /** The inventory's rows on their way to the sink, if the caller gave one. */
    readonly rows?: OrderedRows,
  ) {
    this.counted = new DigestSet(memory);
    this.manifests = new DigestSet(memory);
  }

  /** Gives the digest memory back (the crawl is over). */
  release(): void {
    this.counted.release();
    this.manifests.release();
  }

  /** Adds `digest` to `set`; false when it was there, or when digest memory ran out (the crawl stops). */
  private add(set: DigestSet, digest: string): boolean {
    try {
      return set.add(digest);
    } catch (e) {
      if (!(e instanceof DigestMemoryExhausted)) throw e;
      this.memoryShort = e.message;
      this.hitCountBound();
      return false;
    }
  }

  /** True the first time manifest `digest` is met. */
  firstVisit(digest: string): boolean {
    return this.add(this.manifests, digest);
  }

  hitBound(): void {
    this.truncated = true;
    this.stopped = true;
  }

  hitCountBound(): void {
    this.hitBound();
    this.full = true;
  }

  /** Counts `digest` once; false when the blob bound stops the crawl. */
  count(digest: string, size: number): boolean {
    if (this.counted.size >= this.bounds.blobs && !this.counted.has(digest)) {
      this.hitCountBound();
      return false;
    }
    if (this.add(this.counted, digest)) this.usedBytes += size;
    return !this.full;
  }
}

export function createStorageCrawler(config: Config, options: CrawlerOptions = {}): ClosableStorageCrawler {
  const client = options.client ?? createHttpClient(config);
  const pageSize = Math.min(Math.max(options.pageSize ?? MAX_PAGE_SIZE, 1), MAX_PAGE_SIZE);
  const bounds: Bounds = {
    repositories: config.STORAGE_MAX_REPOSITORIES,
    tags: config.STORAGE_MAX_TAGS,
    manifests: config.STORAGE_MAX_MANIFESTS,
    blobs: config.STORAGE_MAX_BLOBS,
  };
  const memory = new MemoryBudget(config.STORAGE_DIGEST_MEMORY_MB * 1024 * 1024);

  const crawler = async (target: ProbeTarget, signal?: AbortSignal, sink?: InventorySink): Promise<ContainerRegistryObserved> => {
    const started = performance.now();
    const deadline = startDeadline(config.STORAGE_TIMEOUT_MS, signal);
    const crawl = new Crawl(bounds, memory, sink && new OrderedRows(sink, SINK_BATCH, SINK_MAX_HELD));
    const finish = (observed: ContainerRegistryObserved): ContainerRegistryObserved => ({
      ...observed,
      refreshed_at: new Date().toISOString(),
      duration_ms: Math.round(performance.now() - started),
    });
    try {
      const session = createSession(client, target, deadline.signal);
      if (!(await listRepositories(session, crawl, pageSize))) return finish({ catalog_supported: false, error: null, detail: 'the registry refuses /v2/_catalog' });
      crawl.repositories.sort();
      await forEachLimit(crawl.repositories, config.STORAGE_CONCURRENCY, (repo, i) => crawlRepository(session, crawl, repo, i, pageSize));
      await crawl.rows?.finish();
      return finish(counted(crawl));
    } catch (err) {
      if (deadline.timedOut() && crawl.repositories.length > 0) {
        crawl.truncated = true;
        await crawl.rows?.finish();
        return finish({ ...counted(crawl), detail: `time limit of ${config.STORAGE_TIMEOUT_MS} ms reached` });
      }
      const { code, detail } = classifyError(err, deadline);
      return finish({ error: code, detail });
    } finally {
      deadline.dispose();
      crawl.release();
    }
  };
  return Object.assign(crawler, { close: () => client.close(), digestMemory: memory });
}

function counted(crawl: Crawl): ContainerRegistryObserved {
  return {
    catalog_supported: true,
    repository_count: crawl.repositories.length,
    tag_count: crawl.tagCount,
    used_bytes: crawl.usedBytes,
    truncated: crawl.truncated,
    error: null,
    detail: crawl.memoryShort ?? (crawl.unreadable > 0 ? `${crawl.unreadable} tag lists or manifests could not be read` : null),
  };
}

/** Pages through the catalog into crawl.repositories; false when the registry refuses the catalog. */
async function listRepositories(session: RegistrySession, crawl: Crawl, pageSize: number): Promise<boolean> {
  let next: URL | null = new URL(`_catalog?n=${pageSize}`, session.base);
  const seen = new Set<string>();
  const pages = new Set<string>();
  let first = true;
  while (next) {
    pages.add(next.href);
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
    // A page that adds nothing ends the list, whatever its Link says (a Link back to itself, a repeated cursor).
    if (added === 0) break;
    next = nextLink(res.headers.link, session.base, res.url);
    // A full page without a Link: ask for the page after the last name.
    if (!next && names.length >= pageSize) {
      next = new URL(`_catalog?n=${pageSize}&last=${encodeURIComponent(names[names.length - 1]!)}`, session.base);
    }
    if (next && pages.has(next.href)) next = null;
  }
  return true;
}

/** Repository `repo` (number `index` in the sorted list): its tags in order, each with what its manifest says. */
async function crawlRepository(session: RegistrySession, crawl: Crawl, repo: string, index: number, pageSize: number): Promise<void> {
  try {
    if (crawl.stopped) return;
    const scope = `repository:${repo}:pull`;
    const tags = (await listTags(session, crawl, repo, scope, pageSize)).sort();
    for (const tag of tags) {
      // Without a sink, a crawl whose count bounds are hit has nothing left to do.
      if (crawl.full && !crawl.rows) return;
      const seen = crawl.full ? null : await readManifest(session, crawl, repo, scope, tag, 0);
      if (seen !== GONE) await crawl.rows?.add(index, { repository: repo, tag, digest: seen?.digest ?? null, media_type: seen?.media_type ?? null, platforms: seen?.platforms ?? null });
    }
  } finally {
    await crawl.rows?.done(index);
  }
}

/** What a tag's manifest says (InventoryRow's fields), GONE when the registry no longer has it, null when unread. */
type Seen = Pick<InventoryRow, 'digest' | 'media_type' | 'platforms'> | typeof GONE | null;
const GONE = 'gone';

/**
 * The repository's tags, page by page: each page's new tags are taken against the registry-wide tag bound as
 * the page arrives (crawl.tagCount counts them at once, so repositories listed side by side share the bound).
 */
async function listTags(session: RegistrySession, crawl: Crawl, repo: string, scope: string, pageSize: number): Promise<string[]> {
  const tags = new Set<string>();
  const pages = new Set<string>();
  let next: URL | null = new URL(`${repo}/tags/list?n=${pageSize}`, session.base);
  while (next && !crawl.stopped) {
    pages.add(next.href);
    const res = await session.get(next, scope, 'application/json', MAX_LIST_BYTES);
    if (res.status === 404) break; // a repository whose tags are all gone
    if (res.status !== 200 && res.status !== 429) {
      crawl.unreadable++;
      break;
    }
    if (res.bodyTruncated) {
      crawl.hitBound(); // a page above MAX_LIST_BYTES: what came before it is kept
      break;
    }
    const before = tags.size;
    for (const tag of listField(expectOk(res, `tags of ${repo}`), 'tags')) {
      if (!TAG.test(tag) || tags.has(tag)) continue;
      if (crawl.tagCount >= crawl.bounds.tags) {
        crawl.hitBound();
        break;
      }
      tags.add(tag);
      crawl.tagCount++;
    }
    next = tags.size > before ? nextLink(res.headers.link, session.base, res.url) : null;
    if (next && pages.has(next.href)) next = null;
  }
  return [...tags];
}

/**
 * Reads manifest `reference` of `repo`, counts it and (first visit) its blobs and children. A manifest seen
 * before (another tag, another repository) is not counted again, and parsed again only when it may be an
 * index (its platforms are the tag's).
 */
async function readManifest(session: RegistrySession, crawl: Crawl, repo: string, scope: string, reference: string, depth: number): Promise<Seen> {
  if (crawl.full) return null;
  if (crawl.manifestsRead >= crawl.bounds.manifests) {
    crawl.hitCountBound();
    return null;
  }
  crawl.manifestsRead++;
  const res = await session.get(`${repo}/manifests/${reference}`, scope, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES);
  if (res.status === 429) expectOk(res, `manifest ${repo}:${reference}`);
  if (res.status === 404) return GONE; // deleted since the tag list was read
  if (res.status !== 200 || res.bodyTruncated) {
    crawl.unreadable++;
    return null;
  }
  const stated = header(res.headers, 'docker-content-digest');
  // Hashed off the event loop (a 4 MiB manifest is milliseconds of SHA-256).
  const digest = stated && isDigest(stated) ? stated : `sha256:${Buffer.from(await webcrypto.subtle.digest('SHA-256', res.body)).toString('hex')}`;
  const sent = header(res.headers, 'content-type');
  const first = crawl.firstVisit(digest);
  const manifest = first || mayBeIndex(sent) ? parseManifest(res.body) : null;
  const seen = { digest, media_type: mediaTypeOf(sent, manifest?.mediaType ?? null), platforms: manifest?.isIndex ? platformsOf(manifest.children) : null };
  if (!first || !crawl.count(digest, res.body.length)) return seen;
  if (!manifest) {
    crawl.unreadable++;
    return seen;
  }
  let n = 0;
  for (const blob of manifest.blobs) {
    if (!crawl.count(blob.digest, blob.size)) return seen;
    // A manifest of 40,000 layers is tens of milliseconds of work: let requests in between.
    if (++n % YIELD_EVERY === 0) await yieldToEventLoop();
  }
  if (depth >= MAX_INDEX_DEPTH) return seen;
  for (const child of manifest.children) {
    if (crawl.full) return seen;
    if (crawl.manifests.has(child.digest)) continue;
    await readManifest(session, crawl, repo, scope, child.digest, depth + 1);
  }
  return seen;
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
async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown = null;
  const worker = async (): Promise<void> => {
    while (next < items.length && failure === null) {
      const index = next++;
      try {
        await fn(items[index]!, index);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw failure;
}
