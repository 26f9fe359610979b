import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import { decodeHost, encodeHost, type Host } from '../core/host.ts';
import type { Step } from '../core/host-changes.ts';
import { encodeClusterJson, parseClusterJson } from './cluster-json.ts';
import { decodeLog, encodeLog, resumePoint, type LogEntry } from './etcd/change-log.ts';
import { isUncommittedId, UncommittedLog } from './etcd/uncommitted-log.ts';
import { EtcdKeys } from './etcd/keys.ts';
import { buildTxn, conflictsOf, prefixEnd, type TxnItem } from './etcd/txn.ts';
import { fragmented, resumeAfterLastEvent } from './etcd/connect.ts';
import { GitHistoryReader } from './etcd/git-history-reader.ts';
import { HostTable, type SideFiles } from './host-table.ts';
import { PendingBySerial } from './pending-by-serial.ts';
import { ADMISSION_FOLDER, CONFIG_FOLDER, decodeRecord, INVENTORY_FILE, recordFileName } from '../core/admission.ts';
import { HOST_SIDE_FILES, RECORD_FOLDERS, StoreConflictError, StoreError, StoreUnavailableError, type ClusterConfig, type CommitInfo, type HostStore, type RecordWrite, type StoreObserver } from './store.ts';
import { setRecordFile, type RecordFiles } from './record-files.ts';

// Host records in etcd, shared by several mayu replicas (README "Replicas with etcd").
//
// Each replica keeps all hosts in memory, current from a watch on the prefix. apply() changes
// memory at once, as the other stores do, and queues the change; one transaction at a time takes
// everything queued (group commit, within etcd's 128 operations and 1.5 MiB). The transaction
// compares, for each change, the host's mod revision as this replica last saw it (no lost
// update), that an address it hands out is not held in etcd yet (addr/<ip>), and the counter of
// a profile with a quantity it puts the host into (quota/<profile>): so two replicas never both
// take the same address or the last place of a profile. When a compare fails, the changes that
// caused it (and those computed on top of them) are rolled back and fail with a StoreConflictError
// (503, retry); the others go again in the next transaction. Keys keys.ts lists.

export interface EtcdStoreOptions {
  client: Etcd3;
  /** For messages: where etcd was looked for. */
  endpoints: readonly string[];
  prefix: string;
  /** The cluster repo the history writer keeps: every replica reads history from it. */
  historyDir: string;
  /** Profiles with a quantity: putting a host into one is checked across replicas. */
  limitedProfiles: ReadonlySet<string>;
  randomBytes: (n: number) => Uint8Array;
  now?: () => Date;
  observer?: StoreObserver;
  /** A host changed by another replica (already in memory): dnsmasq, /admin/events. */
  onExternalChange?: (change: ExternalChange) => void;
  /** A key under the prefix mayu did not write as it writes them (bad JSON, bad conf): not served. */
  onBadKey?: (key: string, err: Error) => void;
  /** How often etcd is probed for /readyz (default 1 s). */
  probeIntervalMs?: number;
  /** flushHistory() waits at most this long for the history writer (default 5 s). */
  historyWaitMs?: number;
}

export interface ExternalChange {
  serial: string;
  before: Host | undefined;
  after: Host | undefined;
  /** The change's messages (from the log key), when known. */
  messages: string[];
}

type Expect = number | Item;

