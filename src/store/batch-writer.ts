// One writer for the whole store: items queue up while a batch is being written, and the next
// batch takes all of them at once (group commit). A failed batch fails everything queued after
// it too, because those changes were computed on top of it. A batch may hand back follow-up
// work (the git store's working-tree mirror): its items are acknowledged once that is done too,
// but the next batch starts writing at once instead of waiting for it.

/** A promise inside an object: returned bare from an async function, it would be awaited. */
export interface BatchWritten {
  followUp: Promise<void>;
}

interface Pending<T> {
  item: T;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Items written together at most. A batch is built on the event loop (at 10 000 hosts a commit's
 * root tree costs ~0.3 ms), so an unbounded batch of a storm's thousands of queued changes held
 * every request for seconds; between bounded batches the loop answers while the journal syncs.
 * It also bounds a batch's memory when the etcd history writer hands over a backlog of tens of
 * thousands of changes at once after a failover.
 */
export const MAX_BATCH = 256;

export class BatchWriter<T> {
  private queue: Pending<T>[] = [];
  private running: Promise<void> | undefined;
  /** The newest submitted item's outcome: batches land in order, so it stands for all before it. */
  private last: Promise<void> = Promise.resolve();
  /** The last written batch's acknowledgement (after its follow-up work). */
  private acknowledged: Promise<void> = Promise.resolve();
  /** Items of the batch being written now. */
  private writing = 0;

  constructor(
    /** Resolves once the batch is durable; the items wait for its followUp too, if it has one. */
    private readonly writeBatch: (items: T[]) => Promise<BatchWritten | void>,
    /** Called with every failed item, newest first, before their promises reject. */
    private readonly rollback: (itemsNewestFirst: T[], err: Error) => void,
    /** Told the size of every batch once it is written (metrics). */
    private readonly onBatchWritten?: (size: number) => void,
    /** Told about every failed batch (with the items it failed, queued ones included), after the rollback. */
    private readonly onBatchFailed?: (err: Error, items: number) => void,
  ) {}

  /** Items submitted and not yet durable: the batch being written plus those waiting for the next one. */
  get depth(): number {
    return this.writing + this.queue.length;
  }

  submit(item: T): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.running ??= this.drain();
    });
    this.last = done.catch(() => undefined);
    return done;
  }

  /**
   * Resolves when everything submitted before this call has been written (or failed); later
   * submissions do not hold it up, so readers never starve behind a busy writer.
   */
  settled(): Promise<void> {
    return this.last;
  }

  private async drain(): Promise<void> {
    // Let callers of the same tick join the first batch.
    await new Promise<void>((r) => setImmediate(r));
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      this.writing = batch.length;
      try {
        const followUp = (await this.writeBatch(batch.map((p) => p.item)))?.followUp;
        this.writing = 0;
        this.onBatchWritten?.(batch.length);
        // Follow-up work never fails a durable batch (its owner reports its errors), and batches
        // are acknowledged in order whatever order their follow-ups end in.
        const ready = Promise.all([this.acknowledged, Promise.resolve(followUp).catch(() => undefined)]);
        this.acknowledged = ready.then(() => {
          for (const p of batch) p.resolve();
        });
      } catch (e) {
        this.writing = 0;
        const err = e instanceof Error ? e : new Error(String(e));
        const failed = [...batch, ...this.queue];
        this.queue = [];
        this.rollback(failed.map((p) => p.item).reverse(), err);
        this.onBatchFailed?.(err, failed.length);
        for (const p of failed) p.reject(err);
      }
    }
    this.running = undefined;
  }
}
