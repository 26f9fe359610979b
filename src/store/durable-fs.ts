import { promises as fsp } from 'node:fs';
import path from 'node:path';

// isomorphic-git never fsyncs. This fs client for it records every file and folder it creates,
// and flush() makes them all durable at once (files, then their folders), so a whole batch of
// commits costs one parallel round of fsyncs instead of several serial ones per object.

export async function fsyncPath(p: string): Promise<void> {
  const fh = await fsp.open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

export class DurableFs {
  private readonly files = new Set<string>();
  private readonly dirs = new Set<string>();

  /** The shape isomorphic-git expects: `{ promises: {...} }`. */
  readonly client = {
    promises: {
      readFile: fsp.readFile,
      readdir: fsp.readdir,
      stat: fsp.stat,
      lstat: fsp.lstat,
      readlink: fsp.readlink,
      symlink: fsp.symlink,
      chmod: fsp.chmod,
      unlink: fsp.unlink,
      rmdir: fsp.rmdir,
      // Temp file + rename: a process killed mid-write must not leave a torn object, because
      // isomorphic-git never rewrites an object file that exists.
      writeFile: async (file: string, data: Uint8Array | string, opts?: unknown) => {
        const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
        await fsp.writeFile(tmp, data, opts as Parameters<typeof fsp.writeFile>[2]);
        await fsp.rename(tmp, file);
        this.files.add(file);
        this.dirs.add(path.dirname(file));
      },
      mkdir: async (dir: string, opts?: unknown) => {
        await fsp.mkdir(dir, opts as Parameters<typeof fsp.mkdir>[1]);
        this.dirs.add(path.dirname(dir));
      },
    },
  };

  /**
   * fsync everything written since the last flush. A file that is gone was a loose object that
   * compaction packed meanwhile: it deletes loose files only after their pack is durable.
   */
  async flush(): Promise<void> {
    const files = [...this.files];
    const dirs = [...this.dirs];
    this.files.clear();
    this.dirs.clear();
    await Promise.all(files.map((f) => fsyncPath(f).catch(ignoreMissing)));
    await Promise.all(dirs.map(fsyncPath));
  }
}

/**
 * Replace a file atomically (and durably unless told not to): temp file, fsync, rename, fsync
 * the folder. `tmp` defaults to `<file>.tmp`: one writer per file, and a kill leaves at most
 * that one file, overwritten next time.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, durable = true, tmp = `${file}.tmp`): Promise<void> {
  const fh = await fsp.open(tmp, 'w');
  try {
    await fh.writeFile(data);
    if (durable) await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  if (durable) await fsyncPath(path.dirname(file));
}
