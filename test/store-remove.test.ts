import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { creationSteps } from '../src/core/host-changes.ts';
import { FileStore } from '../src/store/file-store.ts';
import { encodeTree, FILE_MODE, RootTree, TREE_MODE } from '../src/git/objects.ts';
import { GitStore } from '../src/store/git-store.ts';
import { MemoryStore } from '../src/store/memory-store.ts';
import { MayuService, type HostChangeEvent } from '../src/service/mayu-service.ts';
import type { HostStore } from '../src/store/store.ts';
import { git, gitCommitCount, gitFsck, gitSubjects } from './helpers/git.ts';

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
    const seq = tree.seq;
    assert.equal(tree.remove('a', TREE_MODE), true);
    assert.deepEqual(tree.bytes, encodeTree(entries.filter((e) => e.name !== 'a')));
    // The bytes change in place; what the removal took is kept for the older tree's delta.
    const [change] = tree.changesSince(seq)!;
    assert.deepEqual(change!.old, encodeTree(entries.filter((e) => e.name === 'a')));
    assert.equal(change!.inserted, 0);
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
    // A kill between the commit and the mirror's removal leaves the folder behind (a kill leaves
    // no clean-stop mark; after a clean stop the folder would be a host added by hand).
    await mkdir(path.join(dir, 'h1'));
    await writeFile(path.join(dir, 'h1', 'conf.json'), '{}');
    await rm(path.join(dir, '.git', 'mayu-clean-stop'));
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

describe('remove() follows apply()\'s contract', () => {
  it('git: resolves with the removal\'s commit id (HEAD), counted by the observer and the write queue like apply()', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-remove-'));
    const batches: number[] = [];
    const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n), observer: { batchWritten: (n) => batches.push(n) } });
    const created = await create(store, 'h1');
    assert.match(created!, /^[0-9a-f]{40}$/);
    const removing = store.remove('h1', 'host deleted');
    assert.equal(store.get('h1'), undefined, 'memory changes at once');
    assert.equal(store.writeQueueDepth(), 1, 'the removal waits in the write queue');
    const commit = await removing;
    assert.equal(commit, git(dir, 'rev-parse', 'HEAD').trim());
    assert.equal(store.writeQueueDepth(), 0);
    assert.equal((await store.history('h1'))[0]!.commit, commit);
    assert.equal(await store.confAt('h1', commit!), undefined, 'no conf.json at the removal');
    assert.match((await store.confAt('h1', created!))!, /"Serial": ?"h1"/, 'the conf.json before it is still readable');
    assert.equal(batches.reduce((a, b) => a + b, 0), gitCommitCount(dir), 'every commit, the removal included, went through a batch');
    await store.close();
  });

  it('files: resolves with undefined (no commits without git), counted by the observer', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-remove-'));
    const batches: number[] = [];
    const store = await FileStore.open({ dir, randomBytes: (n) => randomBytes(n), observer: { batchWritten: (n) => batches.push(n) } });
    await create(store, 'h1');
    const before = batches.length;
    assert.equal(await store.remove('h1'), undefined);
    assert.equal(batches.length, before + 1);
    assert.equal(store.writeQueueDepth(), 0);
    await store.close();
  });

  it('memory: resolves with the commit id history() shows; confAt() finds no conf.json there', async () => {
    const store = new MemoryStore();
    await create(store, 'h1');
    const commit = await store.remove('h1', 'host deleted');
    assert.equal((await store.history('h1'))[0]!.commit, commit);
    assert.equal(await store.confAt('h1', commit!), undefined);
  });

  it('service: deleteHost() tells onChange (deleted, with the commit) and observeCommit, as changes do', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-remove-'));
    const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    const events: HostChangeEvent[] = [];
    const commits: number[] = [];
    const service = new MayuService({
      store, profiles: [], ipRange: { start: '10.1.0.1', end: '10.1.0.9' }, randomBytes: (n) => randomBytes(n), bootTime: () => '2026-01-01T00:00:00Z',
      onChange: (e) => events.push(e), observeCommit: (s) => commits.push(s),
    });
    await service.registerAndRender('h1', () => '');
    await service.deleteHost('h1');
    assert.equal(events.length, 2);
    assert.equal(commits.length, 2, 'the deletion is timed like any change');
    const deleted = events[1]!;
    assert.equal(deleted.deleted, true);
    assert.equal(deleted.serial, 'h1');
    assert.equal(deleted.from, 'unknown');
    assert.deepEqual(deleted.messages, ['host deleted']);
    assert.equal(deleted.commit, git(dir, 'rev-parse', 'HEAD').trim());
    assert.equal(events[0]!.deleted, undefined);
    await store.close();
  });
});
