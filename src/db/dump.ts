/**
 * `npm run db:export` / `npm run db:import`: every collection of the service's database, whatever it is
 * (collections are enumerated, so ones added later are included without a change here), documents
 * exactly as stored (canonical Extended JSON keeps ObjectIds, Dates, Int32/Int64/Double apart), streamed
 * both ways: memory holds one batch of documents, never a collection.
 *
 * The file is line-delimited: one JSON value per line. Control lines are arrays, document lines objects:
 *   ["registry-db-export", {"version": 1, "database": "registry_db", "exported_at": {"$date": "..."}}]
 *   ["collection", {"name": "container_registries", "indexes": [{"key": {...}, "name": "...", "unique": true}]}]
 *   {"_id": ..., ...}                                   one line per document (canonical EJSON)
 *   ["end", {"name": "container_registries", "count": 2}]
 *   ...
 *   ["end-of-export", {"collections": 5, "documents": 123}]
 * The import is all-or-nothing. It reads the file twice: first to check it whole, framing and every
 * document (./storable.ts: what no backend stores; the caller's ImportRules: what the service needs, e.g.
 * src/registries/import-rules.ts), so that a truncated, edited or inconsistent file changes nothing; then
 * to write it into new collections under temporary names, with their indexes, checking each count; only
 * then are they swapped in for the collections in use (./swap.ts). A failure before the swap (a document
 * the database refuses, a lost connection, a killed process) leaves the database exactly as it was.
 * An imported change log gets a new epoch (src/db/changelog.ts), in the new collections before the swap: the
 * only change an import makes to what it reads, so that followers of the exported catalog see a restore as
 * another history and list it again.
 */
import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import readline from 'node:readline';
import type { Writable } from 'node:stream';
import { BSON, MongoBulkWriteError, type Db, type Document, type IndexDescription } from 'mongodb';
import { renewEpochs } from './changelog';
import { ensureIndexes } from './indexes';
import { showId, storableProblems } from './storable';
import { IMPORT_PREFIX, dropStaged, finishInterruptedImport, newToken, stagedName, swapIn } from './swap';

const { EJSON } = BSON;

export const FORMAT = 'registry-db-export';
export const FORMAT_VERSION = 1;
const BATCH = 500;

export interface CollectionCount {
  name: string;
  count: number;
}

type Index = IndexDescription & { name: string };

export class DumpFileError extends Error {
  constructor(file: string, line: number, message: string) {
    super(`${file}, line ${line}: ${message}`);
    this.name = 'DumpFileError';
  }
}

export class ImportRefusedError extends Error {
  constructor(readonly nonEmpty: CollectionCount[]) {
    super(
      `the target database is not empty (${nonEmpty.map((c) => `${c.name}: ${c.count}`).join(', ')}); nothing was imported. ` +
        'Add --force to replace the contents of every collection in the file.',
    );
    this.name = 'ImportRefusedError';
  }
}

/** The collections the service owns in its database: all of them but the server's own and an import's temporary ones. */
export async function ownedCollections(db: Db): Promise<string[]> {
  const infos = await db.listCollections({}, { nameOnly: true }).toArray();
  return infos
    .filter((c) => (c.type === undefined || c.type === 'collection') && !c.name.startsWith('system.') && !c.name.startsWith(IMPORT_PREFIX))
    .map((c) => c.name)
    .sort();
}

const control = (kind: string, body: Document): string => EJSON.stringify([kind, body], { relaxed: true });

/** Writes every owned collection of `db` to `out`; returns what it wrote. Honours backpressure. */
export async function exportDatabase(db: Db, out: Writable): Promise<CollectionCount[]> {
  const write = async (line: string): Promise<void> => {
    if (!out.write(`${line}\n`)) await once(out, 'drain');
  };
  const counts: CollectionCount[] = [];
  // An import interrupted mid-swap is finished first: the export is then of one whole catalog.
  await finishInterruptedImport(db);
  await write(control(FORMAT, { version: FORMAT_VERSION, database: db.databaseName, exported_at: new Date() }));
  for (const name of await ownedCollections(db)) {
    const collection = db.collection(name);
    const indexes = (await collection.listIndexes().toArray())
      .filter((i) => i.name !== '_id_')
      .map(({ v: _v, ns: _ns, ...spec }) => spec);
    await write(control('collection', { name, indexes }));
    let count = 0;
    // promoteValues/promoteLongs off: an Int32, a Double and an Int64 stay what they are in the file.
    const cursor = collection.find({}, { batchSize: BATCH, promoteValues: false, promoteLongs: false, bsonRegExp: true });
    for await (const doc of cursor) {
      await write(EJSON.stringify(doc, { relaxed: false }));
      count++;
    }
    await write(control('end', { name, count }));
    counts.push({ name, count });
  }
  await write(control('end-of-export', { collections: counts.length, documents: counts.reduce((n, c) => n + c.count, 0) }));
  return counts;
}

