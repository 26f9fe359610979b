import { promises as fsp } from 'node:fs';
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
