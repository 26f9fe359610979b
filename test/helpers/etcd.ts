import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import path from 'node:path';

// Debian's etcd 3.4 (package etcd-server) and etcdctl (etcd-client), on loopback ports, for the
// etcd discovery tests. Every etcd is stopped by its PID.

/** Fails (never skips) when a binary is missing: scripts/test.sh installs both packages. */
export async function requireEtcdBinaries(): Promise<void> {
  for (const [bin, pkg] of [['etcd', 'etcd-server'], ['etcdctl', 'etcd-client']]) {
    const found = await new Promise<boolean>((resolve) => execFile('sh', ['-c', `command -v ${bin}`], (err) => resolve(!err)));
    if (!found) throw new Error(`${bin} is missing: apt-get install -y ${pkg} (scripts/test.sh installs it)`);
  }
}

/** Ports free on 127.0.0.1 right now (the kernel picks them; closed again before use). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<import('node:net').Server>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => (s.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  proc: ChildProcess;
  /** stdout + stderr so far (zap JSON lines). */
  output(): string;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

export async function startEtcd(o: { name: string; dataDir: string; discovery: string; extra?: string[] }): Promise<EtcdMember> {
  const [client, peer] = await freePorts(2);
  const clientUrl = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const proc = spawn('etcd', [
    '--name', o.name, '--data-dir', path.join(o.dataDir, o.name), '--logger', 'zap',
    '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
    '--discovery', o.discovery, ...(o.extra ?? []),
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    name: o.name,
    clientUrl,
    proc,
    output: () => out,
    exited,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export function etcdctl(endpoint: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('etcdctl', ['--endpoints', endpoint, '--dial-timeout', '2s', '--command-timeout', '3s', ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
    }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

/** Polls until `check` returns a value (not undefined) or the time is up. */
export async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A single etcd with the v2 API, as run-0.11.sh runs one for 0.11 (its discovery registry). */
export async function startEtcdV2(dataDir: string): Promise<{ url: string; hostPort: string; stop(): Promise<void> }> {
  const [client, peer] = await freePorts(2);
  const url = `http://127.0.0.1:${client}`;
  const proc = spawn('etcd', [
    '--name', 'registry', '--data-dir', path.join(dataDir, 'registry'), '--enable-v2=true', '--logger', 'zap',
    '--listen-client-urls', url, '--advertise-client-urls', url,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `registry=http://127.0.0.1:${peer}`,
  ], { stdio: 'ignore' });
  const exited = new Promise((r) => proc.once('exit', r));
  await until('the v2 etcd to answer', 30_000, async () => (await fetch(`${url}/version`).then((r) => r.ok, () => false)) || undefined);
  return {
    url,
    hostPort: `127.0.0.1:${client}`,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
