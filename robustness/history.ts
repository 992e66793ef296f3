/**
 * What a robustness run records, and nothing else: the checkers (check/) read only these files, so a
 * history left behind by a failed run can be checked again (`npm run robustness -- --replay DIR`).
 *
 * Times are microseconds since the run started, from one clock (the harness process).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** A registry entry as the checks need it: what a client, a follower or the log saw of it. */
export interface Snap {
  id: string;
  version: number;
  revision: number;
  name: string;
  tags: string[];
  /** The operation that last wrote the entry (`container_registry_metadata.op`), or null. */
  marker: string | null;
}

export type OpKind = 'create' | 'update' | 'delete' | 'get' | 'query';

/** One client operation, as invoked and as answered. */
export interface Operation {
  /** Unique in the run, e.g. `c2-17` (client 2's 17th); also the marker its write carries. */
  op: string;
  client: number;
  slot: number;
  /** Index of the replica it was sent to. */
  replica: number;
  kind: OpKind;
  /** The entry id (create, update, delete, get). */
  target?: string;
  /** query: the name asked for. */
  name?: string;
  ifMatch?: number;
  /** create, update: the marker written (`container_registry_metadata.op`). */
  marker?: string;
  /** update: tags added with $addToSet. */
  addTags?: string[];
  /** create: the tags it is created with. */
  tags?: string[];
  call: number;
  /** null: no answer came (timeout, reset). */
  ret: number | null;
  /** HTTP status; 0 when no answer came. */
  status: number;
  /** Why no answer came: `timeout`, ECONNRESET, ECONNREFUSED... */
  error?: string;
  /** create, update, get answered 2xx. */
  entry?: Snap;
  /** query answered 200. */
  items?: Snap[];
  /** query, and a GET served from the replica's view: its X-Catalog-Revision. */
  catalogRevision?: number;
}

/** One thing a follower consumed: a change, or a position (an SSE bookmark, a page's `revision`). */
export type StreamItem =
  | { kind: 'event'; revision: number; type: 'upsert' | 'delete'; id: string; entry?: Snap; at: number }
  | { kind: 'position'; revision: number; source: 'bookmark' | 'page'; at: number };

/**
 * One request of a follower: a long-poll page, an SSE connection (from its Last-Event-ID to its end), or
 * a page of the peer's follower (seen by the recording proxy between the peer and the replica it follows).
 */
export interface Session {
  n: number;
  replica: number;
  /** `since`, or the SSE Last-Event-ID (0 when none). */
  since: number;
  opened: number;
  closed: number;
  status: number;
  epoch?: string;
  /** A page that reached its `limit`: its position is where to go on, not a complete one. */
  full?: boolean;
  /** How it ended: answered (page), closed by the client, by the server, or failed. */
  end: 'page' | 'client' | 'server' | 'error';
  error?: string;
  items: StreamItem[];
}

export interface FollowerHistory {
  name: string;
  kind: 'longpoll' | 'sse' | 'peer';
  /**
   * linear: each session resumes exactly where the one before it ended (the long-poll and SSE consumers);
   * the peer may also resume from an earlier position it was given (a page it did not finish applying).
   */
  linear: boolean;
  sessions: Session[];
}

/** One record of the change log (catalog_changes), as dumped at the end. */
export interface LogRecord {
  r: number;
  key: string;
  prev: number;
  op: 'upsert' | 'delete' | 'fill';
  /** The appending process. */
  w: string;
  doc?: Snap;
}

export interface Fault {
  kind: 'kill' | 'freeze' | 'db-restart' | 'cut';
  /** Replica index, or -1 for the database. */
  target: number;
  at: number;
  /** When it was over (the process back, the database up...). */
  end: number;
  detail: string;
}

export interface FinalState {
  /** GET /container_registries/changes?since=0 on each replica at the end. */
  lists: Array<{ replica: number; revision: number; epoch: string; items: Snap[] }>;
  /** The collection (materialized entries) at the end. */
  collection: Snap[];
  /** The peer's catalog at the end: its mirrored entries (with the revision of the state they mirror) and its position. */
  peer?: { position: number | null; items: Array<Snap & { originRevision: number }> };
}

export interface Meta {
  engine: string;
  mode: 'quick' | 'full';
  startedAt: string;
  durationMs: number;
  slots: Array<{ name: string; ids: string[] }>;
  tags: string[];
  clients: number;
  replicas: number;
  /** Window after a fault in which a 409 on a free name is allowed when a write of that name was under way on a replica the fault hit (a reservation left by a dead writer, docs/change-feed.md). */
  reservationWindowUs: number;
}

export interface History {
  meta: Meta;
  operations: Operation[];
  followers: FollowerHistory[];
  log: LogRecord[];
  faults: Fault[];
  final: FinalState;
}

const FILES = ['meta', 'operations', 'followers', 'log', 'faults', 'final'] as const;

export function saveHistory(dir: string, h: History): void {
  mkdirSync(dir, { recursive: true });
  for (const f of FILES) writeFileSync(path.join(dir, `${f}.json`), JSON.stringify(h[f]) + '\n');
}

export function loadHistory(dir: string): History {
  const out: Record<string, unknown> = {};
  for (const f of FILES) out[f] = JSON.parse(readFileSync(path.join(dir, `${f}.json`), 'utf8'));
  return out as unknown as History;
}

/** The entry as the checks see it, from the API representation (or a stored document). */
export function snap(e: Record<string, unknown>): Snap {
  const meta = e.container_registry_metadata as Record<string, unknown> | undefined;
  const tags = Array.isArray(e.container_registry_tags) ? (e.container_registry_tags as string[]) : [];
  return {
    id: String(e.container_registry_id ?? e._id),
    version: Number(e.version),
    revision: Number(e.revision),
    name: String(e.container_registry_name),
    tags: [...tags].sort(),
    marker: typeof meta?.op === 'string' ? meta.op : null,
  };
}
