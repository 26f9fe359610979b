import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { creationSteps, setStateSteps } from '../src/core/host-changes.ts';
import { encodeHost } from '../src/core/host.ts';
import { GitJournal, type JournalEntry } from '../src/git/journal.ts';
import { GitStore } from '../src/store/git-store.ts';
import { git, gitCommitCount, gitFsck, gitSubjects } from './helpers/git.ts';

const open = (dir: string) => GitStore.open({ dir, randomBytes: (n) => randomBytes(n) });

function create(store: GitStore, serial: string) {
  return store.apply(serial, creationSteps(serial, {
    hosts: store.scan(),
    profiles: [],
    ipRange: { start: '10.1.0.1', end: '10.1.3.255' },
    defaultEtcdToken: store.clusterConfig().DefaultEtcdClusterToken,
    randomBytes: randomBytes(16),
  }));
}

describe('git store', () => {
  it('starts a new cluster with initial commit and the default token, readable by native git', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-store-'));
    const store = await open(dir);
    const token = store.clusterConfig().DefaultEtcdClusterToken;
    assert.match(token, /^[0-9a-f]{32}$/);
    assert.deepEqual(gitSubjects(dir), ['initial commit', `Set default etcd cluster to '${token}'`]);
    assert.equal(JSON.parse(git(dir, 'show', 'HEAD:cluster.json')).Config.DefaultEtcdClusterToken, token);
    await store.close();
  });

  it('lands 20 concurrent host creations as 100 commits, each change its own, fsck clean', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-store-'));
    const store = await open(dir);
    await Promise.all(Array.from({ length: 20 }, (_, i) => create(store, `h${i}`)));
    assert.equal(gitCommitCount(dir), 2 + 20 * 5);
    gitFsck(dir);
    // conf.json in git and in the working tree equal the in-memory host, byte for byte.
    const h = store.get('h7')!;
    assert.equal(git(dir, 'show', 'HEAD:h7/conf.json'), encodeHost(h));
    assert.equal(await readFile(path.join(dir, 'h7', 'conf.json'), 'utf8'), encodeHost(h));
    const addrs = new Set(store.all().map((x) => x.InternalAddr));
    assert.equal(addrs.size, 20);
    await store.close();
  });

  it('reloads the same hosts and per-host history after a restart', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-store-'));
    const first = await open(dir);
    await create(first, 'abc');
    await first.apply('abc', setStateSteps({ ...first.get('abc')!, State: 'running' }, 'configured'));
    const before = first.all();
    await first.close();

    const second = await open(dir);
    assert.deepEqual(second.all(), before);
    const history = await second.history('abc');
    assert.equal(history.length, 6);
    assert.equal(history[0]!.message, 'abc: updated host state');
    assert.equal(history[5]!.message, 'abc: host created');
    assert.equal(history[0]!.commit, git(dir, 'rev-parse', 'HEAD').trim());
    await create(second, 'def');
    assert.equal((await second.history('def')).length, 5, 'commits of this process are indexed too');
    await second.close();
  });

  it('reads a host\'s conf.json at each of its commits, as native git shows it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-store-'));
    const first = await open(dir);
    await create(first, 'abc');
    await first.close();
    // Commits before this start (packed on disk) and of this process (just written).
    const store = await open(dir);
    await create(store, 'def');
    await store.apply('abc', setStateSteps({ ...store.get('abc')!, State: 'running' }, 'configured'));
    for (const serial of ['abc', 'def']) {
      for (const { commit } of await store.history(serial)) {
        assert.equal(await store.confAt(serial, commit), git(dir, 'show', `${commit}:${serial}/conf.json`), `${serial} at ${commit}`);
      }
    }
    const [newest] = await store.history('abc');
    assert.equal(JSON.parse((await store.confAt('abc', newest!.commit))!).State, 'configured');
    // A commit from before the host existed has no conf.json of it; a malformed id is no commit.
    const initial = git(dir, 'rev-list', '--max-parents=0', 'HEAD').trim();
    assert.equal(await store.confAt('abc', initial), undefined);
    assert.equal(await store.confAt('abc', '../HEAD'), undefined);
    await store.close();
  });

  it('starts cleanly after a kill left a ref lock and mirror temp files', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-store-'));
    const first = await open(dir);
    await create(first, 'abc');
    await first.close();
    await writeFile(path.join(dir, '.git/refs/heads/master.lock'), '');
    await mkdir(path.join(dir, '.git/mayu-tmp')); // where earlier versions kept mirror temp files
    await writeFile(path.join(dir, '.git/mayu-tmp/abc'), '{"torn');
    const second = await open(dir);
    assert.equal(second.get('abc')!.Serial, 'abc');
    await create(second, 'def');
    await second.close();
    gitFsck(dir);
    assert.equal(git(dir, 'for-each-ref', '--format=%(refname)').trim(), 'refs/heads/master');
    await assert.rejects(stat(path.join(dir, '.git/mayu-tmp')), { code: 'ENOENT' });
  });

  it('after a kill, brings the working tree back to HEAD (torn, missing and stale copies)', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-store-'));
    const first = await open(dir);
    await Promise.all(['abc', 'def', 'ghi'].map((s) => create(first, s)));
    await first.close();
    // What a kill between a durable batch and its working-tree copy leaves: no clean-stop mark.
    await rm(path.join(dir, '.git/mayu-clean-stop'));
    await writeFile(path.join(dir, 'abc/conf.json'), '{"torn');
    await rm(path.join(dir, 'def/conf.json'));
    await writeFile(path.join(dir, 'cluster.json'), '{}');
    const untouched = await stat(path.join(dir, 'ghi/conf.json'));
    const second = await open(dir);
    await second.close();
    for (const file of ['abc/conf.json', 'def/conf.json', 'ghi/conf.json', 'cluster.json']) {
      assert.equal(await readFile(path.join(dir, file), 'utf8'), git(dir, 'show', `HEAD:${file}`), file);
    }
    assert.equal((await stat(path.join(dir, 'ghi/conf.json'))).mtimeMs, untouched.mtimeMs, 'a copy equal to HEAD is not rewritten');
  });

  it('trusts the working tree after a clean stop and takes the clean-stop mark away while it runs', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-store-'));
    await (await open(dir)).close();
    const second = await open(dir);
    await assert.rejects(stat(path.join(dir, '.git/mayu-clean-stop')), { code: 'ENOENT' });
    await second.close();
    await stat(path.join(dir, '.git/mayu-clean-stop'));
  });

  it('a failed journal write fails the changes in flight, rolls memory back, and the store goes on', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-store-'));
    let failing = false;
    const store = await GitStore.open({
      dir,
      randomBytes: (n) => randomBytes(n),
      openJournal: async (gitdir) => {
        const real = await GitJournal.open(gitdir);
        return Object.assign(Object.create(real) as GitJournal, {
          append: (entry: JournalEntry) => (failing ? Promise.reject(new Error('disk on fire')) : real.append(entry)),
        });
      },
    });
    await create(store, 'ok1');
    failing = true;
    const attempts = ['bad1', 'bad2', 'bad3'].map((s) => create(store, s));
    const outcomes = await Promise.allSettled(attempts);
    assert.ok(outcomes.every((o) => o.status === 'rejected' && /the change could not be stored: write failed \(disk on fire\); nothing was changed/.test(String(o.reason))), JSON.stringify(outcomes));
    assert.deepEqual(store.all().map((h) => h.Serial), ['ok1'], 'memory rolled back');
    failing = false;
    await create(store, 'ok2');
    const commit = store.get('ok2')!;
    await store.close();
    gitFsck(dir);
    assert.equal(gitCommitCount(dir), 2 + 5 + 5, 'no commit of the failed changes is in the history');
    assert.equal(git(dir, 'show', 'HEAD:ok2/conf.json'), encodeHost(commit));
    const reopened = await open(dir);
    assert.deepEqual(reopened.all().map((h) => h.Serial).sort(), ['ok1', 'ok2']);
    await reopened.close();
  });

  it('keeps changes git cannot take yet in the journal: git gets them once it can, or at the next open after a kill', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-store-'));
    const errors: Error[] = [];
    const store = await GitStore.open({ dir, randomBytes: (n) => randomBytes(n), onCheckpointError: (e) => errors.push(e) });
    const ok1 = await create(store, 'ok1');
    const packDir = path.join(dir, '.git/objects/pack');
    await rename(packDir, `${packDir}.away`);
    await writeFile(packDir, 'not a folder'); // every pack write fails now (even as root)
    await Promise.all(['j1', 'j2', 'j3'].map((s) => create(store, s)));
    assert.equal(git(dir, 'rev-parse', 'HEAD').trim(), ok1, 'the ref still names ok1\'s last commit');
    assert.ok(errors.some((e) => /git write failed \(the changes are in the journal\)/.test(e.message)), String(errors));
    assert.deepEqual(store.all().map((h) => h.Serial).sort(), ['j1', 'j2', 'j3', 'ok1'], 'acknowledged: they stand');
    assert.ok((await store.history('j2')).length === 5, 'history reads them from the journal');

    // What a kill now leaves on disk, opened by a new process once the disk is fixed.
    const copy = await mkdtemp(path.join(tmpdir(), 'mayu-store-'));
    await cp(dir, copy, { recursive: true });
    await rm(path.join(copy, '.git/objects/pack'));
    await rename(path.join(copy, '.git/objects/pack.away'), path.join(copy, '.git/objects/pack'));
    const recovered = await open(copy);
    assert.deepEqual(recovered.all().map((h) => h.Serial).sort(), ['j1', 'j2', 'j3', 'ok1']);
    assert.equal(gitCommitCount(copy), 2 + 4 * 5, 'every acknowledged change is a commit');
    gitFsck(copy);
    await recovered.close();

    await rm(packDir);
    await rename(`${packDir}.away`, packDir);
    await store.flushHistory();
    assert.equal(gitCommitCount(dir), 2 + 4 * 5);
    assert.equal(git(dir, 'rev-parse', 'HEAD'), git(copy, 'rev-parse', 'HEAD'), 'the same history both ways');
    await store.close();
    gitFsck(dir);
  });

  it('refuses to start on a folder that is a git repo without commits', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'mayu-store-'));
    git(dir, 'init', '-q');
    await assert.rejects(open(dir), /not a mayu cluster repo/);
  });
});
