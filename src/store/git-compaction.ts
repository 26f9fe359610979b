import { open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { fsyncPath } from './durable-fs.ts';
import { PackBuilder, type ObjectType } from './git-pack.ts';

// Packs loose objects into one packfile, storing each root tree as a delta against the next
// newer one (chains of at most MAX_DEPTH so reads stay cheap). Safe while the writer keeps
// committing: only objects listed at the start are packed, the pack is durable and visible
// before any loose file is removed, and an object re-written meanwhile is found in the pack.

const MAX_DEPTH = 50;
const LOOSE_NAME = /^[0-9a-f]{38}$/;

export interface CompactionResult {
  objects: number;
  packBytes: number;
  pack?: string;
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
    for (const name of await readdir(path.join(objects, dir))) {
      if (LOOSE_NAME.test(name)) oids.push(dir + name);
      else if (removeTemp && name.includes('.tmp-')) await rm(path.join(objects, dir, name), { force: true });
    }
  }
  if (removeTemp) await removeUnfinishedPacks(path.join(objects, 'pack'));
  return oids;
}

/** A kill during compaction leaves a temp pack, or a pack whose index never landed: both unused. */
async function removeUnfinishedPacks(packDir: string): Promise<void> {
  const names = await readdir(packDir).catch(() => [] as string[]);
  const indexes = new Set(names.filter((n) => n.endsWith('.idx')).map((n) => n.slice(0, -4)));
  for (const name of names) {
    const orphanPack = name.endsWith('.pack') && !indexes.has(name.slice(0, -5));
    if (name.startsWith('tmp-pack-') || orphanPack) await rm(path.join(packDir, name), { force: true });
  }
}

function loosePath(gitdir: string, oid: string): string {
  return path.join(gitdir, 'objects', oid.slice(0, 2), oid.slice(2));
}

async function readLoose(gitdir: string, oid: string): Promise<{ type: ObjectType; content: Buffer }> {
  const raw = inflateSync(await readFile(loosePath(gitdir, oid)));
  const nul = raw.indexOf(0);
  const type = raw.subarray(0, raw.indexOf(32)).toString('latin1') as ObjectType;
  return { type, content: raw.subarray(nul + 1) };
}

function commitLinks(content: Buffer): { tree: string; parents: string[] } {
  const headerEnd = content.indexOf('\n\n');
  const lines = content.subarray(0, headerEnd < 0 ? content.length : headerEnd).toString('latin1').split('\n');
  const tree = lines.find((l) => l.startsWith('tree '))!.slice(5);
  return { tree, parents: lines.filter((l) => l.startsWith('parent ')).map((l) => l.slice(7)) };
}

/** The commit HEAD names, read the way git does (loose ref, then packed-refs). */
export async function resolveHead(gitdir: string): Promise<string | undefined> {
  const headFile = (await readFile(path.join(gitdir, 'HEAD'), 'utf8')).trim();
  if (!headFile.startsWith('ref: ')) return headFile;
  const ref = headFile.slice(5);
  try {
    return (await readFile(path.join(gitdir, ref), 'utf8')).trim();
  } catch {
    const packed = await readFile(path.join(gitdir, 'packed-refs'), 'utf8').catch(() => '');
    return packed.split('\n').find((l) => l.endsWith(` ${ref}`))?.split(' ')[0];
  }
}

export async function compactLooseObjects(gitdir: string, head: string | undefined): Promise<CompactionResult> {
  const oids = await listLooseObjects(gitdir);
  if (oids.length < 2) return { objects: 0, packBytes: 0 };
  const loose = new Set(oids);
  const packDir = path.join(gitdir, 'objects', 'pack');
  const tmp = path.join(packDir, `tmp-pack-${process.pid}-${Date.now()}`);
  const builder = new PackBuilder(oids.length);
  const done = new Set<string>();
  const fh = await open(tmp, 'w');
  let bytes = 0;
  const write = async (b: Buffer) => {
    await fh.write(b);
    bytes += b.length;
  };
  try {
    await write(builder.header());
    // Commits newest first, each followed by its root tree as a delta of the newer root tree.
    let prevTree: { oid: string; content: Buffer } | undefined;
    let depth = 0;
    let commit = head;
    while (commit && loose.has(commit) && !done.has(commit)) {
      const c = await readLoose(gitdir, commit);
      await write(builder.add(commit, c.type, c.content));
      done.add(commit);
      const { tree, parents } = commitLinks(c.content);
      if (loose.has(tree) && !done.has(tree)) {
        const t = await readLoose(gitdir, tree);
        const base = prevTree && depth < MAX_DEPTH ? prevTree : undefined;
        depth = base ? depth + 1 : 0;
        await write(builder.add(tree, t.type, t.content, base));
        done.add(tree);
        prevTree = { oid: tree, content: t.content };
      }
      commit = parents[0];
    }
    for (const oid of oids) {
      if (done.has(oid)) continue;
      const o = await readLoose(gitdir, oid);
      await write(builder.add(oid, o.type, o.content));
      done.add(oid);
    }
    const { checksum, index } = builder.finish();
    await write(checksum);
    await fh.sync();
    await fh.close();
    const name = `pack-${checksum.toString('hex')}`;
    // The .idx makes the pack visible to readers: it goes last, after the pack is in place.
    await rename(tmp, path.join(packDir, `${name}.pack`));
    const idxTmp = `${tmp}.idx`;
    const ih = await open(idxTmp, 'w');
    try {
      await ih.write(index);
      await ih.sync();
    } finally {
      await ih.close();
    }
    await rename(idxTmp, path.join(packDir, `${name}.idx`));
    await fsyncPath(packDir);
    await Promise.all(oids.map((oid) => rm(loosePath(gitdir, oid), { force: true })));
    return { objects: oids.length, packBytes: bytes, pack: name };
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
}
