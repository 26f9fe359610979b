import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { GitObjectReader } from './object-reader.ts';
import { parseRecordHeader } from './object-reader.ts';
import type { JournalEntry, JournalObject } from './journal.ts';
import { PackFileWriter } from './pack-file.ts';
import { prepareRef } from './refs.ts';

/**
 * Writes journaled batches (oldest first) to git as one pack, then moves `ref` to the last
 * batch's head: pack, index and the ref's lock file are fsync'd together, the pack becomes
 * visible, then the ref is renamed over. Records are copied as the batches built them; a delta
 * only gets a new distance to its base. An object two batches share is written once. The ref
 * moves only from the first batch's parent (compare-and-swap): RefMovedError when it names
 * another commit, and nothing of the pack is used.
 */
export async function writeCheckpoint(reader: GitObjectReader, ref: string, entries: readonly Pick<JournalEntry, 'parent' | 'head' | 'objects'>[]): Promise<void> {
  const pack = await packOf(reader, entries);
  // The pack is kept (.keep) until the ref names its commits: a `git repack -a -d` that read the
  // refs before the ref moves must not delete the pack (see pack-file.ts KEEP_NOTE).
  const [packed, moved] = await Promise.allSettled([pack.finish({ keep: true }), prepareRef(reader.gitdir, ref, entries.at(-1)!.head, entries[0]!.parent)]);
  // Blocking, as the .keep's write (pack-file.ts).
  const unkeep = () => {
    if (packed.status === 'fulfilled' && packed.value.keepFile) rmSync(packed.value.keepFile, { force: true });
  };
  if (packed.status === 'rejected' || moved.status === 'rejected') {
    if (moved.status === 'fulfilled') await moved.value.abort();
    unkeep();
    // A pack the ref will never name (moved outside, locked): its commits would dangle. Not one
    // that was there before (the same objects packed by the replica that moved the ref: deleting
    // it by name lost the commits it names).
    if (packed.status === 'fulfilled' && !packed.value.existed && !reader.packList.some((p) => p.name === packed.value.name)) {
      for (const ext of ['idx', 'pack']) await rm(path.join(reader.packDir, `${packed.value.name}.${ext}`), { force: true });
    }
    throw packed.status === 'rejected' ? packed.reason : (moved as PromiseRejectedResult).reason;
  }
  reader.addPack(packed.value.name, packed.value.index);
  try {
    await moved.value.commit();
  } finally {
    unkeep();
  }
}

/** A pack file being written with every object of the batches once; finish() makes it durable. */
async function packOf(reader: GitObjectReader, entries: readonly Pick<JournalEntry, 'objects'>[]): Promise<PackFileWriter> {
  const unique = new Map<string, JournalObject>();
  for (const e of entries) for (const o of e.objects) if (!unique.has(o.oid)) unique.set(o.oid, o);
  const pack = await PackFileWriter.create(reader.packDir, unique.size);
  try {
    for (const o of unique.values()) {
      if (o.baseOid === undefined) {
        await pack.addRaw(o.oid, o.record, o.crc);
      } else {
        const h = parseRecordHeader(o.record, 0);
        await pack.addCopiedDelta(o.oid, o.baseOid, h.size, o.record.subarray(h.dataStart));
      }
    }
  } catch (err) {
    await pack.abort();
    throw err;
  }
  return pack;
}
