// The cluster repo looks like 0.11's: commits by `mayu commiter <support+noise@giantswarm.io>`,
// and a new repo gets 0.11's local git config; an existing repo's config is left as it is.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { git } from './helpers/git.ts';
import { FIXTURES, hostData, macFor, startMayu, tempDir } from './helpers/mayu-process.ts';

const MAYU_IDENTITY = 'mayu commiter <support+noise@giantswarm.io>';

/** Author and committer of every commit, newest first, as native git reads them. */
const identities = (dir: string) => git(dir, 'log', '--format=%an <%ae>|%cn <%ce>').split('\n').filter(Boolean);

describe('cluster repo identity', () => {
  it('creates a repo with 0.11\'s .git/config (byte for byte) and commits by mayu commiter <support+noise@giantswarm.io>', async () => {
    const mayu = await startMayu();
    try {
      const post = await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('id-1', macFor(1))) });
      assert.equal(post.status, 200);
    } finally {
      await mayu.stop();
    }
    const dir = mayu.clusterDir;
    assert.equal(await readFile(path.join(dir, '.git/config'), 'utf8'), await readFile(path.join(FIXTURES, 'mayu-0.11/new-repo-git-config'), 'utf8'));
    const local = git(dir, 'config', '--local', '-l').split('\n');
    for (const line of ['user.name=mayu commiter', 'user.email=support+noise@giantswarm.io', 'push.default=matching', 'core.filemode=true']) {
      assert.ok(local.includes(line), `${line} in ${local.join(', ')}`);
    }
    const ids = identities(dir);
    assert.equal(ids.length, 2 + 8); // initial commit, etcd token; 8 commits of the host
    assert.deepEqual([...new Set(ids)], [`${MAYU_IDENTITY}|${MAYU_IDENTITY}`]);
    // Native git in that folder (an operator's own commit) takes the same identity from the repo's config.
    assert.match(git(dir, 'var', 'GIT_COMMITTER_IDENT'), /^mayu commiter <support\+noise@giantswarm\.io> \d+ [+-]\d{4}\n$/);
  });

  it('leaves an existing repo\'s config alone on the next start', async () => {
    const workDir = await tempDir();
    const first = await startMayu({ workDir });
    await first.stop();
    const dir = first.clusterDir;
    git(dir, 'config', 'user.name', 'Ops Team');
    git(dir, 'config', '--unset', 'push.default');
    const before = await readFile(path.join(dir, '.git/config'), 'utf8');
    const again = await startMayu({ workDir });
    try {
      assert.equal((await fetch(`${again.url}/first-stage-script/id-2`)).status, 200);
    } finally {
      await again.stop();
    }
    assert.equal(await readFile(path.join(dir, '.git/config'), 'utf8'), before);
    // mayu's own commits keep mayu's identity.
    assert.equal(identities(dir)[0], `${MAYU_IDENTITY}|${MAYU_IDENTITY}`);
  });
});
