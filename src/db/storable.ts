/**
 * What the databases this service runs on refuse in a document, found before anything is written (db:import
 * checks every document of an export with it): field names starting with `$` or holding `.` (FerretDB v1
 * refuses them at any depth, MongoDB at the top level), a NUL in a field name (BSON cannot encode it), an
 * `_id` that is missing or of a type no `_id` may have, and documents over BSON's 16 MiB (also checked by the
 * write path, which answers 413 before the database refuses an entry).
 */
import { BSON, type Document } from 'mongodb';

/** The largest document BSON (and so every MongoDB-compatible server) stores. */
export const MAX_BSON_DOCUMENT_BYTES = 16 * 1024 * 1024;

/** Bytes `doc` takes as BSON (what counts against MAX_BSON_DOCUMENT_BYTES). */
export function bsonSize(doc: Document): number {
  return BSON.calculateObjectSize(doc);
}

/** The top-level field of `doc` that takes the most bytes, and how many. */
export function largestField(doc: Document): { field: string; bytes: number } | undefined {
  let largest: { field: string; bytes: number } | undefined;
  for (const [field, value] of Object.entries(doc)) {
    const bytes = bsonSize({ [field]: value });
    if (!largest || bytes > largest.bytes) largest = { field, bytes };
  }
  return largest;
}

const MAX_DEPTH = 100;

/** The first field name at any depth that no backend accepts, as a JSON Pointer with the reason; or undefined. */
export function illegalKey(value: unknown, at = '', depth = 0): string | undefined {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return undefined;
  // BSON values (ObjectId, Date, Binary, Int32...) are leaves; only plain objects and arrays have fields.
  if (!Array.isArray(value) && Object.getPrototypeOf(value) !== Object.prototype) return undefined;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const path = `${at}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`;
    if (!Array.isArray(value)) {
      if (k.startsWith('$')) return `${path}: a field name may not start with "$"`;
      if (k.includes('.')) return `${path}: a field name may not contain "."`;
      if (k.includes('\u0000')) return `${path}: a field name may not contain a NUL character`;
    }
    const inner = illegalKey(v, path, depth + 1);
    if (inner) return inner;
  }
  return undefined;
}

/** Why `doc._id` cannot be stored, or undefined. */
export function illegalId(doc: Document): string | undefined {
  if (!Object.hasOwn(doc, '_id') || doc._id === undefined) return 'has no _id';
  const id: unknown = doc._id;
  if (Array.isArray(id)) return '_id may not be an array';
  if (id instanceof RegExp || id instanceof BSON.BSONRegExp) return '_id may not be a regular expression';
  return undefined;
}

/** Every reason `doc` cannot be stored as it is (empty: it can, as far as can be told without writing it). */
export function storableProblems(doc: Document): string[] {
  const out: string[] = [];
  const id = illegalId(doc);
  if (id) out.push(id);
  const key = illegalKey(doc);
  if (key) out.push(key);
  const size = bsonSize(doc);
  if (size > MAX_BSON_DOCUMENT_BYTES) out.push(`is ${size} bytes as BSON, over the ${MAX_BSON_DOCUMENT_BYTES}-byte limit of a document`);
  return out;
}

/** An `_id` as a short readable text for messages. */
export function showId(id: unknown): string {
  const text = BSON.EJSON.stringify(id as Document, { relaxed: true }) ?? String(id);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
