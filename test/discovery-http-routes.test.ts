import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mayuFailsToStart, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// The /etcd routes of mayu's own discovery service on a real server: 0.11's routes and etcd v2's
// answers, bad input refused with nothing written, state that survives kill -9.

const form = (body: string) => ({ headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
const put = (url: string, body = '') => fetch(url, { method: 'PUT', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });

async function defaultToken(m: MayuProcess): Promise<string> {
  return (JSON.parse(await readFile(path.join(m.clusterDir, 'cluster.json'), 'utf8')) as { Config: { DefaultEtcdClusterToken: string } }).Config.DefaultEtcdClusterToken;
}

async function stateFiles(m: MayuProcess): Promise<Record<string, string>> {
  const dir = path.join(m.clusterDir, '.etcd-discovery');
  const out: Record<string, string> = {};
  for (const f of await readdir(dir)) out[f] = await readFile(path.join(dir, f), 'utf8');
  return out;
}

describe('etcd discovery routes (internal)', () => {
  let mayu: MayuProcess;
  let token: string;
  let base: string;
  before(async () => {
    mayu = await startMayu();
    token = await defaultToken(mayu);
    base = `${mayu.url}/etcd/${token}`;
  });
  after(() => mayu?.stop());

  it('the default token works at once with size 3; its state is kept out of git status', async () => {
    const res = await fetch(`${base}/_config/size`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-etcd-index'), '2');
    assert.deepEqual(await res.json(), { action: 'get', node: { key: `/_etcd/registry/${token}/_config/size`, value: '3', modifiedIndex: 2, createdIndex: 2 } });
    const exclude = await readFile(path.join(mayu.clusterDir, '.git/info/exclude'), 'utf8');
    assert.match(exclude, /^\/\.etcd-discovery\/$/m);
  });

  it('PUT /etcd/new answers <mayu>/etcd/<token> with the size from the query or the form body', async () => {
    for (const [url, body, size] of [[`${mayu.url}/etcd/new?size=5`, '', '5'], [`${mayu.url}/etcd/new`, 'size=7', '7'], [`${mayu.url}/etcd/new`, '', '3']] as const) {
      const res = await put(url, body);
      assert.equal(res.status, 200);
      const text = await res.text();
      const m = /^http:\/\/[0-9.]+:\d+\/etcd\/([a-f0-9]{32})$/.exec(text);
      assert.ok(m, text);
      const got = await (await fetch(`${mayu.url}/etcd/${m[1]}/_config/size`)).json() as { node: { value: string } };
      assert.equal(got.node.value, size);
    }
  });

  it('registers, lists, long-polls and deletes members as etcd v2 does', async () => {
    const created = await put(`${base}/8e9e05c52164694d?prevExist=false`, 'value=e0%3Dhttp%3A%2F%2F127.0.0.1%3A2380');
    assert.equal(created.status, 201);
    const body = await created.json() as { action: string; node: { key: string; value: string; createdIndex: number } };
    assert.equal(body.action, 'create');
    assert.equal(body.node.key, `/_etcd/registry/${token}/8e9e05c52164694d`);
    assert.equal(body.node.value, 'e0=http://127.0.0.1:2380');
    const index = body.node.createdIndex;
    assert.equal(created.headers.get('x-etcd-index'), String(index));

    // What etcd's discovery client does next: watch its own key from its createdIndex (history).
    const own = await fetch(`${base}/8e9e05c52164694d?wait=true&waitIndex=${index}&recursive=false`);
    assert.equal(((await own.json()) as { node: { createdIndex: number } }).node.createdIndex, index);

    const again = await put(`${base}/8e9e05c52164694d?prevExist=false`, 'value=x');
    assert.equal(again.status, 412);
    assert.equal(((await again.json()) as { errorCode: number }).errorCode, 105);

    // A long-poll on the token answers with the next registration.
    const list = await fetch(`${base}?recursive=true`);
    const listed = await list.json() as { node: { nodes: Array<{ key: string }> } };
    assert.equal(listed.node.nodes.length, 1);
    const waitFrom = Number(list.headers.get('x-etcd-index')) + 1;
    const waiting = fetch(`${base}?wait=true&waitIndex=${waitFrom}&recursive=true`).then((r) => r.json()) as Promise<{ action: string; node: { key: string } }>;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await put(`${base}/second`, 'value=e1%3Dhttp%3A%2F%2F127.0.0.1%3A2381')).status, 201);
    const event = await waiting;
    assert.equal(event.action, 'set');
    assert.equal(event.node.key, `/_etcd/registry/${token}/second`);

    const del = await fetch(`${base}/second`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    assert.equal(((await del.json()) as { action: string }).action, 'delete');
    const gone = await fetch(`${base}/second`, { method: 'DELETE' });
    assert.equal(gone.status, 404);
    assert.equal(((await gone.json()) as { errorCode: number }).errorCode, 100);
  });

  it('a long-poll whose client leaves does not disturb the server', async () => {
    const ac = new AbortController();
    const pending = fetch(`${base}?wait=true&recursive=true`, { signal: ac.signal }).catch((e: Error) => e.name);
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    assert.equal(await pending, 'AbortError');
    assert.equal((await fetch(`${base}/_config/size`)).status, 200);
  });

  it('refuses bad input with a 4xx and writes nothing', async () => {
    const before = await stateFiles(mayu);
    const unknown = 'f'.repeat(32);
    const cases: Array<[string, RequestInit, number, RegExp]> = [
      [`${mayu.url}/etcd/${unknown}`, {}, 404, /"errorCode":100/],
      [`${mayu.url}/etcd/${unknown}/m1`, { method: 'PUT', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'value=x' }, 404, /"errorCode":100/],
      [`${mayu.url}/etcd/new?size=abc`, { method: 'PUT' }, 400, /bad size "abc"/],
      [`${mayu.url}/etcd/new?size=0`, { method: 'PUT' }, 400, /bad size "0"/],
      [`${mayu.url}/etcd/new?size=100000`, { method: 'PUT' }, 400, /bad size/],
      [`${base}/_config/size`, { method: 'PUT', ...form('value=-2') }, 400, /bad size/],
      [`${base}/..%2F..%2Fcluster.json`, { method: 'PUT', ...form('value=x') }, 400, /bad member key/],
      [`${base}/a/b`, { method: 'PUT', ...form('value=x') }, 400, /one path segment/],
      [`${base}/a%00b`, { method: 'PUT', ...form('value=x') }, 400, /bad member key/],
      [`${base}/${'x'.repeat(300)}`, { method: 'PUT', ...form('value=x') }, 400, /bad member key/],
      [`${base}/_hidden`, { method: 'PUT', ...form('value=x') }, 400, /bad member key/],
      [`${base}/m1?ttl=5`, { method: 'PUT', ...form('value=x') }, 400, /ttl.{0,3} is not supported/],
      [`${base}/m1?prevExist=maybe`, { method: 'PUT', ...form('value=x') }, 400, /prevExist/],
      [`${base}/m1`, { method: 'PUT', ...form(`value=${'x'.repeat(3000)}`) }, 400, /value too long/],
      [`${base}/m1`, { method: 'PUT', ...form(`value=${'x'.repeat(20_000)}`) }, 413, /too large/],
      [`${base}?wait=true&waitIndex=abc`, {}, 400, /"errorCode":203/],
    ];
    for (const [url, init, status, text] of cases) {
      const res = await fetch(url, init);
      assert.equal(res.status, status, `${init.method ?? 'GET'} ${url.slice(0, 120)}`);
      assert.match(await res.text(), text, url.slice(0, 120));
    }
    assert.deepEqual(await stateFiles(mayu), before, 'nothing written');
  });

  it('answers other GETs under /etcd with 0.11\'s redirect, and other methods with 404', async () => {
    for (const p of ['/etcd', '/etcd/', '/etcd/foo', '/etcd/new']) {
      const res = await fetch(`${mayu.url}${p}`, { redirect: 'manual' });
      assert.equal(res.status, 301, p);
      assert.equal(res.headers.get('location'), 'https://github.com/giantswarm/mayu/blob/master/docs/etcd-discovery.md');
    }
    assert.equal((await fetch(base, { method: 'PUT' })).status, 404);
    assert.equal((await fetch(`${mayu.url}/etcd/foo`, { method: 'PUT' })).status, 404);
  });
});

describe('etcd discovery state across kill -9', () => {
  it('keeps an acknowledged member and token through kill -9 and restart', { timeout: 60_000 }, async () => {
    const workDir = await tempDir();
    const first = await startMayu({ workDir, args: ['--etcd-quorum-size', '5'] });
    const token = await defaultToken(first);
    assert.equal(((await (await fetch(`${first.url}/etcd/${token}/_config/size`)).json()) as { node: { value: string } }).node.value, '5');
    const made = await (await put(`${first.url}/etcd/new?size=2`)).text();
    const res = await put(`${first.url}/etcd/${token}/m1?prevExist=false`, 'value=a%3Dhttp%3A%2F%2F10.0.0.1%3A2380');
    assert.equal(res.status, 201);
    await first.kill9();

    const second = await startMayu({ workDir });
    try {
      const got = await (await fetch(`${second.url}/etcd/${token}/m1`)).json() as { node: { value: string } };
      assert.equal(got.node.value, 'a=http://10.0.0.1:2380');
      const newToken = made.split('/').at(-1)!;
      assert.equal(((await (await fetch(`${second.url}/etcd/${newToken}/_config/size`)).json()) as { node: { value: string } }).node.value, '2');
      // The index goes on from where it was: a watch from the next index sees only new changes.
      const list = await fetch(`${second.url}/etcd/${token}`);
      assert.equal(list.headers.get('x-etcd-index'), '3');
    } finally {
      await second.stop();
    }
  });
});

describe('etcd discovery modes', () => {
  it('--use-internal-etcd-discovery=false --etcd-discovery URL: templates name that service, /etcd is not served', async () => {
    const mayu = await startMayu({ args: ['--use-internal-etcd-discovery=false', '--etcd-discovery', 'https://discovery.example.test/'] });
    try {
      const token = await defaultToken(mayu);
      assert.equal((await fetch(`${mayu.url}/etcd/${token}`, { redirect: 'manual' })).status, 404);
      assert.equal((await fetch(`${mayu.url}/first-stage-script/ext-1`)).status, 200);
      const cc = await (await fetch(`${mayu.url}/admin/host/ext-1/render/cloud-config`)).text();
      assert.match(cc, new RegExp(`ETCD_DISCOVERY=https://discovery\\.example\\.test/${token}\\\\n`));
    } finally {
      await mayu.stop();
    }
  });

  it('the default templates name <mayu>/etcd/<token> in internal mode', async () => {
    const mayu = await startMayu();
    try {
      const token = await defaultToken(mayu);
      await fetch(`${mayu.url}/first-stage-script/int-1`);
      const cc = await (await fetch(`${mayu.url}/admin/host/int-1/render/cloud-config`)).text();
      assert.match(cc, new RegExp(`ETCD_DISCOVERY=http://[0-9.]+:${mayu.port}/etcd/${token}\\\\n`));
    } finally {
      await mayu.stop();
    }
  });

  it('refuses contradictory flags as 0.11 did', async () => {
    const dir = await tempDir();
    const both = await mayuFailsToStart(['--cluster-directory', path.join(dir, 'c1'), '--etcd-discovery', 'https://d.example.test']);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /External etcd discovery url is set and internal etcd discovery is activated/);
    const none = await mayuFailsToStart(['--cluster-directory', path.join(dir, 'c2'), '--use-internal-etcd-discovery=false']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no external discovery url is given/);
  });
});
