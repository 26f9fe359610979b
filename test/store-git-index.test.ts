import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { link, mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { creationSteps } from '../src/core/host-changes.ts';
import { encodeHost } from '../src/core/host.ts';
import { comparePaths, encodeIndex, parseIndex, ZERO_STAT } from '../src/git/index-file.ts';
import { GitIndexKeeper } from '../src/git/index-keeper.ts';
import { GitObjectReader } from '../src/git/object-reader.ts';
import { resolveHead } from '../src/git/refs.ts';
import { objectId } from '../src/git/objects.ts';
import { GitStore } from '../src/store/git-store.ts';
import type { HostStore } from '../src/store/store.ts';
import { git, gitFsck } from './helpers/git.ts';
import { hostData, startMayu } from './helpers/mayu-process.ts';

// git's index (.git/index) is kept equal to HEAD with the stat data git compares: `git status`
// is clean while mayu is idle, a hand edit shows as exactly that file, an operator's
// `git commit -a` commits exactly it. Native git is the judge.

const rng = (n: number) => randomBytes(n);
const FAILURES = 'install-failures.json';
const OPERATOR = ['-c', 'user.name=op', '-c', 'user.email=op@example.com'];

function create(store: HostStore, serial: string) {
  return store.apply(serial, creationSteps(serial, {
    hosts: store.scan(), profiles: [], ipRange: { start: '10.1.0.1', end: '10.1.0.99' },
    defaultEtcdToken: store.clusterConfig().DefaultEtcdClusterToken, randomBytes: randomBytes(16),
  }));
}

const tmp = () => mkdtemp(path.join(tmpdir(), 'mayu-index-'));
const status = (dir: string) => git(dir, 'status', '--porcelain');
const lsFiles = (dir: string) => git(dir, 'ls-files').split('\n').filter(Boolean);
const headFiles = (dir: string) => git(dir, 'ls-tree', '-r', '--name-only', 'HEAD').split('\n').filter(Boolean);

/** Index equal to HEAD (names and blobs) and the working tree clean. */
function assertInStep(dir: string) {
  assert.equal(git(dir, 'diff-index', '--cached', 'HEAD'), '', 'index = HEAD');
  assert.equal(status(dir), '', 'git status clean');
  assert.deepEqual(lsFiles(dir), headFiles(dir));
}

async function eventually(check: () => void, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return check();
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

describe('git index file encoding', () => {
  it('an index mayu encodes is read by native git with the same entries; git\'s own v2, v3 and v4 indexes parse', async () => {
    const dir = await tmp();
    git(dir, 'init', '-q');
    await writeFile(path.join(dir, 'a.txt'), 'a\n');
    const blob = objectId('blob', Buffer.from('a\n'));
    const long = `${'d'.repeat(300)}/${'x'.repeat(4000)}`; // name longer than the 12-bit length field
    const bytes = encodeIndex([
      { path: 'b/c', mode: 0o100644, oid: blob, stat: ZERO_STAT },
      { path: 'a.txt', mode: 0o100644, oid: blob, stat: ZERO_STAT },
      { path: 'b-c', mode: 0o100755, oid: blob, stat: ZERO_STAT },
      { path: long, mode: 0o100644, oid: blob, stat: ZERO_STAT },
    ]);
    await writeFile(path.join(dir, '.git', 'index'), bytes);
    // Index order is by path bytes: "b-c" < "b/c" ('-' 0x2d < '/' 0x2f).
    assert.equal(git(dir, 'ls-files', '-s'), [`100644 ${blob} 0\ta.txt`, `100755 ${blob} 0\tb-c`, `100644 ${blob} 0\tb/c`, `100644 ${blob} 0\t${long}`].join('\n') + '\n');
    assert.deepEqual(parseIndex(bytes).entries.map((e) => e.path), ['a.txt', 'b-c', 'b/c', long]);
    for (const version of ['2', '3', '4']) {
      git(dir, 'update-index', '--index-version', version);
      if (version === '3') git(dir, 'update-index', '--skip-worktree', 'b-c'); // an extended flag
      const parsed = parseIndex(await readFile(path.join(dir, '.git', 'index')));
      assert.equal(parsed.version, version === '2' ? 2 : Number(version));
      assert.deepEqual(parsed.entries.map((e) => [e.path, e.oid, e.mode]), [['a.txt', blob, 0o100644], ['b-c', blob, 0o100755], ['b/c', blob, 0o100644], [long, blob, 0o100644]]);
    }
    const damaged = Buffer.from(bytes);
    damaged[20] = damaged[20]! ^ 1;
    assert.throws(() => parseIndex(damaged), /checksum/);
  });

  it('orders paths by UTF-8 bytes, which is not UTF-16 order above U+D7FF', () => {
    const paths = ['\u{1F600}', '\uFB01', 'a/b', 'a-b', 'a', 'é'];
    const byBytes = [...paths].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    assert.deepEqual([...paths].sort(comparePaths), byBytes);
    assert.notDeepEqual([...paths].sort(), byBytes, 'plain string order differs for this set');
  });
});

describe('git index kept by the git store', () => {
  it('after creations, changes, a side file and a delete, the index equals HEAD and git status is clean', async () => {
    const dir = await tmp();
    const store = await GitStore.open({ dir, randomBytes: rng });
    for (const s of ['h1', 'h2', 'h3']) await create(store, s);
    await store.apply('h2', [{ message: 'updated host cabinet', host: { ...store.get('h2')!, Cabinet: 7 } }]);
    await store.apply('h1', [{ message: 'install failed (disk): x', host: store.get('h1')!, files: { [FAILURES]: '{"Failures": []}' } }]);
    await store.remove('h3', 'host deleted');
    // Written by itself once the store is idle, without being asked.
    await eventually(() => assertInStep(dir));
    assert.deepEqual(lsFiles(dir), ['cluster.json', 'h1/conf.json', `h1/${FAILURES}`, 'h2/conf.json']);
    // The stat data is the files' own: git need not read them (ls-files --debug shows it).
    const debug = git(dir, 'ls-files', '--debug', 'h2/conf.json');
    const st = await stat(path.join(dir, 'h2', 'conf.json'), { bigint: true });
    assert.match(debug, new RegExp(`ino: ${st.ino}\\b`));
    assert.match(debug, new RegExp(`size: ${st.size}\\b`));
    await store.close();
    assertInStep(dir);
    gitFsck(dir);
  });

  it('a hand edit shows as exactly that file; the operator\'s git commit -am commits exactly it; reopened, all is clean', async () => {
    const dir = await tmp();
    const store = await GitStore.open({ dir, randomBytes: rng });
    for (const s of ['h1', 'h2']) await create(store, s);
    await store.close();
    const file = path.join(dir, 'h1', 'conf.json');
    await writeFile(file, encodeHost({ ...JSON.parse(await readFile(file, 'utf8')), Profile: 'core' }));
    assert.equal(status(dir), ' M h1/conf.json\n');
    git(dir, ...OPERATOR, 'commit', '-q', '-am', 'h1: profile set by hand');
    assert.equal(git(dir, 'show', '--format=', '--name-status', 'HEAD'), 'M\th1/conf.json\n');
    assert.match(git(dir, 'show', '--stat', '--format=', 'HEAD'), /^ h1\/conf.json \| 2 \+-\n 1 file changed/);
    assertInStep(dir);
    const again = await GitStore.open({ dir, randomBytes: rng });
    assert.equal(again.get('h1')!.Profile, 'core');
    await again.apply('h2', [{ message: 'updated host cabinet', host: { ...again.get('h2')!, Cabinet: 2 } }]);
    await again.flushIndex();
    assertInStep(dir);
    await again.close();
    gitFsck(dir);
  });

  it('an index.lock held by another git: changes go on, the index is written once the lock is gone', async () => {
    const dir = await tmp();
    const errors: string[] = [];
    const store = await GitStore.open({ dir, randomBytes: rng, onIndexError: (err) => errors.push(err.message) });
    await create(store, 'h1');
    await store.flushIndex();
    const lock = path.join(dir, '.git', 'index.lock');
    await writeFile(lock, 'held by an operator\'s git');
    await create(store, 'h2');
    await store.apply('h1', [{ message: 'updated host cabinet', host: { ...store.get('h1')!, Cabinet: 4 } }]);
    await store.flushIndex();
    await store.flushIndex();
    assert.equal(await readFile(lock, 'utf8'), 'held by an operator\'s git', 'someone else\'s lock is left alone');
    assert.deepEqual(lsFiles(dir), ['cluster.json', 'h1/conf.json'], 'index not written under the lock');
    assert.deepEqual(errors, [], 'a lock held for a moment (an operator\'s git status) is not worth a warning');
    await rm(lock);
    await eventually(() => assertInStep(dir));
    assert.deepEqual(lsFiles(dir), ['cluster.json', 'h1/conf.json', 'h2/conf.json']);
    await store.close();
    gitFsck(dir);
  });

  it('at open: an index matching HEAD is kept as it is; a missing or stale one is rebuilt to HEAD; a kill\'s own lock goes, another\'s stays', async () => {
    // A repo as 0.11 left it: native git's own index.
    const dir = await tmp();
    let store = await GitStore.open({ dir, randomBytes: rng });
    for (const s of ['h1', 'h2']) await create(store, s);
    await store.close();
    git(dir, 'read-tree', 'HEAD');
    git(dir, 'update-index', '--refresh');
    const indexFile = path.join(dir, '.git', 'index');
    const later = new Date(Date.now() + 5000); // no racily clean entry
    await utimes(indexFile, later, later);
    const native = await readFile(indexFile);
    store = await GitStore.open({ dir, randomBytes: rng });
    await store.flushIndex();
    assert.deepEqual(await readFile(indexFile), native, 'kept byte for byte');
    await store.close();
    // Gone: rebuilt, status clean.
    await rm(indexFile);
    store = await GitStore.open({ dir, randomBytes: rng });
    await store.flushIndex();
    assertInStep(dir);
    await store.close();
    // Not HEAD's (the operator unstaged a file while mayu was down): back to HEAD.
    git(dir, 'rm', '-q', '--cached', 'h2/conf.json');
    store = await GitStore.open({ dir, randomBytes: rng });
    await store.flushIndex();
    assertInStep(dir);
    await store.close();
    // A kill between link and rename leaves mayu's temp file as a second name of index.lock.
    git(dir, 'rm', '-q', '--cached', 'h1/conf.json');
    const lock = path.join(dir, '.git', 'index.lock');
    await writeFile(path.join(dir, '.git', 'mayu-index.tmp'), await readFile(indexFile));
    await link(path.join(dir, '.git', 'mayu-index.tmp'), lock);
    store = await GitStore.open({ dir, randomBytes: rng });
    await store.flushIndex();
    await assert.rejects(stat(lock), 'mayu\'s own stale lock removed');
    assertInStep(dir);
    await store.close();
    // Anyone else's lock stays, as git leaves it.
    await writeFile(lock, '');
    store = await GitStore.open({ dir, randomBytes: rng });
    await create(store, 'h3');
    await store.flushIndex();
    assert.equal((await stat(lock)).size, 0);
    await store.close();
    await rm(lock);
    store = await GitStore.open({ dir, randomBytes: rng });
    await store.flushIndex();
    assertInStep(dir);
    await store.close();
    gitFsck(dir);
  });
});

describe('git index keeper', () => {
  it('opened again on a commit made outside the store, it follows it: index = the new HEAD, an uncommitted edit still shows', async () => {
    const dir = await tmp();
    const store = await GitStore.open({ dir, randomBytes: rng });
    for (const s of ['h1', 'h2']) await create(store, s);
    await store.close();
    const gitdir = path.join(dir, '.git');
    const reader = new GitObjectReader(gitdir);
    await reader.refresh();
    const errors: Error[] = [];
    const keeper = new GitIndexKeeper({ dir, gitdir, readObject: (oid) => reader.read(oid), onError: (err) => errors.push(err) });
    keeper.open(await resolveHead(gitdir), Promise.resolve());
    await keeper.flush();
    assertInStep(dir);
    const edit = async (serial: string, cabinet: number) => {
      const file = path.join(dir, serial, 'conf.json');
      await writeFile(file, encodeHost({ ...JSON.parse(await readFile(file, 'utf8')), Cabinet: cabinet }));
    };
    await edit('h1', 5);
    git(dir, ...OPERATOR, 'commit', '-q', '-am', 'h1: cabinet by hand');
    await edit('h2', 6);
    // Whatever index the keeper writes now is for the commit it knows; then it is told of the new one.
    keeper.open(await resolveHead(gitdir), Promise.resolve());
    await keeper.flush();
    assert.equal(git(dir, 'diff-index', '--cached', 'HEAD'), '');
    assert.equal(status(dir), ' M h2/conf.json\n');
    await keeper.close();
    await reader.close();
    assert.deepEqual(errors, []);
    gitFsck(dir);
  });

  it('a lock held past lockReportMs is told once per episode; the write goes through once it is gone', async () => {
    const dir = await tmp();
    const store = await GitStore.open({ dir, randomBytes: rng });
    await create(store, 'h1');
    await store.close();
    const gitdir = path.join(dir, '.git');
    const reader = new GitObjectReader(gitdir);
    await reader.refresh();
    const errors: string[] = [];
    const keeper = new GitIndexKeeper({ dir, gitdir, readObject: (oid) => reader.read(oid), onError: (err) => errors.push(err.message), lockReportMs: 0, retryMs: 10 });
    await rm(path.join(gitdir, 'index'));
    const lock = path.join(gitdir, 'index.lock');
    await writeFile(lock, '');
    keeper.open(await resolveHead(gitdir), Promise.resolve());
    await keeper.flush();
    await new Promise((r) => setTimeout(r, 100)); // several retries
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /index\.lock exists: another git process holds git's index/);
    await rm(lock);
    await eventually(() => assertInStep(dir));
    await keeper.close();
    assert.equal(errors.length, 1);
    await reader.close();
  });
});

describe('git index with the real server', () => {
  it('clean after registrations once idle, and after a kill -9 and a restart', { timeout: 60_000 }, async () => {
    let mayu = await startMayu();
    const { workDir, clusterDir } = mayu;
    try {
      for (let i = 1; i <= 5; i++) {
        const res = await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(`idx-00${i}`, `52:54:00:aa:bb:0${i}`)) });
        assert.equal(res.status, 200);
      }
      await eventually(() => assertInStep(clusterDir));
      assert.equal(lsFiles(clusterDir).filter((f) => f.endsWith('/conf.json')).length, 5);
      // A burst, then kill -9 at once: the index may be behind; the restart puts it in step.
      await Promise.all([6, 7, 8, 9].map((i) => fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(`idx-00${i}`, `52:54:00:aa:bb:0${i}`)) })));
      await mayu.kill9();
      mayu = await startMayu({ workDir });
      await eventually(() => assertInStep(clusterDir));
      assert.equal(lsFiles(clusterDir).filter((f) => f.endsWith('/conf.json')).length, 9);
      gitFsck(clusterDir);
    } finally {
      await mayu.stop();
    }
    assertInStep(clusterDir);
  });
});
