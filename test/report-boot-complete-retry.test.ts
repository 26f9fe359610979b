import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gitCommitCount, gitSubjects } from './helpers/git.ts';
import { hostData, macFor, reportAuth, startMayu, type MayuProcess } from './helpers/mayu-process.ts';

// boot_complete commits on every boot (LastBoot moves, as in 0.11). A machine whose answer timed
// out sends the same report again: with the boot's id (X-Mayu-Boot-Id, the shipped OS sends its
// kernel boot_id) that retry is answered without a second commit. A new boot, a report with new
// versions or one without a boot id commit as before.

describe('boot_complete repeated for the same boot', () => {
  let mayu: MayuProcess;
  before(async () => {
    mayu = await startMayu();
  });
  after(async () => {
    await mayu?.stop();
  });

  const report = async (serial: string, bootId: string | undefined, body = '{"CoreOSVersion":"1.0.0"}') => {
    const headers: Record<string, string> = { ...(await reportAuth(mayu, serial)), ...(bootId === undefined ? {} : { 'x-mayu-boot-id': bootId }) };
    const res = await fetch(`${mayu.url}/admin/host/${serial}/boot_complete`, { method: 'PUT', body, headers });
    return { status: res.status, text: await res.text() };
  };
  const host = async (serial: string) => (await (await fetch(`${mayu.url}/admin/host/${serial}`)).json()) as { State: string; LastBoot: string; CoreOSVersion?: string };

  it('a retry of the same boot makes no commit; another boot, new versions or no boot id do', async () => {
    const serial = 'boot-retry-1';
    assert.equal((await fetch(`${mayu.url}/first-stage-script/${serial}`)).status, 200);
    assert.equal((await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, macFor(1))) })).status, 200);
    assert.equal((await fetch(`${mayu.url}/admin/host/${serial}/set_installed`, { method: 'PUT', headers: await reportAuth(mayu, serial) })).status, 202);
    const boot = '6f1c2e4a-93b1-4d7e-8c55-0a1b2c3d4e5f';

    let commits = gitCommitCount(mayu.clusterDir);
    assert.equal((await report(serial, boot)).status, 202);
    assert.equal(gitCommitCount(mayu.clusterDir), ++commits, 'the first report of a boot is a commit');
    const first = await host(serial);
    assert.equal(first.State, 'running');

    for (let i = 0; i < 3; i++) assert.equal((await report(serial, boot)).status, 202);
    assert.equal(gitCommitCount(mayu.clusterDir), commits, 'retries of the same boot: no commit');
    assert.equal((await host(serial)).LastBoot, first.LastBoot);

    assert.equal((await report(serial, boot, '{"CoreOSVersion":"1.1.0"}')).status, 202);
    assert.equal(gitCommitCount(mayu.clusterDir), ++commits, 'new versions are stored');
    assert.equal((await host(serial)).CoreOSVersion, '1.1.0');

    assert.equal((await report(serial, 'a-second-boot')).status, 202);
    assert.equal(gitCommitCount(mayu.clusterDir), ++commits, 'a new boot is a commit');
    assert.equal((await report(serial, undefined)).status, 202);
    assert.equal((await report(serial, undefined)).status, 202);
    assert.equal(gitCommitCount(mayu.clusterDir), commits + 2, 'without a boot id, every report is a commit (0.11)');
    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(-5), Array(5).fill(`${serial}: updated state to running`));
  });

  it('retries sent together with the first report make one commit', async () => {
    const serial = 'boot-retry-2';
    assert.equal((await fetch(`${mayu.url}/first-stage-script/${serial}`)).status, 200);
    assert.equal((await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, macFor(2))) })).status, 200);
    assert.equal((await fetch(`${mayu.url}/admin/host/${serial}/set_installed`, { method: 'PUT', headers: await reportAuth(mayu, serial) })).status, 202);
    const commits = gitCommitCount(mayu.clusterDir);
    const answers = await Promise.all(Array.from({ length: 5 }, () => report(serial, 'boot-together')));
    assert.deepEqual(answers.map((a) => a.status), [202, 202, 202, 202, 202]);
    assert.equal(gitCommitCount(mayu.clusterDir), commits + 1);
  });

  it('a malformed boot id is a 400 and writes nothing', async () => {
    const serial = 'boot-retry-1';
    const commits = gitCommitCount(mayu.clusterDir);
    const bad = await report(serial, 'not a boot id; rm -rf /');
    assert.equal(bad.status, 400);
    assert.match(bad.text, /invalid X-Mayu-Boot-Id/);
    assert.equal(gitCommitCount(mayu.clusterDir), commits);
  });
});
