/**
 * How route modules describe their operations for the OpenAPI document (GET /openapi.json): each route file
 * exports the paths it serves next to its handlers, written with these helpers, and src/openapi.ts assembles
 * them with the components built from schemas/ (so a schema is only ever referred to, never copied).
 */
import { rolesWith, type Permission } from './auth';

export type Json = Record<string, unknown>;
/** OpenAPI path items by path template. */
export type ApiPaths = Record<string, Json>;

export const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
export const problem = (description: string) => ({ description, content: { 'application/problem+json': { schema: ref('Problem') } } });
export const json = (schema: Json, description: string, headers?: Json) => ({ description, ...(headers ? { headers } : {}), content: { 'application/json': { schema } } });

/** An entry as responses carry it (the entry schema with the credentials masked: src/openapi.ts). */
export const entryView = ref('ContainerRegistryView');
export const idParam = { name: 'id', in: 'path', required: true, description: 'container_registry_id (a UUID, or `<peer>:<id>` for an entry mirrored from a peer)', schema: { type: 'string' } };
export const ifMatch = { name: 'If-Match', in: 'header', required: false, description: 'ETag of the version the change is based on; 412 when stale.', schema: { type: 'string' } };
export const etag = { ETag: { description: 'The entry version as a strong entity tag.', schema: { type: 'string' } } };
/** Answers every protected route can give besides its own. */
const guarded = {
  '401': problem('No API key, or an unknown one (see WWW-Authenticate).'),
  '403': problem('The key’s role is too low for this route, or protected mode refuses a non-loopback client, a Host that is not a loopback name (DNS rebinding) or a cross-origin write.'),
  '429': problem('Rate limit exceeded (see RateLimit and Retry-After).'),
  '503': problem('The database is unreachable, a query exceeded its time limit, or (GET/POST /resolve) the resolver is still loading the catalog after start-up; retry after Retry-After seconds.'),
};

/** One operation; `permission` null for the public routes (no key needed). */
export function op(permission: Permission | null, summary: string, rest: Json): Json {
  if (permission === null) return { summary, security: [], ...rest };
  const responses = { ...(rest.responses as Json), ...guarded };
  return { summary, description: `Needs the ${rolesWith(permission)} role (\`can('${permission}')\`).`, 'x-permission': permission, ...rest, responses };
}