interface Section {
  name: string;
  indexes: Index[];
  count: number;
}

type Line = { kind: 'document'; doc: Document } | { kind: 'collection'; name: string; indexes: Index[] } | { kind: 'end'; name: string; count: number };

/** Reads the file line by line: its header first, then collections, documents and trailers. `hash` sees every byte. */
async function* readDump(file: string, hash?: Hash): AsyncGenerator<Line & { at: number }> {
  const input = createReadStream(file);
  if (hash) input.on('data', (chunk) => hash.update(chunk));
  const lines = readline.createInterface({ input: input.setEncoding('utf8'), crlfDelay: Infinity });
  let at = 0;
  let header = false;
  let finished = false;
  for await (const text of lines) {
    at++;
    if (text.trim() === '') continue;
    if (finished) throw new DumpFileError(file, at, 'text after the end-of-export line');
    let value: unknown;
    try {
      // Documents keep their exact types; control lines (arrays) read numbers as numbers.
      const json: unknown = JSON.parse(text);
      value = EJSON.deserialize(json as Document, { relaxed: Array.isArray(json) });
    } catch (e) {
      throw new DumpFileError(file, at, `not Extended JSON (${(e as Error).message})`);
    }
    if (!header) {
      header = true;
      const [kind, body] = Array.isArray(value) ? (value as [unknown, Document]) : [];
      if (kind !== FORMAT) throw new DumpFileError(file, at, `not a registry-db export (the first line should be ["${FORMAT}", {...}])`);
      if (body?.version !== FORMAT_VERSION) throw new DumpFileError(file, at, `export format version ${String(body?.version)} (this version reads ${FORMAT_VERSION})`);
      continue;
    }
    if (!Array.isArray(value)) {
      if (typeof value !== 'object' || value === null) throw new DumpFileError(file, at, 'expected a document or a control line');
      yield { kind: 'document', doc: value as Document, at };
      continue;
    }
    const [kind, body] = value as [string, Document];
    if (kind === 'collection' && typeof body?.name === 'string' && Array.isArray(body.indexes)) yield { kind, name: body.name, indexes: body.indexes as Index[], at };
    else if (kind === 'end' && typeof body?.name === 'string' && Number.isSafeInteger(body.count)) yield { kind, name: body.name, count: body.count as number, at };
    else if (kind === 'end-of-export') finished = true;
    else throw new DumpFileError(file, at, `unknown control line ${text.slice(0, 80)}`);
  }
  if (!header) throw new DumpFileError(file, at, 'empty file');
  if (!finished) throw new DumpFileError(file, at, 'ends without the end-of-export line (truncated?)');
}

/** One thing wrong with a document of an export. */
export interface ImportProblem {
  line: number;
  collection: string;
  id?: unknown;
  problem: string;
}

/**
 * What the importing domain checks beyond what no database stores (src/registries/import-rules.ts for the
 * catalog): `check` sees each document of its collections as the service reads it (the driver's promotions:
 * Int32, Int64 and Double are numbers), `finish` what is wrong across documents once all were seen.
 */
export interface ImportRules {
  /** The collections it checks. They are replaced together: a file naming one of them replaces all, those it lacks by empty ones. */
  readonly collections: readonly string[];
  check(collection: string, doc: Document, line: number): ImportProblem[];
  finish(): ImportProblem[];
}

/** Problems listed in the error message; the rest are counted. */
const SHOWN_PROBLEMS = 20;

export class ImportInvalidError extends Error {
  constructor(file: string, readonly problems: ImportProblem[], readonly total: number) {
    const shown = problems.slice(0, SHOWN_PROBLEMS).map((p) => `  ${describeProblem(p)}`);
    if (total > shown.length) shown.push(`  ... and ${total - shown.length} more`);
    super(`${file}: ${total} problem${total === 1 ? '' : 's'} found; nothing was imported, the database is as it was:\n${shown.join('\n')}`);
    this.name = 'ImportInvalidError';
  }
}

