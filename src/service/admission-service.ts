// Admission control (issue 17): which machines get a host, the machines waiting for an
// operator, approvals, rejections and the inventory. Records live in the cluster repo's reserved
// folders (`_admission/<serial>.json`, `_config/inventory.yaml`), each decision one commit, so
// the audit history has them; conf.json of real hosts is untouched (0.11's format).
import {
  ADMISSION_FOLDER, admissionMessages, CONFIG_FOLDER, decideAdmission, decodeRecord, encodeRecord, INVENTORY_FILE, INVENTORY_PATH,
  recordFileName, type AdmissionMode, type AdmissionRecord, type AdmissionStatus, type Inventory, type InventoryEntry,
} from '../core/admission.ts';
import { bootSerial, type BootQuery } from '../core/boot-identity.ts';
import type { Host } from '../core/host.ts';
import { HostDataError, normalizeMac, type NicFact } from '../core/host-data.ts';
import { chooseProfile, countByProfile, DEFAULT_PROFILE, withReserved, type Profile } from '../core/profiles.ts';
import type { MachineFacts } from '../core/selectors.ts';
import { normalizeSerial } from '../core/serial.ts';
import { encodeInventory, parseInventory } from '../config/inventory.ts';
import type { HostStore, RecordWrite } from '../store/store.ts';
import type { AdmissionGate, AdmittedAs } from './mayu-service.ts';

/** A machine without a host that must wait (or was rejected): the machine routes answer a wait script. */
export class NotAdmittedError extends Error {
  constructor(
    readonly serial: string,
    readonly status: AdmissionStatus,
    readonly retrySeconds: number,
    /** Its record's commit, when this request made one (resolves once durable). */
    readonly recorded: Promise<unknown>,
  ) {
    super(`${serial} is not admitted (${status}): ${status === 'rejected' ? 'an operator rejected it' : 'it waits for an operator to admit it'}`);
  }
}

/** An operator's admission request refused: `status` is the HTTP status (404, 409, 400), nothing was written. */
export class AdmissionRequestError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Waiting machines kept at most: past it a flood of unknown serials is answered but not recorded. */
const MAX_WAITING = 10_000;
/** Booting MACs remembered from iPXE's requests (serial → MAC), for selectors at creation. */
const MAX_BOOT_MACS = 10_000;

export interface PendingMachine extends AdmissionRecord {
  /** Last time this process saw it ask (not stored: asking again writes nothing). */
  LastSeen?: string;
}

export interface InventoryView extends InventoryEntry {
  /** The host's state when it has one, else its admission record's status, else `expected`. */
  state: string;
}

export interface AdmissionDeps {
  store: HostStore;
  profiles: readonly Profile[];
  mode: AdmissionMode;
  retrySeconds: number;
  now: () => Date;
  /** MayuService.createHost: the host of an approved machine, created with the approval's commit first. */
  createHost: (serial: string, admitted: AdmittedAs, first: () => Promise<unknown>) => Promise<Host>;
  /** Told once per inventory text that cannot be used (an operator committed a broken edit). */
  warn?: (message: string) => void;
}

export class AdmissionService implements AdmissionGate {
  private inventoryCache: { text: string | undefined; inventory: Map<string, InventoryEntry> } = { text: undefined, inventory: new Map() };
  private readonly recording = new Map<string, Promise<unknown>>();
  private readonly lastSeen = new Map<string, string>();
  private readonly bootMacs = new Map<string, string>();
  private warnedFull = false;

  constructor(private readonly deps: AdmissionDeps) {
    if (!deps.store.records || !deps.store.applyRecords) throw new Error('this store keeps no admission records');
  }

  get mode(): AdmissionMode {
    return this.deps.mode;
  }

  /** At start: the inventory must be valid (unknown profile, bad serial, ...): throws ConfigError naming file, key, reason. */
  checkInventory(file = INVENTORY_PATH): void {
    const text = this.deps.store.records!(CONFIG_FOLDER).get(INVENTORY_FILE);
    this.inventoryCache = { text, inventory: text === undefined ? new Map() : parseInventory(text, file, this.deps.profiles) };
  }

