import * as nodeFs from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import git from 'isomorphic-git';
import { decodeHost, encodeHost, type Host } from '../core/host.ts';
import type { Step } from '../core/host-changes.ts';
import { UTC_ZONE, type TimeZone } from '../core/tzif.ts';
import { BatchWriter, type BatchWritten } from './batch-writer.ts';
import { fsyncPath, rewriteFileSync, writeFileAtomic } from '../fs/durable-fs.ts';
import { CompactionRunner } from '../git/compaction-runner.ts';
import { compactionResult, listLooseObjects, MAX_DEPTH, retireMerged, writeMergedPack, type CompactionResult } from '../git/compaction.ts';
import { GitHistory } from './git-history.ts';
import { GitObjectReader } from '../git/object-reader.ts';
import {
  encodeCommit, encodeTree, FILE_MODE, objectId, parseCommit, parseTree, RootTree, TREE_MODE, type ObjectType,
} from '../git/objects.ts';
import { writeCheckpoint } from '../git/checkpoint.ts';
import { GitJournal, type Journal, type JournalObject, type JournalTicket } from '../git/journal.ts';
import { GitIndexKeeper } from '../git/index-keeper.ts';
import { indexChanges } from './git-index-changes.ts';
import { PackBuilder } from '../git/pack.ts';
import { resolveHead } from '../git/refs.ts';
import { encodeClusterJson, parseClusterJson } from './cluster-json.ts';
import { HostTable, sideFilesAfter, type HostSnapshot, type SideFiles } from './host-table.ts';
import { PendingBySerial } from './pending-by-serial.ts';
import { HOST_SIDE_FILES, hostCommitMessage, StoreError, type ClusterConfig, type CommitInfo, type HostStore, type StoreObserver } from './store.ts';

// The cluster directory as a git repo. Each batch of changes (group commit: whatever queued up
// while the previous batch was written) becomes the pack records of every commit of the batch,
// each still its own commit: the changed host's blob and tree, the root tree (kept serialized in
// memory, one entry replaced per commit, stored as a delta of its newer neighbour) and the commit.
// The records are appended to the journal and fdatasync'd (git-journal.ts), then the changes are
// acknowledged. A checkpoint writes the journaled batches to git as one pack and moves the branch
// ref: at once when the store is idle (the change is acknowledged after it, so git shows it),
// else at most every CHECKPOINT_INTERVAL_MS, many batches at a time. Packs are merged in the
// background (git-compaction.ts). The files in the working tree (<serial>/conf.json,
// cluster.json) mirror the newest commit for operators; git's index (.git/index) is kept equal
// to the branch on disk (git/index-keeper.ts), so `git status` there is clean when mayu is idle.

const BRANCH = 'master';
const REF = `refs/heads/${BRANCH}`;
const CLUSTER_FILE = 'cluster.json';
const HOST_FILE = 'conf.json';
/** Where earlier versions kept the mirror's temp files; removed at open if still there. */
const OLD_MIRROR_TMP = 'mayu-tmp';
/** Left in .git by a clean close: without it, the next open checks the working tree against HEAD. */
const CLEAN_STOP = 'mayu-clean-stop';
/** Under load, git trails the acknowledged changes by at most this (plus a checkpoint's own time). */
const CHECKPOINT_INTERVAL_MS = 100;
/**
 * A batch's records are stored uncompressed (zlib level 0, without zlib: git-pack.ts): the
 * merge compresses them in its worker. Deflating on the request thread cost ~0.1 ms an object,
 * mostly zlib setting up its state, and the newest root tree (37 KB with 1000 hosts) 0.8 ms.
 */
const STORED = 0;
/** After a failed checkpoint (the changes are safe in the journal), the next try waits this long. */
const CHECKPOINT_RETRY_MS = 1000;

