import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { signal } from '../../src/pxe/stale-dnsmasq.ts';

// A private network for DHCP/PXE tests (root only): a namespace holding bridge br0 with an
// address, N tap devices on it (for QEMU) and N client namespaces whose eth0 is a veth pair with
// its other end on the bridge. Nothing links to the host's namespace and there is no route out,
// so no packet leaves. Processes started here are tracked; cleanup() kills them, then every PID
// still in a namespace (ip netns del kills nothing), then deletes the namespaces.

const run = promisify(execFile);

export interface NetnsClient {
  /** Namespace of this client. */
  ns: string;
  /** Its interface, a veth whose peer is on br0. */
  ifname: 'eth0';
  mac: string;
}

export interface NetnsLab {
  /** The namespace holding br0 and the taps: run the server (mayu, dnsmasq) here. */
  ns: string;
  bridge: 'br0';
  /** IPv4 address of br0 (prefix /24); br0 also has fd77::1/64 for dnsmasq's router advertisements. */
  bridgeAddr: string;
  /** First three octets of the /24, e.g. "10.77.0". */
  subnet: string;
  /** Tap devices on br0 (tap1, tap2, ...) for `-netdev tap,ifname=<tap>,script=no,downscript=no`. */
  taps: string[];
  clients: NetnsClient[];
  /** Command prefix that runs a command in a namespace (default: the main one). */
  wrap(ns?: string): string[];
  /** Starts a command in a namespace; its PID is killed by cleanup(). */
  spawn(cmd: string, args: string[], opts?: { ns?: string } & SpawnOptions): ChildProcess;
  /** Runs a command to completion in a namespace; never rejects on a non-zero exit. */
  exec(cmd: string, args: string[], opts?: { ns?: string; timeoutMs?: number }): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>;
  /** Kills every tracked process and every process left in the namespaces, deletes them. Idempotent. */
  cleanup(): Promise<void>;
}

export interface NetnsLabOptions {
  taps?: number;
  /** Client namespaces: a count (MACs 52:54:00:77:00:01, ...) or their MACs. */
  clients?: number | string[];
  /** Default "10.77.0": br0 is .1. */
  subnet?: string;
}

/** Why netns tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  return undefined;
}

async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

async function waitGone(pids: number[], ms: number): Promise<number[]> {
  const end = Date.now() + ms;
  let left = pids.filter((p) => signal(p, 0));
  while (left.length && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
    left = left.filter((p) => signal(p, 0));
  }
  return left;
}

async function pidsIn(ns: string): Promise<number[]> {
  const { stdout } = await run('ip', ['netns', 'pids', ns]).catch(() => ({ stdout: '' }));
  return stdout.split(/\s+/).filter(Boolean).map(Number);
}

export async function createNetnsLab(opts: NetnsLabOptions = {}): Promise<NetnsLab> {
  const ns = `mayu-dn-${randomBytes(4).toString('hex')}`;
  const subnet = opts.subnet ?? '10.77.0';
  const bridgeAddr = `${subnet}.1`;
  const macs = typeof opts.clients === 'number' || opts.clients === undefined
    ? Array.from({ length: opts.clients ?? 0 }, (_, i) => `52:54:00:77:00:${(i + 1).toString(16).padStart(2, '0')}`)
    : opts.clients;
  const namespaces: string[] = []; // created so far, main first
  const tracked = new Set<ChildProcess>();
  const taps: string[] = [];
  const clients: NetnsClient[] = [];
  let cleaned = false;

  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    const children = [...tracked].filter((c) => c.pid !== undefined && c.exitCode === null && c.signalCode === null);
    for (const c of children) c.kill('SIGTERM');
    for (const pid of await waitGone(children.map((c) => c.pid!), 2000)) signal(pid, 'SIGKILL');
    const problems: string[] = [];
    for (const name of [...namespaces].reverse()) {
      const left = await pidsIn(name);
      for (const pid of left) signal(pid, 'SIGKILL');
      const stuck = await waitGone(left, 2000);
      if (stuck.length) problems.push(`${name}: PIDs ${stuck.join(', ')} survived SIGKILL`);
      await ip('netns', 'del', name).catch((err: Error) => problems.push(`${name}: ${err.message}`));
    }
    if (problems.length) throw new Error(`netns cleanup: ${problems.join('; ')}`);
  };

  try {
    await ip('netns', 'add', ns);
    namespaces.push(ns);
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    await ip('-n', ns, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', ns, 'addr', 'add', `${bridgeAddr}/24`, 'dev', 'br0');
    await ip('-n', ns, 'addr', 'add', 'fd77::1/64', 'dev', 'br0', 'nodad');
    await ip('-n', ns, 'link', 'set', 'br0', 'up');
    for (let i = 1; i <= (opts.taps ?? 0); i++) {
      const tap = `tap${i}`;
      await ip('-n', ns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
      await ip('-n', ns, 'link', 'set', tap, 'master', 'br0');
      await ip('-n', ns, 'link', 'set', tap, 'up');
      taps.push(tap);
    }
    for (const [i, mac] of macs.entries()) {
      const client = `${ns}-c${i + 1}`;
      const peer = `vc${i + 1}`;
      await ip('netns', 'add', client);
      namespaces.push(client);
      await ip('-n', client, 'link', 'set', 'lo', 'up');
      await ip('-n', ns, 'link', 'add', peer, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client);
      await ip('-n', ns, 'link', 'set', peer, 'master', 'br0');
      await ip('-n', ns, 'link', 'set', peer, 'up');
      await ip('-n', client, 'link', 'set', 'eth0', 'address', mac);
      await ip('-n', client, 'link', 'set', 'eth0', 'up');
      clients.push({ ns: client, ifname: 'eth0', mac });
    }
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }

  const wrap = (target = ns) => ['ip', 'netns', 'exec', target];
  const spawnIn = (cmd: string, args: string[], { ns: target, ...spawnOpts }: { ns?: string } & SpawnOptions = {}): ChildProcess => {
    const [command, ...prefix] = [...wrap(target), cmd];
    const child = spawn(command!, [...prefix, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...spawnOpts });
    tracked.add(child);
    child.once('exit', () => tracked.delete(child));
    return child;
  };
  return {
    ns,
    bridge: 'br0',
    bridgeAddr,
    subnet,
    taps,
    clients,
    wrap,
    spawn: spawnIn,
    async exec(cmd, args, { ns: target, timeoutMs = 30_000 } = {}) {
      const t0 = performance.now();
      const child = spawnIn(cmd, args, { ns: target });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d) => (stdout += d));
      child.stderr!.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await new Promise<number | null>((resolve) => {
        child.once('close', (c) => resolve(c));
        child.once('error', (err) => ((stderr += String(err)), resolve(null)));
      });
      clearTimeout(timer);
      return { code, stdout, stderr, ms: performance.now() - t0 };
    },
    cleanup,
  };
}
