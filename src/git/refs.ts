import { open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
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
  const loose = await readFile(path.join(gitdir, ref), 'utf8').catch((err: NodeJS.ErrnoException) => {
    // `git pack-refs --prune` (run by `git gc`) moves the loose ref into packed-refs.
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (loose !== undefined) return loose.trim();
  const packed = await readFile(path.join(gitdir, 'packed-refs'), 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  return packedRef(packed, ref);
}

/** `ref` in a packed-refs file: `<oid> <ref>` lines, after a `#` header, each maybe followed by a `^<peeled>` line. */
export function packedRef(packedRefs: string, ref: string): string | undefined {
  for (const line of packedRefs.split('\n')) {
    const space = line.indexOf(' ');
    if (line.startsWith('#') || line.startsWith('^') || space !== 40) continue;
    if (line.slice(space + 1).trimEnd() === ref) return line.slice(0, space);
  }
  return undefined;
}

/** The ref is not where the writer last left it: someone else (an operator's git) moved it. */
export class RefMovedError extends Error {
  constructor(readonly ref: string, readonly expected: string | undefined, readonly found: string | undefined) {
    super(`${ref} moved outside this writer: expected ${expected ?? 'no commit'}, found ${found ?? 'no commit'}`);
  }
}

/** Another process holds `<ref>.lock` (git itself while it commits): try again shortly. */
export class RefLockedError extends Error {
  constructor(readonly ref: string, message = `${ref}.lock is held by another process (a git command running in the repo?)`) {
    super(message);
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
  const fh = await openLock(lock, ref);
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
      // A lock left behind would keep every later checkpoint (and git) from the ref.
      await rename(lock, file).catch(async (err) => {
        await rm(lock, { force: true });
        throw err;
      });
      await fsyncPath(path.dirname(file));
    },
    async abort() {
      await rm(lock, { force: true });
    },
  };
}

/** How long a checkpoint waits for a lock git holds (git itself waits 100 ms: core.filesRefLockTimeout). */
const LOCK_WAIT_MS = 2000;
const LOCK_POLL_MS = 5;

/**
 * Creates the lock exclusively, as git does: `git gc` (pack-refs, reflog expire) locks the branch
 * for a moment. Writing over git's lock would let git delete the ref we just moved.
 */
async function openLock(lock: string, ref: string): Promise<FileHandle> {
  for (const until = performance.now() + LOCK_WAIT_MS; ;) {
    try {
      return await open(lock, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (performance.now() > until) {
        throw new RefLockedError(ref, `${lock} exists for over ${LOCK_WAIT_MS} ms: another git process holds the branch (remove the file if none runs)`);
      }
      await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
    }
  }
}
