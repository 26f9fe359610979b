import * as yaml from 'js-yaml';
import type { Inventory, InventoryEntry } from '../core/admission.ts';
import { DEFAULT_PROFILE, type Profile } from '../core/profiles.ts';
import { InvalidSerialError, normalizeSerial } from '../core/serial.ts';
import { ConfigError } from './load.ts';

// The inventory (issue 17): `_config/inventory.yaml` in the cluster repo, the machines admitted
// in `known` mode and the profile each gets outright. mayu writes it (mayuctl inventory add,
// remove, approve in `known` mode) and reads operators' committed edits; checked like config.yaml:
// a wrong entry names the file, the key and the reason.

const HEADER = `# Machines mayu admits in admission mode "known" (any mode: the profile each gets outright).
# Written by mayu (mayuctl inventory add/remove, approve); committed edits are read too.
`;

/** Parses and checks the inventory; throws ConfigError naming `file`, the key and the reason. */
export function parseInventory(text: string, file: string, profiles: readonly Profile[]): Map<string, InventoryEntry> {
  let raw: unknown;
  try {
    raw = yaml.load(text, { filename: file });
  } catch (err) {
    throw new ConfigError(`${file}: invalid YAML: ${(err as Error).message}`);
  }
  const out = new Map<string, InventoryEntry>();
  if (raw === undefined || raw === null) return out;
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${file}: (top level): expected a mapping with a "machines" list`);
  const top = raw as Record<string, unknown>;
  for (const k of Object.keys(top)) if (k !== 'machines') throw new ConfigError(`${file}: ${k}: unknown key (only "machines")`);
  const machines = top.machines ?? [];
  if (!Array.isArray(machines)) throw new ConfigError(`${file}: machines: expected a list of {serial, profile}`);
  const known = new Map(profiles.map((p) => [p.name, p]));
  const counts = new Map<string, number>();
  machines.forEach((m: unknown, i) => {
    const at = `${file}: machines.${i}`;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new ConfigError(`${at}: expected a mapping {serial, profile}`);
    const e = m as Record<string, unknown>;
    for (const k of Object.keys(e)) if (k !== 'serial' && k !== 'profile') throw new ConfigError(`${at}.${k}: unknown key (serial, profile)`);
    if (typeof e.serial !== 'string' && typeof e.serial !== 'number') throw new ConfigError(`${at}.serial: required`);
    let serial: string;
    try {
      serial = normalizeSerial(String(e.serial));
    } catch (err) {
      if (err instanceof InvalidSerialError) throw new ConfigError(`${at}.serial: ${err.message}`);
      throw err;
    }
    if (out.has(serial)) throw new ConfigError(`${at}.serial: ${serial} is listed twice`);
    const entry: InventoryEntry = { serial };
    if (e.profile !== undefined && e.profile !== null) {
      if (typeof e.profile !== 'string' || (!known.has(e.profile) && e.profile !== DEFAULT_PROFILE)) {
        throw new ConfigError(`${at}.profile: unknown profile ${JSON.stringify(e.profile)} (profiles: ${[...known.keys(), ...(known.has(DEFAULT_PROFILE) ? [] : [DEFAULT_PROFILE])].join(', ')})`);
      }
      entry.profile = e.profile;
      const n = (counts.get(e.profile) ?? 0) + 1;
      counts.set(e.profile, n);
      const quantity = known.get(e.profile)?.quantity;
      if (e.profile !== DEFAULT_PROFILE && n > (quantity ?? 0)) {
        throw new ConfigError(`${at}.profile: profile ${e.profile} would get ${n} machines from the inventory, its quantity is ${quantity ?? 0}`);
      }
    }
    out.set(serial, entry);
  });
  return out;
}

/** The inventory as mayu writes it: the header, then one entry per machine in order. */
export function encodeInventory(inventory: Inventory): string {
  const machines = [...inventory.values()].map((e) => (e.profile ? { serial: e.serial, profile: e.profile } : { serial: e.serial }));
  return HEADER + yaml.dump({ machines }, { lineWidth: -1 });
}
