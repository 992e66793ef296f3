/** The registry's API base: `{public_url}/v2/`, path prefix kept, always with the trailing slash (SPEC 11). */
import { ProbeError } from './errors';

export function apiBase(publicUrl: string): URL {
  let url: URL;
  try {
    url = new URL(publicUrl);
  } catch {
    throw new ProbeError('invalid_url', `not a URL: ${publicUrl}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ProbeError('invalid_url', `unsupported URL scheme ${url.protocol}`);
  if (url.username || url.password) throw new ProbeError('invalid_url', 'the URL must not carry user-info');
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/v2/`;
  url.search = '';
  url.hash = '';
  return url;
}
