/**
 * Replacing a set of collections all at once (db:import), on backends without multi-document transactions
 * and without `renameCollection`'s `dropTarget` (FerretDB v1 answers "not implemented"):
 *
 * 1. the new contents are written under temporary names (`__import_<token>_new_<name>`) and checked; a
 *    failure up to here drops them, and the collections in use were never touched;
 * 2. a journal document records which collections are to be swapped: the commit point;
 * 3. each collection in use is renamed out of the way (`__import_<token>_old_<name>`) and its new content
 *    renamed in (renames keep the indexes); then the old ones are dropped and the journal removed.
 *
 * A process that dies after the commit point leaves the journal: the next import, export or service start
 * finishes the swap (finishInterruptedImport), so the catalog is either wholly the old one or wholly the new.
 * Names with the `__import_` prefix are never the service's (ownedCollections leaves them out).
 */
import { randomBytes } from 'node:crypto';
import { MongoServerError, type Db } from 'mongodb';

export const IMPORT_PREFIX = '__import_';
const JOURNAL = `${IMPORT_PREFIX}journal`;
const JOURNAL_ID = 'swap';

interface Journal {
  _id: string;
  token: string;
  names: string[];
  at: Date;
}

export const stagedName = (token: string, name: string): string => `${IMPORT_PREFIX}${token}_new_${name}`;
const oldName = (token: string, name: string): string => `${IMPORT_PREFIX}${token}_old_${name}`;

/** A token for one import's temporary collections. */
export const newToken = (): string => randomBytes(6).toString('hex');

async function collectionNames(db: Db): Promise<Set<string>> {
  return new Set((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name));
}

async function rename(db: Db, from: string, to: string): Promise<void> {
  await db.renameCollection(from, to);
}

/** Drops every temporary collection of `token` (a failed import), or of any import when no token is given. */
export async function dropStaged(db: Db, token?: string): Promise<string[]> {
  const prefix = token === undefined ? IMPORT_PREFIX : `${IMPORT_PREFIX}${token}_`;
  const gone: string[] = [];
  for (const name of await collectionNames(db)) {
    if (!name.startsWith(prefix) || name === JOURNAL) continue;
    await db.dropCollection(name).catch(() => undefined);
    gone.push(name);
  }
  return gone;
}

/** Commits the swap of `names` (their new contents are complete under stagedName), then performs it. */
export async function swapIn(db: Db, token: string, names: string[], onSwapped: (name: string) => Promise<void> | void = () => undefined): Promise<void> {
  const journal: Journal = { _id: JOURNAL_ID, token, names, at: new Date() };
  await db.collection<Journal>(JOURNAL).insertOne(journal);
  await performSwap(db, journal, onSwapped);
}

/** Brings every collection of the journal to its new content (idempotent: picks up wherever a swap stopped). */
async function performSwap(db: Db, journal: Journal, onSwapped: (name: string) => Promise<void> | void): Promise<void> {
  const { token, names } = journal;
  let present = await collectionNames(db);
  for (const name of names) {
    const staged = stagedName(token, name);
    if (!present.has(staged)) continue; // swapped in already
    const old = oldName(token, name);
    if (present.has(name)) {
      if (present.has(old)) throw new Error(`finishing the import: both ${name} and ${old} exist (was ${name} created while the import swapped?); the new content is in ${staged}`);
      await rename(db, name, old);
    }
    await rename(db, staged, name);
    await onSwapped(name);
  }
  present = await collectionNames(db);
  for (const name of names) if (present.has(oldName(token, name))) await db.dropCollection(oldName(token, name));
  await db.collection(JOURNAL).drop().catch(() => undefined);
}

/**
 * Finishes an import that was interrupted after its commit point (see above); answers the collections it
 * swapped in, or undefined when there was none. Two processes finishing at once (replicas starting) are
 * fine: a rename the other one did first is seen on the next round.
 */
export async function finishInterruptedImport(db: Db): Promise<string[] | undefined> {
  for (let attempt = 0; ; attempt++) {
    const journal = await db.collection<Journal>(JOURNAL).findOne({ _id: JOURNAL_ID });
    if (!journal) return undefined;
    try {
      await performSwap(db, journal, () => undefined);
      return journal.names;
    } catch (e) {
      // 26: the source is gone, 48: the target exists: another process moved it meanwhile.
      const raced = e instanceof MongoServerError && (e.code === 26 || e.code === 48);
      if (!raced || attempt >= 3) throw e;
    }
  }
}
