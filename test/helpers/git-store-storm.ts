// A child process for kill -9 tests: opens a GitStore on argv[2] and changes HOSTS machines
// without end, printing `ack <commit>` for each change once it is acknowledged. It runs until killed.
import { randomBytes } from 'node:crypto';
import { creationSteps, setMetadataSteps } from '../../src/core/host-changes.ts';
import { GitStore } from '../../src/store/git-store.ts';

const HOSTS = 24;
const store = await GitStore.open({ dir: process.argv[2]!, randomBytes: (n) => randomBytes(n), compactAfterPacks: 4 });
const ack = (commit: string | undefined) => process.stdout.write(`ack ${commit}\n`);

async function machine(i: number): Promise<void> {
  const serial = `k${i}`;
  if (!store.get(serial)) {
    ack(await store.apply(serial, creationSteps(serial, {
      hosts: store.scan(),
      profiles: [],
      ipRange: { start: '10.3.0.1', end: '10.3.3.255' },
      defaultEtcdToken: store.clusterConfig().DefaultEtcdClusterToken,
      randomBytes: randomBytes(16),
    })));
  }
  for (let n = 0; ; n++) {
    await new Promise((r) => setTimeout(r, 2 + Math.random() * 10));
    ack(await store.apply(serial, setMetadataSteps(store.get(serial)!, [`round=${n}`])));
  }
}

await Promise.all(Array.from({ length: HOSTS }, (_, i) => machine(i)));
