/**
 * Image references: parsing, validation and Docker's normalisation, ported from distribution/reference
 * (`regexp.go` for the grammar, `reference.go` Parse, `normalize.go` ParseNormalizedNamed and
 * splitDockerDomain). Written here from the grammar, not copied:
 *
 *   reference      := name [ ":" tag ] [ "@" digest ]
 *   name           := [ domain "/" ] path
 *   domain         := host [ ":" port ]          host: DNS-like name, IPv4, or [IPv6] (no zone)
 *   path           := component ( "/" component )*
 *   component      := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
 *   tag            := [\w][\w.-]{0,127}
 *   digest         := algorithm ":" hex          (sha256: 64, sha384: 96, sha512: 128 lowercase hex)
 *
 * Normalisation (as Docker and containerd do): no registry host → `docker.io`; `index.docker.io` →
 * `docker.io`; a one-component path on `docker.io` → `library/NAME`. The first component is a host only if
 * it contains `.` or `:`, is `localhost`, or has an uppercase letter (splitDockerDomain). Tag and digest are
 * kept as given (no `:latest` is added). The path (after normalisation) is at most 255 characters, as in
 * distribution/reference since 2024 (the domain no longer counts).
 *
 * Pure: no I/O. Errors are InvalidReferenceError with a code named after distribution's errors.
 */

export type ReferenceErrorCode =
  | 'empty'
  | 'too-long'
  | 'identifier'
  | 'invalid-format'
  | 'uppercase'
  | 'name-too-long'
  | 'digest-unsupported'
  | 'digest-invalid-length'
  | 'digest-invalid-format';

export class InvalidReferenceError extends Error {
  constructor(
    readonly code: ReferenceErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'InvalidReferenceError';
  }
}

/** A parsed, normalised image reference. */
export interface ImageReference {
  /** Registry host[:port] (`index.docker.io` already turned into `docker.io`). Empty only in the grammar's corner case where the first component is host-like but not a valid host (`foo_bar.com/x`). */
  domain: string;
  /** Repository path, e.g. `library/nginx`. */
  path: string;
  tag?: string;
  digest?: string;
  /** domain/path */
  name: string;
  /** The normalised reference: name[:tag][@digest]. */
  reference: string;
}

/** A registry prefix (`domain[/path]`): an entry's image prefix or one of its `mirror_of`. */
export interface ImagePrefix {
  domain: string;
  /** '' when the prefix is a bare domain. */
  path: string;
  /** The normalised prefix: domain[/path]. */
  name: string;
}

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';
/** distribution/reference RepositoryNameTotalLengthMax (counts the path only). */
export const PATH_MAX = 255;
/**
 * Input longer than this is refused before any regular expression runs. The longest valid reference is
 * well below it (a 253-character host with port, a 255-character path, a 128-character tag, a sha512 digest).
 */
export const INPUT_MAX = 1024;
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

// The grammar, assembled from its productions (distribution/reference regexp.go).
const group = (...parts: string[]) => `(?:${parts.join('')})`;
const optional = (...parts: string[]) => `${group(...parts)}?`;
const repeated = (...parts: string[]) => `${group(...parts)}*`;
const capture = (...parts: string[]) => `(${parts.join('')})`;
const anchored = (...parts: string[]) => new RegExp(`^${parts.join('')}$`);

const ALPHANUMERIC = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|-+)';
const PATH_COMPONENT = ALPHANUMERIC + repeated(SEPARATOR, ALPHANUMERIC);
const REMOTE_NAME = PATH_COMPONENT + repeated('/', PATH_COMPONENT);
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_NAME = DOMAIN_COMPONENT + repeated('\\.', DOMAIN_COMPONENT);
const IPV6 = '\\[[a-fA-F0-9:]+\\]';
const HOST = group(DOMAIN_NAME, '|', IPV6);
const DOMAIN_AND_PORT = HOST + optional(':[0-9]+');
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*' + repeated('[-_+.][A-Za-z][A-Za-z0-9]*') + ':[0-9a-fA-F]{32,}';
const NAME = optional(DOMAIN_AND_PORT, '/') + REMOTE_NAME;