interface Item extends TxnItem {
  seq: number;
  prevSnapshot: ReturnType<HostTable['apply']>;
  expectHost: Expect;
  quotaExpect?: Expect;
  /** Records change: the expectation of each of `records`' keys, and what memory held before. */
  recordExpects?: Expect[];
  recordUndo?: { folder: string; name: string; prev: string | undefined }[];
  /** Fails when this one does (a host created with the approval recorded just before it). */
  dependsOn?: Item;
  revision?: number;
  failed?: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class EtcdStore implements HostStore {
  readonly kind = 'etcd' as const;
  private readonly keys: EtcdKeys;
  private readonly table = new HostTable();
  private readonly pending = new PendingBySerial();
  private readonly history_: GitHistoryReader;
  /** Mod revision of hosts/<serial> and quota/<profile> keys as memory reflects them. */
  private readonly known = new Map<string, number>();
  /** The newest local change of a key not yet in etcd: the next change of it compares against its result. */
  private readonly lastLocal = new Map<string, Item>();
  /** Changes not yet in etcd, per serial. */
  private readonly inFlight = new Map<string, number>();
  /** Serials another replica changed (at this revision) while one of ours was in flight: read again once ours is done, if newer. */
  private readonly stale = new Map<string, number>();
  private queue: Item[] = [];
  private writing = 0;
  private running: Promise<void> | undefined;
  private last: Promise<void> = Promise.resolve();
  private seq = 0;
  private cluster: ClusterConfig = { DefaultEtcdClusterToken: '' };
  private watcher: Watcher | undefined;
  private logWatcher: Watcher | undefined;
  private readonly uncommitted = new UncommittedLog();
  /** Admission records and the inventory (RECORD_FOLDERS), as the git store keeps them. */
  private readonly recordFiles: RecordFiles = new Map();
  /** Records changes submitted in this tick, by serial: a host change of that serial in the same tick depends on it. */
  private readonly recordsThisTick = new Map<string, Item>();
  /** Record keys another replica changed while one of ours was in flight: read again after. */
  private readonly staleRecords = new Set<string>();
  private unreachable: string | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private lastRevision = 0;
  private closed = false;
  /** Closed after the store (the history writer, the client), last first. */
  private readonly owned: (() => Promise<void> | void)[] = [];

  private constructor(private readonly opts: EtcdStoreOptions) {
    this.keys = new EtcdKeys(opts.prefix);
    this.history_ = new GitHistoryReader(opts.historyDir);
  }

  /** Reads every host, creates cluster.json on first use, and starts the watch; throws a StoreError naming the endpoints when etcd does not answer. */
  static async open(opts: EtcdStoreOptions): Promise<EtcdStore> {
    const store = new EtcdStore(opts);
    try {
      await store.initCluster();
      const rev = await store.loadAll();
      await store.watchFrom(rev + 1);
      await store.watchLog();
    } catch (err) {
      store.closed = true;
      await store.watcher?.cancel().catch(() => undefined);
      throw err instanceof StoreError ? err : new StoreUnavailableError(store.unreachableMessage(err as Error));
    }
    store.probe();
    return store;
  }

  get keyLayout(): EtcdKeys {
    return this.keys;
  }

  get(serial: string) { return this.table.get(serial); }
  all() { return this.table.all(); }
  scan() { return this.table.values(); }
  size() { return this.table.size(); }
  index() { return this.table.index; }
  sideFile(serial: string, name: string) { return this.table.sideFiles(serial)[name]; }
  clusterConfig() { return { ...this.cluster }; }
  settled() { return this.last; }
  settledFor(serial: string) { return this.pending.settled(serial); }
  writeQueueDepth() { return this.writing + this.queue.length; }

  /** Why this replica cannot serve (etcd unreachable); empty when it can. For /readyz and a 503 on every route. */
  notReadyReasons(): string[] {
    return this.unreachable ? [this.unreachable] : [];
  }

  apply(serial: string, steps: readonly Step[]): Promise<string | undefined> {
    if (steps.length === 0) return this.settled().then(() => undefined);
    const time = (this.opts.now ?? (() => new Date()))().toISOString();
    return this.submit(serial, steps.map((s) => ({ serial, message: s.message, time, conf: encodeHost(s.host), ...(s.files ? { files: { ...s.files } } : {}) })), () => this.table.apply(serial, steps));
  }

  remove(serial: string, message: string): Promise<string | undefined> {
    const time = (this.opts.now ?? (() => new Date()))().toISOString();
    return this.submit(serial, [{ serial, message, time, conf: null }], () => this.table.remove(serial));
  }

  records(folder: string): ReadonlyMap<string, string> {
    return this.recordFiles.get(folder) ?? new Map();
  }

  /**
   * One change of admission records / the inventory, `message` the whole commit subject
   * (`<serial>: ...`); in etcd in one transaction comparing each key's mod revision, in git one
   * commit by the history writer. A host change of the same serial in the same tick goes in the
   * same transaction, after it, and fails with it.
   */
  applyRecords(writes: readonly RecordWrite[], message: string): Promise<string | undefined> {
    if (this.closed) return Promise.reject(new StoreError('store is closed'));
    if (this.unreachable) return Promise.reject(new StoreUnavailableError(this.unreachable));
    const i = message.indexOf(': ');
    const serial = i > 0 ? message.slice(0, i) : '';
    if (!serial || writes.length === 0 || writes.some((w) => !RECORD_FOLDERS.includes(w.folder))) return Promise.reject(new StoreError(`not a records change: ${message}`));
    const keys = writes.map((w) => this.keys.record(w.folder, w.name));
    const item: Item = {
      seq: ++this.seq,
      serial,
      hostKey: '',
      entries: [{ serial, message: message.slice(i + 2), time: (this.opts.now ?? (() => new Date()))().toISOString(), conf: null, records: writes.map((w) => ({ folder: w.folder, name: w.name, content: w.content ?? null })) }],
      conf: null,
      files: {},
      filesPrefix: '',
      fileKey: () => '',
      records: writes.map((w, n) => ({ key: keys[n]!, value: w.content ?? null })),
      recordExpects: keys.map((k) => this.lastLocal.get(k) ?? this.known.get(k) ?? 0),
      recordUndo: writes.map((w) => ({ folder: w.folder, name: w.name, prev: this.setRecord(w.folder, w.name, w.content) })),
      prevSnapshot: { host: undefined, files: undefined },
      expectHost: 0,
      resolve: () => {},
      reject: () => {},
    };
    for (const k of keys) this.lastLocal.set(k, item);
    if (this.recordsThisTick.size === 0) setImmediate(() => this.recordsThisTick.clear());
    this.recordsThisTick.set(serial, item);
    return this.enqueue(item);
  }

  private setRecord(folder: string, name: string, content: string | undefined): string | undefined {
    return setRecordFile(this.recordFiles, folder, name, content);
  }

  /** Git's commits, and on top the changes etcd has that git does not yet (`uncommitted`). */
  async history(serial: string): Promise<CommitInfo[]> {
    const { commits, position } = await this.history_.historyAt(serial);
    this.uncommitted.prune(position);
    return [...this.uncommitted.forSerial(serial), ...commits];
  }

  async confAt(serial: string, commit: string): Promise<string | undefined> {
    if (isUncommittedId(commit)) return this.uncommitted.confOf(serial, commit);
    return this.history_.confAt(serial, commit);
  }

  /** Waits (a while) until git, kept by whichever replica writes history, has every change this one made. */
  async flushHistory(): Promise<void> {
    await this.settled();
    const want = this.lastRevision;
    const deadline = Date.now() + (this.opts.historyWaitMs ?? 5000);
    while (want > 0 && Date.now() < deadline) {
      const pos = await this.history_.lastPosition().catch(() => undefined);
      if (pos && (pos.revision > want || (pos.revision === want && pos.index + 1 === pos.count))) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.probeTimer);
    await this.settled();
    await this.watcher?.cancel().catch(() => undefined);
    await this.logWatcher?.cancel().catch(() => undefined);
    await this.history_.close();
    for (const close of this.owned.reverse()) await close();
  }

  /** Closes this too when the store closes (after it; the last given first). */
  own(close: () => Promise<void> | void): void {
    this.owned.push(close);
  }

  // --- writes ---------------------------------------------------------------------------------

  private submit(serial: string, entries: LogEntry[], change: () => ReturnType<HostTable['apply']>): Promise<string | undefined> {
    if (this.closed) return Promise.reject(new StoreError('store is closed'));
    // Refused before memory changes: an answer computed from it would be one etcd never sees.
    if (this.unreachable) return Promise.reject(new StoreUnavailableError(this.unreachable));
    const before = this.table.get(serial);
    const prevSnapshot = change();
    const after = this.table.get(serial);
    const hostKey = this.keys.host(serial);
    const files = this.table.sideFiles(serial);
    const changedFiles = [...new Set(entries.flatMap((e) => Object.keys(e.files ?? {})))].filter((n) => HOST_SIDE_FILES.includes(n));
    const joins = after?.Profile && after.Profile !== before?.Profile && this.opts.limitedProfiles.has(after.Profile) ? this.keys.quota(after.Profile) : undefined;
    const item: Item = {
      seq: ++this.seq,
      serial,
      hostKey,
      entries,
      conf: after ? encodeHost(after) : null,
      files: Object.fromEntries(changedFiles.map((n) => [n, files[n]!])),
      filesPrefix: this.keys.file(serial, ''),
      fileKey: (n) => this.keys.file(serial, n),
      takeAddr: after?.InternalAddr && after.InternalAddr !== before?.InternalAddr ? this.keys.addr(after.InternalAddr) : undefined,
      freeAddr: before?.InternalAddr && before.InternalAddr !== after?.InternalAddr ? this.keys.addr(before.InternalAddr) : undefined,
      quotaKey: joins,
      prevSnapshot,
      expectHost: this.lastLocal.get(hostKey) ?? this.known.get(hostKey) ?? 0,
      quotaExpect: joins ? this.lastLocal.get(joins) ?? this.known.get(joins) ?? 0 : undefined,
      dependsOn: this.recordsThisTick.get(serial),
      resolve: () => {},
      reject: () => {},
    };
    this.lastLocal.set(hostKey, item);
    if (joins) this.lastLocal.set(joins, item);
    this.inFlight.set(serial, (this.inFlight.get(serial) ?? 0) + 1);
    return this.enqueue(item);
  }

  private enqueue(item: Item): Promise<undefined> {
    const serial = item.serial;
    const done = new Promise<void>((resolve, reject) => {
      item.resolve = resolve;
      item.reject = reject;
    });
    this.queue.push(item);
    this.running ??= this.drain();
    this.last = done.catch(() => undefined);
    return this.pending.track(serial, done).then(() => undefined);
  }

  private async drain(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
    while (this.queue.length > 0) {
      const batch = this.takeBatch();
      this.writing = batch.length;
      try {
        await this.writeBatch(batch);
      } catch (err) {
        const message = this.unreachableMessage(err as Error);
        this.unreachable = message;
        this.fail(batch, new StoreUnavailableError(`${message}; nothing was written`));
      }
      this.writing = 0;
    }
    this.running = undefined;
  }

  /** Queued changes in order, while they fit etcd's limits, each host and address at most once. */
  private takeBatch(): Item[] {
    const batch: Item[] = [];
    const serials = new Set<string>();
    const addrs = new Set<string>();
    const recordKeys = new Set<string>();
    let ops = 1;
    let compares = 0;
    let bytes = 0;
    for (const item of this.queue) {
      const itemOps = item.records ? item.records.length : (item.conf === null ? 2 : 1) + Object.keys(item.files).length + (item.takeAddr ? 1 : 0) + (item.freeAddr ? 1 : 0) + (item.quotaKey ? 1 : 0);
      const itemCompares = item.records ? item.records.length : 1 + (item.takeAddr ? 1 : 0) + (item.quotaKey ? 1 : 0);
      const itemBytes = 2 * (item.conf?.length ?? 0) + item.entries.reduce((n, e) => n + (e.conf?.length ?? 0) + 200, 0)
        + Object.values(item.files).reduce((n, f) => n + 2 * f.length, 0) + (item.records ?? []).reduce((n, r) => n + 2 * (r.value?.length ?? 0), 0);
      const clash = item.records
        ? item.records.some((r) => recordKeys.has(r.key))
        : serials.has(item.serial) || [item.takeAddr, item.freeAddr].some((a) => a && addrs.has(a));
      // A host change stays with the records change it depends on (limits have room for one more).
      const withItsRecords = item.dependsOn !== undefined && batch.at(-1) === item.dependsOn;
      if (batch.length > 0 && clash && withItsRecords && batch.length > 1) {
        // Both go in the next transaction rather than apart.
        batch.pop();
        break;
      }
      if (batch.length > 0 && (clash || (!withItsRecords && (ops + itemOps > 120 || compares + itemCompares > 120 || bytes + itemBytes > 1_200_000)))) break;
      batch.push(item);
      if (item.records) for (const r of item.records) recordKeys.add(r.key);
      else serials.add(item.serial);
      for (const a of [item.takeAddr, item.freeAddr]) if (a) addrs.add(a);
      ops += itemOps;
      compares += itemCompares;
      bytes += itemBytes;
    }
    this.queue.splice(0, batch.length);
    return batch;
  }

  private async writeBatch(batch: Item[]): Promise<void> {
    const resolved = batch.map((item) => ({
      item,
      expectHost: this.resolveExpect(item.expectHost),
      quotaExpect: item.quotaExpect === undefined ? undefined : this.resolveExpect(item.quotaExpect, batch),
      recordExpect: item.recordExpects?.map((e) => this.resolveExpect(e) ?? 0),
    }));
    const { request, compares } = buildTxn(this.keys.log, resolved, encodeLog(batch.flatMap((i) => i.entries)));
    const res = await this.opts.client.kv.txn(request);
    this.unreachable = undefined;
    const revision = Number(res.header!.revision);
    if (res.succeeded) {
      for (const item of batch) this.succeed(item, revision);
      this.opts.observer?.batchWritten?.(batch.length);
      return;
    }
    const failed = conflictsOf(compares, res);
    // Nothing identified (should not happen): fail the whole batch rather than loop.
    const conflicting = failed.length > 0 ? failed as Item[] : batch;
    // A records change and the host change that depends on it fail together (an approval without its host, or the reverse, never stands).
    for (const i of batch) {
      if (!i.dependsOn) continue;
      const [one, other] = [conflicting.includes(i), conflicting.includes(i.dependsOn)];
      if (one && !other && batch.includes(i.dependsOn)) conflicting.push(i.dependsOn);
      if (other && !one) conflicting.push(i);
    }
    this.fail(conflicting, new StoreConflictError('changed on another mayu replica at the same time; nothing was written, retry'));
    // The others go again, ahead of what queued meanwhile.
    this.queue.unshift(...batch.filter((i) => !i.failed));
  }

  /** A revision to compare with; an earlier change of this batch (quota counters) needs none. */
  private resolveExpect(e: Expect, batch?: Item[]): number | undefined {
    if (typeof e === 'number') return e;
    if (e.revision !== undefined) return e.revision;
    if (batch?.includes(e)) return undefined;
    throw new Error(`internal: change #${e.seq} compared against one not yet written`);
  }

  private succeed(item: Item, revision: number): void {
    item.revision = revision;
    this.lastRevision = Math.max(this.lastRevision, revision);
    if (item.records) {
      for (const r of item.records) {
        if (r.value === null) this.known.delete(r.key);
        else this.known.set(r.key, revision);
        if (this.lastLocal.get(r.key) === item) this.lastLocal.delete(r.key);
      }
      this.rereadStaleRecords();
      item.resolve();
      return;
    }
    if (item.conf === null) this.known.delete(item.hostKey);
    else this.known.set(item.hostKey, revision);
    if (item.quotaKey) this.known.set(item.quotaKey, revision);
    for (const key of [item.hostKey, item.quotaKey]) if (key && this.lastLocal.get(key) === item) this.lastLocal.delete(key);
    this.done(item.serial);
    item.resolve();
  }

  /** Rolls back and rejects these changes and every queued one computed on top of them. */
  private fail(items: Item[], err: Error): void {
    const failed = new Set(items);
    for (const i of items) i.failed = true;
    for (const q of this.queue) {
      const dependsOnFailed = [q.expectHost, q.quotaExpect, q.dependsOn, ...(q.recordExpects ?? [])].some((e) => typeof e === 'object' && e.failed);
      if (dependsOnFailed) {
        q.failed = true;
        failed.add(q);
      }
    }
    this.queue = this.queue.filter((q) => !q.failed);
    const newestFirst = [...failed].sort((a, b) => b.seq - a.seq);
    for (const item of newestFirst) {
      if (item.recordUndo) for (const u of [...item.recordUndo].reverse()) this.setRecord(u.folder, u.name, u.prev);
      else this.table.restore(item.serial, item.prevSnapshot);
    }
    for (const item of failed) {
      for (const key of item.records ? item.records.map((r) => r.key) : [item.hostKey, item.quotaKey]) {
        if (!key) continue;
        let e: Expect | undefined = this.lastLocal.get(key);
        while (typeof e === 'object' && e.failed) e = expectOf(e, key);
        if (typeof e === 'object' && e.revision === undefined) this.lastLocal.set(key, e);
        else this.lastLocal.delete(key);
      }
    }
    for (const item of newestFirst) {
      if (item.records) {
        // Another replica's change won: memory takes etcd's.
        for (const r of item.records) this.staleRecords.add(r.key);
      } else {
        this.done(item.serial);
      }
      item.reject(err);
    }
    this.rereadStaleRecords();
  }

  /** Record keys changed elsewhere while ours were in flight: memory takes etcd's once none of ours is. */
  private rereadStaleRecords(): void {
    for (const key of [...this.staleRecords]) {
      if (this.lastLocal.has(key)) continue;
      this.staleRecords.delete(key);
      void this.opts.client.kv.range({ key: Buffer.from(key) }).then((res) => {
        if (this.lastLocal.has(key)) return void this.staleRecords.add(key);
        this.takeRecord(key, res.kvs[0]);
      }, () => this.staleRecords.add(key));
    }
  }

  /** A record key as etcd has it (undefined: absent) into memory, if it is one mayu writes. */
  private takeRecord(key: string, kv: IKeyValue | undefined): void {
    const p = this.keys.parse(key);
    if (p.kind !== 'record') return;
    const rev = kv ? Number(kv.mod_revision) : 0;
    if (kv && rev <= (this.known.get(key) ?? 0)) return;
    const text = kv?.value.toString();
    if (text !== undefined && !this.validRecord(key, p.folder, p.name, text)) {
      this.setRecord(p.folder, p.name, undefined);
      this.known.set(key, rev);
      return;
    }
    this.setRecord(p.folder, p.name, text);
    if (kv) this.known.set(key, rev);
    else this.known.delete(key);
  }

  /** Admission records must be mayu's (decodable, named after their serial); the inventory is judged by the admission service. */
  private validRecord(key: string, folder: string, name: string, text: string): boolean {
    if (folder !== ADMISSION_FOLDER) return folder === CONFIG_FOLDER && name === INVENTORY_FILE;
    try {
      const record = decodeRecord(text);
      if (recordFileName(record.Serial) !== name) throw new Error(`Serial ${JSON.stringify(record.Serial)} does not match the key`);
      return true;
    } catch (err) {
      this.opts.onBadKey?.(key, err as Error);
      return false;
    }
  }

  private done(serial: string): void {
    const n = (this.inFlight.get(serial) ?? 1) - 1;
    if (n > 0) {
      this.inFlight.set(serial, n);
      return;
    }
    this.inFlight.delete(serial);
    const staleAt = this.stale.get(serial);
    this.stale.delete(serial);
    if (staleAt !== undefined && staleAt > (this.known.get(this.keys.host(serial)) ?? 0)) {
      void this.reread(serial).catch(() => this.stale.set(serial, Number.MAX_SAFE_INTEGER));
    }
  }

  // --- reads from etcd ------------------------------------------------------------------------

  private async initCluster(): Promise<void> {
    const { client } = this.opts;
    const out = await client.get(this.keys.migratedOut).string();
    if (out !== null) {
      throw new StoreError(`the cluster under ${this.keys.prefix} was migrated back into a single-node cluster directory (mayu migrate --to git: ${out}): serve that directory with single-node mayu, or delete ${this.keys.migratedOut} to use etcd again`);
    }
    const text = await client.get(this.keys.cluster).string();
    if (text !== null) {
      this.cluster = parseClusterJson(text);
      return;
    }
    const token = Buffer.from(this.opts.randomBytes(16)).toString('hex');
    const res = await client.if(this.keys.cluster, 'Create', '==', 0)
      .then(client.put(this.keys.cluster).value(encodeClusterJson({ DefaultEtcdClusterToken: token })), client.put(this.keys.historyStart).value('1'))
      .commit();
    // Another replica made it first: take theirs.
    this.cluster = res.succeeded ? { DefaultEtcdClusterToken: token } : parseClusterJson((await client.get(this.keys.cluster).string())!);
  }

  /** Every key under the prefix at one revision, a page at a time; memory becomes exactly that. */
  private async loadAll(): Promise<number> {
    const start = Buffer.from(this.opts.prefix);
    const end = prefixEnd(start);
    let key = start;
    let revision: string | undefined;
    const hosts = new Map<string, { host: Host; rev: number }>();
    const files = new Map<string, Record<string, string>>();
    const quotas = new Map<string, number>();
    const records = new Map<string, IKeyValue>();
    for (;;) {
      const res = await this.opts.client.kv.range({ key, range_end: end, limit: 500, revision: revision ?? 0 });
      revision ??= String(res.header!.revision);
      for (const kv of res.kvs) {
        const k = kv.key.toString();
        const p = this.keys.parse(k);
        if (p.kind === 'host') {
          const host = this.decode(k, p.serial, kv.value.toString());
          if (host) hosts.set(p.serial, { host, rev: Number(kv.mod_revision) });
        } else if (p.kind === 'file' && HOST_SIDE_FILES.includes(p.name)) {
          files.set(p.serial, { ...files.get(p.serial), [p.name]: kv.value.toString() });
        } else if (p.kind === 'quota') {
          quotas.set(k, Number(kv.mod_revision));
        } else if (p.kind === 'record') {
          if (this.validRecord(k, p.folder, p.name, kv.value.toString())) records.set(k, kv);
          // Not served, but a change of ours compares against what is there.
          else this.known.set(k, Number(kv.mod_revision));
        }
      }
      if (!res.more || res.kvs.length === 0) break;
      key = Buffer.concat([res.kvs.at(-1)!.key, Buffer.from([0])]);
    }
    // Serials with changes in flight are read again once those are done.
    for (const serial of new Set([...this.table.values()].map((h) => h.Serial!).concat([...hosts.keys()]))) {
      if (this.inFlight.has(serial)) {
        this.stale.set(serial, Number.MAX_SAFE_INTEGER);
        continue;
      }
      const h = hosts.get(serial);
      this.table.restore(serial, { host: h?.host, files: h ? files.get(serial) : undefined });
      if (h) this.known.set(this.keys.host(serial), h.rev);
      else this.known.delete(this.keys.host(serial));
    }
    for (const [k, rev] of quotas) this.known.set(k, Math.max(this.known.get(k) ?? 0, rev));
    // Records: etcd's, except keys with a change of ours in flight (read again after it).
    const recordKeys = new Set([...records.keys(), ...[...this.recordFiles].flatMap(([folder, files]) => [...files.keys()].map((n) => this.keys.record(folder, n)))]);
    for (const k of recordKeys) {
      if (this.lastLocal.has(k)) {
        this.staleRecords.add(k);
        continue;
      }
      const p = this.keys.parse(k);
      if (p.kind !== 'record') continue;
      const kv = records.get(k);
      this.setRecord(p.folder, p.name, kv?.value.toString());
      if (kv) this.known.set(k, Number(kv.mod_revision));
      else this.known.delete(k);
    }
    return Number(revision);
  }

  private async watchFrom(revision: number): Promise<void> {
    const watcher = await fragmented(this.opts.client.watch().prefix(this.opts.prefix).startRevision(String(revision))).create();
    this.watcher = watcher;
    watcher.on('data', (res: IWatchResponse) => this.onEvents(res));
    let broken = false;
    const onBroken = (err: Error, reason?: string) => {
      if (this.closed || broken) return;
      broken = true;
      if (reason) this.unreachable ??= reason;
      void watcher.cancel().catch(() => undefined);
      void this.relist();
    };
    // Compacted past where the watch was, or cancelled by etcd: read everything again.
    watcher.on('error', (err: Error) => onBroken(err, `etcd watch failed (${err.message}); reading all hosts again`));
    // npm etcd3 resumes a broken stream from the revision of its last answer's header, which in a
    // catch-up is etcd's newest, not that of the last event sent: read everything again instead
    // (serving meanwhile; etcd unreachable shows in the probe).
    watcher.on('disconnected', (err?: Error) => onBroken(err ?? new Error('stream ended')));
  }

  /**
   * The change log from git's last trailer on, for history answers while git trails. When etcd
   * compacted part of it, from now on (those changes show once the writer commits them, if it can).
   */
  private async watchLog(): Promise<void> {
    const { client } = this.opts;
    const position = await this.history_.lastPosition().catch(() => undefined);
    const from = resumePoint(position, Number(await client.get(this.keys.historyStart).string() ?? '1'));
    const start = await client.kv.range({ key: Buffer.from(this.keys.log), revision: from.revision, count_only: true })
      .then(() => from, async () => ({ revision: Number((await client.kv.range({ key: Buffer.from(this.keys.log), count_only: true })).header!.revision) + 1, skip: 0 }));
    this.uncommitted.clear(start !== from);
    // Cut catch-ups (a backlog past grpc's message limit) and resume after the last event seen.
    const watcher = resumeAfterLastEvent(fragmented(client.watch().key(this.keys.log).startRevision(String(start.revision))).watcher());
    this.logWatcher = watcher;
    watcher.on('put', (kv: IKeyValue) => {
      const revision = Number(kv.mod_revision);
      try {
        this.uncommitted.add(revision, decodeLog(kv.value.toString()), revision === start.revision ? start.skip : 0);
      } catch {
        // Reported by the prefix watch; never shown as mayu's.
      }
    });
    watcher.on('error', () => {
      if (this.closed) return;
      void watcher.cancel().catch(() => undefined);
      setTimeout(() => void this.watchLog().catch(() => undefined), 1000).unref();
    });
  }

  private async relist(): Promise<void> {
    while (!this.closed) {
      try {
        const rev = await this.loadAll();
        await this.watchFrom(rev + 1);
        this.unreachable = undefined;
        return;
      } catch (err) {
        this.unreachable = this.unreachableMessage(err as Error);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private onEvents(res: IWatchResponse): void {
    const messages = new Map<string, string[]>();
    const bySerial = new Map<string, { host?: IKeyValue; deleted?: boolean; files: IKeyValue[]; deletedFiles: string[]; rev: number }>();
    for (const ev of res.events) {
      const k = ev.kv.key.toString();
      const rev = Number(ev.kv.mod_revision);
      if (k === this.keys.log && ev.type === 'Put') {
        try {
          for (const e of decodeLog(ev.kv.value.toString())) messages.set(e.serial, [...(messages.get(e.serial) ?? []), e.message]);
        } catch (err) {
          this.opts.onBadKey?.(k, err as Error);
        }
        continue;
      }
      const p = this.keys.parse(k);
      if (p.kind === 'quota') {
        this.known.set(k, Math.max(this.known.get(k) ?? 0, rev));
        continue;
      }
      if (p.kind === 'record') {
        if (rev <= (this.known.get(k) ?? 0)) continue;
        if (this.lastLocal.has(k)) this.staleRecords.add(k);
        else if (ev.type === 'Put') this.takeRecord(k, ev.kv);
        else {
          this.setRecord(p.folder, p.name, undefined);
          this.known.delete(k);
        }
        continue;
      }
      if (p.kind !== 'host' && p.kind !== 'file') continue;
      const entry = bySerial.get(p.serial) ?? { files: [], deletedFiles: [], rev };
      entry.rev = Math.max(entry.rev, rev);
      if (p.kind === 'host') {
        if (ev.type === 'Put') entry.host = ev.kv;
        else entry.deleted = true;
      } else if (HOST_SIDE_FILES.includes(p.name)) {
        if (ev.type === 'Put') entry.files.push(ev.kv);
        else entry.deletedFiles.push(p.name);
      }
      bySerial.set(p.serial, entry);
    }
    for (const [serial, e] of bySerial) {
      const hostKey = this.keys.host(serial);
      // Our own change, already in memory.
      if (e.rev <= (this.known.get(hostKey) ?? 0)) continue;
      if (this.inFlight.has(serial)) {
        this.stale.set(serial, Math.max(this.stale.get(serial) ?? 0, e.rev));
        continue;
      }
      const before = this.table.get(serial);
      if (e.deleted && !e.host) {
        this.table.remove(serial);
        this.known.delete(hostKey);
      } else {
        const host = e.host ? this.decode(hostKey, serial, e.host.value.toString()) : before;
        if (!host) continue;
        const files: Record<string, string> = { ...this.table.sideFiles(serial) };
        for (const name of e.deletedFiles) delete files[name];
        for (const kv of e.files) files[kv.key.toString().slice(this.keys.file(serial, '').length)] = kv.value.toString();
        this.table.restore(serial, { host, files: Object.keys(files).length > 0 ? files : undefined });
        this.known.set(hostKey, e.rev);
      }
      this.opts.onExternalChange?.({ serial, before, after: this.table.get(serial), messages: messages.get(serial) ?? [] });
    }
  }

  /** One host as etcd has it now (after a change of ours lost to another replica's). */
  private async reread(serial: string): Promise<void> {
    const [hostRes, filesRes] = await Promise.all([
      this.opts.client.kv.range({ key: Buffer.from(this.keys.host(serial)) }),
      this.opts.client.kv.range({ key: Buffer.from(this.keys.file(serial, '')), range_end: prefixEnd(Buffer.from(this.keys.file(serial, ''))) }),
    ]);
    if (this.inFlight.has(serial)) {
      this.stale.set(serial, Number.MAX_SAFE_INTEGER);
      return;
    }
    const kv = hostRes.kvs[0];
    const rev = kv ? Number(kv.mod_revision) : 0;
    if (kv && rev <= (this.known.get(this.keys.host(serial)) ?? 0)) return;
    const before = this.table.get(serial);
    const host = kv && this.decode(this.keys.host(serial), serial, kv.value.toString());
    const files: Record<string, string> = {};
    for (const f of filesRes.kvs) {
      const name = f.key.toString().slice(this.keys.file(serial, '').length);
      if (HOST_SIDE_FILES.includes(name)) files[name] = f.value.toString();
    }
    this.table.restore(serial, { host: host || undefined, files: host && Object.keys(files).length > 0 ? files : undefined });
    if (host) this.known.set(this.keys.host(serial), rev);
    else this.known.delete(this.keys.host(serial));
    this.opts.onExternalChange?.({ serial, before, after: this.table.get(serial), messages: [] });
  }

  /** A host key's value as a host; anything else is reported and left out. */
  private decode(key: string, serial: string, text: string): Host | undefined {
    try {
      const host = decodeHost(JSON.parse(text));
      if ((host.Serial ?? '') !== serial) throw new Error(`Serial ${JSON.stringify(host.Serial)} does not match the key`);
      return host;
    } catch (err) {
      this.opts.onBadKey?.(key, err as Error);
      return undefined;
    }
  }

  private probe(): void {
    if (this.closed) return;
    this.probeTimer = setTimeout(async () => {
      try {
        await this.opts.client.get(this.keys.cluster).string();
        if (this.watcher) this.unreachable = undefined;
      } catch (err) {
        this.unreachable = this.unreachableMessage(err as Error);
      }
      // Changes git has by now are dropped even when no history is read (memory stays small).
      if (this.uncommitted.size > 1000) this.uncommitted.prune(await this.history_.headPosition().catch(() => undefined));
      this.probe();
    }, this.opts.probeIntervalMs ?? 1000);
    this.probeTimer.unref();
  }

  private unreachableMessage(err: Error): string {
    return `etcd at ${this.opts.endpoints.join(', ')} unreachable: ${err.message}`;
  }
}

/** What a change waits on for this key (records changes: one expectation per key). */
function expectOf(item: Item, key: string): Expect | undefined {
  if (item.records) return item.recordExpects![item.records.findIndex((r) => r.key === key)];
  return key === item.hostKey ? item.expectHost : item.quotaExpect;
}

export type { SideFiles };
