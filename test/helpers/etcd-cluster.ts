import { spawn, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { freePorts, requireEtcdBinaries, until } from './etcd.ts';

// A real three-member etcd 3.4 cluster (Debian's etcd-server) on loopback, for the etcd store
// tests: static bootstrap (--initial-cluster), data under the test's temp dir, every member
// stopped by its PID. Members can be killed (-9) and restarted on the same ports and data.

export interface ClusterMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  proc: ChildProcess | undefined;
  output(): string;
}

export interface EtcdCluster {
  members: ClusterMember[];
  /** Client URLs of every member, for a client's endpoint list. */
  endpoints: string[];
  kill9(name: string): Promise<void>;
  /** Starts a killed or stopped member again (same ports, same data). */
  restart(name: string): Promise<void>;
  /** SIGSTOP / SIGCONT: an unreachable etcd whose TCP port stays open (connections hang). */
  pause(name: string): void;
  resume(name: string): void;
  stop(): Promise<void>;
}

export async function startEtcdCluster(dataDir: string, size = 3): Promise<EtcdCluster> {
  await requireEtcdBinaries();
  const ports = await freePorts(size * 2);
  const members: ClusterMember[] = Array.from({ length: size }, (_, i) => ({
    name: `m${i}`,
    clientUrl: `http://127.0.0.1:${ports[2 * i]}`,
    peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
    proc: undefined,
    output: () => '',
  }));
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const launch = (m: ClusterMember) => {
    const proc = spawn('etcd', [
      '--name', m.name, '--data-dir', path.join(dataDir, m.name), '--logger', 'zap', '--log-level', 'warn',
      '--listen-client-urls', m.clientUrl, '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', initialCluster, '--initial-cluster-state', 'new', '--initial-cluster-token', 'mayu-test',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout!.on('data', (d) => (out = (out + d).slice(-20_000)));
    proc.stderr!.on('data', (d) => (out = (out + d).slice(-20_000)));
    m.proc = proc;
    m.output = () => out;
  };
  const stopMember = async (m: ClusterMember, signal: NodeJS.Signals) => {
    const proc = m.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGCONT');
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  const healthy = (m: ClusterMember) =>
    fetch(`${m.clientUrl}/health`).then(async (r) => (await r.json() as { health?: string }).health === 'true', () => false);
  for (const m of members) launch(m);
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    async kill9(name) {
      await stopMember(members.find((m) => m.name === name)!, 'SIGKILL');
    },
    async restart(name) {
      const m = members.find((x) => x.name === name)!;
      await stopMember(m, 'SIGTERM');
      launch(m);
      await until(`${name} to be healthy again`, 30_000, async () => (await healthy(m)) || undefined);
    },
    pause(name) {
      members.find((m) => m.name === name)!.proc?.kill('SIGSTOP');
    },
    resume(name) {
      members.find((m) => m.name === name)!.proc?.kill('SIGCONT');
    },
    async stop() {
      await Promise.all(members.map((m) => stopMember(m, 'SIGTERM')));
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await until('the etcd cluster to be healthy', 60_000, async () => {
      for (const m of members) {
        if (m.proc!.exitCode !== null) throw new Error(`etcd ${m.name} exited:\n${m.output().slice(-3000)}`);
      }
      return (await Promise.all(members.map(healthy))).every(Boolean) || undefined;
    });
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
