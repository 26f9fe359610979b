import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { startOperator, type OperatorActivity } from './operator-activity.ts';
import { checkAcks, checkFinalHosts, gitFsckResult, gitFsckSettled, gitGarbage, gitHeadConfs, gitStatusPorcelain, gitSubjectCounts, strayRefs } from './storm-checks.ts';
import { getJson, runStorm, serialFor, sleep, Target, type Ack, type StormPace, type StormResult } from './storm-client.ts';
import { PROFILE_QUANTITIES, prepareStormEnv, startMayuServer, type MayuServer } from './storm-env.ts';

// A boot storm during which the server is killed with SIGKILL at random moments and restarted on
// the same work dir (a new port each time; the machines follow it). After every kill, once the
// restarted server listens (it has written to git what its journal held beyond the ref) and
// before any machine reaches it, the repo on disk is checked with the native git against every
// change acknowledged so far; at the end, the final state too. Used by test/crash-safety.test.ts and bench/crash-loop.ts.

export interface CrashLoopOptions {
  machines: number;
  kills: number;
  concurrency?: number;
  /** Machine timing (storm-client StormPace); saturation when absent. */
  pace?: StormPace;
  /** Abort (and fail) after this long. */
  timeoutMs?: number;
  keepWorkDir?: boolean;
  log?: (line: string) => void;
  /**
   * An operator works in the cluster repo during the storm: an action about every `everyMs`
   * (own commits, hand edits of finished hosts, and with `maintenance` git gc / repack / prune).
   */
  operator?: { everyMs: number; maintenance: boolean };
}

export interface KillRecord {
  /** Acknowledged changes when the kill was decided. */
  atAck: number;
  acksChecked: number;
  checkMs: number;
  restartMs: number;
}

export interface CrashLoopResult {
  workDir: string;
  machines: number;
  kills: KillRecord[];
  /** Server processes started, including the first. */
  starts: number;
  storm: StormResult;
  /** Every violated guarantee, as a sentence; [] = crash safe. */
  violations: string[];
  seconds: number;
  /** What the operator did (with `operator`). */
  operator?: { commits: number; handEdits: number; maintenanceRuns: number; maintenanceErrors: string[] };
}

/** Integers in [lo, hi), one at a random spot of each of `n` equal slots: kills spread over the storm. */
function spreadThresholds(n: number, lo: number, hi: number): number[] {
  const width = (hi - lo) / n;
  return Array.from({ length: n }, (_, k) => Math.floor(lo + width * (k + Math.random())));
}

