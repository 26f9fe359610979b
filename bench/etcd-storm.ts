// Replicas storm: N simulated machines spread over R `mayu serve --store etcd` replicas and a real
// three-member etcd 3.4 cluster (Debian's etcd-server) on loopback, then the same storm against
// one single-node mayu (git store) in the same run, one after the other (never both at once).
//
//   npm run bench:etcd -- [--machines 10000] [--replicas 4] [--concurrency 256] [--pace saturate|boot]
//                         [--no-faults] [--no-single] [--timeout 3000] [--keep]
//
// Measures: acknowledged changes/s and request latency of both; the audit writer's lag (from the
// moment a transaction's revision reaches this process's watch of etcd's `log` key to the moment
// git HEAD carries its last change, sampled every 100 ms) and how long after the storm git caught
// up; with faults (default), kill -9 of the history writer at 25 % of the acknowledged changes
// (time until git HEAD moves again, by whichever replica the election picks) and of another
// replica at 50 % (its machines move to the next replica's URL on a refused or reset connection,
// as behind a VIP or a DNS name with several addresses: time until the first of them is answered
// there). Checks as the tests do: every acknowledged change in etcd and in git, one commit per
// etcd change in revision order, no duplicate, linear history, git fsck clean, etcd = git HEAD.
//
// Prints a JSON summary, then tables; exits 1 if a check fails, 2 on the global timeout.
import { rm } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { IKeyValue } from 'etcd3';
import { connectEtcd, fragmented } from '../src/store/etcd/connect.ts';
import { cpuSeconds } from './bench-util.ts';
import { startEtcdCluster, type EtcdCluster } from '../test/helpers/etcd-cluster.ts';
import { compareHistory, etcdConfs, headPosition, historyWriterId, isLinear } from '../test/helpers/etcd-history.ts';
import { checkAcks, checkFinalHosts, gitCommitTotal, gitFsckSettled, gitHeadConfs, gitSubjectCounts } from '../test/helpers/storm-checks.ts';
import { BOOT_PACE, FailoverTarget, getJson, runStorm, serialFor, Target, type Ack, type StormResult } from '../test/helpers/storm-client.ts';
import { prepareStormEnv, processStats, PROFILE_QUANTITIES, startMayuServer, type MayuServer, type StormEnv } from '../test/helpers/storm-env.ts';
import { percentiles, table } from './storm/stats.ts';

const { values: args } = parseArgs({
  options: {
    machines: { type: 'string', default: '10000' },
    replicas: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '256' },
    pace: { type: 'string', default: 'saturate' },
    'no-faults': { type: 'boolean', default: false },
    'no-single': { type: 'boolean', default: false },
    timeout: { type: 'string', default: '3000' },
    keep: { type: 'boolean', default: false },
  },
});
const machines = Number(args.machines);
const replicaCount = Number(args.replicas);
const concurrency = Number(args.concurrency);
const faults = !args['no-faults'];
if (!(machines > 0 && replicaCount >= (faults ? 3 : 1) && concurrency >= replicaCount) || !['saturate', 'boot'].includes(args.pace)) {
  throw new Error('--machines > 0, --replicas >= 3 with faults (>= 1 without), --concurrency >= --replicas, --pace saturate|boot');
}
const pace = args.pace === 'boot' ? BOOT_PACE : undefined;
/** Routes whose 2xx is an acknowledged change (storm-client's Ack). */
const ACKS_PER_MACHINE = 4;
const COMMITS_PER_MACHINE = 10;

const now = () => performance.now();
const ms = (x: number) => Math.round(x);
const cleanups: (() => Promise<unknown>)[] = [];
// Whatever goes wrong, the replicas and etcd members this started are stopped by their PIDs.
const crash = (err: unknown) => {
  console.error('etcd-storm failed:', err);
  void Promise.allSettled(cleanups.map((c) => c())).then(() => process.exit(1));
};
process.on('uncaughtException', crash);
process.on('unhandledRejection', crash);
const globalTimer = setTimeout(() => {
  console.error(`etcd-storm: global timeout of ${args.timeout} s reached`);
  void Promise.allSettled(cleanups.map((c) => c())).then(() => process.exit(2));
}, Number(args.timeout) * 1000);

