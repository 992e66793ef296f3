/**
 * The OpenAPI 3.1 document (GET /openapi.json), built once at startup from the schemas of schemas/ (no
 * second copy of any schema): each schema becomes a component named by its `title`, its `$defs` become
 * components `<Title>_<def>`, and `$id`-relative references (`#/$defs/x`, `other.schema.json`,
 * `other.schema.json#/$defs/x`) are rewritten to point at those components.
 */
import { DEFAULT_CHANGES_LIMIT, MAX_CHANGES_LIMIT, MAX_WAIT_S } from './feed/changes';
import { HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT } from './health/history';
import { rolesWith, type Permission } from './http/auth';
import { DEFAULT_LIMIT, MAX_LIMIT } from './registries/query';
import { schemas } from './schemas';

type Json = Record<string, unknown>;
type SchemaFile = { $id: string; title: string; $defs?: Json } & Json;

function componentsFrom(files: SchemaFile[]): Record<string, Json> {
  const byId = new Map(files.map((f) => [f.$id, f.title]));
  const out: Record<string, Json> = {};
  for (const file of files) {
    const rewrite = (node: unknown): unknown => {
      if (Array.isArray(node)) return node.map(rewrite);
      if (node === null || typeof node !== 'object') return node;
      const copy: Json = {};
      for (const [k, v] of Object.entries(node)) copy[k] = k === '$ref' && typeof v === 'string' ? refTo(v) : rewrite(v);
      return copy;
    };
    const refTo = (ref: string): string => {
      const [target, fragment = ''] = ref.split('#');
      const title = target ? byId.get(target) : file.title;
      if (!title) throw new Error(`openapi: ${file.$id} refers to unknown schema ${ref}`);
      if (fragment === '' || fragment === '/') return `#/components/schemas/${title}`;
      const def = /^\/\$defs\/([A-Za-z0-9_.-]+)$/.exec(fragment);
      if (!def) throw new Error(`openapi: ${file.$id} has a reference this builder cannot convert: ${ref}`);
      return `#/components/schemas/${title}_${def[1]}`;
    };
    const { $id: _id, $schema: _schema, $defs, ...rest } = file;
    out[file.title] = rewrite(rest) as Json;
    for (const [name, def] of Object.entries($defs ?? {})) out[`${file.title}_${name}`] = rewrite(def) as Json;
  }
  return out;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const problem = (description: string) => ({ description, content: { 'application/problem+json': { schema: ref('Problem') } } });
const json = (schema: Json, description: string, headers?: Json) => ({ description, ...(headers ? { headers } : {}), content: { 'application/json': { schema } } });

const idParam = { name: 'id', in: 'path', required: true, description: 'container_registry_id (UUID)', schema: { type: 'string' } };
const webhookIdParam = { name: 'id', in: 'path', required: true, description: 'Webhook subscription id (UUID)', schema: { type: 'string' } };

/** A subscription as the API shows it; `withSecret` only in the answer to POST /webhooks. */
function webhookView(withSecret: boolean): Json {
  return {
    type: 'object',
    required: ['id', 'url', 'events', 'status', 'position', 'created_at', 'delivered', 'failed_attempts', 'last_error', ...(withSecret ? ['secret'] : [])],
    properties: {
      id: { type: 'string' },
      url: { type: 'string' },
      events: { type: 'array', items: { type: 'string' } },
      filter: ref('ContainerRegistryFilter'),
      status: { enum: ['active', 'failing', 'disabled'], description: '`failing`: no delivery succeeded for WEBHOOK_RETRY_FOR_S; `disabled`: the receiver answered 410. Both stop delivery; delete and recreate to resume.' },
      status_reason: { type: 'string' },
      position: { type: 'integer', description: 'Every catalog change up to this revision was delivered.' },
      created_at: { type: 'string', format: 'date-time' },
      delivered: { type: 'integer' },
      failed_attempts: { type: 'integer' },
      last_error: { type: ['object', 'null'] },
      ...(withSecret ? { secret: { type: 'string', description: 'whsec_...: verify deliveries with it.' } } : {}),
    },
  };
}

const ifMatch = { name: 'If-Match', in: 'header', required: false, description: 'ETag of the version the change is based on; 412 when stale.', schema: { type: 'string' } };
const etag = { ETag: { description: 'The entry version as a strong entity tag.', schema: { type: 'string' } } };
const pullConfigHeaders = {
  ETag: { description: 'A strong entity tag of the text (send it as If-None-Match).', schema: { type: 'string' } },
  'X-Catalog-Revision': { description: 'The catalog revision the text was rendered at.', schema: { type: 'string' } },
};

/** Answers every protected route can give besides its own. */
const guarded = {
  '401': problem('No API key, or an unknown one (see WWW-Authenticate).'),
  '403': problem('The key’s role is too low for this route, or protected mode refuses a non-loopback client, a Host that is not a loopback name (DNS rebinding) or a cross-origin write.'),
  '429': problem('Rate limit exceeded (see RateLimit and Retry-After).'),
  '503': problem('The database is unreachable, a query exceeded its time limit, or (GET/POST /resolve) the resolver is still loading the catalog after start-up; retry after Retry-After seconds.'),
};

function op(permission: Permission | null, summary: string, rest: Json): Json {
  if (permission === null) return { summary, security: [], ...rest };
  const responses = { ...(rest.responses as Json), ...guarded };
  return { summary, description: `Needs the ${rolesWith(permission)} role (\`can('${permission}')\`).`, 'x-permission': permission, ...rest, responses };
}

/**
 * The entry as responses carry it: the entry schema with credentials in their masked form (the request
 * form's password is write-only and required, so the request schema cannot describe responses).
 */
function entryView(components: Record<string, Json>): Json {
  const base = components.ContainerRegistry!;
  const properties = { ...(base.properties as Json), container_registry_credentials: ref('ContainerRegistryCredentialsView') };
  return { ...base, title: 'ContainerRegistryView', properties };
}

function paths(has: (name: string) => boolean): Json {
  const entry = ref('ContainerRegistryView');
  const report = has('HealthReport') ? ref('HealthReport') : { type: 'object' };
  return {
    '/container_registry': {
      post: op('write', 'Create a registry entry', {
        operationId: 'createRegistry',
        requestBody: { required: true, content: { 'application/json': { schema: ref('ContainerRegistry') } } },
        responses: {
          '201': json(entry, 'The stored entry.', { ...etag, Location: { description: 'URL of the new entry.', schema: { type: 'string' } } }),
          '400': problem('Invalid entry or malformed JSON.'),
          '409': problem('The name is taken.'),
          '413': problem('Body too large, or the entry would be over 16,711,680 bytes as stored (the problem names its largest field).'),
          '415': problem('Body is not JSON, or labelled with a charset other than UTF-8.'),
        },
      }),
    },
    '/container_registry/{id}': {
      parameters: [idParam],
      get: op('read', 'Read one entry', {
        operationId: 'getRegistry',
        responses: { '200': json(entry, 'The entry.', etag), '404': problem('No such entry.') },
      }),
      put: op('write', 'Update an entry ($set, $unset, $addToSet, $pull, or a plain object of fields)', {
        operationId: 'updateRegistry',
        parameters: [ifMatch],
        requestBody: { required: true, content: { 'application/json': { schema: ref('ContainerRegistryUpdate') } } },
        responses: {
          '200': json(entry, 'The updated entry.', etag),
          '400': problem('Invalid update.'),
          '404': problem('No such entry.'),
          '409': problem('The name is taken, or the entry is mirrored from a peer (read-only here; the problem names the peer).'),
          '412': problem('If-Match names an older version.'),
          '413': problem('Body too large, or the updated entry would be over 16,711,680 bytes as stored (the problem names its largest field).'),
          '415': problem('Body is not JSON, or labelled with a charset other than UTF-8.'),
        },
      }),
      delete: op('delete', 'Delete an entry', {
        operationId: 'deleteRegistry',
        parameters: [ifMatch],
        responses: { '204': { description: 'Deleted.' }, '400': problem('If-Match is not one entity tag.'), '404': problem('No such entry.'), '409': problem('The entry is mirrored from a peer (read-only here; the problem names the peer).'), '412': problem('If-Match names an older version.') },
      }),
    },
    '/container_registries': {
      post: op('read', 'Query the catalog with a Mongo-style filter', {
        operationId: 'queryRegistries',
        parameters: [
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT } },
          { name: 'cursor', in: 'query', description: 'Opaque; from the previous page’s Link header.', schema: { type: 'string' } },
          { name: 'sort', in: 'query', description: 'A whitelisted field, `-` for descending.', schema: { type: 'string' } },
          { name: 'fields', in: 'query', description: 'Comma-separated projection.', schema: { type: 'string' } },
          { name: 'min_revision', in: 'query', description: 'Wait (up to 5 s) until the answer includes every change up to this catalog revision; 503 if it does not; 400 if no such revision was ever written.', schema: { type: 'integer', minimum: 0 } },
        ],
        requestBody: { required: false, content: { 'application/json': { schema: ref('ContainerRegistryFilter') } } },
        responses: {
          '200': json({ type: 'array', items: entry }, 'The matching entries.', {
            Link: { description: '`<...>; rel="next"` when there is a next page.', schema: { type: 'string' } },
            'X-Catalog-Revision': { description: 'The answer includes every change up to this catalog revision.', schema: { type: 'string' } },
          }),
          '400': problem('Invalid filter or query option.'),
          '413': problem('Body too large.'),
          '415': problem('Body is not JSON, or labelled with a charset other than UTF-8.'),
        },
      }),
    },
    '/container_registries/changes': {
      get: op('read', 'Follow the catalog: the changes after a revision (JSON page, long poll, or Server-Sent Events)', {
        operationId: 'catalogChanges',
        description:
          'List-then-watch (SPEC 12): start with since=0 (a list of every entry), then pass the returned `revision` as `since`. With `wait` the request waits for a change. With `Accept: text/event-stream` the same URL streams events `upsert`, `delete` and `bookmark` (heartbeat) with `id:` = revision; reconnect with `Last-Event-ID` to resume.',
        parameters: [
          { name: 'since', in: 'query', description: 'Revision to continue from (0: list everything).', schema: { type: 'integer', minimum: 0, default: 0 } },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: MAX_CHANGES_LIMIT, default: DEFAULT_CHANGES_LIMIT } },
          { name: 'wait', in: 'query', description: 'Long poll: seconds to wait when nothing is newer than `since`.', schema: { type: 'integer', minimum: 0, maximum: MAX_WAIT_S, default: 0 } },
          { name: 'filter', in: 'query', description: 'A query filter as JSON (same rules as POST /container_registries); an entry that stops matching is a delete.', schema: { type: 'string' } },
          { name: 'origin', in: 'query', description: '`local`: leave out entries mirrored from peer catalogs.', schema: { type: 'string', enum: ['local'] } },
          { name: 'Last-Event-ID', in: 'header', required: false, description: 'SSE resume: the id of the last event received (stands for `since`).', schema: { type: 'string' } },
        ],
        responses: {
          '200': {
            description: 'The changes after `since` (JSON), or an event stream.',
            headers: {
              'X-Catalog-Revision': { description: 'The revision this replica has read up to.', schema: { type: 'string' } },
              'X-Catalog-Epoch': {
                description: "The catalog's feed epoch (also `epoch` in a JSON page; the only place an event stream carries it). Revisions belong to one epoch: a new one (a restore by db:import, a new database) means list again from since=0.",
                schema: { type: 'string' },
              },
            },
            content: { 'application/json': { schema: ref('ChangePage') }, 'text/event-stream': { schema: { type: 'string' } } },
          },
          '400': problem('Invalid parameter, or `since` beyond the latest revision.'),
          '410': problem('`since` is older than the retained history (type ends in /revision-expired; `revision` carries the current revision): list again from since=0.'),
          '503': problem('The replica is loading the catalog or has not yet read `since`; retry.'),
        },
      }),
    },
    '/check_container_health/{id}': {
      parameters: [idParam],
      get: op('probe', 'Probe the registry now (GET /v2/) and store the result', {
        operationId: 'checkRegistryHealth',
        responses: { '200': json(ref('ContainerRegistryHealth'), 'The probe result.'), '404': problem('No such entry.'), '409': problem('The entry is mirrored from a peer, which probes it.') },
      }),
    },
    '/container_registry/{id}/health_history': {
      parameters: [idParam],
      get: op('read', 'One registry’s recorded probes in a window, oldest first (the status page’s chart)', {
        operationId: 'getRegistryHealthHistory',
        parameters: [
          { name: 'since', in: 'query', description: 'ISO-8601 date-time, start of the window; default: the whole kept history (HEALTH_HISTORY_DAYS).', schema: { type: 'string', format: 'date-time' } },
          { name: 'limit', in: 'query', description: 'Most probes returned (the newest when the window holds more; then `truncated` is true).', schema: { type: 'integer', minimum: 1, maximum: HISTORY_MAX_LIMIT, default: HISTORY_DEFAULT_LIMIT } },
        ],
        responses: {
          '200': json(ref('ContainerRegistryHealthHistory'), 'The probes of the window.'),
          '400': problem('`since` or `limit` is invalid.'),
          '404': problem('No such entry.'),
        },
      }),
    },
    '/whoami': {
      get: op('read', 'The caller’s role and what it may do (the status page asks this first)', {
        operationId: 'whoami',
        responses: {
          '200': json(
            {
              type: 'object',
              required: ['role', 'key_id', 'protected_mode', 'permissions'],
              properties: {
                role: { enum: ['reader', 'writer', 'admin', 'puller'] },
                key_id: { type: 'string', description: 'Non-secret id of the key (first 16 hex digits of its SHA-256), or `loopback` in protected mode.' },
                protected_mode: { type: 'boolean', description: 'No API keys configured: loopback clients only, served as admin.' },
                permissions: { type: 'object', additionalProperties: { type: 'boolean' }, description: 'Each permission (read, write, probe, delete, webhooks, pull_credentials) and whether the role has it.' },
              },
            },
            'Who the caller is.',
          ),
        },
      }),
    },
    '/': {
      get: op(null, 'The status page (HTML; its scripts ask for an API key when one is needed)', {
        operationId: 'statusPage',
        responses: { '200': { description: 'The page, with a strict Content-Security-Policy.', content: { 'text/html': { schema: { type: 'string' } } } }, '304': { description: 'Not modified (If-None-Match).' } },
      }),
    },
    '/ui/{file}': {
      parameters: [{ name: 'file', in: 'path', required: true, description: 'A file of the status page (ui/ and the chart library).', schema: { type: 'string' } }],
      get: op(null, 'A static file of the status page (ES module, stylesheet or icon)', {
        operationId: 'statusPageAsset',
        responses: {
          '200': {
            description: 'The file, with a strict Content-Security-Policy, `Cache-Control: no-cache` and an ETag.',
            content: { 'text/javascript': { schema: { type: 'string' } }, 'text/css': { schema: { type: 'string' } }, 'image/svg+xml': { schema: { type: 'string' } } },
          },
          '304': { description: 'Not modified (If-None-Match).' },
          '404': problem('No such file.'),
        },
      }),
    },
    '/resolve': {
      get: op('read', 'Where to pull an image from: the registries that serve it, best first', {
        operationId: 'resolveImage',
        parameters: [
          { name: 'image', in: 'query', required: true, description: 'An image reference as given to `docker pull` (`nginx`, `quay.io/org/app:1.2`, `host:5000/app@sha256:...`); normalised as Docker does.', schema: { type: 'string' } },
          { name: 'prefer', in: 'query', required: false, description: 'Comma-separated entry tags: among otherwise equal candidates, an entry carrying an earlier one comes first.', schema: { type: 'string' } },
        ],
        responses: {
          '200': json(ref('ResolveResult'), 'The normalised image and its candidates, best first.'),
          '400': problem('Missing or invalid `image` (distribution’s reference grammar), or invalid `prefer`.'),
          '404': problem('No entry’s image prefix or `mirror_of` is a prefix of the image.'),
        },
      }),
      post: op('read', 'Resolve up to 1,000 images at once', {
        operationId: 'resolveImages',
        requestBody: { required: true, content: { 'application/json': { schema: ref('ResolveRequest') } } },
        responses: {
          '200': json(ref('ResolveBatchResult'), 'One item per image, in order: a result, or the problem GET /resolve would answer for that image.'),
          '400': problem('Invalid body (not a list of 1 to 1,000 strings, or invalid `prefer`), or malformed JSON.'),
          '413': problem('Body too large.'),
          '415': problem('Body is not JSON, or labelled with a charset other than UTF-8.'),
        },
      }),
    },
    '/pull-config/containerd/{upstream}/hosts.toml': {
      parameters: [{ name: 'upstream', in: 'path', required: true, description: 'A registry host as images name it (`docker.io`, `quay.io`, `127.0.0.1:5000`); `index.docker.io` means `docker.io`, the host is compared without case.', schema: { type: 'string' } }],
      get: op('read', 'containerd’s certs.d/<upstream>/hosts.toml: the upstream’s mirrors best first, the upstream itself as the server (last resort)', {
        operationId: 'containerdHostsToml',
        description:
          'Rendered from the in-memory catalog by the functions the node agent writes its files with. Mirrors are the entries whose `container_registry_config.mirror_of` is this host, in /resolve’s order (healthy, degraded, unknown), unhealthy ones left out; `override_path` when the mirror keeps the names under a path; `ca` names a file the agent writes beside hosts.toml, `skip_verify` from `insecure_skip_tls_verify`.',
        parameters: [{ name: 'If-None-Match', in: 'header', required: false, description: 'An ETag of an earlier answer: 304 when the text is unchanged.', schema: { type: 'string' } }],
        responses: {
          '200': { description: 'The file.', headers: pullConfigHeaders, content: { 'text/plain': { schema: { type: 'string' } } } },
          '304': { description: 'Not modified (If-None-Match).' },
          '400': problem('`upstream` is not a registry host (it has a path, or is no valid host[:port]).'),
          '404': problem('No entry mirrors this host.'),
        },
      }),
    },
    '/pull-config/registries.conf': {
      get: op('read', 'containers-registries.conf (v2) for CRI-O, podman and skopeo: one [[registry]] per mirrored upstream, its mirrors best first', {
        operationId: 'registriesConf',
        parameters: [{ name: 'If-None-Match', in: 'header', required: false, description: 'An ETag of an earlier answer: 304 when the text is unchanged.', schema: { type: 'string' } }],
        responses: {
          '200': { description: 'The file (only comments when nothing is mirrored).', headers: pullConfigHeaders, content: { 'text/plain': { schema: { type: 'string' } } } },
          '304': { description: 'Not modified (If-None-Match).' },
        },
      }),
    },
    '/pull-credentials': {
      post: op('pull_credentials', 'The stored credentials of the registries that serve an image, for a node about to pull it (the kubelet credential provider)', {
        operationId: 'pullCredentials',
        description:
          'The candidates of /resolve for the image that have stored credentials, keyed by their image prefix; never an entry mirrored from a peer. Every answer is logged (key id, image, registry ids; never a secret), counted in /metrics (`registry_db_pull_credentials_*`) and limited per key (PULL_CREDENTIALS_RATE_LIMIT_MAX).',
        requestBody: { required: true, content: { 'application/json': { schema: ref('PullCredentialsRequest') } } },
        responses: {
          '200': json(ref('PullCredentialsResult'), 'The credentials (`auth` is empty when no candidate has any).'),
          '400': problem('Invalid body, or `image` is not a valid reference (the problem names /image).'),
          '404': problem('No registry of the catalog serves the image.'),
          '413': problem('Body too large.'),
          '415': problem('Body is not JSON, or labelled with a charset other than UTF-8.'),
        },
      }),
    },
    '/peers': {
      get: op('read', 'The peer catalogs this one follows (PEERS) and the state of each', {
        operationId: 'listPeers',
        responses: { '200': json({ type: 'array', items: ref('PeerStatus') }, 'One item per peer, in PEERS order.') },
      }),
    },
    '/webhooks': {
      post: op('webhooks', 'Subscribe a URL to catalog events (signed per Standard Webhooks); the secret is in this answer only', {
        operationId: 'createWebhook',
        requestBody: { required: true, content: { 'application/json': { schema: ref('WebhookSubscriptionRequest') } } },
        responses: {
          '201': json(webhookView(true), 'The subscription, with its secret (never shown again).', { Location: { description: 'URL of the subscription.', schema: { type: 'string' } } }),
          '400': problem('Invalid subscription (url, events, filter or secret named), or malformed JSON.'),
          '413': problem('Body too large.'),
          '415': problem('Body is not JSON, or labelled with a charset other than UTF-8.'),
        },
      }),
      get: op('webhooks', 'List webhook subscriptions', {
        operationId: 'listWebhooks',
        responses: { '200': json({ type: 'object', properties: { webhooks: { type: 'array', items: webhookView(false) } } }, 'Every subscription, oldest first.') },
      }),
    },
    '/webhooks/{id}': {
      parameters: [webhookIdParam],
      get: op('webhooks', 'One webhook subscription: status, position, delivery counts and the last error', {
        operationId: 'getWebhook',
        responses: { '200': json(webhookView(false), 'The subscription.'), '404': problem('No such subscription.') },
      }),
      delete: op('webhooks', 'Delete a webhook subscription (and its delivery log)', {
        operationId: 'deleteWebhook',
        responses: { '204': { description: 'Deleted.' }, '404': problem('No such subscription.') },
      }),
    },
    '/webhooks/{id}/enable': {
      parameters: [webhookIdParam],
      post: op('webhooks', 'Make a failing or disabled subscription active again; it resumes from its stored position (the events it missed come in order), or with from=now after the current revision', {
        operationId: 'enableWebhook',
        parameters: [{ name: 'from', in: 'query', required: false, description: '`now`: skip the events missed while the subscription was not active.', schema: { type: 'string', enum: ['now'] } }],
        responses: {
          '200': json(webhookView(false), 'The subscription, active.'),
          '400': problem('`from` is not `now`.'),
          '404': problem('No such subscription.'),
          '409': problem('The stored position is older than the retained history: some events can no longer be delivered (enable with from=now).'),
        },
      }),
    },
    '/webhooks/{id}/deliveries': {
      parameters: [webhookIdParam],
      get: op('webhooks', 'The last 100 delivery attempts of a subscription, newest first', {
        operationId: 'getWebhookDeliveries',
        responses: {
          '200': json(
            {
              type: 'object',
              properties: {
                deliveries: {
                  type: 'array',
                  items: {
                    type: 'object',
                    properties: {
                      event_id: { type: 'string' },
                      type: { type: 'string' },
                      revision: { type: 'integer' },
                      attempt: { type: 'integer' },
                      http_status: { type: ['integer', 'null'] },
                      error: { type: ['string', 'null'] },
                      duration_ms: { type: 'integer' },
                      at: { type: 'string', format: 'date-time' },
                    },
                  },
                },
              },
            },
            'Recent attempts.',
          ),
          '404': problem('No such subscription.'),
        },
      }),
    },
    '/health_report': {
      get: op('read', 'The latest health report', { operationId: 'getHealthReport', responses: { '200': json(report, 'The latest report.') } }),
    },
    '/metrics': {
      get: op('read', 'Prometheus metrics', {
        operationId: 'getMetrics',
        responses: { '200': { description: 'Prometheus text format.', content: { 'text/plain': { schema: { type: 'string' } } } } },
      }),
    },
    '/healthz': {
      get: op(null, 'Liveness', { operationId: 'liveness', responses: { '200': json({ type: 'object' }, 'The process is alive.') } }),
    },
    '/readyz': {
      get: op(null, 'Readiness: the database answers', {
        operationId: 'readiness',
        responses: { '200': json({ type: 'object' }, 'Ready.'), '503': problem('The database is unreachable, or the service is stopping.') },
      }),
    },
    '/openapi.json': {
      get: op(null, 'This document', { operationId: 'openapi', responses: { '200': json({ type: 'object' }, 'OpenAPI 3.1.') } }),
    },
  };
}

export function buildOpenApi(version: string): Json {
  const components = componentsFrom(Object.values(schemas) as unknown as SchemaFile[]);
  components.ContainerRegistryView = entryView(components);
  return {
    openapi: '3.1.0',
    info: {
      title: 'Registry DB',
      version,
      description: 'Catalog of OCI / Docker container registries. Errors are RFC 9457 problem details.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    security: [{ bearer: [] }, { simple: [] }],
    paths: paths((name) => name in components),
    components: {
      schemas: components,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: '`Authorization: Bearer KEY` with a key from API_KEYS.' },
        simple: { type: 'apiKey', in: 'header', name: 'Authorization', description: '`Authorization: Simple KEY` with a key from API_KEYS.' },
      },
    },
  };
}
