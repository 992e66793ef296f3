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
 *
 * With an inventory (SPEC 19, presence.ts) every match also says whether that registry holds the reference:
 * within each health class, candidates known to hold it come first, then unknown ones, then known absent
 * ones; `require: 'present'` keeps only the first; a mirror and its origin holding different digests both
 * carry `drift` (drift.ts).
 *
 * The pull configuration of nodes (src/nodes) reads the same index and order: `mirrorsOf` a prefix (its
 * mirrors as `resolve` ranks them, with the prefix its names have on each), `ownerOf` (the upstream's own
 * entry) and `mirroredPrefixes`.
 */
import type { ResolveResult } from '../generated';
import { markDrift } from './drift';
import { presenceOf, presenceRank, UNKNOWN, type InventoryView, type Presence } from './presence';
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

/** An entry as the index keeps it: only what matching and ordering need (about 200 bytes of its own). */
interface Slot {
  id: string;
  name: string;
  status: HealthStatus;
  tags: readonly string[];
  origin: string | null;
  /** The entry's own image prefix, normalised, when it is a valid prefix (else the entry can neither match nor mirror). */
  own: string | null;
  /** `own` split at its first slash: what a mirrored reference is rewritten to (domain, and path or ''). */
  ownDomain: string;
  ownPath: string;
  /** The normalised prefixes it mirrors (only with an own prefix: that is what they are rewritten to). */
  mirrors: string[] | null;
  /** The lookup that last found this slot, and where its candidate is in that lookup's list (deduplication without a map). */
  seenBy: number;
  seenAt: number;
}

/** What the index knows of one entry (PrefixIndex.entry). */
export type IndexedEntry = Pick<Slot, 'id' | 'name' | 'status' | 'origin' | 'own' | 'ownDomain' | 'ownPath' | 'mirrors'>;

/** A mirror filed under a prefix: the entry and the prefix as it declared it (normalised). */
interface Mirror {
  slot: Slot;
  prefix: string;
}

/** One entry, or several (most prefixes belong to one entry: no array for those). */
type OneOrMore<T> = T | T[];

function add<T>(map: Map<string, OneOrMore<T>>, key: string, item: T): void {
  const at = map.get(key);
  if (at === undefined) map.set(key, item);
  else if (Array.isArray(at)) at.push(item);
  else map.set(key, [at, item]);
}

function removeWhere<T>(map: Map<string, OneOrMore<T>>, key: string, gone: (item: T) => boolean): void {
  const at = map.get(key);
  if (at === undefined) return;
  if (!Array.isArray(at)) {
    if (gone(at)) map.delete(key);
    return;
  }
  const kept = at.filter((x) => !gone(x));
  if (kept.length === 0) map.delete(key);
  else map.set(key, kept.length === 1 ? kept[0]! : kept);
}

/** The key of a normalised prefix: case-insensitive, canonical host; path as is. Mostly the prefix itself. */
function keyOf(prefix: string): string {
  const slash = prefix.indexOf('/');
  const domain = slash < 0 ? prefix : prefix.slice(0, slash);
  const key = domainKey(domain);
  if (key === domain) return prefix;
  return slash < 0 ? key : key + prefix.slice(slash);
}

/** Most candidates an answer gives for one image (the best ones; `truncated` says there were more). */
export const MAX_CANDIDATES = 20;

export interface ResolveOptions {
  /** Entry tags to prefer among otherwise equal candidates, earlier first. */
  prefer?: readonly string[];
  /** The registries' inventories: candidates then say whether they hold the reference (presence.ts). */
  inventory?: InventoryView;
  /** `os/architecture[/variant]`: an index lacking it is not present for it. */
  platform?: string;
  /** `present`: only candidates known to hold the reference. */
  require?: 'present';
}

