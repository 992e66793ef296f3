/**
 * Command-line arguments of the node-side programs (the agent and the kubelet credential provider): the
 * server's URL and a file holding the API key, from flags or from REGISTRY_DB_URL / REGISTRY_DB_KEY_FILE.
 * Every mistake is a UsageError, which the programs turn into a message and exit status 2.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface ServerAccess {
  /** The service's base URL (no trailing slash). */
  server: string;
  /** The API key (role puller, or reader for the agent alone); undefined: none is sent (a loopback service in protected mode). */
  key?: string;
}

/** The longest key file read (a key is tens of characters). */
const KEY_FILE_MAX = 4096;

/** Parses `argv` with `options` (node:util parseArgs, strict: unknown flags and stray words are errors). */
export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export function parseServer(raw: string | undefined): string {
  if (raw === undefined || raw === '') throw new UsageError('--server URL is required (or REGISTRY_DB_URL), e.g. --server https://registry-db.example.com');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--server: "${raw}" is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--server: ${url.protocol} is not http: or https:`);
  if (url.username || url.password || url.search || url.hash) throw new UsageError('--server: give the base URL alone (no user-info, query or fragment); the key goes in --key-file');
  return url.href.replace(/\/+$/, '');
}

/** The key in `file` (surrounding whitespace trimmed): a UsageError when it cannot be read or is empty. */
export function readKeyFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`--key-file ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const key = text.trim();
  if (key === '' || key.length > KEY_FILE_MAX || /\s/.test(key)) throw new UsageError(`--key-file ${file}: must hold one API key (no spaces or line breaks inside it)`);
  return key;
}

/** `--server` / `--key-file`, or the environment's REGISTRY_DB_URL / REGISTRY_DB_KEY_FILE. */
export function serverAccess(values: { server?: string; 'key-file'?: string }, env: NodeJS.ProcessEnv): ServerAccess {
  const server = parseServer(values.server ?? env.REGISTRY_DB_URL);
  const keyFile = values['key-file'] ?? env.REGISTRY_DB_KEY_FILE;
  return keyFile === undefined || keyFile === '' ? { server } : { server, key: readKeyFile(keyFile) };
}

/** Request headers that carry the key. */
export function authHeaders(access: ServerAccess): Record<string, string> {
  return access.key === undefined ? {} : { Authorization: `Bearer ${access.key}` };
}
