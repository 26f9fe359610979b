// Start-up of the real `mayu serve` on a cluster repo with many hosts.
//   npm run bench:startup -- [--hosts 10000] [--runs 3]
//
// A repo with --hosts hosts is seeded once (bench/seed-repo.ts: mayu's own creation steps, native
// git, one commit). Then --runs times: `mayu serve` is spawned on it (test/helpers/mayu-process.ts
// startMayu) and measured: spawn -> 'mayu listening' line seen, process start -> the 'cluster
// loaded' and 'mayu listening' lines' own timestamps, VmRSS right after start and after one
// GET /admin/hosts. The same is done on an empty cluster (node + tsx + imports + config, no
// hosts) and GitStore.open is timed in this process on the same repo, to tell the fixed start
// cost from the cost of loading the hosts.
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { GitStore } from '../src/store/git-store.ts';
import { FIXTURES, startMayu, tempDir } from '../test/helpers/mayu-process.ts';
import { Cleanup, runBench, median, round, rssMb, table, waitForQuiet } from './bench-util.ts';
import { compactRepo } from '../src/git/compaction.ts';
import { GitObjectReader } from '../src/git/object-reader.ts';
import { resolveHead } from '../src/git/refs.ts';
import { commitCount, seedRepo } from './seed-repo.ts';

const { values: flags } = parseArgs({
  options: {
    hosts: { type: 'string', default: '10000' },
    runs: { type: 'string', default: '3' },
    'max-wait': { type: 'string', default: '300' }, // seconds to wait for a quiet machine first
  },
});
const HOSTS = Math.min(60_000, Math.max(1, Number(flags.hosts)));
const RUNS = Math.min(20, Math.max(1, Number(flags.runs)));
const GOAL = { startMs: 2000, rssMb: 200 };
// A /16 so that 10 000+ hosts fit: the fixture config's ip_range holds only ~470 addresses.
const IP_RANGE = { start: '10.0.1.1', end: '10.0.255.254' };

const cleanup = new Cleanup();

interface ProcessRun {
  cluster: 'empty' | 'seeded';
  run: number;
  hostsLoaded: number;
  /** Parent clock: spawn -> the 'mayu listening' line read from the child's stdout. */
  spawnToListeningMs: number;
  /** The child's own log timestamps minus the spawn time. */
  clusterLoadedAtMs: number;
  listeningAtMs: number;
  rssAfterStartMb: number;
  adminHostsMs: number;
  adminHostsBytes: number;
  rssAfterAdminHostsMb: number;
  commitsWritten: number;
}

async function benchConfig(file: string): Promise<string> {
  // The test fixture with a /16 network; everything else as the integration tests use it.
  const fixture = await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8');
  const sshKeys = /^templates_env:[\s\S]*$/m.exec(fixture)?.[0] ?? '';
  await writeFile(file, [
    'default_coreos_version: 1010.5.0',
    'network:',
    '  pxe: true',
    '  interface: mayutest0',
    '  bind_addr: 127.0.0.1',
    '  subnet_size: 16',
    '  bootstrap_range: {start: 10.0.0.10, end: 10.0.0.250}',
    `  ip_range: {start: ${IP_RANGE.start}, end: ${IP_RANGE.end}}`,
    '  dns: [10.0.0.1]',
    '  router: 10.0.0.1',
    '  network_model: singlenic',
    'profiles:',
    '  - name: core',
    '    quantity: 3',
    '    tags: ["role-core=true"]',
    '  - name: default',
    '    tags: ["role-worker=true"]',
    sshKeys.trimEnd(),
    '',
  ].join('\n'));
  return file;
}

async function processRun(cluster: ProcessRun['cluster'], run: number, workDir: string, config: string): Promise<ProcessRun> {
  const clusterDir = path.join(workDir, 'clusters');
  const commitsBefore = cluster === 'seeded' ? commitCount(clusterDir) : 0;
  const spawnedAt = Date.now();
  const t0 = performance.now();
  const m = await startMayu({ workDir, config });
  const spawnToListeningMs = performance.now() - t0;
  cleanup.watchPid(m.proc.pid);
  try {
    const pid = m.proc.pid!;
    const rssAfterStartMb = rssMb(pid);
    const line = (msg: string) => m.logs.find((l) => l.msg === msg) as { time: number; hosts?: number } | undefined;
    const loaded = line('cluster loaded');
    const listening = line('mayu listening');
    if (!loaded || !listening) throw new Error('start-up log lines missing');
    const t1 = performance.now();
    const res = await fetch(`${m.url}/admin/hosts`);
    const body = await res.text();
    const adminHostsMs = performance.now() - t1;
    if (!res.ok) throw new Error(`GET /admin/hosts: ${res.status}`);
    const count = (JSON.parse(body) as unknown[]).length;
    if (count !== loaded.hosts) throw new Error(`GET /admin/hosts listed ${count} hosts, ${loaded.hosts} loaded`);
    const rssAfterAdminHostsMb = rssMb(pid);
    await m.stop();
    return {
      cluster, run,
      hostsLoaded: loaded.hosts ?? -1,
      spawnToListeningMs: Math.round(spawnToListeningMs),
      clusterLoadedAtMs: loaded.time - spawnedAt,
      listeningAtMs: listening.time - spawnedAt,
      rssAfterStartMb,
      adminHostsMs: Math.round(adminHostsMs),
      adminHostsBytes: body.length,
      rssAfterAdminHostsMb,
      commitsWritten: cluster === 'seeded' ? commitCount(clusterDir) - commitsBefore : 0,
    };
  } finally {
    await m.stop();
    cleanup.unwatchPid(m.proc.pid);
  }
}

