/**
 * The database's document size limit (16 MiB of BSON, on MongoDB and on FerretDB) and the size of a document
 * as the driver sends it, so that a write can be refused with a clear answer before the database refuses it.
 */
import { BSON, type Document } from 'mongodb';

export const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;

/** Bytes `doc` takes as BSON (what counts against MAX_DOCUMENT_BYTES). */
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
