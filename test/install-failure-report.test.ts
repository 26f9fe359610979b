import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { git, gitCommitCount, gitFsck } from './helpers/git.ts';
import { hostData, macFor, reportTokenIn, runMayuctl, startMayu, type MayuProcess } from './helpers/mayu-process.ts';

// PUT /admin/host/<serial>/install_failed: the installer's failure report. One commit changing
// only <serial>/install-failures.json (conf.json keeps 0.11's bytes, the state stays), visible in
// the install-failures reads, mayuctl status, /admin/events and /metrics; bad input writes nothing.

const run = promisify(execFile);
const ADMIN = 'failure-admin-token-0123456789';
const admin = { authorization: `Bearer ${ADMIN}` };
const REFERENCE_MAYUCTL = '/work/shared/reference/mayu-0.11/bin/mayuctl';

/** Registers and moves a host to installing as the installer does; returns its report token. */
async function installing(m: MayuProcess, serial: string, mac: number): Promise<string> {
  const script = await (await fetch(`${m.url}/first-stage-script/${serial}`)).text();
  const res = await fetch(`${m.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, macFor(mac))) });
  assert.equal(res.status, 200);
  return reportTokenIn(script)!;
}

function report(m: MayuProcess, serial: string, body: unknown, token?: string) {
  return fetch(`${m.url}/admin/host/${serial}/install_failed`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** A PUT whose path reaches mayu as written (fetch would resolve `..` and `%2e%2e` first). */
function rawPut(m: MayuProcess, rawPath: string, body: unknown): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: m.port, path: rawPath, method: 'PUT', headers: { ...admin, 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode })));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const getJson = async (m: MayuProcess, route: string) => {
  const res = await fetch(`${m.url}${route}`, { headers: admin });
  assert.equal(res.status, 200, `${route}: ${res.status}`);
  return res.json() as Promise<any>;
};

describe('install failure reports', () => {
  let mayu: MayuProcess;
  let token = '';
  const serial = 'fail-1';
  before(async () => {
    mayu = await startMayu({ env: { MAYU_ADMIN_TOKEN: ADMIN } });
    token = await installing(mayu, serial, 1);
  });
  after(() => mayu.stop());

  it('records one commit that changes only install-failures.json; the host stays installing', async () => {
    const dir = mayu.clusterDir;
    const commits = gitCommitCount(dir);
    const confBefore = git(dir, 'show', `HEAD:${serial}/conf.json`);
    const hostBefore = await (await fetch(`${mayu.url}/admin/host/${serial}`, { headers: admin })).text();
    const res = await report(mayu, serial, { Stage: 'disk', Reason: 'no disk of at least 2 GB (seen: sr0)', Details: 'lsblk:\nsr0 11:0 1 1024M 0 rom' }, token);
    assert.equal(res.status, 202);
    assert.equal(await res.text(), '');

    // Native git: its own commit with the failure as subject, touching that one file.
    assert.equal(gitCommitCount(dir), commits + 1);
    assert.equal(git(dir, 'log', '-1', '--format=%s').trim(), `${serial}: install failed (disk): no disk of at least 2 GB (seen: sr0)`);
    assert.equal(git(dir, 'show', '--format=', '--name-only', 'HEAD').trim(), `${serial}/install-failures.json`);
    assert.equal(git(dir, 'show', `HEAD:${serial}/conf.json`), confBefore, 'conf.json byte for byte');
    gitFsck(dir);
    const stored = JSON.parse(git(dir, 'show', `HEAD:${serial}/install-failures.json`));
    assert.deepEqual(Object.keys(stored.Failures[0]), ['Time', 'Stage', 'Reason', 'Details', 'State']);
    assert.equal(stored.Failures[0].State, 'installing');
    assert.equal(stored.Failures[0].Details, 'lsblk:\nsr0 11:0 1 1024M 0 rom');
    // The working-tree copy matches git.
    assert.equal(await readFile(path.join(dir, serial, 'install-failures.json'), 'utf8'), git(dir, 'show', `HEAD:${serial}/install-failures.json`));

    // The 0.11 Host JSON is untouched; the failure has its own reads.
    assert.equal(await (await fetch(`${mayu.url}/admin/host/${serial}`, { headers: admin })).text(), hostBefore);
    const view = await getJson(mayu, `/admin/host/${serial}/install-failures`);
    assert.equal(view.Serial, serial);
    assert.equal(view.Current.Stage, 'disk');
    assert.match(view.Current.Time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(view.Failures.length, 1);
    const all = await getJson(mayu, '/admin/install-failures');
    assert.deepEqual(all.map((f: any) => [f.Serial, f.Stage]), [[serial, 'disk']]);
  });

  it('mayuctl status shows the failure; --json stays the Host object', async () => {
    const ours = await runMayuctl(mayu.port, ['status', serial], { MAYU_TOKEN: ADMIN });
    assert.equal(ours.code, 0, ours.stderr);
    assert.match(ours.stdout, /^InstallFailure: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC disk: no disk of at least 2 GB \(seen: sr0\) \(state installing\)$/m);
    assert.match(ours.stdout, /^State: +"installing"$/m);
    const json = await runMayuctl(mayu.port, ['status', serial, '--json'], { MAYU_TOKEN: ADMIN });
    assert.equal(JSON.parse(json.stdout).Serial, serial, '--json stays the Host object');
    assert.equal(JSON.parse(json.stdout).InstallFailure, undefined);

  });

  it('each report is an event on /admin/events and counts in /metrics', async () => {
    const controller = new AbortController();
    const res = await fetch(`${mayu.url}/admin/events`, { headers: admin, signal: controller.signal });
    const reader = res.body!.getReader();
    let text = '';
    const events: any[] = [];
    const read = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += Buffer.from(value).toString('utf8');
        let end;
        while ((end = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          if (block.startsWith('data: ')) events.push(JSON.parse(block.slice(6)));
        }
        if (events.length > 0) return;
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await report(mayu, serial, { Stage: 'image', Reason: 'bunzip2 (corrupt or truncated image) failed' }, token)).status, 202);
    await read;
    controller.abort();
    const e = events[0];
    assert.equal(e.serial, serial);
    assert.equal(e.from, 'installing');
    assert.equal(e.to, 'installing');
    assert.deepEqual(e.messages, ['install failed (image): bunzip2 (corrupt or truncated image) failed']);
    assert.equal(e.commit, git(mayu.clusterDir, 'rev-parse', 'HEAD').trim());
    assert.equal(e.installFailure.Stage, 'image');
    assert.equal(e.installFailure.State, 'installing');

    const metrics = await (await fetch(`${mayu.url}/metrics`, { headers: admin })).text();
    assert.match(metrics, /^mayu_install_failures_total\{stage="disk"\} 1$/m);
    assert.match(metrics, /^mayu_install_failures_total\{stage="image"\} 1$/m);
    assert.match(metrics, /^mayu_install_failures_total\{stage="driver"\} 0$/m);
    // Newest first in the log.
    const view = await getJson(mayu, `/admin/host/${serial}/install-failures`);
    assert.deepEqual(view.Failures.map((f: any) => f.Stage), ['image', 'disk']);
  });

  it('refuses bad reports with a 4xx naming the problem and writes nothing', async () => {
    const dir = mayu.clusterDir;
    const commits = gitCommitCount(dir);
    const fileBefore = await readFile(path.join(dir, serial, 'install-failures.json'), 'utf8');
    const ok = { Stage: 'disk', Reason: 'x' };
    const cases: [string, () => Promise<Response>, number, RegExp][] = [
      ['malformed JSON', () => report(mayu, serial, '{"Stage": "disk",', token), 400, /not JSON/],
      ['an array', () => report(mayu, serial, '[]', token), 400, /must be a JSON object/],
      ['unknown stage', () => report(mayu, serial, { Stage: 'kernel', Reason: 'x' }, token), 400, /Stage must be one of driver, network, disk, image, config, report, other/],
      ['no stage', () => report(mayu, serial, { Reason: 'x' }, token), 400, /Stage must be one of/],
      ['no reason', () => report(mayu, serial, { Stage: 'disk' }, token), 400, /Reason must be a string/],
      ['empty reason', () => report(mayu, serial, { Stage: 'disk', Reason: '  ' }, token), 400, /Reason must not be empty/],
      ['two-line reason', () => report(mayu, serial, { Stage: 'disk', Reason: 'a\nb' }, token), 400, /Reason must be one line/],
      ['reason too long', () => report(mayu, serial, { Stage: 'disk', Reason: 'r'.repeat(201) }, token), 400, /Reason: at most 200 characters/],
      ['details too long', () => report(mayu, serial, { ...ok, Details: 'd'.repeat(4097) }, token), 400, /Details: at most 4096 characters/],
      ['control characters in details', () => report(mayu, serial, { ...ok, Details: 'a\x1b[31m' }, token), 400, /Details: no control characters/],
      ['a number as details', () => report(mayu, serial, { ...ok, Details: 5 }, token), 400, /Details must be a string/],
      ['unknown field', () => report(mayu, serial, { ...ok, Serial: 'other' }, token), 400, /unknown field "Serial"/],
      ['oversized body', () => report(mayu, serial, { ...ok, Details: 'd'.repeat(20_000) }, token), 413, /too large/],
      ['no token', () => report(mayu, serial, ok), 403, /install_failed: send "Authorization: Bearer <report token>"/],
      ['wrong token', () => report(mayu, serial, ok, 'f'.repeat(64)), 403, /report token does not belong to host "fail-1"/],
      ['another host\'s route with this token', () => report(mayu, 'fail-other', ok, token), 403, /does not belong/],
      ['unknown serial (admin token)', () => report(mayu, 'never-seen', ok, ADMIN), 404, /host never-seen not found/],
      ['path tricks: ..', () => rawPut(mayu, '/admin/host/../install_failed', ok), 400, /invalid serial/],
      ['path tricks: %2e%2e', () => rawPut(mayu, '/admin/host/%2e%2e/install_failed', ok), 400, /invalid serial/],
      ['path tricks: encoded slash', () => rawPut(mayu, '/admin/host/..%2Ffail-1/install_failed', ok), 400, /invalid serial/],
      ['path tricks: NUL', () => rawPut(mayu, '/admin/host/fail-1%00/install_failed', ok), 400, /invalid serial/],
    ];
    for (const [name, send, status, message] of cases) {
      const res = await send();
      assert.equal(res.status, status, name);
      assert.match(await res.text(), message, name);
    }
    assert.equal(gitCommitCount(dir), commits, 'no commit');
    assert.equal(await readFile(path.join(dir, serial, 'install-failures.json'), 'utf8'), fileBefore);
    gitFsck(dir);
    const alive = await fetch(`${mayu.url}/healthz`);
    assert.equal(alive.status, 200);
  });

  it('a state change clears the failure in its own commit; history keeps it', async () => {
    const dir = mayu.clusterDir;
    const commits = gitCommitCount(dir);
    const res = await fetch(`${mayu.url}/admin/host/${serial}/set_installed`, { method: 'PUT', headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 202);
    assert.equal(gitCommitCount(dir), commits + 1, 'no extra commit');
    assert.equal(git(dir, 'log', '-1', '--format=%s').trim(), `${serial}: updated state to installed`);
    assert.deepEqual(git(dir, 'show', '--format=', '--name-only', 'HEAD').trim().split('\n'), [`${serial}/conf.json`, `${serial}/install-failures.json`]);
    const view = await getJson(mayu, `/admin/host/${serial}/install-failures`);
    assert.equal(view.Current, null);
    assert.equal(view.ClearedBy, 'updated state to installed');
    assert.equal(view.Failures.length, 2, 'the log keeps them');
    assert.deepEqual(await getJson(mayu, '/admin/install-failures'), []);
    const status = await runMayuctl(mayu.port, ['status', serial], { MAYU_TOKEN: ADMIN });
    assert.match(status.stdout, /^InstallFailure: .* image: .*\(cleared: updated state to installed\)$/m);
    const history = await getJson(mayu, `/admin/host/${serial}/history`);
    assert.deepEqual(history.slice(0, 3).map((c: any) => c.message), [
      `${serial}: updated state to installed`,
      `${serial}: install failed (image): bunzip2 (corrupt or truncated image) failed`,
      `${serial}: install failed (disk): no disk of at least 2 GB (seen: sr0)`,
    ]);
    // An installed host's token is no longer rendered, and its reports need it: a report now is refused.
    assert.equal((await report(mayu, serial, { Stage: 'other', Reason: 'late' })).status, 403);
  });

  it('a deleted host takes its failures with it; the history stays', async () => {
    const other = 'fail-del';
    const t = await installing(mayu, other, 2);
    assert.equal((await report(mayu, other, { Stage: 'network', Reason: 'no DHCP answer' }, t)).status, 202);
    assert.equal((await fetch(`${mayu.url}/admin/host/${other}`, { method: 'DELETE', headers: admin })).status, 204);
    assert.equal(git(mayu.clusterDir, 'ls-tree', 'HEAD', `${other}/`).trim(), '');
    await assert.rejects(readFile(path.join(mayu.clusterDir, other, 'install-failures.json')), /ENOENT/);
    assert.equal((await fetch(`${mayu.url}/admin/host/${other}/install-failures`, { headers: admin })).status, 404);
    assert.match(git(mayu.clusterDir, 'log', '--format=%s', '--', `${other}/install-failures.json`), /install failed \(network\): no DHCP answer/);
  });
});

describe('install failure reports survive kill -9 and restarts', () => {
  it('a 202 report is in git and in the reads after kill -9; the working tree is repaired', async () => {
    let mayu = await startMayu({ env: { MAYU_ADMIN_TOKEN: ADMIN } });
    const serial = 'fail-kill';
    try {
      const token = await installing(mayu, serial, 3);
      assert.equal((await report(mayu, serial, { Stage: 'driver', Reason: 'no driver for 8086:1572 (i40e)' }, token)).status, 202);
      await mayu.kill9();
      // A kill can leave the working tree behind git; simulate the worst: the copy is gone.
      await run('rm', ['-f', path.join(mayu.clusterDir, serial, 'install-failures.json')]);
      mayu = await startMayu({ workDir: mayu.workDir, env: { MAYU_ADMIN_TOKEN: ADMIN } });
      const view = await getJson(mayu, `/admin/host/${serial}/install-failures`);
      assert.equal(view.Current.Stage, 'driver');
      assert.equal(view.Current.Reason, 'no driver for 8086:1572 (i40e)');
      assert.equal(git(mayu.clusterDir, 'log', '-1', '--format=%s').trim(), `${serial}: install failed (driver): no driver for 8086:1572 (i40e)`);
      gitFsck(mayu.clusterDir);
      // Repaired in the background after an unclean stop.
      const file = path.join(mayu.clusterDir, serial, 'install-failures.json');
      const until = Date.now() + 5000;
      let text: string | undefined;
      while (Date.now() < until && !(text = await readFile(file, 'utf8').catch(() => undefined))) await new Promise((r) => setTimeout(r, 20));
      assert.equal(text, git(mayu.clusterDir, 'show', `HEAD:${serial}/install-failures.json`));
      // A later change of the host keeps the file in its tree.
      assert.equal((await fetch(`${mayu.url}/admin/host/${serial}/set_metadata`, { method: 'PUT', headers: admin, body: JSON.stringify({ FleetMetadata: ['role=x'] }) })).status, 202);
      assert.match(git(mayu.clusterDir, 'ls-tree', '--name-only', 'HEAD', `${serial}/`), /install-failures\.json/);
      assert.equal((await getJson(mayu, `/admin/host/${serial}/install-failures`)).Current.Stage, 'driver', 'metadata is no state change');
    } finally {
      await mayu.stop();
    }
  });

  it('--no-git keeps the file beside conf.json and loads it at start', async () => {
    let mayu = await startMayu({ args: ['--no-git', '--insecure-reports'] });
    const serial = 'fail-files';
    try {
      await installing(mayu, serial, 4);
      // --insecure-reports: a report without a token is taken; an unknown serial is a 404.
      assert.equal((await report(mayu, serial, { Stage: 'config', Reason: 'cannot mount /dev/vda9' })).status, 202);
      assert.equal((await report(mayu, 'nobody-here', { Stage: 'config', Reason: 'x' })).status, 404);
      assert.equal((await report(mayu, serial, { Stage: 'config', Reason: 'x' }, 'f'.repeat(64))).status, 403, 'a wrong token is still refused');
      const conf = await readFile(path.join(mayu.clusterDir, serial, 'conf.json'), 'utf8');
      assert.equal(JSON.parse(conf).State, 'installing');
      assert.ok(!conf.includes('install'.concat('Failure')), 'conf.json has no new key');
      await mayu.stop();
      mayu = await startMayu({ workDir: mayu.workDir, args: ['--no-git'] });
      const view = await getJson(mayu, `/admin/host/${serial}/install-failures`);
      assert.equal(view.Current.Reason, 'cannot mount /dev/vda9');
    } finally {
      await mayu.stop();
    }
  });

  it('0.11 mayuctl lists and shows a host with a failure from our mayu', async () => {
    const mayu = await startMayu({});
    try {
      const token = await installing(mayu, 'fail-ref', 5);
      assert.equal((await report(mayu, 'fail-ref', { Stage: 'disk', Reason: 'no disk' }, token)).status, 202);
      const list = await run(REFERENCE_MAYUCTL, ['--no-tls', '--host', '127.0.0.1', '--port', String(mayu.port), 'list']);
      assert.match(list.stdout, /fail-ref .*"installing"/);
      const status = await run(REFERENCE_MAYUCTL, ['--no-tls', '--host', '127.0.0.1', '--port', String(mayu.port), 'status', 'fail-ref']);
      assert.match(status.stdout, /^State: +"installing"$/m);
    } finally {
      await mayu.stop();
    }
  });
});
