import * as fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { IOV_MAX, piecesAfter } from '../fs/write-pieces.ts';

// The git store's write-ahead journal. A batch of commits is acknowledged once its pack records
// are appended here and fdatasync'd: one write into a file that already exists, where a pack and
// a ref per batch cost three new files (on this VM's ext4, ~0.5 ms of kernel time each) and
// three rounds of fsync. The records reach git (one pack, then the ref) a little later, many
// batches at a time (git-store.ts: checkpoint); after a kill, the next open writes whatever the
// journal holds beyond the ref.
//
// Two files take turns: appends go to the active one; a checkpoint switches to the other when
// everything in it is in git, and overwrites it from the start. An entry names its parent
// commit, so stale entries (already in git) never chain onto the ref and are passed over; a torn
// entry fails its CRC and ends the scan of its file.

const fdatasync = promisify(fs.fdatasync);
const MAGIC = 0x4d594a31; // "MYJ1"
/** An entry that names the heads of entries it replaces (made again on top of outside commits). */
const MAGIC_SUPERSEDING = 0x4d594a32; // "MYJ2"
const FILES = ['mayu-journal-0', 'mayu-journal-1'] as const;
const NO_COMMIT = '0'.repeat(40);

/** A pack record as the batch's pack holds it; a delta names its base (a root tree of the batch). */
export interface JournalObject {
  oid: string;
  crc: number;
  record: Buffer;
  baseOid?: string;
}

export interface JournalEntry {
  /** The commit the batch built on (undefined for the repo's first). */
  parent: string | undefined;
  /** The batch's last commit. */
  head: string;
  objects: JournalObject[];
  /**
   * Heads of earlier entries this one replaces: their commits were made again in it on top of
   * commits made outside (git-store.ts adopt). They are never written to git after a kill.
   */
  supersedes?: string[];
}

interface Stored extends JournalEntry {
  seq: number;
  file: number;
}

/** What the store needs of a journal (tests wrap it to make appends fail). */
export interface Journal {
  /** Resolves once the entry is durable; returns a handle for checkpointed(). */
  append(entry: JournalEntry): Promise<JournalTicket>;
  /** Entries following `head` (the ref on disk), oldest first: what a kill left outside git. */
  chainFrom(head: string | undefined): JournalEntry[];
  /** Commits entries build on that no entry made: where each chain of entries starts. */
  chainStarts(): (string | undefined)[];
  /** Heads of entries that later entries replaced. */
  superseded(): Set<string>;
  /** The entries are in git: their file may be reused once nothing else in it is pending. */
  checkpointed(tickets: readonly JournalTicket[]): void;
  /** Called as a checkpoint starts: new entries go to the other file if it is free. */
  rotate(): void;
  /** Everything is in git: both files are emptied. */
  clear(): Promise<void>;
  close(): Promise<void>;
}

/** The journal took no more entries after a failed append it could not undo; a restart clears it. */
export class JournalUnusableError extends Error {}

export interface JournalTicket {
  readonly file: number;
}

export class GitJournal implements Journal {
  private active = 0;
  private readonly offsets = [0, 0];
  private readonly pendingIn = [0, 0];
  private seq = 0;
  /** Set when a failed append could not be undone on disk. */
  private broken: Error | undefined;

  private constructor(private readonly fds: number[], private readonly found: Stored[], private readonly sync: (fd: number) => Promise<void>) {
    this.seq = found.reduce((max, e) => Math.max(max, e.seq + 1), 0);
    // Until clear(), appends go after whatever the files hold.
    this.offsets[0] = fs.fstatSync(fds[0]!).size;
    this.offsets[1] = fs.fstatSync(fds[1]!).size;
  }

  /** `fdatasync`: replaceable so tests can make the disk refuse a write. */
  static async open(gitdir: string, opts: { fdatasync?: (fd: number) => Promise<void> } = {}): Promise<GitJournal> {
    const created = FILES.some((name) => !fs.existsSync(path.join(gitdir, name)));
    const fds = FILES.map((name) => fs.openSync(path.join(gitdir, name), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644));
    if (created) {
      // New files: their names must survive a power cut too, or the first entries go with them.
      const dir = fs.openSync(gitdir, 'r');
      try {
        fs.fsyncSync(dir);
      } finally {
        fs.closeSync(dir);
      }
    }
    const found: Stored[] = [];
    fds.forEach((fd, file) => found.push(...readEntries(fs.readFileSync(fd), file)));
    return new GitJournal(fds, found, opts.fdatasync ?? fdatasync);
  }