/** A write failed before the new collections were swapped in: nothing in use was changed. */
export class ImportWriteError extends Error {
  constructor(message: string) {
    super(`${message}; nothing was imported, the database is as it was`);
    this.name = 'ImportWriteError';
  }
}

function describeProblem(p: ImportProblem): string {
  return `line ${p.line}: ${p.collection}${p.id === undefined ? '' : ` ${showId(p.id)}`}: ${p.problem}`;
}

/** Why a collection of the file cannot be imported under its name, or undefined. */
function badCollectionName(name: string): string | undefined {
  if (name === '' || name.startsWith('system.') || name.startsWith(IMPORT_PREFIX) || /[.$\u0000]/.test(name)) {
    return `collection name ${JSON.stringify(name)} cannot be imported (empty, "system." or "${IMPORT_PREFIX}" at its start, or ".", "$" or NUL in it)`;
  }
  return undefined;
}

/** The document as the service reads it (the driver's default promotions), or undefined when it cannot be encoded. */
function asRead(doc: Document): Document | undefined {
  try {
    return BSON.deserialize(BSON.serialize(doc));
  } catch {
    return undefined;
  }
}

/** Problems of one document: what no backend stores, then (when it can be read at all) the rules'. */
function checkDocument(collection: string, doc: Document, line: number, rules: ImportRules | undefined): ImportProblem[] {
  const out: ImportProblem[] = storableProblems(doc).map((problem) => ({ line, collection, id: doc._id, problem }));
  if (!rules?.collections.includes(collection)) return out;
  const read = asRead(doc);
  if (read) out.push(...rules.check(collection, read, line));
  return out;
}

/** At most this many problems are kept (the rest are counted): a file of garbage must not fill the memory. */
const KEPT_PROBLEMS = 1000;

/**
 * First pass: the whole file is well-formed, its counts match its documents, and every document passes the
 * checks. Returns its collections and the file's SHA-256 (the second pass checks it read the same bytes).
 */
export async function checkDump(file: string, rules?: ImportRules): Promise<{ sections: Section[]; digest: string }> {
  const sections: Section[] = [];
  const problems: ImportProblem[] = [];
  let total = 0;
  const note = (found: ImportProblem[]) => {
    total += found.length;
    problems.push(...found.slice(0, Math.max(0, KEPT_PROBLEMS - problems.length)));
  };
  const hash = createHash('sha256');
  let open: (Section & { seen: number }) | undefined;
  for await (const line of readDump(file, hash)) {
    if (line.kind === 'collection') {
      if (open) throw new DumpFileError(file, line.at, `collection ${line.name} starts before ${open.name} ended`);
      if (sections.some((s) => s.name === line.name)) throw new DumpFileError(file, line.at, `collection ${line.name} appears twice`);
      const bad = badCollectionName(line.name);
      if (bad) throw new DumpFileError(file, line.at, bad);
      open = { name: line.name, indexes: line.indexes, count: 0, seen: 0 };
    } else if (line.kind === 'document') {
      if (!open) throw new DumpFileError(file, line.at, 'a document outside any collection');
      open.seen++;
      note(checkDocument(open.name, line.doc, line.at, rules));
    } else {
      if (!open || open.name !== line.name) throw new DumpFileError(file, line.at, `end of ${line.name}, which is not the open collection`);
      if (open.seen !== line.count) throw new DumpFileError(file, line.at, `${line.name} has ${open.seen} documents but its end line says ${line.count}`);
      sections.push({ name: open.name, indexes: open.indexes, count: line.count });
      open = undefined;
    }
  }
  if (open) throw new DumpFileError(file, 0, `collection ${open.name} never ends`);
  if (rules) note(rules.finish());
  if (total > 0) throw new ImportInvalidError(file, problems.sort((a, b) => a.line - b.line), total);
  return { sections, digest: hash.digest('hex') };
}

export interface ImportOptions {
  /** Replace collections that hold documents (without it, such a target is refused). */
  force?: boolean;
  rules?: ImportRules;
  /** Progress: "checked", "staged NAME", "swapped NAME" (the CLI logs it). */
  onStep?: (step: string) => void | Promise<void>;
}

