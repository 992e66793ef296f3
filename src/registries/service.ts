/**
 * Registry use cases: create, read, update, delete, query and onboard. Every write goes through the same
 * schema validation; updates are planned on the entry as read and re-planned when another writer got in
 * first (the change log's per-entry check, src/registries/writes.ts), so concurrent updates never lose
 * each other's changes.
 */
import { randomUUID } from 'node:crypto';
import { bsonSize, largestField, MAX_BSON_DOCUMENT_BYTES } from '../db/storable';
import { ConflictError, InputError, NotFoundError, PayloadTooLargeError, PreconditionFailedError, type FieldError } from '../errors';
import { pointer } from '../lib/json-pointer';
import { KeyedMutex } from '../lib/keyed-mutex';
import { readOnlyPaths, validateEntry } from '../schemas';
import type { CredentialCipher, PlainCredentials } from './credentials';
import { normaliseEntry, originPeer, type Entry, type StoredRegistry } from './model';
import { encodeCursor, parseMinRevision, parseQueryPlan, type QueryPlan } from './query';
import type { EntryWritePlan, RegistryRepository } from './repository';
import { entryBusy, WRITE_DEADLINE_MS } from './writes';
import { credentialScopeChanged, planCredentials } from './credentials';
import { applyUpdate, parseUpdate, type UpdateOps } from './update';

const CREDS = 'container_registry_credentials';
const URL_FIELD = 'container_registry_public_url';
const PREFIX = 'container_registry_image_prefix';

export interface QueryPage {
  items: StoredRegistry[];
  nextCursor?: string;
  /** The catalog revision the answer includes every change up to (X-Catalog-Revision), when known. */
  revision?: number;
}

/**
 * Where queries can be answered without the database (the in-memory view, src/feed/reads.ts): the rows
 * RegistryRepository.query would return and the revision they reflect, or undefined to use the database.
 */
export interface FastReads {
  query(plan: QueryPlan): Promise<{ rows: StoredRegistry[]; revision: number } | undefined>;
  /** Entry `id` (null: none) as of the revision answered, under the same rule as query; undefined to use the database. */
  get(id: string, minRevision?: number): Promise<{ doc: StoredRegistry | null; revision: number } | undefined>;
  /** The revision a database-served answer is known to include, if any. */
  revisionFloor(): number | undefined;
}

export type OnboardOutcome = 'created' | 'updated' | 'unchanged';
export type OnboardResult = { outcome: OnboardOutcome; id: string };

/** What a new entry stores besides the service-owned fields. */
type NewFields = Omit<StoredRegistry, '_id' | 'version' | 'created_at' | 'updated_at' | 'container_registry_health'>;

/** Entries onboarded per batch: one lookup query and one insertMany each. */
export const ONBOARD_BATCH = 500;

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** host[:port] of a registry URL, as used in image references. */
export function derivePrefix(url: string): string {
  return new URL(url).host;
}