  /** The inventory as committed; a broken committed edit keeps the last good one (and is logged). */
  inventory(): Inventory {
    const text = this.deps.store.records!(CONFIG_FOLDER).get(INVENTORY_FILE);
    if (text !== this.inventoryCache.text) {
      try {
        this.inventoryCache = { text, inventory: text === undefined ? new Map() : parseInventory(text, INVENTORY_PATH, this.deps.profiles) };
      } catch (err) {
        this.deps.warn?.(`${(err as Error).message}; the inventory as it was before is used until the file is fixed`);
        this.inventoryCache = { ...this.inventoryCache, text };
      }
    }
    return this.inventoryCache.inventory;
  }

  record(serial: string): AdmissionRecord | undefined {
    const text = this.deps.store.records!(ADMISSION_FOLDER).get(recordFileName(serial));
    if (text === undefined) return undefined;
    try {
      return decodeRecord(text);
    } catch {
      return undefined;
    }
  }

  // ---- machines asking ----

  /** MayuService's gate for a serial without a host: what its creation uses, or NotAdmittedError. */
  admit(serial: string, nics?: readonly NicFact[]): AdmittedAs {
    const entry = this.inventory().get(serial);
    const record = this.record(serial);
    const decision = decideAdmission(this.deps.mode, entry, record);
    const facts = this.facts(serial, nics, record);
    if (decision.kind === 'admit') {
      if (decision.profile) return { profile: this.profile(decision.profile), facts };
      return { facts, reserved: this.reservedSlots(serial) };
    }
    this.lastSeen.set(serial, this.stamp());
    const recorded = decision.record ? this.recordWaiting(serial, decision.record, [...(facts.macs ?? [])], '') : Promise.resolve();
    throw new NotAdmittedError(serial, decision.status, this.deps.retrySeconds, recorded);
  }

  /**
   * iPXE's `/ipxebootscript?serial=&mac=&uuid=` of a machine with no host: its booting MAC is
   * remembered (selectors), and a machine that may not install yet is told to wait (recorded once).
   * `admitNew` (the load gate) runs first for such a machine and may throw (429/503): nothing is recorded then.
   */
  checkBoot(query: BootQuery, source: string, admitNew?: () => void): NotAdmittedError | undefined {
    const serial = bootSerial(query);
    if (serial === undefined) return undefined;
    let mac: string | undefined;
    try {
      mac = normalizeMac(query.mac ?? '');
    } catch (err) {
      if (!(err instanceof HostDataError)) throw err;
    }
    if (mac !== undefined) {
      this.bootMacs.delete(serial);
      this.bootMacs.set(serial, mac);
      if (this.bootMacs.size > MAX_BOOT_MACS) this.bootMacs.delete(this.bootMacs.keys().next().value!);
    }
    const record = this.record(serial);
    const decision = decideAdmission(this.deps.mode, this.inventory().get(serial), record);
    if (decision.kind === 'admit') return undefined;
    admitNew?.();
    this.lastSeen.set(serial, this.stamp());
    const recorded = decision.record ? this.recordWaiting(serial, decision.record, mac ? [mac] : [], source) : Promise.resolve();
    return new NotAdmittedError(serial, decision.status, this.deps.retrySeconds, recorded);
  }

  /** One commit per machine, however often it asks (concurrent requests share it). */
  private recordWaiting(serial: string, status: AdmissionStatus, macs: string[], source: string): Promise<unknown> {
    const inFlight = this.recording.get(serial);
    if (inFlight) return inFlight;
    if (this.deps.store.records!(ADMISSION_FOLDER).size >= MAX_WAITING) {
      if (!this.warnedFull) this.deps.warn?.(`${MAX_WAITING} machines are waiting for admission already: further unknown machines are answered but not recorded`);
      this.warnedFull = true;
      return Promise.resolve();
    }
    const record: AdmissionRecord = { Serial: serial, Status: status, Mode: this.deps.mode, FirstSeen: this.stamp(), MacAddresses: macs, Source: source };
    const message = status === 'discovered' ? admissionMessages.discovered(this.deps.mode) : admissionMessages.pending(this.deps.mode);
    const write = this.write([{ folder: ADMISSION_FOLDER, name: recordFileName(serial), content: encodeRecord(record) }], serial, message)
      .finally(() => this.recording.delete(serial));
    this.recording.set(serial, write);
    return write;
  }

