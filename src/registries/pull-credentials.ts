/**
 * Pull credentials for nodes (SPEC section 18): the stored credentials of the registries that serve an
 * image, unsealed for a caller allowed to receive them (role puller or admin; the route checks the role).
 * The candidates are /resolve's, best first; each one's credentials are keyed by its image prefix, which is
 * how a kubelet matches them to images. An entry mirrored from a peer is never disclosed: the peer keeps its
 * credentials, and whatever a mirrored document might carry did not come from this catalog's operators.
 */
import type { PullCredentialsResult } from '../generated';
import type { CredentialCipher, StoredCredentials } from './credentials';

/** A candidate of /resolve, as far as disclosure needs it. */
export interface CredentialCandidate {
  container_registry_id: string;
  /** The entry's own image prefix (the key of its credentials). */
  own_prefix: string;
  /** The peer an entry is mirrored from, or null for a local one. */
  origin: string | null;
}

export interface Disclosure {
  auth: PullCredentialsResult['auth'];
  /** The entries whose credentials are in `auth`, best candidate first. */
  registryIds: string[];
  /** Entries whose stored credentials could not be unsealed (another key, damaged): left out. */
  unreadable: string[];
}

/**
 * The credentials of `candidates` (best first) that have any: `stored(id)` gives an entry's sealed
 * credentials. When two candidates share an image prefix, the better one's are kept.
 */
export function discloseCredentials(candidates: readonly CredentialCandidate[], stored: (id: string) => StoredCredentials | undefined, cipher: CredentialCipher): Disclosure {
  const out: Disclosure = { auth: {}, registryIds: [], unreadable: [] };
  for (const c of candidates) {
    if (c.origin !== null || Object.hasOwn(out.auth, c.own_prefix)) continue;
    const sealed = stored(c.container_registry_id);
    if (!sealed || typeof sealed.username !== 'string' || typeof sealed.password_enc !== 'string') continue;
    let password: string;
    try {
      password = cipher.open(sealed).password;
    } catch {
      out.unreadable.push(c.container_registry_id);
      continue;
    }
    out.auth[c.own_prefix] = { username: sealed.username, password, container_registry_id: c.container_registry_id };
    out.registryIds.push(c.container_registry_id);
  }
  return out;
}