/** The derived prefix of a URL, or undefined when the URL is not one (validation names it). */
function prefixOf(url: unknown): string | undefined {
  try {
    return typeof url === 'string' ? derivePrefix(url) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The image prefix follows the URL when it was derived from it (equal to the old URL's host:port) and the
 * update does not set one; an explicitly set prefix stays; a removed one is derived again.
 */
function followUrl(before: Record<string, unknown>, after: Record<string, unknown>, ops: UpdateOps): void {
  const derived = before[PREFIX] === undefined || before[PREFIX] === prefixOf(before[URL_FIELD]);
  if (after[PREFIX] === undefined || (derived && !ops.set.has(PREFIX))) {
    const prefix = prefixOf(after[URL_FIELD]);
    if (prefix !== undefined) after[PREFIX] = prefix;
  }
}

/** Stable JSON (sorted keys), to tell whether two documents differ. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (isObject(v)) {
    return `{${Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export class RegistryService {
  private readonly locks = new KeyedMutex();
  /** Set by the composition root once the change feed runs. */
  fastReads?: FastReads;

  constructor(
    private readonly repo: RegistryRepository,
    private readonly cipher: CredentialCipher,
  ) {}

  /** Read-only fields present in a client document, each named (clearer than "unknown field"). */
  private readOnlyErrors(body: Record<string, unknown>): FieldError[] {
    return readOnlyPaths
      .filter((p) => {
        const [top, sub] = p.split('.');
        const v = body[top!];
        return sub === undefined ? v !== undefined : isObject(v) && v[sub] !== undefined;
      })
      .map((p) => ({ path: '/' + p.replace('.', '/'), message: `${p} is read-only` }));
  }

  /** Validates a client document and builds what is stored (used by create and by onboarding). */
  private prepareNew(body: unknown): { id: string; fields: NewFields } {
    if (!isObject(body)) throw new InputError('The registry entry must be a JSON object.', [{ path: '/', message: 'must be an object' }]);
    // Report read-only fields and schema problems together, so one round trip shows everything to fix.
    const errors = this.readOnlyErrors(body);
    const rest: Record<string, unknown> = structuredClone(body);
    for (const e of errors) {
      const [top, sub] = e.path.slice(1).split('/');
      if (sub === undefined) delete rest[top!];
      else delete (rest[top!] as Record<string, unknown>)[sub];
    }
    normaliseEntry(rest);
    try {
      validateEntry(rest);
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      errors.push(...(e.errors ?? []));
    }
    if (errors.length > 0) throw new InputError(`The registry entry is invalid: ${errors.map((e) => `${e.path} ${e.message}`).join('; ')}`, errors);
    const entry = rest as unknown as Entry;
    const { container_registry_id, container_registry_credentials, ...fieldsIn } = entry;
    const fields: Record<string, unknown> = { ...fieldsIn };
    fields.container_registry_image_prefix ??= derivePrefix(entry.container_registry_public_url);
    if (container_registry_credentials) fields[CREDS] = this.cipher.seal(container_registry_credentials);
    const id = container_registry_id ?? randomUUID();
    checkEntrySize(newDocument(id, fields as NewFields), 'The entry');
    return { id, fields: fields as NewFields };
  }

  async create(body: unknown): Promise<StoredRegistry> {
    const { id, fields } = this.prepareNew(body);
    return this.repo.insert(newDocument(id, fields));
  }

  /** Entry `id` from the database (what a probe or a write starts from). */
  async get(id: string): Promise<StoredRegistry> {
    const doc = await this.repo.findById(id);
    if (!doc) throw notFound(id);
    return doc;
  }

  /**
   * A client's read of entry `id` (GET): from the view when it holds every write this replica acknowledged
   * and `query.min_revision` (waited for up to 5 s, as queries do); else from the database, but never older
   * than the state the feed holds (the collection trails the log while a write is between its two steps).
   */
  async read(id: string, query: Record<string, unknown>): Promise<{ doc: StoredRegistry; revision?: number } | { doc: null; revision: number; missing: NotFoundError }> {
    const min = parseMinRevision(query);
    const fast = await this.fastReads?.get(id, min);
    if (fast) {
      // Absent as of the view's revision: the 404 says which (a client may ask again with min_revision).
      if (!fast.doc) return { doc: null, revision: fast.revision, missing: notFound(id) };
      return { doc: fast.doc, revision: fast.revision };
    }
    // The collection, never older than the state this replica's feed holds (EntryWriter.read).
    const doc = await this.repo.findById(id);
    if (!doc) throw notFound(id);
    return { doc };
  }

  /** The client-writable part of a stored entry; the sealed credentials are not part of it (see update()). */
  private logicalOf(doc: StoredRegistry): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(doc)) {
      if (k === '_id' || k === CREDS || k.startsWith('_') || readOnlyPaths.includes(k)) continue;
      out[k] = structuredClone(v);
    }
    const storage = out.container_registry_storage_info;
    if (isObject(storage)) delete storage.observed;
    return out;
  }

  /**
   * Applies an update body to entry `id`. `ifMatch` (a version) makes it conditional: 412 when stale.
   * Without it, a concurrent write makes this re-read and re-apply (repository.modify), so no change is lost.
   *
   * The stored credentials never pass through the document the update is applied to: no value a client can
   * send stands for them. They are kept when the update does not mention them and the registry's scope
   * (origin, TLS trust) stays; replaced by a whole new {username, password}; removed by `$unset`.
   */
  async update(id: string, body: unknown, ifMatch?: number): Promise<StoredRegistry> {
    const ops = parseUpdate(body);
    return this.writeEntry(id, (current) => {
      if (!current) throw notFound(id);
      refuseMirrored(current, 'updated');
      if (ifMatch !== undefined && current.version !== ifMatch) throw stale(id, current.version);
      const before = this.logicalOf(current);
      const after = applyUpdate(before, ops);
      followUrl(before, after, ops);
      normaliseEntry(after);
      try {
        validateEntry(after);
      } catch (e) {
        if (e instanceof InputError) throw new InputError(`The updated entry would be invalid: ${e.message}`, e.errors);
        throw e;
      }
      const given = after[CREDS] as PlainCredentials | undefined;
      delete after[CREDS];
      const creds = planCredentials(current[CREDS] !== undefined, given, ops.unset.has(CREDS), credentialScopeChanged(before, after));
      if (canonical(after) === canonical(before) && creds === 'keep') return { kind: 'none', result: current };

      const next = { ...current } as Record<string, unknown>;
      for (const k of Object.keys(before)) delete next[k];
      Object.assign(next, after);
      if (creds === 'replace') next[CREDS] = this.cipher.seal(given!);
      else if (creds === 'drop') delete next[CREDS];
      if (isObject(after.container_registry_storage_info) || current.container_registry_storage_info?.observed) {
        const storage = { ...((after.container_registry_storage_info as object) ?? {}) } as Record<string, unknown>;
        if (current.container_registry_storage_info?.observed) storage.observed = current.container_registry_storage_info.observed;
        next.container_registry_storage_info = storage;
      }
      next.version = current.version + 1;
      next.updated_at = new Date().toISOString();
      checkEntrySize(next, 'The updated entry');
      const stored = next as unknown as StoredRegistry;
      return { kind: 'replace', next: stored, result: stored };
    });
  }

  async remove(id: string, ifMatch?: number): Promise<void> {
    await this.writeEntry(id, (current) => {
      if (!current) throw notFound(id);
      refuseMirrored(current, 'deleted');
      if (ifMatch !== undefined && current.version !== ifMatch) throw stale(id, current.version);
      return { kind: 'delete', result: undefined };
    });
  }

  /**
   * A client's write of entry `id`: in turn with this process's other writes of it (then the database's
   * check settles it with other replicas), within WRITE_DEADLINE_MS of the request, the wait for the turn
   * included; a 503 "try again" after that, with nothing written.
   */
  private writeEntry<R>(id: string, plan: (doc: StoredRegistry | null) => EntryWritePlan<R>): Promise<R> {
    const giveUpAt = Date.now() + WRITE_DEADLINE_MS;
    return this.locks.run(id, () => this.repo.modify(id, plan, undefined, giveUpAt), { at: giveUpAt, error: () => entryBusy(id) });
  }

  async query(body: unknown, query: Record<string, unknown>): Promise<QueryPage> {
    const plan = parseQueryPlan(body, query);
    const fast = await this.fastReads?.query(plan);
    const revision = fast?.revision ?? this.fastReads?.revisionFloor();
    const rows = fast ? fast.rows : await this.repo.query(plan);
    // Answered from the collection, which may be ahead of the view: later reads here show at least as much.
    if (!fast) this.repo.writer.answered(rows.reduce((m, d) => Math.max(m, typeof d.revision === 'number' ? d.revision : 0), 0));
    const items = rows.slice(0, plan.limit);
    let nextCursor: string | undefined;
    if (rows.length > plan.limit) {
      const last = items[items.length - 1]!;
      const key = plan.sort.dbField.split('.').reduce<unknown>((o, k) => (isObject(o) ? o[k] : undefined), last) as string | number;
      nextCursor = encodeCursor(plan.sort, plan.sort.dbField === '_id' ? last._id : key, last._id);
    }
    // The sort key was fetched for the cursor; drop it when the client did not ask for it.
    const sortTop = plan.sort.dbField.split('.')[0]!;
    if (plan.fields && sortTop !== '_id' && !plan.fields.includes(sortTop)) {
      for (const item of items) delete (item as unknown as Record<string, unknown>)[sortTop];
    }
    return { items, nextCursor, revision };
  }

  /**
   * Onboarding (seed script): upsert by container_registry_id, else by name, through the same validation.
   * `dryRun` decides and reports without writing.
   */
  async onboard(body: unknown, dryRun: boolean): Promise<OnboardResult> {
    const prepared = this.prepareNew(body);
    const hasId = isObject(body) && body.container_registry_id !== undefined;
    const existing = hasId ? await this.repo.findById(prepared.id) : await this.repo.findByName(prepared.fields.container_registry_name);
    return this.onboardPrepared(body, prepared, existing, dryRun);
  }

  /**
   * Onboarding of a batch, with the outcomes onboard() gives entry by entry in order, in fewer round trips:
   * new entries are inserted with one insertMany, one query reads the entries that exist (by id or by
   * name), and each run of consecutive entries found new there is written with one insertMany. An entry
   * that another entry of the batch touches first, or whose insert fails, goes through onboard() alone.
   * Each result is an outcome or the entry's error.
   */
  async onboardMany(bodies: unknown[], dryRun: boolean): Promise<Array<OnboardResult | { error: unknown }>> {
    const out: Array<OnboardResult | { error: unknown }> = [];
    const prepared = bodies.map((body, index) => {
      try {
        return { index, body, ...this.prepareNew(body), hasId: isObject(body) && body.container_registry_id !== undefined };
      } catch (error) {
        return { index, body, error };
      }
    });
    const valid = prepared.flatMap((p) => ('fields' in p ? [p] : []));
    // Insert first: an entry whose id and name no other entry of the batch uses is new unless the unique
    // indexes refuse it, so one insertMany settles the new entries without reading anything (the lookup
    // below is a collection scan on FerretDB v1). Only the refused ones are looked up.
    const inserted = new Set<number>();
    if (!dryRun) {
      const keysOf = (p: (typeof valid)[number]) => [`name:${p.fields.container_registry_name}`, ...(p.hasId ? [`id:${p.id}`] : [])];
      const uses = new Map<string, number>();
      for (const k of valid.flatMap(keysOf)) uses.set(k, (uses.get(k) ?? 0) + 1);
      const alone = valid.filter((p) => keysOf(p).every((k) => uses.get(k) === 1));
      const failed = alone.length > 0 ? await this.repo.insertMany(alone.map((p) => newDocument(p.id, p.fields))) : new Set<number>();
      for (const [k, p] of alone.entries()) {
        if (failed.has(k)) continue;
        inserted.add(p.index);
        out[p.index] = { outcome: 'created', id: p.id };
      }
    }
    const rest = valid.filter((p) => !inserted.has(p.index));
    const found = await this.repo.findByIdsOrNames(rest.filter((p) => p.hasId).map((p) => p.id), rest.map((p) => p.fields.container_registry_name));
    const byId = new Map(found.map((d) => [d._id, d]));
    const byName = new Map(found.map((d) => [d.container_registry_name, d]));
    const seen = new Set<string>();
    let fresh: Array<{ index: number; body: unknown; doc: StoredRegistry }> = [];
    const flush = async () => {
      const failed = dryRun || fresh.length === 0 ? new Set<number>() : await this.repo.insertMany(fresh.map((f) => f.doc));
      for (const [k, f] of fresh.entries()) {
        out[f.index] = failed.has(k) ? await this.onboard(f.body, dryRun).catch((error: unknown) => ({ error })) : { outcome: 'created', id: f.doc._id };
      }
      fresh = [];
    };
    for (const [index, p] of prepared.entries()) {
      if (inserted.has(index)) continue;
      if (!('fields' in p)) {
        await flush();
        out[index] = { error: p.error };
        continue;
      }
      const name = p.fields.container_registry_name;
      const existing = (p.hasId ? byId.get(p.id) : byName.get(name)) ?? null;
      // Read before the batch ran: stale once an earlier entry of the batch touched the same id or name.
      const touched = seen.has(`id:${p.id}`) || seen.has(`name:${name}`) || (existing !== null && (seen.has(`id:${existing._id}`) || seen.has(`name:${existing.container_registry_name}`)));
      for (const key of [`id:${p.id}`, `name:${name}`, ...(existing ? [`id:${existing._id}`, `name:${existing.container_registry_name}`] : [])]) seen.add(key);
      if (!touched && !existing && !byId.has(p.id) && !byName.has(name)) {
        fresh.push({ index, body: p.body, doc: newDocument(p.id, p.fields) });
        continue;
      }
      await flush();
      out[index] = await (touched ? this.onboard(p.body, dryRun) : this.onboardPrepared(p.body, p, existing, dryRun)).catch((error: unknown) => ({ error }));
    }
    await flush();
    return out;
  }

  private async onboardPrepared(body: unknown, prepared: { id: string; fields: NewFields }, existing: StoredRegistry | null, dryRun: boolean): Promise<OnboardResult> {
    const { id: givenId, fields } = prepared;
    if (!existing) {
      if (!dryRun) await this.repo.insert(newDocument(givenId, fields));
      return { outcome: 'created', id: givenId };
    }
    const before = this.logicalOf(existing);
    const { [CREDS]: _sealed, ...wanted } = fields as Record<string, unknown>;
    const plainCreds = (body as Entry).container_registry_credentials;
    const old = plainCreds && existing[CREDS] ? this.cipher.open(existing[CREDS]) : undefined;
    const sameCreds = plainCreds ? old?.username === plainCreds.username && old.password === plainCreds.password : existing[CREDS] === undefined;
    if (canonical(wanted) === canonical(before) && sameCreds) return { outcome: 'unchanged', id: existing._id };
    if (!dryRun) {
      // The file states the whole entry: its credentials are sent again (they may have to follow a new URL),
      // and an entry without them loses the stored ones.
      const $set: Record<string, unknown> = { ...wanted, ...(plainCreds ? { [CREDS]: plainCreds } : {}) };
      const $unset = Object.fromEntries([...Object.keys(before), CREDS].filter((k) => $set[k] === undefined && (k !== CREDS || existing[CREDS])).map((k) => [k, '']));
      await this.update(existing._id, Object.keys($unset).length > 0 ? { $set, $unset } : { $set });
    }
    return { outcome: 'updated', id: existing._id };
  }
}

