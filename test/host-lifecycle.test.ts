import assert from 'node:assert/strict';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { git, gitCommitCount, gitFsck, gitSubjects } from './helpers/git.ts';
import { FIXTURES, hostData, mayuFailsToStart, reportAuth, runMayuctl, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// Host lifecycle operations through the real mayuctl against the real mayu process.

const mayuctlAt = (mayu: MayuProcess, ...args: string[]) => runMayuctl(mayu.port, args);

const getHost = async (m: MayuProcess, serial: string) => (await (await fetch(`${m.url}/admin/host/${serial}`)).json()) as Record<string, unknown>;

describe('mayuctl set <serial> profile', () => {
  let mayu: MayuProcess;
  before(async () => {
    mayu = await startMayu();
    // The fixture config: core (quantity 3), then default.
    for (let i = 1; i <= 4; i++) assert.equal((await fetch(`${mayu.url}/first-stage-script/p-${i}`)).status, 200);
  });
  after(() => mayu.stop());

  it('refuses a full profile with 409 naming it and its quantity, writes nothing; --force changes it in one commit', async () => {
    assert.equal((await getHost(mayu, 'p-4')).Profile, 'default');
    const before = gitCommitCount(mayu.clusterDir);
    const full = await mayuctlAt(mayu, 'set', 'p-4', 'profile', 'core');
    assert.equal(full.code, 1);
    assert.match(full.stderr, /invalid status code '409'/);
    assert.match(full.stderr, /profile "core" is full: quantity 3, held by 3 hosts/);
    assert.equal(gitCommitCount(mayu.clusterDir), before);

    const forced = await mayuctlAt(mayu, 'set', 'p-4', 'profile', 'core', '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(before), ['p-4: updated host profile to core']);
    const host = await getHost(mayu, 'p-4');
    assert.equal(host.Profile, 'core');
    assert.deepEqual(host.FleetMetadata, ['role-core=true']);
    assert.equal(host.CoreOSVersion, '835.13.0');
    assert.equal(host.FleetDisableEngine, undefined, 'core does not disable the engine (default did)');
  });

  it('moves a host to a profile with room without --force; unknown profiles and a bad Force are 400', async () => {
    const before = gitCommitCount(mayu.clusterDir);
    assert.equal((await mayuctlAt(mayu, 'set', 'p-1', 'profile', 'default')).code, 0);
    assert.equal((await getHost(mayu, 'p-1')).Profile, 'default');
    const unknown = await mayuctlAt(mayu, 'set', 'p-1', 'profile', 'nope');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown profile "nope" \(known: core, default\)/);
    const bad = await fetch(`${mayu.url}/admin/host/p-1/set_profile`, { method: 'PUT', body: '{"Profile":"core","Force":"yes"}' });
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /Force must be true or false/);
    const none = await fetch(`${mayu.url}/admin/host/p-1/set_profile`, { method: 'PUT', body: '{}' });
    assert.equal(none.status, 400);
    assert.equal(gitCommitCount(mayu.clusterDir), before + 1);
    gitFsck(mayu.clusterDir);
  });
});

