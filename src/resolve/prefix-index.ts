/**
 * The prefix index behind GET/POST /resolve (SPEC section 14): which entries serve an image reference.
 *
 * Entries are filed under the normalised prefixes they answer for: their own image prefix (match `prefix`)
 * and each `container_registry_config.mirror_of` (match `mirror`). A lookup walks the reference's own
 * prefixes on path-component boundaries (`host`, `host/a`, `host/a/b`...) and reads one map slot per step,
 * so its cost depends on the reference's depth and on how many entries match, never on the catalog's size.
 * `host/team` therefore matches `host/team/app` and never `host/teamx/app`.
 *
 * Kept current incrementally: `reset` with the whole catalog, then `apply` each change (upsert or delete),
 * as the change feed delivers them. Pure and in memory: no database, no HTTP.
 */
import type { ResolveResult } from '../generated';
import { domainKey, parsePrefix, parseReference, type ImagePrefix, type ImageReference } from './reference';

export type Candidate = ResolveResult['candidates'][number];
export type HealthStatus = Candidate['status'];

/** The fields of an entry's API representation (registries/model.ts toApi) that resolution reads. */
export interface ApiEntry {
  container_registry_id: string;
  container_registry_name: string;
  container_registry_image_prefix?: string;
  container_registry_config?: { mirror_of?: readonly string[] } & Record<string, unknown>;
  container_registry_health?: { status?: string } & Record<string, unknown>;
  container_registry_tags?: readonly string[];
  container_registry_origin?: ({ peer?: string } & Record<string, unknown>) | null;
}

export type IndexChange = { type: 'upsert'; entry: ApiEntry } | { type: 'delete'; container_registry_id: string };

const STATUS_RANK: Record<HealthStatus, number> = { healthy: 0, degraded: 1, unknown: 2, unhealthy: 3 };

function statusOf(entry: ApiEntry): HealthStatus {
  const s = entry.container_registry_health?.status;
  return s !== undefined && s in STATUS_RANK ? (s as HealthStatus) : 'unknown';
}

/** An entry as the index keeps it: only what matching and ordering need. */
interface Slot {
  id: string;
  name: string;
  status: HealthStatus;
  tags: readonly string[];
  origin: string | null;
  /** The entry's own image prefix, when it is a valid prefix (else the entry can neither match nor mirror). */
  own: ImagePrefix | null;
  /** Keys of the buckets this slot is filed in (for removal). */
  keys: string[];
}

interface Filed {
  slot: Slot;
  /** The prefix this bucket stands for, as the entry declared it (normalised). */
  prefix: ImagePrefix;
  /** Path components of `prefix`. */
  depth: number;
}

interface Bucket {
  /** Entries whose own image prefix is this key, by id. */
  own: Map<string, Filed>;
  /** Entries that mirror this key, by id. */
  mirror: Map<string, Filed>;
}

/** The key of a prefix: case-insensitive, canonical host; path as is. */
function keyOf(p: { domain: string; path: string }): string {
  const d = domainKey(p.domain);
  return p.path ? `${d}/${p.path}` : d;
}

const depthOf = (path: string) => (path === '' ? 0 : path.split('/').length);

export interface ResolveOptions {
  /** Entry tags to prefer among otherwise equal candidates, earlier first. */
  prefer?: readonly string[];
}

/** A candidate with its sort keys. */
interface Ranked {
  candidate: Candidate;
  status: number;
  mirror: number;
  depth: number;
  prefer: number;
}

function better(a: Ranked, b: Ranked): number {
  return (
    a.status - b.status ||
    a.mirror - b.mirror ||
    b.depth - a.depth ||
    a.prefer - b.prefer ||
    (a.candidate.container_registry_name < b.candidate.container_registry_name ? -1 : a.candidate.container_registry_name > b.candidate.container_registry_name ? 1 : 0) ||
    (a.candidate.container_registry_id < b.candidate.container_registry_id ? -1 : a.candidate.container_registry_id > b.candidate.container_registry_id ? 1 : 0)
  );
}

export class PrefixIndex {
  private readonly buckets = new Map<string, Bucket>();
  private readonly slots = new Map<string, Slot>();

  /** Number of entries indexed. */
  get size(): number {
    return this.slots.size;
  }

  /** Replaces the whole content with these entries (a fresh list of the catalog). */
  reset(entries: Iterable<ApiEntry>): void {
    this.buckets.clear();
    this.slots.clear();
    for (const e of entries) this.upsert(e);
  }

  /** Applies one change of the catalog. Deleting an unknown id is a no-op. */
  apply(change: IndexChange): void {
    if (change.type === 'upsert') this.upsert(change.entry);
    else this.remove(change.container_registry_id);
  }

