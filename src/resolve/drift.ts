/**
 * Mirror drift (SPEC 19): a mirror and the registry it mirrors hold the same tag with different digests, so
 * a pull through the mirror gets other bytes than one from the origin. Derived here, where the inventories
 * (presence.ts) meet the mirror relation (prefix-index.ts), from what is already in memory. Pure.
 *
 * - In one /resolve answer (`markDrift`): the origin is the prefix match with the longest prefix that holds
 *   the reference; every mirror candidate holding it with another digest carries `drift`, and so does the
 *   origin (with the best-placed such mirror's digest).
 * - Over a mirror's whole inventory (`mirrorDrift`, for its entry's summary, webhooks and metrics): each of
 *   its tags is compared with the same tag of the registry owning the name it mirrors.
 */
import type { ResolveResult } from '../generated';
import type { InventoryView } from './presence';
import { parsePrefix, type ImagePrefix } from './reference';

/** A candidate of a /resolve answer (the schema's type; prefix-index.ts names it the same). */
type Candidate = ResolveResult['candidates'][number];

/** The later of two ISO times (either may be missing). */
function later(a: string | null | undefined, b: string | null | undefined): string | null {
  if (!a) return b ?? null;
  if (!b) return a;
  return Date.parse(a) >= Date.parse(b) ? a : b;
}

const holds = (c: Candidate): c is Candidate & { digest: string } => c.present === true && typeof c.digest === 'string';

/** Adds `drift` to the candidates of one answer (in place). */
export function markDrift(candidates: Candidate[]): void {
  let origin: (Candidate & { digest: string }) | undefined;
  for (const c of candidates) {
    if (c.match === 'prefix' && holds(c) && (!origin || c.prefix.length > origin.prefix.length)) origin = c;
  }
  if (!origin) return;
  for (const c of candidates) {
    if (c.match !== 'mirror' || !holds(c) || c.digest === origin.digest) continue;
    const drift = { origin_digest: origin.digest, mirror_digest: c.digest, observed_at: later(origin.observed_at, c.observed_at) };
    c.drift = drift;
    origin.drift ??= { ...drift };
  }
}

/** One drifting tag of a mirror. */
export interface DriftItem {
  repository: string;
  tag: string;
  origin_registry_id: string;
  origin_digest: string;
  mirror_digest: string;
}

/** What mirrorDrift needs of the prefix index. */
export interface MirrorRelation {
  entry(id: string): { ownPath: string; mirrors: readonly string[] | null } | undefined;
  ownerOf(prefix: ImagePrefix): { container_registry_id: string } | undefined;
}

/**
 * Every tag of mirror `id` whose digest differs from the same tag on the registry owning the mirrored name,
 * in (repository, tag) order; null when the mirror or its inventory is unknown. `observedAt` of the result is
 * the latest of the inventories compared.
 */
export function mirrorDrift(relation: MirrorRelation, inventories: InventoryView, id: string): { items: DriftItem[]; observedAt: string | null } | null {
  const mirror = relation.entry(id);
  const own = inventories.inventoryOf(id);
  if (!mirror?.mirrors || !own) return null;
  const items: DriftItem[] = [];
  let observedAt: string | null = own.observedAt;
  // The owner of each mirrored name, looked up once per repository of the mirror.
  let lastRepository: string | null = null;
  let owners: Array<{ id: string; repository: string }> = [];
  own.forEachRow((repository, tag, digest) => {
    if (repository !== lastRepository) {
      lastRepository = repository;
      owners = ownersOf(relation, mirror, repository, id);
    }
    if (digest === null) return;
    for (const o of owners) {
      const inventory = inventories.inventoryOf(o.id);
      const theirs = inventory?.tag(o.repository, tag)?.digest;
      if (!theirs || theirs === digest) continue;
      observedAt = later(observedAt, inventory!.observedAt);
      items.push({ repository, tag, origin_registry_id: o.id, origin_digest: theirs, mirror_digest: digest });
    }
  });
  return { items, observedAt };
}

/** The registries owning the names `repository` of a mirror stands for, with the repository each has there. */
function ownersOf(relation: MirrorRelation, mirror: { ownPath: string; mirrors: readonly string[] | null }, repository: string, self: string): Array<{ id: string; repository: string }> {
  let rest = repository;
  if (mirror.ownPath) {
    if (!repository.startsWith(`${mirror.ownPath}/`)) return [];
    rest = repository.slice(mirror.ownPath.length + 1);
  }
  const out: Array<{ id: string; repository: string }> = [];
  for (const mirrored of mirror.mirrors ?? []) {
    let upstream: ImagePrefix;
    try {
      upstream = parsePrefix(`${mirrored}/${rest}`);
    } catch {
      continue;
    }
    const owner = relation.ownerOf(upstream);
    if (owner && owner.container_registry_id !== self) out.push({ id: owner.container_registry_id, repository: upstream.path });
  }
  return out;
}
