/** `Link: </v2/_catalog?last=x&n=100>; rel="next"` (RFC 8288), resolved against the registry's API base. */

const LINK = /<([^>]*)>((?:\s*;\s*[^,;]*)*)/g;
const REL_NEXT = /;\s*rel\s*=\s*"?([^";]*)"?/i;

/**
 * The rel="next" target, or null. Registries send an absolute path (`/v2/...`) that ignores any path prefix
 * in front of them, so `/v2/...` is taken relative to `apiBase` (which ends in `/v2/`); anything else is
 * resolved against the URL of the response that carried it. Links to another origin are not followed.
 */
export function nextLink(header: string | string[] | undefined, apiBase: URL, responseUrl: URL): URL | null {
  if (header === undefined) return null;
  const text = Array.isArray(header) ? header.join(', ') : header;
  for (const match of text.matchAll(LINK)) {
    const rel = REL_NEXT.exec(match[2] ?? '')?.[1] ?? '';
    if (!rel.split(/\s+/).includes('next')) continue;
    const target = match[1] ?? '';
    let url: URL;
    try {
      url = target.startsWith('/v2/') ? new URL(target.slice('/v2/'.length), apiBase) : new URL(target, responseUrl);
    } catch {
      return null;
    }
    return url.origin === apiBase.origin ? url : null;
  }
  return null;
}
