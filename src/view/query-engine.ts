/**
 * The in-memory query engine of the catalog view (SPEC 13): answers a validated QueryPlan over the stored
 * documents it holds exactly as RegistryRepository.query answers it from the database (same rows, same order,
 * same key-set `after` semantics, same projection, limit + 1 rows).
 *
 * Representation: one deep-frozen copy of each document (short strings interned, so repeated values such as
 * tags, URLs and statuses are stored once), and per sort field one array of references to those documents in
 * BSON order of (sort key, _id). A query walks the order of its sort field from the cursor position and stops
 * after limit + 1 matches; an upsert or remove moves one reference per order (binary search + splice).
 *
 * The filter is evaluated by mingo (compiled once per query) after the normalisation in ./filter.ts, which
 * brings its semantics in line with the database's where they differ. Pure: no database or HTTP code.
 */
import type { StoredRegistry } from '../registries/model';
import type { QueryPlan } from '../registries/query';
import { compileFilter } from './filter';
import { compareBson, compareStrings, sameBracket } from './order';

type Doc = Readonly<Record<string, unknown>> & { readonly _id: string };

/** Strings up to this length are interned; longer ones (TLS details, error texts) are rarely shared. */
const INTERN_MAX_LENGTH = 64;
/** The intern table is dropped when it grows past this many strings, so churn cannot grow it without bound. */
const INTERN_MAX_SIZE = 65_536;

function pathGetter(path: string): (doc: Doc) => unknown {
  const parts = path.split('.');
  if (parts.length === 1) return (doc) => doc[path];
  return (doc) => {
    let v: unknown = doc;
    for (const p of parts) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return undefined;
      v = (v as Record<string, unknown>)[p];
    }
    return v;
  };
}

/** The documents in BSON order of (key at `field`, _id), ascending. Holds references, never copies. */
class SortOrder {
  readonly items: Doc[] = [];
  readonly key: (doc: Doc) => unknown;
  private readonly byIdOnly: boolean;

  constructor(readonly field: string) {
    this.key = pathGetter(field);
    this.byIdOnly = field === '_id';
  }

  /** Compares the entry at `doc` with the position (key, id). */
  private cmp(doc: Doc, key: unknown, id: string): number {
    if (this.byIdOnly) return compareStrings(doc._id, id);
    return compareBson(this.key(doc), key) || compareStrings(doc._id, id);
  }

  /** Index of the first entry at or after (key, id). */
  lowerBound(key: unknown, id: string): number {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cmp(this.items[mid]!, key, id) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  insert(doc: Doc): void {
    this.items.splice(this.lowerBound(this.key(doc), doc._id), 0, doc);
  }

  remove(doc: Doc): void {
    const i = this.lowerBound(this.key(doc), doc._id);
    if (this.items[i] === doc) this.items.splice(i, 1);
    else throw new Error(`view order ${this.field} lost entry ${doc._id}`);
  }

  /** Replaces `old` by `next` (same _id); moves it only when its position changes. */
  replace(old: Doc, next: Doc): void {
    const i = this.lowerBound(this.key(old), old._id);
    if (this.items[i] !== old) throw new Error(`view order ${this.field} lost entry ${old._id}`);
    const key = this.key(next);
    const fits = (i === 0 || this.cmp(this.items[i - 1]!, key, next._id) < 0) && (i === this.items.length - 1 || this.cmp(this.items[i + 1]!, key, next._id) > 0);
    if (fits) {
      this.items[i] = next;
      return;
    }
    this.items.splice(i, 1);
    this.insert(next);
  }
}

export class QueryEngine {
  private readonly docs = new Map<string, Doc>();
  private readonly orders = new Map<string, SortOrder>();
  private interned = new Map<string, string>();

  /** `sortFields`: the stored paths queries sort by (SORT_FIELDS' dbField); others get an order on first use. */
  constructor(sortFields: Iterable<string> = []) {
    for (const f of sortFields) this.orders.set(f, new SortOrder(f));
  }

  get size(): number {
    return this.docs.size;
  }

  /** Stores a copy of `doc` (as stored in the database), replacing the entry with the same _id. */
  upsert(doc: StoredRegistry): void {
    const next = this.freeze(doc) as Doc;
    if (typeof next._id !== 'string') throw new TypeError('a stored entry needs a string _id');
    const old = this.docs.get(next._id);
    this.docs.set(next._id, next);
    for (const order of this.orders.values()) {
      if (old) order.replace(old, next);
      else order.insert(next);
    }
  }

