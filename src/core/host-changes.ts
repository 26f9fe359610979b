// Every request that changes a host is turned here into a list of steps, each one commit with
// 0.11's message. Pure: callers pass in the current hosts, randomness and the clock.
import { allocateAddress, isIpv4, type IpRange } from './addresses.ts';
import { cloneHost, hostsEqual, newHost, VERSION_FIELDS, type Host, type HostState, type OverrideValue } from './host.ts';
import type { HostData } from './host-data.ts';
import type { HostIndexView } from './host-index.ts';
import { applyProfile, chooseProfile, countByProfile, DEFAULT_PROFILE, withReserved, type Profile } from './profiles.ts';
import type { MachineFacts } from './selectors.ts';
import { assertTransition } from './states.ts';

export interface Step {
  /** Commit message without the `<serial>: ` prefix. */
  message: string;
  host: Host;
  /**
   * Files beside conf.json in the host's folder that this step writes (whole content), e.g.
   * install-failures.json; the store keeps them with the host. Names: store.ts HOST_SIDE_FILES.
   */
  files?: Readonly<Record<string, string>>;
}

/** A request the core refuses: becomes a 400 with this message. */
export class HostChangeError extends Error {}

/** A profile change that would exceed the target profile's quantity (409 unless forced). */
export class ProfileQuantityError extends HostChangeError {}

export interface CreationContext {
  hosts: Iterable<Host>;
  profiles: readonly Profile[];
  ipRange: IpRange;
  defaultEtcdToken: string;
  /** 16 random bytes for the machine id. */
  randomBytes: Uint8Array;
  /** Use this profile instead of the first one with room (dry-run previews of a chosen profile). */
  profile?: Profile;
  /** The hosts' free addresses and profile counts, kept in step: then `hosts` is not scanned. */
  index?: HostIndexView;
  /** What is known about the machine beyond its serial (MACs, NICs), for profile selectors. */
  facts?: Omit<MachineFacts, 'serial'>;
  /** Where the search for a free InternalAddr starts, past the range's start (replicas; 0: the lowest free). */
  addressSearchFrom?: number;
  /** Slots per profile held for machines not registered yet (inventory entries naming it): counted as taken. */
  reserved?: ReadonlyMap<string, number>;
}

/** 32 hex chars; bytes 0 and 1 are cabinet and machine-on-cabinet as in 0.11 (so ids start 0000). */
export function machineIdFrom(random: Uint8Array, cabinet = 0, machineOnCabinet = 0): string {
  if (random.length !== 16) throw new Error('machine id needs 16 random bytes');
  const bytes = Uint8Array.from(random);
  bytes[0] = cabinet & 255;
  bytes[1] = machineOnCabinet & 255;
  return Buffer.from(bytes).toString('hex');
}

/** The creation sequence of a new serial (protocol section 4): 4 or 5 steps, computed up front so an exhausted range writes nothing. */
export function creationSteps(serial: string, ctx: CreationContext): Step[] {
  const steps: Step[] = [];
  let host = newHost(serial);
  steps.push({ message: 'host created', host });

  const machineId = machineIdFrom(ctx.randomBytes, host.Cabinet, host.MachineOnCabinet);
  host = { ...host, MachineID: machineId, Hostname: machineId.slice(0, 16) };
  steps.push({ message: 'updated with predefined settings', host });

  const hosts = ctx.index ? [] : [...ctx.hosts];
  const address = ctx.index
    ? ctx.index.lowestFreeAddress(ctx.ipRange, ctx.addressSearchFrom)
    : allocateAddress(ctx.ipRange, hosts.map((h) => h.InternalAddr), ctx.addressSearchFrom);
  host = { ...host, InternalAddr: address };
  steps.push({ message: 'updated host InternalAddr', host });

  const counts = withReserved(ctx.index ? ctx.index.profileCounts() : countByProfile(hosts), ctx.reserved);
  host = applyProfile(host, ctx.profile ?? chooseProfile(ctx.profiles, counts, { ...ctx.facts, serial }));
  steps.push({ message: 'updated host profile and metadata', host });

  if (!host.EtcdClusterToken) {
    host = { ...host, EtcdClusterToken: ctx.defaultEtcdToken };
    steps.push({ message: 'set default etcd discovery token', host });
  }
  return steps.map((s) => ({ message: s.message, host: cloneHost(s.host) }));
}

/** Builds steps from successive edits, dropping those that change nothing. */
class StepList {
  readonly steps: Step[] = [];
  constructor(private current: Host) {}
  apply(message: string, edit: (h: Host) => void): void {
    const next = cloneHost(this.current);
    edit(next);
    if (hostsEqual(next, this.current)) return;
    this.current = next;
    this.steps.push({ message, host: next });
  }
}

