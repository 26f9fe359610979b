import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startEtcdCluster, type EtcdCluster } from './helpers/etcd-cluster.ts';
import { until } from './helpers/etcd.ts';
import { runMayuctl, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// History while git trails etcd: the history writer (replica a) is stopped with SIGSTOP, replica
// b changes a host; b's history route, its ?with=conf form (the dashboard's audit trail) and
// `mayuctl history` show the changes from etcd's change log, marked uncommitted; once the writer
// runs again they are git commits, each once.

const run = promisify(execFile);
const git = async (dir: string, args: string[]) => (await run('git', ['-C', dir, ...args], { maxBuffer: 64 << 20 })).stdout;
interface Entry { commit: string; time: string; message: string; uncommitted?: boolean; conf?: string | null }
const historyOf = async (m: MayuProcess, serial: string, withConf = false) =>
  (await (await fetch(`${m.url}/admin/host/${serial}/history${withConf ? '?with=conf' : ''}`)).json()) as Entry[];

const CREATED = [
  'set default etcd discovery token', 'updated host profile and metadata', 'updated host InternalAddr', 'updated with predefined settings', 'host created',
];

describe('history on a replica while git trails etcd', () => {
  let cluster: EtcdCluster;
  const started: MayuProcess[] = [];
  before(async () => {
    cluster = await startEtcdCluster(await tempDir('mayu-etcd-trailing-'));
  });
  after(async () => {
    for (const m of started) {
      m.proc.kill('SIGCONT');
      await m.stop().catch(() => undefined);
    }
    await cluster?.stop();
  });

  it('shows etcd\'s changes git lacks as uncommitted, then the commits once git has them, no duplicate', async () => {
    const workDir = await tempDir();
    const args = (id: string) => ['--store', 'etcd', '--etcd-store-endpoints', cluster.endpoints.join(','), '--replica-id', id];
    const a = await startMayu({ workDir, args: args('a') });
    started.push(a);
    await a.waitForLog((l) => l.msg === 'this replica writes the audit history now', 10_000);
    const b = await startMayu({ workDir, args: args('b') });
    started.push(b);
    const dir = path.join(workDir, 'clusters');
    assert.equal((await fetch(`${b.url}/first-stage-script/warm`)).status, 200);
    await until('git to have the warm-up host', 20_000, async () => (await git(dir, ['log', '--format=%s'])).includes('warm: host created') || undefined);

    a.proc.kill('SIGSTOP');
    try {
      assert.equal((await fetch(`${b.url}/first-stage-script/t-1`)).status, 200);
      const trailing = await historyOf(b, 't-1');
      assert.deepEqual(trailing.map((e) => e.message), CREATED.map((m) => `t-1: ${m}`));
      for (const e of trailing) {
        assert.equal(e.uncommitted, true);
        assert.match(e.commit, /^etcd-\d+-[1-5]$/);
        assert.match(e.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      }
      assert.equal(new Set(trailing.map((e) => e.commit)).size, 5);
      assert.ok(!(await historyOf(b, 'warm')).some((e) => e.uncommitted), 'what git has is not marked');
      // The dashboard's form: each change's conf.json from etcd's log.
      const withConf = await historyOf(b, 't-1', true);
      assert.equal(JSON.parse(withConf[0]!.conf!).Serial, 't-1');
      assert.equal(JSON.parse(withConf[4]!.conf!).Serial, 't-1');
      assert.notEqual(withConf[0]!.conf, withConf[4]!.conf);
      const ctl = await runMayuctl(b.port, ['history', 't-1']);
      assert.equal(ctl.code, 0, ctl.stderr);
      const lines = ctl.stdout.trim().split('\n');
      assert.equal(lines.length, 5);
      for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d {2}in-etcd {3}t-1: .* \(in etcd as etcd-\d+-\d, not yet committed to git\)$/);
      assert.ok(!(await git(dir, ['log', '--format=%s'])).includes('t-1: '), 'git really trails');
      assert.ok(!b.logs.some((l) => l.msg === 'this replica writes the audit history now'), 'b took over writing: the checks took longer than the lease');
    } finally {
      a.proc.kill('SIGCONT');
    }
    await until('git to have t-1', 20_000, async () => (await git(dir, ['log', '--format=%s'])).includes('t-1: set default etcd discovery token') || undefined);
    for (const m of [b, a]) {
      const committed = await historyOf(m, 't-1');
      assert.deepEqual(committed.map((e) => e.message), CREATED.map((x) => `t-1: ${x}`), 'each change once');
      for (const e of committed) {
        assert.equal(e.uncommitted, undefined);
        assert.match(e.commit, /^[0-9a-f]{40}$/);
      }
    }
    await git(dir, ['fsck', '--full']);
  });
});
