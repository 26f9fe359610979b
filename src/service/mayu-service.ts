// The one place where requests become host changes: routes and CLIs call this, it asks the pure
// core for the steps, and hands them to the store. Every method reads the current host and
// applies its steps without awaiting in between, so concurrent requests never interleave.
import type { IpRange } from '../core/addresses.ts';
import { bootSerial, findBootHost, type BootQuery } from '../core/boot-identity.ts';
import {
  bootCompleteSteps, creationSteps, finalConfigSteps, markFreshSteps, overrideSteps, setCabinetSteps,
  setEtcdTokenSteps, setInstalledSteps, setIpmiAddrSteps, setMetadataSteps, setProfileSteps, setProviderIdSteps, setStateSteps,
  type Step,
} from '../core/host-changes.ts';
import type { HostData, NicFact } from '../core/host-data.ts';
import {
  clearFailureOnStateChange, currentFailure, decodeFailureLog, INSTALL_FAILURES_FILE, installFailureSteps,
  type InstallFailure, type InstallFailureLog, type InstallFailureReport,
} from '../core/install-failures.ts';
import { VERSION_FIELDS, type Host, type HostState, type OverrideValue } from '../core/host.ts';
import type { Profile } from '../core/profiles.ts';
import type { MachineFacts } from '../core/selectors.ts';
import { normalizeSerial } from '../core/serial.ts';
import type { StuckHost } from '../core/stuck.ts';
import type { CommitInfo, HostStore } from '../store/store.ts';

/** Boot ids remembered (one per host that reported; a bound all the same). */
const MAX_BOOT_IDS = 100_000;

/** 400 `host doesn't exist`, verbatim from 0.11. */
export class UnknownHostError extends Error {
  constructor() {
    super("host doesn't exist");
  }
}

export interface HostChangeEvent {
  serial: string;
  from: HostState | undefined;
  to: HostState;
  messages: string[];
  host: Host;
  /** The host was deleted; `host` is what it was. */
  deleted?: true;
  /** Commit id of the change's last step (git mode); absent without git. */
  commit?: string;
  /** The change is an install failure the installer reported (the host itself is unchanged). */
  installFailure?: InstallFailure;
  /** Not a change: the host became stuck in its state (service/stuck-watch.ts); nothing was written. */
  stuck?: StuckHost;
}

/** GET /admin/host/<serial>/install-failures: the host's failure log and the one that still stands. */
export interface InstallFailuresView extends InstallFailureLog {
  Serial: string;
  /** The newest failure unless a state change since cleared it; null when none stands. */
  Current: InstallFailure | null;
}

export interface ServiceDeps {
  store: HostStore;
  profiles: readonly Profile[];
  ipRange: IpRange;
  /** Where this replica's search for a free InternalAddr starts (etcd store; default 0: the lowest free). */
  addressSearchFrom?: number;
  randomBytes: (n: number) => Uint8Array;
  /** LastBoot for a boot reported now: Go's RFC3339Nano in the server's zone, as 0.11 wrote it. */
  bootTime: () => string;
  /** The clock of install-failure times (UTC, whole seconds); default the system clock. */
  now?: () => Date;
  /** Throws (a 400-class error) when a host must not be stored like this; only override asks. */
  checkHost?: (host: Host) => void;
  /** Called after a change is durable (dnsmasq host lists, events). Must not throw. */
  onChange?: (event: HostChangeEvent) => void;
  /** Told how long each store.apply() took, from the call until the change was durable (metrics). */
  observeCommit?: (seconds: number) => void;
  /** Told about every install failure recorded, once durable (metrics). */
  observeInstallFailure?: (failure: InstallFailure) => void;
  /**
   * Throws (a 507-class error) when no new host may be made now: the disk's last free space is
   * kept for the changes of known hosts (store/disk-space.ts). Changes of known hosts never ask.
   */
  admitNewHost?: () => void;
  /** Admission control and selector facts (issue 17). */
  admission?: AdmissionGate;
}

/** What the creation of an admitted machine's host uses (issue 17). */
export interface AdmittedAs {
  /** The profile it gets outright (inventory, operator); absent: selectors and quantities decide. */
  profile?: Profile;
  /** What is known of the machine for profile selectors. */
  facts?: Omit<MachineFacts, 'serial'>;
  /** Slots per profile held for other machines not registered yet (the inventory's): not free for this one. */
  reserved?: ReadonlyMap<string, number>;
}

/** Who gets a host (src/service/admission-service.ts); absent: every machine, as in 0.11. */
export interface AdmissionGate {
  /** For a serial without a host; throws (NotAdmittedError) when the machine must wait. */
  admit(serial: string, nics?: readonly NicFact[]): AdmittedAs;
}

/** A host asked to be created exists already: 409. */
export class HostExistsError extends Error {}

