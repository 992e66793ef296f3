/**
 * Every operation of the API, as the route modules describe them beside their handlers (src/http/api-doc.ts):
 * one source for the OpenAPI document (src/openapi.ts) and for the 405 answers of app.ts (a path the API
 * knows, asked with a method it does not take, is a 405 whose Allow lists the documented methods).
 */
import type { ApiPaths } from './api-doc';
import { changesApi } from './routes/changes';
import { healthApi } from './routes/health';
import { inventoryApi } from './routes/inventory';
import { opsApi } from './routes/ops';
import { peersApi } from './routes/peers';
import { pullConfigApi } from './routes/pull-config';
import { pullCredentialsApi } from './routes/pull-credentials';
import { registriesApi } from './routes/registries';
import { resolveApi } from './routes/resolve';
import { statusPageApi } from './routes/status-page';
import { webhooksApi } from './routes/webhooks';
import { whoamiApi } from './routes/whoami';

export const API_PATHS: ApiPaths = { ...registriesApi, ...changesApi, ...healthApi, ...inventoryApi, ...whoamiApi, ...statusPageApi, ...resolveApi, ...pullConfigApi, ...pullCredentialsApi, ...peersApi, ...webhooksApi, ...opsApi };

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Per documented path, a matcher (a `{param}` is one path segment; a trailing slash is allowed) and its methods (GET brings HEAD). */
export function knownRoutes(paths: ApiPaths = API_PATHS): Array<[RegExp, string[]]> {
  return Object.entries(paths).map(([template, item]) => {
    const pattern = template
      .split(/(\{[^}]+\})/)
      .map((part) => (part.startsWith('{') ? '[^/]+' : escape(part)))
      .join('');
    const methods = METHODS.filter((m) => (item as Record<string, unknown>)[m] !== undefined).map((m) => m.toUpperCase());
    if (methods.includes('GET') && !methods.includes('HEAD')) methods.splice(methods.indexOf('GET') + 1, 0, 'HEAD');
    return [new RegExp(`^${pattern.replace(/\\\/$|\/$/, '')}\\/?$`), methods];
  });
}
