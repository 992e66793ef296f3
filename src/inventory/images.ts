/**
 * GET /images?name=REF (SPEC 19): where is my image? Answered from memory (the prefix index and the
 * inventories, memory-index.ts), never from the database:
 * - the registries that serve REF by image prefix or `mirror_of` (as /resolve finds them, uncapped), each
 *   looked up at the repository REF has there;
 * - when REF names no registry host (`team/app:1.4`), also every registry whose inventory holds that repository
 *   path as written (developers push `team/app` to registries of their own: the Docker Hub reading,
 *   `docker.io/team/app`, is only one of them).
 * A registry is listed when its inventory holds REF (the repository, and the tag or digest REF names), or when
 * it serves REF and nothing says it does not (`held: null`): an entry mirrored from a peer (its inventory
 * stays with that peer: ask the peer's /images), or one without an inventory here.
 */
import type { ImagesResult } from '../generated';
import type { InventoryRow } from '../probe/types';
import { isHostLike, presenceOf, type ImageReference, type PrefixIndex } from '../resolve';
import type { InventoryIndex } from './memory-index';
import type { InventorySnapshot } from './snapshot';

export const MAX_HOLDERS = 100;
export const MAX_TAGS = 100;

type Holder = ImagesResult['registries'][number];
type Tag = Holder['tags'][number];

const STATUS_RANK: Record<Holder['status'], number> = { healthy: 0, degraded: 1, unknown: 2, unhealthy: 3 };

/** The repository path REF names without a host, as written (`team/app` of `team/app:1.4`); null when it names a host. */
function writtenPath(input: string): string | null {
  const slash = input.indexOf('/');
  if (slash >= 0 && isHostLike(input.slice(0, slash))) return null;
  return input.split(/[:@]/)[0]!;
}

/** The rows of `repository` that REF asks for: its tag, the tags holding its digest, or all tags (at most MAX_TAGS). */
function tagsOf(inv: InventorySnapshot, repository: string, r: ImageReference): { tags: Tag[]; more: boolean } {
  if (r.tag !== undefined && r.digest === undefined) {
    const m = inv.tag(repository, r.tag);
    return { tags: m ? [{ repository, tag: r.tag, ...m }] : [], more: false };
  }
  const [start, end] = inv.repositoryRange(repository);
  const tags: InventoryRow[] = [];
  let more = false;
  for (let i = start; i < end; i++) {
    const row = inv.row(i);
    if (r.digest !== undefined && row.digest !== r.digest) continue;
    if (tags.length === MAX_TAGS) {
      more = true;
      break;
    }
    tags.push(row);
  }
  return { tags, more };
}

/** Does `inv` hold REF at `repository`? (Without a tag or digest: the repository itself.) */
function heldBy(inv: InventorySnapshot | undefined, repository: string, r: ImageReference): boolean | null {
  if (r.tag !== undefined || r.digest !== undefined) return presenceOf(inv, { repository, tag: r.tag, digest: r.digest }).present;
  if (!inv) return null;
  return inv.hasRepository(repository) ? true : inv.truncated ? null : false;
}

export function findImage(input: string, r: ImageReference, resolver: PrefixIndex, inventories: InventoryIndex): ImagesResult {
  const path = writtenPath(input) ?? r.path;
  const suffix = (r.tag !== undefined ? `:${r.tag}` : '') + (r.digest !== undefined ? `@${r.digest}` : '');
  const holders: Holder[] = [];
  const listed = new Set<string>();
  const consider = (base: Omit<Holder, 'held' | 'observed_at' | 'truncated' | 'tags'>, must: boolean): void => {
    const inv = inventories.inventoryOf(base.container_registry_id);
    const holds = heldBy(inv, base.repository, r);
    if (holds === false || (must && holds !== true)) return;
    const found = inv && holds === true ? tagsOf(inv, base.repository, r) : { tags: [], more: false };
    const holder: Holder = { ...base, held: holds, observed_at: inv?.observedAt ?? null, truncated: inv?.truncated ?? false, tags: found.tags };
    if (found.more) holder.tags_truncated = true;
    holders.push(holder);
    listed.add(`${base.container_registry_id}\0${base.repository}`);
  };
  for (const s of resolver.servers(r)) {
    const { container_registry_id, container_registry_name, status, origin, match, repository, pull_reference } = s;
    consider({ container_registry_id, container_registry_name, status, origin, match, repository, pull_reference }, false);
  }
  if (writtenPath(input) !== null) {
    for (const id of inventories.ids()) {
      const e = resolver.entry(id);
      if (!e || listed.has(`${id}\0${path}`) || !inventories.inventoryOf(id)!.hasRepository(path)) continue;
      const host = e.ownDomain || e.own;
      if (!host) continue;
      consider({ container_registry_id: id, container_registry_name: e.name, status: e.status, origin: e.origin, match: 'inventory', repository: path, pull_reference: `${host}/${path}${suffix}` }, true);
    }
  }
  holders.sort((a, b) => (a.held === b.held ? 0 : a.held === true ? -1 : 1) || STATUS_RANK[a.status] - STATUS_RANK[b.status] || (a.container_registry_name < b.container_registry_name ? -1 : a.container_registry_name > b.container_registry_name ? 1 : 0));
  const result: ImagesResult = { image: r.reference, repository: path, tag: r.tag ?? null, digest: r.digest ?? null, registries: holders.slice(0, MAX_HOLDERS) as ImagesResult['registries'] };
  if (holders.length > MAX_HOLDERS) result.truncated = true;
  return result;
}
