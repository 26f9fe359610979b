import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { parseRecordHeader, type GitObjectReader, type PackIndex, type RecordHeader } from './object-reader.ts';
import { parseCommit } from './objects.ts';
import { KEEP_NOTE, PackFileWriter, TEMP_PREFIX } from './pack-file.ts';
import { isStoredZlib } from './pack.ts';

// Merges packs (and any loose objects) into one pack. Every batch of commits lands as its own
// small pack; merging keeps the number of packs low (reads stay cheap) and re-chains the root
// trees across batches: each root tree is stored as a delta of the next newer one, in chains of
// at most MAX_DEPTH. Safe while the writer keeps committing: only packs and loose objects listed
// at the start are merged, the new pack is durable and visible before any of them is removed.

/** Longest delta chain (git's own default is 50, `gc --aggressive` uses 250). */
export const MAX_DEPTH = 250;
const LOOSE_NAME = /^[0-9a-f]{38}$/;
/**
 * Yield to the event loop after this many objects, so requests are served while a big merge
 * runs: a root tree costs up to ~0.2 ms (inflate, delta, deflate), so a slice stays ~3 ms.
 */
const YIELD_EVERY = 16;

export interface CompactionResult {
  objects: number;
  packBytes: number;
  pack?: string;
  mergedPacks: number;
  looseObjects: number;
}

/**
 * Loose object ids. With `removeTemp` (only when no writer runs: at start-up) it also deletes
 * temp files a killed process left behind.
 */
export async function listLooseObjects(gitdir: string, removeTemp = false): Promise<string[]> {
  const oids: string[] = [];
  const objects = path.join(gitdir, 'objects');
  for (const dir of await readdir(objects)) {
    if (!/^[0-9a-f]{2}$/.test(dir)) continue;
    // `git prune` removes folders it emptied.
    for (const name of await readdir(path.join(objects, dir)).catch(ifGone([] as string[]))) {
      if (LOOSE_NAME.test(name)) oids.push(dir + name);
      else if (removeTemp && name.includes('.tmp-')) await rm(path.join(objects, dir, name), { force: true });
    }
  }
  if (removeTemp) await removeUnfinishedPacks(path.join(objects, 'pack'));
  return oids;
}

/**
 * A kill during a pack write leaves temp files, or a pack whose index never landed: both unused;
 * during a checkpoint, our .keep on its pack (see KEEP_NOTE): the ref names its commits now, or
 * the journal writes them again.
 */
async function removeUnfinishedPacks(packDir: string): Promise<void> {
  const names = await readdir(packDir).catch(() => [] as string[]);
  const indexes = new Set(names.filter((n) => n.endsWith('.idx')).map((n) => n.slice(0, -4)));
  for (const name of names) {
    const orphanPack = name.endsWith('.pack') && !indexes.has(name.slice(0, -5));
    const temp = name.startsWith(TEMP_PREFIX) || name.startsWith('tmp-pack-');
    const ourKeep = name.endsWith('.keep') && (await readFile(path.join(packDir, name), 'utf8').catch(() => '')) === KEEP_NOTE;
    if (temp || orphanPack || ourKeep) await rm(path.join(packDir, name), { force: true });
  }
}

/** A catch handler: a file or folder git removed meanwhile counts as `fallback`. */
function ifGone<T>(fallback: T): (err: NodeJS.ErrnoException) => T {
  return (err) => {
    if (err.code === 'ENOENT') return fallback;
    throw err;
  };
}

/**
 * Packs we must not merge away: kept ones (ours until the ref names them, an operator's, git's)
 * and git's cruft packs (unreachable objects git expires by their .mtimes).
 */
async function pinnedPacks(packDir: string): Promise<Set<string>> {
  const names = await readdir(packDir).catch(() => [] as string[]);
  return new Set(names.filter((n) => n.endsWith('.keep') || n.endsWith('.mtimes')).map((n) => n.slice(0, n.lastIndexOf('.'))));
}

/** Files git may keep beside a pack; removed with it. */
const PACK_SIDE_FILES = ['.rev', '.bitmap', '.mtimes', '.promisor'];

/**
 * Packs to merge, geometric as in `git repack --geometric=2`: the biggest packs stay as long as
 * each holds at least twice the objects of all smaller ones together; the rest are merged. So an
 * object is rewritten O(log n) times, not at every compaction.
 */
