/**
 * CIDR ranges, parsed once: the config turns PROBE_ALLOWED_NETWORKS / PROBE_DENIED_NETWORKS (and TRUST_PROXY's
 * ranges) into these, and the egress policy checks addresses against them (src/probe/egress.ts).
 */
import { isIP } from 'node:net';

export type Family = 'ipv4' | 'ipv6';

export interface Cidr {
  address: string;
  bits: number;
  family: Family;
}

/** `10.0.0.0/8`, `fd00::/8`, or a bare address (the single host); undefined when `entry` is none of these. */
export function parseCidr(entry: string): Cidr | undefined {
  const [address = '', prefix, extra] = entry.trim().split('/');
  const kind = isIP(address);
  if (kind === 0 || extra !== undefined) return undefined;
  const family: Family = kind === 6 ? 'ipv6' : 'ipv4';
  const max = family === 'ipv6' ? 128 : 32;
  if (prefix !== undefined && !/^\d{1,3}$/.test(prefix)) return undefined;
  const bits = prefix === undefined ? max : Number(prefix);
  return bits > max ? undefined : { address, bits, family };
}

export function cidrText(c: Cidr): string {
  return `${c.address}/${c.bits}`;
}
