import type { Etcd3, IKeyValue, Lease, Watcher } from 'etcd3';
import { decodeHost } from '../../core/host.ts';
import type { TimeZone } from '../../core/tzif.ts';
import { GitStore } from '../git-store.ts';
import { decodeLog, parseTrailer, resumePoint, trailer, type LogEntry } from './change-log.ts';
import { fragmented, resumeAfterLastEvent } from './connect.ts';
import { GitHistoryReader } from './git-history-reader.ts';
import type { EtcdKeys } from './keys.ts';

// The one replica at a time that turns etcd's change stream into the audit history: each
// revision of the `log` key (one transaction, any number of changes) becomes one commit per
// change, in revision order, with the change's 0.11 message and time, through the git store
// (the same commit-writing path, journal and repo format as single-node mayu). Every commit
// records its place in a trailer (Mayu-Etcd-Revision, Mayu-Etcd-Change i/n); a writer starts
// after the last one git has, so a failover leaves no gap and no duplicate.
//
// Who writes: an election on a lease (history-writer/<lease id> keys, the oldest wins). A writer
// stops submitting commits once its lease could have expired (its last keep-alive plus the TTL,
// less a second's margin), before another replica can win the election; the git store's journal
// makes a killed writer's acknowledged commits whole when the next one opens the repo.

export interface HistoryWriterOptions {
  client: Etcd3;
  keys: EtcdKeys;
  /** The cluster repo (shared by the replicas that may write it). */
  dir: string;
  /** cluster.json's default etcd token: a new repo's cluster.json gets the one etcd has. */
  token: string;
  /** This replica, as the election shows it. */
  replicaId: string;
  zone?: TimeZone;
  leaseTtlSeconds?: number;
  onElected?: () => void;
  /** Writing stopped (lease lost, git failed, a gap in etcd's history); the replica campaigns again. */
  onStopped?: (reason: Error) => void;
  /** A revision of the log key mayu did not write: reported, never committed. */
  onBadLog?: (revision: number, err: Error) => void;
  /** After each checkpoint of the repo (the audit push). */
  onCheckpoint?: () => void;
}

export class HistoryWriter {
  private closed = false;
  private lease: Lease | undefined;
  private git: GitStore | undefined;
  private watcher: Watcher | undefined;
  private validUntil = 0;
  private stop: ((err: Error) => void) | undefined;
  private readonly loop: Promise<void>;
  /** Position of the newest change submitted to git (for tests and the lag metric). */
  private submitted: { revision: number; index: number } | undefined;
  leading = false;

  constructor(private readonly opts: HistoryWriterOptions) {
    this.loop = this.run();
  }

