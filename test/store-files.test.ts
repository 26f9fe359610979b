import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { creationSteps } from '../src/core/host-changes.ts';
import { encodeHost } from '../src/core/host.ts';
import { FileStore } from '../src/store/file-store.ts';

describe('file store (--no-git)', () => {
  it('keeps 0.11\'s layout without history and reloads it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-files-'));
    const store = await FileStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    const steps = creationSteps('abc', { hosts: [], profiles: [], ipRange: { start: '10.0.0.1', end: '10.0.0.9' }, defaultEtcdToken: store.clusterConfig().DefaultEtcdClusterToken, randomBytes: randomBytes(16) });
    await store.apply('abc', steps);
    assert.equal(await readFile(path.join(dir, 'abc', 'conf.json'), 'utf8'), encodeHost(steps.at(-1)!.host));
    await assert.rejects(store.history(), /no history: mayu runs with --no-git/);
    await store.close();
    const again = await FileStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    assert.deepEqual(again.get('abc'), store.get('abc'));
    assert.equal(again.clusterConfig().DefaultEtcdClusterToken, store.clusterConfig().DefaultEtcdClusterToken);
  });
});
