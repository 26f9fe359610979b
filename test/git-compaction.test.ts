import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { creationSteps, setProviderIdSteps } from '../src/core/host-changes.ts';
import { listLooseObjects, packsToMerge, retireMerged, writeMergedPack } from '../src/git/compaction.ts';
import { GitObjectReader } from '../src/git/object-reader.ts';
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

const packNames = async (dir: string) => (await readdir(path.join(dir, '.git/objects/pack'))).filter((n) => n.endsWith('.idx'));

async function populate(store: GitStore, hosts: number) {
  for (let i = 0; i < hosts; i++) {
    const serial = `c-${String(i).padStart(4, '0')}`;
    await store.apply(serial, creationSteps(serial, {
      hosts: store.scan(), profiles: [], ipRange: { start: '10.2.0.1', end: '10.2.255.254' },
      defaultEtcdToken: store.clusterConfig().DefaultEtcdClusterToken, randomBytes: randomBytes(16),
    }));
  }
}

const bySerial = (a: { Serial?: string }, b: { Serial?: string }) => (a.Serial! < b.Serial! ? -1 : 1);

describe('git store packs', () => {
  it('writes each batch as one pack and merges packs in the background; native git verifies them and fsck is clean', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-compact-'));
    const results: unknown[] = [];
    const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n), compactAfterPacks: 8, onCompaction: (r) => results.push(r) });
    await populate(store, 60);
    for (const h of store.all()) await store.apply(h.Serial!, setProviderIdSteps(h, 'rack-1'));
    const hosts = store.all();
    await store.close();
    assert.ok(results.length >= 5, `compacted ${results.length} times`);
    assert.ok(results.every((r) => !(r instanceof Error)), String(results.find((r) => r instanceof Error)));
    assert.deepEqual(await listLooseObjects(path.join(dir, '.git')), [], 'nothing is written loose');
    const packs = await packNames(dir);
    assert.ok(packs.length < 16, `${packs.length} packs left for 122 batches`);
    for (const idx of packs) assert.match(git(dir, 'verify-pack', '-v', `.git/objects/pack/${idx}`), /: ok\n$/);
    gitFsck(dir);
    assert.equal(gitCommitCount(dir), 2 + 60 * 5 + 60);

    const reopened = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    assert.deepEqual(reopened.all().sort(bySerial), hosts.sort(bySerial), 'the hosts read back from the packs');
    assert.equal((await reopened.history('c-0007')).length, 6);
    await reopened.close();
  });

  it('merges packs in a worker thread as the server does, while commits go on', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-compact-'));
    const results: unknown[] = [];
    const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n), compactAfterPacks: 4, compactInWorker: true, onCompaction: (r) => results.push(r) });
    await populate(store, 30);
    const hosts = store.all();
    await store.close();
    // The worker's first start (loading tsx and the modules) takes a while: at least one merge.
    assert.ok(results.length >= 1, `merged ${results.length} times`);
    assert.ok(results.every((r) => !(r instanceof Error)), String(results.find((r) => r instanceof Error)));
    assert.ok(results.some((r) => (r as { mergedPacks: number }).mergedPacks >= 4));
    gitFsck(dir);
    assert.equal(gitCommitCount(dir), 2 + 30 * 5);
    const reopened = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    assert.deepEqual(reopened.all().sort(bySerial), hosts.sort(bySerial));
    await reopened.close();
  });

  it('mayu compact merges 80 batch packs into one with root trees as deltas, a fraction of the size', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-compact-'));
    const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n), compactAfterPacks: 0 });
    await populate(store, 80);
    const before = await dirBytes(path.join(dir, '.git/objects'));
    assert.equal((await packNames(dir)).length, 2 + 80);
    const result = await store.compact();
    await store.close();
    const after = await dirBytes(path.join(dir, '.git/objects'));
    assert.equal(result.mergedPacks, 82);
    assert.equal(result.objects, 4 * (2 + 80 * 5) - 2 /* cluster commits write 3 objects each */);
    assert.deepEqual(await packNames(dir), [`${result.pack}.idx`]);
    assert.ok(after * 2 < before, `82 packs ${before} bytes → one pack ${after} bytes`);
    const verify = git(dir, 'verify-pack', '-v', `.git/objects/pack/${result.pack}.idx`);
    assert.match(verify, /^chain length = 1: \d+ objects?$/m, 'root trees stored as deltas');
    // Batches store their records uncompressed; the merge compresses them.
    const confs = verify.split('\n').map((l) => l.split(/\s+/)).filter((f) => f[1] === 'blob' && Number(f[2]) > 300);
    assert.ok(confs.length >= 80 && confs.every((f) => Number(f[3]) < Number(f[2]) * 0.8), 'every conf.json compressed in the merged pack');
    gitFsck(dir);
  });

  it('chains root trees across batch packs, copying their deltas, and cuts chains at the depth limit', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-compact-'));
    const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n), compactAfterPacks: 0 });
    await populate(store, 40); // 40 batch packs of 5 commits: a chain of 4 deltas each
    await store.close();
    const reader = new GitObjectReader(path.join(dir, '.git'));
    const merged = await writeMergedPack(reader, git(dir, 'rev-parse', 'HEAD').trim(), { all: true, maxDepth: 12 });
    await retireMerged(reader, merged!);
    await reader.close();
    const chains = new Map([...git(dir, 'verify-pack', '-v', `.git/objects/pack/${merged!.name}.idx`)
      .matchAll(/^chain length = (\d+): (\d+) objects?$/gm)].map((m) => [Number(m[1]), Number(m[2])]));
    assert.equal(Math.max(...chains.keys()), 12, 'chains run across packs, up to the limit');
    // 202 root trees: one whole per 13 (a head and 12 deltas), all others deltas.
    assert.equal(chains.get(12), Math.floor(202 / 13));
    gitFsck(dir);
    const reopened = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    assert.equal(reopened.size(), 40);
    await reopened.close();
  });

  it('reads a repo native git packed (ofs- and ref-deltas) and one with loose objects, and packs those', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-compact-'));
    const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n), compactAfterPacks: 0 });
    await populate(store, 30);
    const hosts = store.all().sort(bySerial);
    await store.close();

    git(dir, 'gc', '-q', '--aggressive');
    const native = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    assert.deepEqual(native.all().sort(bySerial), hosts, 'hosts read from the pack native git wrote');
    assert.equal((await native.history('c-0003')).length, 5);
    await native.close();

    // Explode the pack into loose objects, as a repo of an older mayu would have them.
    const [idx] = await packNames(dir);
    const pack = path.join(dir, '.git/objects/pack', idx!.replace(/\.idx$/, '.pack'));
    const moved = path.join(dir, 'old.pack');
    execFileSync('mv', [pack, moved]);
    await rm(pack.replace(/\.pack$/, '.idx'));
    execFileSync('sh', ['-c', `git -C '${dir}' unpack-objects -q < '${moved}'`]);
    await rm(moved);
    const loose = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });
    assert.deepEqual(loose.all().sort(bySerial), hosts, 'hosts read from loose objects');
    const result = await loose.compact();
    await loose.close();
    assert.equal(result.looseObjects, 4 * (2 + 30 * 5) - 2);
    assert.deepEqual(await listLooseObjects(path.join(dir, '.git')), []);
    gitFsck(dir);
  });

  it('chooses packs to merge geometrically: big packs stay while each outweighs the rest twice', () => {
    const p = (name: string, count: number) => ({ name, count });
    const cases: [string, { name: string; count: number }[], string[]][] = [
      ['one big, many small', [p('big', 1000), p('a', 4), p('b', 4), p('c', 4)], ['a', 'b', 'c']],
      ['all small', [p('a', 4), p('b', 4), p('c', 4)], ['a', 'b', 'c']],
      ['a geometric series stays whole but its tail', [p('x', 800), p('y', 200), p('z', 50), p('a', 4), p('b', 4)], ['a', 'b']],
      ['a big pack outweighed by the rest is merged too', [p('x', 100), p('a', 40), p('b', 40)], ['x', 'a', 'b']],
    ];
    for (const [name, packs, want] of cases) assert.deepEqual([...packsToMerge(packs)].sort(), want.sort(), name);
    assert.deepEqual([...packsToMerge([p('big', 1000), p('a', 4)], true)].sort(), ['a', 'big']);
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
