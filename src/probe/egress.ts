/**
 * Egress policy (SPEC section 6): probes reach only addresses that PROBE_ALLOWED_NETWORKS allows and
 * PROBE_DENIED_NETWORKS does not. The check runs on the resolved address inside the socket's own DNS
 * lookup, so the connection goes to exactly the address that was checked (no DNS rebinding); IP literals,
 * which never reach a lookup, are checked before the request is dispatched.
 *
 * Special ranges (loopback, link-local and cloud metadata, multicast, "this network", the unspecified
 * address) are refused even inside a broad allowed range such as `0.0.0.0/0`: only an allowed entry that
 * lies inside the special range itself (`127.0.0.0/8`, `169.254.169.254/32`) opens it. An IPv6 address that
 * carries an IPv4 address (IPv4-mapped and -compatible, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4
 * `2002::/16`, Teredo `2001::/32`) must pass for both, so no spelling reaches a refused IPv4 address.
 * Decimal, octal, hex and short IPv4 forms are normalised by the URL parser or by getaddrinfo before
 * they get here. On a loopback or local address, the ports of the service itself and of its embedded
 * database are refused even where loopback is allowed.
 */
import dns from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import os from 'node:os';
import { parseCidr, type Cidr, type Family } from '../lib/cidr';
import { ProbeError } from './errors';

export interface EgressPolicy {
  /** Whether a connection to `address` (and `port`, when given) is allowed. */
  allows(address: string, port?: number): boolean;
  /** Throws blocked_by_policy when the URL's host is an IP literal the policy refuses. */
  checkUrl(url: URL): void;
  /** `lookup` for net/tls.connect: resolves, keeps only allowed addresses, fails when none is left. */
  lookup: LookupFunction;
  /** The same lookup for a connection to `port` (refuses local addresses when the port is a protected one). */
  lookupFor(port: number): LookupFunction;
  /** True for the ports of this service and its database, refused on local addresses. */
  protectsPort(port: number): boolean;
}

export interface EgressOptions {
  /**
   * Ports of this process and of its embedded database, never reached on a loopback or local address.
   * Live: the composition root adds the listening port once it is known.
   */
  localPorts?: ReadonlySet<number>;
}


/** Refused unless an allowed entry lies inside them (see the header comment). */
export const SPECIAL_RANGES: readonly string[] = [
  '0.0.0.0/8', // "this network"; 0.0.0.0 reaches the local host
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local, cloud metadata (169.254.169.254)
  '100.100.100.200/32', // Alibaba Cloud metadata
  '224.0.0.0/4', // multicast
  '240.0.0.0/4', // reserved, broadcast
  '::/128', // unspecified; Linux routes it to ::1
  '::1/128', // loopback
  'fe80::/10', // link-local
  'fd00:ec2::254/128', // AWS metadata over IPv6
  'ff00::/8', // multicast
];

const LOOPBACK_OR_UNSPECIFIED: readonly string[] = ['0.0.0.0/8', '127.0.0.0/8', '::/128', '::1/128'];

/** The ranges this file names (constants, always valid). */
const ranges = (list: readonly string[]): Cidr[] => list.map((c) => parseCidr(c)!);

/**
 * CIDR ranges checked per family: node's BlockList alone matches IPv4 addresses against IPv6 rules through
 * their mapped form (`::/0` would allow every IPv4 address), so each family gets a list of its own.
 */
interface RangeList {
  check(address: string, family: Family): boolean;
}
function blockList(cidrs: readonly Cidr[]): RangeList {
  const lists = { ipv4: new BlockList(), ipv6: new BlockList() };
  for (const c of cidrs) lists[c.family].addSubnet(c.address, c.bits, c.family);
  return { check: (address, family) => lists[family].check(address, family) };
}

