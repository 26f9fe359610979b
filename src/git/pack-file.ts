import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fsyncPath } from '../fs/durable-fs.ts';
import { IOV_MAX, piecesAfter } from '../fs/write-pieces.ts';
import type { ObjectType } from './objects.ts';
import { PackBuilder } from './pack.ts';

// A packfile written durably into objects/pack: records go to a temp file, then pack and index
// are fsync'd, the pack is renamed into place, the index last (it is what makes the pack visible
// to git and to our reader), and the folder is fsync'd. A kill at any point leaves either a temp
// file or a pack without index, both removed at the next start (removeUnfinishedPacks).
//
// Operators run git's maintenance beside us, so names matter. `git prune` removes files named
// tmp_* in objects/ and objects/pack/ (builtin/prune.c), and `git gc` removes an .idx whose base
// name has no .pack (builtin/gc.c clean_pack_garbage): a temp index named <tmp>.idx next to a
// temp pack named <tmp> was deleted under us. Ours start with TEMP_PREFIX and end in .pack-tmp,
// .idx-tmp, .keep-tmp: git treats them as foreign garbage it never removes.

/** Temp files of a pack being written (and, before them, `tmp-pack-*`: removed at start). */
export const TEMP_PREFIX = 'mayu-incoming-';
/**
 * Content of the .keep a checkpoint's pack carries until the branch names its commits: `git
 * repack -a -d` neither deletes a kept pack nor needs its objects to be reachable. Removed at
 * start when a kill left it (removeUnfinishedPacks tells ours by this content).
 */
export const KEEP_NOTE = 'mayu: kept until the branch names its commits\n';

const FLUSH_BYTES = 1 << 20;

export interface WrittenPack {
  name: string;
  index: Buffer;
  bytes: number;
  /** The pack's .keep (finish({ keep: true })), for its writer to remove (a plain value: merges post theirs between threads). */
  keepFile?: string;
  /**
   * A pack of the same name (the same objects in the same order) was there already: another
   * process wrote it (a replica that replayed this one's journal). Its files are not this
   * writer's to remove, nor its .keep; the rename over it changed no byte.
   */
  existed?: boolean;
}

export class PackFileWriter {
  private readonly builder: PackBuilder;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private bytes = 0;

  private constructor(private readonly packDir: string, private readonly tmp: string, private readonly fh: FileHandle, count: number) {
    this.builder = new PackBuilder(count);
    this.push(this.builder.header());
  }

  static async create(packDir: string, count: number): Promise<PackFileWriter> {
    const tmp = path.join(packDir, `${TEMP_PREFIX}${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.pack-tmp`);
    return new PackFileWriter(packDir, tmp, await open(tmp, 'w'), count);
  }

  /** See PackBuilder.add. */
  async add(oid: string, type: ObjectType, content: Buffer, base?: { oid: string; content: Buffer }, level?: number): Promise<void> {
    await this.pushRecord(this.builder.add(oid, type, content, base, level));
  }

  async addRaw(oid: string, record: Buffer, crc: number): Promise<void> {
    await this.pushRecord(this.builder.addRaw(oid, record, crc));
  }

  /** See PackBuilder.addCopiedDelta. */
  async addCopiedDelta(oid: string, baseOid: string, deltaSize: number, zdata: Buffer): Promise<void> {
    await this.pushRecord(this.builder.addCopiedDelta(oid, baseOid, deltaSize, zdata));
  }

  private async pushRecord(record: Buffer): Promise<void> {
    this.push(record);
    if (this.pendingBytes >= FLUSH_BYTES) await this.flushPending();
  }

  /** With `keep`, the pack has a .keep (KEEP_NOTE) before it becomes visible; the caller removes it (keepFile). */
  async finish(opts: { keep?: boolean } = {}): Promise<WrittenPack> {
    let keepFile: string | undefined;
    try {
      const { checksum, index } = this.builder.finish();
      this.push(checksum);
      await this.flushPending();
      const name = `pack-${checksum.toString('hex')}`;
      const existed = existsSync(path.join(this.packDir, `${name}.idx`));
      const idxTmp = this.tmp.replace(/\.pack-tmp$/, '.idx-tmp');
      const ih = await open(idxTmp, 'w');
      try {
        await ih.writeFile(index);
        await Promise.all([ih.sync(), this.fh.sync()]);
      } finally {
        await ih.close();
        await this.fh.close();
      }
      if (opts.keep && !existed) {
        // Whole or not at all: a kill must not leave an empty .keep, which would look like an
        // operator's. Blocking calls (tens of µs): in a storm libuv's pool is queued up with
        // journal syncs, and each queued step here made checkpoints later and bigger.
        const keepTmp = this.tmp.replace(/\.pack-tmp$/, '.keep-tmp');
        writeFileSync(keepTmp, KEEP_NOTE);
        keepFile = path.join(this.packDir, `${name}.keep`);
        renameSync(keepTmp, keepFile);
      }
      await rename(this.tmp, path.join(this.packDir, `${name}.pack`));
      await rename(idxTmp, path.join(this.packDir, `${name}.idx`));
      await fsyncPath(this.packDir);
      return { name, index, bytes: this.bytes, keepFile, ...(existed ? { existed } : {}) };
    } catch (err) {
      await this.abort();
      if (keepFile) await rm(keepFile, { force: true });
      throw err;
    }
  }

  async abort(): Promise<void> {
    await this.fh.close().catch(() => {});
    await rm(this.tmp, { force: true });
    await rm(this.tmp.replace(/\.pack-tmp$/, '.idx-tmp'), { force: true });
    await rm(this.tmp.replace(/\.pack-tmp$/, '.keep-tmp'), { force: true });
  }

  private push(b: Buffer): void {
    this.pending.push(b);
    this.pendingBytes += b.length;
    this.bytes += b.length;
  }

  private async flushPending(): Promise<void> {
    if (this.pending.length === 0) return;
    // Written from the records themselves, not a concatenated copy (a checkpoint's batches each
    // bring a 400 KB root tree), at most IOV_MAX (1024) pieces a call, resuming after a short write.
    let rest = this.pending.filter((b) => b.length > 0);
    this.pending = [];
    this.pendingBytes = 0;
    while (rest.length > 0) {
      const { bytesWritten } = await this.fh.writev(rest.slice(0, IOV_MAX));
      rest = piecesAfter(rest, bytesWritten);
    }
  }
}
