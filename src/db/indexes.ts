/**
 * Idempotent index creation. FerretDB v1 drops the connection (a handler panic) when createIndexes names
 * indexes that already exist, so only the missing ones are created; a race with another replica starting
 * at the same moment is settled by listing again.
 */
import type { Collection, Document, IndexDescription } from 'mongodb';

async function existing(collection: Collection<any>): Promise<Set<string>> {
  try {
    return new Set((await collection.listIndexes().toArray()).map((i: Document) => String(i.name)));
  } catch (e) {
    // A collection that does not exist yet has no indexes.
    if ((e as { code?: number }).code === 26) return new Set();
    throw e;
  }
}

export async function ensureIndexes(collection: Collection<any>, indexes: Array<IndexDescription & { name: string }>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const have = await existing(collection);
    const missing = indexes.filter((i) => !have.has(i.name));
    if (missing.length === 0) return;
    try {
      await collection.createIndexes(missing);
      return;
    } catch (e) {
      if (attempt >= 2) throw e;
    }
  }
}