/** A match with its sort keys; turned into a Candidate once the order is known. */
interface Ranked {
  slot: Slot;
  match: Candidate['match'];
  /** A mirror match: the rest of the name's path after the matched prefix (null: a prefix match). The pulled name is built for the chosen few only. */
  rest: string | null;
  prefix: string;
  status: number;
  /** The pull reference when already known (a candidate ranked again); else built from `rest`. */
  pull?: string;
  /** presenceRank of `presence` (0 until presence is known). */
  present: number;
  presence: Presence;
  mirror: number;
  depth: number;
  prefer: number;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function better(a: Ranked, b: Ranked): number {
  return a.status - b.status || a.present - b.present || a.mirror - b.mirror || b.depth - a.depth || a.prefer - b.prefer || cmp(a.slot.name, b.slot.name) || cmp(a.slot.id, b.slot.id);
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
  /** Entries by their own image prefix (key). */
  private readonly owners = new Map<string, OneOrMore<Slot>>();
  /** Entries by a prefix they mirror (key). */
  private readonly mirrors = new Map<string, OneOrMore<Mirror>>();
  private readonly slots = new Map<string, Slot>();
  /** Counts lookups, to tell which slots the current one has found already. */
  private lookups = 0;

  /** Number of entries indexed. */
  get size(): number {
    return this.slots.size;
  }

  /** Replaces the whole content with these entries (a fresh list of the catalog). */
  reset(entries: Iterable<ApiEntry>): void {
    this.owners.clear();
    this.mirrors.clear();
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
    const own = tryPrefix(entry.container_registry_image_prefix);
    const declared = entry.container_registry_config?.mirror_of;
    let mirrors: string[] | null = null;
    if (own !== null && Array.isArray(declared)) {
      const keys = new Set<string>();
      for (const m of declared) {
        const p = tryPrefix(m);
        if (p === null || keys.has(keyOf(p))) continue;
        keys.add(keyOf(p));
        (mirrors ??= []).push(p);
      }
    }
    const slash = own?.indexOf('/') ?? -1;
    const slot: Slot = {
      id,
      name: entry.container_registry_name,
      status: statusOf(entry),
      tags: entry.container_registry_tags ?? [],
      origin: entry.container_registry_origin?.peer ?? null,
      own,
      ownDomain: own === null || slash < 0 ? (own ?? '') : own.slice(0, slash),
      ownPath: own === null || slash < 0 ? '' : own.slice(slash + 1),
      mirrors,
      seenBy: 0,
      seenAt: 0,
    };
    this.slots.set(id, slot);
    if (own !== null) add(this.owners, keyOf(own), slot);
    for (const m of mirrors ?? []) add(this.mirrors, keyOf(m), { slot, prefix: m });
  }

  private remove(id: string): void {
    const slot = this.slots.get(id);
    if (!slot) return;
    this.slots.delete(id);
    if (slot.own !== null) removeWhere(this.owners, keyOf(slot.own), (s) => s === slot);
    for (const m of slot.mirrors ?? []) removeWhere(this.mirrors, keyOf(m), (x) => x.slot === slot);
  }

  /**
   * The registries that serve `ref` (a reference string, normalised here, or an already parsed one), best
   * first, at most MAX_CANDIDATES of them (`truncated: true` when more serve it). Throws InvalidReferenceError
   * for an invalid reference string. An entry appears once, by its best match. No candidates: nothing serves
   * the image.
   */
  resolve(ref: string | ImageReference, opts: ResolveOptions = {}): ResolveResult {
    const r = typeof ref === 'string' ? parseReference(ref) : ref;
    let found = this.walk(r, rankOfTags(opts.prefer), { owners: true, pullable: true });
    for (const x of found) {
      x.presence = opts.inventory ? presenceOf(opts.inventory.inventoryOf(x.slot.id), { repository: repositoryOf(x, r), tag: r.tag, digest: r.digest, platform: opts.platform }) : UNKNOWN;
      x.present = presenceRank(x.presence.present);
    }
    if (opts.require === 'present') found = found.filter((x) => x.presence.present === true);
    return this.answer(r, found);
  }

  /**
   * The same answer with each candidate's presence replaced by `live` (by container_registry_id: a live check's
   * finding), ordered again and narrowed by `require`; drift is derived again from the new digests.
   */
  rerank(r: ImageReference, result: ResolveResult, live: ReadonlyMap<string, Presence>, opts: ResolveOptions = {}): ResolveResult {
    const ranks = rankOfTags(opts.prefer);
    let found: Ranked[] = [];
    for (const c of result.candidates) {
      // An entry deleted meanwhile is no candidate any more.
      const slot = this.slots.get(c.container_registry_id);
      if (!slot) continue;
      const presence = live.get(c.container_registry_id) ?? presenceFields(c);
      const x = ranking(slot, c.match, null, c.prefix, c.match === 'mirror' ? 0 : 1, c.prefix.split('/').length - 1, ranks);
      found.push({ ...x, presence, present: presenceRank(presence.present), pull: c.pull_reference });
    }
    if (opts.require === 'present') found = found.filter((x) => x.presence.present === true);
    const answer = this.answer(r, found);
    return result.truncated ? { ...answer, truncated: true } : answer;
  }

  /** The best MAX_CANDIDATES of `found` as the answer, with drift marked among them. */
  private answer(r: ImageReference, found: Ranked[]): ResolveResult {
    const suffix = (r.tag !== undefined ? `:${r.tag}` : '') + (r.digest !== undefined ? `@${r.digest}` : '');
    const truncated = found.length > MAX_CANDIDATES;
    const best = truncated ? smallest(found, MAX_CANDIDATES, better) : found.sort(better);
    const candidates = best.map((x) => candidateOf(x, x.pull ?? (x.rest === null ? r.reference : pulledName(x.slot, x.rest) + suffix), x.presence));
    markDrift(candidates);
    // The schema's maxItems makes the generated type a union of tuples; MAX_CANDIDATES keeps the list within it.
    const listed = candidates as ResolveResult['candidates'];
    return truncated ? { image: r.reference, candidates: listed, truncated: true } : { image: r.reference, candidates: listed };
  }

  /**
   * Every entry that serves `r`, uncapped and best first (health, mirrors first, longer prefixes first), with
   * the repository the name has on each (its pulled name's path after the host): GET /images.
   */
  servers(r: ImageReference): Array<Candidate & { repository: string }> {
    const suffix = (r.tag !== undefined ? `:${r.tag}` : '') + (r.digest !== undefined ? `@${r.digest}` : '');
    return this.walk(r, null, { owners: true, pullable: true })
      .sort(better)
      .map((x) => ({ ...candidateOf(x, x.rest === null ? r.reference : pulledName(x.slot, x.rest) + suffix, null), repository: repositoryOf(x, r) }));
  }

  /** The entry `id` as the index holds it: name, status, peer, its own prefix (domain and path) and the prefixes it mirrors. */
  entry(id: string): IndexedEntry | undefined {
    const s = this.slots.get(id);
    return s && { id: s.id, name: s.name, status: s.status, origin: s.origin, own: s.own, ownDomain: s.ownDomain, ownPath: s.ownPath, mirrors: s.mirrors };
  }

  /** The ids of the entries that mirror something. */
  *mirrorIds(): IterableIterator<string> {
    for (const s of this.slots.values()) if (s.mirrors !== null) yield s.id;
  }

  /**
   * The mirrors that serve the names under `prefix` (a normalised prefix, `host[/path]`), in the order
   * `resolve` gives them: the entries whose `mirror_of` is `prefix` or one of its own prefixes on component
   * boundaries, each with `location`, the prefix the names under `prefix` have on it (the
   * containers-registries.conf rewrite: `cache:5000` mirroring `docker.io` holds `docker.io/library` as
   * `cache:5000/library`). For a bare host, only the mirrors of that whole host.
   */
  mirrorsOf(prefix: ImagePrefix): MirrorCandidate[] {
    return this.walk(prefix, null, { owners: false, pullable: false })
      .sort(better)
      .map((x) => {
        const location = x.rest ? `${x.slot.own}/${x.rest}` : x.slot.own!;
        const { pull_reference: _, ...c } = candidateOf(x, location, null);
        return { ...c, location };
      });
  }

  /**
   * The registry `prefix` belongs to: the entry whose own image prefix is `prefix` or, failing that, the
   * longest of its own prefixes on component boundaries (the best one by `resolve`'s order when several
   * entries share it), if any.
   */
  ownerOf(prefix: ImagePrefix): Candidate | undefined {
    const domain = domainKey(prefix.domain);
    for (let path = prefix.path; ; path = path.slice(0, Math.max(0, path.lastIndexOf('/')))) {
      const key = path ? `${domain}/${path}` : domain;
      const at = this.owners.get(key);
      if (at !== undefined) {
        const best = (Array.isArray(at) ? at : [at]).map((slot) => ranking(slot, 'prefix', null, slot.own!, 1, 0, null)).sort(better)[0]!;
        return candidateOf(best, prefix.name, null);
      }
      if (path === '') return undefined;
    }
  }

  /** Every prefix some entry mirrors, once, in its canonical form (host lowercase, IPv6 canonical), in no particular order. */
  mirroredPrefixes(): IterableIterator<string> {
    return this.mirrors.keys();
  }

  /**
   * The matches of `name` and of its own prefixes on component boundaries (the bare domain, then one more
   * path component each step), each entry once by its best match, in no order (the callers sort, or take the
   * best few). A mirror match's name is the entry's own prefix in place of the matched one (pulledName);
   * `pullable` leaves out those that are no valid repository name (a bare host, or a path over PATH_MAX).
   * `owners`: entries whose own prefix matches count too (else mirrors only).
   */
  private walk(name: { domain: string; path: string }, ranks: Map<string, number> | null, opts: { owners: boolean; pullable: boolean }): Ranked[] {
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
    const domain = domainKey(name.domain);
    const path = name.path;
    for (let depth = 0, end = -1; ; depth++) {
      // end: where the prefix of this depth stops in `path` (-1: the bare domain).
      const key = end < 0 ? domain : domain ? `${domain}/${path.slice(0, end)}` : path.slice(0, end);
      const owned = opts.owners ? this.owners.get(key) : undefined;
      if (owned !== undefined) {
        for (const slot of Array.isArray(owned) ? owned : [owned]) consider(ranking(slot, 'prefix', null, slot.own!, 1, depth, ranks));
      }
      const mirrors = this.mirrors.get(key);
      if (mirrors !== undefined) {
        const rest = end < 0 ? path : path.slice(end + 1);
        for (const { slot, prefix } of Array.isArray(mirrors) ? mirrors : [mirrors]) {
          if (opts.pullable) {
            const length = slot.ownPath && rest ? slot.ownPath.length + 1 + rest.length : slot.ownPath.length || rest.length; // of pulledName's path
            if (length === 0 || length > PATH_MAX) continue; // no valid reference to pull
          }
          consider(ranking(slot, 'mirror', rest, prefix, 0, depth, ranks));
        }
      }
      if (end === path.length || path === '') break;
      const next = path.indexOf('/', end + 1);
      end = next < 0 ? path.length : next;
    }
    return found;
  }
}

/** The name a mirror serves a name under: its own prefix in place of the matched one (containers-registries.conf). */
function pulledName(slot: Slot, rest: string): string {
  const path = slot.ownPath && rest ? `${slot.ownPath}/${rest}` : slot.ownPath || rest;
  return `${slot.ownDomain}/${path}`;
}

/**
 * The `k` smallest of `xs` by `cmp`, in order, without sorting all of them: one comparison with the current
 * k-th for most items, so a prefix many entries mirror costs about one pass over them.
 */
function smallest<T>(xs: readonly T[], k: number, cmp: (a: T, b: T) => number): T[] {
  const out: T[] = [];
  for (const x of xs) {
    if (out.length === k && cmp(x, out[k - 1]!) >= 0) continue;
    let lo = 0;
    let hi = out.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cmp(x, out[mid]!) < 0) hi = mid;
      else lo = mid + 1;
    }
    out.splice(lo, 0, x);
    if (out.length > k) out.pop();
  }
  return out;
}

