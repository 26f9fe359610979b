import { isIpv4 } from './addresses.ts';

// HostData: what the first-stage script POSTs to /final-*-config.

export interface NetDev {
  Name: string;
  MacAddress: string;
  /** Kernel driver of the NIC, when the installer sends it (profile selectors, issue 17); not stored. */
  Driver?: string;
}

export interface HostData {
  Serial: string;
  NetDevs: NetDev[];
  IPMIAddress: string;
  ConnectedNIC: string;
}

export class HostDataError extends Error {}

/** A NIC as the installer names it before its host exists (first-stage request), for profile selectors. */
export type NicFact = Pick<NetDev, 'MacAddress' | 'Driver'>;

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const NIC = /^[A-Za-z0-9._:@-]{1,32}$/;

export function normalizeMac(raw: string): string {
  const mac = raw.trim().toLowerCase().replace(/-/g, ':');
  if (!MAC.test(mac)) throw new HostDataError(`invalid MAC address ${JSON.stringify(raw.slice(0, 40))}`);
  return mac;
}

const DRIVER = /^[A-Za-z0-9_-]{0,32}$/;

/**
 * The installer's `?nic=<mac>[,<driver>]` (one per NIC) of `GET /first-stage-script/<serial>`:
 * what the machine's NICs are before its host is created, so selectors on nic_count, nic_drivers
 * and macs can match it there. At most 64.
 */
export function parseNicFacts(values: readonly string[]): NicFact[] {
  if (values.length > 64) throw new HostDataError(`nic: ${values.length} interfaces, at most 64`);
  return values.map((value, i) => {
    const [mac = '', driver = '', ...rest] = value.split(',');
    if (rest.length) throw new HostDataError(`nic[${i}]: ${JSON.stringify(value.slice(0, 60))} is not <mac>[,<driver>]`);
    if (!DRIVER.test(driver)) throw new HostDataError(`nic[${i}]: invalid driver name ${JSON.stringify(driver.slice(0, 40))}`);
    return { MacAddress: normalizeMac(mac), ...(driver ? { Driver: driver } : {}) };
  });
}

/** Validates parsed JSON; the 0.11 error for a missing serial is kept verbatim. */
export function parseHostData(raw: unknown): HostData {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new HostDataError('host data must be a JSON object');
  const o = raw as Record<string, unknown>;
  if (typeof o.Serial !== 'string' || o.Serial.trim() === '') throw new HostDataError('no serial ? :/');
  const netDevs = o.NetDevs ?? [];
  if (!Array.isArray(netDevs)) throw new HostDataError('NetDevs must be a list of {Name, MacAddress}');
  if (netDevs.length > 64) throw new HostDataError(`NetDevs: ${netDevs.length} interfaces, at most 64`);
  const devs = netDevs.map((d: unknown, i) => {
    const dev = d as Partial<NetDev> | null;
    if (typeof dev !== 'object' || dev === null || typeof dev.Name !== 'string' || typeof dev.MacAddress !== 'string') {
      throw new HostDataError(`NetDevs[${i}] must be {"Name": string, "MacAddress": string}`);
    }
    if (!NIC.test(dev.Name)) throw new HostDataError(`NetDevs[${i}].Name: invalid interface name ${JSON.stringify(dev.Name.slice(0, 40))}`);
    const driver = (dev as { Driver?: unknown }).Driver;
    if (driver !== undefined && (typeof driver !== 'string' || !DRIVER.test(driver))) {
      throw new HostDataError(`NetDevs[${i}].Driver: invalid driver name ${JSON.stringify(String(driver).slice(0, 40))}`);
    }
    return { Name: dev.Name, MacAddress: normalizeMac(dev.MacAddress), ...(driver ? { Driver: driver } : {}) };
  });
  const ipmi = o.IPMIAddress ?? '';
  if (typeof ipmi !== 'string' || (ipmi !== '' && !isIpv4(ipmi))) throw new HostDataError(`IPMIAddress: invalid IPv4 address ${JSON.stringify(ipmi)}`);
  const nic = o.ConnectedNIC ?? '';
  if (typeof nic !== 'string' || (nic !== '' && !NIC.test(nic))) throw new HostDataError(`ConnectedNIC: invalid interface name ${JSON.stringify(nic)}`);
  return { Serial: o.Serial, NetDevs: devs, IPMIAddress: ipmi, ConnectedNIC: nic };
}
