/**
 * Nodes (SPEC section 18): the catalog rendered as the files that programs pulling images read —
 * containerd's `certs.d/<host>/hosts.toml` and containers-registries.conf — from the prefix index of
 * src/resolve (its order, Docker's normalisation) and the entries' URLs and TLS settings. Pure functions
 * and in-memory structures, shared by the server's GET /pull-config routes and the node agent
 * (src/agent), which imports nothing else of the server.
 */
export { caFileName, containerdFiles, HOSTS_TOML, hostsToml } from './containerd';
export { FeedCatalog, PullConfig, type FeedChange } from './pull-config';
export { registriesConf } from './registries-conf';
export { allUpstreams, parseUpstream, upstreamOf, type EntryDetails, type EntryLookup, type PullHost, type Upstream, type UpstreamName } from './upstreams';