/** The 16 bytes of an IPv6 address (dotted IPv4 tail allowed), or null. */
export function ipv6Bytes(address: string): number[] | null {
  if (isIP(address) !== 6) return null;
  let text = address.split('%')[0]!.toLowerCase();
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const v4 = tail[1]!.split('.').map(Number);
    text = text.slice(0, -tail[1]!.length) + `${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = groups(head);
  const t = rest === undefined ? [] : groups(rest);
  const all = rest === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  if (all.length !== 8) return null;
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

const v4 = (b: number[], at: number): string => b.slice(at, at + 4).join('.');

/** `::ffff:a.b.c.d` (in any spelling) is the IPv4 address itself: the kernel connects to it over IPv4. */
function mappedIpv4(address: string): string | null {
  const b = ipv6Bytes(address);
  return b && b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff ? v4(b, 12) : null;
}

/** The IPv4 addresses an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo server and client). */
export function embeddedIpv4(address: string): string[] {
  const b = ipv6Bytes(address);
  if (!b) return [];
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  const out: string[] = [];
  // ::a.b.c.d (compatible), ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (SIIT); :: and ::1 are not IPv4.
  if (zero(0, 10) && ((b[10] === 0xff && b[11] === 0xff) || (b[10] === 0 && b[11] === 0 && !zero(12, 14)))) out.push(v4(b, 12));
  if (zero(0, 8) && b[8] === 0xff && b[9] === 0xff && b[10] === 0 && b[11] === 0) out.push(v4(b, 12));
  // NAT64: 64:ff9b::/96 (well-known) and 64:ff9b:1::/48 (local use, RFC 8215; /96 form assumed).
  if (b[0] === 0 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && (zero(4, 12) || (b[4] === 0 && b[5] === 1))) out.push(v4(b, 12));
  // 6to4: 2002:AABB:CCDD::/48.
  if (b[0] === 0x20 && b[1] === 0x02) out.push(v4(b, 2));
  // Teredo 2001:0::/32: server at bytes 4-7, client XOR-ed at bytes 12-15.
  if (b[0] === 0x20 && b[1] === 0x01 && b[2] === 0 && b[3] === 0) {
    out.push(v4(b, 4));
    out.push(b.slice(12, 16).map((x) => x ^ 0xff).join('.'));
  }
  return out;
}

function strip(address: string): string {
  return address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
}

export function blockedError(host: string, address: string): ProbeError {
  return new ProbeError('blocked_by_policy', `egress policy refuses ${address === host ? address : `${host} (${address})`}`);
}

/** Addresses of this machine's interfaces (a service listening on 0.0.0.0 is reachable on each). */
function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) out.add(i.address.split('%')[0]!.toLowerCase());
  return out;
}

/** The policy of the parsed PROBE_ALLOWED_NETWORKS / PROBE_DENIED_NETWORKS (src/config.ts). */
export function createEgressPolicy(allowed: readonly Cidr[], denied: readonly Cidr[], options: EgressOptions = {}): EgressPolicy {
  const allowedCidrs = allowed;
  const allow = blockList(allowedCidrs);
  const deny = blockList(denied);
  // A special range is open only where an allowed entry lies inside it.
  const special = ranges(SPECIAL_RANGES).map((range) => {
    const inside = allowedCidrs.filter((c) => c.family === range.family && c.bits >= range.bits && blockList([range]).check(c.address, c.family));
    return { range: blockList([range]), family: range.family, opened: blockList(inside) };
  });
  const loopback = blockList(ranges(LOOPBACK_OR_UNSPECIFIED));
  const localPorts = options.localPorts ?? new Set<number>();
  const local = localAddresses();

  const allowsOne = (address: string, family: Family): boolean => {
    if (!allow.check(address, family) || deny.check(address, family)) return false;
    return special.every((s) => s.family !== family || !s.range.check(address, family) || s.opened.check(address, family));
  };
  const isLocal = (address: string, family: Family): boolean => loopback.check(address, family) || local.has(address.toLowerCase());

  const allows = (raw: string, port?: number): boolean => {
    const plain = strip(raw).split('%')[0]!;
    const address = mappedIpv4(plain) ?? plain;
    const kind = isIP(address);
    if (kind === 0) return false;
    const family: Family = kind === 6 ? 'ipv6' : 'ipv4';
    const carried = family === 'ipv6' ? embeddedIpv4(address) : [];
    if (!allowsOne(address, family)) return false;
    // An IPv6 spelling of an IPv4 address passes only when the IPv4 address passes too.
    if (!carried.every((a) => allowsOne(a, 'ipv4'))) return false;
    if (port !== undefined && localPorts.has(port)) {
      if (isLocal(address, family) || carried.some((a) => isLocal(a, 'ipv4'))) return false;
    }
    return true;
  };

  const lookupFor = (port: number | undefined): LookupFunction => (hostname, options, callback) => {
    const wantsAll = (options as { all?: boolean }).all === true;
    dns.lookup(hostname, { all: true, family: options.family ?? 0, hints: options.hints }, (err, addresses) => {
      if (err) return callback(err, wantsAll ? [] : '', 0);
      const permitted = addresses.filter((a) => allows(a.address, port));
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
      const host = strip(url.hostname);
      const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
      if (isIP(host) !== 0 && !allows(host, port)) throw blockedError(host, host);
    },
    lookup: lookupFor(undefined),
    lookupFor: (port) => lookupFor(port),
    protectsPort: (port) => localPorts.has(port),
  };
}
