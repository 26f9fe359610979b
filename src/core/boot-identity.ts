// Which host a netbooting machine is, from what iPXE knows about it (the query string of
// /ipxebootscript: SMBIOS serial, MAC of the booting NIC, SMBIOS UUID), and whether it should
// boot from its local disk. Pure.
import { HostDataError, normalizeMac } from './host-data.ts';
import type { Host } from './host.ts';
import { InvalidSerialError, normalizeSerial } from './serial.ts';

/**
 * Serials firmware leaves in unset SMBIOS fields, lower-case. The installer's /init
 * (scripts/images/initramfs/installer-init) skips the same ones and falls back to the UUID; a
 * test keeps the two lists equal.
 */
export const PLACEHOLDER_SERIALS: readonly string[] = [
  '',
  'to be filled by o.e.m.',
  'to be filled by oem',
  '0123456789',
  'default string',
  'system serial number',
  'chassis serial number',
  'base board serial number',
  'not specified',
  'not applicable',
  'none',
  'n/a',
  '0',
  '00000000',
  '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
];

export function isPlaceholderSerial(raw: string): boolean {
  return PLACEHOLDER_SERIALS.includes(raw.trim().toLowerCase());
}

export interface BootQuery {
  serial?: string;
  /** As iPXE's ${mac:hexhyp} gives it (52-54-00-12-34-56), or with colons. */
  mac?: string;
  uuid?: string;
}

/** The serial the installer registers this machine under: its serial, else (placeholder) its UUID. */
export function bootSerial(q: BootQuery): string | undefined {
  for (const candidate of [q.serial, q.uuid]) {
    if (candidate === undefined || isPlaceholderSerial(candidate)) continue;
    try {
      return normalizeSerial(candidate);
    } catch (err) {
      if (!(err instanceof InvalidSerialError)) throw err;
    }
  }
  return undefined;
}

/**
 * The known host this machine is: by serial (placeholder serials: by UUID, as the installer
 * registers them), else by the MAC it boots from; undefined for a machine mayu never saw.
 */
export function findBootHost(
  q: BootQuery, bySerial: (serial: string) => Readonly<Host> | undefined, hosts: Iterable<Readonly<Host>>,
  /** A MAC index (HostIndexView.serialByMac): then `hosts` is not scanned. */
  serialByMac?: (mac: string) => string | undefined,
): Readonly<Host> | undefined {
  const serial = bootSerial(q);
  const known = serial === undefined ? undefined : bySerial(serial);
  if (known) return known;
  let mac: string;
  try {
    mac = normalizeMac(q.mac ?? '');
  } catch (err) {
    if (err instanceof HostDataError) return undefined;
    throw err;
  }
  if (serialByMac) {
    const owner = serialByMac(mac);
    return owner === undefined ? undefined : bySerial(owner);
  }
  for (const h of hosts) if (h.MacAddresses?.includes(mac)) return h;
  return undefined;
}

/** Installed and running hosts boot their disk; every other state (and a new machine) installs. */
export function bootsFromLocalDisk(host: Readonly<Host> | undefined): boolean {
  return host?.State === 'installed' || host?.State === 'running';
}
