import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { creationSteps, setMetadataSteps } from '../src/core/host-changes.ts';
import { encodeHost, type Host } from '../src/core/host.ts';
import type { CompactionResult } from '../src/git/compaction.ts';
import { GitStore } from '../src/store/git-store.ts';
import { git, gitFsck } from './helpers/git.ts';

// Operators' git maintenance in the cluster directory while mayu writes: every command, run again
// and again in the middle of a storm of changes, must cost no failed checkpoint and no object.
// Native git is the judge: every acknowledged commit is reachable from HEAD, fsck is clean, and
// a reopened store loads every host as the running one had it.

const run = promisify(execFile);
const STORM_CHILD = path.join(import.meta.dirname, 'helpers', 'git-store-storm.ts');

interface Outcome {
  checkpointErrors: Error[];
  compactionErrors: Error[];
  compactions: number;
  acked: string[];
  gitRuns: { ok: number; failed: string[] };
}

const HOSTS = 40;
const CHANGES_PER_HOST = 30;

/**
 * HOSTS machines at once: each is created (5 commits), then changed CHANGES_PER_HOST times, one
 * change at a time as a machine does. Meanwhile `command` runs in the cluster dir, over and over
 * until the storm ends (at least `minRuns` times: the storm waits for them).
 */
async function stormDuring(command: string[], opts: { minRuns?: number; compactInWorker?: boolean } = {}): Promise<{ dir: string; store: GitStore; outcome: Outcome }> {
  const minRuns = opts.minRuns ?? 3;
  const dir = await mkdtemp(path.join(tmpdir(), 'mayu-maint-'));
  const outcome: Outcome = { checkpointErrors: [], compactionErrors: [], compactions: 0, acked: [], gitRuns: { ok: 0, failed: [] } };
  const store = await GitStore.open({
    dir,
    randomBytes: (n) => randomBytes(n),
    // Small, so mayu's own merges run beside git's repacks too.
    compactAfterPacks: 4,
    compactInWorker: opts.compactInWorker ?? false,
    onCheckpointError: (err) => outcome.checkpointErrors.push(err),
    onCompaction: (r: CompactionResult | Error) => (r instanceof Error ? outcome.compactionErrors.push(r) : outcome.compactions++),
  });
  let stormDone = false;
  const maintenance = (async () => {
    while (!stormDone || outcome.gitRuns.ok + outcome.gitRuns.failed.length < minRuns) {
      try {
        await run('git', ['-C', dir, ...command]);
        outcome.gitRuns.ok++;
      } catch (err) {
        outcome.gitRuns.failed.push((err as { stderr?: string }).stderr ?? String(err));
      }
    }
  })();
  const machine = async (i: number) => {
    const serial = `m${i}`;
    const steps = creationSteps(serial, {
      hosts: store.scan(),
      profiles: [],
      ipRange: { start: '10.2.0.1', end: '10.2.3.255' },
      defaultEtcdToken: store.clusterConfig().DefaultEtcdClusterToken,
      randomBytes: randomBytes(16),
    });
    outcome.acked.push((await store.apply(serial, steps))!);
    for (let n = 0; n < CHANGES_PER_HOST; n++) {
      // Spread over the git runs: a machine pauses a little between its reports.
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
      outcome.acked.push((await store.apply(serial, setMetadataSteps(store.get(serial)!, [`round=${n}`])))!);
    }
  };
  await Promise.all(Array.from({ length: HOSTS }, (_, i) => machine(i)));
  stormDone = true;
  await maintenance;
  await store.settled();
  await store.flushHistory();
  return { dir, store, outcome };
}

const bySerial = (hs: Host[]) => hs.sort((a, b) => (a.Serial ?? '').localeCompare(b.Serial ?? ''));

/** Every acknowledged commit reachable from HEAD and fsck clean; the hosts the store has. */
async function assertNothingLost(dir: string, store: GitStore, outcome: Outcome): Promise<Host[]> {
  assert.deepEqual(outcome.checkpointErrors.map((e) => e.message), [], 'no checkpoint failed');
  assert.deepEqual(outcome.compactionErrors.map((e) => e.message), [], 'no pack merge failed');
  assert.ok(outcome.gitRuns.ok >= 1, `git ran successfully at least once (failures: ${outcome.gitRuns.failed.join(' | ')})`);
  const reachable = new Set(git(dir, 'rev-list', 'HEAD').split('\n').filter(Boolean));
  const missing = outcome.acked.filter((c) => !reachable.has(c));
  assert.deepEqual(missing, [], 'every acknowledged commit is in git log');
  assert.equal(reachable.size, 2 + HOSTS * (5 + CHANGES_PER_HOST));
  gitFsck(dir);
  const hosts = bySerial(store.all());
  assert.equal(hosts.length, HOSTS);
  assert.equal(git(dir, 'show', 'HEAD:m7/conf.json'), encodeHost(store.get('m7')!));
  // The running store reads old commits from whatever packs git left (its reader follows them).
  const created = git(dir, 'log', '--format=%H', '--', 'm7/conf.json').trim().split('\n').at(-1)!;
  assert.equal(await store.confAt('m7', created), git(dir, 'show', `${created}:m7/conf.json`));
  return hosts;
}

