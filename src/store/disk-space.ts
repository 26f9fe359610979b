import { promises as fsp, statfsSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { describeWriteError } from '../fs/write-errors.ts';
import { JournalUnusableError } from '../git/journal.ts';

// The cluster directory's disk, watched (README "Full or failing disk"):
// - writes that fail: from the first refused change (or failed probe write) until a probe write
//   succeeds again (tried every interval, and at once after a change was stored meanwhile), /readyz is not ready and says why; one log line when it starts,
//   one when it ends, however many requests were refused in between (each answered 507);
// - free space (statfs): below the threshold new hosts are refused (507) while the changes of
//   known hosts go on, so the room left is theirs; again one log line per episode;
// - git trailing the journal, and working-tree copies not written: one line per episode too.

/** Size of the probe write: about a batch of a few changes in the journal. */
const PROBE_BYTES = 16 * 1024;
const PROBE_FILE = '.mayu-write-probe';

export interface FreeSpacePolicy {
  /** New hosts are refused below this many free bytes (0: no byte limit). */
  minFreeBytes: number;
  /** ... or below this share of the file system (0: no share limit). */
  minFreePercent: number;
}

export interface DiskSample {
  freeBytes: number;
  totalBytes: number;
}

/** A new host refused to keep the last free space for the changes of known hosts (507). */
export class NewHostsRefusedError extends Error {}

export interface StorageWatchOptions {
  /** A folder on the cluster directory's file system (statfs). */
  dir: string;
  /** Where the probe file is written: next to what must be writable (the journal's folder). */
  probeDir: string;
  policy: FreeSpacePolicy;
  logger: Logger;
  /** Free and total bytes for unprivileged writers; tests pass a fake. */
  statfs?: (dir: string) => DiskSample;
  /** How often free space is sampled and, while writes fail or space is low, a probe written. */
  intervalMs?: number;
}

interface Episode {
  since: Date;
  reason: string;
  /** Failures (refused changes, failed probes, failed checkpoints) during the episode. */
  count: number;
}

export class StorageWatch {
  private readonly statfs: (dir: string) => DiskSample;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private probing: Promise<void> | undefined;
  private last: DiskSample | undefined;
  /** Free space below the threshold: new hosts refused. */
  private low: Episode | undefined;
  /** Changes cannot be made durable. `stuck`: only a restart helps (journal unusable). */
  private failing: (Episode & { stuck: boolean }) | undefined;
  /** Acknowledged changes not written to git yet (they are in the journal). */
  private gitBehind: Episode | undefined;
  private mirrorFailing: Episode | undefined;
  private readonly refusedTotals = { new_host: 0, not_stored: 0 };

  constructor(private readonly opts: StorageWatchOptions) {
    this.statfs = opts.statfs ?? statfsBytes;
  }

  /** Samples now, then every intervalMs (the timer keeps no process alive). */
  start(): void {
    this.sample();
    const every = this.opts.intervalMs ?? 1000;
    this.timer = setInterval(() => {
      this.ticking ??= this.tick().finally(() => (this.ticking = undefined));
    }, every);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.ticking;
    await this.probing;
  }

  /** Bytes below which new hosts are refused, for a file system of this size. */
  threshold(totalBytes: number): number {
    const { minFreeBytes, minFreePercent } = this.opts.policy;
    return Math.max(minFreeBytes, Math.floor((totalBytes * minFreePercent) / 100));
  }

  /** Free space now (a fresh statfs; ~µs), updating the low-space episode. */
  sample(): DiskSample | undefined {
    try {
      this.last = this.statfs(this.opts.dir);
    } catch (err) {
      // statfs failing says nothing about space: keep the last figures, the writes tell the rest.
      this.opts.logger.debug({ err }, 'statfs of the cluster directory failed');
      return this.last;
    }
    this.updateLow(this.last);
    return this.last;
  }

  /** Throws NewHostsRefusedError while free space is below the threshold. Called before a new host is made. */
  admitNewHost(): void {
    this.sample();
    if (!this.low || !this.last) return;
    this.low.count++;
    this.refusedTotals.new_host++;
    const { freeBytes, totalBytes } = this.last;
    throw new NewHostsRefusedError(
      `new hosts are refused: the cluster directory's disk has ${formatBytes(freeBytes)} free, below the ${formatBytes(this.threshold(totalBytes))} ` +
      'kept for the changes of known hosts (config storage.min_free_bytes / storage.min_free_percent); nothing was changed',
    );
  }

  /**
   * A batch of changes became durable. That alone does not end a failing episode: on a full disk
   * the journal still takes a few changes into room its files already have, then refuses again.
   * A probe write (new room) decides, now instead of at the next tick.
   */
  writeSucceeded(): void {
    if (this.failing && !this.failing.stuck) void this.probeNow();
  }

  /** A batch of `changes` could not be made durable (each answered 507). */
  writeFailed(err: Error, changes = 1): void {
    this.refusedTotals.not_stored += changes;
    const stuck = err.cause instanceof JournalUnusableError || err instanceof JournalUnusableError;
    this.startFailing(`${describeWriteError(err.cause ?? err)}`, stuck, changes);
  }

  /** A checkpoint wrote the journal's changes to git. */
  checkpointSucceeded(): void {
    if (this.gitBehind) {
      const e = this.gitBehind;
      this.gitBehind = undefined;
      this.opts.logger.info({ since: e.since.toISOString(), seconds: secondsSince(e.since), failedCheckpoints: e.count }, 'storage: git has every acknowledged change again');
    }
    this.endMirrorFailing();
  }

  /** A checkpoint failed; the changes stand in the journal and it is retried. */
  checkpointFailed(err: Error): void {
    if (this.gitBehind) {
      this.gitBehind.count++;
      return;
    }
    this.gitBehind = { since: new Date(), reason: describeWriteError(err.cause ?? err), count: 1 };
    this.opts.logger.warn({ err, reason: this.gitBehind.reason }, 'storage: acknowledged changes not written to git yet (the journal keeps them; retried until it works)');
  }

  /** A working-tree copy (conf.json for operators) was not written; git has the change. */
  mirrorFailed(err: Error): void {
    if (this.mirrorFailing) {
      this.mirrorFailing.count++;
      return;
    }
    this.mirrorFailing = { since: new Date(), reason: describeWriteError(err), count: 1 };
    this.opts.logger.error({ err, reason: this.mirrorFailing.reason }, 'storage: working-tree copies of changes not written (git has the changes)');
  }

  /** For /readyz: why mayu cannot store changes now; empty when it can. */
  notReadyReasons(): string[] {
    const f = this.failing;
    if (!f) return [];
    const then = f.stuck ? 'restart mayu once the disk is fixed' : 'changes are answered 507 until a write succeeds';
    return [`changes cannot be stored since ${f.since.toISOString()}: ${f.reason}; ${then}`];
  }

  /** For /readyz: what an operator should see that does not stop machines from being served. */
  warnings(): string[] {
    const out: string[] = [];
    if (this.low && this.last) {
      out.push(`free space low: ${formatBytes(this.last.freeBytes)} free, below ${formatBytes(this.threshold(this.last.totalBytes))}: new hosts are refused (507), changes of known hosts go on`);
    }
    if (this.gitBehind) out.push(`git history trails the acknowledged changes since ${this.gitBehind.since.toISOString()}: ${this.gitBehind.reason} (the journal keeps them)`);
    if (this.mirrorFailing) out.push(`working-tree copies not written since ${this.mirrorFailing.since.toISOString()}: ${this.mirrorFailing.reason} (git has the changes)`);
    return out;
  }

  /** For /readyz and metrics. */
  status(): { freeBytes: number | null; minFreeBytes: number | null; newHostsRefused: boolean; writesFailing: boolean; refused: { new_host: number; not_stored: number } } {
    return {
      freeBytes: this.last?.freeBytes ?? null,
      minFreeBytes: this.last ? this.threshold(this.last.totalBytes) : null,
      newHostsRefused: this.low !== undefined,
      writesFailing: this.failing !== undefined,
      refused: { ...this.refusedTotals },
    };
  }

  private async tick(): Promise<void> {
    const s = this.sample();
    // A probe only when it can tell something: writes are failing (has the disk come back?) or
    // space is low (is it gone?). A disk with room is left alone.
    if ((this.failing && !this.failing.stuck) || this.low || (s && s.freeBytes < PROBE_BYTES)) await this.probeNow();
  }

  /** One probe at a time; callers in the meantime share it. */
  private probeNow(): Promise<void> {
    this.probing ??= this.probe().finally(() => (this.probing = undefined));
    return this.probing;
  }

  /** Writes and syncs a small file beside the journal, then removes it. */
  private async probe(): Promise<void> {
    const file = path.join(this.opts.probeDir, PROBE_FILE);
    try {
      const fh = await fsp.open(file, 'w');
      try {
        await fh.writeFile(Buffer.alloc(PROBE_BYTES, 0x6d));
        await fh.sync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      await fsp.rm(file, { force: true }).catch(() => undefined);
      this.startFailing(describeWriteError(err), false, 0);
      if (this.failing) this.failing.count++;
      return;
    }
    await fsp.rm(file, { force: true }).catch(() => undefined);
    if (this.failing && !this.failing.stuck) this.endFailing('a probe write succeeded');
    this.endMirrorFailing();
  }

  private startFailing(reason: string, stuck: boolean, changes: number): void {
    if (this.failing) {
      this.failing.count += changes;
      if (stuck && !this.failing.stuck) Object.assign(this.failing, { stuck, reason });
      return;
    }
    this.failing = { since: new Date(), reason, count: changes, stuck };
    this.opts.logger.error({ reason, freeBytes: this.last?.freeBytes, restartNeeded: stuck },
      `storage: changes cannot be stored (${reason}); they are refused (507) and /readyz is not ready until a write succeeds`);
  }

  private endFailing(how: string): void {
    const e = this.failing!;
    this.failing = undefined;
    this.opts.logger.info({ since: e.since.toISOString(), seconds: secondsSince(e.since), refusedChanges: e.count, how, freeBytes: this.last?.freeBytes },
      'storage: changes are stored again');
  }

  private endMirrorFailing(): void {
    if (!this.mirrorFailing) return;
    const e = this.mirrorFailing;
    this.mirrorFailing = undefined;
    this.opts.logger.info({ since: e.since.toISOString(), failures: e.count }, 'storage: the disk takes writes again; working-tree copies follow at each host\'s next change');
  }

  /** Hysteresis: the episode ends 1/16 above the threshold, so a disk hovering at it logs no line per write. */
  private updateLow(s: DiskSample): void {
    const threshold = this.threshold(s.totalBytes);
    if (!this.low && s.freeBytes < threshold) {
      this.low = { since: new Date(), reason: `${formatBytes(s.freeBytes)} free`, count: 0 };
      this.opts.logger.warn({ freeBytes: s.freeBytes, minFreeBytes: threshold },
        `storage: free space low (${formatBytes(s.freeBytes)} free, below ${formatBytes(threshold)}): new hosts are refused (507); changes of known hosts go on`);
    } else if (this.low && s.freeBytes >= threshold + threshold / 16) {
      const e = this.low;
      this.low = undefined;
      this.opts.logger.info({ freeBytes: s.freeBytes, minFreeBytes: threshold, since: e.since.toISOString(), seconds: secondsSince(e.since), refusedNewHosts: e.count },
        'storage: free space back above the threshold: new hosts are accepted again');
    }
  }
}

/** statfs of the folder: space an unprivileged writer may use (bavail), and the whole size. */
export function statfsBytes(dir: string): DiskSample {
  const s = statfsSync(dir);
  return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1).replace(/\.0$/, '')} ${units[i]}`;
}

function secondsSince(d: Date): number {
  return Math.round((Date.now() - d.getTime()) / 100) / 10;
}
