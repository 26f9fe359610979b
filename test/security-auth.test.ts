import assert from 'node:assert/strict';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gitCommitCount } from './helpers/git.ts';
import { FIXTURES, hostData, macFor, mayuFailsToStart, reportTokenIn, runMayuctl, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// Admin token and report tokens against the real mayu process (README "Security").

const ADMIN = 'adm1n-T0ken-for-the-tests-0123456789';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function register(m: MayuProcess, serial: string, i: number): Promise<string> {
  const script = await (await fetch(`${m.url}/first-stage-script/${serial}`)).text();
  const res = await fetch(`${m.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, macFor(i))) });
  assert.equal(res.status, 200);
  return reportTokenIn(script)!;
}

const put = (m: MayuProcess, serial: string, route: string, headers: Record<string, string> = {}, body?: string) =>
  fetch(`${m.url}/admin/host/${serial}/${route}`, { method: 'PUT', headers, body });

describe('admin token', () => {
  let mayu: MayuProcess;
  let tokenA = '';
  let tokenB = '';
  const wrongTokens: string[] = ['x'.repeat(40), `${ADMIN}x`, ADMIN.slice(0, -1)];
  before(async () => {
    mayu = await startMayu({ env: { MAYU_ADMIN_TOKEN: ADMIN } });
    tokenA = await register(mayu, 'sec-a', 1);
    tokenB = await register(mayu, 'sec-b', 2);
    wrongTokens.push(tokenA);
  });
  after(() => mayu.stop());

  const adminRoutes: [string, string, string?][] = [
    ['GET', '/admin/hosts'],
    ['GET', '/admin/host/sec-a'],
    ['GET', '/admin/host/sec-a/history'],
    ['GET', '/admin/stuck'],
    ['PUT', '/admin/host/sec-a/set_metadata', '{"FleetMetadata":["a=b"]}'],
    ['PUT', '/admin/host/sec-a/set_provider_id', '{"ProviderId":"p"}'],
    ['PUT', '/admin/host/sec-a/set_ipmi_addr', '{"IPMIAddr":"10.0.9.1"}'],
    ['PUT', '/admin/host/sec-a/set_cabinet', '{"Cabinet":3}'],
    ['PUT', '/admin/host/sec-a/set_state', '{"State":"unknown"}'],
    ['PUT', '/admin/host/sec-a/set_etcd_cluster_token', '{"EtcdClusterToken":"abc"}'],
    ['PUT', '/admin/host/sec-a/override', '{"Overrides":{"x":"y"}}'],
    ['PUT', '/admin/host/sec-a/mark_fresh'],
  ];

  it('every admin route answers 401 with WWW-Authenticate without the token, and writes nothing', async () => {
    const count = gitCommitCount(mayu.clusterDir);
    for (const [method, url, body] of adminRoutes) {
      for (const headers of [{}, ...wrongTokens.map(bearer), { authorization: `Basic ${Buffer.from(`a:${ADMIN}`).toString('base64')}` }]) {
        const res = await fetch(`${mayu.url}${url}`, { method, body, headers });
        assert.equal(res.status, 401, `${method} ${url} ${JSON.stringify(headers)}`);
        assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer realm="mayu"/);
        assert.match(await res.text(), /^admin API: (authentication required|wrong admin token|malformed Authorization header)/);
      }
    }
    assert.equal(gitCommitCount(mayu.clusterDir), count);
  });

  it('says what is missing, wrong or malformed', async () => {
    assert.equal(await (await fetch(`${mayu.url}/admin/hosts`)).text(), 'admin API: authentication required: send "Authorization: Bearer <admin token>"');
    assert.equal(await (await fetch(`${mayu.url}/admin/hosts`, { headers: bearer('nope-nope-nope-nope') })).text(), 'admin API: wrong admin token');
    assert.equal(await (await fetch(`${mayu.url}/admin/hosts`, { headers: { authorization: ADMIN } })).text(), 'admin API: malformed Authorization header: expected "Bearer <admin token>"');
  });

  it('accepts the right token (scheme case-insensitive) on every admin route', async () => {
    const res = await fetch(`${mayu.url}/admin/hosts`, { headers: { authorization: `bearer ${ADMIN}` } });
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { Serial: string }[]).map((h) => h.Serial), ['sec-a', 'sec-b']);
    const count = gitCommitCount(mayu.clusterDir);
    const puts = adminRoutes.filter(([m, u]) => m === 'PUT' && !u.endsWith('mark_fresh') && !u.endsWith('set_state'));
    for (const [method, url, body] of puts) {
      assert.equal((await fetch(`${mayu.url}${url}`, { method, body, headers: bearer(ADMIN) })).status, 202, url);
    }
    assert.equal(gitCommitCount(mayu.clusterDir), count + puts.length);
  });

  it('set_installed / boot_complete: 403 without a token or with another host\'s, 202 with the host\'s own', async () => {
    const count = gitCommitCount(mayu.clusterDir);
    const missing = await put(mayu, 'sec-b', 'set_installed');
    assert.equal(missing.status, 403);
    assert.match(await missing.text(), /^set_installed: send "Authorization: Bearer <report token>"/);
    const foreign = await put(mayu, 'sec-b', 'set_installed', bearer(tokenA));
    assert.equal(foreign.status, 403);
    assert.match(await foreign.text(), /^set_installed: the report token does not belong to host "sec-b"/);
    assert.equal((await put(mayu, 'nobody', 'set_installed', bearer(tokenA))).status, 403, 'unknown hosts look like wrong tokens');
    assert.equal((await put(mayu, 'sec-b', 'boot_complete', bearer(tokenA), '{}')).status, 403);
    assert.equal(gitCommitCount(mayu.clusterDir), count, 'refused reports write nothing');

    assert.equal((await put(mayu, 'sec-b', 'set_installed', bearer(tokenB))).status, 202);
    assert.equal((await put(mayu, 'sec-b', 'boot_complete', bearer(tokenB), '{"CoreOSVersion":"1010.5.0"}')).status, 202);
    assert.equal(gitCommitCount(mayu.clusterDir), count + 2);
    const host = (await (await fetch(`${mayu.url}/admin/host/sec-b`, { headers: bearer(ADMIN) })).json()) as { State: string };
    assert.equal(host.State, 'running');
  });

  it('the admin token is accepted on the reports too', async () => {
    await put(mayu, 'sec-a', 'set_state', bearer(ADMIN), '{"State":"unknown"}');
    await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('sec-a', macFor(1))) });
    assert.equal((await put(mayu, 'sec-a', 'set_installed', bearer(ADMIN))).status, 202);
  });

  it('the report token is stable across renders, and no longer rendered once the host is installed', async () => {
    assert.equal((await put(mayu, 'sec-a', 'set_state', bearer(ADMIN), '{"State":"unknown"}')).status, 202);
    const again = await (await fetch(`${mayu.url}/first-stage-script/sec-a`)).text();
    assert.equal(reportTokenIn(again), tokenA);
    assert.notEqual(tokenA, tokenB);
    const config = await (await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('sec-a', macFor(1))) })).text();
    assert.ok(config.includes(`REPORT_TOKEN=${tokenA}\\n`), 'the final config carries it to /etc/mayu-env');
    const installed = await (await fetch(`${mayu.url}/first-stage-script/sec-b`)).text();
    assert.match(installed, /^REPORT_TOKEN=''$/m, 'sec-b is running: its token is not handed out any more');
    assert.equal((await put(mayu, 'sec-a', 'set_installed', bearer(tokenA))).status, 202);
    assert.match(await (await fetch(`${mayu.url}/first-stage-script/sec-a`)).text(), /^REPORT_TOKEN=''$/m);
  });

  it('mayuctl: --token or MAYU_TOKEN; without it exit 1 with the 401 text', async () => {
    const mayuctl = (args: string[], env: Record<string, string> = {}) => runMayuctl(mayu.port, args, env);
    const denied = await mayuctl(['list']);
    assert.equal(denied.code, 1);
    assert.equal(denied.stderr, "invalid status code '401'\nadmin API: authentication required: send \"Authorization: Bearer <admin token>\"\n");
    assert.match((await mayuctl(['--token', ADMIN, 'list', '--fields=serial'])).stdout, /sec-a/);
    assert.match((await mayuctl(['list', '--fields=serial'], { MAYU_TOKEN: ADMIN })).stdout, /sec-b/);

    // boot-complete reads REPORT_TOKEN from /etc/mayu-env, as the installed OS has it.
    const envFile = path.join(mayu.workDir, 'mayu-env');
    await writeFile(envFile, `SERIAL=sec-a\nMAYU_VERSION=0.12.0\nREPORT_TOKEN=${tokenA}\n`);
    const count = gitCommitCount(mayu.clusterDir);
    assert.equal((await mayuctl(['boot-complete', '--env-file', envFile])).code, 0);
    assert.equal(gitCommitCount(mayu.clusterDir), count + 1);
    await writeFile(envFile, `SERIAL=sec-a\nMAYU_VERSION=0.12.0\nREPORT_TOKEN=${tokenB}\n`);
    const wrong = await mayuctl(['boot-complete', '--env-file', envFile]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^invalid status code '403'\nboot_complete: the report token does not belong to host "sec-a"/);
    assert.equal((await mayuctl(['--token', tokenA, 'boot-complete', '--env-file', envFile])).code, 0, '--token wins over the env file');
  });

  it('never logs a token, right or wrong', async () => {
    const logs = JSON.stringify(mayu.logs);
    for (const secret of [ADMIN, tokenA, tokenB, ...wrongTokens]) assert.equal(logs.includes(secret), false);
    assert.ok(mayu.logs.some((l) => l.msg === 'request' && l.status === 401), 'the requests themselves are logged');
    assert.equal(mayu.logs.some((l) => /admin API is open/.test(String(l.msg))), false);
  });
});

describe('open mode and --insecure-reports', () => {
  it('without an admin token: a start-up warning, the admin API answers as in 0.11, reports still need their token', async () => {
    const mayu = await startMayu();
    try {
      const warning = mayu.logs.find((l) => /no admin token configured: the admin API is open/.test(String(l.msg)));
      assert.equal(warning?.level, 40);
      const token = await register(mayu, 'open-1', 1);
      assert.equal((await fetch(`${mayu.url}/admin/hosts`)).status, 200);
      const count = gitCommitCount(mayu.clusterDir);
      const refused = await put(mayu, 'open-1', 'set_installed');
      assert.equal(refused.status, 403);
      assert.match(await refused.text(), /--insecure-reports accepts 0\.11 machines/);
      assert.equal(gitCommitCount(mayu.clusterDir), count, 'a refused report writes nothing');
      assert.equal((await put(mayu, 'open-1', 'set_installed', bearer(token))).status, 202);
    } finally {
      await mayu.stop();
    }
  });

  it('--insecure-reports takes reports without a token but not with a wrong one, and warns', async () => {
    const mayu = await startMayu({ env: { MAYU_ADMIN_TOKEN: ADMIN }, args: ['--insecure-reports'] });
    try {
      assert.ok(mayu.logs.some((l) => l.level === 40 && /insecure reports/.test(String(l.msg))));
      const tokenA = await register(mayu, 'ins-a', 1);
      await register(mayu, 'ins-b', 2);
      assert.equal((await put(mayu, 'ins-b', 'set_installed', bearer(tokenA))).status, 403);
      assert.equal((await put(mayu, 'ins-b', 'set_installed')).status, 202);
      assert.equal((await put(mayu, 'ins-b', 'boot_complete')).status, 202);
      assert.equal((await fetch(`${mayu.url}/admin/hosts`)).status, 401, 'the rest of the admin API stays closed');
    } finally {
      await mayu.stop();
    }
  });
});

describe('token and key files', () => {
  it('--admin-token-file and config security.admin_token_file (relative to config.yaml); the flag wins', async () => {
    const workDir = await tempDir();
    await writeFile(path.join(workDir, 'flag-token'), `${ADMIN}\n`, { mode: 0o600 });
    await writeFile(path.join(workDir, 'config-token'), 'config-token-0123456789\n', { mode: 0o600 });
    const config = path.join(workDir, 'config.yaml');
    await writeFile(config, `${await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8')}\nsecurity:\n  admin_token_file: config-token\n`);
    const byConfig = await startMayu({ workDir, config });
    try {
      assert.equal((await fetch(`${byConfig.url}/admin/hosts`, { headers: bearer('config-token-0123456789') })).status, 200);
      assert.equal((await fetch(`${byConfig.url}/admin/hosts`, { headers: bearer(ADMIN) })).status, 401);
    } finally {
      await byConfig.stop();
    }
    const byFlag = await startMayu({ workDir, config, args: ['--admin-token-file', path.join(workDir, 'flag-token')] });
    try {
      assert.equal((await fetch(`${byFlag.url}/admin/hosts`, { headers: bearer(ADMIN) })).status, 200);
    } finally {
      await byFlag.stop();
    }
  });

  it('refuses to start with an empty, short, spaced or missing token, naming the source but not the token', async () => {
    const dir = await tempDir();
    const base = ['--config', path.join(FIXTURES, 'config.yaml'), '--cluster-directory', path.join(dir, 'c'), '--report-key-file', path.join(dir, 'rk')];
    const cases: [Record<string, string>, string[], RegExp][] = [
      [{ MAYU_ADMIN_TOKEN: '' }, [], /MAYU_ADMIN_TOKEN: the admin token is empty/],
      [{ MAYU_ADMIN_TOKEN: 'short-secret' }, [], /MAYU_ADMIN_TOKEN: the admin token is too short \(12 characters\)/],
      [{ MAYU_ADMIN_TOKEN: 'has a space in it, long enough' }, [], /contains spaces, control or non-ASCII characters/],
      [{}, ['--admin-token-file', path.join(dir, 'missing')], /--admin-token-file: cannot read .*missing: ENOENT/],
    ];
    for (const [env, args, message] of cases) {
      const r = await mayuFailsToStart([...base, ...args], env);
      assert.equal(r.code, 1);
      assert.match(r.stderr, message);
      if (env.MAYU_ADMIN_TOKEN) assert.equal(r.stderr.includes(env.MAYU_ADMIN_TOKEN), false);
    }
    await assert.rejects(stat(path.join(dir, 'c')), 'nothing was created');
  });

  it('creates the report key 0600 once; tokens survive a restart; a damaged key stops the start', async () => {
    const workDir = await tempDir();
    const first = await startMayu({ workDir });
    const key = path.join(workDir, 'report-key');
    const token = await register(first, 'rk-1', 1);
    await first.stop();
    assert.equal((await stat(key)).mode & 0o777, 0o600);
    const keyText = await readFile(key, 'utf8');
    assert.match(keyText, /^[0-9a-f]{64}\n$/);

    const second = await startMayu({ workDir, env: { MAYU_ADMIN_TOKEN: ADMIN } });
    try {
      assert.equal(await readFile(key, 'utf8'), keyText);
      assert.equal((await put(second, 'rk-1', 'set_installed', bearer(token))).status, 202);
    } finally {
      await second.stop();
    }

    await writeFile(key, 'not hex\n');
    await chmod(key, 0o600);
    const r = await mayuFailsToStart(['--config', path.join(FIXTURES, 'config.yaml'), '--cluster-directory', path.join(workDir, 'clusters'), '--report-key-file', key]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /report key file .*report-key: expected at least 64 lowercase hex characters/);
  });
});
