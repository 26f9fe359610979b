import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  bootCompleteSteps, creationSteps, finalConfigSteps, HostChangeError, overrideSteps, setInstalledSteps, setStateSteps,
} from '../src/core/host-changes.ts';
import { newHost, type Host } from '../src/core/host.ts';
import { IllegalTransitionError } from '../src/core/states.ts';

const ctx = (hosts: Host[] = []) => ({
  hosts,
  profiles: [{ name: 'core', quantity: 1, tags: ['role-core=true'], disable_engine: false, coreos_version: '835.13.0' }],
  ipRange: { start: '10.0.3.31', end: '10.0.3.32' },
  defaultEtcdToken: 'e94768ef0f948b0c2e53536d9c5eeb8f',
  randomBytes: Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i),
});

const data = { Serial: 'abc', NetDevs: [{ Name: 'ens3', MacAddress: '00:16:3e:a0:b7:df' }], IPMIAddress: '', ConnectedNIC: 'ens3' };

describe('host creation sequence', () => {
  it('is the five commits of protocol section 4, in order', () => {
    const steps = creationSteps('abc', ctx());
    assert.deepEqual(steps.map((s) => s.message), [
      'host created', 'updated with predefined settings', 'updated host InternalAddr',
      'updated host profile and metadata', 'set default etcd discovery token',
    ]);
    const last = steps.at(-1)!.host;
    assert.equal(last.MachineID, '0000a2a3a4a5a6a7a8a9aaabacadaeaf');
    assert.equal(last.Hostname, '0000a2a3a4a5a6a7');
    assert.equal(last.InternalAddr, '10.0.3.31');
    assert.equal(last.Profile, 'core');
    assert.deepEqual(last.FleetMetadata, ['role-core=true']);
    assert.equal(last.CoreOSVersion, '835.13.0');
    assert.equal(last.EtcdClusterToken, 'e94768ef0f948b0c2e53536d9c5eeb8f');
    assert.equal(steps[0]!.host.InternalAddr, undefined, 'each step is a snapshot, not the final host');
  });

  it('skips the default token commit when the profile brings a token', () => {
    const c = ctx();
    c.profiles[0] = { ...c.profiles[0]!, etcd_cluster_token: 'ffff' } as typeof c.profiles[0];
    assert.equal(creationSteps('abc', c).length, 4);
  });

  it('fails before any step when the range is exhausted', () => {
    const full = ['10.0.3.31', '10.0.3.32'].map((ip, i) => ({ ...newHost(`h${i}`), InternalAddr: ip }));
    assert.throws(() => creationSteps('abc', ctx(full)), /exhausted/);
  });
});

describe('final config, install and boot', () => {
  const created = creationSteps('abc', ctx()).at(-1)!.host;

  it('records MACs, NIC and state installing as three commits', () => {
    assert.deepEqual(finalConfigSteps(created, data).map((s) => s.message),
      ['collected host mac addresses', 'updated host connected nic', 'updated host state to installing']);
  });

  it('writes nothing for a repeated POST while installing (installer retry)', () => {
    const installing = finalConfigSteps(created, data).at(-1)!.host;
    assert.deepEqual(finalConfigSteps(installing, data), []);
  });

  it('rejects a final-config POST from a running host', () => {
    assert.throws(() => finalConfigSteps({ ...created, State: 'running' }, data), IllegalTransitionError);
  });

  it('boot_complete keeps stored versions the report leaves empty (0.11 blanked them)', () => {
    const installed: Host = { ...created, State: 'installed', DockerVersion: '1.9' };
    const [step] = bootCompleteSteps(installed, { ConnectedNIC: '', LastBoot: '', State: 'unknown', MayuVersion: '0.12.0' }, '2026-01-01T00:00:00Z');
    assert.equal(step!.host.State, 'running');
    assert.equal(step!.host.DockerVersion, '1.9');
    assert.equal(step!.host.MayuVersion, '0.12.0');
    assert.equal(step!.host.LastBoot, '2026-01-01T00:00:00Z');
  });

  it('set_installed twice: second is a no-op', () => {
    const installed = setInstalledSteps({ ...created, State: 'installing' }).at(-1)!.host;
    assert.deepEqual(setInstalledSteps(installed), []);
  });
});

describe('set_state', () => {
  const table: [Host['State'], Host['State'], Host['State'] | 'error', boolean | undefined][] = [
    ['running', 'configured', 'configured', true],
    ['running', 'running', 'configured', false], // 0.11: "running" is stored as configured
    ['installed', 'configured', 'configured', true],
    // An operator may set any state from any state, as in 0.11.
    ['installing', 'configured', 'configured', true],
    ['configured', 'installed', 'installed', undefined],
    ['running', 'installed', 'installed', undefined],
    ['running', 'installing', 'installing', undefined],
    ['installing', 'unknown', 'unknown', undefined],
  ];
  for (const [from, requested, want, keep] of table) {
    it(`${from} + set_state ${requested} → ${want}`, () => {
      const host = { ...newHost('abc'), State: from };
      if (want === 'error') return assert.throws(() => setStateSteps(host, requested), IllegalTransitionError);
      const last = setStateSteps(host, requested).at(-1)!.host;
      assert.equal(last.State, want);
      assert.equal(last.KeepDiskData, keep);
    });
  }
});

describe('overrides', () => {
  it('merges into a copy and names the keys in the message', () => {
    const host = { ...newHost('abc'), Overrides: { a: '1' } };
    const [step] = overrideSteps(host, { z: '2', b: '3' });
    assert.equal(step!.message, 'updated host overrides: b, z');
    assert.deepEqual(step!.host.Overrides, { a: '1', b: '3', z: '2' });
    assert.deepEqual(host.Overrides, { a: '1' }, 'input host untouched');
  });
  it('refuses an empty override', () => assert.throws(() => overrideSteps(newHost('a'), {}), (e: unknown) => e instanceof HostChangeError && (e as Error).message === 'nothing to override'));
});
