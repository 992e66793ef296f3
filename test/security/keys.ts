/** API keys for security tests: one random key per role, and the API_KEYS value that configures them. */
import { randomBytes } from 'node:crypto';

export interface Keys {
  admin: string;
  writer: string;
  reader: string;
  /** A node's key: read and pull credentials only. */
  puller: string;
  /** Never configured. */
  wrong: string;
  env: string;
}

export function makeKeys(): Keys {
  const k = (role: string) => `${role}-${randomBytes(18).toString('base64url')}`;
  const keys = { admin: k('admin'), writer: k('writer'), reader: k('reader'), puller: k('puller'), wrong: k('nobody') };
  return { ...keys, env: `admin:${keys.admin},writer:${keys.writer},reader:${keys.reader},puller:${keys.puller}` };
}

export const bearer = (key: string) => ({ Authorization: `Bearer ${key}` });
export const simple = (key: string) => ({ Authorization: `Simple ${key}` });
