import assert from 'node:assert/strict';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gitCommitCount, gitCommitCountReaching, gitFsck, gitSubjects } from './helpers/git.ts';
import { FIXTURES, hostData, NO_OVERLOAD_GATES_YAML, macFor, reportAuth, ROOT, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

const post = (m: MayuProcess, serial: string, i: number) =>
  fetch(`${m.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, macFor(i))) });
const list = async (m: MayuProcess) => (await (await fetch(`${m.url}/admin/hosts`)).json()) as Record<string, string>[];

describe('profiles and addresses', () => {
  let mayu: MayuProcess;
  before(async () => {
    // 200 registrations at once: above the overload bounds' defaults (128 in flight), which
    // would answer some 503 (test/limits-registration.test.ts); here the store's concurrency is tested.
    const workDir = await tempDir();
    const config = path.join(workDir, 'config.yaml');
    await writeFile(config, `${await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8')}${NO_OVERLOAD_GATES_YAML}`);
    mayu = await startMayu({ workDir, config });
  });
  after(() => mayu.stop());

  it('gives 4 machines against a quantity-3 profile 3 × core + 1 × default, in arrival order', async () => {
    for (let i = 1; i <= 4; i++) assert.equal((await fetch(`${mayu.url}/first-stage-script/q-${i}`)).status, 200);
    const hosts = await list(mayu);
    assert.deepEqual(hosts.map((h) => [h.Serial, h.Profile, h.InternalAddr]), [
      ['q-1', 'core', '10.0.3.31'], ['q-2', 'core', '10.0.3.32'], ['q-3', 'core', '10.0.3.33'], ['q-4', 'default', '10.0.3.34'],
    ]);
    assert.deepEqual(hosts[3]!.FleetMetadata, ['role-worker=true', 'stack-compute=true'] as unknown as string);
    assert.equal(hosts[0]!.CoreOSVersion, '835.13.0');
  });

  it('serves 200 concurrent first contacts: unique addresses, quantity kept, one commit per change, fsck clean', async () => {
    const before = gitCommitCount(mayu.clusterDir);
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => post(mayu, `storm-${i}`, i)));
    assert.deepEqual([...new Set(answers.map((r) => r.status))], [200]);
    const hosts = (await list(mayu)).filter((h) => h.Serial!.startsWith('storm-'));
    assert.equal(hosts.length, 200);
    assert.equal(new Set(hosts.map((h) => h.InternalAddr)).size, 200);
    assert.equal((await list(mayu)).filter((h) => h.Profile === 'core').length, 3);
    assert.ok(hosts.every((h) => h.State === 'installing'));
    // 5 creation commits + mac + nic + installing per machine.
    assert.equal(await gitCommitCountReaching(mayu.clusterDir, before + 200 * 8) - before, 200 * 8);
    gitFsck(mayu.clusterDir);
  });
});

