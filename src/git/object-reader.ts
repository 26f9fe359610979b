import { open, readdir, readFile, type FileHandle } from 'node:fs/promises';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { applyDelta } from './delta.ts';
import type { GitObject, ObjectType } from './objects.ts';

// Reads objects from the cluster repo: packs (version-2 index, ofs- and ref-deltas, as written
// by mayu or by native git) and loose files. Start-up and history read thousands of objects;
// isomorphic-git's readObject costs several file opens per object, this a binary search and one
// positioned read.

const TYPES: Record<number, ObjectType> = { 1: 'commit', 2: 'tree', 3: 'blob', 4: 'tag' };
const OFS_DELTA = 6;
const REF_DELTA = 7;
const FANOUT = 8;
const OIDS = FANOUT + 256 * 4;

/** A pack whose index is in memory; its .pack file is opened on first read. */
export class PackIndex {
  readonly count: number;
  /** Record start offsets in pack order, to tell where each record ends. */
  private readonly sortedOffsets: Uint32Array;
  private file: Promise<FileHandle> | undefined;
  private whole: Buffer | undefined;
  /** readSynchronously()'s file. */
  private syncFd: number | undefined;
  private packSize = 0;
  /** Record offset -> index position, built on first use (compaction's delta copies). */
  private byOffset: Map<number, number> | undefined;

  /** A pack held in memory only (the journal's batches until a checkpoint writes them to git). */
  static inMemory(name: string, idx: Buffer, bytes: Buffer): PackIndex {
    const pack = new PackIndex(name, '', idx);
    pack.whole = bytes;
    pack.packSize = bytes.length;
    return pack;
  }

  constructor(readonly name: string, readonly dir: string, private readonly idx: Buffer) {
    if (idx.readUInt32BE(0) !== 0xff744f63 || idx.readUInt32BE(4) !== 2) throw new Error(`${name}.idx: not a version-2 pack index`);
    this.count = idx.readUInt32BE(FANOUT + 255 * 4);
    this.sortedOffsets = new Uint32Array(this.count);
    for (let i = 0; i < this.count; i++) this.sortedOffsets[i] = this.offsetAt(i);
    this.sortedOffsets.sort();
  }

  offsetAt(i: number): number {
    const off = this.idx.readUInt32BE(OIDS + this.count * 24 + i * 4);
    if (off & 0x80000000) throw new Error(`${this.name}: packs over 2 GiB are not supported`);
    return off;
  }

  oidAt(i: number): string {
    return this.idx.toString('hex', OIDS + i * 20, OIDS + i * 20 + 20);
  }

  crcAt(i: number): number {
    return this.idx.readUInt32BE(OIDS + this.count * 20 + i * 4);
  }

  /** Offset of the object in the pack, or undefined. */
  find(oid: string): number | undefined {
    const i = this.locate(oid);
    return i === undefined ? undefined : this.offsetAt(i);
  }

  /** The object whose record starts at `offset` (a delta's base), or undefined. */
  oidAtOffset(offset: number): string | undefined {
    if (!this.byOffset) {
      this.byOffset = new Map();
      for (let i = 0; i < this.count; i++) this.byOffset.set(this.offsetAt(i), i);
    }
    const i = this.byOffset.get(offset);
    return i === undefined ? undefined : this.oidAt(i);
  }

  /** Position of the object in the index, or undefined. */
  locate(oid: string): number | undefined {
    const want = Buffer.from(oid, 'hex');
    const first = want[0]!;
    let lo = first === 0 ? 0 : this.idx.readUInt32BE(FANOUT + (first - 1) * 4);
    let hi = this.idx.readUInt32BE(FANOUT + first * 4);
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const c = this.idx.compare(want, 0, 20, OIDS + mid * 20, OIDS + mid * 20 + 20);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return undefined;
  }

  /** Every object: oid and offset, in index (oid) order. */
  *entries(): Generator<{ oid: string; offset: number; crc: number }> {
    for (let i = 0; i < this.count; i++) yield { oid: this.oidAt(i), offset: this.offsetAt(i), crc: this.crcAt(i) };
  }

  /**
   * Reads the whole pack into memory: compaction reads every object of the packs it merges, and
   * one read beats thousands of small ones queued behind the writer's fsyncs in libuv's pool.
   */
  async loadWhole(): Promise<void> {
    this.whole ??= await readFile(path.join(this.dir, `${this.name}.pack`));
    this.packSize = this.whole.length;
  }

