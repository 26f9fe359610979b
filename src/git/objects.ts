import { createHash, type Hash } from 'node:crypto';

// Git's object formats, encoded and parsed without I/O: the store builds its commits from these
// instead of going through isomorphic-git object by object (see docs/performance.md).

export type ObjectType = 'commit' | 'tree' | 'blob' | 'tag';

export interface GitObject {
  type: ObjectType;
  content: Buffer;
}

export function objectId(type: ObjectType, content: Buffer): string {
  return createHash('sha1').update(`${type} ${content.length}\0`, 'latin1').update(content).digest('hex');
}

export const TREE_MODE = '40000';
export const FILE_MODE = '100644';

export interface TreeEntry {
  mode: string;
  name: string;
  oid: string;
}

/** Git orders tree entries by name, comparing a subtree's name as if it ended in "/". */
function sortKey(e: TreeEntry): Buffer {
  return Buffer.from(e.mode === TREE_MODE ? `${e.name}/` : e.name, 'utf8');
}

function entryBytes(e: TreeEntry): Buffer {
  return Buffer.concat([Buffer.from(`${e.mode} ${e.name}\0`, 'utf8'), Buffer.from(e.oid, 'hex')]);
}

/**
 * A copy with its own memory. Small Buffers are slices of Node's shared 8 KB pool, and one kept
 * slice keeps its whole slab: the keys of hosts added one by one during a storm, each made among
 * requests' short-lived buffers, held a slab each (56 MB of a 10 000-machine storm's main heap).
 */
function ownCopy(bytes: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(copy);
  return copy;
}

export function encodeTree(entries: readonly TreeEntry[]): Buffer {
  const sorted = entries.map((e) => ({ key: sortKey(e), bytes: entryBytes(e) })).sort((a, b) => Buffer.compare(a.key, b.key));
  return Buffer.concat(sorted.map((e) => e.bytes));
}

export function parseTree(content: Buffer): TreeEntry[] {
  const entries: TreeEntry[] = [];
  let i = 0;
  while (i < content.length) {
    const space = content.indexOf(32, i);
    const nul = content.indexOf(0, space);
    if (space < 0 || nul < 0 || nul + 21 > content.length) throw new Error('malformed tree object');
    entries.push({
      mode: content.toString('latin1', i, space),
      name: content.toString('utf8', space + 1, nul),
      oid: content.toString('hex', nul + 1, nul + 21),
    });
    i = nul + 21;
  }
  return entries;
}

export interface Signature {
  name: string;
  email: string;
  /** Seconds since the epoch. */
  timestamp: number;
  /** The committer's zone offset then, seconds east of UTC (0.11 committed with git in local time); default 0. */
  offsetSeconds?: number;
}

/** git's "+0100" / "-0530" of an offset in seconds. */
function gitOffset(seconds: number): string {
  const minutes = Math.trunc(Math.abs(seconds) / 60);
  return `${seconds < 0 ? '-' : '+'}${String(Math.trunc(minutes / 60)).padStart(2, '0')}${String(minutes % 60).padStart(2, '0')}`;
}

export interface CommitFields {
  tree: string;
  parents: readonly string[];
  author: Signature;
  message: string;
}

export function encodeCommit(c: CommitFields): Buffer {
  const sig = `${c.author.name} <${c.author.email}> ${c.author.timestamp} ${gitOffset(c.author.offsetSeconds ?? 0)}`;
  const lines = [`tree ${c.tree}`, ...c.parents.map((p) => `parent ${p}`), `author ${sig}`, `committer ${sig}`];
  return Buffer.from(`${lines.join('\n')}\n\n${c.message}`, 'utf8');
}

export interface ParsedCommit {
  tree: string;
  parents: string[];
  /** Author time, seconds since the epoch. */
  timestamp: number;
  message: string;
}

export function parseCommit(content: Buffer): ParsedCommit {
  const text = content.toString('utf8');
  const split = text.indexOf('\n\n');
  const headers = (split < 0 ? text : text.slice(0, split)).split('\n');
  const tree = headers.find((l) => l.startsWith('tree '))?.slice(5);
  if (!tree) throw new Error('malformed commit object: no tree');
  const author = headers.find((l) => l.startsWith('author ')) ?? '';
  const time = /> (\d+) [+-]\d{4}$/.exec(author);
  return {
    tree,
    parents: headers.filter((l) => l.startsWith('parent ')).map((l) => l.slice(7)),
    timestamp: time ? Number(time[1]) : 0,
    message: split < 0 ? '' : text.slice(split + 2),
  };
}

