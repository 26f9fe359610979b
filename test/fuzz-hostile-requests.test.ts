import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { gitCommitCount } from './helpers/git.ts';
import { fuzzRequests, type FuzzRequest } from './helpers/fuzz-requests.ts';
import { hostData, macFor, startMayu, type MayuProcess } from './helpers/mayu-process.ts';

// Generated hostile requests across every route against ONE real mayu with an admin token, over
// loopback with keep-alive. None may change a host, so afterwards git and every conf.json must be
// exactly as before; no answer may be a 5xx; the process must still answer.
// MAYU_FUZZ_RUNS and MAYU_FUZZ_SEED replay or widen a run.

const ADMIN = 'fuzz-admin-token-0123456789abcdef';
const RUNS = Number(process.env['MAYU_FUZZ_RUNS'] ?? 10_000);
const SEED = Number(process.env['MAYU_FUZZ_SEED'] ?? Date.now() % 2 ** 31);
const CONCURRENCY = 8;

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function send(base: string, r: FuzzRequest): Promise<number> {
  return new Promise((resolve, reject) => {
    // Explicit length: node sends DELETE bodies unframed otherwise, and the server reads them as the next request.
    const headers = r.body === undefined ? r.headers : { ...r.headers, 'content-length': String(Buffer.byteLength(r.body)) };
    const req = request(`${base}${r.path}`, { method: r.method, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(r.body);
  });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function snapshot(m: MayuProcess): Promise<{ commits: number; files: Record<string, string>; hosts: unknown }> {
  const files: Record<string, string> = {};
  for (const entry of (await readdir(m.clusterDir, { withFileTypes: true })).filter((e) => e.isDirectory() && !e.name.startsWith('.'))) {
    files[entry.name] = await readFile(path.join(m.clusterDir, entry.name, 'conf.json'), 'utf8');
  }
  files['cluster.json'] = await readFile(path.join(m.clusterDir, 'cluster.json'), 'utf8');
  const hosts = await (await fetch(`${m.url}/admin/hosts`, { headers: bearer(ADMIN) })).json();
  return { commits: gitCommitCount(m.clusterDir), files, hosts };
}

describe('fuzz: hostile requests against one mayu', () => {
  let mayu: MayuProcess;
  const reportTokens: Record<string, string> = {};
  const running = ['fz-run-1', 'fz-run-2'];
  const installed = ['fz-inst-1', 'fz-inst-2'];

  before(async () => {
    mayu = await startMayu({ env: { MAYU_ADMIN_TOKEN: ADMIN } });
    let i = 0;
    for (const serial of [...running, ...installed]) {
      const script = await (await fetch(`${mayu.url}/first-stage-script/${serial}`)).text();
      reportTokens[serial] = /^REPORT_TOKEN='([0-9a-f]{64})'$/m.exec(script)![1]!;
      assert.equal((await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, macFor(++i))) })).status, 200);
      assert.equal((await fetch(`${mayu.url}/admin/host/${serial}/set_installed`, { method: 'PUT', headers: bearer(reportTokens[serial]!) })).status, 202);
      if (running.includes(serial)) {
        assert.equal((await fetch(`${mayu.url}/admin/host/${serial}/boot_complete`, { method: 'PUT', headers: bearer(reportTokens[serial]!) })).status, 202);
      }
    }
  });
  after(async () => {
    agent.destroy();
    await mayu.stop();
  });

  it(`${RUNS} generated requests: no 5xx, each answer as expected, nothing written, still answering`, { timeout: 180_000 }, async () => {
    const before = await snapshot(mayu);
    const requests = fc.sample(fuzzRequests({ adminToken: ADMIN, running, installed, reportTokens }), { numRuns: RUNS, seed: SEED });
    const failures: string[] = [];
    const byKind = new Map<string, number>();
    const started = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < requests.length) {
        const r = requests[next++]!;
        byKind.set(r.kind, (byKind.get(r.kind) ?? 0) + 1);
        let status: number;
        try {
          status = await send(mayu.url, r);
        } catch (err) {
          failures.push(`${r.kind}: ${r.method} ${r.path.slice(0, 120)}: ${(err as Error).message}`);
          continue;
        }
        if (status >= 500 || !r.expect.includes(status)) {
          failures.push(`${r.kind}: ${r.method} ${r.path.slice(0, 120)} ${JSON.stringify(r.headers).slice(0, 120)} body ${JSON.stringify(r.body?.slice(0, 120))}: got ${status}, expected ${r.expect.join('/')}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const seconds = (performance.now() - started) / 1000;
    console.log(`fuzz: ${requests.length} requests in ${seconds.toFixed(1)} s (seed ${SEED}); ${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ')}`);

    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} failures (replay with MAYU_FUZZ_SEED=${SEED})`);
    assert.equal(mayu.proc.exitCode, null, 'mayu is still running');
    assert.equal((await fetch(`${mayu.url}/`)).status, 200);
    const afterRun = await snapshot(mayu);
    assert.equal(afterRun.commits, before.commits, 'no commit');
    assert.deepEqual(afterRun.files, before.files, 'every conf.json unchanged');
    assert.deepEqual(afterRun.hosts, before.hosts, 'the hosts in memory unchanged');
    assert.deepEqual(mayu.logs.filter((l) => (l.level as number) >= 50), [], 'no error logged');
  });

  it('100 concurrent setters on one host: 100 commits, none lost; then the last acknowledged value wins', async () => {
    const serial = 'fz-run-1';
    const commits = gitCommitCount(mayu.clusterDir);
    const values = Array.from({ length: 100 }, (_, i) => `burst=${i}`);
    const answers = await Promise.all(values.map((v) =>
      fetch(`${mayu.url}/admin/host/${serial}/set_metadata`, { method: 'PUT', headers: bearer(ADMIN), body: JSON.stringify({ FleetMetadata: [v] }) })));
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [202]);
    assert.equal(gitCommitCount(mayu.clusterDir), commits + 100);

    // Each of the 100 commits holds one of the values, every value exactly once.
    const hashes = execFileSync('git', ['-C', mayu.clusterDir, 'log', '-100', '--format=%H %s'], { encoding: 'utf8' }).trim().split('\n');
    assert.ok(hashes.every((l) => l.endsWith(`${serial}: updated host metadata`)));
    const stored = hashes.map((l) => {
      const conf = execFileSync('git', ['-C', mayu.clusterDir, 'show', `${l.split(' ')[0]}:${serial}/conf.json`], { encoding: 'utf8' });
      return (JSON.parse(conf) as { FleetMetadata: string[] }).FleetMetadata[0]!;
    });
    assert.deepEqual([...stored].sort(), [...values].sort());
    const host = async () => (await (await fetch(`${mayu.url}/admin/host/${serial}`, { headers: bearer(ADMIN) })).json()) as { FleetMetadata: string[] };
    assert.deepEqual((await host()).FleetMetadata, [stored[0]], 'memory matches the newest commit');
    const onDisk = JSON.parse(await readFile(path.join(mayu.clusterDir, serial, 'conf.json'), 'utf8')) as { FleetMetadata: string[] };
    assert.deepEqual(onDisk.FleetMetadata, [stored[0]], 'conf.json matches the newest commit');

    // Sequential setters: each acknowledged one is what the next read sees.
    for (const v of ['after=1', 'after=2', 'after=3']) {
      const res = await fetch(`${mayu.url}/admin/host/${serial}/set_metadata`, { method: 'PUT', headers: bearer(ADMIN), body: JSON.stringify({ FleetMetadata: [v] }) });
      assert.equal(res.status, 202);
      assert.deepEqual((await host()).FleetMetadata, [v]);
    }
    assert.equal(gitCommitCount(mayu.clusterDir), commits + 103);
  });
});