export function packsToMerge(packs: readonly { name: string; count: number }[], all = false): Set<string> {
  if (all) return new Set(packs.map((p) => p.name));
  const bySize = [...packs].sort((a, b) => b.count - a.count);
  let keep = 0;
  let rest = bySize.reduce((n, p) => n + p.count, 0);
  while (keep < bySize.length) {
    rest -= bySize[keep]!.count;
    if (bySize[keep]!.count < 2 * rest) break;
    keep++;
  }
  return new Set(bySize.slice(keep).map((p) => p.name));
}

interface SourceRecord {
  pack: PackIndex;
  record: Buffer;
  crc: number;
  header: RecordHeader;
}

/** The object's record in the first of the packs that has it. */
async function sourceRecord(packs: readonly PackIndex[], oid: string): Promise<SourceRecord | undefined> {
  for (const pack of packs) {
    const i = pack.locate(oid);
    if (i === undefined) continue;
    const offset = pack.offsetAt(i);
    const record = await pack.record(offset);
    return { pack, record, crc: pack.crcAt(i), header: parseRecordHeader(record, offset) };
  }
  return undefined;
}

const isWhole = (h: RecordHeader) => h.typeCode <= 4;

const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r));

/** A merged pack written and durable; the packs and loose objects it replaces still exist. */
export interface MergedPack {
  name: string;
  index: Buffer;
  bytes: number;
  objects: number;
  /** Packs and loose objects it holds, to be removed by retireMerged(). */
  replacedPacks: string[];
  replacedLoose: string[];
}

/** Merges the chosen packs and all loose objects; `all` merges every pack (`mayu compact`). */
export async function compactRepo(reader: GitObjectReader, head: string | undefined, opts: { all?: boolean } = {}): Promise<CompactionResult> {
  const merged = await writeMergedPack(reader, head, opts);
  if (!merged) return { objects: 0, packBytes: 0, mergedPacks: 0, looseObjects: 0 };
  await retireMerged(reader, merged);
  return compactionResult(merged);
}

export function compactionResult(m: MergedPack): CompactionResult {
  return { objects: m.objects, packBytes: m.bytes, pack: m.name, mergedPacks: m.replacedPacks.length, looseObjects: m.replacedLoose.length };
}

/**
 * Makes `reader` use the merged pack, then removes what it replaced. The merged pack is durable
 * and visible first, so a reader (ours or native git) always finds every object somewhere.
 */
export async function retireMerged(reader: GitObjectReader, m: MergedPack): Promise<void> {
  if (!reader.packList.some((p) => p.name === m.name)) reader.addPack(m.name, m.index);
  await reader.dropPacks(new Set(m.replacedPacks));
  // The index goes first: without it git and our reader no longer see the pack.
  // `git repack -d` may have removed them already.
  for (const name of m.replacedPacks) {
    await rm(path.join(reader.packDir, `${name}.idx`), { force: true });
    await rm(path.join(reader.packDir, `${name}.pack`), { force: true });
    for (const ext of PACK_SIDE_FILES) await rm(path.join(reader.packDir, name + ext), { force: true });
  }
  await Promise.all(m.replacedLoose.map((oid) => rm(path.join(reader.gitdir, 'objects', oid.slice(0, 2), oid.slice(2)), { force: true })));
}

