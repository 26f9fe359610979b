import { applyDelta, computeDelta } from './delta.ts';

// The root trees of one batch of commits, as they are made (oldest first). Every commit has its
// own root tree, one entry per host: 400 KB at 10 000 hosts. Keeping each whole until the batch
// was packed held batch size × 400 KB (a 10 000-machine storm queues thousands of commits per
// batch: GBs of RSS). Here each tree becomes a delta of the next one as soon as that exists, so
// a batch holds one whole tree and its deltas (tens of bytes each).

export type ChainRecord =
  | { oid: string; content: Buffer; baseOid?: undefined; delta?: undefined }
  | { oid: string; baseOid: string; delta: Buffer; content?: undefined };

export class RootChain {
  private newest: { oid: string; content: Buffer } | undefined;
  /** Oldest first; each a delta against the next newer tree (or `newest`). */
  private readonly older: { oid: string; delta: Buffer }[] = [];
  private readonly oids = new Set<string>();

  push(oid: string, content: Buffer): void {
    if (this.newest?.oid === oid) return;
    if (this.newest) this.older.push({ oid: this.newest.oid, delta: computeDelta(content, this.newest.content) });
    this.newest = { oid, content };
    this.oids.add(oid);
  }

  /** Distinct trees: the pack's count for them. */
  get size(): number {
    return this.oids.size;
  }

  /**
   * Newest first: the newest whole, each older one a delta of the one placed before it, whole
   * again every `maxDepth + 1` (rebuilt from the deltas: only batches longer than that pay it).
   * A tree met again (a change undone within the batch) is placed once.
   */
  *newestFirst(maxDepth: number): Generator<ChainRecord> {
    if (!this.newest) return;
    const placed = new Set<string>([this.newest.oid]);
    yield { oid: this.newest.oid, content: this.newest.content };
    let whole = this.newest.content;
    let pending: Buffer[] = [];
    let baseOid = this.newest.oid;
    let depth = 0;
    for (let i = this.older.length - 1; i >= 0; i--) {
      const { oid, delta } = this.older[i]!;
      pending.push(delta);
      if (placed.has(oid)) {
        baseOid = oid;
        continue;
      }
      placed.add(oid);
      if (depth < maxDepth) {
        yield { oid, baseOid, delta };
        depth++;
      } else {
        for (const d of pending) whole = applyDelta(whole, d);
        pending = [];
        yield { oid, content: whole };
        depth = 0;
      }
      baseOid = oid;
    }
  }
}
