import * as nodeFs from 'node:fs';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import git from 'isomorphic-git';
import { decodeHost, encodeHost, hostsEqual, type Host } from '../core/host.ts';
import { changedFields, type HostEdit, type HostsAfter } from '../core/host-edits.ts';
import type { Step } from '../core/host-changes.ts';
import { UTC_ZONE, type TimeZone } from '../core/tzif.ts';
import { BatchWriter, type BatchWritten } from './batch-writer.ts';
import { fsyncPath, rewriteFileSync, writeFileAtomic } from '../fs/durable-fs.ts';
import { describeWriteError, NotStoredError } from '../fs/write-errors.ts';
import { CompactionRunner } from '../git/compaction-runner.ts';
import { compactionResult, listLooseObjects, MAX_DEPTH, retireMerged, writeMergedPack, type CompactionResult } from '../git/compaction.ts';
import { GitHistory } from './git-history.ts';
import { GitObjectReader } from '../git/object-reader.ts';
import {
  encodeCommit, encodeTree, FILE_MODE, objectId, parseCommit, parseTree, RootTree, TREE_MODE, type ObjectType, type TreeEntry,
} from '../git/objects.ts';
import { writeCheckpoint } from '../git/checkpoint.ts';
import { GitJournal, type Journal, type JournalObject, type JournalTicket } from '../git/journal.ts';
import { GitIndexKeeper, type TreeChange } from '../git/index-keeper.ts';
import { indexChanges } from './git-index-changes.ts';
import { PackBuilder } from '../git/pack.ts';
import { RootChain } from '../git/root-chain.ts';
import { RefLockedError, RefMovedError, resolveHead, resolveRef } from '../git/refs.ts';
import { packRecords, replayCommits, stillNeeded } from '../git/replay.ts';
import { encodeClusterJson, parseClusterJson } from './cluster-json.ts';
import { HostTable, sideFilesAfter, type HostSnapshot, type SideFiles } from './host-table.ts';
import { isReservedName, isSerialName, readOutsideCommits, type OutsideCommits } from './outside-commits.ts';
import { PendingBySerial } from './pending-by-serial.ts';
import {
  CLUSTER_FILE, HOST_FILE, HOST_SIDE_FILES, HistoryPendingError, HostEditRefusedError, hostCommitMessage, RECORD_FOLDERS, StoreError,
  type AdoptedChange, type RecordWrite, type ClusterConfig, type CommitInfo, type HostStore, type OutsideProblem, type StoreObserver,
} from './store.ts';
import { WorkingTree, type FileCheck } from './working-tree.ts';
import { setRecordFile, type RecordFiles } from './record-files.ts';

// The cluster directory as a git repo. Each batch of changes (group commit: whatever queued up
// while the previous batch was written) becomes the pack records of every commit of the batch,
// each still its own commit: the changed host's blob and tree, the root tree (kept serialized in
// memory, one entry replaced per commit, stored as a delta of its newer neighbour) and the commit.
// The records are appended to the journal and fdatasync'd (git-journal.ts), then the changes are
// acknowledged. A checkpoint writes the journaled batches to git as one pack and moves the branch
// ref: at once when the store is idle (the change is acknowledged after it, so git shows it),
// else at most every CHECKPOINT_INTERVAL_MS, many batches at a time. Packs are merged in the
// background (git/compaction.ts). The files in the working tree (<serial>/conf.json,
// cluster.json) mirror the newest commit for operators; git's index (.git/index) is kept equal
// to the branch on disk (git/index-keeper.ts), so `git status` there is clean when mayu is idle.
//
// Operators work in the repo too. The ref moves only by compare-and-swap from mayu's last
// commit: commits made outside mayu are read, checked and taken (mayu's own commits not yet in
// git are made again on top of them), or refused loudly and never built on. A conf.json edited
// by hand is taken as its own commit before anything else changes that host, or refused.

const BRANCH = 'master';
const REF = `refs/heads/${BRANCH}`;
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
/** Hosts whose conf.json one periodic scan checks at most (the rest in the next scans). */
const HAND_EDIT_SCAN_HOSTS = 2000;
/** After a failed checkpoint (the changes are safe in the journal), the next try waits this long. */
const CHECKPOINT_RETRY_MS = 1000;
/** The ref's lock is held by an operator's git: try again this soon (git holds it for milliseconds). */
const REF_LOCKED_RETRY_MS = 50;

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
  /**
   * Judges hosts changed outside mayu (operators' commits, hand edits) beyond decoding: what is
   * wrong, one line each (profiles, addresses, quantities: the composition root knows the config).
   */
  checkEdits?: (edits: HostEdit[], after: HostsAfter) => string[];
  /** Told about hosts changed outside mayu once they are taken (events, dnsmasq). */
  onAdopted?: (changes: AdoptedChange[]) => void;
  /** Told whenever the list of refused outside changes changes (readiness, one log line per episode). */
  onOutsideProblems?: (problems: OutsideProblem[]) => void;
  /** Told when an outside change could not be taken for another reason than its content (I/O). */
  onOutsideError?: (err: Error) => void;
  /** How often the branch and the working tree are checked for outside changes; 0: only at checkpoints and before a host's changes. */
  outsideCheckMs?: number;
  /**
   * 'take' (default): hosts changed by operators' commits and hand edits are taken into memory.
   * 'history-only': the repo is an audit trail of hosts kept elsewhere (etcd store): operators'
   * commits stay in history and mayu builds on them, hosts are never read from them or from files.
   */
  outsideChanges?: 'take' | 'history-only';
  /**
   * An outside commit this accepts was written by another writer of the same history (etcd
   * store: the replica elected after this one): this store's unflushed commits are dropped, not
   * made again on top (that writer writes them from etcd's change log), so none is written twice.
   */
  yieldsTo?: (commitMessage: string) => boolean;
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
  /** A commit of files under reserved folders (admission records) instead of a host's. */
  records?: { writes: readonly RecordWrite[]; undo: { folder: string; name: string; prev: string | undefined }[] };
}

