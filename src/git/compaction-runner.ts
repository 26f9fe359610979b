import { Worker } from 'node:worker_threads';
import type { CompactionJob } from './compaction-worker.ts';
import type { MergedPack } from './compaction.ts';

interface Reply {
  merged?: MergedPack;
  error?: string;
}

/**
 * Runs writeMergedPack in a worker thread, started on first use and kept. Pack merging is CPU
 * work (inflate, delta, deflate of thousands of root trees); on the main thread it delayed every
 * request by its slices. Jobs never overlap: the store runs one compaction at a time.
 */
export class CompactionRunner {
  private worker: Worker | undefined;
  private pending: { resolve: (r: Reply) => void; reject: (e: Error) => void } | undefined;

  async merge(job: CompactionJob): Promise<MergedPack | undefined> {
    const reply = await new Promise<Reply>((resolve, reject) => {
      this.pending = { resolve, reject };
      this.start().postMessage(job);
    });
    if (reply.error) throw new Error(`pack merge failed: ${reply.error}`);
    // Buffers arrive as Uint8Arrays through structured clone.
    return reply.merged && { ...reply.merged, index: Buffer.from(reply.merged.index) };
  }

  /** Starts the worker ahead of the first job (no-op when it runs). */
  warm(): void {
    this.start();
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    // tsx's loader hooks do not reach worker threads: the worker registers them, then loads its
    // TypeScript entry.
    const entry = new URL('./compaction-worker.ts', import.meta.url).href;
    const tsxApi = import.meta.resolve('tsx/esm/api');
    const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
    // Its young generation at 2 x 4 MB (default 2 x 8 here): the merge's garbage is short-lived
    // records, and every MB of it is mayu's RSS.
    const worker = new Worker(boot, { eval: true, resourceLimits: { maxYoungGenerationSizeMb: 12 } });
    worker.unref(); // an idle worker must not keep mayu running
    const fail = (err: Error) => {
      this.worker = undefined;
      const p = this.pending;
      this.pending = undefined;
      p?.reject(err);
    };
    worker.on('message', (reply: Reply) => {
      const p = this.pending;
      this.pending = undefined;
      p?.resolve(reply);
    });
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`pack merge worker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }
}