describe('bad input writes nothing', () => {
  let mayu: MayuProcess;
  before(async () => {
    mayu = await startMayu();
    await fetch(`${mayu.url}/first-stage-script/known`);
  });
  after(() => mayu.stop());

  const cases: { name: string; method: string; path: string; body?: string; status: number; text: RegExp; asMachine?: string }[] = [
    { name: 'setter on an unknown serial', method: 'PUT', path: '/admin/host/nobody/set_provider_id', body: '{"ProviderId":"x"}', status: 400, text: /^host doesn't exist$/ },
    { name: 'report of an unknown serial', method: 'PUT', path: '/admin/host/nobody/set_installed', status: 403, text: /report token does not belong to host "nobody"/, asMachine: 'known' },
    { name: 'metadata setter on an unknown serial', method: 'PUT', path: '/admin/host/nobody/set_metadata', body: '{"FleetMetadata":["a=b"]}', status: 400, text: /^host doesn't exist$/ },
    { name: 'malformed JSON', method: 'PUT', path: '/admin/host/known/set_metadata', body: '{"FleetMetadata":', status: 400, text: /^unable to parse json data in set_metadata request$/ },
    { name: 'JSON of the wrong type', method: 'PUT', path: '/admin/host/known/set_cabinet', body: '{"Cabinet":"x"}', status: 400, text: /set_cabinet request: field Cabinet/ },
    { name: 'illegal transition', method: 'PUT', path: '/admin/host/known/set_installed', status: 400, text: /^illegal state transition from 'unknown' to 'installed'$/, asMachine: 'known' },
    { name: 'set_state without State', method: 'PUT', path: '/admin/host/known/set_state', body: '{}', status: 400, text: /State must be one of/ },
    { name: 'empty override', method: 'PUT', path: '/admin/host/known/override', body: '{"Overrides":{}}', status: 400, text: /^nothing to override$/ },
    { name: 'final config without serial', method: 'POST', path: '/final-cloud-config.yaml', body: '{"NetDevs":[]}', status: 400, text: /^no serial \? :\/$/ },
    { name: 'final config with a bad MAC', method: 'POST', path: '/final-cloud-config.yaml', body: '{"Serial":"m1","NetDevs":[{"Name":"eth0","MacAddress":"zz"}]}', status: 400, text: /invalid MAC address/ },
    { name: 'path tricks in a serial', method: 'GET', path: '/first-stage-script/..%2F..%2Fetc', status: 400, text: /invalid serial/ },
    { name: 'a serial with a quote', method: 'GET', path: `/first-stage-script/a'b`, status: 400, text: /invalid serial/ },
    { name: 'body over 64 KB', method: 'PUT', path: '/admin/host/known/set_provider_id', body: `{"ProviderId":"${'x'.repeat(70000)}"}`, status: 413, text: /too large/ },
    { name: 'missing image file', method: 'GET', path: '/images/vmlinuz', status: 404, text: /^file not found: images\/vmlinuz$/ },
    { name: 'install image of an unknown host', method: 'GET', path: '/images/nobody/install_image.bin.bz2', status: 404, text: /unknown host nobody/ },
    { name: 'history of an unknown host', method: 'GET', path: '/admin/host/nobody/history', status: 400, text: /^host doesn't exist$/ },
  ];
  for (const c of cases) {
    it(`${c.name} → ${c.status}`, async () => {
      const count = gitCommitCount(mayu.clusterDir);
      const headers = c.asMachine ? await reportAuth(mayu, c.asMachine) : {};
      const res = await fetch(`${mayu.url}${c.path}`, { method: c.method, body: c.body, headers });
      assert.equal(res.status, c.status);
      assert.match(await res.text(), c.text);
      assert.equal(gitCommitCount(mayu.clusterDir), count);
    });
  }

  it('keeps answering after all of that', async () => {
    assert.equal((await fetch(`${mayu.url}/`)).status, 200);
  });
});

describe('templates and restart', () => {
  it('answers 500 naming the template and tag for a missing tag, writes nothing, keeps serving', async () => {
    const workDir = await tempDir();
    const templatesDir = path.join(workDir, 'templates');
    await cp(path.join(ROOT, 'templates'), templatesDir, { recursive: true });
    const file = path.join(templatesDir, 'last_stage_cloudconfig.yaml');
    await writeFile(file, `${await readFile(file, 'utf8')}\n# {{host.no_such_tag}}\n`);
    const mayu = await startMayu({ workDir, templatesDir });
    try {
      await fetch(`${mayu.url}/first-stage-script/tpl-1`);
      const count = gitCommitCount(mayu.clusterDir);
      const res = await post(mayu, 'tpl-1', 1);
      assert.equal(res.status, 500);
      const text = await res.text();
      assert.match(text, /last_stage_cloudconfig\.yaml/);
      assert.match(text, /host\.no_such_tag/);
      assert.equal(gitCommitCount(mayu.clusterDir), count, 'a failed render writes nothing');
      assert.equal((await list(mayu)).find((h) => h.Serial === 'tpl-1')!.State, 'unknown');
      assert.equal((await fetch(`${mayu.url}/ipxebootscript`)).status, 200);
    } finally {
      await mayu.stop();
    }
  });

  it('comes back after a restart with the same hosts and states', async () => {
    const workDir = await tempDir();
    const first = await startMayu({ workDir });
    await post(first, 'r-1', 1);
    await fetch(`${first.url}/first-stage-script/r-2`);
    assert.equal((await fetch(`${first.url}/admin/host/r-1/set_installed`, { method: 'PUT', headers: await reportAuth(first, 'r-1') })).status, 202);
    const before = await list(first);
    const commits = gitCommitCount(first.clusterDir);
    await first.stop();

    const second = await startMayu({ workDir });
    try {
      assert.deepEqual(await list(second), before);
      assert.deepEqual(before.map((h) => h.State), ['installed', 'unknown']);
      assert.equal(gitCommitCount(second.clusterDir), commits, 'a restart writes no commit');
    } finally {
      await second.stop();
    }
  });

  it('survives kill -9 right after acknowledged changes: all of them are in git', async () => {
    const workDir = await tempDir();
    const first = await startMayu({ workDir });
    const acked = await Promise.all(Array.from({ length: 20 }, (_, i) => post(first, `k-${i}`, i)));
    assert.ok(acked.every((r) => r.status === 200));
    await first.kill9();
    gitFsck(first.clusterDir);
    const second = await startMayu({ workDir });
    try {
      assert.equal((await list(second)).filter((h) => h.State === 'installing').length, 20);
      assert.equal(gitSubjects(second.clusterDir).length, 2 + 20 * 8);
    } finally {
      await second.stop();
    }
  });
});

describe('--no-dnsmasq (the site has its own DHCP)', () => {
  it('serves with network.pxe true but runs no dnsmasq and writes no dnsmasq file', async () => {
    const mayu = await startMayu();
    try {
      await post(mayu, 'd-1', 7);
      assert.equal((await fetch(`${mayu.url}/admin/host/d-1/set_state`, { method: 'PUT', body: '{"State":"installed"}' })).status, 202);
      assert.ok(mayu.logs.some((l) => String(l.msg).includes('dnsmasq is not run')));
      await assert.rejects(readdir(mayu.runDir), { code: 'ENOENT' });
    } finally {
      await mayu.stop();
    }
  });
});

describe('configuration errors stop mayu at start', () => {
  it('names the file, the key and the problem', async () => {
    const { mayuFailsToStart } = await import('./helpers/mayu-process.ts');
    const dir = await tempDir();
    await mkdir(path.join(dir, 'p'));
    const bad = path.join(dir, 'config.yaml');
    await writeFile(bad, (await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8')).replace('start: 10.0.3.31', 'start: 10.0.3'));
    const r = await mayuFailsToStart(['--config', bad, '--cluster-directory', path.join(dir, 'c')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${bad.replace(/[.]/g, '\\.')}: network\\.ip_range\\.start: expected an IPv4 address`));

    await writeFile(path.join(dir, 'p', 'x.yaml'), 'name: x\nquantity: -1\n');
    const r2 = await mayuFailsToStart(['--config', path.join(FIXTURES, 'config.yaml'), '--profiles-dir', path.join(dir, 'p'), '--cluster-directory', path.join(dir, 'c')]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /p\/x\.yaml: quantity: /);
  });
});
