import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { ProcessSupervisor, restartDelay, StartError, type SupervisorOptions } from '../src/pxe/process-supervisor.ts';
import { captureLogger } from './helpers/log-capture.ts';

// The supervisor with /bin/sh scripts standing in for dnsmasq: start failures, restarts with
// backoff, deferred SIGHUP and SIGTERM → SIGKILL, in milliseconds and without root.

const FAST = { initialMs: 20, maxMs: 100, stableMs: 10_000 };

// Every supervisor a test makes is stopped after it, also when an assertion failed.
const made: ProcessSupervisor[] = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((s) => s.stop()));
});

function shSupervisor(script: string, extra: Partial<SupervisorOptions> = {}) {
  const { logger, lines } = captureLogger();
  const supervisor = new ProcessSupervisor({
    name: 'fake', binary: '/bin/sh', args: ['-c', script], logger,
    isReady: (l) => l === 'ready', isStartError: (l) => l.startsWith('cannot read'), backoff: FAST, ...extra,
  });
  made.push(supervisor);
  return { supervisor, lines };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(check: () => boolean, ms = 3000): Promise<void> {
  for (const end = Date.now() + ms; !check(); await new Promise((r) => setTimeout(r, 10))) {
    if (Date.now() > end) throw new Error('condition not met in time');
  }
}

describe('process supervisor', () => {
  it('backoff doubles per failure in a row up to the cap', () => {
    assert.deepEqual([0, 1, 2, 3, 10].map((n) => restartDelay(n, { initialMs: 250, maxMs: 30_000, stableMs: 1 })), [250, 500, 1000, 2000, 30_000]);
  });

  it('a missing binary fails start, naming it', async () => {
    const { logger } = captureLogger();
    const s = new ProcessSupervisor({ name: 'dnsmasq', binary: '/nonexistent/dnsmasq', args: [], logger, isReady: () => true });
    await assert.rejects(s.start(), (err: Error) => err instanceof StartError && /dnsmasq \(\/nonexistent\/dnsmasq\) not found/.test(err.message));
  });

  it('a child that exits at start fails start with its exit code and output', async () => {
    const { supervisor, lines } = shSupervisor('echo "dnsmasq: unknown interface nope0" >&2; exit 2');
    await assert.rejects(supervisor.start(), /exited at start \(exit code 2\):\ndnsmasq: unknown interface nope0/);
    assert.ok(lines.some((l) => l.msg === 'dnsmasq: unknown interface nope0'), 'output is logged too');
    assert.equal(supervisor.pid, undefined);
  });

  it('an error line at start fails start and kills the child', async () => {
    const { supervisor } = shSupervisor('echo $$ >&2; echo "cannot read /x" >&2; while :; do sleep 0.05; done');
    const err = await supervisor.start().then(() => undefined, (e: Error) => e);
    assert.match(String(err?.message), /reported an error at start:\n\d+\ncannot read \/x/);
    const pid = Number(/:\n(\d+)\n/.exec(err!.message)![1]);
    assert.equal(alive(pid), false);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(supervisor.restarts, 0, 'a failed start is not restarted');
    assert.equal(supervisor.pid, undefined);
  });

  it('restarts a child that dies, with growing delays, and counts the restarts', async () => {
    const { supervisor, lines } = shSupervisor('echo ready >&2; sleep 0.02; exit 3');
    await supervisor.start();
    await until(() => supervisor.restarts >= 3);
    await supervisor.stop();
    const restarting = lines.filter((l) => String(l.msg).includes('restarting in'));
    assert.deepEqual(restarting.slice(0, 3).map((l) => [l.code, l.delayMs, l.restarts]), [[3, 20, 1], [3, 40, 2], [3, 80, 3]]);
    assert.match(String(restarting[0]!.msg), /^fake exit code 3: restarting in 20 ms$/);
    const count = supervisor.restarts;
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(supervisor.restarts, count, 'no restart after stop');
  });

  it('a SIGKILLed child comes back with a new PID', async () => {
    const { supervisor, lines } = shSupervisor('echo ready >&2; while :; do sleep 0.05; done');
    await supervisor.start();
    const first = supervisor.pid!;
    process.kill(first, 'SIGKILL');
    await until(() => lines.some((l) => l.msg === 'fake restarted'));
    assert.notEqual(supervisor.pid, first);
    assert.equal(supervisor.restarts, 1);
    assert.ok(lines.some((l) => l.signal === 'SIGKILL' && l.restarts === 1));
    await supervisor.stop();
  });

  it('holds a SIGHUP asked for during start until the child is ready', async () => {
    // Without the hold, the SIGHUP would arrive before the trap and kill the shell.
    const { supervisor, lines } = shSupervisor('sleep 0.2; trap "echo hup >&2" HUP; echo ready >&2; while :; do sleep 0.02; done');
    const started = supervisor.start();
    await new Promise((r) => setTimeout(r, 50));
    supervisor.reload();
    await started;
    await until(() => lines.some((l) => l.msg === 'hup'));
    assert.equal(supervisor.reloads, 1);
    assert.equal(supervisor.restarts, 0);
    await supervisor.stop();
  });

  it('stop sends SIGTERM, then SIGKILL to a child that ignores it, and waits for the exit', async () => {
    const { supervisor, lines } = shSupervisor('trap "" TERM; echo ready >&2; while :; do sleep 0.02; done', { stopTimeoutMs: 200 });
    await supervisor.start();
    const pid = supervisor.pid!;
    const t0 = Date.now();
    await supervisor.stop();
    assert.ok(Date.now() - t0 >= 190);
    assert.equal(alive(pid), false);
    assert.ok(lines.some((l) => String(l.msg).includes('ignored SIGTERM: SIGKILL')));
    assert.equal(supervisor.restarts, 0);
  });
});
