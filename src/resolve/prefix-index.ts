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
import { domainKey, parsePrefix, parseReference, PATH_MAX, type ImagePrefix, type ImageReference } from './reference';

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
  /** The lookup that last found this slot, and where its candidate is in that lookup's list (deduplication without a map). */
  seenBy: number;
  seenAt: number;
}

interface Filed {
  slot: Slot;
  /** The prefix this bucket stands for, as the entry declared it (normalised). */
  prefix: ImagePrefix;
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


export interface ResolveOptions {
  /** Entry tags to prefer among otherwise equal candidates, earlier first. */
  prefer?: readonly string[];
}

/** A match with its sort keys; turned into a Candidate once the order is known. */
interface Ranked {
  slot: Slot;
  match: Candidate['match'];
  pull: string;
  prefix: string;
  status: number;
  mirror: number;
  depth: number;
  prefer: number;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function better(a: Ranked, b: Ranked): number {
  return a.status - b.status || a.mirror - b.mirror || b.depth - a.depth || a.prefer - b.prefer || cmp(a.slot.name, b.slot.name) || cmp(a.slot.id, b.slot.id);
}

const NOT_PREFERRED = Number.MAX_SAFE_INTEGER;
/** tag → its rank in a `prefer` list (first occurrence wins), kept per list so a batch builds it once. */
const preferRanks = new WeakMap<readonly string[], Map<string, number>>();

function rankOfTags(prefer: readonly string[] | undefined): Map<string, number> | null {
  if (!prefer || prefer.length === 0) return null;
  let m = preferRanks.get(prefer);
  if (!m) {
    m = new Map();
    for (let i = 0; i < prefer.length; i++) if (!m.has(prefer[i]!)) m.set(prefer[i]!, i);
    preferRanks.set(prefer, m);
  }
  return m;
}

function preferRank(slot: Slot, ranks: Map<string, number> | null): number {
  let best = NOT_PREFERRED;
  if (ranks) for (const t of slot.tags) best = Math.min(best, ranks.get(t) ?? NOT_PREFERRED);
  return best;
}

export class PrefixIndex {
  private readonly buckets = new Map<string, Bucket>();
  private readonly slots = new Map<string, Slot>();
  /** Counts lookups, to tell which slots the current one has found already. */
  private lookups = 0;

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
      seenBy: 0,
      seenAt: 0,
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
    bucket[kind].set(slot.id, { slot, prefix });
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
    const suffix = (r.tag !== undefined ? `:${r.tag}` : '') + (r.digest !== undefined ? `@${r.digest}` : '');
    const ranks = rankOfTags(opts.prefer);
    const lookup = ++this.lookups;
    const found: Ranked[] = [];
    const consider = (x: Ranked) => {
      const s = x.slot;
      if (s.seenBy !== lookup) {
        s.seenBy = lookup;
        s.seenAt = found.length;
        found.push(x);
      } else if (better(x, found[s.seenAt]!) < 0) {
        found[s.seenAt] = x;
      }
    };
    // The reference's prefixes on component boundaries: the bare domain, then one more path component each step.
    const domain = domainKey(r.domain);
    const path = r.path;
    for (let depth = 0, end = -1; ; depth++) {
      // end: where the prefix of this depth stops in `path` (-1: the bare domain).
      const key = end < 0 ? domain : domain ? `${domain}/${path.slice(0, end)}` : path.slice(0, end);
      const bucket = this.buckets.get(key);
      if (bucket) {
        for (const f of bucket.own.values()) {
          consider({ slot: f.slot, match: 'prefix', pull: r.reference, prefix: f.prefix.name, status: STATUS_RANK[f.slot.status], mirror: 1, depth, prefer: preferRank(f.slot, ranks) });
        }
        const rest = end < 0 ? path : path.slice(end + 1);
        for (const f of bucket.mirror.values()) {
          const own = f.slot.own!;
          // The mirror's own prefix takes the place of the matched one (containers-registries.conf).
          const pulled = own.path && rest ? `${own.path}/${rest}` : own.path || rest;
          if (pulled === '' || pulled.length > PATH_MAX) continue; // no valid reference to pull
          consider({ slot: f.slot, match: 'mirror', pull: `${own.domain}/${pulled}${suffix}`, prefix: f.prefix.name, status: STATUS_RANK[f.slot.status], mirror: 0, depth, prefer: preferRank(f.slot, ranks) });
        }
      }
      if (end === path.length) break;
      const next = path.indexOf('/', end + 1);
      end = next < 0 ? path.length : next;
    }
    found.sort(better);
    const candidates: Candidate[] = found.map((x) => ({
      container_registry_id: x.slot.id,
      container_registry_name: x.slot.name,
      pull_reference: x.pull,
      match: x.match,
      prefix: x.prefix,
      status: x.slot.status,
      origin: x.slot.origin,
    }));
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
