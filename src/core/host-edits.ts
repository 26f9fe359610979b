import { isIpv4 } from './addresses.ts';
import { hostToJsonObject, type Host } from './host.ts';
import { DEFAULT_PROFILE, type Profile } from './profiles.ts';

// Hosts changed outside mayu (an operator's commit, a hand-edited conf.json) are taken only if
// the cluster they make is one mayu could have made itself. Pure: the store hands in the edits
// and a view of every host as it would be after them.

export interface HostEdit {
  serial: string;
  /** The host as edited; undefined when its folder was removed. */
  host: Host | undefined;
  /** The host before the edit; undefined when it is new. */
  before: Host | undefined;
}

export interface HostsAfter {
  get(serial: string): Host | undefined;
  all(): Iterable<Host>;
}

/** What is wrong with a set of edits, one line each; empty when they may be taken. */
export function editProblems(edits: readonly HostEdit[], after: HostsAfter, profiles: readonly Profile[]): string[] {
  const problems: string[] = [];
  const known = new Map(profiles.map((p) => [p.name, p]));
  const byAddr = new Map<string, string[]>();
  for (const h of after.all()) {
    if (!h.InternalAddr) continue;
    const list = byAddr.get(h.InternalAddr) ?? [];
    list.push(h.Serial ?? '');
    byAddr.set(h.InternalAddr, list);
  }
  const counts = new Map<string, number>();
  for (const h of after.all()) if (h.Profile) counts.set(h.Profile, (counts.get(h.Profile) ?? 0) + 1);
  for (const { serial, host, before } of edits) {
    if (!host) continue;
    const where = `${serial}/conf.json`;
    if (host.Serial !== undefined && host.Serial !== '' && host.Serial !== serial) problems.push(`${where}: Serial ${JSON.stringify(host.Serial)} is not the folder's name`);
    const profile = host.Profile ?? '';
    if (profile !== DEFAULT_PROFILE && !known.has(profile)) problems.push(`${where}: Profile ${JSON.stringify(profile)} is not a configured profile`);
    const quantity = known.get(profile)?.quantity;
    // Only a host that moved into the profile can overfill it (a lowered quantity is not an edit's fault).
    if (profile !== DEFAULT_PROFILE && quantity !== undefined && before?.Profile !== profile && (counts.get(profile) ?? 0) > quantity) {
      problems.push(`${where}: profile ${profile} would hold ${counts.get(profile)} hosts, its quantity is ${quantity}`);
    }
    const addr = host.InternalAddr;
    if (addr) {
      if (!isIpv4(addr)) problems.push(`${where}: InternalAddr ${JSON.stringify(addr)} is not an IPv4 address`);
      const holders = (byAddr.get(addr) ?? []).filter((s) => s !== serial);
      if (holders.length > 0) problems.push(`${where}: InternalAddr ${addr} is also held by ${holders.join(', ')}`);
    }
  }
  return problems;
}

/** conf.json field names whose values differ, in conf.json's order (for "updated by hand (...)"). */
export function changedFields(before: Host | undefined, after: Host): string[] {
  const a = before ? hostToJsonObject(before) : {};
  const b = hostToJsonObject(after);
  const keys = [...Object.keys(b), ...Object.keys(a).filter((k) => !(k in b))];
  return keys.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
}