export async function runCrashLoop(opts: CrashLoopOptions): Promise<CrashLoopResult> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  const env = await prepareStormEnv(opts.machines, 'mayu-crash-');
  const serials = Array.from({ length: opts.machines }, (_, i) => serialFor(i));
  const violations: string[] = [];
  const kills: KillRecord[] = [];
  let server: MayuServer = await startMayuServer(env);
  const finished = new Set<string>();
  /** When the server was down: [kill, listening again]; a hand edit then is overwritten by the repair (README). */
  const downTimes: [number, number][] = [];
  const operator: OperatorActivity | undefined = opts.operator && startOperator(env.clusterDir, { ...opts.operator, finishedHosts: () => [...finished] });
  let starts = 1;
  let generation = 0;
  const target = new Target(server.url);

  // Four acknowledged changes per machine (first-stage, final config, installed, running); kills
  // land between 5 % and 95 % of them, so each one interrupts writes, not just reads.
  const total = opts.machines * 4;
  const last = Math.floor(total * 0.95);
  let thresholds = spreadThresholds(opts.kills, Math.floor(total * 0.05), last);
  let cycle: Promise<void> | undefined;
  let aborted: string | undefined;
  const acksSoFar: Ack[] = [];
  let acked = 0;
  const seenRefs = new Set<string>();
  const seenFsck = new Set<string>();

  const killCycle = async (atAck: number): Promise<void> => {
    await sleep(Math.random() * 100); // a random moment, not exactly at an answer
    target.down();
    const killedAt = Date.now();
    await server.kill9();
    // Everything acknowledged so far came from a live server after it was durable.
    const acks = acksSoFar.slice();
    const r0 = performance.now();
    try {
      server = await startMayuServer(env);
    } catch (err) {
      aborted = `server did not start after kill #${kills.length + 1}: ${(err as Error).message}`;
      violations.push(aborted);
      target.up('http://127.0.0.1:1'); // nothing listens there: waiting machines fail fast and stop
      throw err;
    }
    const restartMs = performance.now() - r0;
    downTimes.push([killedAt, Date.now()]);
    const f0 = performance.now();
    // The restarted mayu may merge packs under fsck (and the operator repacks): settled results only.
    const fsck = gitFsckSettled(env.clusterDir);
    // Each distinct fsck failure once: a broken repo stays broken over the following kills.
    if (!fsck.ok && !seenFsck.has(fsck.output)) violations.push(`after kill #${kills.length + 1}: git fsck --full failed:\n${fsck.output}`);
    if (!fsck.ok) seenFsck.add(fsck.output);
    for (const ref of strayRefs(env.clusterDir)) {
      if (!seenRefs.has(ref)) violations.push(`after kill #${kills.length + 1}: stray ref in ${env.clusterDir}/.git (git lists it as a branch): ${ref}`);
      seenRefs.add(ref);
    }
    const confs = gitHeadConfs(env.clusterDir, [...new Set(acks.map((a) => a.serial))]);
    violations.push(...checkAcks(acks, confs, gitSubjectCounts(env.clusterDir)).map((v) => `after kill #${kills.length + 1}: ${v}`));
    if (operator) violations.push(...operatorCommitsMissing(env.clusterDir, operator).map((v) => `after kill #${kills.length + 1}: ${v}`));
    const checkMs = performance.now() - f0;
    starts++;
    generation++;
    kills.push({ atAck, acksChecked: acks.length, checkMs: Math.round(checkMs), restartMs: Math.round(restartMs) });
    log(`kill #${kills.length} at ${atAck}/${total} acknowledged changes: restarted in ${Math.round(restartMs)} ms, ${acks.length} acks checked in ${Math.round(checkMs)} ms`);
    target.up(server.url);
  };

  const timeoutMs = opts.timeoutMs ?? 600_000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`crash loop did not finish within ${timeoutMs} ms: ${acked}/${total} acknowledged changes, ${kills.length} kills, server ${target.isDown ? 'down' : `up at ${target.url}`}; its last output:\n${server.tail()}`)), timeoutMs);
  });

  const stormPromise = runStorm(target, {
    machines: opts.machines,
    concurrency: opts.concurrency ?? 256,
    pace: opts.pace,
    maxAttempts: 400,
    requestTimeoutMs: 30_000,
    generation: () => generation,
    onAck: (ack) => {
      acksSoFar.push(ack);
      if (ack.route === 'boot_complete') finished.add(ack.serial);
      acked = acksSoFar.length;
      if (cycle || aborted || thresholds.length === 0 || acked < thresholds[0]!) return;
      thresholds.shift();
      cycle = killCycle(acked).finally(() => {
        cycle = undefined;
        // Kills must not follow each other with no work in between: spread the remaining ones
        // over what is left of the storm after this restart.
        if (thresholds.length) thresholds = spreadThresholds(thresholds.length, acked + 1, Math.max(last, acked + 1 + thresholds.length));
      });
      // Any failure of the cycle ends the loop: the machines must not wait for a server forever.
      cycle.catch((err: Error) => {
        if (aborted) return;
        aborted = `kill cycle #${kills.length + 1} failed: ${err.stack ?? err.message}`;
        violations.push(aborted);
        target.up('http://127.0.0.1:1');
      });
    },
    stopReason: () => aborted,
  });

  let storm: StormResult;
  try {
    storm = await Promise.race([stormPromise, timeout]);
    while (cycle) await cycle.catch(() => {});
  } catch (err) {
    // Timed out: stop the machines and the server before reporting, leave nothing running.
    aborted ??= (err as Error).message;
    target.up('http://127.0.0.1:1');
    await server.kill9();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  if (aborted) {
    // The last server did not start: nothing to stop, nothing more to check.
    return { workDir: env.workDir, machines: opts.machines, kills, starts, storm, violations, seconds: (performance.now() - t0) / 1000 };
  }

  for (const [serial, reason] of storm.failures) violations.push(`machine ${serial} did not finish: ${reason}`);
  // Connection errors are what a kill does; a 5xx from a live server is a server bug even if retried.
  for (const [cause, sample] of storm.errorSamples) violations.push(`${storm.retries.get(cause)} × ${cause} (retried), first: ${sample}`);
  await operator?.stop();
  // The last hand edits are taken by the next scan (--outside-check-ms, 1 s).
  if (operator) await sleep(2500);
  let apiHosts: Record<string, unknown>[];
  try {
    apiHosts = await getJson<Record<string, unknown>[]>(`${server.url}/admin/hosts`);
  } finally {
    // A clean stop first: the last answers may have come from the journal, a moment ahead of git.
    await server.stop();
  }
  const confs = gitHeadConfs(env.clusterDir, serials);
  violations.push(...checkAcks(storm.acks, confs, gitSubjectCounts(env.clusterDir)).map((v) => `at the end: ${v}`));
  if (operator) {
    violations.push(...operatorCommitsMissing(env.clusterDir, operator).map((v) => `at the end: ${v}`));
    // A hand edit is taken within --outside-check-ms (1 s); one a kill overtook, or made while
    // the server was down, is overwritten by the repair after the kill (README).
    for (const e of operator.handEdits) {
      if (downTimes.some(([down, up]) => e.at > down - 3000 && e.at <= up)) continue;
      const got = confs.get(e.serial)?.ProviderId;
      if (got !== e.providerId) violations.push(`at the end: hand edit of ${e.serial} (ProviderId ${e.providerId}) is not in HEAD (has ${String(got)})`);
    }
    log(`operator: ${operator.commits.length} commits, ${operator.handEdits.length} hand edits, ${operator.maintenanceRuns.length} maintenance runs (${operator.maintenanceErrors.length} failed)`);
  }
  violations.push(...checkFinalHosts(apiHosts, confs, serials, PROFILE_QUANTITIES));
  const fsck = gitFsckResult(env.clusterDir);
  if (!fsck.ok && !seenFsck.has(fsck.output)) violations.push(`at the end: git fsck --full failed:\n${fsck.output}`);
  // The clean stop left git's index equal to HEAD and the working tree in step with it.
  const status = gitStatusPorcelain(env.clusterDir);
  if (status) violations.push(`at the end: git status --porcelain is not empty:\n${status.split('\n').slice(0, 5).join('\n')}`);
  // Leftovers of killed writes must be cleaned up by the restarts, not pile up forever.
  const garbage = gitGarbage(env.clusterDir);
  if (garbage.count) violations.push(`at the end: ${garbage.count} garbage files (${garbage.kib} KiB) under .git/objects left by killed processes: ${garbage.files.slice(0, 5).join(', ')}`);
  if (!opts.keepWorkDir && violations.length === 0) await rm(env.workDir, { recursive: true, force: true });
  const did = operator && { commits: operator.commits.length, handEdits: operator.handEdits.length, maintenanceRuns: operator.maintenanceRuns.length, maintenanceErrors: operator.maintenanceErrors };
  return { workDir: env.workDir, machines: opts.machines, kills, starts, storm, violations, seconds: (performance.now() - t0) / 1000, operator: did };
}

/** Operator commits that reached the branch must stay reachable from HEAD. */
function operatorCommitsMissing(dir: string, operator: OperatorActivity): string[] {
  const reachable = new Set(execFileSync('git', ['-C', dir, 'rev-list', 'HEAD'], { encoding: 'utf8', maxBuffer: 256 << 20 }).split('\n'));
  return operator.commits.filter((c) => !reachable.has(c)).map((c) => `operator commit ${c} is not reachable from HEAD`);
}
