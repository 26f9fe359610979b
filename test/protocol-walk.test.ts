import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { git, gitCommitCount, gitFsck, gitSubjects } from './helpers/git.ts';
import { hostData, startMayu, type MayuProcess, reportAuth } from './helpers/mayu-process.ts';

// The whole 0.11 protocol against the real server process, checked with the native git.

describe('protocol walk of one new machine', () => {
  let mayu: MayuProcess;
  before(async () => {
    mayu = await startMayu();
  });
  after(() => mayu.stop());

  const serial = 'walk-001';
  /** A machine's report, with the report token mayu rendered for it. */
  const put = async (route: string, body?: unknown) =>
    fetch(`${mayu.url}/admin/host/${serial}/${route}`, { method: 'PUT', headers: await reportAuth(mayu, serial), body: body === undefined ? undefined : JSON.stringify(body) });

  it('goes configured → installing → installed → running in exactly the 10 commits of protocol section 6', async () => {
    const root = await fetch(`${mayu.url}/`);
    assert.equal(await root.text(), 'this is the iPXE server of mayu 0.12.0');

    const chain = await fetch(`${mayu.url}/ipxebootscript`);
    assert.equal(chain.status, 200);
    assert.ok((await chain.text()).includes(`chain ${mayu.url}/ipxebootscript?serial=`), 'the fixed URL chains with the identity');
    const ipxe = await fetch(`${mayu.url}/ipxebootscript?serial=${serial.toUpperCase()}&mac=52-54-00-aa-bb-01&uuid=`);
    assert.equal(ipxe.status, 200);
    const script = await ipxe.text();
    assert.match(script, /^#!ipxe\n/);
    assert.ok(script.includes(`${mayu.url}/images/vmlinuz`), 'kernel URL carries bind_addr and the real port');

    const first = await fetch(`${mayu.url}/first-stage-script/${serial.toUpperCase()}`);
    assert.equal(first.status, 200, await first.clone().text());
    assert.ok((await first.text()).includes(serial), 'the script knows its serial (lower-cased)');

    const final = await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData(serial, '52:54:00:aa:bb:01')) });
    assert.equal(final.status, 200);
    assert.match(await final.text(), /^#cloud-config/);

    const installed = await put('set_installed');
    assert.equal(installed.status, 202);
    assert.equal(await installed.text(), '');
    const boot = await put('boot_complete', { ConnectedNIC: '', LastBoot: '0001-01-01T00:00:00Z', State: 'unknown', CoreOSVersion: '1010.5.0', MayuVersion: '0.11.1' });
    assert.equal(boot.status, 202);

    const subjects = gitSubjects(mayu.clusterDir);
    assert.deepEqual(subjects.slice(2), [
      'host created', 'updated with predefined settings', 'updated host InternalAddr',
      'updated host profile and metadata', 'set default etcd discovery token',
      'collected host mac addresses', 'updated host connected nic', 'updated host state to installing',
      'updated state to installed', 'updated state to running',
    ].map((m) => `${serial}: ${m}`));
    assert.equal(subjects[0], 'initial commit');
    gitFsck(mayu.clusterDir);
  });

  it('stores conf.json in git exactly as the working-tree file and the API show it', async () => {
    const inGit = git(mayu.clusterDir, 'show', `HEAD:${serial}/conf.json`);
    const onDisk = await readFile(path.join(mayu.clusterDir, serial, 'conf.json'), 'utf8');
    assert.equal(onDisk, inGit);
    assert.ok(!inGit.endsWith('\n'));
    const conf = JSON.parse(inGit) as Record<string, unknown>;
    assert.deepEqual(Object.keys(conf), [
      'Enabled', 'Serial', 'MacAddresses', 'InternalAddr', 'Hostname', 'MachineID', 'ConnectedNIC', 'FleetMetadata',
      'LastBoot', 'Profile', 'EtcdClusterToken', 'State', 'CoreOSVersion', 'MayuVersion',
    ]);
    assert.equal(conf.State, 'running');
    assert.equal(conf.Profile, 'core');
    const hosts = (await (await fetch(`${mayu.url}/admin/hosts`)).json()) as Record<string, unknown>[];
    assert.deepEqual(hosts, [conf]);
  });

  it('answers a repeated request that changes nothing with success and no commit', async () => {
    const count = gitCommitCount(mayu.clusterDir);
    assert.equal((await put('set_metadata', { FleetMetadata: ['role-core=true'], ConnectedNIC: '', LastBoot: '0001-01-01T00:00:00Z', State: 'unknown' })).status, 202);
    assert.equal((await fetch(`${mayu.url}/first-stage-script/${serial}`)).status, 200);
    assert.equal(gitCommitCount(mayu.clusterDir), count);
  });

  it('records boot_complete on every boot (running → running moves LastBoot)', async () => {
    const count = gitCommitCount(mayu.clusterDir);
    assert.equal((await put('boot_complete', { State: 'unknown' })).status, 202);
    assert.equal(gitCommitCount(mayu.clusterDir), count + 1);
  });

  it('answers the audit trail of the host from git, newest first', async () => {
    const history = (await (await fetch(`${mayu.url}/admin/host/${serial}/history`)).json()) as { commit: string; message: string }[];
    assert.equal(history.length, 11);
    assert.equal(history[0]!.commit, git(mayu.clusterDir, 'rev-parse', 'HEAD').trim());
    assert.equal(history.at(-1)!.message, `${serial}: host created`);
  });
});
