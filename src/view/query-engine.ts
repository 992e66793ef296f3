/**
 * The in-memory query engine of the catalog view (SPEC 13): answers a validated QueryPlan over the stored
 * documents it holds exactly as RegistryRepository.query answers it from the database (same rows, same order,
 * same key-set `after` semantics, same projection, limit + 1 rows).
 *
 * Representation: one deep-frozen copy of each document (short strings interned, so repeated values such as
 * tags, URLs and statuses are stored once), and per sort field one array of references to those documents in
 * BSON order of (sort key, _id), kept in blocks (a one-level B-tree). A query walks the order of its sort field from the cursor position and stops
 * after limit + 1 matches; an upsert or remove moves one reference per order (binary search, then a splice
 * within one block of at most 1,024).
 *
 * The filter is evaluated by mingo (compiled once per query) after the normalisation in ./filter.ts, which
 * brings its semantics in line with the database's where they differ. Pure: no database or HTTP code.
 */
import type { StoredRegistry } from '../registries/model';
import type { QueryPlan } from '../registries/query';
import { FilterBudget, SliceOver } from './budget';
import { compileFilter, type FilterPredicate } from './filter';
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

/** Entries per block of an order: a block is split in two when it grows past twice this. */
const BLOCK = 512;

/**
 * The documents in BSON order of (key at `field`, _id), ascending, as a list of sorted blocks (a one-level
 * B-tree): finding a position is a binary search over the blocks' last entries and then within one block,
 * and an insert or remove moves at most 2 × BLOCK references, however large the catalog. Holds references.
 */
class SortOrder {
  private blocks: Doc[][] = [];
  readonly key: (doc: Doc) => unknown;
  private readonly byIdOnly: boolean;

  constructor(readonly field: string) {
    this.key = pathGetter(field);
    this.byIdOnly = field === '_id';
  }

  /** Compares the entry `doc` with the position (key, id). */
  private cmp(doc: Doc, key: unknown, id: string): number {
    if (this.byIdOnly) return compareStrings(doc._id, id);
    return compareBson(this.key(doc), key) || compareStrings(doc._id, id);
  }

