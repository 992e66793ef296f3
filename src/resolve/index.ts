/**
 * Image resolution (SPEC section 14): "where do I pull this image from?". `reference.ts` parses and
 * normalises image references (distribution's grammar, Docker's normalisation); `prefix-index.ts` keeps the
 * catalog's image prefixes and mirrors in memory and answers a reference with its candidates, best first;
 * `presence.ts` says from the registries' inventories whether a candidate holds the reference, and `drift.ts`
 * where a mirror and its origin hold different digests.
 * Pure and in memory: fed entries (reset, then one change at a time), it imports no database and no HTTP.
 */
export { domainKey, InvalidReferenceError, isHostLike, isRepositoryPath, isTag, parsePrefix, parseReference, type ImagePrefix, type ImageReference, type ReferenceErrorCode } from './reference';
export { MAX_CANDIDATES, PrefixIndex, type ApiEntry, type Candidate, type HealthStatus, type IndexChange, type IndexedEntry, type MirrorCandidate, type ResolveOptions } from './prefix-index';
export { hasPlatform, presenceOf, presenceRank, UNKNOWN, type HeldManifest, type InventoryView, type Presence, type RegistryInventory, type Wanted } from './presence';
export { markDrift, mirrorDrift, type DriftItem, type MirrorRelation } from './drift';
