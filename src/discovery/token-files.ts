import { appendFile, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../fs/durable-fs.ts';
import { NotStoredError } from '../fs/write-errors.ts';
import { decodeToken, encodeToken, TOKEN, type TokenState } from './registry.ts';

// Discovery state on disk: one JSON file per token in `<cluster-dir>/.etcd-discovery/`, replaced
// atomically and durably (temp file, fsync, rename, fsync of the folder) before an answer goes
// out. It lives with the cluster (whose cluster.json names the default token) so it is backed up
// and moved with it; the leading dot keeps both stores from taking it for a host's folder, and
// .git/info/exclude keeps it out of `git status` (it is state, not audit trail).

export const DISCOVERY_DIR = '.etcd-discovery';

export class TokenFiles {
  private constructor(readonly dir: string) {}

  /** Opens (creating) the folder, drops temp files a kill left, loads every token. */
  static async open(clusterDir: string): Promise<{ files: TokenFiles; tokens: TokenState[] }> {
    const dir = path.join(clusterDir, DISCOVERY_DIR);
    await mkdir(dir, { recursive: true });
    await excludeFromGit(clusterDir);
    const tokens: TokenState[] = [];
    for (const name of (await readdir(dir)).sort()) {
      const file = path.join(dir, name);
      if (name.endsWith('.tmp')) {
        await rm(file, { force: true });
        continue;
      }
      const token = name.replace(/\.json$/, '');
      if (!name.endsWith('.json') || !TOKEN.test(token)) continue;
      try {
        tokens.push(decodeToken(await readFile(file, 'utf8'), token));
      } catch (err) {
        throw new Error(`${file}: not an etcd discovery token file: ${(err as Error).message}`);
      }
    }
    return { files: new TokenFiles(dir), tokens };
  }

  /** Durable once this resolves; a failed write is a NotStoredError (507). One writer per token (the service chains them). */
  async write(state: TokenState): Promise<void> {
    try {
      await writeFileAtomic(path.join(this.dir, `${state.token}.json`), encodeToken(state));
    } catch (err) {
      throw new NotStoredError(err);
    }
  }
}

async function excludeFromGit(clusterDir: string): Promise<void> {
  const info = path.join(clusterDir, '.git', 'info');
  const exclude = path.join(info, 'exclude');
  const line = `/${DISCOVERY_DIR}/`;
  const text = await readFile(exclude, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (text?.split('\n').includes(line)) return;
  // No repo (--no-git): nothing to exclude from.
  if (text === undefined && !(await readdir(path.join(clusterDir, '.git')).then(() => true, () => false))) return;
  await mkdir(info, { recursive: true });
  await appendFile(exclude, `${text === undefined || text.endsWith('\n') || text === '' ? '' : '\n'}# mayu's etcd discovery state\n${line}\n`);
}
