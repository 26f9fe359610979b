import { applyDelta, computeDelta, spliceDelta } from './delta.ts';
import type { TreeSplice } from './objects.ts';

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
  /** TreeSplice.seq of the newest tree, when it came with one. */
  private newestSeq: number | undefined;

  /** `splice`: where `content` differs from the tree pushed before (RootTree.lastSplice), if known. */
  push(oid: string, content: Buffer, splice?: TreeSplice): void {
    if (this.newest?.oid === oid) return;
    // A splice describes one change: it fits only if the newest tree is the one just before it.
    const fits = splice && this.newestSeq !== undefined && splice.seq === this.newestSeq + 1 ? splice : undefined;
    if (this.newest) this.older.push({ oid: this.newest.oid, delta: this.deltaOfNewest(content, fits) });
    this.newest = { oid, content };
    this.newestSeq = splice?.seq;
    this.oids.add(oid);
  }

  /** The newest tree as a delta of `content`: from the splice when it fits, else by comparing. */
  private deltaOfNewest(content: Buffer, splice: TreeSplice | undefined): Buffer {
    const older = this.newest!.content;
    if (splice && older.length - splice.removed === content.length - splice.inserted && splice.offset + splice.inserted <= content.length) {
      return spliceDelta(content, older, splice.offset, content.length - splice.offset - splice.inserted);
    }
    return computeDelta(content, older);
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
