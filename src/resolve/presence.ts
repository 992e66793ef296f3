/**
 * Presence (SPEC 19): does a candidate registry hold the reference, with which digest, for which platforms?
 * Read from an inventory (the last storage refresh's findings, kept in memory by src/inventory/) through the
 * small interface below, so resolution stays pure: no database, no HTTP.
 *
 * Rules, for the repository the reference has on that registry (its path after the registry's host):
 * - no inventory (never refreshed, catalog refused, an entry mirrored from a peer, more than memory holds):
 *   `present: null`;
 * - a tag (none given: `latest`, what a pull takes): present when the inventory lists it; absent when it does
 *   not and the inventory is complete; unknown when it is `truncated`;
 * - a digest: present when a tag of the repository has that manifest digest; absent when the inventory is
 *   complete and holds no such repository; otherwise unknown (untagged manifests and an index's children are
 *   not listed by a crawl);
 * - `platform=os/arch[/variant]`: a present index lacking that platform is absent for it; an image manifest
 *   (its platform is not recorded) or an unread one leaves presence unknown.
 */

/** What an inventory knows of one tag's manifest. */
export interface HeldManifest {
  digest: string | null;
  media_type: string | null;
  platforms: string[] | null;
}

/** One registry's inventory as resolution reads it. */
export interface RegistryInventory {
  readonly observedAt: string;
  readonly truncated: boolean;
  hasRepository(repository: string): boolean;
  tag(repository: string, tag: string): HeldManifest | undefined;
  /** A manifest of `repository` whose digest is `digest` (by some tag), if any. */
  withDigest(repository: string, digest: string): HeldManifest | undefined;
  /** Every row, in (repository, tag) order (mirror drift walks a mirror's whole inventory). */
  forEachRow(visit: (repository: string, tag: string, digest: string | null) => void): void;
}

/** The inventories of the catalog's registries, by entry id. */
export interface InventoryView {
  inventoryOf(id: string): RegistryInventory | undefined;
}

export interface Presence {
  present: boolean | null;
  digest: string | null;
  platforms: string[] | null;
  observed_at: string | null;
  source: 'inventory' | 'live';
}

/** What a reference asks for on one registry. */
export interface Wanted {
  repository: string;
  tag?: string;
  digest?: string;
  platform?: string;
}

export const UNKNOWN: Presence = Object.freeze({ present: null, digest: null, platforms: null, observed_at: null, source: 'inventory' }) as Presence;

/** arm64's default variant is v8: `linux/arm64` and `linux/arm64/v8` are one platform (as containerd matches them). */
function canonicalPlatform(p: string): string {
  return p.endsWith('/arm64/v8') ? p.slice(0, -3) : p;
}

/** true / false: the index has / lacks `platform` (a platform without variant matches any variant); null: not an index. */
export function hasPlatform(platforms: readonly string[] | null, platform: string): boolean | null {
  if (platforms === null) return null;
  const want = canonicalPlatform(platform);
  const anyVariant = want.split('/').length === 2;
  return platforms.some((p) => {
    const have = canonicalPlatform(p);
    return have === want || (anyVariant && have.startsWith(`${want}/`));
  });
}

export function presenceOf(inventory: RegistryInventory | undefined, wanted: Wanted): Presence {
  if (!inventory) return UNKNOWN;
  const base = { observed_at: inventory.observedAt, source: 'inventory' as const };
  const held = wanted.digest !== undefined ? inventory.withDigest(wanted.repository, wanted.digest) : inventory.tag(wanted.repository, wanted.tag ?? 'latest');
  if (!held) {
    const absent = wanted.digest !== undefined ? !inventory.truncated && !inventory.hasRepository(wanted.repository) : !inventory.truncated;
    return { present: absent ? false : null, digest: null, platforms: null, ...base };
  }
  let present: boolean | null = true;
  if (wanted.platform !== undefined) present = held.digest === null ? null : hasPlatform(held.platforms, wanted.platform);
  return { present, digest: held.digest, platforms: held.platforms, ...base };
}

/** Sort rank of a presence: known present first, then unknown, then known absent. */
export function presenceRank(present: boolean | null): number {
  return present === true ? 0 : present === null ? 1 : 2;
}
