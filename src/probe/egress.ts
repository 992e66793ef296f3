/**
 * Egress policy (SPEC section 6): probes reach only addresses that PROBE_ALLOWED_NETWORKS allows and
 * PROBE_DENIED_NETWORKS does not. The check runs on the resolved address inside the socket's own DNS
 * lookup, so the connection goes to exactly the address that was checked (no DNS rebinding); IP literals,
 * which never reach a lookup, are checked before the request is dispatched.
 */
import dns from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { ProbeError } from './errors';

export interface EgressPolicy {
  allows(address: string): boolean;
  /** Throws blocked_by_policy when the URL's host is an IP literal the policy refuses. */
  checkUrl(url: URL): void;
  /** `lookup` for net/tls.connect: resolves, keeps only allowed addresses, fails when none is left. */
  lookup: LookupFunction;
}

function blockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address = '', prefix = ''] = cidr.split('/');
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    list.addSubnet(address, Number(prefix), family);
  }
  return list;
}

/** `::ffff:10.0.0.1` is 10.0.0.1 for policy purposes. */
function normalize(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const plain = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(plain);
  if (mapped?.[1]) return { address: mapped[1], family: 'ipv4' };
  return { address: plain, family: isIP(plain) === 6 ? 'ipv6' : 'ipv4' };
}

export function blockedError(host: string, address: string): ProbeError {
  return new ProbeError('blocked_by_policy', `egress policy refuses ${address === host ? address : `${host} (${address})`}`);
}

export function createEgressPolicy(allowed: readonly string[], denied: readonly string[]): EgressPolicy {
  const allow = blockList(allowed);
  const deny = blockList(denied);
  const allows = (address: string): boolean => {
    const n = normalize(address);
    if (isIP(n.address) === 0) return false;
    return allow.check(n.address, n.family) && !deny.check(n.address, n.family);
  };

  const lookup: LookupFunction = (hostname, options, callback) => {
    const wantsAll = (options as { all?: boolean }).all === true;
    dns.lookup(hostname, { all: true, family: options.family ?? 0, hints: options.hints }, (err, addresses) => {
      if (err) return callback(err, wantsAll ? [] : '', 0);
      const permitted = addresses.filter((a) => allows(a.address));
      if (permitted.length === 0) {
        return callback(blockedError(hostname, addresses.map((a) => a.address).join(', ')) as unknown as NodeJS.ErrnoException, wantsAll ? [] : '', 0);
      }
      if (wantsAll) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, permitted);
      const first = permitted[0]!;
      callback(null, first.address, first.family);
    });
  };

  return {
    allows,
    checkUrl(url: URL): void {
      const host = normalize(url.hostname).address;
      if (isIP(host) !== 0 && !allows(host)) throw blockedError(host, host);
    },
    lookup,
  };
}