  chainFrom(head: string | undefined): JournalEntry[] {
    // After a failed append, its entry may be on disk and the next batch built on the same
    // parent: the later entry (higher seq) is the one that was acknowledged.
    const byParent = new Map<string, Stored>();
    for (const e of this.found) {
      const key = e.parent ?? NO_COMMIT;
      if ((byParent.get(key)?.seq ?? -1) < e.seq) byParent.set(key, e);
    }
    const chain: JournalEntry[] = [];
    const seen = new Set<string>();
    let at = head ?? NO_COMMIT;
    for (let next = byParent.get(at); next && !seen.has(next.head); next = byParent.get(at)) {
      seen.add(next.head);
      chain.push({ parent: next.parent, head: next.head, objects: next.objects, ...(next.supersedes ? { supersedes: next.supersedes } : {}) });
      at = next.head;
    }
    return chain;
  }

  superseded(): Set<string> {
    return new Set(this.found.flatMap((e) => e.supersedes ?? []));
  }

  chainStarts(): (string | undefined)[] {
    const made = new Set(this.found.map((e) => e.head));
    return [...new Set(this.found.map((e) => e.parent).filter((p) => p === undefined || !made.has(p)))];
  }

  async append(entry: JournalEntry): Promise<JournalTicket> {
    if (this.broken) throw new JournalUnusableError(`journal unusable since a write failed (${this.broken.message}); restart mayu`, { cause: this.broken });
    const file = this.active;
    const fd = this.fds[file]!;
    const start = this.offsets[file]!;
    const parts = encodeEntryParts(entry, this.seq++);
    try {
      const length = writeAllAt(fd, parts, start);
      this.offsets[file] = start + length;
      this.pendingIn[file]!++;
      try {
        await this.sync(fd);
      } catch (err) {
        this.pendingIn[file]!--;
        throw err;
      }
    } catch (err) {
      await this.discard(file, start);
      throw err;
    }
    return { file };
  }

  /**
   * A failed append's bytes may have reached the disk: left there, the entry would end the scan
   * of its file before the entries written after it (acknowledged ones), or be replayed although
   * its change was refused. The file is cut at the entry's start (what lies beyond is the torn
   * entry or stale entries already in git) and the next entry goes in its place; cutting needs no
   * free space, where zeroing the magic could need a new block on a full disk. If even that
   * cannot be made durable, the journal takes no more entries until a restart.
   */
  private async discard(file: number, start: number): Promise<void> {
    this.offsets[file] = start;
    try {
      fs.ftruncateSync(this.fds[file]!, start);
      await this.sync(this.fds[file]!);
    } catch (err) {
      this.broken = err as Error;
    }
  }

  checkpointed(tickets: readonly JournalTicket[]): void {
    for (const t of tickets) this.pendingIn[t.file]!--;
  }

  rotate(): void {
    const other = 1 - this.active;
    if (this.pendingIn[other] !== 0) return;
    this.active = other;
    this.offsets[other] = 0;
  }

  async clear(): Promise<void> {
    for (const fd of this.fds) fs.ftruncateSync(fd, 0);
    await Promise.all(this.fds.map((fd) => this.sync(fd)));
    this.offsets[0] = this.offsets[1] = 0;
    this.found.length = 0;
  }

  async close(): Promise<void> {
    for (const fd of this.fds) fs.closeSync(fd);
  }
}

/**
 * magic u32 | body length u32 | body | crc32(body) u32, all big-endian. Body: seq u32, parent,
 * head, (MYJ2 only: count u32, superseded heads), object count u32, objects. As pieces to write
 * one after the other: the objects' records are the batch's own buffers, not copied into one (a
 * storm's batch carries a 400 KB root tree).
 */
