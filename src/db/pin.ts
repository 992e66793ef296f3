/**
 * Which embedded backend owns a DATA_DIR (SPEC section 3). The first start records it in
 * DATA_DIR/backend.json; a DATA_DIR written by an older version (no marker) is recognised by its data
 * (DATA_DIR/ferretdb or DATA_DIR/mongod not empty). Later starts use that backend or stop: a start must
 * never serve an empty catalog beside existing data because the machine changed.
 */
import { closeSync, fsyncSync, openSync, readFileSync, readdirSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';

export const BACKENDS = ['mongod', 'ferretdb'] as const;
export type Backend = (typeof BACKENDS)[number];
export const MARKER = 'backend.json';

export interface Pin {
  backend: Backend;
  /** Why: the marker file, or data found without one. */
  source: 'marker' | 'data';
}

/** The directory of one backend's files inside DATA_DIR. */
export function backendDir(dataDir: string, backend: Backend): string {
  return path.join(dataDir, backend);
}

/** The error that stops a start; its message says where the data is and how to move it. */
export class PinnedBackendError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PinnedBackendError';
  }
}

function hasFiles(dir: string): boolean {
  try {
    return readdirSync(dir).length > 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

/** Backends whose directory in DATA_DIR holds files. */
export function backendsWithData(dataDir: string): Backend[] {
  return BACKENDS.filter((b) => hasFiles(backendDir(dataDir, b)));
}

/** The recorded pin, else the one the data implies; undefined for a new DATA_DIR. Data of both backends and no marker: `ambiguous`. */
export function readPin(dataDir: string): Pin | { ambiguous: Backend[] } | undefined {
  const file = path.join(dataDir, MARKER);
  let raw: string | undefined;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  if (raw !== undefined) {
    let backend: unknown;
    try {
      backend = (JSON.parse(raw) as { backend?: unknown }).backend;
    } catch {
      backend = undefined;
    }
    if (!(BACKENDS as readonly unknown[]).includes(backend)) {
      throw new PinnedBackendError(`${file} is not readable as {"backend": "mongod"} or {"backend": "ferretdb"}; fix it to name the backend whose directory in ${dataDir} holds the catalog.`);
    }
    return { backend: backend as Backend, source: 'marker' };
  }
  const found = backendsWithData(dataDir);
  if (found.length === 1) return { backend: found[0]!, source: 'data' };
  if (found.length > 1) return { ambiguous: found };
  return undefined;
}

/** Records the pin atomically (temporary file, fsync, rename): a crash leaves the old state or the new one. */
export function writePin(dataDir: string, backend: Backend): void {
  const file = path.join(dataDir, MARKER);
  const tmp = `${file}.${process.pid}.tmp`;
  const body = `${JSON.stringify({ backend, data: path.relative(dataDir, backendDir(dataDir, backend)), pinned_at: new Date().toISOString(), note: 'Every start with this DATA_DIR uses this backend. To move the data: docs/database.md, "Moving the data".' }, null, 2)}\n`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    writeSync(fd, body);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** How to move the catalog of `backend` elsewhere, for the messages that stop a start. */
export function howToMove(dataDir: string, backend: Backend): string {
  const other = backend === 'ferretdb' ? 'mongod' : 'ferretdb';
  return [
    `To move the catalog (stop the service first; the export runs on ${backend}, so run it where ${backend} starts):`,
    `  npm run db:export -- registry-db.ejsonl`,
    `  then into a production MongoDB (same credentials key, so sealed registry passwords stay readable):`,
    `    MONGODB_URI=mongodb://HOST/registry_db CREDENTIALS_KEY=$(cat ${path.join(dataDir, 'credentials.key')}) npm run db:import -- registry-db.ejsonl`,
    `  or into the embedded ${other}, in a new DATA_DIR that keeps the credentials key:`,
    `    mkdir NEW_DIR && cp ${path.join(dataDir, 'credentials.key')} NEW_DIR/ && DATA_DIR=NEW_DIR EMBEDDED_DB=${other} npm run db:import -- registry-db.ejsonl`,
    `(If CREDENTIALS_KEY is set, keep the same value instead of copying credentials.key.)`,
  ].join('\n');
}
