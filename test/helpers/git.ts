import { execFileSync } from 'node:child_process';

/** Native git, to check that what mayu wrote is a repo git itself can read. */
export function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Commit subjects, oldest first. */
export function gitSubjects(dir: string): string[] {
  return git(dir, 'log', '--reverse', '--format=%s').split('\n').filter(Boolean);
}

export function gitCommitCount(dir: string): number {
  return Number(git(dir, 'rev-list', '--count', 'HEAD').trim());
}

export function gitFsck(dir: string): string {
  return git(dir, 'fsck', '--full', '--strict');
}

/**
 * The commit count once it reaches `want`, or what it is after `timeoutMs`. Under concurrent
 * load mayu acknowledges machine reports from its journal and git trails them by ~0.1 s.
 */
export async function gitCommitCountReaching(dir: string, want: number, timeoutMs = 5000): Promise<number> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const count = gitCommitCount(dir);
    if (count >= want || Date.now() > until) return count;
    await new Promise((r) => setTimeout(r, 20));
  }
}
