import { closeSync, constants, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import {
  assembleIndex, comparePaths, encodeEntry, isRacy, isZeroStat, parseIndex, removeOwnStaleLock, sameStat, statOf, writeIndexFile, ZERO_STAT,
  type IndexEntry, type IndexStat,
} from './index-file.ts';
import { encodeTree, objectId, parseCommit, parseTree, TREE_MODE, type GitObject, type TreeEntry } from './objects.ts';

// Keeps .git/index equal to the branch's commit (HEAD as written to disk), so `git status` in
// the working tree is clean while the files are HEAD's, and an operator's `git commit -a`
// commits exactly what the operator changed.
//
// The entries live in memory. Each batch's tree changes are recorded when the batch is
// journaled and applied once a checkpoint has put it in git (the index never names an object
// git does not have yet). Only the files a checkpoint touched are looked at again, once the
// store is idle: opened, fstat'd and hashed, and their stat data kept only if the content is
// HEAD's blob, so the index never vouches for a file that differs (a mirror write not yet done,
// an operator's edit): such an entry, and under load any changed one, gets zeroed stat data,
// which makes git compare the content itself.
// Writes are throttled: at once for a lone change, else once changes stop (QUIET_MS) or at most
// every MAX_WAIT_MS; never closer than MIN_GAP_MS or COST_SHARE times the last write's cost. Each
// write is a new file renamed over the index (git's protocol): a new inode whose blocks the next
// fsync of the journal has to carry, so writing less often is worth more than writing less.

/** A change of the tree: one file set, or every file under a folder replaced (an empty map removes the folder). */
export type TreeChange = { path: string; oid: string } | { dir: string; files: ReadonlyMap<string, string> };

export interface IndexKeeperOptions {
  /** The working tree. */
  dir: string;
  gitdir: string;
  readObject: (oid: string) => Promise<GitObject>;
  /**
   * Once per episode: the index could not be written (an I/O error at once; a lock held by
   * another git once it has been held for lockReportMs); it is retried.
   */
  onError: (err: Error) => void;
  /** An operator's `git status` holds index.lock for a moment: told only past this. Default 10 s. */
  lockReportMs?: number;
  /** After each write: entries, files checked for it, the write's own time (checks and file). */
  onWritten?: (info: { entries: number; checked: number; ms: number }) => void;
  quietMs?: number;
  maxWaitMs?: number;
  retryMs?: number;
}

const FILE = 0o100644;
const EXECUTABLE = 0o100755;
const QUIET_MS = 150;
const MAX_WAIT_MS = 1000;
const MIN_GAP_MS = 250;
/** Index writes take at most 1/COST_SHARE of the time. */
const COST_SHARE = 50;
const RETRY_MS = 250;
const LOCK_REPORT_MS = 10_000;
/** Files checked between two turns of the event loop (~20 µs each). */
const CHECK_SLICE = 256;

interface Slot {
  mode: number;
  oid: string;
  stat: IndexStat;
  /** The entry's encoding, kept until the entry changes. */
  bytes?: Buffer;
}

export class GitIndexKeeper {
  private readonly entries = new Map<string, Slot>();
  /** The entries' paths in index order. */
  private readonly order: string[] = [];
  /** Paths whose file is to be checked (and its stat data taken) at the next write. */
  private readonly dirty = new Set<string>();
  /** Journaled batches not yet applied, oldest first. */
  private readonly pending: { head: string; changes: TreeChange[] }[] = [];
  /** The commit git has, and the working-tree writes (the store's mirror chain) queued by then. */
  private target: { head: string | undefined; mirrored: Promise<unknown> } = { head: undefined, mirrored: Promise.resolve() };
  /** Entries built at open; every write waits for it. */
  private base: Promise<boolean> = Promise.resolve(true);
  /** HEAD could not be read at open: no index is written by this process. */
  private disabled = false;
  /** The entries differ from the index on disk. */
  private changed = false;
  private timer: NodeJS.Timeout | undefined;
  private debounceAt: number | undefined;
  private retryAt: number | undefined;
  private firstDueAt: number | undefined;
  private lastWriteAt = -Infinity;
  private lastWriteMs = 0;
  private lastRequestAt = -Infinity;
  private running: Promise<void> | undefined;
  private again = false;
  /**
   * The next write checks the marked files. Only writes for a lone change or once changes stopped
   * (and flush, and the racily-clean recheck) do: under load the index is written with zeroed stat
   * data for what changed (git compares those files itself), and the files are checked once it is idle.
   */
  private checkDue = false;
  /** Since when writes fail (performance.now()), and whether that was told. */
  private failingSince: number | undefined;
  private told = false;
  private closed = false;

  constructor(private readonly opts: IndexKeeperOptions) {}

  /**
   * Starts from the commit `head` (undefined: a repo without commits yet). An existing index
   * that already lists HEAD's tree is kept; else the entries are rebuilt from HEAD, taking the
   * stat data of the old index where its entry names the same blob. Runs in the background.
   * Called again when the branch moved under the store (commits made outside it, taken in):
   * starts over from that commit once a write under way is done; batches recorded up to it are
   * dropped, later ones kept.
   */
  open(head: string | undefined, mirrored: Promise<unknown>): void {
    this.target = { head, mirrored };
    const before = Promise.all([this.base, this.running]);
    this.base = before.then(() => this.buildBase(head)).then(() => true, (err: Error) => {
      this.disabled = true;
      this.pending.length = 0;
      this.opts.onError(new Error(`git's index not kept (HEAD could not be read): ${err.message}`));
      return false;
    });
    this.request(true);
  }

  /** A journaled batch whose commits end at `head`, with the tree changes of its commits in order. */
  recordBatch(head: string, changes: TreeChange[]): void {
    if (!this.disabled) this.pending.push({ head, changes });
  }

  /** The branch on disk names `head` now; the files its changes wrote are queued in `mirrored`. */
  checkpointed(head: string, mirrored: Promise<unknown>, idle: boolean): void {
    this.target = { head, mirrored };
    this.request(idle);
  }

  /** Writes what is due now, files checked (waits for a write under way first). */
  async flush(): Promise<void> {
    this.disarm();
    while (this.running) await this.running;
    this.checkDue = true;
    await this.run();
  }

  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    this.disarm();
  }

  /**
   * A lone change (the store idle, and quiet before it) is written at once, files checked. Changes
   * in a row (a storm, or one change after another) are written once they stop (quiet for
   * QUIET_MS: files checked), or every MAX_WAIT_MS meanwhile (not checked).
   */
  private request(idle: boolean): void {
    const now = performance.now();
    const quiet = this.opts.quietMs ?? QUIET_MS;
    const lone = idle && now - this.lastRequestAt >= quiet;
    this.lastRequestAt = now;
    if (lone) this.checkDue = true;
    this.firstDueAt ??= now + (this.opts.maxWaitMs ?? MAX_WAIT_MS);
    const wanted = lone ? now : Math.min(now + quiet, this.firstDueAt);
    this.debounceAt = Math.max(wanted, this.lastWriteAt + Math.max(MIN_GAP_MS, COST_SHARE * this.lastWriteMs));
    this.arm();
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const at = Math.min(this.debounceAt ?? Infinity, this.retryAt ?? Infinity);
    if (at === Infinity || this.closed) return;
    this.timer = setTimeout(() => {
      this.disarm();
      this.run().catch(() => undefined);
    }, Math.max(0, at - performance.now()));
    this.timer.unref();
  }

  private disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.debounceAt = this.retryAt = this.firstDueAt = undefined;
  }

  private run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.write().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.request(false);
      }
    });
    return this.running;
  }

  private async write(): Promise<void> {
    if (this.closed || !(await this.base)) return;
    // The checkpointed changes' files are on disk (or the mirror failed: then they differ).
    const { head, mirrored } = this.target;
    await mirrored.catch(() => undefined);
    let ms = 0;
    let t0 = performance.now();
    this.applyUpTo(head);
    if (performance.now() - this.lastRequestAt >= (this.opts.quietMs ?? QUIET_MS) - 1) this.checkDue = true;
    const checked = this.checkDue ? [...this.dirty] : [];
    this.checkDue = false;
    for (const p of checked) this.dirty.delete(p);
    // Many (at start: every file) are checked in slices, not in one long stall of the server.
    // A mirror write landing between a slice and the index is for a newer commit, whose
    // checkpoint marks the file again.
    for (let i = 0; i < checked.length; i += CHECK_SLICE) {
      if (i > 0) {
        ms += performance.now() - t0;
        await new Promise((r) => setImmediate(r));
        t0 = performance.now();
      }
      for (const p of checked.slice(i, i + CHECK_SLICE)) this.check(p);
    }
    if (!this.changed) return;
    let result;
    try {
      result = writeIndexFile(this.opts.gitdir, assembleIndex(this.order.map((p) => this.encoded(p))));
    } catch (err) {
      this.recheck(checked);
      this.fail(new Error(`git's index not written (retried): ${(err as Error).message}`), 0);
      return;
    }
    if (!result.written) {
      this.recheck(checked);
      this.fail(new Error(`${path.join(this.opts.gitdir, 'index.lock')} exists: another git process holds git's index; mayu writes it once the lock is gone`), this.opts.lockReportMs ?? LOCK_REPORT_MS);
      return;
    }
    this.failingSince = undefined;
    this.told = false;
    this.changed = false;
    this.lastWriteAt = performance.now();
    this.lastWriteMs = ms + (this.lastWriteAt - t0);
    this.opts.onWritten?.({ entries: this.order.length, checked: checked.length, ms: this.lastWriteMs });
    // Racily clean entries (changed in the index's second) are checked again and the index
    // rewritten in a later second, so git need not re-read them (as git smudges them on write).
    let racy = false;
    for (const p of checked) {
      const slot = this.entries.get(p);
      if (slot && !isZeroStat(slot.stat) && isRacy(slot.stat, result.mtimeSec)) {
        this.dirty.add(p);
        racy = true;
      }
    }
    if (racy) {
      this.changed = true;
      this.checkDue = true;
      this.retryAt = performance.now() + 1000 - (Date.now() % 1000) + 20;
      this.arm();
    }
  }

  private recheck(paths: readonly string[]): void {
    for (const p of paths) if (this.entries.has(p)) this.dirty.add(p);
    if (paths.length > 0) this.checkDue = true;
  }

  private fail(err: Error, reportAfterMs: number): void {
    const now = performance.now();
    this.failingSince ??= now;
    if (!this.told && now - this.failingSince >= reportAfterMs) {
      this.told = true;
      this.opts.onError(err);
    }
    this.retryAt = performance.now() + (this.opts.retryMs ?? RETRY_MS);
    this.arm();
  }

  private encoded(p: string): Buffer {
    const slot = this.entries.get(p)!;
    slot.bytes ??= encodeEntry({ path: p, mode: slot.mode, oid: slot.oid, stat: slot.stat });
    return slot.bytes;
  }

  /** Applies the recorded batches up to `head`, a commit git has. */
  private applyUpTo(head: string | undefined): void {
    const upTo = this.pending.findIndex((b) => b.head === head);
    if (upTo < 0) return;
    for (const batch of this.pending.splice(0, upTo + 1)) {
      for (const c of batch.changes) {
        if ('path' in c) this.setFile(c.path, c.oid);
        else this.replaceDir(c.dir, c.files);
      }
    }
  }

  private setFile(p: string, oid: string): void {
    // Checked even when the blob is the same: the mirror rewrote the file (new mtime).
    this.dirty.add(p);
    const slot = this.entries.get(p);
    if (slot?.oid === oid && slot.mode === FILE) return;
    if (!slot) this.order.splice(this.lowerBound(p), 0, p);
    this.entries.set(p, { mode: FILE, oid, stat: ZERO_STAT });
    this.changed = true;
  }

  private replaceDir(dir: string, files: ReadonlyMap<string, string>): void {
    const prefix = `${dir}/`;
    const from = this.lowerBound(prefix);
    let to = from;
    while (to < this.order.length && this.order[to]!.startsWith(prefix)) to++;
    const gone = this.order.slice(from, to).filter((p) => !files.has(p.slice(prefix.length)));
    if (gone.length > 0) {
      const keep = new Set(gone);
      this.order.splice(from, to - from, ...this.order.slice(from, to).filter((p) => !keep.has(p)));
      for (const p of gone) {
        this.entries.delete(p);
        this.dirty.delete(p);
      }
      this.changed = true;
    }
    for (const [name, oid] of files) this.setFile(prefix + name, oid);
  }

  private lowerBound(p: string): number {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (comparePaths(this.order[mid]!, p) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Takes the file's stat data if it holds the entry's blob, else zeroes it (git compares). */
  private check(p: string): void {
    const slot = this.entries.get(p);
    if (!slot) return;
    const stat = fileStatIfHolds(path.join(this.opts.dir, p), slot.mode, slot.oid);
    if (sameStat(stat, slot.stat)) return;
    slot.stat = stat;
    slot.bytes = undefined;
    this.changed = true;
  }

  private async buildBase(head: string | undefined): Promise<void> {
    this.entries.clear();
    this.order.length = 0;
    this.dirty.clear();
    this.changed = false;
    this.disabled = false;
    this.pending.splice(0, this.pending.findIndex((b) => b.head === head) + 1);
    removeOwnStaleLock(this.opts.gitdir);
    if (!head) return;
    const indexFile = path.join(this.opts.gitdir, 'index');
    let old: IndexEntry[] = [];
    let indexMtimeSec = 0;
    try {
      const parsed = parseIndex(readFileSync(indexFile));
      old = parsed.entries;
      indexMtimeSec = Math.floor(statSync(indexFile).mtimeMs / 1000);
    } catch {
      // None (a repo mayu wrote before it kept one) or damaged: rebuilt from HEAD.
    }
    const merging = old.some((e) => e.stage !== 0);
    const shape = await treeShape(old.filter((e) => e.stage === 0));
    const rootTree = parseCommit((await this.opts.readObject(head)).content).tree;
    const byPath = new Map(old.filter((e) => e.stage === 0).map((e) => [e.path, e]));
    const keep = (e: IndexEntry) => {
      this.entries.set(e.path, { mode: e.mode, oid: e.oid, stat: e.stat });
      // Stat data git could not trust (zeroed, or racily clean) is checked at the first write.
      if (isZeroStat(e.stat) || isRacy(e.stat, indexMtimeSec)) this.dirty.add(e.path);
    };
    const keepUnder = (dir: string): void => {
      for (const e of shape.files.get(dir) ?? []) keep(e);
      for (const sub of shape.subdirs.get(dir) ?? []) keepUnder(sub);
    };
    if (!merging && shape.oids.get('') === rootTree) {
      keepUnder('');
    } else {
      // Subtrees the old index already matches are taken from it; the others are read.
      const walk = async (treeOid: string, dir: string): Promise<void> => {
        if (!merging && shape.oids.get(dir) === treeOid) return keepUnder(dir);
        for (const e of parseTree((await this.opts.readObject(treeOid)).content)) {
          const p = dir ? `${dir}/${e.name}` : e.name;
          if (e.mode === TREE_MODE) {
            await walk(e.oid, p);
            continue;
          }
          const mode = parseInt(e.mode, 8);
          const was = byPath.get(p);
          if (was && was.oid === e.oid && was.mode === mode) keep(was);
          else {
            this.entries.set(p, { mode, oid: e.oid, stat: ZERO_STAT });
            this.dirty.add(p);
          }
        }
      };
      await walk(rootTree, '');
      this.changed = true;
    }
    this.order.push(...[...this.entries.keys()].sort(comparePaths));
  }
}

/**
 * The stat data of `file` if it is a regular file (of the mode's executable bit) holding the
 * blob `oid`, else ZERO_STAT. Read through one descriptor: the stat data is that of what was read.
 */
export function fileStatIfHolds(file: string, mode: number, oid: string): IndexStat {
  if (mode !== FILE && mode !== EXECUTABLE) return ZERO_STAT;
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return ZERO_STAT;
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile() || ((st.mode & 0o111n) !== 0n) !== (mode === EXECUTABLE)) return ZERO_STAT;
    const size = Number(st.size);
    const buf = Buffer.allocUnsafe(size);
    let done = 0;
    for (let n = 1; done < size && n > 0; done += n) n = readSync(fd, buf, done, size - done, done);
    if (done !== size || objectId('blob', buf) !== oid) return ZERO_STAT;
    return statOf(st);
  } catch {
    return ZERO_STAT;
  } finally {
    closeSync(fd);
  }
}

