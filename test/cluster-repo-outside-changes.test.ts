import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { git, gitFsck, gitSubjects } from './helpers/git.ts';
import { runMayuctl, startMayu, type MayuProcess } from './helpers/mayu-process.ts';

// Operators work in the cluster repo while mayu runs (issue 13): their commits stay in history
// and mayu builds on them, hand edits become their own commits, and what mayu cannot take is
// refused loudly and never overwritten. Native git is the judge.

/** git as an operator runs it in the cluster directory (their own identity). */
const operatorGit = (dir: string, ...args: string[]) => git(dir, '-c', 'user.name=Op Erator', '-c', 'user.email=op@example.com', ...args);

const confPath = (m: MayuProcess, serial: string) => path.join(m.clusterDir, serial, 'conf.json');
const getHost = async (m: MayuProcess, serial: string) => (await (await fetch(`${m.url}/admin/host/${serial}`)).json()) as Record<string, unknown>;
const readyz = async (m: MayuProcess) => {
  const res = await fetch(`${m.url}/readyz`);
  return { status: res.status, body: await res.text() };
};

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 8000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const got = await probe();
    if (got !== undefined) return got;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What an operator sees before committing: mayu writes git's index within a moment of its last change. */
async function statusClean(dir: string): Promise<void> {
  await until(`git status in ${dir} to be clean`, () => (git(dir, 'status', '--porcelain').trim() === '' ? true : undefined), 5000);
}

async function editConf(m: MayuProcess, serial: string, edit: (conf: Record<string, unknown>) => void): Promise<void> {
  const conf = JSON.parse(await readFile(confPath(m, serial), 'utf8')) as Record<string, unknown>;
  edit(conf);
  await writeFile(confPath(m, serial), JSON.stringify(conf, null, 2));
}

