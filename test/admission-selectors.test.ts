import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FIXTURES, hostData, mayuFailsToStart, startMayu, tempDir, writeText, type MayuProcess } from './helpers/mayu-process.ts';

// Profile selectors (issue 17) against the real server: serial globs, MAC prefixes from iPXE's
// boot request and from the installer's NICs, NIC count; first matching profile with room wins;
// invalid selectors and inventories stop mayu at load naming file, key and reason.

const PROFILES = `profiles:
  - name: rack-a
    quantity: 2
    tags: ["rack=a"]
    selector:
      serials: ["rack-a-*"]
  - name: vm
    quantity: 5
    tags: ["kind=vm"]
    selector:
      macs: ["52:54:00:AA"]
  - name: fast-nic
    quantity: 5
    selector:
      nic_drivers: [ixgbe, i40e]
  - name: dual-nic
    quantity: 5
    tags: ["nics=2"]
    selector:
      nic_count: {min: 2}
  - name: core
    quantity: 3
    tags: ["role-core=true"]
  - name: default
    tags: ["role-worker=true"]
`;

async function baseWithout(): Promise<string> {
  const base = await readFile(path.join(FIXTURES, 'config.yaml'), 'utf8');
  return base.slice(0, base.indexOf('profiles:')) + base.slice(base.indexOf('templates_env:'));
}

/** `mayu serve` arguments for a work dir, as startMayu gives them (mayuFailsToStart adds port and address). */
const serveArgs = (dir: string, config: string) => [
  '--config', config, '--cluster-directory', path.join(dir, 'clusters'), '--profiles-dir', path.join(dir, 'profiles'),
  '--run-dir', path.join(dir, 'run'), '--report-key-file', path.join(dir, 'report-key'),
];

const profileOf = async (m: MayuProcess, serial: string) => ((await (await fetch(`${m.url}/admin/host/${serial}`)).json()) as { Profile: string }).Profile;

describe('profile selectors', () => {
  let mayu: MayuProcess;
  before(async () => {
    const dir = await tempDir('mayu-selectors-');
    const config = await writeText(path.join(dir, 'config.yaml'), `${await baseWithout()}${PROFILES}`);
    mayu = await startMayu({ workDir: dir, config });
  });
  after(() => mayu.stop());

  it('a serial glob takes its machines while the profile has room; others fall through to profiles without a selector', async () => {
    for (const s of ['rack-a-1', 'other-1', 'RACK-A-2', 'rack-a-3']) assert.equal((await fetch(`${mayu.url}/first-stage-script/${s}`)).status, 200);
    assert.equal(await profileOf(mayu, 'rack-a-1'), 'rack-a');
    assert.equal(await profileOf(mayu, 'rack-a-2'), 'rack-a');
    assert.equal(await profileOf(mayu, 'other-1'), 'core', 'no rack-a serial: the selector does not match');
    assert.equal(await profileOf(mayu, 'rack-a-3'), 'core', 'rack-a is full: the next profile with room');
  });

  it('a MAC prefix matches the NIC iPXE booted from, or the NICs an installer posts for a new host', async () => {
    await fetch(`${mayu.url}/ipxebootscript?serial=vm-1&mac=52-54-00-aa-01-01&uuid=x`);
    assert.equal((await fetch(`${mayu.url}/first-stage-script/vm-1`)).status, 200);
    assert.equal(await profileOf(mayu, 'vm-1'), 'vm');
    const post = await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(hostData('vm-2', '52:54:00:aa:01:02')) });
    assert.equal(post.status, 200);
    assert.equal(await profileOf(mayu, 'vm-2'), 'vm');
    await fetch(`${mayu.url}/ipxebootscript?serial=pc-1&mac=00-25-90-01-01-01&uuid=x`);
    await fetch(`${mayu.url}/first-stage-script/pc-1`);
    assert.equal(await profileOf(mayu, 'pc-1'), 'core', 'another vendor: not vm');
  });

  it('a NIC driver matches the installer\'s NetDevs[].Driver; a bad Driver is a 400', async () => {
    const data = { ...hostData('nd-1', '00:25:90:00:01:01'), NetDevs: [{ Name: 'eno1', MacAddress: '00:25:90:00:01:01', Driver: 'ixgbe' }] };
    assert.equal((await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(data) })).status, 200);
    assert.equal(await profileOf(mayu, 'nd-1'), 'fast-nic');
    const bad = { ...data, Serial: 'nd-2', NetDevs: [{ ...data.NetDevs[0], Driver: '../x' }] };
    const res = await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(bad) });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /NetDevs\[0\]\.Driver: invalid driver name/);
  });

  it("the installer's first-stage request names the NICs (?nic=<mac>,<driver>): driver and count selectors match before any POST", async () => {
    const hostCount = async () => (await (await fetch(`${mayu.url}/admin/hosts`)).json() as unknown[]).length;
    assert.equal((await fetch(`${mayu.url}/first-stage-script/fs-1?nic=00:25:90:00:02:01,i40e`)).status, 200);
    assert.equal(await profileOf(mayu, 'fs-1'), 'fast-nic');
    assert.equal((await fetch(`${mayu.url}/first-stage-script/fs-2?nic=00-25-90-00-03-01,igb&nic=00:25:90:00:03:02,igb`)).status, 200);
    assert.equal(await profileOf(mayu, 'fs-2'), 'dual-nic');
    // Bad NIC facts: 400 naming the reason, no host created.
    const before = await hostCount();
    for (const [query, reason] of [
      ['nic=zz:25:90:00:04:01,igb', /invalid MAC address/],
      ['nic=00:25:90:00:04:01,../x', /nic\[0\]: invalid driver name/],
      ['nic=00:25:90:00:04:01,igb,extra', /is not <mac>\[,<driver>\]/],
      [Array.from({ length: 65 }, (_, i) => `nic=00:25:90:00:05:${i.toString(16).padStart(2, '0')}`).join('&'), /at most 64/],
    ] as const) {
      const res = await fetch(`${mayu.url}/first-stage-script/fs-bad?${query}`);
      assert.equal(res.status, 400, query.slice(0, 60));
      assert.match(await res.text(), reason);
    }
    assert.equal(await hostCount(), before);
  });

  it('a NIC count matches the installer\'s NICs', async () => {
    const data = { ...hostData('two-1', '00:25:90:00:00:01'), NetDevs: [{ Name: 'eno1', MacAddress: '00:25:90:00:00:01' }, { Name: 'eno2', MacAddress: '00:25:90:00:00:02' }] };
    assert.equal((await fetch(`${mayu.url}/final-cloud-config.yaml`, { method: 'POST', body: JSON.stringify(data) })).status, 200);
    assert.equal(await profileOf(mayu, 'two-1'), 'dual-nic');
    const preview = await fetch(`${mayu.url}/admin/host/none-1/render/first-stage?profile=rack-a`);
    assert.equal(preview.status, 200, 'a preview in a chosen profile ignores selectors');
  });
});

