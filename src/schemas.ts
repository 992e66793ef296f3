/**
 * The JSON Schemas of schemas/ compiled once with one ajv instance (JSON Schema 2020-12), and turned
 * into the service's validators. Validation failures become InputErrors naming each offending path.
 */
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { fullFormats } from 'ajv-formats/dist/formats';
import { InputError, type FieldError } from './errors';
import { pointer } from './lib/json-pointer';
import entrySchema from '../schemas/container_registry.schema.json';
import healthSchema from '../schemas/container_registry_health.schema.json';
import observedSchema from '../schemas/container_registry_observed.schema.json';
import filterSchema from '../schemas/container_registry_filter.schema.json';
import updateSchema from '../schemas/container_registry_update.schema.json';
import cursorSchema from '../schemas/query_cursor.schema.json';
import problemSchema from '../schemas/problem.schema.json';
import credentialsViewSchema from '../schemas/container_registry_credentials_view.schema.json';
import changePageSchema from '../schemas/change_page.schema.json';
import healthHistorySchema from '../schemas/container_registry_health_history.schema.json';
import resolveRequestSchema from '../schemas/resolve_request.schema.json';
import resolveResultSchema from '../schemas/resolve_result.schema.json';
import resolveBatchResultSchema from '../schemas/resolve_batch_result.schema.json';
import peerStatusSchema from '../schemas/peer_status.schema.json';
import webhookRequestSchema from '../schemas/webhook_subscription_request.schema.json';
import storedEntrySchema from '../schemas/container_registry_stored.schema.json';
import pullCredentialsRequestSchema from '../schemas/pull_credentials_request.schema.json';
import pullCredentialsResultSchema from '../schemas/pull_credentials_result.schema.json';
import inventoryPageSchema from '../schemas/inventory_page.schema.json';
import imagesResultSchema from '../schemas/images_result.schema.json';
import storageRefreshResultSchema from '../schemas/storage_refresh_result.schema.json';

/** Every schema of schemas/, by $id (the OpenAPI document is built from these). */
export const schemas = {
  entry: entrySchema,
  health: healthSchema,
  observed: observedSchema,
  filter: filterSchema,
  update: updateSchema,
  cursor: cursorSchema,
  problem: problemSchema,
  credentialsView: credentialsViewSchema,
  changePage: changePageSchema,
  healthHistory: healthHistorySchema,
  resolveRequest: resolveRequestSchema,
  resolveResult: resolveResultSchema,
  resolveBatchResult: resolveBatchResultSchema,
  peerStatus: peerStatusSchema,
  webhookRequest: webhookRequestSchema,
  pullCredentialsRequest: pullCredentialsRequestSchema,
  pullCredentialsResult: pullCredentialsResultSchema,
  inventoryPage: inventoryPageSchema,
  imagesResult: imagesResultSchema,
  storageRefreshResult: storageRefreshResultSchema,
} as const;

const MAX_ERRORS = 20;

// verbose: an error carries the schema object it failed (its `x-expected` sentence is the message, below).
const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false, allowUnionTypes: true, verbose: true });
// Beside every `pattern` of schemas/: what the pattern asks for, in words. A reader is told that sentence, never
// the regular expression (a test checks that every pattern a field error can name has one).
ajv.addKeyword({ keyword: 'x-expected', schemaType: 'string' });
addFormats(ajv);
// Every URI the service keeps is later parsed by the WHATWG URL parser (probes, peers, webhooks): one RFC 3986
// accepts but that parser refuses (`http://127.0.0.256:5000`, a host no address has) is refused here, with the
// field named, instead of failing later as a 500.
const rfc3986Uri = fullFormats.uri as (s: string) => boolean;
ajv.addFormat('uri', (s: string) => rfc3986Uri(s) && URL.canParse(s));
for (const s of Object.values(schemas)) ajv.addSchema(s);
// Not an API schema (not in `schemas`, so not in the OpenAPI document): an entry as stored, for db:import.
ajv.addSchema(storedEntrySchema);

function compiled(id: string): ValidateFunction {
  const v = ajv.getSchema(id);
  if (!v) throw new Error(`schema ${id} not found`);
  return v;
}

