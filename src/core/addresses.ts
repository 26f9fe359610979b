// IPv4 address arithmetic and allocation from the configured ip_range (end enforced).

export function ipv4ToInt(ip: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) throw new Error(`not an IPv4 address: ${JSON.stringify(ip)}`);
  // Leading zeros are refused, as Go's net.ParseIP does: "010" is octal to some tools.
  if (m.slice(1).some((p) => p.length > 1 && p.startsWith('0'))) throw new Error(`not an IPv4 address: ${JSON.stringify(ip)}`);
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) throw new Error(`not an IPv4 address: ${JSON.stringify(ip)}`);
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function isIpv4(ip: string): boolean {
  try {
    ipv4ToInt(ip);
    return true;
  } catch {
    return false;
  }
}

export class RangeExhaustedError extends Error {}

export interface IpRange {
  start: string;
  end: string;
}

/** Lowest address of the range that no host holds. */
export function allocateAddress(range: IpRange, taken: Iterable<string | undefined>): string {
  const start = ipv4ToInt(range.start);
  const end = ipv4ToInt(range.end);
  const used = new Set<number>();
  for (const ip of taken) if (ip && isIpv4(ip)) used.add(ipv4ToInt(ip));
  for (let n = start; n <= end; n++) if (!used.has(n)) return intToIpv4(n);
  throw new RangeExhaustedError(
    `ip_range ${range.start}-${range.end} is exhausted: all ${end - start + 1} addresses are assigned`,
  );
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
