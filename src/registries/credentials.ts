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