describe('selectors and the inventory are checked at load', () => {
  const failsWith = async (profilesYaml: string, pattern: RegExp) => {
    const dir = await tempDir('mayu-selectors-bad-');
    const config = await writeText(path.join(dir, 'config.yaml'), `${await baseWithout()}${profilesYaml}`);
    const { code, stderr } = await mayuFailsToStart(serveArgs(dir, config));
    assert.equal(code, 1, stderr);
    assert.match(stderr, pattern);
    return stderr;
  };

  it('an invalid selector stops mayu with the file, the key and the reason', async () => {
    await failsWith('profiles:\n  - name: a\n    quantity: 1\n    selector:\n      serials: ["rack/a*"]\n', /config\.yaml: profiles\.0\.selector\.serials(\.0)?: expected a serial or a glob/);
    await failsWith('profiles:\n  - name: a\n    quantity: 1\n    selector:\n      macs: ["zz:00"]\n', /config\.yaml: profiles\.0\.selector\.macs(\.0)?: expected a MAC address or a prefix/);
    await failsWith('profiles:\n  - name: a\n    quantity: 1\n    selector: {}\n', /config\.yaml: profiles\.0\.selector: an empty selector matches every machine/);
    await failsWith('profiles:\n  - name: a\n    quantity: 1\n    selector:\n      nic_count: {min: 4, max: 2}\n', /config\.yaml: profiles\.0\.selector\.nic_count: min must not be above max/);
    await failsWith('profiles:\n  - name: a\n    quantity: 1\n    selector:\n      vendor: x\n', /config\.yaml: profiles\.0\.selector: Unrecognized key: "vendor"/);
    await failsWith('admission:\n  mode: closed\n', /config\.yaml: admission\.mode: Invalid option/);
  });

  it('an inventory naming an unknown profile stops mayu with the file, the key and the reason', async () => {
    const dir = await tempDir('mayu-inventory-bad-');
    const withCore = await writeText(path.join(dir, 'config.yaml'), `${await baseWithout()}${PROFILES}`);
    const mayu = await startMayu({ workDir: dir, config: withCore });
    assert.equal((await fetch(`${mayu.url}/admin/inventory/inv-1`, { method: 'PUT', body: '{"Profile":"rack-a"}' })).status, 201);
    await mayu.stop();
    const without = await writeText(path.join(dir, 'config2.yaml'), `${await baseWithout()}profiles:\n  - name: core\n    quantity: 3\n`);
    const { code, stderr } = await mayuFailsToStart(serveArgs(dir, without));
    assert.equal(code, 1, stderr);
    assert.match(stderr, /clusters\/_config\/inventory\.yaml: machines\.0\.profile: unknown profile "rack-a" \(profiles: core, default\)/);
  });
});
