import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { decodeHost, encodeHost } from '../core/host.ts';
import type { Step } from '../core/host-changes.ts';
import { BatchWriter } from './batch-writer.ts';
import { PendingBySerial } from './pending-by-serial.ts';
import { fsyncPath, writeFileAtomic } from '../fs/durable-fs.ts';
import { NotStoredError } from '../fs/write-errors.ts';
import { encodeClusterJson } from './cluster-json.ts';
import { HostTable, type HostSnapshot } from './host-table.ts';
import { HOST_SIDE_FILES, RECORD_FOLDERS, StoreError, type ClusterConfig, type CommitInfo, type HostStore, type RecordWrite, type StoreObserver } from './store.ts';

// --no-git: the same folder layout without history. Each change replaces conf.json atomically
// and durably; there is no audit trail, so history() refuses. A removed host's folder is first
// renamed to a hidden name (one atomic step, skipped at load), then deleted.

const REMOVED_PREFIX = '.removed-';

interface Write {
  serial: string;
  /** undefined: remove the host's folder. */
  content: string | undefined;
  /** Side files the change wrote (name → content). */
  files?: Readonly<Record<string, string>>;
  undo?: { prev: HostSnapshot };
}

export class FileStore implements HostStore {
  readonly kind = 'files' as const;
  private readonly table = new HostTable();
  private readonly writer: BatchWriter<Write>;
  private readonly pending = new PendingBySerial();
  private cluster: ClusterConfig = { DefaultEtcdClusterToken: '' };
  /** Files of the RECORD_FOLDERS (folder → name → text), as applied so far. */
  private readonly recordFiles = new Map<string, Map<string, string>>();
  /** Record writes, one after the other (they are rare: admission decisions). */
  private recordsWritten: Promise<unknown> = Promise.resolve();

  private constructor(private readonly dir: string, observer: StoreObserver) {
    // A failed write is a 507 (NotStoredError). Caveat: in a batch of several hosts, a host whose
    // conf.json was already replaced keeps the new file on disk while memory rolls back.
    const write = (items: Write[]) => this.write(items).catch((err: unknown) => {
      throw new NotStoredError(err);
    });
    this.writer = new BatchWriter(write, (items) => {
      for (const i of items) if (i.undo) this.table.restore(i.serial, i.undo.prev);
    }, observer.batchWritten, observer.batchFailed);
  }

  static async open(opts: { dir: string; randomBytes: (n: number) => Uint8Array; observer?: StoreObserver }): Promise<FileStore> {
    const store = new FileStore(opts.dir, opts.observer ?? {});
    await mkdir(opts.dir, { recursive: true });
    try {
      const raw = JSON.parse(await readFile(path.join(opts.dir, 'cluster.json'), 'utf8')) as { Config?: ClusterConfig };
      store.cluster = { DefaultEtcdClusterToken: raw.Config?.DefaultEtcdClusterToken ?? '' };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new StoreError(`${opts.dir}/cluster.json: ${(err as Error).message}`);
    }
    if (!store.cluster.DefaultEtcdClusterToken) {
      store.cluster = { DefaultEtcdClusterToken: Buffer.from(opts.randomBytes(16)).toString('hex') };
      await writeFileAtomic(path.join(opts.dir, 'cluster.json'), encodeClusterJson(store.cluster));
    }
    for (const folder of RECORD_FOLDERS) {
      const files = new Map<string, string>();
      const names = await readdir(path.join(opts.dir, folder), { withFileTypes: true }).catch(() => []);
      for (const e of names) if (e.isFile() && !e.name.startsWith('.')) files.set(e.name, await readFile(path.join(opts.dir, folder, e.name), 'utf8'));
      store.recordFiles.set(folder, files);
    }
    for (const entry of await readdir(opts.dir, { withFileTypes: true })) {
      if (entry.isDirectory() && entry.name.startsWith(REMOVED_PREFIX)) await rm(path.join(opts.dir, entry.name), { recursive: true, force: true });
      if (!entry.isDirectory() || entry.name.startsWith('.') || entry.name.startsWith('_')) continue;
      const file = path.join(opts.dir, entry.name, 'conf.json');
      try {
        const host = decodeHost(JSON.parse(await readFile(file, 'utf8')));
        const files: Record<string, string> = {};
        for (const name of HOST_SIDE_FILES) {
          const text = await readFile(path.join(opts.dir, entry.name, name), 'utf8').catch((err: NodeJS.ErrnoException) => {
            if (err.code === 'ENOENT') return undefined;
            throw err;
          });
          if (text !== undefined) files[name] = text;
        }
        store.table.load(entry.name, host, files);
      } catch (err) {
        throw new StoreError(`${file}: ${(err as Error).message}`);
      }
    }
    return store;
  }