interface TreeShape {
  /** Folder ('' = top) → the tree object id its entries make. */
  oids: Map<string, string>;
  files: Map<string, IndexEntry[]>;
  subdirs: Map<string, string[]>;
}

/**
 * The trees an index's entries make, folder by folder (how git's TREE cache would see them).
 * ~10 µs a folder: it yields to the event loop every CHECK_SLICE folders.
 */
export async function treeShape(entries: readonly IndexEntry[]): Promise<TreeShape> {
  const files = new Map<string, IndexEntry[]>([['', []]]);
  const subdirs = new Map<string, string[]>();
  const ensure = (dir: string): void => {
    if (files.has(dir)) return;
    files.set(dir, []);
    const i = dir.lastIndexOf('/');
    const parent = i < 0 ? '' : dir.slice(0, i);
    ensure(parent);
    const siblings = subdirs.get(parent);
    if (siblings) siblings.push(dir);
    else subdirs.set(parent, [dir]);
  };
  for (const e of entries) {
    const i = e.path.lastIndexOf('/');
    const dir = i < 0 ? '' : e.path.slice(0, i);
    ensure(dir);
    files.get(dir)!.push(e);
  }
  const oids = new Map<string, string>();
  const deepestFirst = [...files.keys()].map((dir) => ({ dir, depth: dir === '' ? -1 : dir.split('/').length })).sort((a, b) => b.depth - a.depth);
  let n = 0;
  for (const { dir } of deepestFirst) {
    if (++n % CHECK_SLICE === 0) await new Promise((r) => setImmediate(r));
    const tree: TreeEntry[] = files.get(dir)!.map((e) => ({ mode: e.mode.toString(8), name: e.path.slice(dir ? dir.length + 1 : 0), oid: e.oid }));
    for (const sub of subdirs.get(dir) ?? []) tree.push({ mode: TREE_MODE, name: sub.slice(dir ? dir.length + 1 : 0), oid: oids.get(sub)! });
    oids.set(dir, objectId('tree', encodeTree(tree)));
  }
  return { oids, files, subdirs };
}