function describe(e: ErrorObject): FieldError {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const name = String(p.additionalProperty);
      return {
        path: e.instancePath + pointer(name),
        message: name.startsWith('$') ? `operator ${name} is not allowed here` : `unknown field ${name}`,
      };
    }
    case 'required':
      return { path: e.instancePath + pointer(String(p.missingProperty)), message: 'is required' };
    case 'propertyNames':
      return { path: e.instancePath + pointer(String(p.propertyName)), message: `"${String(p.propertyName)}" is not an allowed field, path or key here` };
    case 'dependentRequired':
      return { path: e.instancePath + pointer(String(p.property)), message: `needs ${String(p.missingProperty)} beside it` };
    case 'anyOf':
      return { path: e.instancePath, message: 'has a value of the wrong type, or one too large or too deeply nested' };
    case 'format':
      return { path: e.instancePath, message: `must be a valid ${String(p.format)}` };
    case 'enum': {
      const allowed = (p.allowedValues as unknown[]).map((v) => JSON.stringify(v));
      return { path: e.instancePath, message: `must be one of ${allowed.slice(0, 12).join(', ')}${allowed.length > 12 ? ', ...' : ''}` };
    }
    case 'pattern': {
      const expected = (e.parentSchema as Record<string, unknown> | undefined)?.['x-expected'];
      return { path: e.instancePath, message: typeof expected === 'string' ? `must be ${expected}` : 'does not have the expected form' };
    }
    default:
      return { path: e.instancePath, message: e.message ?? 'is invalid' };
  }
}

/** Turns ajv's errors into one FieldError per problem, without the noise of branches that were not taken. */
export function fieldErrors(errors: ErrorObject[] | null | undefined): FieldError[] {
  const relevant = (errors ?? []).filter(
    (e) => e.keyword !== 'if' && !e.schemaPath.includes('/anyOf/') && !(e.keyword === 'pattern' && e.propertyName !== undefined),
  );
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const e of relevant) {
    const fe = describe(e);
    if (fe.path === '') fe.path = '/';
    const k = `${fe.path}\u0000${fe.message}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(fe);
    if (out.length >= MAX_ERRORS) break;
  }
  return out.length > 0 ? out : [{ path: '/', message: 'is invalid' }];
}

function validator<T>(id: string, what: string, prefix = '') {
  const v = compiled(id);
  return (data: unknown): T => {
    if (!v(data)) {
      const errors = fieldErrors(v.errors).map((e) => ({ ...e, path: prefix + (e.path === '/' && prefix ? '' : e.path) }));
      throw new InputError(`${what} is invalid: ${errors.map((e) => `${e.path || '/'} ${e.message}`).join('; ')}`, errors);
    }
    return data as T;
  };
}

export const validateEntry = validator<import('./generated').ContainerRegistry>('container_registry.schema.json', 'The registry entry');
export const validateUpdate = validator<import('./generated').ContainerRegistryUpdate>('container_registry_update.schema.json', 'The update');
export const validateFilter = validator<Record<string, unknown>>('container_registry_filter.schema.json', 'The filter');
export const validateCursor = validator<import('./generated').QueryCursor>('query_cursor.schema.json', 'The cursor', 'cursor');
export const validateChangePage = validator<import('./generated').ChangePage>('change_page.schema.json', 'The change page');
export const validateWebhookRequest = validator<import('./generated').WebhookSubscriptionRequest>('webhook_subscription_request.schema.json', 'The webhook subscription');
export const validateResolveRequest = validator<import('./generated').ResolveRequest>('resolve_request.schema.json', 'The resolve request');
export const validatePullCredentialsRequest = validator<import('./generated').PullCredentialsRequest>('pull_credentials_request.schema.json', 'The pull credentials request');
export const validateStoredEntry = validator<Record<string, unknown>>('container_registry_stored.schema.json', 'The stored entry');

/** Dotted paths of the entry that only the service may set (every `readOnly: true` property of the entry schema). */
export const readOnlyPaths: readonly string[] = (() => {
  const out: string[] = [];
  const walk = (schema: Record<string, unknown>, prefix: string) => {
    const props = schema.properties as Record<string, Record<string, unknown>> | undefined;
    for (const [name, sub] of Object.entries(props ?? {})) {
      const p = prefix ? `${prefix}.${name}` : name;
      if (sub.readOnly === true) out.push(p);
      else if (sub.type === 'object') walk(sub, p);
    }
  };
  walk(entrySchema as Record<string, unknown>, '');
  return Object.freeze(out);
})();

/** Top-level fields of an entry, in schema order. */
export const entryFields: readonly string[] = Object.keys(entrySchema.properties);

type StringBounds = { maxLength?: number; properties?: Record<string, StringBounds> };

/**
 * `value` with every string cut to the `maxLength` its schema gives it (properties followed, `…` marking a
 * cut). For what the service writes from text a registry chose (realm, service, API version, certificate
 * names, error details): the health and observed schemas state the bounds, this applies them before storing.
 */
export function clipToSchema<T>(schema: object, value: T): T {
  const s = schema as StringBounds;
  if (typeof value === 'string') {
    if (s.maxLength === undefined || value.length <= s.maxLength) return value;
    let end = s.maxLength - 1;
    if (end > 0 && (value.charCodeAt(end - 1) & 0xfc00) === 0xd800) end--; // never half a surrogate pair
    return `${value.slice(0, end)}…` as T;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || !s.properties) return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [key, sub] of Object.entries(s.properties)) if (Object.hasOwn(out, key)) out[key] = clipToSchema(sub, out[key]);
  return out as T;
}