  get(serial: string) { return this.table.get(serial); }
  all() { return this.table.all(); }
  scan() { return this.table.values(); }
  size() { return this.table.size(); }
  index() { return this.table.index; }
  sideFile(serial: string, name: string) { return this.table.sideFiles(serial)[name]; }
  clusterConfig() { return { ...this.cluster }; }
  settled() { return this.writer.settled(); }
  /** No history: durable is all there is. */
  flushHistory() { return this.settled(); }
  settledFor(serial: string) { return this.pending.settled(serial); }
  writeQueueDepth() { return this.writer.depth; }

  /** No commits without git: resolves with undefined. */
  async apply(serial: string, steps: readonly Step[]): Promise<undefined> {
    const last = steps.at(-1);
    if (!last) {
      await this.settled();
      return undefined;
    }
    const prev = this.table.apply(serial, steps);
    const files = steps.some((s) => s.files) ? Object.assign({}, ...steps.map((s) => s.files ?? {})) as Record<string, string> : undefined;
    await this.pending.track(serial, this.writer.submit({ serial, content: encodeHost(last.host), files, undo: { prev } }));
    return undefined;
  }

  /** No commits without git: resolves with undefined, as apply() does. */
  async remove(serial: string): Promise<undefined> {
    const prev = this.table.remove(serial);
    await this.pending.track(serial, this.writer.submit({ serial, content: undefined, undo: { prev } }));
    return undefined;
  }

  records(folder: string): ReadonlyMap<string, string> {
    return this.recordFiles.get(folder) ?? new Map();
  }

  /** Without git there is no commit: the files are written durably; memory changes at once, rolled back if the write fails. */
  async applyRecords(writes: readonly RecordWrite[]): Promise<undefined> {
    const undo: [RecordWrite, string | undefined][] = [];
    for (const w of writes) {
      if (!RECORD_FOLDERS.includes(w.folder)) throw new StoreError(`${w.folder}: not a record folder`);
      let files = this.recordFiles.get(w.folder);
      if (!files) this.recordFiles.set(w.folder, (files = new Map()));
      undo.push([w, files.get(w.name)]);
      if (w.content === undefined) files.delete(w.name);
      else files.set(w.name, w.content);
    }
    const write = this.recordsWritten.then(async () => {
      for (const w of writes) {
        const file = path.join(this.dir, w.folder, w.name);
        if (w.content === undefined) await rm(file, { force: true });
        else {
          await mkdir(path.dirname(file), { recursive: true });
          await writeFileAtomic(file, w.content);
        }
        await fsyncPath(path.dirname(file));
      }
    });
    this.recordsWritten = write.catch(() => undefined);
    try {
      await write;
    } catch (err) {
      for (const [w, prev] of undo.reverse()) {
        const files = this.recordFiles.get(w.folder)!;
        if (prev === undefined) files.delete(w.name);
        else files.set(w.name, prev);
      }
      throw new NotStoredError(err);
    }
    return undefined;
  }

  async history(): Promise<CommitInfo[]> {
    throw new StoreError('no history: mayu runs with --no-git');
  }

  async confAt(): Promise<string | undefined> {
    throw new StoreError('no history: mayu runs with --no-git');
  }

  async close(): Promise<void> {
    await this.settled();
  }

  private async write(items: Write[]): Promise<void> {
    const latest = new Map<string, string | undefined>();
    const sides = new Map<string, Record<string, string>>();
    for (const i of items) {
      latest.set(i.serial, i.content);
      if (i.content === undefined) sides.delete(i.serial);
      else if (i.files) sides.set(i.serial, { ...sides.get(i.serial), ...i.files });
    }
    let folderChanged = false;
    await Promise.all([...latest].map(async ([serial, content]) => {
      if (content === undefined) {
        const hidden = path.join(this.dir, `${REMOVED_PREFIX}${serial}`);
        await rm(hidden, { recursive: true, force: true });
        await rename(path.join(this.dir, serial), hidden);
        folderChanged = true; // the rename must be durable before the answer: fsync the folder below
        await rm(hidden, { recursive: true, force: true });
        return;
      }
      const created = (await mkdir(path.join(this.dir, serial), { recursive: true })) !== undefined;
      folderChanged ||= created;
      try {
        // conf.json first: a crash before the side file leaves a state change without its
        // clearing of a failure, which readers ignore anyway (core currentFailure checks the state).
        await writeFileAtomic(path.join(this.dir, serial, 'conf.json'), content);
        for (const [name, text] of Object.entries(sides.get(serial) ?? {})) await writeFileAtomic(path.join(this.dir, serial, name), text);
      } catch (err) {
        // A new host's folder without conf.json (disk full) would stop the next start.
        if (created) await rm(path.join(this.dir, serial), { recursive: true, force: true }).catch(() => undefined);
        throw err;
      }
    }));
    // A new host folder is only durable once the cluster folder's entry for it is.
    if (folderChanged) await fsyncPath(this.dir);
  }
}
