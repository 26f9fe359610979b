import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { git, gitFsck, gitSubjects } from './helpers/git.ts';
import { startMayu, type MayuProcess } from './helpers/mayu-process.ts';

// mayu acknowledges machines' changes from its journal and writes git a little later. When an
// operator's commit lands in between, those acknowledged commits are made again on top of it,
// at once or, after a kill -9, at the next start. Nothing acknowledged and no operator commit
// may go missing from `git log`.

const LOCK = ['.git', 'refs', 'heads', 'master.lock'];

/** An operator's commit made with plumbing while git's ref lock is held (as git does between its steps). */
function operatorCommitUnderLock(m: MayuProcess, message: string): string {
  const head = git(m.clusterDir, 'rev-parse', 'HEAD').trim();
  const env = ['-c', 'user.name=Op Erator', '-c', 'user.email=op@example.com'];
  const commit = git(m.clusterDir, ...env, 'commit-tree', `${head}^{tree}`, '-p', head, '-m', message).trim();
  return commit;
}

async function register(m: MayuProcess, serial: string): Promise<void> {
  assert.equal((await fetch(`${m.url}/first-stage-script/${serial}`)).status, 200);
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 8000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const got = probe();
    if (got !== undefined) return got;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("mayu's acknowledged commits and an operator's commit that landed before them", () => {
  it('are replayed on top of the operator commit while mayu runs', async () => {
    const mayu = await startMayu();
    try {
      await register(mayu, 'r-1');
      // git holds the branch lock: mayu acknowledges from its journal, git waits.
      await writeFile(path.join(mayu.clusterDir, ...LOCK), '');
      await register(mayu, 'r-2');
      const op = operatorCommitUnderLock(mayu, 'operator: note while mayu was busy');
      await writeFile(path.join(mayu.clusterDir, '.git', 'refs', 'heads', 'master'), `${op}\n`);
      await rm(path.join(mayu.clusterDir, ...LOCK));
      await until('r-2 to reach git on top of the operator commit', () => (gitSubjects(mayu.clusterDir).at(-1)?.startsWith('r-2: ') ? true : undefined));
      const subjects = gitSubjects(mayu.clusterDir);
      const opAt = subjects.indexOf('operator: note while mayu was busy');
      assert.ok(opAt > 0 && subjects.slice(opAt + 1).every((s) => s.startsWith('r-2: ')), subjects.join('\n'));
      assert.equal(git(mayu.clusterDir, 'fsck', '--lost-found').trim(), '');
      gitFsck(mayu.clusterDir);
      assert.equal(git(mayu.clusterDir, 'ls-tree', '--name-only', 'HEAD').split('\n').filter((n) => n.startsWith('r-')).join(','), 'r-1,r-2');
    } finally {
      await mayu.stop();
    }
  });

  it('are replayed at the next start after a kill -9 that came before mayu saw the operator commit', async () => {
    // No periodic check: mayu cannot notice the commit before the kill.
    let mayu = await startMayu({ args: ['--outside-check-ms', '0'] });
    try {
      await register(mayu, 'k-1');
      await writeFile(path.join(mayu.clusterDir, ...LOCK), '');
      await register(mayu, 'k-2');
      await register(mayu, 'k-3');
      const op = operatorCommitUnderLock(mayu, 'operator: committed just before the crash');
      await writeFile(path.join(mayu.clusterDir, '.git', 'refs', 'heads', 'master'), `${op}\n`);
      await mayu.kill9();
      await rm(path.join(mayu.clusterDir, ...LOCK));
      mayu = await startMayu({ workDir: mayu.workDir });
      const subjects = gitSubjects(mayu.clusterDir);
      const opAt = subjects.indexOf('operator: committed just before the crash');
      assert.ok(opAt > 0, subjects.join('\n'));
      const after = subjects.slice(opAt + 1);
      assert.ok(after.some((s) => s.startsWith('k-2: ')) && after.some((s) => s.startsWith('k-3: ')), after.join('\n'));
      for (const s of ['k-1', 'k-2', 'k-3']) assert.equal((await fetch(`${mayu.url}/admin/host/${s}`)).status, 200, s);
      assert.equal(git(mayu.clusterDir, 'fsck', '--lost-found').trim(), '');
      gitFsck(mayu.clusterDir);
    } finally {
      await mayu.stop();
    }
  });
});