/**
 * The root tree of the cluster repo, kept serialized: a commit changes one entry, so the next
 * root tree is the previous bytes with one entry replaced (same length, for an existing host)
 * or inserted (a new host), never a re-encoding of every host. The bytes are changed in place
 * (one buffer with room to grow): a new 400 KB buffer per commit at 10 000 hosts was a storm's
 * biggest source of garbage. What a change replaced is kept (TreeSplice.old), so an older tree
 * can still be told as a delta of the newer one (root-chain.ts).
 */
/** Entries between two saved SHA-1 states of a root tree (~10 KB of a tree of hosts). */
const HASH_CHUNK = 256;
/** Changes remembered for changesSince(): a batch asks after every commit (a few changes each). */
const KEPT_CHANGES = 1024;

/** Where one set()/remove() changed the bytes: the rest before and after is the same. */
export interface TreeSplice {
  offset: number;
  removed: number;
  inserted: number;
  /** Changes made to the tree so far, this one included: a splice describes the step from `seq - 1` only. */
  seq: number;
  /** The `removed` bytes as they were (a copy). */
  old: Buffer;
  /** The entry's index before the change; for a removal, also its sort key (undoTo() puts it back). */
  index: number;
  key?: Buffer;
}

export class RootTree {
  private keys: Buffer[] = [];
  private lengths: number[] = [];
  private buf = Buffer.alloc(0);
  private len = 0;
  private seq_ = 0;
  /** The last KEPT_CHANGES changes, oldest first. */
  private recent: TreeSplice[] = [];
  /**
   * SHA-1 states after the object header and the first j × HASH_CHUNK entries, with their byte
   * offsets, for the bytes' current length (the header names it). A commit that replaces one
   * host's entry rehashes from the state before that entry only: at 10 000 hosts a root tree is
   * 400 KB and hashing it whole for each of a storm's 100 000 commits was its biggest cost.
   */
  private states: Hash[] = [];
  private stateOffsets: number[] = [];
  private statesLength = -1;

  constructor(entries: readonly TreeEntry[] = []) {
    const sorted = entries.map((e) => ({ key: sortKey(e), bytes: entryBytes(e) })).sort((a, b) => Buffer.compare(a.key, b.key));
    this.keys = sorted.map((e) => e.key);
    this.lengths = sorted.map((e) => e.bytes.length);
    this.buf = Buffer.concat(sorted.map((e) => e.bytes));
    this.len = this.buf.length;
  }

  /** An independent copy (its own bytes); changes of either do not reach the other. */
  clone(): RootTree {
    const copy = new RootTree();
    copy.keys = [...this.keys];
    copy.lengths = [...this.lengths];
    copy.buf = Buffer.from(this.bytes);
    copy.len = this.len;
    copy.seq_ = this.seq_;
    // Saved states are never updated, only copied: sharing them is safe.
    copy.states = [...this.states];
    copy.stateOffsets = [...this.stateOffsets];
    copy.statesLength = this.statesLength;
    return copy;
  }

  /** The tree's object id: objectId('tree', bytes), rehashing only from the last change. */
  oid(): string {
    const bytes = this.bytes;
    if (this.statesLength !== bytes.length || this.states.length === 0) {
      this.states = [createHash('sha1').update(`tree ${bytes.length}\0`, 'latin1')];
      this.stateOffsets = [0];
      this.statesLength = bytes.length;
    }
    let j = this.states.length - 1;
    const hash = this.states[j]!.copy();
    let offset = this.stateOffsets[j]!;
    for (j++; j * HASH_CHUNK <= this.keys.length; j++) {
      let end = offset;
      for (let e = (j - 1) * HASH_CHUNK; e < j * HASH_CHUNK; e++) end += this.lengths[e]!;
      hash.update(bytes.subarray(offset, end));
      offset = end;
      this.states.push(hash.copy());
      this.stateOffsets.push(offset);
    }
    return hash.update(bytes.subarray(offset)).digest('hex');
  }

  /** Changes made so far (TreeSplice.seq of the last one). */
  get seq(): number {
    return this.seq_;
  }

  /** The changes after `seq`, oldest first; undefined when they are no longer all kept. */
  changesSince(seq: number): TreeSplice[] | undefined {
    if (seq === this.seq_) return [];
    const first = this.recent[0];
    if (seq > this.seq_ || !first || first.seq > seq + 1) return undefined;
    return this.recent.slice(seq + 1 - first.seq);
  }