  /** The position [block, index] of the first entry at or after (key, id); [blocks.length, 0] past the end. */
  locate(key: unknown, id: string): [number, number] {
    const blocks = this.blocks;
    let lo = 0;
    let hi = blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const block = blocks[mid]!;
      if (this.cmp(block[block.length - 1]!, key, id) < 0) lo = mid + 1;
      else hi = mid;
    }
    if (lo === blocks.length) return [lo, 0];
    const block = blocks[lo]!;
    let a = 0;
    let b = block.length;
    while (a < b) {
      const mid = (a + b) >>> 1;
      if (this.cmp(block[mid]!, key, id) < 0) a = mid + 1;
      else b = mid;
    }
    return [lo, a];
  }

  /** The position of the first entry after (key, id). */
  locateAfter(key: unknown, id: string): [number, number] {
    const [b, i] = this.locate(key, id);
    const at = this.blocks[b]?.[i];
    if (!at || at._id !== id || (!this.byIdOnly && compareBson(this.key(at), key) !== 0)) return [b, i];
    return i + 1 < this.blocks[b]!.length ? [b, i + 1] : [b + 1, 0];
  }

  /** Calls `visit` with the entries from position [b, i] in `direction` (the entry before it when -1) until it answers false. */
  walk(from: [number, number] | undefined, direction: 1 | -1, visit: (doc: Doc) => boolean): void {
    const blocks = this.blocks;
    if (direction === 1) {
      let [b, i] = from ?? [0, 0];
      for (; b < blocks.length; b++, i = 0) {
        const block = blocks[b]!;
        for (; i < block.length; i++) if (!visit(block[i]!)) return;
      }
      return;
    }
    let [b, i] = from ?? [blocks.length, 0];
    i -= 1;
    if (i < 0) {
      b -= 1;
      i = (blocks[b]?.length ?? 0) - 1;
    }
    for (; b >= 0; b--, i = (blocks[b]?.length ?? 0) - 1) {
      const block = blocks[b]!;
      for (; i >= 0; i--) if (!visit(block[i]!)) return;
    }
  }

  insert(doc: Doc): void {
    const blocks = this.blocks;
    if (blocks.length === 0) {
      blocks.push([doc]);
      return;
    }
    let [b, i] = this.locate(this.key(doc), doc._id);
    if (b === blocks.length) {
      b -= 1;
      i = blocks[b]!.length;
    }
    const block = blocks[b]!;
    block.splice(i, 0, doc);
    if (block.length > 2 * BLOCK) blocks.splice(b, 1, block.slice(0, BLOCK), block.slice(BLOCK));
  }

  remove(doc: Doc): void {
    const [b, i] = this.locate(this.key(doc), doc._id);
    const block = this.blocks[b];
    if (block?.[i] !== doc) throw new Error(`view order ${this.field} lost entry ${doc._id}`);
    block.splice(i, 1);
    if (block.length === 0) this.blocks.splice(b, 1);
  }

  /** Replaces `old` by `next` (same _id); in place when the sort key did not change. */
  replace(old: Doc, next: Doc): void {
    if (this.byIdOnly || compareBson(this.key(old), this.key(next)) === 0) {
      const [b, i] = this.locate(this.key(old), old._id);
      if (this.blocks[b]?.[i] !== old) throw new Error(`view order ${this.field} lost entry ${old._id}`);
      this.blocks[b]![i] = next;
      return;
    }
    this.remove(old);
    this.insert(next);
  }

  /** Fills an empty order from entries already in order. */
  load(sorted: Doc[]): void {
    for (let i = 0; i < sorted.length; i += BLOCK) this.blocks.push(sorted.slice(i, i + BLOCK));
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
   * Runs to the end at once; see start() for a query run in time slices.
   */
  query(plan: QueryPlan): StoredRegistry[] {
    return this.start(plan).step()!;
  }

  /** A query to run in steps (QueryRun.step), each within one time slice of a budget. */
  start(plan: QueryPlan): QueryRun {
    return new QueryRun(this.order(plan.sort.dbField), plan);
  }

  private order(field: string): SortOrder {
    let order = this.orders.get(field);
    if (!order) {
      order = new SortOrder(field);
      const items = [...this.docs.values()];
      items.sort((a, b) => compareBson(order!.key(a), order!.key(b)) || compareStrings(a._id, b._id));
      order.load(items);
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
    // Values of other classes (BSON types the API never stores) are kept as they are.
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return v;
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
 * One query over the view, run in steps: a step walks the sort order from where the last one stopped (a
 * position, not an index, so entries written between steps are found as a database cursor would find them)
 * until the page is full, or until the budget's slice is over; then the caller yields and steps again.
 */
export class QueryRun {
  private readonly match: FilterPredicate;
  private readonly project: (doc: Doc) => StoredRegistry;
  private readonly out: StoredRegistry[] = [];
  private readonly seen = new Set<string>();
  /** The position after the last entry evaluated, as (key, _id); undefined before the first step. */
  private resume?: { key: unknown; id: string };

  constructor(private readonly order: SortOrder, private readonly plan: QueryPlan) {
    this.match = compileFilter(plan.filter);
    this.project = projector(plan);
  }

  /** Advances the query; the page (limit + 1 rows) when done, undefined when the slice ended first. */
  step(budget?: FilterBudget): StoredRegistry[] | undefined {
    const { order, plan, out } = this;
    const { dbField, direction } = plan.sort;
    const want = plan.limit + 1;
    const after = plan.after;
    const afterKey = after ? (dbField === '_id' ? after.id : after.key) : undefined;
    const at = this.resume ?? (after ? { key: afterKey, id: after.id } : undefined);
    let from: [number, number] | undefined;
    if (at) from = direction === 1 ? order.locateAfter(at.key, at.id) : order.locate(at.key, at.id);
    budget?.startSlice();
    let progressed = false;
    let sliceOver = false;
    order.walk(from, direction, (doc) => {
      try {
        // The database's cursor clause {key: {$gt: k}} (or $lt) only matches keys of k's BSON type (type
        // bracketing); entries past the position with a key of another type are not on the next pages there.
        const inBracket = !after || dbField === '_id' || sameBracket(order.key(doc), afterKey);
        if (inBracket && !this.seen.has(doc._id) && this.match(doc, budget)) {
          out.push(this.project(doc));
          this.seen.add(doc._id);
        }
      } catch (e) {
        if (!(e instanceof SliceOver)) throw e;
        sliceOver = true;
        return false;
      }
      this.resume = { key: order.key(doc), id: doc._id };
      progressed = true;
      return out.length < want;
    });
    if (!sliceOver) return out;
    if (!progressed) throw FilterBudget.entryTooSlow();
    return undefined;
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
