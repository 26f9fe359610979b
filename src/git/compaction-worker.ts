// Worker thread: writes merged packs (git-compaction.ts writeMergedPack) off the main thread,
// whose event loop keeps answering machines meanwhile. One job at a time, as messages; the main
// thread retires the replaced packs itself, because its object reader must switch over first.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { writeMergedPack } from './compaction.ts';
import { GitObjectReader } from './object-reader.ts';

export interface CompactionJob {
  gitdir: string;
  head: string | undefined;
  all: boolean;
}

/** One reader for the worker's life: its refresh() reads only the indexes of packs it has not
 * seen, instead of every index (the big merged pack's included) at every merge. */
function serveJobs(): void {
  let reader: GitObjectReader | undefined;
  parentPort!.on('message', async (job: CompactionJob) => {
    if (reader?.gitdir !== job.gitdir) {
      await reader?.close();
      reader = new GitObjectReader(job.gitdir);
    }
    try {
      parentPort!.postMessage({ merged: await writeMergedPack(reader, job.head, { all: job.all, syncReads: true }) });
    } catch (err) {
      parentPort!.postMessage({ error: (err as Error).stack ?? String(err) });
    }
  });
}

/**
 * Merging can wait; answering machines cannot. On Linux a thread has its own nice value: at 19
 * the merge gets a core only when the main thread (and libuv's I/O threads) leave it idle,
 * instead of taking turns with them on a small machine. Best effort: elsewhere it stays as is.
 */
function yieldCpuToRequests(): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, 19);
  } catch {
    // no /proc/thread-self (not Linux): same priority as the main thread
  }
}

yieldCpuToRequests();
serveJobs();