/** A batch acknowledged from the journal, not yet in git. */
interface Unflushed {
  /** The commit the batch built on: the ref moves only from there. */
  parent: string | undefined;
  head: string;
  objects: JournalObject[];
  /** Its journal entries (more than one once replayed on top of outside commits). */
  tickets: JournalTicket[];
  memoryPack: string;
  /** Its commits, oldest first. */
  commits: string[];
  /** Hosts it changes: their memory is mayu's, not an outside commit's. */
  serials: ReadonlySet<string>;
  /** Order of acknowledgement (kept by a replay), for flushHistory. */
  seq: number;
  /** Its tree changes for git's index, in commit order. */
  indexChanges: TreeChange[];
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
  private readonly gitIndex: GitIndexKeeper;
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
  private readonly tree: WorkingTree;
  /** Batch writes and outside-change adoption, one at a time (both build on root and head). */
  private exclusive: Promise<unknown> = Promise.resolve();
  private adoption: Promise<void> | undefined;
  /** Outside commits at the ref that are refused: no checkpoint builds on them. */
  private refusedHead: (OutsideProblem & { head: string | undefined }) | undefined;
  /** Hand edits refused, by serial: that host's changes wait (409). */
  private readonly refusedEdits = new Map<string, OutsideProblem>();
  private outsideTimer: NodeJS.Timeout | undefined;
  private batchSeq = 0;
  /** Where the next periodic hand-edit scan starts (handEditSlice). */
  private handEditCursor = 0;
  /** Files of the RECORD_FOLDERS (folder → name → text), as applied so far. */
  private readonly recordFiles: RecordFiles = new Map();
  /** Their trees as the newest commit has them (folder → tree id and entries). */
  private recordTrees = new Map<string, { oid: string; entries: TreeEntry[] }>();

