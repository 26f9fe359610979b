import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BatchWriter } from '../src/store/batch-writer.ts';

describe('batch writer (group commit queue)', () => {
  it('groups what arrives while a batch is written, in order', async () => {
    const batches: number[][] = [];
    const writer = new BatchWriter<number>(async (items) => {
      batches.push(items);
      await new Promise((r) => setTimeout(r, 5));
    }, () => {});
    await Promise.all([1, 2, 3].map((n) => writer.submit(n)));
    await Promise.all([writer.submit(4), writer.submit(5)]);
    assert.deepEqual(batches, [[1, 2, 3], [4, 5]]);
  });

  it('fails a batch and everything queued behind it, rolling back newest first', async () => {
    const rolledBack: number[] = [];
    let calls = 0;
    const writer = new BatchWriter<number>(async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 5));
      if (calls === 1) throw new Error('disk full');
    }, (items) => rolledBack.push(...items));
    const first = writer.submit(1);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    const second = writer.submit(2); // queued while batch [1] is being written
    await assert.rejects(first, /disk full/);
    await assert.rejects(second, /disk full/);
    assert.deepEqual(rolledBack, [2, 1]);
    await writer.submit(3);
    assert.equal(calls, 2, 'writer keeps working after a failure');
  });

  it('settles for what was submitted before, not for later submissions (readers never starve)', async () => {
    let release: () => void = () => {};
    const writer = new BatchWriter<number>((items) => (items[0] === 2 ? new Promise<void>((r) => (release = r)) : Promise.resolve()), () => {});
    const first = writer.submit(1);
    const settledAfterFirst = writer.settled();
    await first;
    const second = writer.submit(2); // blocks until released
    let settled = false;
    await settledAfterFirst.then(() => (settled = true));
    assert.ok(settled);
    let secondSettled = false;
    void writer.settled().then(() => (secondSettled = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(secondSettled, false, 'a read after the second submit waits for it');
    release();
    await second;
  });

  it('starts the next batch while follow-up work of the last one runs; acknowledges after it', async () => {
    const started: number[][] = [];
    const releases: (() => void)[] = [];
    const writer = new BatchWriter<number>(async (items) => {
      started.push(items);
      return { followUp: new Promise<void>((r) => releases.push(r)) };
    }, () => {});
    const acked: number[] = [];
    const first = writer.submit(1).then(() => acked.push(1));
    await new Promise((r) => setTimeout(r, 5));
    const second = writer.submit(2).then(() => acked.push(2));
    await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(started, [[1], [2]], 'batch 2 was written while batch 1 still had follow-up work');
    assert.deepEqual(acked, [], 'nothing acknowledged before its follow-up work is done');
    releases[0]!();
    await first;
    assert.deepEqual(acked, [1]);
    releases[1]!();
    await second;
    assert.deepEqual(acked, [1, 2]);
  });
});
