import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { git } from './helpers/git.ts';
import { startMayu, type MayuProcess } from './helpers/mayu-process.ts';

// GET /admin/events against the real server process.

/** An open event stream: collects its raw text; `next(match)` waits for a data event `match` accepts. */
async function openStream(url: string, headers: Record<string, string> = {}) {
  const req = request(url, { headers });
  req.end();
  const res = await new Promise<IncomingMessage>((resolve, reject) => req.on('response', resolve).on('error', reject));
  let text = '';
  const waiters: (() => void)[] = [];
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    text += chunk;
    for (const w of waiters.splice(0)) w();
  });
  res.on('error', () => {});
  const dataEvents = () => text.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => JSON.parse(b.slice(6)) as Record<string, unknown>);
  const waitFor = <T>(get: () => T | undefined, ms = 10_000) => new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stream: nothing matching in ${ms} ms; got ${JSON.stringify(text)}`)), ms);
    const check = () => {
      const v = get();
      if (v !== undefined) (clearTimeout(timer), resolve(v));
      else waiters.push(check);
    };
    check();
  });
  await waitFor(() => (text.includes(': subscribed') ? true : undefined));
  return {
    res,
    text: () => text,
    next: (match: (e: Record<string, unknown>) => boolean) => waitFor(() => dataEvents().find(match)),
    waitForText: (s: string) => waitFor(() => (text.includes(s) ? true : undefined)),
    close: () => req.destroy(),
  };
}

async function subscribers(url: string, headers: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers })).text();
  return Number(/^mayu_event_subscribers (\d+)$/m.exec(text)![1]);
}

async function until(check: () => Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('/admin/events', () => {
  let mayu: MayuProcess;
  before(async () => {
    mayu = await startMayu({ args: ['--events-heartbeat-ms', '100'] });
  });
  after(() => mayu.stop());

  it('streams a registering host with from, to, messages and its commit (HEAD after the change)', async () => {
    const stream = await openStream(`${mayu.url}/admin/events`);
    try {
      assert.equal(stream.res.statusCode, 200);
      assert.match(stream.res.headers['content-type'] ?? '', /^text\/event-stream/);
      assert.equal(await subscribers(mayu.url), 1);
      assert.equal((await fetch(`${mayu.url}/first-stage-script/events-1`)).status, 200);
      const created = await stream.next((e) => e['serial'] === 'events-1');
      assert.deepEqual(Object.keys(created).sort(), ['commit', 'from', 'messages', 'serial', 'to']);
      assert.equal(created['from'], null);
      assert.equal(created['to'], 'unknown');
      assert.deepEqual(created['messages'], [
        'host created', 'updated with predefined settings', 'updated host InternalAddr', 'updated host profile and metadata', 'set default etcd discovery token',
      ]);
      assert.equal(created['commit'], git(mayu.clusterDir, 'rev-parse', 'HEAD').trim());

      const put = await fetch(`${mayu.url}/admin/host/events-1/set_provider_id`, { method: 'PUT', body: JSON.stringify({ ProviderId: 'rack-7' }) });
      assert.equal(put.status, 202);
      const changed = await stream.next((e) => e['serial'] === 'events-1' && e['from'] === 'unknown');
      assert.equal(changed['to'], 'unknown');
      assert.deepEqual(changed['messages'], ['updated host provider id']);
      assert.equal(changed['commit'], git(mayu.clusterDir, 'rev-parse', 'HEAD').trim());
      await stream.waitForText(': heartbeat\n\n');
    } finally {
      stream.close();
    }
    await until(async () => (await subscribers(mayu.url)) === 0, 'the listener to be removed');
  });

  it('streams a deletion: to null, deleted true, from the state the host had, the removal\'s commit', async () => {
    assert.equal((await fetch(`${mayu.url}/first-stage-script/events-del`)).status, 200);
    const stream = await openStream(`${mayu.url}/admin/events`);
    try {
      const res = await fetch(`${mayu.url}/admin/host/events-del`, { method: 'DELETE' });
      assert.equal(res.status, 204);
      const deleted = await stream.next((e) => e['serial'] === 'events-del');
      assert.deepEqual(deleted, {
        serial: 'events-del', from: 'unknown', to: null, messages: ['host deleted'],
        commit: git(mayu.clusterDir, 'rev-parse', 'HEAD').trim(), deleted: true,
      });
      assert.equal(git(mayu.clusterDir, 'log', '-1', '--format=%s').trim(), 'events-del: host deleted');
    } finally {
      stream.close();
    }
    await until(async () => (await subscribers(mayu.url)) === 0, 'the listener to be removed');
  });

  it('removes the listeners of clients that disconnect (no leak)', async () => {
    const streams = await Promise.all([1, 2, 3].map(() => openStream(`${mayu.url}/admin/events`)));
    assert.equal(await subscribers(mayu.url), 3);
    streams[0]!.close();
    await until(async () => (await subscribers(mayu.url)) === 2, 'one listener gone');
    // The fetch API's abort as well as a plain socket close.
    const ac = new AbortController();
    const viaFetch = await fetch(`${mayu.url}/admin/events`, { signal: ac.signal });
    await viaFetch.body!.getReader().read();
    assert.equal(await subscribers(mayu.url), 3);
    ac.abort();
    for (const s of streams.slice(1)) s.close();
    await until(async () => (await subscribers(mayu.url)) === 0, 'every listener gone');
  });
});

describe('/admin/events with an admin token', () => {
  let mayu: MayuProcess;
  const token = 'events-admin-token-0123456789';
  const auth = { authorization: `Bearer ${token}` };
  before(async () => {
    mayu = await startMayu({ env: { MAYU_ADMIN_TOKEN: token } });
  });
  after(() => mayu.stop());

  it('refuses a stream without the token and serves one with it', async () => {
    const refused = await fetch(`${mayu.url}/admin/events`);
    assert.equal(refused.status, 401);
    assert.equal(await subscribers(mayu.url, auth), 0, 'a refused stream subscribes nothing');
    const stream = await openStream(`${mayu.url}/admin/events`, auth);
    try {
      await fetch(`${mayu.url}/first-stage-script/events-2`);
      assert.equal((await stream.next((e) => e['serial'] === 'events-2'))['to'], 'unknown');
    } finally {
      stream.close();
    }
  });
});
