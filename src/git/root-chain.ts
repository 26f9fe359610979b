import { applyDelta, computeDelta, literalDelta } from './delta.ts';
import type { RootTree, TreeSplice } from './objects.ts';

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
  /** RootTree.seq when the newest tree was pushed. */
  private newestSeq = 0;

  /**
   * The tree's current state, after a commit. Its bytes are a view the tree changes in place:
   * kept only as the newest (read by newestFirst() before the tree changes again); the tree
   * pushed before becomes a delta made from what the changes since replaced.
   */
  push(oid: string, tree: RootTree): void {
    const content = tree.bytes;
    if (this.newest?.oid === oid) {
      this.newest = { oid, content };
      this.newestSeq = tree.seq;
      return;
    }
    if (this.newest) {
      const changes = tree.changesSince(this.newestSeq);
      if (!changes) throw new Error(`root tree changes since ${this.newestSeq} are no longer known (now ${tree.seq})`);
      this.older.push({ oid: this.newest.oid, delta: olderAsDelta(content, changes) });
    }
    this.newest = { oid, content };
    this.newestSeq = tree.seq;
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

/** The tree before `changes` (oldest first) as a delta of `content`, the tree after them. */
function olderAsDelta(content: Buffer, changes: readonly TreeSplice[]): Buffer {
  if (changes.length === 1) {
    const c = changes[0]!;
    return literalDelta(content.length, c.offset, c.old, content.length - c.offset - c.inserted);
  }
  // Several changes (an item that wrote more than one entry): undo them on a copy.
  let older = Buffer.from(content);
  for (let i = changes.length - 1; i >= 0; i--) {
    const c = changes[i]!;
    older = Buffer.concat([older.subarray(0, c.offset), c.old, older.subarray(c.offset + c.inserted)]);
  }
  return computeDelta(content, older);
}