describe('mayuctl delete <serial>', () => {
  let mayu: MayuProcess;
  before(async () => {
    mayu = await startMayu();
    for (let i = 1; i <= 4; i++) assert.equal((await fetch(`${mayu.url}/first-stage-script/d-${i}`)).status, 200);
  });
  after(() => mayu.stop());

  it('removes <serial>/conf.json in one commit; history stays in git; the mirror folder goes', async () => {
    const d2 = await getHost(mayu, 'd-2');
    assert.deepEqual([d2.InternalAddr, d2.Profile], ['10.0.3.32', 'core']);
    const before = gitCommitCount(mayu.clusterDir);
    const res = await mayuctlAt(mayu, 'delete', 'd-2');
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(before), ['d-2: host deleted']);
    assert.doesNotMatch(git(mayu.clusterDir, 'ls-tree', '--name-only', 'HEAD'), /^d-2$/m);
    assert.match(git(mayu.clusterDir, 'ls-tree', '--name-only', 'HEAD'), /^d-1$/m);
    const trail = git(mayu.clusterDir, 'log', '--all', '--format=%s', '--', 'd-2/conf.json').trim().split('\n');
    assert.equal(trail[0], 'd-2: host deleted');
    assert.equal(trail.at(-1), 'd-2: host created');
    gitFsck(mayu.clusterDir);
    await assert.rejects(stat(path.join(mayu.clusterDir, 'd-2')), /ENOENT/);
    assert.equal((await fetch(`${mayu.url}/admin/host/d-2`)).status, 404);
    // The audit trail of a deleted host is still served.
    const history = (await (await fetch(`${mayu.url}/admin/host/d-2/history`)).json()) as { message: string }[];
    assert.equal(history[0]!.message, 'd-2: host deleted');
    assert.equal(history.length, 6);
  });

  it('frees the address and the profile slot: the next new host gets both', async () => {
    assert.equal((await fetch(`${mayu.url}/first-stage-script/d-5`)).status, 200);
    const d5 = await getHost(mayu, 'd-5');
    assert.deepEqual([d5.InternalAddr, d5.Profile], ['10.0.3.32', 'core']);
  });

  it('refuses an unknown serial (400, exit 1) and writes nothing', async () => {
    const before = gitCommitCount(mayu.clusterDir);
    const res = await mayuctlAt(mayu, 'delete', 'nobody');
    assert.equal(res.code, 1);
    assert.match(res.stderr, /invalid status code '400'\nhost doesn't exist/);
    assert.equal((await fetch(`${mayu.url}/admin/host/nobody/history`)).status, 400);
    assert.equal(gitCommitCount(mayu.clusterDir), before);
  });

  it('an acknowledged deletion survives kill -9; the host stays deleted after the restart', async () => {
    assert.equal((await fetch(`${mayu.url}/admin/host/d-3`, { method: 'DELETE' })).status, 204);
    await mayu.kill9();
    mayu = await startMayu({ workDir: mayu.workDir });
    const serials = ((await (await fetch(`${mayu.url}/admin/hosts`)).json()) as { Serial: string }[]).map((h) => h.Serial);
    assert.deepEqual(serials, ['d-1', 'd-4', 'd-5']);
    await assert.rejects(stat(path.join(mayu.clusterDir, 'd-3')), /ENOENT/);
    gitFsck(mayu.clusterDir);
  });
});

