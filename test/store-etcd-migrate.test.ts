import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startEtcdCluster, type EtcdCluster } from './helpers/etcd-cluster.ts';
import { until } from './helpers/etcd.ts';
import { FIXTURES, ROOT, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// `mayu migrate`: a single-node cluster directory's hosts into a real etcd 3.4 cluster; the repo's
// history stays and the replicas' history writer continues it.

const run = promisify(execFile);
const git = async (dir: string, args: string[]) => (await run('git', ['-C', dir, ...args])).stdout;
interface HostView { Serial: string; InternalAddr?: string; Profile?: string }

function migrate(workDir: string, endpoints: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => execFile(process.execPath, [
    '--import', 'tsx', path.join(ROOT, 'src/cli/mayu.ts'), 'migrate', '--config', path.join(FIXTURES, 'config.yaml'),
    '--profiles-dir', path.join(workDir, 'profiles'), '--cluster-directory', path.join(workDir, 'clusters'), '--etcd-store-endpoints', endpoints.join(','),
  ], { cwd: ROOT }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr })));
}

describe('mayu migrate: single-node cluster directory into etcd', () => {
  let cluster: EtcdCluster;
  const started: MayuProcess[] = [];
  before(async () => {
    cluster = await startEtcdCluster(await tempDir('mayu-etcd-migrate-'));
  });
  after(async () => {
    for (const m of started) await m.stop().catch(() => undefined);
    await cluster?.stop();
  });

  it('moves the hosts, keeps the history, and replicas continue both (addresses, quantities, commits)', async () => {
    const workDir = await tempDir();
    const single = await startMayu({ workDir });
    started.push(single);
    for (let i = 0; i < 5; i++) assert.equal((await fetch(`${single.url}/first-stage-script/s-${i}`)).status, 200);
    const before = (await (await fetch(`${single.url}/admin/hosts`)).json()) as HostView[];
    await single.stop();
    const dir = path.join(workDir, 'clusters');
    const commitsBefore = Number((await git(dir, ['rev-list', '--count', 'HEAD'])).trim());

    const moved = await migrate(workDir, cluster.endpoints);
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stdout, /^5 hosts moved into etcd/);
    const again = await migrate(workDir, cluster.endpoints);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /etcd already holds \d+ keys under \/mayu\//);

    const replica = await startMayu({ workDir, args: ['--store', 'etcd', '--etcd-store-endpoints', cluster.endpoints.join(','), '--replica-id', 'r1'] });
    started.push(replica);
    const after = (await (await fetch(`${replica.url}/admin/hosts`)).json()) as HostView[];
    assert.deepEqual(after.map((h) => [h.Serial, h.InternalAddr, h.Profile]).sort(), before.map((h) => [h.Serial, h.InternalAddr, h.Profile]).sort());
    // The quota and address keys came along: the next host is not core (3 of 3) and gets a free address.
    assert.equal((await fetch(`${replica.url}/first-stage-script/s-new`)).status, 200);
    const fresh = (await (await fetch(`${replica.url}/admin/host/s-new`)).json()) as HostView;
    assert.equal(fresh.Profile, 'default');
    assert.ok(!before.some((h) => h.InternalAddr === fresh.InternalAddr));

    // The old history is still there and the writer continues it with the new host's commits.
    const newCommits = await until('the history writer to commit s-new', 20_000, async () => {
      const subjects = (await git(dir, ['log', '--format=%s'])).trim().split('\n');
      return subjects.filter((s) => s.startsWith('s-new: ')).length >= 4 ? subjects : undefined;
    });
    assert.ok(newCommits.length > commitsBefore);
    assert.equal(newCommits.at(-1), 'initial commit');
    const history = (await (await fetch(`${replica.url}/admin/host/s-2/history`)).json()) as { message: string }[];
    assert.equal(history.at(-1)!.message, 's-2: host created');
    await run('git', ['-C', dir, 'fsck', '--full']);
  });
});
