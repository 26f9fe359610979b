import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchWriter, MAX_BATCH } from '../src/store/batch-writer.ts';

// The etcd history writer submits a whole backlog to the git store at once (after a failover:
// tens of thousands of changes). Each commit of a batch holds a copy of the root tree until the
// batch is packed, so a batch is cut at MAX_BATCH; the rest follow in order.

describe('batch writer: batches of at most MAX_BATCH', () => {
  it('a backlog submitted at once is written in batches of MAX_BATCH, in order, each acknowledged', async () => {
    const batches: number[][] = [];
    const writer = new BatchWriter<number>(async (items) => {
      batches.push(items);
      await new Promise((r) => setTimeout(r, 1));
    }, () => {});
    const n = 2 * MAX_BATCH + 7;
    await Promise.all(Array.from({ length: n }, (_, i) => writer.submit(i)));
    assert.deepEqual(batches.map((b) => b.length), [MAX_BATCH, MAX_BATCH, 7]);
    assert.deepEqual(batches.flat(), Array.from({ length: n }, (_, i) => i));
  });

  it('a failed batch still fails everything queued behind it, the cut-off part included', async () => {
    let calls = 0;
    const rolledBack: number[] = [];
    const writer = new BatchWriter<number>(async () => {
      calls++;
      if (calls === 1) throw new Error('disk full');
    }, (items) => rolledBack.push(...items));
    const results = await Promise.allSettled(Array.from({ length: MAX_BATCH + 3 }, (_, i) => writer.submit(i)));
    assert.equal(calls, 1);
    assert.ok(results.every((r) => r.status === 'rejected'));
    assert.equal(rolledBack.length, MAX_BATCH + 3);
    assert.equal(rolledBack[0], MAX_BATCH + 2, 'newest first');
  });
});