/** Profile asked for by a preview that the config does not have: a 400. */
export class UnknownProfileError extends Error {}

/** Renders the answer for the host as it will be once the change lands; a throw writes nothing. */
export type RenderFor = (host: Host) => string;

export class MayuService {
  /** serial → boot id of the boot_complete taken last (bootComplete), oldest first. */
  private readonly bootIds = new Map<string, string>();

  constructor(private readonly deps: ServiceDeps) {}

  /** Now, for install-failure records. */
  private failureTime(): Date {
    return this.deps.now ? this.deps.now() : new Date();
  }

  /**
   * Every host, by serial. Read-only: the stored objects themselves, not copies (10 000 deep
   * copies per listing cost more memory than the hosts themselves); callers encode them.
   */
  async list(): Promise<readonly Readonly<Host>[]> {
    await this.deps.store.settled();
    return [...this.deps.store.scan()].sort((a, b) => ((a.Serial ?? '') < (b.Serial ?? '') ? -1 : 1));
  }

  /** A known host as applied so far (durable or about to be); no waiting. */
  find(rawSerial: string): Host | undefined {
    return this.deps.store.get(normalizeSerial(rawSerial));
  }

  /** A known host, after every change applied to it so far is durable (others' do not hold it up). */
  async get(rawSerial: string): Promise<Host | undefined> {
    const serial = normalizeSerial(rawSerial);
    await this.deps.store.settledFor(serial);
    return this.deps.store.get(serial);
  }

  /**
   * The known host a netbooting machine is (see core/boot-identity.ts), once that host's pending
   * changes are durable. A machine mayu does not know waits for nothing: whatever is pending
   * elsewhere, its answer is the installer.
   */
  async findBootHost(query: BootQuery): Promise<Readonly<Host> | undefined> {
    const index = this.deps.store.index();
    const find = () => findBootHost(query, (serial) => this.deps.store.get(serial), this.deps.store.scan(), (mac) => index.serialByMac(mac));
    const serial = bootSerial(query);
    if (serial !== undefined) await this.deps.store.settledFor(serial);
    const found = find();
    if (found?.Serial === undefined || found.Serial === serial) return found;
    // Found by MAC: wait for that host, then look again (it may have changed meanwhile).
    await this.deps.store.settledFor(found.Serial);
    return find();
  }

  /** A host's commits, newest first; a deleted host's stay readable (the audit trail outlives it). */
  async history(rawSerial: string): Promise<CommitInfo[]> {
    const serial = normalizeSerial(rawSerial);
    const known = this.deps.store.get(serial) !== undefined;
    // Without git there is no history of anything: let the store say so.
    if (!known && this.deps.store.kind === 'files') throw new UnknownHostError();
    await this.deps.store.settled();
    const commits = await this.deps.store.history(serial);
    if (!known && commits.length === 0) throw new UnknownHostError();
    return commits;
  }

  /**
   * Decommission: one commit removing `<serial>/`. Its address and its place in the profile's
   * count are free at once (both are computed from the hosts present).
   */
  async deleteHost(rawSerial: string): Promise<void> {
    const serial = normalizeSerial(rawSerial);
    const host = this.deps.store.get(serial);
    if (!host) throw new UnknownHostError();
    const started = process.hrtime.bigint();
    const commit = await this.deps.store.remove(serial, 'host deleted');
    await this.deps.store.flushHistory();
    this.deps.observeCommit?.(Number(process.hrtime.bigint() - started) / 1e9);
    this.deps.onChange?.({
      serial, from: host.State, to: host.State, messages: ['host deleted'], host, deleted: true,
      ...(commit === undefined ? {} : { commit }),
    });
  }

  /** history() with each commit's conf.json text of the host (null if the commit has none). */
  async historyWithConf(rawSerial: string): Promise<(CommitInfo & { conf: string | null })[]> {
    const serial = normalizeSerial(rawSerial);
    const commits = await this.history(serial);
    const out: (CommitInfo & { conf: string | null })[] = [];
    // One at a time: a host has a handful of commits, and the reader shares one file handle per pack.
    for (const c of commits) out.push({ ...c, conf: (await this.deps.store.confAt(serial, c.commit)) ?? null });
    return out;
  }

  /**
   * The host as mayu would serve it, without writing anything: the stored host, or for an
   * unknown serial the host its creation would make now (with `profileName`: in that profile).
   */
  preview(rawSerial: string, profileName?: string): { host: Host; created: boolean } {
    const serial = normalizeSerial(rawSerial);
    const existing = this.deps.store.get(serial);
    if (existing) return { host: existing, created: false };
    let profile: Profile | undefined;
    if (profileName !== undefined) {
      profile = this.deps.profiles.find((p) => p.name === profileName);
      if (!profile) throw new UnknownProfileError(`unknown profile ${JSON.stringify(profileName)}; profiles: ${this.deps.profiles.map((p) => p.name).join(', ')}`);
    }
    return { host: this.creation(serial, { profile }).at(-1)!.host, created: true };
  }

