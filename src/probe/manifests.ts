/** What the storage crawl reads from a manifest: child manifests of an index, and the blobs of an image. */

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export interface Descriptor {
  digest: string;
  size: number;
}

export interface ParsedManifest {
  /** Child manifests (OCI index, Docker manifest list). */
  children: Descriptor[];
  /** Config and layers stored in the registry (foreign layers with `urls` left out), read as they are iterated. */
  blobs: Iterable<Descriptor>;
}

const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

function descriptor(value: unknown): Descriptor | null {
  if (value === null || typeof value !== 'object') return null;
  const d = value as { digest?: unknown; size?: unknown; urls?: unknown };
  if (typeof d.digest !== 'string' || !DIGEST.test(d.digest)) return null;
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) return null;
  return { digest: d.digest, size: d.size };
}

function isForeign(value: unknown): boolean {
  const urls = (value as { urls?: unknown }).urls;
  return Array.isArray(urls) && urls.length > 0;
}

/** Null when the body is not a JSON manifest. Schema 1 manifests carry no sizes: no blobs counted. */
export function parseManifest(body: Buffer): ParsedManifest | null {
  let doc: unknown;
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  if (doc === null || typeof doc !== 'object') return null;
  const m = doc as { manifests?: unknown; config?: unknown; layers?: unknown };
  const children: Descriptor[] = [];
  if (Array.isArray(m.manifests)) {
    for (const child of m.manifests) {
      const d = descriptor(child);
      if (d) children.push(d);
    }
  }
  return { children, blobs: blobsOf(m.config, m.layers) };
}

/** A manifest may list tens of thousands of layers: they are checked one by one as the caller asks for them. */
function* blobsOf(config: unknown, layers: unknown): Generator<Descriptor> {
  const c = descriptor(config);
  if (c) yield c;
  if (!Array.isArray(layers)) return;
  for (const layer of layers) {
    if (isForeign(layer)) continue;
    const d = descriptor(layer);
    if (d) yield d;
  }
}

export function isDigest(reference: string): boolean {
  return DIGEST.test(reference);
}
