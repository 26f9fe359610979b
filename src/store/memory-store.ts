import { encodeHost } from '../core/host.ts';
import type { Step } from '../core/host-changes.ts';
import { HostTable } from './host-table.ts';
import { hostCommitMessage, type ClusterConfig, type CommitInfo, type HostStore, type RecordWrite } from './store.ts';

/** For tests of the service and routes: same contract as the git store, nothing on disk. */
export class MemoryStore implements HostStore {
  readonly kind = 'files' as const;
  private readonly table = new HostTable();
  private readonly log: (CommitInfo & { serial: string; conf: string | undefined })[] = [];

  constructor(private readonly config: ClusterConfig = { DefaultEtcdClusterToken: '0'.repeat(32) }) {}

  get(serial: string) { return this.table.get(serial); }
  all() { return this.table.all(); }
  scan() { return this.table.values(); }
  size() { return this.table.size(); }
  index() { return this.table.index; }
  sideFile(serial: string, name: string) { return this.table.sideFiles(serial)[name]; }
  clusterConfig() { return { ...this.config }; }

  async apply(serial: string, steps: readonly Step[]): Promise<string | undefined> {
    this.table.apply(serial, steps);
    for (const s of steps) {
      this.log.push({ serial, commit: String(this.log.length + 1).padStart(40, '0'), time: new Date().toISOString(), message: hostCommitMessage(serial, s.message), conf: encodeHost(s.host) });
    }
    return steps.length > 0 ? this.log.at(-1)!.commit : undefined;
  }

  async remove(serial: string, message: string): Promise<string | undefined> {
    this.table.remove(serial);
    // No conf.json at a removal commit: confAt() finds nothing there, as in git.
    this.log.push({ serial, commit: String(this.log.length + 1).padStart(40, '0'), time: new Date().toISOString(), message: hostCommitMessage(serial, message), conf: undefined });
    return this.log.at(-1)!.commit;
  }

  private readonly recordFiles = new Map<string, Map<string, string>>();

  records(folder: string): ReadonlyMap<string, string> {
    return this.recordFiles.get(folder) ?? new Map();
  }

  async applyRecords(writes: readonly RecordWrite[], message: string): Promise<string | undefined> {
    for (const w of writes) {
      let files = this.recordFiles.get(w.folder);
      if (!files) this.recordFiles.set(w.folder, (files = new Map()));
      if (w.content === undefined) files.delete(w.name);
      else files.set(w.name, w.content);
    }
    const serial = message.includes(': ') ? message.slice(0, message.indexOf(': ')) : '';
    this.log.push({ serial, commit: String(this.log.length + 1).padStart(40, '0'), time: new Date().toISOString(), message, conf: undefined });
    return this.log.at(-1)!.commit;
  }

  writeQueueDepth() { return 0; }

  async settled(): Promise<void> {}
  async flushHistory(): Promise<void> {}

  async settledFor(_serial: string): Promise<void> {}

  async history(serial: string): Promise<CommitInfo[]> {
    return this.log.filter((c) => c.serial === serial).reverse().map(({ serial: _s, conf: _c, ...c }) => c);
  }

  async confAt(serial: string, commit: string): Promise<string | undefined> {
    return this.log.find((c) => c.serial === serial && c.commit === commit)?.conf;
  }

  /** Every commit message so far, oldest first. */
  messages(): string[] {
    return this.log.map((c) => c.message);
  }

  async close(): Promise<void> {}
}
