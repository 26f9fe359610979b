import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { writeCheckpoint } from '../src/git/checkpoint.ts';
import { GitObjectReader } from '../src/git/object-reader.ts';
import { encodeCommit, encodeTree, objectId } from '../src/git/objects.ts';
import { PackBuilder } from '../src/git/pack.ts';
import { RefMovedError } from '../src/git/refs.ts';
import { git, gitFsck } from './helpers/git.ts';
import { tempDir } from './helpers/mayu-process.ts';

// Two writers of one repo (etcd replicas' history writer: a paused writer wakes after another
// replica replayed its journal and checkpointed the same batches) build the same pack, byte for
// byte, so of the same name. The late writer's compare-and-swap on the ref fails; it must not
// delete "its" pack then: the pack is the other writer's, and the branch names its commits.

const REF = 'refs/heads/master';

test('a checkpoint refused by a moved ref leaves a pack of the same name that another writer made', async () => {
  const dir = await tempDir();
  git(dir, 'init', '-q', '-b', 'master');
  git(dir, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '--allow-empty', '-m', 'base');
  const base = git(dir, 'rev-parse', 'HEAD').trim();
  const gitdir = path.join(dir, '.git');

  // One journaled batch: a blob, a tree, a commit on the base.
  const builder = new PackBuilder(3);
  const objects: { oid: string; record: Buffer; crc: number }[] = [];
  const put = (type: 'blob' | 'tree' | 'commit', content: Buffer) => {
    const oid = objectId(type, content);
    const record = builder.add(oid, type, content, undefined, 0);
    objects.push({ oid, record, crc: builder.lastCrc });
    return oid;
  };
  const blob = put('blob', Buffer.from('{"Serial":"p-0"}\n'));
  const tree = put('tree', encodeTree([{ mode: '100644', name: 'conf.json', oid: blob }]));
  const head = put('commit', encodeCommit({ tree, parents: [base], author: { name: 'mayu', email: 'm@m', timestamp: 1_700_000_000 }, message: 'p-0: host created\n' }));
  const entry = { parent: base, head, objects };

  // The stale writer's view of the packs was taken before the other writer's checkpoint.
  const stale = new GitObjectReader(gitdir);
  await stale.refresh();
  const other = new GitObjectReader(gitdir);
  await other.refresh();
  await writeCheckpoint(other, REF, [entry]);
  const packs = readdirSync(path.join(gitdir, 'objects', 'pack')).filter((n) => n.endsWith('.pack'));
  assert.equal(packs.length, 1);
  // The other writer goes on: the ref moves past the batch.
  git(dir, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '--allow-empty', '-m', 'later');

  await assert.rejects(writeCheckpoint(stale, REF, [entry]), RefMovedError);
  assert.ok(existsSync(path.join(gitdir, 'objects', 'pack', packs[0]!)), 'the other writer\'s pack is still there');
  assert.ok(existsSync(path.join(gitdir, 'objects', 'pack', packs[0]!.replace(/\.pack$/, '.idx'))));
  assert.equal(git(dir, 'log', '--format=%s').trim().split('\n').join('|'), 'later|p-0: host created|base');
  assert.equal(gitFsck(dir), '');
});