describe('commits made in the cluster repo outside mayu', () => {
  let mayu: MayuProcess;
  before(async () => {
    mayu = await startMayu();
    for (const s of ['c-1', 'c-2', 'c-3']) assert.equal((await fetch(`${mayu.url}/first-stage-script/${s}`)).status, 200);
  });
  after(() => mayu.stop());

  it("an operator's empty commit stays in git log and mayu's next commit is built on it", async () => {
    await statusClean(mayu.clusterDir);
    operatorGit(mayu.clusterDir, 'commit', '--allow-empty', '-q', '-m', 'note before maintenance');
    const res = await runMayuctl(mayu.port, ['set', 'c-1', 'state', 'installing']);
    assert.equal(res.code, 0, res.stderr);
    const subjects = gitSubjects(mayu.clusterDir);
    assert.deepEqual(subjects.slice(-2), ['note before maintenance', 'c-1: updated host state']);
    assert.equal(git(mayu.clusterDir, 'log', '-1', '--format=%an', 'HEAD~1').trim(), 'Op Erator');
    assert.equal(git(mayu.clusterDir, 'fsck', '--lost-found').trim(), '', 'no commit left dangling');
    gitFsck(mayu.clusterDir);
  });

  it("an operator's commit of an edited conf.json is taken: mayu serves it, and builds on it", async () => {
    await statusClean(mayu.clusterDir);
    await editConf(mayu, 'c-2', (c) => {
      c.ProviderId = 'rack-7/slot-3';
    });
    operatorGit(mayu.clusterDir, 'commit', '-q', '-am', 'c-2: set provider id by hand');
    const taken = await until('the commit to be taken', async () => ((await getHost(mayu, 'c-2')).ProviderId === 'rack-7/slot-3' ? true : undefined));
    assert.ok(taken);
    assert.equal((await runMayuctl(mayu.port, ['set', 'c-2', 'state', 'installing'])).code, 0);
    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(-2), ['c-2: set provider id by hand', 'c-2: updated host state']);
    const conf = JSON.parse(git(mayu.clusterDir, 'show', 'HEAD:c-2/conf.json')) as Record<string, unknown>;
    assert.equal(conf.ProviderId, 'rack-7/slot-3', "mayu's commit keeps the operator's change");
    assert.equal(conf.State, 'installing');
    await statusClean(mayu.clusterDir);
    gitFsck(mayu.clusterDir);
  });

  it('an invalid outside commit is refused: never built on, named in /readyz; mayu keeps answering; a revert lets it go on', async () => {
    const takenAddr = (await getHost(mayu, 'c-1')).InternalAddr as string;
    await statusClean(mayu.clusterDir);
    await editConf(mayu, 'c-3', (c) => {
      c.InternalAddr = takenAddr;
    });
    operatorGit(mayu.clusterDir, 'commit', '-q', '-am', 'c-3: copy an address (a mistake)');
    const bad = git(mayu.clusterDir, 'rev-parse', 'HEAD').trim();
    const ready = await until('/readyz to name the commit', async () => {
      const r = await readyz(mayu);
      return r.status === 503 && r.body.includes(bad.slice(0, 12)) ? r : undefined;
    });
    assert.match(ready.body, new RegExp(`InternalAddr ${takenAddr.replace(/\./g, '\\.')} is also held by c-1`));
    // A change of another host is acknowledged (from the journal) but not built on the bad commit.
    assert.equal((await runMayuctl(mayu.port, ['set', 'c-1', 'state', 'installed'])).code, 0);
    assert.equal((await getHost(mayu, 'c-1')).State, 'installed');
    assert.equal(git(mayu.clusterDir, 'rev-parse', 'HEAD').trim(), bad, 'the branch stays at the refused commit');
    assert.notEqual((await getHost(mayu, 'c-3')).InternalAddr, takenAddr, 'the refused value is not served');
    const metrics = await (await fetch(`${mayu.url}/metrics`)).text();
    assert.match(metrics, /^mayu_outside_changes_refused 1$/m);
    assert.ok(mayu.logs.some((l) => String(l.msg).includes('change made outside mayu refused')));

    operatorGit(mayu.clusterDir, 'revert', '--no-edit', 'HEAD');
    await until('/readyz to be ready again', async () => ((await readyz(mayu)).status === 200 ? true : undefined));
    await until('the held change to reach git', () => (gitSubjects(mayu.clusterDir).at(-1) === 'c-1: updated host state' ? true : undefined));
    const subjects = gitSubjects(mayu.clusterDir);
    assert.deepEqual(subjects.slice(-3), ['c-3: copy an address (a mistake)', 'Revert "c-3: copy an address (a mistake)"', 'c-1: updated host state']);
    assert.equal(JSON.parse(git(mayu.clusterDir, 'show', 'HEAD:c-1/conf.json')).State, 'installed');
    assert.equal(git(mayu.clusterDir, 'fsck', '--lost-found').trim(), '');
    gitFsck(mayu.clusterDir);
  });

  it('rewritten history (reset to an older commit) is refused until the branch is put back', async () => {
    const head = git(mayu.clusterDir, 'rev-parse', 'HEAD').trim();
    operatorGit(mayu.clusterDir, 'reset', '-q', '--soft', 'HEAD~2');
    await until('/readyz to report rewritten history', async () => ((await readyz(mayu)).body.includes('history was rewritten') ? true : undefined));
    operatorGit(mayu.clusterDir, 'reset', '-q', '--soft', head);
    await until('/readyz to be ready again', async () => ((await readyz(mayu)).status === 200 ? true : undefined));
    assert.equal((await runMayuctl(mayu.port, ['set', 'c-3', 'state', 'installing'])).code, 0);
    assert.equal(git(mayu.clusterDir, 'rev-parse', 'HEAD~1').trim(), head);
    gitFsck(mayu.clusterDir);
  });
});