  /**
   * Undoes the changes after `seq` (a batch that could not be stored), in place: a failed batch
   * needs no copy of the 400 KB tree made before it. False when they are no longer all kept.
   */
  undoTo(seq: number): boolean {
    const changes = this.changesSince(seq);
    if (!changes) return false;
    for (let i = changes.length - 1; i >= 0; i--) {
      const c = changes[i]!;
      const length = this.len - c.inserted + c.removed;
      if (length > this.buf.length) {
        const grown = Buffer.allocUnsafe(length);
        this.buf.copy(grown, 0, 0, this.len);
        this.buf = grown;
      }
      this.buf.copyWithin(c.offset + c.removed, c.offset + c.inserted, this.len);
      c.old.copy(this.buf, c.offset);
      this.len = length;
      if (c.removed === 0) {
        this.keys.splice(c.index, 1);
        this.lengths.splice(c.index, 1);
      } else if (c.inserted === 0) {
        this.keys.splice(c.index, 0, c.key!);
        this.lengths.splice(c.index, 0, c.removed);
      } else {
        this.lengths[c.index] = c.removed;
      }
    }
    this.recent.length -= changes.length;
    this.seq_ = seq;
    this.states = [];
    return true;
  }

  /** Saved hash states past entry `index` no longer hold; a new length voids them all. */
  private changed(index: number, offset: number, old: Buffer, inserted: number, key?: Buffer): void {
    const splice: TreeSplice = { offset, removed: old.length, inserted, seq: ++this.seq_, old, index, ...(key ? { key } : {}) };
    this.recent.push(splice);
    if (this.recent.length > KEPT_CHANGES) this.recent.splice(0, this.recent.length - KEPT_CHANGES);
    if (old.length !== inserted) this.states = [];
    else this.states.length = Math.min(this.states.length, Math.floor(index / HASH_CHUNK) + 1);
  }

  /** The serialized tree: a view, valid until the next set()/remove() (copy it to keep it). */
  get bytes(): Buffer {
    return this.buf.subarray(0, this.len);
  }

  get size(): number {
    return this.keys.length;
  }

  /** Index of the first key not below `key`, and the byte offset of that entry. */
  private find(key: Buffer): { index: number; offset: number } {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (Buffer.compare(this.keys[mid]!, key) < 0) lo = mid + 1;
      else hi = mid;
    }
    let offset = 0;
    for (let i = 0; i < lo; i++) offset += this.lengths[i]!;
    return { index: lo, offset };
  }

  /** Drops the entry of that name and mode (a host folder: TREE_MODE); false when there is none. */
  remove(name: string, mode: string): boolean {
    const key = sortKey({ mode, name, oid: '' });
    const { index, offset } = this.find(key);
    if (index >= this.keys.length || !this.keys[index]!.equals(key)) return false;
    const length = this.lengths[index]!;
    const old = ownCopy(this.buf.subarray(offset, offset + length));
    this.buf.copyWithin(offset, offset + length, this.len);
    this.len -= length;
    this.changed(index, offset, old, 0, this.keys[index]);
    this.keys.splice(index, 1);
    this.lengths.splice(index, 1);
    return true;
  }

  set(entry: TreeEntry): void {
    const key = sortKey(entry);
    const bytes = entryBytes(entry);
    const { index: lo, offset } = this.find(key);
    const replaces = lo < this.keys.length && this.keys[lo]!.equals(key);
    const oldLength = replaces ? this.lengths[lo]! : 0;
    const old = ownCopy(this.buf.subarray(offset, offset + oldLength));
    const length = this.len - oldLength + bytes.length;
    if (length > this.buf.length) {
      // Room for a few hundred more hosts before the next copy.
      const grown = Buffer.allocUnsafe(Math.max(length, Math.ceil(this.buf.length * 1.25) + 16_384));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    if (bytes.length !== oldLength) this.buf.copyWithin(offset + bytes.length, offset + oldLength, this.len);
    bytes.copy(this.buf, offset);
    this.len = length;
    this.changed(lo, offset, old, bytes.length);
    if (replaces) {
      this.lengths[lo] = bytes.length;
    } else {
      this.keys.splice(lo, 0, ownCopy(key));
      this.lengths.splice(lo, 0, bytes.length);
    }
  }
}
