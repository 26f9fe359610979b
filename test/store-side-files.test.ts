import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { creationSteps } from '../src/core/host-changes.ts';
import { encodeHost } from '../src/core/host.ts';
import { FileStore } from '../src/store/file-store.ts';
import { GitStore } from '../src/store/git-store.ts';
import { MemoryStore } from '../src/store/memory-store.ts';
import { MayuService } from '../src/service/mayu-service.ts';
import type { HostStore } from '../src/store/store.ts';
import { git, gitCommitCount, gitFsck } from './helpers/git.ts';

// Files beside conf.json in a host's folder (install-failures.json): written in the host's own
// commit, carried along by later commits of the host, loaded at start; a damaged one or an
// operator's extra file never stops a start; removal takes the whole folder.

const FILE = 'install-failures.json';
const rng = (n: number) => randomBytes(n);

function create(store: HostStore, serial: string) {
  return store.apply(serial, creationSteps(serial, {
    hosts: store.scan(), profiles: [], ipRange: { start: '10.1.0.1', end: '10.1.0.9' },
    defaultEtcdToken: store.clusterConfig().DefaultEtcdClusterToken, randomBytes: randomBytes(16),
  }));
}

const service = (store: HostStore) => new MayuService({ store, profiles: [], ipRange: { start: '10.1.0.1', end: '10.1.0.9' }, randomBytes: rng, bootTime: () => '2026-12-01T20:37:10.123456789Z', now: () => new Date() });

describe('host side files in the git store', () => {
  it('a side-file step is one commit touching only that file; later commits keep it; reopen loads it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-side-'));
    const store = await GitStore.open({ dir, randomBytes: rng });
    await create(store, 'h1');
    const host = store.get('h1')!;
    const before = gitCommitCount(dir);
    await store.apply('h1', [{ message: 'install failed (disk): x', host, files: { [FILE]: '{"Failures": []}' } }]);
    assert.equal(gitCommitCount(dir), before + 1);
    assert.equal(git(dir, 'show', '--format=', '--name-only', 'HEAD').trim(), `h1/${FILE}`);
    assert.equal(store.sideFile('h1', FILE), '{"Failures": []}');
    // A conf.json change keeps the side file in the host's tree.
    await store.apply('h1', [{ message: 'updated host cabinet', host: { ...host, Cabinet: 3 } }]);
    assert.equal(git(dir, 'show', '--format=', '--name-only', 'HEAD').trim(), 'h1/conf.json');
    assert.equal(git(dir, 'show', `HEAD:h1/${FILE}`), '{"Failures": []}');
    assert.equal(await readFile(path.join(dir, 'h1', FILE), 'utf8'), '{"Failures": []}');
    await store.close();
    gitFsck(dir);
    const again = await GitStore.open({ dir, randomBytes: rng });
    assert.equal(again.sideFile('h1', FILE), '{"Failures": []}');
    assert.equal(again.get('h1')!.Cabinet, 3);
    // Removal takes the folder, side file included; a re-created host starts without one.
    await again.remove('h1', 'host deleted');
    assert.equal(git(dir, 'ls-tree', 'HEAD', 'h1/').trim(), '');
    assert.deepEqual((await readdir(dir)).filter((n) => !n.startsWith('.')), ['cluster.json']);
    await create(again, 'h1');
    assert.equal(again.sideFile('h1', FILE), undefined);
    assert.equal(git(dir, 'ls-tree', '--name-only', 'HEAD', 'h1/').trim(), 'h1/conf.json');
    await again.close();
    gitFsck(dir);
  });

  it('a damaged install-failures.json and an operator\'s extra file committed with native git do not stop a start', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-side-'));
    const store = await GitStore.open({ dir, randomBytes: rng });
    await create(store, 'h1');
    await store.close();
    await writeFile(path.join(dir, 'h1', FILE), '{ torn');
    await writeFile(path.join(dir, 'h1', 'notes.txt'), 'rack 4, slot 7\n');
    git(dir, 'add', `h1/${FILE}`, 'h1/notes.txt');
    git(dir, '-c', 'user.name=op', '-c', 'user.email=op@example.com', 'commit', '-q', '-m', 'h1: operator notes');
    const again = await GitStore.open({ dir, randomBytes: rng });
    assert.equal(again.get('h1')!.Serial, 'h1');
    assert.equal(again.sideFile('h1', FILE), '{ torn');
    const view = await service(again).installFailures('h1');
    assert.deepEqual([view.Current, view.Failures], [null, []], 'read as an empty log');
    // A report replaces it with a good one.
    await service(again).reportInstallFailure('h1', { Stage: 'other', Reason: 'x' });
    assert.equal((await service(again).installFailures('h1')).Current?.Reason, 'x');
    await again.close();
    gitFsck(dir);
  });
});

describe('host side files without git and in memory', () => {
  it('files: written beside conf.json, conf.json unchanged, loaded at open; a damaged one loads', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-side-'));
    const store = await FileStore.open({ dir, randomBytes: rng });
    await create(store, 'h1');
    const conf = await readFile(path.join(dir, 'h1', 'conf.json'), 'utf8');
    await service(store).reportInstallFailure('h1', { Stage: 'disk', Reason: 'no disk' });
    assert.equal(await readFile(path.join(dir, 'h1', 'conf.json'), 'utf8'), conf);
    assert.match(await readFile(path.join(dir, 'h1', FILE), 'utf8'), /"Reason": "no disk"/);
    assert.equal(conf, encodeHost(store.get('h1')!));
    await store.close();
    const again = await FileStore.open({ dir, randomBytes: rng });
    assert.equal((await service(again).installFailures('h1')).Current?.Reason, 'no disk');
    await writeFile(path.join(dir, 'h1', FILE), '\0\0');
    await writeFile(path.join(dir, 'h1', 'notes.txt'), 'x');
    const third = await FileStore.open({ dir, randomBytes: rng });
    assert.equal((await service(third).installFailures('h1')).Current, null);
  });

  it('memory: the side file is per host, and the report is its commit', async () => {
    const store = new MemoryStore();
    await create(store, 'h1');
    await create(store, 'h2');
    await service(store).reportInstallFailure('h1', { Stage: 'network', Reason: 'no DHCP' });
    assert.equal(store.sideFile('h2', FILE), undefined);
    assert.deepEqual((await service(store).currentInstallFailures()).map((f) => f.Serial), ['h1']);
    assert.equal(store.messages().at(-1), 'h1: install failed (network): no DHCP');
  });
});
