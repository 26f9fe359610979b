import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { AuditPusher, type AuditPushStatus } from '../src/store/audit-push.ts';
import { git, gitCommitCount, gitCommitCountReaching } from './helpers/git.ts';
import { FIXTURES, NO_OVERLOAD_GATES_YAML, startMayu, tempDir, type MayuProcess } from './helpers/mayu-process.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The value of one series line `name{labels} value` of a Prometheus text answer; undefined if absent. */
function series(text: string, nameAndLabels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${nameAndLabels} `));
  return line === undefined ? undefined : Number(line.slice(nameAndLabels.length + 1));
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('AuditPusher (fake git)', () => {
  it('keeps at most one push in flight and pushes what landed meanwhile in the next one', async () => {
    const dir = await tempDir();
    await mkdir(path.join(dir, '.git', 'refs', 'heads'), { recursive: true });
    await writeFile(path.join(dir, '.git', 'HEAD'), 'ref: refs/heads/master\n');
    const setHead = (n: number) => writeFile(path.join(dir, '.git', 'refs', 'heads', 'master'), `${String(n).padStart(40, '0')}\n`);
    let running = 0;
    let maxRunning = 0;
    const pushed: string[] = [];
    const pusher = new AuditPusher({
      dir, url: '/remote', branch: 'audit', intervalMs: 0, maxBackoffMs: 1000, timeoutMs: 5000, logger: pino({ level: 'silent' }),
      runGit: async (args) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await sleep(100);
        pushed.push(args.at(-1)!);
        running--;
      },
    });
    await setHead(1);
    pusher.notify();
    await sleep(20); // the first push is running now
    for (let i = 2; i <= 30; i++) {
      await setHead(i);
      pusher.notify();
    }
    await until('idle', () => (pusher.status().state === 'idle' ? true : undefined));
    assert.equal(maxRunning, 1);
    assert.deepEqual(pushed, [`${'1'.padStart(40, '0')}:refs/heads/audit`, `${'30'.padStart(40, '0')}:refs/heads/audit`]);
    assert.equal(pusher.status().lastPushedCommit, '30'.padStart(40, '0'));
    await pusher.close();
  });

  it('retries a failing push with growing delays, reports the failure, then recovers', async () => {
    const dir = await tempDir();
    await mkdir(path.join(dir, '.git'), { recursive: true });
    await writeFile(path.join(dir, '.git', 'HEAD'), `${'a'.repeat(40)}\n`);
    const attempts: number[] = [];
    let fail = true;
    const pusher = new AuditPusher({
      dir, url: '/remote', branch: 'master', intervalMs: 50, maxBackoffMs: 400, timeoutMs: 5000, logger: pino({ level: 'silent' }),
      runGit: async () => {
        attempts.push(Date.now());
        if (fail) throw new Error('fatal: could not read from remote repository');
      },
    });
    pusher.notify();
    const failing: AuditPushStatus = await until('4 failures', () => (pusher.status().consecutiveFailures >= 4 ? pusher.status() : undefined));
    assert.equal(failing.state, 'failing');
    assert.match(failing.lastError!, /could not read from remote/);
    assert.equal(failing.lastPushedCommit, undefined);
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!);
    assert.ok(gaps[2]! >= 150 && gaps[2]! > gaps[0]!, `delays grow: ${gaps.join(', ')}`);
    fail = false;
    const ok = await until('recovery', () => (pusher.status().state === 'idle' ? pusher.status() : undefined));
    assert.equal(ok.consecutiveFailures, 0);
    assert.equal(ok.lastPushedCommit, 'a'.repeat(40));
    await pusher.close();
  });
});

describe('audit push to a local bare repo (native git)', () => {
  const running: MayuProcess[] = [];
  after(async () => {
    for (const m of running) await m.stop();
  });
  const startWith = async (url: string) => {
    const workDir = await tempDir();
    const config = path.join(workDir, 'config.yaml');
    const push = { url, branch: 'audit', interval_ms: 100, max_backoff_ms: 500 };
    await writeFile(config, `${await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8')}\naudit_push: ${JSON.stringify(push)}\n${NO_OVERLOAD_GATES_YAML}`);
    const m = await startMayu({ workDir, config });
    running.push(m);
    return m;
  };
  const status = async (m: MayuProcess) => (await (await fetch(`${m.url}/admin/audit-push`)).json()) as AuditPushStatus;
  const head = (m: MayuProcess) => git(m.clusterDir, 'rev-parse', 'HEAD').trim();
  const pushedUpToHead = (m: MayuProcess) => async () => {
    const s = await status(m);
    return s.lastPushedCommit === head(m) && s.state === 'idle' ? s : undefined;
  };

  it('pushes the commits to the remote branch; the bare repo shows them', async () => {
    const bare = path.join(await tempDir(), 'audit.git');
    execFileSync('git', ['init', '--quiet', '--bare', bare]);
    const m = await startWith(bare);
    for (let i = 1; i <= 3; i++) assert.equal((await fetch(`${m.url}/first-stage-script/ap-${i}`)).status, 200);
    await until('push of HEAD', pushedUpToHead(m));
    const remote = execFileSync('git', ['--git-dir', bare, 'log', '--format=%H %s', 'audit'], { encoding: 'utf8' });
    assert.equal(remote, git(m.clusterDir, 'log', '--format=%H %s', 'HEAD'));
    assert.match(remote, /ap-3: host created/);
    execFileSync('git', ['--git-dir', bare, 'fsck', '--full', '--strict']);
  });

  it('pushes a burst whose last changes reach git after their answers (acknowledged from the journal)', async () => {
    const bare = path.join(await tempDir(), 'audit.git');
    execFileSync('git', ['init', '--quiet', '--bare', bare]);
    const m = await startWith(bare);
    const before = gitCommitCount(m.clusterDir);
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => fetch(`${m.url}/first-stage-script/burst-${i}`)));
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [200]);
    assert.equal(await gitCommitCountReaching(m.clusterDir, before + 60 * 5) - before, 60 * 5);
    await until('push of HEAD', pushedUpToHead(m));
    assert.equal(execFileSync('git', ['--git-dir', bare, 'rev-parse', 'audit'], { encoding: 'utf8' }).trim(), head(m));
  });

  it('with the remote missing, provisioning still works and the status shows the failure; then it recovers', async () => {
    const bare = path.join(await tempDir(), 'later.git');
    const m = await startWith(bare);
    for (let i = 1; i <= 2; i++) assert.equal((await fetch(`${m.url}/first-stage-script/down-${i}`)).status, 200);
    const failing = await until('a failure', async () => {
      const s = await status(m);
      return s.consecutiveFailures >= 2 ? s : undefined;
    });
    assert.equal(failing.state, 'failing');
    assert.match(failing.lastError!, /later\.git/);
    await m.waitForLog((e) => e.msg === 'audit push failed, will retry');
    assert.equal((await fetch(`${m.url}/first-stage-script/down-3`)).status, 200, 'still provisioning');

    // Visible in /readyz (still 200: never blocking provisioning) and /metrics.
    const readyz = await fetch(`${m.url}/readyz`);
    assert.equal(readyz.status, 200, 'a failing push does not make mayu unready');
    const ready = (await readyz.json()) as { ready: boolean; reasons: string[]; warnings: string[]; auditPush: Record<string, unknown> };
    assert.equal(ready.ready, true);
    assert.deepEqual(ready.reasons, []);
    assert.equal(ready.warnings.length, 1);
    assert.match(ready.warnings[0]!, /^audit push failing \(\d+ consecutive failures, last success none since start\); provisioning is not affected/);
    assert.ok(['failing', 'pushing'].includes(String(ready.auditPush['state'])), 'failing, or retrying');
    assert.ok(Number(ready.auditPush['consecutiveFailures']) >= 2);
    assert.equal(ready.auditPush['lastSuccessAt'], null);
    assert.ok(!JSON.stringify(ready).includes('later.git'), 'the open /readyz shows neither the URL nor git\'s message');
    let metrics = await (await fetch(`${m.url}/metrics`)).text();
    assert.equal(series(metrics, 'mayu_audit_push_failing'), 1);
    assert.ok(series(metrics, 'mayu_audit_push_consecutive_failures')! >= 2);
    assert.equal(series(metrics, 'mayu_audit_push_last_success_timestamp_seconds'), 0);

    execFileSync('git', ['init', '--quiet', '--bare', bare]);
    const ok = await until('recovery', pushedUpToHead(m));
    assert.equal(ok.consecutiveFailures, 0);
    assert.match(execFileSync('git', ['--git-dir', bare, 'log', '--format=%s', 'audit'], { encoding: 'utf8' }), /down-3: host created/);
    await m.waitForLog((e) => e.msg === 'audit push recovered');
    const recovered = (await (await fetch(`${m.url}/readyz`)).json()) as { warnings: string[]; auditPush: Record<string, unknown> };
    assert.deepEqual(recovered.warnings, []);
    assert.equal(recovered.auditPush['lastSuccessAt'], ok.lastSuccessAt);
    metrics = await (await fetch(`${m.url}/metrics`)).text();
    assert.equal(series(metrics, 'mayu_audit_push_failing'), 0);
    assert.equal(series(metrics, 'mayu_audit_push_consecutive_failures'), 0);
    assert.equal(series(metrics, 'mayu_audit_push_last_success_timestamp_seconds'), Date.parse(ok.lastSuccessAt!) / 1000);
  });

  it('answers 404 on /admin/audit-push when no audit_push is configured', async () => {
    const m = await startMayu();
    running.push(m);
    const res = await fetch(`${m.url}/admin/audit-push`);
    assert.equal(res.status, 404);
    assert.match(await res.text(), /no audit push is configured/);
    const ready = (await (await fetch(`${m.url}/readyz`)).json()) as Record<string, unknown>;
    assert.equal(ready.ready, true);
    assert.equal('auditPush' in ready, false, 'no auditPush field');
  });
});
