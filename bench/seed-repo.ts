// A cluster repo with N hosts, made fast: each host is what mayu's own creation steps produce
// (src/core/host-changes.ts creationSteps), written as <serial>/conf.json with mayu's codec,
// then committed once by the native git (git add -A + one commit). Same idea as the seeding in
// bench/commit-rate.ts, shared here so benches that need a big repo don't copy it again.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { creationSteps } from '../src/core/host-changes.ts';
import { encodeHost, type Host } from '../src/core/host.ts';
import { encodeClusterJson } from '../src/store/cluster-json.ts';

export const BENCH_ETCD_TOKEN = 'e94768ef0f948b0c2e53536d9c5eeb8f';

export interface SeedOptions {
  /** First InternalAddr handed out; host i gets firstAddr + i (must stay inside ipRange). */
  firstAddr?: string;
  ipRange?: { start: string; end: string };
  /** Serial of host i (default `bench-000042-<16 hex>`). */
  serial?: (i: number) => string;
  /** Changes host i before it is written (a state, a profile). */
  edit?: (host: Host, i: number) => void;
}

const toInt = (ip: string) => ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
const toIp = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');

/** Writes `hosts` hosts into `dir` (created if missing) and commits them as one commit; returns the serials. */
export async function seedRepo(dir: string, hosts: number, opts: SeedOptions = {}): Promise<string[]> {
  const ipRange = opts.ipRange ?? { start: '10.0.0.1', end: '10.255.255.254' };
  const first = toInt(opts.firstAddr ?? ipRange.start);
  if (first + hosts - 1 > toInt(ipRange.end)) throw new Error(`seedRepo: ${hosts} hosts do not fit in ${ipRange.start}..${ipRange.end}`);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'cluster.json'), encodeClusterJson({ DefaultEtcdClusterToken: BENCH_ETCD_TOKEN }));
  const serials: string[] = [];
  for (let i = 0; i < hosts; i++) {
    const serial = opts.serial?.(i) ?? `bench-${String(i).padStart(6, '0')}-${randomBytes(8).toString('hex')}`;
    const host = creationSteps(serial, {
      hosts: [], profiles: [], ipRange,
      defaultEtcdToken: BENCH_ETCD_TOKEN, randomBytes: randomBytes(16),
    }).at(-1)!.host;
    host.InternalAddr = toIp(first + i);
    opts.edit?.(host, i);
    await mkdir(path.join(dir, serial));
    await writeFile(path.join(dir, serial, 'conf.json'), encodeHost(host));
    serials.push(serial);
  }
  const git = (...a: string[]) => execFileSync('git', ['-C', dir, ...a], { stdio: 'ignore' });
  git('init', '-q', '-b', 'master');
  git('add', '-A');
  // No auto gc: a detached `git gc --auto` (20 000 loose objects) would race the bench's own packing.
  git('-c', 'gc.auto=0', '-c', 'user.name=bench', '-c', 'user.email=bench@localhost', 'commit', '-q', '-m', 'seed');
  return serials;
}

/** Number of commits on HEAD of the repo in `dir`. */
export function commitCount(dir: string): number {
  return Number(execFileSync('git', ['-C', dir, 'rev-list', '--count', 'HEAD'], { encoding: 'utf8' }).trim());
}