  /** The NICs the machine named (first-stage query or final-config POST), else the MACs iPXE and its record showed. */
  private facts(serial: string, nics: readonly NicFact[] | undefined, record: AdmissionRecord | undefined): Omit<MachineFacts, 'serial'> {
    if (nics && nics.length > 0) {
      const drivers = nics.flatMap((d) => (d.Driver ? [d.Driver] : []));
      return { macs: nics.map((d) => d.MacAddress), nicCount: nics.length, ...(drivers.length ? { nicDrivers: drivers } : {}) };
    }
    const mac = this.bootMacs.get(serial);
    const macs = [...new Set([...(mac ? [mac] : []), ...(record?.MacAddresses ?? [])])];
    return macs.length > 0 ? { macs } : {};
  }

  // ---- operators ----

  /** Machines waiting (discovered, pending) and rejected ones, oldest first. */
  pending(): PendingMachine[] {
    const out: PendingMachine[] = [];
    for (const text of this.deps.store.records!(ADMISSION_FOLDER).values()) {
      let r: AdmissionRecord;
      try {
        r = decodeRecord(text);
      } catch {
        continue;
      }
      // A kill between an approval's commits cannot leave this (one batch), a hand-made host can.
      if (this.deps.store.get(r.Serial)) continue;
      const seen = this.lastSeen.get(r.Serial);
      out.push(seen ? { ...r, LastSeen: seen } : r);
    }
    return out.sort((a, b) => (a.FirstSeen < b.FirstSeen ? -1 : a.FirstSeen > b.FirstSeen ? 1 : a.Serial < b.Serial ? -1 : 1));
  }

  /**
   * Admits a waiting (or rejected) machine: one commit `<serial>: approved (profile P)` removing
   * its record (known mode: adding it to the inventory), then its host's creation commits.
   */
  approve(rawSerial: string, profileName?: string): Promise<Host> {
    const serial = normalizeSerial(rawSerial);
    const host = this.deps.store.get(serial);
    if (host) throw new AdmissionRequestError(409, `${serial} is approved already: it is a host (state ${host.State}, profile ${host.Profile ?? DEFAULT_PROFILE})`);
    const record = this.record(serial);
    if (!record) throw new AdmissionRequestError(404, `no machine ${serial} is waiting for admission: it never asked for a host here${this.deps.mode === 'open' ? '' : ' (to admit it before it asks: mayuctl inventory add)'}`);
    const entry = this.inventory().get(serial);
    const facts = this.facts(serial, undefined, record);
    let profile: Profile;
    if (profileName !== undefined) {
      profile = this.knownProfile(profileName);
      this.assertRoom(profile, serial);
    } else if (entry?.profile) {
      profile = this.profile(entry.profile);
    } else {
      profile = chooseProfile(this.deps.profiles, withReserved(countByProfile(this.deps.store.scan()), this.reservedSlots(serial)), { ...facts, serial });
    }
    const writes: RecordWrite[] = [{ folder: ADMISSION_FOLDER, name: recordFileName(serial), content: undefined }];
    if (this.deps.mode === 'known' && !entry) writes.push(this.inventoryWrite(serial, profileName === undefined ? undefined : profile.name));
    // No await before createHost: its checks and both submissions happen in this tick, so a
    // second approval of the same machine finds the host and is refused.
    return this.deps.createHost(serial, { profile, facts }, () => this.write(writes, serial, admissionMessages.approved(profile.name)));
  }

  /** Refuses a waiting machine: one commit `<serial>: rejected`; it keeps being told to wait (iPXE) or powers off (installer). */
  async reject(rawSerial: string): Promise<void> {
    const serial = normalizeSerial(rawSerial);
    const host = this.deps.store.get(serial);
    if (host) throw new AdmissionRequestError(409, `${serial} is a host already (state ${host.State}): to take it out, delete it (mayuctl delete ${serial})`);
    const record = this.record(serial);
    if (!record) throw new AdmissionRequestError(404, `no machine ${serial} is waiting for admission: it never asked for a host here`);
    if (record.Status === 'rejected') throw new AdmissionRequestError(409, `${serial} is rejected already (at ${record.RejectedAt ?? 'an earlier time'})`);
    const rejected: AdmissionRecord = { ...record, Status: 'rejected', RejectedAt: this.stamp() };
    await this.write([{ folder: ADMISSION_FOLDER, name: recordFileName(serial), content: encodeRecord(rejected) }], serial, admissionMessages.rejected());
  }

  // ---- inventory ----

  inventoryList(): InventoryView[] {
    return [...this.inventory().values()].map((e) => ({ ...e, state: this.deps.store.get(e.serial)?.State ?? this.record(e.serial)?.Status ?? 'expected' }));
  }

