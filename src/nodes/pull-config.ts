/**
 * The pull configuration of a catalog, as files: what GET /pull-config/... answers and what the node agent
 * writes, from the same functions, so that a node's file is byte for byte the route's answer.
 *
 * `PullConfig` reads a prefix index and a lookup of entries (the server: its index and view; the agent: a
 * `FeedCatalog`, the entries it received from the change feed). Pure and in memory.
 */
import { PrefixIndex, type ApiEntry, type ImagePrefix, type IndexChange } from '../resolve';
import { containerdFiles, hostsToml } from './containerd';
import { registriesConf } from './registries-conf';
import { allUpstreams, upstreamOf, type EntryDetails, type EntryLookup } from './upstreams';

export class PullConfig {
  constructor(
    private readonly index: PrefixIndex,
    private readonly lookup: EntryLookup,
  ) {}

  /** `certs.d/<host>/hosts.toml` for a registry host (parseUpstream with `host: true`), or null when nothing mirrors it. */
  hostsToml(host: ImagePrefix): string | null {
    const u = upstreamOf(this.index, this.lookup, host);
    return u ? hostsToml(u) : null;
  }

  /** The containers-registries.conf of every mirrored upstream. */
  registriesConf(): string {
    return registriesConf(allUpstreams(this.index, this.lookup));
  }

  /** Every file of a containerd `certs.d` directory: `<host>/hosts.toml` and CA files, by relative path. */
  containerdTree(): Map<string, string> {
    const tree = new Map<string, string>();
    for (const u of allUpstreams(this.index, this.lookup)) {
      // A namespace (quay.io/org) has no hosts.toml of its own: containerd configures whole hosts.
      if (u.prefix.includes('/')) continue;
      for (const [file, text] of containerdFiles(u)) tree.set(`${u.prefix}/${file}`, text);
    }
    return tree;
  }
}

/** A change of the catalog as the change feed carries it (`entry`: the API representation). */
export type FeedChange = { type: 'upsert'; container_registry_id: string; entry: ApiEntry & EntryDetails } | { type: 'delete'; container_registry_id: string };

/** The catalog a feed consumer holds: the entries it received and their prefix index. */
export class FeedCatalog {
  private readonly entries = new Map<string, ApiEntry & EntryDetails>();
  private readonly index = new PrefixIndex();
  readonly config = new PullConfig(this.index, (id) => this.entries.get(id));

  get size(): number {
    return this.entries.size;
  }

  /** Forgets everything (a relist follows). */
  clear(): void {
    this.entries.clear();
    this.index.reset([]);
  }

  /** Applies a change; an upsert whose entry lacks a string id or name takes the entry out (as the server leaves malformed entries out). */
  apply(change: FeedChange): void {
    const id = change.container_registry_id;
    const entry = change.type === 'upsert' ? change.entry : undefined;
    const usable = entry !== null && typeof entry === 'object' && entry.container_registry_id === id && typeof entry.container_registry_name === 'string';
    const indexChange: IndexChange = usable ? { type: 'upsert', entry: entry! } : { type: 'delete', container_registry_id: id };
    if (usable) this.entries.set(id, entry!);
    else this.entries.delete(id);
    this.index.apply(indexChange);
  }
}
