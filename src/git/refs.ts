import { open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fsyncPath } from '../fs/durable-fs.ts';

// The branch ref, read the way git reads it and replaced durably.

/** The commit HEAD names (loose ref, then packed-refs), or undefined in a repo without commits. */
export async function resolveHead(gitdir: string): Promise<string | undefined> {
  const headFile = (await readFile(path.join(gitdir, 'HEAD'), 'utf8')).trim();
  if (!headFile.startsWith('ref: ')) return headFile;
  return resolveRef(gitdir, headFile.slice(5));
}

/** The commit a ref names (loose file, then packed-refs), or undefined when there is none. */
export async function resolveRef(gitdir: string, ref: string): Promise<string | undefined> {
  try {
    return (await readFile(path.join(gitdir, ref), 'utf8')).trim();
  } catch {
    const packed = await readFile(path.join(gitdir, 'packed-refs'), 'utf8').catch(() => '');
    return packed.split('\n').find((l) => l.endsWith(` ${ref}`))?.split(' ')[0];
  }
}

/** The ref is not where the writer last left it: someone else (an operator's git) moved it. */
export class RefMovedError extends Error {
  constructor(readonly ref: string, readonly expected: string | undefined, readonly found: string | undefined) {
    super(`${ref} moved outside this writer: expected ${expected ?? 'no commit'}, found ${found ?? 'no commit'}`);
  }
}

/** Another process holds `<ref>.lock` (git itself while it commits): try again shortly. */
export class RefLockedError extends Error {
  constructor(readonly ref: string) {
    super(`${ref}.lock is held by another process (a git command running in the repo?)`);
  }
}

export interface PreparedRef {
  /** Moves the ref: rename of the lock over it, fsync of its folder. */
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * Points `ref` at `oid` in two halves, by compare-and-swap from `expected`. Now: the lock file
 * `<ref>.lock` is created exclusively, as git does (so an operator's git and mayu never move the
 * ref at once; git never reads a *.lock as a branch), the ref is checked to still name
 * `expected` (else RefMovedError: commits were made outside), and the lock is written and
 * fsync'd, in parallel with the pack it will point into. commit(), once that pack is durable:
 * rename over the ref, fsync the folder. One round of fsyncs less per batch than pack, then ref.
 */
export async function prepareRef(gitdir: string, ref: string, oid: string, expected: string | undefined): Promise<PreparedRef> {
  const file = path.join(gitdir, ref);
  const lock = `${file}.lock`;
  const fh = await open(lock, 'wx').catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'EEXIST' ? new RefLockedError(ref) : err;
  });
  try {
    const found = await resolveRef(gitdir, ref);
    if (found !== expected) throw new RefMovedError(ref, expected, found);
    await fh.writeFile(`${oid}\n`);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(lock, { force: true });
    throw err;
  }
  await fh.close();
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
