import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { startEtcdCluster, type EtcdCluster } from './helpers/etcd-cluster.ts';
import { until } from './helpers/etcd.ts';
import { FIXTURES, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// Admission modes `approve` and `known` on the etcd store: records and the inventory are etcd
// keys under the prefix, changed in compare-on-mod-revision transactions; two real replicas on
// a real three-member etcd 3.4; the history writer commits them with single-node mayu's subjects.

const run = promisify(execFile);
const git = async (dir: string, args: string[]) => (await run('git', ['-C', dir, ...args], { maxBuffer: 64 << 20 })).stdout;
const put = (m: MayuProcess, route: string, body = '') => fetch(`${m.url}${route}`, { method: 'PUT', body });
const pendingOf = async (m: MayuProcess) => ((await (await fetch(`${m.url}/admin/pending`)).json()) as { Mode: string; Machines: { Serial: string; Status: string }[] }).Machines.map((x) => `${x.Serial}:${x.Status}`);
const subjectsOf = async (dir: string, serial: string) => (await git(dir, ['log', '--reverse', '--format=%s'])).split('\n').filter((s) => s.startsWith(`${serial}: `));

async function configWith(workDir: string, endpoints: string[], prefix: string, mode: string): Promise<string> {
  const file = path.join(workDir, 'config.yaml');
  await writeFile(file, `${await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8')}\nadmission:\n  mode: ${mode}\n  retry_seconds: 20\netcd:\n  endpoints: [${endpoints.join(', ')}]\n  prefix: ${prefix}\n`);
  return file;
}

describe('admission on the etcd store, two replicas', () => {
  let cluster: EtcdCluster;
  let client: Etcd3;
  const started: MayuProcess[] = [];
  const replicas = async (mode: string, prefix: string) => {
    const workDir = await tempDir();
    const config = await configWith(workDir, cluster.endpoints, prefix, mode);
    const a = await startMayu({ workDir, config, args: ['--store', 'etcd', '--replica-id', `${prefix}a`] });
    started.push(a);
    await a.waitForLog((l) => l.msg === 'this replica writes the audit history now', 10_000);
    const b = await startMayu({ workDir, config, args: ['--store', 'etcd', '--replica-id', `${prefix}b`] });
    started.push(b);
    return { a, b, dir: path.join(workDir, 'clusters') };
  };
  before(async () => {
    cluster = await startEtcdCluster(await tempDir('mayu-etcd-admission-'));
    client = new Etcd3({ hosts: cluster.endpoints });
  });
  after(async () => {
    for (const m of started) await m.stop().catch(() => undefined);
    client?.close();
    await cluster?.stop();
  });

  it('approve mode: pending on A, approved / rejected on B, inventory across replicas; git has single-node\'s subjects', async () => {
    const { a, b, dir } = await replicas('approve', '/adm/');
    for (const s of ['p-1', 'p-2', 'p-3']) {
      const res = await fetch(`${a.url}/first-stage-script/${s}`);
      assert.equal(res.status, 200);
      assert.match(await res.text(), new RegExp(`${s} waits for an operator to approve it`));
    }
    // Asking again (on either replica) records nothing more.
    assert.equal((await fetch(`${b.url}/first-stage-script/p-1`)).status, 200);
    await until('B to list the machines pending on A', 10_000, async () => (await pendingOf(b)).length === 3 || undefined);
    assert.deepEqual((await pendingOf(b)).sort(), ['p-1:pending', 'p-2:pending', 'p-3:pending']);

    const approved = await put(b, '/admin/host/p-1/approve');
    assert.equal(approved.status, 200, await approved.clone().text());
    assert.equal(((await approved.json()) as { Profile: string }).Profile, 'core');
    assert.equal((await put(b, '/admin/host/p-2/reject')).status, 202);
    await until('A to see the approval and the rejection', 10_000, async () => ((await fetch(`${a.url}/admin/host/p-1`)).status === 200 && (await pendingOf(a)).includes('p-2:rejected')) || undefined);
    assert.match(await (await fetch(`${a.url}/first-stage-script/p-1`)).text(), /^REPORT_TOKEN='[0-9a-f]{64}'$/m);
    const again = await put(a, '/admin/host/p-2/reject');
    assert.equal(again.status, 409);
    assert.match(await again.text(), /p-2 is rejected already/);
    assert.equal((await put(a, '/admin/host/p-1/approve')).status, 409);

    // The same machine approved on A and rejected on B at once: one wins, never both.
    const [ap, rj] = await Promise.all([put(a, '/admin/host/p-3/approve'), put(b, '/admin/host/p-3/reject')]);
    assert.ok([ap.status, rj.status].filter((s) => s < 300).length >= 1, `${ap.status} ${rj.status}`);
    await new Promise((r) => setTimeout(r, 500));
    const hostOnA = (await fetch(`${a.url}/admin/host/p-3`)).status === 200;
    const rejectedOnB = (await pendingOf(b)).includes('p-3:rejected');
    assert.notEqual(hostOnA, rejectedOnB, `p-3 host on A: ${hostOnA}, rejected on B: ${rejectedOnB} (${ap.status} ${rj.status})`);

    // Inventory: added on A, listed and removed on B.
    assert.equal((await put(a, '/admin/inventory/inv-1', '{"Profile":"default"}')).status, 201);
    await until('B to list inv-1', 10_000, async () => (await fetch(`${b.url}/admin/inventory/inv-1`)).status === 200 || undefined);
    assert.equal((await fetch(`${b.url}/admin/inventory/inv-1`, { method: 'DELETE' })).status, 204);
    // An inventory machine of A's adding is admitted at once on B.
    assert.equal((await put(a, '/admin/inventory/inv-2')).status, 201);
    await until('B to admit inv-2', 10_000, async () => /^REPORT_TOKEN=/m.test(await (await fetch(`${b.url}/first-stage-script/inv-2`)).text()) || undefined);

    // Keys nobody wrote through mayu: never listed, never committed.
    await client.put('/adm/_admission/zz-bad.json').value('{not json');
    await client.put('/adm/_admission/zz-other.json').value(JSON.stringify({ Serial: 'someone-else', Status: 'pending' }));
    await client.put('/adm/_admission/../x').value('{}');

    await until('git to have every decision', 20_000, async () => (await subjectsOf(dir, 'inv-2')).includes('inv-2: host created') || undefined);
    assert.deepEqual(await subjectsOf(dir, 'p-1'), [
      'p-1: pending approval (approve mode)', 'p-1: approved (profile core)', 'p-1: host created', 'p-1: updated with predefined settings',
      'p-1: updated host InternalAddr', 'p-1: updated host profile and metadata', 'p-1: set default etcd discovery token',
    ]);
    assert.deepEqual(await subjectsOf(dir, 'p-2'), ['p-2: pending approval (approve mode)', 'p-2: rejected']);
    assert.deepEqual(await subjectsOf(dir, 'inv-1'), ['inv-1: added to inventory (profile default)', 'inv-1: removed from inventory']);
    assert.deepEqual((await subjectsOf(dir, 'inv-2')).slice(0, 2), ['inv-2: added to inventory', 'inv-2: host created']);
    const files = (await git(dir, ['ls-tree', '-r', '--name-only', 'HEAD'])).split('\n');
    assert.ok(files.includes('_admission/p-2.json') && !files.includes('_admission/p-1.json'));
    assert.ok(!files.some((f) => f.includes('zz-')), 'foreign keys are never committed');
    assert.equal(JSON.parse(await git(dir, ['show', 'HEAD:_admission/p-2.json'])).Status, 'rejected');
    assert.match(await git(dir, ['show', 'HEAD:_config/inventory.yaml']), /inv-2/);
    assert.doesNotMatch(await git(dir, ['show', 'HEAD:_config/inventory.yaml']), /inv-1/);
    for (const m of [a, b]) assert.ok(!(await pendingOf(m)).some((x) => x.startsWith('zz-') || x.startsWith('someone')));
    assert.ok(b.logs.some((l) => l.key === '/adm/_admission/zz-bad.json' && l.msg === 'key in etcd not written by mayu (or damaged): not served'));
    // The history route of either replica shows the decisions too.
    const history = (await (await fetch(`${a.url}/admin/host/p-1/history`)).json()) as { message: string }[];
    assert.deepEqual(history.map((h) => h.message).slice(-2), ['p-1: approved (profile core)', 'p-1: pending approval (approve mode)']);
    await git(dir, ['fsck', '--full', '--strict']);
    assert.equal((await git(dir, ['rev-list', '--merges', 'HEAD'])).trim(), '');
  });

  it('known mode: discovered on A, approved on B adds it to the inventory in the approval commit', async () => {
    const { a, b, dir } = await replicas('known', '/known/');
    assert.match(await (await fetch(`${a.url}/first-stage-script/k-1`)).text(), /k-1 is not in the inventory \(listed as discovered/);
    await until('B to list k-1 as discovered', 10_000, async () => (await pendingOf(b)).includes('k-1:discovered') || undefined);
    const res = await put(b, '/admin/host/k-1/approve', '{"Profile":"default"}');
    assert.equal(res.status, 200, await res.clone().text());
    await until('A to see k-1 in the inventory', 10_000, async () => (await fetch(`${a.url}/admin/inventory/k-1`)).status === 200 || undefined);
    await until('git to have the approval', 20_000, async () => (await subjectsOf(dir, 'k-1')).length >= 3 || undefined);
    assert.deepEqual((await subjectsOf(dir, 'k-1')).slice(0, 3), ['k-1: discovered (known mode)', 'k-1: approved (profile default)', 'k-1: host created']);
    const approval = (await git(dir, ['log', '--format=%H %s'])).split('\n').find((l) => l.endsWith(' k-1: approved (profile default)'))!.split(' ')[0]!;
    assert.deepEqual((await git(dir, ['show', '--name-only', '--format=', approval])).trim().split('\n').sort(), ['_admission/k-1.json', '_config/inventory.yaml']);
  });
});
