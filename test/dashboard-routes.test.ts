import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { git } from './helpers/git.ts';
import { hostData, macFor, startMayu, type MayuProcess } from './helpers/mayu-process.ts';

// The dashboard's server side against the real process: static files under /ui/ and the
// history route's ?with=conf.

describe('dashboard routes', () => {
  const ADMIN = 'dashboard-routes-admin-token-01';
  let mayu: MayuProcess | undefined;
  const auth = { authorization: `Bearer ${ADMIN}` };
  before(async () => {
    mayu = await startMayu({ env: { MAYU_ADMIN_TOKEN: ADMIN } });
    assert.equal((await fetch(`${mayu.url}/first-stage-script/ui-1`)).status, 200);
    assert.equal((await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('ui-1', macFor(1))) })).status, 200);
  });
  after(() => mayu?.stop());

  it('serves the page and its modules without a token, with their types and a strict CSP', async () => {
    const redirect = await fetch(`${mayu!.url}/ui`, { redirect: 'manual' });
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.get('location'), '/ui/');
    for (const [file, type] of [['', 'text/html'], ['app.js', 'text/javascript'], ['api.js', 'text/javascript'], ['diff.js', 'text/javascript'], ['dom.js', 'text/javascript'], ['style.css', 'text/css']] as const) {
      const res = await fetch(`${mayu!.url}/ui/${file}`);
      assert.equal(res.status, 200, file);
      assert.equal(res.headers.get('content-type')!.split(';')[0], type, file);
      assert.match(res.headers.get('content-security-policy')!, /default-src 'none'; script-src 'self'/);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
      await res.arrayBuffer();
    }
  });

  it('serves nothing else from there: no other folder, extension or file', async () => {
    for (const p of ['/ui/..%2fhttp%2fapp.ts', '/ui/%2e%2e/server.ts', '/ui/missing.js', '/ui/index.ts', '/ui/.hidden.js', '/ui/a/app.js']) {
      const res = await fetch(`${mayu!.url}${p}`);
      assert.equal(res.status, 404, p);
      await res.arrayBuffer();
    }
  });

  it('history?with=conf gives each commit\'s conf.json as git has it, with the admin token only', async () => {
    assert.equal((await fetch(`${mayu!.url}/admin/host/ui-1/history?with=conf`)).status, 401);
    const res = await fetch(`${mayu!.url}/admin/host/ui-1/history?with=conf`, { headers: auth });
    assert.equal(res.status, 200);
    const history = (await res.json()) as { commit: string; message: string; time: string; conf: string | null }[];
    assert.equal(history.length, 8);
    for (const c of history) assert.equal(c.conf, git(mayu!.clusterDir, 'show', `${c.commit}:ui-1/conf.json`), c.message);
    assert.equal(JSON.parse(history[0]!.conf!).State, 'installing');
    // Without the parameter: as before, no conf.
    const plain = (await (await fetch(`${mayu!.url}/admin/host/ui-1/history`, { headers: auth })).json()) as Record<string, unknown>[];
    assert.deepEqual(plain, history.map(({ conf: _c, ...c }) => c));
    const unknown = await fetch(`${mayu!.url}/admin/host/nobody/history?with=conf`, { headers: auth });
    assert.equal(unknown.status, 400);
  });
});