describe('conf.json edited by hand while mayu runs', () => {
  let mayu: MayuProcess;
  before(async () => {
    mayu = await startMayu();
    for (const s of ['e-1', 'e-2', 'e-3']) assert.equal((await fetch(`${mayu.url}/first-stage-script/${s}`)).status, 200);
  });
  after(() => mayu.stop());

  it('is committed as "<serial>: updated by hand (fields)" before the next change to that host', async () => {
    assert.equal((await getHost(mayu, 'e-1')).Profile, 'core');
    await editConf(mayu, 'e-1', (c) => {
      c.Profile = 'default';
      c.ProviderId = 'by-hand';
    });
    // Straight away: the change asked for next goes after the edit.
    assert.equal((await runMayuctl(mayu.port, ['set', 'e-1', 'state', 'installing'])).code, 0);
    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(-2), ['e-1: updated by hand (ProviderId, Profile)', 'e-1: updated host state']);
    const host = await getHost(mayu, 'e-1');
    assert.equal(host.Profile, 'default');
    assert.equal(host.ProviderId, 'by-hand');
    await statusClean(mayu.clusterDir);
    gitFsck(mayu.clusterDir);
  });

  it('is noticed by the periodic scan without any request', async () => {
    await editConf(mayu, 'e-2', (c) => {
      c.ProviderId = 'scan-me';
    });
    await until('the scan to commit it', () => (gitSubjects(mayu.clusterDir).at(-1) === 'e-2: updated by hand (ProviderId)' ? true : undefined));
    const events = mayu.logs.filter((l) => l.msg === 'host changed' && l.serial === 'e-2');
    assert.ok(events.some((l) => JSON.stringify(l.changes).includes('updated by hand')), 'announced like any change');
  });

  it('an invalid edit is refused: the file stays as written, that host answers 409, /readyz names it; fixing it goes on', async () => {
    const text = '{"Serial": "e-3", "State": "flying"}';
    await writeFile(confPath(mayu, 'e-3'), text);
    const before = gitSubjects(mayu.clusterDir).length;
    const res = await fetch(`${mayu.url}/admin/host/e-3/set_state`, { method: 'PUT', body: '{"State":"installing"}' });
    assert.equal(res.status, 409);
    assert.match(await res.text(), /e-3\/conf\.json \(edited by hand\) is refused: field State: unknown state "flying"/);
    const r = await readyz(mayu);
    assert.equal(r.status, 503);
    assert.match(r.body, /e-3\/conf\.json \(edited by hand\)/);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await readFile(confPath(mayu, 'e-3'), 'utf8'), text, 'never overwritten');
    assert.equal(gitSubjects(mayu.clusterDir).length, before, 'nothing committed');
    // Other hosts go on.
    assert.equal((await runMayuctl(mayu.port, ['set', 'e-2', 'state', 'installing'])).code, 0);

    await writeFile(confPath(mayu, 'e-3'), git(mayu.clusterDir, 'show', 'HEAD:e-3/conf.json'));
    await until('/readyz to be ready again', async () => ((await readyz(mayu)).status === 200 ? true : undefined));
    assert.equal((await runMayuctl(mayu.port, ['set', 'e-3', 'state', 'installing'])).code, 0);
    gitFsck(mayu.clusterDir);
  });

  it('a hand edit that takes an address another host holds is refused', async () => {
    const other = (await getHost(mayu, 'e-1')).InternalAddr;
    await editConf(mayu, 'e-2', (c) => {
      c.InternalAddr = other;
    });
    const res = await fetch(`${mayu.url}/admin/host/e-2/set_state`, { method: 'PUT', body: '{"State":"installed"}' });
    assert.equal(res.status, 409);
    assert.match(await res.text(), /is also held by e-1/);
    await writeFile(confPath(mayu, 'e-2'), git(mayu.clusterDir, 'show', 'HEAD:e-2/conf.json'));
    await until('/readyz to be ready again', async () => ((await readyz(mayu)).status === 200 ? true : undefined));
  });

  it('a host folder deleted by hand is one deletion commit', async () => {
    await rm(path.join(mayu.clusterDir, 'e-3'), { recursive: true });
    await until('the deletion commit', () => (gitSubjects(mayu.clusterDir).at(-1) === 'e-3: deleted by hand' ? true : undefined));
    assert.equal((await fetch(`${mayu.url}/admin/host/e-3`)).status, 404);
    assert.equal(git(mayu.clusterDir, 'ls-tree', '--name-only', 'HEAD').split('\n').includes('e-3'), false);
    gitFsck(mayu.clusterDir);
  });

  it('edits made while mayu was stopped are taken at the next start', async () => {
    await mayu.stop();
    await editConf(mayu, 'e-1', (c) => {
      c.ProviderId = 'while-stopped';
    });
    mayu = await startMayu({ workDir: mayu.workDir });
    assert.equal((await getHost(mayu, 'e-1')).ProviderId, 'while-stopped');
    await until('the commit', () => (gitSubjects(mayu.clusterDir).at(-1) === 'e-1: updated by hand (ProviderId)' ? true : undefined));
    gitFsck(mayu.clusterDir);
  });
});
