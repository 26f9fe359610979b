// Boot storm: N simulated machines boot at once against a real `mayu serve` process over loopback
// and walk the whole 0.11 protocol (iPXE script, first-stage script, final cloud-config POST, HEAD
// of the install image, set_installed, boot_complete: 10 commits per machine). Then the repo is
// checked with the native git, and the same sequence of changes is replayed the way mayu 0.11
// committed (one `git add` + `git commit` process pair per change) as the anchor.
//
//   npm run bench:storm -- [--machines 1000] [--concurrency 256 | machines when paced] [--anchor-changes 2000 | 0 = all]
//                          [--anchor-window first|last] [--no-anchor] [--pace saturate|boot]
//                          [--timeout 900] [--keep] [--flood-sources 16 [--flood-per-source 4]] [--connection-per-request]
// --pace saturate (default): every machine sends its next request as soon as the last is answered,
// so commits/s is the server's maximum and latency is mostly queueing. --pace boot: machines power
// on within 10 s and pause between steps as real ones do (BOOT_PACE), the latency of a real storm.
// The anchor replays the first K changes from an empty repo by default (fewer hosts in the tree:
// the anchor's best case); `--anchor-window last` replays the last K on a repo seeded with the
// hosts before them (its cost at full size).
//
// Machines honour 429/503 with Retry-After as the installer does: they wait what mayu says (plus
// up to half again) and ask again; those refusals are counted apart and are not failures.
// --flood-sources N: the machines are registered first (known hosts), then they install while
// N loopback addresses (127.0.0.2...) flood /first-stage-script/<unknown serial> without
// honouring Retry-After; prints refusals per second and the known machines' p99 meanwhile.
//
// Prints a JSON summary, then a table; exits 1 if any check fails, 2 on the global timeout.
import { spawnSync } from 'node:child_process';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { checkAcks, checkFinalHosts, gitCommitTotal, gitFsckResult, gitHeadConfs, gitStatusPorcelain, gitSubjectCounts, strayRefs } from '../test/helpers/storm-checks.ts';
import { BOOT_PACE, getJson, ROUTES, runStorm, serialFor, Target } from '../test/helpers/storm-client.ts';
import { processStats, PROFILE_QUANTITIES, prepareStormEnv, startMayuServer, type MayuServer } from '../test/helpers/storm-env.ts';
import { replayAsMayu011, type AnchorResult, type AnchorWindow } from './storm/anchor.ts';
import { phaseSummary, sampleAcceptQueue, sampleMemory, serverRuntime, serverTimes, tcpCounters } from './storm/diagnostics.ts';
import { runFlood, type FloodResult } from './storm/flood.ts';
import { mib, percentiles, table } from './storm/stats.ts';

const { values: args } = parseArgs({
  options: {
    machines: { type: 'string', default: '1000' },
    concurrency: { type: 'string' },
    anchor: { type: 'boolean', default: true },
    'no-anchor': { type: 'boolean', default: false },
    'anchor-changes': { type: 'string', default: '2000' },
    'anchor-window': { type: 'string', default: 'first' },
    timeout: { type: 'string', default: '900' },
    keep: { type: 'boolean', default: false },
    pace: { type: 'string', default: 'saturate' },
    'flood-sources': { type: 'string', default: '0' },
    'flood-per-source': { type: 'string', default: '4' },
    'connection-per-request': { type: 'boolean', default: false },
  },
});
const machines = Number(args.machines);
// Saturation: 256 sockets; paced: one per machine, as in a real storm nothing queues client-side.
const concurrency = Number(args.concurrency ?? (args.pace === 'boot' ? args.machines : 256));
const anchorChanges = Number(args['anchor-changes']);
const withAnchor = args.anchor && !args['no-anchor'];
const anchorWindow = args['anchor-window'] as AnchorWindow;
if (!(machines > 0 && concurrency > 0 && anchorChanges >= 0) || !['first', 'last'].includes(anchorWindow) || !['saturate', 'boot'].includes(args.pace)) {
  throw new Error('--machines, --concurrency must be > 0, --anchor-changes >= 0 (0 = all), --anchor-window first|last, --pace saturate|boot');
}
const pace = args.pace === 'boot' ? BOOT_PACE : undefined;
const floodSources = Number(args['flood-sources']);
const floodPerSource = Number(args['flood-per-source']);

const GOAL = { ratio: 10, p99Ms: 100 };
const COMMITS_PER_MACHINE = 10;

