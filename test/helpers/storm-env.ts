import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { mayuServeArgs, ROOT } from './mayu-process.ts';

// A work dir and a lean `mayu serve` process for storms of many machines (boot-storm bench,
// crash loop). Unlike startMayu, the request log is not kept: at 60 000 requests, parsing every
// line in the driving process would steal CPU from the server on a 2-core machine.

/** The profile with a quantity in the storm config: the checks assert it is never exceeded. */
export const PROFILE_QUANTITIES: Readonly<Record<string, number>> = { core: 3 };
/** Every OS image version a host of the storm config can get (profile core, then the default). */
export const IMAGE_VERSIONS = ['835.13.0', '1010.5.0'] as const;

export interface StormEnv {
  workDir: string;
  clusterDir: string;
  config: string;
  imagesDir: string;
}

/** 10.10.0.1 plus `count - 1`, as dotted quad. */
function rangeEnd(count: number): string {
  const end = ((10 << 24) | (10 << 16)) + count; // 10.10.0.0 + count: start is 10.10.0.1
  return [24, 16, 8, 0].map((s) => (end >>> s) & 255).join('.');
}

/**
 * A fresh temp work dir: config.yaml (the test fixture's schema and profiles, with an ip_range of
 * at least machines + 100 addresses, 4094 by default) and a tiny fake install image per version,
 * so the installers' HEAD of their image answers 200.
 */
export async function prepareStormEnv(machines: number, prefix = 'mayu-storm-'): Promise<StormEnv> {
  const workDir = await mkdtemp(path.join(tmpdir(), prefix));
  const addresses = Math.max(4094, machines + 100);
  // bootstrap_range stays 10.0.3.10-30, outside 10.10.x.x; subnet_size is cosmetic here.
  const config = readFileSync(path.join(ROOT, 'test/fixtures/config.yaml'), 'utf8')
    .replace(/ip_range: \{[^}]*\}/, `ip_range: {start: 10.10.0.1, end: ${rangeEnd(addresses)}}`)
    .replace(/^default_coreos_version: .*$/m, `default_coreos_version: ${IMAGE_VERSIONS[1]}`);
  if (!config.includes('start: 10.10.0.1')) throw new Error('fixture config.yaml changed: ip_range not found');
  const configFile = path.join(workDir, 'config.yaml');
  await writeFile(configFile, config);
  const imagesDir = path.join(workDir, 'images');
  for (const version of IMAGE_VERSIONS) {
    await mkdir(path.join(imagesDir, version), { recursive: true });
    await writeFile(path.join(imagesDir, version, 'install_image.bin.bz2'), Buffer.from(`BZh9 fake image ${version}\n`));
  }
  return { workDir, clusterDir: path.join(workDir, 'clusters'), config: configFile, imagesDir };
}

export interface MayuServer {
  url: string;
  port: number;
  pid: number;
  proc: ChildProcess;
  /** Milliseconds from spawn to "mayu listening" (tsx compile + repo load). */
  startMs: number;
  /** The last lines of stdout/stderr, for a failure message. */
  tail(): string;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

/**
 * `mayu serve` on the env's work dir, 127.0.0.1, port 0; rejects with its output if it exits first.
 * `logFile`: mayu's stdout (its request log) goes to this file instead of a pipe to this
 * process. Through a pipe, mayu's log writes (synchronous on Linux) wait whenever this process is
 * too busy to read them: the simulator's own load would stall the server it measures.
 */
export async function startMayuServer(env: StormEnv, extraArgs: string[] = [], opts: { logFile?: string } = {}): Promise<MayuServer> {
  const { workDir } = env;
  const args = mayuServeArgs({ workDir, config: env.config, clusterDir: env.clusterDir, imagesDir: env.imagesDir, extra: extraArgs });
  const t0 = performance.now();
  const logFd = opts.logFile === undefined ? undefined : openSync(opts.logFile, 'w');
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', logFd ?? 'pipe', 'pipe'] });
  if (logFd !== undefined) closeSync(logFd);
  const lines: string[] = [];
  const keep = (line: string) => {
    lines.push(line);
    if (lines.length > 40) lines.shift();
  };
  createInterface({ input: proc.stderr! }).on('line', keep);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const listening = (line: string): number | undefined => {
    // Cheap test first: only the start-up line is parsed.
    if (!line.includes('mayu listening')) return undefined;
    try {
      return (JSON.parse(line) as { port: number }).port;
    } catch {
      return undefined;
    }
  };
  const port = await new Promise<number>((resolve, reject) => {
    proc.once('exit', (code, signal) => reject(new Error(`mayu exited (${code ?? signal}) before listening:\n${lines.join('\n')}`)));
    if (opts.logFile === undefined) {
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        keep(line);
        const p = listening(line);
        if (p !== undefined) resolve(p);
      });
      return;
    }
    const file = opts.logFile;
    const poll = setInterval(() => {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const p = listening(line);
        if (p !== undefined) {
          clearInterval(poll);
          resolve(p);
          return;
        }
      }
    }, 50);
    proc.once('exit', () => clearInterval(poll));
  });
  const startMs = performance.now() - t0;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: proc.pid!,
    proc,
    startMs,
    tail: () => lines.join('\n'),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
    async kill9() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

/** Peak and current resident set in bytes, and CPU seconds so far, of a live process (Linux /proc). */
export function processStats(pid: number): { peakRss: number; rss: number; cpuUserSeconds: number; cpuSystemSeconds: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  // Fields 14 and 15 of /proc/<pid>/stat, after the parenthesised command name; USER_HZ is 100 on Linux.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { peakRss: kb('VmHWM'), rss: kb('VmRSS'), cpuUserSeconds: Number(fields[11]) / 100, cpuSystemSeconds: Number(fields[12]) / 100 };
}
