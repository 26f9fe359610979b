import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { startEtcdCluster, type EtcdCluster } from './helpers/etcd-cluster.ts';
import { until } from './helpers/etcd.ts';
import { FIXTURES, mayuFailsToStart, ROOT, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// `mayu migrate --to git`: replicas' cluster in a real etcd 3.4 back into the single-node
// cluster directory their history writer kept, with the writer behind (SIGSTOP), foreign keys in
// etcd, and a compacted gap; then single-node mayu serves the same hosts and continues the history.

const run = promisify(execFile);
const git = async (dir: string, args: string[]) => (await run('git', ['-C', dir, ...args], { maxBuffer: 64 << 20 })).stdout;
interface HostView { Serial: string; InternalAddr?: string; Profile?: string; State?: string }

function migrate(workDir: string, config: string, to: 'git' | 'etcd'): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => execFile(process.execPath, [
    '--import', 'tsx', path.join(ROOT, 'src/cli/mayu.ts'), 'migrate', '--to', to, '--config', config,
    '--profiles-dir', path.join(workDir, 'profiles'), '--cluster-directory', path.join(workDir, 'clusters'),
  ], { cwd: ROOT }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr })));
}

async function configWith(workDir: string, endpoints: string[], prefix: string): Promise<string> {
  const file = path.join(workDir, 'config.yaml');
  await writeFile(file, `${await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8')}\netcd:\n  endpoints: [${endpoints.join(', ')}]\n  prefix: ${prefix}\n  lease_ttl_seconds: 15\n`);
  return file;
}

async function hostsOf(m: MayuProcess): Promise<HostView[]> {
  return ((await (await fetch(`${m.url}/admin/hosts`)).json()) as HostView[]).map((h) => ({ Serial: h.Serial, InternalAddr: h.InternalAddr, Profile: h.Profile, State: h.State }))
    .sort((a, b) => (a.Serial < b.Serial ? -1 : 1));
}

/** Two replicas; the writer (a) is stopped (SIGSTOP) while b changes hosts, then both die by kill -9: git trails etcd. */
async function replicasLeavingGitBehind(workDir: string, config: string, tag: string): Promise<{ hosts: HostView[]; trailing: string[] }> {
  const a = await startMayu({ workDir, config, args: ['--store', 'etcd', '--replica-id', `${tag}-a`] });
  await a.waitForLog((l) => l.msg === 'this replica writes the audit history now', 10_000);
  const b = await startMayu({ workDir, config, args: ['--store', 'etcd', '--replica-id', `${tag}-b`] });
  try {
    for (let i = 0; i < 4; i++) assert.equal((await fetch(`${a.url}/first-stage-script/${tag}-${i}`)).status, 200);
    // b warmed up (its first script compiles templates) so that its changes below are quick.
    assert.equal((await fetch(`${b.url}/first-stage-script/${tag}-warm`)).status, 200);
    const dir = path.join(workDir, 'clusters');
    await until('the writer to commit the first hosts', 20_000, async () => (await git(dir, ['log', '--format=%s'])).includes(`${tag}-3: host created`) || undefined);
    a.proc.kill('SIGSTOP');
    const trailing = [`${tag}-late-0`, `${tag}-late-1`];
    for (const s of trailing) assert.equal((await fetch(`${b.url}/first-stage-script/${s}`)).status, 200);
    assert.equal((await fetch(`${b.url}/admin/host/${tag}-1`, { method: 'DELETE' })).status, 204);
    const hosts = await hostsOf(b);
    // Within a's lease (15 s; b's operator change waited 5 s for git): b never took over writing.
    assert.ok(!b.logs.some((l) => l.msg === 'this replica writes the audit history now'), 'b was elected: the changes took longer than the lease');
    await b.kill9();
    await a.kill9();
    return { hosts, trailing };
  } finally {
    await b.kill9();
    await a.kill9();
  }
}