export function encodeEntryParts(entry: JournalEntry, seq: number): Buffer[] {
  const supersedes = entry.supersedes ?? [];
  const fixed = 4 + 20 + 20 + 4 + (supersedes.length > 0 ? 4 + 20 * supersedes.length : 0);
  let size = fixed;
  for (const o of entry.objects) size += 20 + 4 + 4 + 1 + (o.baseOid ? 20 : 0) + o.record.length;
  const head = Buffer.allocUnsafe(8 + fixed);
  head.writeUInt32BE(supersedes.length > 0 ? MAGIC_SUPERSEDING : MAGIC, 0);
  head.writeUInt32BE(size, 4);
  let pos = 8;
  head.writeUInt32BE(seq >>> 0, pos);
  pos += 4;
  pos += head.write(entry.parent ?? NO_COMMIT, pos, 'hex');
  pos += head.write(entry.head, pos, 'hex');
  if (supersedes.length > 0) {
    head.writeUInt32BE(supersedes.length, pos);
    pos += 4;
    for (const h of supersedes) pos += head.write(h, pos, 'hex');
  }
  head.writeUInt32BE(entry.objects.length, pos);
  const parts: Buffer[] = [head];
  let crc = crc32(head.subarray(8));
  for (const o of entry.objects) {
    const meta = Buffer.allocUnsafe(20 + 4 + 4 + 1 + (o.baseOid ? 20 : 0));
    let at = meta.write(o.oid, 0, 'hex');
    meta.writeUInt32BE(o.crc >>> 0, at);
    meta.writeUInt32BE(o.record.length, at + 4);
    meta[at + 8] = o.baseOid ? 1 : 0;
    at += 9;
    if (o.baseOid) meta.write(o.baseOid, at, 'hex');
    crc = crc32(o.record, crc32(meta, crc));
    parts.push(meta, o.record);
  }
  const tail = Buffer.allocUnsafe(4);
  tail.writeUInt32BE(crc >>> 0, 0);
  parts.push(tail);
  return parts;
}

/** Writes `parts` one after the other at `position`, resuming after a short write; returns the length. */
function writeAllAt(fd: number, parts: readonly Buffer[], position: number): number {
  let rest = parts.filter((p) => p.length > 0);
  let done = 0;
  while (rest.length > 0) {
    // A batch of 256 changes has ~2 300 pieces: several calls.
    const n = fs.writevSync(fd, rest.slice(0, IOV_MAX), position + done);
    done += n;
    rest = piecesAfter(rest, n);
  }
  return done;
}

/** The valid entries of one file, from its start to the first torn or foreign bytes. */
export function readEntries(data: Buffer, file: number): Stored[] {
  const out: Stored[] = [];
  let pos = 0;
  while (pos + 12 <= data.length && (data.readUInt32BE(pos) === MAGIC || data.readUInt32BE(pos) === MAGIC_SUPERSEDING)) {
    const superseding = data.readUInt32BE(pos) === MAGIC_SUPERSEDING;
    const size = data.readUInt32BE(pos + 4);
    const end = pos + 8 + size;
    if (size < 48 || end + 4 > data.length) break;
    const body = data.subarray(pos + 8, end);
    if ((crc32(body) >>> 0) !== data.readUInt32BE(end)) break;
    out.push({ ...decodeBody(body, superseding), file });
    pos = end + 4;
  }
  return out;
}

function decodeBody(body: Buffer, superseding: boolean): Omit<Stored, 'file'> {
  const seq = body.readUInt32BE(0);
  const parent = body.toString('hex', 4, 24);
  const head = body.toString('hex', 24, 44);
  let pos = 44;
  const supersedes: string[] = [];
  if (superseding) {
    const n = body.readUInt32BE(pos);
    pos += 4;
    for (let i = 0; i < n; i++, pos += 20) supersedes.push(body.toString('hex', pos, pos + 20));
  }
  const count = body.readUInt32BE(pos);
  pos += 4;
  const objects: JournalObject[] = [];
  for (let i = 0; i < count; i++) {
    const oid = body.toString('hex', pos, pos + 20);
    const crc = body.readUInt32BE(pos + 20);
    const len = body.readUInt32BE(pos + 24);
    const isDelta = body[pos + 28] === 1;
    pos += 29;
    // Copies: the file's buffer is dropped once the chain is known.
    if (isDelta) {
      objects.push({ oid, crc, record: Buffer.from(body.subarray(pos + 20, pos + 20 + len)), baseOid: body.toString('hex', pos, pos + 20) });
      pos += 20;
    } else {
      objects.push({ oid, crc, record: Buffer.from(body.subarray(pos, pos + len)) });
    }
    pos += len;
  }
  return { seq, parent: parent === NO_COMMIT ? undefined : parent, head, objects, ...(supersedes.length > 0 ? { supersedes } : {}) };
}
