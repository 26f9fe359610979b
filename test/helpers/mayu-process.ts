import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { reportToken } from '../../src/core/tokens.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const FIXTURES = path.join(ROOT, 'test/fixtures');
/** How long stop() waits for mayu to exit after SIGTERM (a clean stop merges packs: seconds). */
const STOP_TIMEOUT_MS = 120_000;
/**
 * A config's `limits:` block with the overload gates for new machines off: for tests whose burst
 * of registrations at once tests something else (the store, the audit push), not the gates
 * (test/limits-registration.test.ts), which would answer part of it 503 on a busy machine.
 */
export const NO_OVERLOAD_GATES_YAML = '\nlimits:\n  max_in_flight_new: 1000\n  max_write_queue_new: 10000\n  max_lag_ms_new: 0\n  max_commit_ms_new: 0\n  max_busy_new: 0\n';

export interface MayuProcess {
  url: string;
  port: number;
  /** https URL of the TLS port, when mayu was started with one. */
  tlsUrl?: string;
  workDir: string;
  clusterDir: string;
  /** dnsmasq's conf, hostsfile, lease and pid files (only written with `dnsmasq`). */
  runDir: string;
  proc: ChildProcess;
  /** Every log line so far, parsed. */
  logs: Record<string, unknown>[];
  /** The first log line (parsed) from now on, or already seen, that `match` accepts. */
  waitForLog(match: (entry: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

export interface StartOptions {
  workDir?: string;
  config?: string;
  templatesDir?: string;
  imagesDir?: string;
  args?: string[];
  /** Extra environment variables for the mayu process (e.g. MAYU_ADMIN_TOKEN). */
  env?: Record<string, string>;
  /** dnsmasq binary to run (config network.pxe); default --no-dnsmasq. */
  dnsmasq?: string;
  /** Command prefix, e.g. ['ip', 'netns', 'exec', ns]: it must exec node (so proc.pid is mayu). */
  wrap?: string[];
  /** Default 127.0.0.1. */
  bindAddress?: string;
}

export async function tempDir(prefix = 'mayu-test-'): Promise<string> {
  return mkdtemp(path.join(tmpdir(), prefix));
}

/** glibc settings mayu runs with, as bin/mayu and package.json's start script give them (the environment's own win). */
export const MAYU_MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2', MALLOC_MMAP_THRESHOLD_: '131072' };

/** Node flags mayu runs with, as package.json's start script and bin/mayu give them. */
export const MAYU_NODE_FLAGS = [
  '--max-semi-space-size=8',
  '--heap-growing-percent=20',
  // Benches: MAYU_CPU_PROFILE_DIR=<dir> writes mayu's CPU profile there when it stops.
  ...(process.env.MAYU_CPU_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.MAYU_CPU_PROFILE_DIR}`] : []),
];

/**
 * node arguments for `mayu serve` on 127.0.0.1 with everything under `workDir` (clusters/,
 * images/, profiles/, tftproot/, run/). Port 0 unless given. No dnsmasq unless `dnsmasq` names
 * the binary: the fixture config has network.pxe true with an interface that does not exist.
 */
export function mayuServeArgs(o: {
  workDir: string; config?: string; clusterDir?: string; imagesDir?: string; port?: number; extra?: string[]; dnsmasq?: string; bindAddress?: string;
}): string[] {
  return [
    ...MAYU_NODE_FLAGS, '--import', 'tsx', path.join(ROOT, 'src/cli/mayu.ts'), 'serve',
    '--config', o.config ?? path.join(FIXTURES, 'config.yaml'),
    '--profiles-dir', path.join(o.workDir, 'profiles'),
    '--cluster-directory', o.clusterDir ?? path.join(o.workDir, 'clusters'),
    '--run-dir', path.join(o.workDir, 'run'),
    ...(o.dnsmasq ? ['--dnsmasq', o.dnsmasq] : ['--no-dnsmasq']),
    '--images-cache-dir', o.imagesDir ?? path.join(o.workDir, 'images'),
    '--tftproot', path.join(o.workDir, 'tftproot'),
    '--http-port', String(o.port ?? 0),
    '--http-bind-address', o.bindAddress ?? '127.0.0.1',
    '--report-key-file', path.join(o.workDir, 'report-key'),
    ...(o.extra ?? []),
  ];
}

/** The real `mayu serve` as a child process on 127.0.0.1 (or bindAddress), port 0; resolves once it listens. */
export async function startMayu(opts: StartOptions = {}): Promise<MayuProcess> {
  const workDir = opts.workDir ?? (await tempDir());
  const clusterDir = path.join(workDir, 'clusters');
  const runDir = path.join(workDir, 'run');
  const bindAddress = opts.bindAddress ?? '127.0.0.1';
  const args = mayuServeArgs({
    workDir,
    config: opts.config,
    imagesDir: opts.imagesDir,
    dnsmasq: opts.dnsmasq,
    bindAddress,
    extra: [...(opts.templatesDir ? ['--templates-dir', opts.templatesDir] : []), ...(opts.args ?? [])],
  });
  const [command, ...prefix] = [...(opts.wrap ?? []), process.execPath];
  const proc = spawn(command!, [...prefix, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...MAYU_MALLOC_ENV, ...process.env, ...opts.env } });
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<{ match: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }>();
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  let tlsPort: number | undefined;
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout! });
    lines.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        for (const w of waiters) if (w.match(entry)) (waiters.delete(w), w.resolve(entry));
        if (entry.msg === 'mayu listening') {
          tlsPort = entry.tlsPort as number | undefined;
          resolve(entry.port as number);
        }
      } catch {
        logs.push({ raw: line });
      }
    });
    proc.once('exit', (code) => reject(new Error(`mayu exited with ${code} before listening:\n${stderr}`)));
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    url: `http://${bindAddress}:${port}`,
    port,
    tlsUrl: tlsPort === undefined ? undefined : `https://127.0.0.1:${tlsPort}`,
    workDir,
    clusterDir,
    runDir,
    proc,
    logs,
    waitForLog(match, timeoutMs = 10_000) {
      const seen = logs.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = { match, resolve: (e: Record<string, unknown>) => (clearTimeout(timer), resolve(e)) };
        const timer = setTimeout(() => (waiters.delete(waiter), reject(new Error(`no matching mayu log line in ${timeoutMs} ms`))), timeoutMs);
        waiters.add(waiter);
      });
    },
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      // A mayu that does not stop is a failure, not a test run hanging until CI's time limit.
      let timer: NodeJS.Timeout | undefined;
      const hung = await Promise.race([
        exited.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), STOP_TIMEOUT_MS))),
      ]);
      clearTimeout(timer);
      if (hung) {
        proc.kill('SIGKILL');
        await exited;
        throw new Error(`mayu (pid ${proc.pid}) did not exit within ${STOP_TIMEOUT_MS / 1000} s of SIGTERM; killed`);
      }
    },
    async kill9() {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * Runs `mayu serve` expecting it to refuse to start; returns its exit code and stderr. Runs no
 * dnsmasq unless `args` name one with --dnsmasq; `wrap` as in StartOptions.
 */
export async function mayuFailsToStart(args: string[], env: Record<string, string> = {}, opts: { wrap?: string[] } = {}): Promise<{ code: number | null; stderr: string }> {
  const dnsmasq = args.includes('--dnsmasq') ? [] : ['--no-dnsmasq'];
  const [command, ...prefix] = [...(opts.wrap ?? []), process.execPath];
  const mayuArgs = [...MAYU_NODE_FLAGS, '--import', 'tsx', path.join(ROOT, 'src/cli/mayu.ts'), 'serve', '--http-port', '0', '--http-bind-address', '127.0.0.1', ...dnsmasq, ...args];
  const proc = spawn(command!, [...prefix, ...mayuArgs], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...MAYU_MALLOC_ENV, ...process.env, ...env } });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((r) => proc.once('exit', r));
  return { code, stderr };
}

