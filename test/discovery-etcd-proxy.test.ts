import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { requireEtcdBinaries, startEtcdV2 } from './helpers/etcd.ts';
import { startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// 0.11's mode: --etcd-endpoint host:port proxies /etcd/... to that etcd's v2 keys API under
// /v2/keys/_etcd/registry/, as run-0.11.sh runs it (etcd 3.4 with --enable-v2).

describe('etcd discovery proxied to an etcd (--etcd-endpoint)', () => {
  let mayu: MayuProcess;
  let dataDir: string;
  let etcdUrl: string;
  let registry: Awaited<ReturnType<typeof startEtcdV2>>;

  before(async () => {
    await requireEtcdBinaries();
    dataDir = await tempDir('mayu-etcd-proxy-');
    registry = await startEtcdV2(dataDir);
    etcdUrl = registry.url;
    // 0.11 took host:port without a scheme.
    mayu = await startMayu({ args: ['--etcd-endpoint', registry.hostPort] });
  });

  after(async () => {
    await mayu?.stop();
    await registry?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('makes the default token in etcd at start and passes requests and answers through', async () => {
    const token = (JSON.parse(await readFile(path.join(mayu.clusterDir, 'cluster.json'), 'utf8')) as { Config: { DefaultEtcdClusterToken: string } }).Config.DefaultEtcdClusterToken;
    const inEtcd = await (await fetch(`${etcdUrl}/v2/keys/_etcd/registry/${token}/_config/size`)).json() as { node: { value: string } };
    assert.equal(inEtcd.node.value, '3');

    const put = await fetch(`${mayu.url}/etcd/${token}/m1?prevExist=false`, {
      method: 'PUT', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'value=e0%3Dhttp%3A%2F%2F127.0.0.1%3A2380',
    });
    assert.equal(put.status, 201);
    assert.ok(Number(put.headers.get('x-etcd-index')) > 0, 'etcd\'s X-Etcd-Index passed back');
    const body = await put.json() as { action: string; node: { key: string } };
    assert.deepEqual([body.action, body.node.key], ['create', `/_etcd/registry/${token}/m1`]);
    const direct = await (await fetch(`${etcdUrl}/v2/keys/_etcd/registry/${token}/m1`)).json() as { node: { value: string } };
    assert.equal(direct.node.value, 'e0=http://127.0.0.1:2380');

    const made = await (await fetch(`${mayu.url}/etcd/new?size=5`, { method: 'PUT' })).text();
    const newToken = made.split('/').at(-1)!;
    const size = await (await fetch(`${mayu.url}/etcd/${newToken}/_config/size`)).json() as { node: { value: string } };
    assert.equal(size.node.value, '5');

    // Checked before etcd sees it.
    const tricky = await fetch(`${mayu.url}/etcd/${token}/..%2F..%2Fother`, { method: 'PUT', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'value=x' });
    assert.equal(tricky.status, 400);
    const unknown = await fetch(`${mayu.url}/etcd/${'e'.repeat(32)}`);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { errorCode: number }).errorCode, 100);
  });
});
