import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, linkSync, lstatSync, openSync, renameSync, rmSync, writeSync, type BigIntStats } from 'node:fs';
import path from 'node:path';

// git's index (.git/index), format version 2 (Documentation/gitformat-index.txt): "DIRC",
// version, entry count; the entries sorted by path bytes, each with the stat data git compares
// to tell an unchanged file without reading it; extensions; a SHA-1 of everything before it.
// Versions 3 and 4 (extended flags, compressed paths) are read too, as an operator's git may
// write them; mayu writes version 2.

/** The lstat(2) fields git keeps per entry, each cut to 32 bits as git stores them. */
export interface IndexStat {
  ctimeSec: number;
  ctimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  dev: number;
  ino: number;
  uid: number;
  gid: number;
  size: number;
}

export interface IndexEntry {
  path: string;
  /** 0o100644, 0o100755, 0o120000 (symlink), 0o160000 (gitlink). */
  mode: number;
  oid: string;
  stat: IndexStat;
  /** 0 unless a merge conflict left the entry (1-3). */
  stage?: number;
}

export interface ParsedIndex {
  version: number;
  entries: IndexEntry[];
  /** Signatures of the extensions, in order (e.g. TREE). */
  extensions: string[];
}

/**
 * What `git read-tree` records: git cannot trust it and compares the file's content (a size
 * of 0 with a non-empty blob makes git read the file). Always truthful, just slower for git.
 */
export const ZERO_STAT: IndexStat = Object.freeze({ ctimeSec: 0, ctimeNsec: 0, mtimeSec: 0, mtimeNsec: 0, dev: 0, ino: 0, uid: 0, gid: 0, size: 0 });

const SIGNATURE = 'DIRC';
const HEADER = 12;
const TRAILER = 20;
/** Stat data (40), object id (20), flags (2). */
const ENTRY_FIXED = 62;
const NAME_MASK = 0xfff;
const EXTENDED_FLAG = 0x4000;

const NS = 1_000_000_000n;
const u32 = (x: bigint) => Number(BigInt.asUintN(32, x));

export function statOf(st: BigIntStats): IndexStat {
  return {
    ctimeSec: u32(st.ctimeNs / NS), ctimeNsec: Number(st.ctimeNs % NS),
    mtimeSec: u32(st.mtimeNs / NS), mtimeNsec: Number(st.mtimeNs % NS),
    dev: u32(st.dev), ino: u32(st.ino), uid: u32(st.uid), gid: u32(st.gid), size: u32(st.size),
  };
}

export function sameStat(a: IndexStat, b: IndexStat): boolean {
  return a.mtimeSec === b.mtimeSec && a.mtimeNsec === b.mtimeNsec && a.ctimeSec === b.ctimeSec && a.ctimeNsec === b.ctimeNsec
    && a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.uid === b.uid && a.gid === b.gid;
}

export function isZeroStat(s: IndexStat): boolean {
  return s.size === 0 && s.mtimeSec === 0 && s.mtimeNsec === 0 && s.ino === 0;
}

/**
 * Git's "racily clean": a file changed in the same second as the index was written may carry
 * the stat data of its old content. Git re-reads such entries; mayu re-checks them (compared
 * by seconds: git built without USE_NSEC looks at seconds only).
 */
export function isRacy(s: IndexStat, indexMtimeSec: number): boolean {
  return s.mtimeSec >= indexMtimeSec;
}

