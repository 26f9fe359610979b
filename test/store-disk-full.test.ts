import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, statfsSync, writeSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { git, gitFsck } from './helpers/git.ts';
import { FIXTURES, hostData, macFor, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

// A full or failing disk, for real: the cluster directory is a 3 MiB tmpfs mounted here (root
// only), filled with a file of zeros, then freed again. Native git checks what is on disk.

const isRoot = process.getuid?.() === 0;
const MiB = 1024 * 1024;

/** A workDir whose clusters/ is a tmpfs of `size`; unmounted (by its path) and removed by the returned cleanup. */
async function smallDisk(size = '3m'): Promise<{ workDir: string; clusterDir: string; cleanup: () => Promise<void> }> {
  const workDir = await tempDir('mayu-disk-');
  const clusterDir = path.join(workDir, 'clusters');
  await mkdir(clusterDir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', clusterDir]);
  return {
    workDir,
    clusterDir,
    cleanup: async () => {
      execFileSync('umount', [clusterDir]);
      await rm(workDir, { recursive: true, force: true });
    },
  };
}

const freeBytes = (dir: string) => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

/** Grows the filler file until `dir` has at most `leave` bytes free (0: until the disk refuses). */
function fill(dir: string, leave: number): void {
  const fd = openSync(path.join(dir, '.filler'), 'a');
  try {
    const chunk = Buffer.alloc(64 * 1024);
    for (;;) {
      const want = freeBytes(dir) - leave;
      if (want <= 0) return;
      try {
        writeSync(fd, chunk, 0, Math.min(chunk.length, Math.max(4096, Math.floor(want / 4096) * 4096)));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return;
        throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
}

async function configWith(workDir: string, storage: string): Promise<string> {
  const file = path.join(workDir, 'config.yaml');
  await writeFile(file, `${await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8')}${storage}`);
  return file;
}

const readyz = async (m: MayuProcess) => {
  const res = await fetch(`${m.url}/readyz`);
  return { status: res.status, body: (await res.json()) as { ready: boolean; reasons: string[]; warnings: string[]; storage: Record<string, unknown> } };
};

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 8000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const head = (dir: string) => git(dir, 'rev-parse', 'HEAD').trim();
const logLines = (m: MayuProcess, re: RegExp) => m.logs.filter((l) => typeof l.msg === 'string' && re.test(l.msg));

describe('full or failing disk (git store on a 3 MiB tmpfs)', { skip: isRoot ? false : 'needs root to mount a tmpfs' }, () => {
  let disk: Awaited<ReturnType<typeof smallDisk>>;
  let mayu: MayuProcess;
  const put = (serial: string, route: string, body = '') => fetch(`${mayu.url}/admin/host/${serial}/${route}`, { method: 'PUT', body });
  const register = (serial: string) => fetch(`${mayu.url}/first-stage-script/${serial}`);
  const hostIn = async (serial: string) => (await fetch(`${mayu.url}/admin/host/${serial}`)).json() as Promise<Record<string, unknown>>;

  before(async () => {
    disk = await smallDisk();
    // Guard at 1 MiB, no share limit: a 3 MiB disk is far below the 64 MiB default.
    const config = await configWith(disk.workDir, 'storage:\n  min_free_bytes: 1MiB\n  min_free_percent: 0\n');
    mayu = await startMayu({ workDir: disk.workDir, config, args: ['--insecure-reports'] });
  });
  after(async () => {
    await mayu?.stop();
    await disk?.cleanup();
  });

  it('refuses new hosts below the threshold, keeps taking changes of known hosts, says so in /readyz and logs it once', async () => {
    // Registered and installed as a machine does it: first-stage script, final config, set_installed.
    for (const [i, s] of ['known-1', 'known-2'].entries()) {
      assert.equal((await register(s)).status, 200);
      assert.equal((await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(s, macFor(i + 1))) })).status, 200);
    }
    for (const s of ['known-1', 'known-2']) assert.equal((await put(s, 'set_installed')).status, 202);
    assert.equal((await readyz(mayu)).status, 200);

    fill(disk.clusterDir, 512 * 1024);
    const before = head(disk.clusterDir);
    for (const s of ['new-1', 'new-2', 'new-3']) {
      const res = await register(s);
      assert.equal(res.status, 507, s);
      assert.match(await res.text(), /new hosts are refused: the cluster directory's disk has [\d.]+ KiB free, below the 1 MiB kept for the changes of known hosts .*nothing was changed/);
    }
    const final = await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('new-4', macFor(14))) });
    assert.equal(final.status, 507, 'a final-config POST of an unknown host is a new host too');
    assert.equal(head(disk.clusterDir), before, 'nothing written for the refused hosts');
    assert.equal((await fetch(`${mayu.url}/admin/host/new-1`)).status, 404, 'not in memory either');

    // A report of a known host goes through, and is in git.
    assert.equal((await put('known-1', 'boot_complete', '{"CoreOSVersion":"1.2.3"}')).status, 202);
    const known1 = await hostIn('known-1');
    assert.equal(known1.State, 'running');
    await until('the report in git', async () => (head(disk.clusterDir) !== before ? true : undefined));
    assert.equal(JSON.parse(git(disk.clusterDir, 'show', 'HEAD:known-1/conf.json')).State, 'running');

    const r = await readyz(mayu);
    assert.equal(r.status, 200, 'low space alone does not stop serving machines');
    assert.ok(r.body.warnings.some((w) => /^free space low: .* new hosts are refused \(507\)/.test(w)), JSON.stringify(r.body));
    assert.equal(r.body.storage.newHostsRefused, true);
    assert.equal(logLines(mayu, /free space low/).length, 1, 'one line for the episode, not one per refusal');
  });

  it('a full disk: changes the journal cannot take are 507 and rolled back, /readyz is not ready, one log line', async (t) => {
    const before = head(disk.clusterDir);
    fill(disk.clusterDir, 0);
    assert.equal((await register('new-5')).status, 507);
    const r = await until('/readyz not ready', async () => {
      const x = await readyz(mayu);
      return x.status === 503 ? x : undefined;
    });
    assert.ok(r.body.reasons.some((why) => /^changes cannot be stored since .*: disk full \(ENOSPC\); changes are answered 507 until a write succeeds$/.test(why)), JSON.stringify(r.body));

    // An operator's change waits for git too: refused outright, or taken by the journal's room
    // but not by git (then it stands and must reach git later). Either way 507, saying which.
    const meta = await put('known-1', 'set_metadata', '{"FleetMetadata":["rack=r7"]}');
    const metaText = await meta.text();
    assert.equal(meta.status, 507, metaText);
    assert.match(metaText, /^(the change could not be stored: disk full \(ENOSPC\); nothing was changed|git write failed \(the changes are in the journal\): disk full \(ENOSPC\); they stand and reach git once the disk takes writes again)$/);
    (disk as typeof disk & { metadataStands?: boolean }).metadataStands = metaText.startsWith('git write failed');
    t.diagnostic(`operator change on the full disk: ${metaText}`);

    // Reports of a known host: the journal may still take a few into room it already has (they
    // are acknowledged and must reach git later); then the disk refuses.
    const acknowledged: string[] = [];
    let refused: { body: string; version: string } | undefined;
    for (let i = 0; i < 40 && !refused; i++) {
      const version = `9.9.${i}`;
      const res = await put('known-2', 'boot_complete', JSON.stringify({ CoreOSVersion: version }));
      if (res.status === 202) acknowledged.push(version);
      else {
        const body = await res.text();
        assert.equal(res.status, 507, body);
        refused = { body, version };
      }
    }
    assert.ok(refused, 'the disk refused a change');
    assert.match(refused.body, /^the change could not be stored: disk full \(ENOSPC\); nothing was changed$/);
    for (let i = 0; i < 3; i++) assert.equal((await put('known-2', 'boot_complete', JSON.stringify({ CoreOSVersion: `8.8.${i}` }))).status, 507);
    const known2 = await hostIn('known-2');
    assert.equal(known2.CoreOSVersion, acknowledged.at(-1) ?? undefined, 'memory rolled back to the last acknowledged change');

    assert.equal(head(disk.clusterDir), before, 'git has nothing new (the ref did not move)');
    gitFsck(disk.clusterDir);
    assert.equal(logLines(mayu, /^storage: changes cannot be stored/).length, 1, 'one error line for the episode');
    assert.equal(mayu.logs.filter((l) => l.msg === 'request failed').length, 0, 'no 500s');
    (disk as typeof disk & { acknowledged?: string[] }).acknowledged = acknowledged;
    t.diagnostic(`acknowledged from the journal's room while full: ${acknowledged.length}`);
  });

  it('space back: ready again by itself, the next change works, every acknowledged change is in git', async () => {
    await rm(path.join(disk.clusterDir, '.filler'));
    await until('/readyz ready', async () => ((await readyz(mayu)).status === 200 ? true : undefined));
    assert.equal(logLines(mayu, /^storage: changes are stored again/).length, 1, JSON.stringify(logLines(mayu, /^storage/)));
    assert.equal((await register('new-6')).status, 200, 'new hosts are welcome again');
    assert.equal((await put('known-2', 'boot_complete', '{"CoreOSVersion":"10.0.0"}')).status, 202);
    await until('git to catch up', async () => (git(disk.clusterDir, 'log', '-1', '--format=%s').includes('new-6') || JSON.parse(git(disk.clusterDir, 'show', 'HEAD:known-2/conf.json')).CoreOSVersion === '10.0.0' ? true : undefined));
    await until('git to have the last change', async () => (JSON.parse(git(disk.clusterDir, 'show', 'HEAD:known-2/conf.json')).CoreOSVersion === '10.0.0' ? true : undefined));
    // Every version acknowledged while the disk was full is in git's history of known-2.
    const versions = git(disk.clusterDir, 'log', '--format=%H', '--', 'known-2/conf.json').split('\n').filter(Boolean)
      .map((c) => JSON.parse(git(disk.clusterDir, 'show', `${c}:known-2/conf.json`)).CoreOSVersion as string | undefined);
    for (const v of (disk as typeof disk & { acknowledged?: string[] }).acknowledged ?? []) assert.ok(versions.includes(v), `acknowledged ${v} is in git`);
    assert.ok(!versions.some((v) => v?.startsWith('8.8.')), 'no refused change is in git');
    const metadata = JSON.parse(git(disk.clusterDir, 'show', 'HEAD:known-1/conf.json')).FleetMetadata as string[];
    assert.equal(metadata.includes('rack=r7'), (disk as typeof disk & { metadataStands?: boolean }).metadataStands, 'the operator change is in git exactly when its answer said it stands');
    gitFsck(disk.clusterDir);
    for (const serial of ['known-1', 'known-2', 'new-6']) {
      assert.equal(await readFile(path.join(disk.clusterDir, serial, 'conf.json'), 'utf8'), git(disk.clusterDir, 'show', `HEAD:${serial}/conf.json`), `${serial}'s working-tree copy`);
    }
    const r = await readyz(mayu);
    assert.deepEqual(r.body.warnings, [], JSON.stringify(r.body));
    const metrics = await (await fetch(`${mayu.url}/metrics`)).text();
    const free = Number(/^mayu_store_free_bytes (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(free > 1 * MiB && free <= 3 * MiB, metrics.split('\n').filter((l) => l.startsWith('mayu_store')).join('\n'));
    assert.match(metrics, /^mayu_store_min_free_bytes 1048576$/m);
    assert.match(metrics, /^mayu_store_writes_failing 0$/m);
    assert.match(metrics, /^mayu_store_writes_refused_total\{reason="new_host"\} [5-9]$/m);
    assert.match(metrics, /^mayu_store_writes_refused_total\{reason="not_stored"\} [1-9]\d*$/m);
  });
});

describe('full disk with --no-git (plain files) and the etcd discovery files', { skip: isRoot ? false : 'needs root to mount a tmpfs' }, () => {
  let disk: Awaited<ReturnType<typeof smallDisk>>;
  let mayu: MayuProcess | undefined;
  after(async () => {
    await mayu?.stop();
    await disk?.cleanup();
  });

  it('refuses what it cannot write (507, memory and files unchanged), is not ready until space is back, starts again afterwards', async () => {
    disk = await smallDisk();
    // Guard off: the writes themselves must fail cleanly.
    const config = await configWith(disk.workDir, 'storage:\n  min_free_bytes: 0\n  min_free_percent: 0\n');
    const start = () => startMayu({ workDir: disk.workDir, config, args: ['--no-git', '--insecure-reports'] });
    mayu = await start();
    const m = mayu;
    assert.equal((await fetch(`${m.url}/first-stage-script/known-1`)).status, 200);
    assert.equal((await fetch(`${m.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('known-1', macFor(1))) })).status, 200);
    const conf = path.join(disk.clusterDir, 'known-1', 'conf.json');
    const stored = await readFile(conf, 'utf8');
    const token = (JSON.parse(await readFile(path.join(disk.clusterDir, 'cluster.json'), 'utf8')) as { Config: { DefaultEtcdClusterToken: string } }).Config.DefaultEtcdClusterToken;

    fill(disk.clusterDir, 0);
    const installed = await fetch(`${m.url}/admin/host/known-1/set_installed`, { method: 'PUT' });
    assert.equal(installed.status, 507);
    assert.equal(await installed.text(), 'the change could not be stored: disk full (ENOSPC); nothing was changed');
    assert.equal(((await (await fetch(`${m.url}/admin/host/known-1`)).json()) as { State: string }).State, 'installing', 'memory rolled back');
    assert.equal(await readFile(conf, 'utf8'), stored, 'conf.json untouched');
    const created = await fetch(`${m.url}/first-stage-script/new-1`);
    assert.equal(created.status, 507, await created.text());
    assert.equal((await fetch(`${m.url}/admin/host/new-1`)).status, 404);
    const member = await fetch(`${m.url}/etcd/${token}/member-1`, { method: 'PUT', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'value=infra1%3Dhttp%3A%2F%2F10.0.3.31%3A2380' });
    assert.equal(member.status, 507, 'a discovery registration the disk refuses');
    assert.match(await member.text(), /^the change could not be stored: disk full \(ENOSPC\)/);
    const listed = (await (await fetch(`${m.url}/etcd/${token}`)).json()) as { node: { nodes?: unknown[] } };
    assert.equal(listed.node.nodes?.length ?? 0, 0, 'the refused member is not in the token');
    const r = await until('/readyz not ready', async () => {
      const res = await fetch(`${m.url}/readyz`);
      return res.status === 503 ? ((await res.json()) as { reasons: string[] }) : undefined;
    });
    assert.match(r.reasons.join('\n'), /changes cannot be stored since .*: disk full \(ENOSPC\)/);
    assert.equal(m.logs.filter((l) => l.msg === 'request failed').length, 0, 'no 500s');
    assert.equal(logLines(m, /^storage: changes cannot be stored/).length, 1);

    await rm(path.join(disk.clusterDir, '.filler'));
    await until('/readyz ready', async () => ((await fetch(`${m.url}/readyz`)).status === 200 ? true : undefined));
    assert.equal((await fetch(`${m.url}/admin/host/known-1/set_installed`, { method: 'PUT' })).status, 202);
    await m.stop();
    // Nothing half-written is left to stop the next start (a new host's empty folder, temp files).
    mayu = await start();
    assert.equal(((await (await fetch(`${mayu.url}/admin/host/known-1`)).json()) as { State: string }).State, 'installed');
    assert.equal((await fetch(`${mayu.url}/admin/host/new-1`)).status, 404);
  });
});

describe('free-space guard defaults', { skip: isRoot ? false : 'needs root to mount a tmpfs' }, () => {
  it('refuses new hosts on a disk with less than 64 MiB free, unless config lowers the threshold', async () => {
    const disk = await smallDisk();
    try {
      let m = await startMayu({ workDir: disk.workDir });
      try {
        const res = await fetch(`${m.url}/first-stage-script/node-1`);
        assert.equal(res.status, 507);
        assert.match(await res.text(), /below the 64 MiB kept for the changes of known hosts/);
        assert.match(await (await fetch(`${m.url}/metrics`)).text(), /^mayu_store_min_free_bytes 67108864$/m);
      } finally {
        await m.stop();
      }
      m = await startMayu({ workDir: disk.workDir, config: await configWith(disk.workDir, 'storage:\n  min_free_bytes: 512KiB\n  min_free_percent: 0\n') });
      try {
        assert.equal((await fetch(`${m.url}/first-stage-script/node-1`)).status, 200);
        assert.match(await (await fetch(`${m.url}/metrics`)).text(), /^mayu_store_min_free_bytes 524288$/m);
      } finally {
        await m.stop();
      }
    } finally {
      await disk.cleanup();
    }
  });
});
