import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { creationSteps, setProviderIdSteps } from '../src/core/host-changes.ts';
import { computeDelta } from '../src/store/git-pack.ts';
import { listLooseObjects } from '../src/store/git-compaction.ts';
import { GitStore } from '../src/store/git-store.ts';
import { git, gitCommitCount, gitFsck } from './helpers/git.ts';

/** Bytes on disk (allocated blocks), as du counts them. */
async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(path.join(entry.parentPath, entry.name))).blocks * 512;
  }
  return total;
}

async function populate(store: GitStore, hosts: number) {
  for (let i = 0; i < hosts; i++) {
    const serial = `c-${String(i).padStart(4, '0')}`;
    await store.apply(serial, creationSteps(serial, {
      hosts: store.scan(), profiles: [], ipRange: { start: '10.2.0.1', end: '10.2.255.254' },
      defaultEtcdToken: store.clusterConfig().DefaultEtcdClusterToken, randomBytes: randomBytes(16),
    }));
  }
}

describe('compaction (packfile with root-tree deltas)', () => {
  it('packs automatically while committing; native git verifies the pack and fsck is clean', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-compact-'));
    const results: unknown[] = [];
    const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n), compactAfterLooseObjects: 200, onCompaction: (r) => results.push(r) });
    await populate(store, 60);
    for (const h of store.all()) await store.apply(h.Serial!, setProviderIdSteps(h, 'rack-1'));
    const hosts = store.all();
    await store.close();
    assert.ok(results.length >= 2, `compacted ${results.length} times`);
    assert.ok(results.every((r) => !(r instanceof Error)), String(results.find((r) => r instanceof Error)));
    gitFsck(dir);
    for (const idx of (await readdir(path.join(dir, '.git/objects/pack'))).filter((n) => n.endsWith('.idx'))) {
      assert.match(git(dir, 'verify-pack', '-v', `.git/objects/pack/${idx}`), /: ok\n$/);
    }
    assert.equal(gitCommitCount(dir), 2 + 60 * 5 + 60);

    const reopened = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    const bySerial = (a: { Serial?: string }, b: { Serial?: string }) => (a.Serial! < b.Serial! ? -1 : 1);
    assert.deepEqual(reopened.all().sort(bySerial), hosts.sort(bySerial), 'isomorphic-git reads the hosts back from the packs');
    assert.equal((await reopened.history('c-0007')).length, 6);
    await reopened.close();
  });

  it('shrinks a repo of 80 hosts to a fraction of its loose size', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-compact-'));
    const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n), compactAfterLooseObjects: 0 });
    await populate(store, 80);
    const loose = await dirBytes(path.join(dir, '.git/objects'));
    const result = await store.compact();
    await store.close();
    const packed = await dirBytes(path.join(dir, '.git/objects'));
    assert.equal(result.objects, 4 * (2 + 80 * 5) - 2 /* cluster commits write 3 objects each */);
    assert.deepEqual(await listLooseObjects(path.join(dir, '.git')), []);
    // Commits and conf.json blobs are stored whole; root trees become deltas (chains up to 50).
    assert.ok(packed * 10 < loose, `loose ${loose} bytes → packed ${packed} bytes`);
    const verify = git(dir, 'verify-pack', '-v', `.git/objects/pack/${result.pack}.idx`);
    assert.match(verify, /^chain length = 50: \d+ objects?$/m);
    gitFsck(dir);
  });

  it('encodes a one-entry change of a tree as a tiny delta', () => {
    const base = Buffer.from('a'.repeat(5000) + 'OLD' + 'b'.repeat(5000));
    const target = Buffer.from('a'.repeat(5000) + 'NEW!' + 'b'.repeat(5000));
    assert.ok(computeDelta(base, target).length < 30);
  });
});

describe('mayu compact', () => {
  it('refuses a folder that is not a cluster repo with one clear line and exit 1', async () => {
    const { execFile } = await import('node:child_process');
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-compact-'));
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, ['--import', 'tsx', 'src/cli/mayu.ts', 'compact', '--cluster-directory', dir], { cwd: path.resolve(import.meta.dirname, '..') }, (_err, _out, stderr) => resolve({ code: child.exitCode, stderr }));
    });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, `mayu compact: ${dir}/.git is not a mayu cluster repo (no HEAD commit)\n`);
  });
});
