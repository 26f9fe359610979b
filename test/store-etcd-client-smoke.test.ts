import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { startEtcdCluster, type EtcdCluster } from './helpers/etcd-cluster.ts';
import { tempDir } from './helpers/mayu-process.ts';

// The npm client `etcd3` (tested upstream against etcd 3.1–3.3) against Debian's etcd 3.4, for
// everything the etcd store uses: put/get, a compare-and-swap txn on mod revisions with a range
// in its else branch, a prefix watch from a revision, leases and an election on a lease.

describe('etcd3 client against Debian etcd 3.4 (three members)', () => {
  let cluster: EtcdCluster;
  let client: Etcd3;
  before(async () => {
    cluster = await startEtcdCluster(await tempDir('mayu-etcd-smoke-'));
    client = new Etcd3({ hosts: cluster.endpoints });
  });
  after(async () => {
    client?.close();
    await cluster?.stop();
  });

  it('put/get, txn on mod revision, watch from a revision, lease, election', async () => {
    await client.put('smoke/a').value('1');
    assert.equal(await client.get('smoke/a').string(), '1');
    const kv = (await client.get('smoke/a').exec()).kvs[0]!;

    // CAS: succeeds at the seen revision, fails (else branch answers the current value) after.
    const ok = await client.kv.txn({
      compare: [{ key: Buffer.from('smoke/a'), target: 'Mod', result: 'Equal', mod_revision: kv.mod_revision }],
      success: [{ request_put: { key: Buffer.from('smoke/a'), value: Buffer.from('2') } }],
      failure: [{ request_range: { key: Buffer.from('smoke/a') } }],
    });
    assert.equal(ok.succeeded, true);
    const stale = await client.kv.txn({
      compare: [{ key: Buffer.from('smoke/a'), target: 'Mod', result: 'Equal', mod_revision: kv.mod_revision }],
      success: [{ request_put: { key: Buffer.from('smoke/a'), value: Buffer.from('3') } }],
      failure: [{ request_range: { key: Buffer.from('smoke/a') } }],
    });
    assert.equal(stale.succeeded, false);
    assert.equal(stale.responses[0]!.response_range!.kvs[0]!.value.toString(), '2');
    // Create-only: a key that exists refuses.
    const create = await client.if('smoke/a', 'Create', '==', 0).then(client.put('smoke/a').value('x')).commit();
    assert.equal(create.succeeded, false);

    // Watch from an old revision replays what happened since.
    const watcher = await client.watch().prefix('smoke/').startRevision(kv.mod_revision).create();
    const seen: string[] = [];
    watcher.on('put', (k) => seen.push(`${k.key.toString()}=${k.value.toString()}@${k.mod_revision}`));
    const more = once(watcher, 'put');
    await client.put('smoke/b').value('b');
    await more;
    while (seen.length < 3) await once(watcher, 'put');
    assert.deepEqual(seen.map((s) => s.split('@')[0]), ['smoke/a=1', 'smoke/a=2', 'smoke/b=b']);
    await watcher.cancel();

    // A key on a lease goes with the lease.
    const lease = client.lease(5);
    await lease.put('smoke/leased').value('v');
    assert.equal(await client.get('smoke/leased').string(), 'v');
    await lease.revoke();
    assert.equal(await client.get('smoke/leased').string(), null);

    // Election: the first campaigner leads; when it resigns the second does.
    const election = client.election('smoke-election', 5);
    const c1 = election.campaign('one');
    await once(c1, 'elected');
    const c2 = election.campaign('two');
    let twoElected = false;
    c2.on('elected', () => (twoElected = true));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(twoElected, false);
    assert.equal(await election.leader(), 'one');
    await c1.resign();
    if (!twoElected) await once(c2, 'elected');
    assert.equal(await election.leader(), 'two');
    await c2.resign();
  });
});