describe('power hook on reinstall', () => {
  let mayu: MayuProcess;
  let dir: string;
  /** A config with this power_hook block added to the fixture's. */
  const configWith = async (hook: object) => {
    const file = path.join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(file, `${await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8')}\npower_hook: ${JSON.stringify(hook)}\n`);
    return file;
  };
  /** Registers, installs (with this IPMI address) and returns the host at `installed`. */
  const installed = async (serial: string, ipmi: string, i: number) => {
    await fetch(`${mayu.url}/first-stage-script/${serial}`);
    const data = { ...hostData(serial, `52:54:00:00:01:0${i}`), IPMIAddress: ipmi };
    assert.equal((await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(data) })).status, 200);
    assert.equal((await fetch(`${mayu.url}/admin/host/${serial}/set_installed`, { method: 'PUT', headers: await reportAuth(mayu, serial) })).status, 202);
  };
  const lastRun = async (serial: string) => {
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`${mayu.url}/admin/host/${serial}/power-hook`);
      if (res.status === 200) {
        const r = (await res.json()) as Record<string, unknown>;
        if (!r.running) return r;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`power hook of ${serial} did not finish`);
  };

  before(async () => {
    dir = await tempDir();
    const script = path.join(dir, 'hook.sh');
    await writeFile(script, [
      '#!/bin/sh',
      'printf "%s\\n" "$@" > "$(dirname "$0")/args-$2"',
      'echo "power cycled $1"',
      'case "$2" in fail-*) echo boom >&2; exit 3;; slow-*) sleep 30;; esac',
      '',
    ].join('\n'));
    await chmod(script, 0o755);
    const config = await configWith({ command: `'${script}' '{{ipmi_address}}' '{{serial}}' 'pxe'`, timeout_ms: 1500 });
    mayu = await startMayu({ config });
  });
  after(() => mayu.stop());

  it('runs with the host\'s IPMI address when set back to configured; output and exit code in the log and GET power-hook; no extra commit', async () => {
    await installed('ph-1', '10.9.8.7', 1);
    assert.equal((await fetch(`${mayu.url}/admin/host/ph-1/power-hook`)).status, 404, 'not run by the install');
    const before = gitCommitCount(mayu.clusterDir);
    const res = await mayuctlAt(mayu, 'set', 'ph-1', 'state', 'configured');
    assert.equal(res.code, 0, res.stderr);
    const run = await lastRun('ph-1');
    assert.equal(await readFile(path.join(dir, 'args-ph-1'), 'utf8'), '10.9.8.7\nph-1\npxe\n');
    assert.equal(run.exitCode, 0);
    assert.equal(run.stdout, 'power cycled 10.9.8.7\n');
    const log = await mayu.waitForLog((e) => e.msg === 'power hook finished' && e.serial === 'ph-1');
    assert.equal(log.exitCode, 0);
    assert.equal(log.stdout, 'power cycled 10.9.8.7\n');
    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(before), ['ph-1: updated host state']);
    const shown = await mayuctlAt(mayu, 'power-hook', 'ph-1');
    assert.match(shown.stdout, /^Status:\s+ok$/m);
    assert.match(shown.stdout, /^stdout:\npower cycled 10\.9\.8\.7$/m);
    assert.equal(JSON.parse((await mayuctlAt(mayu, 'power-hook', 'ph-1', '--json')).stdout).exitCode, 0);
  });

  it('records a failing hook (exit code, stderr), kills a hook past its timeout, and does not run without an IPMI address', async () => {
    await installed('fail-1', '10.9.8.8', 2);
    await mayuctlAt(mayu, 'set', 'fail-1', 'state', 'configured');
    const failed = await lastRun('fail-1');
    assert.deepEqual([failed.exitCode, failed.stderr], [3, 'boom\n']);
    assert.equal((await mayu.waitForLog((e) => e.msg === 'power hook failed' && e.serial === 'fail-1')).exitCode, 3);
    assert.match((await mayuctlAt(mayu, 'power-hook', 'fail-1')).stdout, /^Status:\s+failed: exit code 3$/m);

    await installed('slow-1', '10.9.8.9', 3);
    const started = Date.now();
    await mayuctlAt(mayu, 'set', 'slow-1', 'state', 'running'); // 0.11: a clean reinstall, stored as configured
    const slow = await lastRun('slow-1');
    assert.equal(slow.timedOut, true);
    assert.equal(slow.signal, 'SIGKILL');
    assert.ok(Date.now() - started < 10_000, 'the sleep was killed, not waited for');

    await installed('noipmi-1', '', 4);
    await mayuctlAt(mayu, 'set', 'noipmi-1', 'state', 'configured');
    const skipped = await lastRun('noipmi-1');
    assert.match(String(skipped.error), /not run: the host has no ipmi_address/);
    assert.equal(skipped.command, '');
  });

  it('refuses to start with a tag outside single quotes, naming the key and the tag', async () => {
    const config = await configWith({ command: 'ipmitool -H {{ipmi_address}} chassis power cycle' });
    const { code, stderr } = await mayuFailsToStart(['--config', config, '--cluster-directory', path.join(dir, 'c2'), '--report-key-file', path.join(dir, 'k2')]);
    assert.equal(code, 1);
    assert.match(stderr, /power_hook\.command: \{\{ipmi_address\}\} must be inside single quotes/);
  });
});
