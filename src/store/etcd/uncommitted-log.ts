import type { CommitInfo } from '../store.ts';
import type { LogEntry, TrailerPosition } from './change-log.ts';

// Changes in etcd that git does not have yet (the history writer trails, or is down): what a
// replica's history answers show on top of git's commits, marked `uncommitted`, until git has
// them. Fed from a watch on the `log` key from git's last trailer on; each history read first
// drops what git has meanwhile (same positions as the trailers), so nothing shows twice.

/** A history entry from etcd, not yet a git commit: `commit` is `etcd-<revision>-<change>`. */
export interface UncommittedCommit extends CommitInfo {
  uncommitted: true;
}

interface Pending {
  revision: number;
  index: number;
  serial: string;
  message: string;
  time: string;
  /** conf.json after the change (null: removed; undefined: not a host change). */
  conf: string | null | undefined;
}

/** Kept at most: past it the oldest go (git trails by that many changes: the writer is down). */
const MAX_PENDING = 20_000;

export class UncommittedLog {
  private entries: Pending[] = [];
  /** Entries dropped because of MAX_PENDING or a compaction (history answers cannot show them). */
  dropped = 0;

  add(revision: number, changes: readonly LogEntry[], from = 0): void {
    for (let i = from; i < changes.length; i++) {
      const c = changes[i]!;
      this.entries.push({ revision, index: i, serial: c.serial, message: c.message, time: c.time, conf: c.records ? undefined : c.conf });
    }
    if (this.entries.length > MAX_PENDING) {
      this.dropped += this.entries.length - MAX_PENDING;
      this.entries.splice(0, this.entries.length - MAX_PENDING);
    }
  }

  /** Forgets every entry (a new watch of the log starts); `gap`: some could not be read again (compacted). */
  clear(gap: boolean): void {
    this.entries = [];
    if (gap) this.dropped++;
  }

  /** Drops what git has: every change at or before its newest trailer. */
  prune(git: TrailerPosition | undefined): void {
    if (!git) return;
    let n = 0;
    while (n < this.entries.length && atOrBefore(this.entries[n]!, git)) n++;
    if (n > 0) this.entries.splice(0, n);
  }

  /** The host's changes git does not have yet, newest first. */
  forSerial(serial: string): UncommittedCommit[] {
    const out: UncommittedCommit[] = [];
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i]!;
      if (e.serial !== serial) continue;
      out.push({ commit: idOf(e), time: new Date(e.time).toISOString().replace(/\.\d{3}Z$/, 'Z'), message: `${serial}: ${e.message}`, uncommitted: true });
    }
    return out;
  }

  /** conf.json after the change `id` names (for the dashboard's diff); undefined once git has it. */
  confOf(serial: string, id: string): string | undefined {
    const e = this.entries.find((x) => x.serial === serial && idOf(x) === id);
    return e?.conf ?? undefined;
  }

  get size(): number {
    return this.entries.length;
  }
}

export function isUncommittedId(id: string): boolean {
  return /^etcd-\d+-\d+$/.test(id);
}

function idOf(e: Pending): string {
  return `etcd-${e.revision}-${e.index + 1}`;
}

function atOrBefore(e: Pending, git: TrailerPosition): boolean {
  return e.revision < git.revision || (e.revision === git.revision && e.index <= git.index);
}
