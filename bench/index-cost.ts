// What keeping git's index costs the git store, for N hosts already in the repo.
//   npm run bench:index -- [hosts...]      (default: 1000 10000)
// Per size: a repo seeded by the native git (which leaves its own index), then:
// - open with git's index (kept: it lists HEAD's tree) and with none (rebuilt from HEAD, every
//   file hashed): GitStore.open's time, and the time until the index is settled (flushIndex);
// - one index write after 1 and after 100 sequential changes: its own time (the keeper's
//   report: apply the checkpointed changes, check their files, encode, hash, write);
// - a storm: 5000 changes, 64 in flight: index writes, their summed and largest time, and that
//   sum as a share of the storm's wall time (the request thread's time the index takes);
// - git status --porcelain at the end: clean, and how long native git takes with that index.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setProviderIdSteps } from '../src/core/host-changes.ts';
import { GitStore } from '../src/store/git-store.ts';
import { seedRepo } from './seed-repo.ts';

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const round = (x: number) => +x.toFixed(1);
const rng = (n: number) => randomBytes(n);
const STORM_CHANGES = 5000;
const IN_FLIGHT = 64;

type Write = { entries: number; checked: number; ms: number };

async function open(dir: string, writes: Write[]) {
  const t0 = performance.now();
  const store = await GitStore.open({ dir, randomBytes: rng, observer: { indexWritten: (w) => writes.push(w) } });
  const openMs = round(performance.now() - t0);
  await store.flushIndex();
  return { store, openMs, settledMs: round(performance.now() - t0) };
}

for (const hosts of sizes.length ? sizes : [1000, 10000]) {
  const dir = await mkdtemp(path.join(tmpdir(), 'mayu-bench-index-'));
  const serials = await seedRepo(dir, hosts);
  const writes: Write[] = [];
  const kept = await open(dir, writes);
  await kept.store.close();
  await rm(path.join(dir, '.git', 'index'));
  const rebuilt = await open(dir, writes);
  const store = rebuilt.store;
  const rebuildWrite = writes.at(-1)!;

  const writeAfter = async (changes: number) => {
    await store.flushIndex();
    for (let i = 0; i < changes; i++) await store.apply(serials[i]!, setProviderIdSteps(store.get(serials[i]!)!, `p-${changes}-${i}`));
    await store.flushHistory();
    const before = writes.length;
    await store.flushIndex();
    return writes.slice(before).find((w) => w.checked > 0);
  };
  const after1 = await writeAfter(1);
  const after100 = await writeAfter(100);

  await store.flushIndex();
  const stormWrites = writes.length;
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < STORM_CHANGES) {
      const i = next++;
      const serial = serials[i % serials.length]!;
      await store.apply(serial, setProviderIdSteps(store.get(serial)!, `s-${i}`));
    }
  }));
  const stormMs = performance.now() - t0;
  const during = writes.slice(stormWrites);
  const indexMs = during.reduce((sum, w) => sum + w.ms, 0);
  await store.flushHistory();
  await store.flushIndex();
  const indexBytes = (await stat(path.join(dir, '.git', 'index'))).size;
  await store.close();
  const t1 = performance.now();
  const status = execFileSync('git', ['-C', dir, 'status', '--porcelain'], { encoding: 'utf8' });
  console.log(JSON.stringify({
    hosts, indexBytes,
    open: { keptGitIndex: { openMs: kept.openMs, settledMs: kept.settledMs }, rebuiltNoIndex: { openMs: rebuilt.openMs, settledMs: rebuilt.settledMs, write: rebuildWrite } },
    writeAfter1Change: after1, writeAfter100Changes: after100,
    storm: {
      changes: STORM_CHANGES, inFlight: IN_FLIGHT, seconds: round(stormMs / 1000), commitsPerSecond: round(STORM_CHANGES / (stormMs / 1000)),
      indexWrites: during.length, indexMs: round(indexMs), maxWriteMs: round(Math.max(0, ...during.map((w) => w.ms))), shareOfWallPercent: round((100 * indexMs) / stormMs),
    },
    gitStatus: { clean: status === '', ms: round(performance.now() - t1) },
  }));
  await rm(dir, { recursive: true, force: true });
}
