import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { gitCommitCount } from './helpers/git.ts';
import { ROOT, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// mayuctl events, list --watch and render as real processes against the real mayu process.

const run = promisify(execFile);

async function until(check: () => Promise<boolean> | boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('mayuctl events, list --watch, render against a live mayu', () => {
  let mayu: MayuProcess;
  const token = 'mayuctl-ops-admin-token-0123';
  const auth = { authorization: `Bearer ${token}` };
  const ctlArgs = () => ['--import', 'tsx', path.join(ROOT, 'src/cli/mayuctl.ts'), '--host', '127.0.0.1', '--port', String(mayu.port), '--token', token];
  const mayuctl = async (...args: string[]) => {
    try {
      const { stdout, stderr } = await run(process.execPath, [...ctlArgs(), ...args], { cwd: ROOT });
      return { code: 0, stdout, stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };
  /** A long-running mayuctl; its stdout so far via out(). */
  const follow = (...args: string[]) => {
    const proc: ChildProcess = spawn(process.execPath, [...ctlArgs(), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (err += d));
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    return { out: () => out, err: () => err, stop: async () => (proc.kill('SIGTERM'), await exited) };
  };
  const subscribers = async () => Number(/^mayu_event_subscribers (\d+)$/m.exec(await (await fetch(`${mayu.url}/metrics`, { headers: auth })).text())![1]);

  before(async () => {
    mayu = await startMayu({ env: { MAYU_ADMIN_TOKEN: token } });
    await fetch(`${mayu.url}/first-stage-script/ctl-ops-1`);
  });
  after(() => mayu.stop());

  it('events prints one line per change, --json the raw event', async () => {
    const text = follow('events');
    const json = follow('events', '--json');
    try {
      await until(async () => (await subscribers()) === 2, 'both mayuctl events subscribed');
      await fetch(`${mayu.url}/first-stage-script/ctl-ops-2`);
      await until(() => text.out().includes('\n') && json.out().includes('\n'), 'an event line from both');
      assert.match(text.out(), /^ctl-ops-2: new -> unknown \[[0-9a-f]{12}\] host created; updated with predefined settings; .*set default etcd discovery token\n$/);
      const event = JSON.parse(json.out()) as Record<string, unknown>;
      assert.equal(event['serial'], 'ctl-ops-2');
      assert.equal(event['from'], null);
      assert.match(String(event['commit']), /^[0-9a-f]{40}$/);
      assert.equal(json.out().trimEnd().split('\n').length, 1, 'one line per event');
    } finally {
      await text.stop();
      await json.stop();
    }
    await until(async () => (await subscribers()) === 0, 'mayuctl events gone');
  });

  it('events prints a deletion as `-> deleted`, --json with to null and deleted true', async () => {
    await fetch(`${mayu.url}/first-stage-script/ctl-ops-del`);
    const text = follow('events');
    const json = follow('events', '--json');
    try {
      await until(async () => (await subscribers()) === 2, 'both mayuctl events subscribed');
      assert.equal((await mayuctl('delete', 'ctl-ops-del')).code, 0);
      await until(() => text.out().includes('\n') && json.out().includes('\n'), 'an event line from both');
      assert.match(text.out(), /^ctl-ops-del: unknown -> deleted \[[0-9a-f]{12}\] host deleted\n$/);
      const event = JSON.parse(json.out()) as Record<string, unknown>;
      assert.equal(event['to'], null);
      assert.equal(event['deleted'], true);
      assert.equal(event['from'], 'unknown');
    } finally {
      await text.stop();
      await json.stop();
    }
    await until(async () => (await subscribers()) === 0, 'mayuctl events gone');
  });

  it('events without the token exits 1 with the 401', async () => {
    const { code, stderr } = await (async () => {
      try {
        await run(process.execPath, ['--import', 'tsx', path.join(ROOT, 'src/cli/mayuctl.ts'), '--host', '127.0.0.1', '--port', String(mayu.port), 'events'], { cwd: ROOT, env: { ...process.env, MAYU_TOKEN: '' } });
        return { code: 0, stderr: '' };
      } catch (e) {
        return e as { code: number; stderr: string };
      }
    })();
    assert.equal(code, 1);
    assert.match(stderr, /invalid status code '401'\nadmin API: authentication required/);
  });

  it('list --watch reprints the table when a host changes', async () => {
    const watch = follow('list', '--watch', '--no-legend', '--fields=serial,state');
    try {
      await until(() => watch.out().includes('ctl-ops-1'), 'the first table');
      await until(async () => (await subscribers()) === 1, 'the watch subscribed');
      assert.ok(!watch.out().includes('ctl-ops-3'));
      await fetch(`${mayu.url}/first-stage-script/ctl-ops-3`);
      await until(() => watch.out().includes('ctl-ops-3'), 'a reprint with the new host');
      const tables = watch.out().split('\n\n');
      assert.ok(tables.length >= 2, 'printed again, after a blank line (stdout is not a terminal)');
      assert.match(tables.at(-1)!, /^ctl-ops-1 +"unknown"\nctl-ops-2 +"unknown"\nctl-ops-3 +"unknown"\n$/);
    } finally {
      await watch.stop();
    }
  });

  it('list --watch: a deleted host disappears from the reprinted table', async () => {
    const watch = follow('list', '--watch', '--no-legend', '--fields=serial,state');
    try {
      await until(() => watch.out().includes('ctl-ops-3'), 'the first table');
      await until(async () => (await subscribers()) === 1, 'the watch subscribed');
      const printed = watch.out().length;
      assert.equal((await mayuctl('delete', 'ctl-ops-3')).code, 0);
      await until(() => watch.out().length > printed && watch.out().endsWith('\n') && !watch.out().split('\n\n').at(-1)!.includes('ctl-ops-3'), 'a reprint without the deleted host');
      assert.match(watch.out().split('\n\n').at(-1)!, /^ctl-ops-1 +"unknown"\nctl-ops-2 +"unknown"\n$/);
    } finally {
      await watch.stop();
    }
  });

  it('render prints what the machine route serves, writes nothing, previews unregistered serials', async () => {
    const commits = gitCommitCount(mayu.clusterDir);
    const rendered = await mayuctl('render', 'ctl-ops-1', 'first-stage');
    assert.equal(rendered.code, 0, rendered.stderr);
    const served = await (await fetch(`${mayu.url}/first-stage-script/ctl-ops-1`)).text();
    assert.equal(rendered.stdout, served, 'byte for byte what the machine gets');
    assert.match(rendered.stdout, /^REPORT_TOKEN='[0-9a-f]{64}'$/m);
    const ipxe = await mayuctl('render', 'ctl-ops-1', 'ipxe');
    assert.match(ipxe.stdout, /^#!ipxe\n/);
    const cloud = await mayuctl('render', 'ctl-ops-1', 'cloud-config');
    assert.match(cloud.stdout, /^#cloud-config/);
    const ignition = await mayuctl('render', 'ctl-ops-1', 'ignition');
    assert.equal((JSON.parse(ignition.stdout) as { ignition: { version: string } }).ignition.version, '3.3.0');

    const preview = await mayuctl('render', 'ctl-ops-new', 'cloud-config', '--profile', 'default');
    assert.equal(preview.code, 0, preview.stderr);
    assert.match(preview.stdout, /ctl-ops-new/);
    assert.match(preview.stdout, /role-worker=true/, 'the chosen profile\'s tags');
    assert.equal(gitCommitCount(mayu.clusterDir), commits, 'no commit from any render or preview');
    assert.equal((await fetch(`${mayu.url}/admin/host/ctl-ops-new`, { headers: auth })).status, 404, 'the previewed host was not created');

    const unknown = await mayuctl('render', 'ctl-ops-new', 'ipxe');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /404.*host ctl-ops-new not found; give a profile/);
    const badProfile = await mayuctl('render', 'ctl-ops-new', 'ipxe', '--profile', 'nope');
    assert.equal(badProfile.code, 1);
    assert.match(badProfile.stderr, /400.*unknown profile "nope"; profiles: core, default/);
    const badKind = await mayuctl('render', 'ctl-ops-1', 'grub');
    assert.equal(badKind.code, 2, 'an unknown kind is a usage error');
    assert.match(badKind.stderr, /Choices: "ignition", "cloud-config", "first-stage", "ipxe"/);
    const exists = await fetch(`${mayu.url}/admin/host/ctl-ops-1/render/ipxe?profile=core`, { headers: auth });
    assert.equal(exists.status, 400);
    assert.match(await exists.text(), /profile previews only hosts not registered yet/);
    assert.equal((await fetch(`${mayu.url}/admin/host/ctl-ops-1/render/ipxe`)).status, 401, 'admin token rule');
    assert.equal(gitCommitCount(mayu.clusterDir), commits);
  });
});

describe('render route with a broken template', () => {
  let mayu: MayuProcess;
  before(async () => {
    const dir = path.join(await tempDir('mayu-ops-templates-'), 'templates');
    await cp(path.join(ROOT, 'templates'), dir, { recursive: true });
    const file = path.join(dir, 'last_stage_cloudconfig.yaml');
    await writeFile(file, `${await readFile(file, 'utf8')}\n# {{no_such_key}}\n`);
    mayu = await startMayu({ templatesDir: dir });
    await fetch(`${mayu.url}/first-stage-script/broken-1`);
  });
  after(() => mayu.stop());

  it('answers 500 naming the template and the tag, and writes nothing', async () => {
    const commits = gitCommitCount(mayu.clusterDir);
    const res = await fetch(`${mayu.url}/admin/host/broken-1/render/cloud-config`);
    assert.equal(res.status, 500);
    const text = await res.text();
    assert.match(text, /last_stage_cloudconfig/);
    assert.match(text, /no_such_key/);
    assert.equal((await fetch(`${mayu.url}/admin/host/broken-1/render/first-stage`)).status, 200, 'the other kinds still render');
    assert.equal(gitCommitCount(mayu.clusterDir), commits);
  });
});
