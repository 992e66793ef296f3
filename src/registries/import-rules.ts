/**
 * What `npm run db:import` checks of the catalog's collections before it writes anything (the ImportRules of
 * src/db/dump.ts): exactly what the service assumes when it starts on them (src/feed/reader.ts warmUp and
 * backfill, RegistryRepository.ensureIndexes, the writers of src/registries/writes.ts).
 *
 * - Entries: valid against schemas/container_registry_stored.schema.json; ids unique; names unique per
 *   origin (the unique index the service creates) and `_name_key` the one the name and origin give.
 * - Change log records: `_id` the text of the revision `r` (the log is read by `_id`), `at` a date, `op`
 *   upsert, delete or fill, `prev` below `r`; an upsert carries the entry's state with that id and revision;
 *   revisions and (entry, previous revision) pairs unique (the log's compare-and-set index).
 * - Agreement: an entry with a revision is stored as the latest change of its id in the log has it (the view,
 *   the feed and /resolve serve the log's state, database reads the entry's); an entry without a revision (from
 *   before the log, written into it at start) has no change in the log; an id whose latest change is an
 *   upsert has its entry.
 * - The log's meta documents and the tombstones: the fields the log reader and the writers read.
 */
import { createHash } from 'node:crypto';
import { BSON, type Document } from 'mongodb';
import { revisionId } from '../db/changelog';
import type { ImportProblem, ImportRules } from '../db/dump';
import { InputError } from '../errors';
import { validateStoredEntry } from '../schemas';
import { COLLECTION, NAME_KEY, nameKey } from './model';
import { NAME_RELEASES, NAME_RESERVATIONS } from './names';
import { CHANGES, TOMBSTONES } from './writes';

const META = `${CHANGES}_meta`;
const META_IDS = ['floor', 'retained', 'head', 'epoch'];
const FILL_KEY = '~fill';

interface Seen {
  line: number;
  revision?: number;
  /** Digest of the state (top-level `_` fields, the service's bookkeeping, left out). */
  state?: string;
  op?: string;
}

const isCount = (v: unknown, min: number): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min;
const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype;

/** Keys sorted at every depth: two states that differ only in field order are the same state. */
function sorted(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sorted);
  if (!isPlainObject(v)) return v;
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])]));
}

function stateDigest(doc: Record<string, unknown>): string {
  const kept = Object.fromEntries(Object.entries(doc).filter(([k]) => !k.startsWith('_') || k === '_id'));
  return createHash('sha256').update(BSON.EJSON.stringify(sorted(kept) as Document, { relaxed: true })).digest('base64');
}

/** Why a change log record cannot be read by the service, or an empty list. */
function recordProblems(rec: Document): string[] {
  const out: string[] = [];
  const { r, op, key, prev, at, doc } = rec;
  if (!isCount(r, 1)) return ['r (its revision) must be an integer of at least 1'];
  if (rec._id !== revisionId(r)) out.push(`_id must be "${revisionId(r)}" (the text of its revision ${r}): the log is read by _id`);
  if (op !== 'upsert' && op !== 'delete' && op !== 'fill') out.push('op must be "upsert", "delete" or "fill"');
  if (typeof key !== 'string' || key === '') out.push('key must be the id of an entry');
  else if ((op === 'fill') !== (key === FILL_KEY)) out.push(`key "${FILL_KEY}" goes with op "fill", and only with it`);
  if (!isCount(prev, 0) || (op !== 'fill' && prev >= r)) out.push(`prev must be an integer from 0 to ${r - 1} (the revision the change follows)`);
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) out.push('at must be a date');
  if (op === 'upsert') {
    if (!isPlainObject(doc)) out.push('an upsert must carry the entry (doc)');
    else {
      if (doc._id !== key) out.push(`doc._id must be its key "${String(key)}"`);
      if (doc.revision !== r) out.push(`doc.revision must be its revision ${r}`);
    }
  }
  return out;
}

