// The server secret report tokens are derived from. Kept outside the cluster repo (which may be
// pushed somewhere), mode 0600, created on first start and never rewritten: rewriting it would
// invalidate the token of every machine installed so far.
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { SecurityConfigError } from './security-error.ts';

const KEY_HEX = /^[0-9a-f]{64,}$/;

export interface ReportKey {
  key: Buffer;
  created: boolean;
  warnings: string[];
}

async function readKey(file: string): Promise<ReportKey> {
  const text = (await readFile(file, 'utf8')).trim();
  if (!KEY_HEX.test(text)) {
    throw new SecurityConfigError(`report key file ${file}: expected at least 64 lowercase hex characters (delete it to have mayu create a new one; installed machines then need a reinstall or --insecure-reports)`);
  }
  const mode = (await stat(file)).mode & 0o777;
  const warnings = mode & 0o077 ? [`report key file ${file} is readable by other users (mode ${mode.toString(8)}): chmod 600 it`] : [];
  return { key: Buffer.from(text, 'hex'), created: false, warnings };
}

/** Reads the key, or creates it atomically (temp file, fsync, link: never clobbers a concurrent creator). */
export async function loadOrCreateReportKey(file: string): Promise<ReportKey> {
  try {
    return await readKey(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (err instanceof SecurityConfigError) throw err;
      throw new SecurityConfigError(`report key file ${file}: cannot read: ${(err as Error).message}`);
    }
  }
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const handle = await open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(`${randomBytes(32).toString('hex')}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await chmod(tmp, 0o600); // the umask may have narrowed nothing, but never widen
    await link(tmp, file).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    const dir = await open(path.dirname(file), 'r');
    await dir.sync().finally(() => dir.close());
  } catch (err) {
    throw new SecurityConfigError(`report key file ${file}: cannot create: ${(err as Error).message}`);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  const loaded = await readKey(file);
  return { ...loaded, created: true };
}