/** Index order: by path bytes (UTF-8), i.e. by code point, which UTF-16 `<` is not above U+D7FF. */
export function comparePaths(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Surrogates (code points above U+FFFF) rank after U+E000-U+FFFF. */
function codePointRank(c: number): number {
  if (c < 0xd800) return c;
  return c < 0xe000 ? c + 0x2000 : c - 0x800;
}

/** One entry's bytes (version 2): fixed part, path, 1-8 NULs to a multiple of 8. */
export function encodeEntry(e: IndexEntry): Buffer {
  const name = Buffer.from(e.path, 'utf8');
  // From Node's shared pool (10 000 entries stay in memory): the padding is zeroed by hand.
  const b = Buffer.allocUnsafe((ENTRY_FIXED + name.length + 8) & ~7);
  b.fill(0, ENTRY_FIXED + name.length);
  const s = e.stat;
  b.writeUInt32BE(s.ctimeSec, 0);
  b.writeUInt32BE(s.ctimeNsec, 4);
  b.writeUInt32BE(s.mtimeSec, 8);
  b.writeUInt32BE(s.mtimeNsec, 12);
  b.writeUInt32BE(s.dev, 16);
  b.writeUInt32BE(s.ino, 20);
  b.writeUInt32BE(e.mode, 24);
  b.writeUInt32BE(s.uid, 28);
  b.writeUInt32BE(s.gid, 32);
  b.writeUInt32BE(s.size, 36);
  b.write(e.oid, 40, 20, 'hex');
  b.writeUInt16BE(((e.stage ?? 0) << 12) | Math.min(name.length, NAME_MASK), 60);
  name.copy(b, ENTRY_FIXED);
  return b;
}

/** A whole index file (no extensions) from entries already encoded and sorted. */
export function assembleIndex(encodedSorted: readonly Buffer[]): Buffer {
  const header = Buffer.alloc(HEADER);
  header.write(SIGNATURE, 0, 'latin1');
  header.writeUInt32BE(2, 4);
  header.writeUInt32BE(encodedSorted.length, 8);
  // One buffer with room for the checksum: at 10 000 hosts the index is ~1 MB, written at every
  // checkpoint, and a second copy for the checksum was garbage the size of the whole file.
  let size = HEADER + 20;
  for (const e of encodedSorted) size += e.length;
  const out = Buffer.allocUnsafe(size);
  let pos = header.copy(out, 0);
  for (const e of encodedSorted) pos += e.copy(out, pos);
  createHash('sha1').update(out.subarray(0, pos)).digest().copy(out, pos);
  return out;
}

export function encodeIndex(entries: readonly IndexEntry[]): Buffer {
  return assembleIndex([...entries].sort((a, b) => comparePaths(a.path, b.path) || (a.stage ?? 0) - (b.stage ?? 0)).map(encodeEntry));
}

/** Parses an index (versions 2-4); throws on anything damaged, the checksum included. */
export function parseIndex(buf: Buffer): ParsedIndex {
  if (buf.length < HEADER + TRAILER || buf.toString('latin1', 0, 4) !== SIGNATURE) throw new Error('not a git index');
  const body = buf.subarray(0, buf.length - TRAILER);
  if (!createHash('sha1').update(body).digest().equals(buf.subarray(body.length))) throw new Error('index checksum mismatch');
  const version = buf.readUInt32BE(4);
  if (version < 2 || version > 4) throw new Error(`index version ${version} not supported`);
  const count = buf.readUInt32BE(8);
  const entries: IndexEntry[] = [];
  let o = HEADER;
  let previous: Buffer = Buffer.alloc(0);
  for (let i = 0; i < count; i++) {
    if (o + ENTRY_FIXED > body.length) throw new Error('index truncated');
    const flags = buf.readUInt16BE(o + 60);
    let nameAt = o + ENTRY_FIXED;
    if (flags & EXTENDED_FLAG) {
      if (version < 3) throw new Error('extended flags in a version 2 index');
      nameAt += 2;
    }
    let name: Buffer;
    let next: number;
    if (version === 4) {
      // The path is the previous one minus N trailing bytes, plus a NUL-terminated suffix.
      let c = buf[nameAt++]!;
      let strip = c & 127;
      while (c & 128) {
        c = buf[nameAt++]!;
        strip = ((strip + 1) * 128) + (c & 127);
      }
      const nul = buf.indexOf(0, nameAt);
      if (nul < 0 || nul >= body.length || strip > previous.length) throw new Error('index entry path damaged');
      name = Buffer.concat([previous.subarray(0, previous.length - strip), buf.subarray(nameAt, nul)]);
      next = nul + 1;
    } else {
      const len = flags & NAME_MASK;
      const nul = len < NAME_MASK ? nameAt + len : buf.indexOf(0, nameAt);
      if (nul < 0 || nul >= body.length || buf[nul] !== 0) throw new Error('index entry path damaged');
      name = buf.subarray(nameAt, nul);
      next = o + ((nameAt - o + name.length + 8) & ~7);
    }
    entries.push({
      path: name.toString('utf8'),
      mode: buf.readUInt32BE(o + 24),
      oid: buf.toString('hex', o + 40, o + 60),
      stage: (flags >> 12) & 3,
      stat: {
        ctimeSec: buf.readUInt32BE(o), ctimeNsec: buf.readUInt32BE(o + 4),
        mtimeSec: buf.readUInt32BE(o + 8), mtimeNsec: buf.readUInt32BE(o + 12),
        dev: buf.readUInt32BE(o + 16), ino: buf.readUInt32BE(o + 20),
        uid: buf.readUInt32BE(o + 28), gid: buf.readUInt32BE(o + 32), size: buf.readUInt32BE(o + 36),
      },
    });
    previous = name;
    o = next;
  }
  const extensions: string[] = [];
  while (o + 8 <= body.length) {
    extensions.push(buf.toString('latin1', o, o + 4));
    o += 8 + buf.readUInt32BE(o + 4);
  }
  if (o !== body.length) throw new Error('index extensions damaged');
  return { version, entries, extensions };
}

export type IndexWrite = { written: true; mtimeSec: number } | { written: false };

/** mayu's own file in .git that becomes index.lock by link(2). */
const TMP = 'mayu-index.tmp';

/**
 * Replaces `<gitdir>/index` the way git's lock protocol expects: the bytes go to mayu's own temp
 * file, which becomes `index.lock` by link(2) (fails if the lock exists: another git process
 * holds the index, mayu leaves it be) and is renamed over the index; then the temp name goes.
 * So a kill leaves an index.lock only while the temp file is a second name of it, which is how
 * removeOwnStaleLock knows it for mayu's. Not fsync'd: the index is a cache of HEAD that the next
 * start checks and rebuilds; rename keeps it whole across a kill. Synchronous: nothing of the
 * store's runs between the files checked and the index written.
 */
export function writeIndexFile(gitdir: string, bytes: Buffer): IndexWrite {
  const tmp = path.join(gitdir, TMP);
  const lock = path.join(gitdir, 'index.lock');
  // Never written through: after a kill it may still be a name of the index.
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  let mtimeSec: number;
  try {
    let done = 0;
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
    mtimeSec = u32(fstatSync(fd, { bigint: true }).mtimeNs / NS);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    linkSync(tmp, lock);
  } catch (err) {
    rmSync(tmp, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { written: false };
    throw err;
  }
  try {
    renameSync(lock, path.join(gitdir, 'index'));
  } catch (err) {
    rmSync(lock, { force: true });
    throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
  return { written: true, mtimeSec };
}

/**
 * At open, before any write: an index.lock that is mayu's temp file under a second name was left
 * by a kill between link and rename, and is removed. Any other index.lock is an operator's git at
 * work or one a crashed git left: as git does, mayu leaves it (and waits for it to go).
 */
export function removeOwnStaleLock(gitdir: string): void {
  const tmp = path.join(gitdir, TMP);
  const lock = path.join(gitdir, 'index.lock');
  try {
    const a = lstatSync(tmp);
    const b = lstatSync(lock);
    if (a.ino === b.ino && a.dev === b.dev) rmSync(lock);
  } catch {
    // Either is missing: nothing of mayu's.
  }
  rmSync(tmp, { force: true });
}