  /**
   * For the pack-merge worker thread: positioned reads that block the calling thread (the
   * worker's, not the event loop's), neither queued in libuv's pool behind the writer's fsyncs
   * nor holding the whole pack in memory (loadWhole held every merged pack: at the end of a
   * 10 000-machine storm a merge loaded ~100 MB into mayu's RSS).
   */
  readSynchronously(): void {
    if (this.syncFd !== undefined) return;
    this.syncFd = openSync(path.join(this.dir, `${this.name}.pack`), 'r');
    this.packSize = fstatSync(this.syncFd).size;
  }

  /** Back to positioned reads (after start-up or a merge). */
  unloadWhole(): void {
    this.whole = undefined;
    if (this.syncFd !== undefined) closeSync(this.syncFd);
    this.syncFd = undefined;
  }

  /** The whole record (header, delta base reference, zlib data) at `offset`. */
  async record(offset: number): Promise<Buffer> {
    if (this.whole) return this.whole.subarray(offset, this.recordEnd(offset));
    if (this.syncFd !== undefined) {
      const end = this.recordEnd(offset);
      const buf = Buffer.allocUnsafe(end - offset);
      if (readSync(this.syncFd, buf, 0, buf.length, offset) !== buf.length) throw new Error(`${this.name}.pack: short read at ${offset}`);
      return buf;
    }
    const fh = await this.handle();
    const end = this.recordEnd(offset);
    const buf = Buffer.allocUnsafe(end - offset);
    const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
    if (bytesRead !== buf.length) throw new Error(`${this.name}.pack: short read at ${offset}`);
    return buf;
  }

  private recordEnd(offset: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sortedOffsets[mid]! <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.count ? this.sortedOffsets[lo]! : this.packSize - 20;
  }

  private handle(): Promise<FileHandle> {
    this.file ??= (async () => {
      const fh = await open(path.join(this.dir, `${this.name}.pack`), 'r');
      this.packSize = (await fh.stat()).size;
      return fh;
    })();
    this.file.catch(() => (this.file = undefined));
    return this.file;
  }

  async close(): Promise<void> {
    this.unloadWhole();
    const f = this.file;
    this.file = undefined;
    await (await f?.catch(() => undefined))?.close();
  }
}

export interface RecordHeader {
  typeCode: number;
  /** Inflated size of the data (for a delta: of the delta, not of the object). */
  size: number;
  /** Bytes of header (and delta base reference) before the zlib data. */
  dataStart: number;
  baseOffset?: number;
  baseOid?: string;
}

export function parseRecordHeader(rec: Buffer, offset: number): RecordHeader {
  let pos = 0;
  let b = rec[pos++]!;
  const typeCode = (b >> 4) & 7;
  let size = b & 15;
  let shift = 16;
  while (b & 128) {
    b = rec[pos++]!;
    size += (b & 127) * shift;
    shift *= 128;
  }
  if (typeCode === OFS_DELTA) {
    b = rec[pos++]!;
    let rel = b & 127;
    while (b & 128) {
      b = rec[pos++]!;
      rel = (rel + 1) * 128 + (b & 127);
    }
    return { typeCode, size, dataStart: pos, baseOffset: offset - rel };
  }
  if (typeCode === REF_DELTA) return { typeCode, size, dataStart: pos + 20, baseOid: rec.toString('hex', pos, pos + 20) };
  return { typeCode, size, dataStart: pos };
}

export class GitObjectReader {
  private packs: PackIndex[] = [];
  /** Batches acknowledged from the journal and not yet in a pack on disk; searched last. */
  private memoryPacks: PackIndex[] = [];
  /** Recently read root trees (delta bases): chains are read newest-first, each base is the last read. */
  private readonly bases = new Map<string, GitObject>();

  constructor(readonly gitdir: string) {}

  get packDir(): string {
    return path.join(this.gitdir, 'objects', 'pack');
  }

  get packList(): readonly PackIndex[] {
    return this.packs;
  }

