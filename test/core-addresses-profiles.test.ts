import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allocateAddress, netmaskToPrefix, prefixToNetmask, RangeExhaustedError } from '../src/core/addresses.ts';
import { newHost } from '../src/core/host.ts';
import { chooseProfile, countByProfile, type Profile } from '../src/core/profiles.ts';

describe('address allocation', () => {
  const range = { start: '10.0.3.31', end: '10.0.3.33' };
  const cases: [string, (string | undefined)[], string][] = [
    ['empty range start', [], '10.0.3.31'],
    ['lowest free, filling a hole', ['10.0.3.31', '10.0.3.33'], '10.0.3.32'],
    ['ignores addresses outside the range', ['10.0.3.30', undefined], '10.0.3.31'],
  ];
  for (const [name, taken, want] of cases) it(name, () => assert.equal(allocateAddress(range, taken), want));

  it('enforces the end of the range with a clear error', () => {
    assert.throws(() => allocateAddress(range, ['10.0.3.31', '10.0.3.32', '10.0.3.33']),
      (e: unknown) => e instanceof RangeExhaustedError && /10\.0\.3\.31-10\.0\.3\.33 is exhausted/.test((e as Error).message));
  });

  it('crosses an octet boundary', () => {
    assert.equal(allocateAddress({ start: '10.0.3.255', end: '10.0.4.1' }, ['10.0.3.255']), '10.0.4.0');
  });

  it('converts netmasks', () => {
    assert.equal(netmaskToPrefix('255.255.252.0'), 22);
    assert.equal(prefixToNetmask(22), '255.255.252.0');
    assert.throws(() => netmaskToPrefix('255.0.255.0'));
  });
});

describe('profile choice', () => {
  const profiles: Profile[] = [
    { name: 'core', quantity: 2, tags: ['role-core=true'], disable_engine: false },
    { name: 'storage', quantity: 1, tags: [], disable_engine: false },
    { name: 'default', tags: ['role-worker=true'], disable_engine: true },
  ];
  const holding = (...names: string[]) => countByProfile(names.map((p, i) => ({ ...newHost(`h${i}`), Profile: p })));
  const cases: [string, Map<string, number>, string][] = [
    ['first profile first', holding(), 'core'],
    ['next when full', holding('core', 'core'), 'storage'],
    ['default for the rest', holding('core', 'core', 'storage'), 'default'],
    ['counts hosts in any state', holding('core', 'storage', 'core'), 'default'],
  ];
  for (const [name, counts, want] of cases) it(name, () => assert.equal(chooseProfile(profiles, counts).name, want));

  it('synthesizes default when the config has none', () => {
    assert.deepEqual(chooseProfile([], new Map()), { name: 'default', tags: [], disable_engine: false });
  });
});