  inventoryEntry(rawSerial: string): InventoryView {
    const serial = normalizeSerial(rawSerial);
    const found = this.inventoryList().find((e) => e.serial === serial);
    if (!found) throw new AdmissionRequestError(404, `${serial} is not in the inventory`);
    return found;
  }

  /**
   * Adds a machine to the inventory (or changes its profile): one commit; a discovered record
   * of it goes in the same commit (it is expected now). Returns false when nothing changed.
   */
  async inventoryAdd(rawSerial: string, profileName?: string): Promise<boolean> {
    const serial = normalizeSerial(rawSerial);
    const current = this.inventory().get(serial);
    if (profileName !== undefined) {
      const profile = this.knownProfile(profileName);
      if (current?.profile !== profile.name) this.assertRoom(profile, serial);
    }
    if (current && current.profile === profileName) return false;
    const writes = [this.inventoryWrite(serial, profileName)];
    const record = this.record(serial);
    if (record && record.Status !== 'rejected') writes.push({ folder: ADMISSION_FOLDER, name: recordFileName(serial), content: undefined });
    await this.write(writes, serial, admissionMessages.inventoryAdded(profileName));
    return true;
  }

  async inventoryRemove(rawSerial: string): Promise<void> {
    const serial = normalizeSerial(rawSerial);
    const next = new Map(this.inventory());
    if (!next.delete(serial)) throw new AdmissionRequestError(404, `${serial} is not in the inventory`);
    await this.write([{ folder: CONFIG_FOLDER, name: INVENTORY_FILE, content: encodeInventory(next) }], serial, admissionMessages.inventoryRemoved());
  }

  // ---- helpers ----

  private inventoryWrite(serial: string, profile: string | undefined): RecordWrite {
    const next = new Map(this.inventory());
    next.set(serial, profile ? { serial, profile } : { serial });
    return { folder: CONFIG_FOLDER, name: INVENTORY_FILE, content: encodeInventory(next) };
  }

  private write(writes: RecordWrite[], serial: string, message: string): Promise<unknown> {
    return this.deps.store.applyRecords!(writes, `${serial}: ${message}`).then(() => this.deps.store.flushHistory());
  }

  /** A profile the inventory names (checked at load: known). */
  private profile(name: string): Profile {
    return this.deps.profiles.find((p) => p.name === name) ?? { name: DEFAULT_PROFILE, tags: [], disable_engine: false };
  }

  private knownProfile(name: string): Profile {
    const found = this.deps.profiles.find((p) => p.name === name) ?? (name === DEFAULT_PROFILE ? this.profile(DEFAULT_PROFILE) : undefined);
    if (!found) {
      const names = [...this.deps.profiles.map((p) => p.name), ...(this.deps.profiles.some((p) => p.name === DEFAULT_PROFILE) ? [] : [DEFAULT_PROFILE])];
      throw new AdmissionRequestError(400, `unknown profile ${JSON.stringify(name.slice(0, 70))} (known: ${names.join(', ')})`);
    }
    return found;
  }

  /**
   * Per profile, the inventory entries naming it whose machine (other than `serial`) has no host
   * yet: their slots are held, so a machine without an entry of its own cannot take the last one.
   */
  private reservedSlots(serial: string): Map<string, number> {
    const reserved = new Map<string, number>();
    for (const e of this.inventory().values()) {
      if (e.profile && e.profile !== DEFAULT_PROFILE && e.serial !== serial && !this.deps.store.get(e.serial)) reserved.set(e.profile, (reserved.get(e.profile) ?? 0) + 1);
    }
    return reserved;
  }

  /** Hosts in the profile plus inventory entries naming it that have no host yet must stay within its quantity. */
  private assertRoom(profile: Profile, serial: string): void {
    if (profile.name === DEFAULT_PROFILE) return;
    const hosts = countByProfile(this.deps.store.scan()).get(profile.name) ?? 0;
    const reserved = this.reservedSlots(serial).get(profile.name) ?? 0;
    const quantity = profile.quantity ?? 0;
    if (hosts + reserved >= quantity) {
      throw new AdmissionRequestError(409, `profile "${profile.name}" is full: quantity ${quantity}, held by ${hosts} host${hosts === 1 ? '' : 's'}${reserved ? ` and ${reserved} inventory entr${reserved === 1 ? 'y' : 'ies'} not yet registered` : ''}`);
    }
  }

  private stamp(): string {
    return this.deps.now().toISOString().replace(/\.\d{3}Z$/, 'Z');
  }
}
