/**
 * What the storage crawl reads from a manifest: child manifests of an index (with their platforms), the blobs
 * of an image, and the manifest's media type.
 */

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

export interface ChildDescriptor extends Descriptor {
  /** `os/architecture[/variant]` of the child, or null when the index does not say (or says `unknown/unknown`: an attestation). */
  platform: string | null;
}

export interface ParsedManifest {
  /** The body's `mediaType`, when it states one. */
  mediaType: string | null;
  /** An OCI index or Docker manifest list (it has a `manifests` list). */
  isIndex: boolean;
  /** Child manifests (OCI index, Docker manifest list). */
  children: ChildDescriptor[];
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

const PLATFORM_PART = /^[A-Za-z0-9._-]{1,64}$/;

/** `os/architecture[/variant]` of an index's `platform` object; null when absent, malformed or `unknown/unknown`. */
function platformOf(value: unknown): string | null {
  const p = (value as { platform?: unknown }).platform;
  if (p === null || typeof p !== 'object') return null;
  const { os, architecture, variant } = p as { os?: unknown; architecture?: unknown; variant?: unknown };
  if (typeof os !== 'string' || typeof architecture !== 'string' || !PLATFORM_PART.test(os) || !PLATFORM_PART.test(architecture)) return null;
  if (os === 'unknown' && architecture === 'unknown') return null;
  return typeof variant === 'string' && PLATFORM_PART.test(variant) ? `${os}/${architecture}/${variant}` : `${os}/${architecture}`;
}

/** The distinct platforms of an index's children, in their order. */
export function platformsOf(children: readonly ChildDescriptor[]): string[] {
  return [...new Set(children.map((c) => c.platform).filter((p): p is string => p !== null))];
}

const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/** Content types that say nothing about the manifest: the body's `mediaType` is taken instead. */
const GENERIC = new Set(['application/json', 'application/octet-stream', 'text/plain']);
const validMediaType = (t: string | null | undefined): t is string => typeof t === 'string' && MEDIA_TYPE.test(t);

/** A manifest's media type: the Content-Type the registry sent (parameters dropped), unless generic, else the body's `mediaType`. */
export function mediaTypeOf(contentType: string | undefined, stated: string | null): string | null {
  const sent = contentType?.split(';')[0]!.trim().toLowerCase();
  if (validMediaType(sent) && !GENERIC.has(sent)) return sent;
  if (validMediaType(stated)) return stated;
  return validMediaType(sent) ? sent : null;
}

/** True for the media types of an OCI index and a Docker manifest list. */
export function isIndexMediaType(mediaType: string | null): boolean {
  return mediaType === 'application/vnd.oci.image.index.v1+json' || mediaType === 'application/vnd.docker.distribution.manifest.list.v2+json';
}

/** False when the Content-Type says the manifest is an image manifest (no platforms to read from its body). */
export function mayBeIndex(contentType: string | undefined): boolean {
  const sent = mediaTypeOf(contentType, null);
  return sent === null || GENERIC.has(sent) || isIndexMediaType(sent);
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
  const m = doc as { manifests?: unknown; config?: unknown; layers?: unknown; mediaType?: unknown };
  const children: ChildDescriptor[] = [];
  if (Array.isArray(m.manifests)) {
    for (const child of m.manifests) {
      const d = descriptor(child);
      if (d) children.push({ ...d, platform: platformOf(child) });
    }
  }
  const mediaType = typeof m.mediaType === 'string' ? m.mediaType : null;
  return { mediaType, isIndex: Array.isArray(m.manifests), children, blobs: blobsOf(m.config, m.layers) };
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
