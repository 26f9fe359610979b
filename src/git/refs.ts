import { open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fsyncPath } from '../fs/durable-fs.ts';

// The branch ref, read the way git reads it and replaced durably.

/** The commit HEAD names (loose ref, then packed-refs), or undefined in a repo without commits. */
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

export interface PreparedRef {
  /** Moves the ref: rename of the lock over it, fsync of its folder. */
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * Points `ref` at `oid` in two halves. Now: the lock file `<ref>.lock` (as git names it: git
 * never reads a *.lock as a branch) is written and fsync'd, in parallel with the pack it will
 * point into. commit(), once that pack is durable: rename over the ref, fsync the folder. Only
 * then is a change acknowledged. One round of fsyncs less per batch than pack, then ref.
 */
export async function prepareRef(gitdir: string, ref: string, oid: string): Promise<PreparedRef> {
  const file = path.join(gitdir, ref);
  const lock = `${file}.lock`;
  const fh = await open(lock, 'w');
  try {
    await fh.writeFile(`${oid}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return {
    async commit() {
      await rename(lock, file);
      await fsyncPath(path.dirname(file));
    },
    async abort() {
      await rm(lock, { force: true });
    },
  };
}
