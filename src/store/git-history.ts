import type { ParsedCommit } from '../git/objects.ts';
import type { CommitInfo } from './store.ts';
import { withoutTrailer } from './etcd/change-log.ts';

// Per-host audit trail. Commits written by this process are indexed as they are made; the
// history before start-up is read once, on the first request, by walking commit objects only
// (filtering by path would read every root tree and is ~30x slower).

export type ReadCommit = (oid: string) => Promise<ParsedCommit>;

function serialOf(message: string): string | undefined {
  const i = message.indexOf(': ');
  return i > 0 ? message.slice(0, i) : undefined;
}

function toInfo(commit: string, message: string, timestamp: number): CommitInfo {
  // A cluster repo once kept by replicas' history writer: its trailers are not part of the message shown.
  return { commit, message: withoutTrailer(message.replace(/\n$/, '')), time: new Date(timestamp * 1000).toISOString().replace('.000Z', 'Z') };
}

interface Recorded {
  commit: string;
  message: string;
  timestamp: number;
}

export class GitHistory {
  private base: string | undefined;
  private older: Promise<Map<string, CommitInfo[]>> | undefined;
  /**
   * Commits of this process, oldest first: as recorded, the CommitInfo made when read (a storm
   * records 100 000 of them: 38 MB as CommitInfo objects with their time strings and wrappers).
   */
  private readonly recent: Recorded[] = [];
  private readonly recentBySerial = new Map<string, Recorded[]>();

  constructor(private readonly readCommit: ReadCommit) {}

  setBase(head: string): void {
    this.base = head;
  }

  record(commit: string, message: string, timestamp: number): void {
    const serial = serialOf(message);
    const entry: Recorded = { commit, message, timestamp };
    this.recent.push(entry);
    if (serial) {
      const list = this.recentBySerial.get(serial);
      if (list) list.push(entry);
      else this.recentBySerial.set(serial, [entry]);
    }
  }

  /** Drops commits recorded after `head` (their batch failed to land). */
  forgetAfter(head: string | undefined): void {
    while (this.recent.length > 0 && this.recent[this.recent.length - 1]!.commit !== head) {
      const serial = serialOf(this.recent.pop()!.message);
      if (serial) this.recentBySerial.get(serial)?.pop();
    }
  }

  async forSerial(serial: string): Promise<CommitInfo[]> {
    const older = (await this.loadOlder()).get(serial) ?? [];
    const recent = (this.recentBySerial.get(serial) ?? []).map((r) => toInfo(r.commit, r.message, r.timestamp)).reverse();
    return [...recent, ...older];
  }

  private loadOlder(): Promise<Map<string, CommitInfo[]>> {
    this.older ??= (async () => {
      const bySerial = new Map<string, CommitInfo[]>();
      if (!this.base) return bySerial;
      // First parents only: mayu's history is linear.
      let oid: string | undefined = this.base;
      while (oid) {
        const commit = await this.readCommit(oid);
        const serial = serialOf(commit.message);
        if (serial) {
          const list = bySerial.get(serial) ?? [];
          list.push(toInfo(oid, commit.message, commit.timestamp));
          bySerial.set(serial, list);
        }
        oid = commit.parents[0];
      }
      return bySerial;
    })();
    return this.older;
  }
}
