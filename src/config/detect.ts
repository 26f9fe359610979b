// `mayu config detect`: a working config.yaml from the machine's own network interface. Pure:
// the CLI reads the interfaces (os.networkInterfaces()), /proc/net/route and /etc/resolv.conf and
// passes their contents in.
import { intToIpv4, ipv4ToInt, isIpv4, netmaskToPrefix, type IpRange } from '../core/addresses.ts';

/** One address of an interface, as os.networkInterfaces() lists it. */
export interface InterfaceAddress {
  address: string;
  netmask: string;
  family: string | number;
  internal: boolean;
}

export type InterfaceTable = Readonly<Record<string, readonly InterfaceAddress[] | undefined>>;

export class DetectError extends Error {}

export interface DetectedNetwork {
  interface: string;
  bindAddr: string;
  subnetSize: number;
  bootstrapRange: IpRange;
  ipRange: IpRange;
  router?: string;
  dns: string[];
}

/** Addresses handed out at most (a /8 on lo would otherwise mean 16 million). */
const MAX_ADDRESSES = 1024;
/** Netbooting machines hold a bootstrap lease briefly: a quarter of the addresses, at most this many. */
const MAX_BOOTSTRAP = 100;

const isV4 = (a: InterfaceAddress) => a.family === 'IPv4' || a.family === 4;

function interfaceList(ifaces: InterfaceTable): string {
  const names = Object.keys(ifaces);
  return names.length === 0 ? '(none)' : names.map((n) => {
    const v4 = (ifaces[n] ?? []).filter(isV4).map((a) => a.address);
    return v4.length ? `${n} (${v4.join(', ')})` : `${n} (no IPv4)`;
  }).join(', ');
}

/**
 * bootstrap_range and ip_range in the subnet of address/prefix: the longest run of usable
 * addresses that holds none of `avoid` (the machine itself, the router, DNS servers), the first
 * quarter (≤ 100) for bootstrap leases, the rest (≤ 1024 in all) for hosts. Throws when the
 * subnet has fewer than two such addresses.
 */
export function planRanges(address: string, prefix: number, avoid: readonly string[]): { bootstrap: IpRange; ip: IpRange } {
  const size = 2 ** (32 - prefix);
  const network = Math.floor(ipv4ToInt(address) / size) * size;
  const first = network + 1;
  const last = network + size - 2;
  const blocked = [...new Set(avoid.filter(isIpv4).map(ipv4ToInt))].filter((n) => n >= first && n <= last).sort((a, b) => a - b);
  let best = { start: 0, length: 0 };
  let start = first;
  for (const b of [...blocked, last + 1]) {
    if (b - start > best.length) best = { start, length: b - start };
    start = b + 1;
  }
  if (best.length < 2) {
    throw new DetectError(`subnet ${intToIpv4(network)}/${prefix} has no room for bootstrap_range and ip_range (needs two free addresses besides ${avoid.join(', ')})`);
  }
  const n = Math.min(best.length, MAX_ADDRESSES);
  const b = Math.max(1, Math.min(MAX_BOOTSTRAP, Math.floor(n / 4)));
  const s = best.start;
  return {
    bootstrap: { start: intToIpv4(s), end: intToIpv4(s + b - 1) },
    ip: { start: intToIpv4(s + b), end: intToIpv4(s + n - 1) },
  };
}

/**
 * The network of `name` (or, without a name, of the first non-loopback interface with IPv4).
 * Unknown or address-less interfaces are errors that list the interfaces there are.
 */
export function detectNetwork(ifaces: InterfaceTable, name: string | undefined, found: { gateway?: string; nameservers?: readonly string[] } = {}): DetectedNetwork {
  const chosen = name ?? Object.keys(ifaces).find((n) => (ifaces[n] ?? []).some((a) => isV4(a) && !a.internal));
  if (chosen === undefined) throw new DetectError(`no network interface with an IPv4 address besides loopback; interfaces: ${interfaceList(ifaces)}`);
  const addresses = ifaces[chosen];
  if (addresses === undefined) throw new DetectError(`unknown interface ${JSON.stringify(chosen)}; interfaces: ${interfaceList(ifaces)}`);
  const v4 = addresses.find(isV4);
  if (!v4) throw new DetectError(`interface ${chosen} has no IPv4 address; interfaces: ${interfaceList(ifaces)}`);
  const subnetSize = netmaskToPrefix(v4.netmask);
  const router = found.gateway !== undefined && isIpv4(found.gateway) ? found.gateway : undefined;
  const servers = (found.nameservers ?? []).filter((s) => isIpv4(s) && !s.startsWith('127.'));
  const dns = servers.length > 0 ? [...servers] : router ? [router] : [];
  const { bootstrap, ip } = planRanges(v4.address, subnetSize, [v4.address, ...(router ? [router] : []), ...dns]);
  return { interface: chosen, bindAddr: v4.address, subnetSize, bootstrapRange: bootstrap, ipRange: ip, router, dns };
}

/** The default route's gateway via `iface` from /proc/net/route (hex, little-endian). */
export function defaultGateway(procNetRoute: string, iface: string): string | undefined {
  for (const line of procNetRoute.split('\n').slice(1)) {
    const [name, destination, gateway, , , , , mask] = line.trim().split(/\s+/);
    if (name !== iface || destination !== '00000000' || mask !== '00000000' || !gateway || !/^[0-9A-Fa-f]{8}$/.test(gateway)) continue;
    const n = Number.parseInt(gateway, 16);
    if (n === 0) continue;
    return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.');
  }
  return undefined;
}

/** `nameserver` addresses of a resolv.conf (IPv4 only). */
export function nameserversFrom(resolvConf: string): string[] {
  return [...resolvConf.matchAll(/^\s*nameserver\s+(\S+)/gm)].map((m) => m[1]!).filter(isIpv4);
}

/** A complete config.yaml for `mayu serve` on this network, in 0.11's schema. */
export function detectedConfigYaml(n: DetectedNetwork): string {
  const range = (r: IpRange) => `{start: ${r.start}, end: ${r.end}}`;
  return `# Written by \`mayu config detect\` from interface ${n.interface} (${n.bindAddr}/${n.subnetSize}).
# Check the ranges: no other DHCP server on this network may hand out these addresses.
default_coreos_version: 1010.5.0

network:
  pxe: true                           # mayu runs dnsmasq for DHCP + TFTP on \`interface\`
  interface: ${n.interface}
  bind_addr: ${n.bindAddr}
  bootstrap_range: ${range(n.bootstrapRange)}   # short DHCP leases for netbooting
  ip_range: ${range(n.ipRange)}          # addresses assigned to hosts
  subnet_size: ${n.subnetSize}
  dns: [${n.dns.join(', ')}]
${n.router ? `  router: ${n.router}\n` : '  # router: no default gateway found on this interface\n'}  network_model: singlenic

profiles:
  - name: default
    tags: []

templates_env:
  ssh_authorized_keys: []
`;
}
