// Worker thread: writes merged packs (git-compaction.ts writeMergedPack) off the main thread,
// whose event loop keeps answering machines meanwhile. One job at a time, as messages; the main
// thread retires the replaced packs itself, because its object reader must switch over first.
import { parentPort } from 'node:worker_threads';
import { writeMergedPack } from './git-compaction.ts';
import { GitObjectReader } from './git-object-reader.ts';

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
      parentPort!.postMessage({ merged: await writeMergedPack(reader, job.head, { all: job.all }) });
    } catch (err) {
      parentPort!.postMessage({ error: (err as Error).stack ?? String(err) });
    }
  });
}

serveJobs();