/** Writes the merged pack (durable, visible to git) and reports what it replaces; removes nothing. */
export async function writeMergedPack(
  reader: GitObjectReader,
  head: string | undefined,
  opts: { all?: boolean; maxDepth?: number; syncReads?: boolean } = {},
): Promise<MergedPack | undefined> {
  const maxDepth = opts.maxDepth ?? MAX_DEPTH;
  await reader.refresh();
  const loose = await listLooseObjects(reader.gitdir);
  const pinned = await pinnedPacks(reader.packDir);
  const chosen = packsToMerge(reader.packList.filter((p) => !pinned.has(p.name)), opts.all);
  const merged: PackIndex[] = [];
  for (const p of reader.packList.filter((p) => chosen.has(p.name))) {
    // A pack `git repack -d` removed meanwhile is left out: its objects are in git's new pack.
    // In the worker thread: blocking positioned reads (PackIndex.readSynchronously); on the
    // main thread the pack is read whole (one read instead of thousands in libuv's pool).
    const opened = opts.syncReads ? Promise.resolve().then(() => p.readSynchronously()) : p.loadWhole();
    if (await opened.then(() => true, ifGone(false))) merged.push(p);
  }
  const want = new Set(loose);
  for (const p of merged) {
    for (const e of p.entries()) want.add(e.oid);
    await yieldToEventLoop();
  }
  if (want.size < 2 || (merged.length < 2 && loose.length === 0)) return undefined;

  const writer = await PackFileWriter.create(reader.packDir, want.size);
  const done = new Set<string>();
  let sinceYield = 0;
  const tick = async () => {
    if (++sinceYield >= YIELD_EVERY) {
      sinceYield = 0;
      await yieldToEventLoop();
    }
  };
  /**
   * A record copied as it is when it is whole and compressed in its pack; one stored
   * uncompressed (a batch's) is compressed now; a delta is read and stored whole.
   */
  const copy = async (oid: string, known?: SourceRecord) => {
    const src = known ?? (await sourceRecord(merged, oid));
    if (src && isWhole(src.header) && !isStoredZlib(src.record.subarray(src.header.dataStart))) await writer.addRaw(oid, src.record, src.crc);
    else {
      const whole = await reader.read(oid);
      await writer.add(oid, whole.type, whole.content);
    }
    done.add(oid);
    await tick();
  };
  // Root trees, newest first, in chains of deltas of the next newer one. A batch pack holds
  // such a chain already: its deltas are copied without inflating them (only the distance to
  // their base is new), and only its head, stored whole, becomes a delta of the root tree
  // written before it. So a merge costs a delta per pack, not per root tree.
  const rootDepth = new Map<string, number>();
  let prevRoot: string | undefined;
  const addRoot = async (oid: string) => {
    const src = await sourceRecord(merged, oid);
    const baseOid = src?.header.baseOffset !== undefined ? src.pack.oidAtOffset(src.header.baseOffset) : undefined;
    const baseDepth = baseOid === undefined ? undefined : rootDepth.get(baseOid);
    if (src && baseOid !== undefined && baseDepth !== undefined && baseDepth < maxDepth) {
      await writer.addCopiedDelta(oid, baseOid, src.header.size, src.record.subarray(src.header.dataStart));
      rootDepth.set(oid, baseDepth + 1);
    } else {
      const prevDepth = prevRoot === undefined ? maxDepth : rootDepth.get(prevRoot)!;
      const base = prevDepth < maxDepth ? { oid: prevRoot!, content: (await reader.read(prevRoot!)).content } : undefined;
      await writer.add(oid, 'tree', (await reader.read(oid)).content, base);
      rootDepth.set(oid, base ? prevDepth + 1 : 0);
    }
    prevRoot = oid;
    done.add(oid);
    await tick();
  };
  try {
    // Commits newest first, each followed by its root tree. Commits newer than the merged
    // packs (written meanwhile) are passed over; the walk ends at the first commit older than them.
    let commit = head;
    let entered = false;
    while (commit && !done.has(commit)) {
      const inSet = want.has(commit);
      if (!inSet && entered) break;
      entered ||= inSet;
      // A commit of the merged packs is read from its record: the reader would search every pack.
      const src = inSet ? await sourceRecord(merged, commit) : undefined;
      const content = src && isWhole(src.header) ? inflateSync(src.record.subarray(src.header.dataStart)) : (await reader.read(commit)).content;
      const { tree, parents } = parseCommit(content);
      if (inSet) {
        await copy(commit, src);
        if (want.has(tree) && !done.has(tree)) await addRoot(tree);
      }
      commit = parents[0];
    }
    // The rest (blobs, host trees, commits) is copied record by record; only stored ones are compressed.
    for (const oid of want) {
      if (!done.has(oid)) await copy(oid);
    }
    const written = await writer.finish();
    for (const p of merged) p.unloadWhole();
    return { ...written, objects: want.size, replacedPacks: merged.map((p) => p.name), replacedLoose: loose };
  } catch (err) {
    for (const p of merged) p.unloadWhole();
    await writer.abort();
    throw err;
  }
}