const REFERENCE_RE = anchored(capture(NAME), optional(':', capture(TAG)), optional('@', capture(DIGEST)));
const ANCHORED_NAME_RE = anchored(optional(capture(DOMAIN_AND_PORT), '/'), capture(REMOTE_NAME));
const PREFIX_RE = anchored(capture(DOMAIN_AND_PORT), optional('/', capture(REMOTE_NAME)));
const IDENTIFIER_RE = /^[a-f0-9]{64}$/;

/** splitDockerDomain: the registry host and the rest, Docker Hub's names made canonical. */
function splitDockerDomain(name: string): [string, string] {
  const slash = name.indexOf('/');
  // One element ("ubuntu", "ubuntu:latest"): always a Docker Hub official image, never host:port.
  if (slash < 0) return [DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name];
  const first = name.slice(0, slash);
  const rest = name.slice(slash + 1);
  let domain: string;
  let remote: string;
  if (first === 'localhost') [domain, remote] = [first, rest];
  else if (first === LEGACY_DEFAULT_DOMAIN) [domain, remote] = [DEFAULT_DOMAIN, rest];
  else if (first.includes('.') || first.includes(':')) [domain, remote] = [first, rest];
  // Repository names are lowercase, so an uppercase first component can only be a host.
  else if (first.toLowerCase() !== first) [domain, remote] = [first, rest];
  else [domain, remote] = [DEFAULT_DOMAIN, name];
  if (domain === DEFAULT_DOMAIN && !remote.includes('/')) remote = OFFICIAL_REPO_PREFIX + remote;
  return [domain, remote];
}

function checkDigest(digest: string): void {
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (length === undefined) throw new InvalidReferenceError('digest-unsupported', `digest algorithm "${algorithm}" is not supported (sha256, sha384 or sha512)`);
  if (hex.length !== length) throw new InvalidReferenceError('digest-invalid-length', `a ${algorithm} digest has ${length} hexadecimal digits, not ${hex.length}`);
  if (!/^[a-f0-9]+$/.test(hex)) throw new InvalidReferenceError('digest-invalid-format', 'digest hexadecimal digits must be lowercase');
}

