import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { catFileBatch } from '../../test/helpers/storm-checks.ts';

// The anchor: the same sequence of changes committed the way mayu 0.11 did it — write the file,
// then one `git add <path>` and one `git commit -m <msg>` process per change, one change at a
// time — into a fresh repo (or, for the last changes, a repo seeded with mayu's tree before them). The sequence is read back from mayu's own repo, so both runs commit
// byte-identical content with identical messages (checked: the anchor's final tree must equal
// mayu's tree at the same commit).

const run = promisify(execFile);

export interface Change {
  commit: string;
  subject: string;
  /** The one file the commit changed: `cluster.json` or `<serial>/conf.json`. */
  path: string;
}

/** Every commit of `repo`, oldest first, with the file it changed. */
export function readChanges(repo: string): Change[] {
  const out = execFileSync('git', ['-C', repo, 'log', '--reverse', '--format=@@%H %s', '--name-only', 'HEAD'], { encoding: 'utf8', maxBuffer: 1 << 30 });
  const changes: Change[] = [];
  for (const line of out.split('\n')) {
    if (line.startsWith('@@')) {
      const space = line.indexOf(' ');
      changes.push({ commit: line.slice(2, space), subject: line.slice(space + 1), path: '' });
    } else if (line && changes.length) {
      const last = changes.at(-1)!;
      if (last.path) throw new Error(`commit ${last.commit} changed more than one file: ${last.path}, ${line}`);
      last.path = line;
    }
  }
  return changes;
}

export interface AnchorResult {
  changes: number;
  /** Of how many in mayu's repo. */
  outOf: number;
  /** Which changes: the first ones (from an empty repo) or the last ones (on a repo seeded untimed with mayu's tree before them). */
  window: AnchorWindow;
  /** Host folders in the tree before and after the replay (the index size drives native git's cost). */
  hostsAtStart: number;
  hostsAtEnd: number;
  seconds: number;
  commitsPerSecond: number;
  /** The anchor's final tree equals mayu's tree at the same commit. */
  sameTree: boolean;
}

export type AnchorWindow = 'first' | 'last';

const hostCount = (repo: string, rev: string) =>
  execFileSync('git', ['-C', repo, 'ls-tree', rev], { encoding: 'utf8', maxBuffer: 1 << 28 }).split('\n').filter((l) => l.includes(' tree ')).length;

/** Replays the first or last `limit` changes of mayu's repo (0 = all) with native git, timed. */
export async function replayAsMayu011(mayuRepo: string, limit: number, window: AnchorWindow = 'first'): Promise<AnchorResult> {
  const all = readChanges(mayuRepo);
  const count = limit > 0 ? Math.min(limit, all.length) : all.length;
  const changes = window === 'first' ? all.slice(0, count) : all.slice(all.length - count);
  const contents = catFileBatch(mayuRepo, changes.map((c) => `${c.commit}:${c.path}`));
  const dir = await mkdtemp(path.join(tmpdir(), 'mayu-anchor-'));
  try {
    // 0.11's author; no user config or hooks from the machine running the bench.
    const env = {
      ...process.env,
      GIT_AUTHOR_NAME: 'mayu commiter', GIT_AUTHOR_EMAIL: 'support+noise@giantswarm.io',
      GIT_COMMITTER_NAME: 'mayu commiter', GIT_COMMITTER_EMAIL: 'support+noise@giantswarm.io',
      GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1',
    };
    const git = (...a: string[]) => execFileSync('git', ['-C', dir, ...a], { env, stdio: 'ignore' });
    git('init', '-q', '-b', 'master');
    const base = window === 'last' && count < all.length ? all[all.length - count - 1]!.commit : undefined;
    if (base) {
      // Untimed: the repo as it was before the window, checked out and indexed, in one commit.
      execFileSync('sh', ['-c', `git -C "$1" archive "$2" | tar -x -C "$3"`, 'sh', mayuRepo, base, dir]);
      git('add', '-A');
      git('commit', '-q', '-m', `state of mayu's repo at ${base}`);
    }
    const hostsAtStart = base ? hostCount(dir, 'HEAD') : 0;
    const t0 = performance.now();
    for (let i = 0; i < changes.length; i++) {
      const change = changes[i]!;
      const file = path.join(dir, change.path);
      if (change.path.includes('/')) await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, contents[i]!);
      await run('git', ['add', change.path], { cwd: dir, env });
      await run('git', ['commit', '-q', '-m', change.subject], { cwd: dir, env });
    }
    const seconds = (performance.now() - t0) / 1000;
    const tree = (repo: string, rev: string) => execFileSync('git', ['-C', repo, 'rev-parse', `${rev}^{tree}`], { encoding: 'utf8' }).trim();
    return {
      changes: changes.length,
      outOf: all.length,
      window,
      hostsAtStart,
      hostsAtEnd: hostCount(dir, 'HEAD'),
      seconds: +seconds.toFixed(2),
      commitsPerSecond: +(changes.length / seconds).toFixed(1),
      sameTree: changes.length > 0 && tree(dir, 'HEAD') === tree(mayuRepo, changes.at(-1)!.commit),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