  /**
   * (Re)reads the list of packs; packs already known keep their open files. Packs added by
   * addPack() while this runs are kept: only packs known at the start can be found gone.
   */
  async refresh(): Promise<void> {
    const knownAtStart = new Set(this.packs.map((p) => p.name));
    const onDisk = new Set((await readdir(this.packDir).catch(() => [] as string[]))
      .filter((n) => n.endsWith('.idx') && n.startsWith('pack-'))
      .map((n) => n.slice(0, -4)));
    const found: PackIndex[] = [];
    for (const name of onDisk) {
      if (knownAtStart.has(name)) continue;
      const idx = await readFile(path.join(this.packDir, `${name}.idx`)).catch(() => undefined);
      if (idx) found.push(new PackIndex(name, this.packDir, idx));
    }
    const gone = new Set([...knownAtStart].filter((n) => !onDisk.has(n)));
    const have = new Set(this.packs.map((p) => p.name));
    this.packs = [...this.packs, ...found.filter((p) => !have.has(p.name))];
    // Packs `git repack -d` (or another mayu) removed: dropPacks closes their files.
    if (gone.size > 0) await this.dropPacks(gone);
  }

  /** A pack this process just wrote: known without rereading the folder. */
  addPack(name: string, idx: Buffer): PackIndex {
    const pack = new PackIndex(name, this.packDir, idx);
    this.packs.push(pack);
    return pack;
  }

  addMemoryPack(name: string, idx: Buffer, bytes: Buffer): void {
    this.memoryPacks.push(PackIndex.inMemory(name, idx, bytes));
  }

  /** The batches are in a pack on disk now. */
  dropMemoryPacks(names: ReadonlySet<string>): void {
    this.memoryPacks = this.memoryPacks.filter((p) => !names.has(p.name));
  }

  /** Forgets packs that compaction replaced (their files are about to be removed). */
  async dropPacks(names: ReadonlySet<string>): Promise<void> {
    const gone = this.packs.filter((p) => names.has(p.name));
    this.packs = this.packs.filter((p) => !names.has(p.name));
    this.bases.clear();
    // A read may still be using the file: close it a little later.
    setTimeout(() => void Promise.all(gone.map((p) => p.close())), 5000).unref();
  }

  async read(oid: string): Promise<GitObject> {
    try {
      return await this.readOnce(oid);
    } catch (err) {
      // Compaction (ours or `mayu compact` in another process) may have replaced a pack.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof MissingObjectError)) throw err;
      await this.refresh();
      return this.readOnce(oid);
    }
  }

  async close(): Promise<void> {
    for (const p of this.packs) await p.close();
    this.packs = [];
  }

  private loosePath(oid: string): string {
    return path.join(this.gitdir, 'objects', oid.slice(0, 2), oid.slice(2));
  }

  private async readOnce(oid: string): Promise<GitObject> {
    for (const list of [this.packs, this.memoryPacks]) {
      for (const pack of list) {
        const offset = pack.find(oid);
        if (offset !== undefined) return this.readPacked(pack, offset);
      }
    }
    const raw = await readFile(this.loosePath(oid)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw new MissingObjectError(oid);
      throw err;
    });
    const inflated = inflateSync(raw);
    const space = inflated.indexOf(32);
    const nul = inflated.indexOf(0, space);
    return { type: inflated.toString('latin1', 0, space) as ObjectType, content: inflated.subarray(nul + 1) };
  }

  private async readPacked(pack: PackIndex, offset: number): Promise<GitObject> {
    const key = `${pack.name}:${offset}`;
    const cached = this.bases.get(key);
    if (cached) return cached;
    const rec = await pack.record(offset);
    const h = parseRecordHeader(rec, offset);
    const data = inflateSync(rec.subarray(h.dataStart));
    let obj: GitObject;
    if (h.typeCode === OFS_DELTA || h.typeCode === REF_DELTA) {
      const base = h.baseOffset !== undefined ? await this.readPacked(pack, h.baseOffset) : await this.read(h.baseOid!);
      obj = { type: base.type, content: applyDelta(base.content, data) };
    } else {
      const type = TYPES[h.typeCode];
      if (!type) throw new Error(`${pack.name}.pack: unknown object type ${h.typeCode} at ${offset}`);
      obj = { type, content: data };
    }
    if (obj.type === 'tree' && obj.content.length > 1024) {
      this.bases.set(key, obj);
      if (this.bases.size > 64) this.bases.delete(this.bases.keys().next().value!);
    }
    return obj;
  }
}

export class MissingObjectError extends Error {
  constructor(readonly oid: string) {
    super(`object ${oid} not found`);
  }
}
