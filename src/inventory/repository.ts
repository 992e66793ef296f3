/**
 * The inventory's one repository (SPEC 19): what each storage refresh saw of a registry, kept in collections
 * of its own, never in the entry (the change feed and the view do not grow with it).
 *
 *   container_registry_inventory_states  { _id: registry id, generation, observed_at, truncated,
 *                                          repository_count, tag_count, chunks, index: [{ r: repository, t: tag }...],
 *                                          pending?: { generation, started_at } }
 *   container_registry_inventory         { _id: "<registry id>|<generation>|<seq>", registry_id, generation, seq,
 *                                          rows: [{ r: repository, t: tag, d?: digest, m?: media type, p?: platforms }] }
 *
 * A refresh writes its rows as they come (the crawl hands them over in (repository, tag) order, a batch at a
 * time) into chunks of a new generation, then commits: one replace of the state, which now names that
 * generation, its chunk count and the first key of each chunk (`index`: a page of a large inventory reads one
 * or two chunks). Only then are the previous generation's chunks deleted. So a reader sees a whole generation
 * or the one before, never a mix. A generation is marked `pending` in the state before its first chunk, so one
 * whose refresh died is found and deleted by the next refresh (or with the entry).
 *
 * Every read and write is by `_id` (the one lookup FerretDB v1 serves from an index): a chunk is found from
 * its registry, generation and number, never by a query over the collection.
 */
import type { Collection, Db } from 'mongodb';
import type { InventoryRow, InventorySink } from '../probe/types';

export const STATES = 'container_registry_inventory_states';
export const CHUNKS = 'container_registry_inventory';

/** A chunk holds at most this many rows, and about this many bytes of them. */
const CHUNK_ROWS = 1000;
const CHUNK_BYTES = 2 * 1024 * 1024;
/** Chunks deleted per round trip. */
const DELETE_BATCH = 64;

/** (repository, tag): the order of every inventory. */
export type RowKey = readonly [repository: string, tag: string];

export interface InventoryState {
  _id: string;
  /** 0 while nothing was committed (only `pending`). */
  generation: number;
  observed_at: string | null;
  truncated: boolean;
  repository_count: number;
  tag_count: number;
  chunks: number;
  /** First key of each chunk. */
  index: Array<[string, string]>;
  pending?: { generation: number; started_at: Date } | null;
  /** The refresh turn last taken under this generation (src/health/refresh-turns.ts). */
  turn?: number;
}

interface StoredRow {
  r: string;
  t: string;
  d?: string;
  m?: string;
  p?: string[];
}

interface ChunkDoc {
  _id: string;
  registry_id: string;
  generation: number;
  seq: number;
  rows: StoredRow[];
}

/** A committed inventory in a few numbers (what a refresh answers). */
export interface InventorySummary {
  observed_at: string;
  truncated: boolean;
  repository_count: number;
  tag_count: number;
  generation: number;
}

/** A chunk went missing while it was read: a newer generation replaced the one being read. */
export class InventoryChanged extends Error {
  constructor(id: string) {
    super(`the inventory of ${id} was replaced while it was read`);
  }
}

export function compareKeys(a: RowKey, b: RowKey): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

const chunkId = (id: string, generation: number, seq: number) => `${id}|${generation}|${seq}`;

function toStored(row: InventoryRow): StoredRow {
  const s: StoredRow = { r: row.repository, t: row.tag };
  if (row.digest !== null) s.d = row.digest;
  if (row.media_type !== null) s.m = row.media_type;
  if (row.platforms !== null) s.p = row.platforms;
  return s;
}

export function fromStored(s: StoredRow): InventoryRow {
  return { repository: s.r, tag: s.t, digest: s.d ?? null, media_type: s.m ?? null, platforms: s.p ?? null };
}

/** A state as stored: the chunk index as objects (FerretDB v1 stores no nested arrays). */
type StoredState = Omit<InventoryState, 'index'> & { index: Array<{ r: string; t: string }> };

const toStoredState = (state: InventoryState): StoredState => ({ ...state, index: state.index.map(([r, t]) => ({ r, t })) });

/** A state as stored, with the fields a `pending`-only state lacks filled in. */
function normalised(doc: Partial<StoredState> & { _id: string }): InventoryState {
  return {
    _id: doc._id,
    generation: doc.generation ?? 0,
    observed_at: doc.observed_at ?? null,
    truncated: doc.truncated ?? false,
    repository_count: doc.repository_count ?? 0,
    tag_count: doc.tag_count ?? 0,
    chunks: doc.chunks ?? 0,
    index: (doc.index ?? []).map(({ r, t }) => [r, t]),
    pending: doc.pending ?? null,
    turn: doc.turn ?? 1,
  };
}

export class InventoryRepository {
  readonly states: Collection<StoredState>;
  readonly chunks: Collection<ChunkDoc>;

  constructor(db: Db) {
    this.states = db.collection<StoredState>(STATES);
    this.chunks = db.collection<ChunkDoc>(CHUNKS);
  }

  /** The registry's state (committed or only pending), or null when it has none. */
  async state(id: string): Promise<InventoryState | null> {
    const doc = await this.states.findOne({ _id: id });
    return doc && normalised(doc);
  }

  /** Every state, without the chunk index (a replica's start: one scan of a collection of one small document per registry). */
  async allStates(): Promise<InventoryState[]> {
    const docs = await this.states.find({}, { projection: { index: 0 } }).toArray();
    return docs.map(normalised);
  }

  /** The rows of chunk `seq` of a committed state; throws InventoryChanged when the chunk is gone. */
  async chunk(state: InventoryState, seq: number): Promise<InventoryRow[]> {
    const doc = await this.chunks.findOne({ _id: chunkId(state._id, state.generation, seq) });
    if (!doc) throw new InventoryChanged(state._id);
    return doc.rows.map(fromStored);
  }

