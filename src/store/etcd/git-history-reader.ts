import path from 'node:path';
import { GitObjectReader } from '../../git/object-reader.ts';
import { parseCommit, parseTree, TREE_MODE } from '../../git/objects.ts';
import { resolveHead } from '../../git/refs.ts';
import type { CommitInfo } from '../store.ts';
import { isEndOfEtcd, parseTrailer, withoutTrailer, type TrailerPosition } from './change-log.ts';

// The audit history as every replica reads it: the cluster repo the history writer keeps
// (history-writer.ts), read-only. Each read looks at the branch ref and indexes the commits added
// since the last read (first parents: the history is linear), so a replica that is not the
// writer answers `mayuctl history` from the same git as the one that is.

export class GitHistoryReader {
  private readonly reader: GitObjectReader;
  private indexedHead: string | undefined;
  private bySerial = new Map<string, CommitInfo[]>();
  private newestPosition: TrailerPosition | undefined;
  private syncing: Promise<void> = Promise.resolve();

  constructor(readonly dir: string) {
    this.reader = new GitObjectReader(path.join(dir, '.git'));
  }

  /** Newest first, messages without the etcd trailer. */
  async history(serial: string): Promise<CommitInfo[]> {
    await this.sync();
    return [...(this.bySerial.get(serial) ?? [])];
  }

  /** history() and lastPosition() of the same read of the branch. */
  async historyAt(serial: string): Promise<{ commits: CommitInfo[]; position: TrailerPosition | undefined }> {
    await this.sync();
    return { commits: [...(this.bySerial.get(serial) ?? [])], position: this.newestPosition };
  }

  async confAt(serial: string, commit: string): Promise<string | undefined> {
    if (!/^[0-9a-f]{40}$/.test(commit)) return undefined;
    await this.sync();
    const parsed = parseCommit((await this.reader.read(commit)).content);
    const dir = parseTree((await this.reader.read(parsed.tree)).content).find((e) => e.name === serial && e.mode === TREE_MODE);
    if (!dir) return undefined;
    const file = parseTree((await this.reader.read(dir.oid)).content).find((f) => f.name === 'conf.json');
    return file ? (await this.reader.read(file.oid)).content.toString('utf8') : undefined;
  }

  /** The etcd change the newest commit with a trailer records; undefined before the first. */
  async lastPosition(): Promise<TrailerPosition | undefined> {
    await this.sync();
    return this.newestPosition;
  }

  /**
   * The newest commit's trailer position, read from that one commit (cheap: for pruning while a
   * storm commits thousands a second); a full read when it has none (an operator's commit on top).
   */
  headPosition(): Promise<TrailerPosition | undefined> {
    // In the same queue as the full reads (they share the object reader).
    const run = this.syncing.catch(() => undefined).then(async () => {
      const head = await resolveHead(path.join(this.dir, '.git')).catch(() => undefined);
      if (!head) return undefined;
      if (head === this.indexedHead) return this.newestPosition;
      await this.reader.refresh();
      const c = parseCommit((await this.reader.read(head)).content);
      if (isEndOfEtcd(c.message)) return undefined;
      const position = parseTrailer(c.message);
      if (position) return position;
      await this.syncOnce();
      return this.newestPosition;
    });
    this.syncing = run.then(() => undefined);
    return run;
  }

  close(): Promise<void> {
    return this.reader.close();
  }

  private sync(): Promise<void> {
    this.syncing = this.syncing.catch(() => undefined).then(() => this.syncOnce());
    return this.syncing;
  }

  private async syncOnce(): Promise<void> {
    const head = await resolveHead(path.join(this.dir, '.git')).catch(() => undefined);
    if (!head || head === this.indexedHead) return;
    await this.reader.refresh();
    const added: { oid: string; message: string; timestamp: number }[] = [];
    let oid: string | undefined = head;
    while (oid && oid !== this.indexedHead) {
      const c = parseCommit((await this.reader.read(oid)).content);
      added.push({ oid, message: c.message, timestamp: c.timestamp });
      oid = c.parents[0];
    }
    // The old head is no longer an ancestor (history rewritten outside mayu): index it all anew.
    if (!oid && this.indexedHead) {
      this.bySerial = new Map();
      this.newestPosition = undefined;
    }
    for (const c of added.reverse()) {
      const message = c.message.replace(/\n$/, '');
      const i = message.indexOf(': ');
      if (i > 0) {
        const serial = message.slice(0, i);
        const list = this.bySerial.get(serial) ?? [];
        list.unshift({ commit: c.oid, message: withoutTrailer(message), time: new Date(c.timestamp * 1000).toISOString().replace('.000Z', 'Z') });
        this.bySerial.set(serial, list);
      }
      this.newestPosition = isEndOfEtcd(message) ? undefined : parseTrailer(message) ?? this.newestPosition;
    }
    this.indexedHead = head;
  }
}
