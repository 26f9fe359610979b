import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { connectEtcd, fragmented, resumeAfterLastEvent } from '../src/store/etcd/connect.ts';
import { startEtcdCluster, type EtcdCluster } from './helpers/etcd-cluster.ts';
import { tempDir } from './helpers/mayu-process.ts';

// A watch started far behind (a history writer elected after a busy storm, a replica catching up)
// gets etcd's catch-up: up to 1000 revisions in one answer unless the watch asks etcd to cut it
// (fragment). Against a real etcd 3.4: 12 revisions of 1 MiB each, 12 MiB in all, three times
// grpc's default 4 MiB limit.

describe('etcd watch: a catch-up larger than grpc\'s message limit', () => {
  let cluster: EtcdCluster;
  let first = 0;
  before(async () => {
    cluster = await startEtcdCluster(await tempDir('mayu-etcd-catch-up-'), 1);
    const c = new Etcd3({ hosts: cluster.endpoints });
    const big = 'x'.repeat(1 << 20);
    for (let i = 0; i < 12; i++) {
      const res = await c.put('/t/log').value(`${i}:${big}`).exec();
      first ||= Number(res.header.revision);
    }
    c.close();
  });
  after(async () => cluster?.stop());

  const catchUp = async (client: Etcd3, cut: boolean, waitMs: number) => {
    const seen: string[] = [];
    const builder = client.watch().key('/t/log').startRevision(String(first));
    const w = await (cut ? fragmented(builder) : builder).create();
    w.on('put', (kv) => seen.push(kv.value.toString().slice(0, kv.value.indexOf(':'))));
    const deadline = Date.now() + waitMs;
    while (seen.length < 12 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    void w.cancel().catch(() => undefined);
    return seen;
  };

  const all = Array.from({ length: 12 }, (_, i) => String(i));

  it('a fragmented watch gets every revision, in order, within grpc\'s default limit', async () => {
    const client = new Etcd3({ hosts: cluster.endpoints });
    try {
      assert.deepEqual(await catchUp(client, true, 10_000), all);
    } finally {
      client.close();
    }
  });

  it('mayu\'s client (connectEtcd: fragmented watches, 64 MiB limit) gets every revision', async () => {
    const client = await connectEtcd({ endpoints: cluster.endpoints });
    try {
      assert.deepEqual(await catchUp(client, true, 10_000), all);
      assert.deepEqual(await catchUp(client, false, 10_000), all);
    } finally {
      client.close();
    }
  });

  it('a plain npm etcd3 watch gets none of them (what the history writer met before)', async () => {
    const client = new Etcd3({ hosts: cluster.endpoints });
    try {
      assert.deepEqual(await catchUp(client, false, 3000), []);
    } finally {
      client.close();
    }
  });

  // The history writer's watch: etcd killed while the catch-up's pieces are on their way.
  const killMidway = async (resume: boolean) => {
    const client = new Etcd3({ hosts: cluster.endpoints });
    const seen: string[] = [];
    try {
      const w = await fragmented(client.watch().key('/t/log').startRevision(String(first))).create();
      if (resume) resumeAfterLastEvent(w);
      let killed: Promise<void> | undefined;
      w.on('put', (kv) => {
        seen.push(kv.value.toString().slice(0, kv.value.indexOf(':')));
        // Frozen at once (no more pieces sent), then killed and started again.
        if (!killed) {
          cluster.pause('m0');
          killed = cluster.kill9('m0').then(() => cluster.restart('m0'));
        }
      });
      const deadline = Date.now() + 20_000;
      while ((!killed || seen.length < 12) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await killed;
      await new Promise((r) => setTimeout(r, 1500));
      void w.cancel().catch(() => undefined);
      return seen;
    } finally {
      client.close();
    }
  };

  it('a watch of one key resumes after the last event it got when the stream breaks mid catch-up (resumeAfterLastEvent)', async () => {
    const seen = await killMidway(true);
    assert.deepEqual(seen, all);
  });

  it('without it, npm etcd3 resumes after its last header revision: revisions skipped (what the writer would have missed)', async () => {
    const seen = await killMidway(false);
    assert.ok(seen.length < 12, `some revisions skipped, got ${seen.join(',')}`);
    assert.deepEqual(seen, all.slice(0, seen.length), 'what came, came in order');
  });
});