interface Replica { id: string; server: MayuServer; killedAt?: number; cpuAtKill?: number }

const violations: string[] = [];
/** uptime's load averages (1, 5, 15 min), at the start and at the end: what else the box was doing. */
const load = () => loadavg().map((x) => +x.toFixed(2));
const loadAtStart = load();

// --- the replicas --------------------------------------------------------------------------------

const env = await prepareStormEnv(machines, 'mayu-etcd-storm-');
const cluster: EtcdCluster = await startEtcdCluster(path.join(env.workDir, 'etcd'));
cleanups.push(() => cluster.stop());
// mayu's own client settings: answers up to 64 MiB (all 10 000 hosts in one range read are ~6 MiB).
const client = await connectEtcd({ endpoints: cluster.endpoints, requestTimeoutMs: 60_000 });
const startReplica = async (id: string) => {
  const server = await startMayuServer(env, ['--store', 'etcd', '--etcd-store-endpoints', cluster.endpoints.join(','), '--replica-id', id]);
  cleanups.push(() => server.kill9());
  return { id, server } satisfies Replica;
};
// The first one alone: it creates cluster.json in etcd, the report key and the audit repo.
const replicas: Replica[] = [await startReplica('r0')];
replicas.push(...await Promise.all(Array.from({ length: replicaCount - 1 }, (_, i) => startReplica(`r${i + 1}`))));
const alive = () => replicas.filter((r) => r.killedAt === undefined);

// etcd's revisions of the change log as this process sees them, and git HEAD's position, over time.
const logSeen: { revision: number; at: number }[] = [];
const logWatch = await fragmented(client.watch().key('/mayu/log')).create();
logWatch.on('put', (kv: IKeyValue) => logSeen.push({ revision: Number(kv.mod_revision), at: now() }));
const headSamples: { at: number; revision: number; complete: boolean }[] = [];
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    const p = await headPosition(env.clusterDir);
    if (p) {
      const last = headSamples.at(-1);
      if (!last || last.revision !== p.revision || last.complete !== (p.index + 1 === p.count)) headSamples.push({ at: now(), revision: p.revision, complete: p.index + 1 === p.count });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
})();

// --- the storm, with faults ----------------------------------------------------------------------