export interface GitStoreOptions {
  dir: string;
  author?: { name: string; email: string };
  /** 16 random bytes; used for the default etcd token of a new cluster. */
  randomBytes: (n: number) => Uint8Array;
  now?: () => Date;
  /** Local time zone: commits carry its offset, as 0.11's (native git) did. Default UTC. */
  zone?: TimeZone;
  /** Merge packs once there are this many (one per batch); 0 turns it off. */
  compactAfterPacks?: number;
  /** Merge packs in a worker thread (the server does); tests of the store run them in-process. */
  compactInWorker?: boolean;
  /** Told about background compactions and their failures (they never fail a change). */
  onCompaction?: (result: CompactionResult | Error) => void;
  /** Told when the working-tree mirror could not be written (git has the change: it stands). */
  onMirrorError?: (err: Error) => void;
  /** Told after each checkpoint: git (the ref on disk) has every change acknowledged before it. */
  onCheckpoint?: () => void;
  /** Told when journaled changes could not be written to git yet (they stand; it is retried). */
  onCheckpointError?: (err: Error) => void;
  /** Told (once per episode) when git's index could not be written, e.g. an operator's git holds index.lock; retried. */
  onIndexError?: (err: Error) => void;
  /** The write-ahead journal (tests wrap the real one to make appends fail). */
  openJournal?: (gitdir: string) => Promise<Journal>;
  observer?: StoreObserver;
}

interface WriteItem {
  message: string;
  /** Serial, or undefined for cluster.json. */
  serial?: string;
  content: string;
  /** The host's side files after this step (all of them: the host's tree lists them beside conf.json). */
  files?: SideFiles;
  /** Which of `files` this step wrote (the working-tree mirror rewrites only those). */
  changed?: readonly string[];
  /** Removes the host's folder instead of writing `content`. */
  remove?: true;
  /** On the first step of an apply(): the host to restore if the write fails. */
  undo?: { prev: HostSnapshot };
  /** Set by writeBatch: the commit this item became. */
  commit?: string;
}

/** A batch acknowledged from the journal, not yet in git. */
interface Unflushed {
  head: string;
  objects: JournalObject[];
  ticket: JournalTicket;
  memoryPack: string;
}

/** Who mayu's commits are by: 0.11's identity, so history reads the same across the switch. */
export const MAYU_COMMITTER = { name: 'mayu commiter', email: 'support+noise@giantswarm.io' } as const;

/**
 * .git/config of a cluster repo mayu creates: byte for byte 0.11's (native `git init` on Linux,
 * then user.name, user.email, push.default). isomorphic-git's own has filemode = false and
 * ignorecase = true, wrong for a Linux checkout.
 */
const NEW_REPO_CONFIG = `[core]
\trepositoryformatversion = 0
\tfilemode = true
\tbare = false
\tlogallrefupdates = true
[user]
\tname = ${MAYU_COMMITTER.name}
\temail = ${MAYU_COMMITTER.email}
[push]
\tdefault = matching
`;

export class GitStore implements HostStore {
  readonly kind = 'git' as const;
  private readonly table = new HostTable();
  private readonly pending = new PendingBySerial();
  private readonly reader: GitObjectReader;
  private readonly runner: CompactionRunner | undefined;
  private readonly index: GitIndexKeeper;
  private root = new RootTree();
  private readonly writer: BatchWriter<WriteItem>;
  private readonly history_: GitHistory;
  /** The newest commit (in the journal, maybe not in git yet). */
  private head: string | undefined;
  /** The commit the ref on disk names. */
  private gitHead: string | undefined;
  private journal!: Journal;
  private readonly unflushed: Unflushed[] = [];
  private checkpointRun: Promise<void> | undefined;
  private checkpointTimer: NodeJS.Timeout | undefined;
  private nextCheckpointAt = 0;
  private compaction: Promise<CompactionResult> | undefined;
  private cluster: ClusterConfig = { DefaultEtcdClusterToken: '' };
  private closed = false;
  /** The working-tree mirror's writes, one batch after the other. */
  private mirrored: Promise<void> = Promise.resolve();
  /** Host folders known to exist in the working tree (saves a mkdir per write). */
  private readonly mirrorDirs = new Set<string>();