/** The storm with `command` running, then the checks; a reopened store has every host. */
async function checkStormDuring(t: TestContext, command: string[], opts: { compactInWorker?: boolean } = {}): Promise<void> {
  const { dir, store, outcome } = await stormDuring(command, opts);
  t.diagnostic(`git runs: ${outcome.gitRuns.ok} ok, ${outcome.gitRuns.failed.length} failed; mayu merges: ${outcome.compactions}`);
  let hosts: Host[];
  try {
    hosts = await assertNothingLost(dir, store, outcome);
  } finally {
    await store.close();
  }
  gitFsck(dir);
  const reopened = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
  assert.deepEqual(bySerial(reopened.all()), hosts);
  await reopened.close();
  await rm(dir, { recursive: true, force: true });
}

describe('git maintenance while mayu writes', () => {
  for (const command of [['gc'], ['repack', '-a', '-d'], ['prune', '--expire=now'], ['gc', '--prune=now']]) {
    it(`\`git ${command.join(' ')}\` run again and again during a storm: no failed checkpoint, nothing lost`, (t) => checkStormDuring(t, command));
  }

  it('`git gc --prune=now` during a storm with mayu\'s merges in their worker thread (as the server runs them)', (t) =>
    checkStormDuring(t, ['gc', '--prune=now'], { compactInWorker: true }));
});

describe('git maintenance and the branch ref', () => {
  it('after `git gc` packed the refs, mayu reads the branch from packed-refs and writes a loose ref over it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-maint-'));
    const first = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    const before = await first.apply('p1', creationSteps('p1', {
      hosts: first.scan(), profiles: [], ipRange: { start: '10.4.0.1', end: '10.4.0.9' },
      defaultEtcdToken: first.clusterConfig().DefaultEtcdClusterToken, randomBytes: randomBytes(16),
    }));
    await first.close();
    git(dir, 'gc', '--prune=now');
    assert.match(git(dir, 'show-ref'), new RegExp(`^${before} refs/heads/master$`, 'm'));
    assert.equal(git(dir, 'for-each-ref', '--format=%(refname)', 'refs/heads').trim(), 'refs/heads/master');
    // The loose ref is gone: only packed-refs names the branch.
    assert.deepEqual(await readdir(path.join(dir, '.git', 'refs', 'heads')), []);

    const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    assert.equal(store.get('p1')?.Serial, 'p1');
    const after = await store.apply('p1', setMetadataSteps(store.get('p1')!, ['a=b']));
    await store.flushHistory();
    assert.equal(git(dir, 'rev-parse', 'HEAD').trim(), after);
    assert.equal(git(dir, 'rev-parse', 'HEAD~1').trim(), before);
    git(dir, 'gc', '--prune=now');
    assert.equal(git(dir, 'rev-parse', 'HEAD').trim(), after);
    gitFsck(dir);
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('kill -9 of mayu while `git gc --prune=now` runs: every acknowledged change is in git after the restart', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-maint-'));
    const acked: string[] = [];
    for (let round = 0; round < 3; round++) {
      const child = spawn(process.execPath, ['--import', 'tsx', STORM_CHILD, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const lines = out.split('\n');
        out = lines.pop()!;
        for (const l of lines) if (l.startsWith('ack ')) acked.push(l.slice(4));
      });
      const exited = new Promise((r) => child.once('exit', r));
      const ackedAtStart = acked.length;
      // gc runs while the child writes; it is killed in the middle of one of them.
      const until = Date.now() + 20_000;
      while (acked.length < ackedAtStart + 150 && Date.now() < until) await run('git', ['-C', dir, 'gc', '--prune=now']).catch(() => undefined);
      const gc = run('git', ['-C', dir, 'gc', '--prune=now']).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 30 + Math.random() * 100));
      child.kill('SIGKILL');
      await exited;
      await gc;
      assert.ok(acked.length > ackedAtStart + 100, `round ${round}: the child acknowledged changes (${acked.length - ackedAtStart})`);
    }
    // The restart writes to git what the journal holds beyond the ref, and removes our leftovers.
    const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    await store.flushHistory();
    const reachable = new Set(git(dir, 'rev-list', 'HEAD').split('\n').filter(Boolean));
    assert.deepEqual(acked.filter((c) => !reachable.has(c)), [], 'every acknowledged commit is in git log');
    gitFsck(dir);
    const leftovers = (await readdir(path.join(dir, '.git', 'objects', 'pack'))).filter((n) => n.startsWith('mayu-incoming-') || n.endsWith('.keep'));
    assert.deepEqual(leftovers, []);
    assert.equal(store.size(), 24);
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
});