function sameList(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return (a ?? []).length === b.length && b.every((x, i) => a![i] === x);
}

/** Final-config POST: record hardware data and move to installing (retries while installing are fine). */
export function finalConfigSteps(host: Host, data: HostData): Step[] {
  assertTransition(host.State, 'installing');
  const list = new StepList(host);
  const macs = data.NetDevs.map((d) => d.MacAddress);
  list.apply('collected host mac addresses', (h) => {
    if (!sameList(h.MacAddresses, macs)) h.MacAddresses = macs;
  });
  list.apply('updated host connected nic', (h) => {
    h.ConnectedNIC = data.ConnectedNIC;
  });
  if (data.IPMIAddress) list.apply('updated host ipmi address', (h) => {
    h.IPMIAddr = data.IPMIAddress;
  });
  list.apply('updated host state to installing', (h) => {
    h.State = 'installing';
  });
  return list.steps;
}

export function setInstalledSteps(host: Host): Step[] {
  assertTransition(host.State, 'installed');
  const list = new StepList(host);
  list.apply('updated state to installed', (h) => {
    h.State = 'installed';
  });
  return list.steps;
}

/** Versions end up in conf.json, templates and the OS image path: a conservative alphabet. */
const VERSION = /^[A-Za-z0-9._+~:-]{1,64}$/;

/** Text an operator sets (metadata, provider id): printable, one line, bounded. */
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;
const TEXT_LIMIT = 256;

/**
 * boot_complete on every boot: always a commit (LastBoot moves); empty versions keep the stored
 * ones. `lastBoot` is the time as stored (0.11's form: see core/go-time.ts).
 */
export function bootCompleteSteps(host: Host, reported: Partial<Host>, lastBoot: string): Step[] {
  for (const f of VERSION_FIELDS) {
    const v = reported[f];
    if (v && !VERSION.test(v)) throw new HostChangeError(`invalid ${f} ${JSON.stringify(v.slice(0, 70))}: expected up to 64 letters, digits, ".", "_", "+", "~", ":" or "-"`);
  }
  assertTransition(host.State, 'running');
  const list = new StepList(host);
  list.apply('updated state to running', (h) => {
    h.State = 'running';
    h.LastBoot = lastBoot;
    for (const f of VERSION_FIELDS) {
      const v = reported[f];
      if (v) h[f] = v;
    }
  });
  return list.steps;
}

/**
 * set_state keeps 0.11's meaning: `running` is stored as `configured` with KeepDiskData=false,
 * `configured` sets KeepDiskData=true (reinstall keeping data disks). An operator may set any
 * state from any state, as in 0.11 (say, `installed` for a machine installed by hand): only the
 * machines' own reports are held to the lifecycle.
 */
export function setStateSteps(host: Host, requested: HostState): Step[] {
  const target: HostState = requested === 'running' ? 'configured' : requested;
  const list = new StepList(host);
  list.apply('updated host state', (h) => {
    h.State = target;
    if (requested === 'configured') h.KeepDiskData = true;
    if (requested === 'running') h.KeepDiskData = false;
  });
  return list.steps;
}

export function markFreshSteps(host: Host): Step[] {
  assertTransition(host.State, 'configured');
  const list = new StepList(host);
  list.apply('host flagged as fresh', (h) => {
    h.State = 'configured';
    h.KeepDiskData = false;
  });
  return list.steps;
}

export function setMetadataSteps(host: Host, metadata: string[]): Step[] {
  const bad = metadata.find((m) => !/^[^=\s]+=.*$/.test(m));
  if (bad !== undefined) throw new HostChangeError(`invalid metadata ${JSON.stringify(bad.slice(0, 70))}: expected key=value`);
  if (metadata.length > 64) throw new HostChangeError(`too much metadata: ${metadata.length} entries, at most 64`);
  const odd = metadata.find((m) => m.length > TEXT_LIMIT || CONTROL.test(m));
  if (odd !== undefined) throw new HostChangeError(`invalid metadata ${JSON.stringify(odd.slice(0, 70))}: at most ${TEXT_LIMIT} characters, no control characters`);
  const list = new StepList(host);
  list.apply('updated host metadata', (h) => {
    h.FleetMetadata = [...metadata];
  });
  return list.steps;
}

