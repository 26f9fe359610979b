import { mkdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import git from 'isomorphic-git';
import { decodeHost, encodeHost, type Host } from '../core/host.ts';
import type { Step } from '../core/host-changes.ts';
import { BatchWriter } from './batch-writer.ts';
import { DurableFs, writeFileAtomic } from './durable-fs.ts';
import { compactLooseObjects, listLooseObjects, type CompactionResult } from './git-compaction.ts';
import { GitHistory } from './git-history.ts';
import { HostTable } from './host-table.ts';
import { hostCommitMessage, StoreError, type ClusterConfig, type CommitInfo, type HostStore } from './store.ts';

// The cluster directory as a git repo, written with isomorphic-git's plumbing: objects for the
// changed host only, the root tree rebuilt from entries kept in memory, and the branch ref
// replaced atomically after the batch's objects are fsync'd. The files in the working tree
// (<serial>/conf.json, cluster.json) mirror HEAD for operators; git's index is not maintained.

const BRANCH = 'master';
const REF = `refs/heads/${BRANCH}`;
const CLUSTER_FILE = 'cluster.json';
const HOST_FILE = 'conf.json';
/** Temp files of the working-tree mirror live here, so a kill leaves none among the hosts. */
const MIRROR_TMP = 'mayu-tmp';

export interface GitStoreOptions {
  dir: string;
  author?: { name: string; email: string };
  /** 16 random bytes; used for the default etcd token of a new cluster. */
  randomBytes: (n: number) => Uint8Array;
  now?: () => Date;
  /** Pack loose objects once this many have piled up (4 per commit); 0 turns it off. */
  compactAfterLooseObjects?: number;
  /** Told about background compactions and their failures (they never fail a change). */
  onCompaction?: (result: CompactionResult | Error) => void;
}

interface TreeEntry {
  mode: string;
  path: string;
  oid: string;
  type: 'blob' | 'tree';
}

interface WriteItem {
  message: string;
  /** Serial, or undefined for cluster.json. */
  serial?: string;
  content: string;
  /** On the first step of an apply(): the host to restore if the write fails. */
  undo?: { prev: Host | undefined };
}

export function encodeClusterJson(config: ClusterConfig): string {
  return JSON.stringify({ GitStore: true, Config: config }, null, 2);
}

export class GitStore implements HostStore {
  readonly kind = 'git' as const;
  private readonly table = new HostTable();
  private readonly fs = new DurableFs();
  private readonly root = new Map<string, TreeEntry>();
  private readonly writer: BatchWriter<WriteItem>;
  private readonly history_: GitHistory;
  private head: string | undefined;
  private looseObjects = 0;
  private compaction: Promise<CompactionResult> | undefined;
  private cluster: ClusterConfig = { DefaultEtcdClusterToken: '' };
  private closed = false;

  private constructor(private readonly opts: Required<GitStoreOptions>) {
    this.writer = new BatchWriter((items) => this.writeBatch(items), (items) => this.rollback(items));
    this.history_ = new GitHistory(this.fs.client, opts.dir);
  }

  static async open(options: GitStoreOptions): Promise<GitStore> {
    const store = new GitStore({
      author: options.author ?? { name: 'mayu commiter', email: 'mayu@localhost' },
      now: options.now ?? (() => new Date()),
      dir: options.dir,
      randomBytes: options.randomBytes,
      compactAfterLooseObjects: options.compactAfterLooseObjects ?? 4000,
      onCompaction: options.onCompaction ?? (() => {}),
    });
    await store.load();
    return store;
  }

  get dir(): string {
    return this.opts.dir;
  }

  get(serial: string) { return this.table.get(serial); }
  all() { return this.table.all(); }
  scan() { return this.table.values(); }
  size() { return this.table.size(); }
  clusterConfig() { return { ...this.cluster }; }
  settled() { return this.writer.settled(); }

  apply(serial: string, steps: readonly Step[]): Promise<void> {
    if (this.closed) return Promise.reject(new StoreError('store is closed'));
    if (steps.length === 0) return this.settled();
    const prev = this.table.apply(serial, steps);
    const writes = steps.map((s, i) => this.writer.submit({
      serial,
      message: hostCommitMessage(serial, s.message),
      content: encodeHost(s.host),
      undo: i === 0 ? { prev } : undefined,
    }));
    return Promise.all(writes).then(() => undefined);
  }

  history(serial: string): Promise<CommitInfo[]> {
    return this.history_.forSerial(serial);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.settled();
    await this.compaction?.catch(() => undefined);
  }

  /** Packs every loose object now (on demand); waits for a running compaction first. */
  async compact(): Promise<CompactionResult> {
    await this.compaction?.catch(() => undefined);
    await this.settled();
    return this.startCompaction();
  }

  private startCompaction(): Promise<CompactionResult> {
    const run = compactLooseObjects(path.join(this.opts.dir, '.git'), this.head);
    this.looseObjects = 0;
    this.compaction = run.finally(() => {
      this.compaction = undefined;
    });
    return this.compaction;
  }

  /** Called by the writer after each batch: compaction runs beside it, never blocking a change. */
  private maybeCompact(written: number): void {
    this.looseObjects += written;
    const limit = this.opts.compactAfterLooseObjects;
    if (limit <= 0 || this.looseObjects < limit || this.compaction || this.closed) return;
    this.startCompaction().then(this.opts.onCompaction, (err: Error) => this.opts.onCompaction(err));
  }

  private gitArgs() {
    return { fs: this.fs.client, dir: this.opts.dir };
  }

  private async load(): Promise<void> {
    const { dir } = this.opts;
    await mkdir(dir, { recursive: true });
    const fresh = !(await exists(path.join(dir, '.git')));
    if (fresh) {
      await git.init({ ...this.gitArgs(), defaultBranch: BRANCH });
      await mkdir(path.join(dir, '.git', MIRROR_TMP));
      await this.commitCluster('initial commit');
    } else {
      // No writer runs yet: temp files a killed process left behind can go.
      this.looseObjects = (await listLooseObjects(path.join(dir, '.git'), true)).length;
      await rm(path.join(dir, '.git', REF + '.lock'), { force: true });
      await rm(path.join(dir, '.git', MIRROR_TMP), { recursive: true, force: true });
      await mkdir(path.join(dir, '.git', MIRROR_TMP));
      await this.loadHead();
    }
    if (!this.cluster.DefaultEtcdClusterToken) {
      const token = Buffer.from(this.opts.randomBytes(16)).toString('hex');
      this.cluster = { DefaultEtcdClusterToken: token };
      await this.commitCluster(`Set default etcd cluster to '${token}'`);
    }
  }

  private async commitCluster(message: string): Promise<void> {
    await this.writer.submit({ message, content: encodeClusterJson(this.cluster) });
  }

  private async loadHead(): Promise<void> {
    let head: string;
    try {
      head = await git.resolveRef({ ...this.gitArgs(), ref: 'HEAD' });
    } catch (err) {
      throw new StoreError(`${this.opts.dir}: not a mayu cluster repo (no HEAD commit): ${(err as Error).message}`);
    }
    const cache = {};
    const { commit } = await git.readCommit({ ...this.gitArgs(), oid: head, cache });
    const { tree } = await git.readTree({ ...this.gitArgs(), oid: commit.tree, cache });
    for (const e of tree) this.root.set(e.path, { mode: e.mode, path: e.path, oid: e.oid, type: e.type as TreeEntry['type'] });
    const clusterEntry = this.root.get(CLUSTER_FILE);
    if (clusterEntry) {
      const { blob } = await git.readBlob({ ...this.gitArgs(), oid: clusterEntry.oid, cache });
      this.cluster = parseClusterJson(Buffer.from(blob).toString('utf8'));
    }
    const hostDirs = tree.filter((e) => e.type === 'tree');
    await forEachLimit(hostDirs, 32, async (e) => {
      const { blob } = await git.readBlob({ ...this.gitArgs(), oid: e.oid, filepath: HOST_FILE, cache });
      const text = Buffer.from(blob).toString('utf8');
      try {
        this.table.load(e.path, decodeHost(JSON.parse(text)));
      } catch (err) {
        throw new StoreError(`${e.path}/${HOST_FILE} at ${head}: ${(err as Error).message}`);
      }
    });
    this.head = head;
    this.history_.setBase(head);
  }

  private async writeBatch(items: WriteItem[]): Promise<void> {
    const startRoot = new Map(this.root);
    const startHead = this.head;
    const args = this.gitArgs();
    try {
      for (const item of items) {
        const blobOid = await git.writeBlob({ ...args, blob: Buffer.from(item.content) });
        if (item.serial === undefined) {
          this.root.set(CLUSTER_FILE, { mode: '100644', path: CLUSTER_FILE, oid: blobOid, type: 'blob' });
        } else {
          const hostTree = await git.writeTree({ ...args, tree: [{ mode: '100644', path: HOST_FILE, oid: blobOid, type: 'blob' }] });
          this.root.set(item.serial, { mode: '040000', path: item.serial, oid: hostTree, type: 'tree' });
        }
        const tree = await git.writeTree({ ...args, tree: [...this.root.values()] });
        const when = this.opts.now();
        const sig = { ...this.opts.author, timestamp: Math.floor(when.getTime() / 1000), timezoneOffset: 0 };
        this.head = await git.writeCommit({
          ...args,
          commit: { message: `${item.message}\n`, tree, parent: this.head ? [this.head] : [], author: sig, committer: sig },
        });
        this.history_.record(this.head, item.message, sig.timestamp);
      }
      await this.fs.flush();
      // `<ref>.lock` as git names it: git never reads a *.lock file as a branch.
      const ref = path.join(this.opts.dir, '.git', REF);
      await writeFileAtomic(ref, `${this.head}\n`, true, `${ref}.lock`);
    } catch (err) {
      this.root.clear();
      for (const [k, v] of startRoot) this.root.set(k, v);
      this.head = startHead;
      this.history_.forgetAfter(startHead);
      throw new StoreError(`git write failed: ${(err as Error).message}`);
    }
    this.maybeCompact(items.length * 4);
    await this.mirror(items);
  }

  /** Working-tree copies for operators; git is the truth, so these are not fsync'd. */
  private async mirror(items: WriteItem[]): Promise<void> {
    const latest = new Map<string, string>();
    for (const item of items) latest.set(item.serial ?? '', item.content);
    await Promise.all([...latest].map(async ([serial, content]) => {
      const file = serial ? path.join(this.opts.dir, serial, HOST_FILE) : path.join(this.opts.dir, CLUSTER_FILE);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFileAtomic(file, content, false, path.join(this.opts.dir, '.git', MIRROR_TMP, serial || CLUSTER_FILE));
    }));
  }

  private rollback(itemsNewestFirst: WriteItem[]): void {
    for (const item of itemsNewestFirst) {
      if (item.serial !== undefined && item.undo) this.table.restore(item.serial, item.undo.prev);
    }
  }
}

function parseClusterJson(text: string): ClusterConfig {
  const raw = JSON.parse(text) as { Config?: { DefaultEtcdClusterToken?: unknown } };
  const token = raw.Config?.DefaultEtcdClusterToken;
  return { DefaultEtcdClusterToken: typeof token === 'string' ? token : '' };
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
