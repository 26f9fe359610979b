// Small helpers shared by the HTTP and start-up benches: process stats from /proc, free ports,
// a cleanup list run on exit and on Ctrl-C, a bounded HTTP readiness poll, and a text table.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { mayuServeArgs, ROOT } from '../test/helpers/mayu-process.ts';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** VmRSS of a process in MB (from /proc/<pid>/status), or NaN when it is gone. */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? +(Number(m[1]) / 1024).toFixed(1) : NaN;
  } catch {
    return NaN;
  }
}

/** CPU seconds (user + system) used so far by a process, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}

/**
 * CPU seconds used by this process and by its children that have exited and been waited for
 * (utime + stime + cutime + cstime of /proc/self/stat): a VM or server this process started counts
 * once it is gone.
 */
export function selfAndChildrenCpuSeconds(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}

/** Direct children of a process (needs /proc/<pid>/task/<tid>/children). */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `url` until it answers 2xx; throws after `timeoutMs`. */
export async function waitHttp(url: string, timeoutMs = 30_000, method = 'GET'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url, { method });
      await res.arrayBuffer();
      if (res.ok) return;
      last = `status ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms: ${last}`);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** Percentile (0..100) of the first `n` values of `xs` (sorted in place). */
export function percentile(xs: Float64Array, n: number, p: number): number {
  if (n === 0) return NaN;
  const s = xs.subarray(0, n).sort();
  return s[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))]!;
}

export const round = (x: number, digits = 2) => (Number.isFinite(x) ? +x.toFixed(digits) : x);

/** Plain text table: header row, then rows; numbers right-aligned. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  const line = (r: string[], i: number) => r.map((v, c) => (i > 0 && typeof rows[i - 1]![c] === 'number' ? v.padStart(widths[c]!) : v.padEnd(widths[c]!))).join('  ');
  return cells.map(line).join('\n');
}

/** Cleanup steps (kill by PID, remove temp dirs), run once, in reverse order, also on Ctrl-C. */
export class Cleanup {
  private steps: { name: string; fn: () => unknown }[] = [];
  private pidsToKill = new Set<number>();
  private done = false;

  constructor() {
    // Last resort on an unexpected exit: SIGKILL what is still registered, by PID.
    process.on('exit', () => {
      for (const pid of this.pidsToKill) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      }
    });
    for (const sig of ['SIGINT', 'SIGTERM'] as const) {
      process.once(sig, () => {
        void this.run().finally(() => process.exit(130));
      });
    }
  }

  add(name: string, fn: () => unknown): void {
    this.steps.push({ name, fn });
  }

  /** Registers a process PID to SIGKILL if the bench exits before it was stopped properly. */
  watchPid(pid: number | undefined): void {
    if (pid) this.pidsToKill.add(pid);
  }

  unwatchPid(pid: number | undefined): void {
    if (pid) this.pidsToKill.delete(pid);
  }

  async run(): Promise<void> {
    if (this.done) return;
    this.done = true;
    for (const step of this.steps.reverse()) {
      try {
        await step.fn();
      } catch (err) {
        console.error(`cleanup ${step.name}: ${(err as Error).message}`);
      }
    }
  }
}

/** Waits for a child to exit; SIGTERM first, SIGKILL after `graceMs`. */
export async function stopChild(proc: ChildProcess, graceMs = 5000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export interface QuietMayu {
  url: string;
  port: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/**
 * The real `mayu serve`, same flags as test/helpers/mayu-process.ts startMayu, but with its stdout
 * (the JSON request log) going to /dev/null instead of a pipe the bench reads. The port is
 * chosen here (no log line to read it from); ready once GET / answers.
 */
export async function startMayuQuiet(opts: { workDir: string; config?: string; imagesDir?: string; nodeArgs?: string[] }): Promise<QuietMayu> {
  const { workDir } = opts;
  const port = await freePort();
  const args = [...(opts.nodeArgs ?? []), ...mayuServeArgs({ workDir, config: opts.config, imagesDir: opts.imagesDir, port })];
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const url = `http://127.0.0.1:${port}`;
  const died = new Promise<never>((_, reject) => proc.once('exit', (code) => reject(new Error(`mayu exited with ${code}:\n${stderr}`))));
  died.catch(() => {});
  try {
    await Promise.race([waitHttp(`${url}/`), died]);
  } catch (err) {
    await stopChild(proc);
    throw err;
  }
  return { url, port, proc, stop: () => stopChild(proc) };
}

/** CPU seconds all CPUs of the machine have been busy (user, nice, system, irq, softirq, steal). */
export function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return ((f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0)) / 100;
}

/**
 * Other work on the machine skews every figure here (client and server share its CPUs). Waits,
 * at most `maxSeconds`, until the machine was less than `busyCores` busy for two 1 s samples in
 * a row (this process is idle meanwhile); returns how busy the last sample was and whether it
 * was quiet.
 */
export async function waitForQuiet(maxSeconds = 300, busyCores = 0.2): Promise<{ quiet: boolean; waitedSeconds: number; busyCores: number }> {
  const t0 = Date.now();
  let calm = 0;
  let busy = NaN;
  while (true) {
    const b0 = machineBusySeconds();
    const w0 = performance.now();
    await sleep(1000);
    busy = round((machineBusySeconds() - b0) / ((performance.now() - w0) / 1000), 2);
    calm = busy < busyCores ? calm + 1 : 0;
    const waitedSeconds = Math.round((Date.now() - t0) / 1000);
    if (calm >= 2) return { quiet: true, waitedSeconds, busyCores: busy };
    if (waitedSeconds >= maxSeconds) return { quiet: false, waitedSeconds, busyCores: busy };
    if (calm === 0 && waitedSeconds % 30 < 1) console.error(`waiting for a quiet machine: ${busy} cores busy`);
  }
}

/** Runs a bench's main, sets a failing exit code on error, and always stops what it started. */
export async function runBench(main: () => Promise<void>, cleanup: Cleanup): Promise<void> {
  try {
    await main();
  } catch (err) {
    console.error(err);
    process.exitCode = 1;
  } finally {
    await cleanup.run();
  }
}