let server: MayuServer | undefined;
// Bounded in time whatever happens: a hung server or client must not hang the bench.
const globalTimer = setTimeout(() => {
  console.error(`boot-storm: global timeout of ${args.timeout} s reached`);
  server?.proc.kill('SIGKILL');
  process.exit(2);
}, Number(args.timeout) * 1000);

// A flood creates hosts too (as many as the limits let through): room for them in ip_range.
const env = await prepareStormEnv(floodSources > 0 ? machines + 20_000 : machines);
// mayu's request log to a file, not a pipe this busy process reads (storm-env.ts startMayuServer).
const logFile = path.join(env.workDir, 'mayu.log');
server = await startMayuServer(env, [], { logFile });
const commitsBefore = gitCommitTotal(env.clusterDir);

// Flood mode: the machines are known before the flood starts (their first-stage scripts fetched).
if (floodSources > 0) {
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < machines) {
      const res = await fetch(`${server!.url}/first-stage-script/${serialFor(next++)}`);
      if (res.status !== 200) throw new Error(`registering ${serialFor(next - 1)}: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
    }
  }));
}
let stormDone!: () => void;
const floodRun = floodSources > 0
  ? runFlood({ url: server.url, sources: floodSources, perSource: floodPerSource, until: new Promise<void>((r) => (stormDone = r)) })
  : undefined;
// The simulator's own lateness: every client-side latency includes it.
const clientLoop = monitorEventLoopDelay({ resolution: 10 });
clientLoop.enable();
const tcpBefore = tcpCounters();
const acceptQueue = sampleAcceptQueue(server.port);
const memorySamples = sampleMemory(server.url);
const storm = await runStorm(new Target(server.url), { machines, concurrency, pace, maxAttempts: 20, requestTimeoutMs: 60_000, connectionPerRequest: args['connection-per-request'] });
const acceptQueueSeen = acceptQueue.stop();
const memoryAtPeak = memorySamples.stop();
const tcpAfter = tcpCounters();
clientLoop.disable();
stormDone?.();
const flood: FloodResult | undefined = await floodRun;
const memory = processStats(server.pid);
const runtime = await serverRuntime(server.url);
const clientCpu = process.cpuUsage();
const apiHosts = await getJson<Record<string, unknown>[]>(`${server.url}/admin/hosts`);
await server.stop();

// Checks, with the native git on the repo the stopped server left.
const violations: string[] = [];
for (const [serial, reason] of storm.failures) violations.push(`machine ${serial} did not finish: ${reason}`);
for (const [cause, sample] of storm.errorSamples) violations.push(`${storm.retries.get(cause)} × ${cause} (retried), first: ${sample}`);
const commits = gitCommitTotal(env.clusterDir);
// A flood's hosts that got in: 5 commits each (created, settings, address, profile, token).
const floodCreated = flood?.created.length ?? 0;
const expectedCommits = 2 + COMMITS_PER_MACHINE * machines + 5 * floodCreated;
if (commits !== expectedCommits) violations.push(`git rev-list --count HEAD = ${commits}, expected 2 + ${COMMITS_PER_MACHINE} × ${machines} + 5 × ${floodCreated} flood hosts = ${expectedCommits}`);
const fsck = gitFsckResult(env.clusterDir);
if (!fsck.ok) violations.push(`git fsck --full failed:\n${fsck.output}`);
for (const ref of strayRefs(env.clusterDir)) violations.push(`stray ref: ${ref}`);
const status = gitStatusPorcelain(env.clusterDir);
if (status) violations.push(`git status --porcelain not empty after the stop:\n${status.split('\n').slice(0, 5).join('\n')}`);
const serials = Array.from({ length: machines }, (_, i) => serialFor(i));
const confs = gitHeadConfs(env.clusterDir, serials);
const floodSet = new Set(flood?.created ?? []);
const floodHostsListed = apiHosts.filter((h) => floodSet.has(String(h.Serial))).length;
if (floodHostsListed !== floodCreated) violations.push(`${floodCreated} flood serials answered 200 but ${floodHostsListed} of them are hosts`);
// The machines registered before any flood host: core holds them only.
violations.push(...checkFinalHosts(apiHosts.filter((h) => !floodSet.has(String(h.Serial))), confs, serials, PROFILE_QUANTITIES));
violations.push(...checkAcks(storm.acks, confs, gitSubjectCounts(env.clusterDir)));
const du = (flag: string) => Number(spawnSync('du', ['-s', flag, path.join(env.clusterDir, '.git')], { encoding: 'utf8' }).stdout.split('\t')[0]);
const repo = { diskBytes: du('--block-size=1'), apparentBytes: du('--bytes') };

let anchor: AnchorResult | undefined;
if (withAnchor) anchor = await replayAsMayu011(env.clusterDir, anchorChanges, anchorWindow);
if (anchor && !anchor.sameTree) violations.push('anchor replay did not reproduce mayu\'s tree');
clearTimeout(globalTimer);

const all = percentiles([...storm.latencies.values()].flat());
// Every answer a machine got, the refusals (429/503 with Retry-After) included.
const answered = percentiles([...[...storm.latencies.values()].flat(), ...storm.refusalLatencies]);
const floodSummary = flood && {
  sources: floodSources,
  inFlightPerSource: floodPerSource,
  seconds: +flood.seconds.toFixed(1),
  byStatus: Object.fromEntries(flood.byStatus),
  refusedPerSecond: +((((flood.byStatus.get(429) ?? 0) + (flood.byStatus.get(503) ?? 0)) / flood.seconds)).toFixed(1),
  createdPerSecond: +(floodCreated / flood.seconds).toFixed(1),
  refusalLatencyMs: percentiles(flood.refusalLatencies),
  errors: flood.errors,
};
const perRoute = Object.fromEntries(ROUTES.map((r) => [r, percentiles(storm.latencies.get(r)!)]));
const server_ = await serverTimes(logFile);
const phases = Object.fromEntries(ROUTES.map((r) => [r, phaseSummary(storm.timings.get(r)!)]));
// The histogram counts from its 10 ms timer: what is above that is the loop's lateness.
const loopMs = (ns: number) => +Math.max(0, ns / 1e6 - 10).toFixed(1);
const diagnostics = {
  mayuMsPerRequest: server_,
  clientPhases: phases,
  mayuRuntime: runtime,
  simulatorEventLoopDelayMs: { p50: loopMs(clientLoop.percentile(50)), p99: loopMs(clientLoop.percentile(99)), max: loopMs(clientLoop.max) },
  // Whole machine (other workers' servers count too): a full accept queue drops handshakes.
  tcpCountersDuringStorm: Object.fromEntries(Object.entries(tcpAfter).map(([k, v]) => [k, v - (tcpBefore[k] ?? 0)])),
  acceptQueue: acceptQueueSeen,
  /** MiB, the 5 s sample with the highest RSS. */
  memoryAtPeakRss: memoryAtPeak,
};
const commitsPerSecond = +((commits - commitsBefore) / storm.seconds).toFixed(1);
const ratio = anchor ? +(commitsPerSecond / anchor.commitsPerSecond).toFixed(1) : undefined;
const summary = {
  machines,
  concurrency,
  pace: args.pace,
  seconds: +storm.seconds.toFixed(2),
  machinesPerSecond: +(machines / storm.seconds).toFixed(1),
  commits: commits - commitsBefore,
  commitsPerSecond,
  latencyMs: { all, ...perRoute },
  latencyAnsweredMs: answered,
  refusals: Object.fromEntries(storm.refusals),
  flood: floodSummary,
  retries: Object.fromEntries(storm.retries),
  serverErrors: Object.fromEntries(storm.errorSamples),
  mayuPeakRssBytes: memory.peakRss,
  cpuSeconds: {
    mayu: +(memory.cpuUserSeconds + memory.cpuSystemSeconds).toFixed(1),
    mayuSystem: memory.cpuSystemSeconds,
    simulator: +((clientCpu.user + clientCpu.system) / 1e6).toFixed(1),
  },
  mayuRssAtEndBytes: memory.rss,
  diagnostics,
  repo,
  checks: { commitCount: `${commits} (expected ${expectedCommits})`, fsck: fsck.ok ? 'clean' : 'FAILED', allRunning: apiHosts.every((h) => h.State === 'running'), uniqueInternalAddr: new Set(apiHosts.map((h) => h.InternalAddr)).size === apiHosts.length, violations },
  anchor: anchor && { ...anchor, method: 'native git add + git commit per change, serial (mayu 0.11), no fsync', note: `replayed the ${anchor.window} ${anchor.changes} of ${anchor.outOf} changes (hosts in the tree: ${anchor.hostsAtStart} → ${anchor.hostsAtEnd})` },
  ratio,
  goal: { ratio: `>= ${GOAL.ratio}x`, p99: `< ${GOAL.p99Ms} ms`, ratioMet: ratio === undefined ? undefined : ratio >= GOAL.ratio, p99Met: all.p99 < GOAL.p99Ms },
};
console.log(JSON.stringify(summary, null, 2));

console.log(`\nboot storm (${pace ? 'paced like real boots: power-on within 10 s, pauses between steps' : 'saturation: no pauses'}): ${machines} machines, ${concurrency} requests in flight at most, ${summary.seconds} s`);
console.log(table(['route', 'requests', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'], [
  ...ROUTES.map((r) => [r, perRoute[r]!.count, perRoute[r]!.p50, perRoute[r]!.p95, perRoute[r]!.p99, perRoute[r]!.max]),
  ['all', all.count, all.p50, all.p95, all.p99, all.max],
]));
console.log('\nwhere the time went (client: socket wait, new connections, request → headers; mayu: its own ms per answer):');
console.log(table(['route', 'mayu p99 ms', 'mayu >1 s', 'client >1 s', 'of which connect >1 s', 'headers >1 s', 'new conns', 'connect p99 ms', 'headers p99 ms'], ROUTES.map((r) => [
  r, server_.answered[r]?.p99 ?? 0, server_.overOneSecond[r] ?? 0, phases[r]!.slow.count, phases[r]!.slow.connectOver1s, phases[r]!.slow.headersOver1s,
  phases[r]!.newConnections, phases[r]!.connectMs.p99, phases[r]!.headersMs.p99,
])));
console.log(`mayu GC s ${JSON.stringify(runtime.gcSeconds)}, event-loop lag s ${JSON.stringify(runtime.eventLoopLag)}; simulator event-loop delay ms ${JSON.stringify(diagnostics.simulatorEventLoopDelayMs)}`);
console.log(`mayu, connections' first requests, accept → handled: ${JSON.stringify(server_.sinceAccept)}`);
console.log(`TCP during the storm ${JSON.stringify(diagnostics.tcpCountersDuringStorm)}; mayu's accept queue ${JSON.stringify(acceptQueueSeen)}; memory at peak RSS (MiB) ${JSON.stringify(memoryAtPeak)}`);
console.log(table(['measure', 'value'], [
  ['machines/s', `${summary.machinesPerSecond}`],
  ['commits/s (mayu)', `${commitsPerSecond}`],
  ...(anchor ? [[`commits/s (0.11 anchor, ${anchor.window} ${anchor.changes} of ${anchor.outOf} changes, ${anchor.hostsAtStart}→${anchor.hostsAtEnd} hosts)`, `${anchor.commitsPerSecond}`], ['ratio mayu / anchor', `${ratio}x  (goal >= ${GOAL.ratio}x)`]] : []),
  ['p99 all requests', `${all.p99} ms  (goal < ${GOAL.p99Ms} ms)`],
  ['p99 answered (with refusals)', `${answered.p99} ms (${storm.refusalLatencies.length} refusals: ${JSON.stringify(Object.fromEntries(storm.refusals))})`],
  ...(floodSummary ? [
    ['flood: refused/s, created/s', `${floodSummary.refusedPerSecond}, ${floodSummary.createdPerSecond} (${JSON.stringify(floodSummary.byStatus)})`],
    ['flood: refusal p50 / p99', `${floodSummary.refusalLatencyMs.p50} / ${floodSummary.refusalLatencyMs.p99} ms`],
  ] : []),
  ['mayu peak RSS (VmHWM)', mib(memory.peakRss)],
  ['CPU s: mayu (sys) / simulator', `${summary.cpuSeconds.mayu} (${summary.cpuSeconds.mayuSystem}) / ${summary.cpuSeconds.simulator}`],
  ['repo .git on disk / apparent', `${mib(repo.diskBytes)} / ${mib(repo.apparentBytes)}`],
  ['commits in repo', `${commits} (expected ${expectedCommits})`],
  ['git fsck --full', fsck.ok ? 'clean' : 'FAILED'],
  ['checks', violations.length ? `${violations.length} FAILED` : 'all passed'],
]));
if (violations.length) {
  console.error(`\n${violations.length} check(s) failed (work dir kept: ${env.workDir}):\n${violations.slice(0, 20).join('\n')}`);
  process.exit(1);
}
if (args.keep) console.log(`work dir kept: ${env.workDir}`);
else await rm(env.workDir, { recursive: true, force: true });
