// Commit rate of the git store and its start-up time, for N hosts already in the repo.
//   npm run bench:commits -- [hosts...]      (default: 200 5000)
// Per size: a repo with N hosts is made in one commit by the native git, mayu's store opens it
// (start-up time = load every host), then 1000 changes are applied one after another, each
// awaited (durable, fsync'd) before the next: commits/s without any group-commit help.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { creationSteps, setProviderIdSteps } from '../src/core/host-changes.ts';
import { encodeHost } from '../src/core/host.ts';
import { encodeClusterJson } from '../src/store/cluster-json.ts';
import { GitStore } from '../src/store/git-store.ts';

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const CHANGES = 1000;

async function seedRepo(dir: string, hosts: number): Promise<void> {
  await writeFile(path.join(dir, 'cluster.json'), encodeClusterJson({ DefaultEtcdClusterToken: 'e94768ef0f948b0c2e53536d9c5eeb8f' }));
  const taken: string[] = [];
  for (let i = 0; i < hosts; i++) {
    const serial = `bench-${String(i).padStart(6, '0')}-${randomBytes(8).toString('hex')}`;
    const host = creationSteps(serial, {
      hosts: [], profiles: [], ipRange: { start: '10.0.0.1', end: '10.255.255.254' },
      defaultEtcdToken: 'e94768ef0f948b0c2e53536d9c5eeb8f', randomBytes: randomBytes(16),
    }).at(-1)!.host;
    host.InternalAddr = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${(i & 255) + 1}`;
    taken.push(host.InternalAddr);
    await mkdir(path.join(dir, serial));
    await writeFile(path.join(dir, serial, 'conf.json'), encodeHost(host));
  }
  const git = (...a: string[]) => execFileSync('git', ['-C', dir, ...a], { stdio: 'ignore' });
  git('init', '-q', '-b', 'master');
  git('add', '-A');
  git('-c', 'user.name=bench', '-c', 'user.email=bench@localhost', 'commit', '-q', '-m', 'seed');
}

for (const hosts of sizes.length ? sizes : [200, 5000]) {
  const dir = await mkdtemp(path.join(tmpdir(), 'mayu-bench-'));
  await seedRepo(dir, hosts);
  const t0 = performance.now();
  const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
  const startupMs = performance.now() - t0;
  const serials = store.all().map((h) => h.Serial!);
  const t1 = performance.now();
  for (let i = 0; i < CHANGES; i++) {
    const serial = serials[i % serials.length]!;
    await store.apply(serial, setProviderIdSteps(store.get(serial)!, `p-${i}`));
  }
  const seconds = (performance.now() - t1) / 1000;
  await store.close();
  const count = execFileSync('git', ['-C', dir, 'rev-list', '--count', 'HEAD'], { encoding: 'utf8' }).trim();
  execFileSync('git', ['-C', dir, 'fsck', '--full'], { stdio: 'ignore' });
  console.log(JSON.stringify({ hosts, startupMs: Math.round(startupMs), changes: CHANGES, seconds: +seconds.toFixed(2), commitsPerSecond: +(CHANGES / seconds).toFixed(1), commitsInRepo: Number(count), fsck: 'clean' }));
  await rm(dir, { recursive: true, force: true });
}