  get position(): { revision: number; index: number } | undefined {
    return this.submitted;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stop?.(new Error('closing'));
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      let reason: Error;
      try {
        reason = await this.term();
      } catch (err) {
        reason = err as Error;
      }
      this.leading = false;
      await this.watcher?.cancel().catch(() => undefined);
      this.watcher = undefined;
      // Everything submitted while the lease was ours is written before the repo is let go.
      await this.git?.close().catch(() => undefined);
      this.git = undefined;
      await this.lease?.revoke().catch(() => undefined);
      this.lease = undefined;
      if (!this.closed) {
        this.opts.onStopped?.(reason);
        await sleep(1000);
      }
    }
  }

  /** One term: campaign, then write until the lease or git fails; resolves with why it ended. */
  private async term(): Promise<Error> {
    const ttl = this.opts.leaseTtlSeconds ?? 5;
    const ended = new Promise<Error>((resolve) => (this.stop = resolve));
    const lease = this.opts.client.lease(ttl);
    this.lease = lease;
    lease.on('lost', (err) => this.stop?.(new Error(`lease lost: ${err.message}`)));
    lease.on('keepaliveSucceeded', () => (this.validUntil = Date.now() + (ttl - 1) * 1000));
    const id = await lease.grant();
    this.validUntil = Date.now() + (ttl - 1) * 1000;
    const key = this.opts.keys.election + id;
    await lease.put(key).value(this.opts.replicaId);
    // The oldest key under the election prefix leads; the others wait for it to go.
    for (;;) {
      const first = await this.opts.client.getAll().prefix(this.opts.keys.election).sort('Create', 'Ascend').limit(1).keys();
      if (first[0] === key) break;
      const stopped = await Promise.race([ended, sleep(300).then(() => undefined)]);
      if (stopped) return stopped;
    }
    if (this.closed) return new Error('closing');
    this.leading = true;
    this.opts.onElected?.();
    const times: Date[] = [];
    this.git = await GitStore.open({
      dir: this.opts.dir,
      randomBytes: () => Buffer.from(this.opts.token, 'hex'),
      zone: this.opts.zone,
      // Each commit carries its change's time; the git store asks once per commit, in order.
      now: () => times.shift() ?? new Date(),
      compactInWorker: true,
      onCheckpoint: this.opts.onCheckpoint,
      // Hosts live in etcd: operators' commits here stay in history, files are never read back.
      outsideChanges: 'history-only',
      // A commit with a revision trailer that is not ours: another writer (a stale one finishing,
      // or the one elected after this one). This one's unflushed commits are dropped and it
      // stops; elected again, it starts from git's last trailer: no gap, no duplicate.
      yieldsTo: (message) => {
        if (parseTrailer(message) === undefined) return false;
        queueMicrotask(() => this.stop?.(new Error('another history writer moved the branch: starting again from git')));
        return true;
      },
    });
    const reader = new GitHistoryReader(this.opts.dir);
    const pos = await reader.lastPosition().finally(() => reader.close());
    const from = resumePoint(pos, Number(await this.opts.client.get(this.opts.keys.historyStart).string() ?? '1'));
    const start = from.revision;
    const skip = from.skip;
    const git = this.git;
    this.watcher = resumeAfterLastEvent(await fragmented(this.opts.client.watch().key(this.opts.keys.log).startRevision(String(start))).create());
    this.watcher.on('error', (err) => this.stop?.(new Error(`watch of the change log failed (etcd compacted revisions git has not taken yet: a gap): ${err.message}`)));
    this.watcher.on('put', (kv: IKeyValue) => {
      const revision = Number(kv.mod_revision);
      const from = revision === start ? skip : 0;
      const last = commitLogRevision({
        git, revision, value: kv.value.toString(), from, times,
        proceed: () => {
          if (!this.leading) return false;
          if (Date.now() > this.validUntil) {
            this.stop?.(new Error('lease may have expired (no keep-alive answered in time): stopped writing'));
            this.leading = false;
            return false;
          }
          return true;
        },
        onBad: (err) => this.opts.onBadLog?.(revision, err),
        onFailed: (err) => this.stop?.(new Error(`git write failed: ${err.message}`)),
      });
      if (last !== undefined) this.submitted = { revision, index: last };
    });
    return ended;
  }
}

/**
 * One revision of the log key into git: one commit per change from `from` on, each with its
 * trailer and time (pushed on `times`, which the git store asks once per commit). A revision
 * mayu did not write is reported and nothing is committed. Returns the index of the last change
 * submitted (undefined: none). Shared by the history writer and `mayu migrate --to git`'s catch-up.
 */
export function commitLogRevision(o: {
  git: GitStore; revision: number; value: string; from: number; times: Date[];
  proceed: () => boolean; onBad: (err: Error) => void; onFailed: (err: Error) => void;
}): number | undefined {
  let entries: LogEntry[];
  try {
    entries = decodeLog(o.value);
  } catch (err) {
    o.onBad(err as Error);
    return undefined;
  }
  let last: number | undefined;
  for (let i = o.from; i < entries.length; i++) {
    if (!o.proceed()) return last;
    const e = entries[i]!;
    const message = `${e.message}\n\n${trailer(o.revision, i, entries.length)}`;
    let host;
    try {
      host = e.conf === null || e.records ? undefined : decodeHost(JSON.parse(e.conf));
    } catch (err) {
      o.onBad(new Error(`change ${i + 1} (${e.serial}): ${(err as Error).message}`));
      continue;
    }
    o.times.push(new Date(e.time));
    const written = e.records
      ? o.git.applyRecords(e.records.map((r) => ({ folder: r.folder, name: r.name, content: r.content ?? undefined })), `${e.serial}: ${message}`)
      : host === undefined
      ? o.git.remove(e.serial, message)
      : o.git.apply(e.serial, [{ message, host, ...(e.files ? { files: e.files } : {}) }]);
    written.catch(o.onFailed);
    last = i;
  }
  return last;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
