import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { creationSteps } from '../src/core/host-changes.ts';
import { FileStore } from '../src/store/file-store.ts';
import { encodeTree, FILE_MODE, RootTree, TREE_MODE } from '../src/store/git-objects.ts';
import { GitStore } from '../src/store/git-store.ts';
import { MemoryStore } from '../src/store/memory-store.ts';
import type { HostStore } from '../src/store/store.ts';
import { gitFsck, gitSubjects } from './helpers/git.ts';

const oid = (n: number) => n.toString(16).padStart(40, '0');

function create(store: HostStore, serial: string) {
  return store.apply(serial, creationSteps(serial, {
    hosts: store.scan(), profiles: [], ipRange: { start: '10.1.0.1', end: '10.1.0.9' },
    defaultEtcdToken: store.clusterConfig().DefaultEtcdClusterToken, randomBytes: randomBytes(16),
  }));
}

describe('RootTree.remove', () => {
  it('drops one entry, leaving the bytes git would encode for the rest', () => {
    const entries = [
      { mode: FILE_MODE, name: 'cluster.json', oid: oid(1) },
      { mode: TREE_MODE, name: 'a', oid: oid(2) },
      { mode: TREE_MODE, name: 'a.b', oid: oid(3) },
      { mode: TREE_MODE, name: 'b', oid: oid(4) },
    ];
    const tree = new RootTree(entries);
    const before = tree.bytes;
    assert.equal(tree.remove('a', TREE_MODE), true);
    assert.deepEqual(tree.bytes, encodeTree(entries.filter((e) => e.name !== 'a')));
    assert.deepEqual(before, encodeTree(entries), 'earlier bytes stay valid');
    assert.equal(tree.remove('a', TREE_MODE), false);
    assert.equal(tree.remove('cluster.json', TREE_MODE), false, 'a file is not a folder of that name');
    tree.set({ mode: TREE_MODE, name: 'a', oid: oid(9) });
    assert.equal(tree.size, 4);
  });
});

describe('store remove()', () => {
  it('git: one commit, the host is gone after a reopen, a stale mirror folder is cleaned at open, fsck clean', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-remove-'));
    const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    await create(store, 'h1');
    await create(store, 'h2');
    await store.remove('h1', 'host deleted');
    assert.equal(store.get('h1'), undefined);
    assert.equal(gitSubjects(dir).at(-1), 'h1: host deleted');
    assert.equal((await store.history('h1'))[0]!.message, 'h1: host deleted');
    await store.close();
    // A kill between the commit and the mirror's removal leaves the folder behind.
    await mkdir(path.join(dir, 'h1'));
    await writeFile(path.join(dir, 'h1', 'conf.json'), '{}');
    const again = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    assert.deepEqual(again.all().map((h) => h.Serial), ['h2']);
    assert.deepEqual((await readdir(dir)).filter((n) => !n.startsWith('.')).sort(), ['cluster.json', 'h2']);
    await create(again, 'h1');
    assert.equal(again.get('h1')!.InternalAddr, '10.1.0.1', 'the freed address is given again');
    await again.close();
    gitFsck(dir);
  });

  it('files: the folder goes durably (no hidden leftovers) and stays gone after a reopen', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-remove-'));
    const store = await FileStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    await create(store, 'h1');
    await create(store, 'h2');
    await store.remove('h1');
    assert.deepEqual((await readdir(dir)).sort(), ['cluster.json', 'h2']);
    await store.close();
    const again = await FileStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    assert.deepEqual(again.all().map((h) => h.Serial), ['h2']);
  });

  it('memory: forgets the host and logs the commit', async () => {
    const store = new MemoryStore();
    await create(store, 'h1');
    await store.remove('h1', 'host deleted');
    assert.equal(store.get('h1'), undefined);
    assert.equal(store.messages().at(-1), 'h1: host deleted');
  });
});
