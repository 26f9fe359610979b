import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from './durable-fs.ts';

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

/**
 * Points `ref` at `oid`: temp file `<ref>.lock` (as git names it: git never reads a *.lock as a
 * branch), fsync, rename, fsync the folder. Only then is a change acknowledged.
 */
export async function writeRef(gitdir: string, ref: string, oid: string): Promise<void> {
  const file = path.join(gitdir, ref);
  await writeFileAtomic(file, `${oid}\n`, true, `${file}.lock`);
}
