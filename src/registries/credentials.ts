/**
 * Registry credentials at rest: AES-256-GCM with a random 96-bit IV per write. The stored form is
 * `{ username, password_enc: "v1.<iv>.<tag>.<ciphertext>" }` (base64url parts); the API only ever shows
 * `{ username, password_set: true }`.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface StoredCredentials {
  username: string;
  password_enc: string;
}

export interface PlainCredentials {
  username: string;
  password: string;
}

export class CredentialCipher {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('credentials key must be 32 bytes');
  }

  seal(c: PlainCredentials): StoredCredentials {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(c.username, 'utf8'));
    const ct = Buffer.concat([cipher.update(c.password, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return { username: c.username, password_enc: ['v1', iv, tag, ct].map((x) => (typeof x === 'string' ? x : x.toString('base64url'))).join('.') };
  }

  open(s: StoredCredentials): PlainCredentials {
    const [v, iv, tag, ct] = s.password_enc.split('.');
    if (v !== 'v1' || !iv || !tag || ct === undefined) throw new Error('unknown credentials format');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(s.username, 'utf8'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    const password = Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
    return { username: s.username, password };
  }
}

/** The configured key, or one generated once into DATA_DIR/credentials.key (mode 0600). */
export function loadOrCreateKey(configured: Buffer | undefined, dataDir: string): { key: Buffer; source: string } {
  if (configured) return { key: configured, source: 'CREDENTIALS_KEY' };
  const file = path.join(dataDir, 'credentials.key');
  try {
    const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
    if (key.length === 32) return { key, source: file };
    throw new Error(`${file} does not hold base64 of 32 bytes`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(32);
  writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  return { key, source: `${file} (generated)` };
}

/** What an update does to the stored credentials. */
export type CredentialsPlan = 'keep' | 'replace' | 'drop';

/**
 * The credentials rule (SPEC 6): a whole new `{username, password}` (validated by the schema) replaces them;
 * `$unset` removes them; a change of the registry's scope (origin or TLS trust) without new ones drops
 * them; anything else keeps them. No value a client sends can mean "keep the stored secret".
 */
export function planCredentials(stored: boolean, given: PlainCredentials | undefined, unset: boolean, scopeChanged: boolean): CredentialsPlan {
  if (given) return 'replace';
  if (stored && (unset || scopeChanged)) return 'drop';
  return 'keep';
}

function originOf(url: unknown): string | undefined {
  try {
    return typeof url === 'string' ? new URL(url).origin : undefined;
  } catch {
    return undefined;
  }
}

function trustOf(doc: Record<string, unknown>): { insecure: boolean; ca: string | undefined } {
  const config = (doc.container_registry_config ?? {}) as Record<string, unknown>;
  return { insecure: config.insecure_skip_tls_verify === true, ca: typeof config.ca_certificate === 'string' && config.ca_certificate !== '' ? config.ca_certificate : undefined };
}

/**
 * True when credentials stored for `before` would go somewhere else under `after`: another origin (scheme,
 * host or port), TLS verification turned off, or another CA certificate trusted. Narrowing trust (verification
 * turned back on, the CA removed) keeps them.
 */
export function credentialScopeChanged(before: Record<string, unknown>, after: Record<string, unknown>): boolean {
  if (originOf(before.container_registry_public_url) !== originOf(after.container_registry_public_url)) return true;
  const was = trustOf(before);
  const now = trustOf(after);
  return (now.insecure && !was.insecure) || (now.ca !== undefined && now.ca !== was.ca);
}