describe('mayu migrate --to git: etcd back into the single-node cluster directory', () => {
  let cluster: EtcdCluster;
  let client: Etcd3;
  const started: MayuProcess[] = [];
  before(async () => {
    cluster = await startEtcdCluster(await tempDir('mayu-etcd-back-'));
    client = new Etcd3({ hosts: cluster.endpoints });
  });
  after(async () => {
    for (const m of started) await m.stop().catch(() => undefined);
    client?.close();
    await cluster?.stop();
  });

  it('catches git up, refuses foreign keys, ends etcd history in one commit; single-node serves the same hosts and continues linearly', async () => {
    const workDir = await tempDir();
    const config = await configWith(workDir, cluster.endpoints, '/back/');
    const dir = path.join(workDir, 'clusters');
    const { hosts, trailing } = await replicasLeavingGitBehind(workDir, config, 'mb');
    const subjects = async () => (await git(dir, ['log', '--format=%s'])).trim().split('\n');
    for (const s of trailing) assert.ok(!(await subjects()).includes(`${s}: host created`), 'git trails etcd before the migration');

    // The dead replicas' election keys live until their leases expire: refused meanwhile.
    const early = await migrate(workDir, config, 'git');
    assert.equal(early.code, 1);
    assert.match(early.stderr, /replicas are running on \/back\/ \(history writer candidates: [^)]*mb-[ab][^)]*\): stop every replica, then migrate/);
    await until('the leases to expire', 40_000, async () => (await client.getAll().prefix('/back/history-writer/').keys()).length === 0 || undefined);

    // A host record nobody wrote through mayu (no change log entry) and one that is not JSON.
    await client.put('/back/hosts/zz-foreign').value(JSON.stringify({ Serial: 'zz-foreign', State: 'running', InternalAddr: '10.0.3.99' }));
    await client.put('/back/hosts/zz-garbage').value('{not json');
    const refused = await migrate(workDir, config, 'git');
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, /differ after the history caught up: \/back\/hosts\/zz-foreign\. Changes without a change log entry were not made by mayu/);
    assert.doesNotMatch(await git(dir, ['log', '--format=%s']), /zz-foreign/);
    // The refused run still finished the writer's catch-up (as the writer would have): the late changes are in git, once.
    const caughtUp = await subjects();
    for (const s of trailing) assert.equal(caughtUp.filter((x) => x === `${s}: host created`).length, 1);
    assert.equal(caughtUp.filter((x) => x === 'mb-1: host deleted').length, 1);
    await client.delete().key('/back/hosts/zz-foreign');

    const moved = await migrate(workDir, config, 'git');
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stderr, /\/back\/hosts\/zz-garbage: not a host record mayu wrote/);
    assert.match(moved.stdout, new RegExp(`^${hosts.length} hosts in .*, equal to etcd at revision \\d+ \\(0 changes the history writer had not committed yet were committed\\)`));

    // History: linear, each change once, the late ones in, one migration commit on top.
    const after = await subjects();
    assert.equal((await git(dir, ['rev-list', '--merges', 'HEAD'])).trim(), '');
    for (const s of trailing) assert.equal(after.filter((x) => x === `${s}: host created`).length, 1);
    assert.equal(after.filter((x) => x === 'mb-1: host deleted').length, 1);
    const trailers = (await git(dir, ['log', '--format=%(trailers:key=Mayu-Etcd-Revision,valueonly)%x00%(trailers:key=Mayu-Etcd-Change,valueonly)%x01']))
      .split('\x01').map((r) => r.replace(/\s+/g, '')).filter((r) => r !== '' && r !== '\x00');
    assert.ok(trailers.length >= 20, trailers.join(' '));
    assert.equal(new Set(trailers).size, trailers.length, 'no etcd change committed twice');
    assert.match(after[0]!, /^mayu migrated back from etcd \(prefix \/back\/ revision \d+\), single-node from here$/);
    assert.match(await git(dir, ['log', '-1', '--format=%B']), /\n\nMayu-Etcd-End: \d+\n/);
    assert.equal((await git(dir, ['diff', '--stat', 'HEAD~1', 'HEAD'])).trim(), '', 'the migration commit changes no file');
    await git(dir, ['fsck', '--full', '--strict']);
    assert.equal((await git(dir, ['status', '--porcelain'])).trim(), '');

    // No replica starts on the prefix again; a second migration is refused.
    const replica = await mayuFailsToStart(['--config', config, '--store', 'etcd', '--cluster-directory', dir, '--profiles-dir', path.join(workDir, 'profiles'), '--report-key-file', path.join(workDir, 'report-key')]);
    assert.notEqual(replica.code, 0);
    assert.match(replica.stderr, /migrated back into a single-node cluster directory/);
    const twice = await migrate(workDir, config, 'git');
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /\/back\/ was migrated out already/);

    // Single-node mayu on the directory: the same hosts, and its commits continue the history.
    const single = await startMayu({ workDir, config });
    started.push(single);
    assert.deepEqual(await hostsOf(single), hosts);
    const history = (await (await fetch(`${single.url}/admin/host/${trailing[0]}/history`)).json()) as { message: string }[];
    assert.equal(history.at(-1)!.message, `${trailing[0]}: host created`);
    assert.equal((await fetch(`${single.url}/first-stage-script/after-0`)).status, 200);
    const fresh = (await (await fetch(`${single.url}/admin/host/after-0`)).json()) as HostView;
    assert.ok(!hosts.some((h) => h.InternalAddr === fresh.InternalAddr), 'addresses given out in etcd stay taken');
    await single.stop();
    const final = await subjects();
    assert.equal(final.at(-1), 'initial commit');
    assert.ok(final.indexOf('after-0: host created') < final.indexOf(after[0]!));
    assert.equal((await git(dir, ['rev-list', '--merges', 'HEAD'])).trim(), '');
    await git(dir, ['fsck', '--full', '--strict']);
  });

  it('refuses when etcd compacted changes git does not have yet (a gap), and migrates nothing', async () => {
    const workDir = await tempDir();
    const config = await configWith(workDir, cluster.endpoints, '/gap/');
    const dir = path.join(workDir, 'clusters');
    await replicasLeavingGitBehind(workDir, config, 'gp');
    await until('the leases to expire', 40_000, async () => (await client.getAll().prefix('/gap/history-writer/').keys()).length === 0 || undefined);
    const head = (await git(dir, ['rev-parse', 'HEAD'])).trim();
    const current = await client.get('/gap/cluster.json').exec();
    await client.kv.compact({ revision: current.header!.revision, physical: true });
    const refused = await migrate(workDir, config, 'git');
    assert.equal(refused.code, 1, refused.stdout);
    assert.match(refused.stderr, /trails etcd's change log \(git has it up to revision \d+, etcd up to \d+\) and etcd no longer has the revisions in between .*: the history would have a gap; nothing was migrated/);
    assert.equal((await git(dir, ['rev-parse', 'HEAD'])).trim(), head);
    assert.equal(await client.get('/gap/migrated-out').string(), null);
  });
});