  /** First-stage script request: creates the host on first contact, renders its script. */
  registerAndRender(rawSerial: string, render: RenderFor, nics?: readonly NicFact[]): Promise<{ host: Host; body: string }> {
    const serial = normalizeSerial(rawSerial);
    const existing = this.deps.store.get(serial);
    if (!existing) this.deps.admitNewHost?.();
    const steps = existing ? [] : this.creation(serial, this.deps.admission?.admit(serial, nics));
    return this.commit(serial, existing, steps, render);
  }

  /** Final-config POST: create if new, record hardware data, state installing, render the config. */
  recordHostData(data: HostData, render: RenderFor): Promise<{ host: Host; body: string }> {
    const serial = normalizeSerial(data.Serial);
    const existing = this.deps.store.get(serial);
    if (!existing) this.deps.admitNewHost?.();
    const created = existing ? [] : this.creation(serial, this.deps.admission?.admit(serial, data.NetDevs));
    const base = created.at(-1)?.host ?? existing!;
    const steps = [...created, ...finalConfigSteps(base, data)];
    return this.commit(serial, existing, steps, render);
  }

  setInstalled(serial: string) {
    return this.change(serial, (h) => setInstalledSteps(h));
  }

  /**
   * boot_complete: a commit on every boot (LastBoot moves), as in 0.11. A report that names its
   * boot (`bootId`: the shipped OS sends its kernel boot_id) and repeats the one taken last for
   * this host, with nothing new to store, is a retry of a report whose answer the machine did not
   * get (a timeout): answered once the first is durable, with no second commit.
   */
  async bootComplete(rawSerial: string, reported: Partial<Host>, bootId?: string): Promise<Host> {
    const serial = normalizeSerial(rawSerial);
    const compute = (h: Host) => bootCompleteSteps(h, reported, this.deps.bootTime());
    if (bootId === undefined) return this.change(serial, compute);
    const host = this.deps.store.get(serial);
    if (host?.State === 'running' && this.bootIds.get(serial) === bootId && VERSION_FIELDS.every((f) => !reported[f] || reported[f] === host[f])) {
      // This host's writes only: the first report's among them (not every batch in flight).
      await this.deps.store.settledFor(serial);
      const now = this.deps.store.get(serial);
      // The first report was stored (not rolled back by a failed write): nothing more to do.
      if (now?.State === 'running') return now;
    }
    // Taken before the commit is durable: a retry arriving meanwhile is recognised too.
    this.bootIds.delete(serial);
    this.bootIds.set(serial, bootId);
    if (this.bootIds.size > MAX_BOOT_IDS) this.bootIds.delete(this.bootIds.keys().next().value!);
    try {
      return await this.change(serial, compute);
    } catch (err) {
      if (this.bootIds.get(serial) === bootId) this.bootIds.delete(serial);
      throw err;
    }
  }

  setState(serial: string, state: HostState) {
    return this.operatorChange(serial, (h) => setStateSteps(h, state));
  }

  markFresh(serial: string) {
    return this.operatorChange(serial, (h) => markFreshSteps(h));
  }

  setMetadata(serial: string, metadata: string[]) {
    return this.operatorChange(serial, (h) => setMetadataSteps(h, metadata));
  }

  setProviderId(serial: string, id: string) {
    return this.operatorChange(serial, (h) => setProviderIdSteps(h, id));
  }

  setIpmiAddr(serial: string, addr: string) {
    return this.operatorChange(serial, (h) => setIpmiAddrSteps(h, addr));
  }

  setCabinet(serial: string, cabinet: number) {
    return this.operatorChange(serial, (h) => setCabinetSteps(h, cabinet));
  }

  setEtcdToken(serial: string, token: string) {
    return this.operatorChange(serial, (h) => setEtcdTokenSteps(h, token));
  }

  /** Moves a host to another profile; `force` exceeds the profile's quantity. */
  setProfile(serial: string, profile: string, force: boolean) {
    return this.operatorChange(serial, (h) => setProfileSteps(h, profile, {
      profiles: this.deps.profiles,
      hosts: this.deps.store.scan(),
      defaultEtcdToken: this.deps.store.clusterConfig().DefaultEtcdClusterToken,
      force,
    }));
  }

  override(serial: string, overrides: Record<string, OverrideValue>) {
    return this.operatorChange(serial, (h) => {
      const steps = overrideSteps(h, overrides);
      const after = steps.at(-1)?.host;
      if (after) this.deps.checkHost?.(after);
      return steps;
    });
  }