/**
 * The largest entry, as stored (BSON): the database's document limit less 64 KiB of room for the change-log
 * record that carries the entry and for the service-owned fields that grow after a write (health, observed
 * storage: a few KiB by their schemas).
 */
export const MAX_ENTRY_BYTES = MAX_BSON_DOCUMENT_BYTES - 64 * 1024;

/** 413 naming the largest field when `doc` (a whole stored entry) is over MAX_ENTRY_BYTES. */
function checkEntrySize(doc: object, what: string): void {
  const bytes = bsonSize(doc);
  if (bytes <= MAX_ENTRY_BYTES) return;
  const largest = largestField(doc);
  const path = largest ? pointer(largest.field) : '/';
  throw new PayloadTooLargeError(
    `${what} would take ${bytes} bytes as stored (BSON); an entry may take at most ${MAX_ENTRY_BYTES} (the database's 16 MiB document limit, less room for its change record).${largest ? ` Its largest field is ${path} (${largest.bytes} bytes).` : ''}`,
    [{ path, message: `makes the entry ${bytes} bytes as stored; at most ${MAX_ENTRY_BYTES}` }],
  );
}

/** The stored document of a new entry (create and onboarding). */
function newDocument(id: string, fields: NewFields): StoredRegistry {
  const now = new Date().toISOString();
  return {
    _id: id,
    ...fields,
    container_registry_health: { status: 'unknown', consecutive_failures: 0 },
    created_at: now,
    updated_at: now,
    version: 1,
  } as StoredRegistry;
}

/** 409 for a client write (update, delete, health check) of an entry mirrored from a peer: the peer owns it. */
export function refuseMirrored(doc: StoredRegistry, what: string): void {
  const peer = originPeer(doc);
  if (peer === undefined) return;
  throw new ConflictError(`Entry ${doc._id} is mirrored from peer "${peer}" (${doc.container_registry_origin!.url}) and is read-only here: it can only be ${what} on that peer.`, [
    { path: '/container_registry_origin/peer', message: `owned by peer ${peer}` },
  ]);
}

function notFound(id: string): NotFoundError {
  return new NotFoundError(`No registry with id "${id}".`);
}

function stale(id: string, version: number | undefined): PreconditionFailedError {
  return new PreconditionFailedError(
    `Entry ${id} has changed since the version given in If-Match${version !== undefined ? ` (it is now at version ${version})` : ''}; fetch it again.`,
  );
}