/** distribution's Parse, on an already normalised string. */
function parseCanonical(s: string): ImageReference {
  const m = REFERENCE_RE.exec(s);
  if (!m) {
    const lower = s.toLowerCase();
    if (lower !== s && REFERENCE_RE.test(lower)) throw new InvalidReferenceError('uppercase', 'repository name must be lowercase');
    throw new InvalidReferenceError('invalid-format', 'invalid reference format');
  }
  const [, name, tag, digest] = m as unknown as [string, string, string | undefined, string | undefined];
  const n = ANCHORED_NAME_RE.exec(name)!;
  const domain = n[1] ?? '';
  const path = n[2]!;
  if (path.length > PATH_MAX) throw new InvalidReferenceError('name-too-long', `repository name must not be more than ${PATH_MAX} characters`);
  if (digest !== undefined) checkDigest(digest);
  const ref: ImageReference = { domain, path, name, reference: name + (tag !== undefined ? `:${tag}` : '') + (digest !== undefined ? `@${digest}` : '') };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/**
 * Parses and normalises an image reference as Docker does (ParseNormalizedNamed): `nginx` →
 * `docker.io/library/nginx`, `index.docker.io/x/y:1` → `docker.io/x/y:1`. Throws InvalidReferenceError.
 */
export function parseReference(input: string): ImageReference {
  if (typeof input !== 'string' || input === '') throw new InvalidReferenceError('empty', 'repository name must have at least one component');
  if (input.length > INPUT_MAX) throw new InvalidReferenceError('too-long', `reference must not be more than ${INPUT_MAX} characters`);
  if (IDENTIFIER_RE.test(input)) throw new InvalidReferenceError('identifier', 'invalid repository name: a 64-character hexadecimal string is an image id, not a name');
  const [domain, remainder] = splitDockerDomain(input);
  const colon = remainder.indexOf(':');
  const remote = colon >= 0 ? remainder.slice(0, colon) : remainder;
  if (remote.toLowerCase() !== remote) throw new InvalidReferenceError('uppercase', `repository name (${remote}) must be lowercase`);
  return parseCanonical(`${domain}/${remainder}`);
}

/**
 * Parses a registry prefix `domain[/path]` (an entry's image prefix or a `mirror_of` item). The first
 * component is always the domain (`index.docker.io` → `docker.io`); no `library/` is added (`docker.io/bitnami`
 * is a namespace). Throws InvalidReferenceError.
 */
export function parsePrefix(input: string): ImagePrefix {
  if (typeof input !== 'string' || input === '') throw new InvalidReferenceError('empty', 'prefix must not be empty');
  if (input.length > INPUT_MAX) throw new InvalidReferenceError('too-long', `prefix must not be more than ${INPUT_MAX} characters`);
  const m = PREFIX_RE.exec(input);
  if (!m) {
    const lower = input.toLowerCase();
    if (lower !== input && PREFIX_RE.test(lower)) throw new InvalidReferenceError('uppercase', 'repository path must be lowercase');
    throw new InvalidReferenceError('invalid-format', 'invalid prefix format: expected host[:port][/path]');
  }
  const domain = m[1] === LEGACY_DEFAULT_DOMAIN ? DEFAULT_DOMAIN : m[1]!;
  const path = m[2] ?? '';
  if (path.length > PATH_MAX) throw new InvalidReferenceError('name-too-long', `repository path must not be more than ${PATH_MAX} characters`);
  // The input itself when normalisation changed nothing (an index keeps it without a copy).
  const name = domain === m[1] ? input : path ? `${domain}/${path}` : domain;
  return { domain, path, name };
}

const REMOTE_NAME_RE = anchored(REMOTE_NAME);
const TAG_RE = anchored(TAG);

/** A repository path as registries list it (`team/app`): the grammar's path, at most PATH_MAX characters. */
export function isRepositoryPath(s: string): boolean {
  return s.length <= PATH_MAX && REMOTE_NAME_RE.test(s);
}

/** A tag by the grammar (`[\w][\w.-]{0,127}`). */
export function isTag(s: string): boolean {
  return s.length <= 128 && TAG_RE.test(s);
}

/**
 * True when Docker would read `component` as a registry host when it comes first in a reference
 * (splitDockerDomain): it contains `.` or `:`, is `localhost`, or has an uppercase letter. A prefix whose
 * domain fails this can never match a reference.
 */
export function isHostLike(component: string): boolean {
  return component === 'localhost' || component.includes('.') || component.includes(':') || component.toLowerCase() !== component;
}

/**
 * The domain as a matching key: host names compare case-insensitively and an IPv6 literal compares in its
 * canonical form (`[0:0::1]:5000` = `[::1]:5000`). The port is kept as written.
 */
export function domainKey(domain: string): string {
  if (!domain.startsWith('[')) return domain.toLowerCase();
  let key = ipv6Keys.get(domain);
  if (key === undefined) {
    const close = domain.indexOf(']');
    try {
      key = new URL(`http://${domain.slice(0, close + 1)}/`).hostname + domain.slice(close + 1);
    } catch {
      key = domain.toLowerCase();
    }
    if (ipv6Keys.size >= 4096) ipv6Keys.clear();
    ipv6Keys.set(domain, key);
  }
  return key;
}

/** IPv6 domains seen recently → their keys (URL parsing costs more than the rest of a lookup). */
const ipv6Keys = new Map<string, string>();