  remove(id: string): void {
    const old = this.docs.get(id);
    if (!old) return;
    this.docs.delete(id);
    for (const order of this.orders.values()) order.remove(old);
  }

  /** The entry with this _id, frozen (nested objects too). */
  get(id: string): Readonly<StoredRegistry> | undefined {
    return this.docs.get(id) as Readonly<StoredRegistry> | undefined;
  }

  /**
   * One page of a validated plan, exactly as RegistryRepository.query returns it: limit + 1 rows. Each row is
   * a new top-level object (the caller may add or delete its keys); nested objects are shared and frozen.
   */
  query(plan: QueryPlan): StoredRegistry[] {
    const { dbField, direction } = plan.sort;
    const order = this.order(dbField);
    const match = compileFilter(plan.filter);
    const items = order.items;
    const want = plan.limit + 1;
    const after = plan.after;
    const afterKey = after ? (dbField === '_id' ? after.id : after.key) : undefined;
    let i: number;
    if (direction === 1) i = after ? this.upperBound(order, afterKey, after.id) : 0;
    else i = (after ? order.lowerBound(afterKey, after.id) : items.length) - 1;
    const project = projector(plan);
    const out: StoredRegistry[] = [];
    for (; i >= 0 && i < items.length && out.length < want; i += direction) {
      const doc = items[i]!;
      // The database's cursor clause {key: {$gt: k}} (or $lt) only matches keys of k's BSON type (type
      // bracketing); entries past the position with a key of another type are not on the next pages there.
      if (after && dbField !== '_id' && !sameBracket(order.key(doc), afterKey)) continue;
      if (match(doc)) out.push(project(doc));
    }
    return out;
  }

  private upperBound(order: SortOrder, key: unknown, id: string): number {
    const i = order.lowerBound(key, id);
    const at = order.items[i];
    return at && at._id === id && (order.field === '_id' || compareBson(order.key(at), key) === 0) ? i + 1 : i;
  }

  private order(field: string): SortOrder {
    let order = this.orders.get(field);
    if (!order) {
      order = new SortOrder(field);
      const items = [...this.docs.values()];
      items.sort((a, b) => compareBson(order!.key(a), order!.key(b)) || compareStrings(a._id, b._id));
      order.items.push(...items);
      this.orders.set(field, order);
    }
    return order;
  }

  /** A deep, frozen copy of a JSON-like value, with short strings interned. */
  private freeze(v: unknown): unknown {
    if (typeof v === 'string') return this.intern(v);
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return Object.freeze(v.map((x) => this.freeze(x)));
    if (v instanceof Date) return Object.freeze(new Date(v.getTime()));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = this.freeze(x);
    return Object.freeze(out);
  }

  private intern(s: string): string {
    if (s.length > INTERN_MAX_LENGTH) return s;
    const known = this.interned.get(s);
    if (known !== undefined) return known;
    if (this.interned.size >= INTERN_MAX_SIZE) this.interned = new Map();
    this.interned.set(s, s);
    return s;
  }
}

/**
 * The projection of RegistryRepository.query: all fields, or _id + the sort field + the asked top-level
 * fields (container_registry_id is _id), in the document's own field order. A dotted sort field projects
 * only that key of its object, as the database does.
 */
function projector(plan: QueryPlan): (doc: Doc) => StoredRegistry {
  if (!plan.fields) return (doc) => ({ ...doc }) as unknown as StoredRegistry;
  const top = new Set<string>(['_id']);
  for (const f of plan.fields) if (f !== 'container_registry_id') top.add(f);
  const [sortTop, ...sortRest] = plan.sort.dbField.split('.');
  // A dotted sort field projects only its key of the object, even when the object itself is asked for:
  // FerretDB v1 lets {h.status: 1} win over {h: 1}. (MongoDB rejects that projection as a path collision.)
  const partial = sortRest.length > 0 ? sortTop! : undefined;
  if (partial) top.delete(partial);
  else top.add(sortTop!);
  const sub = sortRest.join('.');
  return (doc) => {
    const out: Record<string, unknown> = {};
    for (const k in doc) {
      if (top.has(k)) out[k] = doc[k];
      else if (k === partial) {
        const v = doc[k];
        if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
          const o = v as Record<string, unknown>;
          out[k] = sub in o ? { [sub]: o[sub] } : {};
        }
      }
    }
    return out as unknown as StoredRegistry;
  };
}
