import { closeSync, constants, ftruncateSync, openSync, promises as fsp, writeSync } from 'node:fs';
import path from 'node:path';

// Durable file writes: what is acknowledged must survive a kill -9 or a power cut.

export async function fsyncPath(p: string): Promise<void> {
  const fh = await fsp.open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replace a file atomically (and durably unless told not to): temp file, fsync, rename, fsync
 * the folder. The temp file is `<file>.tmp`: one writer per file, and a kill leaves at most
 * that one file, overwritten next time.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, durable = true): Promise<void> {
  const tmp = `${file}.tmp`;
  try {
    const fh = await fsp.open(tmp, 'w');
    try {
      await fh.writeFile(data);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
  } catch (err) {
    // A half-written temp file would hold on to space a full disk needs back.
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  if (durable) await fsyncPath(path.dirname(file));
}

/**
 * Overwrites a file's bytes in place (created if missing), then cuts it to the new length: no
 * new inode, no rename. Not atomic for a reader racing it, and not durable: for copies whose
 * truth is elsewhere.
 */
export function rewriteFileSync(file: string, data: string): void {
  const bytes = Buffer.from(data, 'utf8');
  const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT, 0o644);
  try {
    let done = 0;
    while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, done);
    ftruncateSync(fd, bytes.length);
  } finally {
    closeSync(fd);
  }
}
