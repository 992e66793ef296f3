/**
 * The OpenAPI 3.1 document (GET /openapi.json), built once at startup from the schemas of schemas/ (no
 * second copy of any schema): each schema becomes a component named by its `title`, its `$defs` become
 * components `<Title>_<def>`, and `$id`-relative references (`#/$defs/x`, `other.schema.json`,
 * `other.schema.json#/$defs/x`) are rewritten to point at those components. The operations are described
 * by the route modules beside their handlers (src/http/routes/*.ts, with src/http/api-doc.ts), gathered in
 * src/http/api-paths.ts.
 */
import { API_PATHS } from './http/api-paths';
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

/**
 * The entry as responses carry it: the entry schema with credentials in their masked form (the request
 * form's password is write-only and required, so the request schema cannot describe responses).
 */
function entryViewSchema(components: Record<string, Json>): Json {
  const base = components.ContainerRegistry!;
  const properties = { ...(base.properties as Json), container_registry_credentials: ref('ContainerRegistryCredentialsView') };
  return { ...base, title: 'ContainerRegistryView', properties };
}

export function buildOpenApi(version: string): Json {
  const components = componentsFrom(Object.values(schemas) as unknown as SchemaFile[]);
  components.ContainerRegistryView = entryViewSchema(components);
  return {
    openapi: '3.1.0',
    info: {
      title: 'Registry DB',
      version,
      description: 'Catalog of OCI / Docker container registries. Errors are RFC 9457 problem details.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    security: [{ bearer: [] }, { simple: [] }],
    paths: API_PATHS,
    components: {
      schemas: components,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: '`Authorization: Bearer KEY` with a key from API_KEYS.' },
        simple: { type: 'apiKey', in: 'header', name: 'Authorization', description: '`Authorization: Simple KEY` with a key from API_KEYS.' },
      },
    },
  };
}
