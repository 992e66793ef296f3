/**
 * From a stored entry to what the prober needs: the stored URL, the stored credentials decrypted, and the
 * entry's TLS settings. The decrypted password lives only in the returned object, which is never logged.
 */
import type { ProbeTarget } from '../probe/types';
import type { CredentialCipher } from '../registries/credentials';
import type { StoredRegistry } from '../registries/model';

export function toProbeTarget(doc: StoredRegistry, cipher: CredentialCipher): ProbeTarget {
  const target: ProbeTarget = { id: doc._id, url: doc.container_registry_public_url };
  if (doc.container_registry_credentials) target.credentials = cipher.open(doc.container_registry_credentials);
  const config = (doc.container_registry_config ?? {}) as Record<string, unknown>;
  if (config.insecure_skip_tls_verify === true) target.insecureSkipTlsVerify = true;
  if (typeof config.ca_certificate === 'string' && config.ca_certificate !== '') target.caCertificate = config.ca_certificate;
  return target;
}
