// What a new host's creation and a netbooting machine's lookup need to know about all hosts,
// kept up to date as each host changes. Without it every creation scanned every host twice (free
// address, profile counts) and every unknown machine's boot script scanned every host's MACs:
// at 10 000 hosts ~6 ms a creation, the biggest cost of a 10 000-machine storm after git's own
// hashing (docs/performance.md "Overload").
import { intToIpv4, ipv4ToInt, isIpv4, RangeExhaustedError, type IpRange } from './addresses.ts';
import type { Host } from './host.ts';

/** Read side, for core functions. */
export interface HostIndexView {
  /** Lowest address of the range no host holds; throws RangeExhaustedError when none is left. */
  /** The lowest free address, or with `from` the first free one from range start + `from` on, wrapping round (replicas). */
  lowestFreeAddress(range: IpRange, from?: number): string;
  /** Hosts per profile name. */
  profileCounts(): ReadonlyMap<string, number>;
  /** A host that has this MAC (normalized, lower-case with colons), if any. */
  serialByMac(mac: string): string | undefined;
}

function addressOf(host: Host | undefined): number | undefined {
  const ip = host?.InternalAddr;
  return ip && isIpv4(ip) ? ipv4ToInt(ip) : undefined;
}

export class HostIndex implements HostIndexView {
  /** Address (as a number) → hosts holding it (two only after a hand edit or an override). */
  private readonly addresses = new Map<number, number>();
  private readonly profiles = new Map<string, number>();
  private readonly macs = new Map<string, Set<string>>();
  /** Range start → an address such that every address from start up to it is held. */
  private readonly cursors = new Map<number, number>();

  /** The host `serial` was `before` and is now `after` (undefined: absent). */
  update(serial: string, before: Host | undefined, after: Host | undefined): void {
    if (before === after) return;
    const a0 = addressOf(before);
    const a1 = addressOf(after);
    if (a0 !== a1) {
      if (a0 !== undefined) this.release(a0);
      if (a1 !== undefined) this.addresses.set(a1, (this.addresses.get(a1) ?? 0) + 1);
    }
    if (before?.Profile !== after?.Profile) {
      bump(this.profiles, before?.Profile, -1);
      bump(this.profiles, after?.Profile, 1);
    }
    const m0 = before?.MacAddresses ?? [];
    const m1 = after?.MacAddresses ?? [];
    for (const mac of m0) {
      if (m1.includes(mac)) continue;
      const holders = this.macs.get(mac);
      holders?.delete(serial);
      if (holders?.size === 0) this.macs.delete(mac);
    }
    for (const mac of m1) {
      let holders = this.macs.get(mac);
      if (!holders) this.macs.set(mac, (holders = new Set()));
      holders.add(serial);
    }
  }

  lowestFreeAddress(range: IpRange, from = 0): string {
    const start = ipv4ToInt(range.start);
    const end = ipv4ToInt(range.end);
    const size = end - start + 1;
    if (from !== 0 && size > 0) {
      const offset = ((from % size) + size) % size;
      for (let i = 0; i < size; i++) {
        const n = start + ((offset + i) % size);
        if (!this.addresses.has(n)) return intToIpv4(n);
      }
    }
    let n = Math.max(start, this.cursors.get(start) ?? start);
    while (n <= end && this.addresses.has(n)) n++;
    this.cursors.set(start, n);
    if (n <= end) return intToIpv4(n);
    throw new RangeExhaustedError(`ip_range ${range.start}-${range.end} is exhausted: all ${end - start + 1} addresses are assigned`);
  }

  profileCounts(): ReadonlyMap<string, number> {
    return this.profiles;
  }

  serialByMac(mac: string): string | undefined {
    const holders = this.macs.get(mac);
    return holders && holders.values().next().value;
  }

  private release(address: number): void {
    const left = (this.addresses.get(address) ?? 1) - 1;
    if (left > 0) {
      this.addresses.set(address, left);
      return;
    }
    this.addresses.delete(address);
    // A freed address below a cursor is the lowest free one again.
    for (const [start, cursor] of this.cursors) if (address >= start && address < cursor) this.cursors.set(start, address);
  }
}

function bump(counts: Map<string, number>, key: string | undefined, by: number): void {
  if (!key) return;
  const n = (counts.get(key) ?? 0) + by;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
