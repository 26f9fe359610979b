import assert from 'node:assert/strict';
import http from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { gitCommitCount } from './helpers/git.ts';
import { FIXTURES, hostData, macFor, reportAuth, startMayu, tempDir, writeText, type MayuProcess } from './helpers/mayu-process.ts';

// Registration limits and overload protection against a real server (README "Limits and
// overload"): refusals are quick 429/503 answers with Retry-After (also in the reason phrase and
// the body, for busybox wget), write nothing, and never touch known hosts.

const started: MayuProcess[] = [];
after(async () => {
  for (const m of started) await m.stop();
});

/** The latency signals off unless asked for: a test on a busy machine must not trip them by chance. */
async function mayuWithLimits(limits: string): Promise<MayuProcess> {
  const workDir = await tempDir();
  const signals = limits.includes('max_lag_ms_new') ? '' : '  max_lag_ms_new: 0\n  max_commit_ms_new: 0\n  max_busy_new: 0\n';
  const config = await writeText(path.join(workDir, 'config.yaml'), `${readFileSync(path.join(FIXTURES, 'config.yaml'), 'utf8')}\nlimits:\n${signals}${limits}\n`);
  const m = await startMayu({ workDir, config });
  started.push(m);
  return m;
}

interface Answer {
  status: number;
  reason: string;
  retryAfter: string | undefined;
  body: string;
}