const totalAcks = machines * ACKS_PER_MACHINE;
let acked = 0;
const faultLog: { what: string; replica: string; at: number; electedAt?: number; newWriter?: string; firstCommitAt?: number }[] = [];
/** After the writer's kill: when the election names another replica, and when git HEAD first moves after that. */
const watchTakeover = async (f: (typeof faultLog)[number]) => {
  const deadline = now() + 120_000;
  while (now() < deadline) {
    const id = await historyWriterId(client).catch(() => undefined);
    if (id && id !== f.replica) {
      f.electedAt = now();
      f.newWriter = id;
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  if (f.electedAt === undefined) return;
  const atElection = JSON.stringify(await headPosition(env.clusterDir));
  while (now() < deadline) {
    if (JSON.stringify(await headPosition(env.clusterDir)) !== atElection) {
      f.firstCommitAt = now();
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
};
const takeovers: Promise<void>[] = [];
let faultChain = Promise.resolve();
const fault = (what: 'writer' | 'replica') => {
  faultChain = faultChain.then(async () => {
    const writerId = await historyWriterId(client);
    const victim = what === 'writer'
      ? alive().find((r) => r.id === writerId)
      : alive().find((r) => r.id !== writerId);
    if (!victim) {
      violations.push(`fault ${what}: no replica to kill (writer ${writerId})`);
      return;
    }
    victim.cpuAtKill = cpuSeconds(victim.server.pid);
    victim.killedAt = now();
    const entry = { what, replica: victim.id, at: victim.killedAt };
    faultLog.push(entry);
    await victim.server.kill9();
    if (what === 'writer') takeovers.push(watchTakeover(entry));
  });
};
const onAck = () => {
  acked++;
  if (!faults) return;
  if (acked === Math.round(totalAcks * 0.25)) fault('writer');
  if (acked === Math.round(totalAcks * 0.5)) fault('replica');
};

const perReplica = Math.ceil(machines / replicaCount);
const urls = replicas.map((r) => r.server.url);
const groups = replicas.map((r, i) => {
  const first = i * perReplica;
  const count = Math.max(0, Math.min(perReplica, machines - first));
  // Machines of replica i go to it, then to the next ones when it does not answer.
  const target = new FailoverTarget([...urls.slice(i), ...urls.slice(0, i)]);
  return { replica: r, target, first, count };
});
const stormStart = now();
const results: StormResult[] = await Promise.all(groups.map((g) => runStorm(g.target, {
  machines: g.count, firstIndex: g.first, concurrency: Math.floor(concurrency / replicaCount), pace, maxAttempts: 80, requestTimeoutMs: 30_000, onAck,
})));
const stormEnd = now();
await faultChain;
await Promise.all(takeovers);
const stormSeconds = (stormEnd - stormStart) / 1000;

// --- git catching up -----------------------------------------------------------------------------

const lastRevision = Number((await client.get('/mayu/log').exec()).kvs[0]?.mod_revision ?? 0);
let caughtUpAt: number | undefined;
const catchUpDeadline = now() + 600_000;
while (now() < catchUpDeadline) {
  const h = headSamples.at(-1);
  if (h && h.revision >= lastRevision && h.complete) {
    caughtUpAt = h.at;
    break;
  }
  await new Promise((r) => setTimeout(r, 100));
}
if (caughtUpAt === undefined) violations.push(`git did not catch up with etcd's revision ${lastRevision} within 600 s of the storm's end`);
sampling = false;
await sampler;
await logWatch.cancel();

// Lag per transaction: when this process saw its revision, until the first sample of HEAD at or past it.
const lags: number[] = [];
{
  let s = 0;
  for (const seen of logSeen) {
    while (s < headSamples.length && !(headSamples[s]!.revision > seen.revision || (headSamples[s]!.revision === seen.revision && headSamples[s]!.complete))) s++;
    if (s === headSamples.length) break;
    lags.push(Math.max(0, headSamples[s]!.at - seen.at));
  }
}

// Failovers.
const failovers = faultLog.map((f) => {
  const victim = replicas.find((r) => r.id === f.replica)!;
  const group = groups.find((g) => g.replica === victim)!;
  const res = results[groups.indexOf(group)]!;
  const served = (res.answered ?? []).filter((a) => a.at > f.at && !a.url.startsWith(victim.server.url)).map((a) => a.at);
  const machinesMoved = group.target.moves.find((m) => m.at >= f.at);
  return {
    killed: `${f.what === 'writer' ? 'history writer' : 'replica'} ${f.replica}`,
    atSecond: +((f.at - stormStart) / 1000).toFixed(1),
    machinesMovedAfterMs: machinesMoved ? ms(machinesMoved.at - f.at) : undefined,
    machinesServedAgainAfterMs: served.length ? ms(Math.min(...served) - f.at) : undefined,
    newWriter: f.newWriter,
    newWriterElectedAfterMs: f.electedAt === undefined ? undefined : ms(f.electedAt - f.at),
    nextGitCommitAfterMs: f.firstCommitAt === undefined ? undefined : ms(f.firstCommitAt - f.at),
  };
});

// --- checks --------------------------------------------------------------------------------------

const survivor = alive()[0]!;
const apiHosts = await getJson<Record<string, unknown>[]>(`${survivor.server.url}/admin/hosts`);
const cpu = {
  replicas: Object.fromEntries(replicas.map((r) => [r.id, +(r.cpuAtKill ?? cpuSeconds(r.server.pid)).toFixed(1)])),
  etcd: Object.fromEntries(cluster.members.map((m) => [m.name, +cpuSeconds(m.proc!.pid!).toFixed(1)])),
  simulator: +((process.cpuUsage().user + process.cpuUsage().system) / 1e6).toFixed(1),
};
const rssMiB = Object.fromEntries(alive().map((r) => [r.id, +(processStats(r.server.pid).peakRss / 1048576).toFixed(1)]));
let history = { commits: 0, violations: ['not checked'] };
let fsck = { ok: false, output: 'not checked' };
// A check that throws is a failed check; the figures are printed all the same.
try {
  history = await compareHistory(client, env.clusterDir, 120_000);
  violations.push(...history.violations);
  const acks: Ack[] = results.flatMap((r) => r.acks);
  for (const r of results) for (const [serial, reason] of r.failures) violations.push(`machine ${serial} did not finish: ${reason}`);
  const serials = Array.from({ length: machines }, (_, i) => serialFor(i));
  const inEtcd = await etcdConfs(client);
  const etcdMap = new Map(serials.map((s) => [s, inEtcd.get(s) ?? null]));
  const subjects = gitSubjectCounts(env.clusterDir);
  violations.push(...checkAcks(acks, etcdMap, subjects).map((v) => `etcd: ${v}`));
  const headConfs = gitHeadConfs(env.clusterDir, serials);
  violations.push(...checkAcks(acks, headConfs, subjects).map((v) => `git: ${v}`));
  violations.push(...checkFinalHosts(apiHosts, headConfs, serials, PROFILE_QUANTITIES));
  for (const s of serials) if (JSON.stringify(etcdMap.get(s)) !== JSON.stringify(headConfs.get(s))) violations.push(`${s}: etcd and git HEAD differ`);
  if (!await isLinear(env.clusterDir)) violations.push('git history has merges');
  fsck = gitFsckSettled(env.clusterDir);
  if (!fsck.ok) violations.push(`git fsck --full failed: ${fsck.output.slice(0, 500)}`);
} catch (err) {
  violations.push(`checks stopped: ${(err as Error).message}`);
}
const etcdCommits = gitCommitTotal(env.clusterDir);
client.close();
for (const r of alive()) await r.server.stop();
await cluster.stop();

const retries = new Map<string, number>();
for (const r of results) for (const [k, v] of r.retries) retries.set(k, (retries.get(k) ?? 0) + v);
const latency = (rs: StormResult[]) => percentiles(rs.flatMap((r) => [...r.latencies.values()].flat()));
const changes = history.commits;
const etcdSummary = {
  replicas: replicaCount,
  seconds: +stormSeconds.toFixed(1),
  changes,
  changesPerSecond: +(changes / stormSeconds).toFixed(1),
  transactions: logSeen.length,
  latencyMs: latency(results),
  retries: Object.fromEntries(retries),
  writerLagMs: percentiles(lags),
  gitCaughtUpAfterStormMs: caughtUpAt === undefined ? undefined : ms(Math.max(0, caughtUpAt - stormEnd)),
  gitCommitsPerSecond: caughtUpAt === undefined ? undefined : +(changes / ((caughtUpAt - stormStart) / 1000)).toFixed(1),
  failovers,
  cpuSeconds: cpu,
  peakRssMiB: rssMiB,
  gitCommitsInRepo: etcdCommits,
};

// --- the single-node mayu, same storm ------------------------------------------------------------

let single: { seconds: number; commitsPerSecond: number; latencyMs: ReturnType<typeof percentiles>; retries: Record<string, number>; cpuSeconds: number } | undefined;
let singleEnv: StormEnv | undefined;
if (!args['no-single']) {
  singleEnv = await prepareStormEnv(machines, 'mayu-single-storm-');
  const server = await startMayuServer(singleEnv);
  cleanups.push(() => server.kill9());
  const before = gitCommitTotal(singleEnv.clusterDir);
  const res = await runStorm(new Target(server.url), { machines, concurrency, pace, maxAttempts: 20, requestTimeoutMs: 60_000 });
  const cpuS = cpuSeconds(server.pid);
  await server.stop();
  const commits = gitCommitTotal(singleEnv.clusterDir) - before;
  if (commits !== COMMITS_PER_MACHINE * machines) violations.push(`single-node: ${commits} commits, expected ${COMMITS_PER_MACHINE * machines}`);
  for (const [serial, reason] of res.failures) violations.push(`single-node: machine ${serial} did not finish: ${reason}`);
  single = { seconds: +res.seconds.toFixed(1), commitsPerSecond: +(commits / res.seconds).toFixed(1), latencyMs: latency([res]), retries: Object.fromEntries(res.retries), cpuSeconds: +cpuS.toFixed(1) };
}
clearTimeout(globalTimer);

const summary = { machines, concurrency, pace: args.pace, faults, cores: cpus().length, load: { start: loadAtStart, end: load() }, etcd: etcdSummary, single, checks: { fsck: fsck.ok ? 'clean' : 'FAILED', historyMatchesEtcd: history.violations.length === 0, violations: violations.slice(0, 50) } };
console.log(JSON.stringify(summary, null, 2));
const l = etcdSummary.latencyMs;
console.log(`\nreplicas storm: ${machines} machines over ${replicaCount} replicas + 3 etcd members, ${concurrency} requests in flight at most, ${args.pace}`);
console.log(table(['measure', `etcd, ${replicaCount} replicas`, 'single-node git'], [
  ['storm seconds', etcdSummary.seconds, single?.seconds ?? '-'],
  ['acknowledged changes/s', etcdSummary.changesPerSecond, single?.commitsPerSecond ?? '-'],
  ['latency p50 / p99 ms', `${l.p50} / ${l.p99}`, single ? `${single.latencyMs.p50} / ${single.latencyMs.p99}` : '-'],
  ['retried attempts', [...retries.values()].reduce((a, b) => a + b, 0), single ? Object.values(single.retries).reduce((a, b) => a + b, 0) : '-'],
  ['audit lag p50 / p99 / max ms', `${etcdSummary.writerLagMs.p50} / ${etcdSummary.writerLagMs.p99} / ${etcdSummary.writerLagMs.max}`, '0 (commit is the ack)'],
  ['git caught up after the storm', `${etcdSummary.gitCaughtUpAfterStormMs} ms`, '-'],
]));
if (failovers.length) console.log(table(['killed', 'at s', 'its machines moved after ms', 'served again after ms', 'writer elected after ms', 'next git commit after ms'],
  failovers.map((f) => [f.killed, f.atSecond, f.machinesMovedAfterMs ?? '-', f.machinesServedAgainAfterMs ?? '-', f.newWriterElectedAfterMs === undefined ? '-' : `${f.newWriterElectedAfterMs} (${f.newWriter})`, f.nextGitCommitAfterMs ?? '-'])));
console.log(`checks: ${violations.length ? `${violations.length} FAILED` : 'all passed'} (git fsck ${fsck.ok ? 'clean' : 'FAILED'}, ${history.commits} commits = etcd changes: ${history.violations.length === 0})`);
if (violations.length) {
  console.error(`\n${violations.length} check(s) failed (work dirs kept: ${env.workDir} ${singleEnv?.workDir ?? ''}):\n${violations.slice(0, 20).join('\n')}`);
  process.exit(1);
}
if (args.keep) console.log(`work dirs kept: ${env.workDir} ${singleEnv?.workDir ?? ''}`);
else {
  await rm(env.workDir, { recursive: true, force: true });
  if (singleEnv) await rm(singleEnv.workDir, { recursive: true, force: true });
}