export function setProviderIdSteps(host: Host, providerId: string): Step[] {
  if (providerId.length > TEXT_LIMIT || CONTROL.test(providerId)) {
    throw new HostChangeError(`invalid provider id ${JSON.stringify(providerId.slice(0, 70))}: at most ${TEXT_LIMIT} characters, no control characters`);
  }
  const list = new StepList(host);
  list.apply('updated host provider id', (h) => {
    h.ProviderId = providerId;
  });
  return list.steps;
}

export function setIpmiAddrSteps(host: Host, addr: string): Step[] {
  if (addr !== '' && !isIpv4(addr)) throw new HostChangeError(`invalid IPMI address ${JSON.stringify(addr.slice(0, 40))}: expected IPv4`);
  const list = new StepList(host);
  list.apply('updated host ipmi address', (h) => {
    h.IPMIAddr = addr;
  });
  return list.steps;
}

export function setCabinetSteps(host: Host, cabinet: number): Step[] {
  if (!Number.isSafeInteger(cabinet) || cabinet < 0) throw new HostChangeError(`invalid cabinet ${cabinet}: expected an unsigned integer`);
  const list = new StepList(host);
  list.apply('updated host cabinet', (h) => {
    h.Cabinet = cabinet;
  });
  return list.steps;
}

export function setEtcdTokenSteps(host: Host, token: string): Step[] {
  if (!/^[0-9a-zA-Z._-]{0,128}$/.test(token)) throw new HostChangeError('invalid etcd cluster token: expected up to 128 letters, digits, ".", "_" or "-"');
  const list = new StepList(host);
  list.apply('updated host etcd cluster token', (h) => {
    h.EtcdClusterToken = token;
  });
  return list.steps;
}

const OVERRIDE_KEY = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** Names that mean something to JavaScript objects, never template variables. */
const RESERVED_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export function overrideSteps(host: Host, overrides: Record<string, OverrideValue>): Step[] {
  const keys = Object.keys(overrides).sort();
  if (keys.length === 0) throw new HostChangeError('nothing to override');
  const bad = keys.find((k) => !OVERRIDE_KEY.test(k) || RESERVED_KEYS.has(k));
  if (bad !== undefined) throw new HostChangeError(`invalid override key ${JSON.stringify(bad.slice(0, 70))}: use letters, digits and "_" (not __proto__, constructor, prototype)`);
  const list = new StepList(host);
  list.apply(`updated host overrides: ${keys.join(', ')}`, (h) => {
    h.Overrides = { ...(h.Overrides ?? {}), ...structuredClone(overrides) };
  });
  return list.steps;
}

export interface ProfileChangeContext {
  profiles: readonly Profile[];
  hosts: Iterable<Readonly<Host>>;
  /** The cluster's default token: what a new host of a profile without a token gets. */
  defaultEtcdToken: string;
  /** Exceed the target profile's quantity. */
  force: boolean;
}

/**
 * An operator moves a host to another profile: one commit. The profile's fields are applied as
 * at creation (tags → FleetMetadata, disable_engine, coreos_version when set) and the etcd token
 * becomes the profile's, else the cluster default, as a new host of that profile would get:
 * keeping the old profile's token would join the host to the old profile's etcd cluster.
 */
export function setProfileSteps(host: Host, name: string, ctx: ProfileChangeContext): Step[] {
  const known = ctx.profiles.map((p) => p.name);
  const implicitDefault: Profile = { name: DEFAULT_PROFILE, tags: [], disable_engine: false };
  const profile = ctx.profiles.find((p) => p.name === name) ?? (name === DEFAULT_PROFILE ? implicitDefault : undefined);
  if (!profile) {
    const names = known.includes(DEFAULT_PROFILE) ? known : [...known, DEFAULT_PROFILE];
    throw new HostChangeError(`unknown profile ${JSON.stringify(name.slice(0, 70))} (known: ${names.join(', ')})`);
  }
  // `default` catches every host; a host already holding the profile is counted already.
  if (name !== DEFAULT_PROFILE && host.Profile !== name && !ctx.force) {
    const held = countByProfile(ctx.hosts).get(name) ?? 0;
    const quantity = profile.quantity ?? 0;
    if (held >= quantity) {
      throw new ProfileQuantityError(`profile "${name}" is full: quantity ${quantity}, held by ${held} host${held === 1 ? '' : 's'}; force to exceed it`);
    }
  }
  const list = new StepList(host);
  list.apply(`updated host profile to ${name}`, (h) => {
    Object.assign(h, applyProfile(h, profile));
    h.EtcdClusterToken = profile.etcd_cluster_token || ctx.defaultEtcdToken;
  });
  return list.steps;
}
