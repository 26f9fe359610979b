import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { etcdctl, requireEtcdBinaries, startEtcd, startEtcdV2, until, type EtcdMember } from './helpers/etcd.ts';
import { startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// The real client: Debian's etcd 3.4 members bootstrapping through mayu's discovery service (its
// own, and proxied to an etcd as 0.11 did) with the cluster's default token (cluster.json), as installed machines do with the default
// templates. A member that comes when the cluster is full is turned away as etcd's discovery
// client turns it away: `--discovery-fallback exit` exits 1 ("cluster is full"), the default
// (proxy) starts as a proxy instead of a member.

/** Three members bootstrap through `mayu`'s /etcd with the default token; a 4th and 5th are turned away. */
async function formClusterThroughMayu(mayu: MayuProcess, dataDir: string, started: EtcdMember[]): Promise<void> {
  // This run's members; `started` also holds them for the suite's clean-up if an assertion fails.
  const members: EtcdMember[] = [];
  const track = (m: EtcdMember) => (members.push(m), started.push(m), m);
  const cluster = JSON.parse(await readFile(path.join(mayu.clusterDir, 'cluster.json'), 'utf8')) as { Config: { DefaultEtcdClusterToken: string } };
  const discovery = `${mayu.url}/etcd/${cluster.Config.DefaultEtcdClusterToken}`;

  for (const name of ['e0', 'e1', 'e2']) track(await startEtcd({ name, dataDir, discovery }));
  const list = await until('etcdctl member list to show three started members', 60_000, async () => {
    for (const m of members) assert.equal(m.proc.exitCode, null, `${m.name} exited:\n${m.output().slice(-3000)}`);
    const r = await etcdctl(members[0]!.clientUrl, ['member', 'list']);
    const lines = r.stdout.trim().split('\n').filter((l) => l.includes(', started, '));
    return lines.length === 3 ? lines : undefined;
  });
  assert.deepEqual(list.map((l) => l.split(', ')[2]).sort(), ['e0', 'e1', 'e2']);
  // One cluster: every member answers with the same member list and can write and read.
  for (const m of members) {
    const r = await etcdctl(m.clientUrl, ['member', 'list']);
    assert.equal(r.stdout.trim().split('\n').length, 3, `${m.name}: ${r.stdout}${r.stderr}`);
  }
  assert.equal((await etcdctl(members[0]!.clientUrl, ['put', 'k', 'v'])).code, 0);
  assert.match((await etcdctl(members[2]!.clientUrl, ['get', 'k'])).stdout, /^k\nv\n$/);

  // The discovery holds the three registrations (etcd's member ids, `name=peerURL` values).
  const registered = await (await fetch(discovery)).json() as { node: { nodes: Array<{ key: string; value: string }> } };
  assert.deepEqual(registered.node.nodes.map((n) => n.value.split('=')[0]).sort(), ['e0', 'e1', 'e2']);

  // Full: with --discovery-fallback exit the fourth exits 1 saying so, and registers nothing.
  const fourth = track(await startEtcd({ name: 'e3', dataDir, discovery, extra: ['--discovery-fallback', 'exit'] }));
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([fourth.exited, new Promise<'running'>((r) => (timer = setTimeout(() => r('running'), 30_000)))]);
  clearTimeout(timer);
  assert.equal(code, 1, `e3 should exit 1; output:\n${fourth.output().slice(-3000)}`);
  assert.match(fourth.output(), /discovery: cluster is full/);

  // The default fallback: a fifth becomes a proxy, not a member.
  const fifth = track(await startEtcd({ name: 'e4', dataDir, discovery }));
  await until('e4 to fall back to proxy', 30_000, async () => (/discovery cluster is full, falling back to proxy/.test(fifth.output()) ? true : undefined));

  const after = await (await fetch(discovery)).json() as { node: { nodes: unknown[] } };
  assert.equal(after.node.nodes.length, 3, 'neither e3 nor e4 registered');
  const final = await etcdctl(members[1]!.clientUrl, ['member', 'list']);
  assert.equal(final.stdout.trim().split('\n').length, 3, final.stdout);
  for (const m of members) await m.stop();
}

describe('etcd discovery with real etcd members', () => {
  let dataDir: string;
  const stops: Array<() => Promise<void>> = [];
  const members: EtcdMember[] = [];

  before(async () => {
    await requireEtcdBinaries();
    dataDir = await tempDir('mayu-etcd-');
  });

  after(async () => {
    for (const m of members) await m.stop();
    for (const stop of stops.reverse()) await stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('mayu\'s own: three members form one cluster through <mayu>/etcd/<default token>; a fourth is turned away', { timeout: 120_000 }, async () => {
    const mayu = await startMayu();
    stops.push(() => mayu.stop());
    await formClusterThroughMayu(mayu, path.join(dataDir, 'internal'), members);
  });

  it('proxied to an etcd (--etcd-endpoint, as 0.11): the same', { timeout: 120_000 }, async () => {
    const registry = await startEtcdV2(dataDir);
    stops.push(() => registry.stop());
    const mayu = await startMayu({ args: ['--etcd-endpoint', registry.hostPort] });
    stops.push(() => mayu.stop());
    await formClusterThroughMayu(mayu, path.join(dataDir, 'proxy'), members);
  });
});
