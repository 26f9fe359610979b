// IPv4 address arithmetic and allocation from the configured ip_range (end enforced).
import { createHash } from 'node:crypto';

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** The address as a number, or undefined when it is not a dotted IPv4 address. */
function parseIpv4(ip: string): number | undefined {
  const m = IPV4.exec(ip);
  if (!m) return undefined;
  // Leading zeros are refused, as Go's net.ParseIP does: "010" is octal to some tools.
  for (let i = 1; i <= 4; i++) if (m[i]!.length > 1 && m[i]![0] === '0') return undefined;
  const a = Number(m[1]);
  const b = Number(m[2]);
  const c = Number(m[3]);
  const d = Number(m[4]);
  if (a > 255 || b > 255 || c > 255 || d > 255) return undefined;
  return a * 2 ** 24 + (b << 16) + (c << 8) + d;
}

export function ipv4ToInt(ip: string): number {
  const n = parseIpv4(ip);
  if (n === undefined) throw new Error(`not an IPv4 address: ${JSON.stringify(ip)}`);
  return n;
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function isIpv4(ip: string): boolean {
  return parseIpv4(ip) !== undefined;
}

export class RangeExhaustedError extends Error {}

export interface IpRange {
  start: string;
  end: string;
}

/**
 * The first address no host holds, searching from `from` places past the range's start and
 * wrapping round to it; from 0 (one mayu): the lowest free address.
 */
export function allocateAddress(range: IpRange, taken: Iterable<string | undefined>, from = 0): string {
  const start = ipv4ToInt(range.start);
  const end = ipv4ToInt(range.end);
  const used = new Set<number>();
  for (const ip of taken) {
    const n = ip ? parseIpv4(ip) : undefined;
    if (n !== undefined) used.add(n);
  }
  const size = end - start + 1;
  const offset = size > 0 ? ((from % size) + size) % size : 0;
  for (let i = 0; i < size; i++) {
    const n = start + ((offset + i) % size);
    if (!used.has(n)) return intToIpv4(n);
  }
  throw new RangeExhaustedError(
    `ip_range ${range.start}-${range.end} is exhausted: all ${end - start + 1} addresses are assigned`,
  );
}

/**
 * Where a replica (etcd store) starts its search for a free address: a hash of its id spread over
 * the range. Replicas registering at the same moment then seldom pick the same address (the loser
 * of such a pick is answered 503 and retries); the same id always starts at the same place.
 */
export function replicaSearchOffset(replicaId: string, range: IpRange): number {
  const size = ipv4ToInt(range.end) - ipv4ToInt(range.start) + 1;
  if (size <= 0) return 0;
  return createHash('sha256').update(replicaId).digest().readUInt32BE(0) % size;
}

/** Prefix length from a dotted netmask ("255.255.252.0" → 22). */
export function netmaskToPrefix(mask: string): number {
  const n = ipv4ToInt(mask);
  const prefix = 32 - Math.log2((~n >>> 0) + 1);
  if (!Number.isInteger(prefix)) throw new Error(`not a contiguous netmask: ${mask}`);
  return prefix;
}

export function prefixToNetmask(prefix: number): string {
  return intToIpv4(prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
}