async function main() {
  const workDir = await tempDir('mayu-bench-startup-');
  const emptyDir = await tempDir('mayu-bench-startup-empty-');
  cleanup.add('remove work dirs', () => Promise.all([rm(workDir, { recursive: true, force: true }), rm(emptyDir, { recursive: true, force: true })]));
  const clusterDir = path.join(workDir, 'clusters');
  const config = await benchConfig(path.join(workDir, 'config.yaml'));

  const s0 = performance.now();
  await seedRepo(clusterDir, HOSTS, { ipRange: IP_RANGE });
  // Packed, as mayu leaves its repo (a batch is a pack; `mayu compact` merges them all).
  const reader = new GitObjectReader(path.join(clusterDir, '.git'));
  await compactRepo(reader, await resolveHead(path.join(clusterDir, '.git')), { all: true });
  await reader.close();
  const seedSeconds = round((performance.now() - s0) / 1000, 1);

  const machine = await waitForQuiet(Math.min(3600, Math.max(0, Number(flags['max-wait']))));
  if (!machine.quiet) console.error(`machine not quiet (${machine.busyCores} cores busy): figures are skewed`);
  const runs: ProcessRun[] = [];
  // The empty cluster is created by mayu's first start; its later starts load 0 hosts from git.
  for (let i = 1; i <= RUNS; i++) runs.push(await processRun('empty', i, emptyDir, config));
  for (let i = 1; i <= RUNS; i++) runs.push(await processRun('seeded', i, workDir, config));

  // GitStore.open in this process (modules already loaded): the loading alone.
  const inProcess: { run: number; openMs: number; hosts: number; rssMb: number; heapUsedMb: number }[] = [];
  for (let i = 1; i <= RUNS; i++) {
    const t0 = performance.now();
    const store = await GitStore.open({ dir: clusterDir, randomBytes: (n) => randomBytes(n) });
    const openMs = performance.now() - t0;
    const mem1 = process.memoryUsage();
    inProcess.push({
      run: i, openMs: Math.round(openMs), hosts: store.size(),
      rssMb: round(mem1.rss / 2 ** 20, 1), heapUsedMb: round(mem1.heapUsed / 2 ** 20, 1),
    });
    await store.close();
  }

  const med = (cluster: ProcessRun['cluster'], key: keyof ProcessRun) => median(runs.filter((r) => r.cluster === cluster).map((r) => r[key] as number));
  const keys = ['spawnToListeningMs', 'clusterLoadedAtMs', 'listeningAtMs', 'rssAfterStartMb', 'adminHostsMs', 'rssAfterAdminHostsMb'] as const;
  const medians = Object.fromEntries((['empty', 'seeded'] as const).map((c) => [c, Object.fromEntries(keys.map((k) => [k, med(c, k)]))])) as Record<'empty' | 'seeded', Record<(typeof keys)[number], number>>;
  const seeded = medians.seeded;
  const summary = {
    bench: 'startup-10k',
    machine: { cpus: cpus().length, node: process.version, quietAtStart: machine.quiet, busyCoresAtStart: machine.busyCores, waitedSeconds: machine.waitedSeconds },
    hosts: HOSTS,
    runs: RUNS,
    seedSeconds,
    goals: { startMs: `< ${GOAL.startMs}`, rssMb: `< ${GOAL.rssMb}` },
    medians,
    gitStoreOpenInProcessMedianMs: median(inProcess.map((r) => r.openMs)),
    meetsGoal: {
      start: seeded.spawnToListeningMs < GOAL.startMs,
      rss: seeded.rssAfterStartMb < GOAL.rssMb && seeded.rssAfterAdminHostsMb < GOAL.rssMb,
    },
    startupWroteNoCommit: runs.every((r) => r.commitsWritten === 0),
    processRuns: runs,
    gitStoreOpenInProcess: inProcess,
  };
  console.log(JSON.stringify(summary, null, 2));
  console.log(`\nmayu serve start-up, ${HOSTS} hosts vs empty cluster, median of ${RUNS} (goals: listening < ${GOAL.startMs} ms, RSS < ${GOAL.rssMb} MB)`);
  const row = (label: string, k: (typeof keys)[number]) => [label, medians.empty[k], seeded[k], round(seeded[k] - medians.empty[k], 1)];
  console.log(table(['', 'empty', `${HOSTS} hosts`, 'difference'], [
    row('spawn -> listening line read (ms)', 'spawnToListeningMs'),
    row('spawn -> "cluster loaded" logged (ms)', 'clusterLoadedAtMs'),
    row('spawn -> "mayu listening" logged (ms)', 'listeningAtMs'),
    row('VmRSS after start (MB)', 'rssAfterStartMb'),
    row('GET /admin/hosts (ms)', 'adminHostsMs'),
    row('VmRSS after GET /admin/hosts (MB)', 'rssAfterAdminHostsMb'),
  ]));
  console.log(`GitStore.open in-process on the ${HOSTS}-host repo: ${inProcess.map((r) => r.openMs).join(', ')} ms (median ${summary.gitStoreOpenInProcessMedianMs}); this process with the store open: heapUsed ${inProcess.map((r) => r.heapUsedMb).join('/')} MB, RSS ${inProcess.map((r) => r.rssMb).join('/')} MB`);
  console.log(`goals: start ${summary.meetsGoal.start ? 'met' : 'MISSED'}, RSS ${summary.meetsGoal.rss ? 'met' : 'MISSED'}; start-up wrote no commit: ${summary.startupWroteNoCommit}; seeding took ${seedSeconds} s`);
}

await runBench(main, cleanup);
