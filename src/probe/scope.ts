/**
 * Where a registry's stored credentials may go (SPEC 6): to the registry's own origin (an http registry's
 * host may upgrade to https, never the reverse), and to a token realm over https, or over plain http only
 * on the host of a plain-http registry. Nowhere else, whatever redirects, challenges or `Link` headers say.
 */

/** True when `url` is the registry's own origin, or its https upgrade on the same host. */
export function inCredentialScope(registry: URL, url: URL): boolean {
  if (url.origin === registry.origin) return true;
  return registry.protocol === 'http:' && url.protocol === 'https:' && url.hostname === registry.hostname;
}

/** True when a token realm may receive the registry's credentials (Basic) in a token request. */
export function realmMayReceiveCredentials(registry: URL, realm: URL): boolean {
  if (realm.protocol === 'https:') return true;
  return realm.protocol === 'http:' && registry.protocol === 'http:' && realm.hostname === registry.hostname;
}
