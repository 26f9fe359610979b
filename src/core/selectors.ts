// Profile selectors (issue 17): which machines a profile may take, from what mayu knows about a
// machine when its host is created. Pure. Validation of the config's text is in
// src/config/selector-schema.ts; here the rules are already valid.

export interface Selector {
  /** Serial globs (`*`, `?`), lower-case as serials are stored; any one matches. */
  serials?: readonly string[];
  /** MAC addresses or prefixes (an OUI is 3 octets), `aa:bb:cc` lower-case; any MAC of the machine under any one matches. */
  macs?: readonly string[];
  /** Number of NICs the machine registered. */
  nic_count?: { min?: number; max?: number };
  /** Kernel driver names; any NIC driven by one matches. */
  nic_drivers?: readonly string[];
}

/** What mayu knows about a machine at its host's creation; a fact not known never matches. */
export interface MachineFacts {
  serial: string;
  macs?: readonly string[];
  nicCount?: number;
  nicDrivers?: readonly string[];
}

const globCache = new Map<string, RegExp>();

/** A serial glob as a whole-string RegExp: `*` any run, `?` one character, the rest literal. */
export function globToRegExp(glob: string): RegExp {
  let re = globCache.get(glob);
  if (!re) {
    const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
    re = new RegExp(`^${body}$`);
    if (globCache.size < 4096) globCache.set(glob, re);
  }
  return re;
}

/** Every rule the selector has must hold (within one rule, any listed value will do). */
export function selectorMatches(selector: Selector, facts: MachineFacts): boolean {
  if (selector.serials && !selector.serials.some((g) => globToRegExp(g).test(facts.serial))) return false;
  if (selector.macs) {
    const macs = facts.macs ?? [];
    if (!macs.some((m) => selector.macs!.some((prefix) => m.startsWith(prefix)))) return false;
  }
  if (selector.nic_count) {
    const n = facts.nicCount;
    if (n === undefined) return false;
    if (selector.nic_count.min !== undefined && n < selector.nic_count.min) return false;
    if (selector.nic_count.max !== undefined && n > selector.nic_count.max) return false;
  }
  if (selector.nic_drivers) {
    const drivers = facts.nicDrivers ?? [];
    if (!drivers.some((d) => selector.nic_drivers!.includes(d))) return false;
  }
  return true;
}