  /** Starts a new generation of registry `id`; the caller holds the entry's refresh turn `turn`. */
  async begin(id: string, turn: number): Promise<InventoryWrite> {
    const before = await this.state(id);
    // A refresh that died left its chunks behind: they go now.
    if (before?.pending) await this.deleteChunks(id, before.pending.generation);
    const generation = Math.max(Date.now(), (before?.generation ?? 0) + 1, (before?.pending?.generation ?? 0) + 1);
    await this.states.updateOne({ _id: id }, { $set: { pending: { generation, started_at: new Date() }, turn } }, { upsert: true });
    return new InventoryWrite(this, id, generation);
  }

  /** Removes the registry's inventory: every chunk of its committed and pending generations, then the state. */
  async remove(id: string): Promise<void> {
    const state = await this.state(id);
    if (!state) return;
    if (state.generation > 0) await this.deleteChunks(id, state.generation, state.chunks);
    if (state.pending) await this.deleteChunks(id, state.pending.generation);
    await this.states.deleteOne({ _id: id });
  }

  /** Deletes chunks 0.. of a generation: `count` of them, or (unknown count) until one is missing. */
  async deleteChunks(id: string, generation: number, count?: number): Promise<void> {
    for (let from = 0; count === undefined || from < count; from += DELETE_BATCH) {
      const n = count === undefined ? DELETE_BATCH : Math.min(DELETE_BATCH, count - from);
      const ops = Array.from({ length: n }, (_, i) => ({ deleteOne: { filter: { _id: chunkId(id, generation, from + i) } } }));
      const r = await this.chunks.bulkWrite(ops, { ordered: false });
      if (count === undefined && r.deletedCount < n) return;
    }
  }

  /** Writes one chunk of a generation (InventoryWrite). */
  async insertChunk(id: string, generation: number, seq: number, rows: readonly InventoryRow[]): Promise<void> {
    await this.chunks.insertOne({ _id: chunkId(id, generation, seq), registry_id: id, generation, seq, rows: rows.map(toStored) });
  }

  /** Makes `state` the registry's inventory and deletes the generation it replaces. */
  async commit(state: InventoryState): Promise<void> {
    const before = await this.state(state._id);
    await this.states.replaceOne({ _id: state._id }, toStoredState(state), { upsert: true });
    if (before && before.generation > 0 && before.generation !== state.generation) await this.deleteChunks(state._id, before.generation, before.chunks);
  }

  /** Ends a generation that will not be committed: its chunks go, and its pending mark if it is still there. */
  async discard(id: string, generation: number, chunks: number): Promise<void> {
    await this.deleteChunks(id, generation, chunks);
    const state = await this.state(id);
    if (state?.pending?.generation === generation) {
      if (state.generation === 0) await this.states.deleteOne({ _id: id, generation: { $exists: false } });
      else await this.states.updateOne({ _id: id }, { $unset: { pending: '' } });
    }
  }
}

/**
 * One generation being written: the storage crawl's InventorySink. Rows arrive in order; they are cut into
 * chunks of at most CHUNK_ROWS rows and about CHUNK_BYTES. Nothing is visible until `commit`.
 */
export class InventoryWrite implements InventorySink {
  private seq = 0;
  private closed = false;
  private committed = false;
  /** A chunk could not be written: this generation is incomplete and is never committed. */
  failed = false;
  private tags = 0;
  private repositories = 0;
  private lastRepository: string | null = null;
  private readonly index: Array<[string, string]> = [];

  constructor(
    private readonly repo: InventoryRepository,
    readonly registryId: string,
    readonly generation: number,
  ) {}

  async add(rows: InventoryRow[]): Promise<void> {
    let start = 0;
    let bytes = 0;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      const size = 64 + row.repository.length + row.tag.length + (row.digest?.length ?? 0) + (row.media_type?.length ?? 0) + (row.platforms?.reduce((n, p) => n + p.length + 4, 0) ?? 0);
      if (i > start && (i - start >= CHUNK_ROWS || bytes + size > CHUNK_BYTES)) {
        await this.write(rows.slice(start, i));
        start = i;
        bytes = 0;
      }
      bytes += size;
    }
    if (start < rows.length) await this.write(rows.slice(start));
  }

  private async write(rows: InventoryRow[]): Promise<void> {
    if (this.closed) throw new Error(`the inventory write of ${this.registryId} is over`);
    try {
      await this.repo.insertChunk(this.registryId, this.generation, this.seq, rows);
    } catch (e) {
      this.failed = true;
      throw e;
    }
    this.seq++;
    this.index.push([rows[0]!.repository, rows[0]!.tag]);
    this.tags += rows.length;
    for (const row of rows) {
      if (row.repository === this.lastRepository) continue;
      this.lastRepository = row.repository;
      this.repositories++;
    }
  }

  /** Makes this generation the registry's inventory. */
  async commit(observedAt: string, truncated: boolean): Promise<InventorySummary> {
    this.closed = true;
    const state: InventoryState = {
      _id: this.registryId,
      generation: this.generation,
      observed_at: observedAt,
      truncated,
      repository_count: this.repositories,
      tag_count: this.tags,
      chunks: this.seq,
      index: this.index,
      pending: null,
      turn: 1,
    };
    await this.repo.commit(state);
    this.committed = true;
    return { observed_at: observedAt, truncated, repository_count: this.repositories, tag_count: this.tags, generation: this.generation };
  }

  /** Gives the generation up (the crawl failed, or its rows could not all be written). */
  async abort(): Promise<void> {
    if (this.committed) return;
    this.closed = true;
    await this.repo.discard(this.registryId, this.generation, this.seq);
  }
}