export async function writeText(file: string, text: string): Promise<string> {
  await writeFile(file, text);
  return file;
}

/** HostData as the first-stage script posts it. */
export function hostData(serial: string, mac: string, nic = 'ens3') {
  return { Serial: serial, NetDevs: [{ Name: nic, MacAddress: mac }], IPMIAddress: '', ConnectedNIC: nic };
}

export function macFor(i: number): string {
  return `52:54:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
}

/** The report token a machine finds in its rendered first-stage script. */
export const reportTokenIn = (script: string): string | undefined => /^REPORT_TOKEN='([0-9a-f]{64})'$/m.exec(script)?.[1];

/**
 * The Authorization header a machine sends on set_installed / boot_complete: its report token,
 * derived as mayu does from the key in the server's work dir and the host's MachineID.
 */
export async function reportAuth(m: { url: string; workDir: string }, serial: string): Promise<Record<string, string>> {
  const key = Buffer.from((await readFile(path.join(m.workDir, 'report-key'), 'utf8')).trim(), 'hex');
  const res = await fetch(`${m.url}/admin/host/${serial}`);
  if (!res.ok) throw new Error(`reportAuth: GET /admin/host/${serial}: ${res.status}`);
  const host = (await res.json()) as { MachineID?: string };
  return { authorization: `Bearer ${reportToken(key, serial, host.MachineID ?? '')}` };
}

export interface MayuctlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The real mayuctl (node + tsx) against 127.0.0.1:`port`; never throws for a non-zero exit. */
export async function runMayuctl(port: number | string, args: string[], env: Record<string, string> = {}): Promise<MayuctlResult> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'src/cli/mayuctl.ts'), '--host', '127.0.0.1', '--port', String(port), ...args],
      { cwd: ROOT, env: { ...process.env, ...env } },
      (_err, stdout, stderr) => resolve({ code: child.exitCode ?? 1, stdout, stderr }),
    );
  });
}
