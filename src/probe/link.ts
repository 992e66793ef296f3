/**
 * `Link: </v2/_catalog?last=x&n=100>; rel="next"` (RFC 8288), resolved against the registry's API base.
 * A hand scan that only moves forward (linear in the header's length, no regular expression that could
 * backtrack), over at most MAX_LINK_HEADER_CHARS: a registry's header is the registry's to make up.
 */

/** Characters of the Link header(s) read; a real next link is a path of a few hundred characters. */
export const MAX_LINK_HEADER_CHARS = 8192;

/**
 * The rel="next" target, or null. Registries send an absolute path (`/v2/...`) that ignores any path prefix
 * in front of them, so `/v2/...` is taken relative to `apiBase` (which ends in `/v2/`); anything else is
 * resolved against the URL of the response that carried it. Links to another origin are not followed.
 */
export function nextLink(header: string | string[] | undefined, apiBase: URL, responseUrl: URL): URL | null {
  const target = nextTarget(header);
  if (target === null) return null;
  let url: URL;
  try {
    url = target.startsWith('/v2/') ? new URL(target.slice('/v2/'.length), apiBase) : new URL(target, responseUrl);
  } catch {
    return null;
  }
  return url.origin === apiBase.origin ? url : null;
}

/** The URI-reference of the first link-value whose `rel` names `next`, or null. */
export function nextTarget(header: string | string[] | undefined): string | null {
  if (header === undefined) return null;
  let text = Array.isArray(header) ? header.slice(0, 16).join(', ') : header;
  if (text.length > MAX_LINK_HEADER_CHARS) text = text.slice(0, MAX_LINK_HEADER_CHARS);
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf('<', i);
    if (open < 0) return null;
    const close = text.indexOf('>', open + 1);
    if (close < 0) return null;
    // The link's parameters run to the next comma outside a quoted string.
    let end = close + 1;
    let quoted = false;
    for (; end < text.length; end++) {
      const c = text.charCodeAt(end);
      if (c === 0x22 /* " */) quoted = !quoted;
      else if (c === 0x5c /* \ */ && quoted) end++;
      else if (c === 0x2c /* , */ && !quoted) break;
    }
    if (relIsNext(text.slice(close + 1, end))) return text.slice(open + 1, close);
    i = end + 1;
  }
  return null;
}

/** `; rel="next"`, `;rel=next`, `; rel="prev next"` among other parameters. */
function relIsNext(params: string): boolean {
  for (const param of params.split(';')) {
    const eq = param.indexOf('=');
    if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== 'rel') continue;
    let value = param.slice(eq + 1).trim();
    if (value.startsWith('"')) value = value.slice(1, value.endsWith('"') && value.length > 1 ? -1 : undefined);
    return value.toLowerCase().split(/[ \t]+/).includes('next');
  }
  return false;
}
