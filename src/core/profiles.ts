import type { Host } from './host.ts';
import { selectorMatches, type MachineFacts, type Selector } from './selectors.ts';

export interface Profile {
  name: string;
  /** Hosts that may hold this profile; absent means none are picked by count (only `default` catches all). */
  quantity?: number;
  tags: string[];
  coreos_version?: string;
  disable_engine: boolean;
  etcd_cluster_token?: string;
  /** Which machines this profile may take (issue 17); absent: any machine, as in 0.11. */
  selector?: Selector;
}

export const DEFAULT_PROFILE = 'default';

export function countByProfile(hosts: Iterable<Host>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const h of hosts) if (h.Profile) counts.set(h.Profile, (counts.get(h.Profile) ?? 0) + 1);
  return counts;
}

/** Hosts per profile plus the slots held for machines not registered yet (inventory entries naming the profile). */
export function withReserved(counts: ReadonlyMap<string, number>, reserved?: ReadonlyMap<string, number>): ReadonlyMap<string, number> {
  if (!reserved?.size) return counts;
  const total = new Map(counts);
  for (const [profile, n] of reserved) total.set(profile, (total.get(profile) ?? 0) + n);
  return total;
}

/**
 * First profile, in config order, still below its quantity and whose selector (if it has one)
 * matches the machine; otherwise `default`. Without facts, profiles with a selector never match.
 */
export function chooseProfile(profiles: readonly Profile[], counts: ReadonlyMap<string, number>, facts?: MachineFacts): Profile {
  for (const p of profiles) {
    if (p.name === DEFAULT_PROFILE) continue;
    if (p.selector && (!facts || !selectorMatches(p.selector, facts))) continue;
    if ((counts.get(p.name) ?? 0) < (p.quantity ?? 0)) return p;
  }
  return profiles.find((p) => p.name === DEFAULT_PROFILE) ?? { name: DEFAULT_PROFILE, tags: [], disable_engine: false };
}

/** The host fields a profile sets (0.11: tags → FleetMetadata, disable_engine, version, token). */
export function applyProfile(host: Host, profile: Profile): Host {
  const next: Host = { ...host, Profile: profile.name, FleetMetadata: [...profile.tags], FleetDisableEngine: profile.disable_engine };
  if (profile.coreos_version) next.CoreOSVersion = profile.coreos_version;
  if (profile.etcd_cluster_token) next.EtcdClusterToken = profile.etcd_cluster_token;
  return next;
}
