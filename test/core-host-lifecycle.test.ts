import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { creationSteps, HostChangeError, ProfileQuantityError, setProfileSteps } from '../src/core/host-changes.ts';
import type { Host } from '../src/core/host.ts';
import type { Profile } from '../src/core/profiles.ts';

const profiles: Profile[] = [
  { name: 'core', quantity: 1, tags: ['role-core=true'], disable_engine: false, coreos_version: '835.13.0', etcd_cluster_token: 'coretoken' },
  { name: 'edge', quantity: 2, tags: ['role-edge=true'], disable_engine: true },
  { name: 'default', tags: ['role-worker=true'], disable_engine: true },
];
const DEFAULT_TOKEN = 'e94768ef0f948b0c2e53536d9c5eeb8f';
const create = (serial: string, hosts: Host[]) => creationSteps(serial, {
  hosts, profiles, ipRange: { start: '10.0.3.31', end: '10.0.3.40' }, defaultEtcdToken: DEFAULT_TOKEN, randomBytes: new Uint8Array(16),
}).at(-1)!.host;

describe('setProfileSteps', () => {
  const core = create('a', []);
  const worker = create('b', [core]);

  it('is one commit that re-applies the profile as creation does (tags, engine, token of the profile or the default)', () => {
    assert.equal(core.Profile, 'core');
    assert.equal(worker.Profile, 'edge');
    const steps = setProfileSteps(core, 'edge', { profiles, hosts: [core, worker], defaultEtcdToken: DEFAULT_TOKEN, force: false });
    assert.deepEqual(steps.map((s) => s.message), ['updated host profile to edge']);
    const h = steps[0]!.host;
    assert.equal(h.Profile, 'edge');
    assert.deepEqual(h.FleetMetadata, ['role-edge=true']);
    assert.equal(h.FleetDisableEngine, true);
    assert.equal(h.EtcdClusterToken, DEFAULT_TOKEN, 'the old profile\'s token does not stay');
    assert.equal(h.CoreOSVersion, '835.13.0', 'a profile without a version keeps the host\'s');
    assert.equal(core.Profile, 'core', 'the input host is not modified');
  });

  it('refuses a full profile naming it and its quantity, unless forced', () => {
    assert.throws(
      () => setProfileSteps(worker, 'core', { profiles, hosts: [core, worker], defaultEtcdToken: DEFAULT_TOKEN, force: false }),
      (err: Error) => err instanceof ProfileQuantityError && /profile "core" is full: quantity 1, held by 1 host/.test(err.message),
    );
    const [step] = setProfileSteps(worker, 'core', { profiles, hosts: [core, worker], defaultEtcdToken: DEFAULT_TOKEN, force: true });
    assert.equal(step!.host.Profile, 'core');
    assert.equal(step!.host.EtcdClusterToken, 'coretoken');
    assert.deepEqual(step!.host.FleetMetadata, ['role-core=true']);
  });

  it('writes nothing when the host already has the profile as configured, and never counts it against itself', () => {
    assert.deepEqual(setProfileSteps(core, 'core', { profiles, hosts: [core, worker], defaultEtcdToken: DEFAULT_TOKEN, force: false }), []);
  });

  it('refuses an unknown profile, listing the known ones', () => {
    assert.throws(
      () => setProfileSteps(core, 'nope', { profiles, hosts: [core], defaultEtcdToken: DEFAULT_TOKEN, force: true }),
      (err: Error) => err instanceof HostChangeError && !(err instanceof ProfileQuantityError) && /unknown profile "nope" \(known: core, edge, default\)/.test(err.message),
    );
  });
});
