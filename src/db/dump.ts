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
 * The import reads the file twice: first to check it whole (a truncated or edited file changes nothing),
 * then to write it; after each collection it compares the database's count with the file's. An imported
 * change log gets a new epoch (src/db/changelog.ts): the only change an import makes to what it reads, so
 * that followers of the exported catalog see a restore as another history and list it again.
 */
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import readline from 'node:readline';
import type { Writable } from 'node:stream';
import { BSON, type Db, type Document, type IndexDescription } from 'mongodb';
import { renewEpochs } from './changelog';
import { ensureIndexes } from './indexes';

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

/** The collections the service owns in its database: all of them but the server's own. */
export async function ownedCollections(db: Db): Promise<string[]> {
  const infos = await db.listCollections({}, { nameOnly: true }).toArray();
  return infos
    .filter((c) => (c.type === undefined || c.type === 'collection') && !c.name.startsWith('system.'))
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

/** Reads the file line by line: its header first, then collections, documents and trailers. */
async function* readDump(file: string): AsyncGenerator<Line & { at: number }> {
  const lines = readline.createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
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

/** First pass: the whole file is well-formed and its counts match its documents. Returns its collections. */
export async function checkDump(file: string): Promise<Section[]> {
  const sections: Section[] = [];
  let open: (Section & { seen: number }) | undefined;
  for await (const line of readDump(file)) {
    if (line.kind === 'collection') {
      if (open) throw new DumpFileError(file, line.at, `collection ${line.name} starts before ${open.name} ended`);
      if (sections.some((s) => s.name === line.name)) throw new DumpFileError(file, line.at, `collection ${line.name} appears twice`);
      open = { name: line.name, indexes: line.indexes, count: 0, seen: 0 };
    } else if (line.kind === 'document') {
      if (!open) throw new DumpFileError(file, line.at, 'a document outside any collection');
      open.seen++;
    } else {
      if (!open || open.name !== line.name) throw new DumpFileError(file, line.at, `end of ${line.name}, which is not the open collection`);
      if (open.seen !== line.count) throw new DumpFileError(file, line.at, `${line.name} has ${open.seen} documents but its end line says ${line.count}`);
      sections.push({ name: open.name, indexes: open.indexes, count: line.count });
      open = undefined;
    }
  }
  if (open) throw new DumpFileError(file, 0, `collection ${open.name} never ends`);
  return sections;
}

/**
 * Imports an export into `db`. Refuses (ImportRefusedError, nothing written) when any collection of the
 * file already holds documents, unless `force`, which empties each of those collections first.
 * Collections of the database that the file does not name are left alone.
 */
export async function importDatabase(db: Db, file: string, opts: { force?: boolean } = {}): Promise<CollectionCount[]> {
  const sections = await checkDump(file);
  const nonEmpty: CollectionCount[] = [];
  for (const { name } of sections) {
    const count = await db.collection(name).countDocuments({});
    if (count > 0) nonEmpty.push({ name, count });
  }
  if (nonEmpty.length > 0 && !opts.force) throw new ImportRefusedError(nonEmpty);
  const done: CollectionCount[] = [];
  let batch: Document[] = [];
  let current: Section | undefined;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    await db.collection(current!.name).insertMany(batch, { ordered: true });
    batch = [];
  };
  for await (const line of readDump(file)) {
    if (line.kind === 'collection') {
      current = sections.find((s) => s.name === line.name)!;
      if (nonEmpty.some((c) => c.name === line.name)) await db.collection(line.name).deleteMany({});
    } else if (line.kind === 'document') {
      batch.push(line.doc);
      if (batch.length >= BATCH) await flush();
    } else {
      await flush();
      const collection = db.collection(line.name);
      if (line.count === 0) await db.createCollection(line.name).catch(() => undefined); // keep empty collections (and their indexes)
      if (current!.indexes.length > 0) await ensureIndexes(collection, current!.indexes);
      const count = await collection.countDocuments({});
      if (count !== line.count) throw new Error(`${line.name}: the database holds ${count} documents after the import, the file ${line.count}`);
      done.push({ name: line.name, count });
    }
  }
  await renewEpochs(db, done.map((c) => c.name));
  return done;
}