/** A request from a chosen loopback address (Linux routes all of 127/8 to lo). */
function request(url: string, opts: { method?: string; from?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...opts.headers };
    if (opts.body !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(opts.body) });
    const req = http.request(url, { method: opts.method ?? 'GET', localAddress: opts.from ?? '127.0.0.1', headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reason: res.statusMessage ?? '', retryAfter: res.headers['retry-after'] as string | undefined, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const hostCount = async (m: MayuProcess) => ((await (await fetch(`${m.url}/admin/hosts`)).json()) as unknown[]).length;

function assertRefusal(a: Answer, status: 429 | 503, says: RegExp): void {
  assert.equal(a.status, status, a.body);
  assert.match(a.retryAfter ?? '', /^[1-9]\d*$/, 'Retry-After in whole seconds');
  // busybox wget prints only the status line of a refused request: the wait is in it too.
  assert.match(a.reason, new RegExp(`retry after ${a.retryAfter} s$`));
  assert.match(a.body, new RegExp(`retry after ${a.retryAfter} s`));
  assert.match(a.body, says);
}

test('past the per-source limit a new serial gets 429 with Retry-After and nothing is written; other sources and known hosts go on', async () => {
  const m = await mayuWithLimits('  new_hosts_per_source: {rate: 0.01, burst: 3}\n  new_hosts: {rate: 0}\n  exempt_sources: []');
  for (let i = 0; i < 3; i++) assert.equal((await request(`${m.url}/first-stage-script/src-a-${i}`, { from: '127.0.0.2' })).status, 200);
  const commits = gitCommitCount(m.clusterDir);

  const refused = await request(`${m.url}/first-stage-script/src-a-3`, { from: '127.0.0.2' });
  assertRefusal(refused, 429, /too many new machines from 127\.0\.0\.2: limit 0\.01\/s, burst 3; this machine was not registered/);
  assert.ok(Number(refused.retryAfter) >= 60, `one token per 100 s: Retry-After ${refused.retryAfter}`);
  // The final-config POST of an unknown serial is a registration too.
  const post = await request(`${m.url}/final-cloud-config.yaml`, { method: 'POST', from: '127.0.0.2', body: JSON.stringify(hostData('src-a-4', macFor(4))) });
  assertRefusal(post, 429, /from 127\.0\.0\.2/);
  assert.equal(gitCommitCount(m.clusterDir), commits, 'no commit for a refused registration');
  assert.equal(existsSync(path.join(m.clusterDir, 'src-a-3')), false);
  assert.equal(await hostCount(m), 3);

  // A known host from the same source is not a registration: its final config and reports go on.
  const known = await request(`${m.url}/final-cloud-config.yaml`, { method: 'POST', from: '127.0.0.2', body: JSON.stringify(hostData('src-a-0', macFor(0))) });
  assert.equal(known.status, 200, known.body);
  assert.equal((await request(`${m.url}/admin/host/src-a-0/set_installed`, { method: 'PUT', from: '127.0.0.2', headers: await reportAuth(m, 'src-a-0') })).status, 202);
  // Another source has its own bucket.
  assert.equal((await request(`${m.url}/first-stage-script/src-b-0`, { from: '127.0.0.3' })).status, 200);
});

test('past the overall limit every source gets 429 "from all sources"; nothing is written', async () => {
  const m = await mayuWithLimits('  new_hosts_per_source: {rate: 0}\n  new_hosts: {rate: 0.01, burst: 2}');
  assert.equal((await request(`${m.url}/first-stage-script/all-0`, { from: '127.0.0.2' })).status, 200);
  assert.equal((await request(`${m.url}/first-stage-script/all-1`, { from: '127.0.0.3' })).status, 200);
  const commits = gitCommitCount(m.clusterDir);
  const refused = await request(`${m.url}/first-stage-script/all-2`, { from: '127.0.0.4' });
  assertRefusal(refused, 429, /too many new machines from all sources: limit 0\.01\/s, burst 2/);
  assert.equal(gitCommitCount(m.clusterDir), commits);
  assert.equal(await hostCount(m), 2);
  // The known ones still get their scripts.
  assert.equal((await request(`${m.url}/first-stage-script/all-0`, { from: '127.0.0.4' })).status, 200);
});

test('past the in-flight bound a new registration gets 503 at once while a known host is served in the same moment', async () => {
  const m = await mayuWithLimits('  max_in_flight_new: 1\n  max_in_flight: 3\n  retry_after_seconds: 2');
  assert.equal((await request(`${m.url}/first-stage-script/known-0`)).status, 200);
  assert.equal((await request(`${m.url}/first-stage-script/known-1`)).status, 200);
  assert.equal((await request(`${m.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('known-1', macFor(1))) })).status, 200);
  const commits = gitCommitCount(m.clusterDir);

  // A request held in flight: a final-config POST whose body has not all arrived.
  const body = JSON.stringify(hostData('known-0', macFor(0)));
  let held!: http.ClientRequest;
  const heldAnswer = new Promise<number>((resolve, reject) => {
    held = http.request(`${m.url}/final-cloud-config.yaml`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    held.on('error', reject);
    held.write(body.slice(0, 10));
  });
  await new Promise((r) => setTimeout(r, 300));

  const t0 = performance.now();
  const refused = await request(`${m.url}/first-stage-script/new-1`);
  const refusedMs = performance.now() - t0;
  assertRefusal(refused, 503, /mayu is busy: 1 requests in flight \(new machines wait above 1\); this machine was not registered/);
  assert.ok(Number(refused.retryAfter) >= 2 && Number(refused.retryAfter) <= 4, `Retry-After ${refused.retryAfter} within [2, 4]`);
  assert.ok(refusedMs < 1000, `refused at once (${refusedMs.toFixed(0)} ms)`);
  // Same moment: the known host's boot script and its report are served.
  const auth = await reportAuth(m, 'known-1');
  const [boot, report] = await Promise.all([
    request(`${m.url}/ipxebootscript?serial=known-1&mac=&uuid=`),
    request(`${m.url}/admin/host/known-1/set_installed`, { method: 'PUT', headers: auth }),
  ]);
  assert.equal(boot.status, 200, boot.body);
  assert.equal(report.status, 202, report.body);
  assert.equal(gitCommitCount(m.clusterDir), commits + 1, 'the report is committed, the refused registration wrote nothing');
  assert.equal(existsSync(path.join(m.clusterDir, 'new-1')), false);

  held.end(body.slice(10));
  assert.equal(await heldAnswer, 200);
  // The bound is about load, not the serial: once the held request is done, the machine gets in.
  assert.equal((await request(`${m.url}/first-stage-script/new-1`)).status, 200);
});

test('past the higher bound every machine request gets 503, probes still answer', async () => {
  const m = await mayuWithLimits('  max_in_flight_new: 1\n  max_in_flight: 1');
  assert.equal((await request(`${m.url}/first-stage-script/known-0`)).status, 200);
  const body = JSON.stringify(hostData('known-0', macFor(0)));
  const held = http.request(`${m.url}/final-cloud-config.yaml`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
  const heldAnswer = new Promise<number>((resolve, reject) => {
    held.on('response', (res) => (res.resume(), res.on('end', () => resolve(res.statusCode ?? 0))));
    held.on('error', reject);
  });
  held.write(body.slice(0, 10));
  await new Promise((r) => setTimeout(r, 300));
  assertRefusal(await request(`${m.url}/ipxebootscript?serial=known-0&mac=&uuid=`), 503, /mayu is overloaded: 1 requests in flight \(limit 1\); nothing was done/);
  assert.equal((await request(`${m.url}/healthz`)).status, 200);
  held.end(body.slice(10));
  assert.equal(await heldAnswer, 200);
});

test('while changes take longer than max_commit_ms_new to be stored, a new registration gets 503; the signal fades once none come', async () => {
  const { LoadGate } = await import('../src/http/load-shedding.ts');
  const gate = new LoadGate({
    limits: { maxInFlightNew: 100, maxWriteQueueNew: 100, maxInFlight: 100, retryAfterSeconds: 2, maxLagMsNew: 0, maxCommitMsNew: 300 },
    writeQueueDepth: () => 0,
  });
  gate.start();
  try {
    const admit = () => gate.admitNewHost('10.0.3.17');
    admit();
    for (let i = 0; i < 30; i++) gate.observeCommit(1.5);
    assert.throws(admit, (err: Error & { status?: number }) => err.status === 503 && /changes take \d+ ms to be stored \(new machines wait above 300 ms\)/.test(err.message));
    // No change stored for a while: the average fades and new machines get in again.
    const until = Date.now() + 5000;
    for (;;) {
      try {
        admit();
        break;
      } catch (err) {
        if (Date.now() > until) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    gate.close();
  }
});

test('admission: machines that must wait (discovered, pending) are new machines for the limits; a refused one is not recorded', async () => {
  const m = await mayuWithLimits('  new_hosts_per_source: {rate: 0.01, burst: 2}\n  new_hosts: {rate: 0}\n  exempt_sources: []\nadmission:\n  mode: approve\n  retry_seconds: 20');
  const ipxe = (serial: string) => request(`${m.url}/ipxebootscript?serial=${serial}&mac=52-54-00-bb-00-01&uuid=x`, { from: '127.0.0.3' });
  const first = await ipxe('wait-1');
  assert.equal(first.status, 200, first.body);
  assert.match(first.body, /waits for an operator to approve it/);
  assert.equal((await request(`${m.url}/first-stage-script/wait-1`, { from: '127.0.0.3' })).status, 200, 'a pending machine asking again uses the second token');
  const commits = gitCommitCount(m.clusterDir);

  assertRefusal(await ipxe('wait-2'), 429, /too many new machines from 127\.0\.0\.3/);
  assertRefusal(await request(`${m.url}/first-stage-script/wait-3`, { from: '127.0.0.3' }), 429, /too many new machines from 127\.0\.0\.3/);
  assert.equal(gitCommitCount(m.clusterDir), commits, 'no admission record for a refused machine');
  const pending = (await (await fetch(`${m.url}/admin/pending`)).json()) as { Machines: { Serial: string }[] };
  assert.deepEqual(pending.Machines.map((p) => p.Serial), ['wait-1']);
  // Another source is not limited by this one's bucket.
  assert.equal((await request(`${m.url}/ipxebootscript?serial=wait-4&mac=52-54-00-bb-00-04&uuid=x`, { from: '127.0.0.4' })).status, 200);
});

test('while the event loop is busy more than max_busy_new of the time, a new registration gets 503; idle again, it gets in', async () => {
  const { LoadGate } = await import('../src/http/load-shedding.ts');
  const gate = new LoadGate({
    limits: { maxInFlightNew: 100, maxWriteQueueNew: 100, maxInFlight: 100, retryAfterSeconds: 2, maxLagMsNew: 0, maxCommitMsNew: 0, maxBusyNew: 0.6 },
    writeQueueDepth: () => 0,
  });
  gate.start();
  try {
    const admit = () => gate.admitNewHost('10.0.3.17');
    admit();
    // Work in slices of 40 ms with short gaps: the loop answers, but is busy ~90 % of the time.
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      const t = Date.now();
      while (Date.now() - t < 40);
      await new Promise((r) => setTimeout(r, 4));
    }
    assert.throws(admit, (err: Error & { status?: number }) => err.status === 503 && /event loop was busy \d+ % of the time \(new machines wait above 60 %\)/.test(err.message));
    await new Promise((r) => setTimeout(r, 1500));
    admit();
  } finally {
    gate.close();
  }
});