  /**
   * An installer's failure report: one commit writing `<serial>/install-failures.json` (conf.json
   * and the state stay as they are). Durable before it resolves, like every change.
   */
  async reportInstallFailure(rawSerial: string, report: InstallFailureReport): Promise<InstallFailure> {
    const serial = normalizeSerial(rawSerial);
    const host = this.deps.store.get(serial);
    if (!host) throw new UnknownHostError();
    const { steps, failure } = installFailureSteps(host, this.deps.store.sideFile(serial, INSTALL_FAILURES_FILE), report, this.failureTime());
    await this.commit(serial, host, steps, undefined, { installFailure: failure });
    this.deps.observeInstallFailure?.(failure);
    return failure;
  }

  /** A known host's install failures (newest first) and the one that still stands. */
  async installFailures(rawSerial: string): Promise<InstallFailuresView> {
    const serial = normalizeSerial(rawSerial);
    await this.deps.store.settledFor(serial);
    const host = this.deps.store.get(serial);
    if (!host) throw new UnknownHostError();
    const log = decodeFailureLog(this.deps.store.sideFile(serial, INSTALL_FAILURES_FILE));
    return { Serial: serial, Current: currentFailure(log, host) ?? null, ...log };
  }

  /** Every host whose newest install failure still stands, by serial. */
  async currentInstallFailures(): Promise<(InstallFailure & { Serial: string })[]> {
    await this.deps.store.settled();
    const out: (InstallFailure & { Serial: string })[] = [];
    for (const host of this.deps.store.scan()) {
      const text = this.deps.store.sideFile(host.Serial ?? '', INSTALL_FAILURES_FILE);
      const current = text === undefined ? undefined : currentFailure(decodeFailureLog(text), host);
      if (current) out.push({ Serial: host.Serial ?? '', ...current });
    }
    return out.sort((a, b) => (a.Serial < b.Serial ? -1 : 1));
  }

  /**
   * An operator admits a machine (issue 17): its host is created now. `first` submits the
   * admission's own commit in the same tick, so it lands in the same batch, before the host's.
   */
  async createHost(rawSerial: string, admitted: AdmittedAs, first?: () => Promise<unknown>): Promise<Host> {
    const serial = normalizeSerial(rawSerial);
    if (this.deps.store.get(serial)) throw new HostExistsError(`host ${serial} exists already`);
    this.deps.admitNewHost?.();
    const steps = this.creation(serial, admitted);
    const recorded = first?.();
    const [{ host }] = await Promise.all([this.commit(serial, undefined, steps), recorded]);
    await this.deps.store.flushHistory();
    return host;
  }

  private creation(serial: string, admitted: AdmittedAs = {}): Step[] {
    return creationSteps(serial, {
      profile: admitted.profile,
      facts: admitted.facts,
      reserved: admitted.reserved,
      hosts: this.deps.store.scan(),
      profiles: this.deps.profiles,
      ipRange: this.deps.ipRange,
      addressSearchFrom: this.deps.addressSearchFrom,
      defaultEtcdToken: this.deps.store.clusterConfig().DefaultEtcdClusterToken,
      randomBytes: this.deps.randomBytes(16),
      index: this.deps.store.index(),
    });
  }

  /** A change an operator asked for: answered once git log shows it too (HostStore.flushHistory). */
  private async operatorChange(rawSerial: string, compute: (host: Host) => Step[]): Promise<Host> {
    const after = await this.change(rawSerial, compute);
    await this.deps.store.flushHistory();
    return after;
  }

  private async change(rawSerial: string, compute: (host: Host) => Step[]): Promise<Host> {
    const serial = normalizeSerial(rawSerial);
    const host = this.deps.store.get(serial);
    if (!host) throw new UnknownHostError();
    const { host: after } = await this.commit(serial, host, compute(host));
    return after;
  }

  private async commit(
    serial: string, before: Host | undefined, computed: Step[], render?: RenderFor, extra: Pick<HostChangeEvent, 'installFailure'> = {},
  ): Promise<{ host: Host; body: string }> {
    const after = computed.at(-1)?.host ?? before!;
    const body = render ? render(after) : '';
    // A state change supersedes a standing install failure, in the same commit.
    const steps = clearFailureOnStateChange(computed, before, this.deps.store.sideFile(serial, INSTALL_FAILURES_FILE), this.failureTime());
    const started = process.hrtime.bigint();
    const commit = await this.deps.store.apply(serial, steps);
    if (steps.length > 0) {
      this.deps.observeCommit?.(Number(process.hrtime.bigint() - started) / 1e9);
      this.deps.onChange?.({
        serial, from: before?.State, to: after.State, messages: steps.map((s) => s.message), host: after,
        ...(commit === undefined ? {} : { commit }),
        ...extra,
      });
    }
    return { host: after, body };
  }
}
