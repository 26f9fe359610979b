// What keeping git's index costs the git store, for N hosts already in the repo.
//   npm run bench:index -- [hosts...]      (default: 1000 10000)
// Per size: a repo seeded by the native git (which leaves its own index), then:
// - open with git's index (kept: it lists HEAD's tree) and with none (rebuilt: every file hashed),
//   each the time from GitStore.open until the index is settled (flushIndex);
// - one index write after 1 and after 100 changes (applied one by one, awaited, the index's own
//   writes held back meanwhile by its throttle): flushIndex's time = apply the checkpointed
//   changes, check their files, encode, hash and write the whole index;
// - git status --porcelain afterwards (clean, and how long native git takes with that index).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setProviderIdSteps } from '../src/core/host-changes.ts';
import { GitStore } from '../src/store/git-store.ts';
import { seedRepo } from './seed-repo.ts';

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const ms = (t0: number) => +(performance.now() - t0).toFixed(1);
const rng = (n: number) => randomBytes(n);

async function openSettled(dir: string): Promise<{ store: GitStore; openMs: number; settledMs: number }> {
  const t0 = performance.now();
  const store = await GitStore.open({ dir, randomBytes: rng });
  const openMs = ms(t0);
  await store.flushIndex();
  return { store, openMs, settledMs: ms(t0) };
}

async function writeAfter(store: GitStore, serials: string[], changes: number): Promise<number> {
  await store.flushIndex();
  for (let i = 0; i < changes; i++) {
    const serial = serials[i]!;
    await store.apply(serial, setProviderIdSteps(store.get(serial)!, `p-${changes}-${i}`));
  }
  await store.flushHistory();
  const t0 = performance.now();
  await store.flushIndex();
  return ms(t0);
}

for (const hosts of sizes.length ? sizes : [1000, 10000]) {
  const dir = await mkdtemp(path.join(tmpdir(), 'mayu-bench-index-'));
  const serials = await seedRepo(dir, hosts);
  const withGitIndex = await openSettled(dir);
  await withGitIndex.store.close();
  await rm(path.join(dir, '.git', 'index'));
  const rebuilt = await openSettled(dir);
  const store = rebuilt.store;
  const after1 = await writeAfter(store, serials, 1);
  const after100 = await writeAfter(store, serials, 100);
  const indexBytes = (await stat(path.join(dir, '.git', 'index'))).size;
  await store.close();
  const t0 = performance.now();
  const status = execFileSync('git', ['-C', dir, 'status', '--porcelain'], { encoding: 'utf8' });
  const statusMs = ms(t0);
  console.log(JSON.stringify({
    hosts, indexBytes,
    openMs: { keptGitIndex: withGitIndex.openMs, rebuiltNoIndex: rebuilt.openMs },
    openToIndexSettledMs: { keptGitIndex: withGitIndex.settledMs, rebuiltNoIndex: rebuilt.settledMs },
    indexWriteMs: { after1Change: after1, after100Changes: after100 },
    gitStatus: { clean: status === '', ms: statusMs },
  }));
  await rm(dir, { recursive: true, force: true });
}