  private constructor(private readonly opts: Required<GitStoreOptions>) {
    this.writer = new BatchWriter((items) => this.writeBatch(items), (items) => this.rollback(items), opts.observer.batchWritten, opts.observer.batchFailed);
    this.reader = new GitObjectReader(path.join(opts.dir, '.git'));
    this.runner = opts.compactInWorker ? new CompactionRunner() : undefined;
    this.history_ = new GitHistory(async (oid) => parseCommit((await this.reader.read(oid)).content));
    this.tree = new WorkingTree(opts.dir);
    this.gitIndex = new GitIndexKeeper({ dir: opts.dir, gitdir: path.join(opts.dir, '.git'), readObject: (oid) => this.reader.read(oid), onError: opts.onIndexError, onWritten: opts.observer.indexWritten });
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
      checkEdits: options.checkEdits ?? (() => []),
      onAdopted: options.onAdopted ?? (() => {}),
      onOutsideProblems: options.onOutsideProblems ?? (() => {}),
      onOutsideError: options.onOutsideError ?? (() => {}),
      outsideCheckMs: options.outsideCheckMs ?? 1000,
      outsideChanges: options.outsideChanges ?? 'take',
      yieldsTo: options.yieldsTo ?? (() => false),
    });
    await store.load();
    if (store.opts.outsideCheckMs > 0) {
      store.outsideTimer = setInterval(() => void store.scanOutside(), store.opts.outsideCheckMs);
      store.outsideTimer.unref();
    }
    return store;
  }

  get dir(): string {
    return this.opts.dir;
  }

  get(serial: string) {
    this.takeHandEdit(serial);
    return this.table.get(serial);
  }
  all() { return this.table.all(); }
  scan() { return this.table.values(); }
  size() { return this.table.size(); }
  index() { return this.table.index; }
  sideFile(serial: string, name: string) { return this.table.sideFiles(serial)[name]; }
  clusterConfig() { return { ...this.cluster }; }
  settled() { return this.writer.settled(); }
  settledFor(serial: string) { return this.pending.settled(serial); }
  writeQueueDepth() { return this.writer.depth; }

  /** Outside changes refused now (an operator's commits at the ref, hand-edited files). */
  outsideProblems(): OutsideProblem[] {
    return [...(this.refusedHead ? [{ source: this.refusedHead.source, problems: this.refusedHead.problems }] : []), ...this.refusedEdits.values()];
  }

  async apply(serial: string, steps: readonly Step[]): Promise<string | undefined> {
    if (this.closed) throw new StoreError('store is closed');
    this.assertNotRefused(serial);
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

  records(folder: string): ReadonlyMap<string, string> {
    return this.recordFiles.get(folder) ?? new Map();
  }

  /** One commit of files under reserved folders (admission records); as apply(), memory at once. */
  async applyRecords(writes: readonly RecordWrite[], message: string): Promise<string | undefined> {
    if (this.closed) throw new StoreError('store is closed');
    const undo = writes.map((w) => ({ folder: w.folder, name: w.name, prev: this.setRecord(w.folder, w.name, w.content) }));
    const item: WriteItem = { message, content: '', records: { writes, undo } };
    await this.writer.submit(item);
    return item.commit;
  }

  /** Sets one record file in memory; returns what it held. */
  private setRecord(folder: string, name: string, content: string | undefined): string | undefined {
    if (!RECORD_FOLDERS.includes(folder)) throw new StoreError(`${folder}: not a record folder`);
    return setRecordFile(this.recordFiles, folder, name, content);
  }

  /** Reads the record folders as `root` has them (at load, and after outside commits). */
  private async loadRecords(root: readonly TreeEntry[]): Promise<void> {
    for (const folder of RECORD_FOLDERS) {
      const entry = root.find((e) => e.name === folder && e.mode === TREE_MODE);
      if (this.recordTrees.get(folder)?.oid === entry?.oid && (entry || !this.recordTrees.has(folder))) continue;
      const files = new Map<string, string>();
      if (!entry) {
        this.recordTrees.delete(folder);
        this.recordFiles.set(folder, files);
        continue;
      }
      const entries = parseTree((await this.reader.read(entry.oid)).content);
      for (const f of entries) if (f.mode === FILE_MODE) files.set(f.name, (await this.reader.read(f.oid)).content.toString('utf8'));
      this.recordTrees.set(folder, { oid: entry.oid, entries });
      this.recordFiles.set(folder, files);
    }
  }

  /** As apply(): memory changes at once, resolves with the removal's commit id once durable. */
  async remove(serial: string, message: string): Promise<string | undefined> {
    if (this.closed) throw new StoreError('store is closed');
    this.assertNotRefused(serial);
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
    clearInterval(this.outsideTimer);
    await this.adoption;
    await this.settled();
    const inGit = await this.flushHistory().then(() => true, (err: Error) => {
      // The journal keeps them: the next open writes them to git.
      this.opts.onCheckpointError(err);
      return false;
    });
    clearTimeout(this.checkpointTimer);
    await this.compaction?.catch(() => undefined);
    await this.mirrored;
    await this.gitIndex.close();
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
    return this.gitIndex.flush();
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
    const last = this.unflushed.at(-1)?.seq;
    // A failed checkpoint fails the wait (the changes stay in the journal, retried later):
    // waiters do not each start one of their own against a disk that just refused one. While
    // outside commits are refused, git waits for the operator: the journal has the change.
    let moved = 0;
    while (last !== undefined && !this.refusedHead && this.unflushed.some((u) => u.seq <= last)) {
      try {
        await (this.checkpointRun ?? this.runCheckpoint());
      } catch (err) {
        if (err instanceof RefLockedError) await new Promise((r) => setTimeout(r, REF_LOCKED_RETRY_MS));
        // Read (take, refuse, or yield to) the commits that moved the branch, also while closing:
        // skipping them there made close() retry the same refused checkpoint forever.
        else if (err instanceof RefMovedError && ++moved <= 100) await this.outsideCheck(true);
        else throw err;
      }
    }
  }

  /** Writes every journaled batch to git as one pack and moves the ref; one at a time. */
  private runCheckpoint(): Promise<void> {
    // Refused outside commits: nothing is built on them. An adoption under way: after it.
    if (this.refusedHead) return Promise.resolve();
    if (this.adoption) return this.adoption.then(() => this.runCheckpoint());
    clearTimeout(this.checkpointTimer);
    this.checkpointTimer = undefined;
    this.nextCheckpointAt = performance.now() + CHECKPOINT_INTERVAL_MS;
    const batches = this.unflushed.slice();
    const run = async () => {
      if (batches.length === 0) return;
      this.journal.rotate();
      await writeCheckpoint(this.reader, REF, batches);
      this.unflushed.splice(0, batches.length);
      this.journal.checkpointed(batches.flatMap((b) => b.tickets));
      this.reader.dropMemoryPacks(new Set(batches.map((b) => b.memoryPack)));
      this.gitHead = batches.at(-1)!.head;
      this.gitIndex.checkpointed(this.gitHead, this.mirrored, this.unflushed.length === 0);
      this.opts.onCheckpoint();
    };
    this.checkpointRun = run().then(() => this.maybeCompact(), (err: Error) => {
      if (err instanceof RefLockedError) {
        this.nextCheckpointAt = performance.now() + REF_LOCKED_RETRY_MS;
        throw err;
      }
      if (err instanceof RefMovedError) {
        // Commits were made outside mayu: read and take them (or refuse them) first.
        queueMicrotask(() => void this.outsideCheck());
        throw err;
      }
      this.nextCheckpointAt = performance.now() + CHECKPOINT_RETRY_MS;
      // disk-full: the changes stand (journal); the answer that waited for git says so (507).
      throw new HistoryPendingError(`git write failed (the changes are in the journal): ${describeWriteError(err)}; they stand and reach git once the disk takes writes again`, { cause: err });
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
      this.runCheckpoint().catch((err: Error) => this.reportCheckpointError(err));
    }, wait);
  }

  private reportCheckpointError(err: Error): void {
    // Not failures: retried at once (git holds the lock) or after the outside commits are read.
    if (!(err instanceof RefLockedError || err instanceof RefMovedError)) this.opts.onCheckpointError(err);
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
      this.gitIndex.open(undefined, this.mirrored);
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
      await this.reconcileWorkingTree(await this.loadHead());
      this.gitIndex.open(this.gitHead, this.mirrored);
    }
    if (!this.cluster.DefaultEtcdClusterToken) {
      const token = Buffer.from(this.opts.randomBytes(16)).toString('hex');
      this.cluster = { DefaultEtcdClusterToken: token };
      await this.commitCluster(`Set default etcd cluster to '${token}'`);
    }
  }

  /** Batches acknowledged from the journal that a kill kept out of git are written to it now. */
  private async completeFromJournal(gitdir: string): Promise<void> {
    // An operator's git may move or lock the branch meanwhile: read it again and retry.
    for (let attempt = 1; ; attempt++) {
      try {
        // resolveHead answers undefined for a branch without commits; any other failure stops the
        // open rather than clearing a journal whose entries may not be in git.
        const head = await resolveHead(gitdir);
        const missing = this.journal.chainFrom(head);
        if (missing.length > 0) await writeCheckpoint(this.reader, REF, missing);
        else if (head) await this.replayOrphanedChain(gitdir, head);
        break;
      } catch (err) {
        if (!(err instanceof RefMovedError || err instanceof RefLockedError) || attempt >= 100) throw err;
        await new Promise((r) => setTimeout(r, REF_LOCKED_RETRY_MS));
      }
    }
    await this.journal.clear();
  }

  /**
   * A kill right after an operator's commit, before mayu's acknowledged batches were made again
   * on top of it, leaves them chained on an older commit of the branch: they are made again now.
   */
  private async replayOrphanedChain(gitdir: string, head: string): Promise<void> {
    const starts = this.journal.chainStarts().filter((p): p is string => p !== undefined && p !== head);
    if (starts.length === 0) return;
    // Entries made again on top of outside commits by a later entry are not orphans.
    const superseded = this.journal.superseded();
    // The branch's recent first-parent line: a chain starting on it whose head is not on it was left out.
    const line = new Set<string>();
    let oid: string | undefined = head;
    while (oid && line.size < 100_000 && !starts.every((p) => line.has(p))) {
      line.add(oid);
      oid = parseCommit((await this.reader.read(oid)).content).parents[0];
    }
    for (const start of starts.filter((p) => line.has(p))) {
      const chain = this.journal.chainFrom(start);
      if (chain.length === 0 || line.has(chain.at(-1)!.head) || chain.some((e) => superseded.has(e.head))) continue;
      // Readable from memory (written to git, its old commits would dangle), then made again on top of the branch.
      const old = chain.flatMap((e) => e.objects);
      const memory = packRecords(old, []);
      this.reader.addMemoryPack('orphaned-chain', memory.index, memory.bytes);
      const commits: string[] = [];
      for (let c: string | undefined = chain.at(-1)!.head; c && c !== start; c = parseCommit((await this.reader.read(c)).content).parents[0]) commits.push(c);
      const at = await resolveHead(gitdir);
      const root = await this.rootTreeAt(at);
      const replayed = await replayCommits(this.reader, commits.reverse(), { head: at!, root });
      const objects = packRecords(stillNeeded(old, new Set(commits), replayed), replayed.objects).objects;
      await writeCheckpoint(this.reader, REF, [{ parent: at, head: replayed.head, objects }]);
      this.reader.dropMemoryPacks(new Set(['orphaned-chain']));
    }
  }

  /**
   * The working tree against HEAD, before anything is served. After a clean stop a difference
   * is the operator's (a conf.json edited, added or deleted while mayu was stopped): judged like
   * any hand edit. After a kill it is mayu's own copy that the kill left behind (a batch durable
   * in git whose copy was not written yet, a torn in-place rewrite, a folder whose removal was
   * interrupted): rewritten from git.
   */
  private async reconcileWorkingTree(headFiles: ReadonlyMap<string, TreeEntry[]>): Promise<void> {
    const marker = path.join(this.opts.dir, '.git', CLEAN_STOP);
    const clean = await exists(marker);
    if (clean) {
      // Gone for good before any write, so a kill from now on is noticed next time.
      await rm(marker);
      await fsyncPath(path.dirname(marker));
    }
    // Hosts kept elsewhere (history-only): the files are only copies, whatever changed them.
    const takeEdits = clean && this.opts.outsideChanges === 'take';
    const handEdits: (() => void)[] = [];
    const clusterEntry = parseTree(this.root.bytes).find((e) => e.name === CLUSTER_FILE);
    if (clusterEntry) {
      const onDisk = await readFile(path.join(this.opts.dir, CLUSTER_FILE)).catch(() => undefined);
      if (!onDisk || objectId('blob', onDisk) !== clusterEntry.oid) this.tree.writeCluster((await this.reader.read(clusterEntry.oid)).content.toString('utf8'));
    }
    await forEachLimit([...headFiles], 16, async ([serial, entries]) => {
      const conf = entries.find((f) => f.name === HOST_FILE)!;
      const onDisk = await readFile(this.tree.hostFile(serial)).catch(() => undefined);
      const confSame = onDisk !== undefined && objectId('blob', onDisk) === conf.oid;
      if (takeEdits && !confSame && onDisk !== undefined) {
        handEdits.push(() => this.judgeEdit(serial, this.table.peek(serial), onDisk.toString('utf8'), 'edited'));
        return;
      }
      if (takeEdits && !confSame && !nodeFs.existsSync(path.join(this.opts.dir, serial))) {
        handEdits.push(() => this.takeEdit(serial, this.table.peek(serial), undefined, 'deleted by hand'));
        return;
      }
      if (clean && confSame) {
        this.tree.remember(serial);
        return;
      }
      // Compared by object id with the host's tree at HEAD: the blobs git has are what the files must hold.
      const sides: { mode: string; name: string; oid: string }[] = [];
      for (const name of HOST_SIDE_FILES) {
        const bytes = await readFile(path.join(this.opts.dir, serial, name)).catch(() => undefined);
        if (bytes) sides.push({ mode: FILE_MODE, name, oid: objectId('blob', bytes) });
      }
      const gitSides = entries.filter((f) => HOST_SIDE_FILES.includes(f.name));
      if (confSame && JSON.stringify(sides) === JSON.stringify(gitSides.map(({ mode, name, oid }) => ({ mode, name, oid })))) {
        this.tree.remember(serial);
        return;
      }
      const text = async (oid: string) => (await this.reader.read(oid)).content.toString('utf8');
      const files = new Map<string, string>();
      for (const f of gitSides) files.set(f.name, await text(f.oid));
      // A side file on disk that git does not have (a kill before its commit landed) goes.
      for (const name of HOST_SIDE_FILES) if (!files.has(name)) await rm(path.join(this.opts.dir, serial, name), { force: true });
      this.tree.writeHost(serial, await text(conf.oid), files);
    });
    for (const serial of this.tree.unknownHostFolders((s) => headFiles.has(s))) {
      // Clean stop: a host the operator added by hand. After a kill: a removal a kill interrupted.
      if (takeEdits) handEdits.push(() => this.takeAddedHost(serial));
      else this.tree.removeHost(serial);
    }
    for (const take of handEdits) take();
  }

  private async commitCluster(message: string): Promise<void> {
    await this.writer.submit({ message, content: encodeClusterJson(this.cluster) });
  }

  /** Loads the hosts at HEAD; returns each host folder's entries there (for reconcileWorkingTree). */
  private async loadHead(): Promise<Map<string, TreeEntry[]>> {
    const head = await resolveHead(path.join(this.opts.dir, '.git')).catch(() => undefined);
    if (!head) throw new StoreError(`${this.opts.dir}: not a mayu cluster repo (no HEAD commit)`);
    // Every host's tree and conf.json are read: whole packs in memory beat 2 reads per host.
    // A pack `git repack -d` removed meanwhile is read the usual way: the reader finds git's new one.
    for (const pack of this.reader.packList) await pack.loadWhole().catch(() => undefined);
    let headFiles: Map<string, TreeEntry[]>;
    try {
      headFiles = await this.loadHostsAt(head);
    } finally {
      for (const pack of this.reader.packList) pack.unloadWhole();
    }
    this.head = head;
    this.gitHead = head;
    this.history_.setBase(head);
    return headFiles;
  }

  private async rootTreeAt(head: string | undefined): Promise<RootTree> {
    if (!head) return new RootTree();
    const commit = parseCommit((await this.reader.read(head)).content);
    return new RootTree(parseTree((await this.reader.read(commit.tree)).content));
  }

  private async loadHostsAt(head: string): Promise<Map<string, TreeEntry[]>> {
    const headFiles = new Map<string, TreeEntry[]>();
    const commit = parseCommit((await this.reader.read(head)).content);
    const tree = parseTree((await this.reader.read(commit.tree)).content);
    this.root = new RootTree(tree);
    const clusterEntry = tree.find((e) => e.name === CLUSTER_FILE);
    if (clusterEntry) this.cluster = parseClusterJson((await this.reader.read(clusterEntry.oid)).content.toString('utf8'));
    await this.loadRecords(tree);
    for (const [folder, files] of this.recordFiles) for (const [name, text] of files) this.tree.writeRecord(folder, name, text, true);
    const hostDirs = tree.filter((e) => e.mode === TREE_MODE && !isReservedName(e.name));
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
        headFiles.set(e.name, entries);
      } catch (err) {
        throw new StoreError(`${e.name}/${HOST_FILE} at ${head}: ${(err as Error).message}`);
      }
    });
    return headFiles;
  }

  /**
   * Resolves once the batch is durable in the journal, with what its acknowledgement waits for
   * too: the working-tree mirror and, when the store was idle, the checkpoint that puts it in git.
   */
  private writeBatch(items: WriteItem[]): Promise<BatchWritten> {
    return this.locked(() => this.writeBatchNow(items));
  }

  /** Runs `fn` once everything started by earlier calls is done (batch writes, adoptions). */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.exclusive.then(fn);
    this.exclusive = run.catch(() => undefined);
    return run;
  }

  private async writeBatchNow(items: WriteItem[]): Promise<BatchWritten> {
    // A failed batch's root-tree changes are undone in place (no 400 KB copy per batch).
    const startSeq = this.root.seq;
    const startHead = this.head;
    const startRecordTrees = new Map(this.recordTrees);
    const roots = new RootChain();
    const others = new Map<string, { type: ObjectType; content: Buffer }>();
    const add = (type: ObjectType, content: Buffer) => {
      const oid = objectId(type, content);
      others.set(oid, { type, content });
      return oid;
    };
    let unflushed: Unflushed;
    try {
      for (const item of items) {
        const blobOid = item.remove || item.records ? '' : add('blob', Buffer.from(item.content, 'utf8'));
        if (item.records) {
          this.writeRecordTrees(item.records.writes, add);
        } else if (item.remove) {
          this.root.remove(item.serial!, TREE_MODE);
        } else if (item.serial === undefined) {
          this.root.set({ mode: FILE_MODE, name: CLUSTER_FILE, oid: blobOid });
        } else {
          const sides = Object.entries(item.files ?? {}).map(([name, text]) => ({ mode: FILE_MODE, name, oid: add('blob', Buffer.from(text, 'utf8')) }));
          const hostTree = add('tree', encodeTree([{ mode: FILE_MODE, name: HOST_FILE, oid: blobOid }, ...sides]));
          this.root.set({ mode: TREE_MODE, name: item.serial, oid: hostTree });
        }
        const tree = this.root.oid();
        roots.push(tree, this.root);
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
      // Root trees newest first, each older one a delta of its newer neighbour (root-chain.ts).
      // A root tree is never a blob's or host tree's twin (it lists host folders, they do not).
      const pack = new PackBuilder(roots.size + others.size);
      const chunks = [pack.header()];
      const objects: JournalObject[] = [];
      const put = (oid: string, record: Buffer, baseOid?: string) => {
        chunks.push(record);
        objects.push({ oid, record, crc: pack.lastCrc, baseOid });
      };
      for (const r of roots.newestFirst(MAX_DEPTH)) {
        if (r.delta) put(r.oid, pack.addDelta(r.oid, r.baseOid, r.delta, STORED), r.baseOid);
        else put(r.oid, pack.add(r.oid, 'tree', r.content, undefined, STORED));
      }
      for (const [oid, o] of others) put(oid, pack.add(oid, o.type, o.content, undefined, STORED));
      const { checksum, index } = pack.finish();
      // The batch's pack, readable (history, confAt) from memory until a checkpoint writes it to
      // git; the records the journal and the checkpoint write are views of it, so a batch keeps
      // one copy of its 400 KB root tree, not two (the records made above die young).
      const packBytes = Buffer.concat([...chunks, checksum]);
      let at = chunks[0]!.length;
      for (const o of objects) {
        o.record = packBytes.subarray(at, at + o.record.length);
        at += o.record.length;
      }
      chunks.length = 0;
      // Nothing after the append may fail: a journaled batch stands (the next open replays it).
      const ticket = await this.journal.append({ parent: startHead, head: this.head!, objects });
      const memoryPack = `journal-${checksum.toString('hex')}`;
      this.reader.addMemoryPack(memoryPack, index, packBytes);
      unflushed = {
        parent: startHead, head: this.head!, objects, tickets: [ticket], memoryPack,
        commits: items.map((i) => i.commit!), serials: new Set(items.flatMap((i) => (i.serial === undefined ? [] : [i.serial]))), seq: this.batchSeq++,
        indexChanges: this.indexChangesOf(items),
      };
    } catch (err) {
      // More changes than the tree remembers (not seen: a batch is at most 256 changes): read it back.
      if (!this.root.undoTo(startSeq)) this.root = await this.rootTreeAt(startHead);
      this.head = startHead;
      this.recordTrees = startRecordTrees;
      this.history_.forgetAfter(startHead);
      // disk-full: nothing of the batch stands; the answer is a 507 (src/fs/write-errors.ts).
      throw new NotStoredError(err);
    }
    this.unflushed.push(unflushed);
    this.gitIndex.recordBatch(unflushed.head, unflushed.indexChanges);
    // Idle (no checkpoint running, nothing else waiting for git): this batch goes to git now and
    // is acknowledged after it. Under load, acknowledgements do not wait for git.
    const toGit = !this.checkpointRun && this.unflushed.length === 1 ? this.runCheckpoint() : undefined;
    if (!toGit) this.scheduleCheckpoint();
    // The next batch is written while this one's mirror runs; its changes are acknowledged
    // after the mirror, so a file read after an answer shows the change.
    this.mirrored = this.mirrored.then(() => this.mirror(items)).catch((err: Error) => this.opts.onMirrorError(err));
    if (!toGit) return { followUp: this.mirrored };
    toGit.catch((err: Error) => this.reportCheckpointError(err));
    return { followUp: Promise.all([this.mirrored, toGit]).then(() => undefined) };
  }

  /** A batch's tree changes for git's index: hosts and cluster.json, and record folders as the batch leaves them. */
  private indexChangesOf(items: readonly WriteItem[]): TreeChange[] {
    const changes = indexChanges(items.filter((i) => !i.records), { cluster: CLUSTER_FILE, host: HOST_FILE });
    for (const folder of new Set(items.flatMap((i) => i.records?.writes.map((w) => w.folder) ?? []))) {
      changes.push({ dir: folder, files: new Map((this.recordTrees.get(folder)?.entries ?? []).map((e) => [e.name, e.oid])) });
    }
    return changes;
  }

  /** The record folders' trees with these files written, set in the root tree. */
  private writeRecordTrees(writes: readonly RecordWrite[], add: (type: ObjectType, content: Buffer) => string): void {
    for (const folder of new Set(writes.map((w) => w.folder))) {
      const entries = new Map((this.recordTrees.get(folder)?.entries ?? []).map((e) => [e.name, e]));
      for (const w of writes.filter((x) => x.folder === folder)) {
        if (w.content === undefined) entries.delete(w.name);
        else entries.set(w.name, { mode: FILE_MODE, name: w.name, oid: add('blob', Buffer.from(w.content, 'utf8')) });
      }
      if (entries.size === 0) {
        this.root.remove(folder, TREE_MODE);
        this.recordTrees.delete(folder);
        continue;
      }
      const list = [...entries.values()];
      const oid = add('tree', encodeTree(list));
      this.root.set({ mode: TREE_MODE, name: folder, oid });
      this.recordTrees.set(folder, { oid, entries: list });
    }
  }

  /**
   * Working-tree copies for operators; git is the truth. Each file is rewritten in place with
   * blocking calls (~15 µs a file): a temp file and a rename per host cost ~190 µs of kernel time
   * each (a new inode and a freed one, on a filesystem mounted with discard) and made the kernel
   * the storm's biggest CPU user. The price: a reader racing the write may see a mix of old and
   * new for those microseconds, and a kill between write and truncate leaves a torn copy, which
   * the next open repairs (reconcileWorkingTree).
   */
  private async mirror(items: WriteItem[]): Promise<void> {
    // Per serial: the newest conf.json, and each side file the batch wrote, at its newest.
    const latest = new Map<string, { content: string; sides: Map<string, string> } | undefined>();
    for (const item of items) {
      if (item.records) {
        for (const w of item.records.writes) this.tree.writeRecord(w.folder, w.name, w.content);
        continue;
      }
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
      if (entry === undefined) this.tree.removeHost(serial);
      else if (serial) this.tree.writeHost(serial, entry.content, entry.sides);
      else this.tree.writeCluster(entry.content);
    }
  }

  // ---- Changes made outside mayu: operators' commits and hand edits ----

  private assertNotRefused(serial: string): void {
    const refused = this.refusedEdits.get(serial);
    if (refused) throw new HostEditRefusedError(`${refused.source} is refused: ${refused.problems.join('; ')}. Fix or revert the file; until then this host's changes wait`);
  }

  /** Whether the ref on disk names a commit mayu did not write (read without waiting: ~5 µs). */
  private refMovedOutside(): boolean {
    const gitdir = path.join(this.opts.dir, '.git');
    let found: string | undefined;
    try {
      found = nodeFs.readFileSync(path.join(gitdir, REF), 'utf8').trim();
    } catch {
      const packed = nodeFs.readFileSync(path.join(gitdir, 'packed-refs'), { encoding: 'utf8', flag: 'r' });
      found = packed.split('\n').find((l) => l.endsWith(` ${REF}`))?.split(' ')[0];
    }
    return found !== this.gitHead && !(this.checkpointRun && this.unflushed.some((u) => u.head === found));
  }

  /** Every outsideCheckMs: the branch first, then each host's file and folders added by hand. */
  /**
   * The hosts whose files the periodic scan checks this time: all of them up to
   * HAND_EDIT_SCAN_HOSTS, else the next that many, round the table. Statting every conf.json
   * blocked the event loop ~70 ms a second at 10 000 hosts (7.5 s of a storm's main thread);
   * an edited host is still checked before anything reads or changes it.
   */
  private handEditSlice(): string[] {
    const serials = [...this.table.serials()];
    if (serials.length <= HAND_EDIT_SCAN_HOSTS) return serials;
    const start = this.handEditCursor % serials.length;
    this.handEditCursor = start + HAND_EDIT_SCAN_HOSTS;
    const slice = serials.slice(start, start + HAND_EDIT_SCAN_HOSTS);
    return slice.length < HAND_EDIT_SCAN_HOSTS ? [...slice, ...serials.slice(0, HAND_EDIT_SCAN_HOSTS - slice.length)] : slice;
  }

  private async scanOutside(): Promise<void> {
    if (this.closed) return;
    await this.outsideCheck();
    if (this.closed || this.refusedHead || this.opts.outsideChanges !== 'take') return;
    try {
      for (const serial of this.handEditSlice()) this.takeHandEdit(serial);
      for (const serial of [...this.refusedEdits.keys()]) if (!this.table.has(serial)) this.takeAddedHost(serial);
      for (const serial of this.tree.unknownHostFolders((s) => this.table.has(s) || this.refusedEdits.has(s))) this.takeAddedHost(serial);
    } catch (err) {
      this.opts.onOutsideError(err as Error);
    }
  }

  /** Before anything reads or changes a host: an edit of its conf.json by hand goes first. */
  private takeHandEdit(serial: string): void {
    if (this.closed || this.opts.outsideChanges !== 'take') return;
    const before = this.table.peek(serial);
    if (!before) return;
    const check: FileCheck = this.tree.check(serial);
    if (check.kind === 'same') return;
    // The branch moved too (an operator edits, then commits): the commit is read first, and
    // the file is judged against it afterwards.
    if (this.refMovedOutside()) {
      void this.outsideCheck();
      return;
    }
    if (check.kind === 'changed') {
      this.judgeEdit(serial, before, check.text, 'edited');
      return;
    }
    // Only a removed folder is a deletion: an editor may replace the file by a rename.
    if (nodeFs.existsSync(path.join(this.opts.dir, serial))) return;
    this.clearRefusedEdit(serial);
    this.takeEdit(serial, before, undefined, 'deleted by hand');
  }

  private takeAddedHost(serial: string): void {
    const text = this.tree.readHostFile(serial);
    if (text === undefined) this.clearRefusedEdit(serial);
    else this.judgeEdit(serial, undefined, text, 'added');
  }

  /** A conf.json written by hand: taken as its own commit, or refused (left as written, loud). */
  private judgeEdit(serial: string, before: Host | undefined, text: string, how: 'edited' | 'added'): void {
    const source = `${serial}/${HOST_FILE} (${how} by hand)`;
    let host: Host;
    try {
      if (!isSerialName(serial)) throw new Error('the folder name is not a valid serial');
      host = decodeHost(JSON.parse(text));
    } catch (err) {
      this.refuseEdit(serial, { source, problems: [(err as Error).message] });
      return;
    }
    if (before && hostsEqual(host, before)) {
      // The same host written differently (or put back as it was): nothing to commit.
      this.tree.remember(serial);
      this.clearRefusedEdit(serial);
      return;
    }
    const problems = this.opts.checkEdits([{ serial, host, before }], this.viewWith(new Map([[serial, host]])));
    if (problems.length > 0) {
      this.refuseEdit(serial, { source, problems });
      return;
    }
    this.clearRefusedEdit(serial);
    // Taken as written; mayu's copy of the commit (0.11's format) replaces the file.
    this.tree.remember(serial);
    this.takeEdit(serial, before, host, how === 'added' ? 'added by hand' : `updated by hand (${changedFields(before, host).join(', ')})`);
  }

  private takeEdit(serial: string, before: Host | undefined, host: Host | undefined, message: string): void {
    const written = host ? this.apply(serial, [{ host, message }]) : this.remove(serial, message);
    written.then(
      (commit) => this.opts.onAdopted([{ serial, before, after: host, commit, messages: [hostCommitMessage(serial, message)] }]),
      (err: Error) => this.opts.onOutsideError(err),
    );
  }

  private refuseEdit(serial: string, problem: OutsideProblem): void {
    if (JSON.stringify(this.refusedEdits.get(serial)) === JSON.stringify(problem)) return;
    this.refusedEdits.set(serial, problem);
    this.opts.onOutsideProblems(this.outsideProblems());
  }

  private clearRefusedEdit(serial: string): void {
    if (this.refusedEdits.delete(serial)) this.opts.onOutsideProblems(this.outsideProblems());
  }

  private setRefusedHead(refused: GitStore['refusedHead']): void {
    if (JSON.stringify(refused) === JSON.stringify(this.refusedHead)) return;
    this.refusedHead = refused;
    this.opts.onOutsideProblems(this.outsideProblems());
  }

  /** Every host as it would be with `overlay` taken (undefined: removed). */
  private viewWith(overlay: ReadonlyMap<string, Host | undefined>): HostsAfter {
    const table = this.table;
    return {
      get: (serial) => (overlay.has(serial) ? overlay.get(serial) : table.peek(serial)),
      *all() {
        for (const [serial, host] of table.entries()) if (!overlay.has(serial)) yield host;
        for (const host of overlay.values()) if (host) yield host;
      },
    };
  }

  /** Reads commits that reached the ref without mayu and takes or refuses them; one check at a time. */
  private outsideCheck(evenIfClosed = false): Promise<void> {
    this.adoption ??= this.locked(() => this.checkOutsideNow(evenIfClosed))
      .catch((err: Error) => this.opts.onOutsideError(err))
      .finally(() => {
        this.adoption = undefined;
        if (this.unflushed.length > 0) this.scheduleCheckpoint();
      });
    return this.adoption;
  }

  private async checkOutsideNow(evenIfClosed = false): Promise<void> {
    if (this.closed && !this.checkpointRun && !evenIfClosed) return;
    await this.checkpointRun?.catch(() => undefined);
    const found = await resolveRef(path.join(this.opts.dir, '.git'), REF);
    if (found === this.gitHead) {
      // Nothing outside, or the operator put the branch back.
      this.setRefusedHead(undefined);
      return;
    }
    if (this.refusedHead && this.refusedHead.head === found) return;
    await this.reader.refresh();
    const outside = await readOutsideCommits(this.reader, this.gitHead, found);
    // Hosts with changes of mayu's not in git yet keep mayu's (acknowledged) values: those
    // changes are made again on top of the outside commits.
    const mine = new Set<string>(this.pending.serials());
    for (const u of this.unflushed) for (const serial of u.serials) mine.add(serial);
    const historyOnly = this.opts.outsideChanges !== 'take';
    const taken = historyOnly ? [] : outside.hosts.filter((h) => !mine.has(h.serial));
    const problems = historyOnly && !outside.rewritten ? [] : [...outside.problems];
    if (problems.length === 0) {
      const edits = taken.map((h) => ({ serial: h.serial, host: h.host, before: this.table.peek(h.serial) }));
      problems.push(...this.opts.checkEdits(edits, this.viewWith(new Map(taken.map((h) => [h.serial, h.host])))));
    }
    if (problems.length > 0) {
      const subjects = outside.commits.map((c) => c.commit.message.split('\n')[0]).slice(-3);
      // git's index follows the branch the operator left (so their `git revert` finds it clean).
      if (found) this.gitIndex.open(found, this.mirrored);
      this.setRefusedHead({ head: found, source: `commit ${found?.slice(0, 12) ?? '(none)'}${subjects.length ? ` (${subjects.join(' | ')})` : ''}`, problems });
      return;
    }
    await this.adopt(outside, taken);
    this.setRefusedHead(undefined);
  }

  /** Takes valid outside commits: memory, the branch, mayu's unflushed commits replayed on top, history, working tree, events. */
  private async adopt(outside: OutsideCommits, taken: OutsideCommits['hosts']): Promise<void> {
    const base = this.gitHead;
    const old = this.unflushed.slice();
    const yielded = outside.commits.some((c) => this.opts.yieldsTo(c.commit.message));
    const rebased = old.length > 0 && !yielded ? await this.replayUnflushed(old, outside) : undefined;
    if (yielded) this.journal.checkpointed(old.flatMap((u) => u.tickets));
    // From here on nothing fails: the replayed batches are in the journal.
    this.unflushed.splice(0, old.length);
    this.reader.dropMemoryPacks(new Set(old.map((u) => u.memoryPack)));
    if (rebased) this.unflushed.push(rebased.batch);
    const before = new Map(taken.map((h) => [h.serial, this.table.peek(h.serial)]));
    for (const h of taken) {
      this.table.remove(h.serial);
      if (h.host) this.table.load(h.serial, h.host, h.files);
    }
    if (outside.cluster) this.cluster = outside.cluster;
    this.root = rebased?.root ?? new RootTree(outside.root);
    // Records an operator committed (an edited inventory): read as the new root has them.
    await this.loadRecords(parseTree(this.root.bytes)).catch((err: Error) => this.opts.onOutsideError(err));
    this.gitHead = outside.head;
    this.head = rebased?.batch.head ?? outside.head;
    this.history_.forgetAfter(base);
    for (const c of outside.commits) this.history_.record(c.oid, c.commit.message.replace(/\n$/, ''), c.commit.timestamp);
    for (const c of rebased?.commits ?? []) this.history_.record(c.oid, c.message.replace(/\n$/, ''), c.timestamp);
    for (const h of taken) this.mirrorAdopted(h);
    // git's index follows the new branch (an operator's `git commit` may have written it already).
    this.gitIndex.open(outside.head, this.mirrored);
    if (rebased) this.gitIndex.recordBatch(rebased.batch.head, rebased.batch.indexChanges);
    if (taken.length > 0) {
      const messages = outside.commits.map((c) => c.commit.message.split('\n')[0]!);
      this.opts.onAdopted(taken.map((h) => ({ serial: h.serial, before: before.get(h.serial), after: h.host, commit: outside.head, messages })));
    }
  }

  /** mayu's batches not yet in git, made again on top of the outside head, as one journal entry. */
  private async replayUnflushed(old: Unflushed[], outside: OutsideCommits) {
    const replayed = await replayCommits(this.reader, old.flatMap((u) => u.commits), { head: outside.head, root: new RootTree(outside.root) });
    const oldCommits = new Set(old.flatMap((u) => u.commits));
    const packed = packRecords(stillNeeded(old.flatMap((u) => u.objects), oldCommits, replayed), replayed.objects);
    const ticket = await this.journal.append({ parent: outside.head, head: replayed.head, objects: packed.objects, supersedes: old.map((u) => u.head) });
    const memoryPack = `journal-${packed.checksum.toString('hex')}`;
    this.reader.addMemoryPack(memoryPack, packed.index, packed.bytes);
    const batch: Unflushed = {
      parent: outside.head, head: replayed.head, objects: packed.objects, tickets: [...old.flatMap((u) => u.tickets), ticket], memoryPack,
      commits: replayed.commits.map((c) => c.oid), serials: new Set(old.flatMap((u) => [...u.serials])), seq: old.at(-1)!.seq,
      indexChanges: old.flatMap((u) => u.indexChanges),
    };
    return { batch, root: replayed.root, commits: replayed.commits };
  }

  /** The working-tree copy of a host an outside commit changed, unless an operator's edit sits there. */
  private mirrorAdopted(h: OutsideCommits['hosts'][number]): void {
    const untouched = this.tree.check(h.serial).kind === 'same';
    if (!h.host) {
      if (untouched) this.tree.removeHost(h.serial);
      return;
    }
    const onDisk = this.tree.readHostFile(h.serial);
    if (onDisk === h.text) this.tree.remember(h.serial);
    else if (untouched || onDisk === undefined) this.tree.writeHost(h.serial, h.text, new Map(Object.entries(h.files)));
  }

  private rollback(itemsNewestFirst: WriteItem[]): void {
    for (const item of itemsNewestFirst) {
      for (const u of [...(item.records?.undo ?? [])].reverse()) this.setRecord(u.folder, u.name, u.prev);
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