/** A mirror of a prefix (PrefixIndex.mirrorsOf): a candidate and the prefix the mirrored names have on it. */
export type MirrorCandidate = Omit<Candidate, 'pull_reference'> & { location: string };

function ranking(slot: Slot, match: Candidate['match'], rest: string | null, prefix: string, mirror: number, depth: number, ranks: Map<string, number> | null): Ranked {
  return { slot, match, rest, prefix, status: STATUS_RANK[slot.status], present: 0, presence: UNKNOWN, mirror, depth, prefer: preferRank(slot, ranks) };
}

/** A candidate; with `presence` (resolve), also what the registry holds of the reference. */
function candidateOf(x: Ranked, pull: string, presence: Presence | null): Candidate {
  const c: Candidate = { container_registry_id: x.slot.id, container_registry_name: x.slot.name, pull_reference: pull, match: x.match, prefix: x.prefix, status: x.slot.status, origin: x.slot.origin };
  if (presence) Object.assign(c, presenceFields(presence));
  return c;
}

/** The presence fields of a candidate (or a Presence) alone. */
function presenceFields(p: Pick<Candidate, 'present' | 'digest' | 'platforms' | 'observed_at' | 'source' | 'error'>): Presence & { error?: string } {
  const out: Presence & { error?: string } = { present: p.present ?? null, digest: p.digest ?? null, platforms: p.platforms ?? null, observed_at: p.observed_at ?? null, source: p.source ?? 'inventory' };
  if (p.error !== undefined) out.error = p.error;
  return out;
}

/** The repository a match has on its registry: the pulled name's path after the registry's host. */
function repositoryOf(x: Ranked, r: ImageReference): string {
  if (x.rest === null) return r.path;
  return x.slot.ownPath && x.rest ? `${x.slot.ownPath}/${x.rest}` : x.slot.ownPath || x.rest;
}

/** The normalised prefix, or null when `s` is not one (such an entry or mirror_of item never matches). */
function tryPrefix(s: unknown): string | null {
  if (typeof s !== 'string') return null;
  try {
    return parsePrefix(s).name;
  } catch {
    return null;
  }
}