/** The bulk insert's refusal as a message naming the document's line and _id. */
function refusal(file: string, collection: string, e: unknown, docs: Document[], lines: number[]): ImportWriteError {
  if (e instanceof MongoBulkWriteError) {
    const first = Array.isArray(e.writeErrors) ? e.writeErrors[0] : e.writeErrors;
    const i = first?.index;
    if (i !== undefined && docs[i]) {
      return new ImportWriteError(`${file}, line ${lines[i]}: ${collection} ${showId(docs[i]!._id)}: the database refused it (${first!.errmsg ?? e.message})`);
    }
  }
  return new ImportWriteError(`writing ${collection} failed (${(e as Error).message})`);
}

/**
 * Second pass: writes the file's collections under temporary names (and `empty` ones as empty collections),
 * with their indexes, and checks each count. Answers what was written.
 */
async function stage(db: Db, file: string, token: string, sections: Section[], empty: string[], opts: ImportOptions): Promise<{ counts: CollectionCount[]; digest: string }> {
  const counts: CollectionCount[] = [];
  let current: Section | undefined;
  let docs: Document[] = [];
  let lines: number[] = [];
  const flush = async (): Promise<void> => {
    if (docs.length === 0) return;
    try {
      await db.collection(stagedName(token, current!.name)).insertMany(docs, { ordered: true });
    } catch (e) {
      throw refusal(file, current!.name, e, docs, lines);
    }
    docs = [];
    lines = [];
  };
  const hash = createHash('sha256');
  for await (const line of readDump(file, hash)) {
    if (line.kind === 'collection') {
      current = sections.find((s) => s.name === line.name)!;
    } else if (line.kind === 'document') {
      docs.push(line.doc);
      lines.push(line.at);
      if (docs.length >= BATCH) await flush();
    } else {
      await flush();
      counts.push(await finishStaged(db, token, current!, line.count));
      await opts.onStep?.(`staged ${line.name}`);
    }
  }
  for (const name of empty) {
    await db.createCollection(stagedName(token, name));
    counts.push({ name, count: 0 });
  }
  return { counts, digest: hash.digest('hex') };
}

/** Creates the staged collection's indexes (and the collection, when empty) and compares its count with the file's. */
async function finishStaged(db: Db, token: string, section: Section, expected: number): Promise<CollectionCount> {
  const staged = db.collection(stagedName(token, section.name));
  if (expected === 0) await db.createCollection(staged.collectionName);
  if (section.indexes.length > 0) {
    await ensureIndexes(staged, section.indexes).catch((e: Error) => {
      throw new ImportWriteError(`creating the indexes of ${section.name} failed (${e.message})`);
    });
  }
  const count = await staged.countDocuments({});
  if (count !== expected) throw new ImportWriteError(`${section.name}: the database holds ${count} documents after writing, the file ${expected}`);
  return { name: section.name, count };
}

/**
 * Imports an export into `db`, all or nothing. Refuses (ImportRefusedError, nothing written) when any
 * collection it would replace holds documents, unless `force`. Collections of the database that the file
 * does not name are left alone, except the rules' collections, which are replaced together.
 */
export async function importDatabase(db: Db, file: string, opts: ImportOptions = {}): Promise<CollectionCount[]> {
  const { sections, digest } = await checkDump(file, opts.rules);
  await opts.onStep?.('checked');
  // A committed import that was interrupted is finished; what an uncommitted one left behind is dropped.
  await finishInterruptedImport(db);
  await dropStaged(db);
  const named = sections.map((s) => s.name);
  const together = opts.rules?.collections ?? [];
  const empty = together.some((n) => named.includes(n)) ? together.filter((n) => !named.includes(n)) : [];
  const nonEmpty: CollectionCount[] = [];
  for (const name of [...named, ...empty]) {
    const count = await db.collection(name).countDocuments({});
    if (count > 0) nonEmpty.push({ name, count });
  }
  if (nonEmpty.length > 0 && !opts.force) throw new ImportRefusedError(nonEmpty);
  const token = newToken();
  let counts: CollectionCount[];
  try {
    const staged = await stage(db, file, token, sections, empty, opts);
    if (staged.digest !== digest) throw new ImportWriteError(`${file} changed while it was imported`);
    counts = staged.counts;
    await renewEpochs(db, named, (name) => stagedName(token, name));
  } catch (e) {
    await dropStaged(db, token).catch(() => undefined);
    throw e;
  }
  try {
    await swapIn(db, token, [...named, ...empty], (name) => opts.onStep?.(`swapped ${name}`));
  } catch (e) {
    throw new Error(`the new collections are written, but swapping them in stopped (${(e as Error).message}); the next db:import or start of the service finishes the swap`);
  }
  return counts;
}