  private constructor(private readonly opts: Required<GitStoreOptions>) {
    this.writer = new BatchWriter((items) => this.writeBatch(items), (items) => this.rollback(items), opts.observer.batchWritten);
    this.reader = new GitObjectReader(path.join(opts.dir, '.git'));
    this.runner = opts.compactInWorker ? new CompactionRunner() : undefined;
    this.history_ = new GitHistory(async (oid) => parseCommit((await this.reader.read(oid)).content));
    this.index = new GitIndexKeeper({ dir: opts.dir, gitdir: path.join(opts.dir, '.git'), readObject: (oid) => this.reader.read(oid), onError: opts.onIndexError, onWritten: opts.observer.indexWritten });
  }

  static async open(options: GitStoreOptions): Promise<GitStore> {
    const store = new GitStore({
      author: options.author ?? MAYU_COMMITTER,
      now: options.now ?? (() => new Date()),
      zone: options.zone ?? UTC_ZONE,
      dir: options.dir,
      randomBytes: options.randomBytes,
      compactAfterPacks: options.compactAfterPacks ?? 16,
      compactInWorker: options.compactInWorker ?? false,
      onCompaction: options.onCompaction ?? (() => {}),
      onMirrorError: options.onMirrorError ?? (() => {}),
      onCheckpoint: options.onCheckpoint ?? (() => {}),
      onCheckpointError: options.onCheckpointError ?? (() => {}),
      onIndexError: options.onIndexError ?? (() => {}),
      openJournal: options.openJournal ?? ((gitdir) => GitJournal.open(gitdir)),
      observer: options.observer ?? {},
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
  sideFile(serial: string, name: string) { return this.table.sideFiles(serial)[name]; }
  clusterConfig() { return { ...this.cluster }; }
  settled() { return this.writer.settled(); }
  settledFor(serial: string) { return this.pending.settled(serial); }
  writeQueueDepth() { return this.writer.depth; }

  async apply(serial: string, steps: readonly Step[]): Promise<string | undefined> {
    if (this.closed) throw new StoreError('store is closed');
    if (steps.length === 0) return this.settled().then(() => undefined);
    let files: SideFiles | undefined = this.table.sideFiles(serial);
    const prev = this.table.apply(serial, steps);
    const items: WriteItem[] = steps.map((s, i) => {
      files = sideFilesAfter(files, [s]);
      return {
        serial,
        message: hostCommitMessage(serial, s.message),
        content: encodeHost(s.host),
        files,
        changed: s.files ? Object.keys(s.files) : undefined,
        undo: i === 0 ? { prev } : undefined,
      };
    });
    await this.pending.track(serial, Promise.all(items.map((item) => this.writer.submit(item))));
    return items.at(-1)!.commit;
  }

  /** As apply(): memory changes at once, resolves with the removal's commit id once durable. */
  async remove(serial: string, message: string): Promise<string | undefined> {
    if (this.closed) throw new StoreError('store is closed');
    const prev = this.table.remove(serial);
    const item: WriteItem = { serial, message: hostCommitMessage(serial, message), content: '', remove: true, undo: { prev } };
    await this.pending.track(serial, this.writer.submit(item));
    return item.commit;
  }

  history(serial: string): Promise<CommitInfo[]> {
    return this.history_.forSerial(serial);
  }

  async confAt(serial: string, commit: string): Promise<string | undefined> {
    if (!/^[0-9a-f]{40}$/.test(commit)) return undefined;
    // commit -> root tree -> <serial>/ -> conf.json, through the same reader as start-up.
    const parsed = parseCommit((await this.reader.read(commit)).content);
    const dir = parseTree((await this.reader.read(parsed.tree)).content).find((e) => e.name === serial && e.mode === TREE_MODE);
    if (!dir) return undefined;
    const file = parseTree((await this.reader.read(dir.oid)).content).find((f) => f.name === HOST_FILE);
    return file ? (await this.reader.read(file.oid)).content.toString('utf8') : undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.settled();
    const inGit = await this.flushHistory().then(() => true, (err: Error) => {
      // The journal keeps them: the next open writes them to git.
      this.opts.onCheckpointError(err);
      return false;
    });
    clearTimeout(this.checkpointTimer);
    await this.compaction?.catch(() => undefined);
    await this.mirrored;
    await this.index.close();
    // Leave the repo at rest merged (geometrically): a storm can end with the merges behind by
    // many packs, and the newest packs hold their records uncompressed until merged.
    const limit = this.opts.compactAfterPacks;
    while (limit > 0 && this.reader.packList.length > 1) {
      const result = await this.startCompaction().catch((err: Error) => err);
      this.opts.onCompaction(result);
      if (result instanceof Error || result.mergedPacks === 0) break;
    }
    await this.runner?.close();
    await this.reader.close();
    if (inGit) await this.journal.clear();
    await this.journal.close();
    await writeFileAtomic(path.join(this.opts.dir, '.git', CLEAN_STOP), '');
  }

  /** Resolves once git's index is written for every change git has (it is otherwise written shortly after). */
  flushIndex(): Promise<void> {
    return this.index.flush();
  }

  /** Merges every pack and loose object into one pack now (on demand); waits for a running compaction first. */
  async compact(): Promise<CompactionResult> {
    await this.compaction?.catch(() => undefined);
    await this.settled();
    await this.flushHistory();
    // That checkpoint may have started a background merge: one merge at a time.
    await this.compaction?.catch(() => undefined);
    return this.startCompaction(true);
  }

  /**
   * Resolves once every change acknowledged so far is in git (the ref names it), writing what
   * the journal holds now instead of at the next checkpoint.
   */
  async flushHistory(): Promise<void> {
    const last = this.unflushed.at(-1);
    // A failed checkpoint fails the wait (the changes stay in the journal, retried later):
    // waiters do not each start one of their own against a disk that just refused one.
    while (last && this.unflushed.includes(last)) await (this.checkpointRun ?? this.runCheckpoint());
  }

  /** Writes every journaled batch to git as one pack and moves the ref; one at a time. */
  private runCheckpoint(): Promise<void> {
    clearTimeout(this.checkpointTimer);
    this.checkpointTimer = undefined;
    this.nextCheckpointAt = performance.now() + CHECKPOINT_INTERVAL_MS;
    const batches = this.unflushed.slice();
    const run = async () => {
      if (batches.length === 0) return;
      this.journal.rotate();
      await writeCheckpoint(this.reader, REF, batches);
      this.unflushed.splice(0, batches.length);
      this.journal.checkpointed(batches.map((b) => b.ticket));
      this.reader.dropMemoryPacks(new Set(batches.map((b) => b.memoryPack)));
      this.gitHead = batches.at(-1)!.head;
      this.index.checkpointed(this.gitHead, this.mirrored, this.unflushed.length === 0);
      this.opts.onCheckpoint();
    };
    this.checkpointRun = run().then(() => this.maybeCompact(), (err: Error) => {
      this.nextCheckpointAt = performance.now() + CHECKPOINT_RETRY_MS;
      throw new StoreError(`git write failed (the changes are in the journal): ${err.message}`);
    }).finally(() => {
      this.checkpointRun = undefined;
      if (this.unflushed.length > 0) this.scheduleCheckpoint();
    });
    return this.checkpointRun;
  }

  private scheduleCheckpoint(): void {
    // Closing: close() writes what is left itself, or leaves it to the journal.
    if (this.closed || this.checkpointRun || this.checkpointTimer) return;
    const wait = Math.max(0, this.nextCheckpointAt - performance.now());
    this.checkpointTimer = setTimeout(() => {
      this.checkpointTimer = undefined;
      this.runCheckpoint().catch((err: Error) => this.opts.onCheckpointError(err));
    }, wait);
  }

  private startCompaction(all = false): Promise<CompactionResult> {
    const run = async (): Promise<CompactionResult> => {
      // The merge reads commits from disk (in a worker): the ref's, not the journal's newest.
      const job = { gitdir: path.join(this.opts.dir, '.git'), head: this.gitHead, all };
      const merged = this.runner ? await this.runner.merge(job) : await writeMergedPack(this.reader, job.head, { all });
      if (!merged) return { objects: 0, packBytes: 0, mergedPacks: 0, looseObjects: 0 };
      await retireMerged(this.reader, merged);
      return compactionResult(merged);
    };
    this.compaction = run().finally(() => {
      this.compaction = undefined;
    });
    return this.compaction;
  }

  /** Called after each checkpoint: compaction runs beside the writer, never blocking a change. */
  private maybeCompact(): void {
    const limit = this.opts.compactAfterPacks;
    // The worker takes a second to load its modules: start it once packs are half-way there,
    // not at open (an idle mayu keeps neither its memory nor its start-up CPU).
    if (limit > 0 && this.reader.packList.length >= limit / 2) this.runner?.warm();
    if (limit <= 0 || this.reader.packList.length < limit || this.compaction || this.closed) return;
    this.startCompaction().then(this.opts.onCompaction, (err: Error) => this.opts.onCompaction(err));
  }

  private async load(): Promise<void> {
    const { dir } = this.opts;
    const gitdir = path.join(dir, '.git');
    await mkdir(dir, { recursive: true });
    const fresh = !(await exists(gitdir));
    if (fresh) {
      await git.init({ fs: nodeFs, dir, defaultBranch: BRANCH });
      // 0.11's config of a new cluster repo: operators' own commits there, and scripts filtering
      // history by author, rely on it. An existing repository's config is never touched.
      await writeFileAtomic(path.join(gitdir, 'config'), NEW_REPO_CONFIG);
      await mkdir(path.join(gitdir, 'objects', 'pack'), { recursive: true });
      this.journal = await this.opts.openJournal(gitdir);
      this.index.open(undefined, this.mirrored);
      await this.commitCluster('initial commit');
    } else {
      // No writer runs yet: temp files a killed process left behind can go.
      await listLooseObjects(gitdir, true);
      await mkdir(path.join(gitdir, 'objects', 'pack'), { recursive: true });
      await rm(path.join(gitdir, REF + '.lock'), { force: true });
      await rm(path.join(gitdir, OLD_MIRROR_TMP), { recursive: true, force: true });
      await this.reader.refresh();
      this.journal = await this.opts.openJournal(gitdir);
      await this.completeFromJournal(gitdir);
      await this.loadHead();
      await this.removeStaleMirrors();
      await this.repairMirrorAfterCrash();
      this.index.open(this.gitHead, this.mirrored);
    }
    if (!this.cluster.DefaultEtcdClusterToken) {
      const token = Buffer.from(this.opts.randomBytes(16)).toString('hex');
      this.cluster = { DefaultEtcdClusterToken: token };
      await this.commitCluster(`Set default etcd cluster to '${token}'`);
    }
  }

  /** Batches acknowledged from the journal that a kill kept out of git are written to it now. */
  private async completeFromJournal(gitdir: string): Promise<void> {
    // resolveHead answers undefined for a branch without commits; any other failure stops the
    // open rather than clearing a journal whose entries may not be in git.
    const missing = this.journal.chainFrom(await resolveHead(gitdir));
    if (missing.length > 0) await writeCheckpoint(this.reader, REF, missing);
    await this.journal.clear();
  }

  /** Mirror folders of hosts deleted in git whose removal a kill interrupted. */
  private async removeStaleMirrors(): Promise<void> {
    for (const entry of await readdir(this.opts.dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.') || this.table.get(entry.name)) continue;
      if (await exists(path.join(this.opts.dir, entry.name, HOST_FILE))) await rm(path.join(this.opts.dir, entry.name), { recursive: true, force: true });
    }
  }

  /**
   * After a kill, a batch durable in git may not have reached the working tree yet. The check
   * runs in the background, ahead of every mirror write of this process, so a start is not held up.
   */
  private async repairMirrorAfterCrash(): Promise<void> {
    const marker = path.join(this.opts.dir, '.git', CLEAN_STOP);
    if (await exists(marker)) {
      // Gone for good before any write, so a kill from now on is noticed next time.
      await rm(marker);
      await fsyncPath(path.dirname(marker));
      return;
    }
    // Compared by object id with the tree at HEAD: the blobs git has are what the files must hold.
    const entries = parseTree(this.root.bytes);
    this.mirrored = forEachLimit(entries, 16, async (e) => {
      const isHost = e.mode === TREE_MODE;
      if (!isHost && e.name !== CLUSTER_FILE) return;
      if (!isHost) {
        const onDisk = await readFile(path.join(this.opts.dir, CLUSTER_FILE)).catch(() => undefined);
        if (onDisk && objectId('blob', onDisk) === e.oid) return;
        await this.mirror([{ content: (await this.reader.read(e.oid)).content.toString('utf8'), message: '' }]);
        return;
      }
      // The host's tree as the files on disk would make it (conf.json and the side files there).
      const onDisk: { mode: string; name: string; oid: string }[] = [];
      for (const name of [HOST_FILE, ...HOST_SIDE_FILES]) {
        const bytes = await readFile(path.join(this.opts.dir, e.name, name)).catch(() => undefined);
        if (bytes) onDisk.push({ mode: FILE_MODE, name, oid: objectId('blob', bytes) });
      }
      if (onDisk.length > 0 && objectId('tree', encodeTree(onDisk)) === e.oid) return;
      const files: Record<string, string> = {};
      let content: string | undefined;
      for (const f of parseTree((await this.reader.read(e.oid)).content)) {
        const text = () => this.reader.read(f.oid).then((o) => o.content.toString('utf8'));
        if (f.name === HOST_FILE) content = await text();
        else if (HOST_SIDE_FILES.includes(f.name)) files[f.name] = await text();
      }
      if (content === undefined) return;
      // A side file on disk that git does not have (a kill before its commit landed) goes.
      for (const name of HOST_SIDE_FILES) if (!(name in files)) await rm(path.join(this.opts.dir, e.name, name), { force: true });
      await this.mirror([{ serial: e.name, content, files, changed: Object.keys(files), message: '' }]);
    }).catch((err: Error) => this.opts.onMirrorError(err));
  }

  private async commitCluster(message: string): Promise<void> {
    await this.writer.submit({ message, content: encodeClusterJson(this.cluster) });
  }

  private async loadHead(): Promise<void> {
    const head = await resolveHead(path.join(this.opts.dir, '.git')).catch(() => undefined);
    if (!head) throw new StoreError(`${this.opts.dir}: not a mayu cluster repo (no HEAD commit)`);
    // Every host's tree and conf.json are read: whole packs in memory beat 2 reads per host.
    for (const pack of this.reader.packList) await pack.loadWhole();
    try {
      await this.loadHostsAt(head);
    } finally {
      for (const pack of this.reader.packList) pack.unloadWhole();
    }
    this.head = head;
    this.gitHead = head;
    this.history_.setBase(head);
  }

  private async loadHostsAt(head: string): Promise<void> {
    const commit = parseCommit((await this.reader.read(head)).content);
    const tree = parseTree((await this.reader.read(commit.tree)).content);
    this.root = new RootTree(tree);
    const clusterEntry = tree.find((e) => e.name === CLUSTER_FILE);
    if (clusterEntry) this.cluster = parseClusterJson((await this.reader.read(clusterEntry.oid)).content.toString('utf8'));
    const hostDirs = tree.filter((e) => e.mode === TREE_MODE);
    await forEachLimit(hostDirs, 16, async (e) => {
      try {
        const entries = parseTree((await this.reader.read(e.oid)).content);
        const file = entries.find((f) => f.name === HOST_FILE);
        if (!file) throw new Error(`no ${HOST_FILE}`);
        const text = (await this.reader.read(file.oid)).content.toString('utf8');
        const files: Record<string, string> = {};
        // Side files are kept as text; their readers (core) cope with a damaged one.
        for (const f of entries) {
          if (f.mode === FILE_MODE && HOST_SIDE_FILES.includes(f.name)) files[f.name] = (await this.reader.read(f.oid)).content.toString('utf8');
        }
        this.table.load(e.name, decodeHost(JSON.parse(text)), files);
      } catch (err) {
        throw new StoreError(`${e.name}/${HOST_FILE} at ${head}: ${(err as Error).message}`);
      }
    });
  }

  /**
   * Resolves once the batch is durable in the journal, with what its acknowledgement waits for
   * too: the working-tree mirror and, when the store was idle, the checkpoint that puts it in git.
   */
  private async writeBatch(items: WriteItem[]): Promise<BatchWritten> {
    const startRoot = this.root.clone();
    const startHead = this.head;
    const roots: { oid: string; content: Buffer }[] = [];
    const others = new Map<string, { type: ObjectType; content: Buffer }>();
    const add = (type: ObjectType, content: Buffer) => {
      const oid = objectId(type, content);
      others.set(oid, { type, content });
      return oid;
    };
    let unflushed: Unflushed;
    try {
      for (const item of items) {
        const blobOid = item.remove ? '' : add('blob', Buffer.from(item.content, 'utf8'));
        if (item.remove) {
          this.root.remove(item.serial!, TREE_MODE);
        } else if (item.serial === undefined) {
          this.root.set({ mode: FILE_MODE, name: CLUSTER_FILE, oid: blobOid });
        } else {
          const sides = Object.entries(item.files ?? {}).map(([name, text]) => ({ mode: FILE_MODE, name, oid: add('blob', Buffer.from(text, 'utf8')) }));
          const hostTree = add('tree', encodeTree([{ mode: FILE_MODE, name: HOST_FILE, oid: blobOid }, ...sides]));
          this.root.set({ mode: TREE_MODE, name: item.serial, oid: hostTree });
        }
        const rootBytes = this.root.bytes;
        const tree = objectId('tree', rootBytes);
        roots.push({ oid: tree, content: rootBytes });
        const timestamp = Math.floor(this.opts.now().getTime() / 1000);
        this.head = add('commit', encodeCommit({
          tree,
          parents: this.head ? [this.head] : [],
          author: { ...this.opts.author, timestamp, offsetSeconds: this.opts.zone.lookup(timestamp).offsetSeconds },
          message: `${item.message}\n`,
        }));
        this.history_.record(this.head, item.message, timestamp);
        item.commit = this.head;
      }
      // Root trees newest first, each older one a delta of its newer neighbour.
      const rootsNewestFirst = [...new Map(roots.reverse().map((r) => [r.oid, r])).values()].filter((r) => !others.has(r.oid));
      const pack = new PackBuilder(rootsNewestFirst.length + others.size);
      const chunks = [pack.header()];
      const objects: JournalObject[] = [];
      const put = (oid: string, record: Buffer, baseOid?: string) => {
        chunks.push(record);
        objects.push({ oid, record, crc: pack.lastCrc, baseOid });
      };
      let depth = 0;
      let newer: { oid: string; content: Buffer } | undefined;
      for (const r of rootsNewestFirst) {
        const base = newer && depth < MAX_DEPTH ? newer : undefined;
        depth = base ? depth + 1 : 0;
        put(r.oid, pack.add(r.oid, 'tree', r.content, base, STORED), base?.oid);
        newer = r;
      }
      for (const [oid, o] of others) put(oid, pack.add(oid, o.type, o.content, undefined, STORED));
      const { checksum, index } = pack.finish();
      // Nothing after the append may fail: a journaled batch stands (the next open replays it).
      const ticket = await this.journal.append({ parent: startHead, head: this.head!, objects });
      // Readable (history, confAt) from memory until a checkpoint writes it to git.
      const memoryPack = `journal-${checksum.toString('hex')}`;
      this.reader.addMemoryPack(memoryPack, index, Buffer.concat([...chunks, checksum]));
      unflushed = { head: this.head!, objects, ticket, memoryPack };
    } catch (err) {
      this.root = startRoot;
      this.head = startHead;
      this.history_.forgetAfter(startHead);
      throw new StoreError(`git write failed: ${(err as Error).message}`);
    }
    this.unflushed.push(unflushed);
    this.index.recordBatch(unflushed.head, indexChanges(items, { cluster: CLUSTER_FILE, host: HOST_FILE }));
    // Idle (no checkpoint running, nothing else waiting for git): this batch goes to git now and
    // is acknowledged after it. Under load, acknowledgements do not wait for git.
    const toGit = !this.checkpointRun && this.unflushed.length === 1 ? this.runCheckpoint() : undefined;
    if (!toGit) this.scheduleCheckpoint();
    // The next batch is written while this one's mirror runs; its changes are acknowledged
    // after the mirror, so a file read after an answer shows the change.
    this.mirrored = this.mirrored.then(() => this.mirror(items)).catch((err: Error) => this.opts.onMirrorError(err));
    if (!toGit) return { followUp: this.mirrored };
    toGit.catch((err: Error) => this.opts.onCheckpointError(err));
    return { followUp: Promise.all([this.mirrored, toGit]).then(() => undefined) };
  }

  /**
   * Working-tree copies for operators; git is the truth. Each file is rewritten in place with
   * blocking calls (~15 µs a file): a temp file and a rename per host cost ~190 µs of kernel time
   * each (a new inode and a freed one, on a filesystem mounted with discard) and made the kernel
   * the storm's biggest CPU user. The price: a reader racing the write may see a mix of old and
   * new for those microseconds, and a kill between write and truncate leaves a torn copy, which
   * the next open repairs (repairMirrorAfterCrash).
   */
  private async mirror(items: WriteItem[]): Promise<void> {
    // Per serial: the newest conf.json, and each side file the batch wrote, at its newest.
    const latest = new Map<string, { content: string; sides: Map<string, string> } | undefined>();
    for (const item of items) {
      const key = item.serial ?? '';
      if (item.remove) {
        latest.set(key, undefined);
        continue;
      }
      const sides = latest.get(key)?.sides ?? new Map<string, string>();
      for (const name of item.changed ?? []) sides.set(name, item.files![name]!);
      latest.set(key, { content: item.content, sides });
    }
    for (const [serial, entry] of latest) {
      if (entry === undefined) {
        this.mirrorDirs.delete(serial);
        await rm(path.join(this.opts.dir, serial), { recursive: true, force: true });
        continue;
      }
      const file = serial ? path.join(this.opts.dir, serial, HOST_FILE) : path.join(this.opts.dir, CLUSTER_FILE);
      if (serial && !this.mirrorDirs.has(serial)) {
        nodeFs.mkdirSync(path.dirname(file), { recursive: true });
        this.mirrorDirs.add(serial);
      }
      for (const [name, text] of entry.sides) rewriteFileSync(path.join(this.opts.dir, serial, name), text);
      rewriteFileSync(file, entry.content);
    }
  }

  private rollback(itemsNewestFirst: WriteItem[]): void {
    for (const item of itemsNewestFirst) {
      if (item.serial !== undefined && item.undo) this.table.restore(item.serial, item.undo.prev);
    }
  }
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