  private upsert(entry: ApiEntry): void {
    const id = entry.container_registry_id;
    this.remove(id);
    const slot: Slot = {
      id,
      name: entry.container_registry_name,
      status: statusOf(entry),
      tags: entry.container_registry_tags ?? [],
      origin: entry.container_registry_origin?.peer ?? null,
      own: tryPrefix(entry.container_registry_image_prefix),
      keys: [],
    };
    this.slots.set(id, slot);
    if (slot.own) this.file(slot, slot.own, 'own');
    const mirrors = entry.container_registry_config?.mirror_of;
    // Mirroring needs the entry's own prefix: it is what the mirrored prefix is rewritten to.
    if (slot.own && Array.isArray(mirrors)) {
      for (const m of mirrors) {
        const p = tryPrefix(m);
        if (p) this.file(slot, p, 'mirror');
      }
    }
  }

  private file(slot: Slot, prefix: ImagePrefix, kind: keyof Bucket): void {
    const key = keyOf(prefix);
    let bucket = this.buckets.get(key);
    if (!bucket) this.buckets.set(key, (bucket = { own: new Map(), mirror: new Map() }));
    if (bucket[kind].has(slot.id)) return;
    bucket[kind].set(slot.id, { slot, prefix, depth: depthOf(prefix.path) });
    slot.keys.push(key);
  }

  private remove(id: string): void {
    const slot = this.slots.get(id);
    if (!slot) return;
    this.slots.delete(id);
    for (const key of slot.keys) {
      const bucket = this.buckets.get(key);
      if (!bucket) continue;
      bucket.own.delete(id);
      bucket.mirror.delete(id);
      if (bucket.own.size === 0 && bucket.mirror.size === 0) this.buckets.delete(key);
    }
  }

  /**
   * The registries that serve `ref` (a reference string, normalised here, or an already parsed one), best
   * first. Throws InvalidReferenceError for an invalid reference string. An entry appears once, by its best
   * match. No candidates: nothing serves the image.
   */
  resolve(ref: string | ImageReference, opts: ResolveOptions = {}): ResolveResult {
    const r = typeof ref === 'string' ? parseReference(ref) : ref;
    const components = r.path.split('/');
    const suffix = (r.tag !== undefined ? `:${r.tag}` : '') + (r.digest !== undefined ? `@${r.digest}` : '');
    const preferRank = rankOfTags(opts.prefer);
    const best = new Map<string, Ranked>();
    const consider = (ranked: Ranked) => {
      const id = ranked.candidate.container_registry_id;
      const seen = best.get(id);
      if (!seen || better(ranked, seen) < 0) best.set(id, ranked);
    };
    // The reference's prefixes on component boundaries: the bare domain, then one more component each step.
    let key = domainKey(r.domain);
    for (let depth = 0; depth <= components.length; depth++) {
      if (depth > 0) key = depth === 1 && r.domain === '' ? components[0]! : `${key}/${components[depth - 1]}`;
      const bucket = this.buckets.get(key);
      if (!bucket) continue;
      for (const f of bucket.own.values()) {
        consider(ranked(f, 'prefix', r.reference, f.prefix.name, preferRank));
      }
      if (bucket.mirror.size === 0) continue;
      const rest = components.slice(depth).join('/');
      for (const f of bucket.mirror.values()) {
        const own = f.slot.own!;
        // The mirror's own prefix takes the place of the matched one (containers-registries.conf).
        const path = own.path && rest ? `${own.path}/${rest}` : own.path || rest;
        if (path === '' || path.length > 255) continue; // no valid reference to pull
        consider(ranked(f, 'mirror', `${own.domain}/${path}${suffix}`, f.prefix.name, preferRank));
      }
    }
    const candidates = [...best.values()].sort(better).map((x) => x.candidate);
    return { image: r.reference, candidates };
  }
}

function tryPrefix(s: unknown): ImagePrefix | null {
  if (typeof s !== 'string') return null;
  try {
    return parsePrefix(s);
  } catch {
    return null;
  }
}

/** tag → its rank in the `prefer` list (first occurrence wins). */
function rankOfTags(prefer: readonly string[] | undefined): Map<string, number> | null {
  if (!prefer || prefer.length === 0) return null;
  const m = new Map<string, number>();
  prefer.forEach((t, i) => {
    if (!m.has(t)) m.set(t, i);
  });
  return m;
}

function ranked(f: Filed, match: Candidate['match'], pull: string, prefix: string, preferRank: Map<string, number> | null): Ranked {
  const s = f.slot;
  let prefer = Number.MAX_SAFE_INTEGER;
  if (preferRank) for (const t of s.tags) prefer = Math.min(prefer, preferRank.get(t) ?? Number.MAX_SAFE_INTEGER);
  return {
    candidate: { container_registry_id: s.id, container_registry_name: s.name, pull_reference: pull, match, prefix, status: s.status, origin: s.origin },
    status: STATUS_RANK[s.status],
    mirror: match === 'mirror' ? 0 : 1,
    depth: f.depth,
    prefer,
  };
}