/** The rules for one import (they keep what they saw of the file). */
export function catalogImportRules(): ImportRules {
  const entries = new Map<string, Seen>();
  const names = new Map<string, number>();
  const latest = new Map<string, Seen>();
  const revisions = new Map<number, number>();
  const follows = new Map<string, number>();
  const tombstones = new Map<string, Seen>();
  const meta = new Map<string, number>();
  const problem = (collection: string, line: number, id: unknown, text: string): ImportProblem => ({ collection, line, id, problem: text });

  /** The first occurrence's line, or records this one. */
  function repeated<K>(map: Map<K, number>, key: K, line: number): number | undefined {
    const first = map.get(key);
    if (first === undefined) map.set(key, line);
    return first;
  }

  function checkEntry(doc: Document, line: number): ImportProblem[] {
    const out: ImportProblem[] = [];
    const at = (text: string) => out.push(problem(COLLECTION, line, doc._id, text));
    try {
      validateStoredEntry(doc);
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      at(`is not a valid stored entry: ${(e.errors ?? []).map((fe) => `${fe.path} ${fe.message}`).join('; ')}`);
    }
    if (typeof doc._id !== 'string') return out;
    const first = entries.get(doc._id);
    if (first) return [...out, problem(COLLECTION, line, doc._id, `_id appears twice (first at line ${first.line})`)];
    entries.set(doc._id, { line, revision: typeof doc.revision === 'number' ? doc.revision : undefined, state: stateDigest(doc) });
    const key = nameKey(doc as never);
    if (doc[NAME_KEY] !== undefined && doc[NAME_KEY] !== key) at(`${NAME_KEY} is ${JSON.stringify(doc[NAME_KEY])}, but its name and origin make it ${JSON.stringify(key)}`);
    const other = repeated(names, key, line);
    if (other !== undefined) at(`its name ${JSON.stringify(doc.container_registry_name)} is also the name of the entry at line ${other} (names are unique per origin)`);
    return out;
  }

  function checkRecord(rec: Document, line: number): ImportProblem[] {
    const wrong = recordProblems(rec);
    if (wrong.length > 0) return wrong.map((text) => problem(CHANGES, line, rec._id, text));
    const out: ImportProblem[] = [];
    const first = repeated(revisions, rec.r as number, line);
    if (first !== undefined) out.push(problem(CHANGES, line, rec._id, `revision ${rec.r} appears twice (first at line ${first})`));
    if (rec.op === 'fill') return out;
    const before = repeated(follows, `${rec.key}\u0000${rec.prev}`, line);
    if (before !== undefined) out.push(problem(CHANGES, line, rec._id, `a second change of entry ${rec.key} after its revision ${rec.prev} (the first is at line ${before}; the log takes one)`));
    const known = latest.get(rec.key);
    if (!known || known.revision! < rec.r) latest.set(rec.key, { line, revision: rec.r, op: rec.op, state: rec.op === 'upsert' ? stateDigest(rec.doc) : undefined });
    return out;
  }

  function checkMeta(doc: Document, line: number): ImportProblem[] {
    const out: ImportProblem[] = [];
    if (!META_IDS.includes(doc._id)) out.push(problem(META, line, doc._id, `_id must be one of ${META_IDS.join(', ')}`));
    else if (repeated(meta, doc._id as string, line) !== undefined) out.push(problem(META, line, doc._id, '_id appears twice'));
    if (!isCount(doc.r, 0)) out.push(problem(META, line, doc._id, 'r must be an integer of at least 0'));
    if (doc._id === 'epoch' && (typeof doc.epoch !== 'string' || doc.epoch.length === 0)) out.push(problem(META, line, doc._id, 'epoch must be a non-empty string'));
    return out;
  }

  function checkTombstone(doc: Document, line: number): ImportProblem[] {
    const out: ImportProblem[] = [];
    if (typeof doc._id !== 'string') out.push(problem(TOMBSTONES, line, doc._id, '_id must be the id of an entry'));
    if (!isCount(doc.revision, 1)) out.push(problem(TOMBSTONES, line, doc._id, 'revision must be an integer of at least 1'));
    if (!(doc.at instanceof Date)) out.push(problem(TOMBSTONES, line, doc._id, 'at must be a date'));
    if (out.length > 0) return out;
    if (tombstones.has(doc._id)) return [problem(TOMBSTONES, line, doc._id, `_id appears twice (first at line ${tombstones.get(doc._id)!.line})`)];
    tombstones.set(doc._id, { line, revision: doc.revision });
    return out;
  }

  /** An entry against the log's latest change of its id. */
  function agreement(id: string, e: Seen): string | undefined {
    const l = latest.get(id);
    if (e.revision === undefined) {
      return l ? `has no revision, but the change log has changes of it (its latest at line ${l.line}); only an entry the log has never seen may lack one` : undefined;
    }
    if (!l) return `has revision ${e.revision}, but the change log has no change of it: the view, the feed and /resolve would never show it`;
    if (l.revision !== e.revision) return `has revision ${e.revision}, but its latest change in the change log is revision ${l.revision} (line ${l.line}, ${l.op})`;
    if (l.op !== 'upsert') return `exists, but its latest change in the change log deletes it (line ${l.line})`;
    if (l.state !== e.state) return `differs from its state in the change log at revision ${l.revision} (line ${l.line}): the view would serve one, database reads the other`;
    return undefined;
  }

  function finish(): ImportProblem[] {
    const out: ImportProblem[] = [];
    for (const [id, e] of entries) {
      const wrong = agreement(id, e);
      if (wrong) out.push(problem(COLLECTION, e.line, id, wrong));
      const t = tombstones.get(id);
      if (t && e.revision !== undefined && t.revision! > e.revision) out.push(problem(TOMBSTONES, t.line, id, `says the entry was deleted at revision ${t.revision}, after its revision ${e.revision} (line ${e.line})`));
    }
    for (const [id, l] of latest) {
      if (l.op === 'upsert' && !entries.has(id)) out.push(problem(CHANGES, l.line, revisionId(l.revision!), `the latest change of entry ${id} stores it (revision ${l.revision}), but ${COLLECTION} has no such entry`));
    }
    return out;
  }

  const byCollection: Record<string, (doc: Document, line: number) => ImportProblem[]> = {
    [COLLECTION]: checkEntry,
    [CHANGES]: checkRecord,
    [META]: checkMeta,
    [TOMBSTONES]: checkTombstone,
  };
  return {
    // Name reservations (names.ts) belong to the entries: replaced with them (an older export has none, and the
    // entries' names are then found through the view, as for entries named before reservations existed).
    collections: [...Object.keys(byCollection), NAME_RESERVATIONS, NAME_RELEASES],
    check: (collection, doc, line) => byCollection[collection]?.(doc, line) ?? [],
    finish,
  };
}
