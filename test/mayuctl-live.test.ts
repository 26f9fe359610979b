import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { gitCommitCount, gitSubjects } from './helpers/git.ts';
import { hostData, runMayuctl, startMayu, type MayuProcess } from './helpers/mayu-process.ts';

// mayuctl as a real process against the real mayu process.

describe('mayuctl against a live mayu', () => {
  let mayu: MayuProcess;
  const mayuctl = (...args: string[]) => runMayuctl(mayu.port, args);

  before(async () => {
    mayu = await startMayu();
    await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('ctl-1', '52:54:00:00:00:01')) });
    await fetch(`${mayu.url}/first-stage-script/ctl-2`);
  });
  after(() => mayu.stop());

  it('list prints the 0.11 table: upper-case header, - for empty cells, quoted state, rows sorted', async () => {
    const { code, stdout } = await mayuctl('list');
    assert.equal(code, 0);
    const lines = stdout.trimEnd().split('\n');
    assert.deepEqual(lines[0]!.split(/\s{2,}/), ['IP', 'SERIAL', 'PROFILE', 'IPMIADDR', 'PROVIDERID', 'ETCDTOKEN', 'METADATA', 'COREOS', 'STATE', 'LASTBOOT']);
    const row1 = lines[1]!.split(/\s{2,}/);
    assert.deepEqual([row1[0], row1[1], row1[2], row1[3], row1[4], row1[8], row1[9]], ['10.0.3.31', 'ctl-1', 'core', '-', '-', '"installing"', '0001-01-01 00:00:00']);
    assert.equal(lines[2]!.split(/\s{2,}/)[1], 'ctl-2');
    assert.equal(lines.length, 3);
  });

  it('list --no-legend --fields and --json', async () => {
    assert.equal((await mayuctl('list', '--no-legend', '--fields=serial,state')).stdout.replace(/ +/g, ' '), 'ctl-1 "installing"\nctl-2 "unknown"\n');
    const hosts = JSON.parse((await mayuctl('list', '--json')).stdout) as { Serial: string }[];
    assert.deepEqual(hosts.map((h) => h.Serial), ['ctl-1', 'ctl-2']);
    const bad = await mayuctl('list', '--fields=nope');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr + bad.stdout, /Invalid field: "nope"\./);
  });

  it('status shows a host, and exits 1 for an unknown one', async () => {
    const { code, stdout } = await mayuctl('status', 'ctl-1');
    assert.equal(code, 0);
    assert.match(stdout, /^Serial:\s+ctl-1$/m);
    assert.match(stdout, /^State:\s+"installing"$/m);
    assert.match(stdout, /^Macs:\s+52:54:00:00:00:01$/m);
    const missing = await mayuctl('status', 'nobody');
    assert.equal(missing.code, 1);
    assert.match(missing.stdout + missing.stderr, /host nobody not found\./);
  });

  it('set writes one commit per change with 0.11 messages; a refused one exits 1 and writes nothing', async () => {
    const before = gitCommitCount(mayu.clusterDir);
    assert.equal((await mayuctl('set', 'ctl-1', 'metadata', 'a=b,c=d')).code, 0);
    assert.equal((await mayuctl('set', 'ctl-1', 'providerid', 'rack-7')).code, 0);
    assert.equal((await mayuctl('set', 'ctl-1', 'cabinet', '3')).code, 0);
    assert.equal((await mayuctl('override', 'ctl-1', 'install_disk', '/dev/vdb')).code, 0);
    assert.deepEqual(gitSubjects(mayu.clusterDir).slice(before), [
      'ctl-1: updated host metadata', 'ctl-1: updated host provider id', 'ctl-1: updated host cabinet', 'ctl-1: updated host overrides: install_disk',
    ]);
    const refused = await mayuctl('set', 'ctl-1', 'metadata', 'no-equals-sign');
    assert.equal(refused.code, 1);
    assert.match(refused.stdout + refused.stderr, /invalid status code '400'/);
    assert.match(refused.stdout + refused.stderr, /invalid metadata "no-equals-sign": expected key=value/);
    assert.equal(gitCommitCount(mayu.clusterDir), before + 4);
    const hosts = JSON.parse((await mayuctl('list', '--json')).stdout) as Record<string, unknown>[];
    assert.deepEqual(hosts[0]!.FleetMetadata, ['a=b', 'c=d']);
    assert.equal(hosts[0]!.Cabinet, 3);
    const unsupported = await mayuctl('set', 'ctl-1', 'colour', 'red');
    assert.equal(unsupported.code, 2);
    assert.match(unsupported.stdout + unsupported.stderr, /setting key with name 'colour' is not supported/);
  });

  it('history prints the audit trail from git, newest first', async () => {
    const { code, stdout } = await mayuctl('history', 'ctl-1');
    assert.equal(code, 0);
    const lines = stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d {2}[0-9a-f]{8} {2}ctl-1: updated host overrides: install_disk$/);
    assert.match(lines.at(-1)!, /ctl-1: host created$/);
    assert.equal(lines.length, 12);
  });
});
