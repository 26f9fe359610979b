import { rm } from 'node:fs/promises';
import { checkAcks, checkFinalHosts, gitFsckResult, gitGarbage, gitHeadConfs, gitStatusPorcelain, gitSubjectCounts, strayRefs } from './storm-checks.ts';
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
    const f0 = performance.now();
    const fsck = gitFsckResult(env.clusterDir);
    // Each distinct fsck failure once: a broken repo stays broken over the following kills.
    if (!fsck.ok && !seenFsck.has(fsck.output)) violations.push(`after kill #${kills.length + 1}: git fsck --full failed:\n${fsck.output}`);
    if (!fsck.ok) seenFsck.add(fsck.output);
    for (const ref of strayRefs(env.clusterDir)) {
      if (!seenRefs.has(ref)) violations.push(`after kill #${kills.length + 1}: stray ref in ${env.clusterDir}/.git (git lists it as a branch): ${ref}`);
      seenRefs.add(ref);
    }
    const confs = gitHeadConfs(env.clusterDir, [...new Set(acks.map((a) => a.serial))]);
    violations.push(...checkAcks(acks, confs, gitSubjectCounts(env.clusterDir)).map((v) => `after kill #${kills.length + 1}: ${v}`));
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
  let apiHosts: Record<string, unknown>[];
  try {
    apiHosts = await getJson<Record<string, unknown>[]>(`${server.url}/admin/hosts`);
  } finally {
    // A clean stop first: the last answers may have come from the journal, a moment ahead of git.
    await server.stop();
  }
  const confs = gitHeadConfs(env.clusterDir, serials);
  violations.push(...checkAcks(storm.acks, confs, gitSubjectCounts(env.clusterDir)).map((v) => `at the end: ${v}`));
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
  return { workDir: env.workDir, machines: opts.machines, kills, starts, storm, violations, seconds: (performance.now() - t0) / 1000 };
}
