import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { decodeLog } from '../src/store/etcd/change-log.ts';
import { startEtcdCluster, type EtcdCluster } from './helpers/etcd-cluster.ts';
import { until } from './helpers/etcd.ts';
import { FIXTURES, mayuFailsToStart, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// Replicas of mayu sharing one state in a real three-member etcd 3.4 cluster (loopback), each a
// real `mayu serve --store etcd` on port 0, sharing the audit repo (the cluster directory).

const run = promisify(execFile);
const git = async (dir: string, args: string[]) => (await run('git', ['-C', dir, ...args], { maxBuffer: 64 << 20 })).stdout;

interface HostView { Serial: string; InternalAddr?: string; Profile?: string }

/** 503 answers retried so far (changes that lost to another replica's, or etcd away). */
let retried = 0;

/** GET with retries on 503 (a replica lost to another replica's change, or etcd briefly away), as machines retry. */
async function fetchRetrying(url: string): Promise<Response> {
  for (let i = 0; ; i++) {
    const res = await fetch(url);
    if (res.status !== 503 || i >= 40) return res;
    await res.arrayBuffer();
    retried++;
    await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
  }
}

async function hostsOf(m: MayuProcess): Promise<HostView[]> {
  const res = await fetch(`${m.url}/admin/hosts`);
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as HostView[];
}

/** Every revision of the log key since the start: (revision, number of changes), in order. */
async function logRevisions(endpoints: string[], prefix = '/mayu/'): Promise<Map<number, number>> {
  const client = new Etcd3({ hosts: endpoints });
  try {
    const out = new Map<number, number>();
    const current = await client.get(`${prefix}log`).exec();
    const last = Number(current.kvs[0]?.mod_revision ?? 0);
    const w = await client.watch().key(`${prefix}log`).startRevision('1').create();
    await new Promise<void>((resolve) => {
      if (last === 0) return resolve();
      w.on('put', (kv) => {
        out.set(Number(kv.mod_revision), decodeLog(kv.value.toString()).length);
        if (Number(kv.mod_revision) >= last) resolve();
      });
    });
    await w.cancel();
    return out;
  } finally {
    client.close();
  }
}

/** (revision, change i, of n) of every commit with a trailer, oldest first. */
async function gitPositions(dir: string): Promise<{ revision: number; index: number; count: number; subject: string }[]> {
  const out = await git(dir, ['log', '--reverse', '--format=%H%x00%s%x00%(trailers:key=Mayu-Etcd-Revision,valueonly)%x00%(trailers:key=Mayu-Etcd-Change,valueonly)%x01']);
  return out.split('\x01').map((r) => r.trim()).filter(Boolean).flatMap((r) => {
    const [, subject, rev, change] = r.split('\x00');
    if (!rev?.trim()) return [];
    const [i, n] = change!.trim().split('/').map(Number);
    return [{ revision: Number(rev.trim()), index: i! - 1, count: n!, subject: subject! }];
  });
}

/** Git has exactly the changes etcd's log has, each once, in revision order. */
async function assertHistoryMatches(endpoints: string[], dir: string): Promise<number> {
  const revisions = await logRevisions(endpoints);
  const expected = [...revisions].flatMap(([rev, n]) => Array.from({ length: n }, (_, i) => `${rev}.${i}`));
  const positions = await until('the history writer to catch up with etcd', 60_000, async () => {
    const p = await gitPositions(dir);
    return p.length >= expected.length ? p : undefined;
  });
  assert.deepEqual(positions.map((p) => `${p.revision}.${p.index}`), expected, 'one commit per change, in revision order, no gap, no duplicate');
  for (const p of positions) assert.equal(p.count, revisions.get(p.revision));
  return positions.length;
}

describe('etcd store: replicas sharing one state (real 3-member etcd 3.4)', () => {
  let cluster: EtcdCluster;
  let workDir: string;
  const replicas: MayuProcess[] = [];
  const startReplica = async (id: string, endpoints = cluster.endpoints) => {
    const m = await startMayu({ workDir, args: ['--store', 'etcd', '--etcd-store-endpoints', endpoints.join(','), '--replica-id', id] });
    replicas.push(m);
    return m;
  };

  before(async () => {
    cluster = await startEtcdCluster(await tempDir('mayu-etcd-replicas-'));
    workDir = await tempDir('mayu-etcd-work-');
  });
  after(async () => {
    for (const m of replicas) await m.stop().catch(() => undefined);
    await cluster?.stop();
  });

  it('two replicas registering hosts at once: no duplicate address, profile quantity held, each sees the other\'s hosts', async (t) => {
    const a = await startReplica('a');
    const b = await startReplica('b');
    // Warm both up (first requests compile templates), then register in rounds that overlap.
    assert.equal((await fetchRetrying(`${a.url}/first-stage-script/w-a`)).status, 200);
    assert.equal((await fetchRetrying(`${b.url}/first-stage-script/w-b`)).status, 200);
    await until('both replicas to show both warm-up hosts', 10_000, async () => ((await hostsOf(a)).length === 2 && (await hostsOf(b)).length === 2) || undefined);
    const results: Response[] = [];
    for (let round = 0; round < 4; round++) {
      results.push(...await Promise.all([
        ...Array.from({ length: 6 }, (_, i) => fetchRetrying(`${a.url}/first-stage-script/a-${round * 6 + i}`)),
        ...Array.from({ length: 6 }, (_, i) => fetchRetrying(`${b.url}/first-stage-script/b-${round * 6 + i}`)),
      ]));
    }
    assert.deepEqual(results.map((r) => r.status), results.map(() => 200));
    t.diagnostic(`48 overlapping registrations over 2 replicas: ${retried} answers of 503 retried (changes that lost to the other replica's)`);

    for (const m of [a, b]) {
      const hosts = await until('both replicas to show all 50 hosts', 10_000, async () => {
        const h = await hostsOf(m);
        return h.length === 50 ? h : undefined;
      });
      const addrs = hosts.map((h) => h.InternalAddr);
      assert.equal(new Set(addrs).size, 50, 'every InternalAddr unique');
      assert.ok(addrs.every((x) => x && /^10\.0\.[34]\./.test(x)));
      assert.equal(hosts.filter((h) => h.Profile === 'core').length, 3, 'profile core has quantity 3');
    }
    // A change on A is on B at once (watch): a host created on A answers on B.
    const res = await fetchRetrying(`${a.url}/first-stage-script/late-1`);
    assert.equal(res.status, 200);
    const seen = await until('B to show A\'s new host', 5000, async () => {
      const r = await fetch(`${b.url}/admin/host/late-1`);
      return r.status === 200 ? (await r.json()) as HostView : undefined;
    });
    assert.equal(seen.Serial, 'late-1');
  });

  it('the history writer makes one linear git history, one commit per change, fsck clean; history reads the same on every replica', async () => {
    const dir = `${workDir}/clusters`;
    const commits = await assertHistoryMatches(cluster.endpoints, dir);
    assert.ok(commits >= 51 * 4, `at least 4 commits per host, got ${commits}`);
    assert.equal((await git(dir, ['rev-list', '--merges', 'HEAD'])).trim(), '', 'linear');
    await run('git', ['-C', dir, 'fsck', '--full']);
    // Each host's commits carry today's messages, in order.
    const subjects = (await gitPositions(dir)).filter((p) => p.subject.startsWith('a-3: ')).map((p) => p.subject);
    assert.deepEqual(subjects.slice(0, 3), ['a-3: host created', 'a-3: updated with predefined settings', 'a-3: updated host InternalAddr']);
    const [a, b] = replicas;
    const ha = await (await fetch(`${a!.url}/admin/host/b-7/history`)).json() as { commit: string; message: string }[];
    const hb = await (await fetch(`${b!.url}/admin/host/b-7/history`)).json() as { commit: string; message: string }[];
    assert.ok(ha.length >= 4);
    assert.deepEqual(hb, ha);
    assert.equal(ha.at(-1)!.message, 'b-7: host created');
  });

  it('kill -9 of the history writer: the other replica takes over, no gap, no duplicate', async () => {
    const writer = await until('a replica to say it writes history', 10_000, async () =>
      replicas.find((m) => m.logs.some((l) => l.msg === 'this replica writes the audit history now')));
    const other = replicas.find((m) => m !== writer && m.proc.exitCode === null && m.proc.signalCode === null)!;
    // Changes in flight while the writer dies.
    const storm = Array.from({ length: 20 }, (_, i) => fetchRetrying(`${other.url}/first-stage-script/k-${i}`));
    await new Promise((r) => setTimeout(r, 50));
    await writer.kill9();
    assert.deepEqual((await Promise.all(storm)).map((r) => r.status), storm.map(() => 200));
    await other.waitForLog((l) => l.msg === 'this replica writes the audit history now', 20_000);
    await assertHistoryMatches(cluster.endpoints, `${workDir}/clusters`);
    await run('git', ['-C', `${workDir}/clusters`, 'fsck', '--full']);
  });

  it('etcd unreachable from one replica: 503 with the reason, /readyz not ready, nothing written; back when etcd is', async () => {
    const only = cluster.members[2]!;
    const c = await startReplica('c', [only.clientUrl]);
    assert.equal((await fetch(`${c.url}/readyz`)).status, 200);
    await cluster.kill9(only.name);
    const ready = await until('C to be not ready', 10_000, async () => {
      const r = await fetch(`${c.url}/readyz`);
      return r.status === 503 ? (await r.json()) as { ready: boolean; reasons: string[] } : undefined;
    });
    assert.equal(ready.ready, false);
    assert.match(ready.reasons[0]!, new RegExp(`etcd at ${only.clientUrl} unreachable`));
    const res = await fetch(`${c.url}/first-stage-script/offline-1`);
    assert.equal(res.status, 503);
    assert.match(await res.text(), /etcd at .* unreachable/);
    // The other replica (all endpoints) still works with one member down, and never sees offline-1.
    const survivor = replicas.find((m) => m !== c && m.proc.exitCode === null && m.proc.signalCode === null)!;
    assert.equal((await fetchRetrying(`${survivor.url}/first-stage-script/two-members-1`)).status, 200);
    assert.equal((await fetch(`${survivor.url}/admin/host/offline-1`)).status, 404);
    await cluster.restart(only.name);
    await until('C to be ready again', 20_000, async () => ((await fetch(`${c.url}/readyz`)).status === 200) || undefined);
    await until('C to show the host made while it was cut off', 10_000, async () => ((await fetch(`${c.url}/admin/host/two-members-1`)).status === 200) || undefined);
    assert.equal((await fetch(`${c.url}/admin/host/offline-1`)).status, 404);
  });

  it('a writer paused past its lease (SIGSTOP) stops writing when it wakes: no commit twice, no gap', async () => {
    const alive = replicas.filter((m) => m.proc.exitCode === null && m.proc.signalCode === null);
    const elected = (m: MayuProcess) => m.logs.filter((l) => l.msg === 'this replica writes the audit history now').length;
    const writer = alive.find((m) => elected(m) > 0 && m.logs.filter((l) => l.msg === 'stopped writing the audit history; campaigning again').length < elected(m))!;
    const other = alive.find((m) => m !== writer)!;
    const before = elected(other);
    // Changes the writer has to commit while it is frozen.
    await Promise.all(Array.from({ length: 10 }, (_, i) => fetchRetrying(`${other.url}/first-stage-script/p-${i}`)));
    writer.proc.kill('SIGSTOP');
    try {
      await Promise.all(Array.from({ length: 10 }, (_, i) => fetchRetrying(`${other.url}/first-stage-script/q-${i}`)));
      await until('the other replica to take over', 20_000, async () => (elected(other) > before) || undefined);
    } finally {
      writer.proc.kill('SIGCONT');
    }
    // It notices at its next keepalive (lease gone) or write (branch moved), then closes its git
    // store (merging packs): seconds, more on a loaded CI machine (10 s was once too short).
    await writer.waitForLog((l) => l.msg === 'stopped writing the audit history; campaigning again', 30_000);
    await Promise.all(Array.from({ length: 10 }, (_, i) => fetchRetrying(`${writer.url}/first-stage-script/r-${i}`)));
    await assertHistoryMatches(cluster.endpoints, `${workDir}/clusters`);
    await run('git', ['-C', `${workDir}/clusters`, 'fsck', '--full']);
  });

  it('keys in etcd that mayu did not write (bad JSON, a conf of another serial) are reported and never served', async () => {
    const m = replicas.find((r) => r.proc.exitCode === null && r.proc.signalCode === null)!;
    const client = new Etcd3({ hosts: cluster.endpoints });
    try {
      const good = await (await fetch(`${m.url}/admin/host/a-1`)).text();
      await client.put('/mayu/hosts/bad-1').value('{not json');
      await client.put('/mayu/hosts/bad-2').value(good);
    } finally {
      client.close();
    }
    for (const key of ['/mayu/hosts/bad-1', '/mayu/hosts/bad-2']) {
      const line = await m.waitForLog((l) => l.msg === 'key in etcd not written by mayu (or damaged): not served' && l.key === key);
      assert.ok(line.err);
    }
    assert.equal((await fetch(`${m.url}/admin/host/bad-1`)).status, 404);
    assert.equal((await fetch(`${m.url}/admin/host/bad-2`)).status, 404);
  });

  it('etcd unreachable at start: mayu exits naming the endpoint and the error', async () => {
    const dir = await tempDir();
    const { code, stderr } = await mayuFailsToStart([
      '--config', path.join(FIXTURES, 'config.yaml'), '--cluster-directory', path.join(dir, 'clusters'), '--profiles-dir', path.join(dir, 'profiles'),
      '--report-key-file', path.join(dir, 'report-key'), '--store', 'etcd', '--etcd-store-endpoints', 'http://127.0.0.1:9',
    ]);
    assert.equal(code, 1);
    assert.match(stderr, /etcd store: etcd at http:\/\/127\.0\.0\.1:9 unreachable: /);
  });
});
